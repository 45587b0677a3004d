//! Section a: the agent's collection cycle against the floor (opening and reading the same
//! files once, nothing else).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lfleet_agent::collect::{CollectOptions, Collector};
use lfleet_host::{HostRoot, SystemClock, SystemCommandRunner};
use lfleet_sim::{LustreVersion, NodeSpec, SimNode};

use crate::Options;
use crate::proc_stat::{own_cpu, own_user_system};

/// A converged sim node: one mount of 64 OSTs and 2 MDTs, 8 IB HCAs, accelerated networking.
pub fn big_node(dir: &Path) -> (SimNode, PathBuf) {
    let mut spec = NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15);
    spec.osts = 64;
    spec.mdts = 2;
    spec.ib_hcas = 8;
    spec.accelnet = true;
    let node = SimNode::create(&dir.join("node"), &spec).expect("sim node");
    let config = dir.join("agent.toml");
    let inventory: Vec<String> = (0..8)
        .map(|i| format!("{{ hca = \"mlx5_{i}\", port = 1, rate_gbps = 25 }}"))
        .collect();
    std::fs::write(
        &config,
        format!(
            "{}\n[health]\nib_ports = [{}]\naccelnet = true\n",
            include_str!("../../../packaging/examples/agent.toml"),
            inventory.join(", ")
        ),
    )
    .expect("config");
    let applied = Command::new(lfleet_harness::agent_binary())
        .args(["apply", "--root"])
        .arg(node.root())
        .arg("--config")
        .arg(&config)
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", node.bin_dir().display()),
        )
        .output()
        .expect("lfleet-agent apply");
    assert!(applied.status.success(), "{applied:?}");
    (node, config)
}

/// The files a cycle reads, found the way the collectors find them.
fn cycle_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let walk = |dir: PathBuf, names: &[&str], out: &mut Vec<PathBuf>| {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                for name in names {
                    let path = entry.path().join(name);
                    if path.is_file() {
                        out.push(path);
                    }
                }
            }
        }
    };
    walk(
        root.join("sys/kernel/debug/lustre/llite"),
        &["stats"],
        &mut files,
    );
    walk(
        root.join("sys/kernel/debug/lustre/osc"),
        &["stats"],
        &mut files,
    );
    walk(root.join("proc/fs/lustre/osc"), &["import"], &mut files);
    walk(
        root.join("proc/fs/lustre/mdc"),
        &["md_stats", "import"],
        &mut files,
    );
    for file in [
        "sys/kernel/debug/lnet/stats",
        "proc/net/dev",
        "proc/self/mountinfo",
    ] {
        files.push(root.join(file));
    }
    if let Ok(hcas) = std::fs::read_dir(root.join("sys/class/infiniband")) {
        for hca in hcas.flatten() {
            let port = hca.path().join("ports/1");
            for name in ["state", "phys_state", "rate"] {
                files.push(port.join(name));
            }
            if let Ok(counters) = std::fs::read_dir(port.join("counters")) {
                files.extend(counters.flatten().map(|c| c.path()));
            }
        }
    }
    files
}

