//! What a Service holds (its ClusterIP, NodePorts, LoadBalancer IP) and how
//! an applied Service gets the values it did not ask for.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use rand::Rng;
use switchyard_api::resources::{LoadBalancerIngress, LoadBalancerStatus, Service};

use super::cluster_ip::ServiceCidrs;
use super::lb_ip::LbPool;
use super::node_port::NodePortRange;
use super::{AllocKey, AllocationTable};
use crate::ip_family::IpFamily;
use crate::validation::field::{FieldError, FieldErrors};
use crate::validation::golang;

/// The ranges configured on the control plane.
#[derive(Debug, Clone)]
pub struct Ranges {
    pub cluster_ips: ServiceCidrs,
    pub node_ports: NodePortRange,
    pub lb_pool: Option<LbPool>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("{0}")]
    Conflict(FieldErrors),
    #[error("failed to allocate a {0}: range is full")]
    Exhausted(&'static str),
}

/// Everything `svc` holds, read off the object itself.
pub fn held_by(svc: &Service) -> BTreeSet<AllocKey> {
    let mut keys = BTreeSet::new();
    for ip in svc
        .spec
        .cluster_ip
        .iter()
        .chain(&svc.spec.cluster_ips)
        .filter_map(|s| s.parse().ok())
    {
        keys.insert(AllocKey::ClusterIp(ip));
    }
    let health_check = svc.spec.health_check_node_port;
    for np in svc
        .spec
        .ports
        .iter()
        .map(|p| p.node_port)
        .chain([health_check])
    {
        if let Some(np) = np.and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0) {
            keys.insert(AllocKey::NodePort(np));
        }
    }
    for ingress in svc.status.load_balancer.iter().flat_map(|lb| &lb.ingress) {
        if let Some(ip) = ingress.ip.as_deref().and_then(|s| s.parse().ok()) {
            keys.insert(AllocKey::LoadBalancerIp(ip));
        }
    }
    keys
}

/// Fills in the ClusterIPs, NodePorts and LoadBalancer ingress that `svc`
/// needs, checking that explicitly requested values are free for `owner`.
/// `svc` is defaulted and validated; on error it may be partly filled and
/// must be dropped.
pub fn allocate(
    svc: &mut Service,
    owner: &str,
    table: &AllocationTable,
    ranges: &Ranges,
    rng: &mut impl Rng,
) -> Result<(), AllocError> {
    allocate_cluster_ips(svc, owner, table, ranges, rng)?;
    allocate_ports_and_lb_ip(svc, owner, table, ranges, rng)
}

/// The NodePorts, health check port and LoadBalancer ingress.
pub fn allocate_ports_and_lb_ip(
    svc: &mut Service,
    owner: &str,
    table: &AllocationTable,
    ranges: &Ranges,
    rng: &mut impl Rng,
) -> Result<(), AllocError> {
    let mut errors = FieldErrors::default();
    allocate_node_ports(svc, owner, table, ranges, rng, &mut errors)?;
    allocate_health_check_node_port(svc, owner, table, ranges, rng, &mut errors)?;
    allocate_lb_ip(svc, owner, table, ranges)?;
    errors.into_result().map_err(AllocError::Conflict)
}

