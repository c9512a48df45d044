//! The IP family rules on dual-stack clusters (IPv4 primary and IPv6
//! primary), on create and on update, with kube-apiserver 1.32's results
//! and words.

use switchyard_api::resources::{Labels, ObjectMeta, ServicePort};

use super::ip_families::settle;
use super::*;
use crate::defaulting;
use crate::ip_family::IpFamily;

const V4_V6: &[IpFamily] = &[IpFamily::V4, IpFamily::V6];
const V6_V4: &[IpFamily] = &[IpFamily::V6, IpFamily::V4];
const V4: &[IpFamily] = &[IpFamily::V4];

fn service(policy: Option<&str>, families: &[&str], ips: &[&str]) -> Service {
    let mut svc = Service {
        metadata: ObjectMeta {
            name: "web".to_string(),
            namespace: Some("default".to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    svc.spec.type_ = Some("ClusterIP".to_string());
    svc.spec.selector = Some(Labels::from([("app".to_string(), "web".to_string())]));
    svc.spec.ports = vec![ServicePort {
        port: 80,
        ..Default::default()
    }];
    if let Some(policy) = policy {
        svc.spec
            .kept
            .insert("ipFamilyPolicy".into(), serde_json::json!(policy));
    }
    if !families.is_empty() {
        svc.spec
            .kept
            .insert("ipFamilies".into(), serde_json::json!(families));
    }
    svc.spec.cluster_ip = ips.first().map(|ip| ip.to_string());
    svc.spec.cluster_ips = ips.iter().map(|ip| ip.to_string()).collect();
    svc
}

/// `(policy, families)` as settled, or the errors.
fn settled(
    mut svc: Service,
    old: Option<&Service>,
    served: &[IpFamily],
) -> Result<(String, Vec<String>), String> {
    let errs = settle(&mut svc, old, served);
    if !errs.is_empty() {
        return Err(errs.to_string());
    }
    let policy = svc.spec.kept["ipFamilyPolicy"]
        .as_str()
        .unwrap()
        .to_string();
    Ok((policy, svc.ip_family_names()))
}

fn ok(policy: &str, families: &[&str]) -> Result<(String, Vec<String>), String> {
    Ok((
        policy.to_string(),
        families.iter().map(|f| f.to_string()).collect(),
    ))
}

/// Policy, families and cluster IPs asked for; policy and families settled.
type Case<'a> = (
    Option<&'a str>,
    &'a [&'a str],
    &'a [&'a str],
    (&'a str, &'a [&'a str]),
);

#[test]
fn create_on_an_ipv4_primary_dual_stack_cluster() {
    let cases: &[Case] = &[
        (None, &[], &[], ("SingleStack", &["IPv4"])),
        (
            Some("PreferDualStack"),
            &[],
            &[],
            ("PreferDualStack", &["IPv4", "IPv6"]),
        ),
        (
            Some("RequireDualStack"),
            &[],
            &[],
            ("RequireDualStack", &["IPv4", "IPv6"]),
        ),
        (None, &["IPv6"], &[], ("SingleStack", &["IPv6"])),
        (
            Some("PreferDualStack"),
            &["IPv6"],
            &[],
            ("PreferDualStack", &["IPv6", "IPv4"]),
        ),
        (None, &[], &["fd00:10:96::5"], ("SingleStack", &["IPv6"])),
        (
            Some("RequireDualStack"),
            &[],
            &["10.96.0.5", "fd00:10:96::5"],
            ("RequireDualStack", &["IPv4", "IPv6"]),
        ),
    ];
    for (policy, families, ips, (want_policy, want_families)) in cases {
        let svc = service(*policy, families, ips);
        assert_eq!(
            settled(svc, None, V4_V6),
            ok(want_policy, want_families),
            "{policy:?} {families:?} {ips:?}"
        );
    }
}

#[test]
fn an_ipv6_primary_cluster_defaults_to_ipv6() {
    assert_eq!(
        settled(service(None, &[], &[]), None, V6_V4),
        ok("SingleStack", &["IPv6"])
    );
    assert_eq!(
        settled(service(Some("RequireDualStack"), &[], &[]), None, V6_V4),
        ok("RequireDualStack", &["IPv6", "IPv4"])
    );
}

#[test]
fn two_of_anything_needs_a_dual_stack_policy() {
    assert_eq!(
        settled(service(None, &[], &["10.96.0.5", "fd00:10:96::5"]), None, V4_V6),
        Err(r#"spec.ipFamilyPolicy: Invalid value: "SingleStack": must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"#.to_string())
    );
    assert_eq!(
        settled(service(Some("PreferDualStack"), &["IPv6", "IPv4"], &["10.96.0.5"]), None, V4_V6),
        Err("spec.clusterIPs[0]: Invalid value: \"10.96.0.5\": expected an IPv6 value as indicated by `ipFamilies[0]`".to_string())
    );
}

#[test]
fn a_headless_service_without_selector_is_dual_stack_even_on_a_single_stack_cluster() {
    let mut svc = service(None, &[], &["None"]);
    svc.spec.selector = None;
    assert_eq!(
        settled(svc.clone(), None, V4),
        ok("RequireDualStack", &["IPv4", "IPv6"])
    );
    svc.spec
        .kept
        .insert("ipFamilyPolicy".into(), serde_json::json!("SingleStack"));
    assert_eq!(settled(svc, None, V4), ok("SingleStack", &["IPv4"]));
}

/// `old` as the registry stores it after a create on `served`.
fn stored(policy: Option<&str>, ips: &[&str], served: &[IpFamily]) -> Service {
    let mut svc = service(policy, &[], ips);
    assert!(settle(&mut svc, None, served).is_empty());
    svc
}

#[test]
fn an_update_adds_the_secondary_family_when_asked() {
    let old = stored(None, &["10.96.0.5"], V4_V6);
    let mut new = old.clone();
    new.spec.kept.insert(
        "ipFamilyPolicy".into(),
        serde_json::json!("RequireDualStack"),
    );
    assert_eq!(
        settled(new, Some(&old), V4_V6),
        ok("RequireDualStack", &["IPv4", "IPv6"])
    );
}

#[test]
fn single_stack_releases_the_secondary_other_policies_may_not() {
    let old = stored(
        Some("RequireDualStack"),
        &["10.96.0.5", "fd00:10:96::5"],
        V4_V6,
    );
    let mut down = old.clone();
    down.spec
        .kept
        .insert("ipFamilyPolicy".into(), serde_json::json!("SingleStack"));
    let errs = settle(&mut down, Some(&old), V4_V6);
    assert!(errs.is_empty(), "{errs}");
    assert_eq!(down.spec.cluster_ips, ["10.96.0.5"]);
    assert_eq!(down.ip_family_names(), ["IPv4"]);

    let mut dropped = old.clone();
    dropped.spec.cluster_ips.truncate(1);
    assert_eq!(
        settled(dropped, Some(&old), V4_V6),
        Err(r#"spec.ipFamilyPolicy: Invalid value: "RequireDualStack": must be 'SingleStack' to release the secondary cluster IP"#.to_string())
    );
}

#[test]
fn prefer_dual_stack_is_not_upgraded_because_the_cluster_changed() {
    let old = stored(Some("PreferDualStack"), &["10.96.0.5"], V4);
    assert_eq!(old.ip_family_names(), ["IPv4"]);
    assert_eq!(
        settled(old.clone(), Some(&old), V4_V6),
        ok("PreferDualStack", &["IPv4"])
    );
}

#[test]
fn set_addresses_and_families_never_change() {
    let cfg = Config {
        families: V4_V6.to_vec(),
        node_port_range: 30000..=32767,
    };
    let mut old = stored(
        Some("RequireDualStack"),
        &["10.96.0.5", "fd00:10:96::5"],
        V4_V6,
    );
    defaulting::service(&mut old);
    let mut new = old.clone();
    new.spec.cluster_ips[1] = "fd00:10:96::6".to_string();
    assert_eq!(
        validate(&new, Some(&old), &cfg).to_string(),
        r#"spec.clusterIPs[1]: Invalid value: []string{"10.96.0.5", "fd00:10:96::6"}: may not change once set"#
    );
    let mut upgraded_primary_changed = stored(None, &["10.96.0.5"], V4_V6);
    defaulting::service(&mut upgraded_primary_changed);
    let mut new = upgraded_primary_changed.clone();
    new.spec.cluster_ip = Some("10.96.0.6".to_string());
    new.spec.cluster_ips = vec!["10.96.0.6".to_string(), "fd00:10:96::6".to_string()];
    new.spec
        .kept
        .insert("ipFamilies".into(), serde_json::json!(["IPv4", "IPv6"]));
    assert_eq!(
        validate(&new, Some(&upgraded_primary_changed), &cfg).to_string(),
        r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.6", "fd00:10:96::6"}: may not change once set"#
    );
}

#[test]
fn an_external_name_service_takes_no_families() {
    let mut svc = service(Some("SingleStack"), &["IPv4"], &[]);
    svc.spec.type_ = Some("ExternalName".to_string());
    svc.spec.external_name = Some("db.example.com".to_string());
    svc.spec.ports.clear();
    defaulting::service(&mut svc);
    assert!(settle(&mut svc, None, V4_V6).is_empty());
    let cfg = Config {
        families: V4_V6.to_vec(),
        node_port_range: 30000..=32767,
    };
    assert_eq!(
        validate(&svc, None, &cfg).to_string(),
        "[spec.ipFamilies: Forbidden: may not be set for ExternalName services, spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services]"
    );
}
