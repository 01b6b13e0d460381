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
    /// How long a client may take to send a request's head (request line and headers)
    /// on HTTP; a slower connection is closed.
    pub header_read_timeout: Duration,
    /// How long a client may take to send an HTTP batch body once its head is read; a
    /// slower body (an endless chunked body, a `Content-Length` never reached) is
    /// answered 408 with a TIMEOUT JSON error and the connection closed.
    pub body_read_timeout: Duration,
    /// A streaming session (WebSocket or TCP) with no frame in either direction for
    /// this long is closed with a TIMEOUT abort. Calls in flight keep a session busy:
    /// the server uses at least [`Limits::call_timeout`] here, since a call is answered
    /// (with TIMEOUT at worst) within it. A client that holds capabilities without
    /// calling keeps its session by sending a WebSocket ping (or any call) more often
    /// than this. Default 5 minutes.
    pub idle_timeout: Duration,
    /// How long a frame may take from its first byte to its last; a session whose
    /// partial frame is older is closed with a TIMEOUT abort (slow-loris senders).
    pub frame_read_timeout: Duration,
    /// Connections (HTTP and TCP) the server holds at once; the one over the cap is
    /// answered 503 (HTTP) or closed at once (TCP). `None`: derived from the process's
    /// descriptor limit (`RLIMIT_NOFILE`) at start-up, see `rpc_server`.
    pub max_connections: Option<usize>,
    /// Bytes all sessions together may hold in partial frames beyond each connection's
    /// fixed read buffer; a session whose partial frame would pass it is closed with an
    /// OVERLOADED abort. Memory held by partial frames stays under this plus the fixed
    /// per-connection buffer times the connection cap.
    pub partial_frame_budget: usize,
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
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            frame_read_timeout: Duration::from_secs(30),
            max_connections: None,
            partial_frame_budget: 256 << 20,
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
