//! Logging: JSON lines by default (for log pipelines and SIEMs), human-readable on request.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines for a terminal.
    Text,
}

/// Installs the global tracing subscriber. `filter` uses `RUST_LOG` syntax, e.g. `info,kube=warn`.
pub fn init(format: LogFormat, filter: &str) -> Result<(), tracing_subscriber::filter::ParseError> {
    let filter = EnvFilter::try_new(filter)?;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .init(),
        LogFormat::Text => registry.with(fmt::layer()).init(),
    }
    Ok(())
}
