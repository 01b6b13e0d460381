//! The events of one write, held from their insert (inside the write's transaction)
//! until they are delivered (after it has committed), in bounded memory: whole up to
//! [`KEEP_BYTES`], beyond that by their position in the log, read back one at a time to
//! deliver. Nothing is kept when the object has no subscribers.

use super::{Event, EventHub};
use rpc_core::RpcError;
use std::rc::Rc;

/// Bytes of events an [`Outbox`] keeps whole; later events of the same write are kept
/// by position only.
pub const KEEP_BYTES: usize = 4 << 20;

/// The events of one write waiting for its commit.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Whether anyone listens (else nothing is kept).
    watched: bool,
    whole: Vec<Event>,
    bytes: usize,
    by_seq: Vec<u64>,
}

impl Outbox {
    /// An empty outbox for a write on `hub`'s object.
    pub fn new(hub: &EventHub) -> Outbox {
        Outbox { watched: hub.has_subscribers(), ..Outbox::default() }
    }

    /// Forgets what it holds (a transaction retried from the start).
    pub fn clear(&mut self) {
        self.whole.clear();
        self.by_seq.clear();
        self.bytes = 0;
    }

    /// Holds a stored event for delivery.
    pub fn keep(&mut self, event: Event) {
        if !self.watched {
            return;
        }
        if self.by_seq.is_empty() && self.bytes + event.size() <= KEEP_BYTES {
            self.bytes += event.size();
            self.whole.push(event);
        } else {
            self.by_seq.push(event.seq);
        }
    }

    /// Delivers every event held, in order (call after the commit).
    pub fn deliver(self, hub: &Rc<EventHub>) -> Result<(), RpcError> {
        for e in &self.whole {
            hub.publish(e);
        }
        for seq in self.by_seq {
            hub.publish_logged(seq)?;
        }
        Ok(())
    }
}
