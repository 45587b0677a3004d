//! Reading `ip route get` and `ip -o link show`, and choosing LNet's interface from them.

use std::net::Ipv4Addr;

/// What `ip route get <addr>` says about the way to an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dev: String,
    pub src: Option<Ipv4Addr>,
    pub via: Option<Ipv4Addr>,
}

/// One interface from `ip -o link show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub flags: Vec<String>,
    /// The interface this one is enslaved to (`master eth0`), as a VF is to its synthetic NIC.
    pub master: Option<String>,
    /// `link/ether`, `link/infiniband`, `link/loopback`.
    pub link_type: Option<String>,
}

impl Link {
    pub fn is_slave(&self) -> bool {
        self.master.is_some() || self.flags.iter().any(|flag| flag == "SLAVE")
    }
}

/// Why LNet's interface could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LnetError {
    #[error("`ip route get` output has no `dev` field: {output:?}")]
    NoRouteDevice { output: String },
    #[error("the route to the MGS leaves through {dev}, which `ip link` does not list")]
    UnknownDevice { dev: String },
    #[error(
        "the route to the MGS leaves through {dev}, an InfiniBand interface; AMLFS's LNet network is tcp on the Ethernet NIC"
    )]
    InfinibandRoute { dev: String },
    #[error("configured interface {interface} does not exist")]
    NoSuchInterface { interface: String },
    #[error(
        "configured interface {interface} is a VF enslaved to {master}; LNet must use {master}"
    )]
    SlaveInterface { interface: String, master: String },
}

/// Parses `ip route get` output: `10.0.1.4 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0`.
pub fn parse_route_get(output: &str) -> Result<Route, LnetError> {
    let words: Vec<&str> = output.split_whitespace().collect();
    let after = |key: &str| {
        words
            .windows(2)
            .find(|pair| pair[0] == key)
            .map(|pair| pair[1])
    };
    let dev = after("dev").ok_or_else(|| LnetError::NoRouteDevice {
        output: output.trim().to_owned(),
    })?;
    Ok(Route {
        dev: dev.to_owned(),
        src: after("src").and_then(|s| s.parse().ok()),
        via: after("via").and_then(|s| s.parse().ok()),
    })
}

/// Parses `ip -o link show`: one interface per line,
/// `3: enP30832s1: <BROADCAST,MULTICAST,SLAVE,UP,LOWER_UP> mtu 1500 ... master eth0 state UP ...\    link/ether ...`.
/// Lines that do not have that shape are skipped.
pub fn parse_links(output: &str) -> Vec<Link> {
    output
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ": ");
            let _index = parts.next()?.trim().parse::<u32>().ok()?;
            let name = parts.next()?.trim();
            // veth peers print `name@ifN`.
            let name = name.split('@').next().unwrap_or(name).to_owned();
            let rest = parts.next()?;
            let flags = rest
                .strip_prefix('<')
                .and_then(|r| r.split_once('>'))
                .map(|(flags, _)| flags.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            let words: Vec<&str> = rest.split_whitespace().collect();
            let master = words
                .windows(2)
                .find(|pair| pair[0] == "master")
                .map(|pair| pair[1].to_owned());
            let link_type = words
                .iter()
                .find(|word| word.starts_with("link/"))
                .map(|word| (*word).to_owned());
            Some(Link {
                name,
                flags,
                master,
                link_type,
            })
        })
        .collect()
}

/// The interface LNet's `tcp` network should use.
///
/// With `configured` (`interface = "eth1"` in the config) that interface is checked and used.
/// Otherwise it is the device of the route to the MGS; if that is a VF enslaved to a synthetic
/// NIC, its master is used (traffic through the VF is the synthetic NIC's traffic).
pub fn choose_interface(
    route: &Route,
    links: &[Link],
    configured: Option<&str>,
) -> Result<String, LnetError> {
    let find = |name: &str| links.iter().find(|link| link.name == name);
    if let Some(interface) = configured {
        let link = find(interface).ok_or_else(|| LnetError::NoSuchInterface {
            interface: interface.to_owned(),
        })?;
        if let Some(master) = &link.master {
            return Err(LnetError::SlaveInterface {
                interface: interface.to_owned(),
                master: master.clone(),
            });
        }
        return Ok(interface.to_owned());
    }
    let link = find(&route.dev).ok_or_else(|| LnetError::UnknownDevice {
        dev: route.dev.clone(),
    })?;
    if link.link_type.as_deref() == Some("link/infiniband") || route.dev.starts_with("ib") {
        return Err(LnetError::InfinibandRoute {
            dev: route.dev.clone(),
        });
    }
    match &link.master {
        Some(master) => Ok(master.clone()),
        None => Ok(link.name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINKS: &str = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq state UP mode DEFAULT group default qlen 1000\\    link/ether 00:0d:3a:9b:1c:2e brd ff:ff:ff:ff:ff:ff
3: enP30832s1: <BROADCAST,MULTICAST,SLAVE,UP,LOWER_UP> mtu 1500 qdisc mq master eth0 state UP mode DEFAULT group default qlen 1000\\    link/ether 00:0d:3a:9b:1c:2e brd ff:ff:ff:ff:ff:ff
4: ib0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 2044 qdisc mq state UP mode DEFAULT group default qlen 256\\    link/infiniband 00:00:01:48:fe:80:00:00:00:00:00:00:00:15:5d:ff:fd:33:ff:1c brd 00:ff:ff:ff:ff:12:40:1b:80:01:00:00:00:00:00:00:ff:ff:ff:ff
";

    #[test]
    fn parses_route_get() {
        let route =
            parse_route_get("10.0.1.4 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0 \n    cache \n")
                .unwrap();
        assert_eq!(route.dev, "eth0");
        assert_eq!(route.src, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(route.via, Some(Ipv4Addr::new(10, 0, 0, 1)));
        let local = parse_route_get("10.0.0.7 dev eth0 src 10.0.0.5 uid 0 \n    cache \n").unwrap();
        assert_eq!(local.via, None);
        assert!(parse_route_get("RTNETLINK answers: Network is unreachable").is_err());
    }

    #[test]
    fn parses_links_with_masters_and_types() {
        let links = parse_links(LINKS);
        assert_eq!(links.len(), 4);
        assert!(!links[1].is_slave());
        assert!(links[2].is_slave());
        assert_eq!(links[2].master.as_deref(), Some("eth0"));
        assert_eq!(links[3].link_type.as_deref(), Some("link/infiniband"));
    }

    #[test]
    fn chooses_the_route_device_and_never_a_vf_or_ib() {
        let links = parse_links(LINKS);
        let route = |dev: &str| Route {
            dev: dev.into(),
            src: None,
            via: None,
        };
        assert_eq!(
            choose_interface(&route("eth0"), &links, None).unwrap(),
            "eth0"
        );
        assert_eq!(
            choose_interface(&route("enP30832s1"), &links, None).unwrap(),
            "eth0"
        );
        assert!(matches!(
            choose_interface(&route("ib0"), &links, None),
            Err(LnetError::InfinibandRoute { .. })
        ));
        assert!(matches!(
            choose_interface(&route("eth9"), &links, None),
            Err(LnetError::UnknownDevice { .. })
        ));
        assert_eq!(
            choose_interface(&route("eth0"), &links, Some("eth0")).unwrap(),
            "eth0"
        );
        assert!(matches!(
            choose_interface(&route("eth0"), &links, Some("enP30832s1")),
            Err(LnetError::SlaveInterface { .. })
        ));
    }
}
