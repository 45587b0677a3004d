//! lfleet-lnet: the agent's pure LNet logic.
//!
//! - [`parse_route_get`] reads `ip route get <MGS>`; [`parse_links`] reads `ip -o link show`;
//!   [`choose_interface`] picks the interface the route to the MGS uses, skipping a VF that
//!   is enslaved to a synthetic NIC (accelerated networking) and never choosing an IPoIB
//!   interface for the `tcp` network, which AMLFS uses even on InfiniBand VMs.
//! - [`parse_net_show`] reads `lnetctl net show [-v N]` line by line.
//! - [`plan`] compares desired and observed LNet and lists the lnetctl steps to take, none
//!   when they agree.

mod netshow;
mod route;

pub use netshow::{LocalNi, parse_net_show};
pub use route::{Link, LnetError, Route, choose_interface, parse_links, parse_route_get};

/// What LNet should look like on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredLnet {
    /// The LNet network, `tcp` (or `tcp1`...).
    pub network: String,
    /// The interface to put it on.
    pub interface: String,
    /// The address that interface has, so the NID to expect is `<address>@<network>`.
    pub address: std::net::Ipv4Addr,
}

impl DesiredLnet {
    /// The NID LNet must report once configured.
    pub fn expected_nid(&self) -> String {
        format!("{}@{}", self.address, self.network)
    }
}

/// One lnetctl step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LnetStep {
    /// `lnetctl lnet configure`: LNet is loaded but not configured.
    Configure,
    /// `lnetctl net del --net <net>`: the network exists on the wrong interface.
    DeleteNet { network: String },
    /// `lnetctl net add --net <net> --if <iface>`.
    AddNet { network: String, interface: String },
}

impl LnetStep {
    /// The lnetctl arguments for this step.
    pub fn lnetctl_args(&self) -> Vec<String> {
        match self {
            LnetStep::Configure => vec!["lnet".into(), "configure".into()],
            LnetStep::DeleteNet { network } => {
                vec!["net".into(), "del".into(), "--net".into(), network.clone()]
            }
            LnetStep::AddNet { network, interface } => vec![
                "net".into(),
                "add".into(),
                "--net".into(),
                network.clone(),
                "--if".into(),
                interface.clone(),
            ],
        }
    }
}

/// The steps from `observed` (None: LNet not configured) to `desired`; empty when they
/// already agree. Other networks (`lo`, an `o2ib` one an operator added) are left alone.
pub fn plan(desired: &DesiredLnet, observed: Option<&[LocalNi]>) -> Vec<LnetStep> {
    let Some(nis) = observed else {
        return vec![
            LnetStep::Configure,
            LnetStep::AddNet {
                network: desired.network.clone(),
                interface: desired.interface.clone(),
            },
        ];
    };
    let ours: Vec<&LocalNi> = nis
        .iter()
        .filter(|ni| ni.net_type == desired.network)
        .collect();
    let right = ours.len() == 1
        && ours[0].interfaces == [desired.interface.clone()]
        && ours[0].nid == desired.expected_nid();
    if right {
        return Vec::new();
    }
    let mut steps = Vec::new();
    if !ours.is_empty() {
        steps.push(LnetStep::DeleteNet {
            network: desired.network.clone(),
        });
    }
    steps.push(LnetStep::AddNet {
        network: desired.network.clone(),
        interface: desired.interface.clone(),
    });
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> DesiredLnet {
        DesiredLnet {
            network: "tcp".into(),
            interface: "eth0".into(),
            address: "10.0.0.5".parse().unwrap(),
        }
    }

    fn ni(net: &str, nid: &str, iface: &str) -> LocalNi {
        LocalNi {
            net_type: net.into(),
            nid: nid.into(),
            status: Some("up".into()),
            interfaces: if iface.is_empty() {
                vec![]
            } else {
                vec![iface.into()]
            },
            health_value: Some(1000),
        }
    }

    #[test]
    fn nothing_to_do_when_lnet_already_matches() {
        let observed = [ni("lo", "0@lo", ""), ni("tcp", "10.0.0.5@tcp", "eth0")];
        assert_eq!(plan(&desired(), Some(&observed)), vec![]);
    }

    #[test]
    fn unconfigured_lnet_is_configured_then_the_net_added() {
        assert_eq!(
            plan(&desired(), None),
            vec![
                LnetStep::Configure,
                LnetStep::AddNet {
                    network: "tcp".into(),
                    interface: "eth0".into()
                }
            ]
        );
    }

    #[test]
    fn a_net_on_the_wrong_interface_is_replaced_and_others_are_left_alone() {
        let observed = [
            ni("lo", "0@lo", ""),
            ni("tcp", "10.0.0.9@tcp", "enP30832s1"),
            ni("o2ib", "172.16.1.5@o2ib", "ib0"),
        ];
        let steps = plan(&desired(), Some(&observed));
        assert_eq!(
            steps,
            vec![
                LnetStep::DeleteNet {
                    network: "tcp".into()
                },
                LnetStep::AddNet {
                    network: "tcp".into(),
                    interface: "eth0".into()
                }
            ]
        );
        assert_eq!(
            steps[1].lnetctl_args().join(" "),
            "net add --net tcp --if eth0"
        );
    }
}
