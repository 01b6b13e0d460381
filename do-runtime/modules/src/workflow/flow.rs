//! [`Flow`]: what a running workflow calls. Every call is keyed by its name (the n-th
//! call of one name is `name#n`), recorded in the run's journal, and answered from the
//! journal when the run replays. Calls must come in the same order on every replay
//! (branch on recorded values only: inputs, step results, [`Flow::now`],
//! [`Flow::random`]).

use super::approval::{self, Decision};
use super::engine::Engine;
use super::retry::{RetryPolicy, StepOptions};
use super::store::{status, StepRow};
use super::{breaker, outbox};
use crate::events::Pattern;
use rpc_core::{Code, RpcError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

/// Step statuses.
pub(crate) mod step {
    pub const RUNNING: &str = "running";
    pub const RETRYING: &str = "retrying";
    pub const WAITING: &str = "waiting";
    pub const COMPLETED: &str = "completed";
    pub const FAILED: &str = "failed";
}

/// The state of one run while it is driven.
pub(crate) struct RunState {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) engine: Rc<Engine>,
    journal: RefCell<HashMap<String, StepRow>>,
    seen: RefCell<HashMap<String, u32>>,
    next_seq: Cell<i64>,
    history: Cell<usize>,
    pub(crate) suspended: Cell<bool>,
    /// The drive ends without settling the run (the host failed under it, or the
    /// class instance is gone): the lease replays it later.
    pub(crate) aborted: Cell<bool>,
    pub(crate) cancelled: Cell<bool>,
    pub(crate) rewake: Cell<bool>,
    pub(crate) waker: RefCell<Option<Waker>>,
    /// What this drive's suspensions asked for so far (a run may await several at
    /// once): the soonest wake and the event pattern.
    wake: Cell<Option<i64>>,
    pattern: RefCell<Option<String>>,
}

impl RunState {
    pub(crate) fn new(id: &str, name: &str, engine: Rc<Engine>, steps: Vec<StepRow>) -> Rc<RunState> {
        let next_seq = steps.iter().map(|s| s.seq).max().unwrap_or(0) + 1;
        let history = steps.iter().map(StepRow::size).sum();
        Rc::new(RunState {
            id: id.to_string(),
            name: name.to_string(),
            engine,
            journal: RefCell::new(steps.into_iter().map(|s| (s.key.clone(), s)).collect()),
            seen: RefCell::default(),
            next_seq: Cell::new(next_seq),
            history: Cell::new(history),
            suspended: Cell::new(false),
            aborted: Cell::new(false),
            cancelled: Cell::new(false),
            rewake: Cell::new(false),
            waker: RefCell::new(None),
            wake: Cell::new(None),
            pattern: RefCell::new(None),
        })
    }

    /// The key of the next call named `name`.
    fn key(&self, name: &str) -> Result<String, RpcError> {
        if name.is_empty() || name.len() > 200 || name.contains('#') || name.contains('/') {
            return Err(RpcError::invalid_argument(format!(
                "{name:?} is not a step name (1 to 200 bytes, no '#' or '/')"
            )));
        }
        let mut seen = self.seen.borrow_mut();
        let n = seen.entry(name.to_string()).or_insert(0);
        *n += 1;
        Ok(if *n == 1 { name.to_string() } else { format!("{name}#{n}") })
    }

    fn recorded(&self, key: &str) -> Option<StepRow> {
        self.journal.borrow().get(key).cloned()
    }

    fn new_row(&self, key: &str, kind: &str) -> StepRow {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        StepRow {
            key: key.to_string(),
            seq,
            kind: kind.to_string(),
            status: step::RUNNING.into(),
            attempts: 0,
            tier: String::new(),
            started_at: self.engine.env.now_ms(),
            finished_at: 0,
            result: None,
            error: String::new(),
            error_code: String::new(),
            retry_at: None,
            state: None,
        }
    }

