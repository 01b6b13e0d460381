//! The object host: objects named by (namespace, class, name), each with one SQLite file
//! of its own, living on one of a few object threads.
//!
//! A session reaches an object through an in-process Cap'n Proto connection to the
//! object's thread, so calls pipeline through it like any other capability. Calls into
//! one object run one after another (they all run on its thread, and module calls do
//! not yield while they touch state: the input gate); different objects on different
//! threads run in parallel. Idle objects (no open connection for `idle_timeout`) are
//! evicted and come back from their file on the next call; at most `max_live` are in
//! memory per thread.

use super::clock::Clock;
use super::fds;
use super::peers::{open, NativePeers, Open};
use super::sqlite::SqliteDb;
use crate::ai::{AiConfig, OpenAiCompatible};
use capnp::capability::Promise;
use capnp_rpc::rpc_twoparty_capnp::Side;
use do_modules::class::Classes;
use do_modules::events::{Retention, SubscriberLimits};
use do_modules::host::{Alarm, Env, Task};
use do_modules::object::{Address, AlarmCallback, HostParts, Module, ObjectParts};
use do_modules::output_gate::OutputGate;
use do_modules::workflow::ai::Ai;
use do_modules::workflow::WorkflowLimits;
use rpc_core::guard::Guard;
use rpc_core::layer::{Deadline, Stack, TagErrors};
use rpc_core::pump::Pump;
use rpc_core::vat::{rpc_system, Link};
use rpc_core::{ident, Code, Limits, RpcError};
use schema::object_capnp::{events, object, schedule, storage};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender, WeakUnboundedSender};

/// The default of [`HostConfig::max_objects_per_session`].
pub const DEFAULT_MAX_OBJECTS_PER_SESSION: usize = 256;

/// How objects are hosted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Where the objects' SQLite files live (`<data>/<namespace>/<class>/<id>.sqlite`).
    pub data_dir: PathBuf,
    /// Object threads.
    pub threads: usize,
    /// An object with no open connection for this long is evicted from memory.
    pub idle_timeout: Duration,
    /// Most objects in memory per thread; beyond it new objects get OVERLOADED.
    /// [`ObjectHost::start`] lowers it to what the open-files limit allows
    /// ([`super::fds::live_objects_per_thread`]).
    pub max_live: usize,
    /// Most objects one session may hold open at once (through `gateway.object` and
    /// the broker); the next is LIMIT_EXCEEDED. An object counts until the session
    /// releases every capability it was handed for it.
    pub max_objects_per_session: usize,
    /// The namespaces sessions may use (from the `Host` header; `default` on TCP);
    /// empty: any. A session in another namespace is refused with NOT_FOUND.
    pub namespaces: Vec<String>,
    /// Deadline of each call into an object.
    pub call_timeout: Duration,
    /// The objects' time (`Env::now_ms`, alarms): the system clock, or a manual one in
    /// tests.
    pub clock: Clock,
    /// How much of its event log each object keeps: by default the newest 100,000 events
    /// of at most 30 days (pruned in batches as events are written, so a log may exceed
    /// the count by about a thousand).
    pub event_retention: Retention,
    /// Bounds on each object's event subscribers: 1,024 subscribers, 1 MiB queued per
    /// subscriber (oldest dropped beyond), a 10 s delivery deadline, unsubscribed after 3
    /// deliveries in a row time out.
    pub event_subscribers: SubscriberLimits,
    /// Bounds on each object's workflows ([`WorkflowLimits::default`]).
    pub workflow_limits: WorkflowLimits,
    /// The model workflow cascades' AI tiers call, if any (`dotdo serve` reads it from
    /// the environment: [`AiConfig::from_env`]).
    pub ai: Option<AiConfig>,
    /// Bytes of recently read Things each live object keeps in memory (its hot tier;
    /// 0: none). Default 4 MiB.
    pub hot_bytes: usize,
    /// The cold tier objects snapshot and archive to: a directory, or
    /// `s3://bucket/prefix` (the `cold` feature's `do_cold::ColdStore::open` reads it);
    /// none by default.
    pub cold: Option<String>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            data_dir: PathBuf::from(".dotdo"),
            threads: std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(2),
            idle_timeout: Duration::from_secs(60),
            max_live: 10_000,
            max_objects_per_session: DEFAULT_MAX_OBJECTS_PER_SESSION,
            namespaces: Vec::new(),
            call_timeout: Duration::from_secs(30),
            clock: Clock::system(),
            event_retention: Retention::default(),
            event_subscribers: SubscriberLimits::default(),
            workflow_limits: WorkflowLimits::default(),
            ai: None,
            hot_bytes: do_modules::storage::hot::DEFAULT_HOT_BYTES,
            cold: None,
        }
    }
}

