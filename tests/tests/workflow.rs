//! Workflows on a real server: durable steps and durable calls (exactly once, seen by a
//! counter in another object), retries with backoff on a manual clock, step timeouts,
//! a sleep that spans a restart, waits for events (matched and timed out), a cascade
//! from code to the AI tier (a model server on 127.0.0.1) to a person answering
//! through a broker token, a circuit breaker that opens, fails fast and closes, cancel,
//! limits, and the progress events.

mod common;

use common::{data_dir, urls, within};
use do_runtime::{
    Answer, App, BreakerConfig, Cascade, Class, Clock, Context, Decision, Flow, HostConfig, RetryPolicy, StepOptions,
    Tier, WaitFor, WorkflowLimits, Workflows,
};
use examples::counter::Counter;
use examples::counter_capnp::counter;
use rpc_client::api::object::{Run, Workflow};
use rpc_client::api::session::Gateway;
use rpc_core::{Code, Limits, RpcError};
use rpc_server::{ServerConfig, ServerHandle};
use schema::object_capnp::object;
use serde_json::{json, Value};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// 2026-01-01 00:00:00 UTC.
const START_MS: i64 = 1_767_225_600_000;
const ADMIN: &str = "workflow-test-admin-key";
const KEYS: &str = "k1:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

/// Calls to the flaky dependency of `retry`, and those to the payments dependency of
/// `breaker` (each used by one test only).
static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);
static PAYMENT_CALLS: AtomicUsize = AtomicUsize::new(0);
static PAYMENTS_DOWN: AtomicBool = AtomicBool::new(false);
/// Holds the `gated` workflow in its first step while set.
static GATE_CLOSED: AtomicBool = AtomicBool::new(true);

/// The test class: its workflows are the cases. It answers the Counter interface
/// (nothing of it is used) so it has a schema of its own.
struct Orders {
    ctx: Context,
}

impl object::Server for Orders {}

/// The class's own methods start a workflow and send a delayed durable call, as class
/// code does through its `Context`.
impl counter::Server for Orders {
    async fn increment(
        self: Rc<Self>,
        params: counter::IncrementParams,
        mut results: counter::IncrementResults,
    ) -> capnp::Result<()> {
        let by = params.get()?.get_by();
        self.ctx.start_workflow("steps", &json!(by), "from-class")?;
        results.get().set_value(by);
        Ok(())
    }

    async fn tick(self: Rc<Self>, _: counter::TickParams, _: counter::TickResults) -> capnp::Result<()> {
        self.ctx.send_later("Counter", "t-ctx", "increment", &json!([7]), Duration::from_secs(60))?;
        Ok(())
    }
}

