//! The workflow tables of an object's SQLite and their rows: runs, their steps (the
//! journal replay reads), approvals, breakers, the outbox of durable sends and the keys
//! of durable calls received.

use crate::host::{Sql, SqlValue};
use rpc_core::{Code, RpcError};
use schema::object_capnp::{run_info, step_info};

/// The tables, created when the object loads.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS dotdo_wf_runs (
        id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL, input TEXT NOT NULL,
        output TEXT, error TEXT, error_code TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        wake_at INTEGER, finished_at INTEGER, steps INTEGER NOT NULL DEFAULT 0, wait_pattern TEXT)",
    "CREATE INDEX IF NOT EXISTS dotdo_wf_runs_wake ON dotdo_wf_runs (wake_at) WHERE wake_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS dotdo_wf_runs_finished ON dotdo_wf_runs (finished_at) WHERE finished_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS dotdo_wf_runs_status ON dotdo_wf_runs (status, created_at)",
    "CREATE TABLE IF NOT EXISTS dotdo_wf_steps (
        run TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
        attempts INTEGER NOT NULL, tier TEXT NOT NULL DEFAULT '', started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL DEFAULT 0, result TEXT, error TEXT NOT NULL DEFAULT '',
        error_code TEXT NOT NULL DEFAULT '', retry_at INTEGER, state TEXT, PRIMARY KEY (run, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS dotdo_wf_approvals (
        id TEXT PRIMARY KEY NOT NULL, run TEXT NOT NULL, step TEXT NOT NULL, who TEXT NOT NULL, what TEXT NOT NULL,
        deadline INTEGER NOT NULL, status TEXT NOT NULL, answered_by TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '', answered_at INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dotdo_wf_approvals_run ON dotdo_wf_approvals (run)",
    "CREATE TABLE IF NOT EXISTS dotdo_breakers (
        name TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL, failures TEXT NOT NULL, opened_at INTEGER NOT NULL,
        probe_at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS dotdo_outbox (
        key TEXT PRIMARY KEY NOT NULL, class TEXT NOT NULL, name TEXT NOT NULL, method TEXT NOT NULL,
        args TEXT NOT NULL, due_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS dotdo_outbox_due ON dotdo_outbox (due_at) WHERE status = 'pending'",
    "CREATE TABLE IF NOT EXISTS dotdo_delivered (
        key TEXT PRIMARY KEY NOT NULL, result TEXT NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS dotdo_delivered_at ON dotdo_delivered (at)",
];

/// Creates the tables.
pub fn migrate(sql: &dyn Sql) -> Result<(), RpcError> {
    MIGRATIONS.iter().try_for_each(|m| sql.execute(m, &[]).map(|_| ()))
}

pub(crate) fn bad_row(what: &str) -> RpcError {
    RpcError::new(Code::Internal, format!("bad {what} row"))
}

pub(crate) fn text(r: &[SqlValue], i: usize) -> String {
    r.get(i).and_then(SqlValue::as_text).unwrap_or_default().to_string()
}

pub(crate) fn opt_text(r: &[SqlValue], i: usize) -> Option<String> {
    r.get(i).and_then(SqlValue::as_text).map(str::to_string)
}

pub(crate) fn int(r: &[SqlValue], i: usize) -> i64 {
    r.get(i).and_then(SqlValue::as_i64).unwrap_or(0)
}

pub(crate) fn opt_int(r: &[SqlValue], i: usize) -> Option<i64> {
    r.get(i).and_then(SqlValue::as_i64)
}

pub(crate) fn t(s: &str) -> SqlValue {
    SqlValue::Text(s.to_string())
}

pub(crate) fn opt(v: Option<i64>) -> SqlValue {
    v.map_or(SqlValue::Null, SqlValue::Integer)
}

/// A run's status.
pub mod status {
    /// Being run (or to be resumed: a run found `running` after a restart is replayed).
    pub const RUNNING: &str = "running";
    /// Suspended until its wake time (a sleep, or the backoff before a retry).
    pub const SLEEPING: &str = "sleeping";
    /// Suspended until an event, an answer or a deadline.
    pub const WAITING: &str = "waiting";
    /// Finished with an output.
    pub const COMPLETED: &str = "completed";
    /// Finished with an error.
    pub const FAILED: &str = "failed";
    /// Cancelled.
    pub const CANCELLED: &str = "cancelled";

    /// Whether a run in `s` has finished.
    pub fn finished(s: &str) -> bool {
        matches!(s, COMPLETED | FAILED | CANCELLED)
    }
}

/// One run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Its id.
    pub id: String,
    /// The workflow's name.
    pub name: String,
    /// See [`status`].
    pub status: String,
    /// Its input (JSON).
    pub input: String,
    /// Its output (JSON), once completed.
    pub output: Option<String>,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// The code of that.
    pub error_code: Option<String>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
    /// When the alarm wakes it.
    pub wake_at: Option<i64>,
    /// Finished at.
    pub finished_at: Option<i64>,
    /// Steps recorded.
    pub steps: i64,
    /// The event pattern it waits for.
    pub wait_pattern: Option<String>,
}

/// The columns [`RunRow::read`] takes, in order.
pub const RUN_COLUMNS: &str =
    "id, name, status, input, output, error, error_code, created_at, updated_at, wake_at, finished_at, steps, wait_pattern";

impl RunRow {
    /// A row selected with [`RUN_COLUMNS`].
    pub fn read(r: &[SqlValue]) -> Result<RunRow, RpcError> {
        if r.len() < 13 {
            return Err(bad_row("run"));
        }
        Ok(RunRow {
            id: text(r, 0),
            name: text(r, 1),
            status: text(r, 2),
            input: text(r, 3),
            output: opt_text(r, 4),
            error: opt_text(r, 5),
            error_code: opt_text(r, 6),
            created_at: int(r, 7),
            updated_at: int(r, 8),
            wake_at: opt_int(r, 9),
            finished_at: opt_int(r, 10),
            steps: int(r, 11),
            wait_pattern: opt_text(r, 12),
        })
    }

    /// The run `id`, if there is one.
    pub fn load(sql: &dyn Sql, id: &str) -> Result<Option<RunRow>, RpcError> {
        let rows = sql.query(&format!("SELECT {RUN_COLUMNS} FROM dotdo_wf_runs WHERE id = ?"), &[t(id)])?;
        rows.first().map(|r| RunRow::read(r)).transpose()
    }

    /// Fills a `RunInfo`.
    pub fn fill(&self, mut b: run_info::Builder<'_>) {
        b.set_id(&self.id);
        b.set_name(&self.name);
        b.set_status(&self.status);
        b.set_input(&self.input);
        b.set_output(self.output.as_deref().unwrap_or("null"));
        b.set_error(self.error.as_deref().unwrap_or(""));
        b.set_error_code(self.error_code.as_deref().unwrap_or(""));
        b.set_created_at(self.created_at);
        b.set_updated_at(self.updated_at);
        b.set_wake_at(if status::finished(&self.status) || self.status == status::RUNNING {
            0
        } else {
            self.wake_at.unwrap_or(0)
        });
        b.set_steps(u32::try_from(self.steps).unwrap_or(u32::MAX));
    }
}

/// One recorded step of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    /// Its key (its name, `name#2` for the second of that name).
    pub key: String,
    /// Its position in the run.
    pub seq: i64,
    /// What it is (`step`, `sleep`, `event`...).
    pub kind: String,
    /// `running`, `retrying`, `waiting`, `completed` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// The cascade tier that answered.
    pub tier: String,
    /// First started.
    pub started_at: i64,
    /// Finished (0: not yet).
    pub finished_at: i64,
    /// Its result (JSON), once completed.
    pub result: Option<String>,
    /// Its last error.
    pub error: String,
    /// That error's code.
    pub error_code: String,
    /// When the next attempt may run.
    pub retry_at: Option<i64>,
    /// Kind-specific state (JSON): a sleep's wake time, a wait's cursor and deadline.
    pub state: Option<String>,
}

