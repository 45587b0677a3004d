//! `lfleet-agent`: the node agent's command line.
//!
//! - `lfleet-agent plan --root DIR [--config FILE] [--json]`: what would change; changes nothing.
//! - `lfleet-agent apply --root DIR [--config FILE] [--json]`: one reconcile pass; exits 1 with
//!   the classified reasons when an item failed, 2 when the configuration or the node cannot
//!   be read (and then nothing was changed).
//!
//! - `lfleet-agent check --root DIR [--config FILE] [--json]`: every health check once; exit
//!   0 healthy, 1 unhealthy, 2 unknown.
//! - `lfleet-agent collect --root DIR [--interval 1s] [--count N] [--json]`: telemetry samples.
//! - `lfleet-agent run --root DIR [--config FILE]`: the long-running agent (checks, telemetry,
//!   the optional Prometheus endpoint) until SIGTERM.
//!
//! - `lfleet-agent kernel-installed KVER`: the kernel hooks' call; installs that kernel's client.
//! - `lfleet-agent lnet-up`: lfleet-lnet.service's call; brings LNet up as configured.
//!
//! Without `--config` (or when the file is absent) the agent uses its ledger: the last
//! configuration it accepted.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use lfleet_agent::node::{Node, NodeOptions};
use lfleet_agent::precedence::{Access, config_path, load};
use lfleet_agent::reconcile::{Mode, Report, reconcile};
use lfleet_types::ErrorChain;

#[derive(Debug, Parser)]
#[command(
    name = "lfleet-agent",
    version,
    about = "Keeps this node's Lustre client installed, configured, mounted and healthy."
)]
struct Cli {
    /// Also write JSON logs to daily files in this directory.
    #[arg(long, global = true)]
    log_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what a reconcile pass would change, changing nothing.
    Plan(PassArgs),
    /// Run one reconcile pass and exit.
    Apply(PassArgs),
    /// Make sure a newly installed kernel has its Lustre client (run by the kernel hooks).
    KernelInstalled {
        /// The kernel release that was installed.
        kernel: String,
        /// Install in this process, waiting for the package lock (what a hook starts in the
        /// background when no agent runs); without it, hand the kernel over and return.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        args: PassArgs,
    },
    /// Bring LNet up from the accepted configuration (run by lfleet-lnet.service at boot).
    LnetUp(PassArgs),
    /// Run every health check once: exit 0 healthy, 1 unhealthy, 2 unknown.
    Check(CheckArgs),
    /// Run as the node's agent: checks and telemetry on their intervals, the optional
    /// Prometheus endpoint; until SIGTERM or SIGINT.
    Run(RunArgs),
    /// Print telemetry samples: every source read once per interval.
    Collect(CollectArgs),
    /// The running agent's last check results, running no check (for Slurm's
    /// HealthCheckProgram and NHC): exit 0 healthy, 1 unhealthy, 2 unknown.
    Status(StatusArgs),
    /// statfs and stat one path (the check's killable probe; not for people).
    #[command(hide = true)]
    ProbeStatfs {
        /// Report the stuck thread's wchan and exit 3 when statfs has not returned by then.
        #[arg(long)]
        report_after_ms: Option<u64>,
        path: PathBuf,
    },
}

/// Where the node is and what to record: every subcommand takes these.
#[derive(Debug, Args)]
struct NodeArgs {
    /// The node's root directory (every host path is resolved under it).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Redirect /proc to this directory.
    #[arg(long)]
    procfs: Option<PathBuf>,
    /// Redirect /sys to this directory.
    #[arg(long)]
    sysfs: Option<PathBuf>,
    /// Append every command the agent runs to this file.
    #[arg(long)]
    command_log: Option<PathBuf>,
}

impl NodeArgs {
    fn options(&self) -> NodeOptions {
        NodeOptions {
            root: self.root.clone(),
            procfs: self.procfs.clone(),
            sysfs: self.sysfs.clone(),
            command_log: self.command_log.clone(),
        }
    }
}

