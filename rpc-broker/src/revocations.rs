//! Revoked token ids: a set in memory, checked on every redeem and on every call through
//! a membrane (a lookup, no I/O), loaded from the broker's store at start and written to
//! it on every change: natively the SQLite file `<data>/broker.sqlite`, on Cloudflare the
//! broker object's own database ([`RevocationStore`]).

#[cfg(feature = "native")]
use rpc_core::Code;
use rpc_core::RpcError;
use std::collections::HashSet;
#[cfg(feature = "native")]
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "native")]
use std::sync::Mutex;
use std::sync::{Arc, RwLock};

/// Where a broker commits the ids it revokes.
pub trait RevocationStore: Send + Sync + std::fmt::Debug {
    /// Commits `token_id`, revoked at `at` (ms since the epoch); may block.
    fn persist(&self, token_id: &str, at: i64) -> Result<(), RpcError>;
}

/// The revoked token ids of one broker.
#[derive(Debug)]
pub struct Revocations {
    ids: RwLock<HashSet<String>>,
    /// Whether any id was ever revoked: calls skip the lock while none was.
    any: AtomicBool,
    /// Where revocations are persisted (`None`: in memory only).
    store: Option<Box<dyn RevocationStore>>,
}

/// The native store: a SQLite file.
#[cfg(feature = "native")]
#[derive(Debug)]
struct SqliteFile(Mutex<rusqlite::Connection>);

#[cfg(feature = "native")]
impl RevocationStore for SqliteFile {
    fn persist(&self, token_id: &str, at: i64) -> Result<(), RpcError> {
        let conn = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        conn.execute("INSERT OR IGNORE INTO revoked (token_id, at) VALUES (?1, ?2)", rusqlite::params![token_id, at])
            .map_err(|e| db_error(&e))?;
        Ok(())
    }
}

/// An error of the store, without the path (logged here in full).
#[cfg(feature = "native")]
fn db_error(e: &rusqlite::Error) -> RpcError {
    tracing::error!(error = %e, "revocation store");
    let code = match e {
        rusqlite::Error::SqliteFailure(f, _) => f.extended_code,
        _ => 0,
    };
    RpcError::new(Code::Internal, format!("the revocation store failed (sqlite code {code})"))
}

#[cfg(feature = "native")]
fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    to_wal(&conn)?;
    conn.execute_batch("CREATE TABLE IF NOT EXISTS revoked (token_id TEXT PRIMARY KEY, at INTEGER NOT NULL)")?;
    Ok(conn)
}

