//! lfleet-harness: a cluster for tests and benchmarks: the coordinator as a process (its own
//! CA, a scratch data directory, an admin socket), agents as processes on sim nodes, the
//! `lfleet` CLI, a real Slurm ([`slurm`]) and real headless Chromium ([`browser`]). Every
//! process is ended by its PID when dropped. The binaries are the ones built beside the
//! running test or benchmark.
#![allow(
    clippy::disallowed_methods,
    reason = "test infrastructure: it runs processes and reads their output"
)]

pub mod bindfs;
pub mod browser;
pub mod slurm;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lfleet_sim::{LustreVersion, NodeSpec, SimNode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Now, in Unix milliseconds (the wall time a test compares the coordinator's records with).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A process's resident memory in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for process {pid}"))
}

/// A TLS channel to the coordinator at `address` trusting `ca`, presenting `identity` when
/// given (a node's or an admin's certificate); 5 s to connect.
pub async fn tls_channel(
    address: &str,
    ca: &str,
    identity: Option<tonic::transport::Identity>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

pub const EXAMPLE: &str = include_str!("../../../packaging/examples/coordinator.toml");

/// A binary of the workspace, built beside the running executable
/// (target/<profile>/deps/x or target/<profile>/x -> target/<profile>/<name>).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable");
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not built beside {}: build the workspace",
                exe.display()
            )
        })
}

pub fn coordinator_binary() -> PathBuf {
    binary("lfleet-coordinator")
}

pub fn lfleet_binary() -> PathBuf {
    binary("lfleet")
}