/// An object's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// The namespace (from the session).
    pub namespace: String,
    /// The class ([`ident::class`]).
    pub class: String,
    /// The name ([`ident::object_name`]).
    pub name: String,
}

impl ObjectKey {
    /// A checked key: by the rules of [`rpc_core::ident`] for namespaces, classes and
    /// object names.
    pub fn new(namespace: &str, class: &str, name: &str) -> Result<ObjectKey, RpcError> {
        ident::namespace(namespace)?;
        ident::class(class)?;
        ident::object_name(name)?;
        Ok(ObjectKey { namespace: namespace.into(), class: class.into(), name: name.into() })
    }

    /// Which of `threads` object threads hosts the object with this id (not to be
    /// confused with the broker's shard objects, which are objects of their own).
    pub fn thread_for(id: &str, threads: usize) -> usize {
        u64::from_str_radix(id.get(..8).unwrap_or("0"), 16).unwrap_or(0) as usize % threads.max(1)
    }

    /// The object's id: derived from the name alone (as `idFromName`), SHA-256 in hex.
    pub fn id(&self) -> String {
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{}\n{}\n{}", self.namespace, self.class, self.name).as_bytes(),
        );
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Counters of the host, and a signal that one changed.
#[derive(Debug, Default)]
pub struct HostMetrics {
    /// Objects loaded into memory (first use, or back after eviction).
    pub loads: AtomicU64,
    /// Objects evicted.
    pub evictions: AtomicU64,
    /// Objects in memory now.
    pub live: AtomicU64,
    /// Alarms that have fired.
    pub alarms_fired: AtomicU64,
    /// Connections open to objects now.
    pub connections: AtomicU64,
    /// Gets answered by the objects' hot tiers, and those that read SQLite.
    pub hot: Arc<do_modules::storage::hot::HotStats>,
    /// Notified (every waiter) after a counter changed.
    changed: tokio::sync::Notify,
}

impl HostMetrics {
    fn bump(&self, counter: &AtomicU64, up: bool, by: u64) {
        if up {
            counter.fetch_add(by, Ordering::Relaxed);
        } else {
            counter.fetch_sub(by, Ordering::Relaxed);
        }
        self.changed.notify_waiters();
    }

    /// Completes once `ready` holds for the counters (checked now and after each
    /// change), so a test waits for the host instead of sleeping.
    pub async fn wait_until(&self, ready: impl Fn(&HostMetrics) -> bool) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if ready(self) {
                return;
            }
            changed.await;
        }
    }
}

impl HostMetrics {
    /// Registers a snapshot of the counters into `registry` as `objects_*` (under the
    /// server's `dotdo_` prefix: `dotdo_objects_loads_total`, `dotdo_objects_live`...).
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let r = registry.sub_registry_with_prefix("objects");
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        r.register(
            "loads",
            "Objects loaded into memory (first use, or back after eviction)",
            ConstCounter::new(get(&self.loads)),
        );
        r.register("evictions", "Objects evicted from memory", ConstCounter::new(get(&self.evictions)));
        r.register("alarms_fired", "Alarms that have fired", ConstCounter::new(get(&self.alarms_fired)));
        let live = i64::try_from(get(&self.live)).unwrap_or(i64::MAX);
        r.register("live", "Objects in memory now", ConstGauge::new(live));
        r.register(
            "hot_hits",
            "Storage gets answered from an object's hot tier",
            ConstCounter::new(get(&self.hot.hits)),
        );
        r.register("hot_misses", "Storage gets that read SQLite", ConstCounter::new(get(&self.hot.misses)));
    }
}

