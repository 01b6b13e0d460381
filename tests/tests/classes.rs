//! User classes on a real server: `Counter` and the shop's `Cart` and `Inventory` from
//! the examples, and `Faulty` (the Counter interface with a body that fails on
//! purpose), each object in its own SQLite file.

mod common;

use capnp::capability::Rc;
use common::{code, data_dir, metric, urls, within};
use do_runtime::{App, Class, Clock, Context, HostConfig, SqlValue};
use examples::counter::Counter;
use examples::counter_capnp::counter;
use examples::counter_client::Counter as CounterClient;
use examples::shop::{Cart, Inventory, INVENTORY, RESERVATION_MS};
use examples::shop_client::{Cart as CartClient, Inventory as InventoryClient};
use rpc_core::{Code, Limits, RpcError};
use rpc_server::{ServerConfig, ServerHandle};
use schema::object_capnp::object;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The Counter interface, implemented to fail: `increment(13)` panics, a negative
/// `increment` writes a key, a Thing and an event in a transaction and then fails,
/// `reset` tries to write a framework table.
struct Faulty {
    ctx: Context,
}

impl Class for Faulty {
    type Client = counter::Client;
    const INTERFACES: &'static [schema::InterfaceDesc] = examples::counter_interfaces::INTERFACES;
    const MIGRATIONS: &'static [&'static str] = &["CREATE TABLE audit (note TEXT NOT NULL)"];
    const EVENTS: &'static [&'static str] = &["Boom.*"];

    fn create(ctx: Context) -> Result<Self, RpcError> {
        Ok(Faulty { ctx })
    }

    /// `Boom.panic` panics; any other `Boom.*` is noted in the key `booms`.
    async fn on_event(self: std::rc::Rc<Self>, event: do_runtime::Event) -> Result<(), RpcError> {
        assert_ne!(event.verb, "panic", "a handler that panics");
        let kv = self.ctx.kv();
        kv.put("booms", &(kv.get::<i64>("booms")?.unwrap_or(0) + 1))
    }
}

impl object::Server for Faulty {}

impl counter::Server for Faulty {
    async fn increment(
        self: Rc<Self>,
        params: counter::IncrementParams,
        mut results: counter::IncrementResults,
    ) -> capnp::Result<()> {
        let by = params.get()?.get_by();
        assert_ne!(by, 13, "unlucky");
        let value = self.ctx.kv().get::<i64>("value")?.unwrap_or(0) + by;
        self.ctx.transaction(|ctx| {
            ctx.kv().put("value", &value)?;
            ctx.storage().create("Audit", "", &serde_json::json!({ "by": by }))?;
            ctx.execute("INSERT INTO audit (note) VALUES (?)", &[SqlValue::Text(format!("added {by}"))])?;
            if by < 0 {
                return Err(RpcError::invalid_argument("only up"));
            }
            Ok(())
        })?;
        results.get().set_value(value);
        Ok(())
    }

    async fn get(self: Rc<Self>, _: counter::GetParams, mut results: counter::GetResults) -> capnp::Result<()> {
        // The class's own table, read with sql(): one row per committed increment.
        let rows = self.ctx.sql("SELECT COUNT(*) FROM audit", &[])?;
        let audited = rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64).unwrap_or(-1);
        let value = self.ctx.kv().get::<i64>("value")?.unwrap_or(0);
        results.get().set_value(value * 1000 + audited);
        Ok(())
    }

    async fn reset(self: Rc<Self>, _: counter::ResetParams, _: counter::ResetResults) -> capnp::Result<()> {
        self.ctx.execute("DELETE FROM things", &[])?;
        Ok(())
    }
}

fn server_config() -> ServerConfig {
    ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: Some("127.0.0.1:0".parse().expect("addr")),
        workers: 2,
        limits: Limits::default(),
    }
}

fn app() -> App {
    App::new()
        .class::<Counter>("Counter")
        .class::<Faulty>("Faulty")
        .class::<Cart>("Cart")
        .class::<Inventory>("Inventory")
}

/// A server of the test classes over `dir`, with `clock` and `idle` eviction.
fn start(dir: &std::path::Path, clock: Clock, idle: Duration) -> (ServerHandle, Arc<do_runtime::HostMetrics>) {
    let host = HostConfig { data_dir: dir.to_path_buf(), threads: 2, idle_timeout: idle, clock, ..Default::default() };
    let running = app().host(host).start(server_config()).expect("server starts");
    (running.server, running.host_metrics)
}

