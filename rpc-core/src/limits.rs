//! Limits on what one peer may ask of another, with defaults and settings.
//!
//! Every limit exceeded gives the caller a typed error ([`crate::Code::LimitExceeded`],
//! [`crate::Code::Overloaded`] or [`crate::Code::Timeout`]); the server and its other
//! sessions go on.

use std::time::Duration;

/// The limits of one server (or client) applied to every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest Cap'n Proto message accepted, in bytes. A call over it gets LIMIT_EXCEEDED.
    pub max_message_bytes: usize,
    /// Frames over this many bytes are not even read: the connection is closed.
    pub max_frame_bytes: usize,
    /// Words a peer's message may make us read (guards against amplification).
    pub traversal_limit_words: usize,
    /// Deepest nesting of structs and lists accepted in one message.
    pub nesting_limit: i32,
    /// Calls one session may have in flight on the server; more get OVERLOADED.
    pub max_calls_in_flight: usize,
    /// Messages one HTTP batch may carry.
    pub max_batch_messages: usize,
    /// Bytes one HTTP batch body may have.
    pub max_batch_bytes: usize,
    /// How long one call may run before it is answered with TIMEOUT.
    pub call_timeout: Duration,
    /// High-water mark of a session's unsent bytes: while more than this many bytes of
    /// answers wait to be written (the peer does not read), the session reads no more
    /// calls. With `max_calls_in_flight` it bounds what a session's answers hold.
    pub max_unsent_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 8 << 20,
            max_frame_bytes: 32 << 20,
            traversal_limit_words: 8 << 20,
            nesting_limit: 64,
            max_calls_in_flight: 4096,
            max_batch_messages: 4096,
            max_batch_bytes: 16 << 20,
            call_timeout: Duration::from_secs(30),
            max_unsent_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// The reader options that enforce the traversal and nesting limits.
    pub fn reader_options(&self) -> capnp::message::ReaderOptions {
        let mut o = capnp::message::ReaderOptions::new();
        o.traversal_limit_in_words(Some(self.traversal_limit_words)).nesting_limit(self.nesting_limit);
        o
    }
}
