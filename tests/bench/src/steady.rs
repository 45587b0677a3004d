//! Section b: `lfleet-agent run` over time at 10 s and 1 s intervals, beside Debian's
//! prometheus-node-exporter (infiniband and netdev collectors only) scraped at the same
//! interval on the same node tree.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lfleet_harness::Owned;

use crate::Options;
use crate::collection::big_node;
use crate::proc_stat::measure;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(19_100)
}

fn scrape(port: u16) {
    if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
}

pub fn run(options: &Options) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("scratch");
    let (node, config) = big_node(dir.path());
    let window = Duration::from_secs(if options.quick { 20 } else { 120 });
    let exporter = [
        "/usr/bin/prometheus-node-exporter",
        "/usr/sbin/prometheus-node-exporter",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_file());
    let mut rows = Vec::new();
    println!("\n== b. Steady state over {} s", window.as_secs());
    println!(
        "{:<10} {:<34} {:>10} {:>10} {:>14} {:>10} {:>12}",
        "interval", "process", "CPU ms", "CPU %", "children CPU %", "RSS MiB", "peak MiB"
    );
    for interval in [10u64, 1] {
        let agent = Owned(
            Command::new(lfleet_harness::agent_binary())
                .args([
                    "run",
                    "--check-interval",
                    &format!("{interval}s"),
                    "--collect-interval",
                    &format!("{interval}s"),
                    "--root",
                ])
                .arg(node.root())
                .arg("--config")
                .arg(&config)
                .env(
                    "PATH",
                    format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", node.bin_dir().display()),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("lfleet-agent run"),
        );
        std::thread::sleep(Duration::from_secs(2));
        let agent_usage = measure(agent.0.id(), window);
        drop(agent);
        let exporter_usage = match exporter {
            Some(program) => {
                let port = free_port();
                let child = Owned(
                    Command::new(program)
                        .arg(format!(
                            "--path.sysfs={}",
                            node.root().join("sys").display()
                        ))
                        .arg(format!(
                            "--path.procfs={}",
                            node.root().join("proc").display()
                        ))
                        .args([
                            "--collector.disable-defaults",
                            "--collector.infiniband",
                            "--collector.netdev",
                        ])
                        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("node exporter"),
                );
                std::thread::sleep(Duration::from_secs(2));
                let pid = child.0.id();
                let started = Instant::now();
                let measured = std::thread::scope(|scope| {
                    let handle = scope.spawn(|| measure(pid, window));
                    // Scrape at the interval for the window (bounded).
                    while started.elapsed() < window {
                        scrape(port);
                        std::thread::sleep(
                            Duration::from_secs(interval)
                                .min(window.saturating_sub(started.elapsed())),
                        );
                    }
                    handle.join().unwrap_or(serde_json::json!(null))
                });
                drop(child);
                measured
            }
            None => serde_json::json!("not installed (apt-get install prometheus-node-exporter)"),
        };
        for (name, usage) in [
            ("lfleet-agent run", &agent_usage),
            ("prometheus-node-exporter (ib, netdev)", &exporter_usage),
        ] {
            let mib = |key: &str| usage[key].as_f64().map(|k| k / 1024.0);
            let percent = |key: &str| {
                usage[key]
                    .as_f64()
                    .map(|c| format!("{c:.3}"))
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "{:<10} {:<34} {:>10} {:>10} {:>14} {:>10} {:>12}",
                format!("{interval} s"),
                name,
                usage["cpu_ms"]
                    .as_f64()
                    .map(|m| format!("{m:.1}"))
                    .unwrap_or_else(|| "-".into()),
                percent("cpu_percent"),
                percent("children_cpu_percent"),
                mib("rss_kib")
                    .map(|m| format!("{m:.1}"))
                    .unwrap_or_else(|| "-".into()),
                mib("peak_rss_kib")
                    .map(|m| format!("{m:.1}"))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        rows.push(serde_json::json!({"interval_s": interval, "agent": agent_usage, "node_exporter": exporter_usage}));
    }
    serde_json::json!(rows)
}
