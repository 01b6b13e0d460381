//! Broker metrics: calls, errors and latency per method, and tokens minted, redeemed and
//! rejected by reason; rendered as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default, Clone, Copy)]
struct MethodStats {
    calls: u64,
    errors: u64,
    total_us: u64,
    max_us: u64,
}

/// Counters shared by every session of a server.
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    methods: Mutex<BTreeMap<String, MethodStats>>,
    tokens: Mutex<BTreeMap<(String, String), u64>>,
}

impl BrokerMetrics {
    /// Records one call of `method` that took `took` and failed or not.
    pub fn call(&self, method: &str, took: Duration, failed: bool) {
        if let Ok(mut m) = self.methods.lock() {
            let s = m.entry(method.to_string()).or_default();
            let us = took.as_micros() as u64;
            s.calls += 1;
            s.errors += u64::from(failed);
            s.total_us += us;
            s.max_us = s.max_us.max(us);
        }
    }

    /// Records a token outcome: `minted`, `redeemed`, or `rejected` with a reason code.
    pub fn token(&self, outcome: &str, reason: &str) {
        if let Ok(mut t) = self.tokens.lock() {
            *t.entry((outcome.to_string(), reason.to_string())).or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP dotdo_broker_calls_total Calls through broker membranes, by method.\n# TYPE dotdo_broker_calls_total counter\n");
        let methods = self.methods.lock().map(|m| m.clone()).unwrap_or_default();
        for (m, s) in &methods {
            let _ = writeln!(out, "dotdo_broker_calls_total{{method=\"{m}\"}} {}", s.calls);
        }
        out.push_str(
            "# HELP dotdo_broker_errors_total Failed calls, by method.\n# TYPE dotdo_broker_errors_total counter\n",
        );
        for (m, s) in &methods {
            let _ = writeln!(out, "dotdo_broker_errors_total{{method=\"{m}\"}} {}", s.errors);
        }
        out.push_str("# HELP dotdo_broker_latency_seconds_sum Time spent in calls, by method.\n# TYPE dotdo_broker_latency_seconds_sum counter\n");
        for (m, s) in &methods {
            let _ = writeln!(out, "dotdo_broker_latency_seconds_sum{{method=\"{m}\"}} {:.6}", s.total_us as f64 / 1e6);
        }
        out.push_str("# HELP dotdo_broker_latency_seconds_max Slowest call, by method.\n# TYPE dotdo_broker_latency_seconds_max gauge\n");
        for (m, s) in &methods {
            let _ = writeln!(out, "dotdo_broker_latency_seconds_max{{method=\"{m}\"}} {:.6}", s.max_us as f64 / 1e6);
        }
        out.push_str("# HELP dotdo_broker_tokens_total Tokens by outcome and reason.\n# TYPE dotdo_broker_tokens_total counter\n");
        for ((o, r), n) in self.tokens.lock().map(|t| t.clone()).unwrap_or_default() {
            let _ = writeln!(out, "dotdo_broker_tokens_total{{outcome=\"{o}\",reason=\"{r}\"}} {n}");
        }
        out
    }
}

impl rpc_core::layer::CallObserver for BrokerMetrics {
    fn observe_call(&self, method: &str, elapsed: Duration, outcome: Option<rpc_core::Code>) {
        self.call(method, elapsed, outcome.is_some());
    }
}
