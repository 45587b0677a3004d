//! Reading `lnetctl net show [-v N]` output, line by line.
//!
//! lnetctl prints YAML, but the agent needs five keys and must not be thrown by a field a
//! newer Lustre adds; a line reader keyed on indentation-independent names does that.

/// One local network interface (NI) as lnetctl reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNi {
    /// `tcp`, `o2ib`, `lo`.
    pub net_type: String,
    pub nid: String,
    pub status: Option<String>,
    pub interfaces: Vec<String>,
    /// `health value:` from `-v 3`; 1000 is fully healthy.
    pub health_value: Option<u32>,
}

/// Parses `lnetctl net show` output. Lines it does not know are skipped.
pub fn parse_net_show(text: &str) -> Vec<LocalNi> {
    let mut nis: Vec<LocalNi> = Vec::new();
    let mut net_type = String::new();
    let mut in_interfaces = false;
    for raw in text.lines() {
        let line = raw.trim().trim_start_matches("- ").trim();
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "net type" => {
                net_type = value.to_owned();
                in_interfaces = false;
            }
            "nid" => {
                nis.push(LocalNi {
                    net_type: net_type.clone(),
                    nid: value.to_owned(),
                    status: None,
                    interfaces: Vec::new(),
                    health_value: None,
                });
                in_interfaces = false;
            }
            "interfaces" if value.is_empty() => in_interfaces = true,
            "status" => {
                if let Some(ni) = nis.last_mut() {
                    ni.status = Some(value.to_owned());
                }
            }
            "health value" => {
                if let Some(ni) = nis.last_mut() {
                    ni.health_value = value.parse().ok();
                }
            }
            index if in_interfaces && index.chars().all(|c| c.is_ascii_digit()) => {
                if let Some(ni) = nis.last_mut() {
                    ni.interfaces.push(value.to_owned());
                }
            }
            _ => in_interfaces = false,
        }
    }
    nis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_real_lnetctl_net_show_v3_sample() {
        let text = include_str!("../../../tests/fixtures/lnetctl_net_show_v3_tcp_client.yaml");
        let nis = parse_net_show(text);
        assert_eq!(nis.len(), 2, "{nis:#?}");
        assert_eq!(nis[0].net_type, "lo");
        assert_eq!(nis[0].nid, "0@lo");
        assert_eq!(nis[0].interfaces, Vec::<String>::new());
        assert_eq!(nis[0].health_value, Some(1000));
        assert_eq!(nis[1].net_type, "tcp");
        assert_eq!(nis[1].nid, "172.31.16.218@tcp");
        assert_eq!(nis[1].status.as_deref(), Some("up"));
        assert_eq!(nis[1].interfaces, vec!["eth0".to_string()]);
        assert_eq!(nis[1].health_value, Some(1000));
    }

    #[test]
    fn empty_output_means_no_nis() {
        assert!(parse_net_show("").is_empty());
        assert!(parse_net_show("net:\n").is_empty());
    }
}
