//! The schedule module: specs, firing through events and handlers, persistence and
//! catch-up across a restart, the typed builder.

mod common;

use capnp::capability::Rc;
use common::*;
use rpc_client::schedule::{every, every_n};
use rpc_core::params::now_ms;
use rpc_core::Code;
use schema::object_capnp::{events, handler, schedule};
use std::cell::Cell;
use std::time::Duration;

struct Count(std::rc::Rc<Cell<u32>>);

impl handler::Server for Count {
    async fn handle(self: Rc<Self>, _: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        self.0.set(self.0.get() + 1);
        Ok(())
    }
}

fn modules(g: &schema::session_capnp::gateway::Client, name: &str) -> (schedule::Client, events::Client) {
    let mut req = g.object_request();
    req.get().set_class("Clock");
    req.get().set_name(name);
    let obj = req.send().pipeline.get_object();
    (obj.schedule_request().send().pipeline.get_schedule(), obj.events_request().send().pipeline.get_events())
}

async fn ticks(ev: &events::Client, since_ms: i64) -> usize {
    let mut req = ev.list_request();
    req.get().set_pattern("Tick.fired");
    let r = req.send().promise.await.expect("list");
    r.get().unwrap().get_events().unwrap().iter().filter(|e| e.get_timestamp() >= since_ms).count()
}

#[test]
fn a_schedule_fires_its_event_and_handler_and_can_be_cancelled() {
    let dir = data_dir("sched");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (sch, ev) = modules(&session.bootstrap, "c1");
        let calls = std::rc::Rc::new(Cell::new(0));
        let mut req = sch.schedule_request();
        req.get().set_spec(every_n(1).seconds().as_str());
        req.get().set_action("Tick.fired");
        req.get().set_data(r#"{"from": "test"}"#);
        req.get().set_handler(capnp_rpc::new_client(Count(calls.clone())));
        let started = now_ms();
        let entry = req.send().promise.await.expect("schedule");
        let id = entry.get().unwrap().get_entry().unwrap().get_id().unwrap().to_string().unwrap();
        let next = entry.get().unwrap().get_entry().unwrap().get_next_run();
        assert!((started..started + 2_000).contains(&next), "next run in about a second");
        let wait = async {
            while calls.get() < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait).await.expect("the handler is called every second");
        assert!(ticks(&ev, started).await >= 2, "each run is an event in the log");
        let list = sch.list_request().send().promise.await.expect("list");
        assert_eq!(list.get().unwrap().get_entries().unwrap().len(), 1);
        let mut nr = sch.next_run_request();
        nr.get().set_id(&id);
        assert!(nr.send().promise.await.expect("nextRun").get().unwrap().get_at() > started);
        let mut cancel = sch.cancel_request();
        cancel.get().set_id(&id);
        assert!(cancel.send().promise.await.expect("cancel").get().unwrap().get_cancelled());
        let after = calls.get();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(calls.get(), after, "no runs after cancel");
        assert_eq!(sch.list_request().send().promise.await.unwrap().get().unwrap().get_entries().unwrap().len(), 0);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_specs_are_refused_with_the_bad_part_named() {
    let dir = data_dir("badspec");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (sch, _) = modules(&session.bootstrap, "c2");
        for (spec, action, hint) in [
            ("61 * * * *", "Tick.fired", "minute"),
            ("every 5 fortnights", "Tick.fired", "fortnights"),
            ("every hour", "nodot", "Noun.verb"),
        ] {
            let mut req = sch.schedule_request();
            req.get().set_spec(spec);
            req.get().set_action(action);
            let e: rpc_core::RpcError = match req.send().promise.await {
                Ok(_) => panic!("{spec} should be refused"),
                Err(e) => e.into(),
            };
            assert_eq!(e.code, Code::InvalidArgument);
            assert!(e.message.contains(hint), "{spec}: {}", e.message);
        }
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn schedules_survive_a_restart_and_missed_runs_fire_once() {
    let dir = data_dir("catchup");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (sch, _) = modules(&session.bootstrap, "c3");
        let mut req = sch.schedule_request();
        req.get().set_spec("every 1 second");
        req.get().set_action("Tick.fired");
        req.send().promise.await.expect("schedule");
    });
    s.stop();
    // Down for several periods.
    std::thread::sleep(Duration::from_millis(3500));
    let restarted = now_ms();
    let (s, host) = object_server(&dir, Duration::from_secs(60));
    // Nobody calls the object: the alarm index wakes it.
    let woke = std::time::Instant::now();
    while host.alarms_fired.load(std::sync::atomic::Ordering::Relaxed) == 0 && woke.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (_, ev) = modules(&session.bootstrap, "c3");
        assert_eq!(ticks(&ev, restarted).await, 1, "three missed runs fire once");
        let wait = async {
            while ticks(&ev, restarted).await < 2 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait).await.expect("the alarm is re-armed");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_builder_writes_specs_the_server_parses() {
    use do_modules::schedule::spec::Spec;
    let cases = [
        (every().monday().at(9, 0), "every Monday at 9am"),
        (every().weekday().at(8, 0), "every weekday at 8:00"),
        (every().day().at(14, 30), "every day at 14:30"),
        (every_n(5).minutes(), "every 5 minutes"),
        (every_n(30).seconds(), "every 30 seconds"),
        (every().hour(), "every hour"),
    ];
    for (built, readable) in cases {
        assert_eq!(Spec::parse(built.as_str()).expect("parses"), Spec::parse(readable).expect("parses"), "{built}");
    }
}
