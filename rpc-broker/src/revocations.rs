//! Revoked token ids, persisted in the broker's SQLite (`<data>/broker.sqlite`) and
//! checked on every redeem. Each thread keeps its own connection to the file.

use rpc_core::{Code, RpcError};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

thread_local! {
    static CONNECTIONS: RefCell<HashMap<PathBuf, rusqlite::Connection>> = RefCell::new(HashMap::new());
}

fn db_error(e: rusqlite::Error) -> RpcError {
    RpcError::new(Code::Internal, format!("revocation store: {e}"))
}

fn with<R>(path: &Path, f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>) -> Result<R, RpcError> {
    CONNECTIONS.with(|c| {
        let mut c = c.borrow_mut();
        if !c.contains_key(path) {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let conn = rusqlite::Connection::open(path).map_err(db_error)?;
            conn.pragma_update(None, "journal_mode", "WAL").map_err(db_error)?;
            conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db_error)?;
            conn.execute_batch("CREATE TABLE IF NOT EXISTS revoked (token_id TEXT PRIMARY KEY, at INTEGER NOT NULL)")
                .map_err(db_error)?;
            c.insert(path.to_path_buf(), conn);
        }
        let conn = c.get(path).ok_or_else(|| RpcError::new(Code::Internal, "revocation store vanished"))?;
        f(conn).map_err(db_error)
    })
}

/// Records `token_id` as revoked (committed before this returns).
pub fn revoke(path: &Path, token_id: &str, now: i64) -> Result<(), RpcError> {
    with(path, |c| {
        c.execute("INSERT OR IGNORE INTO revoked (token_id, at) VALUES (?1, ?2)", rusqlite::params![token_id, now])
    })?;
    Ok(())
}

/// Whether `token_id` was revoked.
pub fn is_revoked(path: &Path, token_id: &str) -> Result<bool, RpcError> {
    with(path, |c| c.query_row("SELECT COUNT(*) FROM revoked WHERE token_id = ?1", [token_id], |r| r.get::<_, i64>(0)))
        .map(|n| n > 0)
}