#[derive(Debug, Args)]
struct PassArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The desired configuration (default /etc/lfleet/agent.toml under --root; the ledger when absent).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    pass: PassArgs,
    /// Seconds a statfs or stat of a mount may take before it is reported hung.
    #[arg(long, default_value_t = 5.0)]
    syscall_deadline: f64,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The desired configuration (default /etc/lfleet/agent.toml under --root; the ledger when absent).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seconds a statfs or stat of a mount may take before it is reported hung.
    #[arg(long, default_value_t = 5.0)]
    syscall_deadline: f64,
    /// Time between check runs.
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    check_interval: std::time::Duration,
    /// Time between telemetry cycles.
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    collect_interval: std::time::Duration,
    /// Time between reconcile passes when nothing else asks for one (default: the
    /// configuration's `resync_seconds`, 60).
    #[arg(long, value_parser = parse_interval)]
    resync_interval: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The node's root directory.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Checks whose failure makes the node unhealthy (comma-separated; default: the
    /// coordinator's default for compute nodes).
    #[arg(long, value_delimiter = ',', default_values_t = lfleet_agent::status::DEFAULT_REQUIRED.map(String::from))]
    require: Vec<String>,
    /// Failure codes that never make the node unhealthy (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = lfleet_agent::status::DEFAULT_IGNORED_CODES.map(String::from))]
    ignore_code: Vec<String>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CollectArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Time between cycles: `1s`, `500ms`, `2m` (seconds when no unit).
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    interval: std::time::Duration,
    /// Stop after this many cycles (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
    /// Seconds between capacity reads (they cost the servers a statfs RPC).
    #[arg(long, default_value_t = 60)]
    capacity_interval: u64,
    /// One JSON object per sample per line.
    #[arg(long)]
    json: bool,
}

/// `1s`, `500ms`, `2m`, `1.5` (seconds): from 10 ms to one day.
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an interval such as 1s, 500ms or 2m"))?;
    let seconds = value * scale;
    if !(0.01..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?} is outside 10ms to 24h"));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// The long-running agent.
async fn run_daemon(args: RunArgs) -> ExitCode {
    use lfleet_agent::daemon::{DaemonOptions, ServeOptions, serve};
    use lfleet_agent::precedence::Source;
    use lfleet_agent::reconciler::ReconcilerOptions;
    use std::time::Duration;
    let node = Node::build(&args.node.options());
    let host = &node.host;
    // Nothing is written to a node lfleet cannot manage, not even the ledger: such a node
    // still runs its checks and telemetry from the file as it is.
    let manageable = match lfleet_agent::reconcile::preflight(host) {
        Ok(_) => true,
        Err(error) => {
            tracing::error!(error = %ErrorChain(&error), "this node cannot be managed");
            false
        }
    };
    let access = if manageable {
        Access::Accept
    } else {
        Access::ReadOnly
    };
    let loaded = match config_path(host.root(), args.config.as_deref())
        .and_then(|path| load(host, &path, access))
    {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("lfleet-agent: {}", ErrorChain(&error));
            return ExitCode::from(2);
        }
    };
    let config = loaded.config;
    // A coordinator-managed node whose coordinator has never spoken has no desired state.
    let desired_loaded = config.coordinator.is_none() || loaded.source != Source::File;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        root = %args.node.root.display(),
        generation = config.generation.get(),
        coordinator = config.coordinator.as_ref().map(|c| c.url.as_str()).unwrap_or("none"),
        desired_loaded,
        "lfleet-agent run starting"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = terminate => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = stop_tx.send(true);
    });
    let options = ServeOptions {
        daemon: DaemonOptions {
            check_interval: args.check_interval,
            collect_interval: args.collect_interval,
            syscall_deadline: Duration::from_secs_f64(args.syscall_deadline.clamp(0.1, 600.0)),
        },
        reconciler: ReconcilerOptions {
            resync: args
                .resync_interval
                .unwrap_or(Duration::from_secs(config.resync_seconds)),
            retry_max: config.retry_max_seconds.map(Duration::from_secs),
        },
        desired_loaded,
        manageable,
        ready_wait: Duration::from_secs(600),
    };
    match serve(&node, config, options, stop_rx).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lfleet-agent: {message}");
            ExitCode::from(2)
        }
    }
}