pub fn run(options: &Options) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("scratch");
    let (node, _) = big_node(dir.path());
    let cycles = if options.quick { 50 } else { 500 };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let runner = SystemCommandRunner::with_prepended(&[node.bin_dir()]);
    let clock = SystemClock;
    let mut collector = Collector::new(
        HostRoot::new(node.root()),
        CollectOptions::default(),
        &clock,
    );
    let mut samples = 0;
    // Warm up: instances found, LNet interfaces read once (as in the daemon).
    for _ in 0..5 {
        runtime.block_on(collector.cycle(&runner, &clock, &[]));
        samples = collector.buffer.take(usize::MAX).len();
    }
    let (wall, cpu, split) = (Instant::now(), own_cpu(), own_user_system());
    for _ in 0..cycles {
        runtime.block_on(collector.cycle(&runner, &clock, &[]));
        collector.buffer.take(usize::MAX);
    }
    let cycle_wall = wall.elapsed() / cycles;
    let cycle_cpu = (own_cpu() - cpu) / cycles;
    let after = own_user_system();
    let cycle_split = ((after.0 - split.0) / cycles, (after.1 - split.1) / cycles);

    let files = cycle_files(node.root());
    let mut buffer = Vec::with_capacity(64 * 1024);
    let (wall, cpu, split) = (Instant::now(), own_cpu(), own_user_system());
    for _ in 0..cycles {
        for file in &files {
            buffer.clear();
            if let Ok(mut f) = std::fs::File::open(file) {
                let _ = std::io::Read::read_to_end(&mut f, &mut buffer);
            }
        }
    }
    let floor_wall = wall.elapsed() / cycles;
    let floor_cpu = (own_cpu() - cpu) / cycles;
    let after = own_user_system();
    let floor_split = ((after.0 - split.0) / cycles, (after.1 - split.1) / cycles);
    println!(
        "user/system ms per cycle: agent {:.3}/{:.3}, floor {:.3}/{:.3}",
        cycle_split.0.as_secs_f64() * 1e3,
        cycle_split.1.as_secs_f64() * 1e3,
        floor_split.0.as_secs_f64() * 1e3,
        floor_split.1.as_secs_f64() * 1e3
    );
    // Where the cycle's time goes: the parts, each timed alone over the same cycles.
    let host = HostRoot::new(node.root());
    let time = |work: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..cycles {
            work();
        }
        started.elapsed() / cycles
    };
    let discovery = time(&mut || {
        for (kind, file) in [
            ("llite", "stats"),
            ("osc", "stats"),
            ("mdc", "md_stats"),
            ("osc", "import"),
            ("mdc", "import"),
        ] {
            std::hint::black_box(lfleet_agent::telemetry::params::find_devices(
                &host, kind, file,
            ));
        }
    });
    let texts: Vec<(PathBuf, String)> = files
        .iter()
        .map(|f| (f.clone(), std::fs::read_to_string(f).unwrap_or_default()))
        .collect();
    let parsing = time(&mut || {
        for (path, text) in &texts {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            match name {
                "stats" | "md_stats" => {
                    std::hint::black_box(lfleet_parse::stats::parse_stats(text).ok());
                }
                "import" => {
                    std::hint::black_box(lfleet_parse::import::parse_import(text).ok());
                }
                _ => {
                    std::hint::black_box(text.trim().parse::<u64>().ok());
                }
            }
        }
    });
    let host_reads = time(&mut || {
        for file in &files {
            std::hint::black_box(
                host.read_to_string(file.strip_prefix(node.root()).unwrap_or(file))
                    .ok(),
            );
        }
    });
    let thread = time(&mut || {
        let worker = lfleet_host::BoundedWorker::new();
        std::hint::black_box(runtime.block_on(worker.run("x", Duration::from_secs(1), || 1)));
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let profile = serde_json::json!({
        "discovery_ms": ms(discovery),
        "reads_through_host_root_ms": ms(host_reads),
        "parsing_ms": ms(parsing),
        "worker_thread_ms": ms(thread),
    });
    println!("\n== a. Collection cycle (1 mount, 64 OSTs, 2 MDTs, 8 IB ports; {cycles} cycles)");
    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        "", "wall ms", "CPU ms", "files"
    );
    println!(
        "{:<28} {:>12.3} {:>12.3} {:>8}",
        "lfleet-agent cycle",
        ms(cycle_wall),
        ms(cycle_cpu),
        files.len()
    );
    println!(
        "{:<28} {:>12.3} {:>12.3} {:>8}",
        "floor (open+read each file)",
        ms(floor_wall),
        ms(floor_cpu),
        files.len()
    );
    println!(
        "{:<28} {:>12.2} {:>12.2}   samples per cycle: {samples}",
        "ratio",
        cycle_wall.as_secs_f64() / floor_wall.as_secs_f64().max(1e-9),
        cycle_cpu.as_secs_f64() / floor_cpu.as_secs_f64().max(1e-9)
    );
    println!(
        "instructions per cycle: not measured (no hardware performance counters here), CPU time stands in"
    );
    println!(
        "where it goes (each part alone, ms): discovery (lctl search order) {:.3}, reads through HostRoot {:.3}, parsing {:.3}, worker thread {:.3}",
        ms(discovery),
        ms(host_reads),
        ms(parsing),
        ms(thread)
    );
    serde_json::json!({
        "cycles": cycles,
        "files_per_cycle": files.len(),
        "samples_per_cycle": samples,
        "cycle_wall_ms": ms(cycle_wall),
        "cycle_cpu_ms": ms(cycle_cpu),
        "floor_wall_ms": ms(floor_wall),
        "floor_cpu_ms": ms(floor_cpu),
        "ratio_wall": cycle_wall.as_secs_f64() / floor_wall.as_secs_f64().max(1e-9),
        "ratio_cpu": cycle_cpu.as_secs_f64() / floor_cpu.as_secs_f64().max(1e-9),
        "instructions": null,
        "profile": profile,
    })
}