/// One cluster IP per family of `spec.ipFamilies` (the primary family
/// when unset), in that order: the ones asked for must be in their
/// family's range and free, the others are drawn from it. Refusals read
/// as kube-apiserver's allocator words them, at `spec.clusterIPs`.
pub fn allocate_cluster_ips(
    svc: &mut Service,
    owner: &str,
    table: &AllocationTable,
    ranges: &Ranges,
    rng: &mut impl Rng,
) -> Result<(), AllocError> {
    if svc.service_type() == "ExternalName" || svc.is_headless() {
        svc.spec.cluster_ips = svc.spec.cluster_ip.iter().cloned().collect();
        return Ok(());
    }
    let mut ips: Vec<String> = match (&svc.spec.cluster_ips[..], svc.spec.cluster_ip.as_deref()) {
        ([], Some(ip)) if !ip.is_empty() => vec![ip.to_string()],
        (ips, _) => ips.to_vec(),
    };
    let families = families(svc, &ranges.cluster_ips);
    ips.resize(ips.len().max(families.len()), String::new());
    for (i, family) in families.into_iter().enumerate() {
        let range = ranges
            .cluster_ips
            .range_of(family)
            .ok_or(AllocError::Exhausted("serviceIP"))?;
        if ips[i].is_empty() {
            let ip = range
                .allocate(
                    |ip| !table.is_free_for(&AllocKey::ClusterIp(ip), owner),
                    rng,
                )
                .ok_or(AllocError::Exhausted("serviceIP"))?;
            ips[i] = ip.to_string();
            continue;
        }
        let Ok(ip) = ips[i].parse::<IpAddr>() else {
            // Not an address: validation says so.
            continue;
        };
        let reason = if !range.contains(ip) {
            format!(
                "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                range.cidr()
            )
        } else if !table.is_free_for(&AllocKey::ClusterIp(ip), owner) {
            "provided IP is already allocated".to_string()
        } else {
            continue;
        };
        let value = golang::value(golang::string_slice(&ips));
        return Err(AllocError::Conflict(
            FieldError::invalid(
                "spec.clusterIPs",
                value,
                format!("failed to allocate IP {ip}: {reason}"),
            )
            .into(),
        ));
    }
    svc.spec.cluster_ip = ips.first().cloned();
    svc.spec.cluster_ips = ips;
    Ok(())
}

/// The families a Service's cluster IPs are for: `spec.ipFamilies` as the
/// family rules settled it, else the cluster's primary family.
fn families(svc: &Service, cidrs: &ServiceCidrs) -> Vec<IpFamily> {
    let named = IpFamily::of_service(svc);
    match named.is_empty() {
        true => vec![cidrs.primary().family()],
        false => named,
    }
}

fn allocate_node_ports(
    svc: &mut Service,
    owner: &str,
    table: &AllocationTable,
    ranges: &Ranges,
    rng: &mut impl Rng,
    errors: &mut FieldErrors,
) -> Result<(), AllocError> {
    if !svc.has_node_ports() {
        return Ok(());
    }
    // Ports asked for by number are checked either way, and none is
    // picked for another port (a requested health check port included).
    let allocates = svc.allocates_node_ports();
    let mut taken_here: BTreeSet<i32> = svc
        .spec
        .health_check_node_port
        .filter(|_| svc.needs_health_check())
        .into_iter()
        .chain(svc.spec.ports.iter().filter_map(|p| p.node_port))
        .collect();
    for (i, port) in svc.spec.ports.iter_mut().enumerate() {
        match port.node_port {
            Some(requested) => {
                let free = u16::try_from(requested)
                    .is_ok_and(|np| table.is_free_for(&AllocKey::NodePort(np), owner));
                if !free {
                    errors.push(FieldError::invalid(
                        format!("spec.ports[{i}].nodePort"),
                        requested,
                        "provided port is already allocated",
                    ));
                }
            }
            None if !allocates => {}
            None => {
                let np = ranges
                    .node_ports
                    .allocate(
                        |p| {
                            !table.is_free_for(&AllocKey::NodePort(p), owner)
                                || taken_here.contains(&i32::from(p))
                        },
                        rng,
                    )
                    .ok_or(AllocError::Exhausted("nodePort"))?;
                port.node_port = Some(i32::from(np));
                taken_here.insert(i32::from(np));
            }
        }
    }
    Ok(())
}

/// The health check port comes from the NodePort range too, and may not
/// be one of the Service's own NodePorts.
fn allocate_health_check_node_port(
    svc: &mut Service,
    owner: &str,
    table: &AllocationTable,
    ranges: &Ranges,
    rng: &mut impl Rng,
    errors: &mut FieldErrors,
) -> Result<(), AllocError> {
    if !svc.needs_health_check() {
        svc.spec.health_check_node_port = None;
        return Ok(());
    }
    let own: BTreeSet<i32> = svc.spec.ports.iter().filter_map(|p| p.node_port).collect();
    let taken =
        |p: u16| !table.is_free_for(&AllocKey::NodePort(p), owner) || own.contains(&i32::from(p));
    match svc.spec.health_check_node_port.filter(|p| *p != 0) {
        Some(requested) => {
            if !u16::try_from(requested).is_ok_and(|p| !taken(p)) {
                errors.push(FieldError::invalid(
                    "spec.healthCheckNodePort",
                    requested,
                    "provided port is already allocated",
                ));
            }
        }
        None => {
            let np = ranges
                .node_ports
                .allocate(taken, rng)
                .ok_or(AllocError::Exhausted("healthCheckNodePort"))?;
            svc.spec.health_check_node_port = Some(i32::from(np));
        }
    }
    Ok(())
}

