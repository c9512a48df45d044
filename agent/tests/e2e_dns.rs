//! Cluster DNS end to end on the namespace lab: pods whose resolv.conf says
//! `nameserver 10.96.0.10` (and the usual search path) resolve and reach
//! Services by short name, `name.ns` and FQDN through their node's agent;
//! `dig` checks every record type, headless and ExternalName answers, and
//! that answers follow Services being created, changed and deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use e2e::*;
use switchyard_lab::cluster::Cluster;

const CLUSTER_DNS: &str = "10.96.0.10";

/// `/etc/netns/<ns>/resolv.conf`, which `ip netns exec <ns>` bind-mounts
/// over `/etc/resolv.conf`: the lab pod gets a kubelet-style resolv.conf.
/// Written only for lab namespaces, removed on drop. (A host that already
/// keeps its own `/etc/netns` entries keeps them: only empty directories go.)
struct PodResolvConf {
    dir: PathBuf,
}

impl PodResolvConf {
    fn new(ns: &str, namespace: &str) -> Self {
        let dir = PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("resolv.conf"),
            format!(
                "nameserver {CLUSTER_DNS}\nsearch {namespace}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:3\n"
            ),
        )
        .unwrap();
        PodResolvConf { dir }
    }
}

impl Drop for PodResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("resolv.conf"));
        let _ = std::fs::remove_dir(&self.dir);
        // `/etc/netns` itself too, once no lab pod uses it (fails otherwise).
        let _ = std::fs::remove_dir("/etc/netns");
    }
}

fn have_dig() -> bool {
    let ok = Command::new("dig").arg("-v").output().is_ok();
    if !ok {
        eprintln!("dig is not installed (apt-get install bind9-dnsutils); skipping");
    }
    ok
}

