-- What the running server's last configuration reload reported, as JSON.
CREATE TABLE reload_report (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    report TEXT NOT NULL
);