/// The running host; cheap to share between worker threads.
pub struct ObjectHost {
    senders: Vec<UnboundedSender<Open>>,
    /// The object threads, joined when the host is dropped.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The classes it serves.
    pub classes: Arc<Classes>,
    /// The configuration it runs with (`max_live` as bounded by the open-files limit).
    pub config: HostConfig,
    /// The host's counters.
    pub metrics: Arc<HostMetrics>,
}

impl ObjectHost {
    /// Starts the object threads serving the built-in class under every class name
    /// (what `dotdo serve` does), with at most as many live objects as the process's
    /// open-files limit allows.
    pub fn start(config: HostConfig) -> std::io::Result<Arc<ObjectHost>> {
        ObjectHost::start_with(config, Classes::default())
    }

    /// Starts the object threads serving `classes`.
    pub fn start_with(mut config: HostConfig, classes: Classes) -> std::io::Result<Arc<ObjectHost>> {
        let nofile = fds::open_files_limit().unwrap_or(fds::FALLBACK_NOFILE);
        let bound = fds::live_objects_per_thread(nofile, config.threads.max(1));
        if bound < config.max_live {
            tracing::info!(nofile, per_thread = bound, "live objects bounded by the open-files limit");
            config.max_live = bound;
        }
        let metrics = Arc::new(HostMetrics::default());
        let cold = config.cold.as_deref().map(open_cold).transpose()?;
        let classes = Arc::new(classes);
        let threads = config.threads.max(1);
        let (senders, inboxes): (Vec<_>, Vec<_>) = (0..threads).map(|_| unbounded_channel()).unzip();
        let weak: Arc<Vec<_>> = Arc::new(senders.iter().map(UnboundedSender::downgrade).collect());
        let mut handles = Vec::new();
        for (i, rx) in inboxes.into_iter().enumerate() {
            let (config, metrics) = (config.clone(), metrics.clone());
            let shared = Shared { classes: classes.clone(), senders: weak.clone(), cold: cold.clone() };
            handles.push(
                std::thread::Builder::new()
                    .name(format!("dotdo-objects-{i}"))
                    .spawn(move || object_thread(rx, config, metrics, shared, i, threads))?,
            );
        }
        Ok(Arc::new(ObjectHost { senders, threads: handles, classes, config, metrics }))
    }

    /// Opens a connection to the object `key` and returns its capability (usable at once:
    /// calls on it are pipelined until the object is loaded) and the connection's
    /// disconnector. Must run inside a `LocalSet`.
    /// A class nobody registered is NOT_FOUND, before anything is opened.
    pub fn connect(&self, key: ObjectKey) -> Result<(object::Client, capnp_rpc::Disconnector<Side>), RpcError> {
        self.classes.resolve(&key.class)?;
        let thread = ObjectKey::thread_for(&key.id(), self.senders.len());
        open(&self.senders[thread], key)
    }
}

impl Drop for ObjectHost {
    /// Closes the object threads' inboxes and waits for them, so every object's file is
    /// closed (and no alarm of this host fires) once the host is gone: a host started
    /// next on the same directory is the only one using it.
    fn drop(&mut self) {
        self.senders.clear();
        let current = std::thread::current().id();
        for t in self.threads.drain(..) {
            if t.thread().id() != current {
                let _ = t.join();
            }
        }
    }
}

struct NativeEnv {
    rng: ring::rand::SystemRandom,
    clock: Clock,
}

