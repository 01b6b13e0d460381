//! `dotdo`: the server binary. `dotdo serve` runs the server with the embedded
//! defaults on 127.0.0.1; `dotdo codegen` generates Rust clients from a schema;
//! `dotdo token` makes and checks capability tokens; `dotdo inspect` looks inside
//! objects; `dotdo restore` rebuilds an object from its newest snapshot. `dotdo --help` lists the flags.

use do_runtime::cli::{parse, Command};
use std::io::Write;

fn main() {
    let command = match parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            std::process::exit(2);
        }
    };
    match command {
        Command::Help(text) => print!("{text}"),
        Command::Token(token) => match do_runtime::token_cli::run(&token) {
            Ok(out) => println!("{out}"),
            Err(e) => {
                eprintln!("dotdo token: {e}");
                std::process::exit(1);
            }
        },
        #[cfg(feature = "cold")]
        Command::Restore(args) => {
            let restored = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| rpc_core::RpcError::new(rpc_core::Code::Internal, e.to_string()))
                .and_then(|rt| rt.block_on(do_runtime::restore::run(&args)));
            match restored {
                Ok(m) => println!(
                    "restored {}/{}/{} from snapshot {} ({} tables, events up to {})",
                    args.namespace,
                    args.class,
                    args.name,
                    m.seq,
                    m.tables.len(),
                    m.events_up_to
                ),
                Err(e) => {
                    eprintln!("dotdo restore: [{}] {}", e.code.as_str(), e.message);
                    std::process::exit(1);
                }
            }
        }
        Command::New(args) => match do_runtime::scaffold::create(&args) {
            Ok(dir) => {
                println!("created {}", dir.display());
                println!("  cd {} && cargo run      # serves Counter on 127.0.0.1:8787", dir.display());
            }
            Err(e) => {
                eprintln!("dotdo new: [{}] {}", e.code.as_str(), e.message);
                std::process::exit(1);
            }
        },
        Command::Inspect(args) => match do_runtime::inspect::run(&args) {
            Ok(out) => println!("{out}"),
            Err(e) => {
                eprintln!("dotdo inspect: [{}] {}", e.code.as_str(), e.message);
                std::process::exit(1);
            }
        },
        Command::Codegen { files, imports, out, lang, from } => {
            match do_runtime::codegen::run(&files, &imports, &out, lang, from.as_deref()) {
                Ok(written) => {
                    for w in written {
                        println!("wrote {}", w.display());
                    }
                }
                Err(e) => {
                    eprintln!("dotdo codegen: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::Serve(serve) => {
            if let Err(e) = do_runtime::logging::init(serve.log_format) {
                eprintln!("dotdo serve: {e}");
                std::process::exit(2);
            }
            let data = serve.host.data_dir.clone();
            let notice = serve.access_notice();
            let started = do_runtime::broker_from_env(&serve.host, serve.broker_timeout).and_then(|mut broker| {
                broker.require_tokens |= serve.require_tokens;
                do_runtime::Runtime::new(serve.server).host(serve.host).broker(broker).start()
            });
            let server = match started {
                Ok(running) => running.server,
                Err(e) => {
                    eprintln!("dotdo serve: cannot listen: {e}");
                    std::process::exit(1);
                }
            };
            let tcp = server.tcp_addr.map_or_else(|| "off".to_string(), |a| a.to_string());
            tracing::info!(http = %server.http_addr, %tcp, data = %data.display(), "dotdo listening");
            // Where it listens; a closed stdout must not stop the server.
            let mut out = std::io::stdout();
            let _ = writeln!(out, "dotdo listening on http://{}", server.http_addr);
            let _ = writeln!(out, "  objects in {}", data.display());
            if let Some(notice) = &notice {
                tracing::info!("{}", notice.trim());
                let _ = writeln!(out, "{notice}");
            }
            let _ = writeln!(out, "  POST /rpc   HTTP batch (application/x-capnp)");
            let _ = writeln!(out, "  GET  /rpc   WebSocket (subprotocol capnp-rpc)");
            let _ = writeln!(out, "  GET  /health");
            let _ = writeln!(out, "  GET  /metrics   OpenMetrics text");
            if let Some(tcp) = server.tcp_addr {
                let _ = writeln!(out, "  tcp://{tcp}   Cap'n Proto stream");
            }
            let _ = out.flush();
            server.wait();
        }
    }
}
