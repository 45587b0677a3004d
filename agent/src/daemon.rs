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
use tokio::sync::{mpsc, oneshot, watch};

use crate::checks::{CheckContext, CheckMemory, Outcome, Prober, SavePolicy, run_all_timed};
use crate::collect::{CollectOptions, Collector};
use crate::config::NodeConfig;
use crate::metrics::{MetricsState, SharedMetrics};
use crate::node::Node;
use crate::reconciler::{Reconciler, ReconcilerHandle, ReconcilerOptions};

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

/// A request for a check round now (a coordinator's probe-now); answered with the round.
pub type ProbeRequest = oneshot::Sender<crate::session::CheckRound>;

/// Where the loops hand their findings to the coordinator session, when there is one, and
/// take its requests for an immediate check round.
#[derive(Debug, Default)]
pub struct Outputs {
    pub rounds: Option<watch::Sender<crate::session::CheckRound>>,
    pub samples: Option<Arc<Mutex<crate::telemetry::SampleBuffer>>>,
    pub probes: Option<mpsc::Receiver<ProbeRequest>>,
    /// The reconciler's status, to tell a configuration still being applied.
    pub reconciler: Option<watch::Receiver<crate::reconciler::ReconcilerStatus>>,
}

/// The next probe request; never, when there is no one to ask.
async fn next_probe(probes: &mut Option<mpsc::Receiver<ProbeRequest>>) -> ProbeRequest {
    loop {
        match probes {
            Some(receiver) => match receiver.recv().await {
                Some(request) => return request,
                None => *probes = None,
            },
            None => std::future::pending::<()>().await,
        }
    }
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
    mut outputs: Outputs,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut round_seq = 0u64;
    let worker = BoundedWorker::new();
    let memory = Mutex::new(CheckMemory::load(host));
    let mut saving = SavePolicy::new(MEMORY_SAMPLES_SAVED_EVERY);
    let mut last_status = None;
    let mut collector = Collector::new(
        host.clone(),
        CollectOptions {
            cycle_deadline: options.collect_interval.min(Duration::from_secs(5)),
            ..CollectOptions::default()
        },
        clock,
    );
    let mut check_ms: Vec<(String, f64)> = Vec::new();
    let mut textfile_healthy = None;
    let mut checks = tokio::time::interval(options.check_interval);
    let mut collects = tokio::time::interval(options.collect_interval);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    collects.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        // Biased, collection first: when both are due (at the same interval, every time),
        // the checks judge what this cycle just read instead of reading it again.
        let probe = tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = collects.tick() => {
                collect(&mut collector, runner, clock, &check_ms, &outputs, &metrics).await;
                let textfile = config.borrow().prometheus.textfile.clone();
                write_textfile(host, textfile.as_deref(), &metrics, &mut textfile_healthy);
                continue;
            }
            _ = checks.tick() => None,
            request = next_probe(&mut outputs.probes) => Some(request),
        };
        // The main loop's liveness: systemd restarts the agent if this stops.
        lfleet_host::sd_notify("WATCHDOG=1");
        let config = config.borrow().clone();
        let converging = outputs.reconciler.as_ref().is_some_and(|status| {
            let status = status.borrow();
            status.error.is_none() && status.applied_generation < config.generation
        });
        // Fresh: read within half a check interval (this round's cycle, or a faster one's).
        let readings = collector.readings(clock.monotonic(), options.check_interval / 2);
        let context = CheckContext {
            host,
            runner,
            clock,
            config: &config,
            prober: Prober::Thread(&worker),
            syscall_deadline: options.syscall_deadline,
            memory: &memory,
            converging,
            readings: readings.as_deref(),
            // A probe asked for now gets every command run.
            repeat_steady_for: probe.is_none().then_some(options.check_interval * 3),
        };
        let (results, durations) =
            run_all_timed(context, options.syscall_deadline + Duration::from_secs(25)).await;
        check_ms = durations;
        let events = {
            let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
            save_memory(host, &memory, &mut saving, clock.wall_unix_ms(), false);
            std::mem::take(&mut memory.events)
        };
        for result in &results {
            match result.outcome {
                Outcome::Pass => {}
                Outcome::Fail => {
                    tracing::warn!(check = %result.check, subject = %result.subject, code = result.code, detail = result.detail, "check failed")
                }
                Outcome::Unknown => {
                    tracing::info!(check = %result.check, subject = %result.subject, error = result.detail, "check unknown")
                }
            }
        }
        round_seq += 1;
        let round = crate::session::CheckRound {
            seq: round_seq,
            results: results.clone(),
            events: events.clone(),
        };
        if let Some(rounds) = &outputs.rounds {
            rounds.send_replace(round.clone());
        }
        if let Some(reply) = probe {
            let _ = reply.send(round);
        }
        // `lfleet-agent status` (Slurm's HealthCheckProgram, NHC) reads these.
        if let Err(error) = crate::status::write(
            host,
            &results,
            options.check_interval,
            clock.wall_unix_ms(),
            &mut last_status,
        ) {
            tracing::warn!(error = %lfleet_types::ErrorChain(&error), "cannot write the status file");
        }
        let mut state = metrics.lock().unwrap_or_else(|e| e.into_inner());
        for event in events {
            tracing::warn!(kind = %event.kind, subject = event.subject, detail = event.detail, "event");
            *state
                .events
                .entry(event.kind.as_str().to_owned())
                .or_default() += 1;
        }
        state.results = results;
    }
    let memory = memory.lock().unwrap_or_else(|e| e.into_inner());
    save_memory(host, &memory, &mut saving, clock.wall_unix_ms(), true);
}

