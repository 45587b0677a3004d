//! `lfleet`: the operators' CLI, a client of the coordinator's FleetService.
//!
//! It talks to the admin socket (root only) by default, or to `--server https://HOST:PORT`
//! with an admin certificate (`--cert`, `--key`, `--ca`). Tables for people, `--json` for
//! scripts.
//!
//! `lfleet nodes [--unhealthy]`, `lfleet node NAME`, `lfleet fs [NAME]`,
//! `lfleet config show|diff FILE|apply FILE`, `lfleet events`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lfleet_host::{Clock, HostRoot, SystemClock};
use lfleet_proto::v1;
use lfleet_proto::v1::fleet_service_client::FleetServiceClient;
use serde_json::json;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

#[derive(Debug, Parser)]
#[command(
    name = "lfleet",
    version,
    about = "See and steer the fleet's Lustre clients."
)]
struct Cli {
    /// The coordinator's admin socket (root only).
    #[arg(long, default_value = "/run/lfleet/coordinator.sock")]
    socket: PathBuf,
    /// Use the coordinator's TLS port instead: https://HOST:PORT.
    #[arg(long)]
    server: Option<String>,
    #[arg(long, requires = "server")]
    cert: Option<PathBuf>,
    #[arg(long, requires = "server")]
    key: Option<PathBuf>,
    #[arg(long, requires = "server")]
    ca: Option<PathBuf>,
    /// JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every node: health, generation, mounts.
    Nodes {
        #[arg(long)]
        unhealthy: bool,
    },
    /// One node in detail.
    Node { name: String },
    /// Filesystems: clients mounted vs expected, throughput.
    Fs { name: Option<String> },
    /// The desired configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// lfleet's drain ledger beside Slurm's view of drained nodes.
    Drains,
    /// Lift a drain lfleet made (recorded with the operator's name).
    Undrain {
        node: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Filesystem incidents (a check failing on a large share of a filesystem's nodes).
    Incidents {
        #[arg(long)]
        open: bool,
    },
    /// The drain policy in force.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Decide and record only ("would drain"), for every check or one.
    DryRun {
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[arg(long, default_value = "")]
        check: String,
    },
    /// Recent fleet events.
    Events {
        /// How far back, in minutes.
        #[arg(long, default_value_t = 60)]
        minutes: i64,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyAction {
    Show,
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    Show,
    Diff { file: PathBuf },
    Apply { file: PathBuf },
}

async fn connect(cli: &Cli) -> Result<FleetServiceClient<Channel>, String> {
    let channel = match &cli.server {
        Some(url) => {
            let read = |path: &Option<PathBuf>, what: &str| -> Result<String, String> {
                let path = path
                    .as_ref()
                    .ok_or_else(|| format!("--server needs --{what}"))?;
                std::path::absolute(path)
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        HostRoot::new("/")
                            .read_to_string(p)
                            .map_err(|e| e.to_string())
                    })
                    .map_err(|e| format!("--{what} {}: {e}", path.display()))
            };
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read(&cli.ca, "ca")?))
                .identity(Identity::from_pem(
                    read(&cli.cert, "cert")?,
                    read(&cli.key, "key")?,
                ));
            Endpoint::from_shared(url.clone())
                .map_err(|e| format!("--server {url}: {e}"))?
                .tls_config(tls)
                .map_err(|e| format!("TLS: {e}"))?
                .connect()
                .await
                .map_err(|e| format!("cannot reach the coordinator at {url}: {e}"))?
        }
        None => {
            let socket = cli.socket.clone();
            Endpoint::from_static("http://admin-socket")
                .connect_with_connector(tower::service_fn(move |_| {
                    let socket = socket.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(socket).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
                .map_err(|e| {
                    format!(
                        "cannot reach the coordinator's admin socket {}: {e}",
                        cli.socket.display()
                    )
                })?
        }
    };
    Ok(FleetServiceClient::new(channel).max_decoding_message_size(lfleet_proto::MAX_MESSAGE_BYTES))
}

fn health_name(health: i32) -> &'static str {
    match v1::Health::try_from(health).unwrap_or_default() {
        v1::Health::Healthy => "healthy",
        v1::Health::Unhealthy => "unhealthy",
        v1::Health::Unknown => "unknown",
        v1::Health::Silent => "silent",
        v1::Health::Unspecified => "-",
    }
}

fn outcome_name(outcome: i32) -> &'static str {
    match v1::Outcome::try_from(outcome).unwrap_or_default() {
        v1::Outcome::Pass => "pass",
        v1::Outcome::Fail => "fail",
        v1::Outcome::Unknown => "unknown",
        v1::Outcome::Unspecified => "-",
    }
}

fn node_json(node: &v1::NodeSummary) -> serde_json::Value {
    json!({
        "name": node.node_name,
        "health": health_name(node.health),
        "connected": node.connected,
        "last_seen_unix_ms": node.last_seen_unix_ms,
        "agent_version": node.agent_version,
        "kernel": node.kernel_release,
        "applied_generation": node.applied_generation,
        "desired_generation": node.desired_generation,
        "conditions": node.conditions.iter().map(|c| json!({
            "check": c.check, "subject": c.subject, "outcome": outcome_name(c.outcome),
            "code": c.code, "detail": c.detail, "since_unix_ms": c.since_unix_ms,
        })).collect::<Vec<_>>(),
        "mounts": node.mounts.iter().map(|m| json!({
            "mount_point": m.mount_point, "source": m.source, "mounted": m.mounted,
            "read_bytes_per_second": m.read_bytes_per_second,
            "write_bytes_per_second": m.write_bytes_per_second,
        })).collect::<Vec<_>>(),
    })
}

fn failing(node: &v1::NodeSummary) -> String {
    let bad: Vec<String> = node
        .conditions
        .iter()
        .filter(|c| c.outcome != v1::Outcome::Pass as i32)
        .map(|c| {
            format!(
                "{} {} {}",
                c.check,
                c.subject,
                if c.code.is_empty() {
                    outcome_name(c.outcome)
                } else {
                    &c.code
                }
            )
        })
        .collect();
    if bad.is_empty() {
        "-".into()
    } else {
        bad.join("; ")
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    let mut client = connect(&cli).await?;
    let call = |status: tonic::Status| format!("{}: {}", status.code(), status.message());
    match &cli.command {
        Command::Nodes { unhealthy } => {
            let nodes = client
                .list_nodes(v1::ListNodesRequest {
                    unhealthy_only: *unhealthy,
                })
                .await
                .map_err(call)?
                .into_inner()
                .nodes;
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&nodes.iter().map(node_json).collect::<Vec<_>>())
                        .unwrap_or_default()
                );
            } else {
                println!(
                    "{:<24} {:<10} {:<9} {:<11} {:<28} PROBLEMS",
                    "NODE", "HEALTH", "GEN", "MOUNTS", "KERNEL"
                );
                for node in &nodes {
                    let mounted = node.mounts.iter().filter(|m| m.mounted).count();
                    println!(
                        "{:<24} {:<10} {:<9} {:<11} {:<28} {}",
                        node.node_name,
                        health_name(node.health),
                        format!("{}/{}", node.applied_generation, node.desired_generation),
                        format!("{mounted}/{}", node.mounts.len()),
                        node.kernel_release,
                        failing(node)
                    );
                }
            }
        }
        Command::Node { name } => {
            let detail = client
                .get_node(v1::GetNodeRequest {
                    node_name: name.clone(),
                })
                .await
                .map_err(call)?
                .into_inner();
            let summary = detail.summary.unwrap_or_default();
            if cli.json {
                let mut value = node_json(&summary);
                value["distro"] = json!(detail.distro);
                value["lustre_client_version"] = json!(detail.lustre_client_version);
                value["items"] = json!(detail.items.iter().map(|i| json!({"kind": i.kind, "id": i.id, "ok": i.ok, "error_class": i.error_class, "message": i.message})).collect::<Vec<_>>());
                value["events"] = json!(detail.recent_events.iter().map(|e| json!({"at_unix_ms": e.at_unix_ms, "kind": e.kind, "detail": e.detail})).collect::<Vec<_>>());
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            } else {
                println!(
                    "{}  {}  generation {}/{}  kernel {}  {}  client {}",
                    summary.node_name,
                    health_name(summary.health),
                    summary.applied_generation,
                    summary.desired_generation,
                    summary.kernel_release,
                    detail.distro,
                    detail.lustre_client_version
                );
                for c in &summary.conditions {
                    println!(
                        "  {:<8} {:<17} {:<24} {} {}",
                        outcome_name(c.outcome),
                        c.check,
                        c.subject,
                        c.code,
                        c.detail
                    );
                }
                for m in &summary.mounts {
                    println!(
                        "  mount {} {} {} read {:.0} B/s write {:.0} B/s",
                        m.mount_point,
                        m.source,
                        if m.mounted { "mounted" } else { "NOT MOUNTED" },
                        m.read_bytes_per_second,
                        m.write_bytes_per_second
                    );
                }
            }
        }
        Command::Fs { name } => {
            let list = client
                .list_filesystems(v1::ListFilesystemsRequest {
                    name: name.clone().unwrap_or_default(),
                })
                .await
                .map_err(call)?
                .into_inner()
                .filesystems;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&list.iter().map(|f| json!({
                    "name": f.name, "source": f.source, "mount_point": f.mount_point,
                    "clients_expected": f.clients_expected, "clients_mounted": f.clients_mounted,
                    "read_bytes_per_second": f.read_bytes_per_second, "write_bytes_per_second": f.write_bytes_per_second,
                })).collect::<Vec<_>>()).unwrap_or_default());
            } else {
                println!(
                    "{:<16} {:<14} {:<32} {:<9} READ B/s / WRITE B/s",
                    "FILESYSTEM", "MOUNT", "SOURCE", "CLIENTS"
                );
                for f in &list {
                    println!(
                        "{:<16} {:<14} {:<32} {:<9} {:.0} / {:.0}",
                        f.name,
                        f.mount_point,
                        f.source,
                        format!("{}/{}", f.clients_mounted, f.clients_expected),
                        f.read_bytes_per_second,
                        f.write_bytes_per_second
                    );
                }
            }
        }
        Command::Config { action } => match action {
            ConfigAction::Show => {
                let doc = client
                    .get_config(v1::GetConfigRequest {})
                    .await
                    .map_err(call)?
                    .into_inner();
                if cli.json {
                    println!(
                        "{}",
                        json!({"generation": doc.generation, "toml": doc.toml})
                    );
                } else {
                    println!("# generation {}\n{}", doc.generation, doc.toml);
                }
            }
            ConfigAction::Diff { file } | ConfigAction::Apply { file } => {
                let text = std::path::absolute(file)
                    .map_err(|e| e.to_string())
                    .and_then(|path| {
                        HostRoot::new("/")
                            .read_to_string(path)
                            .map_err(|e| e.to_string())
                    })
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                let errors = if matches!(action, ConfigAction::Diff { .. }) {
                    let diff = client
                        .diff_config(v1::DiffConfigRequest { toml: text })
                        .await
                        .map_err(call)?
                        .into_inner();
                    if diff.errors.is_empty() {
                        print!("{}", diff.diff);
                        println!(
                            "nodes affected: {}",
                            if diff.affected_nodes.is_empty() {
                                "none".into()
                            } else {
                                diff.affected_nodes.join(", ")
                            }
                        );
                    }
                    diff.errors
                } else {
                    let applied = client
                        .apply_config(v1::ApplyConfigRequest {
                            toml: text,
                            dry_run: false,
                        })
                        .await
                        .map_err(call)?
                        .into_inner();
                    if applied.errors.is_empty() {
                        println!("applied: generation {}", applied.generation);
                    }
                    applied.errors
                };
                if !errors.is_empty() {
                    for e in &errors {
                        if e.line > 0 {
                            eprintln!(
                                "{}: line {}: {}: {}",
                                file.display(),
                                e.line,
                                e.field,
                                e.message
                            );
                        } else {
                            eprintln!("{}: {}: {}", file.display(), e.field, e.message);
                        }
                    }
                    eprintln!("refused: the running configuration is unchanged");
                    return Ok(ExitCode::from(1));
                }
            }
        },
        Command::Drains => {
            let drains = client
                .list_drains(v1::ListDrainsRequest {})
                .await
                .map_err(call)?
                .into_inner()
                .drains;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&drains.iter().map(|d| json!({
                    "node": d.node_name, "drain_id": d.drain_id, "reason": d.reason, "reason_user": d.reason_user,
                    "slurm_state": d.slurm_state, "by_lfleet": d.by_lfleet, "status": d.status, "check": d.check,
                })).collect::<Vec<_>>()).unwrap_or_default());
            } else {
                println!(
                    "{:<16} {:<10} {:<14} {:<16} {:<8} REASON",
                    "NODE", "LFLEET", "STATUS", "SLURM", "USER"
                );
                for d in &drains {
                    println!(
                        "{:<16} {:<10} {:<14} {:<16} {:<8} {}",
                        d.node_name,
                        if d.by_lfleet { &d.drain_id } else { "-" },
                        d.status,
                        d.slurm_state,
                        d.reason_user,
                        d.reason
                    );
                }
            }
        }
        Command::Undrain { node, note } => {
            let answer = client
                .undrain(v1::UndrainRequest {
                    node_name: node.clone(),
                    operator_note: note.clone(),
                })
                .await
                .map_err(call)?
                .into_inner();
            println!("{}: {}", node, answer.message);
            if !answer.undrained {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Incidents { open } => {
            let incidents = client
                .list_incidents(v1::ListIncidentsRequest { open_only: *open })
                .await
                .map_err(call)?
                .into_inner()
                .incidents;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&incidents.iter().map(|i| json!({
                    "id": i.id, "check": i.check, "filesystem": i.filesystem, "opened_unix_ms": i.opened_unix_ms,
                    "closed_unix_ms": i.closed_unix_ms, "open": i.closed_unix_ms == 0, "nodes": i.affected_nodes,
                })).collect::<Vec<_>>()).unwrap_or_default());
            } else {
                for i in &incidents {
                    println!(
                        "{:<8} {:<18} {:<12} {} nodes: {}",
                        if i.closed_unix_ms == 0 {
                            "OPEN"
                        } else {
                            "closed"
                        },
                        i.check,
                        i.filesystem,
                        i.node_count,
                        i.affected_nodes.join(", ")
                    );
                }
            }
        }
        Command::Policy {
            action: PolicyAction::Show,
        } => {
            let policy = client
                .get_policy(v1::GetPolicyRequest {})
                .await
                .map_err(call)?
                .into_inner();
            if cli.json {
                println!(
                    "{}",
                    json!({"toml": policy.toml, "dry_run": policy.dry_run})
                );
            } else {
                println!("{}", policy.toml);
            }
        }
        Command::DryRun { state, check } => {
            let answer = client
                .set_dry_run(v1::SetDryRunRequest {
                    dry_run: state == "on",
                    check: check.clone(),
                })
                .await
                .map_err(call)?
                .into_inner();
            println!(
                "dry-run {} (global dry-run is {})",
                if check.is_empty() {
                    format!("{state} for every check")
                } else {
                    format!("{state} for {check}")
                },
                if answer.dry_run { "on" } else { "off" }
            );
        }
        Command::Events { minutes } => {
            let since = SystemClock.wall_unix_ms() as i64 - minutes * 60_000;
            let events = client
                .list_events(v1::ListEventsRequest {
                    since_unix_ms: since,
                    limit: 1000,
                })
                .await
                .map_err(call)?
                .into_inner()
                .events;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&events.iter().map(|e| json!({"at_unix_ms": e.at_unix_ms, "node": e.node_name, "kind": e.kind, "detail": e.detail})).collect::<Vec<_>>()).unwrap_or_default());
            } else {
                for e in &events {
                    println!(
                        "{} {:<20} {:<16} {}",
                        e.at_unix_ms,
                        if e.node_name.is_empty() {
                            "-"
                        } else {
                            &e.node_name
                        },
                        e.kind,
                        e.detail
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lfleet: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("lfleet: {message}");
            ExitCode::from(2)
        }
    }
}
