//! The events module: `Noun.verb` events stored in the object's log and pushed to
//! subscribers whose pattern matches (`Customer.created`, `*.created`, `Customer.*`,
//! `*.*`, `*`).
//!
//! Each subscriber has a queue bounded by count and bytes and its own delivery task, so
//! a slow or failing handler never blocks the sender or the other handlers; a full
//! queue drops its oldest events (counted as dropped), and a delivery not answered
//! within a deadline counts as failed. An object takes a bounded number of subscribers
//! (all bounds: [`SubscriberLimits`]). A subscription ends on `cancel()`, when its
//! capability is released (dropped, or its client disconnected), when its handler's
//! connection is gone, or when its handler timed out too many deliveries in a row.
//!
//! The subscriber table is only changed inside short borrows that call nothing out:
//! a removed subscriber (whose handler may be a capability whose release calls back
//! into the hub, e.g. another subscription) is dropped after the borrow has ended.
//!
//! The log is bounded by a [`Retention`] (by count and by age): each write path lookup
//! uses an index, and old events are pruned in small batches every [`PRUNE_EVERY`]
//! writes, so a write never scans the log however long the object has lived.

use crate::host::{Env, Sql, SqlValue};
use capnp::capability::Rc as CapRc;
use rpc_core::ident;
use rpc_core::params::text;
use rpc_core::{Code, RpcError};
use schema::object_capnp::{event, events, handler, subscription};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use subscribers::{Next, Outcome, Stuck, Subscribers};

pub mod outbox;
pub mod subscribers;

pub use outbox::Outbox;
pub use subscribers::{SubscriberLimits, QUEUE_CAPACITY};

/// Most events one `list` returns.
pub const MAX_LIST: u32 = 1000;
/// A `list` stops before the event that would take it past this many bytes of data.
pub const MAX_LIST_BYTES: usize = 4 << 20;
/// One stored event by its position.
pub const EVENT_AT: &str = "SELECT id, seq, noun, verb, data, ts, source FROM events WHERE seq = ?";

/// The tables and indexes the log needs (idempotent; `;`-separated statements).
pub const MIGRATION: &str = "CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, noun TEXT NOT NULL, verb TEXT NOT NULL,
    data TEXT NOT NULL, ts INTEGER NOT NULL, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_id ON events (id);
CREATE INDEX IF NOT EXISTS events_by_ts ON events (ts)";

/// The position of a just-written event (by `events_by_id`).
pub const SEQ_OF_ID: &str = "SELECT seq FROM events WHERE id = ?";
/// The oldest and newest positions in the log (each one step down the rowid tree).
pub const LOG_BOUNDS: &str = "SELECT (SELECT MIN(seq) FROM events), (SELECT MAX(seq) FROM events)";
/// The newest position among one batch of the oldest events written before a time, and
/// how many that batch holds (by `events_by_ts`).
pub const AGED_OUT: &str = "SELECT MAX(seq), COUNT(*) FROM (SELECT seq FROM events WHERE ts < ? ORDER BY ts LIMIT ?)";
/// Prunes every event up to a position (a rowid range, at most one batch).
pub const PRUNE_UP_TO: &str = "DELETE FROM events WHERE seq <= ?";
/// Every statement a write runs on the log besides its insert, for a test to check with
/// `EXPLAIN QUERY PLAN` that none scans the log.
pub const WRITE_PATH_STATEMENTS: &[&str] = &[SEQ_OF_ID, LOG_BOUNDS, AGED_OUT, PRUNE_UP_TO];

/// Pruning runs once every this many events written (and again on the next write while
/// a batch came back full, until the log is within its [`Retention`]).
pub const PRUNE_EVERY: u64 = 64;
/// Most events one pruning pass removes per rule, so no write pays for a long backlog.
pub const PRUNE_BATCH: i64 = 1000;

/// How much of its event log an object keeps. Older events, and events beyond the
/// newest `max_events`, are pruned in batches of [`PRUNE_BATCH`] every
/// [`PRUNE_EVERY`] writes, so the log may briefly exceed the bound by about that much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most events kept (the newest). Default 100,000.
    pub max_events: u64,
    /// Events older than this many milliseconds are dropped. Default 30 days.
    pub max_age_ms: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_events: 100_000, max_age_ms: 30 * 24 * 3600 * 1000 }
    }
}

