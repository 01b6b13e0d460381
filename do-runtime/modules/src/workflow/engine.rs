//! The workflow engine of one object: starts runs, drives each to its end or to its
//! next suspension, wakes suspended runs from the alarm, events and answers, resolves
//! `result()` waiters, cancels, enforces limits and prunes finished runs.

use super::ai::Ai;
use super::flow::{Flow, RunState};
use super::store::{self, int, status, t, text, RunRow, StepRow, RUN_COLUMNS};
use super::{check_name, outbox, WorkflowFn};
use crate::class::Peers;
use crate::events::{Event, EventHub, Pattern};
use crate::host::{Alarm, Env, Sql, SqlValue};
use futures::channel::oneshot;
use futures::FutureExt;
use rpc_core::{Code, RpcError};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::{Rc, Weak};
use std::task::Poll;
use std::time::Duration;

/// How long a run being driven holds its place in the alarm: if the process dies, the
/// alarm wakes the object this long after and the run is replayed.
pub const LEASE_MS: i64 = 10_000;

/// Most bytes of runs (inputs and outputs) or approvals one list answers.
pub const MAX_LIST_BYTES: usize = 4 << 20;

/// Bounds on an object's workflows; past one, a clear error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowLimits {
    /// Steps one run may record (past it, the step is LIMIT_EXCEEDED, which fails the
    /// run unless the workflow handles it).
    pub max_steps: usize,
    /// Bytes of history (step results, errors, state) one run may record.
    pub max_history_bytes: usize,
    /// Bytes of one step's result, a run's input and its output.
    pub max_result_bytes: usize,
    /// Runs not yet finished at once, per object (`start` is LIMIT_EXCEEDED past it).
    pub max_active_runs: usize,
    /// How long a finished run's history is kept before it is pruned.
    pub keep_finished: Duration,
}

