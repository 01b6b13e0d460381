//! `dotdo inspect` against a real server's data directory: listing and one object read
//! from the files; changes made through the server with the admin key, refused without.

use rpc_client::api::object::Object;
use std::process::Command;

const ADMIN: &str = "inspect-admin-key";
const KEY: &str = "k1:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

fn dotdo(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dotdo"))
        .arg("inspect")
        .args(args)
        .env_remove("DOTDO_ADMIN_KEY")
        .output()
        .expect("dotdo runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn object_of(session: &rpc_client::Session, class: &str, name: &str) -> Object {
    session.bootstrap.object(class, name).object()
}

#[test]
fn inspect_lists_shows_and_changes_objects_through_the_server() {
    let dir = std::env::temp_dir().join(format!("dotdo-inspect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = rpc_server::ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: None,
        workers: 1,
        ..Default::default()
    };
    let host = do_runtime::HostConfig { data_dir: dir.clone(), threads: 1, ..Default::default() };
    let broker = do_runtime::BrokerConfig {
        keys: rpc_broker::token::KeyRing::parse(KEY, Some("k1")).expect("keys"),
        admin_key: Some(ADMIN.into()),
        db_path: dir.join("broker.sqlite"),
        call_timeout: std::time::Duration::from_secs(5),
        require_tokens: false,
        max_shards: 8,
    };
    let s = do_runtime::Runtime::new(server).host(host).broker(broker).start().expect("server").server;
    let url = format!("ws://{}/rpc", s.http_addr);
    let data = dir.to_string_lossy().to_string();
    let thing = rpc_client::run(async {
        let session = rpc_client::connect(&url).await.expect("connect");
        let acme = object_of(&session, "Customer", "acme");
        let thing = acme.storage().create("Invoice", r#"{"total": 12}"#, "").await.expect("create").thing;
        acme.kv().put("plan", r#""pro""#).await.expect("put");
        acme.events().send("Customer.noticed", "{}").await.expect("send");
        acme.schedule().schedule("every 5 minutes", "Customer.pinged", "{}", None).await.expect("schedule");
        object_of(&session, "Order", "o-1").storage().create("Line", "{}", "").await.expect("create");
        thing.id
    });

    // The listing, from the files, while the server runs.
    let (ok, out, err) = dotdo(&["--data", &data, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let objects = v["objects"].as_array().expect("objects");
    assert_eq!(objects.len(), 2);
    let acme = objects.iter().find(|o| o["name"] == "acme").expect("acme is listed");
    assert_eq!(acme["class"], "Customer");
    assert_eq!((acme["things"].as_i64(), acme["kv"].as_i64(), acme["schedules"].as_i64()), (Some(1), Some(1), Some(1)));
    assert!(acme["events"].as_i64() >= Some(2), "Invoice.created and Customer.noticed");
    let (ok, table, _) = dotdo(&["--data", &data]);
    assert!(ok && table.contains("Customer") && table.contains("Order"), "{table}");

    // One object as tables.
    let (ok, out, err) = dotdo(&["--data", &data, "Customer", "acme"]);
    assert!(ok, "{err}");
    for needle in ["plan", "\"pro\"", &thing, "Customer.noticed", "every 5 minutes"] {
        assert!(out.contains(needle), "{needle:?} in\n{out}");
    }
    // An object never used is NOT_FOUND and is not created by looking.
    let (ok, _, err) = dotdo(&["--data", &data, "Customer", "nobody"]);
    assert!(!ok && err.contains("NOT_FOUND"), "{err}");
    assert_eq!(std::fs::read_dir(dir.join("default").join("Customer")).expect("dir").count(), 1 + 2);

    // Changes go through the server, with the admin key only.
    let (ok, _, err) = dotdo(&["--data", &data, "--url", &url, "Customer", "acme", "--set-kv", "plan", r#""team""#]);
    assert!(!ok && err.contains("UNAUTHORIZED"), "{err}");
    let (ok, _, err) =
        dotdo(&["--url", &url, "--admin-key", "wrong", "Customer", "acme", "--set-kv", "plan", r#""team""#]);
    assert!(!ok, "a wrong admin key cannot mint: {err}");
    let (ok, out, err) = dotdo(&[
        "--url",
        &url,
        "--admin-key",
        ADMIN,
        "Customer",
        "acme",
        "--set-kv",
        "plan",
        r#""team""#,
        "--delete-thing",
        &thing,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("set plan") && out.contains("deleted thing"), "{out}");
    let (ok, _, err) =
        dotdo(&["--url", &url, "--admin-key", ADMIN, "Customer", "acme", "--set-kv", "plan", "not json"]);
    assert!(!ok && err.contains("INVALID_ARGUMENT"), "{err}");
    rpc_client::run(async {
        let session = rpc_client::connect(&url).await.expect("connect");
        let acme = object_of(&session, "Customer", "acme");
        assert_eq!(acme.kv().get("plan").await.expect("get").value, r#""team""#);
        let count = acme.storage().count(r#"{"type": "Invoice"}"#).await.expect("count").count;
        assert_eq!(count, 0, "the thing was deleted through the server");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
