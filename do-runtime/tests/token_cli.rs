//! `dotdo token` on the command line: new-key, mint, verify, attenuate, and refusals.

use std::process::Command;

fn dotdo(args: &[&str], keys: Option<&str>) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dotdo"));
    c.args(["token"]).args(args).env_remove("DOTDO_TOKEN_KEY_FILE").env_remove("DOTDO_TOKEN_KEYS");
    if let Some(k) = keys {
        c.env("DOTDO_TOKEN_KEYS", k);
    }
    let out = c.output().expect("dotdo runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn mint_verify_and_attenuate_from_the_command_line() {
    let (ok, key, _) = dotdo(&["new-key"], None);
    assert!(ok);
    let key = key.lines().next().expect("a key line").to_string();
    assert!(key.contains(':'));
    let (ok, token, err) =
        dotdo(&["mint", "--target", "Customer/acme", "--methods", "storage.*", "--scope", "write"], Some(&key));
    assert!(ok, "{err}");
    let (ok, claims, _) = dotdo(&["verify", &token], Some(&key));
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&claims).expect("json claims");
    assert_eq!((v["target"].as_str(), v["scope"].as_str()), (Some("Customer/acme"), Some("write")));
    let (ok, narrow, _) = dotdo(&["attenuate", &token, "--methods", "storage.get", "--scope", "read"], None);
    assert!(ok, "attenuating needs no key");
    let (ok, claims, _) = dotdo(&["verify", &narrow], Some(&key));
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&claims).expect("json claims");
    assert_eq!(v["scope"], "read");
    assert_eq!(v["methods"], serde_json::json!(["storage.get"]));
    // Every mint gets its own random id, however close together.
    let id = |t: &str| {
        let (ok, claims, _) = dotdo(&["verify", t], Some(&key));
        assert!(ok);
        serde_json::from_str::<serde_json::Value>(&claims).expect("json")["tokenId"].as_str().map(String::from)
    };
    let (_, again, _) =
        dotdo(&["mint", "--target", "Customer/acme", "--methods", "storage.*", "--scope", "write"], Some(&key));
    let (first, second) = (id(&token).expect("an id"), id(&again).expect("an id"));
    assert_ne!(first, second);
    assert!(first.len() == 32 && !first.starts_with("cli-"), "random, not the millisecond: {first}");
    // Refusals: no key configured, a tampered token.
    let (ok, _, err) = dotdo(&["mint", "--target", "a/b", "--methods", "*", "--scope", "read"], None);
    assert!(!ok && err.contains("SECRET_REQUIRED"), "{err}");
    let tampered = format!("{}x", narrow);
    let (ok, _, err) = dotdo(&["verify", &tampered], Some(&key));
    assert!(!ok && (err.contains("INVALID_SIGNATURE") || err.contains("MALFORMED")), "{err}");
}
