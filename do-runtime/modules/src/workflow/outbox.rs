//! Durable calls between objects. The sender records a call (in a run's journal, or in
//! the outbox for a delayed send) before it sends it, and sends it again until the
//! receiver acknowledges; every attempt carries the same idempotency key. The
//! receiver ([`Receiver`], behind `Object.deliver`) runs the method once per key: the
//! method's writes and the key commit together (the commit is held across the call),
//! and a key seen before answers the first result again.

use super::engine::Engine;
use super::retry::{RetryPolicy, TRANSIENT};
use super::store::{int, t, text};
use crate::class::Peers;
use crate::host::{Sql, SqlValue};
use capnp::capability::Client;
use rpc_core::capnweb::reflect;
use rpc_core::capnweb::value::Value;
use rpc_core::{Code, RpcError};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// How long a delayed send waits for its acknowledgement before it counts as failed
/// (and is tried again later).
pub const SEND_TIMEOUT_MS: i64 = 60_000;

/// Sends `method(args)` to `(class, object)` with the idempotency `key`; its result.
pub async fn send(
    peers: &dyn Peers,
    class: &str,
    object: &str,
    key: &str,
    method: &str,
    args: &serde_json::Value,
) -> Result<serde_json::Value, RpcError> {
    let target = peers.object(class, object)?;
    let mut req = target.deliver_request();
    req.get().set_key(key);
    req.get().set_method(method);
    req.get().set_args(args.to_string());
    let reply = req.send().promise.await.map_err(RpcError::from)?;
    let result = reply.get().map_err(RpcError::from)?.get_result().map_err(RpcError::from)?;
    let result = result.to_str().map_err(|e| RpcError::new(Code::Internal, format!("result is not UTF-8: {e}")))?;
    serde_json::from_str(result).map_err(|e| RpcError::new(Code::Internal, format!("result is not JSON: {e}")))
}

/// Records a send of `method(args)` to `(class, object)` due after `delay` under `key`
/// (a key recorded already is left as it is).
pub fn enqueue(
    engine: &Engine,
    key: &str,
    class: &str,
    object: &str,
    method: &str,
    args: &serde_json::Value,
    delay: Duration,
) -> Result<(), RpcError> {
    rpc_core::ident::class(class)?;
    rpc_core::ident::object_name(object)?;
    if method.is_empty() || method.len() > 128 {
        return Err(RpcError::invalid_argument("a method name is 1 to 128 bytes"));
    }
    let now = engine.env.now_ms();
    let due = now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    engine.sql.execute(
        "INSERT OR IGNORE INTO dotdo_outbox (key, class, name, method, args, due_at, status, created_at)
         VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
        &[t(key), t(class), t(object), t(method), t(&args.to_string()), SqlValue::Integer(due), SqlValue::Integer(now)],
    )?;
    engine.rearm()
}

/// Sends what the outbox has due at `now` (each in the background); a send that fails
/// transiently is tried again later with backoff, one refused for good is kept as
/// `failed` with an `Outbox.failed` event.
pub(crate) fn deliver_due(engine: &Rc<Engine>, now: i64) -> Result<(), RpcError> {
    let rows = engine.sql.query(
        "SELECT key, class, name, method, args, attempts FROM dotdo_outbox WHERE status = 'pending' AND due_at <= ?
         ORDER BY due_at LIMIT 100",
        &[SqlValue::Integer(now)],
    )?;
    for r in rows {
        let key = text(&r, 0);
        // Out of the alarm's way while it is sent (and if the process dies meanwhile,
        // sent again later), whether it is sent now or is being sent already.
        engine.sql.execute(
            "UPDATE dotdo_outbox SET due_at = ? WHERE key = ?",
            &[SqlValue::Integer(now.saturating_add(SEND_TIMEOUT_MS * 2)), t(&key)],
        )?;
        if !engine.sending.borrow_mut().insert(key.clone()) {
            continue;
        }
        let (class, object, method, attempts) = (text(&r, 1), text(&r, 2), text(&r, 3), int(&r, 5));
        let args: serde_json::Value = serde_json::from_str(&text(&r, 4)).unwrap_or(serde_json::Value::Null);
        engine.sql.execute(
            "UPDATE dotdo_outbox SET attempts = ? WHERE key = ?",
            &[SqlValue::Integer(attempts + 1), t(&key)],
        )?;
        let engine = engine.clone();
        engine.env.clone().spawn(Box::pin(async move {
            let timeout = engine.env.sleep(Duration::from_millis(SEND_TIMEOUT_MS as u64));
            let sending = std::pin::pin!(send(&*engine.peers, &class, &object, &key, &method, &args));
            let sent = match futures::future::select(sending, timeout).await {
                futures::future::Either::Left((r, _)) => r,
                futures::future::Either::Right(_) => {
                    Err(RpcError::new(Code::Timeout, format!("no acknowledgement within {SEND_TIMEOUT_MS} ms")))
                }
            };
            engine.sending.borrow_mut().remove(&key);
            if let Err(e) = settle(&engine, &key, attempts + 1, sent) {
                tracing::warn!(key = %key, code = e.code.as_str(), error = %e.message, "cannot record a durable send");
            }
        }));
    }
    Ok(())
}

