//! One object's SQLite database: a file of its own, WAL mode, behind the [`Sql`] trait.
//!
//! With WAL and `synchronous=NORMAL` a committed transaction survives the process being
//! killed. Opened by the host ([`SqliteDb::open_gated`]), a database coalesces writes:
//! the first write opens a transaction, each call's own transaction is a savepoint in
//! it, and it commits once the calls that were ready to run have run (one commit for
//! many calls under load); [`Sql::durable`] completes after that commit, and the host's
//! output gate holds every reply until then. Opened with [`SqliteDb::open`], every
//! write commits before it returns.

use do_modules::host::{Sql, SqlValue};
use futures::channel::oneshot;
use rpc_core::{Code, RpcError};
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{Value as RValue, ValueRef};
use rusqlite::{params_from_iter, Connection};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::rc::{Rc, Weak};

fn sql_error(e: rusqlite::Error) -> RpcError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            RpcError::new(Code::Overloaded, format!("database busy: {e}"))
        }
        rusqlite::Error::UserFunctionError(u) => RpcError::invalid_argument(u.to_string()),
        // A unique index or primary key taken: the caller's write conflicts. (A trigger's
        // RAISE or another constraint stays INTERNAL.)
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            RpcError::new(Code::Conflict, format!("sqlite: {e}"))
        }
        // SQLite names the file in these: say what failed, log where.
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::SystemIoFailure) =>
        {
            open_error(&e)
        }
        _ => RpcError::new(Code::Internal, format!("sqlite: {e}")),
    }
}

/// The error of a database that could not be opened: a fixed message with SQLite's
/// code, never the file's path (which is logged, with the whole error, here).
fn open_error(e: &rusqlite::Error) -> RpcError {
    tracing::error!(error = %e, "an object database could not be opened");
    let code = match e {
        rusqlite::Error::SqliteFailure(f, _) => f.extended_code,
        _ => 0,
    };
    RpcError::new(Code::Internal, format!("object database could not be opened (sqlite code {code})"))
}

/// An object's database.
pub struct SqliteDb {
    conn: Connection,
    in_tx: Cell<bool>,
    /// Transactions and coalesced commits that failed ([`Sql::rollbacks`]).
    rollbacks: Cell<u64>,
    /// Coalesced commits, when opened by the host.
    gate: Option<Gate>,
}

/// The state of coalesced commits.
struct Gate {
    /// The database, for the commit task.
    this: Weak<SqliteDb>,
    /// A transaction holding uncommitted writes is open.
    open: Cell<bool>,
    /// Callers waiting for it to commit.
    waiters: RefCell<Vec<oneshot::Sender<Result<(), RpcError>>>>,
    /// Guards of [`Sql::hold`] alive: the commit waits for the last.
    holds: Cell<usize>,
    /// A commit came due while held.
    deferred: Cell<bool>,
}

impl SqliteDb {
    /// Opens (creating) the database file at `path`.
    pub fn open(path: &Path) -> Result<SqliteDb, RpcError> {
        Ok(SqliteDb { conn: connect(path)?, in_tx: false.into(), rollbacks: 0.into(), gate: None })
    }

    /// Opens (creating) the database at `path` with coalesced commits; must be used
    /// inside a tokio `LocalSet` (the commit runs as a task there).
    pub fn open_gated(path: &Path) -> Result<Rc<SqliteDb>, RpcError> {
        let conn = connect(path)?;
        Ok(Rc::new_cyclic(|this| SqliteDb {
            conn,
            in_tx: false.into(),
            rollbacks: 0.into(),
            gate: Some(Gate {
                this: this.clone(),
                open: false.into(),
                waiters: RefCell::default(),
                holds: 0.into(),
                deferred: false.into(),
            }),
        }))
    }

    /// With coalesced commits: makes sure a transaction is open for a write, and that
    /// it will commit once the calls ready to run now have run.
    fn before_write(&self) -> Result<(), RpcError> {
        let Some(gate) = &self.gate else { return Ok(()) };
        if gate.open.get() {
            return Ok(());
        }
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_error)?;
        gate.open.set(true);
        let this = gate.this.clone();
        tokio::task::spawn_local(async move {
            // Behind every task that is ready now: their writes join this commit.
            tokio::task::yield_now().await;
            if let Some(db) = this.upgrade() {
                db.commit();
            }
        });
        Ok(())
    }

    /// Commits the open transaction (if any) and tells whoever waits for it; while a
    /// hold is alive, only notes that the commit is due.
    fn commit(&self) {
        let Some(gate) = &self.gate else { return };
        if gate.holds.get() > 0 {
            gate.deferred.set(true);
            return;
        }
        if !gate.open.replace(false) {
            return;
        }
        let result = self.conn.execute_batch("COMMIT").map_err(sql_error);
        if let Err(e) = &result {
            tracing::error!(code = e.code.as_str(), error = %e.message, "an object's commit failed: rolling back");
            let _ = self.conn.execute_batch("ROLLBACK");
            self.rollbacks.set(self.rollbacks.get() + 1);
        }
        for w in gate.waiters.borrow_mut().drain(..) {
            let _ = w.send(result.clone());
        }
    }
}