impl Default for WorkflowLimits {
    /// 1,000 steps and 8 MiB of history per run, 1 MiB per result, 1,000 unfinished
    /// runs per object, finished runs kept 7 days.
    fn default() -> Self {
        WorkflowLimits {
            max_steps: 1000,
            max_history_bytes: 8 << 20,
            max_result_bytes: crate::storage::things::MAX_DOC_BYTES,
            max_active_runs: 1000,
            keep_finished: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What the engine needs from its object.
pub struct EngineParts {
    /// The object's database.
    pub sql: Rc<dyn Sql>,
    /// Time, randomness, background work.
    pub env: Rc<dyn Env>,
    /// Its events.
    pub hub: Rc<EventHub>,
    /// The workflows' side of the object's alarm.
    pub alarm: Rc<dyn Alarm>,
    /// The other objects of its namespace (durable calls).
    pub peers: Rc<dyn Peers>,
    /// The model of cascades' AI tiers, if the host has one.
    pub ai: Option<Rc<dyn Ai>>,
    /// The object's id (in idempotency keys).
    pub object_id: String,
    /// Its limits.
    pub limits: WorkflowLimits,
}

/// The workflow engine of one object.
pub struct Engine {
    pub(crate) sql: Rc<dyn Sql>,
    pub(crate) env: Rc<dyn Env>,
    pub(crate) hub: Rc<EventHub>,
    alarm: Rc<dyn Alarm>,
    pub(crate) peers: Rc<dyn Peers>,
    pub(crate) ai: Option<Rc<dyn Ai>>,
    pub(crate) object_id: String,
    pub(crate) limits: WorkflowLimits,
    workflows: RefCell<BTreeMap<String, WorkflowFn>>,
    active: RefCell<HashMap<String, Rc<RunState>>>,
    waiters: RefCell<HashMap<String, Vec<ResultWaiter>>>,
    /// Runs suspended until an event matching their pattern.
    watching: RefCell<HashMap<String, Pattern>>,
    /// Outbox keys being sent now.
    pub(crate) sending: RefCell<HashSet<String>>,
    resumed: Cell<bool>,
    this: Weak<Engine>,
}

/// Whoever waits for a run's result.
type ResultWaiter = oneshot::Sender<Result<String, RpcError>>;

/// A run ready to be driven: its state, its workflow and its input.
type Prepared = (Rc<RunState>, WorkflowFn, serde_json::Value);

enum Outcome {
    Done(Result<serde_json::Value, RpcError>),
    Suspended,
    Cancelled,
}

impl Engine {
    /// The engine over `parts`: migrates its tables and watches the object's events.
    pub fn new(parts: EngineParts) -> Result<Rc<Engine>, RpcError> {
        store::migrate(&*parts.sql)?;
        let engine = Rc::new_cyclic(|this| Engine {
            sql: parts.sql,
            env: parts.env,
            hub: parts.hub,
            alarm: parts.alarm,
            peers: parts.peers,
            ai: parts.ai,
            object_id: parts.object_id,
            limits: parts.limits,
            workflows: RefCell::default(),
            active: RefCell::default(),
            waiters: RefCell::default(),
            watching: RefCell::default(),
            sending: RefCell::default(),
            resumed: Cell::new(false),
            this: this.clone(),
        });
        let weak = Rc::downgrade(&engine);
        engine.hub.watch(Rc::new(move |e: &Event| {
            if let Some(engine) = weak.upgrade() {
                engine.on_event(e);
            }
        }));
        Ok(engine)
    }

    fn me(&self) -> Option<Rc<Engine>> {
        self.this.upgrade()
    }

    /// Registers the workflow `name`; INVALID_ARGUMENT for a bad name, CONFLICT for one
    /// registered already.
    pub fn register(&self, name: &str, f: WorkflowFn) -> Result<(), RpcError> {
        check_name(name)?;
        let mut w = self.workflows.borrow_mut();
        if w.contains_key(name) {
            return Err(RpcError::new(Code::Conflict, format!("workflow {name:?} is registered twice")));
        }
        w.insert(name.to_string(), f);
        Ok(())
    }

    /// The registered workflows' names.
    pub fn names(&self) -> Vec<String> {
        self.workflows.borrow().keys().cloned().collect()
    }

    /// Picks up where the object left off (call once its workflows are registered):
    /// runs found `running` or `waiting` are replayed (a waiting one looks for its event
    /// or answer again, and waits on), the alarm is set.
    pub fn resume(&self) -> Result<(), RpcError> {
        if self.resumed.replace(true) {
            return Ok(());
        }
        let rows = self
            .sql
            .query("SELECT id, status, wait_pattern FROM dotdo_wf_runs WHERE status IN ('running', 'waiting')", &[])?;
        // Waiting runs too: an event or an answer may have come while the object was
        // down (or its wake-up was lost with the process); the replay looks again.
        for r in rows {
            self.drive(&text(&r, 0));
        }
        self.rearm()
    }

    /// Starts the workflow `name` with `input` (JSON text; empty is `null`) as run `id`
    /// (empty: a new id). An id already used answers that run, unless it is another
    /// workflow's (CONFLICT). NOT_FOUND for a workflow the class does not have,
    /// INVALID_ARGUMENT for input that is not JSON, LIMIT_EXCEEDED past the limits.
    pub fn start(&self, name: &str, input: &str, id: &str) -> Result<String, RpcError> {
        if !self.workflows.borrow().contains_key(name) {
            let names = self.names();
            return Err(RpcError::new(
                Code::NotFound,
                format!(
                    "no workflow {name:?} here (this object's class has {})",
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                ),
            ));
        }
        let input = if input.trim().is_empty() { "null" } else { input };
        serde_json::from_str::<serde_json::Value>(input)
            .map_err(|e| RpcError::invalid_argument(format!("workflow input is not JSON: {e}")))?;
        if input.len() > self.limits.max_result_bytes {
            return Err(RpcError::new(
                Code::LimitExceeded,
                format!("workflow input of {} bytes is over {}", input.len(), self.limits.max_result_bytes),
            ));
        }
        let now = self.env.now_ms();
        let id = if id.is_empty() {
            format!("r{now:011x}{:08x}", self.env.random_u64() as u32)
        } else {
            check_run_id(id)?;
            id.to_string()
        };
        if let Some(existing) = RunRow::load(&*self.sql, &id)? {
            if existing.name != name {
                return Err(RpcError::new(
                    Code::Conflict,
                    format!("run {id:?} is a run of workflow {:?}", existing.name),
                ));
            }
            return Ok(id);
        }
        let active = self
            .sql
            .query("SELECT COUNT(*) FROM dotdo_wf_runs WHERE status IN ('running', 'sleeping', 'waiting')", &[])?;
        if usize::try_from(active.first().map_or(0, |r| int(r, 0))).unwrap_or(0) >= self.limits.max_active_runs {
            return Err(RpcError::new(
                Code::LimitExceeded,
                format!("an object runs at most {} unfinished workflow runs", self.limits.max_active_runs),
            ));
        }
        let mut event = None;
        self.sql.transaction(&mut || {
            self.sql.execute(
                "INSERT INTO dotdo_wf_runs (id, name, status, input, created_at, updated_at, wake_at)
                 VALUES (?, ?, 'running', ?, ?, ?, ?)",
                &[
                    t(&id),
                    t(name),
                    t(input),
                    SqlValue::Integer(now),
                    SqlValue::Integer(now),
                    SqlValue::Integer(now.saturating_add(LEASE_MS)),
                ],
            )?;
            event =
                Some(self.hub.record("Workflow.started", &serde_json::json!({"run": id, "name": name}).to_string())?);
            Ok(())
        })?;
        if let Some(e) = event {
            self.hub.publish(&e);
        }
        self.drive(&id);
        Ok(id)
    }

    /// Drives run `id` (replaying it from its record) unless it is being driven now, in
    /// which case it goes round again when it suspends.
    pub(crate) fn drive(&self, id: &str) {
        if let Some(s) = self.active.borrow().get(id) {
            s.rewake.set(true);
            return;
        }
        let Some(me) = self.me() else { return };
        match self.prepare(&me, id) {
            Ok(Some((state, f, input))) => {
                self.active.borrow_mut().insert(id.to_string(), state.clone());
                self.env.spawn(Box::pin(async move { me.run(state, f, input).await }));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(run = %id, code = e.code.as_str(), error = %e.message, "cannot resume a workflow run");
                // Tried again a lease later, not at once.
                let later = self.env.now_ms().saturating_add(LEASE_MS);
                let _ = self.sql.execute(
                    "UPDATE dotdo_wf_runs SET wake_at = ? WHERE id = ? AND wake_at IS NOT NULL",
                    &[SqlValue::Integer(later), t(id)],
                );
                let _ = self.rearm();
            }
        }
    }

    fn prepare(&self, me: &Rc<Engine>, id: &str) -> Result<Option<Prepared>, RpcError> {
        let Some(row) = RunRow::load(&*self.sql, id)? else { return Ok(None) };
        if status::finished(&row.status) {
            return Ok(None);
        }
        let Some(f) = self.workflows.borrow().get(&row.name).cloned() else {
            let error = RpcError::new(Code::NotFound, format!("workflow {:?} is no longer registered", row.name));
            self.finish(id, &row.name, status::FAILED, None, Some(&error))?;
            return Ok(None);
        };
        let input = serde_json::from_str(&row.input).unwrap_or(serde_json::Value::Null);
        let steps = StepRow::all(&*self.sql, id)?;
        let now = self.env.now_ms();
        self.sql.execute(
            "UPDATE dotdo_wf_runs SET status = 'running', wake_at = ?, wait_pattern = NULL, updated_at = ? WHERE id = ?",
            &[SqlValue::Integer(now.saturating_add(LEASE_MS)), SqlValue::Integer(now), t(id)],
        )?;
        self.watching.borrow_mut().remove(id);
        self.rearm()?;
        Ok(Some((RunState::new(id, &row.name, me.clone(), steps), f, input)))
    }

    async fn run(self: Rc<Self>, state: Rc<RunState>, f: WorkflowFn, input: serde_json::Value) {
        let outcome = {
            let flow = Flow::new(state.clone());
            let mut fut = std::pin::pin!(AssertUnwindSafe(f(flow, input)).catch_unwind());
            std::future::poll_fn(|cx| {
                *state.waker.borrow_mut() = Some(cx.waker().clone());
                if state.cancelled.get() {
                    return Poll::Ready(Outcome::Cancelled);
                }
                let polled = fut.as_mut().poll(cx);
                if state.aborted.get() {
                    return Poll::Ready(Outcome::Suspended);
                }
                match polled {
                    Poll::Ready(Ok(r)) => Poll::Ready(Outcome::Done(r)),
                    Poll::Ready(Err(p)) => {
                        let message = crate::class::route::panic_message(&*p);
                        tracing::error!(run = %state.id, workflow = %state.name, panic = %message, "a workflow panicked");
                        Poll::Ready(Outcome::Done(Err(RpcError::new(
                            Code::Internal,
                            format!("workflow {} panicked", state.name),
                        ))))
                    }
                    Poll::Pending if state.cancelled.get() => Poll::Ready(Outcome::Cancelled),
                    Poll::Pending if state.suspended.get() => Poll::Ready(Outcome::Suspended),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        };
        self.active.borrow_mut().remove(&state.id);
        let settled = match outcome {
            Outcome::Done(Ok(v)) => match serde_json::to_string(&v) {
                Ok(out) if out.len() <= self.limits.max_result_bytes => {
                    self.finish(&state.id, &state.name, status::COMPLETED, Some(&out), None)
                }
                Ok(out) => self.finish(
                    &state.id,
                    &state.name,
                    status::FAILED,
                    None,
                    Some(&RpcError::new(
                        Code::LimitExceeded,
                        format!("the output of {} bytes is over {}", out.len(), self.limits.max_result_bytes),
                    )),
                ),
                Err(e) => self.finish(
                    &state.id,
                    &state.name,
                    status::FAILED,
                    None,
                    Some(&RpcError::new(Code::Internal, format!("the output is not JSON: {e}"))),
                ),
            },
            Outcome::Done(Err(e)) => self.finish(&state.id, &state.name, status::FAILED, None, Some(&e)),
            Outcome::Suspended if state.rewake.get() && !state.aborted.get() => {
                self.drive(&state.id);
                Ok(())
            }
            Outcome::Suspended | Outcome::Cancelled => Ok(()),
        };
        if let Err(e) = settled {
            tracing::warn!(run = %state.id, code = e.code.as_str(), error = %e.message, "cannot record a run's end");
        }
        if self.sql.durable().await.is_err() {
            tracing::warn!(run = %state.id, "the commit of a run's end failed: it is replayed at the next wake");
        }
        if let Err(e) = self.rearm() {
            tracing::warn!(code = e.code.as_str(), error = %e.message, "cannot set the workflows' alarm");
        }
    }

    /// Ends run `id` as `status_` (once: a finished run stays as it is), records its
    /// event and answers whoever waits for its result.
    fn finish(
        &self,
        id: &str,
        name: &str,
        status_: &str,
        output: Option<&str>,
        error: Option<&RpcError>,
    ) -> Result<(), RpcError> {
        let now = self.env.now_ms();
        let mut event = None;
        self.sql.transaction(&mut || {
            let n = self.sql.execute(
                "UPDATE dotdo_wf_runs SET status = ?, output = ?, error = ?, error_code = ?, updated_at = ?,
                 finished_at = ?, wake_at = NULL, wait_pattern = NULL,
                 steps = (SELECT COUNT(*) FROM dotdo_wf_steps WHERE run = ?7)
                 WHERE id = ?7 AND status NOT IN ('completed', 'failed', 'cancelled')",
                &[
                    t(status_),
                    output.map_or(SqlValue::Null, t),
                    error.map_or(SqlValue::Null, |e| t(&e.message)),
                    error.map_or(SqlValue::Null, |e| t(e.code.as_str())),
                    SqlValue::Integer(now),
                    SqlValue::Integer(now),
                    t(id),
                ],
            )?;
            if n == 0 {
                return Ok(());
            }
            self.sql.execute(
                "UPDATE dotdo_wf_approvals SET status = 'cancelled' WHERE run = ? AND status = 'pending'",
                &[t(id)],
            )?;
            let data = match (status_, error) {
                (status::COMPLETED, _) => serde_json::json!({"run": id, "name": name,
                    "output": output.and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())}),
                (_, Some(e)) => {
                    serde_json::json!({"run": id, "name": name, "code": e.code.as_str(), "error": e.message})
                }
                _ => serde_json::json!({"run": id, "name": name}),
            };
            let verb = match status_ {
                status::COMPLETED => "completed",
                status::CANCELLED => "cancelled",
                _ => "failed",
            };
            event = Some(self.hub.record(&format!("Workflow.{verb}"), &data.to_string())?);
            Ok(())
        })?;
        let Some(event) = event else { return Ok(()) };
        self.hub.publish(&event);
        self.watching.borrow_mut().remove(id);
        let answer = match (output, error) {
            (Some(o), _) => Ok(o.to_string()),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Err(RpcError::new(Code::Internal, "a run ended with neither output nor error")),
        };
        let waiters = self.waiters.borrow_mut().remove(id).unwrap_or_default();
        for w in waiters {
            let _ = w.send(answer.clone());
        }
        Ok(())
    }

    /// The run `id`; NOT_FOUND when there is none (or it was pruned).
    pub fn run_row(&self, id: &str) -> Result<RunRow, RpcError> {
        RunRow::load(&*self.sql, id)?.ok_or_else(|| RpcError::new(Code::NotFound, format!("no workflow run {id:?}")))
    }

    /// Run `id`'s steps, in order.
    pub fn history(&self, id: &str) -> Result<Vec<StepRow>, RpcError> {
        self.run_row(id)?;
        StepRow::all(&*self.sql, id)
    }

    /// Runs matching `filter` (`{"name", "status", "limit"}`), newest first: at most
    /// `limit` (default 100, at most 1,000) and no more than [`MAX_LIST_BYTES`] of
    /// inputs and outputs (always at least one).
    pub fn list(&self, filter: &str) -> Result<Vec<RunRow>, RpcError> {
        let f: serde_json::Value = if filter.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(filter).map_err(|e| RpcError::invalid_argument(format!("filter is not JSON: {e}")))?
        };
        let field = |k: &str| f.get(k).and_then(serde_json::Value::as_str).unwrap_or("").to_string();
        if !(f.is_null() || f.is_object()) {
            return Err(RpcError::invalid_argument("a run filter is an object: {\"name\", \"status\", \"limit\"}"));
        }
        let limit = f.get("limit").and_then(serde_json::Value::as_u64).unwrap_or(100).clamp(1, 1000);
        let rows = self.sql.query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM dotdo_wf_runs WHERE (?1 = '' OR name = ?1) AND (?2 = '' OR status = ?2)
                 ORDER BY created_at DESC, id DESC LIMIT ?3"
            ),
            &[t(&field("name")), t(&field("status")), SqlValue::Integer(limit as i64)],
        )?;
        let mut runs = Vec::new();
        let mut bytes = 0usize;
        for r in &rows {
            let run = RunRow::read(r)?;
            bytes += run.input.len() + run.output.as_ref().map_or(0, String::len) + 256;
            if !runs.is_empty() && bytes > MAX_LIST_BYTES {
                break;
            }
            runs.push(run);
        }
        Ok(runs)
    }

    /// Completes when run `id` finishes: its output (JSON), or its error.
    pub async fn result(&self, id: &str) -> Result<String, RpcError> {
        let row = self.run_row(id)?;
        match row.status.as_str() {
            status::COMPLETED => return Ok(row.output.unwrap_or_else(|| "null".into())),
            status::FAILED | status::CANCELLED => return Err(row_error(&row)),
            _ => {}
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = self.waiters.borrow_mut();
            let list = waiters.entry(id.to_string()).or_default();
            // Callers that gave up (their call timed out) are dropped here.
            list.retain(|w| !w.is_canceled());
            list.push(tx);
        }
        rx.await.unwrap_or_else(|_| Err(RpcError::new(Code::Disconnected, "the object closed before the run ended")))
    }

    /// Cancels run `id`: false when it had finished already. A run being driven stops
    /// at its next await; its pending approvals are cancelled.
    pub fn cancel(&self, id: &str) -> Result<bool, RpcError> {
        let row = self.run_row(id)?;
        if status::finished(&row.status) {
            return Ok(false);
        }
        let error = RpcError::new(Code::Cancelled, format!("run {id} was cancelled"));
        self.finish(id, &row.name, status::CANCELLED, None, Some(&error))?;
        if let Some(state) = self.active.borrow().get(id) {
            state.cancelled.set(true);
            if let Some(w) = state.waker.borrow_mut().take() {
                w.wake();
            }
        }
        self.rearm()?;
        Ok(true)
    }

    /// Marks run `id` suspended as `status_` until `wake_at` (or an event matching
    /// `pattern`).
    pub(crate) fn suspend(
        &self,
        id: &str,
        status_: &str,
        wake_at: Option<i64>,
        pattern: Option<&str>,
    ) -> Result<(), RpcError> {
        self.sql.execute(
            "UPDATE dotdo_wf_runs SET status = ?, wake_at = ?, wait_pattern = ?, updated_at = ?
             WHERE id = ? AND status NOT IN ('completed', 'failed', 'cancelled')",
            &[
                t(status_),
                store::opt(wake_at),
                pattern.map_or(SqlValue::Null, t),
                SqlValue::Integer(self.env.now_ms()),
                t(id),
            ],
        )?;
        if let Some(p) = pattern {
            self.watching.borrow_mut().insert(id.to_string(), Pattern::parse(p)?);
        }
        self.rearm()
    }

    /// Wakes run `id` (an answer came, an event matched).
    pub(crate) fn wake(&self, id: &str) {
        let Some(me) = self.me() else { return };
        let id = id.to_string();
        self.env.spawn(Box::pin(async move { me.drive(&id) }));
    }

    fn on_event(&self, e: &Event) {
        let woken: Vec<String> = {
            let mut watching = self.watching.borrow_mut();
            let ids: Vec<String> =
                watching.iter().filter(|(_, p)| p.matches(&e.noun, &e.verb)).map(|(id, _)| id.clone()).collect();
            for id in &ids {
                watching.remove(id);
            }
            ids
        };
        for id in woken {
            self.wake(&id);
        }
    }

    /// The alarm fired: wakes the runs that are due, sends what the outbox has due,
    /// prunes finished runs past their keep, sets the alarm again.
    pub fn on_alarm(&self) -> Result<(), RpcError> {
        let now = self.env.now_ms();
        let due = self.sql.query(
            "SELECT id FROM dotdo_wf_runs WHERE wake_at IS NOT NULL AND wake_at <= ?
             AND status IN ('running', 'sleeping', 'waiting') ORDER BY wake_at LIMIT 1000",
            &[SqlValue::Integer(now)],
        )?;
        for r in due {
            let id = text(&r, 0);
            if self.active.borrow().contains_key(&id) {
                self.sql.execute(
                    "UPDATE dotdo_wf_runs SET wake_at = ? WHERE id = ?",
                    &[SqlValue::Integer(now.saturating_add(LEASE_MS)), t(&id)],
                )?;
            } else {
                self.drive(&id);
            }
        }
        if let Some(me) = self.me() {
            outbox::deliver_due(&me, now)?;
        }
        self.prune(now)?;
        self.rearm()
    }

    /// Deletes finished runs (their steps and approvals), received call keys and failed
    /// delayed sends older than [`WorkflowLimits::keep_finished`].
    pub fn prune(&self, now: i64) -> Result<usize, RpcError> {
        let keep = i64::try_from(self.limits.keep_finished.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(keep);
        let old = self.sql.query(
            "SELECT id FROM dotdo_wf_runs WHERE finished_at IS NOT NULL AND finished_at <= ? LIMIT 500",
            &[SqlValue::Integer(cutoff)],
        )?;
        let n = old.len();
        self.sql.transaction(&mut || {
            for r in &old {
                let id = t(&text(r, 0));
                self.sql.execute("DELETE FROM dotdo_wf_steps WHERE run = ?", std::slice::from_ref(&id))?;
                self.sql.execute("DELETE FROM dotdo_wf_approvals WHERE run = ?", std::slice::from_ref(&id))?;
                self.sql.execute("DELETE FROM dotdo_wf_runs WHERE id = ?", std::slice::from_ref(&id))?;
            }
            self.sql.execute("DELETE FROM dotdo_delivered WHERE at <= ?", &[SqlValue::Integer(cutoff)])?;
            self.sql.execute(
                "DELETE FROM dotdo_outbox WHERE status = 'failed' AND created_at <= ?",
                &[SqlValue::Integer(cutoff)],
            )?;
            Ok(())
        })?;
        Ok(n)
    }

    /// Sets the workflows' side of the alarm to the soonest wake, outbox send or prune.
    pub(crate) fn rearm(&self) -> Result<(), RpcError> {
        let keep = i64::try_from(self.limits.keep_finished.as_millis()).unwrap_or(i64::MAX);
        let rows = self.sql.query(
            "SELECT (SELECT MIN(wake_at) FROM dotdo_wf_runs WHERE wake_at IS NOT NULL),
                    (SELECT MIN(due_at) FROM dotdo_outbox WHERE status = 'pending'),
                    (SELECT MIN(finished_at) FROM dotdo_wf_runs WHERE finished_at IS NOT NULL),
                    (SELECT MIN(at) FROM dotdo_delivered),
                    (SELECT MIN(created_at) FROM dotdo_outbox WHERE status = 'failed')",
            &[],
        )?;
        let r = rows.first().cloned().unwrap_or_default();
        // Multi-argument MIN in SQL is NULL when any is: the oldest is taken here.
        let oldest = (2..5).filter_map(|i| store::opt_int(&r, i)).min();
        let prune = oldest.map(|f| f.saturating_add(keep));
        let next = [store::opt_int(&r, 0), store::opt_int(&r, 1), prune].into_iter().flatten().min();
        self.alarm.set_alarm(next);
        Ok(())
    }

    /// Runs being driven in memory now.
    pub fn active_runs(&self) -> usize {
        self.active.borrow().len()
    }
}

/// The error a failed or cancelled run answers with.
pub(crate) fn row_error(row: &RunRow) -> RpcError {
    let code = row.error_code.as_deref().and_then(Code::parse).unwrap_or(Code::Internal);
    RpcError::new(code, row.error.clone().unwrap_or_else(|| format!("run {} {}", row.id, row.status)))
}

/// A run id a caller chose: 1 to 128 bytes of letters, digits, `_`, `-`, `.` and `:`.
fn check_run_id(id: &str) -> Result<(), RpcError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(RpcError::invalid_argument(format!(
            "{id:?} is not a run id (1 to 128 letters, digits, '_', '-', '.' or ':')"
        )))
    }
}
