//! The `dotdo` command line, parsed by `clap` into plain values (no I/O here).

use crate::host::registry::HostConfig;
use crate::logging::LogFormat;
use crate::token_cli::TokenCommand;
use clap::{Args, Parser, Subcommand};
use rpc_core::Limits;
use rpc_server::ServerConfig;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// What `dotdo serve` was asked to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Serve {
    /// Listeners, workers and limits.
    pub server: ServerConfig,
    /// The object host.
    pub host: HostConfig,
    /// The broker's per-call timeout.
    pub broker_timeout: Duration,
    /// Whether objects are reachable only through redeemed tokens: when asked
    /// (`--require-tokens`), and by default when listening beyond loopback.
    pub require_tokens: bool,
    /// Whether `--open` lifted the default of requiring tokens beyond loopback.
    pub open: bool,
    /// How log lines are written (`RUST_LOG` filters them).
    pub log_format: LogFormat,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the server.
    Serve(Box<Serve>),
    /// Generate Rust code for the given schema files.
    Codegen {
        /// The `.capnp` files.
        files: Vec<PathBuf>,
        /// Import directories.
        imports: Vec<PathBuf>,
        /// Where to write the generated modules.
        out: PathBuf,
        /// Which language to write.
        lang: Lang,
        /// A server to take the schemas from (its `describe`) instead of files.
        from: Option<String>,
    },
    /// A token command (`new-key`, `mint`, `verify`, `attenuate`).
    Token(TokenCommand),
    /// Look inside a data directory's objects (`dotdo inspect`).
    Inspect(Box<crate::inspect::InspectArgs>),
    /// Write a new crate with one class (`dotdo new`).
    New(crate::scaffold::NewArgs),
    /// Rebuild an object's SQLite file from its newest snapshot (`dotdo restore`).
    #[cfg(feature = "cold")]
    Restore(Box<crate::restore::RestoreArgs>),
    /// Print this text (help or version) and exit successfully.
    Help(String),
}