impl Drop for SqliteDb {
    fn drop(&mut self) {
        if let Some(gate) = &self.gate {
            gate.holds.set(0);
        }
        self.commit();
    }
}

/// Opens the file at `path` (creating it and its directory) in WAL mode.
fn connect(path: &Path) -> Result<Connection, RpcError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            tracing::error!(error = %e, dir = %dir.display(), "cannot create an object's directory");
            RpcError::new(Code::Internal, format!("object database could not be opened ({:?})", e.kind()))
        })?;
    }
    let conn = Connection::open(path).map_err(|e| open_error(&e))?;
    // The busy timeout first: switching to WAL waits for a lock another connection holds.
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql_error)?;
    rpc_broker::revocations::to_wal(&conn).map_err(sql_error)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql_error)?;
    register_regexp(&conn)?;
    Ok(conn)
}

/// `dotdo_regexp(pattern, text)`: Rust's linear-time regex engine, patterns cached.
fn register_regexp(conn: &Connection) -> Result<(), RpcError> {
    use rusqlite::functions::FunctionFlags;
    let cache: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
    conn.create_scalar_function(
        "dotdo_regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let pattern: String = ctx.get(0)?;
            let text = match ctx.get_raw(1) {
                ValueRef::Text(t) => String::from_utf8_lossy(t).to_string(),
                ValueRef::Integer(i) => i.to_string(),
                ValueRef::Real(f) => f.to_string(),
                _ => return Ok(false),
            };
            let mut cache = cache.borrow_mut();
            if !cache.contains_key(&pattern) {
                let re = do_modules::storage::query::compile_regex(&pattern)
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
                if cache.len() > 64 {
                    cache.clear();
                }
                cache.insert(pattern.clone(), re);
            }
            Ok(cache.get(&pattern).is_some_and(|re| re.is_match(&text)))
        },
    )
    .map_err(sql_error)
}

fn to_sql(v: &SqlValue) -> RValue {
    match v {
        SqlValue::Null => RValue::Null,
        SqlValue::Integer(i) => RValue::Integer(*i),
        SqlValue::Real(f) => RValue::Real(*f),
        SqlValue::Text(s) => RValue::Text(s.clone()),
    }
}

fn from_sql(v: ValueRef<'_>) -> SqlValue {
    match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(f) => SqlValue::Real(f),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).to_string()),
        ValueRef::Blob(b) => SqlValue::Text(String::from_utf8_lossy(b).to_string()),
    }
}

/// What a class's statement may do, for SQLite's authorizer: its own tables only, no
/// PRAGMA, ATTACH or transaction control, and with `read_only` only reads. Tables named
/// `sqlite_*` are left to SQLite (creating a table writes its schema table; a statement
/// cannot write it directly).
fn class_authorizer(read_only: bool) -> impl FnMut(AuthContext<'_>) -> Authorization + Send + 'static {
    move |ctx: AuthContext<'_>| {
        let table = match ctx.action {
            AuthAction::Select | AuthAction::Function { .. } | AuthAction::Recursive => return Authorization::Allow,
            AuthAction::Read { table_name, .. } => {
                return if framework_table(table_name) { Authorization::Deny } else { Authorization::Allow }
            }
            _ if read_only => return Authorization::Deny,
            AuthAction::Insert { table_name }
            | AuthAction::Delete { table_name }
            | AuthAction::Update { table_name, .. }
            | AuthAction::CreateTable { table_name }
            | AuthAction::DropTable { table_name }
            | AuthAction::CreateIndex { table_name, .. }
            | AuthAction::DropIndex { table_name, .. }
            | AuthAction::CreateTrigger { table_name, .. }
            | AuthAction::DropTrigger { table_name, .. }
            | AuthAction::AlterTable { table_name, .. } => table_name,
            AuthAction::CreateView { .. }
            | AuthAction::DropView { .. }
            | AuthAction::Reindex { .. }
            | AuthAction::Analyze { .. } => return Authorization::Allow,
            _ => return Authorization::Deny,
        };
        if framework_table(table) {
            Authorization::Deny
        } else {
            Authorization::Allow
        }
    }
}

fn framework_table(table: &str) -> bool {
    do_modules::host::is_framework_table(table) && !table.to_ascii_lowercase().starts_with("sqlite_")
}

impl SqliteDb {
    fn run_class_sql(&self, sql: &str, params: &[SqlValue], read_only: bool) -> Result<Vec<Vec<SqlValue>>, RpcError> {
        let refused = |e: rusqlite::Error| match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::AuthorizationForStatementDenied => {
                do_modules::class::statement::forbidden(read_only)
            }
            rusqlite::Error::SqlInputError { .. } | rusqlite::Error::SqliteFailure(..) => {
                RpcError::invalid_argument(format!("sql: {e}"))
            }
            _ => sql_error(e),
        };
        // Prepared without the statement cache, so a statement the framework prepared
        // (unchecked) is never reused for a class, and every class statement is checked.
        let mut stmt = self.conn.prepare(sql).map_err(refused)?;
        if read_only && !stmt.readonly() {
            return Err(RpcError::new(Code::Forbidden, "sql() only reads: use execute() to write the class's tables"));
        }
        all_rows(&mut stmt, params).map_err(refused)
    }
}

