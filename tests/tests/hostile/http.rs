//! Whole HTTP requests, answered with a status and a JSON `{"code": ...}` body.

use super::*;
use serde_json::Value;

fn post(path: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn bare(method: &str, path: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

const CAPNP: &str = "application/x-capnp";

fn http_cases() -> Vec<(&'static str, Vec<u8>, u16, Code)> {
    let mut many_headers = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..200 {
        many_headers.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");
    let huge_header = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1 << 20)).into_bytes();
    let whole = bootstrap(0);
    let truncated = whole[..whole.len() - 4].to_vec();
    let nine: Vec<u8> = (0..9).flat_map(bootstrap).collect();
    let big = msg(|m| m.init_abort().set_reason("x".repeat(600 << 10)));
    vec![
        ("wrong content type", post("/rpc", "application/json", b"{}"), 400, Code::InvalidArgument),
        ("garbage batch", post("/rpc", CAPNP, b"\x01\x00\x00\x00garbage"), 400, Code::InvalidArgument),
        ("truncated batch", post("/rpc", CAPNP, &truncated), 400, Code::InvalidArgument),
        (
            "batch of a list-pointer root",
            post("/rpc", CAPNP, &raw(&[1], &[0x0000_0001_0000_0001])),
            400,
            Code::InvalidArgument,
        ),
        ("too many messages", post("/rpc", CAPNP, &nine), 413, Code::LimitExceeded),
        ("body over max_batch_bytes", post("/rpc", CAPNP, &big), 413, Code::LimitExceeded),
        ("batch calling an unknown import", post("/rpc", CAPNP, &call_import(0, 42)), 400, Code::InvalidArgument),
        ("GET /rpc without an upgrade", bare("GET", "/rpc"), 400, Code::InvalidArgument),
        ("PUT /rpc", bare("PUT", "/rpc"), 400, Code::InvalidArgument),
        ("DELETE /rpc", bare("DELETE", "/rpc"), 400, Code::InvalidArgument),
        ("unknown path", bare("GET", "/nowhere"), 404, Code::NotFound),
        ("path traversal", bare("GET", "/../../etc/passwd"), 404, Code::NotFound),
        ("200 headers", many_headers, 431, Code::LimitExceeded),
        ("a 1 MiB header", huge_header, 431, Code::LimitExceeded),
        ("garbage request line", b"GET /health HTTP/1.1 junk\r\nHost: x\r\n\r\n".to_vec(), 400, Code::InvalidArgument),
        (
            "Content-Length not a number",
            b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-capnp\r\nContent-Length: lots\r\n\r\n"
                .to_vec(),
            400,
            Code::InvalidArgument,
        ),
    ]
}

#[test]
fn hostile_http_requests_get_a_status_and_a_json_code() {
    let s = server(limits());
    let [_, http_url, _] = urls(&s);
    let mut failures = Vec::new();
    let cases = http_cases();
    rpc_client::run(async {
        for (name, request, status, want) in &cases {
            let (got_status, body) = within(name, raw_http(&s, request)).await;
            let got = match serde_json::from_str::<Value>(&body).ok().and_then(|v| v["code"].as_str().map(String::from))
            {
                Some(c) if got_status == *status => Code::parse(&c).ok_or(format!("unknown code {c}")),
                _ => Err(format!("status {got_status} with body {body:.200} (expected {status})")),
            };
            let intact = echo_works(&http_url).await;
            check(&mut failures, name, got, *want, intact);
        }
        still_serving(&s).await;
    });
    report("http", failures, cases.len());
    s.stop();
}
