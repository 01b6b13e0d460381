//! The subscribers of one object and their queues, as plain bookkeeping: no I/O and no
//! calls out, so the hub can change the table inside one short borrow and deliver (call
//! handlers, drop released ones) after the borrow has ended.
//!
//! Every bound is a [`SubscriberLimits`]: subscribers per object, events and bytes queued
//! per subscriber, and how long and how often a handler may keep a delivery unanswered.
//! A queue over its bound **drops its oldest events** (counted in
//! `Subscription.dropped`), so a subscriber that falls behind keeps the newest events
//! and can fetch the gap from the log (`Events.list` from the last `seq` it saw).

use super::{Event, Pattern};
use rpc_core::{Code, RpcError};
use schema::object_capnp::handler;
use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

/// Events a subscriber may have waiting (by default; see [`SubscriberLimits`]).
pub const QUEUE_CAPACITY: usize = 1024;

/// The bounds on an object's subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberLimits {
    /// Most subscribers one object has at once; the next `subscribe` gets
    /// LIMIT_EXCEEDED. Default 1,024.
    pub max_subscribers: usize,
    /// Most events one subscriber may have waiting. Default [`QUEUE_CAPACITY`].
    pub queue_events: usize,
    /// Most bytes of events (their data, type, ids) one subscriber may have waiting; an
    /// event larger than this is still queued when the queue is otherwise empty. The
    /// events are shared between the queues they wait in, so this bounds what one
    /// subscriber holds alive. Default 1 MiB.
    pub queue_bytes: usize,
    /// A handler that has not answered an event within this is treated as failed (the
    /// call is cancelled and the next event delivered). Default 10 s.
    pub delivery_timeout: Duration,
    /// After this many deliveries in a row time out the subscription ends (logged, and
    /// `Subscription.dropped` then answers TIMEOUT). Default 3.
    pub max_timeouts: u32,
}

impl Default for SubscriberLimits {
    fn default() -> Self {
        SubscriberLimits {
            max_subscribers: 1024,
            queue_events: QUEUE_CAPACITY,
            queue_bytes: 1 << 20,
            delivery_timeout: Duration::from_secs(10),
            max_timeouts: 3,
        }
    }
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler answered.
    Answered,
    /// The handler failed: that event is lost, the subscription goes on.
    Failed,
    /// The handler's connection is gone: so is the subscription.
    Gone,
    /// The handler did not answer within the delivery deadline.
    TimedOut,
}

/// Set when the hub ended a subscription itself because its handler was stuck; shared
/// with the subscription's capability so it can tell its holder.
pub(crate) type Stuck = Rc<Cell<bool>>;

pub(crate) struct Subscriber {
    id: u64,
    pattern: Pattern,
    handler: handler::Client,
    queue: VecDeque<Rc<Event>>,
    queued_bytes: usize,
    delivering: bool,
    dropped: u64,
    /// Deliveries in a row that timed out.
    timeouts: u32,
    stuck: Stuck,
}

/// What a subscriber's delivery task does next.
pub(crate) enum Next {
    /// Deliver this event to this handler.
    Deliver(Rc<Event>, handler::Client),
    /// Nothing is waiting (or the subscriber is gone): the task ends.
    Stop,
}

/// The subscribers of one object.
pub(crate) struct Subscribers {
    list: Vec<Subscriber>,
    next_id: u64,
    limits: SubscriberLimits,
}

impl Subscribers {
    pub(crate) fn new(limits: SubscriberLimits) -> Self {
        Subscribers { list: Vec::new(), next_id: 0, limits }
    }

    pub(crate) fn limits(&self) -> &SubscriberLimits {
        &self.limits
    }

    /// Adds a subscriber, or LIMIT_EXCEEDED when the object has as many as it may.
    pub(crate) fn add(&mut self, pattern: Pattern, handler: handler::Client) -> Result<(u64, Stuck), RpcError> {
        if self.list.len() >= self.limits.max_subscribers {
            return Err(RpcError::new(
                Code::LimitExceeded,
                format!("this object has {} subscribers, the most it takes", self.list.len()),
            ));
        }
        self.next_id += 1;
        let stuck = Stuck::default();
        self.list.push(Subscriber {
            id: self.next_id,
            pattern,
            handler,
            queue: VecDeque::new(),
            queued_bytes: 0,
            delivering: false,
            dropped: 0,
            timeouts: 0,
            stuck: stuck.clone(),
        });
        Ok((self.next_id, stuck))
    }

