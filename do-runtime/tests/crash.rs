//! Kill -9 under load: writes from several clients, the `dotdo` process killed with
//! SIGKILL mid-load and restarted; every acknowledged write is there and every
//! database passes SQLite's integrity check.

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

/// Acknowledged writes each writer makes before the server is killed.
const WRITES_BEFORE_KILL: usize = 20;

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let dir = std::env::temp_dir().join(format!("dotdo-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut child, url) = start(&dir);
    // Six writers on four objects (two objects shared by two writers each).
    let acked: Rc<RefCell<Vec<(String, String)>>> = Rc::default();
    // Signalled when a writer passes WRITES_BEFORE_KILL acknowledged writes.
    let progress = Rc::new(tokio::sync::Notify::new());
    let per_writer: Rc<RefCell<[usize; 6]>> = Rc::default();
    rpc_client::run(async {
        let mut writers = Vec::new();
        for w in 0..6 {
            let (url, acked, progress, per_writer) = (url.clone(), acked.clone(), progress.clone(), per_writer.clone());
            writers.push(tokio::task::spawn_local(async move {
                let Ok(session) = rpc_client::connect(&url).await else { return };
                let object = format!("obj{}", w % 4);
                let st = storage_of(&session.bootstrap, &object);
                for i in 0.. {
                    let id = format!("w{w}-{i}");
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
        tokio::time::timeout(Duration::from_secs(60), loaded).await.expect("every writer makes progress");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        for w in writers {
            let _ = w.await;
        }
    });
    let acked = acked.borrow().clone();
    assert!(acked.len() >= 6 * WRITES_BEFORE_KILL, "the load ran: {} writes acknowledged", acked.len());

    let (mut child, url) = start(&dir);
    rpc_client::run(async {
        let session = rpc_client::connect(&url).await.expect("connect after restart");
        for o in 0..4 {
            let object = format!("obj{o}");
            let want: Vec<&String> = acked.iter().filter(|(obj, _)| *obj == object).map(|(_, id)| id).collect();
            let mut found = std::collections::HashSet::new();
            let mut cursor = String::new();
            loop {
                let mut q = storage_of(&session.bootstrap, &object).query_request();
                q.get().set_query(serde_json::json!({"limit": 1000, "cursor": cursor}).to_string());
                let r = q.send().promise.await.expect("query after restart");
                for t in r.get().unwrap().get_things().unwrap() {
                    found.insert(t.get_id().unwrap().to_string().unwrap());
                }
                cursor = r.get().unwrap().get_cursor().unwrap().to_string().unwrap();
                if cursor.is_empty() {
                    break;
                }
            }
            for id in want {
                assert!(found.contains(id), "acknowledged write {id} on {object} was lost");
            }
        }
    });
    child.kill().expect("stop");
    let _ = child.wait();
    for entry in std::fs::read_dir(dir.join("default").join("Crash")).expect("class dir").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "sqlite") {
            let c = rusqlite::Connection::open(&path).expect("open");
            let check: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity check");
            assert_eq!(check, "ok", "{}", path.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