fn allocate_lb_ip(
    svc: &mut Service,
    owner: &str,
    table: &AllocationTable,
    ranges: &Ranges,
) -> Result<(), AllocError> {
    if svc.service_type() != "LoadBalancer" {
        svc.status.load_balancer = None;
        return Ok(());
    }
    let Some(pool) = ranges.lb_pool else {
        svc.status.load_balancer = Some(LoadBalancerStatus::default());
        return Ok(());
    };
    let current = svc
        .status
        .load_balancer
        .iter()
        .flat_map(|lb| &lb.ingress)
        .find_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok())
        .filter(|ip| pool.contains(*ip));
    let wanted = svc
        .spec
        .load_balancer_ip
        .as_deref()
        .and_then(|s| s.parse::<Ipv4Addr>().ok());
    let ip = match wanted {
        Some(ip) => claim_requested_lb_ip(ip, owner, table, &pool)?,
        None => match current {
            Some(ip) => ip,
            None => pool
                .allocate(|ip| !table.is_free_for(&AllocKey::LoadBalancerIp(ip), owner))
                .ok_or(AllocError::Exhausted("loadBalancer IP"))?,
        },
    };
    svc.status.load_balancer = Some(LoadBalancerStatus {
        ingress: vec![LoadBalancerIngress {
            ip: Some(ip.to_string()),
            hostname: None,
        }],
    });
    Ok(())
}

