//! `lfleet`: the operators' CLI, a client of the coordinator's FleetService.
//!
//! It talks to the admin socket (root only) by default, or to `--server https://HOST:PORT`
//! with an admin certificate (`--cert`, `--key`, `--ca`). Tables for people, `--json` for
//! scripts: the serde form of the domain views, which `lfleet_proto::convert` builds from
//! the answers (node-supplied text arrives escaped, so nothing a node writes can drive the
//! terminal). Output is written at the end in one go; a closed pipe ends it quietly.
//!
//! `lfleet nodes [--unhealthy]`, `lfleet node NAME [reconcile|remount MOUNT|probe]`,
//! `lfleet fs [NAME]`, `lfleet config show|diff FILE|apply FILE`, `lfleet events`,
//! `lfleet upgrade plan|start|status|pause|resume|abort`. A node
//! command waits for the agent's result (`--wait`) and exits 0 when it succeeded, 1 when it
//! failed or was refused, 2 when no result came in time.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use lfleet_coordinator::render;
use lfleet_host::{Clock, HostRoot, SystemClock};
use lfleet_proto::v1;
use lfleet_proto::v1::fleet_service_client::FleetServiceClient;
use lfleet_types::ErrorChain;
use lfleet_types::fleet::{
    DrainRecord, FilesystemSummary, FleetEvent, IncidentView, NodeDetail, NodeSummary,
};
use lfleet_types::{AgentCommand, CommandRequest};
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
    /// With --server: the operator certificate (from `lfleet-coordinator admin-cert`).
    #[arg(long, requires = "server")]
    cert: Option<PathBuf>,
    /// With --server: the operator certificate's key.
    #[arg(long, requires = "server")]
    key: Option<PathBuf>,
    /// With --server: the coordinator's CA certificate.
    #[arg(long, requires = "server")]
    ca: Option<PathBuf>,
    /// JSON instead of tables: raw numbers (bytes per second, Unix milliseconds).
    #[arg(long, global = true)]
    json: bool,
    /// Show times in UTC instead of the local zone.
    #[arg(long, global = true)]
    utc: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every node: health, generation, mounts, last report, problems.
    Nodes {
        /// Only nodes that are not healthy (same as --state unhealthy,unknown,silent,...).
        #[arg(long)]
        unhealthy: bool,
        /// Only nodes in these states.
        #[arg(long, value_delimiter = ',', value_parser = ["healthy", "unhealthy", "unknown", "silent", "powered-down"])]
        state: Vec<String>,
    },
    /// One node in detail (`node NAME`); a command to its agent (`node NAME reconcile`,
    /// `node NAME remount MOUNT`, `node NAME probe`: waits for the agent's result); or release
    /// a node's name (`node remove NAME`: its certificate is refused from then on) or only its
    /// key (`node rekey NAME`: a reimaged VM may enroll again).
    Node {
        /// NAME [reconcile | remount MOUNT | probe], or `remove NAME`, or `rekey NAME`.
        #[arg(
            num_args = 1..=3,
            value_name = "WORDS"
        )]
        words: Vec<String>,
        /// How long a command waits for the agent's result, in seconds.
        #[arg(long, default_value_t = 300)]
        wait: u64,
    },
    /// The join token.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Issued certificates: every node's key binding and every operator certificate, with
    /// expiry and state.
    Certs,
    /// Operator certificates.
    AdminCert {
        #[command(subcommand)]
        action: AdminCertAction,
    },
    /// Filesystems: clients mounted vs expected, throughput, import states.
    Fs {
        /// One filesystem (its name in coordinator.toml); all when absent.
        name: Option<String>,
    },
    /// The desired configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// lfleet's drain ledger beside Slurm's view of drained nodes.
    Drains,
    /// Lift a drain lfleet made (recorded with the operator's name).
    Undrain {
        /// The node (its lfleet name).
        node: String,
        /// Why, for the record.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Filesystem incidents (a check failing on a large share of a filesystem's nodes).
    Incidents {
        /// Only incidents not closed yet.
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
        /// on: record "would drain" only; off: drain for real.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// One check only (e.g. ib.ports); every check when absent.
        #[arg(long, default_value = "")]
        check: String,
    },
    /// Client upgrades in waves: drain, wait for jobs to end, install, reload or reboot,
    /// check, undrain (docs/upgrades.md).
    Upgrade {
        #[command(subcommand)]
        action: UpgradeAction,
    },
    /// Recent fleet events.
    Events {
        /// How far back, in minutes.
        #[arg(long, default_value_t = 60)]
        minutes: i64,
    },
    /// Print shell completions for lfleet (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print lfleet's man page (roff).
    Man,
}

