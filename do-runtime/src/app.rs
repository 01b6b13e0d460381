//! [`App`]: a server of the user's own classes in a few lines.
//!
//! ```no_run
//! # use do_runtime::App;
//! # fn serve() -> std::io::Result<()> {
//! App::new()
//!     // .class::<Counter>("Counter")
//!     .builtin_class("Thing")
//!     .serve(rpc_server::ServerConfig::default())
//! # }
//! ```

use crate::{BrokerConfig, HostConfig, Running, Runtime};
use do_modules::class::Class;
use do_modules::class::Classes;
use rpc_server::ServerConfig;

/// The classes a server hosts, and how; `serve` or `start` it.
#[derive(Debug, Clone)]
pub struct App {
    classes: Classes,
    host: HostConfig,
    broker: Option<BrokerConfig>,
    errors: Vec<String>,
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

impl App {
    /// An app with no classes: `gateway.object` with a class not registered is
    /// NOT_FOUND (nothing is created).
    pub fn new() -> Self {
        App { classes: Classes::none(), host: HostConfig::default(), broker: None, errors: Vec::new() }
    }

    /// Serves the class `C` under `name` (a class identifier) and registers the
    /// interfaces of its schema. A bad or repeated name makes `start` fail.
    #[must_use]
    pub fn class<C: Class>(mut self, name: &str) -> Self {
        if let Err(e) = self.classes.add::<C>(name) {
            self.errors.push(e.message);
        }
        self
    }

    /// Serves the built-in class (`Object` with storage, events and schedule) under
    /// `name`.
    #[must_use]
    pub fn builtin_class(mut self, name: &str) -> Self {
        if let Err(e) = self.classes.add_builtin(name) {
            self.errors.push(e.message);
        }
        self
    }

    /// Serves the built-in class under every class name not registered (what the
    /// zero-code `dotdo serve` does).
    #[must_use]
    pub fn any_class_builtin(mut self) -> Self {
        self.classes.set_builtin_fallback(true);
        self
    }

    /// Hosts objects as `host` says (data directory, threads, eviction...).
    #[must_use]
    pub fn host(mut self, host: HostConfig) -> Self {
        self.host = host;
        self
    }

    /// Runs the broker configured by `broker` instead of the environment's.
    #[must_use]
    pub fn broker(mut self, broker: BrokerConfig) -> Self {
        self.broker = Some(broker);
        self
    }

    /// The runtime this app describes.
    pub fn runtime(self, server: ServerConfig) -> std::io::Result<Runtime> {
        if !self.errors.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, self.errors.join("; ")));
        }
        let mut runtime = Runtime::new(server).host(self.host).classes(self.classes);
        runtime.broker = self.broker;
        Ok(runtime)
    }

    /// Starts serving on `server`'s listeners and returns at once.
    pub fn start(self, server: ServerConfig) -> std::io::Result<Running> {
        self.runtime(server)?.start()
    }

    /// Serves on `server`'s listeners until the process ends.
    pub fn serve(self, server: ServerConfig) -> std::io::Result<()> {
        let running = self.start(server)?;
        tracing::info!(http = %running.server.http_addr, "serving");
        running.server.wait();
        Ok(())
    }
}
