//! The telemetry cycle's device index against lfleet-sim nodes: an unchanged node is searched
//! once, however many cycles run; a new device (an OST, an HCA), a remount (a new instance) and a changed
//! mount table with the same device names are each searched again; a remount never reads the
//! old instance's devices through a kept path, even when they linger; a kept file that
//! disappears is reported unavailable once and searched for again at the next cycle.
#![allow(
    clippy::disallowed_methods,
    reason = "the test changes the node's files around the collector"
)]

mod common;

use std::path::{Path, PathBuf};

use lfleet_agent::collect::{CollectOptions, Collector};
use lfleet_agent::telemetry::Sample;
use lfleet_host::{HostRoot, SystemClock, SystemCommandRunner};
use lfleet_sim::{LustreVersion, NodeSpec, SimNode};

use common::AgentRun;

const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");

/// A 2.15 node with /lustre mounted by the agent (4 OSTs, 1 MDT, one IB port).
fn mounted_node(dir: &Path) -> SimNode {
    let mut spec = NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15);
    spec.ib_hcas = 1;
    let node = SimNode::create(&dir.join("node"), &spec).unwrap();
    let applied = AgentRun::apply_text(node.root(), EXAMPLE);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    node
}

/// A mounted node in a scratch directory and a collector on it.
fn start() -> (tempfile::TempDir, SimNode, Cycles) {
    let dir = tempfile::tempdir().unwrap();
    let node = mounted_node(dir.path());
    let cycles = Cycles::new(&node);
    (dir, node, cycles)
}

struct Cycles {
    runner: SystemCommandRunner,
    clock: SystemClock,
    collector: Collector,
}

impl Cycles {
    fn new(node: &SimNode) -> Cycles {
        let clock = SystemClock;
        Cycles {
            runner: SystemCommandRunner::with_prepended(&[node.bin_dir()]),
            collector: Collector::new(
                HostRoot::new(node.root()),
                CollectOptions::default(),
                &clock,
            ),
            clock,
        }
    }

    /// One cycle's samples and the number of searches so far.
    async fn run(&mut self) -> (Vec<Sample>, u64) {
        self.collector.cycle(&self.runner, &self.clock, &[]).await;
        let samples = self.collector.buffer.take(usize::MAX);
        let searches = self.collector.device_searches().expect("no cycle running");
        (samples, searches)
    }
}

fn subjects(samples: &[Sample], collector: &str) -> Vec<String> {
    samples
        .iter()
        .filter(|s| s.collector == collector)
        .map(|s| s.subject.clone())
        .collect()
}

fn llite_instance(samples: &[Sample]) -> String {
    samples
        .iter()
        .find(|s| s.collector == "llite" && s.subject == "/lustre")
        .and_then(|s| s.labels.get("instance").cloned())
        .unwrap_or_else(|| panic!("no llite sample with an instance: {samples:#?}"))
}

/// The instance the simulator gave /lustre at its last mount.
fn sim_instance(node: &SimNode) -> String {
    node.state()
        .unwrap()
        .mounts
        .iter()
        .find(|m| m.mount_point == "/lustre")
        .map(|m| m.instance.clone())
        .expect("/lustre is mounted")
}

/// Unmounts and mounts /lustre again with the simulator's own commands: a new instance.
fn remount(node: &SimNode) {
    let source = node
        .state()
        .unwrap()
        .mounts
        .iter()
        .find(|m| m.mount_point == "/lustre")
        .map(|m| m.source.clone())
        .expect("/lustre is mounted");
    for args in [
        vec!["/lustre".to_owned()],
        vec![
            "-t".to_owned(),
            "lustre".to_owned(),
            source,
            "/lustre".to_owned(),
        ],
    ] {
        let name = if args.len() == 1 { "umount" } else { "mount" };
        let output = lfleet_sim::node::run_shim(node.root(), name, &args);
        assert_eq!(output.code, 0, "{name} {args:?}: {output:?}");
    }
}