const STEP_COLUMNS: &str =
    "key, seq, kind, status, attempts, tier, started_at, finished_at, result, error, error_code, retry_at, state";

impl StepRow {
    fn read(r: &[SqlValue]) -> Result<StepRow, RpcError> {
        if r.len() < 13 {
            return Err(bad_row("step"));
        }
        Ok(StepRow {
            key: text(r, 0),
            seq: int(r, 1),
            kind: text(r, 2),
            status: text(r, 3),
            attempts: int(r, 4),
            tier: text(r, 5),
            started_at: int(r, 6),
            finished_at: int(r, 7),
            result: opt_text(r, 8),
            error: text(r, 9),
            error_code: text(r, 10),
            retry_at: opt_int(r, 11),
            state: opt_text(r, 12),
        })
    }

    /// Every step of run `run`, in order.
    pub fn all(sql: &dyn Sql, run: &str) -> Result<Vec<StepRow>, RpcError> {
        let rows =
            sql.query(&format!("SELECT {STEP_COLUMNS} FROM dotdo_wf_steps WHERE run = ? ORDER BY seq"), &[t(run)])?;
        rows.iter().map(|r| StepRow::read(r)).collect()
    }

    /// Writes the step (inserted or replaced).
    pub fn save(&self, sql: &dyn Sql, run: &str) -> Result<(), RpcError> {
        sql.execute(
            "INSERT OR REPLACE INTO dotdo_wf_steps (run, key, seq, kind, status, attempts, tier, started_at,
                finished_at, result, error, error_code, retry_at, state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            &[
                t(run),
                t(&self.key),
                SqlValue::Integer(self.seq),
                t(&self.kind),
                t(&self.status),
                SqlValue::Integer(self.attempts),
                t(&self.tier),
                SqlValue::Integer(self.started_at),
                SqlValue::Integer(self.finished_at),
                self.result.as_deref().map_or(SqlValue::Null, t),
                t(&self.error),
                t(&self.error_code),
                opt(self.retry_at),
                self.state.as_deref().map_or(SqlValue::Null, t),
            ],
        )?;
        Ok(())
    }

    /// Bytes this step adds to its run's history.
    pub fn size(&self) -> usize {
        self.key.len()
            + self.result.as_ref().map_or(0, String::len)
            + self.error.len()
            + self.state.as_ref().map_or(0, String::len)
            + 64
    }

    /// Fills a `StepInfo`.
    pub fn fill(&self, mut b: step_info::Builder<'_>) {
        b.set_name(&self.key);
        b.set_kind(&self.kind);
        b.set_status(&self.status);
        b.set_attempts(u32::try_from(self.attempts).unwrap_or(u32::MAX));
        b.set_tier(&self.tier);
        b.set_started_at(self.started_at);
        b.set_finished_at(self.finished_at);
        b.set_result(self.result.as_deref().unwrap_or("null"));
        b.set_error(&self.error);
        b.set_error_code(&self.error_code);
    }
}