fn counter_of(g: &rpc_client::api::session::Gateway, class: &str, name: &str) -> CounterClient {
    CounterClient::new(g.object(class, name).object().cast())
}

#[test]
fn a_class_answers_its_own_methods_and_the_base_object_ones() {
    let dir = data_dir("class-methods");
    let (s, _) = start(&dir, Clock::system(), Duration::from_secs(60));
    let [ws, http, tcp] = urls(&s);
    rpc_client::run(async {
        for (i, url) in [&ws, &tcp].into_iter().enumerate() {
            let session = rpc_client::connect(url).await.expect("connect");
            let c = counter_of(&session.bootstrap, "Counter", "c1");
            assert_eq!(c.increment(2).await.expect("increment").value, 2 * (i as i64 + 1));
            let info = c.as_object().info().await.expect("info");
            assert_eq!((info.class.as_str(), info.name.as_str()), ("Counter", "c1"));
            // The base Object's modules come with every class.
            let thing = c.as_object().storage().create("Note", r#"{"n": 1}"#, "").await.expect("create").thing;
            assert_eq!(thing.r#type, "Note");
        }
        let batch = rpc_client::batch(&http).await.expect("batch");
        assert_eq!(counter_of(&batch.bootstrap, "Counter", "c1").get().await.expect("get").value, 4);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn object_cast_increment_is_one_round_trip() {
    let dir = data_dir("class-pipelined");
    let (s, _) = start(&dir, Clock::system(), Duration::from_secs(60));
    let [_, http, _] = urls(&s);
    let before = metric(&s, |m| &m.http_requests);
    rpc_client::run(async {
        let batch = rpc_client::batch(&http).await.expect("batch");
        // gateway.object(..), then increment on the object cast to Counter: one POST.
        let value = counter_of(&batch.bootstrap, "Counter", "c2").increment(7).await.expect("increment").value;
        assert_eq!(value, 7);
    });
    assert_eq!(metric(&s, |m| &m.http_requests) - before, 1, "the chain is one request");
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn state_survives_eviction_and_a_restart() {
    let dir = data_dir("class-restart");
    let (s, metrics) = start(&dir, Clock::system(), Duration::from_millis(50));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        {
            let session = rpc_client::connect(&ws).await.expect("connect");
            assert_eq!(counter_of(&session.bootstrap, "Counter", "kept").increment(5).await.expect("inc").value, 5);
        }
        // Released by the session, the object is evicted once idle.
        within("eviction", metrics.wait_until(|m| m.evictions.load(Ordering::Relaxed) >= 1)).await;
        let session = rpc_client::connect(&ws).await.expect("connect");
        assert_eq!(counter_of(&session.bootstrap, "Counter", "kept").get().await.expect("get").value, 5);
    });
    s.stop();
    let (s, _) = start(&dir, Clock::system(), Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        assert_eq!(counter_of(&session.bootstrap, "Counter", "kept").increment(1).await.expect("inc").value, 6);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn one_object_calls_another_and_checks_out_in_one_transaction() {
    let dir = data_dir("class-shop");
    let (s, _) = start(&dir, Clock::system(), Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let g = &session.bootstrap;
        let inventory = InventoryClient::new(g.object("Inventory", INVENTORY).object().cast());
        assert_eq!(inventory.restock("cup", 5).await.expect("restock").available, 5);
        let cart = CartClient::new(g.object("Cart", "ann").object().cast());
        // The cart reserves in the Inventory object: a call from one object to another.
        cart.add("cup", 3).await.expect("add");
        assert_eq!(inventory.available("cup").await.expect("available").available, 2);
        assert_eq!(code(cart.add("cup", 3).await), Code::Conflict, "only 2 left");
        assert_eq!(cart.lines().await.expect("lines").lines[0].quantity, 3, "the failed add kept the line");
        // An empty cart's checkout rolls back the Order it wrote.
        let empty = CartClient::new(g.object("Cart", "nobody").object().cast());
        assert_eq!(code(empty.checkout().await), Code::InvalidArgument);
        let orders = empty.as_object().storage().count(r#"{"type": "Order"}"#).await.expect("count").count;
        assert_eq!(orders, 0, "the Order of a failed checkout is rolled back");
        let order = cart.checkout().await.expect("checkout").order;
        let stored = cart.as_object().storage().get(&order).await.expect("the order").thing;
        let data: serde_json::Value = serde_json::from_str(&stored.data).expect("JSON");
        assert_eq!(data["lines"][0]["quantity"], 3);
        assert!(cart.lines().await.expect("lines").lines.is_empty(), "emptied with the order");
        // The cart's own handler counts its Order.created event.
        within("the cart's event handler", async {
            while cart.orders().await.expect("orders").count < 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert_eq!(inventory.available("cup").await.expect("available").available, 2, "3 left the stock");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn kv_things_events_and_class_tables_roll_back_together() {
    let dir = data_dir("class-rollback");
    let (s, _) = start(&dir, Clock::system(), Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let f = counter_of(&session.bootstrap, "Faulty", "f");
        assert_eq!(f.increment(2).await.expect("inc").value, 2);
        assert_eq!(code(f.increment(-1).await), Code::InvalidArgument);
        // value 2 with one audit row: the failed call's key, row and Thing are gone.
        assert_eq!(f.get().await.expect("get").value, 2 * 1000 + 1);
        let storage = f.as_object().storage();
        assert_eq!(storage.count(r#"{"type": "Audit"}"#).await.expect("count").count, 1);
        let events = f.as_object().events().list(0, "Audit.*", 100).await.expect("list").events;
        assert_eq!(events.len(), 1, "the rolled-back Audit.created is not in the log");
        // A class's SQL cannot reach the framework's tables.
        assert_eq!(code(f.reset().await), Code::Forbidden);
        assert_eq!(storage.count(r#"{"type": "Audit"}"#).await.expect("count").count, 1);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_panicking_method_is_internal_and_the_object_goes_on() {
    let dir = data_dir("class-panic");
    let (s, _) = start(&dir, Clock::system(), Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let f = counter_of(&session.bootstrap, "Faulty", "p");
        assert_eq!(code(f.increment(13).await), Code::Internal);
        assert_eq!(f.increment(1).await.expect("the object still answers").value, 1);
        let other = rpc_client::connect(&ws).await.expect("a new session");
        assert_eq!(counter_of(&other.bootstrap, "Counter", "x").increment(1).await.expect("inc").value, 1);
        // An event handler that panics is logged; later events still reach the class.
        let events = f.as_object().events();
        events.send("Boom.panic", "{}").await.expect("send");
        events.send("Boom.ok", "{}").await.expect("send");
        let kv = f.as_object().kv();
        within("the handler after a panicking one", async {
            while kv.get("booms").await.expect("get").value != "1" {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert_eq!(f.increment(1).await.expect("the object still answers").value, 2);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_classes_and_bad_names_are_refused_and_create_nothing() {
    let dir = data_dir("class-names");
    let (s, _) = start(&dir, Clock::system(), Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    // What is in the data directory besides the host's own files (the alarm index and
    // the broker's revocations, which the host opens at start).
    let listing = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().to_string()).collect())
            .unwrap_or_default();
        names.retain(|n| !n.starts_with("alarms.sqlite") && !n.starts_with("broker.sqlite"));
        names.sort();
        names
    };
    let before = listing(&dir);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let g = &session.bootstrap;
        assert_eq!(code(g.object("Nope", "x").object().info().await), Code::NotFound);
        let long = "n".repeat(257);
        for name in ["", "a/b", "..", "../../etc", "nul\0", "bell\u{7}", "line\nbreak", long.as_str()] {
            assert_eq!(code(g.object("Counter", name).object().info().await), Code::InvalidArgument, "{name:?}");
        }
        for class in ["", "a/b", "../x", "Counter\0", "9lives", &"C".repeat(65)] {
            assert_eq!(code(g.object(class, "x").object().info().await), Code::InvalidArgument, "{class:?}");
        }
    });
    assert_eq!(listing(&dir), before, "nothing was created on disk");
    assert!(!dir.join("default").join("Nope").exists());
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn alarms_and_schedules_reach_the_class_after_a_restart() {
    let dir = data_dir("class-alarm");
    let clock = Clock::manual(1_000_000);
    let (s, _) = start(&dir, clock.clone(), Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let g = &session.bootstrap;
        let inventory = InventoryClient::new(g.object("Inventory", INVENTORY).object().cast());
        inventory.restock("pen", 4).await.expect("restock");
        let cart = CartClient::new(g.object("Cart", "zed").object().cast());
        cart.add("pen", 3).await.expect("add");
        // A persisted schedule whose action is the event the cart handles.
        let schedule = cart.as_object().schedule();
        schedule.schedule("every 1 minutes", "Order.created", "{}", None).await.expect("schedule");
        assert_eq!(inventory.available("pen").await.expect("available").available, 1);
    });
    s.stop();
    // Restarted, nothing loaded: the alarms bring both objects back.
    let (s, metrics) = start(&dir, clock.clone(), Duration::from_secs(60));
    let fired = metrics.alarms_fired.load(Ordering::Relaxed);
    clock.advance(Duration::from_millis(u64::from(RESERVATION_MS) + 60_000));
    rpc_client::run(within("both alarms", metrics.wait_until(|m| m.alarms_fired.load(Ordering::Relaxed) >= fired + 2)));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let g = &session.bootstrap;
        let inventory = InventoryClient::new(g.object("Inventory", INVENTORY).object().cast());
        within("the reservation to expire", async {
            while inventory.available("pen").await.expect("available").available != 4 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let cart = CartClient::new(g.object("Cart", "zed").object().cast());
        within("the scheduled event to reach the cart's handler", async {
            while cart.orders().await.expect("orders").count < 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn token_scopes_cover_a_class_methods() {
    let dir = data_dir("class-tokens");
    let host = HostConfig { data_dir: dir.clone(), threads: 2, ..Default::default() };
    let broker = do_runtime::BrokerConfig {
        keys: rpc_broker::token::KeyRing::parse("k1:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", Some("k1"))
            .expect("keys"),
        admin_key: Some("admin-key".into()),
        db_path: dir.join("broker.sqlite"),
        call_timeout: Duration::from_secs(5),
        require_tokens: false,
        max_shards: 8,
    };
    let s = app().host(host).broker(broker).start(server_config()).expect("server").server;
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let g = session.bootstrap.raw().clone();
        let redeemed = |methods: &'static [&'static str]| {
            let g = g.clone();
            async move {
                let mut mint = common::broker_of(&g, "admin-key").mint_request();
                {
                    let mut r = mint.get().init_request();
                    r.set_target("Counter/t1");
                    r.set_scope("write");
                    r.set_ttl_ms(60_000);
                    r.set_subject("tester");
                    let mut m = r.init_methods(methods.len() as u32);
                    for (i, x) in methods.iter().enumerate() {
                        m.set(i as u32, *x);
                    }
                }
                let reply = mint.send().promise.await.expect("mint");
                let token = reply.get().expect("results").get_token().expect("token").to_string().expect("utf8");
                let mut redeem = common::broker_of(&g, "").redeem_request();
                redeem.get().set_token(&token);
                redeem.get().set_target("Counter/t1");
                let object = redeem.send().pipeline.get_object();
                CounterClient::new(capnp::capability::FromClientHook::new(object.client.hook))
            }
        };
        // A token for `increment` alone: that method and nothing else of the class.
        let c = redeemed(&["counter.increment"]).await;
        assert_eq!(c.increment(3).await.expect("increment is in the token").value, 3);
        assert_eq!(code(c.get().await), Code::Forbidden, "get is not in the token's methods");
        // Every method, at scope write: `reset` is declared $scope("admin").
        let c = redeemed(&["*"]).await;
        assert_eq!(c.get().await.expect("get needs read").value, 3);
        assert_eq!(code(c.reset().await), Code::InsufficientScope, "reset needs admin");
        assert_eq!(c.get().await.expect("get").value, 3, "nothing was reset");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_schedule_calls_a_class_method_after_a_restart() {
    let dir = data_dir("class-scheduled-method");
    let clock = Clock::manual(5_000_000);
    let (s, _) = start(&dir, clock.clone(), Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let c = counter_of(&session.bootstrap, "Counter", "ticker");
        // The action names a method of the class: each run calls Counter.tick.
        c.as_object().schedule().schedule("every 1 minutes", "Counter.tick", "{}", None).await.expect("schedule");
        assert_eq!(c.get().await.expect("get").value, 0);
    });
    s.stop();
    let (s, metrics) = start(&dir, clock.clone(), Duration::from_secs(60));
    clock.advance(Duration::from_secs(61));
    rpc_client::run(within("the alarm", metrics.wait_until(|m| m.alarms_fired.load(Ordering::Relaxed) >= 1)));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let c = counter_of(&session.bootstrap, "Counter", "ticker");
        within("the scheduled tick", async {
            while c.get().await.expect("get").value < 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert_eq!(c.get().await.expect("get").value, 1, "one run, one tick");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
