//! Client upgrades in waves: the pure planner. Given the nodes (the coordinator's facts and
//! Slurm's view) and a request (target version, which nodes, wave size, failure limit), it
//! says which nodes go in which wave and which are skipped and why; the executor
//! walks the waves step by step.
//!
//! Rules:
//! - Only nodes the request names (a host list; every node when absent) are considered.
//! - Head and login nodes are skipped unless named explicitly (a host list that lists them).
//! - A node drained, down or failed by someone else (a reason not starting `lfleet:`), or in
//!   a power, reboot or maintenance state, is skipped and never touched.
//! - Silent and powered-down nodes are skipped (nothing to upgrade until they return).
//! - A node already at the target version is skipped.
//! - Waves hold at most `wave` nodes (a count, or a share of the eligible nodes, at least
//!   one), in node-name order, so a rollout is reproducible.

use lfleet_types::fleet::Health;
use lfleet_types::{ClientVersion, Role};

use crate::hostlist::HostPattern;

/// How many nodes a wave takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WaveSize {
    Count(usize),
    /// A share of the eligible nodes, in percent (at least one node a wave).
    Percent(f64),
}

impl std::str::FromStr for WaveSize {
    type Err = String;

    /// `4` or `10%`.
    fn from_str(text: &str) -> Result<WaveSize, String> {
        if let Some(percent) = text.strip_suffix('%') {
            match percent.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(WaveSize::Percent(p)),
                _ => Err(format!("{text:?}: a share is from 0% (excluded) to 100%")),
            }
        } else {
            match text.parse::<usize>() {
                Ok(n) if n > 0 => Ok(WaveSize::Count(n)),
                _ => Err(format!(
                    "{text:?}: a wave is a node count (1 or more) or a share like 10%"
                )),
            }
        }
    }
}

/// What an operator asks for.
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    pub client: ClientVersion,
    /// Host lists; `None`: every node.
    pub nodes: Option<Vec<HostPattern>>,
    pub wave: WaveSize,
    /// The rollout pauses by itself when this many nodes failed.
    pub max_failures: usize,
}

impl UpgradeRequest {
    /// From an operator's words: the version, a host list (`n[1-4],login1`; empty: every
    /// node), a wave (`4`, `10%`; empty: 1) and the failure limit. Errors name
    /// the argument.
    pub fn parse(
        client: &str,
        nodes: &str,
        wave: &str,
        max_failures: u32,
    ) -> Result<UpgradeRequest, String> {
        let client = client
            .parse::<ClientVersion>()
            .map_err(|e| format!("--client: {e}"))?;
        let nodes = if nodes.trim().is_empty() {
            None
        } else {
            Some(vec![
                HostPattern::parse(nodes.trim()).map_err(|e| format!("--nodes: {e}"))?,
            ])
        };
        let wave = if wave.is_empty() { "1" } else { wave }
            .parse::<WaveSize>()
            .map_err(|e| format!("--wave {e}"))?;
        Ok(UpgradeRequest {
            client,
            nodes,
            wave,
            max_failures: max_failures as usize,
        })
    }
}

/// Slurm's view of a node, as far as the planner cares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlurmState {
    pub flags: Vec<String>,
    pub reason: String,
}

impl SlurmState {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Out (drained, down, failed) by someone other than lfleet.
    pub fn out_by_others(&self) -> bool {
        let out = ["DRAIN", "DRAINED", "DRAINING", "DOWN", "FAIL", "FAILING"]
            .iter()
            .any(|f| self.has(f));
        out && !self.reason.starts_with("lfleet:")
    }

    /// Power, reboot and maintenance states: someone else's business.
    pub fn managed_elsewhere(&self) -> bool {
        [
            "POWER_DOWN",
            "POWERED_DOWN",
            "POWERING_DOWN",
            "POWERING_UP",
            "REBOOT_REQUESTED",
            "REBOOT_ISSUED",
            "MAINTENANCE",
            "RESERVED",
        ]
        .iter()
        .any(|f| self.has(f))
    }
}

