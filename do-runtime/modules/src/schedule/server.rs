//! The scheduler of one object and its `Schedule` capability server.
//!
//! Schedules live in the object's SQLite. Each run sends the schedule's action as an
//! event (so handlers subscribe through the events module and nothing is lost across
//! restarts) and calls the in-session handler, if one was attached. The object's one
//! alarm is kept at the earliest next run; when it fires late (after a restart, or
//! while the object was evicted), each missed schedule fires once and moves on.

use super::spec::Spec;
use crate::events::{parse_type, Event, EventHub};
use crate::host::{Alarm, Env, Sql, SqlValue};
use capnp::capability::Rc as CapRc;
use rpc_core::params::text;
use rpc_core::{Code, RpcError};
use schema::object_capnp::{handler, schedule, schedule_entry};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Most schedules one object may have.
pub const MAX_SCHEDULES: usize = 1000;

const MIGRATION: &str = "CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY, spec TEXT NOT NULL, action TEXT NOT NULL, data TEXT NOT NULL,
    next_run INTEGER NOT NULL, last_run INTEGER NOT NULL, created_at INTEGER NOT NULL)";

/// One stored schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id.
    pub id: String,
    /// The spec as given.
    pub spec: String,
    /// The event type sent at each run.
    pub action: String,
    /// The event data (JSON).
    pub data: String,
    /// The next run, ms since the epoch.
    pub next_run: i64,
    /// The last run (0: never).
    pub last_run: i64,
}

impl Entry {
    fn fill(&self, mut b: schedule_entry::Builder<'_>) {
        b.set_id(&self.id);
        b.set_spec(&self.spec);
        b.set_action(&self.action);
        b.set_data(&self.data);
        b.set_next_run(self.next_run);
        b.set_last_run(self.last_run);
    }
}

/// What a run calls besides sending its event (the object's class).
pub type OnRun = Rc<dyn Fn(&Event)>;

/// The scheduler of one object.
pub struct Scheduler {
    sql: Rc<dyn Sql>,
    env: Rc<dyn Env>,
    events: Rc<EventHub>,
    alarm: Rc<dyn Alarm>,
    handlers: RefCell<HashMap<String, handler::Client>>,
    /// The object's class, called with each run's event (a run whose action names one
    /// of its methods calls that method).
    on_run: RefCell<Option<OnRun>>,
}

impl Scheduler {
    /// The scheduler over the object's database; migrates and arms the alarm.
    pub fn new(
        sql: Rc<dyn Sql>,
        env: Rc<dyn Env>,
        events: Rc<EventHub>,
        alarm: Rc<dyn Alarm>,
    ) -> Result<Rc<Scheduler>, RpcError> {
        sql.execute(MIGRATION, &[])?;
        let s =
            Rc::new(Scheduler { sql, env, events, alarm, handlers: RefCell::default(), on_run: RefCell::default() });
        s.rearm()?;
        Ok(s)
    }