/// How often the check memory's counter samples alone are written (see [`SavePolicy`]).
const MEMORY_SAMPLES_SAVED_EVERY: Duration = Duration::from_secs(60);

/// Writes the check memory when `policy` says so, or always with `stopping`.
fn save_memory(
    host: &HostRoot,
    memory: &CheckMemory,
    policy: &mut SavePolicy,
    now_unix_ms: u64,
    stopping: bool,
) {
    if !stopping && !policy.due(memory, now_unix_ms) {
        return;
    }
    match memory.save(host) {
        Ok(()) => policy.saved(memory, now_unix_ms),
        Err(error) => {
            tracing::warn!(error = %lfleet_types::ErrorChain(&error), "cannot save the check memory")
        }
    }
}

/// One telemetry cycle: collect, hand the samples to the session and the endpoint.
async fn collect(
    collector: &mut Collector,
    runner: &dyn CommandRunner,
    clock: &dyn Clock,
    check_ms: &[(String, f64)],
    outputs: &Outputs,
    metrics: &SharedMetrics,
) {
    collector.cycle(runner, clock, check_ms).await;
    let mut samples = collector.buffer.take(usize::MAX);
    if let Some(outbox) = &outputs.samples {
        let mut outbox = outbox.lock().unwrap_or_else(|e| e.into_inner());
        for sample in &mut samples {
            // The raw counters are the endpoint's alone: the session never sends them.
            let raw = std::mem::take(&mut sample.raw);
            outbox.push(sample.clone());
            sample.raw = raw;
        }
    }
    let mut state = metrics.lock().unwrap_or_else(|e| e.into_inner());
    state.dropped_samples = collector.buffer.dropped();
    state.mounts = collector
        .mounts()
        .iter()
        .map(|m| (m.mount_point.clone(), m.fsname.clone()))
        .collect();
    let mut fresh = std::collections::BTreeSet::new();
    for mut sample in samples {
        let key = (sample.collector.to_owned(), sample.subject.clone());
        // No new kernel snapshot: the last rates stay the best answer. A reset or an
        // unavailable source replaces them.
        if sample.values.is_empty()
            && sample.unavailable.is_none()
            && !sample.reset
            && let Some(previous) = state.samples.get(&key)
        {
            sample.values = previous.values.clone();
        }
        fresh.insert(key.clone());
        state.samples.insert(key, sample);
    }
    // What this cycle did not see is gone (an unmounted filesystem, a removed port, a
    // source readable again): its last values are no longer true. Capacity is read on its
    // own slower schedule and is kept while its mount is there.
    let MetricsState {
        samples, mounts, ..
    } = &mut *state;
    samples.retain(|key, _| {
        fresh.contains(key)
            || (key.0 == crate::telemetry::capacity::NAME && mounts.contains_key(&key.1))
    });
}

/// Writes the metrics for node_exporter's textfile collector when the configuration asks;
/// a failure is logged when it starts and when it ends (the file keeps its last content,
/// which node_exporter's `node_textfile_mtime_seconds` shows as stale), never stops the
/// agent. `healthy` remembers the last outcome.
fn write_textfile(
    host: &HostRoot,
    path: Option<&str>,
    metrics: &SharedMetrics,
    healthy: &mut Option<bool>,
) {
    let Some(path) = path else {
        return;
    };
    let text = crate::metrics::render(&metrics.lock().unwrap_or_else(|e| e.into_inner()));
    match crate::metrics::write_textfile(host, path, &text) {
        Ok(()) => {
            if *healthy == Some(false) {
                tracing::info!(path, "the metrics textfile is written again");
            }
            *healthy = Some(true);
        }
        Err(error) => {
            if *healthy != Some(false) {
                tracing::error!(
                    path,
                    error = %lfleet_types::ErrorChain(&error),
                    "cannot write the metrics textfile for node_exporter (does its directory exist?); retrying every collection"
                );
            }
            *healthy = Some(false);
        }
    }
}

/// A fresh shared state for the endpoint.
pub fn shared_metrics() -> SharedMetrics {
    Arc::new(Mutex::new(MetricsState::default()))
}

/// The running agent's control socket, under the node root.
pub const CONTROL_SOCKET: &str = "run/lfleet/agent.sock";

/// Checks a kernel release named in a request: what a kernel package names itself.
pub fn kernel_request(kernel: &str) -> Result<(), String> {
    let good = !kernel.is_empty()
        && kernel.len() <= 128
        && kernel.starts_with(|c: char| c.is_ascii_digit())
        && kernel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c));
    if good {
        Ok(())
    } else {
        Err(format!("{kernel:?} is not a kernel release"))
    }
}

