//! The GeoIP database behind `country` policies: a MaxMind-format file (GeoLite2/GeoIP2
//! Country or City, DB-IP lite — anything with `country.iso_code`), held in memory and swapped
//! atomically when the file changes on disk.
//!
//! Lookups read the current reader without locking. [`GeoDb::reload_if_changed`] compares the
//! file's modification time, size (and inode on Unix) with what was last seen and loads the
//! new file if they moved; a file that cannot be read or parsed leaves the previous database in
//! place. Replace the file atomically (write elsewhere, then rename) so a half-written file is
//! never seen.

use arc_swap::ArcSwap;
use maxminddb::{PathElement, Reader};
use parking_lot::Mutex;
use std::{
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

const COUNTRY_CODE: [PathElement<'static>; 2] =
    [PathElement::Key("country"), PathElement::Key("iso_code")];

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

/// The state of the file at the last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    File(Stamp),
    /// It could not be found or read (already reported).
    Unreadable,
}

/// A MaxMind-format country database that follows its file.
pub struct GeoDb {
    path: PathBuf,
    reader: ArcSwap<Reader<Vec<u8>>>,
    seen: Mutex<Seen>,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reader = self.reader.load();
        let meta = reader.metadata();
        f.debug_struct("GeoDb")
            .field("path", &self.path)
            .field("database_type", &meta.database_type)
            .field("build_epoch", &meta.build_epoch)
            .finish()
    }
}

fn load(path: &Path) -> Result<(Reader<Vec<u8>>, Stamp), String> {
    let fail = |reason: String| format!("GeoIP database {}: {reason}", path.display());
    let stamp = Stamp::of(path).map_err(|e| fail(e.to_string()))?;
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let reader = Reader::from_source(bytes).map_err(|e| fail(e.to_string()))?;
    Ok((reader, stamp))
}

