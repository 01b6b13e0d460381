//! Which host the conformance suite runs against, chosen by `DOTDO_TARGET`:
//! - unset or `native`: a native server in this process (the built-in class under every
//!   name and the examples' `Counter` and `Ledger`, as the Worker serves them);
//! - `workerd`: dotdo's Worker under workerd, `do-runtime/cloudflare/run serve` on a
//!   free port with a fresh persistence directory (built beforehand with `run build`);
//! - `http://host:port`: a server already running there.
//!
//! The Cloudflare benchmark starts both kinds with [`start_kind`].
#![allow(dead_code)]

use rpc_server::ServerHandle;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The admin API key of the hosts started here.
pub const ADMIN_KEY: &str = "conformance-admin-key";
/// Their one signing key (`kid:secret`, the secret 32 bytes in base64url).
pub const TOKEN_KEYS: &str = "t1:Y29uZm9ybWFuY2Utc2lnbmluZy1rZXktMzItYnl0ZXMh";

/// What `DOTDO_TARGET` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A native server started here.
    Native,
    /// The Worker under workerd, started here.
    Workerd,
    /// A server someone else started.
    Remote(String),
}

/// The target the environment selects.
pub fn kind() -> Kind {
    match std::env::var("DOTDO_TARGET").unwrap_or_default().as_str() {
        "" | "native" => Kind::Native,
        "workerd" => Kind::Workerd,
        url => Kind::Remote(url.trim_end_matches('/').to_string()),
    }
}

/// A running host, stopped when dropped (a native server, or workerd's process group).
pub struct Host {
    /// `host:port` of its HTTP listener.
    pub addr: String,
    _running: Running,
}

enum Running {
    Native(ServerHandle),
    Workerd(Wrangler),
    Remote,
}

impl Host {
    /// Its WebSocket URL.
    pub fn ws(&self) -> String {
        format!("ws://{}/rpc", self.addr)
    }

    /// Its HTTP batch URL.
    pub fn http(&self) -> String {
        format!("http://{}/rpc", self.addr)
    }

    /// Stops it (for a restart: the data stays).
    pub fn stop(self) {
        match self._running {
            Running::Native(s) => s.stop(),
            Running::Workerd(w) => drop(w),
            Running::Remote => {}
        }
    }
}

/// The host the whole suite shares, started at first use.
pub fn shared() -> &'static Host {
    static SHARED: OnceLock<Host> = OnceLock::new();
    SHARED.get_or_init(|| match kind() {
        Kind::Remote(url) => {
            let addr = url.trim_start_matches("http://").to_string();
            Host { addr, _running: Running::Remote }
        }
        _ => {
            // Kept under the build's temporary directory, emptied at each run.
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance-shared");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the data directory");
            start(&dir)
        }
    })
}

/// A host of its own keeping its objects under `dir` (a restart starts another over the
/// same `dir`); None for a remote target, which this process cannot restart.
pub fn own(dir: &Path) -> Option<Host> {
    (!matches!(kind(), Kind::Remote(_))).then(|| start_kind(&kind(), dir, false))
}

/// [`own`], with objects reachable only through capability tokens (`--require-tokens`
/// natively; the Worker without `DOTDO_OPEN`, as deployed).
pub fn own_requiring_tokens(dir: &Path) -> Option<Host> {
    (!matches!(kind(), Kind::Remote(_))).then(|| start_kind(&kind(), dir, true))
}

/// An empty directory for one host's data.
pub fn fresh_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("dotdo-conformance-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the data directory");
    dir
}

fn start(dir: &Path) -> Host {
    start_kind(&kind(), dir, false)
}

