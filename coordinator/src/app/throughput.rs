//! Throughput over the last hour, from the fleet's bounded per-mount history
//! ([`crate::history`]): a node's mounts, and each filesystem's total with its busiest nodes.
//! Unknown steps stay unknown (a silent node is a gap, not zero).

use lfleet_types::fleet::{FilesystemThroughput, MountThroughput, TopNode};

use super::{ApiError, Coordinator};
use crate::history;

impl Coordinator {
    /// Each mount of `name` over the last hour.
    pub fn node_throughput(&self, name: &str) -> Result<Vec<MountThroughput>, ApiError> {
        let now = self.now_ms();
        let fleet = self.fleet();
        let node = fleet
            .nodes
            .get(name)
            .ok_or_else(|| ApiError::NotFound(format!("no node {name:?}")))?;
        Ok(node
            .telemetry
            .history
            .series
            .iter()
            .map(|(mount_point, series)| MountThroughput {
                mount_point: mount_point.clone(),
                series: history::view(series, now),
            })
            .collect())
    }

    /// Every filesystem's total over the last hour (summed over the nodes that reported in
    /// each step) and its `top` busiest nodes by their mean over the hour.
    pub fn filesystem_throughput(&self, top: usize) -> Vec<FilesystemThroughput> {
        let now = self.now_ms();
        let fleet = self.fleet();
        fleet
            .desired
            .filesystems
            .iter()
            .map(|filesystem| {
                let point = filesystem.spec.mount_point.as_str();
                let mut total = history::empty_view(now);
                let mut busiest: Vec<(f64, &str)> = Vec::new();
                for (name, node) in &fleet.nodes {
                    if !filesystem.applies_to(&node.identity) {
                        continue;
                    }
                    let Some(series) = node.telemetry.history.series.get(point) else {
                        continue;
                    };
                    history::add_into(&mut total, series);
                    if let Some(mean) = history::mean_total(series, now) {
                        busiest.push((mean, name));
                    }
                }
                busiest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
                busiest.truncate(top);
                let top_nodes = busiest
                    .into_iter()
                    .map(|(mean, name)| TopNode {
                        node: name.to_owned(),
                        mean_bytes_per_second: mean,
                        series: history::view(
                            &fleet.nodes[name].telemetry.history.series[point],
                            now,
                        ),
                    })
                    .collect();
                FilesystemThroughput {
                    name: filesystem.name.clone(),
                    mount_point: point.to_owned(),
                    total,
                    top_nodes,
                }
            })
            .collect()
    }
}