/// Splits and checks an event type `Noun.verb`.
pub fn parse_type(t: &str) -> Result<(String, String), RpcError> {
    match t.split_once('.') {
        Some((n, v)) if ident::noun(n).is_ok() && ident::verb(v).is_ok() => Ok((n.to_string(), v.to_string())),
        _ => Err(RpcError::invalid_argument(format!("event type {t:?} must be Noun.verb (identifiers)"))),
    }
}

/// A subscription pattern: each half is a name or a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    noun: Option<String>,
    verb: Option<String>,
}

impl Pattern {
    /// Parses `Noun.verb`, `*.verb`, `Noun.*`, `*.*` or `*` (empty means `*`).
    pub fn parse(p: &str) -> Result<Pattern, RpcError> {
        if p.is_empty() || p == "*" {
            return Ok(Pattern { noun: None, verb: None });
        }
        let (n, v) = p.split_once('.').ok_or_else(|| {
            RpcError::invalid_argument(format!("pattern {p:?} must be Noun.verb, *.verb, Noun.*, *.* or *"))
        })?;
        let part = |s: &str| -> Result<Option<String>, RpcError> {
            match s {
                "*" => Ok(None),
                s if ident::is_identifier(s) => Ok(Some(s.to_string())),
                _ => Err(RpcError::invalid_argument(format!(
                    "pattern {p:?} must be Noun.verb, *.verb, Noun.*, *.* or *"
                ))),
            }
        };
        Ok(Pattern { noun: part(n)?, verb: part(v)? })
    }

    /// Whether an event of `noun.verb` matches.
    pub fn matches(&self, noun: &str, verb: &str) -> bool {
        self.noun.as_deref().is_none_or(|n| n == noun) && self.verb.as_deref().is_none_or(|v| v == verb)
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique id.
    pub id: String,
    /// Position in the log.
    pub seq: u64,
    /// `Noun`.
    pub noun: String,
    /// `verb`.
    pub verb: String,
    /// JSON data.
    pub data: String,
    /// ms since the epoch.
    pub timestamp: i64,
    /// The sending object's id.
    pub source: String,
}

impl Event {
    /// Writes the event into a capnp builder.
    pub fn fill(&self, mut b: event::Builder<'_>) {
        b.set_id(&self.id);
        b.set_seq(self.seq);
        b.set_type(format!("{}.{}", self.noun, self.verb));
        b.set_data(&self.data);
        b.set_timestamp(self.timestamp);
        b.set_source(&self.source);
    }

    /// The bytes the event holds (its strings), what a subscriber's queue budget counts.
    pub fn size(&self) -> usize {
        self.id.len() + self.noun.len() + self.verb.len() + self.data.len() + self.source.len()
    }
}

/// The event log and subscribers of one object.
pub struct EventHub {
    sql: Rc<dyn Sql>,
    env: Rc<dyn Env>,
    source: String,
    subscribers: RefCell<Subscribers>,
    retention: Retention,
    /// Events written since the last pruning pass.
    since_prune: std::cell::Cell<u64>,
    /// In-process watchers of every published event (the workflow engine's waits).
    watchers: RefCell<Vec<Watcher>>,
}

/// An in-process watcher of an object's published events.
pub type Watcher = Rc<dyn Fn(&Event)>;

impl EventHub {
    /// The hub of the object `source` with the default [`Retention`], migrating its tables.
    pub fn new(sql: Rc<dyn Sql>, env: Rc<dyn Env>, source: String) -> Result<Rc<EventHub>, RpcError> {
        EventHub::with_retention(sql, env, source, Retention::default())
    }

    /// The hub of the object `source` keeping `retention` of its log, migrating its
    /// tables; its subscribers have the default [`SubscriberLimits`].
    pub fn with_retention(
        sql: Rc<dyn Sql>,
        env: Rc<dyn Env>,
        source: String,
        retention: Retention,
    ) -> Result<Rc<EventHub>, RpcError> {
        EventHub::with_limits(sql, env, source, retention, SubscriberLimits::default())
    }