#[derive(Debug, clap::Args)]
struct UpgradeArgs {
    /// The client version, as AMLFS names its packages (2.16.1-12-g8e3f1a2).
    #[arg(long)]
    client: String,
    /// Only these nodes: a Slurm host list (n[1-8],login1); head and login nodes only when
    /// named.
    #[arg(long, default_value = "")]
    nodes: String,
    /// Nodes out at once: a count (4) or a share of the eligible nodes (10%).
    #[arg(long, default_value = "1")]
    wave: String,
    /// Pause by itself when this many nodes failed.
    #[arg(long, default_value_t = 1)]
    max_failures: u32,
}

#[derive(Debug, Subcommand)]
enum UpgradeAction {
    /// The waves a rollout would run and the nodes it would skip, with why; changes nothing.
    Plan(UpgradeArgs),
    /// Start a rollout (one at a time).
    Start {
        #[command(flatten)]
        args: UpgradeArgs,
        /// Never reboot: a node whose old module cannot be unloaded fails (reboot-required).
        #[arg(long)]
        no_reboot: bool,
        /// Seconds a node may take from its new configuration (or its reboot) to a healthy
        /// report before it fails.
        #[arg(long, default_value_t = 1800)]
        step_timeout: u32,
    },
    /// Progress per wave and per node.
    Status,
    /// Start no more nodes; nodes in a step finish it.
    Pause,
    /// Go on; failed nodes are tried again.
    Resume,
    /// Stop after the current steps; the rest stays untouched.
    Abort,
}

#[derive(Debug, Subcommand)]
enum PolicyAction {
    /// The policy TOML in force, with the operator's dry-run switches.
    Show,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Replace the join token: the new one is printed once and written to the coordinator's
    /// token file; the old one is refused from now on; enrolled nodes are not affected.
    Rotate {
        /// How long it is valid: `30m`, `12h`, `7d` (default: no expiry).
        #[arg(long, value_parser = parse_duration_seconds)]
        expires: Option<i64>,
        /// Nodes enrolling with it get this role (head, compute, login).
        #[arg(long)]
        role: Option<String>,
        /// Only these nodes may enroll with it: a Slurm host list (`hpc-pg0-[1-100]`).
        #[arg(long, default_value = "")]
        nodes: String,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCertAction {
    /// Refuse every certificate issued to this operator so far.
    Revoke {
        /// The operator's name (as given to `lfleet-coordinator admin-cert`).
        name: String,
    },
}

/// The wire request of `upgrade plan|start`.
fn upgrade_request(
    args: &UpgradeArgs,
    start: bool,
    no_reboot: bool,
    step_timeout_seconds: u32,
) -> v1::UpgradeRequest {
    v1::UpgradeRequest {
        client: args.client.clone(),
        nodes: args.nodes.clone(),
        wave: args.wave.clone(),
        max_failures: args.max_failures,
        start,
        no_reboot,
        step_timeout_seconds,
    }
}

/// `30m`, `12h`, `7d`, `90s`: seconds.
fn parse_duration_seconds(text: &str) -> Result<i64, String> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: give a number with s, m, h or d")),
    };
    number
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * scale)
        .ok_or_else(|| format!("{text:?}: give a positive number with s, m, h or d"))
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// The running configuration and its generation.
    Show,
    /// The difference from the running configuration and the nodes it would change.
    Diff {
        /// A coordinator.toml (its [server], [slurm], [policy] are not compared).
        file: PathBuf,
    },
    /// Make a file the running configuration (a new generation, pushed to every node).
    Apply {
        /// A coordinator.toml (its [server], [slurm], [policy] are ignored).
        file: PathBuf,
        /// Seconds to wait for the connected nodes' answers (exit 1 if any refuses).
        #[arg(long, default_value_t = 10)]
        wait: u32,
    },
}