impl Env for NativeEnv {
    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn random_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&self.rng, &mut b);
        u64::from_le_bytes(b)
    }

    fn spawn(&self, task: Task) {
        tokio::task::spawn_local(task);
    }

    fn sleep(&self, duration: Duration) -> Task {
        Box::pin(tokio::time::sleep(duration))
    }
}

struct Entry {
    client: object::Client,
    alarm: AlarmCallback,
    connections: usize,
    last_used: Instant,
}

/// The alarm of one object, kept by its thread's live objects (and in the alarm index, so
/// it survives restarts and eviction).
struct NativeAlarm {
    objects: Weak<LiveObjects>,
    id: String,
    key: ObjectKey,
}

impl Alarm for NativeAlarm {
    fn set_alarm(&self, at_ms: Option<i64>) {
        if let Some(r) = self.objects.upgrade() {
            r.set_alarm(&self.id, &self.key, at_ms);
        }
    }
}

/// What every object thread shares: the classes and the way to every thread.
struct Shared {
    classes: Arc<Classes>,
    senders: Arc<Vec<WeakUnboundedSender<Open>>>,
    /// The cold tier, if configured.
    cold: Option<ColdTier>,
}

/// The cold tier's store (none in a build without the `cold` feature).
#[cfg(feature = "cold")]
type ColdTier = do_cold::ColdStore;
/// No cold tier: a build without the `cold` feature never has one.
#[cfg(not(feature = "cold"))]
#[derive(Clone)]
enum ColdTier {}

#[cfg(feature = "cold")]
fn open_cold(spec: &str) -> std::io::Result<ColdTier> {
    do_cold::ColdStore::open(spec).map_err(|e| std::io::Error::other(e.message))
}

#[cfg(not(feature = "cold"))]
fn open_cold(spec: &str) -> std::io::Result<ColdTier> {
    Err(std::io::Error::other(format!("cold tier {spec:?}: this build has none (do-runtime's `cold` feature)")))
}

#[cfg(feature = "cold")]
fn cold_part(c: &ColdTier) -> Rc<dyn do_modules::host::Cold> {
    Rc::new(c.clone())
}

#[cfg(not(feature = "cold"))]
fn cold_part(c: &ColdTier) -> Rc<dyn do_modules::host::Cold> {
    match *c {}
}

/// The objects in memory on one object thread, with their alarms.
struct LiveObjects {
    shared: Shared,
    config: HostConfig,
    metrics: Arc<HostMetrics>,
    /// Live objects by id, most recently used first (every open and close touches).
    entries: RefCell<lru::LruCache<String, Entry>>,
    env: Rc<NativeEnv>,
    alarms: RefCell<HashMap<String, (ObjectKey, i64)>>,
    alarm_changed: tokio::sync::Notify,
    index: Option<rusqlite::Connection>,
    /// The model of workflow cascades, if configured.
    ai: Option<Rc<dyn Ai>>,
}