    /// The hub of the object `source` keeping `retention` of its log, its subscribers
    /// bounded by `limits`, migrating its tables.
    pub fn with_limits(
        sql: Rc<dyn Sql>,
        env: Rc<dyn Env>,
        source: String,
        retention: Retention,
        limits: SubscriberLimits,
    ) -> Result<Rc<EventHub>, RpcError> {
        for stmt in MIGRATION.split(';') {
            sql.execute(stmt, &[])?;
        }
        Ok(Rc::new(EventHub {
            sql,
            env,
            source,
            subscribers: RefCell::new(Subscribers::new(limits)),
            retention,
            // The first write after loading prunes what built up before.
            since_prune: PRUNE_EVERY.into(),
            watchers: RefCell::default(),
        }))
    }

    /// Stores an event (committed before this returns) and queues it for subscribers.
    pub fn send(self: &Rc<Self>, type_: &str, data: &str) -> Result<Event, RpcError> {
        let event = self.record(type_, data)?;
        self.publish(&event);
        Ok(event)
    }

    /// Stores an event without delivering it (inside the caller's transaction, if any);
    /// [`EventHub::publish`] delivers it once that has committed.
    pub fn record(&self, type_: &str, data: &str) -> Result<Event, RpcError> {
        let (noun, verb) = parse_type(type_)?;
        let data = if data.trim().is_empty() { "null".to_string() } else { data.to_string() };
        serde_json::from_str::<serde_json::Value>(&data)
            .map_err(|e| RpcError::invalid_argument(format!("event data is not JSON: {e}")))?;
        if data.len() > crate::storage::things::MAX_DOC_BYTES {
            return Err(RpcError::new(Code::LimitExceeded, "event data is over the document size limit"));
        }
        self.insert(noun, verb, data)
    }

    /// Stores the event of a storage change (inside the caller's transaction): `noun` is a
    /// checked type and `data` JSON the store built, a thing (up to the document limit)
    /// with its id and version, so neither is checked again.
    pub(crate) fn record_change(&self, noun: &str, verb: &str, data: String) -> Result<Event, RpcError> {
        self.insert(noun.to_string(), verb.to_string(), data)
    }

    fn insert(&self, noun: String, verb: String, data: String) -> Result<Event, RpcError> {
        let now = self.env.now_ms();
        let id = format!("{:011x}{:08x}", now, self.env.random_u64() as u32);
        self.sql.execute(
            "INSERT INTO events (id, noun, verb, data, ts, source) VALUES (?, ?, ?, ?, ?, ?)",
            &[
                SqlValue::Text(id.clone()),
                SqlValue::Text(noun.clone()),
                SqlValue::Text(verb.clone()),
                SqlValue::Text(data.clone()),
                SqlValue::Integer(now),
                SqlValue::Text(self.source.clone()),
            ],
        )?;
        let seq = self
            .sql
            .query(SEQ_OF_ID, &[SqlValue::Text(id.clone())])?
            .last()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_i64)
            .unwrap_or(0) as u64;
        let written = self.since_prune.get() + 1;
        if written >= PRUNE_EVERY {
            let full = self.prune(now)?;
            // A full batch means more is due: prune again on the next write.
            self.since_prune.set(if full { PRUNE_EVERY } else { 0 });
        } else {
            self.since_prune.set(written);
        }
        Ok(Event { id, seq, noun, verb, data, timestamp: now, source: self.source.clone() })
    }