/// `dig @10.96.0.10 +short …` from `ns`, lines sorted.
fn dig(c: &Cluster, ns: &str, args: &[&str]) -> Vec<String> {
    let mut full = vec!["dig", "@10.96.0.10", "+short", "+time=2", "+tries=2"];
    full.extend_from_slice(args);
    let out = c.lab.exec(ns, &full).unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Waits until the cluster DNS address answers from `ns` (the agent has
/// its first view and the data path routes 10.96.0.10 to the responder).
fn wait_for_dns(c: &Cluster, ns: &str) {
    eventually(
        "the node's DNS responder to answer at 10.96.0.10 (the agent's --dns-listen wiring)",
        Duration::from_secs(10),
        || dig(c, ns, &["-t", "TXT", "dns-version.cluster.local"]) == ["\"1.1.0\""],
    );
}

/// The response status dig reports (`NOERROR`, `NXDOMAIN`, `REFUSED`, …).
fn status(c: &Cluster, ns: &str, name: &str, qtype: &str) -> String {
    let out = c
        .lab
        .exec(
            ns,
            &[
                "dig",
                "@10.96.0.10",
                "+time=2",
                "+tries=2",
                "-t",
                qtype,
                name,
            ],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in dig output:\n{text}"))
        .to_string()
}

/// A Pod object in `namespace` for lab pod (i, j), with an optional
/// hostname/subdomain (a headless Service's per-pod name).
fn pod_yaml(
    c: &Cluster,
    (i, j): (usize, usize),
    name: &str,
    namespace: &str,
    app: &str,
    host: Option<(&str, &str)>,
) -> String {
    let host = host
        .map(|(h, sub)| format!("  hostname: {h}\n  subdomain: {sub}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    app: {app}\nspec:\n  nodeName: node-{i}\n{host}  containers:\n    - name: main\n      ports:\n        - name: http\n          containerPort: 8080\nstatus:\n  podIP: {}\n---\n",
        c.lab.pod(i, j).ip
    )
}

fn service(name: &str, namespace: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{spec}---\n")
}

const WEB_PORTS: &str = "  selector:\n    app: web\n  ports:\n    - name: http\n      port: 80\n      targetPort: http\n";

#[test]
fn pods_reach_services_by_dns_name() {
    let Some(c) = cluster("pods_reach_services_by_dns_name", &[]) else {
        return;
    };
    if !have_dig() {
        return;
    }
    let _web = web_backends(&c);
    c.swctl_ok(&["create", "namespace", "other"]).unwrap();
    let mut manifests = service("frontend-svc", "default", WEB_PORTS);
    manifests.push_str(&pod_yaml(&c, (2, 2), "api-1", "other", "api", None));
    manifests.push_str(&service(
        "api",
        "other",
        "  selector:\n    app: api\n  ports:\n    - name: http\n      port: 80\n      targetPort: http\n",
    ));
    c.apply(&manifests).unwrap();
    let _api = c.backend(2, 2, "api-1", 8080).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();

    let frontend_ip = cluster_ip(&c, "frontend-svc");
    // A client pod on each node: each asks its own node's agent.
    for (i, j) in [(1, 2), (2, 2)] {
        let ns = c.lab.pod(i, j).ns.clone();
        let _resolv = PodResolvConf::new(&ns, "default");
        wait_for_dns(&c, &ns);
        assert_eq!(
            dig(&c, &ns, &["frontend-svc.default.svc.cluster.local"]),
            [frontend_ip.as_str()],
            "pod ({i},{j})"
        );
        for name in [
            "frontend-svc",
            "frontend-svc.default",
            "frontend-svc.default.svc",
            "frontend-svc.default.svc.cluster.local",
        ] {
            let body = curl(&c, &ns, &format!("http://{name}/"))
                .unwrap_or_else(|code| panic!("curl {name} from pod ({i},{j}): exit {code}"));
            assert!(body.starts_with("web-"), "{name}: {body}");
        }
        let body = curl(&c, &ns, "http://api.other/").unwrap();
        assert!(body.starts_with("api-1"), "api.other: {body}");
        // The search path is the pod's namespace: `api` alone is not found.
        assert!(curl(&c, &ns, "http://api/").is_err());
        assert_eq!(
            dig(&c, &ns, &["+search", "frontend-svc"]),
            [frontend_ip.as_str()]
        );
    }
}

#[test]
fn dig_sees_every_record_type_and_follows_changes() {
    let Some(c) = cluster("dig_sees_every_record_type_and_follows_changes", &[]) else {
        return;
    };
    if !have_dig() {
        return;
    }
    let mut manifests = pod_yaml(&c, (1, 1), "web-1", "default", "web", Some(("web-1", "db")));
    manifests.push_str(&pod_yaml(&c, (2, 1), "web-2", "default", "web", None));
    manifests.push_str(&service("frontend-svc", "default", WEB_PORTS));
    manifests.push_str(&service(
        "db",
        "default",
        &format!("  clusterIP: None\n{WEB_PORTS}"),
    ));
    manifests.push_str(&service(
        "alias",
        "default",
        "  type: ExternalName\n  externalName: frontend-svc.default.svc.cluster.local\n",
    ));
    manifests.push_str(&service(
        "ext",
        "default",
        "  type: ExternalName\n  externalName: www.example.com\n",
    ));
    c.apply(&manifests).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();

    let ns = c.lab.pod(1, 2).ns.clone();
    wait_for_dns(&c, &ns);
    let ip = cluster_ip(&c, "frontend-svc");
    let web1 = c.lab.pod(1, 1).ip.to_string();
    let web2 = c.lab.pod(2, 1).ip.to_string();
    let web2_dashed = web2.replace('.', "-");
    let d = |args: &[&str]| dig(&c, &ns, args);

    assert_eq!(
        d(&["frontend-svc.default.svc.cluster.local"]),
        [ip.as_str()]
    );
    assert_eq!(
        d(&["FRONTEND-SVC.Default.SVC.cluster.local"]),
        [ip.as_str()]
    );
    assert_eq!(
        d(&[
            "-t",
            "SRV",
            "_http._tcp.frontend-svc.default.svc.cluster.local"
        ]),
        ["0 100 80 frontend-svc.default.svc.cluster.local."]
    );
    assert_eq!(d(&["-x", &ip]), ["frontend-svc.default.svc.cluster.local."]);
    assert_eq!(
        d(&["-t", "TXT", "dns-version.cluster.local"]),
        ["\"1.1.0\""]
    );

    // Headless: the endpoints, their names, one SRV each, reverse names.
    let mut both = vec![web1.clone(), web2.clone()];
    both.sort();
    assert_eq!(d(&["db.default.svc.cluster.local"]), both);
    assert_eq!(d(&["web-1.db.default.svc.cluster.local"]), [web1.as_str()]);
    assert_eq!(
        d(&[&format!("{web2_dashed}.db.default.svc.cluster.local")]),
        [web2.as_str()]
    );
    let mut srv = vec![
        "0 50 8080 web-1.db.default.svc.cluster.local.".to_string(),
        format!("0 50 8080 {web2_dashed}.db.default.svc.cluster.local."),
    ];
    srv.sort();
    assert_eq!(
        d(&["-t", "SRV", "_http._tcp.db.default.svc.cluster.local"]),
        srv
    );
    assert_eq!(d(&["-x", &web1]), ["web-1.db.default.svc.cluster.local."]);

    // ExternalName: a CNAME, followed when it points into the cluster.
    assert_eq!(
        d(&["alias.default.svc.cluster.local"]),
        sorted(vec![
            ip.clone(),
            "frontend-svc.default.svc.cluster.local.".into()
        ])
    );
    assert_eq!(
        d(&["-t", "CNAME", "ext.default.svc.cluster.local"]),
        ["www.example.com."]
    );

    // NODATA, NXDOMAIN, and names the cluster does not own (no upstream).
    let st = |name: &str, t: &str| status(&c, &ns, name, t);
    assert_eq!(
        st("frontend-svc.default.svc.cluster.local", "AAAA"),
        "NOERROR"
    );
    assert!(d(&["-t", "AAAA", "frontend-svc.default.svc.cluster.local"]).is_empty());
    assert_eq!(st("default.svc.cluster.local", "A"), "NOERROR");
    assert_eq!(st("nope.default.svc.cluster.local", "A"), "NXDOMAIN");
    assert_eq!(st("example.com", "A"), "REFUSED");

    // Created, changed, deleted: answers follow within one sync.
    c.apply(&service("late", "default", WEB_PORTS)).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let late_ip = cluster_ip(&c, "late");
    assert_eq!(d(&["late.default.svc.cluster.local"]), [late_ip.as_str()]);

    c.apply(&service(
        "frontend-svc",
        "default",
        &format!("{WEB_PORTS}    - name: metrics\n      port: 9090\n      targetPort: http\n"),
    ))
    .unwrap();
    c.apply(&service(
        "ext",
        "default",
        "  type: ExternalName\n  externalName: www.example.org\n",
    ))
    .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    assert_eq!(
        d(&[
            "-t",
            "SRV",
            "_metrics._tcp.frontend-svc.default.svc.cluster.local"
        ]),
        ["0 100 9090 frontend-svc.default.svc.cluster.local."]
    );
    assert_eq!(
        d(&["-t", "CNAME", "ext.default.svc.cluster.local"]),
        ["www.example.org."]
    );

    c.swctl_ok(&["delete", "svc", "late"]).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    assert_eq!(st("late.default.svc.cluster.local", "A"), "NXDOMAIN");
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Hot restarts (the new agent starts while the old one runs, as an
/// upgrade does) drop no DNS query: a query every 5 ms with a 1 s
/// timeout across five restarts with 500 Services is answered every time.
#[test]
fn dns_answers_every_query_across_five_agent_restarts() {
    let Some(mut c) = cluster("dns_answers_every_query_across_five_agent_restarts", &[]) else {
        return;
    };
    let many: String = (0..500)
        .map(|i| service(&format!("svc-{i}"), "default", WEB_PORTS))
        .collect();
    c.apply(&many).unwrap();
    c.wait_synced(Duration::from_secs(30)).unwrap();
    let server = format!("{CLUSTER_DNS}:53");
    let name = "svc-499.default.svc.cluster.local";
    let queries = switchyard_lab::DnsQueries::start(&c, (1, 2), &server, name, 1000, &[]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for restart in 1..=5 {
        c.hot_restart_agent(1)
            .unwrap_or_else(|e| panic!("restart {restart}: {e}"));
        c.wait_synced(Duration::from_secs(20)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let (tally, log) = queries.finish().unwrap();
    println!("across 5 hot restarts: {tally}");
    assert_eq!(tally.unanswered, 0, "{log}");
    assert_eq!(tally.failed, 0, "{log}");
    assert!(
        tally.queries >= 200,
        "too few queries to show anything:\n{log}"
    );
    assert!(
        c.agent_log(1).contains("took over from the previous agent"),
        "{}",
        c.agent_log(1)
    );
}

/// A Service labelled `service.kubernetes.io/service-proxy-name` is left to
/// another proxy: DNS answers for it, no agent programs it, and without
/// the label it is served again.
#[test]
fn services_left_to_another_proxy_resolve_but_are_not_programmed() {
    let Some(c) = cluster(
        "services_left_to_another_proxy_resolve_but_are_not_programmed",
        &[],
    ) else {
        return;
    };
    if !have_dig() {
        return;
    }
    let _web = web_backends(&c);
    let labelled = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: elsewhere\n  labels:\n    service.kubernetes.io/service-proxy-name: other-proxy\nspec:\n{WEB_PORTS}"
    );
    c.apply(&labelled).unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let ip = cluster_ip(&c, "elsewhere");
    let ns = c.lab.pod(1, 2).ns.clone();
    let _resolv = PodResolvConf::new(&ns, "default");
    wait_for_dns(&c, &ns);
    assert_eq!(
        dig(&c, &ns, &["elsewhere.default.svc.cluster.local"]),
        [ip.as_str()]
    );
    for node in [1, 2] {
        let table = c
            .lab
            .exec_ok(
                &c.lab.node(node).ns,
                &["nft", "list", "table", "ip", "switchyard"],
            )
            .unwrap();
        assert!(
            !table.contains(&ip),
            "node-{node} programmed {ip}:\n{table}"
        );
    }
    assert!(curl(&c, &ns, &format!("http://{ip}/")).is_err());

    c.apply(&service("elsewhere", "default", WEB_PORTS))
        .unwrap();
    c.wait_synced(Duration::from_secs(10)).unwrap();
    let body = curl(&c, &ns, &format!("http://{ip}/")).unwrap();
    assert!(body.starts_with("web-"), "{body}");
}
