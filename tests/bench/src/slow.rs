//! Section f: slow-node detection, in simulated time. The coordinator's own detector
//! (`lfleet_coordinator::slow`) is fed windows of `req_waittime` deltas as agents send them
//! (through `ingest`, then `close_window` at the window's simulated end), for a group of 16
//! nodes with 4 OSTs and 1 MDT, each node and window drawing its own noise:
//!
//! - `uniform30`: waits scaled by a factor uniform in [0.7, 1.3] per node and window (the
//!   acceptance case);
//! - `lognormal30`: a factor e^N(0, 0.3), a heavier tail (about 1 window in 100 above 2x);
//! - `bursty`: uniform30, and in 2% of a node's windows a burst of 1.5x to 3x more (a job
//!   doing small synchronous writes).
//!
//! Within a window each target's mean is that of 200 to 5,000 RPCs whose waits have a
//! coefficient of variation of 0.5. For each candidate setting (k, r, N of M) it measures:
//! the detection rate within 3 windows and the mean detection delay (windows from the first
//! slow window to the flag; undetected runs count as missed, not as delay) of one node slowed
//! 1.5x, 2x, 3x and 5x on every target, over repeated runs; and the false positives (a node
//! newly flagged) per 1,000 node-hours of noise alone with 60 s windows. No real time
//! passes: a run of 1,000 node-hours takes a fraction of a second.

use lfleet_coordinator::slow::{PeerView, SlowConfig, SlowDetector};
use lfleet_types::{SampleValue, TelemetrySample, metric};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Options;

const NODES: usize = 16;
const TARGETS: [&str; 5] = ["OST0000", "OST0001", "OST0002", "OST0003", "MDT0000"];
const WINDOW_MS: i64 = 60_000;
/// Windows of normal load before a fault, so histories are full.
const WARMUP: usize = 4;
/// Windows a faulted run lasts at most.
const HORIZON: usize = 12;

#[derive(Debug, Clone, Copy)]
enum Noise {
    Uniform30,
    Lognormal30,
    Bursty,
}

impl Noise {
    const ALL: [Noise; 3] = [Noise::Uniform30, Noise::Lognormal30, Noise::Bursty];

    fn name(self) -> &'static str {
        match self {
            Noise::Uniform30 => "uniform30",
            Noise::Lognormal30 => "lognormal30",
            Noise::Bursty => "bursty",
        }
    }

    fn factor(self, rng: &mut StdRng) -> f64 {
        let uniform = |rng: &mut StdRng| 1.0 + 0.3 * (2.0 * rng.random::<f64>() - 1.0);
        match self {
            Noise::Uniform30 => uniform(rng),
            Noise::Lognormal30 => (0.3 * normal(rng)).exp(),
            Noise::Bursty => {
                let base = uniform(rng);
                if rng.random::<f64>() < 0.02 {
                    base * (1.5 + 1.5 * rng.random::<f64>())
                } else {
                    base
                }
            }
        }
    }
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn delta(metric: &str, subject: &str, value: u64) -> TelemetrySample {
    TelemetrySample {
        seq: 0,
        at_unix_ms: 0,
        metric: metric.into(),
        labels: vec![("subject".into(), subject.into())],
        value: Some(SampleValue::Delta {
            delta: value,
            interval_ms: WINDOW_MS as u64,
        }),
        reset: false,
        unavailable: None,
    }
}

/// One node's window: per target, a count of RPCs and their summed wait.
fn node_window(rng: &mut StdRng, noise: Noise, slow: f64) -> Vec<TelemetrySample> {
    let factor = noise.factor(rng) * slow;
    let mut samples = Vec::with_capacity(TARGETS.len() * 2);
    for (index, target) in TARGETS.iter().enumerate() {
        let base = if target.starts_with("MDT") {
            1400.0
        } else {
            1900.0 * (1.0 + 0.05 * (index as f64 - 1.5))
        };
        let rpcs = rng.random_range(200..=5000u64);
        // The mean of `rpcs` waits with a coefficient of variation of 0.5.
        let sampling = 1.0 + 0.5 / (rpcs as f64).sqrt() * normal(rng);
        let mean = base * factor * sampling.max(0.1);
        let (count, wait) = if target.starts_with("MDT") {
            (metric::MDC_RPCS, metric::MDC_RPC_WAIT_US)
        } else {
            (metric::OSC_RPCS, metric::OSC_RPC_WAIT_US)
        };
        let subject = format!("/lustre {target}");
        samples.push(delta(count, &subject, rpcs));
        samples.push(delta(wait, &subject, (mean * rpcs as f64).round() as u64));
    }
    samples
}

fn peers() -> Vec<PeerView> {
    (0..NODES)
        .map(|i| PeerView {
            name: format!("n{i:02}"),
            nodearray: "hpc".into(),
            live: true,
            causes: Vec::new(),
        })
        .collect()
}

/// Windows from the fault to the flag of node 0 slowed by `factor`, or None within the
/// horizon. A run whose node was flagged before the fault (a false positive, counted in its
/// own column) is run again.
fn detection(config: &SlowConfig, noise: Noise, factor: f64, rng: &mut StdRng) -> Option<usize> {
    loop {
        if let Ok(delay) = detection_run(config, noise, factor, rng) {
            return delay;
        }
    }
}

