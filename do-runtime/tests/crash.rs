//! Kill -9 under load, again and again: writes from several clients, the `dotdo`
//! process killed with SIGKILL mid-load and restarted, [`KILLS`] times; after each
//! restart every write acknowledged so far is there and every database passes SQLite's
//! integrity check.

use schema::object_capnp::storage;
use std::cell::RefCell;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

fn start(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dotdo"))
        .args(["serve", "--port", "0", "--no-tcp", "--data"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("dotdo starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the listening line");
    // Keep reading so the server never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let addr =
        line.trim().strip_prefix("dotdo listening on http://").expect("dotdo prints where it listens").to_string();
    (child, format!("ws://{addr}/rpc"))
}

fn storage_of(g: &schema::session_capnp::gateway::Client, name: &str) -> storage::Client {
    let mut req = g.object_request();
    req.get().set_class("Crash");
    req.get().set_name(name);
    req.send().pipeline.get_object().storage_request().send().pipeline.get_storage()
}

/// How many times the server is killed.
const KILLS: usize = 20;
/// Concurrent writers, spread over [`OBJECTS`] objects (some objects shared).
const WRITERS: usize = 6;
const OBJECTS: usize = 4;
/// Acknowledged writes each writer makes in a round before the server is killed (the
/// writers go on until the kill lands, so some writes are in flight when it does).
const WRITES_BEFORE_KILL: usize = 20;

/// Writes under load until every writer has [`WRITES_BEFORE_KILL`] acknowledged writes,
/// then kills `child` with SIGKILL; returns the acknowledged (object, id) pairs.
fn load_then_kill(child: &mut Child, url: &str, round: usize) -> Vec<(String, String)> {
    let acked: Rc<RefCell<Vec<(String, String)>>> = Rc::default();
    // Signalled when a writer passes WRITES_BEFORE_KILL acknowledged writes.
    let progress = Rc::new(tokio::sync::Notify::new());
    let per_writer: Rc<RefCell<[usize; WRITERS]>> = Rc::default();
    rpc_client::run(async {
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (url, acked, progress, per_writer) =
                (url.to_string(), acked.clone(), progress.clone(), per_writer.clone());
            writers.push(tokio::task::spawn_local(async move {
                let Ok(session) = rpc_client::connect(&url).await else { return };
                let object = format!("obj{}", w % OBJECTS);
                let st = storage_of(&session.bootstrap, &object);
                for i in 0.. {
                    let id = format!("r{round}-w{w}-{i}");
                    let mut req = st.create_request();
                    req.get().set_type("Note");
                    req.get().set_id(&id);
                    req.get().set_data(r#"{"payload": "some bytes to write"}"#);
                    match req.send().promise.await {
                        Ok(_) => {
                            acked.borrow_mut().push((object.clone(), id));
                            per_writer.borrow_mut()[w] += 1;
                            if per_writer.borrow()[w] == WRITES_BEFORE_KILL {
                                progress.notify_one();
                            }
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        // Kill mid-load, once every writer has had writes acknowledged (and goes on).
        let loaded = async {
            while per_writer.borrow().iter().any(|n| *n < WRITES_BEFORE_KILL) {
                progress.notified().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), loaded).await.expect("every writer makes progress");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        for w in writers {
            let _ = w.await;
        }
    });
    let acked = acked.borrow().clone();
    assert!(acked.len() >= WRITERS * WRITES_BEFORE_KILL, "round {round}: {} writes acknowledged", acked.len());
    acked
}

/// How many of the `acked` writes the server at `url` has.
fn found(url: &str, acked: &[(String, String)]) -> usize {
    rpc_client::run(async {
        let session = rpc_client::connect(url).await.expect("connect after restart");
        let mut n = 0;
        for o in 0..OBJECTS {
            let object = format!("obj{o}");
            let mut present = std::collections::HashSet::new();
            let mut cursor = String::new();
            loop {
                let mut q = storage_of(&session.bootstrap, &object).query_request();
                q.get().set_query(serde_json::json!({"limit": 1000, "cursor": cursor}).to_string());
                let r = q.send().promise.await.expect("query after restart");
                for t in r.get().unwrap().get_things().unwrap() {
                    present.insert(t.get_id().unwrap().to_string().unwrap());
                }
                cursor = r.get().unwrap().get_cursor().unwrap().to_string().unwrap();
                if cursor.is_empty() {
                    break;
                }
            }
            for (_, id) in acked.iter().filter(|(obj, _)| *obj == object) {
                assert!(present.contains(id), "acknowledged write {id} on {object} was lost");
                n += 1;
            }
        }
        n
    })
}

/// Every object database passes `PRAGMA integrity_check` (read beside the running
/// server, which keeps them in WAL mode).
fn integrity_ok(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir.join("default").join("Crash")) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "sqlite") {
            let c = rusqlite::Connection::open(&path).expect("open");
            let check: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity check");
            assert_eq!(check, "ok", "{}", path.display());
        }
    }
}

#[test]
fn every_acknowledged_write_survives_repeated_sigkill() {
    let dir = std::env::temp_dir().join(format!("dotdo-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut acked = Vec::new();
    let mut kills = 0;
    for round in 0..KILLS {
        let (mut child, url) = start(&dir);
        assert_eq!(found(&url, &acked), acked.len(), "round {round}: every write acknowledged so far is there");
        integrity_ok(&dir);
        acked.extend(load_then_kill(&mut child, &url, round));
        kills += 1;
    }
    let (mut child, url) = start(&dir);
    let present = found(&url, &acked);
    integrity_ok(&dir);
    child.kill().expect("stop");
    let _ = child.wait();
    eprintln!("{kills} kills, {} acknowledged writes, {present} found", acked.len());
    assert_eq!(present, acked.len());
    let _ = std::fs::remove_dir_all(&dir);
}
