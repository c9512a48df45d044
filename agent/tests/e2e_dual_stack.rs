//! A dual-stack control plane in front of today's IPv4 data path: a
//! Service whose primary family is IPv6 gets both cluster IPs, and every
//! node serves it, and names it, at its IPv4 one; a headless dual-stack
//! Service publishes its pods' addresses of both families.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::net::Ipv4Addr;
use std::time::Duration;

use e2e::*;

#[test]
fn an_ipv6_primary_dual_stack_service_is_served_at_its_ipv4_address() {
    let Some(c) = cluster(
        "an_ipv6_primary_dual_stack_service_is_served_at_its_ipv4_address",
        &["--service-cidr", "fd00:10:96::/112,10.96.0.0/12"],
    ) else {
        return;
    };
    let _backends = web_backends(&c);
    c.apply(&service_yaml("web", "  ipFamilyPolicy: PreferDualStack\n"))
        .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let svc = json(&c, &["get", "svc", "web"]);
    assert_eq!(
        svc["spec"]["ipFamilies"],
        serde_json::json!(["IPv6", "IPv4"])
    );
    let ips: Vec<String> = serde_json::from_value(svc["spec"]["clusterIPs"].clone()).unwrap();
    assert_eq!(svc["spec"]["clusterIP"], ips[0].as_str());
    assert!(ips[0].starts_with("fd00:10:96::"), "{ips:?}");
    let v4: Ipv4Addr = ips[1].parse().unwrap();
    assert_eq!(v4.octets()[..1], [10], "{ips:?}");

    let url = format!("http://{v4}/");
    for ns in [c.lab.pod(1, 2).ns.clone(), c.lab.pod(2, 2).ns.clone()] {
        let counts = spread(&c, &ns, &url, 20);
        assert_eq!(
            counts.keys().cloned().collect::<Vec<_>>(),
            ["web-1", "web-2"],
            "{ns}: {counts:?}"
        );
    }

    let dig = |qtype: &str, service: &str| {
        let out = c
            .lab
            .exec(
                &c.lab.pod(1, 2).ns,
                &[
                    "dig",
                    "@10.96.0.10",
                    "+short",
                    "+time=2",
                    "+tries=2",
                    "-t",
                    qtype,
                    &format!("{service}.default.svc.cluster.local"),
                ],
            )
            .unwrap();
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines.join("\n")
    };
    eventually(
        "the IPv4 cluster IP to be the A record",
        Duration::from_secs(10),
        || dig("A", "web") == v4.to_string(),
    );
    assert_eq!(
        dig("AAAA", "web"),
        "",
        "no node serves the IPv6 cluster IP yet"
    );

    // A headless dual-stack Service: one slice per family from the pods'
    // two addresses, published as A and AAAA records.
    c.apply(&service_yaml(
        "peers",
        "  clusterIP: None\n  ipFamilyPolicy: RequireDualStack\n",
    ))
    .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let slices = json(
        &c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=peers",
        ],
    );
    let mut types: Vec<&str> = slices["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["addressType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["IPv4", "IPv6"], "{slices}");
    let (p1, p2) = (c.lab.pod(1, 1).clone(), c.lab.pod(2, 1).clone());
    eventually(
        "the pods' IPv6 addresses to be the AAAA records",
        Duration::from_secs(10),
        || dig("AAAA", "peers") == format!("{}\n{}", p1.ip6, p2.ip6),
    );
    assert_eq!(dig("A", "peers"), format!("{}\n{}", p1.ip, p2.ip));
}