/// Runs the collectors every interval and prints what they find.
async fn collect(args: CollectArgs) -> ExitCode {
    use lfleet_agent::collect::{CollectOptions, Collector};
    let node = Node::build(&args.node.options());
    let options = CollectOptions {
        capacity_interval: std::time::Duration::from_secs(args.capacity_interval.max(1)),
        ..CollectOptions::default()
    };
    let mut collector = Collector::new(node.host.clone(), options, node.clock());
    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut done = 0u64;
    while args.count.is_none_or(|count| done < count) {
        ticker.tick().await;
        collector.cycle(node.runner(), node.clock(), &[]).await;
        done += 1;
        for sample in collector.buffer.take(usize::MAX) {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&sample).expect("samples serialize")
                );
            } else {
                let mut line = format!(
                    "{:>6} {:<8} {:<24}",
                    sample.seq, sample.collector, sample.subject
                );
                if let Some(why) = &sample.unavailable {
                    line.push_str(&format!(" unavailable: {why}"));
                }
                for (name, value) in &sample.values {
                    line.push_str(&format!(" {name}={value}"));
                }
                for (name, value) in &sample.labels {
                    line.push_str(&format!(" {name}={value}"));
                }
                for flag in &sample.flags {
                    line.push_str(&format!(" [{flag}]"));
                }
                println!("{}", line.trim_end());
            }
        }
    }
    ExitCode::SUCCESS
}

/// What a command does with the node.
#[derive(Debug, Clone)]
enum Job {
    Pass(Mode),
    Kernel(String),
    Lnet,
}

fn print(report: &Report, json: bool, mode: Mode) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("report serializes")
        );
        return;
    }
    let verb = if mode == Mode::Plan { "would" } else { "did" };
    if report.changes.is_empty() {
        println!("no changes");
    }
    for change in &report.changes {
        println!("{verb}: {change}");
    }
    for item in report.items.iter().filter(|item| !item.result.ok()) {
        let result = &item.result;
        println!(
            "FAILED {} {}: {} ({})",
            result.kind,
            result.id,
            result.message,
            result.failure.map(|c| c.code()).unwrap_or_default()
        );
        if let Some(follow_up) = &item.follow_up {
            let dkms = if follow_up.dkms_tried {
                "DKMS tried; "
            } else {
                ""
            };
            println!("       follow-up: {dkms}{}", follow_up.text);
        }
    }
    for finding in &report.findings {
        println!("{finding}");
    }
}

async fn run(args: PassArgs, job: Job) -> ExitCode {
    let mode = match job {
        Job::Pass(mode) => mode,
        Job::Kernel(_) | Job::Lnet => Mode::Apply,
    };
    let node = Node::build(&args.node.options());
    // Nothing is written to a node lfleet cannot manage, not even the ledger.
    if let Err(error) = lfleet_agent::reconcile::preflight(&node.host) {
        eprintln!("lfleet-agent: {}", ErrorChain(&error));
        return ExitCode::from(2);
    }
    let access = match mode {
        Mode::Plan => Access::ReadOnly,
        Mode::Apply => Access::Accept,
    };
    let config = match config_path(node.host.root(), args.config.as_deref())
        .and_then(|path| load(&node.host, &path, access))
    {
        Ok(loaded) => loaded.config,
        Err(error) => {
            eprintln!("lfleet-agent: {}", ErrorChain(&error));
            return ExitCode::from(2);
        }
    };
    let result = match &job {
        Job::Pass(mode) => reconcile(node.handle(), &config, *mode).await,
        Job::Kernel(kernel) => {
            lfleet_agent::reconcile::install_new_kernel(
                node.handle(),
                &config,
                kernel,
                std::time::Duration::from_secs(3600),
            )
            .await
        }
        Job::Lnet => lfleet_agent::reconcile::lnet_up(node.handle(), &config).await,
    };
    match result {
        Ok(report) => {
            print(&report, args.json, mode);
            if report.failed().next().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("lfleet-agent: {}", ErrorChain(&error));
            ExitCode::from(2)
        }
    }
}