    /// One pruning pass, inside the caller's transaction: drops the events beyond the
    /// count and those older than the age of [`Retention`], at most [`PRUNE_BATCH`] of
    /// them (the oldest). Returns whether more are due.
    pub fn prune(&self, now_ms: i64) -> Result<bool, RpcError> {
        let int = |rows: &[Vec<SqlValue>], i: usize| rows.first().and_then(|r| r.get(i)).and_then(SqlValue::as_i64);
        let bounds = self.sql.query(LOG_BOUNDS, &[])?;
        let (Some(oldest), Some(newest)) = (int(&bounds, 0), int(&bounds, 1)) else { return Ok(false) };
        let max = i64::try_from(self.retention.max_events).unwrap_or(i64::MAX);
        let by_count = newest.saturating_sub(max);
        let age = i64::try_from(self.retention.max_age_ms).unwrap_or(i64::MAX);
        let aged = self
            .sql
            .query(AGED_OUT, &[SqlValue::Integer(now_ms.saturating_sub(age)), SqlValue::Integer(PRUNE_BATCH)])?;
        let by_age = int(&aged, 0).unwrap_or(0);
        let cut = by_count.max(by_age);
        if cut < oldest {
            return Ok(false);
        }
        let upto = cut.min(oldest.saturating_add(PRUNE_BATCH - 1));
        self.sql.execute(PRUNE_UP_TO, &[SqlValue::Integer(upto)])?;
        Ok(upto < cut || int(&aged, 1) == Some(PRUNE_BATCH))
    }

    /// Calls `f` with every event published from now on (after it is stored), in
    /// process: for the module servers of the same object.
    pub fn watch(&self, f: Watcher) {
        self.watchers.borrow_mut().push(f);
    }

    /// The newest event's position in the log (0 when it is empty).
    pub fn last_seq(&self) -> Result<u64, RpcError> {
        let rows = self.sql.query(LOG_BOUNDS, &[])?;
        Ok(rows.first().and_then(|r| r.get(1)).and_then(SqlValue::as_i64).unwrap_or(0).max(0) as u64)
    }

    /// Queues a stored event for every subscriber whose pattern matches, and tells the
    /// watchers.
    pub fn publish(self: &Rc<Self>, event: &Event) {
        let watchers = self.watchers.borrow().clone();
        for w in watchers {
            w(event);
        }
        let start = self.subscribers.borrow_mut().offer(event);
        for id in start {
            let hub = self.clone();
            self.env.spawn(Box::pin(async move { hub.deliver(id).await }));
        }
    }

    /// A subscriber's delivery task: one event at a time, each within the delivery
    /// deadline, until its queue is empty or the subscription ends.
    async fn deliver(self: Rc<Self>, id: u64) {
        let timeout = self.subscribers.borrow().limits().delivery_timeout;
        loop {
            let next = self.subscribers.borrow_mut().next(id);
            let Next::Deliver(event, handler) = next else { return };
            // Delivered once its write is durable (the output gate); an event whose
            // commit failed was never stored, and is dropped.
            if self.sql.durable().await.is_err() {
                drop(handler);
                let ended = self.subscribers.borrow_mut().settle(id, Outcome::Failed);
                if ended.is_some() {
                    // Dropped here, after the table's borrow (its handler may call back).
                    drop(ended);
                    return;
                }
                continue;
            }
            let mut req = handler.handle_request();
            event.fill(req.get().init_event());
            drop(event);
            let answer = req.send().promise;
            let outcome = match futures::future::select(answer, self.env.sleep(timeout)).await {
                futures::future::Either::Left((Ok(_), _)) => Outcome::Answered,
                futures::future::Either::Left((Err(e), _)) if RpcError::from(e.clone()).code == Code::Disconnected => {
                    Outcome::Gone
                }
                // A failing handler loses that event only.
                futures::future::Either::Left((Err(_), _)) => Outcome::Failed,
                // Dropping the call cancels it.
                futures::future::Either::Right(((), _)) => Outcome::TimedOut,
            };
            drop(handler);
            let ended = self.subscribers.borrow_mut().settle(id, outcome);
            if let Some(s) = ended {
                if outcome == Outcome::TimedOut {
                    tracing::warn!(
                        object = %self.source,
                        subscription = s.id(),
                        waiting = s.waiting(),
                        "unsubscribed a handler that did not answer {} deliveries in a row within {timeout:?}",
                        self.subscribers.borrow().limits().max_timeouts,
                    );
                }
                // Dropped here, after the table's borrow (its handler may call back).
                drop(s);
                return;
            }
        }
    }

    /// Adds a subscriber; returns its id and the flag set if the hub ends it for being
    /// stuck. LIMIT_EXCEEDED when the object has as many subscribers as it may.
    fn subscribe_flagged(&self, pattern: Pattern, handler: handler::Client) -> Result<(u64, Stuck), RpcError> {
        self.subscribers.borrow_mut().add(pattern, handler)
    }