    /// Takes a subscriber out of the table; the caller drops it once its borrow of the
    /// table has ended (dropping the handler may call back into the hub).
    #[must_use = "drop the subscriber after the table's borrow has ended"]
    pub(crate) fn remove(&mut self, id: u64) -> Option<Subscriber> {
        let i = self.list.iter().position(|s| s.id == id)?;
        Some(self.list.remove(i))
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Events dropped from a subscriber's queue so far.
    pub(crate) fn dropped(&self, id: u64) -> u64 {
        self.list.iter().find(|s| s.id == id).map_or(0, |s| s.dropped)
    }

    /// Queues `event` for every subscriber whose pattern matches, dropping the oldest
    /// waiting events of a queue it would overflow; returns the subscribers whose
    /// delivery task must start.
    pub(crate) fn offer(&mut self, event: &Event) -> Vec<u64> {
        let size = event.size();
        let mut start = Vec::new();
        // One copy of the event, shared by every queue it waits in (none if no one listens).
        let mut shared: Option<Rc<Event>> = None;
        for s in self.list.iter_mut().filter(|s| s.pattern.matches(&event.noun, &event.verb)) {
            while s.queue.len() >= self.limits.queue_events.max(1)
                || (!s.queue.is_empty() && s.queued_bytes + size > self.limits.queue_bytes)
            {
                let Some(old) = s.queue.pop_front() else { break };
                s.queued_bytes -= old.size();
                s.dropped += 1;
            }
            s.queue.push_back(shared.get_or_insert_with(|| Rc::new(event.clone())).clone());
            s.queued_bytes += size;
            if !s.delivering {
                s.delivering = true;
                start.push(s.id);
            }
        }
        start
    }

    /// The next event for a subscriber's delivery task.
    pub(crate) fn next(&mut self, id: u64) -> Next {
        let Some(s) = self.list.iter_mut().find(|s| s.id == id) else { return Next::Stop };
        match s.queue.pop_front() {
            Some(e) => {
                s.queued_bytes -= e.size();
                Next::Deliver(e, s.handler.clone())
            }
            None => {
                s.delivering = false;
                Next::Stop
            }
        }
    }

    /// Records how a delivery ended; returns the subscriber when that ends its
    /// subscription (its handler is gone, or stuck too many times in a row), for the
    /// caller to drop after its borrow.
    #[must_use = "drop the subscriber after the table's borrow has ended"]
    pub(crate) fn settle(&mut self, id: u64, outcome: Outcome) -> Option<Subscriber> {
        let max = self.limits.max_timeouts;
        let s = self.list.iter_mut().find(|s| s.id == id)?;
        match outcome {
            Outcome::Answered | Outcome::Failed => {
                s.timeouts = 0;
                None
            }
            Outcome::Gone => self.remove(id),
            Outcome::TimedOut => {
                s.timeouts += 1;
                if s.timeouts < max.max(1) {
                    return None;
                }
                s.stuck.set(true);
                self.remove(id)
            }
        }
    }
}

impl Subscriber {
    /// Its id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Events it had waiting.
    pub(crate) fn waiting(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(bytes: usize) -> Event {
        Event {
            id: String::new(),
            seq: 0,
            noun: "A".into(),
            verb: "b".into(),
            data: "x".repeat(bytes),
            timestamp: 0,
            source: String::new(),
        }
    }

    fn handler() -> handler::Client {
        capnp_rpc::new_client(Nothing)
    }

    struct Nothing;
    impl handler::Server for Nothing {}

    #[test]
    fn a_full_queue_drops_its_oldest_events_by_bytes() {
        let mut subs = Subscribers::new(SubscriberLimits { queue_bytes: 1000, ..Default::default() });
        let (id, _) = subs.add(Pattern::parse("*").unwrap(), handler()).unwrap();
        assert_eq!(subs.offer(&event(400)), [id], "the first event starts the delivery");
        assert!(subs.offer(&event(397)).is_empty());
        subs.offer(&event(300));
        assert_eq!(subs.dropped(id), 1, "the oldest made room");
        let Next::Deliver(e, _) = subs.next(id) else { panic!("an event waits") };
        assert_eq!(e.data.len(), 397);
        // One event over the whole budget still goes through on its own.
        subs.offer(&event(5000));
        assert_eq!(subs.dropped(id), 2);
        let Next::Deliver(e, _) = subs.next(id) else { panic!("an event waits") };
        assert_eq!(e.data.len(), 5000);
        assert!(matches!(subs.next(id), Next::Stop));
    }

    #[test]
    fn subscribers_are_capped_and_stuck_ones_removed() {
        let limits = SubscriberLimits { max_subscribers: 2, max_timeouts: 2, ..Default::default() };
        let mut subs = Subscribers::new(limits);
        let (a, stuck) = subs.add(Pattern::parse("*").unwrap(), handler()).unwrap();
        subs.add(Pattern::parse("*").unwrap(), handler()).unwrap();
        let e = subs.add(Pattern::parse("*").unwrap(), handler()).unwrap_err();
        assert_eq!(e.code, Code::LimitExceeded);
        assert!(subs.settle(a, Outcome::TimedOut).is_none());
        assert!(subs.settle(a, Outcome::Answered).is_none(), "an answer resets the count");
        assert!(subs.settle(a, Outcome::TimedOut).is_none());
        assert!(!stuck.get());
        assert_eq!(subs.settle(a, Outcome::TimedOut).map(|s| s.id()), Some(a));
        assert!(stuck.get());
        subs.add(Pattern::parse("*").unwrap(), handler()).expect("room again");
    }
}
