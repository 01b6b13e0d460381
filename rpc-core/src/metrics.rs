//! Server-wide counters, shared by every worker thread: readable as JSON from
//! `GET /health` and rendered by `prometheus-client` for `GET /metrics` (OpenMetrics
//! text): the counters as counters, `active_sessions` as a gauge, and every call by
//! method as a latency histogram and a counter by method and outcome code.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

/// The content type of [`Metrics::prometheus`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the call latency buckets, in seconds: 100 µs to 30 s.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

/// The labels of a call's latency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabel {
    method: Cow<'static, str>,
}

/// The labels of a call count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    method: Cow<'static, str>,
    code: Cow<'static, str>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Counters of what the server has done.
pub struct Metrics {
    /// HTTP requests of any kind.
    pub http_requests: AtomicU64,
    /// `POST /rpc` batches served (one per request).
    pub http_batches: AtomicU64,
    /// Messages received in HTTP batches.
    pub batch_messages: AtomicU64,
    /// WebSocket sessions opened.
    pub ws_sessions: AtomicU64,
    /// TCP sessions opened.
    pub tcp_sessions: AtomicU64,
    /// Cap'n Web WebSocket sessions opened (`GET /capnweb`).
    pub capnweb_sessions: AtomicU64,
    /// Cap'n Web HTTP batches served (`POST /capnweb`).
    pub capnweb_batches: AtomicU64,
    /// Messages received from Cap'n Web peers (WebSocket and batch).
    pub capnweb_messages: AtomicU64,
    /// Sessions currently open (WebSocket and TCP).
    pub active_sessions: AtomicU64,
    /// Sessions that ended because the peer broke the protocol or a hard limit.
    pub aborted_sessions: AtomicU64,
    /// HTTP requests refused as a whole (bad path, type, body or batch).
    pub refused_requests: AtomicU64,
    /// Connections refused at accept: over the connection cap, or out of descriptors.
    pub refused_connections: AtomicU64,
    /// More metrics for `GET /metrics` (e.g. the broker's).
    extra: std::sync::OnceLock<Extra>,
    /// Calls served, by method and outcome code.
    calls: Family<CallLabels, Counter>,
    /// Call latency, by method.
    latency: Family<MethodLabel, Histogram, fn() -> Histogram>,
}

/// Registers more metrics into the registry `GET /metrics` renders (prefix `dotdo_`).
pub type Extra = std::sync::Arc<dyn Fn(&mut Registry) + Send + Sync>;

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            http_requests: AtomicU64::new(0),
            http_batches: AtomicU64::new(0),
            batch_messages: AtomicU64::new(0),
            ws_sessions: AtomicU64::new(0),
            capnweb_sessions: AtomicU64::new(0),
            capnweb_batches: AtomicU64::new(0),
            capnweb_messages: AtomicU64::new(0),
            tcp_sessions: AtomicU64::new(0),
            active_sessions: AtomicU64::new(0),
            aborted_sessions: AtomicU64::new(0),
            refused_requests: AtomicU64::new(0),
            refused_connections: AtomicU64::new(0),
            extra: std::sync::OnceLock::new(),
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_json().to_string())
    }
}

impl Metrics {
    /// Adds `extra` to what `GET /metrics` serves (once; later calls are ignored).
    pub fn set_extra(&self, extra: Extra) {
        let _ = self.extra.set(extra);
    }