/// Prints the running agent's verdict from its last results; runs no check.
fn status(args: StatusArgs) -> ExitCode {
    use lfleet_agent::status::{Verdict, judge, read};
    let node = Node::build(&NodeOptions {
        root: args.root.clone(),
        ..NodeOptions::default()
    });
    let file = match read(&node.host) {
        Ok(file) => file,
        Err(message) => {
            println!("UNKNOWN lfleet-agent: {message}");
            return ExitCode::from(2);
        }
    };
    let verdict = judge(
        file.as_ref(),
        node.clock().wall_unix_ms(),
        &args.require,
        &args.ignore_code,
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "verdict": match &verdict {
                    Verdict::Healthy => "healthy",
                    Verdict::Unhealthy(_) => "unhealthy",
                    Verdict::Unknown(_) => "unknown",
                },
                "status": file,
            })
        );
    } else {
        match &verdict {
            Verdict::Healthy => println!("OK lfleet-agent: healthy"),
            Verdict::Unhealthy(failures) => {
                for failure in failures {
                    println!("FAIL lfleet-agent: {failure}");
                }
            }
            Verdict::Unknown(why) => println!("UNKNOWN lfleet-agent: {why}"),
        }
    }
    ExitCode::from(verdict.exit_code())
}

/// The kernel hooks' call: hands the new kernel to the running agent, or starts a background
/// `kernel-installed --wait` that installs its client once the package lock is free, and
/// returns at once either way: the hook runs inside the kernel package's own installation,
/// which holds the package lock until the hook returns.
async fn kernel_installed(args: PassArgs, kernel: String) -> ExitCode {
    use lfleet_agent::daemon::{CONTROL_SOCKET, kernel_request};
    let node = Node::build(&args.node.options());
    if let Err(error) = kernel_request(&kernel) {
        eprintln!("lfleet-agent: {error}");
        return ExitCode::from(2);
    }
    if let Err(error) = lfleet_agent::reconcile::preflight(&node.host) {
        eprintln!("lfleet-agent: {}", ErrorChain(&error));
        return ExitCode::from(2);
    }
    let line = format!("kernel-installed {kernel}");
    match lfleet_host::control_request(
        &node.host,
        CONTROL_SOCKET,
        &line,
        std::time::Duration::from_secs(2),
    )
    .await
    {
        Ok(answer) if answer.starts_with("ok") => {
            println!("lfleet-agent: {answer}");
            return ExitCode::SUCCESS;
        }
        Ok(answer) => {
            eprintln!("lfleet-agent: the running agent refused: {answer}");
            return ExitCode::from(2);
        }
        Err(error) => tracing::info!(
            error = %ErrorChain(&error),
            "no running agent answered; installing in the background"
        ),
    }
    let program = match own_executable() {
        Ok(program) => program,
        Err(code) => return code,
    };
    let mut background: Vec<std::ffi::OsString> = vec![
        "kernel-installed".into(),
        "--wait".into(),
        kernel.clone().into(),
        "--root".into(),
        args.node.root.clone().into(),
    ];
    for (flag, value) in [
        ("--procfs", &args.node.procfs),
        ("--sysfs", &args.node.sysfs),
        ("--command-log", &args.node.command_log),
        ("--config", &args.config),
    ] {
        if let Some(value) = value {
            let value = std::path::absolute(value).unwrap_or_else(|_| value.clone());
            background.push(flag.into());
            background.push(value.into());
        }
    }
    match lfleet_host::spawn_detached(&program, &background, &[]) {
        Ok(pid) => {
            println!(
                "lfleet-agent: no running agent; lfleet-agent (pid {pid}) installs the client for kernel {kernel} once the package lock is free"
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "lfleet-agent: cannot start the background install: {}",
                ErrorChain(&error)
            );
            ExitCode::from(2)
        }
    }
}

/// This program's path, for the children it starts (probes, a background install).
fn own_executable() -> Result<PathBuf, ExitCode> {
    std::env::current_exe().map_err(|error| {
        eprintln!(
            "lfleet-agent: cannot find its own executable: {}",
            ErrorChain(&error)
        );
        ExitCode::from(2)
    })
}

