//! Workflow figures: durable steps per second (each step's record committed before
//! the run goes on), one run at a time and 100 runs at once, against sequential
//! durable creates over the same server; and the time to resume 1,000 sleeping runs
//! after a restart, against the time it took to start them.

use do_runtime::{App, Class, Clock, Context, Flow, HostConfig, Workflows};
use examples::counter_capnp::counter;
use rpc_core::RpcError;
use rpc_server::{ServerConfig, ServerHandle};
use schema::object_capnp::object;
use serde_json::{json, Value};
use std::rc::Rc;
use std::time::{Duration, Instant};

struct Steps {
    _ctx: Context,
}

impl object::Server for Steps {}
impl counter::Server for Steps {}

impl Class for Steps {
    type Client = counter::Client;
    const INTERFACES: &'static [schema::InterfaceDesc] = examples::counter_interfaces::INTERFACES;

    fn create(ctx: Context) -> Result<Self, RpcError> {
        Ok(Steps { _ctx: ctx })
    }

    fn workflows(w: &mut Workflows<Self>) {
        w.add("steps", |_s: Rc<Steps>, flow: Flow, input: Value| async move {
            let mut sum = 0u64;
            for i in 0..input.as_u64().unwrap_or(1) {
                sum += flow.step("s", || async move { Ok(i) }).await?;
            }
            Ok(json!(sum))
        });
        w.add("nap", |_s, flow: Flow, _| async move {
            flow.sleep("nap", Duration::from_secs(3600)).await?;
            flow.step("after", || async { Ok(json!(1)) }).await
        });
    }
}

fn serve(dir: &std::path::Path, clock: Clock) -> ServerHandle {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: None,
        workers: 1,
        ..ServerConfig::default()
    };
    let host = HostConfig { data_dir: dir.to_path_buf(), threads: 1, clock, ..Default::default() };
    App::new().class::<Steps>("Steps").host(host).start(config).expect("server").server
}

/// Waits until `want` runs of workflow `name` on object `o` have completed.
async fn completed(g: &rpc_client::api::session::Gateway, name: &str, want: usize) {
    let filter = json!({"name": name, "status": "completed", "limit": 1000}).to_string();
    let wf = g.object("Steps", "o").workflow().workflow();
    let t0 = Instant::now();
    while wf.list(&filter).await.expect("list").runs.len() < want {
        assert!(t0.elapsed() < Duration::from_secs(300), "runs did not complete");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Prints the workflow figures; `creates` is the sequential durable creates/s measured
/// in the same run (the baseline).
pub fn run(dir: &std::path::Path, secs: f64, creates: f64) {
    let scale = if secs < 1.0 { 10 } else { 1 };
    let (steps, runs, sleepers) = (1000 / scale as u64, 100 / scale, 1000 / scale);
    let clock = Clock::manual(1_767_225_600_000);
    let data = dir.join("workflows");
    let server = serve(&data, clock.clone());
    let url = format!("ws://{}/rpc", server.http_addr);
    let (one, many, start) = rpc_client::run(async {
        let session = rpc_client::connect(&url).await.expect("connect");
        let wf = session.bootstrap.object("Steps", "o").workflow().workflow();
        let t0 = Instant::now();
        wf.start("steps", &steps.to_string(), "").run().result().await.expect("one run");
        let one = steps as f64 / t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let all: Vec<_> = (0..runs).map(|_| wf.start("steps", &steps.to_string(), "").run()).collect();
        for r in &all {
            r.result().await.expect("a run");
        }
        let many = (steps * runs as u64) as f64 / t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        for i in 0..sleepers {
            wf.start("nap", "", &format!("nap-{i}")).await.expect("start a sleeper");
        }
        let start = t0.elapsed();
        (one, many, start)
    });
    server.stop();
    clock.advance(Duration::from_secs(3600));
    let t0 = Instant::now();
    let server = serve(&data, clock);
    let url = format!("ws://{}/rpc", server.http_addr);
    rpc_client::run(async {
        let session = rpc_client::connect(&url).await.expect("connect");
        completed(&session.bootstrap, "nap", sleepers).await;
    });
    let resume = t0.elapsed();
    server.stop();
    println!("== workflows: durable steps (each step's record committed before the next)");
    if scale > 1 {
        println!("(short mode: {scale}x fewer steps and runs)");
    }
    println!("one run of {steps} steps: {one:>9.0} steps/s ({:.2}x sequential durable creates)", one / creates);
    println!(
        "{runs} runs at once: {many:>9.0} steps/s ({:.2}x one run; {:.2}x sequential durable creates)",
        many / one,
        many / creates
    );
    println!(
        "{sleepers} sleeping runs resumed after a restart in {:.0} ms (server start to all completed); starting them took {:.0} ms ({:.2}x)",
        resume.as_secs_f64() * 1e3,
        start.as_secs_f64() * 1e3,
        resume.as_secs_f64() / start.as_secs_f64()
    );
}