impl GeoDb {
    /// Loads the database; the error names the file.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, String> {
        let path = path.into();
        let (reader, stamp) = load(&path)?;
        log_loaded(&path, &reader);
        Ok(Self {
            path,
            reader: ArcSwap::from_pointee(reader),
            seen: Mutex::new(Seen::File(stamp)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ISO 3166-1 alpha-2 code (upper case) of the country the database places `ip` in, or
    /// `None` when it has no entry or the entry has no country (private ranges, anycast…).
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        self.with_country(ip, |code| code.map(str::to_ascii_uppercase))
    }

    /// Calls `f` with the country code of `ip` as stored (no allocation).
    pub fn with_country<R>(&self, ip: IpAddr, f: impl FnOnce(Option<&str>) -> R) -> R {
        let reader = self.reader.load();
        let code = match reader.lookup(ip.to_canonical()) {
            Ok(found) => found
                .decode_path::<&str>(&COUNTRY_CODE)
                .unwrap_or_else(|err| {
                    tracing::debug!(%ip, error = %err, "GeoIP record unreadable; country unknown");
                    None
                }),
            // An IPv6 address in an IPv4-only database, for one.
            Err(err) => {
                tracing::debug!(%ip, error = %err, "GeoIP lookup failed; country unknown");
                None
            }
        };
        f(code.filter(|c| !c.is_empty()))
    }

    /// Loads the file again if it changed since the last check. `Ok(true)`: a new database is
    /// in use. `Err`: the file changed (or vanished) but could not be loaded — the previous
    /// database stays in use and a warning is logged once per change of the file.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let mut seen = self.seen.lock();
        let now = match Stamp::of(&self.path) {
            Ok(stamp) => Seen::File(stamp),
            Err(err) => {
                if *seen == Seen::Unreadable {
                    return Ok(false);
                }
                *seen = Seen::Unreadable;
                let reason = format!("GeoIP database {}: {err}", self.path.display());
                tracing::warn!(error = %reason, "keeping the previous GeoIP database");
                return Err(reason);
            }
        };
        if *seen == now {
            return Ok(false);
        }
        match load(&self.path) {
            Ok((reader, stamp)) => {
                *seen = Seen::File(stamp);
                log_loaded(&self.path, &reader);
                self.reader.store(Arc::new(reader));
                Ok(true)
            }
            Err(reason) => {
                // Remember this version so it is reported once, and tried again when it changes.
                *seen = now;
                tracing::warn!(error = %reason, "keeping the previous GeoIP database");
                Err(reason)
            }
        }
    }
}

fn log_loaded(path: &Path, reader: &Reader<Vec<u8>>) {
    let meta = reader.metadata();
    tracing::info!(
        path = %path.display(),
        database_type = %meta.database_type,
        build_epoch = meta.build_epoch,
        "GeoIP database loaded"
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/geo")
            .join(name)
    }

    /// The v1 fixture, shared by the country rule tests.
    pub fn countries() -> Arc<GeoDb> {
        Arc::new(GeoDb::open(fixture("countries.mmdb")).unwrap())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn looks_up_ipv4_ipv6_and_mapped_addresses() {
        let db = countries();
        assert_eq!(db.country(ip("192.0.2.1")).as_deref(), Some("FR"));
        assert_eq!(db.country(ip("198.51.100.200")).as_deref(), Some("DE"));
        assert_eq!(db.country(ip("203.0.113.9")).as_deref(), Some("RU"));
        assert_eq!(db.country(ip("2001:db8:1::42")).as_deref(), Some("FR"));
        assert_eq!(db.country(ip("::ffff:203.0.113.9")).as_deref(), Some("RU"));
    }

    #[test]
    fn missing_entries_and_records_without_a_country_are_unknown() {
        let db = countries();
        assert_eq!(db.country(ip("10.1.2.3")), None);
        assert_eq!(db.country(ip("100.64.0.1")), None, "record without country");
        assert_eq!(db.country(ip("2001:db8:2::1")), None);
        assert_eq!(db.country(ip("::1")), None);
    }

    #[test]
    fn open_errors_name_the_file() {
        let err = GeoDb::open(fixture("absent.mmdb")).unwrap_err();
        assert!(err.contains("absent.mmdb"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.mmdb");
        std::fs::write(&bad, b"not a database").unwrap();
        let err = GeoDb::open(&bad).unwrap_err();
        assert!(err.contains("bad.mmdb"), "{err}");
    }

    /// Puts `fixture` at `to` the way an updater should: write aside, then rename.
    fn install(fixture_name: &str, to: &Path) {
        let aside = to.with_extension("tmp");
        std::fs::copy(fixture(fixture_name), &aside).unwrap();
        std::fs::rename(&aside, to).unwrap();
    }

    #[test]
    fn reloads_when_the_file_changes_and_keeps_the_old_one_when_it_is_bad() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("countries.mmdb");
        install("countries.mmdb", &path);
        let db = GeoDb::open(&path).unwrap();
        assert_eq!(db.reload_if_changed(), Ok(false), "unchanged");
        assert_eq!(db.country(ip("192.0.2.1")).as_deref(), Some("FR"));

        install("countries-v2.mmdb", &path);
        assert_eq!(db.reload_if_changed(), Ok(true));
        assert_eq!(db.country(ip("192.0.2.1")).as_deref(), Some("DE"));
        assert_eq!(db.country(ip("233.252.0.1")).as_deref(), Some("JP"));
        assert_eq!(db.reload_if_changed(), Ok(false));

        // A corrupt replacement is reported once and the previous database kept.
        std::fs::write(&path, b"truncated").unwrap();
        assert!(
            db.reload_if_changed()
                .unwrap_err()
                .contains("countries.mmdb")
        );
        assert_eq!(db.reload_if_changed(), Ok(false), "reported once");
        assert_eq!(db.country(ip("192.0.2.1")).as_deref(), Some("DE"));

        // So is a vanished file; it is picked up again when it comes back.
        std::fs::remove_file(&path).unwrap();
        assert!(db.reload_if_changed().is_err());
        assert_eq!(db.reload_if_changed(), Ok(false));
        assert_eq!(db.country(ip("192.0.2.1")).as_deref(), Some("DE"));
        install("countries.mmdb", &path);
        assert_eq!(db.reload_if_changed(), Ok(true));
        assert_eq!(db.country(ip("192.0.2.1")).as_deref(), Some("FR"));
    }
}