/// dotdo: stateful edge objects over Cap'n Proto RPC. With no command, serves.
#[derive(Debug, Parser)]
#[command(name = "dotdo", version)]
struct Cli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Run the server: HTTP (batch, WebSocket, /health, /metrics) and TCP on 127.0.0.1.
    Serve(ServeArgs),
    /// Generate Rust client code for Cap'n Proto schema files.
    Codegen(CodegenArgs),
    /// Capability tokens: new-key, mint, verify, attenuate.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List a namespace's objects, or show one (KV entries, Things, events, schedules,
    /// alarm) from the data directory; with --admin-key, change KV entries or Things
    /// through a running server.
    Inspect(crate::inspect::InspectArgs),
    /// Write a ready crate with one Durable Object class, a server and a test.
    New(crate::scaffold::NewArgs),
    /// Rebuild an object's SQLite file from its newest snapshot in the cold tier (the
    /// file there, if any, is kept beside it). Run it while the object is not loaded.
    #[cfg(feature = "cold")]
    Restore(crate::restore::RestoreArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on. Beyond loopback, objects are reachable only through
    /// capability tokens (`gateway.object` is refused with UNAUTHORIZED) unless --open.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// HTTP port (batch, WebSocket, health, metrics); 0 picks a free one.
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// TCP port for native Cap'n Proto peers.
    #[arg(long, default_value_t = 8788)]
    tcp_port: u16,
    /// Do not open the TCP listener.
    #[arg(long)]
    no_tcp: bool,
    /// Worker threads [default: the number of cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Largest message, in bytes.
    #[arg(long, default_value_t = Limits::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Largest frame, in bytes (raised to --max-message-bytes if lower).
    #[arg(long, default_value_t = Limits::default().max_frame_bytes)]
    max_frame_bytes: usize,
    /// Deepest nesting of a message.
    #[arg(long, default_value_t = Limits::default().nesting_limit)]
    nesting_limit: i32,
    /// Calls one session may have in flight.
    #[arg(long, default_value_t = Limits::default().max_calls_in_flight)]
    max_calls_in_flight: usize,
    /// Messages in one HTTP batch.
    #[arg(long, default_value_t = Limits::default().max_batch_messages)]
    max_batch_messages: usize,
    /// Bytes in one HTTP batch.
    #[arg(long, default_value_t = Limits::default().max_batch_bytes)]
    max_batch_bytes: usize,
    /// Deadline of each call, in milliseconds.
    #[arg(long, default_value_t = Limits::default().call_timeout.as_millis() as u64)]
    call_timeout_ms: u64,
    /// Time a client may take to send an HTTP request head, in milliseconds.
    #[arg(long, default_value_t = Limits::default().header_read_timeout.as_millis() as u64)]
    header_read_timeout_ms: u64,
    /// Time a client may take to send an HTTP batch body, in milliseconds.
    #[arg(long, default_value_t = Limits::default().body_read_timeout.as_millis() as u64)]
    body_read_timeout_ms: u64,
    /// A WebSocket or TCP session with no frame either way for this many milliseconds is
    /// closed (at least --call-timeout-ms; a WebSocket ping counts as a frame).
    #[arg(long, default_value_t = Limits::default().idle_timeout.as_millis() as u64)]
    idle_timeout_ms: u64,
    /// A frame not completed this many milliseconds after its first byte closes its
    /// session.
    #[arg(long, default_value_t = Limits::default().frame_read_timeout.as_millis() as u64)]
    frame_read_timeout_ms: u64,
    /// Connections (HTTP and TCP) held at once [default: 3/4 of the descriptor limit
    /// above 64].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Bytes all sessions together may hold in partial frames beyond 64 KiB each.
    #[arg(long, default_value_t = Limits::default().partial_frame_budget)]
    partial_frame_budget: usize,
    /// Where objects' SQLite files live.
    #[arg(long, value_name = "DIR", default_value = ".dotdo")]
    data: PathBuf,
    /// Object threads [default: the number of cores].
    #[arg(long)]
    object_threads: Option<usize>,
    /// Evict an object after this many idle milliseconds.
    #[arg(long, default_value_t = HostConfig::default().idle_timeout.as_millis() as u64)]
    idle_ms: u64,
    /// Most objects in memory per object thread.
    #[arg(long, default_value_t = HostConfig::default().max_live)]
    max_objects: usize,
    /// Most events each object's log keeps (the newest; older ones are pruned as events
    /// are written).
    #[arg(long, default_value_t = HostConfig::default().event_retention.max_events)]
    event_max_count: u64,
    /// Events older than this many seconds are pruned from each object's log.
    #[arg(long, default_value_t = HostConfig::default().event_retention.max_age_ms / 1000)]
    event_max_age_secs: u64,
    /// The cold tier objects' snapshots go to: a directory, or s3://bucket/prefix
    /// (credentials, region and endpoint from AWS_* variables or the URL's query).
    #[arg(long, value_name = "DIR|URL")]
    cold: Option<String>,
    /// Bytes of recently read Things each live object keeps in memory (0: none).
    #[arg(long, default_value_t = HostConfig::default().hot_bytes)]
    hot_bytes: usize,
    /// Deadline of each call through the broker, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    broker_timeout_ms: u64,
    /// Objects are reachable only through redeemed tokens (the default beyond loopback).
    #[arg(long)]
    require_tokens: bool,
    /// Listening beyond loopback, let anyone who reaches the server open any object
    /// with `gateway.object` (no tokens needed).
    #[arg(long, conflicts_with = "require_tokens")]
    open: bool,
    /// The namespaces served (the Host header's first label; `default` on TCP),
    /// comma-separated; a session in another one is refused with NOT_FOUND [default: any].
    #[arg(long, alias = "namespace", value_name = "NS,..", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Most objects one session may hold open at once (the next is LIMIT_EXCEEDED).
    #[arg(long, default_value_t = HostConfig::default().max_objects_per_session)]
    max_objects_per_session: usize,
    /// Log line format (filter with RUST_LOG, default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Args)]
struct CodegenArgs {
    /// The `.capnp` files.
    #[arg(required_unless_present = "from", conflicts_with = "from", value_name = "SCHEMA.capnp")]
    files: Vec<PathBuf>,
    /// Where to write the generated modules.
    #[arg(short, long, value_name = "DIR")]
    out: PathBuf,
    /// An import directory (repeatable).
    #[arg(short = 'I', long = "import-path", value_name = "DIR")]
    imports: Vec<PathBuf>,
    /// What to write: Rust (capnpc's modules, typed clients, the interfaces table) or
    /// TypeScript declarations for the `capnweb` client of the Cap'n Web gateway.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Take the schemas from a running server (`ws://`, `wss://`, `http://`, `https://` or `tcp://` URL of its
    /// `/rpc`), through `describe`, instead of `.capnp` files: no compiler needed.
    #[arg(long, value_name = "URL")]
    from: Option<String>,
}

/// The language `dotdo codegen` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust modules.
    Rust,
    /// TypeScript declarations.
    Ts,
}

