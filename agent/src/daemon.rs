//! `lfleet-agent run`: the long-running agent's loops. Checks run every check interval with
//! probes on a `BoundedWorker` (a hung mount holds one thread, is reported, and is never
//! probed twice at once); telemetry runs every collect interval; the optional Prometheus
//! endpoint serves what they last found. Nothing here waits on a Lustre path on the async
//! runtime, so the agent keeps answering whatever the mounts do.
//!
//! With a coordinator, each round of check results and every telemetry sample is also handed
//! to the session ([`Outputs`]), which reports them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lfleet_host::{BoundedWorker, Clock, CommandRunner, HostRoot};
use tokio::sync::watch;

use crate::checks::{CheckContext, CheckMemory, Outcome, Prober, run_all_timed};
use crate::collect::{CollectOptions, Collector};
use crate::config::NodeConfig;
use crate::metrics::{MetricsState, SharedMetrics};

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub check_interval: Duration,
    pub collect_interval: Duration,
    pub syscall_deadline: Duration,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            check_interval: Duration::from_secs(10),
            collect_interval: Duration::from_secs(10),
            syscall_deadline: Duration::from_secs(5),
        }
    }
}

/// Starts the Prometheus endpoint when the configuration enables it; returns its address.
pub async fn start_metrics(
    config: &NodeConfig,
    state: SharedMetrics,
) -> Result<Option<std::net::SocketAddr>, String> {
    if !config.prometheus.enabled {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(&config.prometheus.listen)
        .await
        .map_err(|e| format!("prometheus.listen {}: {e}", config.prometheus.listen))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("prometheus.listen {}: {e}", config.prometheus.listen))?;
    tokio::spawn(async move {
        if let Err(error) = crate::metrics::serve(listener, state).await {
            tracing::error!(error = %lfleet_types::ErrorChain(&error), "the Prometheus endpoint stopped");
        }
    });
    Ok(Some(address))
}

/// Where the loops hand their findings to the coordinator session, when there is one.
#[derive(Debug, Default)]
pub struct Outputs {
    pub rounds: Option<watch::Sender<crate::session::CheckRound>>,
    pub samples: Option<Arc<Mutex<crate::telemetry::SampleBuffer>>>,
}

/// Runs the loops until `stop` resolves. `config` is read at every check run, so a config
/// the session applied is checked from the next run on.
#[allow(clippy::too_many_arguments, reason = "the daemon's whole context")]
pub async fn run(
    host: &HostRoot,
    config: watch::Receiver<NodeConfig>,
    runner: &dyn CommandRunner,
    clock: &dyn Clock,
    options: DaemonOptions,
    metrics: SharedMetrics,
    outputs: Outputs,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut round_seq = 0u64;
    let worker = BoundedWorker::new();
    let memory = Mutex::new(CheckMemory::load(host));
    let mut collector = Collector::new(
        host.clone(),
        CollectOptions {
            cycle_deadline: options.collect_interval.min(Duration::from_secs(5)),
            ..CollectOptions::default()
        },
        clock,
    );
    let mut check_ms: Vec<(String, f64)> = Vec::new();
    let mut checks = tokio::time::interval(options.check_interval);
    let mut collects = tokio::time::interval(options.collect_interval);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    collects.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = checks.tick() => {
                // The main loop's liveness: systemd restarts the agent if this stops.
                lfleet_host::sd_notify("WATCHDOG=1");
                let config = config.borrow().clone();
                let context = CheckContext {
                    host,
                    runner,
                    clock,
                    config: &config,
                    prober: Prober::Thread(&worker),
                    syscall_deadline: options.syscall_deadline,
                    memory: &memory,
                };
                let (results, durations) =
                    run_all_timed(context, options.syscall_deadline + Duration::from_secs(25)).await;
                check_ms = durations;
                let events = {
                    let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(error) = memory.save(host) {
                        tracing::warn!(error = %lfleet_types::ErrorChain(&error), "cannot save the check memory");
                    }
                    std::mem::take(&mut memory.events)
                };
                for result in &results {
                    match &result.outcome {
                        Outcome::Pass => {}
                        Outcome::Fail { code, detail } => tracing::warn!(check = result.check, subject = %result.subject, code, detail, "check failed"),
                        Outcome::Unknown { error } => tracing::info!(check = result.check, subject = %result.subject, error, "check unknown"),
                    }
                }
                if let Some(rounds) = &outputs.rounds {
                    round_seq += 1;
                    rounds.send_replace(crate::session::CheckRound {
                        seq: round_seq,
                        results: results.clone(),
                        events: events.clone(),
                    });
                }
                // `lfleet-agent status` (Slurm's HealthCheckProgram, NHC) reads these.
                if let Err(error) = crate::status::write(host, &results, options.check_interval, clock.wall_unix_ms()) {
                    tracing::warn!(error = %lfleet_types::ErrorChain(&error), "cannot write the status file");
                }
                let mut state = metrics.lock().unwrap_or_else(|e| e.into_inner());
                for event in events {
                    tracing::warn!(kind = event.kind, subject = event.subject, detail = event.detail, "event");
                    *state.events.entry(event.kind).or_default() += 1;
                }
                state.results = results;
            }
            _ = collects.tick() => {
                collector.cycle(runner, clock, &check_ms).await;
                let samples = collector.buffer.take(usize::MAX);
                if let Some(outbox) = &outputs.samples {
                    let mut outbox = outbox.lock().unwrap_or_else(|e| e.into_inner());
                    for sample in &samples {
                        outbox.push(sample.clone());
                    }
                }
                let mut state = metrics.lock().unwrap_or_else(|e| e.into_inner());
                state.dropped_samples = collector.buffer.dropped();
                for mut sample in samples {
                    let key = (sample.collector.to_owned(), sample.subject.clone());
                    // No new kernel snapshot: the last rates stay the best answer. A reset or
                    // an unavailable source replaces them.
                    if sample.values.is_empty() && sample.unavailable.is_none() && !sample.reset
                        && let Some(previous) = state.samples.get(&key)
                    {
                        sample.values = previous.values.clone();
                    }
                    state.samples.insert(key, sample);
                }
            }
        }
    }
}

/// A fresh shared state for the endpoint.
pub fn shared_metrics() -> SharedMetrics {
    Arc::new(Mutex::new(MetricsState::default()))
}
