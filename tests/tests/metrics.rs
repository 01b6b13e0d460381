//! `GET /metrics` of a real server, parsed by an OpenMetrics parser: the server's
//! counters as counters, open sessions as a gauge, calls by method as a latency
//! histogram and a counter by method and code, the broker's and the object host's
//! families beside them.

mod common;

use common::*;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use rpc_core::Code;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// GETs `path` and returns (status, content type, body).
async fn get(s: &rpc_server::ServerHandle, path: &str) -> (u16, String, String) {
    let mut c = tokio::net::TcpStream::connect(s.http_addr).await.expect("tcp");
    let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    c.write_all(head.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let ctype = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    (status, ctype, body.to_string())
}

async fn scrape(s: &rpc_server::ServerHandle) -> Exposition {
    let (status, ctype, body) = get(s, "/metrics").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    openmetrics_parser::openmetrics::parse_openmetrics(&body).unwrap_or_else(|e| panic!("{e:?} in\n{body}"))
}

/// The family `name`, checked to be of type `ty`.
fn family<'a>(
    m: &'a Exposition,
    name: &str,
    ty: OpenMetricsType,
) -> &'a openmetrics_parser::MetricFamily<OpenMetricsType, OpenMetricsValue> {
    let f = m.families.get(name).unwrap_or_else(|| panic!("no family {name}: {:?}", m.families.keys()));
    assert_eq!(f.family_type, ty, "{name}");
    f
}

/// The value of the single sample of a counter or gauge family without labels.
fn value(m: &Exposition, name: &str, ty: OpenMetricsType) -> f64 {
    let f = family(m, name, ty);
    let sample = f.iter_samples().next().unwrap_or_else(|| panic!("{name} has no sample"));
    match &sample.value {
        OpenMetricsValue::Counter(c) => c.value.as_f64(),
        OpenMetricsValue::Gauge(g) => g.as_f64(),
        other => panic!("{name}: {other:?}"),
    }
}

/// The sample of `name` whose labels include all of `labels`.
fn sample<'a>(m: &'a Exposition, name: &str, ty: OpenMetricsType, labels: &[(&str, &str)]) -> &'a OpenMetricsValue {
    let f = family(m, name, ty);
    let found = f.iter_samples().find(|s| {
        let set = s.get_labelset().expect("labels");
        labels.iter().all(|(k, v)| set.get_label_value(k) == Some(*v))
    });
    &found.unwrap_or_else(|| panic!("{name} has no sample {labels:?}")).value
}