/// A node as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub role: Role,
    pub health: Health,
    /// The client version the node reports loaded (`/sys/module/lustre/version`).
    pub client_version: String,
    /// `None` when Slurm does not know the node.
    pub slurm: Option<SlurmState>,
}

/// Why a node is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    HeadOrLogin(Role),
    OutByOthers(String),
    ManagedElsewhere(String),
    NotInSlurm,
    Silent,
    PoweredDown,
    AlreadyAtVersion,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::HeadOrLogin(role) => {
                write!(f, "a {role} node (name it with --nodes to include it)")
            }
            Skip::OutByOthers(reason) => {
                write!(f, "drained by someone else ({reason:?}); left alone")
            }
            Skip::ManagedElsewhere(state) => write!(f, "Slurm has it in {state}; left alone"),
            Skip::NotInSlurm => f.write_str("Slurm does not know it"),
            Skip::Silent => f.write_str("silent: it would not answer"),
            Skip::PoweredDown => f.write_str("powered down"),
            Skip::AlreadyAtVersion => f.write_str("already runs the version"),
        }
    }
}

/// The waves, and what is left out.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPlan {
    pub waves: Vec<Vec<String>>,
    pub skipped: Vec<(String, Skip)>,
}

/// Plans a rollout.
pub fn plan(request: &UpgradeRequest, candidates: &[Candidate]) -> RolloutPlan {
    let mut eligible = Vec::new();
    let mut skipped = Vec::new();
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for node in sorted {
        let named = match &request.nodes {
            Some(patterns) => {
                if !patterns.iter().any(|p| p.matches(&node.name)) {
                    continue;
                }
                true
            }
            None => false,
        };
        let skip = if node.role != Role::Compute && !named {
            Some(Skip::HeadOrLogin(node.role))
        } else if node.health == Health::PoweredDown {
            Some(Skip::PoweredDown)
        } else if node.health == Health::Silent {
            Some(Skip::Silent)
        } else if request.client.matches_module(&node.client_version) {
            Some(Skip::AlreadyAtVersion)
        } else {
            match &node.slurm {
                None => Some(Skip::NotInSlurm),
                Some(slurm) if slurm.managed_elsewhere() => {
                    Some(Skip::ManagedElsewhere(slurm.flags.join("+")))
                }
                Some(slurm) if slurm.out_by_others() => {
                    Some(Skip::OutByOthers(slurm.reason.clone()))
                }
                Some(_) => None,
            }
        };
        match skip {
            Some(skip) => skipped.push((node.name.clone(), skip)),
            None => eligible.push(node.name.clone()),
        }
    }
    let size = match request.wave {
        WaveSize::Count(n) => n,
        WaveSize::Percent(p) => ((eligible.len() as f64 * p / 100.0).floor() as usize).max(1),
    }
    .max(1);
    RolloutPlan {
        waves: eligible.chunks(size).map(<[String]>::to_vec).collect(),
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        name: &str,
        role: Role,
        health: Health,
        version: &str,
        slurm: Option<(&str, &str)>,
    ) -> Candidate {
        Candidate {
            name: name.into(),
            role,
            health,
            client_version: version.into(),
            slurm: slurm.map(|(flags, reason)| SlurmState {
                flags: flags.split('+').map(String::from).collect(),
                reason: reason.into(),
            }),
        }
    }

    fn request(wave: &str, nodes: Option<&str>) -> UpgradeRequest {
        UpgradeRequest {
            client: "2.15.8".parse().unwrap(),
            nodes: nodes.map(|n| vec![HostPattern::parse(n).unwrap()]),
            wave: wave.parse().unwrap(),
            max_failures: 1,
        }
    }

    #[test]
    fn waves_in_name_order_and_every_skip_says_why() {
        let idle = Some(("IDLE", ""));
        let nodes = vec![
            node("n3", Role::Compute, Health::Healthy, "2.15.7", idle),
            node("n1", Role::Compute, Health::Healthy, "2.15.7", idle),
            node("n2", Role::Compute, Health::Unhealthy, "2.15.7", idle),
            node(
                "n4",
                Role::Compute,
                Health::Healthy,
                "2.15.7",
                Some(("IDLE+DRAIN", "disk swap")),
            ),
            node(
                "n5",
                Role::Compute,
                Health::Healthy,
                "2.15.7",
                Some(("IDLE+DRAIN", "lfleet: import-not-full id=1")),
            ),
            node("n6", Role::Compute, Health::Silent, "2.15.7", idle),
            node(
                "n7",
                Role::Compute,
                Health::PoweredDown,
                "2.15.7",
                Some(("IDLE+POWERED_DOWN", "")),
            ),
            node("n8", Role::Compute, Health::Healthy, "2.15.8", idle),
            node("sched", Role::Head, Health::Healthy, "2.15.7", idle),
            node("n9", Role::Compute, Health::Healthy, "2.15.7", None),
        ];
        let rollout = plan(&request("2", None), &nodes);
        assert_eq!(
            rollout.waves,
            vec![
                vec!["n1".to_string(), "n2".into()],
                vec!["n3".into(), "n5".into()]
            ]
        );
        let why = |name: &str| {
            rollout
                .skipped
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
        };
        assert_eq!(why("n4"), Some(Skip::OutByOthers("disk swap".into())));
        assert_eq!(why("n6"), Some(Skip::Silent));
        assert_eq!(why("n7"), Some(Skip::PoweredDown));
        assert_eq!(why("n8"), Some(Skip::AlreadyAtVersion));
        assert_eq!(why("sched"), Some(Skip::HeadOrLogin(Role::Head)));
        assert_eq!(why("n9"), Some(Skip::NotInSlurm));
        // Named explicitly, a head node is included; nodes not named are not considered.
        let named = plan(&request("50%", Some("sched,n1")), &nodes);
        assert_eq!(
            named.waves,
            vec![vec!["n1".to_string()], vec!["sched".into()]]
        );
        assert!(named.skipped.is_empty());
    }

    #[test]
    fn wave_sizes_parse_and_a_share_is_at_least_one_node() {
        assert_eq!("4".parse::<WaveSize>().unwrap(), WaveSize::Count(4));
        assert_eq!("10%".parse::<WaveSize>().unwrap(), WaveSize::Percent(10.0));
        for bad in ["0", "0%", "101%", "x", "-1"] {
            assert!(bad.parse::<WaveSize>().is_err(), "{bad}");
        }
        let nodes: Vec<Candidate> = (1..=5)
            .map(|i| {
                node(
                    &format!("n{i}"),
                    Role::Compute,
                    Health::Healthy,
                    "2.15.7",
                    Some(("IDLE", "")),
                )
            })
            .collect();
        assert_eq!(plan(&request("10%", None), &nodes).waves.len(), 5);
    }

    proptest::proptest! {
        #[test]
        fn no_wave_is_larger_than_asked_and_no_node_appears_twice(
            count in 1usize..60, wave in 1usize..10,
        ) {
            let nodes: Vec<Candidate> = (0..count)
                .map(|i| node(&format!("n{i:02}"), Role::Compute, Health::Healthy, "2.15.7", Some(("IDLE", ""))))
                .collect();
            let rollout = plan(&request(&wave.to_string(), None), &nodes);
            let mut seen = std::collections::BTreeSet::new();
            for w in &rollout.waves {
                proptest::prop_assert!(w.len() <= wave && !w.is_empty());
                for n in w {
                    proptest::prop_assert!(seen.insert(n.clone()));
                }
            }
            proptest::prop_assert_eq!(seen.len(), count);
        }
    }
}