/// A host of `kind` (native or workerd) keeping its objects under `dir`; with
/// `require_tokens`, objects are reached only through the broker.
pub fn start_kind(kind: &Kind, dir: &Path, require_tokens: bool) -> Host {
    match kind {
        Kind::Workerd => {
            let wrangler = Wrangler::start(dir, require_tokens);
            Host { addr: wrangler.addr.clone(), _running: Running::Workerd(wrangler) }
        }
        _ => {
            let config = rpc_server::ServerConfig {
                http_addr: "127.0.0.1:0".parse().expect("addr"),
                tcp_addr: None,
                workers: 2,
                limits: rpc_core::Limits::default(),
            };
            let host = do_runtime::HostConfig { data_dir: dir.to_path_buf(), threads: 2, ..Default::default() };
            let broker = do_runtime::BrokerConfig {
                keys: rpc_broker::token::KeyRing::parse(TOKEN_KEYS, None).expect("keys"),
                admin_key: Some(ADMIN_KEY.into()),
                db_path: dir.join("broker.sqlite"),
                call_timeout: Duration::from_secs(30),
                require_tokens,
                max_shards: rpc_broker::broker::DEFAULT_MAX_SHARDS,
            };
            let running = do_runtime::App::new()
                .any_class_builtin()
                .class::<examples::counter::Counter>("Counter")
                .class::<examples::ledger::Ledger>("Ledger")
                .host(host)
                .broker(broker)
                .start(config)
                .expect("server starts");
            Host { addr: running.server.http_addr.to_string(), _running: Running::Native(running.server) }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// `wrangler dev` in a process group of its own, ended (the whole group) when this is
/// dropped or when this process exits: its shell waits on our stdin, which closes then.
struct Wrangler {
    addr: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Wrangler {
    fn start(dir: &Path, require_tokens: bool) -> Wrangler {
        let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("../do-runtime/cloudflare/run");
        let (port, inspector) = (free_port(), free_port());
        let log = std::fs::File::create(dir.join("wrangler.log")).expect("a log file");
        // The broker's secrets, as `wrangler secret put` would give them.
        let secrets = dir.join("worker.env");
        std::fs::write(&secrets, format!("DOTDO_TOKEN_KEYS={TOKEN_KEYS}\nDOTDO_ADMIN_KEY={ADMIN_KEY}\n"))
            .expect("write the secrets");
        let script = r#"set -m; "$0" serve "$1" "$2" "$3" & p=$!; read -r _; kill -- -$p 2>/dev/null; wait $p"#;
        let child = Command::new("bash")
            .args(["-c", script])
            .arg(&run)
            .arg(port.to_string())
            .arg(dir.join("state"))
            .arg(inspector.to_string())
            .env("DOTDO_ENV_FILE", &secrets)
            .env("DOTDO_OPEN", if require_tokens { "0" } else { "1" })
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("do-runtime/cloudflare/run starts (build the Worker first: do-runtime/cloudflare/run build)");
        let mut w = Wrangler { addr: format!("127.0.0.1:{port}"), stdin: None, child };
        w.stdin = w.child.stdin.take();
        let started = Instant::now();
        while !healthy(&w.addr) {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "wrangler dev did not answer /health within 90 s; its log: {}",
                std::fs::read_to_string(dir.join("wrangler.log")).unwrap_or_default()
            );
            if let Ok(Some(status)) = w.child.try_wait() {
                panic!(
                    "wrangler dev exited ({status}); its log: {}",
                    std::fs::read_to_string(dir.join("wrangler.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        w
    }
}

impl Drop for Wrangler {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Whether `GET /health` answers 200.
fn healthy(addr: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// A TCP proxy on 127.0.0.1 in front of a host that counts the `POST /rpc` requests
/// passing through it (in the bytes from clients to the host).
pub struct CountingProxy {
    /// `host:port` to send requests to instead.
    pub addr: String,
    posts: Arc<AtomicUsize>,
}

impl CountingProxy {
    /// A proxy to `upstream` (`host:port`), served by threads of its own.
    pub fn start(upstream: &str) -> CountingProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let posts = Arc::new(AtomicUsize::new(0));
        let (upstream, counted) = (upstream.to_string(), posts.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(&upstream) else { continue };
                let (mut c_read, mut s_write) =
                    (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                let counted = counted.clone();
                std::thread::spawn(move || {
                    let needle = b"POST /rpc HTTP/1.1\r\n";
                    let mut carry: Vec<u8> = Vec::new();
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        carry.extend_from_slice(&buf[..n]);
                        let found = carry.windows(needle.len()).filter(|w| w == needle).count();
                        counted.fetch_add(found, Ordering::SeqCst);
                        let keep = carry.len().min(needle.len() - 1);
                        carry.drain(..carry.len() - keep);
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        CountingProxy { addr, posts }
    }

    /// How many batches went through.
    pub fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }
}