/// Copies a directory tree (files only, as the sim writes them).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every device directory of `instance` in the Lustre trees.
fn device_dirs(root: &Path, instance: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for base in [
        "sys/fs/lustre",
        "sys/kernel/debug/lustre",
        "proc/fs/lustre",
        "proc/sys/lustre",
    ] {
        for kind in ["llite", "osc", "mdc"] {
            let Ok(entries) = std::fs::read_dir(root.join(base).join(kind)) else {
                continue;
            };
            dirs.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().ends_with(instance)),
            );
        }
    }
    dirs
}

#[tokio::test(flavor = "current_thread")]
async fn an_unchanged_node_is_searched_once_and_a_new_device_or_a_remount_is_searched_again() {
    let (_dir, node, mut cycles) = start();
    let root = node.root().to_path_buf();
    let (first, searches) = cycles.run().await;
    assert_eq!(searches, 1);
    let oscs = subjects(&first, "osc");
    assert_eq!(oscs.len(), 4, "{oscs:?}");
    for _ in 0..5 {
        let (samples, searches) = cycles.run().await;
        assert_eq!(searches, 1, "an unchanged node was searched again");
        assert_eq!(subjects(&samples, "osc"), oscs);
        assert!(
            samples.iter().all(|s| s.unavailable.is_none()),
            "{samples:#?}"
        );
    }

    // A new OST (added to the filesystem while mounted): its device directories appear.
    let instance = sim_instance(&node);
    for base in ["sys/kernel/debug/lustre/osc", "proc/fs/lustre/osc"] {
        copy_tree(
            &root
                .join(base)
                .join(format!("lustrefs-OST0000-osc-{instance}")),
            &root
                .join(base)
                .join(format!("lustrefs-OST0100-osc-{instance}")),
        );
    }
    let (samples, searches) = cycles.run().await;
    assert_eq!(searches, 2, "a new device was not searched for");
    assert!(subjects(&samples, "osc").contains(&"/lustre OST0100".to_owned()));
    assert!(subjects(&samples, "import").contains(&"/lustre OST0100".to_owned()));
    let (_, searches) = cycles.run().await;
    assert_eq!(searches, 2);

    // A new InfiniBand HCA: its port is found at the next cycle.
    assert_eq!(subjects(&samples, "ib"), vec!["mlx5_0/1".to_owned()]);
    copy_tree(
        &root.join("sys/class/infiniband/mlx5_0"),
        &root.join("sys/class/infiniband/mlx5_1"),
    );
    let (samples, _) = cycles.run().await;
    assert_eq!(
        subjects(&samples, "ib"),
        vec!["mlx5_0/1".to_owned(), "mlx5_1/1".to_owned()]
    );

    // A remount: a new instance, found at the next cycle; the old one is gone.
    remount(&node);
    let new_instance = sim_instance(&node);
    assert_ne!(new_instance, instance);
    let (samples, searches) = cycles.run().await;
    assert_eq!(searches, 3, "a remount was not searched for");
    assert_eq!(llite_instance(&samples), new_instance);
    let llite = samples
        .iter()
        .find(|s| s.collector == "llite")
        .expect("llite");
    assert!(llite.reset, "a remount is a reset: {llite:?}");
    assert_eq!(subjects(&samples, "osc"), oscs, "the new instance's OSTs");
    let (_, searches) = cycles.run().await;
    assert_eq!(searches, 3);
}

