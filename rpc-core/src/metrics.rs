//! Server-wide counters, shared by every worker thread, readable from `GET /health`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what the server has done.
#[derive(Default)]
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
    /// Sessions currently open (WebSocket and TCP).
    pub active_sessions: AtomicU64,
    /// Sessions that ended because the peer broke the protocol or a hard limit.
    pub aborted_sessions: AtomicU64,
    /// HTTP requests refused as a whole (bad path, type, body or batch).
    pub refused_requests: AtomicU64,
    /// More Prometheus text for `GET /metrics` (e.g. the broker's).
    extra: std::sync::OnceLock<Extra>,
    /// Calls served, by method and outcome: (count, total microseconds).
    calls: std::sync::Mutex<CallTable>,
}

/// Calls by (method, outcome code): (count, total microseconds).
type CallTable = std::collections::BTreeMap<(String, &'static str), (u64, u64)>;

/// Renders more metrics text.
pub type Extra = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

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

    /// The counters in Prometheus text format, followed by the extra text.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        if let serde_json::Value::Object(m) = self.to_json() {
            for (k, v) in m {
                out.push_str(&format!("# TYPE dotdo_{k} gauge\ndotdo_{k} {v}\n"));
            }
        }
        if let Some(extra) = self.extra.get() {
            out.push_str(&extra());
        }
        out
    }

    /// Records one call of `method` (`interface.method`, e.g. `storage.get`) that took
    /// `elapsed` and ended with `outcome` (`None` for success, else the error's code).
    /// The server's metrics layer calls this for every call arriving over the network.
    pub fn observe_call(&self, method: &str, elapsed: std::time::Duration, outcome: Option<crate::Code>) {
        let code = outcome.map_or("OK", |c| c.as_str());
        if let Ok(mut calls) = self.calls.lock() {
            let e = calls.entry((method.to_string(), code)).or_default();
            e.0 += 1;
            e.1 += elapsed.as_micros() as u64;
        }
    }

    /// How many calls of `method` ended with `code` (`"OK"` for success).
    pub fn calls(&self, method: &str, code: &str) -> u64 {
        self.calls
            .lock()
            .map_or(0, |c| c.iter().filter(|((m, k), _)| m == method && *k == code).map(|(_, v)| v.0).sum())
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
            "tcp_sessions": Self::get(&self.tcp_sessions),
            "active_sessions": Self::get(&self.active_sessions),
            "aborted_sessions": Self::get(&self.aborted_sessions),
            "refused_requests": Self::get(&self.refused_requests),
        })
    }
}