/// Switches `conn`'s file to WAL. Two connections switching a new file at once can
/// deadlock on its lock, and SQLite then answers BUSY at once instead of waiting, so
/// that answer is retried for as long as the busy timeout would have waited. The
/// object host opens its own files with it too.
#[cfg(feature = "native")]
pub fn to_wal(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let mut tries = 0;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::DatabaseBusy && tries < 500 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

impl Revocations {
    /// Opens (creating) the store at `path` and loads every revoked id into memory.
    #[cfg(feature = "native")]
    pub fn load(path: &Path) -> Result<Revocations, RpcError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                tracing::error!(error = %e, dir = %dir.display(), "cannot create the revocation store's directory");
                RpcError::new(Code::Internal, "the revocation store's directory could not be created")
            })?;
        }
        let conn = open(path).map_err(|e| db_error(&e))?;
        let ids: HashSet<String> = conn
            .prepare("SELECT token_id FROM revoked")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| db_error(&e))?;
        Ok(Revocations::with_store(ids, Box::new(SqliteFile(Mutex::new(conn)))))
    }

    /// The ids `revoked` (loaded by the host from `store`), committing new ones to `store`.
    pub fn with_store(revoked: impl IntoIterator<Item = String>, store: Box<dyn RevocationStore>) -> Revocations {
        let ids: HashSet<String> = revoked.into_iter().collect();
        Revocations { any: AtomicBool::new(!ids.is_empty()), ids: RwLock::new(ids), store: Some(store) }
    }

    /// A set kept in memory only (for tests and embedders without a data directory).
    pub fn in_memory() -> Revocations {
        Revocations { ids: RwLock::default(), any: AtomicBool::new(false), store: None }
    }

    /// Whether `token_id` was revoked: a lookup in memory.
    pub fn is_revoked(&self, token_id: &str) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        // A poisoned lock still holds every id inserted before the panic.
        self.ids.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(token_id)
    }

    /// How many ids are revoked.
    pub fn len(&self) -> usize {
        self.ids.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Whether no id is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Revokes `token_id`: every membrane refuses its next call at once, then the id is
    /// committed to the store (blocking: on a network thread use [`Revocations::revoke`]).
    pub fn revoke_blocking(&self, token_id: &str, now: i64) -> Result<(), RpcError> {
        self.insert(token_id);
        self.persist(token_id, now)
    }

    /// [`Revocations::revoke_blocking`] with the write on tokio's blocking pool: the id
    /// is refused at once (before this first yields), and the future completes once it
    /// is committed.
    #[cfg(feature = "native")]
    pub async fn revoke(self: &Arc<Self>, token_id: &str, now: i64) -> Result<(), RpcError> {
        self.insert(token_id);
        let (this, id) = (self.clone(), token_id.to_string());
        tokio::task::spawn_blocking(move || this.persist(&id, now))
            .await
            .map_err(|e| RpcError::new(Code::Internal, format!("the revocation was not written: {e}")))?
    }

    /// [`Revocations::revoke_blocking`]: without the `native` feature the host's store
    /// writes without blocking a thread (a Durable Object's SQL is synchronous).
    #[cfg(not(feature = "native"))]
    pub async fn revoke(self: &Arc<Self>, token_id: &str, now: i64) -> Result<(), RpcError> {
        self.revoke_blocking(token_id, now)
    }

    fn insert(&self, token_id: &str) {
        self.ids.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(token_id.to_string());
        self.any.store(true, Ordering::Release);
    }

    fn persist(&self, token_id: &str, now: i64) -> Result<(), RpcError> {
        match &self.store {
            Some(store) => store.persist(token_id, now),
            None => Ok(()),
        }
    }
}

/// The store's file beside the objects: `<data>/broker.sqlite`.
#[cfg(feature = "native")]
pub fn default_path(data_dir: &Path) -> PathBuf {
    data_dir.join("broker.sqlite")
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;

    #[test]
    fn revocations_are_in_memory_and_survive_a_reload() {
        let dir = std::env::temp_dir().join(format!("dotdo-revocations-{}", std::process::id()));
        let path = dir.join("broker.sqlite");
        let r = Revocations::load(&path).expect("load");
        assert!(!r.is_revoked("a"));
        r.revoke_blocking("a", 1).expect("revoke");
        r.revoke_blocking("a", 2).expect("revoking twice is fine");
        assert!(r.is_revoked("a") && !r.is_revoked("b"));
        drop(r);
        let again = Revocations::load(&path).expect("reload");
        assert!(again.is_revoked("a") && again.len() == 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn hosts_opening_one_store_at_once_all_open_it() {
        // Several hosts started together on one data directory (tests, a restart racing
        // a shutdown) each switch the file to WAL; none may fail with SQLITE_BUSY.
        for round in 0..5 {
            let dir = std::env::temp_dir().join(format!("dotdo-revocations-race-{}-{round}", std::process::id()));
            let path = dir.join("broker.sqlite");
            let opened: Vec<_> = (0..8)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || Revocations::load(&path).map(|_| ()))
                })
                .collect();
            for t in opened {
                t.join().expect("thread").expect("every host opens the store");
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn a_store_that_cannot_open_says_so_without_its_path() {
        let dir = std::env::temp_dir().join(format!("dotdo-revocations-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // A directory where the file should be.
        let path = dir.join("broker.sqlite");
        std::fs::create_dir_all(&path).expect("dir in the way");
        let e = Revocations::load(&path).expect_err("cannot open");
        assert_eq!(e.code, Code::Internal);
        assert!(!e.message.contains(dir.to_str().expect("utf-8")), "{}", e.message);
        let _ = std::fs::remove_dir_all(dir);
    }
}