fn settle(
    engine: &Engine,
    key: &str,
    attempts: i64,
    sent: Result<serde_json::Value, RpcError>,
) -> Result<(), RpcError> {
    match sent {
        Ok(_) => {
            engine.sql.execute("DELETE FROM dotdo_outbox WHERE key = ?", &[t(key)])?;
        }
        Err(e) if TRANSIENT.contains(&e.code) => {
            let policy = RetryPolicy::until_acknowledged();
            let attempt = u32::try_from(attempts).unwrap_or(u32::MAX).min(policy.max_attempts);
            let wait = policy.delay_with_jitter(attempt, engine.env.random_u64());
            let due = engine.env.now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
            engine.sql.execute(
                "UPDATE dotdo_outbox SET due_at = ?, error = ? WHERE key = ?",
                &[SqlValue::Integer(due), t(&e.to_string()), t(key)],
            )?;
        }
        Err(e) => {
            let mut event = None;
            engine.sql.transaction(&mut || {
                engine.sql.execute(
                    "UPDATE dotdo_outbox SET status = 'failed', error = ? WHERE key = ?",
                    &[t(&e.to_string()), t(key)],
                )?;
                let data = serde_json::json!({"key": key, "code": e.code.as_str(), "error": e.message});
                event = Some(engine.hub.record("Outbox.failed", &data.to_string())?);
                Ok(())
            })?;
            if let Some(ev) = event {
                engine.hub.publish(&ev);
            }
        }
    }
    engine.rearm()
}