pub fn agent_binary() -> PathBuf {
    binary("lfleet-agent")
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `promtool check metrics` (Debian's prometheus package) on an exposition `text`: its exit
/// code and what it said (nothing, for a clean one).
pub fn promtool(text: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("promtool reads its input");
    let output = child.wait_with_output().expect("promtool ends");
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// A child process ended by its PID (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Owned(pub Child);

impl Owned {
    /// SIGKILL and wait: a crash or a power cut.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    pub fn stop(&mut self) {
        let pid = Pid::from_raw(self.0.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug)]
pub struct AgentNode {
    pub name: String,
    pub sim: SimNode,
    pub process: Owned,
}

#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    /// The coordinator.toml the coordinator runs (the example with scratch paths).
    pub config_text: String,
    pub address: String,
    pub coordinator: Option<Owned>,
    /// The coordinator's Prometheus endpoint.
    pub metrics: String,
    /// The coordinator's web dashboard (`http://127.0.0.1:PORT/`, or https with
    /// `dashboard_tls`).
    pub dashboard: String,
    pub nodes: Vec<AgentNode>,
    /// `--check-interval` of the agents added from now on (300ms unless a test that runs
    /// many agents wants them quieter).
    pub agent_check_interval: String,
}

fn path_with(node: &Path) -> String {
    format!(
        "{}:/usr/sbin:/usr/bin:/sbin:/bin",
        node.join("bin").display()
    )
}

pub fn lfleet_json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {output:?}"))
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// Starts the coordinator on `listen`; returns it, the address it bound, its Prometheus
    /// endpoint and its dashboard's URL.
    pub fn spawn_coordinator(dir: &Path, listen: &str) -> (Owned, String, String, String) {
        Cluster::spawn_coordinator_under(dir, listen, &[])
    }

    /// [`Cluster::spawn_coordinator`] run through `wrapper` (`prlimit --nofile=4096:4096`).
    pub fn spawn_coordinator_under(
        dir: &Path,
        listen: &str,
        wrapper: &[&str],
    ) -> (Owned, String, String, String) {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(coordinator_binary());
                command
            }
            None => Command::new(coordinator_binary()),
        };
        let mut child = Owned(
            command
                .arg("--config")
                .arg(dir.join("coordinator.toml"))
                .args(["--listen", listen, "--metrics-listen", "127.0.0.1:0"])
                .args(["--dashboard-listen", "127.0.0.1:0"])
                .stdout(Stdio::piped())
                .stderr(Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join("coordinator.log"))
                        .unwrap(),
                ))
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        let mut metrics = String::new();
        let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        stdout.read_line(&mut metrics).unwrap();
        let metrics = metrics.trim().trim_start_matches("metrics on ").to_owned();
        let mut dashboard = String::new();
        stdout.read_line(&mut dashboard).unwrap();
        let dashboard = dashboard
            .trim()
            .trim_start_matches("dashboard on ")
            .to_owned();
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "the coordinator did not start: {line:?}\n{}",
                    std::fs::read_to_string(dir.join("coordinator.log")).unwrap_or_default()
                )
            })
            .to_owned();
        (child, address, metrics, dashboard)
    }

    pub fn start(agents: usize) -> Cluster {
        let names: Vec<String> = (1..=agents).map(|i| format!("hpc-pg0-{i}")).collect();
        Cluster::start_with(tempfile::tempdir().unwrap(), &names, "")
    }

    /// A cluster in `dir` with agents named `names` and `extra` appended to coordinator.toml.
    pub fn start_with(dir: tempfile::TempDir, names: &[String], extra: &str) -> Cluster {
        Cluster::start_configured(dir, names, "", extra)
    }

    /// [`Cluster::start_with`] with `server` lines added to coordinator.toml's `[server]`.
    pub fn start_configured(
        dir: tempfile::TempDir,
        names: &[String],
        server: &str,
        extra: &str,
    ) -> Cluster {
        Cluster::start_nodes(dir, names, server, extra, &Cluster::node_spec())
    }

    /// The sim node every agent runs on unless a test says otherwise: Ubuntu 22.04 with
    /// Lustre 2.15 (the agents' configured client `2.15.7-33-g79ddf99`).
    pub fn node_spec() -> NodeSpec {
        NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15)
    }

    /// [`Cluster::start_configured`] with agents on sim nodes made from `spec`.
    pub fn start_nodes(
        dir: tempfile::TempDir,
        names: &[String],
        server: &str,
        extra: &str,
        spec: &NodeSpec,
    ) -> Cluster {
        let root = dir.path();
        let config_text = EXAMPLE
            .replace("listen = \"0.0.0.0:7443\"", "listen = \"127.0.0.1:0\"")
            .replace(
                "data_dir = \"/var/lib/lfleet-coordinator\"",
                &format!("data_dir = \"{}\"", root.join("data").display()),
            )
            .replace(
                "join_token_file = \"/etc/lfleet/join-token\"",
                &format!("join_token_file = \"{}\"", root.join("token").display()),
            )
            .replace(
                "admin_socket = \"/run/lfleet/coordinator.sock\"",
                &format!("admin_socket = \"{}\"", root.join("admin.sock").display()),
            );
        let config_text = config_text.replace(
            "agent_certificate_hours = 24\n",
            &format!("agent_certificate_hours = 24\n{server}"),
        );
        // `extra` replaces the example's own [slurm] and [policy] tables.
        let config_text = if extra.is_empty() {
            config_text
        } else {
            let cut = config_text
                .find("\n# Slurm: where lfleet drains")
                .unwrap_or(config_text.len());
            format!("{}{extra}", &config_text[..cut])
        };
        std::fs::write(root.join("coordinator.toml"), &config_text).unwrap();
        let (coordinator, address, metrics, dashboard) =
            Cluster::spawn_coordinator(root, "127.0.0.1:0");
        let mut cluster = Cluster {
            dir,
            config_text,
            address,
            metrics,
            dashboard,
            coordinator: Some(coordinator),
            nodes: Vec::new(),
            agent_check_interval: "300ms".into(),
        };
        for name in names {
            cluster.add_agent_on(name, spec);
        }
        cluster
    }

    /// A real Slurm with `nodes` ([`slurm::Slurm`]), then a cluster of those nodes whose
    /// coordinator drains through it, with `server` lines in `[server]` and `policy` lines in
    /// `[policy]` (planning every 0.3 s); waits (40 s at most) until every node is healthy.
    pub fn with_slurm(nodes: &[&str], server: &str, policy: &str) -> (Cluster, slurm::Slurm) {
        let dir = tempfile::tempdir().unwrap();
        let slurm = slurm::Slurm::start(dir.path(), nodes);
        let extra = format!(
            "\n[slurm]\nenabled = true\nslurm_conf = \"{}\"\ntimeout_seconds = 5\n\n[policy]\ninterval_seconds = 0.3\n{policy}\n",
            slurm.conf.display()
        );
        let names: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        let cluster = Cluster::start_configured(dir, &names, server, &extra);
        cluster.wait_until(
            &format!("{} healthy nodes", nodes.len()),
            Duration::from_secs(40),
            |listed| listed.len() == nodes.len() && listed.iter().all(|n| n["health"] == "healthy"),
        );
        (cluster, slurm)
    }

    /// A fresh sim node running `lfleet-agent run` joined to this coordinator.
    pub fn add_agent(&mut self, name: &str) {
        self.add_agent_on(name, &Cluster::node_spec());
    }

    /// [`Cluster::add_agent`] on a sim node made from `spec`.
    pub fn add_agent_on(&mut self, name: &str, spec: &NodeSpec) {
        self.add_agent_prepared(name, spec, |_| {});
    }

    /// [`Cluster::add_agent_on`], with `prepare` run on the sim node before its agent starts
    /// (a fault the agent must meet from its first pass).
    pub fn add_agent_prepared(
        &mut self,
        name: &str,
        spec: &NodeSpec,
        prepare: impl FnOnce(&SimNode),
    ) {
        let root = self.dir.path();
        let sim = SimNode::create(&root.join(name), spec).unwrap();
        prepare(&sim);
        // The CA and the join token where cluster-init puts them on a node.
        let etc = sim.root().join("etc/lfleet");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::copy(self.data().join("ca.pem"), etc.join("ca.pem")).unwrap();
        std::fs::copy(root.join("token"), etc.join("join-token")).unwrap();
        let config = root.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "generation = 1\nrole = \"compute\"\n[client]\nlustre_version = \"2.15.7-33-g79ddf99\"\n[coordinator]\nurl = \"https://{}\"\nca_file = \"/etc/lfleet/ca.pem\"\njoin_token_file = \"/etc/lfleet/join-token\"\nnode_name = \"{name}\"\n",
                self.address,
            ),
        )
        .unwrap();
        let process = self.spawn_agent(name, sim.root());
        self.nodes.push(AgentNode {
            name: name.to_owned(),
            sim,
            process,
        });
    }

    /// `lfleet-agent run` for the sim node `name` with its config `<dir>/<name>.toml`.
    fn spawn_agent(&self, name: &str, node_root: &Path) -> Owned {
        let root = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join(format!("{name}.log")))
            .unwrap();
        Owned(
            Command::new(agent_binary())
                .args([
                    "run",
                    "--check-interval",
                    &self.agent_check_interval,
                    "--collect-interval",
                    "1s",
                    "--syscall-deadline",
                    "1",
                    "--root",
                ])
                .arg(node_root)
                .arg("--config")
                .arg(root.join(format!("{name}.toml")))
                .env("PATH", path_with(node_root))
                .env("LFLEET_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    fn agent_index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no agent {name}"))
    }

    /// Stops agent `name` (SIGTERM, then SIGKILL after 5 s) and starts it again with its
    /// config file as it is now.
    pub fn restart_agent(&mut self, name: &str) {
        let index = self.agent_index(name);
        self.nodes[index].process.stop();
        let root = self.nodes[index].sim.root().to_path_buf();
        self.nodes[index].process = self.spawn_agent(name, &root);
    }

    /// Turns on agent `name`'s Prometheus endpoint on a free loopback port (its config gets
    /// a `[prometheus]` table) and restarts it; the endpoint's address.
    pub fn enable_agent_metrics(&mut self, name: &str) -> String {
        let address = format!("127.0.0.1:{}", free_port());
        let config = self.dir.path().join(format!("{name}.toml"));
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!(
            "\n[prometheus]\nenabled = true\nlisten = \"{address}\"\n"
        ));
        std::fs::write(&config, text).unwrap();
        self.restart_agent(name);
        address
    }

    /// A power cycle of node `name`: its agent is killed (SIGKILL), the sim node reboots
    /// (mounts, modules and the processes holding mounts are gone), the agent starts again.
    /// The node's slurmd is the caller's ([`slurm::Slurm::kill_slurmd`], `boot_slurmd`).
    pub fn reboot_node(&mut self, name: &str) {
        let index = self.agent_index(name);
        self.nodes[index].process.kill();
        self.nodes[index].sim.reboot(None).unwrap();
        let root = self.nodes[index].sim.root().to_path_buf();
        self.nodes[index].process = self.spawn_agent(name, &root);
    }

    /// Stops the coordinator and starts it again on the same address and data directory.
    pub fn restart_coordinator(&mut self) {
        self.restart_coordinator_under(&[]);
    }

    /// [`Cluster::restart_coordinator`] through `wrapper` (see `spawn_coordinator_under`).
    pub fn restart_coordinator_under(&mut self, wrapper: &[&str]) {
        if let Some(mut old) = self.coordinator.take() {
            old.stop();
        }
        self.respawn_coordinator(wrapper);
    }

    /// Kills the coordinator (SIGKILL: nothing of its shutdown runs) and starts it again on
    /// the same address and data directory.
    pub fn crash_coordinator(&mut self) {
        if let Some(mut old) = self.coordinator.take() {
            old.kill();
        }
        self.respawn_coordinator(&[]);
    }

    fn respawn_coordinator(&mut self, wrapper: &[&str]) {
        let (coordinator, address, metrics, dashboard) =
            Cluster::spawn_coordinator_under(self.dir.path(), &self.address, wrapper);
        assert_eq!(address, self.address);
        self.coordinator = Some(coordinator);
        self.metrics = metrics;
        self.dashboard = dashboard;
    }

    pub fn coordinator_pid(&self) -> u32 {
        self.coordinator.as_ref().unwrap().0.id()
    }

    /// `lfleet config apply` of coordinator.toml with `extra` appended (written to
    /// `<dir>/<file>`): the next generation.
    pub fn apply_config_with(&self, file: &str, extra: &str) -> Output {
        let path = self.dir.path().join(file);
        std::fs::write(&path, format!("{}{extra}", self.config_text)).unwrap();
        self.lfleet(&["config", "apply", path.to_str().unwrap()])
    }

    /// Runs `lfleet` on the admin socket.
    pub fn lfleet(&self, args: &[&str]) -> Output {
        Command::new(lfleet_binary())
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap()
    }

    /// Polls `lfleet nodes --json` every 100 ms until `done`; returns how long it took.
    pub fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Duration {
        let started = Instant::now();
        let mut last = serde_json::Value::Null;
        while started.elapsed() <= limit {
            let output = self.lfleet(&["nodes", "--json"]);
            if output.status.success() {
                last = serde_json::from_slice(&output.stdout).unwrap();
                if done(last.as_array().unwrap()) {
                    return started.elapsed();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let logs: String = self
            .nodes
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", n.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                format!(
                    "--- {}\n{}\n",
                    n.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect();
        panic!("not within {limit:?}: {what}\n{last:#}\n{logs}");
    }

    /// GET /metrics from the coordinator.
    pub fn scrape(&self) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.metrics).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: lfleet\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    /// GET `path` (`/api/fleet`) from the coordinator's plain loopback dashboard, as a
    /// read-only browser without a certificate would: its JSON.
    pub fn dashboard_json(&self, path: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let host = self
            .dashboard
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    pub fn wait_unhealthy(&self, name: &str, limit: Duration) -> Duration {
        self.wait_until(&format!("{name} unhealthy"), limit, |nodes| {
            nodes
                .iter()
                .any(|n| n["name"] == name && n["health"] == "unhealthy")
        })
    }
}