/// Serves the control socket: `kernel-installed KVER` asks for a pass now (the new kernel's
/// client is installed by it, waiting for the package lock as long as it takes) and is
/// answered at once.
async fn serve_control(listener: lfleet_host::ControlListener, reconciler: ReconcilerHandle) {
    loop {
        let request = match listener.accept().await {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(error = %lfleet_types::ErrorChain(&error), "control socket");
                return;
            }
        };
        let answer = match request.line.split_once(' ') {
            Some(("kernel-installed", kernel)) => match kernel_request(kernel) {
                Ok(()) => {
                    tracing::info!(kernel, "a new kernel was installed; reconciling");
                    reconciler.nudge();
                    format!("ok: the running agent installs the client for kernel {kernel}")
                }
                Err(why) => format!("error: {why}"),
            },
            _ => "error: unknown request".to_owned(),
        };
        request.reply(&answer).await;
    }
}

/// Everything `lfleet-agent run` starts, and how.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub daemon: DaemonOptions,
    pub reconciler: ReconcilerOptions,
    /// The desired state is known (a file without a coordinator, or the ledger). False while
    /// a coordinator-managed node waits for its first push: nothing is reconciled before it.
    pub desired_loaded: bool,
    /// The node can be managed (preflight passed); otherwise only checks and telemetry run.
    pub manageable: bool,
    /// The longest READY waits for the first pass (systemd's start timeout is 900 s; a DKMS
    /// build may take longer and goes on after READY).
    pub ready_wait: Duration,
}

/// Runs the long-running agent until `stop` turns true: the reconciler, the checks and
/// telemetry loops, the optional Prometheus endpoint and, with `[coordinator]`, the session.
/// READY is told to systemd once the first pass has ended (or `ready_wait` has passed).
pub async fn serve(
    node: &Node,
    config: NodeConfig,
    options: ServeOptions,
    stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let metrics = shared_metrics();
    if let Some(address) = start_metrics(&config, metrics.clone()).await? {
        tracing::info!(%address, "Prometheus endpoint listening");
        println!("metrics listening on {address}");
    }
    let (reconciler, handle, reconciler_events) =
        Reconciler::new(node, config.clone(), options.reconciler.clone());
    let reconciling = options.manageable && options.desired_loaded;
    let ready = {
        let mut status = handle.status();
        let wait = options.ready_wait;
        async move {
            if reconciling {
                let first = status.wait_for(|s| s.passes > 0);
                if tokio::time::timeout(wait, first).await.is_err() {
                    tracing::warn!(
                        ?wait,
                        "the first reconcile pass is still running; READY now"
                    );
                }
            }
            lfleet_host::sd_notify("READY=1");
        }
    };
    let reconciler = async {
        if options.manageable {
            reconciler.run(stopped(stop.clone()), reconciling).await;
        }
    };
    let control = async {
        if !options.manageable {
            return;
        }
        match node.host.bind_control(CONTROL_SOCKET).await {
            Ok(listener) => {
                tokio::select! {
                    _ = serve_control(listener, handle.clone()) => {}
                    _ = stopped(stop.clone()) => {}
                }
            }
            Err(error) => tracing::error!(
                error = %lfleet_types::ErrorChain(&error),
                "no control socket: kernel hooks will install in the background"
            ),
        }
    };
    // The endpoint serves the reconciler's status as it changes.
    let published = {
        let mut status = handle.status();
        let metrics = metrics.clone();
        let mut stop = stop.clone();
        async move {
            if !options.manageable {
                return;
            }
            loop {
                let current = status.borrow_and_update().clone();
                metrics.lock().unwrap_or_else(|e| e.into_inner()).reconcile = Some(current);
                tokio::select! {
                    changed = status.changed() => if changed.is_err() { return },
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    };
    let (config_tx, config_rx) = watch::channel(config.clone());
    let (rounds_tx, rounds_rx) = watch::channel(Default::default());
    let (probes_tx, probes_rx) = mpsc::channel(4);
    let samples = Arc::new(Mutex::new(crate::telemetry::SampleBuffer::new(20_000)));
    let reconciler_status = options.manageable.then(|| handle.status());
    let outputs = match &config.coordinator {
        Some(_) => Outputs {
            rounds: Some(rounds_tx),
            samples: Some(samples.clone()),
            probes: Some(probes_rx),
            reconciler: reconciler_status,
        },
        None => Outputs {
            reconciler: reconciler_status,
            ..Outputs::default()
        },
    };
    let loops = run(
        &node.host,
        config_rx,
        node.runner(),
        node.clock(),
        options.daemon.clone(),
        metrics,
        outputs,
        stopped(stop.clone()),
    );
    let session = async {
        if let Some(policy) = &config.coordinator {
            let link = crate::session::SessionLink {
                rounds: rounds_rx,
                samples,
                config: config_tx,
                reconciler: handle.clone(),
                reconciler_events,
                probes: probes_tx,
            };
            crate::session::run(
                &node.host,
                node.clock(),
                &config,
                policy,
                link,
                stopped(stop.clone()),
            )
            .await;
        }
    };
    tokio::join!(ready, reconciler, control, published, loops, session);
    Ok(())
}