/// The alarm index: which objects want waking when, across restarts. Every object
/// thread opens it as the host starts; SQLite may answer one of them "locked" while
/// another switches the file to WAL without waiting on the busy timeout, so a failed
/// open is tried again (up to about 5 s) rather than leaving the thread without an index.
fn open_index(dir: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let mut tries = 0;
    loop {
        match try_open_index(dir) {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if tries < 100
                    && matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn try_open_index(dir: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let _ = std::fs::create_dir_all(dir);
    let c = rusqlite::Connection::open(dir.join("alarms.sqlite"))?;
    // Every object thread opens the index at start: the busy timeout comes first, so a
    // thread that meets another's lock (switching to WAL, creating the table) waits
    // instead of failing and running without an index.
    c.busy_timeout(Duration::from_secs(5))?;
    rpc_broker::revocations::to_wal(&c)?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS alarms (id TEXT PRIMARY KEY, namespace TEXT, class TEXT, name TEXT, at INTEGER NOT NULL)",
    )?;
    Ok(c)
}

impl LiveObjects {
    fn set_alarm(&self, id: &str, key: &ObjectKey, at: Option<i64>) {
        match at {
            Some(at) => {
                self.alarms.borrow_mut().insert(id.to_string(), (key.clone(), at));
            }
            None => {
                self.alarms.borrow_mut().remove(id);
            }
        }
        if let Some(c) = &self.index {
            let r = match at {
                Some(at) => c.execute(
                    "INSERT INTO alarms (id, namespace, class, name, at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (id) DO UPDATE SET at = ?5",
                    rusqlite::params![id, key.namespace, key.class, key.name, at],
                ),
                None => c.execute("DELETE FROM alarms WHERE id = ?1", rusqlite::params![id]),
            };
            if let Err(e) = r {
                tracing::error!(object = %id, error = %e, "cannot record the alarm in the index");
            }
        }
        self.alarm_changed.notify_one();
    }

    /// Alarms of this thread's objects recorded before a restart.
    fn restore_alarms(&self, thread: usize, threads: usize) {
        let Some(c) = &self.index else { return };
        let rows: Vec<(String, ObjectKey, i64)> = c
            .prepare("SELECT id, namespace, class, name, at FROM alarms")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((r.get(0)?, ObjectKey { namespace: r.get(1)?, class: r.get(2)?, name: r.get(3)? }, r.get(4)?))
                })?
                .collect()
            })
            .unwrap_or_default();
        let mut alarms = self.alarms.borrow_mut();
        for (id, key, at) in rows.into_iter().filter(|(id, ..)| ObjectKey::thread_for(id, threads) == thread) {
            // The index is a file: take only keys that are valid and match their id.
            match ObjectKey::new(&key.namespace, &key.class, &key.name) {
                Ok(k) if k.id() == id => {
                    alarms.insert(id, (k, at));
                }
                _ => tracing::warn!(object = %id, "skipping a bad row in the alarm index"),
            }
        }
    }

    fn next_alarm(&self) -> Option<i64> {
        self.alarms.borrow().values().map(|(_, at)| *at).min()
    }

    /// Wakes every object whose alarm is due (loading evicted ones from their files).
    fn fire_due(self: &Rc<Self>) {
        let now = self.env.now_ms();
        let due: Vec<(String, ObjectKey)> = self
            .alarms
            .borrow()
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(id, (k, _))| (id.clone(), k.clone()))
            .collect();
        for (id, key) in due {
            self.alarms.borrow_mut().remove(&id);
            match self.alarm_callback(&key) {
                Ok(callback) => {
                    if let Err(e) = callback.fire() {
                        tracing::warn!(object = %id, code = e.code.as_str(), error = %e.message, "alarm failed");
                    }
                    self.metrics.bump(&self.metrics.alarms_fired, true, 1);
                }
                Err(e) => {
                    tracing::warn!(object = %id, code = e.code.as_str(), error = %e.message, "cannot wake the object for its alarm");
                }
            }
        }
    }

    /// Builds the object from its SQLite file (created on first use), as an instance
    /// of its class.
    fn load_from_file(self: &Rc<Self>, key: &ObjectKey, id: &str) -> Result<(object::Client, AlarmCallback), RpcError> {
        let factory = self.shared.classes.resolve(&key.class)?;
        let path = self.config.data_dir.join(&key.namespace).join(&key.class).join(format!("{id}.sqlite"));
        let sql = SqliteDb::open_gated(&path).map_err(|e| self.without_paths(e))?;
        // The output gate innermost: an answer waits for the commit of its writes.
        let stack = Stack::new()
            .layer(TagErrors)
            .layer(Deadline::new(self.config.call_timeout))
            .layer(OutputGate::new(sql.clone()));
        let wrap = |m: Module| match m {
            Module::Storage(s) => stack.server::<storage::Client, _>(s).client,
            Module::Events(s) => stack.server::<events::Client, _>(s).client,
            Module::Schedule(s) => stack.server::<schedule::Client, _>(s).client,
            Module::Kv(s) => stack.server::<schema::object_capnp::kv::Client, _>(s).client,
            Module::Workflow(s) => stack.server::<schema::object_capnp::workflow::Client, _>(s).client,
        };
        let address = Address {
            id: id.to_string(),
            namespace: key.namespace.clone(),
            class: key.class.clone(),
            name: key.name.clone(),
        };
        let alarm = Rc::new(NativeAlarm { objects: Rc::downgrade(self), id: id.to_string(), key: key.clone() });
        let peers = Rc::new(NativePeers {
            namespace: key.namespace.clone(),
            senders: self.shared.senders.clone(),
            classes: self.shared.classes.clone(),
            open: RefCell::new(lru::LruCache::unbounded()),
        });
        let host = HostParts {
            sql,
            env: self.env.clone(),
            alarm,
            retention: self.config.event_retention,
            subscribers: self.config.event_subscribers,
            peers,
            ai: self.ai.clone(),
            workflow_limits: self.config.workflow_limits,
            hot: do_modules::storage::hot::HotConfig { bytes: self.config.hot_bytes, stats: self.metrics.hot.clone() },
            cold: self.shared.cold.as_ref().map(cold_part),
        };
        let parts = ObjectParts::new(address, host, &wrap).map_err(|e| self.without_paths(e))?;
        let instance = factory(&key.class, parts, &stack).map_err(|e| self.without_paths(e))?;
        Ok((object::Client { client: instance.client }, instance.alarm))
    }

    /// `e` with the data directory's path taken out of its message (peers see errors;
    /// where the files live is the server's business).
    fn without_paths(&self, mut e: RpcError) -> RpcError {
        let dir = &self.config.data_dir;
        let absolute = std::fs::canonicalize(dir).ok();
        for p in [Some(dir.as_path()), absolute.as_deref()].into_iter().flatten() {
            let p = p.to_string_lossy();
            if !p.is_empty() && e.message.contains(&*p) {
                e.message = e.message.replace(&*p, "<data>");
            }
        }
        e
    }

    /// The object's alarm callback, loading the object if needed (no connection counted).
    fn alarm_callback(self: &Rc<Self>, key: &ObjectKey) -> Result<AlarmCallback, RpcError> {
        let (id, _) = self.acquire(key)?;
        let callback = self.entries.borrow().peek(&id).map(|e| e.alarm.clone());
        self.release(&id);
        callback.ok_or_else(|| RpcError::new(Code::Internal, "object vanished while loading"))
    }

    /// The object's client, loading it if needed, with one more connection counted
    /// (until [`LiveObjects::release`]).
    fn acquire(self: &Rc<Self>, key: &ObjectKey) -> Result<(String, object::Client), RpcError> {
        let id = key.id();
        let mut entries = self.entries.borrow_mut();
        if let Some(e) = entries.get_mut(&id) {
            e.connections += 1;
            e.last_used = Instant::now();
            self.metrics.bump(&self.metrics.connections, true, 1);
            return Ok((id, e.client.clone()));
        }
        if entries.len() >= self.config.max_live {
            // The least recently used object with no open connection, from the cold end.
            let lru = entries.iter().rev().find(|(_, e)| e.connections == 0 && !e.alarm.busy()).map(|(k, _)| k.clone());
            match lru {
                Some(k) => {
                    entries.pop(&k);
                    tracing::debug!(object = %k, "evicted to make room");
                    self.metrics.evictions.fetch_add(1, Ordering::Relaxed);
                    self.metrics.bump(&self.metrics.live, false, 1);
                }
                None => {
                    return Err(RpcError::new(
                        Code::Overloaded,
                        format!("{} objects are busy on this thread", entries.len()),
                    ))
                }
            }
        }
        drop(entries);
        let (client, alarm) = self.load_from_file(key, &id)?;
        self.metrics.loads.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.borrow_mut();
        entries.put(id.clone(), Entry { client: client.clone(), alarm, connections: 1, last_used: Instant::now() });
        tracing::debug!(object = %id, class = %key.class, namespace = %key.namespace, "object loaded");
        self.metrics.bump(&self.metrics.connections, true, 1);
        self.metrics.bump(&self.metrics.live, true, 1);
        Ok((id, client))
    }

    /// One connection to the object fewer.
    fn release(&self, id: &str) {
        if let Some(e) = self.entries.borrow_mut().get_mut(id) {
            e.connections = e.connections.saturating_sub(1);
            e.last_used = Instant::now();
            self.metrics.bump(&self.metrics.connections, false, 1);
        }
    }

    /// Evicts objects idle for `idle_timeout` with no connection open and no workflow
    /// run being driven.
    fn evict_idle(&self) {
        let mut entries = self.entries.borrow_mut();
        let idle = self.config.idle_timeout;
        // Oldest first; every touch moves an entry to the front, so the first entry used
        // within `idle` ends the walk.
        let expired: Vec<String> = entries
            .iter()
            .rev()
            .take_while(|(_, e)| e.last_used.elapsed() >= idle)
            .filter(|(_, e)| e.connections == 0 && !e.alarm.busy())
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            entries.pop(k);
        }
        let evicted = expired.len();
        if evicted > 0 {
            tracing::debug!(evicted, "evicted idle objects");
            self.metrics.evictions.fetch_add(evicted as u64, Ordering::Relaxed);
            self.metrics.bump(&self.metrics.live, false, evicted as u64);
        }
    }
}

