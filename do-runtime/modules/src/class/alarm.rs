//! An object has one alarm (as a Cloudflare Durable Object has); its schedules, its
//! workflows and its class all want one. [`AlarmMux`] gives each a side of its own and
//! sets the object's alarm to the soonest. The class's time is stored in the object's database
//! (`dotdo_meta`), so `get_alarm` answers after a restart too.

use crate::host::{Alarm, Sql, SqlValue};
use rpc_core::RpcError;
use std::cell::Cell;
use std::rc::Rc;

pub(crate) const MIGRATION: &str =
    "CREATE TABLE IF NOT EXISTS dotdo_meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID";

const CLASS_ALARM: &str = "class_alarm";

/// The object's alarm shared between its schedules and its class.
pub struct AlarmMux {
    host: Rc<dyn Alarm>,
    sql: Rc<dyn Sql>,
    schedules: Cell<Option<i64>>,
    workflows: Cell<Option<i64>>,
    class: Cell<Option<i64>>,
    /// What the host's alarm was last set to (not set again when unchanged: the host
    /// may write it to a file).
    last: Cell<Option<Option<i64>>>,
}

impl AlarmMux {
    /// The mux over the host's alarm, with the class's time read from the database.
    pub fn new(host: Rc<dyn Alarm>, sql: Rc<dyn Sql>) -> Result<Rc<AlarmMux>, RpcError> {
        sql.execute(MIGRATION, &[])?;
        let rows = sql.query("SELECT value FROM dotdo_meta WHERE key = ?", &[SqlValue::Text(CLASS_ALARM.into())])?;
        let class = rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64);
        Ok(Rc::new(AlarmMux {
            host,
            sql,
            schedules: Cell::new(None),
            workflows: Cell::new(None),
            class: Cell::new(class),
            last: Cell::new(None),
        }))
    }

    /// The side the scheduler sets.
    pub fn schedules_side(self: &Rc<Self>) -> Rc<dyn Alarm> {
        Rc::new(SchedulesSide(self.clone()))
    }

    /// The side the workflow engine sets.
    pub fn workflows_side(self: &Rc<Self>) -> Rc<dyn Alarm> {
        Rc::new(WorkflowsSide(self.clone()))
    }

    fn rearm(&self) {
        let next = [self.schedules.get(), self.workflows.get(), self.class.get()].into_iter().flatten().min();
        if self.last.replace(Some(next)) != Some(next) {
            self.host.set_alarm(next);
        }
    }

    /// The class's alarm time, if set.
    pub fn class_alarm(&self) -> Option<i64> {
        self.class.get()
    }

    /// Sets (or with `None` clears) the class's alarm; stored before it takes effect.
    pub fn set_class_alarm(&self, at: Option<i64>) -> Result<(), RpcError> {
        match at {
            Some(at) => self.sql.execute(
                "INSERT INTO dotdo_meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
                &[SqlValue::Text(CLASS_ALARM.into()), SqlValue::Integer(at)],
            )?,
            None => self.sql.execute("DELETE FROM dotdo_meta WHERE key = ?", &[SqlValue::Text(CLASS_ALARM.into())])?,
        };
        self.class.set(at);
        self.rearm();
        Ok(())
    }

    /// When the object's alarm fires: whether the class's alarm is due at `now` (it is
    /// then cleared, before the class runs, so a class that sets a new one keeps it).
    pub fn take_due_class_alarm(&self, now: i64) -> Result<bool, RpcError> {
        match self.class.get() {
            Some(at) if at <= now => {
                self.set_class_alarm(None)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Sets the host's alarm again to what is pending (the host clears it as it fires).
    pub fn refresh(&self) {
        self.last.set(None);
        self.rearm();
    }
}

struct WorkflowsSide(Rc<AlarmMux>);

impl Alarm for WorkflowsSide {
    fn set_alarm(&self, at_ms: Option<i64>) {
        if self.0.workflows.replace(at_ms) != at_ms {
            self.0.rearm();
        }
    }
}

struct SchedulesSide(Rc<AlarmMux>);

impl Alarm for SchedulesSide {
    fn set_alarm(&self, at_ms: Option<i64>) {
        self.0.schedules.set(at_ms);
        self.0.rearm();
    }
}