    /// Writes `row` to the journal, within the run's limits.
    fn save(&self, row: StepRow) -> Result<(), RpcError> {
        let limits = &self.engine.limits;
        let old = self.journal.borrow().get(&row.key).map(StepRow::size);
        if old.is_none() && self.journal.borrow().len() >= limits.max_steps {
            return Err(RpcError::new(
                Code::LimitExceeded,
                format!("a run records at most {} steps", limits.max_steps),
            ));
        }
        if let Some(r) = &row.result {
            if r.len() > limits.max_result_bytes {
                return Err(RpcError::new(
                    Code::LimitExceeded,
                    format!("step {} returned {} bytes, over {}", row.key, r.len(), limits.max_result_bytes),
                ));
            }
        }
        let history = self.history.get() - old.unwrap_or(0) + row.size();
        if history > limits.max_history_bytes {
            return Err(RpcError::new(
                Code::LimitExceeded,
                format!("a run's history holds at most {} bytes", limits.max_history_bytes),
            ));
        }
        row.save(&*self.engine.sql, &self.id)?;
        self.history.set(history);
        self.journal.borrow_mut().insert(row.key.clone(), row);
        Ok(())
    }

    /// Records `row` as completed with its event, and waits until that is durable. If
    /// the host cannot record it, the drive is aborted (the run replays later).
    async fn complete(&self, mut row: StepRow, event: bool) -> Result<(), RpcError> {
        let engine = &self.engine;
        row.status = step::COMPLETED.into();
        row.finished_at = engine.env.now_ms();
        row.retry_at = None;
        let (key, attempts) = (row.key.clone(), row.attempts);
        let mut recorded = None;
        let mut row = Some(row);
        let written = engine.sql.transaction(&mut || {
            if let Some(row) = row.take() {
                self.save(row)?;
            }
            engine.sql.execute(
                "UPDATE dotdo_wf_runs SET steps = ?, updated_at = ? WHERE id = ?",
                &[
                    crate::host::SqlValue::Integer(self.journal.borrow().len() as i64),
                    crate::host::SqlValue::Integer(engine.env.now_ms()),
                    super::store::t(&self.id),
                ],
            )?;
            if event {
                let data = serde_json::json!({"run": self.id, "name": self.name, "step": key, "attempts": attempts});
                recorded = Some(engine.hub.record("Workflow.stepCompleted", &data.to_string())?);
            }
            Ok(())
        });
        match written {
            // Over a limit: the workflow's to handle.
            Err(e) if e.code == Code::LimitExceeded => return Err(e),
            Err(e) => return self.abort(&e).await,
            Ok(()) => {}
        }
        if let Some(e) = recorded {
            engine.hub.publish(&e);
        }
        match engine.sql.durable().await {
            Ok(()) => Ok(()),
            Err(e) => self.abort(&e).await,
        }
    }

    /// Ends this drive without settling the run: the host failed under it (`e`).
    async fn abort<T>(&self, e: &RpcError) -> Result<T, RpcError> {
        tracing::warn!(run = %self.id, code = e.code.as_str(), error = %e.message, "a workflow run stops here and replays later");
        self.aborted.set(true);
        std::future::pending().await
    }