/// Where an object's durable calls land: its class's methods and its modules, called
/// in-process (inside the object's output gate, which the receiver holds itself).
pub struct Receiver {
    sql: Rc<dyn Sql>,
    env: Rc<dyn crate::host::Env>,
    /// The class's interface and its server, once the class is built.
    class: RefCell<Option<(u64, Client)>>,
    /// The modules, by getter name, with their interfaces.
    modules: Vec<(&'static str, u64, Client)>,
    /// One delivery at a time.
    turn: futures::lock::Mutex<()>,
}

/// Most bytes of a durable call's result kept for its key.
const MAX_KEPT_RESULT: usize = 1 << 20;

impl Receiver {
    /// A receiver over the object's database and its modules (`("storage", id,
    /// client)`...), not yet knowing its class.
    pub fn new(
        sql: Rc<dyn Sql>,
        env: Rc<dyn crate::host::Env>,
        modules: Vec<(&'static str, u64, Client)>,
    ) -> Rc<Receiver> {
        Rc::new(Receiver { sql, env, class: RefCell::new(None), modules, turn: futures::lock::Mutex::new(()) })
    }

    /// The class's interface and server (not wrapped in the host's output gate).
    pub fn set_class(&self, interface_id: u64, client: Client) {
        *self.class.borrow_mut() = Some((interface_id, client));
    }

    fn target(&self, method: &str) -> Result<(u64, &'static schema::MethodDesc, Client), RpcError> {
        let unknown = || RpcError::invalid_argument(format!("no method {method:?} to deliver to here"));
        if let Some((module, name)) = method.split_once('.') {
            let (_, iface, client) = self.modules.iter().find(|(m, ..)| *m == module).ok_or_else(unknown)?;
            let (decl, m) = reflect::method(*iface, name).ok_or_else(unknown)?;
            return Ok((decl, m, client.clone()));
        }
        let class = self.class.borrow();
        let (iface, client) = class.as_ref().ok_or_else(unknown)?;
        let (decl, m) = reflect::method(*iface, method).ok_or_else(unknown)?;
        if decl == <schema::object_capnp::object::Client as capnp::traits::HasTypeId>::TYPE_ID {
            return Err(RpcError::invalid_argument(format!(
                "{method:?} is a method of Object: deliver names the class's own methods or `module.method`"
            )));
        }
        Ok((decl, m, client.clone()))
    }

    /// Runs `method(args)` once for `key`: its result (JSON) and whether the key had
    /// been seen (then nothing runs). Deliveries to one object run one at a time, each
    /// holding the object's commit from the check of its key to the record of it, in a
    /// task of its own (a caller that goes away does not cut it short).
    pub async fn deliver(self: &Rc<Self>, key: &str, method: &str, args: &str) -> Result<(String, bool), RpcError> {
        if key.is_empty() || key.len() > 512 {
            return Err(RpcError::invalid_argument("an idempotency key is 1 to 512 bytes"));
        }
        if method.len() > 256 {
            return Err(RpcError::invalid_argument("a method name is at most 256 bytes"));
        }
        let (tx, rx) = futures::channel::oneshot::channel();
        let (me, key, method, args) = (self.clone(), key.to_string(), method.to_string(), args.to_string());
        self.env.spawn(Box::pin(async move {
            let _turn = me.turn.lock().await;
            let hold = me.sql.hold();
            let out = match me.sql.query("SELECT result FROM dotdo_delivered WHERE key = ?", &[t(&key)]) {
                Err(e) => Err(e),
                Ok(seen) => match seen.first() {
                    Some(r) => Ok((text(r, 0), true)),
                    None => me.run(&key, &method, &args).await.map(|r| (r, false)),
                },
            };
            drop(hold);
            let _ = tx.send(out);
        }));
        rx.await.unwrap_or_else(|_| Err(RpcError::new(Code::Disconnected, "the object closed during the call")))
    }

    async fn run(&self, key: &str, method: &str, args: &str) -> Result<String, RpcError> {
        let (iface, m, client) = self.target(method)?;
        let args = if args.trim().is_empty() { "[]" } else { args };
        let args: serde_json::Value =
            serde_json::from_str(args).map_err(|e| RpcError::invalid_argument(format!("args are not JSON: {e}")))?;
        let params = reflect::struct_schema((m.params)())?;
        let results = reflect::struct_schema((m.results)())?;
        let mut req = client.new_call::<capnp::any_pointer::Owned, capnp::any_pointer::Owned>(iface, m.ordinal, None);
        match args {
            serde_json::Value::Array(items) => {
                let args: Vec<Value> = items.into_iter().map(Value::from_json).collect();
                reflect::write_params(req.get(), params, &args, m.name)?;
            }
            serde_json::Value::Null => reflect::write_params(req.get(), params, &[], m.name)?,
            serde_json::Value::Object(fields) => {
                let fields = Value::from_json(serde_json::Value::Object(fields));
                reflect::write_named_params(req.get(), params, &fields, m.name)?;
            }
            _ => return Err(RpcError::invalid_argument("args are a JSON array of arguments or an object naming them")),
        }
        let reply = req.send().promise.await.map_err(RpcError::from)?;
        let value = reflect::read_results(reply.get().map_err(RpcError::from)?, results)?;
        let result = value.to_json()?.to_string();
        let kept = if result.len() > MAX_KEPT_RESULT { "null".to_string() } else { result.clone() };
        self.sql.execute(
            "INSERT OR REPLACE INTO dotdo_delivered (key, result, at) VALUES (?, ?, ?)",
            &[t(key), t(&kept), SqlValue::Integer(self.env.now_ms())],
        )?;
        Ok(result)
    }
}
