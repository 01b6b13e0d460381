//! Accepting connections: the server-wide connection cap, and backing off when the
//! process runs out of file descriptors instead of retrying at once.
//!
//! Out of descriptors (EMFILE/ENFILE), `accept` fails while the connection stays queued,
//! so retrying at once spins. The acceptor then sleeps (10 ms, doubling to 100 ms) and
//! logs once per burst. It keeps one spare descriptor: on such an error it closes the
//! spare, accepts the waiting connection, refuses it (a 503 JSON answer on HTTP) and takes
//! the spare back, so clients are told instead of left hanging in the backlog.
//! Connections already open (keep-alive HTTP, sessions) are served throughout.

use rpc_core::metrics::Metrics;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The first pause after an accept error.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause between accept attempts while errors go on.
const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Descriptors kept for other uses (log files, objects' databases, the spare) when the
/// connection cap is derived from the descriptor limit.
const RESERVED_FDS: usize = 64;

/// The answer to an HTTP connection over the cap: 503 with the usual JSON error body.
const HTTP_OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: 77\r\n\r\n\
{\"code\":\"OVERLOADED\",\"message\":\"the server holds all the connections it may\"}";

/// The connection cap when none is configured: three quarters of the descriptors above
/// [`RESERVED_FDS`] (the rest stay for objects' databases and files), at least 16.
pub(crate) fn default_max_connections() -> usize {
    let nofile = open_files_limit().map_or(1024, |n| usize::try_from(n).unwrap_or(usize::MAX / 2).min(usize::MAX / 2));
    (nofile.saturating_sub(RESERVED_FDS) * 3 / 4).max(16)
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits` (Linux; None
/// elsewhere); `u64::MAX` when unlimited.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_limits(&text)
}

/// The soft "Max open files" of a `/proc/<pid>/limits` text.
pub fn parse_limits(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.trim_start_matches("Max open files").split_whitespace().next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// The count of open connections, shared by every worker.
#[derive(Debug)]
pub(crate) struct Connections {
    open: AtomicUsize,
    max: usize,
}

impl Connections {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Connections { open: AtomicUsize::new(0), max })
    }

    fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1)).ok()?;
        Some(Slot(self.clone()))
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// One open connection's place under the cap; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot(Arc<Connections>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Which listener an acceptor serves (how it refuses a connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http,
    Tcp,
}

/// Accepts from one listener under the cap, backing off on errors.
pub(crate) struct Acceptor {
    listener: TcpListener,
    protocol: Protocol,
    connections: Arc<Connections>,
    metrics: Arc<Metrics>,
    spare: Option<std::fs::File>,
    backoff: Duration,
    /// Errors since the last successful accept (logged once per burst).
    failing: u64,
}

fn spare() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Whether `e` says the process or system is out of descriptors (or memory for them).
fn out_of_descriptors(e: &io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 on Linux.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

impl Acceptor {
    pub(crate) fn new(
        listener: TcpListener,
        protocol: Protocol,
        connections: Arc<Connections>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Acceptor { listener, protocol, connections, metrics, spare: spare(), backoff: BACKOFF_MIN, failing: 0 }
    }

    /// The next connection under the cap, with its place.
    pub(crate) async fn next(&mut self) -> (TcpStream, Slot) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    if self.failing > 0 {
                        tracing::info!(errors = self.failing, "accepting connections again");
                        self.failing = 0;
                        self.backoff = BACKOFF_MIN;
                    }
                    match self.connections.try_acquire() {
                        Some(slot) => return (stream, slot),
                        None => self.refuse(&stream),
                    }
                }
                Err(e) => self.on_error(&e).await,
            }
        }
    }

    /// Tells the peer it is refused (best effort, never waiting) and closes it.
    fn refuse(&self, stream: &TcpStream) {
        Metrics::inc(&self.metrics.refused_connections);
        if self.protocol == Protocol::Http {
            let _ = stream.try_write(HTTP_OVERLOADED);
        }
        tracing::debug!(open = self.connections.open(), "connection refused: the server is at its connection cap");
    }

    async fn on_error(&mut self, e: &io::Error) {
        if !out_of_descriptors(e) {
            // The peer gave up before we took it (ECONNABORTED and the like).
            tracing::debug!(error = %e, "accept failed");
            return;
        }
        if self.failing == 0 {
            tracing::warn!(error = %e, "out of file descriptors: refusing new connections until some close");
        }
        self.failing += 1;
        // Free the spare, take the waiting connection, refuse it, take the spare back.
        self.spare = None;
        let waker = std::task::Waker::noop();
        if let std::task::Poll::Ready(Ok((stream, _))) =
            self.listener.poll_accept(&mut std::task::Context::from_waker(waker))
        {
            self.refuse(&stream);
        }
        self.spare = spare();
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63704                63704                processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_limits(text), Some(1024));
        assert_eq!(parse_limits("Max open files unlimited unlimited files"), Some(u64::MAX));
        assert_eq!(parse_limits("nothing here"), None);
        assert!(default_max_connections() >= 16);
        if cfg!(target_os = "linux") {
            assert!(open_files_limit().is_some_and(|n| n > 0));
        }
    }

    #[test]
    fn the_cap_counts_open_slots() {
        let c = Connections::new(2);
        let a = c.try_acquire().expect("first");
        let _b = c.try_acquire().expect("second");
        assert!(c.try_acquire().is_none(), "over the cap");
        drop(a);
        assert_eq!(c.open(), 1);
        assert!(c.try_acquire().is_some(), "a closed connection frees its place");
    }

    #[test]
    fn the_http_refusal_is_valid_json_of_the_right_length() {
        let text = std::str::from_utf8(HTTP_OVERLOADED).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["code"], "OVERLOADED");
    }
}
