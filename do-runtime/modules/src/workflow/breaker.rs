//! Circuit breakers, one per dependency, kept in the object's SQLite (a restart does
//! not reset one). Closed, a breaker counts failures in a sliding window; at the limit
//! it opens and calls fail fast with UNAVAILABLE; after the cooldown one call goes
//! through as a probe (half-open): its success closes the breaker, its failure opens it
//! again. A probe that never reports (the process died) is given up after a cooldown.

use super::store::{int, t, text};
use crate::host::{Sql, SqlValue};
use rpc_core::{Code, RpcError};
use std::time::Duration;

/// A breaker's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// The dependency's name (one breaker per name per object).
    pub name: String,
    /// Failures within `window` that open it.
    pub failures: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// How long it stays open before a probe.
    pub cooldown: Duration,
}

impl BreakerConfig {
    /// A breaker on `name`: 5 failures in a minute open it for 30 s.
    pub fn new(name: &str) -> Self {
        BreakerConfig {
            name: name.to_string(),
            failures: 5,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        }
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// One probe is out.
    HalfOpen,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "open" => State::Open,
            "half-open" => State::HalfOpen,
            _ => State::Closed,
        }
    }
}

struct Row {
    state: State,
    failures: Vec<i64>,
    opened_at: i64,
    probe_at: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn load(sql: &dyn Sql, name: &str) -> Result<Row, RpcError> {
    let rows =
        sql.query("SELECT state, failures, opened_at, probe_at FROM dotdo_breakers WHERE name = ?", &[t(name)])?;
    Ok(match rows.first() {
        None => Row { state: State::Closed, failures: Vec::new(), opened_at: 0, probe_at: 0 },
        Some(r) => Row {
            state: State::parse(&text(r, 0)),
            failures: serde_json::from_str(&text(r, 1)).unwrap_or_default(),
            opened_at: int(r, 2),
            probe_at: int(r, 3),
        },
    })
}

fn save(sql: &dyn Sql, name: &str, row: &Row) -> Result<(), RpcError> {
    sql.execute(
        "INSERT OR REPLACE INTO dotdo_breakers (name, state, failures, opened_at, probe_at) VALUES (?, ?, ?, ?, ?)",
        &[
            t(name),
            t(row.state.as_str()),
            SqlValue::Text(serde_json::to_string(&row.failures).unwrap_or_else(|_| "[]".into())),
            SqlValue::Integer(row.opened_at),
            SqlValue::Integer(row.probe_at),
        ],
    )?;
    Ok(())
}

/// The state of breaker `name` (closed when it has never been used).
pub fn state(sql: &dyn Sql, name: &str) -> Result<State, RpcError> {
    Ok(load(sql, name)?.state)
}

/// Whether a call may go out at `now`: Ok, or UNAVAILABLE (failing fast) while open or
/// while another call probes.
pub fn admit(sql: &dyn Sql, cfg: &BreakerConfig, now: i64) -> Result<(), RpcError> {
    let mut row = load(sql, &cfg.name)?;
    let cooldown = ms(cfg.cooldown);
    match row.state {
        State::Closed => Ok(()),
        State::Open if now >= row.opened_at.saturating_add(cooldown) => {
            row.state = State::HalfOpen;
            row.probe_at = now;
            save(sql, &cfg.name, &row)
        }
        State::HalfOpen if now >= row.probe_at.saturating_add(cooldown) => {
            row.probe_at = now;
            save(sql, &cfg.name, &row)
        }
        State::Open | State::HalfOpen => Err(RpcError::new(
            Code::Unavailable,
            format!("the circuit breaker of {:?} is open (until {} ms after it opened)", cfg.name, cooldown),
        )),
    }
}

/// Records a call's success: the breaker closes.
pub fn success(sql: &dyn Sql, cfg: &BreakerConfig) -> Result<(), RpcError> {
    let row = load(sql, &cfg.name)?;
    if row.state == State::Closed && row.failures.is_empty() {
        return Ok(());
    }
    save(sql, &cfg.name, &Row { state: State::Closed, failures: Vec::new(), opened_at: 0, probe_at: 0 })
}

/// Records a call's failure at `now`: a failed probe opens the breaker again, and
/// `failures` failures within the window open a closed one.
pub fn failure(sql: &dyn Sql, cfg: &BreakerConfig, now: i64) -> Result<(), RpcError> {
    let mut row = load(sql, &cfg.name)?;
    let since = now.saturating_sub(ms(cfg.window));
    row.failures.retain(|at| *at > since);
    row.failures.push(now);
    let limit = usize::try_from(cfg.failures.max(1)).unwrap_or(usize::MAX);
    if row.failures.len() > limit {
        let drop = row.failures.len() - limit;
        row.failures.drain(..drop);
    }
    if row.state == State::HalfOpen || (row.state == State::Closed && row.failures.len() >= limit) {
        row.state = State::Open;
        row.opened_at = now;
    }
    save(sql, &cfg.name, &row)
}