fn text_of(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

impl Class for Orders {
    type Client = counter::Client;
    const INTERFACES: &'static [schema::InterfaceDesc] = examples::counter_interfaces::INTERFACES;

    fn create(ctx: Context) -> Result<Self, RpcError> {
        Ok(Orders { ctx })
    }

    fn workflows(w: &mut Workflows<Self>) {
        w.add("bumps", |_o: Rc<Orders>, flow: Flow, input: Value| async move {
            let n = input["n"].as_u64().unwrap_or(1);
            let counter = text_of(&input, "counter");
            let mut last = Value::Null;
            for _ in 0..n {
                last = flow.call("bump", "Counter", &counter, "increment", json!([1])).await?;
            }
            let at = flow.now()?;
            Ok(json!({"last": last, "at": at}))
        });
        w.add("retry", |_o, flow: Flow, _| async move {
            let policy = RetryPolicy {
                max_attempts: 5,
                base: Duration::from_secs(1),
                factor: 2.0,
                jitter: 0.0,
                ..RetryPolicy::default()
            };
            let calls = flow
                .step_with("flaky", StepOptions::retry(policy), || async {
                    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
                    if n < 3 {
                        return Err(RpcError::new(Code::Unavailable, format!("flaky call {n}")));
                    }
                    Ok(n)
                })
                .await?;
            Ok(json!({"calls": calls}))
        });
        w.add("timeout", |_o, flow: Flow, _| async move {
            let options = StepOptions::retry(RetryPolicy::none()).with_timeout(Duration::from_millis(50));
            flow.step_with("hang", options, std::future::pending::<Result<u32, RpcError>>).await?;
            Ok(Value::Null)
        });
        w.add("sleepy", |_o, flow: Flow, _| async move {
            let before = flow.now()?;
            flow.sleep("nap", Duration::from_secs(24 * 3600)).await?;
            let after = flow.now()?;
            Ok(json!({"slept": after - before}))
        });
        w.add("waiter", |_o, flow: Flow, input: Value| async move {
            let wait = WaitFor::new("Payment.received", Some(Duration::from_secs(3600)))
                .with_filter(json!({"order": input["order"]}));
            Ok(match flow.wait_for_event("payment", wait).await? {
                Some(e) => json!({"paid": e.data["amount"], "type": e.type_}),
                None => json!({"timedOut": true}),
            })
        });
        w.add("cascade", |_o, flow: Flow, input: Value| async move {
            let cascade = Cascade {
                question: input.clone(),
                tiers: vec![
                    Tier::code(|| async { Ok(Answer { value: json!("guess"), confidence: 0.2 }) }),
                    Tier::Generative { prompt: "Classify the order".into(), schema: Some(json!({"type": "object"})) },
                    Tier::Agentic { prompt: "Investigate the order".into(), schema: None, max_turns: 2 },
                    Tier::Human { who: "ops".into(), timeout: Duration::from_secs(24 * 3600) },
                ],
                min_confidence: 0.8,
            };
            let answered = flow.cascade("classify", cascade).await?;
            Ok(serde_json::to_value(answered).unwrap_or_default())
        });
        w.add("pay", |_o, flow: Flow, _| async move {
            let breaker = BreakerConfig {
                name: "payments".into(),
                failures: 2,
                window: Duration::from_secs(60),
                cooldown: Duration::from_secs(30),
            };
            let options = StepOptions::retry(RetryPolicy::none()).with_breaker(breaker);
            flow.step_with("charge", options, || async {
                PAYMENT_CALLS.fetch_add(1, Ordering::SeqCst);
                if PAYMENTS_DOWN.load(Ordering::SeqCst) {
                    return Err(RpcError::new(Code::Internal, "payments are down"));
                }
                Ok(json!("charged"))
            })
            .await
        });
        w.add("approve", |_o, flow: Flow, input: Value| async move {
            let d = flow.approval("ship", "ops", input, Duration::from_secs(3600)).await?;
            Ok(match d {
                Decision::Approved { by, comment } => json!({"approved": by, "comment": comment}),
                Decision::Rejected { by, .. } => json!({"rejected": by}),
                Decision::Expired => json!({"expired": true}),
            })
        });
        w.add("steps", |o: Rc<Orders>, flow: Flow, input: Value| async move {
            for _ in 0..input.as_u64().unwrap_or(0) {
                flow.step("s", || async { Ok(o.ctx.now_ms()) }).await?;
            }
            Ok(json!("done"))
        });
        w.add("big", |_o, flow: Flow, _| async move {
            flow.step("huge", || async { Ok("x".repeat(2 << 20)) }).await?;
            Ok(Value::Null)
        });
        w.add("gated", |_o, flow: Flow, input: Value| async move {
            flow.step("gate", || async {
                while GATE_CLOSED.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(())
            })
            .await?;
            flow.call("bump", "Counter", &text_of(&input, "counter"), "increment", json!([1])).await
        });
        w.add("later", |_o, flow: Flow, input: Value| async move {
            let key = flow
                .send_later(
                    "remind",
                    "Counter",
                    &text_of(&input, "counter"),
                    "increment",
                    json!({"by": 5}),
                    Duration::from_secs(600),
                )
                .await?;
            Ok(json!(key))
        });
    }
}

/// A model server on 127.0.0.1: answers every chat completion with `content`, counts
/// the requests.
fn model_server(content: &'static str) -> (String, std::sync::Arc<AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let (mut line, mut length) = (String::new(), 0usize);
            let first = reader.read_line(&mut line).is_ok() && line.starts_with("POST /v1/chat/completions");
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let ok = first && request["model"] == "test-model" && request["messages"][1]["content"].is_string();
            counted.fetch_add(1, Ordering::SeqCst);
            let reply = json!({"choices": [{"message": {"role": "assistant", "content": content}}]}).to_string();
            let status = if ok { "200 OK" } else { "400 Bad Request" };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (format!("http://{addr}/v1"), hits)
}

struct Setup {
    clock: Clock,
    ai: Option<String>,
    limits: WorkflowLimits,
}

impl Default for Setup {
    fn default() -> Self {
        Setup { clock: Clock::manual(START_MS), ai: None, limits: WorkflowLimits::default() }
    }
}

fn start(dir: &std::path::Path, setup: &Setup) -> ServerHandle {
    let host = HostConfig {
        data_dir: dir.to_path_buf(),
        threads: 2,
        clock: setup.clock.clone(),
        workflow_limits: setup.limits,
        ai: setup.ai.as_ref().map(|base| do_runtime::AiConfig {
            base_url: base.clone(),
            api_key: Some("test-key".into()),
            model: "test-model".into(),
            timeout: Duration::from_secs(10),
        }),
        ..Default::default()
    };
    let broker = do_runtime::BrokerConfig {
        keys: rpc_broker::token::KeyRing::parse(KEYS, Some("k1")).expect("keys"),
        admin_key: Some(ADMIN.into()),
        db_path: dir.join("broker.sqlite"),
        call_timeout: Duration::from_secs(5),
        require_tokens: false,
        max_shards: 8,
    };
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: Some("127.0.0.1:0".parse().expect("addr")),
        workers: 2,
        limits: Limits::default(),
    };
    let app = App::new().class::<Orders>("Orders").class::<Counter>("Counter").host(host).broker(broker);
    app.start(config).expect("server starts").server
}