fn object_thread(
    mut rx: UnboundedReceiver<Open>,
    config: HostConfig,
    metrics: Arc<HostMetrics>,
    shared: Shared,
    thread: usize,
    threads: usize,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let sweep = (config.idle_timeout / 4).max(Duration::from_millis(20));
        let env = Rc::new(NativeEnv { rng: ring::rand::SystemRandom::new(), clock: config.clock.clone() });
        let index = match open_index(&config.data_dir) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the alarm index: alarms will not survive a restart");
                None
            }
        };
        let ai = config.ai.clone().map(|c| Rc::new(OpenAiCompatible::new(c)) as Rc<dyn Ai>);
        let objects = Rc::new(LiveObjects {
            shared,
            config,
            metrics,
            entries: RefCell::new(lru::LruCache::unbounded()),
            env,
            alarms: RefCell::default(),
            alarm_changed: tokio::sync::Notify::new(),
            index,
            ai,
        });
        objects.restore_alarms(thread, threads);
        let sweeper = objects.clone();
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(sweep).await;
                sweeper.evict_idle();
            }
        });
        let waker = objects.clone();
        tokio::task::spawn_local(async move {
            loop {
                match waker.next_alarm() {
                    None => waker.alarm_changed.notified().await,
                    Some(at) => {
                        tokio::select! {
                            _ = waker.env.clock.sleep_until(at) => waker.fire_due(),
                            _ = waker.alarm_changed.notified() => {}
                        }
                    }
                }
            }
        });
        while let Some(Open { key, io }) = rx.recv().await {
            let (id, bootstrap) = match objects.acquire(&key) {
                Ok((id, c)) => (Some(id), c.client),
                Err(e) => (None, capnp_rpc::new_broken_cap(e.into())),
            };
            let objects = objects.clone();
            tokio::task::spawn_local(async move {
                let link = Link::new();
                let pump = Pump::new(io, link.clone(), Guard::new(Limits::default()));
                if let Err(e) = rpc_system(Side::Server, link, Promise::from_future(pump), Some(bootstrap)).await {
                    tracing::debug!(object = ?id, error = %e, "object connection ended with an error");
                }
                if let Some(id) = id {
                    objects.release(&id);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(dir: &std::path::Path, max_live: usize, idle_timeout: Duration) -> Rc<LiveObjects> {
        let config =
            HostConfig { data_dir: dir.to_path_buf(), threads: 1, max_live, idle_timeout, ..HostConfig::default() };
        Rc::new(LiveObjects {
            shared: Shared { classes: Arc::default(), senders: Arc::default(), cold: None },
            config,
            metrics: Arc::default(),
            entries: RefCell::new(lru::LruCache::unbounded()),
            env: Rc::new(NativeEnv { rng: ring::rand::SystemRandom::new(), clock: Clock::system() }),
            alarms: RefCell::default(),
            alarm_changed: tokio::sync::Notify::new(),
            index: None,
            ai: None,
        })
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("default", "Lru", name).expect("a valid key")
    }

    /// Opens and closes `name` (a use that leaves it idle).
    fn touch(r: &Rc<LiveObjects>, name: &str) {
        let (id, _) = r.acquire(&key(name)).expect("open");
        r.release(&id);
    }

    #[test]
    fn the_least_recently_used_idle_object_makes_room() {
        let dir = std::env::temp_dir().join(format!("dotdo-lru-{}", std::process::id()));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        tokio::task::LocalSet::new().block_on(&rt, async {
            let r = registry(&dir, 2, Duration::from_secs(60));
            touch(&r, "a");
            touch(&r, "b");
            touch(&r, "a"); // b is now the least recently used
            touch(&r, "c");
            let live = |name: &str| r.entries.borrow().contains(&key(name).id());
            assert!(live("a") && live("c") && !live("b"), "b made room");
            assert_eq!(r.metrics.evictions.load(Ordering::Relaxed), 1);
            // A connected object is never evicted: with both held, a third is refused.
            let (held_a, _) = r.acquire(&key("a")).expect("open a");
            let (held_c, _) = r.acquire(&key("c")).expect("open c");
            let refused = r.acquire(&key("b")).map(|_| ()).expect_err("no room");
            assert_eq!(refused.code, Code::Overloaded);
            // Released, the older of the two goes first.
            r.release(&held_c);
            r.release(&held_a);
            touch(&r, "b");
            assert!(live("a") && live("b") && !live("c"), "c was released first, so it is older");
            assert_eq!(r.metrics.loads.load(Ordering::Relaxed), 4, "a, b, c, then b again");
            r.evict_idle();
            assert_eq!(r.entries.borrow().len(), 2, "nothing has been idle for a minute");
        });
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn every_thread_opens_the_alarm_index_when_all_start_at_once() {
        for round in 0..20 {
            let dir = std::env::temp_dir().join(format!("dotdo-index-{}-{round}", std::process::id()));
            let barrier = Arc::new(std::sync::Barrier::new(8));
            let opened: Vec<bool> = (0..8)
                .map(|_| {
                    let (dir, barrier) = (dir.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        open_index(&dir).is_ok()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().expect("no panic"))
                .collect();
            let _ = std::fs::remove_dir_all(&dir);
            assert!(opened.iter().all(|ok| *ok), "round {round}: {opened:?}");
        }
    }

    #[test]
    fn the_idle_sweep_spares_connected_objects() {
        let dir = std::env::temp_dir().join(format!("dotdo-sweep-{}", std::process::id()));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        tokio::task::LocalSet::new().block_on(&rt, async {
            let r = registry(&dir, 10, Duration::ZERO);
            let (held, _) = r.acquire(&key("held")).expect("open");
            touch(&r, "idle");
            touch(&r, "also-idle");
            r.evict_idle();
            let live: Vec<String> = r.entries.borrow().iter().map(|(k, _)| k.clone()).collect();
            assert_eq!(live, vec![held.clone()], "only the connected object stays");
            assert_eq!(r.metrics.evictions.load(Ordering::Relaxed), 2);
            r.release(&held);
        });
        let _ = std::fs::remove_dir_all(dir);
    }
}
