//! Reading the real InfiniBand sysfs sample (prometheus/procfs's `.ttar` text archive,
//! tests/fixtures/sysfs_class_infiniband_hfi1_mlx4_mlx5.ttar) to clone HCAs from.
//!
//! Format: entries separated by `# ttar - - -` lines; `Path: p` then `Lines: N` then N lines
//! of content then `Mode: m`; a last line ending in `EOF` means no trailing newline.

const SAMPLE: &str = include_str!("../../fixtures/sysfs_class_infiniband_hfi1_mlx4_mlx5.ttar");

/// Every file of one `.ttar` archive: (path, content).
pub fn parse(archive: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut lines = archive.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line.strip_prefix("Path: ") else {
            continue;
        };
        let Some(count) = lines
            .next()
            .and_then(|l| l.strip_prefix("Lines: "))
            .and_then(|n| n.trim().parse::<usize>().ok())
        else {
            continue;
        };
        let mut content = String::new();
        for index in 0..count {
            let Some(text) = lines.next() else { break };
            if index + 1 == count && text.ends_with("EOF") {
                content.push_str(text.strip_suffix("EOF").unwrap_or(text));
            } else {
                content.push_str(text);
                content.push('\n');
            }
        }
        files.push((path.to_owned(), content));
    }
    files
}

/// The real mlx5_0 HCA's files, relative to its directory (`ports/1/counters/symbol_error`).
pub fn mlx5_template() -> Vec<(String, String)> {
    const PREFIX: &str = "fixtures/sys/class/infiniband/mlx5_0/";
    parse(SAMPLE)
        .into_iter()
        .filter_map(|(path, content)| {
            path.strip_prefix(PREFIX)
                .map(|rel| (rel.to_owned(), content))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_real_mlx5_sample() {
        let files = mlx5_template();
        let get = |name: &str| {
            files
                .iter()
                .find(|(p, _)| p == name)
                .map(|(_, c)| c.as_str())
        };
        assert_eq!(get("ports/1/state"), Some("4: ACTIVE\n"));
        // The sample's mlx5 port says "4: ACTIVE" here; its hfi1 and mlx4 ports say LinkUp.
        assert_eq!(get("ports/1/phys_state"), Some("4: ACTIVE\n"));
        assert!(get("ports/1/rate").unwrap().contains("Gb/sec"));
        assert!(get("ports/1/counters/port_xmit_data").is_some());
        // node_guid ends in EOF in the archive: no trailing newline.
        assert!(!get("node_guid").unwrap().ends_with('\n'));
    }
}