    /// Adds a subscriber; returns its id. LIMIT_EXCEEDED when the object has as many
    /// subscribers as [`SubscriberLimits::max_subscribers`].
    pub fn subscribe(&self, pattern: Pattern, handler: handler::Client) -> Result<u64, RpcError> {
        Ok(self.subscribe_flagged(pattern, handler)?.0)
    }

    /// Removes a subscriber. Its handler is released after the subscriber table's
    /// borrow has ended, so a handler whose release unsubscribes again (e.g. one that
    /// is another subscription's capability) is fine.
    pub fn unsubscribe(&self, id: u64) {
        let removed = self.subscribers.borrow_mut().remove(id);
        drop(removed);
    }

    fn dropped(&self, id: u64) -> u64 {
        self.subscribers.borrow().dropped(id)
    }

    /// Stored events after `since` matching `pattern`, oldest first: at most `limit`
    /// (default 100, at most [`MAX_LIST`]), and no more than the event that would take
    /// the list past [`MAX_LIST_BYTES`] of data (always at least one). Rows are read one
    /// at a time, so events past the budget are never loaded; the caller continues from
    /// the last `seq` returned.
    pub fn list(&self, since: u64, pattern: &Pattern, limit: u32) -> Result<Vec<Event>, RpcError> {
        let limit = if limit == 0 { 100 } else { limit.min(MAX_LIST) };
        let mut sql = "SELECT seq, octet_length(data) FROM events WHERE seq > ?".to_string();
        let mut params = vec![SqlValue::Integer(since.min(i64::MAX as u64) as i64)];
        if let Some(n) = &pattern.noun {
            sql.push_str(" AND noun = ?");
            params.push(SqlValue::Text(n.clone()));
        }
        if let Some(v) = &pattern.verb {
            sql.push_str(" AND verb = ?");
            params.push(SqlValue::Text(v.clone()));
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        params.push(SqlValue::Integer(i64::from(limit)));
        let mut events = Vec::new();
        let mut bytes = 0usize;
        for r in self.sql.query(&sql, &params)? {
            let int = |i: usize| r.get(i).and_then(SqlValue::as_i64).ok_or_else(bad_row);
            let (seq, size) = (int(0)?, usize::try_from(int(1)?).unwrap_or(usize::MAX));
            if !events.is_empty() && bytes.saturating_add(size) > MAX_LIST_BYTES {
                break;
            }
            bytes += size;
            events.extend(self.logged(seq)?);
        }
        Ok(events)
    }

    /// The stored event at `seq`, if the log still holds it.
    fn logged(&self, seq: i64) -> Result<Option<Event>, RpcError> {
        let row = self.sql.query(EVENT_AT, &[SqlValue::Integer(seq)])?.pop();
        row.map(|r| {
            let text = |i: usize| r.get(i).and_then(SqlValue::as_text).map(str::to_string).ok_or_else(bad_row);
            let int = |i: usize| r.get(i).and_then(SqlValue::as_i64).ok_or_else(bad_row);
            Ok(Event {
                id: text(0)?,
                seq: int(1)? as u64,
                noun: text(2)?,
                verb: text(3)?,
                data: text(4)?,
                timestamp: int(5)?,
                source: text(6)?,
            })
        })
        .transpose()
    }

    /// Whether anyone listens: a write records its events either way, and keeps them
    /// for delivery only if so.
    pub fn has_subscribers(&self) -> bool {
        !self.subscribers.borrow().is_empty()
    }

    /// Delivers the stored event at `seq` (read back from the log; nothing when it has
    /// been pruned since).
    pub fn publish_logged(self: &Rc<Self>, seq: u64) -> Result<(), RpcError> {
        if let Some(e) = self.logged(i64::try_from(seq).unwrap_or(i64::MAX))? {
            self.publish(&e);
        }
        Ok(())
    }

    /// Delivers `event` if the log still holds it (its transaction committed), checked
    /// by id; what [`EventHub::record`] returned, once the caller's work is done.
    pub fn publish_if_committed(self: &Rc<Self>, event: &Event) -> Result<(), RpcError> {
        match self.logged(i64::try_from(event.seq).unwrap_or(i64::MAX))? {
            Some(e) if e.id == event.id => {
                self.publish(&e);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn bad_row() -> RpcError {
    RpcError::new(Code::Internal, "bad event row")
}

/// Serves `Events` for one object.
pub struct EventsServer {
    hub: Rc<EventHub>,
}

impl EventsServer {
    /// The server over `hub`.
    pub fn new(hub: Rc<EventHub>) -> Self {
        EventsServer { hub }
    }
}

impl events::Server for EventsServer {
    async fn send(
        self: CapRc<Self>,
        params: events::SendParams,
        mut results: events::SendResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let e = self.hub.send(&text(p.get_type())?, &text(p.get_data())?)?;
        e.fill(results.get().init_event());
        Ok(())
    }

    async fn subscribe(
        self: CapRc<Self>,
        params: events::SubscribeParams,
        mut results: events::SubscribeResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let pattern = Pattern::parse(&text(p.get_pattern())?)?;
        let handler = p.get_handler()?;
        let (id, stuck) = self.hub.subscribe_flagged(pattern, handler)?;
        let hub = Rc::downgrade(&self.hub);
        results.get().set_subscription(capnp_rpc::new_client(SubscriptionServer { hub, id, stuck }));
        Ok(())
    }

    async fn list(
        self: CapRc<Self>,
        params: events::ListParams,
        mut results: events::ListResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let pattern = Pattern::parse(&text(p.get_pattern())?)?;
        let events = self.hub.list(p.get_since(), &pattern, p.get_limit())?;
        let mut r = results.get();
        r.set_next(events.last().map_or(p.get_since(), |e| e.seq));
        let mut list = r.init_events(events.len() as u32);
        for (i, e) in events.iter().enumerate() {
            e.fill(list.reborrow().get(i as u32));
        }
        Ok(())
    }
}

/// A live subscription; releasing its last reference unsubscribes. It holds its hub
/// weakly: a handler holding its own subscription must not keep the object's hub alive.
struct SubscriptionServer {
    hub: Weak<EventHub>,
    id: u64,
    stuck: Stuck,
}

impl Drop for SubscriptionServer {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unsubscribe(self.id);
        }
    }
}

impl subscription::Server for SubscriptionServer {
    async fn cancel(
        self: CapRc<Self>,
        _: subscription::CancelParams,
        _: subscription::CancelResults,
    ) -> capnp::Result<()> {
        if let Some(hub) = self.hub.upgrade() {
            hub.unsubscribe(self.id);
        }
        Ok(())
    }

    async fn dropped(
        self: CapRc<Self>,
        _: subscription::DroppedParams,
        mut results: subscription::DroppedResults,
    ) -> capnp::Result<()> {
        if self.stuck.get() {
            return Err(RpcError::new(
                Code::Timeout,
                "the subscription ended: its handler did not answer deliveries within the deadline",
            )
            .into());
        }
        results.get().set_count(self.hub.upgrade().map_or(0, |hub| hub.dropped(self.id)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_every_wildcard_form() {
        let cases = [
            ("Customer.created", true, false, false),
            ("*.created", true, false, true),
            ("Customer.*", true, true, false),
            ("*.*", true, true, true),
            ("*", true, true, true),
        ];
        for (p, created, updated, order_created) in cases {
            let pat = Pattern::parse(p).unwrap();
            assert_eq!(pat.matches("Customer", "created"), created, "{p}");
            assert_eq!(pat.matches("Customer", "updated"), updated, "{p}");
            assert_eq!(pat.matches("Order", "created"), order_created, "{p}");
        }
        for bad in ["Customer", "a.b.c", "Cust omer.x", "x.", "%.created"] {
            assert_eq!(Pattern::parse(bad).unwrap_err().code, Code::InvalidArgument, "{bad}");
        }
        assert_eq!(parse_type("Customer.*").unwrap_err().code, Code::InvalidArgument);
        assert_eq!(parse_type("Customer.created").unwrap(), ("Customer".into(), "created".into()));
    }
}
