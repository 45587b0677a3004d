//! The CycleCloud cluster-init script of every node (packaging/cyclecloud), run against a sim
//! node root with a stand-in `jetpack` that answers `jetpack config KEY [DEFAULT]` from a
//! JSON file: with nothing published in the cluster's /sched directory and no jetpack
//! values it refuses after its wait, and so do a bad URL and a value that would end its TOML
//! string, each changing nothing; with the coordinator's URL, CA and token published in
//! /sched/<cluster>/lfleet (as the scheduler's spec does) it writes a valid agent config
//! with the role from `slurm.role`, the CA and the join token, and the agent it configured
//! enrolls with a real coordinator and mounts what the coordinator says.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the cluster-init script, the coordinator and an agent"
)]

use std::process::{Command, Stdio};
use std::time::Duration;

use lfleet_harness::{Cluster, Owned, agent_binary};
use lfleet_sim::{LustreVersion, NodeSpec, SimNode};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/cyclecloud/specs/default/cluster-init/scripts/10-lfleet-agent.sh"
);

/// `jetpack config KEY [DEFAULT]` from a flat JSON object, one `"key": "value"` a line.
const JETPACK: &str = r#"#!/bin/bash
[ "$1" = config ] || { echo "stand-in jetpack: only 'config'" >&2; exit 2; }
line=$(grep -F "\"$2\":" "$JETPACK_JSON" | head -1)
if [ -z "$line" ]; then
  if [ $# -ge 3 ]; then printf '%s\n' "$3"; exit 0; fi
  exit 1
fi
value=${line#*: \"}
value=${value%\"*}
printf '%b\n' "$value"
"#;

fn json_string(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[test]
fn cluster_init_writes_a_valid_config_and_the_agent_joins_and_mounts() {
    let cluster = Cluster::start_with(tempfile::tempdir().unwrap(), &[], "");
    let dir = cluster.dir.path();
    let node = SimNode::create(
        &dir.join("cc-node-1"),
        &NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15),
    )
    .unwrap();
    let bin = dir.join("jetpack-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("jetpack"), JETPACK).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("jetpack"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ca = std::fs::read_to_string(dir.join("data/ca.pem")).unwrap();
    let token = std::fs::read_to_string(dir.join("token")).unwrap();
    let values = |extra: &str| {
        format!(
            "{{\n\"cyclecloud.cluster.name\": \"My Cluster\",\n\"cyclecloud.node.name\": \"cc-node-1\",\n\"cyclecloud.node.template\": \"hpc\",\n\"slurm.role\": \"login\",\n\"lfleet.wait_seconds\": \"0\",\n{extra}\"end\": \"\"\n}}\n"
        )
    };
    let given = |url: &str| {
        format!(
            "\"lfleet.coordinator_url\": \"{url}\",\n\"lfleet.join_token\": \"{}\",\n\"lfleet.ca_pem\": \"{}\",\n",
            json_string(token.trim()),
            json_string(ca.trim())
        )
    };
    let path = format!(
        "{}:{}:{}:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.display(),
        agent_binary().parent().unwrap().display(),
        node.root().join("bin").display()
    );
    let run_script = |json: &str| {
        let file = dir.join("jetpack.json");
        std::fs::write(&file, json).unwrap();
        Command::new("bash")
            .arg(SCRIPT)
            .env("PATH", &path)
            .env("JETPACK_JSON", &file)
            .env("LFLEET_ROOT", node.root())
            .env("LFLEET_SKIP_INSTALL", "1")
            .output()
            .unwrap()
    };

    // Nothing published in /sched and no jetpack values: refused after the wait.
    let unpublished = run_script(&values(""));
    assert!(!unpublished.status.success());
    assert!(
        String::from_utf8_lossy(&unpublished.stderr)
            .contains("no coordinator published in /sched/my-cluster/lfleet"),
        "{unpublished:?}"
    );
    // A bad URL: refused, nothing written.
    let refused = run_script(&values(&given("http://plain")));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("https://HOST:PORT"),
        "{refused:?}"
    );
    assert!(!node.root().join("etc/lfleet/agent.toml").exists());
    // A value that would end its TOML string: refused, nothing written.
    let injected = run_script(&values(&given(&format!(
        "https://{}\\\"\\nnode_name = \\\"other",
        cluster.address
    ))));
    assert!(!injected.status.success(), "{injected:?}");
    assert!(
        String::from_utf8_lossy(&injected.stderr).contains("quote, backslash or newline"),
        "{injected:?}"
    );
    assert!(!node.root().join("etc/lfleet/agent.toml").exists());

    // What the scheduler's spec publishes in the cluster's shared directory.
    let shared = node.root().join("sched/my-cluster/lfleet");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(
        shared.join("coordinator-url"),
        format!("https://{}\n", cluster.address),
    )
    .unwrap();
    std::fs::write(shared.join("ca.pem"), &ca).unwrap();
    std::fs::write(shared.join("join-token"), &token).unwrap();
    let done = run_script(&values(""));
    assert!(done.status.success(), "{done:?}");
    assert!(
        !String::from_utf8_lossy(&done.stdout).contains(token.trim())
            && !String::from_utf8_lossy(&done.stderr).contains(token.trim()),
        "the script printed the join token"
    );
    let config = std::fs::read_to_string(node.root().join("etc/lfleet/agent.toml")).unwrap();
    assert!(
        config.contains("node_name = \"cc-node-1\"")
            && config.contains("nodearray = \"hpc\"")
            && config.contains("role = \"login\""),
        "{config}"
    );
    assert_eq!(
        std::fs::read_to_string(node.root().join("etc/lfleet/ca.pem"))
            .unwrap()
            .trim(),
        ca.trim()
    );
    let mode = std::fs::metadata(node.root().join("etc/lfleet/join-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The agent it configured joins and mounts what the coordinator says.
    let _agent = Owned(
        Command::new(agent_binary())
            .args(["run", "--check-interval", "300ms", "--root"])
            .arg(node.root())
            .arg("--config")
            .arg(node.root().join("etc/lfleet/agent.toml"))
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                    node.root().join("bin").display()
                ),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    cluster.wait_until(
        "cc-node-1 healthy with /lustre mounted",
        Duration::from_secs(30),
        |nodes| {
            nodes.iter().any(|n| {
                n["name"] == "cc-node-1"
                    && n["health"] == "healthy"
                    && n["mounts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|m| m["mount_point"] == "/lustre" && m["mounted"] == true)
            })
        },
    );
}

/// A RHEL-family node takes the RPM built for its release, chosen from its os-release: on an
/// AlmaLinux 9 node with only the .deb and the EL8 RPM in the spec's files, the script names
/// the EL9 RPM it needs and installs nothing.
#[test]
fn cluster_init_on_alma_9_wants_the_el9_rpm() {
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::create(
        &dir.path().join("alma"),
        &NodeSpec::new(
            "alma-9",
            "5.14.0-427.13.1.el9_4.x86_64",
            LustreVersion::V2_15,
        ),
    )
    .unwrap();
    let bin = dir.path().join("jetpack-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("jetpack"), JETPACK).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("jetpack"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = dir.path().join("spec");
    std::fs::create_dir_all(spec.join("files")).unwrap();
    for name in [
        "lfleet-agent_0.1.0_amd64.deb",
        "lfleet-agent-0.1.0-1.el8.x86_64.rpm",
    ] {
        std::fs::write(spec.join("files").join(name), "").unwrap();
    }
    let json = dir.path().join("jetpack.json");
    std::fs::write(
        &json,
        "{\n\"cyclecloud.cluster.name\": \"c\",\n\"cyclecloud.node.name\": \"alma-1\",\n\"lfleet.coordinator_url\": \"https://127.0.0.1:7443\",\n\"lfleet.join_token\": \"0123456789abcdef0123\",\n\"lfleet.ca_pem\": \"-----BEGIN CERTIFICATE-----\"\n}\n",
    )
    .unwrap();
    let output = Command::new("bash")
        .arg(SCRIPT)
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
        )
        .env("JETPACK_JSON", &json)
        .env("LFLEET_ROOT", node.root())
        .env("CYCLECLOUD_SPEC_PATH", &spec)
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("no lfleet-agent RPM for el9 in"), "{said}");
    assert!(!node.root().join("etc/lfleet/agent.toml").exists());
}