    /// Suspends the run as `status_` until `wake_at` (or a matching event); a second
    /// suspension in the same drive adds to the first (the sooner wake, any event).
    async fn suspend<T>(&self, status_: &str, wake_at: Option<i64>, pattern: Option<&str>) -> Result<T, RpcError> {
        let (wake, pattern, status_) = if self.suspended.get() {
            let wake = match (self.wake.get(), wake_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let pattern = match (self.pattern.borrow().clone(), pattern) {
                (Some(a), Some(b)) if a != b => Some("*".to_string()),
                (a, b) => a.or(b.map(str::to_string)),
            };
            (wake, pattern, status::WAITING)
        } else {
            (wake_at, pattern.map(str::to_string), status_)
        };
        self.wake.set(wake);
        *self.pattern.borrow_mut() = pattern.clone();
        if let Err(e) = self.engine.suspend(&self.id, status_, wake, pattern.as_deref()) {
            return self.abort(&e).await;
        }
        self.suspended.set(true);
        std::future::pending().await
    }
}

/// A recorded step must be of the kind the code asks for now.
fn check_kind(row: &StepRow, kind: &str) -> Result<(), RpcError> {
    if row.kind == kind {
        return Ok(());
    }
    Err(RpcError::new(
        Code::Internal,
        format!(
            "step {} was recorded as a {} and is now called as a {kind} (did the workflow's code change under a running run?)",
            row.key, row.kind
        ),
    ))
}

fn decode<T: DeserializeOwned>(row: &StepRow) -> Result<T, RpcError> {
    serde_json::from_str(row.result.as_deref().unwrap_or("null")).map_err(|e| {
        RpcError::new(
            Code::Internal,
            format!("the recorded result of step {} does not read as the type asked for: {e}", row.key),
        )
    })
}

fn recorded_error(row: &StepRow) -> RpcError {
    RpcError::new(Code::parse(&row.error_code).unwrap_or(Code::Internal), row.error.clone())
}

/// A run's handle on its workflow: steps, sleeps, waits, approvals, durable calls.
/// Cheap to clone.
#[derive(Clone)]
pub struct Flow {
    pub(crate) state: Rc<RunState>,
}

/// What [`Flow::wait_for_event`] waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitFor {
    /// The event pattern (`Payment.received`, `Payment.*`).
    pub pattern: String,
    /// Fields the event's data must have: `{"order": "o1", "amount.currency": "EUR"}`
    /// (dotted paths, equal values); `null` for any.
    pub filter: serde_json::Value,
    /// How long to wait; `None` for ever.
    pub timeout: Option<Duration>,
    /// Whether an event sent before the wait began counts (by default it does not).
    pub include_past: bool,
}

impl WaitFor {
    /// Waits for `pattern`, any data, for at most `timeout`.
    pub fn new(pattern: &str, timeout: Option<Duration>) -> Self {
        WaitFor { pattern: pattern.to_string(), filter: serde_json::Value::Null, timeout, include_past: false }
    }

    /// This wait, for events whose data has `filter`'s fields.
    pub fn with_filter(mut self, filter: serde_json::Value) -> Self {
        self.filter = filter;
        self
    }
}

/// The event a wait received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMatch {
    /// Its id.
    pub id: String,
    /// Its position in the object's log.
    pub seq: u64,
    /// `Noun.verb`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Its data.
    pub data: serde_json::Value,
    /// When it was sent (ms since the epoch).
    pub timestamp: i64,
}

/// Whether `data` has every field of `filter` (dotted paths).
fn matches_filter(filter: &serde_json::Value, data: &serde_json::Value) -> bool {
    let Some(fields) = filter.as_object() else { return true };
    fields.iter().all(|(path, want)| {
        let mut v = data;
        for part in path.split('.') {
            match v.get(part) {
                Some(next) => v = next,
                None => return false,
            }
        }
        v == want
    })
}

#[derive(Serialize, Deserialize)]
struct WaitState {
    since: u64,
    deadline: Option<i64>,
}

impl Flow {
    pub(crate) fn new(state: Rc<RunState>) -> Flow {
        Flow { state }
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.state.id
    }

    /// The workflow's name.
    pub fn workflow(&self) -> &str {
        &self.state.name
    }

    fn engine(&self) -> &Rc<Engine> {
        &self.state.engine
    }

    /// Runs `f` as the step `name` (with the default retries) and records its result;
    /// on replay, answers the recorded result without running `f`. `f` runs again if the
    /// process stops after it ran and before its result was recorded (at least once;
    /// its effects are once only if they are idempotent or go through [`Flow::call`]).
    pub async fn step<T, F, Fut>(&self, name: &str, f: F) -> Result<T, RpcError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, RpcError>>,
    {
        self.step_with(name, StepOptions::default(), f).await
    }

    /// [`Flow::step`] with its retry policy, timeout and breaker.
    pub async fn step_with<T, F, Fut>(&self, name: &str, options: StepOptions, f: F) -> Result<T, RpcError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, RpcError>>,
    {
        let key = self.state.key(name)?;
        self.attempt(&key, "step", &options, |_| f()).await
    }