    /// The metrics in the OpenMetrics text format (served as [`CONTENT_TYPE`]), the extra
    /// ones included, ending with `# EOF`.
    pub fn prometheus(&self) -> String {
        let mut registry = Registry::with_prefix("dotdo");
        self.register(&mut registry);
        if let Some(extra) = self.extra.get() {
            extra(&mut registry);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Registers a snapshot of the counters, and the call families, into `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let counters: [(&str, &str, &AtomicU64); 11] = [
            ("http_requests", "HTTP requests of any kind", &self.http_requests),
            ("http_batches", "POST /rpc batches served", &self.http_batches),
            ("batch_messages", "Messages received in HTTP batches", &self.batch_messages),
            ("ws_sessions", "WebSocket sessions opened", &self.ws_sessions),
            ("capnweb_sessions", "Cap'n Web WebSocket sessions opened", &self.capnweb_sessions),
            ("capnweb_batches", "Cap'n Web HTTP batches served", &self.capnweb_batches),
            ("capnweb_messages", "messages received from Cap'n Web peers", &self.capnweb_messages),
            ("tcp_sessions", "TCP sessions opened", &self.tcp_sessions),
            (
                "aborted_sessions",
                "Sessions ended by a protocol violation, a hard limit or a lost peer",
                &self.aborted_sessions,
            ),
            ("refused_requests", "HTTP requests refused as a whole", &self.refused_requests),
            (
                "refused_connections",
                "Connections refused at accept (over the connection cap or out of descriptors)",
                &self.refused_connections,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, ConstCounter::new(Self::get(counter)));
        }
        let active = i64::try_from(Self::get(&self.active_sessions)).unwrap_or(i64::MAX);
        registry.register("active_sessions", "Sessions open now (WebSocket and TCP)", ConstGauge::new(active));
        registry.register("calls", "Calls served, by method and outcome code (OK for success)", self.calls.clone());
        registry.register("call_duration_seconds", "Time to answer a call, by method", self.latency.clone());
    }

    /// Records one call of `method` (`interface.method`, e.g. `storage.get`) that took
    /// `elapsed` and ended with `outcome` (`None` for success, else the error's code).
    /// The server's metrics layer calls this for every call arriving over the network.
    /// The schema's method names are `'static`, so recording a call allocates nothing.
    pub fn observe_call(
        &self,
        method: impl Into<Cow<'static, str>>,
        elapsed: std::time::Duration,
        outcome: Option<crate::Code>,
    ) {
        let method = method.into();
        let code = Cow::Borrowed(outcome.map_or("OK", |c| c.as_str()));
        self.latency.get_or_create(&MethodLabel { method: method.clone() }).observe(elapsed.as_secs_f64());
        self.calls.get_or_create(&CallLabels { method, code }).inc();
    }

    /// How many calls of `method` ended with `code` (`"OK"` for success).
    pub fn calls(&self, method: &str, code: &str) -> u64 {
        let labels = CallLabels { method: Cow::Owned(method.to_string()), code: Cow::Owned(code.to_string()) };
        self.calls.get(&labels).map_or(0, |c| c.get())
    }

    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The counters as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "http_requests": Self::get(&self.http_requests),
            "http_batches": Self::get(&self.http_batches),
            "batch_messages": Self::get(&self.batch_messages),
            "ws_sessions": Self::get(&self.ws_sessions),
            "capnweb_sessions": Self::get(&self.capnweb_sessions),
            "capnweb_batches": Self::get(&self.capnweb_batches),
            "capnweb_messages": Self::get(&self.capnweb_messages),
            "tcp_sessions": Self::get(&self.tcp_sessions),
            "active_sessions": Self::get(&self.active_sessions),
            "aborted_sessions": Self::get(&self.aborted_sessions),
            "refused_requests": Self::get(&self.refused_requests),
            "refused_connections": Self::get(&self.refused_connections),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn text_has_types_and_values() {
        let m = Metrics::default();
        Metrics::inc(&m.http_requests);
        Metrics::inc(&m.http_requests);
        m.active_sessions.store(3, Ordering::Relaxed);
        m.observe_call("storage.get", Duration::from_micros(300), None);
        m.observe_call("storage.get", Duration::from_millis(2), Some(crate::Code::NotFound));
        assert_eq!((m.calls("storage.get", "OK"), m.calls("storage.get", "NOT_FOUND")), (1, 1));
        assert_eq!(m.calls("storage.put", "OK"), 0);
        let text = m.prometheus();
        for line in [
            "# TYPE dotdo_http_requests counter",
            "dotdo_http_requests_total 2",
            "# TYPE dotdo_active_sessions gauge",
            "dotdo_active_sessions 3",
            "dotdo_calls_total{method=\"storage.get\",code=\"NOT_FOUND\"} 1",
            "# TYPE dotdo_call_duration_seconds histogram",
            "dotdo_call_duration_seconds_count{method=\"storage.get\"} 2",
            "dotdo_call_duration_seconds_bucket{le=\"0.0005\",method=\"storage.get\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn extra_metrics_join_the_same_exposition() {
        let m = Metrics::default();
        m.set_extra(std::sync::Arc::new(|r: &mut Registry| {
            r.register("extra", "One more", ConstCounter::new(7u64));
        }));
        let text = m.prometheus();
        assert!(text.contains("dotdo_extra_total 7"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
    }
}
