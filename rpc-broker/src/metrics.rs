//! Broker metrics: calls, errors and latency per method, and tokens minted, redeemed and
//! rejected by reason; kept in `prometheus-client` families and rendered as OpenMetrics
//! text, alone (`broker.metrics()`) or inside the server's `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: 100 µs to 30 s.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabel {
    method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TokenLabels {
    outcome: String,
    reason: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Counters shared by every session of a server.
#[derive(Debug)]
pub struct BrokerMetrics {
    calls: Family<MethodLabel, Counter>,
    errors: Family<MethodLabel, Counter>,
    latency: Family<MethodLabel, Histogram, fn() -> Histogram>,
    tokens: Family<TokenLabels, Counter>,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        BrokerMetrics {
            calls: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            tokens: Family::default(),
        }
    }
}

impl BrokerMetrics {
    /// Records one call of `method` that took `took` and failed or not.
    pub fn call(&self, method: &str, took: Duration, failed: bool) {
        let label = MethodLabel { method: method.to_string() };
        self.calls.get_or_create(&label).inc();
        // Every method that was called shows an error count, 0 included.
        let errors = self.errors.get_or_create(&label);
        if failed {
            errors.inc();
        }
        self.latency.get_or_create(&label).observe(took.as_secs_f64());
    }

    /// Records a token outcome: `minted`, `redeemed`, or `rejected` with a reason code.
    pub fn token(&self, outcome: &str, reason: &str) {
        self.tokens.get_or_create(&TokenLabels { outcome: outcome.to_string(), reason: reason.to_string() }).inc();
    }

    /// Registers the broker's families into `registry` as `broker_*` (under the server's
    /// `dotdo_` prefix they read `dotdo_broker_calls_total` and so on).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("broker");
        r.register("calls", "Calls through broker membranes, by method", self.calls.clone());
        r.register("errors", "Failed calls, by method", self.errors.clone());
        r.register("latency_seconds", "Time spent in calls, by method", self.latency.clone());
        r.register("tokens", "Tokens by outcome and reason", self.tokens.clone());
    }

    /// The broker's metrics alone, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("dotdo");
        self.register(&mut registry);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[cfg(feature = "native")]
impl rpc_core::layer::CallObserver for BrokerMetrics {
    fn observe_call(&self, method: std::borrow::Cow<'static, str>, elapsed: Duration, outcome: Option<rpc_core::Code>) {
        self.call(&method, elapsed, outcome.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_errors_latency_and_tokens_render() {
        let m = BrokerMetrics::default();
        m.call("storage.get", Duration::from_micros(200), false);
        m.call("storage.get", Duration::from_millis(3), true);
        m.token("rejected", "EXPIRED");
        let text = m.render();
        for line in [
            "# TYPE dotdo_broker_calls counter",
            "dotdo_broker_calls_total{method=\"storage.get\"} 2",
            "dotdo_broker_errors_total{method=\"storage.get\"} 1",
            "# TYPE dotdo_broker_latency_seconds histogram",
            "dotdo_broker_latency_seconds_count{method=\"storage.get\"} 2",
            "dotdo_broker_tokens_total{outcome=\"rejected\",reason=\"EXPIRED\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