    /// One attempt of the step `key` (or its recorded outcome).
    pub(crate) async fn attempt<T, F, Fut>(
        &self,
        key: &str,
        kind: &str,
        options: &StepOptions,
        f: F,
    ) -> Result<T, RpcError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<T, RpcError>>,
    {
        let st = &self.state;
        let engine = self.engine().clone();
        let prev = st.recorded(key);
        if let Some(r) = &prev {
            check_kind(r, kind)?;
            match r.status.as_str() {
                step::COMPLETED => return decode(r),
                step::FAILED => return Err(recorded_error(r)),
                // Found running: the process stopped during it. Past its attempts, it fails.
                step::RUNNING if r.attempts >= i64::from(options.retry.max_attempts) => {
                    let e = RpcError::new(
                        Code::Internal,
                        format!("step {key} was interrupted on each of its {} attempts", r.attempts),
                    );
                    let mut row = r.clone();
                    row.status = step::FAILED.into();
                    row.finished_at = engine.env.now_ms();
                    row.error = e.message.clone();
                    row.error_code = e.code.as_str().to_string();
                    st.save(row)?;
                    return Err(e);
                }
                _ => {}
            }
            if let Some(at) = r.retry_at.filter(|at| *at > engine.env.now_ms()) {
                return st.suspend(status::SLEEPING, Some(at), None).await;
            }
        }
        let mut row = prev.unwrap_or_else(|| st.new_row(key, kind));
        row.attempts += 1;
        row.status = step::RUNNING.into();
        row.retry_at = None;
        let attempt = u32::try_from(row.attempts).unwrap_or(u32::MAX);
        st.save(row.clone())?;
        if kind == "call" {
            // Recorded before it is sent.
            engine.sql.durable().await?;
        }
        let admitted = match &options.breaker {
            Some(b) => breaker::admit(&*engine.sql, b, engine.env.now_ms()),
            None => Ok(()),
        };
        let out = match &admitted {
            Err(e) => Err(e.clone()),
            Ok(()) => {
                let run = std::pin::pin!(f(key.to_string()));
                match options.timeout {
                    None => run.await,
                    Some(limit) => match futures::future::select(run, engine.env.sleep(limit)).await {
                        futures::future::Either::Left((r, _)) => r,
                        futures::future::Either::Right(_) => {
                            Err(RpcError::new(Code::Timeout, format!("step {key} took longer than {limit:?}")))
                        }
                    },
                }
            }
        };
        if let (Some(b), Ok(())) = (&options.breaker, &admitted) {
            match &out {
                Ok(_) => breaker::success(&*engine.sql, b)?,
                Err(_) => breaker::failure(&*engine.sql, b, engine.env.now_ms())?,
            }
        }
        let failure = match out {
            Ok(v) => match serde_json::to_string(&v) {
                Ok(json) if json.len() <= engine.limits.max_result_bytes => {
                    row.result = Some(json);
                    row.error.clear();
                    row.error_code.clear();
                    st.complete(row, true).await?;
                    return Ok(v);
                }
                Ok(json) => RpcError::new(
                    Code::LimitExceeded,
                    format!("step {key} returned {} bytes, over {}", json.len(), engine.limits.max_result_bytes),
                ),
                Err(e) => RpcError::new(Code::Internal, format!("step {key}'s result is not JSON: {e}")),
            },
            Err(e) => e,
        };
        row.error = failure.message.clone();
        row.error_code = failure.code.as_str().to_string();
        if options.retry.retries(failure.code, attempt) {
            let wait = options.retry.delay_with_jitter(attempt, engine.env.random_u64());
            let at = engine.env.now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
            row.status = step::RETRYING.into();
            row.retry_at = Some(at);
            st.save(row)?;
            return st.suspend(status::SLEEPING, Some(at), None).await;
        }
        row.status = step::FAILED.into();
        row.finished_at = engine.env.now_ms();
        st.save(row)?;
        engine.sql.durable().await?;
        Err(failure)
    }

