//! The log subscriber `dotdo serve` installs: events from `tracing` go to stderr (stdout
//! carries the listening lines), filtered by `RUST_LOG` (default `info`), as text or as
//! one JSON object per line.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (fields, span context), for log collectors.
    Json,
}

/// The filter from `RUST_LOG`, or `info` when it is unset or empty. A directive that does
/// not parse is an error naming it.
pub fn filter(rust_log: Option<&str>) -> Result<EnvFilter, String> {
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(EnvFilter::new("info")),
        Some(s) => EnvFilter::try_new(s).map_err(|e| format!("RUST_LOG={s:?}: {e}")),
    }
}

/// Installs the process-wide subscriber; an error if `RUST_LOG` does not parse or one is
/// already installed.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref())?;
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).try_init(),
    };
    installed.map_err(|e| format!("cannot install the log subscriber: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_defaults_to_info_and_bad_directives_are_named() {
        assert_eq!(filter(None).unwrap().to_string(), "info");
        assert_eq!(filter(Some(" ")).unwrap().to_string(), "info");
        assert_eq!(filter(Some("rpc_server=debug")).unwrap().to_string(), "rpc_server=debug");
        assert!(filter(Some("rpc_server=loud")).unwrap_err().contains("rpc_server=loud"));
    }
}
