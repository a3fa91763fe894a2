//! Logging: JSON lines by default (for log pipelines and SIEMs), human-readable on request.

use std::borrow::Cow;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines for a terminal.
    Text,
}

/// kube-client logs an ERROR line for every request that failed, besides returning the error to
/// whoever sent it, who logs it with what it was for: while the API server is away that doubles
/// every retry's line. Off unless a filter names `kube_client`.
const KUBE_CLIENT_FAILURES: &str = "kube_client::client::builder=off";

/// Installs the global tracing subscriber. `filter` uses `RUST_LOG` syntax, e.g. `info,kube=warn`.
pub fn init(format: LogFormat, filter: &str) -> Result<(), tracing_subscriber::filter::ParseError> {
    let filter = with_defaults(filter)?;
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

fn with_defaults(filter: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let parsed = EnvFilter::try_new(filter)?;
    if filter.contains("kube_client") {
        return Ok(parsed);
    }
    Ok(parsed.add_directive(KUBE_CLIENT_FAILURES.parse()?))
}

/// Logs the errors of one watch so that an outage costs two lines, not one per retry: the first
/// failure after it worked as a warning, the next ones at debug, and its recovery (the next event)
/// once.
pub struct WatchLog {
    what: Cow<'static, str>,
    failing: bool,
}

impl WatchLog {
    /// For the watch of `what` (a kind, or what the watch is for).
    pub fn new(what: impl Into<Cow<'static, str>>) -> WatchLog {
        WatchLog {
            what: what.into(),
            failing: false,
        }
    }

    /// Takes one item of the watch's stream.
    pub fn saw<T, E: std::fmt::Display>(&mut self, item: &Result<T, E>) {
        match item {
            Ok(_) if self.failing => {
                self.failing = false;
                tracing::info!(watch = %self.what, "watch works again");
            }
            Ok(_) => {}
            Err(err) if self.failing => {
                tracing::debug!(watch = %self.what, error = %err, "watch still failing; retrying with backoff");
            }
            Err(err) => {
                self.failing = true;
                tracing::warn!(watch = %self.what, error = %err, "watch failed; retrying with backoff (logged again once it works)");
            }
        }
    }

    /// Whether its last item was an error.
    pub fn failing(&self) -> bool {
        self.failing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_clients_line_per_failed_request_is_off_unless_asked_for() {
        let default = with_defaults("info").expect("valid").to_string();
        assert!(default.contains(KUBE_CLIENT_FAILURES), "{default}");
        let asked = with_defaults("info,kube_client=debug")
            .expect("valid")
            .to_string();
        assert!(!asked.contains("=off"), "{asked}");
    }

    #[test]
    fn a_watch_is_failing_from_its_first_error_until_its_next_event() {
        let mut log = WatchLog::new("Thing");
        log.saw(&Ok::<(), &str>(()));
        assert!(!log.failing());
        log.saw(&Err::<(), &str>("connection refused"));
        log.saw(&Err::<(), &str>("connection refused"));
        assert!(log.failing());
        log.saw(&Ok::<(), &str>(()));
        assert!(!log.failing());
    }
}