    /// A value made once and recorded (what replay must see again); its record commits
    /// with the next step's.
    fn record_value<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        kind: &str,
        make: impl FnOnce() -> T,
    ) -> Result<T, RpcError> {
        let key = self.state.key(name)?;
        if let Some(r) = self.state.recorded(&key).filter(|r| r.status == step::COMPLETED) {
            check_kind(&r, kind)?;
            return decode(&r);
        }
        let v = make();
        let mut row = self.state.new_row(&key, kind);
        row.status = step::COMPLETED.into();
        row.attempts = 1;
        row.finished_at = row.started_at;
        row.result =
            Some(serde_json::to_string(&v).map_err(|e| RpcError::new(Code::Internal, format!("not JSON: {e}")))?);
        self.state.save(row)?;
        Ok(v)
    }

    /// The time (ms since the epoch), recorded: a replay sees the same.
    pub fn now(&self) -> Result<i64, RpcError> {
        let env = self.engine().env.clone();
        self.record_value("now", "now", || env.now_ms())
    }

    /// A random number, recorded: a replay sees the same.
    pub fn random(&self) -> Result<u64, RpcError> {
        let env = self.engine().env.clone();
        self.record_value("random", "random", || env.random_u64())
    }

    /// Sleeps for `duration` (measured from the first time the run got here) on the
    /// object's alarm: the run is suspended, holding nothing but its rows, and wakes
    /// after a restart too.
    pub async fn sleep(&self, name: &str, duration: Duration) -> Result<(), RpcError> {
        let at = self.engine().env.now_ms().saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX));
        self.sleep_until(name, at).await
    }

    /// Sleeps until `at_ms` (ms since the epoch), as [`Flow::sleep`].
    pub async fn sleep_until(&self, name: &str, at_ms: i64) -> Result<(), RpcError> {
        let st = &self.state;
        let key = st.key(name)?;
        let now = self.engine().env.now_ms();
        let row = match st.recorded(&key) {
            Some(r) => {
                check_kind(&r, "sleep")?;
                if r.status == step::COMPLETED {
                    return Ok(());
                }
                r
            }
            None => {
                let mut r = st.new_row(&key, "sleep");
                r.status = step::WAITING.into();
                r.attempts = 1;
                r.retry_at = Some(at_ms);
                r.state = Some(serde_json::json!({"until": at_ms}).to_string());
                if at_ms > now {
                    st.save(r.clone())?;
                }
                r
            }
        };
        let wake = row.retry_at.unwrap_or(at_ms);
        if now >= wake {
            return st.complete(row, true).await;
        }
        st.suspend(status::SLEEPING, Some(wake), None).await
    }

    /// Waits for an event of the object's log matching `wait` (sent after the wait
    /// began, unless [`WaitFor::include_past`]): the event, or `None` at the timeout.
    /// The run is suspended meanwhile (woken by the event, or the alarm at the timeout).
    pub async fn wait_for_event(&self, name: &str, wait: WaitFor) -> Result<Option<EventMatch>, RpcError> {
        let st = &self.state;
        let engine = self.engine().clone();
        let key = st.key(name)?;
        let pattern = Pattern::parse(&wait.pattern)?;
        if !(wait.filter.is_null() || wait.filter.is_object()) {
            return Err(RpcError::invalid_argument("an event filter is an object of fields and values"));
        }
        let now = engine.env.now_ms();
        let mut row = match st.recorded(&key) {
            Some(r) => {
                check_kind(&r, "event")?;
                if r.status == step::COMPLETED {
                    return decode(&r);
                }
                r
            }
            None => {
                let since = if wait.include_past { 0 } else { engine.hub.last_seq()? };
                let deadline =
                    wait.timeout.map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
                let mut r = st.new_row(&key, "event");
                r.status = step::WAITING.into();
                r.attempts = 1;
                r.retry_at = deadline;
                r.state = Some(serde_json::to_string(&WaitState { since, deadline }).unwrap_or_default());
                st.save(r.clone())?;
                r
            }
        };
        let mut ws: WaitState = row
            .state
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(WaitState { since: 0, deadline: row.retry_at });
        let start = ws.since;
        let mut found = None;
        'scan: loop {
            let page = engine.hub.list(ws.since, &pattern, crate::events::MAX_LIST)?;
            if page.is_empty() {
                break;
            }
            for e in page {
                ws.since = e.seq;
                let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null);
                if matches_filter(&wait.filter, &data) {
                    found = Some(EventMatch {
                        id: e.id.clone(),
                        seq: e.seq,
                        type_: format!("{}.{}", e.noun, e.verb),
                        data,
                        timestamp: e.timestamp,
                    });
                    break 'scan;
                }
            }
        }
        row.state = Some(serde_json::to_string(&ws).unwrap_or_default());
        if found.is_some() || ws.deadline.is_some_and(|d| now >= d) {
            row.result = Some(serde_json::to_string(&found).unwrap_or_else(|_| "null".into()));
            st.complete(row, true).await?;
            return Ok(found);
        }
        if ws.since != start {
            st.save(row)?;
        }
        st.suspend(status::WAITING, ws.deadline, Some(&wait.pattern)).await
    }

    /// Asks `who` to approve `what` within `timeout` and waits (suspended) for the
    /// answer, given through the object's `Approval` capability (`workflow.approval(id)`,
    /// which a broker token can open: see the README's Workflows section). An approval requested sends the
    /// event `Approval.requested` with its id. Past the deadline: [`Decision::Expired`].
    pub async fn approval(
        &self,
        name: &str,
        who: &str,
        what: serde_json::Value,
        timeout: Duration,
    ) -> Result<Decision, RpcError> {
        let key = self.state.key(name)?;
        self.approval_at(&key, "approval", who, what, timeout).await
    }

    pub(crate) async fn approval_at(
        &self,
        key: &str,
        kind: &str,
        who: &str,
        what: serde_json::Value,
        timeout: Duration,
    ) -> Result<Decision, RpcError> {
        let st = &self.state;
        let engine = self.engine().clone();
        let now = engine.env.now_ms();
        let (row, id, deadline) = match st.recorded(key) {
            Some(r) if r.status == step::COMPLETED => {
                check_kind(&r, kind)?;
                return decode(&r);
            }
            Some(r) => {
                check_kind(&r, kind)?;
                let id = r
                    .state
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                    .and_then(|v| v.get("approval").and_then(|a| a.as_str()).map(str::to_string))
                    .ok_or_else(|| RpcError::new(Code::Internal, format!("step {key} lost its approval")))?;
                let deadline = r.retry_at.unwrap_or(now);
                (r, id, deadline)
            }
            None => {
                let deadline = now.saturating_add(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX));
                let id = format!("a{:016x}{:016x}", engine.env.random_u64(), engine.env.random_u64());
                let mut r = st.new_row(key, kind);
                r.status = step::WAITING.into();
                r.attempts = 1;
                r.retry_at = Some(deadline);
                r.state = Some(serde_json::json!({"approval": id}).to_string());
                let mut event = None;
                engine.sql.transaction(&mut || {
                    st.save(r.clone())?;
                    approval::create(&engine, &id, &st.id, key, who, &what, deadline)?;
                    let data =
                        serde_json::json!({"id": id, "run": st.id, "who": who, "what": what, "deadline": deadline});
                    event = Some(engine.hub.record("Approval.requested", &data.to_string())?);
                    Ok(())
                })?;
                if let Some(e) = event {
                    engine.hub.publish(&e);
                }
                engine.sql.durable().await?;
                (r, id, deadline)
            }
        };
        match approval::settle(&engine, &id, now)? {
            Some(decision) => {
                let mut row = row;
                row.result = Some(serde_json::to_string(&decision).unwrap_or_else(|_| "null".into()));
                st.complete(row, true).await?;
                Ok(decision)
            }
            None => st.suspend(status::WAITING, Some(deadline), None).await,
        }
    }

    /// A durable call to the method `method` of the object `(class, object)` in this
    /// namespace, with `args` (a JSON array of positional arguments, or an object
    /// naming them): recorded before it is sent, retried until acknowledged
    /// ([`RetryPolicy::until_acknowledged`]) with one idempotency key, which the
    /// receiving object deduplicates on, so it takes effect once. Its result (JSON).
    pub async fn call(
        &self,
        name: &str,
        class: &str,
        object: &str,
        method: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, RpcError> {
        let options = StepOptions::retry(RetryPolicy::until_acknowledged());
        self.call_with(name, options, class, object, method, args).await
    }

    /// [`Flow::call`] with its own step options (retries, timeout, breaker).
    pub async fn call_with(
        &self,
        name: &str,
        options: StepOptions,
        class: &str,
        object: &str,
        method: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, RpcError> {
        let key = self.state.key(name)?;
        let engine = self.engine().clone();
        let idempotency = self.idempotency_key(&key);
        self.attempt(&key, "call", &options, |_| async move {
            outbox::send(&*engine.peers, class, object, &idempotency, method, &args).await
        })
        .await
    }

    /// Sends `method(args)` to `(class, object)` after `delay`, durably: recorded now
    /// (once, as a step), sent from the object's alarm, retried until acknowledged,
    /// deduplicated by the receiver on its key (returned).
    pub async fn send_later(
        &self,
        name: &str,
        class: &str,
        object: &str,
        method: &str,
        args: serde_json::Value,
        delay: Duration,
    ) -> Result<String, RpcError> {
        let key = self.state.key(name)?;
        let engine = self.engine().clone();
        let idempotency = self.idempotency_key(&key);
        let options = StepOptions::retry(RetryPolicy::none());
        self.attempt(&key, "send", &options, |_| async move {
            outbox::enqueue(&engine, &idempotency, class, object, method, &args, delay)?;
            Ok(idempotency)
        })
        .await
    }

    /// The idempotency key of step `key`'s durable call: `<object id>/<run id>/<key>`,
    /// the same on every attempt and every replay.
    fn idempotency_key(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.engine().object_id, self.state.id)
    }

    /// The state of the circuit breaker `name` of this object.
    pub fn breaker_state(&self, name: &str) -> Result<breaker::State, RpcError> {
        breaker::state(&*self.engine().sql, name)
    }

    /// Ends this drive without settling the run (it replays later).
    pub(crate) async fn abort<T>(&self, e: &RpcError) -> Result<T, RpcError> {
        self.state.abort(e).await
    }

    pub(crate) fn step_key(&self, name: &str) -> Result<String, RpcError> {
        self.state.key(name)
    }

    pub(crate) fn recorded_step(&self, key: &str) -> Option<StepRow> {
        self.state.recorded(key)
    }

    pub(crate) async fn record_completed(
        &self,
        key: &str,
        kind: &str,
        tier: &str,
        result: &serde_json::Value,
    ) -> Result<(), RpcError> {
        let mut row = self.state.recorded(key).unwrap_or_else(|| self.state.new_row(key, kind));
        row.attempts += 1;
        row.tier = tier.to_string();
        row.result = Some(result.to_string());
        self.state.complete(row, true).await
    }

    pub(crate) async fn record_failed(&self, key: &str, kind: &str, error: &RpcError) -> Result<(), RpcError> {
        let mut row = self.state.recorded(key).unwrap_or_else(|| self.state.new_row(key, kind));
        row.attempts += 1;
        row.status = step::FAILED.into();
        row.finished_at = self.engine().env.now_ms();
        row.error = error.message.clone();
        row.error_code = error.code.as_str().to_string();
        self.state.save(row)?;
        self.engine().sql.durable().await
    }

    pub(crate) fn ai(&self) -> Option<Rc<dyn super::ai::Ai>> {
        self.engine().ai.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::matches_filter;
    use serde_json::json;

    #[test]
    fn a_filter_matches_fields_by_dotted_path() {
        let data = json!({"order": "o1", "amount": {"currency": "EUR", "value": 10}});
        assert!(matches_filter(&json!(null), &data));
        assert!(matches_filter(&json!({}), &data));
        assert!(matches_filter(&json!({"order": "o1", "amount.currency": "EUR"}), &data));
        assert!(!matches_filter(&json!({"order": "o2"}), &data));
        assert!(!matches_filter(&json!({"amount.value": "10"}), &data), "types count");
        assert!(!matches_filter(&json!({"missing": null}), &data));
    }
}