fn claim_requested_lb_ip(
    ip: Ipv4Addr,
    owner: &str,
    table: &AllocationTable,
    pool: &LbPool,
) -> Result<Ipv4Addr, AllocError> {
    let error = |detail: String| {
        AllocError::Conflict(
            FieldError::invalid("spec.loadBalancerIP", ip.to_string(), detail).into(),
        )
    };
    if !pool.contains(ip) {
        return Err(error(format!(
            "provided IP is not in the load-balancer pool {}",
            pool.cidr()
        )));
    }
    if !table.is_free_for(&AllocKey::LoadBalancerIp(ip), owner) {
        return Err(error("provided IP is already allocated".to_string()));
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};
    use switchyard_api::resources::ServicePort;

    fn ranges(pool: Option<&str>) -> Ranges {
        Ranges {
            cluster_ips: "10.96.0.0/12".parse().unwrap(),
            node_ports: NodePortRange::new(30000..=32767),
            lb_pool: pool.map(|p| LbPool::new(p.parse().unwrap())),
        }
    }

    /// Allocates for `default/a` with a fixed seed.
    fn alloc(s: &mut Service, table: &AllocationTable, ranges: &Ranges) -> Result<(), AllocError> {
        allocate(s, "default/a", table, ranges, &mut StdRng::seed_from_u64(1))
    }

    fn svc(type_: &str, ports: &[(i32, Option<i32>)]) -> Service {
        let mut s = Service::default();
        s.spec.type_ = Some(type_.into());
        s.spec.ports = ports
            .iter()
            .map(|(port, node_port)| ServicePort {
                port: *port,
                node_port: *node_port,
                ..Default::default()
            })
            .collect();
        s
    }

    #[test]
    fn cluster_ip_service_gets_an_ip_and_no_node_port() {
        let mut s = svc("ClusterIP", &[(80, None)]);
        alloc(&mut s, &AllocationTable::default(), &ranges(None)).unwrap();
        let ip: Ipv4Addr = s.spec.cluster_ip.clone().unwrap().parse().unwrap();
        assert!("10.96.0.0/12"
            .parse::<ipnet::Ipv4Net>()
            .unwrap()
            .contains(&ip));
        assert_eq!(s.spec.cluster_ips, vec![ip.to_string()]);
        assert_eq!(s.spec.ports[0].node_port, None);
        assert_eq!(
            held_by(&s),
            BTreeSet::from([AllocKey::ClusterIp(std::net::IpAddr::V4(ip))])
        );
    }

    #[test]
    fn dual_stack_service_gets_one_ip_per_family_in_their_order() {
        let mut ranges = ranges(None);
        ranges.cluster_ips = "10.96.0.0/12,fd00:10:96::/112".parse().unwrap();
        let mut s = svc("ClusterIP", &[(80, None)]);
        s.spec.kept.insert(
            "ipFamilies".to_string(),
            serde_json::json!(["IPv6", "IPv4"]),
        );
        alloc(&mut s, &AllocationTable::default(), &ranges).unwrap();
        let ips: Vec<std::net::IpAddr> = s
            .spec
            .cluster_ips
            .iter()
            .map(|ip| ip.parse().unwrap())
            .collect();
        assert_eq!(ips.len(), 2, "{ips:?}");
        assert!(ips[0].is_ipv6() && ips[1].is_ipv4(), "{ips:?}");
        let contains = |ip: std::net::IpAddr| {
            ranges
                .cluster_ips
                .range_of(IpFamily::of(ip))
                .is_some_and(|r| r.contains(ip))
        };
        assert!(contains(ips[0]) && contains(ips[1]));
        assert_eq!(s.spec.cluster_ip, Some(ips[0].to_string()));
        assert_eq!(
            held_by(&s),
            ips.iter().map(|ip| AllocKey::ClusterIp(*ip)).collect()
        );

        // The primary kept, a requested secondary taken by another Service.
        let table: AllocationTable = [(
            AllocKey::ClusterIp("10.96.0.20".parse().unwrap()),
            "default/other".to_string(),
        )]
        .into_iter()
        .collect();
        s.spec.cluster_ips = vec![ips[0].to_string(), "10.96.0.20".to_string()];
        let err = alloc(&mut s, &table, &ranges).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                r#"spec.clusterIPs: Invalid value: []string{{"{}", "10.96.0.20"}}: failed to allocate IP 10.96.0.20: provided IP is already allocated"#,
                ips[0]
            )
        );
    }

    #[test]
    fn requested_node_port_conflict_names_the_field() {
        let table: AllocationTable = [(AllocKey::NodePort(30080), "default/other".to_string())]
            .into_iter()
            .collect();
        let mut s = svc("NodePort", &[(80, None), (81, Some(30080))]);
        let err = alloc(&mut s, &table, &ranges(None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated"
        );
    }

    #[test]
    fn an_owner_keeps_its_own_values() {
        let table: AllocationTable = [
            (AllocKey::NodePort(30080), "default/a".to_string()),
            (
                AllocKey::ClusterIp("10.96.0.20".parse().unwrap()),
                "default/a".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        let mut s = svc("NodePort", &[(80, Some(30080))]);
        s.spec.cluster_ip = Some("10.96.0.20".into());
        alloc(&mut s, &table, &ranges(None)).unwrap();
        assert_eq!(s.spec.ports[0].node_port, Some(30080));
    }

    #[test]
    fn requested_cluster_ip_conflict() {
        let table: AllocationTable = [(
            AllocKey::ClusterIp("10.96.0.20".parse().unwrap()),
            "default/b".to_string(),
        )]
        .into_iter()
        .collect();
        let mut s = svc("ClusterIP", &[(80, None)]);
        s.spec.cluster_ip = Some("10.96.0.20".into());
        let err = alloc(&mut s, &table, &ranges(None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"spec.clusterIPs: Invalid value: []string{"10.96.0.20"}: failed to allocate IP 10.96.0.20: provided IP is already allocated"#
        );
    }

    #[test]
    fn requested_cluster_ip_must_be_in_its_family_range() {
        let mut ranges = ranges(None);
        ranges.cluster_ips = "10.96.0.0/12,fd00:10:96::/112".parse().unwrap();
        let refused = |ips: &[&str]| {
            let mut s = svc("ClusterIP", &[(80, None)]);
            s.spec.cluster_ip = Some(ips[0].to_string());
            s.spec.cluster_ips = ips.iter().map(|ip| ip.to_string()).collect();
            let families: Vec<&str> = ips
                .iter()
                .map(|ip| match ip.contains(':') {
                    true => "IPv6",
                    false => "IPv4",
                })
                .collect();
            s.spec
                .kept
                .insert("ipFamilies".into(), serde_json::json!(families));
            alloc(&mut s, &AllocationTable::default(), &ranges)
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            refused(&["10.0.0.1"]).as_deref(),
            Some(
                r#"spec.clusterIPs: Invalid value: []string{"10.0.0.1"}: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"#
            )
        );
        assert_eq!(
            refused(&["10.96.0.10", "2001:db8::1"]).as_deref(),
            Some(
                r#"spec.clusterIPs: Invalid value: []string{"10.96.0.10", "2001:db8::1"}: failed to allocate IP 2001:db8::1: the provided IP (2001:db8::1) is not in the valid range. The range of valid IPs is fd00:10:96::/112"#
            )
        );
        for never in ["10.96.0.0", "10.111.255.255", "fd00:10:96::"] {
            assert!(refused(&[never]).is_some(), "{never}");
        }
        assert_eq!(refused(&["10.111.255.254", "fd00:10:96::ffff"]), None);
    }

    #[test]
    fn load_balancer_pending_without_pool_and_assigned_with_one() {
        let mut s = svc("LoadBalancer", &[(80, None)]);
        alloc(&mut s, &AllocationTable::default(), &ranges(None)).unwrap();
        assert_eq!(s.status.load_balancer, Some(LoadBalancerStatus::default()));
        assert!(s.spec.ports[0].node_port.is_some());

        let mut s = svc("LoadBalancer", &[(80, None)]);
        alloc(
            &mut s,
            &AllocationTable::default(),
            &ranges(Some("172.18.0.200/29")),
        )
        .unwrap();
        let ingress = &s.status.load_balancer.as_ref().unwrap().ingress;
        assert_eq!(ingress[0].ip.as_deref(), Some("172.18.0.201"));
        assert!(held_by(&s).contains(&AllocKey::LoadBalancerIp("172.18.0.201".parse().unwrap())));
    }

    #[test]
    fn headless_and_external_name_hold_nothing() {
        let mut s = svc("ClusterIP", &[(80, None)]);
        s.spec.cluster_ip = Some("None".into());
        alloc(&mut s, &AllocationTable::default(), &ranges(None)).unwrap();
        assert!(held_by(&s).is_empty());
        assert_eq!(s.spec.cluster_ips, vec!["None".to_string()]);
        let mut s = svc("ExternalName", &[]);
        alloc(&mut s, &AllocationTable::default(), &ranges(None)).unwrap();
        assert!(held_by(&s).is_empty());
    }

    fn local_load_balancer(health_check: Option<i32>) -> Service {
        let mut s = svc("LoadBalancer", &[(80, Some(30080))]);
        s.spec.external_traffic_policy = Some("Local".into());
        s.spec.health_check_node_port = health_check;
        s
    }

    #[test]
    fn a_local_load_balancer_gets_a_health_check_port_apart_from_its_node_ports() {
        let ranges = Ranges {
            node_ports: NodePortRange::new(30080..=30081),
            ..ranges(None)
        };
        let mut s = local_load_balancer(None);
        alloc(&mut s, &AllocationTable::default(), &ranges).unwrap();
        assert_eq!(s.spec.health_check_node_port, Some(30081));
        assert!(held_by(&s).contains(&AllocKey::NodePort(30081)));
        assert!(held_by(&s).contains(&AllocKey::NodePort(30080)));

        let mut s = local_load_balancer(None);
        s.spec.ports[0].node_port = Some(30081);
        let table: AllocationTable = [(AllocKey::NodePort(30080), "default/b".to_string())]
            .into_iter()
            .collect();
        let err = alloc(&mut s, &table, &ranges).unwrap_err();
        assert_eq!(err, AllocError::Exhausted("healthCheckNodePort"));
    }

    #[test]
    fn a_requested_health_check_port_must_be_free() {
        let table: AllocationTable = [(AllocKey::NodePort(31000), "default/b".to_string())]
            .into_iter()
            .collect();
        for requested in [31000, 30080] {
            let mut s = local_load_balancer(Some(requested));
            let err = alloc(&mut s, &table, &ranges(None)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("spec.healthCheckNodePort: Invalid value: {requested}: provided port is already allocated")
            );
        }
    }

    #[test]
    fn a_cluster_policy_load_balancer_holds_no_health_check_port() {
        let mut s = local_load_balancer(None);
        s.spec.external_traffic_policy = Some("Cluster".into());
        alloc(&mut s, &AllocationTable::default(), &ranges(None)).unwrap();
        assert_eq!(s.spec.health_check_node_port, None);
        assert_eq!(
            held_by(&s),
            BTreeSet::from([
                AllocKey::NodePort(30080),
                AllocKey::ClusterIp(s.spec.cluster_ip.as_deref().unwrap().parse().unwrap())
            ])
        );
    }
}
