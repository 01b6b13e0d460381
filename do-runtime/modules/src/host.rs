//! What a module server needs from its host, as small traits: SQL, time, randomness
//! and a way to run background tasks.
//! Natively they are backed by `rusqlite` and the system clock; inside a Cloudflare
//! Durable Object by SqlStorage and `Date.now()`.

use rpc_core::RpcError;

/// A value bound to or read from SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// An INTEGER.
    Integer(i64),
    /// A REAL.
    Real(f64),
    /// TEXT.
    Text(String),
}

impl SqlValue {
    /// The value as text, if it is TEXT.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer, if it is INTEGER.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::Integer(i) => Some(*i),
            _ => None,
        }
    }
}

/// One object's SQL database. Statements always take their inputs as parameters.
pub trait Sql {
    /// Runs a statement; returns the rows changed.
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize, RpcError>;
    /// Runs a query; returns every row.
    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, RpcError>;
    /// Runs `f` in one transaction: committed (durably) when it returns Ok, rolled back
    /// when it returns Err. Called again inside `f`, it runs the inner function as part
    /// of the same transaction (whose failure then rolls back the whole).
    fn transaction(&self, f: &mut dyn FnMut() -> Result<(), RpcError>) -> Result<(), RpcError>;
    /// Runs one statement of the object's class: only on tables that are not the
    /// framework's ([`is_framework_table`]), no PRAGMA, ATTACH or transaction control (a
    /// class uses its context's `transaction`); with `read_only` nothing that writes.
    /// Refusals are FORBIDDEN. Returns the rows (none for a statement without any).
    /// A host that cannot check statements keeps the default, which refuses them all.
    fn class_sql(&self, sql: &str, params: &[SqlValue], read_only: bool) -> Result<Vec<Vec<SqlValue>>, RpcError> {
        let _ = (sql, params, read_only);
        Err(RpcError::new(rpc_core::Code::Unimplemented, "this host does not run a class's own SQL"))
    }
    /// How many transactions (or coalesced commits) of this database have failed and
    /// been rolled back so far, or `None` if the host does not count them. The hot tier
    /// caches Things only on a host that counts, and empties itself when the count moves.
    fn rollbacks(&self) -> Option<u64> {
        None
    }
    /// The output gate: completes once every write made so far is durable. A host that
    /// coalesces the writes of concurrent calls into one commit (as Cloudflare's Durable
    /// Objects do) holds each call's reply, and each event's delivery, on it; an error
    /// means that commit failed and its writes are gone. The default (a host that
    /// commits each write before returning) is ready at once.
    fn durable(&self) -> Durable {
        Box::pin(std::future::ready(Ok(())))
    }
    /// Holds back the commit of the writes made from now until the guard is dropped, so
    /// they commit together (with whatever else is written meanwhile) or not at all: a
    /// durable call's effects and the key that deduplicates it. Hold it only for as long
    /// as the work takes (the replies of other calls wait for that commit). The default
    /// (a host that commits each write as it is made) holds nothing.
    fn hold(&self) -> Hold {
        Hold::none()
    }
}

/// What [`Sql::hold`] returns: the commit waits until it is dropped.
#[must_use = "the commit is held only while the guard lives"]
pub struct Hold(Option<Box<dyn FnOnce()>>);

impl Hold {
    /// A guard that holds nothing.
    pub fn none() -> Hold {
        Hold(None)
    }

    /// A guard that runs `release` when dropped.
    pub fn new(release: impl FnOnce() + 'static) -> Hold {
        Hold(Some(Box::new(release)))
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            release();
        }
    }
}

/// What [`Sql::durable`] returns.
pub type Durable = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RpcError>>>>;

/// A task the host runs to completion on the object's thread.
pub type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// Rows of one table as the cold tier keeps them: column names, then rows of values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// The columns, in order.
    pub columns: Vec<String>,
    /// The rows, each a value per column.
    pub rows: Vec<Vec<SqlValue>>,
}

/// What an asynchronous host call returns.
pub type Pending<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, RpcError>>>>;

/// The cold tier: an object store (a directory, S3...) of files under keys like
/// `objects/<id>/snapshots/<seq>/manifest.json`, tables kept as Parquet. A host without
/// one gives objects none (their `snapshot` is UNAVAILABLE).
pub trait Cold {
    /// Stores `table` under `key` (replacing); the bytes written.
    fn put_table(&self, key: &str, table: Table) -> Pending<u64>;
    /// The table under `key`, if there is one.
    fn get_table(&self, key: &str) -> Pending<Option<Table>>;
    /// Stores `bytes` under `key` (replacing).
    fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Pending<()>;
    /// The bytes under `key`, if any.
    fn get_bytes(&self, key: &str) -> Pending<Option<Vec<u8>>>;
    /// Every key under `prefix`, in no particular order.
    fn list(&self, prefix: &str) -> Pending<Vec<String>>;
}

/// Time, randomness and background work.
pub trait Env {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A random number (for ids).
    fn random_u64(&self) -> u64;
    /// Runs `task` in the background on the object's thread (event delivery).
    fn spawn(&self, task: Task);
    /// A future that completes after `duration` (event delivery deadlines). The default
    /// never completes: a host without a timer gives deliveries no deadline.
    fn sleep(&self, duration: std::time::Duration) -> Task {
        let _ = duration;
        Box::pin(std::future::pending())
    }
}

/// The object's one alarm: the host calls the object back at (or soon after) the time
/// set, even across restarts and eviction.
pub trait Alarm {
    /// Sets the alarm to `at_ms` (ms since the epoch), or clears it with `None`.
    fn set_alarm(&self, at_ms: Option<i64>);
}

/// Whether `table` belongs to the framework (Things, events, schedules, the key-value
/// entries and the object's own bookkeeping), which a class's own SQL may not touch:
/// `things`, `events`, `schedules` and every table whose name starts with `dotdo_` or
/// `sqlite_` (compared without case, as SQLite does).
pub fn is_framework_table(table: &str) -> bool {
    let t = table.to_ascii_lowercase();
    matches!(t.as_str(), "things" | "events" | "schedules") || t.starts_with("dotdo_") || t.starts_with("sqlite_")
}
