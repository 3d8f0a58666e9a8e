//! JSON lines in a file, rotated when it passes `max_bytes` or `max_age`: the file is renamed
//! to `path.1` (older ones move up, past `keep` removed) and a new one opened.

use std::{
    io::Write as _,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{Sink, row_json};
use gatehouse_model::audit::AuditRow;

pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    keep: usize,
    open: Option<Open>,
}

struct Open {
    file: std::fs::File,
    bytes: u64,
    since: Instant,
}

impl FileSink {
    pub fn new(path: PathBuf, max_bytes: u64, max_age: Duration, keep: usize) -> Self {
        FileSink {
            path,
            max_bytes: max_bytes.max(1),
            max_age,
            keep,
            open: None,
        }
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.open = None;
        if self.keep == 0 {
            return std::fs::remove_file(&self.path).or_else(not_found_ok);
        }
        std::fs::remove_file(self.rotated(self.keep)).or_else(not_found_ok)?;
        for n in (1..self.keep).rev() {
            std::fs::rename(self.rotated(n), self.rotated(n + 1)).or_else(not_found_ok)?;
        }
        std::fs::rename(&self.path, self.rotated(1)).or_else(not_found_ok)
    }

    fn file(&mut self, next: u64) -> std::io::Result<&mut Open> {
        let due = self.open.as_ref().is_some_and(|open| {
            (open.bytes > 0 && open.bytes + next > self.max_bytes)
                || open.since.elapsed() >= self.max_age
        });
        if due {
            self.rotate()?;
        }
        if self.open.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let bytes = file.metadata()?.len();
            self.open = Some(Open {
                file,
                bytes,
                since: Instant::now(),
            });
            // A file left over from before this process may be past its size already.
            if bytes > 0 && bytes + next > self.max_bytes {
                self.rotate()?;
                return self.file(next);
            }
        }
        self.open
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no file open"))
    }

    fn write_rows(&mut self, rows: &[Arc<AuditRow>]) -> std::io::Result<()> {
        for row in rows {
            let mut line = row_json(row);
            line.push('\n');
            let open = self.file(line.len() as u64)?;
            open.file.write_all(line.as_bytes())?;
            open.bytes += line.len() as u64;
        }
        Ok(())
    }
}

fn not_found_ok(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

impl Sink for FileSink {
    async fn deliver(&mut self, rows: &[Arc<AuditRow>]) -> Result<(), String> {
        let written = self.write_rows(rows);
        if written.is_err() {
            // Reopened (and re-measured) on the next batch.
            self.open = None;
        }
        written.map_err(|e| format!("{}: {e}", self.path.display()))
    }
}