impl ServeArgs {
    fn into_command(self) -> Command {
        let mut c = ServerConfig::default();
        let l = &mut c.limits;
        l.max_message_bytes = self.max_message_bytes;
        l.max_frame_bytes = self.max_frame_bytes.max(self.max_message_bytes);
        l.nesting_limit = self.nesting_limit;
        l.max_calls_in_flight = self.max_calls_in_flight;
        l.max_batch_messages = self.max_batch_messages;
        l.max_batch_bytes = self.max_batch_bytes;
        l.call_timeout = Duration::from_millis(self.call_timeout_ms);
        l.header_read_timeout = Duration::from_millis(self.header_read_timeout_ms);
        l.body_read_timeout = Duration::from_millis(self.body_read_timeout_ms);
        l.idle_timeout = Duration::from_millis(self.idle_timeout_ms);
        l.frame_read_timeout = Duration::from_millis(self.frame_read_timeout_ms);
        l.max_connections = self.max_connections;
        l.partial_frame_budget = self.partial_frame_budget;
        if let Some(w) = self.workers {
            c.workers = w;
        }
        c.http_addr = SocketAddr::new(self.host, self.port);
        c.tcp_addr = (!self.no_tcp).then(|| SocketAddr::new(self.host, self.tcp_port));
        let mut h = HostConfig {
            data_dir: self.data,
            idle_timeout: Duration::from_millis(self.idle_ms),
            max_live: self.max_objects,
            max_objects_per_session: self.max_objects_per_session,
            namespaces: self.namespaces.into_iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect(),
            call_timeout: c.limits.call_timeout,
            event_retention: do_modules::events::Retention {
                max_events: self.event_max_count,
                max_age_ms: self.event_max_age_secs.saturating_mul(1000),
            },
            ai: crate::ai::AiConfig::from_env(),
            hot_bytes: self.hot_bytes,
            cold: self.cold,
            ..HostConfig::default()
        };
        if let Some(t) = self.object_threads {
            h.threads = t;
        }
        Command::Serve(Box::new(Serve {
            server: c,
            host: h,
            broker_timeout: Duration::from_millis(self.broker_timeout_ms),
            require_tokens: self.require_tokens || (!self.host.is_loopback() && !self.open),
            open: self.open,
            log_format: self.log_format,
        }))
    }
}

impl Serve {
    /// Whether the listeners are reachable beyond this machine's loopback.
    pub fn exposed(&self) -> bool {
        !self.server.http_addr.ip().is_loopback()
    }

    /// What to say at start-up about who may open objects, when it is not the loopback
    /// default.
    pub fn access_notice(&self) -> Option<String> {
        match (self.exposed(), self.require_tokens) {
            (true, true) => Some(
                "  listening beyond loopback: objects only through capability tokens (broker.redeem); \
                 gateway.object is refused (--open allows it)"
                    .into(),
            ),
            (true, false) => {
                Some("  --open: anyone who reaches this address may open any object with gateway.object".into())
            }
            (false, true) => Some("  objects only through capability tokens (broker.redeem)".into()),
            (false, false) => None,
        }
    }
}