/// Every row of `stmt` run with `params`.
fn all_rows(stmt: &mut rusqlite::Statement<'_>, params: &[SqlValue]) -> rusqlite::Result<Vec<Vec<SqlValue>>> {
    let n = stmt.column_count();
    let mut rows = stmt.query(params_from_iter(params.iter().map(to_sql)))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push((0..n).map(|i| row.get_ref(i).map(from_sql).unwrap_or(SqlValue::Null)).collect());
    }
    Ok(out)
}

impl Sql for SqliteDb {
    fn hold(&self) -> do_modules::host::Hold {
        let Some(gate) = &self.gate else { return do_modules::host::Hold::none() };
        gate.holds.set(gate.holds.get() + 1);
        let this = gate.this.clone();
        do_modules::host::Hold::new(move || {
            let Some(db) = this.upgrade() else { return };
            let Some(gate) = &db.gate else { return };
            gate.holds.set(gate.holds.get().saturating_sub(1));
            if gate.holds.get() == 0 && gate.deferred.replace(false) {
                db.commit();
            }
        })
    }

    fn durable(&self) -> do_modules::host::Durable {
        let Some(gate) = self.gate.as_ref().filter(|g| g.open.get()) else {
            return Box::pin(std::future::ready(Ok(())));
        };
        let (tx, rx) = oneshot::channel();
        gate.waiters.borrow_mut().push(tx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| Err(RpcError::new(Code::Internal, "the object closed before its commit")))
        })
    }

    fn class_sql(&self, sql: &str, params: &[SqlValue], read_only: bool) -> Result<Vec<Vec<SqlValue>>, RpcError> {
        if !read_only {
            self.before_write()?;
        }
        self.conn.authorizer(Some(class_authorizer(read_only)));
        let out = self.run_class_sql(sql, params, read_only);
        self.conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
        out
    }

    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize, RpcError> {
        self.before_write()?;
        let mut stmt = self.conn.prepare_cached(sql).map_err(sql_error)?;
        stmt.execute(params_from_iter(params.iter().map(to_sql))).map_err(sql_error)
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, RpcError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(sql_error)?;
        all_rows(&mut stmt, params).map_err(sql_error)
    }

    fn rollbacks(&self) -> Option<u64> {
        Some(self.rollbacks.get())
    }

    fn transaction(&self, f: &mut dyn FnMut() -> Result<(), RpcError>) -> Result<(), RpcError> {
        if self.in_tx.get() {
            return f();
        }
        let result = self.outer_transaction(f);
        if result.is_err() {
            // Whatever the failure, what was written in it may be gone.
            self.rollbacks.set(self.rollbacks.get() + 1);
        }
        result
    }
}

impl SqliteDb {
    fn outer_transaction(&self, f: &mut dyn FnMut() -> Result<(), RpcError>) -> Result<(), RpcError> {
        if self.gate.is_some() {
            // One call's transaction: a savepoint in the open batch.
            self.before_write()?;
            self.conn.execute_batch("SAVEPOINT dotdo_call").map_err(sql_error)?;
            self.in_tx.set(true);
            let result = f();
            self.in_tx.set(false);
            return match result {
                Ok(()) => self.conn.execute_batch("RELEASE dotdo_call").map_err(sql_error),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK TO dotdo_call; RELEASE dotdo_call");
                    Err(e)
                }
            };
        }
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_error)?;
        self.in_tx.set(true);
        let result = f();
        self.in_tx.set(false);
        match result {
            Ok(()) => self.conn.execute_batch("COMMIT").map_err(sql_error),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(path: &Path) -> i64 {
        let c = Connection::open(path).expect("a second connection");
        c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).expect("count")
    }

    #[test]
    fn a_hold_keeps_writes_from_committing_until_it_is_released() {
        let dir = std::env::temp_dir().join(format!("dotdo-hold-{}", std::process::id()));
        let path = dir.join("o.sqlite");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        tokio::task::LocalSet::new().block_on(&rt, async {
            let db = SqliteDb::open_gated(&path).expect("open");
            db.execute("CREATE TABLE t (x INTEGER)", &[]).expect("create");
            db.durable().await.expect("committed");
            let hold = db.hold();
            db.execute("INSERT INTO t VALUES (1)", &[]).expect("insert");
            let durable = db.durable();
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            assert_eq!(rows(&path), 0, "held: not committed, though the commit task has run");
            db.execute("INSERT INTO t VALUES (2)", &[]).expect("a write joins the held batch");
            drop(hold);
            durable.await.expect("committed on release");
            assert_eq!(rows(&path), 2);
            // Without a hold, the next write commits on its own.
            db.execute("INSERT INTO t VALUES (3)", &[]).expect("insert");
            db.durable().await.expect("committed");
            assert_eq!(rows(&path), 3);
        });
        let _ = std::fs::remove_dir_all(dir);
    }
}