fn workflow(g: &Gateway, name: &str) -> Workflow {
    g.object("Orders", name).workflow().workflow()
}

async fn result(run: &Run) -> Result<Value, RpcError> {
    let out = run.result().await?.result;
    Ok(serde_json::from_str(&out).expect("a JSON result"))
}

async fn status(run: &Run) -> String {
    run.status().await.expect("status").info.status
}

/// Waits (polling; bounded by `within`) until the run's status is `want`.
async fn wait_status(run: &Run, want: &str) {
    within(want, async {
        while status(run).await != want {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn counter_value(g: &Gateway, name: &str) -> i64 {
    examples::counter_client::Counter::new(g.object("Counter", name).object().cast()).get().await.expect("get").value
}

#[test]
fn durable_calls_take_effect_once_and_the_history_shows_each_step() {
    let dir = data_dir("wf-calls");
    let s = start(&dir, &Setup::default());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let g = &session.bootstrap;
        let wf = workflow(g, "o1");
        let run = wf.start("bumps", r#"{"n": 3, "counter": "tally"}"#, "run-1").run();
        let out = within("the run", result(&run)).await.expect("completed");
        assert_eq!(out["last"], 3, "each call's result is the counter's value");
        assert_eq!(counter_value(g, "tally").await, 3);
        let steps = run.history().await.expect("history").steps;
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bump", "bump#2", "bump#3", "now"]);
        assert!(steps.iter().all(|s| s.status == "completed" && s.attempts == 1), "{steps:?}");
        assert_eq!(steps[0].kind, "call");
        // Starting the same id again is the same run: nothing runs twice.
        let again = wf.start("bumps", r#"{"n": 3, "counter": "tally"}"#, "run-1").run();
        assert_eq!(within("again", result(&again)).await.expect("same"), out);
        assert_eq!(counter_value(g, "tally").await, 3);
        // A call delivered again with the same key answers the first result.
        let obj = g.object("Counter", "tally").object();
        let first = obj.deliver("k-1", "increment", "[10]").await.expect("deliver");
        let dup = obj.deliver("k-1", "increment", "[10]").await.expect("deliver again");
        assert_eq!((first.result.as_str(), first.duplicate), ("13", false));
        assert_eq!((dup.result.as_str(), dup.duplicate), ("13", true));
        assert_eq!(counter_value(g, "tally").await, 13);
        let bad = obj.deliver("k-2", "nosuch", "[]").await.map(|_| ()).expect_err("unknown method");
        assert_eq!(bad.code, Code::InvalidArgument);
        let base = obj.deliver("k-3", "info", "[]").await.map(|_| ()).expect_err("Object's own methods");
        assert_eq!(base.code, Code::InvalidArgument);
        let module = obj.deliver("k-4", "storage.create", r#"["Note", {"n": 1}, ""]"#).await.expect("a module");
        let thing: Value = serde_json::from_str(&module.result).expect("json");
        assert_eq!(thing["type"], "Note");
        let listed = wf.list(r#"{"name": "bumps"}"#).await.expect("list").runs;
        assert_eq!((listed.len(), listed[0].status.as_str(), listed[0].steps), (1, "completed", 4));
        assert_eq!(wf.names().await.expect("names").names.len(), 12);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failing_step_is_retried_with_backoff_on_the_alarm() {
    let dir = data_dir("wf-retry");
    let setup = Setup::default();
    let s = start(&dir, &setup);
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let run = workflow(&session.bootstrap, "o1").start("retry", "", "").run();
        wait_status(&run, "sleeping").await;
        let info = run.status().await.expect("status").info;
        assert_eq!(info.wake_at, START_MS + 1_000, "the first wait is the base");
        assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 1);
        setup.clock.advance(Duration::from_millis(999));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!((status(&run).await.as_str(), FLAKY_CALLS.load(Ordering::SeqCst)), ("sleeping", 1), "not yet");
        setup.clock.advance(Duration::from_millis(1));
        within("the second attempt", async {
            while run.status().await.expect("status").info.wake_at != START_MS + 1_000 + 2_000 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 2, "the second wait doubles");
        setup.clock.advance(Duration::from_secs(2));
        assert_eq!(within("the run", result(&run)).await.expect("completed")["calls"], 3);
        let step = &run.history().await.expect("history").steps[0];
        assert_eq!((step.attempts, step.status.as_str()), (3, "completed"));
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_step_past_its_timeout_fails_the_run_with_timeout() {
    let dir = data_dir("wf-timeout");
    let s = start(&dir, &Setup::default());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let run = workflow(&session.bootstrap, "o1").start("timeout", "", "").run();
        let err = within("the run", result(&run)).await.expect_err("timed out");
        assert_eq!(err.code, Code::Timeout, "{err:?}");
        let info = run.status().await.expect("status").info;
        assert_eq!((info.status.as_str(), info.error_code.as_str()), ("failed", "TIMEOUT"));
        assert_eq!(run.history().await.expect("history").steps[0].error_code, "TIMEOUT");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_sleep_spans_a_restart_and_holds_no_run_in_memory() {
    let dir = data_dir("wf-sleep");
    let clock = Clock::manual(START_MS);
    let s = start(&dir, &Setup { clock: clock.clone(), ..Setup::default() });
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let run = workflow(&session.bootstrap, "o1").start("sleepy", "", "nap-1").run();
        wait_status(&run, "sleeping").await;
        assert_eq!(run.status().await.expect("status").info.wake_at, START_MS + 86_400_000);
    });
    s.stop();
    // A new process on the same files, a day later: the alarm index wakes the object.
    clock.advance(Duration::from_secs(86_400));
    let s = start(&dir, &Setup { clock, ..Setup::default() });
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let run = workflow(&session.bootstrap, "o1").run("nap-1").run();
        let out = within("the run", result(&run)).await.expect("completed");
        assert_eq!(out["slept"], 86_400_000);
        let unknown = workflow(&session.bootstrap, "o1").run("nope").await.map(|_| ()).expect_err("no such run");
        assert_eq!(unknown.code, Code::NotFound);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_wait_for_an_event_is_met_by_a_matching_event_or_times_out() {
    let dir = data_dir("wf-wait");
    let setup = Setup::default();
    let s = start(&dir, &setup);
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let g = &session.bootstrap;
        let events = g.object("Orders", "o1").events().events();
        // Sent before the wait began: not a match.
        events.send("Payment.received", r#"{"order": "A", "amount": 1}"#).await.expect("send");
        let wf = workflow(g, "o1");
        let paid = wf.start("waiter", r#"{"order": "A"}"#, "").run();
        let late = wf.start("waiter", r#"{"order": "B"}"#, "").run();
        wait_status(&paid, "waiting").await;
        wait_status(&late, "waiting").await;
        events.send("Payment.received", r#"{"order": "C", "amount": 3}"#).await.expect("another order");
        events.send("Payment.failed", r#"{"order": "A"}"#).await.expect("another type");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(status(&paid).await, "waiting", "neither matches");
        events.send("Payment.received", r#"{"order": "A", "amount": 42}"#).await.expect("the one");
        let out = within("the paid run", result(&paid)).await.expect("completed");
        assert_eq!(out, json!({"paid": 42, "type": "Payment.received"}));
        assert_eq!(status(&late).await, "waiting");
        setup.clock.advance(Duration::from_secs(3600));
        assert_eq!(within("the late run", result(&late)).await.expect("completed"), json!({"timedOut": true}));
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

/// Mints a token for `target` with `methods` at `scope`.
async fn mint(g: &Gateway, target: &str, methods: &[&str], scope: &str, ttl_ms: u64) -> String {
    let mut req = common::broker_of(g.raw(), ADMIN).mint_request();
    {
        let mut r = req.get().init_request();
        r.set_target(target);
        r.set_scope(scope);
        r.set_ttl_ms(ttl_ms);
        r.set_subject("ops@example.com");
        let mut m = r.init_methods(methods.len() as u32);
        for (i, x) in methods.iter().enumerate() {
            m.set(i as u32, *x);
        }
    }
    let reply = req.send().promise.await.expect("mint");
    reply.get().expect("reply").get_token().expect("token").to_string().expect("utf-8")
}

/// A token for the approvals of `target` (as the link in an email would carry).
async fn approval_token(g: &Gateway, target: &str, ttl_ms: u64) -> String {
    mint(g, target, &["workflow.approval", "approval.*"], "write", ttl_ms).await
}

#[test]
fn tokens_cover_runs_and_deliver_needs_an_admin_token() {
    let dir = data_dir("wf-tokens");
    let s = start(&dir, &Setup::default());
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let g = &session.bootstrap;
        let read = mint(g, "Orders/o1", &["*"], "read", 60_000).await;
        let write = mint(g, "Orders/o1", &["*"], "write", 60_000).await;
        let admin = mint(g, "Orders/o1", &["*"], "admin", 60_000).await;
        let open = |token: &str| g.broker("").redeem(token, "Orders/o1").object();
        // Write may start; the Run it hands out is behind the same membrane.
        let run = open(&write).workflow().workflow().start("sleepy", "", "tok-1").run();
        wait_status(&run, "sleeping").await;
        let refused = open(&read).workflow().workflow().start("sleepy", "", "").await.map(|_| ()).expect_err("read");
        assert_eq!(refused.code, Code::InsufficientScope);
        let seen = open(&read).workflow().workflow().run("tok-1").run();
        assert_eq!(status(&seen).await, "sleeping", "read may look");
        let cancel = seen.cancel().await.map(|_| ()).expect_err("a Run from a read token");
        assert_eq!(cancel.code, Code::InsufficientScope);
        // deliver runs any method: admin only.
        for token in [&read, &write] {
            let e = open(token)
                .deliver("k", "storage.create", r#"["Note", {}, ""]"#)
                .await
                .map(|_| ())
                .expect_err("deliver");
            assert_eq!(e.code, Code::InsufficientScope, "{e:?}");
        }
        open(&admin).deliver("k", "storage.create", r#"["Note", {}, ""]"#).await.expect("admin may deliver");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_cascade_falls_from_code_to_the_models_to_a_person_answering_through_a_token() {
    let dir = data_dir("wf-cascade");
    let (model, hits) = model_server(r#"{"answer": "unsure", "confidence": 0.3}"#);
    let setup = Setup { ai: Some(model), ..Setup::default() };
    let s = start(&dir, &setup);
    let [ws, http, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let g = &session.bootstrap;
        let run = workflow(g, "o7").start("cascade", r#"{"order": 7}"#, "c-1").run();
        wait_status(&run, "waiting").await;
        assert_eq!(hits.load(Ordering::SeqCst), 3, "one generative completion, two agentic turns");
        let pending = workflow(g, "o7").approvals("pending").await.expect("approvals").approvals;
        assert_eq!(pending.len(), 1);
        let id = pending[0].id.clone();
        let what: Value = serde_json::from_str(&pending[0].what).expect("json");
        assert_eq!(what["question"]["order"], 7);
        assert_eq!(what["earlier"].as_array().map(Vec::len), Some(3), "the person sees what the tiers said");
        // The link's token opens the approval and nothing else.
        let token = approval_token(g, "Orders/o7", 3_600_000).await;
        let redeemed = |b: &Gateway| b.broker("").redeem(&token, "Orders/o7").object().workflow().workflow();
        let batch = rpc_client::batch(&http).await.expect("batch");
        let refused = redeemed(&batch.bootstrap).start("cascade", "{}", "").await.map(|_| ()).expect_err("start");
        assert_eq!(refused.code, Code::Forbidden);
        let batch = rpc_client::batch(&http).await.expect("batch");
        let listing = redeemed(&batch.bootstrap).approvals("").await.map(|_| ()).expect_err("not in the token");
        assert_eq!(listing.code, Code::Forbidden);
        // Redeem, open the approval and answer it: one HTTP request.
        let batch = rpc_client::batch(&http).await.expect("batch");
        let info = redeemed(&batch.bootstrap).approval(&id).approval().approve("ann", r#""fraud""#).await;
        let info = info.expect("approve").info;
        assert_eq!((info.status.as_str(), info.answered_by.as_str()), ("approved", "ann"));
        let again =
            workflow(g, "o7").approval(&id).approval().reject("bob", "no").await.map(|_| ()).expect_err("answered");
        assert_eq!(again.code, Code::Conflict);
        let out = within("the run", result(&run)).await.expect("completed");
        assert_eq!((out["tier"].as_str(), out["value"].as_str()), (Some("human"), Some("fraud")));
        let steps = run.history().await.expect("history").steps;
        let tiers: Vec<(&str, &str)> = steps.iter().map(|s| (s.name.as_str(), s.status.as_str())).collect();
        assert_eq!(
            tiers,
            [
                ("classify/1.code", "completed"),
                ("classify/2.generative", "completed"),
                ("classify/3.agentic", "completed"),
                ("classify/4.human", "completed"),
                ("classify", "completed"),
            ]
        );
        assert_eq!(steps[4].tier, "human");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_expired_approval_takes_the_timeout_branch_and_refuses_late_answers() {
    let dir = data_dir("wf-expired");
    let setup = Setup::default();
    let s = start(&dir, &setup);
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let wf = workflow(&session.bootstrap, "o1");
        let run = wf.start("approve", r#"{"order": 1}"#, "").run();
        wait_status(&run, "waiting").await;
        let id = wf.approvals("").await.expect("approvals").approvals[0].id.clone();
        setup.clock.advance(Duration::from_secs(3600));
        assert_eq!(within("the run", result(&run)).await.expect("completed"), json!({"expired": true}));
        let late = wf.approval(&id).approval().approve("ann", "").await.map(|_| ()).expect_err("too late");
        assert!(matches!(late.code, Code::Conflict | Code::Expired), "{late:?}");
        let unknown = wf.approval("a-nope").await.map(|_| ()).expect_err("no such approval");
        assert_eq!(unknown.code, Code::NotFound);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_breaker_opens_fails_fast_survives_a_restart_and_closes_after_a_probe() {
    let dir = data_dir("wf-breaker");
    let clock = Clock::manual(START_MS);
    let s = start(&dir, &Setup { clock: clock.clone(), ..Setup::default() });
    PAYMENTS_DOWN.store(true, Ordering::SeqCst);
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let wf = workflow(&session.bootstrap, "shop");
        for _ in 0..2 {
            let e = result(&wf.start("pay", "", "").run()).await.expect_err("payments are down");
            assert_eq!(e.code, Code::Internal);
        }
        assert_eq!(PAYMENT_CALLS.load(Ordering::SeqCst), 2);
        let e = result(&wf.start("pay", "", "").run()).await.expect_err("open");
        assert_eq!(e.code, Code::Unavailable, "{e:?}");
        assert_eq!(PAYMENT_CALLS.load(Ordering::SeqCst), 2, "failing fast: the dependency is not called");
    });
    s.stop();
    let s = start(&dir, &Setup { clock: clock.clone(), ..Setup::default() });
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let wf = workflow(&session.bootstrap, "shop");
        let e = result(&wf.start("pay", "", "").run()).await.expect_err("still open after the restart");
        assert_eq!((e.code, PAYMENT_CALLS.load(Ordering::SeqCst)), (Code::Unavailable, 2));
        PAYMENTS_DOWN.store(false, Ordering::SeqCst);
        clock.advance(Duration::from_secs(30));
        assert_eq!(result(&wf.start("pay", "", "").run()).await.expect("the probe succeeds"), "charged");
        assert_eq!(result(&wf.start("pay", "", "").run()).await.expect("closed"), "charged");
        assert_eq!(PAYMENT_CALLS.load(Ordering::SeqCst), 4);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cancel_stops_a_sleeping_run_and_its_result_says_cancelled() {
    let dir = data_dir("wf-cancel");
    let setup = Setup::default();
    let s = start(&dir, &setup);
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let wf = workflow(&session.bootstrap, "o1");
        let run = wf.start("sleepy", "", "").run();
        wait_status(&run, "sleeping").await;
        let waiting = result(&run);
        let (r, cancelled) = futures::join!(waiting, async { run.cancel().await.expect("cancel").cancelled });
        assert!(cancelled);
        assert_eq!(r.expect_err("cancelled").code, Code::Cancelled);
        assert!(!run.cancel().await.expect("again").cancelled, "finished already");
        setup.clock.advance(Duration::from_secs(86_400));
        tokio::time::sleep(Duration::from_millis(30)).await;
        let info = run.status().await.expect("status").info;
        assert_eq!(
            (info.status.as_str(), info.error_code.as_str()),
            ("cancelled", "CANCELLED"),
            "the alarm did not revive it"
        );
        assert_eq!(run.history().await.expect("history").steps.len(), 2, "now and the sleep; nothing after");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_starts_and_limits_get_typed_errors() {
    let dir = data_dir("wf-limits");
    let limits = WorkflowLimits { max_steps: 5, max_active_runs: 2, ..WorkflowLimits::default() };
    let s = start(&dir, &Setup { limits, ..Setup::default() });
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let wf = workflow(&session.bootstrap, "o1");
        let code = |r: Result<rpc_client::api::object::workflow::StartReply, RpcError>| {
            r.map(|_| ()).expect_err("refused").code
        };
        assert_eq!(code(wf.start("nosuch", "", "").await), Code::NotFound);
        assert_eq!(code(wf.start("steps", "{not json", "").await), Code::InvalidArgument);
        assert_eq!(code(wf.start("steps", "1", "bad id!").await), Code::InvalidArgument);
        wf.start("steps", "1", "taken").await.expect("start");
        assert_eq!(code(wf.start("sleepy", "", "taken").await), Code::Conflict, "another workflow's id");
        let e = result(&wf.start("steps", "9", "").run()).await.expect_err("too many steps");
        assert_eq!(e.code, Code::LimitExceeded);
        let e = result(&wf.start("big", "", "").run()).await.expect_err("too big a result");
        assert_eq!(e.code, Code::LimitExceeded);
        let a = wf.start("sleepy", "", "").run();
        let b = wf.start("sleepy", "", "").run();
        wait_status(&a, "sleeping").await;
        wait_status(&b, "sleeping").await;
        assert_eq!(code(wf.start("sleepy", "", "").await), Code::LimitExceeded, "two unfinished at most");
        assert!(a.cancel().await.expect("cancel").cancelled);
        wf.start("sleepy", "", "").await.expect("room again");
        let bad = wf.list("[1]").await.map(|_| ()).expect_err("a filter is an object");
        assert_eq!(bad.code, Code::InvalidArgument);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn progress_is_sent_as_events_and_delayed_sends_arrive_once_from_the_alarm() {
    let dir = data_dir("wf-events");
    let setup = Setup::default();
    let s = start(&dir, &setup);
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let g = &session.bootstrap;
        let wf = workflow(g, "o1");
        let run = wf.start("bumps", r#"{"n": 2, "counter": "t2"}"#, "").run();
        within("the run", result(&run)).await.expect("completed");
        let listed = g.object("Orders", "o1").events().events().list(0, "Workflow.*", 100).await.expect("list").events;
        let types: Vec<&str> = listed.iter().map(|e| e.r#type.as_str()).collect();
        assert_eq!(
            types,
            ["Workflow.started", "Workflow.stepCompleted", "Workflow.stepCompleted", "Workflow.completed"]
        );
        // A send 10 minutes later: recorded now, sent from the alarm, once.
        let later = wf.start("later", r#"{"counter": "t3"}"#, "").run();
        within("the run", result(&later)).await.expect("completed");
        assert_eq!(counter_value(g, "t3").await, 0, "not yet");
        setup.clock.advance(Duration::from_secs(600));
        within("the delayed send", async {
            while counter_value(g, "t3").await != 5 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        setup.clock.advance(Duration::from_secs(600));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(counter_value(g, "t3").await, 5, "sent once");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_finished_run_is_kept_for_its_time_then_pruned_by_the_alarm() {
    let dir = data_dir("wf-prune");
    let limits = WorkflowLimits { keep_finished: Duration::from_secs(3600), ..WorkflowLimits::default() };
    let setup = Setup { limits, ..Setup::default() };
    let s = start(&dir, &setup);
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let wf = workflow(&session.bootstrap, "o1");
        let run = wf.start("steps", "2", "short-lived").run();
        assert_eq!(within("the run", result(&run)).await.expect("completed"), "done");
        setup.clock.advance(Duration::from_secs(3599));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(run.history().await.expect("kept").steps.len(), 2, "kept for an hour");
        setup.clock.advance(Duration::from_secs(1));
        within("the prune", async {
            while wf.run("short-lived").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let gone = run.history().await.map(|_| ()).expect_err("pruned");
        assert_eq!(gone.code, Code::NotFound);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_run_cut_short_by_a_stop_resumes_from_the_alarm_without_a_call_to_its_object() {
    let dir = data_dir("wf-lease");
    let clock = Clock::manual(START_MS);
    let s = start(&dir, &Setup { clock: clock.clone(), ..Setup::default() });
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let run = workflow(&session.bootstrap, "lease").start("gated", r#"{"counter": "t-lease"}"#, "").run();
        within("the gate step", async {
            while run.history().await.expect("history").steps.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert_eq!(status(&run).await, "running");
    });
    s.stop();
    GATE_CLOSED.store(false, Ordering::SeqCst);
    // A new process, the lease later: only the Counter is called, and it sees the bump.
    clock.advance(Duration::from_millis(do_modules::workflow::engine::LEASE_MS as u64));
    let s = start(&dir, &Setup { clock, ..Setup::default() });
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        within("the resumed run's call", async {
            while counter_value(&session.bootstrap, "t-lease").await != 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn class_code_starts_workflows_and_sends_later_through_its_context() {
    let dir = data_dir("wf-context");
    let setup = Setup::default();
    let s = start(&dir, &setup);
    rpc_client::run(async {
        let session = rpc_client::connect(&urls(&s)[0]).await.expect("connect");
        let g = &session.bootstrap;
        let orders = examples::counter_client::Counter::new(g.object("Orders", "o-ctx").object().cast());
        assert_eq!(orders.increment(3).await.expect("increment").value, 3);
        let run = workflow(g, "o-ctx").run("from-class").run();
        assert_eq!(within("the run", result(&run)).await.expect("completed"), "done");
        assert_eq!(run.history().await.expect("history").steps.len(), 3);
        orders.tick().await.expect("tick");
        setup.clock.advance(Duration::from_secs(60));
        within("the delayed send", async {
            while counter_value(g, "t-ctx").await != 7 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
