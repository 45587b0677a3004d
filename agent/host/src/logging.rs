//! Where lfleet's programs log: the journal, with every tracing field as a journal field,
//! when systemd started them (`JOURNAL_STREAM` is set and the journal answers); stderr
//! otherwise; and, when asked, also rotating daily files in a directory. The level comes from
//! `LFLEET_LOG` (an env-filter), else the given default.

use std::path::Path;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the file writer flushing; hold it for the life of the program.
#[derive(Debug)]
pub struct LogGuard {
    _flush: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Where the logs went, for a test or a startup line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Journal,
    Stderr,
}

/// Installs the global subscriber. `program` names the files (`<program>.log.<date>`).
pub fn init_logging(
    program: &str,
    default_level: &str,
    log_dir: Option<&Path>,
) -> (LogTarget, LogGuard) {
    let filter =
        || EnvFilter::try_from_env("LFLEET_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let journal = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|layer| layer.with_syslog_identifier(program.to_owned()));
    let target = if journal.is_some() {
        LogTarget::Journal
    } else {
        LogTarget::Stderr
    };
    let stderr = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    let (file, guard) = match log_dir {
        Some(dir) => {
            let appender = tracing_appender::rolling::daily(dir, format!("{program}.log"));
            let (writer, guard) = tracing_appender::non_blocking(appender);
            (
                Some(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(writer)
                        .with_filter(filter()),
                ),
                Some(guard),
            )
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(journal.map(|j| j.with_filter(filter())))
        .with(stderr)
        .with(file)
        .try_init();
    (target, LogGuard { _flush: guard })
}
