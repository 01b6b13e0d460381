//! The schedule module: specs, firing through events and handlers, persistence and
//! catch-up across a restart, the typed builder. The objects' clock is a manual one:
//! the tests move time forward instead of sleeping.

mod common;

use capnp::capability::Rc;
use common::*;
use do_runtime::Clock;
use rpc_client::schedule::{every, every_n};
use rpc_core::Code;
use schema::object_capnp::{events, handler, schedule};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// 2026-01-01 00:00:00 UTC, a whole second.
const START_MS: i64 = 1_767_225_600_000;

/// Sends the type of every event it is handed.
struct Signal(UnboundedSender<String>);

impl handler::Server for Signal {
    async fn handle(self: Rc<Self>, p: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        let t = p.get()?.get_event()?.get_type()?.to_string().map_err(|e| capnp::Error::failed(e.to_string()))?;
        let _ = self.0.send(t);
        Ok(())
    }
}

fn signal() -> (handler::Client, UnboundedReceiver<String>) {
    let (tx, rx) = unbounded_channel();
    (capnp_rpc::new_client(Signal(tx)), rx)
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

/// Schedules `action` every second, with `handler`; returns the entry's id and next run.
async fn every_second(sch: &schedule::Client, action: &str, handler: Option<handler::Client>) -> (String, i64) {
    let mut req = sch.schedule_request();
    req.get().set_spec(every_n(1).seconds().as_str());
    req.get().set_action(action);
    req.get().set_data(r#"{"from": "test"}"#);
    if let Some(h) = handler {
        req.get().set_handler(h);
    }
    let entry = req.send().promise.await.expect("schedule");
    let entry = entry.get().unwrap().get_entry().unwrap();
    (entry.get_id().unwrap().to_string().unwrap(), entry.get_next_run())
}

#[test]
fn a_schedule_fires_its_event_and_handler_and_can_be_cancelled() {
    let dir = data_dir("sched");
    let clock = Clock::manual(START_MS);
    let (s, _) = object_server_with_clock(&dir, Duration::from_secs(60), clock.clone());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (sch, ev) = modules(&session.bootstrap, "c1");
        let (h, mut calls) = signal();
        let (id, next) = every_second(&sch, "Tick.fired", Some(h)).await;
        assert!((START_MS + 1..=START_MS + 1_000).contains(&next), "next run within a second: {next}");
        for run in 1..=2 {
            clock.advance(Duration::from_secs(1));
            let t = within("the handler", calls.recv()).await.expect("the handler is called");
            assert_eq!(t, "Tick.fired", "run {run}");
            assert_eq!(ticks(&ev, START_MS).await, run, "each run is an event in the log");
        }
        let list = sch.list_request().send().promise.await.expect("list");
        assert_eq!(list.get().unwrap().get_entries().unwrap().len(), 1);
        let mut nr = sch.next_run_request();
        nr.get().set_id(&id);
        assert_eq!(nr.send().promise.await.expect("nextRun").get().unwrap().get_at(), START_MS + 3_000);
        let mut cancel = sch.cancel_request();
        cancel.get().set_id(&id);
        assert!(cancel.send().promise.await.expect("cancel").get().unwrap().get_cancelled());
        assert_eq!(sch.list_request().send().promise.await.unwrap().get().unwrap().get_entries().unwrap().len(), 0);
        // Five periods pass. A witness schedule fires after them: the alarm runs every
        // due schedule at once, so had the cancelled one still been there it would have
        // fired (and logged its event) with the witness.
        clock.advance(Duration::from_secs(5));
        let (witness, mut witnessed) = signal();
        every_second(&sch, "Tock.fired", Some(witness)).await;
        clock.advance(Duration::from_secs(1));
        assert_eq!(within("the witness", witnessed.recv()).await.as_deref(), Some("Tock.fired"));
        assert_eq!(ticks(&ev, START_MS).await, 2, "no runs after cancel");
        assert!(calls.try_recv().is_err(), "no handler calls after cancel");
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
    let clock = Clock::manual(START_MS);
    let (s, _) = object_server_with_clock(&dir, Duration::from_secs(60), clock.clone());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (sch, _) = modules(&session.bootstrap, "c3");
        every_second(&sch, "Tick.fired", None).await;
    });
    s.stop();
    // Down for three and a half periods. A restart is a new process with a clock of its
    // own: the stopped host's threads, which may still be winding down, never see the
    // later time (sharing one clock let them fire the missed run a second time).
    let restarted = START_MS + 3_500;
    let clock = Clock::manual(restarted);
    let (s, host) = object_server_with_clock(&dir, Duration::from_secs(60), clock.clone());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        // Nobody calls the object: the alarm index wakes it.
        within("the alarm", host.wait_until(|m| m.alarms_fired.load(std::sync::atomic::Ordering::Relaxed) > 0)).await;
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (_, ev) = modules(&session.bootstrap, "c3");
        assert_eq!(ticks(&ev, restarted).await, 1, "three missed runs fire once");
        let (h, mut fired) = signal();
        let mut sub = ev.subscribe_request();
        sub.get().set_pattern("Tick.fired");
        sub.get().set_handler(h);
        let _sub = sub.send().promise.await.expect("subscribe");
        clock.advance(Duration::from_secs(1));
        assert_eq!(within("the next run", fired.recv()).await.as_deref(), Some("Tick.fired"), "the alarm is re-armed");
        assert_eq!(ticks(&ev, restarted).await, 2);
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