/// Runs every check once and prints one line per result (or JSON).
async fn check(args: CheckArgs) -> ExitCode {
    use lfleet_agent::checks::{CheckContext, Outcome, run_all};
    let node = Node::build(&args.pass.node.options());
    let host = &node.host;
    let config = match config_path(host.root(), args.pass.config.as_deref())
        .and_then(|path| load(host, &path, Access::ReadOnly))
    {
        Ok(loaded) => loaded.config,
        Err(error) => {
            eprintln!("lfleet-agent: {}", ErrorChain(&error));
            return ExitCode::from(2);
        }
    };
    let memory = std::sync::Mutex::new(lfleet_agent::checks::CheckMemory::load(host));
    // A one-shot check probes in a child process killed at the deadline, so this command
    // exits even when the kernel keeps a probe of a hung mount blocked.
    let program = match own_executable() {
        Ok(program) => program,
        Err(code) => return code,
    };
    let context = CheckContext {
        host,
        runner: node.runner(),
        clock: node.clock(),
        config: &config,
        prober: lfleet_agent::checks::Prober::Process(&program),
        syscall_deadline: std::time::Duration::from_secs_f64(
            args.syscall_deadline.clamp(0.1, 600.0),
        ),
        memory: &memory,
        converging: false,
        readings: None,
        repeat_steady_for: None,
    };
    let results = run_all(context, std::time::Duration::from_secs(30)).await;
    let mut memory = memory.into_inner().unwrap_or_else(|e| e.into_inner());
    let events = std::mem::take(&mut memory.events);
    if let Err(error) = memory.save(host) {
        eprintln!(
            "lfleet-agent: cannot save the check memory ({}): {}",
            lfleet_agent::checks::memory::MEMORY_PATH,
            ErrorChain(&error)
        );
    }
    if args.pass.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "results": results,
                "events": events,
            }))
            .expect("results serialize")
        );
    } else {
        for event in &events {
            println!(
                "EVENT   {:<17} {} {}",
                event.kind.as_str(),
                event.subject,
                event.detail
            );
        }
        for result in &results {
            let (verdict, text) = match result.outcome {
                Outcome::Pass => ("PASS", String::new()),
                Outcome::Fail => ("FAIL", format!(" {}: {}", result.code, result.detail)),
                Outcome::Unknown => ("UNKNOWN", format!(" {}", result.detail)),
            };
            println!(
                "{verdict:<7} {:<17} {}{text}",
                result.check.as_str(),
                result.subject
            );
        }
    }
    let failed = results.iter().any(|r| r.outcome == Outcome::Fail);
    let unknown = results.iter().any(|r| r.outcome == Outcome::Unknown);
    // The process may exit while a hung statfs thread is still blocked; it is not waited for.
    if failed {
        ExitCode::from(1)
    } else if unknown {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// The one-shot check's probe child: 0 answered, 1 failed, 3 still blocked (with its wchan).
fn probe_statfs(path: &std::path::Path, report_after_ms: Option<u64>) -> ExitCode {
    use std::io::Write;
    let wait = std::time::Duration::from_millis(report_after_ms.unwrap_or(u64::MAX / 2));
    match lfleet_host::probe_reporting_wchan(path, wait) {
        lfleet_host::Probe::Done(Ok(_)) => ExitCode::SUCCESS,
        lfleet_host::Probe::Done(Err((path, error))) => {
            eprintln!("statfs {}: {error}", path.display());
            ExitCode::from(1)
        }
        lfleet_host::Probe::Stuck { wchan } => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "stuck");
            if let Some(wchan) = wchan {
                let _ = writeln!(stdout, "wchan {wchan}");
            }
            let _ = stdout.flush();
            // Exit now; the blocked thread ends when the kernel lets it go.
            std::process::exit(i32::from(
                lfleet_agent::checks::mount_responsive::PROBE_STUCK_EXIT,
            ))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _logs = lfleet_host::init_logging("lfleet-agent", "warn", cli.log_dir.as_deref());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!(
                "lfleet-agent: cannot start the runtime: {}",
                ErrorChain(&error)
            );
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Plan(args) => runtime.block_on(run(args, Job::Pass(Mode::Plan))),
        Command::Apply(args) => runtime.block_on(run(args, Job::Pass(Mode::Apply))),
        Command::KernelInstalled {
            kernel,
            wait: true,
            args,
        } => runtime.block_on(run(args, Job::Kernel(kernel))),
        Command::KernelInstalled {
            kernel,
            wait: false,
            args,
        } => runtime.block_on(kernel_installed(args, kernel)),
        Command::LnetUp(args) => runtime.block_on(run(args, Job::Lnet)),
        Command::Check(args) => runtime.block_on(check(args)),
        Command::Collect(args) => runtime.block_on(collect(args)),
        Command::Status(args) => status(args),
        Command::Run(args) => runtime.block_on(run_daemon(args)),
        Command::ProbeStatfs {
            report_after_ms,
            path,
        } => probe_statfs(&path, report_after_ms),
    }
}
