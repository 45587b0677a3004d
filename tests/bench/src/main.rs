//! `lfleet-bench`: how light lfleet is on a node and how fast at fleet scale. Not part of the
//! test run; `bash tests/bench.sh` runs it (BENCHMARKS.md holds a run's figures).
//!
//! Sections (each printed as a table; all written as JSON with `--json FILE`):
//! - a. The agent's collection cycle on a sim node with one mount of 64 OSTs, 2 MDTs and 8 IB
//!   ports, against the floor: a tight loop that opens and reads the same files once.
//! - b. The agent's steady state (`lfleet-agent run`) at 10 s and 1 s intervals: RSS and CPU,
//!   beside Debian's prometheus-node-exporter (infiniband and netdev collectors only)
//!   scraped at the same interval on the same tree.
//! - c. Coordinator scale: N simulated agents with real sessions over separate TLS
//!   connections; coordinator RSS and CPU, ingest rate, config apply until all N acked, and
//!   the dashboard's fleet page rendered in headless Chromium at that scale.
//! - d. Detection to drain with a real Slurm: time from fault to DRAIN.
//! - f. Slow-node detection in simulated time: the coordinator's detector fed noisy windows;
//!   detection rate and delay per slowdown factor, false positives per 1,000 node-hours, for
//!   candidate settings (`--sections f` runs it alone, in about a minute).
//! - g. The coordinator's per-node throughput history (the dashboard's last hour): resident
//!   memory per node with every slot filled (`--sections g`, seconds).
//!
//! `--quick` shortens every section (for a smoke run); `--agents 1000,10000` sets N.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark runs processes, reads /proc and times with the real clock"
)]

mod collection;
mod coordinator;
mod drain;
mod history;
mod proc_stat;
mod slow;
mod steady;

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub agents: Vec<usize>,
    pub sections: String,
    pub json: Option<std::path::PathBuf>,
}

/// p50, p99 and max of durations, in milliseconds.
pub fn percentiles(mut values: Vec<Duration>) -> serde_json::Value {
    if values.is_empty() {
        return serde_json::json!(null);
    }
    values.sort();
    let at = |q: f64| {
        let index = ((values.len() as f64 - 1.0) * q).round() as usize;
        values[index].as_secs_f64() * 1000.0
    };
    serde_json::json!({
        "n": values.len(),
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": values.last().unwrap().as_secs_f64() * 1000.0,
    })
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        agents: vec![1000],
        sections: "abcdfg".into(),
        json: None,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--agents" => {
                options.agents = iter
                    .next()
                    .ok_or("--agents N[,N...]")?
                    .split(',')
                    .map(|n| {
                        n.parse()
                            .map_err(|_| format!("--agents: {n:?} is not a number"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--sections" => options.sections = iter.next().ok_or("--sections abcdfg")?.clone(),
            "--json" => options.json = Some(iter.next().ok_or("--json FILE")?.into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!(
                "lfleet-bench: {message}\nusage: lfleet-bench [--quick] [--agents N,..] [--sections abcdfg] [--json FILE]"
            );
            return std::process::ExitCode::from(2);
        }
    };
    // Many TLS connections in section c: raise the open-file limit (inherited by the
    // coordinator this process starts).
    let _ =
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 65_536, 65_536);
    let mut report = serde_json::Map::new();
    report.insert("machine".into(), proc_stat::machine());
    if options.sections.contains('a') {
        report.insert("a_collection".into(), collection::run(&options));
    }
    if options.sections.contains('b') {
        report.insert("b_steady_state".into(), steady::run(&options));
    }
    if options.sections.contains('c') {
        report.insert("c_coordinator_scale".into(), coordinator::run(&options));
    }
    if options.sections.contains('d') {
        report.insert("d_detection_to_drain".into(), drain::run(&options));
    }
    if options.sections.contains('f') {
        report.insert("f_slow_node_detection".into(), slow::run(&options));
    }
    if options.sections.contains('g') {
        report.insert("g_history_memory".into(), history::run(&options));
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(report)).unwrap_or_default();
    if let Some(path) = &options.json {
        if let Err(error) = std::fs::write(path, &text) {
            eprintln!("lfleet-bench: {}: {error}", path.display());
            return std::process::ExitCode::from(1);
        }
        println!("\nJSON written to {}", path.display());
    }
    std::process::ExitCode::SUCCESS
}
