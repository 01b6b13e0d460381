//! The key-value module: a class's own entries (`Context::kv`), and the `Kv` capability
//! that shows them to operators. The entries: JSON values under text keys, in the object's own
//! SQLite file (table `dotdo_kv`), so a write joins whatever transaction is open.

use crate::host::{Sql, SqlValue};
use rpc_core::{Code, RpcError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::rc::Rc;

pub mod server;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value (its JSON text), in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most entries one [`Kv::list`] returns.
pub const MAX_LIST: usize = 10_000;

pub(crate) const MIGRATION: &str =
    "CREATE TABLE IF NOT EXISTS dotdo_kv (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID";

/// An object's key-value entries.
#[derive(Clone)]
pub struct Kv {
    sql: Rc<dyn Sql>,
}

fn check_key(key: &str) -> Result<(), RpcError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(RpcError::invalid_argument(format!("a key is 1 to {MAX_KEY_BYTES} bytes")));
    }
    Ok(())
}

fn decode<T: DeserializeOwned>(key: &str, text: &str) -> Result<T, RpcError> {
    serde_json::from_str(text)
        .map_err(|e| RpcError::invalid_argument(format!("the value of {key:?} is not of the type asked for: {e}")))
}

impl Kv {
    /// The entries in `sql` (creating their table).
    pub fn new(sql: Rc<dyn Sql>) -> Result<Kv, RpcError> {
        sql.execute(MIGRATION, &[])?;
        Ok(Kv { sql })
    }

    /// The value stored under `key`, if any; INVALID_ARGUMENT if it is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, RpcError> {
        check_key(key)?;
        let rows = self.sql.query("SELECT value FROM dotdo_kv WHERE key = ?", &[SqlValue::Text(key.into())])?;
        match rows.first().and_then(|r| r.first()).and_then(SqlValue::as_text) {
            Some(text) => decode(key, text).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key` (as JSON), replacing what was there.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), RpcError> {
        check_key(key)?;
        let text = serde_json::to_string(value)
            .map_err(|e| RpcError::invalid_argument(format!("the value cannot be stored as JSON: {e}")))?;
        if text.len() > MAX_VALUE_BYTES {
            return Err(RpcError::new(Code::LimitExceeded, format!("a value is at most {MAX_VALUE_BYTES} bytes")));
        }
        self.sql.execute(
            "INSERT INTO dotdo_kv (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
            &[SqlValue::Text(key.into()), SqlValue::Text(text)],
        )?;
        Ok(())
    }

    /// Removes `key`; whether it was there.
    pub fn delete(&self, key: &str) -> Result<bool, RpcError> {
        check_key(key)?;
        Ok(self.sql.execute("DELETE FROM dotdo_kv WHERE key = ?", &[SqlValue::Text(key.into())])? > 0)
    }

    /// The entries whose key starts with `prefix`, in key order, at most `limit` (and
    /// never more than [`MAX_LIST`]).
    pub fn list<T: DeserializeOwned>(&self, prefix: &str, limit: usize) -> Result<Vec<(String, T)>, RpcError> {
        let limit = limit.min(MAX_LIST);
        // Keys in [prefix, prefix + U+10FFFF): a range scan on the primary key, no LIKE
        // escaping needed.
        let rows = self.sql.query(
            "SELECT key, value FROM dotdo_kv WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3",
            &[
                SqlValue::Text(prefix.into()),
                SqlValue::Text(format!("{prefix}\u{10FFFF}")),
                SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        )?;
        rows.iter()
            .map(|r| match (r.first().and_then(SqlValue::as_text), r.get(1).and_then(SqlValue::as_text)) {
                (Some(k), Some(v)) => Ok((k.to_string(), decode(k, v)?)),
                _ => Err(RpcError::new(Code::Internal, "a malformed row in dotdo_kv")),
            })
            .collect()
    }
}

impl Kv {
    /// Stores `json` (JSON text, checked) under `key`.
    pub fn put_json(&self, key: &str, json: &str) -> Result<(), RpcError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| RpcError::invalid_argument(format!("a value is JSON: {e}")))?;
        self.put(key, &value)
    }
}