#[tokio::test(flavor = "current_thread")]
async fn a_remount_never_reads_the_old_instance_through_a_kept_path() {
    let (dir, node, mut cycles) = start();
    let root = node.root().to_path_buf();
    let (first, _) = cycles.run().await;
    let old = sim_instance(&node);
    assert_eq!(llite_instance(&first), old);
    // Keep the old instance's device trees, as a lazily unmounted client keeps its devices
    // until the last reference goes.
    let saved = dir.path().join("old-devices");
    let old_dirs = device_dirs(&root, &old);
    assert!(old_dirs.len() >= 5, "{old_dirs:?}");
    for path in &old_dirs {
        copy_tree(path, &saved.join(path.strip_prefix(&root).unwrap()));
    }
    remount(&node);
    for path in &old_dirs {
        let relative = path.strip_prefix(&root).unwrap();
        copy_tree(&saved.join(relative), path);
        // The lingering devices say so loudly, should anything read them.
        let import = path.join("import");
        if import.exists() {
            let text = std::fs::read_to_string(&import).unwrap();
            std::fs::write(&import, text.replace("state: FULL", "state: EVICTED")).unwrap();
        }
    }
    let new = sim_instance(&node);
    assert_ne!(new, old);
    let (samples, _) = cycles.run().await;
    assert_eq!(llite_instance(&samples), new);
    // One sample per OST and MDT of the mount (not of both instances), all from the new one.
    let imports = subjects(&samples, "import");
    assert_eq!(imports.len(), 5, "{imports:?}");
    for sample in samples.iter().filter(|s| s.collector == "import") {
        assert_eq!(
            sample.labels["state"], "FULL",
            "an old device was read: {sample:?}"
        );
    }
    assert_eq!(subjects(&samples, "osc").len(), 4);
}

#[tokio::test(flavor = "current_thread")]
async fn a_changed_mount_table_with_the_same_device_names_is_searched_again() {
    let (_dir, node, mut cycles) = start();
    let mountinfo = node.root().join("proc/self/mountinfo");
    let (_, searches) = cycles.run().await;
    assert_eq!(searches, 1);
    // The kernel gave the remounted filesystem the same superblock address (the same
    // instance, so the same device names): only the mount's ID in mountinfo differs.
    let text = std::fs::read_to_string(&mountinfo).unwrap();
    let lustre = text
        .lines()
        .find(|l| l.contains(" - lustre "))
        .expect("a lustre line")
        .to_owned();
    let (id, rest) = lustre.split_once(' ').unwrap();
    let moved = format!("{}{} {rest}", id, 7);
    std::fs::write(&mountinfo, text.replace(&lustre, &moved)).unwrap();
    let (samples, searches) = cycles.run().await;
    assert_eq!(searches, 2, "a mount table change was not searched for");
    assert!(
        samples.iter().all(|s| s.unavailable.is_none()),
        "{samples:#?}"
    );
    let (_, searches) = cycles.run().await;
    assert_eq!(searches, 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_kept_file_that_disappears_is_unavailable_once_then_searched_for_again() {
    let (_dir, node, mut cycles) = start();
    let root = node.root().to_path_buf();
    let (_, searches) = cycles.run().await;
    assert_eq!(searches, 1);
    let instance = sim_instance(&node);
    let stats = root.join(format!(
        "sys/kernel/debug/lustre/osc/lustrefs-OST0001-osc-{instance}/stats"
    ));
    std::fs::remove_file(&stats).unwrap();
    // The kept path is read, and the OS's answer reported, naming the file.
    let (samples, _) = cycles.run().await;
    let osc = samples
        .iter()
        .find(|s| s.collector == "osc" && s.subject == "/lustre OST0001")
        .expect("the OST's sample");
    assert!(osc.values.is_empty());
    let why = osc.unavailable.as_deref().unwrap_or_default();
    assert!(
        why.contains("OST0001") && why.contains("No such file"),
        "{why}"
    );
    // Then the roots are searched again: the device has no stats file in lctl's search path,
    // so, as before any index existed, it gives no osc sample, and the others go on.
    let (samples, searches) = cycles.run().await;
    assert!(searches > 1, "the missing file was not searched for");
    let oscs = subjects(&samples, "osc");
    assert!(!oscs.contains(&"/lustre OST0001".to_owned()), "{oscs:?}");
    assert_eq!(oscs.len(), 3, "{oscs:?}");
}
