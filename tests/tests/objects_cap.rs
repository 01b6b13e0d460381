//! The objects one session may hold open: a bound with a typed refusal, released as the
//! session drops its capabilities; and errors of objects that cannot be opened name no
//! path of the server's.

mod common;

use common::*;
use rpc_core::{Code, RpcError};
use schema::object_capnp::object;
use schema::session_capnp::gateway;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

const CAP: usize = 3;

fn start(dir: &Path) -> (rpc_server::ServerHandle, std::sync::Arc<do_runtime::HostMetrics>) {
    host_server(do_runtime::HostConfig {
        data_dir: dir.to_path_buf(),
        threads: 2,
        max_objects_per_session: CAP,
        ..Default::default()
    })
}

fn object_of(g: &gateway::Client, class: &str, name: &str) -> object::Client {
    let mut req = g.object_request();
    req.get().set_class(class);
    req.get().set_name(name);
    req.send().pipeline.get_object()
}

/// A call on the object: the number of things in its storage.
async fn count(o: &object::Client) -> Result<u64, RpcError> {
    let storage = o.storage_request().send().pipeline.get_storage();
    let mut req = storage.count_request();
    req.get().set_query("{}");
    Ok(req.send().promise.await?.get()?.get_count())
}

/// `gateway.object` itself, awaited (the refusal comes from it, not from a later call).
async fn open(g: &gateway::Client, class: &str, name: &str) -> Result<object::Client, RpcError> {
    let mut req = g.object_request();
    req.get().set_class(class);
    req.get().set_name(name);
    Ok(req.send().promise.await?.get()?.get_object()?)
}

#[test]
fn a_session_holds_at_most_its_bound_of_objects_and_keeps_working() {
    let dir = data_dir("objects-cap");
    let (s, _) = start(&dir);
    let [ws, _, tcp] = urls(&s);
    for url in [&ws, &tcp] {
        rpc_client::run(async {
            let session = connect_any(url).await.expect("connect");
            let g = &session.bootstrap;
            let mut held = Vec::new();
            for i in 0..CAP {
                let o = open(g, "Capped", &format!("o{i}")).await.expect("within the bound");
                assert_eq!(count(&o).await, Ok(0));
                held.push(o);
            }
            let refused = open(g, "Capped", "one-too-many").await.map(|_| ());
            let e = refused.expect_err("past the bound");
            assert_eq!(e.code, Code::LimitExceeded, "{e}");
            // The session still works: held objects answer, opening one again is no new object.
            assert_eq!(count(&held[0]).await, Ok(0));
            let again = open(g, "Capped", "o1").await.expect("already held");
            assert_eq!(count(&again).await, Ok(0));
            assert!(rpc_client::negotiate(g, "t", &[], &[]).await.is_ok());
        });
    }
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn objects_a_session_drops_are_released() {
    let dir = data_dir("objects-release");
    let (s, host) = start(&dir);
    let [ws, _, tcp] = urls(&s);
    for url in [&ws, &tcp] {
        rpc_client::run(async {
            let session = connect_any(url).await.expect("connect");
            let g = &session.bootstrap;
            // Far more objects than the bound, one after another in one session.
            for i in 0..(CAP * 5) {
                let o = object_of(g, "Released", &format!("r{i}"));
                assert_eq!(count(&o).await, Ok(0), "object {i}");
                drop(o);
            }
            // Their connections close while the session is still open, so the host can evict.
            within("object connections to close", host.wait_until(|m| m.connections.load(Ordering::Relaxed) == 0))
                .await;
            // The same holds for capabilities handed out through pipelines that resolved.
            for i in 0..(CAP * 2) {
                let o = open(g, "Released", &format!("p{i}")).await.expect("open");
                assert_eq!(count(&o).await, Ok(0));
            }
            assert!(rpc_client::negotiate(g, "t", &[], &[]).await.is_ok());
        });
    }
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_module_keeps_its_object_open_after_the_object_is_dropped() {
    let dir = data_dir("objects-module");
    let (s, host) = start(&dir);
    let [ws, _, tcp] = urls(&s);
    for url in [&ws, &tcp] {
        rpc_client::run(async {
            let session = connect_any(url).await.expect("connect");
            let o = open(&session.bootstrap, "Kept", "k").await.expect("open");
            let storage = {
                let r = o.storage_request().send().promise.await.expect("storage");
                r.get().expect("results").get_storage().expect("a module")
            };
            drop(o);
            // The session holds only the module now; its object's connection stays open.
            let mut req = storage.count_request();
            req.get().set_query("{}");
            let n = req.send().promise.await.expect("the module still answers");
            assert_eq!(n.get().expect("results").get_count(), 0);
            drop(n);
            drop(storage);
            within("the connection to close", host.wait_until(|m| m.connections.load(Ordering::Relaxed) == 0)).await;
        });
    }
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_object_that_cannot_be_opened_reveals_no_path() {
    let dir = data_dir("objects-nopath");
    // A file where the class's directory should be.
    std::fs::create_dir_all(dir.join("default")).expect("namespace dir");
    std::fs::write(dir.join("default").join("Blocked"), b"not a directory").expect("file in the way");
    let (s, _) = start(&dir);
    let [ws, http, tcp] = urls(&s);
    let absolute = std::fs::canonicalize(&dir).expect("absolute path");
    for url in [&ws, &http, &tcp] {
        rpc_client::run(async {
            let session = connect_any(url).await.expect("connect");
            let e = count(&object_of(&session.bootstrap, "Blocked", "x")).await.expect_err("cannot open");
            assert_eq!(e.code, Code::Internal, "{url}: {e}");
            assert!(e.message.contains("object database could not be opened"), "{url}: {e}");
            for p in [dir.to_string_lossy(), absolute.to_string_lossy()] {
                assert!(!e.message.contains(&*p), "{url}: the message names {p}: {e}");
            }
            assert!(!e.message.contains(std::env::temp_dir().to_string_lossy().trim_end_matches('/')), "{e}");
        });
    }
    // Other objects of the server still work.
    rpc_client::run(async {
        let session = connect_any(&ws).await.expect("connect");
        assert_eq!(count(&object_of(&session.bootstrap, "Fine", "x")).await, Ok(0));
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_live_object_bound_follows_the_open_files_limit() {
    use do_runtime::host::fds;
    let nofile = fds::open_files_limit().unwrap_or(fds::FALLBACK_NOFILE);
    let dir = data_dir("objects-nofile");
    let host = do_runtime::HostConfig {
        data_dir: dir.clone(),
        threads: 2,
        max_live: usize::MAX,
        idle_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let objects = do_runtime::ObjectHost::start(host).expect("host");
    assert_eq!(objects.config.max_live, fds::live_objects_per_thread(nofile, 2));
    assert!((objects.config.max_live as u64) * 2 * fds::FDS_PER_OBJECT < nofile, "room is left for connections");
    let _ = std::fs::remove_dir_all(dir);
}
