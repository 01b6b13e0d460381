//! [`Sql`] on a Durable Object's `SqlStorage`: statements run synchronously in the
//! object's own SQLite database; a transaction is `storage.transactionSync`, since the
//! platform refuses `BEGIN` and `SAVEPOINT`. Writes need no commit of ours: the
//! platform commits what an event wrote and holds the object's outgoing messages until
//! it has (its output gate), so [`Sql::durable`] keeps its default.

use do_modules::host::{Sql, SqlValue};
use rpc_core::{Code, RpcError};
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{SqlStorage, SqlStorageValue, Storage};

#[wasm_bindgen]
extern "C" {
    /// The object's storage as JavaScript sees it, for `transactionSync` (which worker
    /// 0.8 does not bind).
    type RawStorage;

    /// Runs `f` in a transaction: committed when it returns, rolled back when it throws.
    #[wasm_bindgen(method, catch, js_name = transactionSync)]
    fn transaction_sync(this: &RawStorage, f: &mut dyn FnMut() -> Result<JsValue, JsValue>)
        -> Result<JsValue, JsValue>;
}

/// One Durable Object's SQL database.
pub struct CfSql {
    sql: SqlStorage,
    storage: Storage,
    /// How deep in [`Sql::transaction`] calls we are (inner ones join the outer one).
    depth: Cell<u32>,
    /// Transactions that failed ([`Sql::rollbacks`]). A failed implicit commit resets
    /// the whole Durable Object, memory and all, so it needs no count.
    rollbacks: Cell<u64>,
}

impl CfSql {
    /// The database of the object whose storage is `storage`.
    pub fn new(storage: Storage) -> CfSql {
        CfSql { sql: storage.sql(), storage, depth: Cell::new(0), rollbacks: Cell::new(0) }
    }

    fn run(&self, sql: &str, params: &[SqlValue]) -> Result<worker::SqlCursor, RpcError> {
        let bindings: Vec<SqlStorageValue> = params.iter().map(to_cf).collect();
        self.sql.exec(sql, bindings).map_err(sql_error)
    }
}

fn to_cf(v: &SqlValue) -> SqlStorageValue {
    match v {
        SqlValue::Null => SqlStorageValue::Null,
        SqlValue::Integer(i) => SqlStorageValue::Integer(*i),
        SqlValue::Real(f) => SqlStorageValue::Float(*f),
        SqlValue::Text(s) => SqlStorageValue::String(s.clone()),
    }
}

fn from_cf(v: SqlStorageValue) -> SqlValue {
    match v {
        SqlStorageValue::Null => SqlValue::Null,
        SqlStorageValue::Boolean(b) => SqlValue::Integer(i64::from(b)),
        SqlStorageValue::Integer(i) => SqlValue::Integer(i),
        SqlStorageValue::Float(f) => SqlValue::Real(f),
        SqlStorageValue::String(s) => SqlValue::Text(s),
        // The module servers store no BLOBs; one written by other means reads as text.
        SqlStorageValue::Blob(b) => SqlValue::Text(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// SQLite's errors as the native host reports them: a constraint is CONFLICT, a full
/// database LIMIT_EXCEEDED, anything else INTERNAL; a query with `$regex` (the native
/// host's `dotdo_regexp` function) is UNSUPPORTED.
fn sql_error(e: worker::Error) -> RpcError {
    let message = e.to_string();
    if message.contains("no such function: dotdo_regexp") {
        return RpcError::new(
            Code::Unsupported,
            "$regex is not available on Cloudflare: a Durable Object's SQLite takes no functions of ours (use $contains, $in or ranges)",
        );
    }
    let code = if message.contains("constraint failed") {
        Code::Conflict
    } else if message.contains("SQLITE_FULL") || message.contains("database or disk is full") {
        Code::LimitExceeded
    } else {
        Code::Internal
    };
    RpcError::new(code, format!("sql: {message}"))
}

impl Sql for CfSql {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize, RpcError> {
        let cursor = self.run(sql, params)?;
        // A statement runs as its cursor is read.
        for row in cursor.raw() {
            row.map_err(sql_error)?;
        }
        Ok(cursor.rows_written())
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, RpcError> {
        let cursor = self.run(sql, params)?;
        cursor.raw().map(|row| row.map(|r| r.into_iter().map(from_cf).collect()).map_err(sql_error)).collect()
    }

    /// A class's own statement: checked by its words first (no authorizer here, see
    /// `do_modules::class::statement`), then run; SQL errors are INVALID_ARGUMENT, and
    /// what the platform itself refuses is FORBIDDEN.
    fn class_sql(&self, sql: &str, params: &[SqlValue], read_only: bool) -> Result<Vec<Vec<SqlValue>>, RpcError> {
        do_modules::class::statement::check(sql, read_only)?;
        let refused = |e: worker::Error| {
            let message = e.to_string();
            if message.contains("not authorized") || message.contains("SQLITE_AUTH") {
                RpcError::new(Code::Forbidden, format!("sql: the platform refused it: {message}"))
            } else {
                RpcError::invalid_argument(format!("sql: {message}"))
            }
        };
        let bindings: Vec<SqlStorageValue> = params.iter().map(to_cf).collect();
        let cursor = self.sql.exec(sql, bindings).map_err(refused)?;
        cursor.raw().map(|row| row.map(|r| r.into_iter().map(from_cf).collect()).map_err(refused)).collect()
    }

    fn rollbacks(&self) -> Option<u64> {
        Some(self.rollbacks.get())
    }

    fn transaction(&self, f: &mut dyn FnMut() -> Result<(), RpcError>) -> Result<(), RpcError> {
        if self.depth.get() > 0 {
            return f();
        }
        let result = self.outer_transaction(f);
        if result.is_err() {
            self.rollbacks.set(self.rollbacks.get() + 1);
        }
        result
    }
}

impl CfSql {
    fn outer_transaction(&self, f: &mut dyn FnMut() -> Result<(), RpcError>) -> Result<(), RpcError> {
        self.depth.set(1);
        let failed: RefCell<Option<RpcError>> = RefCell::new(None);
        let raw: &RawStorage = self.storage.as_raw().unchecked_ref();
        let outcome = raw.transaction_sync(&mut || match f() {
            Ok(()) => Ok(JsValue::UNDEFINED),
            Err(e) => {
                let thrown = JsValue::from_str(&e.message);
                *failed.borrow_mut() = Some(e);
                Err(thrown)
            }
        });
        self.depth.set(0);
        if let Some(e) = failed.into_inner() {
            return Err(e);
        }
        outcome.map(|_| ()).map_err(|e| {
            RpcError::new(Code::Internal, format!("transaction failed: {}", e.as_string().unwrap_or_default()))
        })
    }
}