fn detection_run(
    config: &SlowConfig,
    noise: Noise,
    factor: f64,
    rng: &mut StdRng,
) -> Result<Option<usize>, ()> {
    let mut detector = SlowDetector::new(config.clone());
    let view = peers();
    for window in 0..WARMUP + HORIZON {
        let faulted = window >= WARMUP;
        for peer in &view {
            let slow = if faulted && peer.name == "n00" {
                factor
            } else {
                1.0
            };
            detector.ingest(&peer.name, &node_window(rng, noise, slow));
        }
        let report = detector.close_window(&view, (window as i64 + 1) * WINDOW_MS);
        let flagged = report.conditions["n00"]
            .iter()
            .any(|c| c.outcome == lfleet_types::Outcome::Fail);
        if flagged {
            return if faulted {
                Ok(Some(window + 1 - WARMUP))
            } else {
                Err(())
            };
        }
    }
    Ok(None)
}

/// Nodes newly flagged over `node_hours` of noise alone.
fn false_positives(config: &SlowConfig, noise: Noise, node_hours: f64, rng: &mut StdRng) -> u64 {
    let windows = (node_hours * 3_600_000.0 / WINDOW_MS as f64 / NODES as f64).ceil() as i64;
    let mut detector = SlowDetector::new(config.clone());
    let view = peers();
    let mut flags = 0;
    for window in 1..=windows {
        for peer in &view {
            detector.ingest(&peer.name, &node_window(rng, noise, 1.0));
        }
        let report = detector.close_window(&view, window * WINDOW_MS);
        flags += report
            .changes
            .iter()
            .filter(|c| c.outcome == lfleet_types::Outcome::Fail)
            .count() as u64;
    }
    flags
}

fn candidates() -> Vec<SlowConfig> {
    let mut out = Vec::new();
    for (n, m) in [(2, 3), (3, 3), (3, 5)] {
        for k in [3.0, 5.0] {
            for r in [1.5, 1.75, 2.0, 2.5, 3.0] {
                out.push(SlowConfig {
                    mad_factor: k,
                    ratio: r,
                    windows_slow: n,
                    windows: m,
                    ..SlowConfig::default()
                });
            }
        }
    }
    out
}

pub fn run(options: &Options) -> serde_json::Value {
    let runs = if options.quick { 100 } else { 1000 };
    let node_hours = if options.quick { 1_000.0 } else { 10_000.0 };
    let factors = [1.5, 2.0, 3.0, 5.0];
    let defaults = SlowConfig::default();
    println!(
        "\n== f. Slow-node detection, simulated time: {NODES} nodes, 4 OSTs + 1 MDT, 60 s windows, {runs} runs per factor, {node_hours} node-hours of noise per row"
    );
    println!(
        "{:<12} {:>4} {:>5} {:>4} | {:>23} | {:>23} | {:>23} | {:>23} | {:>9}",
        "noise",
        "k",
        "r",
        "N/M",
        "1.5x: in 3 / delay",
        "2x: in 3 / delay",
        "3x: in 3 / delay",
        "5x: in 3 / delay",
        "FP/1000nh"
    );
    let mut rows = Vec::new();
    let mut rng = StdRng::seed_from_u64(18);
    for noise in Noise::ALL {
        for config in candidates() {
            let mut cells = Vec::new();
            let mut json_factors = serde_json::Map::new();
            for factor in factors {
                let delays: Vec<Option<usize>> = (0..runs)
                    .map(|_| detection(&config, noise, factor, &mut rng))
                    .collect();
                let within3 = delays.iter().filter(|d| d.is_some_and(|d| d <= 3)).count();
                let found: Vec<usize> = delays.iter().flatten().copied().collect();
                let mean_delay = if found.is_empty() {
                    f64::NAN
                } else {
                    found.iter().sum::<usize>() as f64 / found.len() as f64
                };
                let rate = within3 as f64 / runs as f64;
                cells.push(format!(
                    "{:>6.1}% / {:>4.2} ({:>4.0}%)",
                    rate * 100.0,
                    mean_delay,
                    found.len() as f64 / runs as f64 * 100.0
                ));
                json_factors.insert(
                    format!("{factor}"),
                    serde_json::json!({
                        "detected_within_3_windows": rate,
                        "detected_within_horizon": found.len() as f64 / runs as f64,
                        "mean_delay_windows": mean_delay,
                    }),
                );
            }
            let flags = false_positives(&config, noise, node_hours, &mut rng);
            let per_1000 = flags as f64 / node_hours * 1000.0;
            let is_default = config == defaults;
            println!(
                "{:<12} {:>4} {:>5} {:>4} | {} | {:>9.2}{}",
                noise.name(),
                config.mad_factor,
                config.ratio,
                format!("{}/{}", config.windows_slow, config.windows),
                cells.join(" | "),
                per_1000,
                if is_default { "  <- default" } else { "" }
            );
            rows.push(serde_json::json!({
                "noise": noise.name(),
                "mad_factor": config.mad_factor,
                "ratio": config.ratio,
                "windows_slow": config.windows_slow,
                "windows": config.windows,
                "default": is_default,
                "factors": json_factors,
                "false_positives_per_1000_node_hours": per_1000,
                "node_hours": node_hours,
            }));
        }
    }
    println!(
        "cells: detected within 3 windows / mean delay in windows among detected (detected within {HORIZON} windows)"
    );
    serde_json::json!({ "runs": runs, "rows": rows })
}
