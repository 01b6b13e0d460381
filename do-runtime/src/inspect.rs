//! `dotdo inspect`: what a data directory holds, read from the objects' files (read-only,
//! safe while the server runs); changes go through a running server's capabilities with
//! an admin credential, never by writing a file behind the server's back.

use crate::host::registry::ObjectKey;
use clap::Args;
use rpc_core::{Code, RpcError};
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The arguments of `dotdo inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct InspectArgs {
    /// The data directory the server uses.
    #[arg(long, default_value = ".dotdo")]
    pub data: PathBuf,
    /// The namespace.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The object's class (with NAME: show one object; without: list the objects).
    pub class: Option<String>,
    /// The object's name.
    pub name: Option<String>,
    /// How many Things and events to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// A running server, for changes (e.g. ws://127.0.0.1:8787/rpc).
    #[arg(long, default_value = "ws://127.0.0.1:8787/rpc")]
    pub url: String,
    /// The server's admin API key (DOTDO_ADMIN_KEY), which changes need.
    #[arg(long)]
    pub admin_key: Option<String>,
    /// Sets a key-value entry to a JSON value (through the server).
    #[arg(long, num_args = 2, value_names = ["KEY", "JSON"])]
    pub set_kv: Option<Vec<String>>,
    /// Deletes a key-value entry (through the server).
    #[arg(long, value_name = "KEY")]
    pub delete_kv: Option<String>,
    /// Deletes a Thing (through the server).
    #[arg(long, value_name = "ID")]
    pub delete_thing: Option<String>,
}

impl InspectArgs {
    /// Whether a change was asked for.
    pub fn changes(&self) -> bool {
        self.set_kv.is_some() || self.delete_kv.is_some() || self.delete_thing.is_some()
    }
}

fn sql_error(e: rusqlite::Error) -> RpcError {
    RpcError::new(Code::Internal, format!("sqlite: {e}"))
}

fn open(file: &Path) -> Result<Connection, RpcError> {
    Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(sql_error)
}

/// Rows of `sql` as JSON values (an absent table reads as no rows: an object that never
/// used a module has none of its tables).
fn rows(c: &Connection, sql: &str) -> Result<Vec<Vec<Value>>, RpcError> {
    let mut stmt = match c.prepare(sql) {
        Ok(s) => s,
        Err(e) if e.to_string().contains("no such table") => return Ok(Vec::new()),
        Err(e) => return Err(sql_error(e)),
    };
    let n = stmt.column_count();
    let mut out = Vec::new();
    let mut q = stmt.query([]).map_err(sql_error)?;
    while let Some(r) = q.next().map_err(sql_error)? {
        out.push(
            (0..n)
                .map(|i| match r.get_ref(i) {
                    Ok(rusqlite::types::ValueRef::Integer(v)) => json!(v),
                    Ok(rusqlite::types::ValueRef::Real(v)) => json!(v),
                    Ok(rusqlite::types::ValueRef::Text(t)) => json!(String::from_utf8_lossy(t)),
                    _ => Value::Null,
                })
                .collect(),
        );
    }
    Ok(out)
}

fn count(c: &Connection, sql: &str) -> Result<i64, RpcError> {
    Ok(rows(c, sql)?.first().and_then(|r| r.first()).and_then(Value::as_i64).unwrap_or(0))
}

/// One object's summary, from its file.
fn summary(file: &Path) -> Result<Value, RpcError> {
    let c = open(file)?;
    let mut address = serde_json::Map::new();
    for r in rows(&c, "SELECT key, value FROM dotdo_object")? {
        if let (Some(k), Some(v)) = (r[0].as_str(), r.get(1)) {
            address.insert(k.to_string(), v.clone());
        }
    }
    let id = file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let alarm = rows(&c, "SELECT value FROM dotdo_meta WHERE key = 'class_alarm'")?;
    Ok(json!({
        "id": id,
        "class": address.get("class").cloned().unwrap_or(Value::Null),
        "name": address.get("name").cloned().unwrap_or(Value::Null),
        "things": count(&c, "SELECT COUNT(*) FROM things WHERE deleted_at IS NULL")?,
        "kv": count(&c, "SELECT COUNT(*) FROM dotdo_kv")?,
        "events": count(&c, "SELECT COUNT(*) FROM events")?,
        "schedules": count(&c, "SELECT COUNT(*) FROM schedules")?,
        "alarm": alarm.first().and_then(|r| r.first()).cloned().unwrap_or(Value::Null),
    }))
}

/// Every object of the namespace, class by class.
pub fn list(data: &Path, namespace: &str) -> Result<Value, RpcError> {
    rpc_core::ident::namespace(namespace)?;
    let dir = data.join(namespace);
    let mut objects = Vec::new();
    let mut classes: Vec<PathBuf> =
        std::fs::read_dir(&dir).map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
    classes.sort();
    for class_dir in classes.iter().filter(|p| p.is_dir()) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(class_dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|f| f.extension().is_some_and(|e| e == "sqlite"));
        files.sort();
        for f in files {
            let mut s = summary(&f)?;
            if s["class"].is_null() {
                s["class"] = json!(class_dir.file_name().map(|n| n.to_string_lossy().to_string()));
            }
            objects.push(s);
        }
    }
    Ok(json!({ "namespace": namespace, "objects": objects }))
}

/// One object in detail: its key-value entries, newest Things and events, schedules
/// and alarm. NOT_FOUND when it has no file (it was never used), which is not created.
pub fn object(data: &Path, namespace: &str, class: &str, name: &str, limit: usize) -> Result<Value, RpcError> {
    let key = ObjectKey::new(namespace, class, name)?;
    let file = data.join(namespace).join(class).join(format!("{}.sqlite", key.id()));
    if !file.is_file() {
        return Err(RpcError::new(Code::NotFound, format!("no object {class}/{name} in namespace {namespace}")));
    }
    let mut out = summary(&file)?;
    let c = open(&file)?;
    let limit = limit.min(10_000);
    let kv = rows(&c, &format!("SELECT key, value FROM dotdo_kv ORDER BY key LIMIT {limit}"))?;
    out["kv_entries"] = kv.into_iter().map(|r| json!({"key": r[0], "value": r[1]})).collect();
    let things = rows(
        &c,
        &format!("SELECT id, type, version, data FROM things WHERE deleted_at IS NULL ORDER BY updated_at DESC, id LIMIT {limit}"),
    )?;
    out["recent_things"] =
        things.into_iter().map(|r| json!({"id": r[0], "type": r[1], "version": r[2], "data": r[3]})).collect();
    let events =
        rows(&c, &format!("SELECT seq, noun || '.' || verb, data, ts FROM events ORDER BY seq DESC LIMIT {limit}"))?;
    out["recent_events"] =
        events.into_iter().map(|r| json!({"seq": r[0], "type": r[1], "data": r[2], "timestamp": r[3]})).collect();
    let schedules = rows(&c, "SELECT id, spec, action, next_run FROM schedules ORDER BY next_run")?;
    out["schedule_entries"] =
        schedules.into_iter().map(|r| json!({"id": r[0], "spec": r[1], "action": r[2], "next_run": r[3]})).collect();
    Ok(out)
}

fn cell(v: &Value, width: usize) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let s = s.replace(['\n', '\t'], " ");
    if s.chars().count() > width {
        format!("{}…", s.chars().take(width.saturating_sub(1)).collect::<String>())
    } else {
        s
    }
}

fn table(out: &mut String, title: &str, heads: &[(&str, &str, usize)], items: &Value) {
    use std::fmt::Write as _;
    let items = items.as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "{title} ({})", items.len());
    if items.is_empty() {
        return;
    }
    let line = |cells: Vec<String>| {
        cells.iter().zip(heads).map(|(c, h)| format!("{c:<w$}", w = h.2)).collect::<Vec<_>>().join("  ")
    };
    let _ = writeln!(out, "  {}", line(heads.iter().map(|h| h.0.to_uppercase()).collect()).trim_end());
    for it in &items {
        let _ = writeln!(out, "  {}", line(heads.iter().map(|h| cell(&it[h.1], h.2)).collect()).trim_end());
    }
}

/// The listing as a table for people.
pub fn render_list(v: &Value) -> String {
    let mut out = String::new();
    let heads = [
        ("class", "class", 16),
        ("name", "name", 24),
        ("id", "id", 12),
        ("things", "things", 7),
        ("kv", "kv", 6),
        ("events", "events", 7),
        ("schedules", "schedules", 9),
        ("alarm", "alarm", 14),
    ];
    table(&mut out, &format!("objects in namespace {}", cell(&v["namespace"], 63)), &heads, &v["objects"]);
    out
}

/// One object as tables for people.
pub fn render_object(v: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "{}/{}  id {}", cell(&v["class"], 64), cell(&v["name"], 256), cell(&v["id"], 64));
    let _ = writeln!(out, "alarm: {}", cell(&v["alarm"], 20));
    table(&mut out, "key-value entries", &[("key", "key", 24), ("value", "value", 60)], &v["kv_entries"]);
    table(
        &mut out,
        "things (newest first)",
        &[("id", "id", 20), ("type", "type", 12), ("version", "version", 7), ("data", "data", 50)],
        &v["recent_things"],
    );
    table(
        &mut out,
        "events (newest first)",
        &[("seq", "seq", 7), ("type", "type", 20), ("data", "data", 50)],
        &v["recent_events"],
    );
    table(
        &mut out,
        "schedules",
        &[("id", "id", 20), ("spec", "spec", 24), ("action", "action", 20), ("next_run", "next_run", 14)],
        &v["schedule_entries"],
    );
    out
}

/// Applies the asked changes through the server at `args.url`: an admin token for the
/// object is minted with the admin key, redeemed, and the object's `kv` and `storage`
/// capabilities do the work (as any client's calls would).
pub async fn change(args: &InspectArgs) -> Result<String, RpcError> {
    let (Some(class), Some(name)) = (&args.class, &args.name) else {
        return Err(RpcError::invalid_argument("changes name the object: dotdo inspect CLASS NAME --set-kv ..."));
    };
    let Some(admin) = args.admin_key.clone().or_else(|| std::env::var("DOTDO_ADMIN_KEY").ok()) else {
        return Err(RpcError::new(Code::Unauthorized, "changes need --admin-key (or DOTDO_ADMIN_KEY)"));
    };
    let session = rpc_client::connect(&args.url).await?;
    let gateway = session.bootstrap.raw().clone();
    let target = format!("{class}/{name}");
    let mut broker_req = gateway.broker_request();
    broker_req.get().set_api_key(&admin);
    let broker = broker_req.send().pipeline.get_broker();
    let mut mint = broker.mint_request();
    {
        let mut r = mint.get().init_request();
        r.set_target(&target);
        r.set_scope("admin");
        r.set_ttl_ms(60_000);
        r.set_subject("dotdo inspect");
        r.init_methods(1).set(0, "*");
    }
    let minted = mint.send().promise.await?;
    let token = rpc_core::params::text(minted.get()?.get_token())?;
    let mut redeem = broker.redeem_request();
    redeem.get().set_token(&token);
    redeem.get().set_target(&target);
    let object = redeem.send().pipeline.get_object();
    let mut done = Vec::new();
    if let Some(kv) = &args.set_kv {
        let (Some(k), Some(v)) = (kv.first(), kv.get(1)) else {
            return Err(RpcError::invalid_argument("--set-kv KEY JSON"));
        };
        let mut req = object.kv_request().send().pipeline.get_kv().put_request();
        req.get().set_key(k);
        req.get().set_value(v);
        req.send().promise.await?;
        done.push(format!("set {k}"));
    }
    if let Some(k) = &args.delete_kv {
        let mut req = object.kv_request().send().pipeline.get_kv().delete_request();
        req.get().set_key(k);
        let deleted = req.send().promise.await?.get()?.get_deleted();
        done.push(if deleted { format!("deleted {k}") } else { format!("no entry {k}") });
    }
    if let Some(id) = &args.delete_thing {
        let mut req = object.storage_request().send().pipeline.get_storage().delete_request();
        req.get().set_id(id);
        let deleted = req.send().promise.await?.get()?.get_deleted();
        done.push(if deleted { format!("deleted thing {id}") } else { format!("no thing {id}") });
    }
    Ok(done.join("\n"))
}

/// Runs `dotdo inspect` and returns what to print.
pub fn run(args: &InspectArgs) -> Result<String, RpcError> {
    if args.changes() {
        return rpc_client::run(change(args));
    }
    let value = match (&args.class, &args.name) {
        (Some(class), Some(name)) => object(&args.data, &args.namespace, class, name, args.limit)?,
        (None, None) => list(&args.data, &args.namespace)?,
        _ => return Err(RpcError::invalid_argument("name both the class and the object: dotdo inspect CLASS NAME")),
    };
    if args.json {
        return serde_json::to_string_pretty(&value).map_err(|e| RpcError::new(Code::Internal, e.to_string()));
    }
    Ok(if args.class.is_some() { render_object(&value) } else { render_list(&value) })
}