/// Parses the arguments after the program name; no arguments means `serve`. An error is
/// the text to print (with usage).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args: Vec<String> = args.into_iter().collect();
    if args.is_empty() {
        args.push("serve".into());
    }
    let cli = match Cli::try_parse_from(std::iter::once("dotdo".to_string()).chain(args)) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
            return match e.kind() {
                DisplayHelp | DisplayVersion => Ok(Command::Help(e.render().to_string())),
                _ => Err(e.render().to_string()),
            };
        }
    };
    Ok(match cli.command {
        Sub::Serve(s) => s.into_command(),
        Sub::Codegen(c) => {
            Command::Codegen { files: c.files, imports: c.imports, out: c.out, lang: c.lang, from: c.from }
        }
        Sub::Token(t) => Command::Token(t),
        Sub::Inspect(i) => Command::Inspect(Box::new(i)),
        Sub::New(n) => Command::New(n),
        #[cfg(feature = "cold")]
        Sub::Restore(r) => Command::Restore(Box::new(r)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn serve(s: &str) -> Serve {
        match parse(args(s)) {
            Ok(Command::Serve(s)) => *s,
            other => panic!("{s:?} is not serve: {other:?}"),
        }
    }

    #[test]
    fn serve_defaults_to_loopback() {
        for line in ["serve", ""] {
            let s = serve(line);
            assert!(!s.require_tokens);
            assert_eq!(s.broker_timeout, Duration::from_secs(5));
            assert_eq!(s.log_format, LogFormat::Text);
            assert_eq!(s.host.data_dir, PathBuf::from(".dotdo"));
            assert_eq!(s.host.idle_timeout, HostConfig::default().idle_timeout);
            assert_eq!(s.host.event_retention, HostConfig::default().event_retention);
            assert_eq!(s.server.limits, Limits::default());
            assert_eq!(s.server.http_addr, "127.0.0.1:8787".parse().unwrap());
            assert_eq!(s.server.tcp_addr, Some("127.0.0.1:8788".parse().unwrap()));
        }
    }

    #[test]
    fn serve_flags_set_exhaustion_limits() {
        let s = serve(
            "serve --header-read-timeout-ms 1 --body-read-timeout-ms 2 --idle-timeout-ms 3 --frame-read-timeout-ms 4 \
             --max-connections 5 --partial-frame-budget 6",
        );
        let l = s.server.limits;
        assert_eq!((l.header_read_timeout, l.body_read_timeout), (Duration::from_millis(1), Duration::from_millis(2)));
        assert_eq!((l.idle_timeout, l.frame_read_timeout), (Duration::from_millis(3), Duration::from_millis(4)));
        assert_eq!((l.max_connections, l.partial_frame_budget), (Some(5), 6));
    }

    #[test]
    fn serve_flags_set_limits() {
        let s = serve(
            "serve --port 0 --no-tcp --max-calls-in-flight 7 --call-timeout-ms 250 --data /tmp/x --idle-ms 5 \
             --max-objects 3 --broker-timeout-ms 9 --require-tokens --log-format json --max-message-bytes 100 \
             --max-frame-bytes 10 --event-max-count 50 --event-max-age-secs 60",
        );
        assert_eq!(s.host.event_retention, do_modules::events::Retention { max_events: 50, max_age_ms: 60_000 });
        assert_eq!((s.host.data_dir.to_str(), s.host.idle_timeout), (Some("/tmp/x"), Duration::from_millis(5)));
        assert_eq!((s.host.call_timeout, s.host.max_live), (Duration::from_millis(250), 3));
        assert_eq!((s.broker_timeout, s.require_tokens), (Duration::from_millis(9), true));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.server.http_addr.port(), 0);
        assert_eq!(s.server.tcp_addr, None);
        assert_eq!(s.server.limits.max_calls_in_flight, 7);
        assert_eq!(s.server.limits.call_timeout, Duration::from_millis(250));
        assert_eq!(s.server.limits.max_frame_bytes, 100, "a frame holds at least one message");
    }

    #[test]
    fn beyond_loopback_tokens_are_required_unless_open() {
        let s = serve("serve --host 0.0.0.0");
        assert!(s.require_tokens && !s.open && s.exposed());
        assert!(s.access_notice().is_some_and(|n| n.contains("--open")));
        let s = serve("serve --host 0.0.0.0 --open");
        assert!(!s.require_tokens && s.open);
        assert!(s.access_notice().is_some_and(|n| n.contains("anyone")));
        let s = serve("serve --host ::1");
        assert!(!s.require_tokens && s.access_notice().is_none(), "loopback stays open");
        assert!(parse(args("serve --open --require-tokens")).unwrap_err().contains("cannot be used with"));
    }

    #[test]
    fn namespaces_and_the_session_object_bound_are_flags() {
        assert!(serve("serve").host.namespaces.is_empty());
        assert_eq!(serve("serve --namespaces a,b").host.namespaces, vec!["a", "b"]);
        assert_eq!(serve("serve --namespace a").host.namespaces, vec!["a"]);
        assert_eq!(serve("serve").host.max_objects_per_session, HostConfig::default().max_objects_per_session);
        assert_eq!(serve("serve --max-objects-per-session 3").host.max_objects_per_session, 3);
    }

    #[test]
    fn bad_serve_flags_are_refused_with_usage() {
        let e = parse(args("serve --port x")).unwrap_err();
        assert!(e.contains("invalid value 'x'") && e.contains("--port"), "{e}");
        let e = parse(args("serve --bogus")).unwrap_err();
        assert!(e.contains("--bogus") && e.contains("Usage:"), "{e}");
        assert!(parse(args("serve --log-format xml")).unwrap_err().contains("xml"));
        assert!(parse(args("frobnicate")).unwrap_err().contains("frobnicate"));
    }

    #[test]
    fn help_is_text_to_print() {
        for line in [
            "--help",
            "help",
            "serve --help",
            "codegen --help",
            "inspect --help",
            "new --help",
            "token --help",
            "token mint --help",
        ] {
            let Ok(Command::Help(text)) = parse(args(line)) else { panic!("{line}: not help") };
            assert!(text.contains("Usage: dotdo"), "{line}: {text}");
        }
        #[cfg(feature = "cold")]
        {
            let Ok(Command::Help(text)) = parse(args("restore --help")) else { panic!("restore: not help") };
            assert!(text.contains("--cold") && text.contains("[default: .dotdo]"), "{text}");
        }
        let Ok(Command::Help(text)) = parse(args("serve --help")) else { panic!() };
        assert!(text.contains("--require-tokens") && text.contains("[default: 8787]"), "{text}");
        assert!(text.contains("--open") && text.contains("beyond loopback") && text.contains("--namespaces"), "{text}");
    }

    #[test]
    fn codegen_needs_out_and_files() {
        assert!(parse(args("codegen a.capnp")).unwrap_err().contains("--out"));
        assert!(parse(args("codegen --out x")).unwrap_err().contains("SCHEMA.capnp"));
        let c = parse(args("codegen a.capnp -I inc --out gen")).unwrap();
        assert_eq!(
            c,
            Command::Codegen {
                files: vec!["a.capnp".into()],
                imports: vec!["inc".into()],
                out: "gen".into(),
                lang: Lang::Rust,
                from: None
            }
        );
        let c = parse(args("codegen --from ws://h/rpc --lang ts --out gen")).unwrap();
        assert!(matches!(c, Command::Codegen { lang: Lang::Ts, from: Some(_), .. }), "{c:?}");
        assert!(parse(args("codegen a.capnp --from ws://h/rpc --out gen")).is_err());
    }

    #[test]
    fn token_commands_parse() {
        let c = parse(args("token verify abc")).unwrap();
        assert_eq!(c, Command::Token(TokenCommand::Verify { token: "abc".into() }));
        assert!(parse(args("token mint --target a/b")).unwrap_err().contains("--methods"));
    }
}
