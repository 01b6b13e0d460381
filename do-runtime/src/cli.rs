//! The `dotdo` command line, parsed into plain values (no I/O here).

use crate::host::registry::HostConfig;
use rpc_server::ServerConfig;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Usage text.
pub const USAGE: &str = "\
usage:
  dotdo serve [--host 127.0.0.1] [--port 8787] [--tcp-port 8788 | --no-tcp] [--workers N]
              [--max-message-bytes N] [--max-frame-bytes N] [--nesting-limit N]
              [--max-calls-in-flight N] [--max-batch-messages N] [--max-batch-bytes N]
              [--call-timeout-ms N] [--data DIR] [--object-threads N] [--idle-ms N]
              [--max-objects N] [--broker-timeout-ms N] [--require-tokens]
  dotdo codegen <schema.capnp>... --out <dir> [-I <import dir>]...
  dotdo token new-key | mint ... | verify TOKEN | attenuate TOKEN ...
  dotdo help";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the server (with the broker's per-call timeout, and whether objects are
    /// reachable only through tokens).
    Serve(Box<ServerConfig>, Box<HostConfig>, Duration, bool),
    /// Generate Rust code for the given schema files.
    Codegen {
        /// The `.capnp` files.
        files: Vec<PathBuf>,
        /// Import directories.
        imports: Vec<PathBuf>,
        /// Where to write the generated modules.
        out: PathBuf,
    },
    /// A token command (`new-key`, `mint`, `verify`, `attenuate`) with its arguments.
    Token(Vec<String>),
    /// Print usage.
    Help,
}

fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
    let v = value.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse().map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    match args.next().as_deref() {
        None | Some("serve") => parse_serve(args),
        Some("codegen") => parse_codegen(args),
        Some("token") => Ok(Command::Token(args.collect())),
        Some("help" | "--help" | "-h") => Ok(Command::Help),
        Some(other) => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

fn parse_serve(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut c = ServerConfig::default();
    let mut h = HostConfig::default();
    let mut broker_timeout = Duration::from_secs(5);
    let mut require_tokens = false;
    let mut host: IpAddr = [127, 0, 0, 1].into();
    let (mut port, mut tcp_port) = (8787u16, Some(8788u16));
    while let Some(flag) = args.next() {
        let l = &mut c.limits;
        match flag.as_str() {
            "--host" => host = number(&flag, args.next())?,
            "--port" => port = number(&flag, args.next())?,
            "--tcp-port" => tcp_port = Some(number(&flag, args.next())?),
            "--no-tcp" => tcp_port = None,
            "--workers" => c.workers = number(&flag, args.next())?,
            "--max-message-bytes" => l.max_message_bytes = number(&flag, args.next())?,
            "--max-frame-bytes" => l.max_frame_bytes = number(&flag, args.next())?,
            "--nesting-limit" => l.nesting_limit = number(&flag, args.next())?,
            "--max-calls-in-flight" => l.max_calls_in_flight = number(&flag, args.next())?,
            "--max-batch-messages" => l.max_batch_messages = number(&flag, args.next())?,
            "--max-batch-bytes" => l.max_batch_bytes = number(&flag, args.next())?,
            "--call-timeout-ms" => l.call_timeout = Duration::from_millis(number(&flag, args.next())?),
            "--data" => h.data_dir = PathBuf::from(args.next().ok_or("--data needs a directory")?),
            "--object-threads" => h.threads = number(&flag, args.next())?,
            "--idle-ms" => h.idle_timeout = Duration::from_millis(number(&flag, args.next())?),
            "--max-objects" => h.max_live = number(&flag, args.next())?,
            "--broker-timeout-ms" => broker_timeout = Duration::from_millis(number(&flag, args.next())?),
            "--require-tokens" => require_tokens = true,
            other => return Err(format!("unknown flag {other:?}\n{USAGE}")),
        }
    }
    if c.limits.max_frame_bytes < c.limits.max_message_bytes {
        c.limits.max_frame_bytes = c.limits.max_message_bytes;
    }
    c.http_addr = SocketAddr::new(host, port);
    c.tcp_addr = tcp_port.map(|p| SocketAddr::new(host, p));
    h.call_timeout = c.limits.call_timeout;
    Ok(Command::Serve(Box::new(c), Box::new(h), broker_timeout, require_tokens))
}

fn parse_codegen(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let (mut files, mut imports, mut out) = (Vec::new(), Vec::new(), None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" | "-o" => out = Some(PathBuf::from(args.next().ok_or("--out needs a directory")?)),
            "-I" | "--import-path" => imports.push(PathBuf::from(args.next().ok_or("-I needs a directory")?)),
            _ => files.push(PathBuf::from(a)),
        }
    }
    let out = out.ok_or_else(|| format!("codegen needs --out <dir>\n{USAGE}"))?;
    if files.is_empty() {
        return Err(format!("codegen needs at least one .capnp file\n{USAGE}"));
    }
    Ok(Command::Codegen { files, imports, out })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn serve_defaults_to_loopback() {
        let Command::Serve(c, h, t, r) = parse(args("serve")).unwrap() else { panic!() };
        assert!(!r);
        assert_eq!(t, Duration::from_secs(5));
        assert_eq!(h.data_dir, PathBuf::from(".dotdo"));
        assert_eq!(c.http_addr, "127.0.0.1:8787".parse().unwrap());
        assert_eq!(c.tcp_addr, Some("127.0.0.1:8788".parse().unwrap()));
    }

    #[test]
    fn serve_flags_set_limits() {
        let Command::Serve(c, h, _, _) = parse(args(
            "serve --port 0 --no-tcp --max-calls-in-flight 7 --call-timeout-ms 250 --data /tmp/x --idle-ms 5",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!((h.data_dir.to_str(), h.idle_timeout), (Some("/tmp/x"), Duration::from_millis(5)));
        assert_eq!(h.call_timeout, Duration::from_millis(250));
        assert_eq!(c.http_addr.port(), 0);
        assert_eq!(c.tcp_addr, None);
        assert_eq!(c.limits.max_calls_in_flight, 7);
        assert_eq!(c.limits.call_timeout, Duration::from_millis(250));
        assert!(parse(args("serve --port x")).unwrap_err().contains("not a valid number"));
        assert!(parse(args("serve --bogus")).is_err());
    }

    #[test]
    fn codegen_needs_out_and_files() {
        assert!(parse(args("codegen a.capnp")).is_err());
        assert!(parse(args("codegen --out x")).is_err());
        let c = parse(args("codegen a.capnp -I inc --out gen")).unwrap();
        assert_eq!(
            c,
            Command::Codegen { files: vec!["a.capnp".into()], imports: vec!["inc".into()], out: "gen".into() }
        );
    }
}