#[test]
fn metrics_are_typed_openmetrics_with_the_right_values() {
    let dir = data_dir("metrics");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, http, tcp] = urls(&s);
    rpc_client::run(async {
        // One WebSocket session, open while the first scrape runs.
        let session = rpc_client::connect(&ws).await.expect("ws");
        assert!(!chain(&directory(&session.bootstrap), "docs", "intro").await.expect("ws chain").is_empty());
        let first = scrape(&s).await;
        assert_eq!(value(&first, "dotdo_active_sessions", OpenMetricsType::Gauge), 1.0);
        assert_eq!(value(&first, "dotdo_ws_sessions", OpenMetricsType::Counter), 1.0);
        drop(session);

        // One HTTP batch, one TCP session, one refused request.
        let batch = rpc_client::batch(&http).await.expect("http");
        chain(&directory(&batch.bootstrap), "docs", "intro").await.expect("http chain");
        let stream = rpc_client::connect(&tcp).await.expect("tcp");
        chain(&directory(&stream.bootstrap), "docs", "intro").await.expect("tcp chain");
        let (status, _, _) = get(&s, "/nowhere").await;
        assert_eq!(status, 404);
        // One object call: the host loads the object.
        let mut object = stream.bootstrap.object_request();
        object.get().set_class("Metrics");
        object.get().set_name("m");
        let storage = object.send().pipeline.get_object().storage_request().send().pipeline.get_storage();
        let mut create = storage.create_request();
        create.get().set_type("Note");
        create.get().set_id("n1");
        create.get().set_data("{}");
        create.send().promise.await.expect("create");
        // A token the broker rejects (no key configured, or not a token at all).
        let mut req = stream.bootstrap.broker_request();
        req.get().set_api_key("");
        let mut verify = req.send().pipeline.get_broker().verify_request();
        verify.get().set_token("not-a-token");
        let rejected = code(verify.send().promise.await);
        assert!([Code::SecretRequired, Code::Malformed].contains(&rejected), "{rejected:?}");

        // What the per-call layer reports, through the server's own Metrics.
        s.metrics.observe_call("storage.get", Duration::from_micros(300), None);
        s.metrics.observe_call("storage.get", Duration::from_millis(20), None);
        s.metrics.observe_call("storage.get", Duration::from_millis(2), Some(Code::NotFound));

        let m = scrape(&s).await;
        // The upgrade, the first scrape, the batch, /nowhere and this scrape.
        assert_eq!(value(&m, "dotdo_http_requests", OpenMetricsType::Counter), 5.0);
        assert_eq!(value(&m, "dotdo_http_batches", OpenMetricsType::Counter), 1.0);
        assert!(value(&m, "dotdo_batch_messages", OpenMetricsType::Counter) >= 3.0, "bootstrap and the chain");
        assert_eq!(value(&m, "dotdo_tcp_sessions", OpenMetricsType::Counter), 1.0);
        assert_eq!(value(&m, "dotdo_refused_requests", OpenMetricsType::Counter), 1.0);
        family(&m, "dotdo_aborted_sessions", OpenMetricsType::Counter);

        let ok = sample(&m, "dotdo_calls", OpenMetricsType::Counter, &[("method", "storage.get"), ("code", "OK")]);
        let OpenMetricsValue::Counter(ok) = ok else { panic!("{ok:?}") };
        assert_eq!(ok.value.as_f64(), 2.0);
        let nf =
            sample(&m, "dotdo_calls", OpenMetricsType::Counter, &[("method", "storage.get"), ("code", "NOT_FOUND")]);
        let OpenMetricsValue::Counter(nf) = nf else { panic!("{nf:?}") };
        assert_eq!(nf.value.as_f64(), 1.0);

        let h = sample(&m, "dotdo_call_duration_seconds", OpenMetricsType::Histogram, &[("method", "storage.get")]);
        let OpenMetricsValue::Histogram(h) = h else { panic!("{h:?}") };
        assert_eq!(h.count, Some(3));
        let sum = h.sum.expect("a sum").as_f64();
        assert!((sum - 0.0223).abs() < 1e-9, "{sum}");
        let le =
            |bound: f64| h.buckets.iter().find(|b| b.upper_bound == bound).map(|b| b.count.as_f64()).expect("a bucket");
        assert_eq!((le(0.0005), le(0.0025), le(0.025), le(f64::INFINITY)), (1.0, 2.0, 3.0, 3.0));

        // The broker's families are in the same exposition.
        let labels = [("outcome", "rejected"), ("reason", rejected.as_str())];
        let t = sample(&m, "dotdo_broker_tokens", OpenMetricsType::Counter, &labels);
        let OpenMetricsValue::Counter(t) = t else { panic!("{t:?}") };
        assert_eq!(t.value.as_f64(), 1.0);
        // And the object host's: one object loaded and still in memory.
        assert_eq!(value(&m, "dotdo_objects_live", OpenMetricsType::Gauge), 1.0);
        assert_eq!(value(&m, "dotdo_objects_loads", OpenMetricsType::Counter), 1.0);
        assert_eq!(value(&m, "dotdo_objects_evictions", OpenMetricsType::Counter), 0.0);
        // Three gets: one reads SQLite, two come from the object's hot tier.
        for _ in 0..3 {
            let mut get = storage.get_request();
            get.get().set_id("n1");
            get.send().promise.await.expect("get");
        }
        let m = scrape(&s).await;
        assert_eq!(value(&m, "dotdo_objects_hot_misses", OpenMetricsType::Counter), 1.0);
        assert_eq!(value(&m, "dotdo_objects_hot_hits", OpenMetricsType::Counter), 2.0);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
