//! Kubernetes' `dropTypeDependentFields`: an object read back with
//! `get -o yaml`, edited to another type and applied carries fields the new
//! type refuses (NodePorts, the external policy, the health check port, the
//! load-balancer settings). A field is dropped only when the old type needed
//! it, the new one does not, and the manifest left it as it was: whatever
//! the user changed on purpose is still validated, and refused if wrong.
//! What the dropped fields held is released with the stored object.

use switchyard_api::resources::{service_type, Service};

pub fn drop_type_dependent_fields(new: &mut Service, old: &Service) {
    drop_addresses(new, old);
    drop_node_ports(new, old);
    if old.needs_health_check()
        && !new.needs_health_check()
        && new.spec.health_check_node_port == old.spec.health_check_node_port
    {
        new.spec.health_check_node_port = None;
    }
    let left_load_balancer = old.service_type() == service_type::LOAD_BALANCER
        && new.service_type() != service_type::LOAD_BALANCER;
    if left_load_balancer {
        let (spec, was) = (&mut new.spec, &old.spec);
        if spec.allocate_load_balancer_node_ports == was.allocate_load_balancer_node_ports {
            spec.allocate_load_balancer_node_ports = None;
        }
        if spec.load_balancer_ip == was.load_balancer_ip {
            spec.load_balancer_ip = None;
        }
        if spec.load_balancer_source_ranges == was.load_balancer_source_ranges {
            spec.load_balancer_source_ranges.clear();
        }
    }
    if old.is_externally_accessible()
        && !new.is_externally_accessible()
        && new.spec.external_traffic_policy == old.spec.external_traffic_policy
    {
        new.spec.external_traffic_policy = None;
    }
}

/// Moving to ExternalName leaves no address: the cluster IPs, families and
/// policy carried along as stored go.
fn drop_addresses(new: &mut Service, old: &Service) {
    let external = service_type::EXTERNAL_NAME;
    if new.service_type() != external || old.service_type() == external {
        return;
    }
    let (spec, was) = (&mut new.spec, &old.spec);
    if spec.cluster_ip == was.cluster_ip && spec.cluster_ips == was.cluster_ips {
        spec.cluster_ip = None;
        spec.cluster_ips.clear();
    }
    for field in ["ipFamilies", "ipFamilyPolicy"] {
        if spec.kept.get(field) == was.kept.get(field) {
            spec.kept.remove(field);
        }
    }
}

/// NodePorts the manifest merely carried along (same port, same NodePort
/// as stored) go when the new type has none.
fn drop_node_ports(new: &mut Service, old: &Service) {
    if new.has_node_ports() || !old.has_node_ports() {
        return;
    }
    for port in &mut new.spec.ports {
        let carried = old
            .spec
            .ports
            .iter()
            .any(|o| o.port == port.port && o.node_port == port.node_port);
        if carried {
            port.node_port = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::resources::ServicePort;

    fn local_load_balancer() -> Service {
        let mut svc = Service::default();
        svc.spec.type_ = Some("LoadBalancer".into());
        svc.spec.external_traffic_policy = Some("Local".into());
        svc.spec.health_check_node_port = Some(31000);
        svc.spec.allocate_load_balancer_node_ports = Some(true);
        svc.spec.load_balancer_source_ranges = vec!["10.0.0.0/8".into()];
        svc.spec.load_balancer_ip = Some("172.18.0.201".into());
        svc.spec.ports = vec![ServicePort {
            port: 80,
            node_port: Some(30080),
            ..Default::default()
        }];
        svc
    }

    #[test]
    fn a_load_balancer_read_back_and_made_cluster_ip_loses_what_only_it_needed() {
        let old = local_load_balancer();
        let mut new = old.clone();
        new.spec.type_ = Some("ClusterIP".into());
        drop_type_dependent_fields(&mut new, &old);
        let spec = &new.spec;
        assert_eq!(spec.ports[0].node_port, None);
        assert_eq!(spec.health_check_node_port, None);
        assert_eq!(spec.external_traffic_policy, None);
        assert_eq!(spec.allocate_load_balancer_node_ports, None);
        assert_eq!(spec.load_balancer_ip, None);
        assert!(spec.load_balancer_source_ranges.is_empty());
    }

    #[test]
    fn fields_changed_on_purpose_stay_for_validation_to_judge() {
        let old = local_load_balancer();
        let mut new = old.clone();
        new.spec.type_ = Some("ClusterIP".into());
        new.spec.external_traffic_policy = Some("Cluster".into());
        new.spec.ports[0].node_port = Some(30081);
        new.spec.health_check_node_port = Some(31001);
        drop_type_dependent_fields(&mut new, &old);
        assert_eq!(new.spec.external_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(new.spec.ports[0].node_port, Some(30081));
        assert_eq!(new.spec.health_check_node_port, Some(31001));
    }

    #[test]
    fn an_external_name_drops_the_addresses_it_was_stored_with_unless_changed() {
        let mut old = local_load_balancer();
        old.spec.cluster_ip = Some("10.96.0.5".into());
        old.spec.cluster_ips = vec!["10.96.0.5".into(), "fd00:10:96::5".into()];
        old.spec
            .kept
            .insert("ipFamilies".into(), serde_json::json!(["IPv4", "IPv6"]));
        old.spec.kept.insert(
            "ipFamilyPolicy".into(),
            serde_json::json!("RequireDualStack"),
        );
        let mut new = old.clone();
        new.spec.type_ = Some("ExternalName".into());
        drop_type_dependent_fields(&mut new, &old);
        assert_eq!(new.spec.cluster_ip, None);
        assert!(new.spec.cluster_ips.is_empty());
        assert!(new.spec.kept.is_empty(), "{:?}", new.spec.kept);

        let mut asked = old.clone();
        asked.spec.type_ = Some("ExternalName".into());
        asked
            .spec
            .kept
            .insert("ipFamilyPolicy".into(), serde_json::json!("SingleStack"));
        drop_type_dependent_fields(&mut asked, &old);
        assert_eq!(
            asked.spec.kept["ipFamilyPolicy"], "SingleStack",
            "left for validation"
        );
    }

    #[test]
    fn a_load_balancer_made_node_port_keeps_its_node_ports_and_policy() {
        let old = local_load_balancer();
        let mut new = old.clone();
        new.spec.type_ = Some("NodePort".into());
        drop_type_dependent_fields(&mut new, &old);
        assert_eq!(new.spec.ports[0].node_port, Some(30080));
        assert_eq!(new.spec.external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(new.spec.health_check_node_port, None);
        assert_eq!(new.spec.allocate_load_balancer_node_ports, None);
    }
}