    fn rearm(&self) -> Result<(), RpcError> {
        let rows = self.sql.query("SELECT MIN(next_run) FROM schedules", &[])?;
        self.alarm.set_alarm(rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64));
        Ok(())
    }

    /// Calls `f` with the event of every run (after it has been stored), for the
    /// object's class.
    pub fn on_run(&self, f: OnRun) {
        *self.on_run.borrow_mut() = Some(f);
    }

    /// Adds a schedule; a bad spec, action or data is INVALID_ARGUMENT.
    pub fn add(
        &self,
        spec_text: &str,
        action: &str,
        data: &str,
        handler: Option<handler::Client>,
    ) -> Result<Entry, RpcError> {
        let spec = Spec::parse(spec_text)?;
        parse_type(action)?;
        let data = if data.trim().is_empty() { "null".to_string() } else { data.to_string() };
        serde_json::from_str::<serde_json::Value>(&data)
            .map_err(|e| RpcError::invalid_argument(format!("schedule data is not JSON: {e}")))?;
        if data.len() > crate::storage::things::MAX_DOC_BYTES {
            return Err(RpcError::new(Code::LimitExceeded, "schedule data is over the document size limit"));
        }
        if self.list()?.len() >= MAX_SCHEDULES {
            return Err(RpcError::new(Code::LimitExceeded, format!("an object has at most {MAX_SCHEDULES} schedules")));
        }
        let now = self.env.now_ms();
        let next_run =
            spec.next_after(now).ok_or_else(|| RpcError::invalid_argument(format!("{spec_text:?} never fires")))?;
        let id = format!("s{:011x}{:06x}", now, self.env.random_u64() as u32 & 0xff_ffff);
        self.sql.execute(
            "INSERT INTO schedules (id, spec, action, data, next_run, last_run, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
            &[
                SqlValue::Text(id.clone()),
                SqlValue::Text(spec_text.to_string()),
                SqlValue::Text(action.to_string()),
                SqlValue::Text(data.clone()),
                SqlValue::Integer(next_run),
                SqlValue::Integer(now),
            ],
        )?;
        if let Some(h) = handler {
            self.handlers.borrow_mut().insert(id.clone(), h);
        }
        self.rearm()?;
        Ok(Entry { id, spec: spec_text.to_string(), action: action.to_string(), data, next_run, last_run: 0 })
    }

    /// Every schedule, soonest first.
    pub fn list(&self) -> Result<Vec<Entry>, RpcError> {
        let rows = self
            .sql
            .query("SELECT id, spec, action, data, next_run, last_run FROM schedules ORDER BY next_run, id", &[])?;
        let bad_row = || RpcError::new(Code::Internal, "bad schedule row");
        rows.iter()
            .map(|r| {
                let text = |i: usize| r.get(i).and_then(SqlValue::as_text).map(str::to_string).ok_or_else(bad_row);
                let int = |i: usize| r.get(i).and_then(SqlValue::as_i64).ok_or_else(bad_row);
                Ok(Entry {
                    id: text(0)?,
                    spec: text(1)?,
                    action: text(2)?,
                    data: text(3)?,
                    next_run: int(4)?,
                    last_run: int(5)?,
                })
            })
            .collect()
    }

    /// Removes a schedule; false when there was none.
    pub fn cancel(&self, id: &str) -> Result<bool, RpcError> {
        let n = self.sql.execute("DELETE FROM schedules WHERE id = ?", &[SqlValue::Text(id.to_string())])?;
        self.handlers.borrow_mut().remove(id);
        self.rearm()?;
        Ok(n > 0)
    }

    /// The next run of schedule `id`.
    pub fn next_run(&self, id: &str) -> Result<i64, RpcError> {
        self.list()?
            .into_iter()
            .find(|e| e.id == id)
            .map(|e| e.next_run)
            .ok_or_else(|| RpcError::new(Code::NotFound, format!("no schedule {id:?}")))
    }

    /// Runs what is due (each due schedule once, however many runs it missed), moves
    /// each to its next run and re-arms the alarm. Each run's move and event commit
    /// together; a run that fails still moves on (so it cannot spin) and does not stop
    /// the others. Returns how many ran, or the first failure after all were tried.
    pub fn on_alarm(&self) -> Result<usize, RpcError> {
        let now = self.env.now_ms();
        let due: Vec<Entry> = self.list()?.into_iter().filter(|e| e.next_run <= now).collect();
        let (mut ran, mut failure) = (0, None);
        for e in &due {
            let next = Spec::parse(&e.spec).ok().and_then(|s| s.next_after(now));
            let advance = || match next {
                Some(next) => self.sql.execute(
                    "UPDATE schedules SET next_run = ?, last_run = ? WHERE id = ?",
                    &[SqlValue::Integer(next), SqlValue::Integer(now), SqlValue::Text(e.id.clone())],
                ),
                None => self.sql.execute("DELETE FROM schedules WHERE id = ?", &[SqlValue::Text(e.id.clone())]),
            };
            let mut event = None;
            let committed = self.sql.transaction(&mut || {
                advance()?;
                event = Some(self.events.record(&e.action, &e.data)?);
                Ok(())
            });
            if next.is_none() {
                self.handlers.borrow_mut().remove(&e.id);
            }
            match (committed, event) {
                (Ok(()), Some(event)) => {
                    ran += 1;
                    self.events.publish(&event);
                    let on_run = self.on_run.borrow().clone();
                    if let Some(f) = on_run {
                        f(&event);
                    }
                    if let Some(h) = self.handlers.borrow().get(&e.id).cloned() {
                        let mut req = h.handle_request();
                        event.fill(req.get().init_event());
                        let call = req.send().promise;
                        self.env.spawn(Box::pin(async move {
                            let _ = call.await;
                        }));
                    }
                }
                (Err(err), _) => {
                    let _ = advance();
                    failure.get_or_insert(err);
                }
                (Ok(()), None) => {}
            }
        }
        self.rearm()?;
        match failure {
            Some(e) => Err(e),
            None => Ok(ran),
        }
    }
}

/// Serves `Schedule` for one object.
pub struct ScheduleServer {
    scheduler: Rc<Scheduler>,
}

impl ScheduleServer {
    /// The server over `scheduler`.
    pub fn new(scheduler: Rc<Scheduler>) -> Self {
        ScheduleServer { scheduler }
    }
}

impl schedule::Server for ScheduleServer {
    async fn schedule(
        self: CapRc<Self>,
        params: schedule::ScheduleParams,
        mut results: schedule::ScheduleResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let handler = if p.has_handler() { Some(p.get_handler()?) } else { None };
        let e = self.scheduler.add(&text(p.get_spec())?, &text(p.get_action())?, &text(p.get_data())?, handler)?;
        e.fill(results.get().init_entry());
        Ok(())
    }

    async fn list(self: CapRc<Self>, _: schedule::ListParams, mut results: schedule::ListResults) -> capnp::Result<()> {
        let entries = self.scheduler.list()?;
        let mut list = results.get().init_entries(entries.len() as u32);
        for (i, e) in entries.iter().enumerate() {
            e.fill(list.reborrow().get(i as u32));
        }
        Ok(())
    }

    async fn cancel(
        self: CapRc<Self>,
        params: schedule::CancelParams,
        mut results: schedule::CancelResults,
    ) -> capnp::Result<()> {
        results.get().set_cancelled(self.scheduler.cancel(&text(params.get()?.get_id())?)?);
        Ok(())
    }

    async fn next_run(
        self: CapRc<Self>,
        params: schedule::NextRunParams,
        mut results: schedule::NextRunResults,
    ) -> capnp::Result<()> {
        results.get().set_at(self.scheduler.next_run(&text(params.get()?.get_id())?)?);
        Ok(())
    }
}