async fn connect(cli: &Cli) -> Result<FleetServiceClient<Channel>, String> {
    let channel = match &cli.server {
        Some(url) => {
            let read = |path: &Option<PathBuf>, what: &str| -> Result<String, String> {
                let path = path
                    .as_ref()
                    .ok_or_else(|| format!("--server needs --{what}"))?;
                std::path::absolute(path)
                    .map_err(|e| lfleet_types::error_chain(&e))
                    .and_then(|p| {
                        HostRoot::new("/")
                            .read_to_string(p)
                            .map_err(|e| lfleet_types::error_chain(&e))
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

/// Everything the command prints, written at the end in one go; a reader that went away
/// (`lfleet nodes | head -1`) ends the command quietly.
#[derive(Debug, Default)]
struct Output(String);

impl Output {
    fn line(&mut self, text: impl std::fmt::Display) {
        self.0.push_str(&text.to_string());
        self.0.push('\n');
    }

    fn json(&mut self, value: &impl serde::Serialize) {
        self.line(serde_json::to_string_pretty(value).unwrap_or_default());
    }

    fn write(self) {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(self.0.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(error) => eprintln!("lfleet: cannot write the output: {error}"),
        }
    }
}

fn summaries(nodes: &[v1::NodeSummary]) -> Result<Vec<NodeSummary>, String> {
    nodes
        .iter()
        .map(|n| NodeSummary::try_from(n).map_err(|e| format!("the coordinator sent {e}")))
        .collect()
}

async fn run(cli: Cli, out: &mut Output) -> Result<ExitCode, String> {
    let style = render::Style {
        now_ms: SystemClock.wall_unix_ms() as i64,
        zone: if cli.utc {
            render::Zone::Fixed(0)
        } else {
            render::Zone::Local
        },
        width: comfy_table::Table::new().width(),
    };
    let mut client = connect(&cli).await?;
    let call = |status: tonic::Status| format!("{}: {}", status.code(), status.message());
    match &cli.command {
        Command::Nodes { unhealthy, state } => {
            let nodes = client
                .list_nodes(v1::ListNodesRequest {
                    unhealthy_only: *unhealthy,
                })
                .await
                .map_err(call)?
                .into_inner()
                .nodes;
            let mut nodes = summaries(&nodes)?;
            if !state.is_empty() {
                nodes.retain(|n| state.iter().any(|s| s == n.health.as_str()));
            }
            if cli.json {
                out.json(&nodes);
            } else {
                out.0.push_str(&render::nodes(&nodes, &style));
            }
        }
        Command::Node { words, .. }
            if words.len() == 2 && ["remove", "rekey"].contains(&words[0].as_str()) =>
        {
            let rekey_only = match words[0].as_str() {
                "remove" => false,
                "rekey" => true,
                other => {
                    return Err(format!(
                        "lfleet node {other} {}: the action is remove or rekey",
                        words[1]
                    ));
                }
            };
            let answer = client
                .remove_node(v1::RemoveNodeRequest {
                    node_name: words[1].clone(),
                    rekey_only,
                })
                .await
                .map_err(call)?
                .into_inner();
            out.line(lfleet_types::safe_text(&answer.message, 1024));
        }
        Command::Node { words, wait } if words.len() > 1 => {
            let name = &words[0];
            let command = match (words[1].as_str(), words.get(2)) {
                ("reconcile", None) => AgentCommand::ReconcileNow,
                ("probe", None) => AgentCommand::ProbeNow,
                ("remount", Some(mount_point)) => AgentCommand::Remount {
                    mount_point: mount_point
                        .parse()
                        .map_err(|e: lfleet_types::SpecError| e.to_string())?,
                },
                _ => {
                    return Err(format!(
                        "lfleet node {}: the command is reconcile, remount MOUNT or probe",
                        words.join(" ")
                    ));
                }
            };
            let sent_at = SystemClock.wall_unix_ms() as i64 - 1000;
            let command_id = client
                .send_command(v1::SendCommandRequest {
                    node_name: name.clone(),
                    command: Some(v1::Command::from(&CommandRequest {
                        id: String::new(),
                        command,
                    })),
                })
                .await
                .map_err(call)?
                .into_inner()
                .command_id;
            let result = wait_for_result(&mut client, name, &command_id, sent_at, *wait)
                .await
                .map_err(call)?;
            let (code, ok, message) = match &result {
                Some((ok, message)) => (if *ok { 0 } else { 1 }, Some(*ok), message.clone()),
                None => (
                    2,
                    None,
                    format!("no result within {wait} s; it may still come: see `lfleet events`"),
                ),
            };
            if cli.json {
                out.json(&serde_json::json!({
                    "node": name,
                    "command_id": command_id,
                    "ok": ok,
                    "message": message,
                }));
            } else {
                let verdict = match ok {
                    Some(true) => "ok",
                    Some(false) => "FAILED",
                    None => "no result",
                };
                out.line(format!("{name} {command_id} {verdict}: {message}"));
            }
            return Ok(ExitCode::from(code));
        }
        Command::Node { words, .. } => {
            let name = &words[0];
            let detail = client
                .get_node(v1::GetNodeRequest {
                    node_name: name.clone(),
                })
                .await
                .map_err(call)?
                .into_inner();
            let detail =
                NodeDetail::try_from(&detail).map_err(|e| format!("the coordinator sent {e}"))?;
            if cli.json {
                out.json(&detail);
            } else {
                out.0.push_str(&render::node(&detail, &style));
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
            let list: Vec<FilesystemSummary> = list.iter().map(FilesystemSummary::from).collect();
            if cli.json {
                out.json(&list);
            } else {
                out.0.push_str(&render::filesystems(&list, &style));
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
                    out.json(&serde_json::json!({"generation": doc.generation, "toml": doc.toml}));
                } else {
                    out.line(format!("# generation {}\n{}", doc.generation, doc.toml));
                }
            }
            ConfigAction::Diff { file } | ConfigAction::Apply { file, .. } => {
                let text = std::path::absolute(file)
                    .map_err(|e| lfleet_types::error_chain(&e))
                    .and_then(|path| {
                        HostRoot::new("/")
                            .read_to_string(path)
                            .map_err(|e| ErrorChain(&e).to_string())
                    })
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                let errors = if matches!(action, ConfigAction::Diff { .. }) {
                    let diff = client
                        .diff_config(v1::DiffConfigRequest { toml: text })
                        .await
                        .map_err(call)?
                        .into_inner();
                    if diff.errors.is_empty() {
                        out.0.push_str(&diff.diff);
                        out.line(format!(
                            "nodes affected: {}",
                            if diff.affected_nodes.is_empty() {
                                "none".into()
                            } else {
                                diff.affected_nodes.join(", ")
                            }
                        ));
                    }
                    diff.errors
                } else {
                    let wait = match action {
                        ConfigAction::Apply { wait, .. } => *wait,
                        _ => 0,
                    };
                    let applied = client
                        .apply_config(v1::ApplyConfigRequest {
                            toml: text,
                            dry_run: false,
                            wait_seconds: wait,
                        })
                        .await
                        .map_err(call)?
                        .into_inner();
                    if applied.errors.is_empty() {
                        out.line(format!("applied: generation {}", applied.generation));
                        let refused: Vec<&v1::NodeAck> =
                            applied.acks.iter().filter(|a| !a.accepted).collect();
                        out.line(format!(
                            "acked by {} of {} connected nodes",
                            applied.acks.len() - refused.len(),
                            applied.acks.len() + applied.unanswered.len()
                        ));
                        for ack in &refused {
                            out.line(format!(
                                "refused by {}: {}: {}",
                                lfleet_types::safe_text(&ack.node_name, 256),
                                lfleet_types::safe_text(&ack.error_class, 64),
                                lfleet_types::safe_text(&ack.message, 1024)
                            ));
                        }
                        if !applied.unanswered.is_empty() {
                            out.line(format!(
                                "no answer within {wait} s from: {}",
                                lfleet_types::safe_text(&applied.unanswered.join(", "), 4096)
                            ));
                        }
                        if !refused.is_empty() {
                            return Ok(ExitCode::from(1));
                        }
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
            let drains: Vec<DrainRecord> = drains.iter().map(DrainRecord::from).collect();
            if cli.json {
                out.json(&drains);
            } else {
                out.0.push_str(&render::drains(&drains, &style));
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
            out.line(format!(
                "{}: {}",
                node,
                lfleet_proto::convert::agent_text(&answer.message, 1024)
            ));
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
            let incidents: Vec<IncidentView> = incidents.iter().map(IncidentView::from).collect();
            if cli.json {
                out.json(&incidents);
            } else {
                out.0.push_str(&render::incidents(&incidents, &style));
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
                out.json(&serde_json::json!({"toml": policy.toml, "dry_run": policy.dry_run}));
            } else {
                out.line(policy.toml);
            }
        }
        Command::Upgrade { action } => {
            let answer = match action {
                UpgradeAction::Plan(args) => {
                    client
                        .plan_upgrade(upgrade_request(args, false, false, 0))
                        .await
                }
                UpgradeAction::Start {
                    args,
                    no_reboot,
                    step_timeout,
                } => {
                    client
                        .plan_upgrade(upgrade_request(args, true, *no_reboot, *step_timeout))
                        .await
                }
                UpgradeAction::Status => client.get_upgrade(v1::GetUpgradeRequest {}).await,
                UpgradeAction::Pause | UpgradeAction::Resume | UpgradeAction::Abort => {
                    let action = match action {
                        UpgradeAction::Pause => "pause",
                        UpgradeAction::Resume => "resume",
                        _ => "abort",
                    };
                    client
                        .control_upgrade(v1::ControlUpgradeRequest {
                            action: action.into(),
                        })
                        .await
                }
            }
            .map_err(call)?
            .into_inner();
            let view = lfleet_types::fleet::UpgradeView::from(&answer);
            if cli.json {
                out.json(&view);
            } else {
                use std::io::IsTerminal;
                let bars = std::io::stdout().is_terminal();
                out.0.push_str(&render::upgrade(&view, &style, bars));
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
            out.line(format!(
                "dry-run {} (global dry-run is {})",
                if check.is_empty() {
                    format!("{state} for every check")
                } else {
                    format!("{state} for {check}")
                },
                if answer.dry_run { "on" } else { "off" }
            ));
        }
        Command::Token {
            action:
                TokenAction::Rotate {
                    expires,
                    role,
                    nodes,
                },
        } => {
            let role = match role {
                Some(role) => lfleet_proto::convert::role_to_wire(Some(
                    role.parse::<lfleet_types::Role>()
                        .map_err(|e| e.to_string())?,
                )),
                None => lfleet_proto::convert::role_to_wire(None),
            };
            let expires_unix = expires.map_or(0, |s| SystemClock.wall_unix_ms() as i64 / 1000 + s);
            let answer = client
                .rotate_token(v1::RotateTokenRequest {
                    expires_unix,
                    role,
                    nodes: nodes.clone(),
                })
                .await
                .map_err(call)?
                .into_inner();
            if cli.json {
                out.json(&serde_json::json!({
                    "token": answer.token, "expires_unix": answer.expires_unix,
                }));
            } else {
                out.line(lfleet_types::safe_text(&answer.token, 256));
                eprintln!(
                    "the old join token is refused from now on; the coordinator's token file \
                     holds the new one"
                );
            }
        }
        Command::Certs => {
            let certificates = client
                .list_certificates(v1::ListCertificatesRequest {})
                .await
                .map_err(call)?
                .into_inner()
                .certificates;
            let rows: Vec<serde_json::Value> = certificates
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "kind": lfleet_types::safe_text(&c.kind, 16),
                        "name": lfleet_types::safe_text(&c.name, 256),
                        "id": lfleet_types::safe_text(&c.id, 128),
                        "not_after_unix": c.not_after_unix,
                        "state": lfleet_types::safe_text(&c.state, 16),
                        "vm_id": lfleet_types::safe_text(&c.vm_id, 128),
                    })
                })
                .collect();
            if cli.json {
                out.json(&rows);
            } else {
                out.line(format!(
                    "{:<6} {:<24} {:<8} {:<12} ID",
                    "KIND", "NAME", "STATE", "NOT AFTER"
                ));
                for row in &rows {
                    out.line(format!(
                        "{:<6} {:<24} {:<8} {:<12} {}",
                        row["kind"].as_str().unwrap_or_default(),
                        row["name"].as_str().unwrap_or_default(),
                        row["state"].as_str().unwrap_or_default(),
                        row["not_after_unix"],
                        row["id"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
        Command::AdminCert {
            action: AdminCertAction::Revoke { name },
        } => {
            let answer = client
                .revoke_admin(v1::RevokeAdminRequest { name: name.clone() })
                .await
                .map_err(call)?
                .into_inner();
            out.line(lfleet_types::safe_text(&answer.message, 1024));
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
            let events: Vec<FleetEvent> = events.iter().map(FleetEvent::from).collect();
            if cli.json {
                out.json(&events);
            } else {
                out.0.push_str(&render::events(&events, &style));
            }
        }
        Command::Completions { .. } | Command::Man => unreachable!("handled before connecting"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls the fleet events for a command's result (`command-result` naming its id), every
/// 250 ms, at most `wait_seconds`: `(ok, message)`, or `None` when none came in time.
async fn wait_for_result(
    client: &mut FleetServiceClient<Channel>,
    node: &str,
    command_id: &str,
    since_unix_ms: i64,
    wait_seconds: u64,
) -> Result<Option<(bool, String)>, tonic::Status> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait_seconds);
    let prefix = format!("{command_id} ");
    loop {
        let events = client
            .list_events(v1::ListEventsRequest {
                since_unix_ms,
                limit: 10_000,
            })
            .await?
            .into_inner()
            .events;
        let found = events.iter().map(FleetEvent::from).find(|e| {
            e.node == node && e.kind == "command-result" && e.detail.starts_with(&prefix)
        });
        if let Some(event) = found {
            let rest = &event.detail[prefix.len()..];
            return Ok(Some(match rest.split_once(": ") {
                Some(("ok", message)) => (true, message.to_owned()),
                Some((_, message)) => (false, message.to_owned()),
                None => (false, rest.to_owned()),
            }));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Generated from the definitions above, no coordinator needed (the packages install them).
    match &cli.command {
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "lfleet", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            let mut page = Vec::new();
            if let Err(error) = clap_mangen::Man::new(Cli::command()).render(&mut page) {
                eprintln!("lfleet: the man page: {error}");
                return ExitCode::from(2);
            }
            Output(String::from_utf8_lossy(&page).into_owned()).write();
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
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
    let mut out = Output::default();
    let result = runtime.block_on(run(cli, &mut out));
    out.write();
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!(
                "lfleet: {}",
                lfleet_proto::convert::agent_text(&message, 4096)
            );
            ExitCode::from(2)
        }
    }
}
