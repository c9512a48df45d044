//! The user's own kubectl against the control plane's Kubernetes API: the
//! seed's commands verbatim and the everyday idioms, each with the exact
//! output kubectl prints against kube-apiserver 1.32. Skips loudly where
//! kubectl is not installed; fails instead under `SWITCHYARD_E2E=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::ControlPlane;

/// kubectl with one control plane's kubeconfig and a discovery cache of
/// its own (a shared cache would outlive the control plane's port).
struct Kubectl {
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    fn new(kubeconfig: &Path) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env_remove("KUBECONFIG");
        c
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        support::output_of(self.command(args), stdin)
    }

    /// stdout of a command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_stdin(args, None)
    }

    fn ok_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// stderr of a command that must fail.
    fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

fn start() -> Option<(ControlPlane, Kubectl)> {
    start_with(&[])
}

fn start_with(flags: &[&str]) -> Option<(ControlPlane, Kubectl)> {
    if !switchyard_lab::require_kubectl(&test_name()) {
        return None;
    }
    let cp = ControlPlane::start(flags);
    let kubectl = Kubectl::new(&cp.config());
    Some((cp, kubectl))
}

fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("kubectl")
        .to_string()
}

/// A table's lines with the AGE column (last) blanked: ages tick.
fn without_age(table: &str) -> String {
    table
        .lines()
        .map(|l| match l.rfind("   ") {
            Some(_) if l.trim().is_empty() => String::new(),
            _ => {
                let mut cells: Vec<&str> = l.split_whitespace().collect();
                cells.pop();
                cells.join(" ")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: frontend
  labels:
    app: frontend
spec:
  replicas: 2
  strategy:
    type: RollingUpdate
  selector:
    matchLabels:
      app: frontend
  template:
    metadata:
      labels:
        app: frontend
    spec:
      containers:
      - name: web
        image: registry.example/frontend:1.0
        ports:
        - containerPort: 5000
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
";

#[test]
fn the_seeds_commands_verbatim() {
    let Some((cp, kubectl)) = start() else { return };
    assert_eq!(
        kubectl.ok_stdin(&["apply", "-f", "-"], Some(DEPLOYMENT)),
        "deployment.apps/frontend created\n"
    );
    assert_eq!(
        kubectl.ok(&[
            "expose",
            "deploy",
            "frontend",
            "--name=frontend-svc",
            "--port=80",
            "--target-port=5000",
            "--type=NodePort",
        ]),
        "service/frontend-svc exposed\n"
    );
    let svc = cp.json(&["get", "svc", "frontend-svc"]);
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert_eq!(
        without_age(&kubectl.ok(&["get", "service,endpoints", "frontend-svc"])),
        format!(
            "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S)\n\
             service/frontend-svc NodePort {ip} <none> 80:{node_port}/TCP\n\
             \n\
             NAME ENDPOINTS\n\
             endpoints/frontend-svc <none>"
        )
    );
    assert_eq!(
        kubectl.ok(&["delete", "service", "frontend-svc"]),
        "service \"frontend-svc\" deleted\n"
    );
    assert_eq!(
        kubectl.ok(&[
            "create",
            "service",
            "nodeport",
            "frontend-svc",
            "--tcp=80:5000",
            "--node-port=32233",
        ]),
        "service/frontend-svc created\n"
    );
    let ip = kubectl.ok(&[
        "get",
        "svc",
        "frontend-svc",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(
        ip,
        cp.json(&["get", "svc", "frontend-svc"])["spec"]["clusterIP"]
    );
    assert_eq!(
        kubectl.ok(&[
            "get",
            "svc",
            "frontend-svc",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}"
        ]),
        "32233"
    );
}

#[test]
fn apply_creates_configures_and_leaves_unchanged() {
    let Some((_cp, kubectl)) = start() else {
        return;
    };
    let apply = |yaml: &str| kubectl.ok_stdin(&["apply", "-f", "-"], Some(yaml));
    assert_eq!(apply(DEPLOYMENT), "deployment.apps/frontend created\n");
    assert_eq!(apply(DEPLOYMENT), "deployment.apps/frontend unchanged\n");
    assert_eq!(apply(SERVICE), "service/web created\n");
    assert_eq!(apply(SERVICE), "service/web unchanged\n");
    let changed = SERVICE.replace("targetPort: 8080", "targetPort: 8081");
    assert_eq!(apply(&changed), "service/web configured\n");
    assert_eq!(
        kubectl.ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ]),
        "8081"
    );
    // What kubectl apply records, so the next apply can compute its patch.
    let annotations = kubectl.ok(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
    ]);
    let recorded: serde_json::Value = serde_json::from_str(&annotations).unwrap();
    assert_eq!(recorded["spec"]["ports"][0]["targetPort"], 8081);
}

#[test]
fn field_validation_and_validation_errors_word_for_word() {
    let Some((_cp, kubectl)) = start() else {
        return;
    };
    let typo = SERVICE.replace("selector:", "selektor:");
    assert_eq!(
        kubectl.fails(&["apply", "-f", "-"], Some(&typo)),
        "Error from server (BadRequest): error when creating \"STDIN\": Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.selektor\"\n"
    );
    let out = kubectl.run(&["apply", "--validate=warn", "-f", "-"], Some(&typo));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Warning: unknown field \"spec.selektor\"\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "service/web created\n"
    );
    let bad_port = SERVICE
        .replace("port: 80\n", "port: 70000\n")
        .replace("name: web", "name: api");
    assert_eq!(
        kubectl.fails(&["apply", "-f", "-"], Some(&bad_port)),
        "The Service \"api\" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive\n"
    );
    assert_eq!(
        kubectl.fails(&["patch", "svc", "web", "-p", r#"{"spec":{"clusterIP":"10.96.200.200"}}"#], None),
        "The Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.96.200.200\"}: may not change once set\n"
    );
    let dual = SERVICE
        .replace("spec:\n", "spec:\n  ipFamilyPolicy: RequireDualStack\n")
        .replace("name: web", "name: dual");
    assert_eq!(
        kubectl.fails(&["apply", "-f", "-"], Some(&dual)),
        "The Service \"dual\" is invalid: spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services\n"
    );
    // Nothing of a refused write is stored.
    assert_eq!(
        kubectl.fails(&["get", "svc", "dual"], None),
        "Error from server (NotFound): services \"dual\" not found\n"
    );
    assert_eq!(
        kubectl.fails(&["get", "svc", "api"], None),
        "Error from server (NotFound): services \"api\" not found\n"
    );
}

#[test]
fn dry_runs_write_nothing_and_server_side_apply_is_named() {
    let Some((_cp, kubectl)) = start() else {
        return;
    };
    assert_eq!(
        kubectl.ok_stdin(&["apply", "--dry-run=server", "-f", "-"], Some(SERVICE)),
        "service/web created (server dry run)\n"
    );
    assert_eq!(
        kubectl.fails(&["get", "svc", "web"], None),
        "Error from server (NotFound): services \"web\" not found\n"
    );
    kubectl.ok_stdin(&["apply", "-f", "-"], Some(SERVICE));
    assert_eq!(
        kubectl.ok(&["delete", "svc", "web", "--dry-run=server"]),
        "service \"web\" deleted (server dry run)\n"
    );
    assert_eq!(
        kubectl.ok(&["get", "svc", "web", "-o", "name"]),
        "service/web\n"
    );
    let refused = kubectl.fails(&["apply", "--server-side", "-f", "-"], Some(SERVICE));
    assert!(
        refused.contains(
            "server-side apply (application/apply-patch+yaml) is not supported by Switchyard"
        ),
        "{refused}"
    );
}

#[test]
fn describe_service_reads_as_kubectl_prints_it() {
    let Some((cp, kubectl)) = start() else { return };
    kubectl.ok(&[
        "create",
        "service",
        "nodeport",
        "frontend-svc",
        "--tcp=80:5000",
        "--node-port=32233",
    ]);
    let ip = cp.json(&["get", "svc", "frontend-svc"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        kubectl.ok(&["describe", "svc", "frontend-svc"]),
        format!(
            "Name:                     frontend-svc\n\
             Namespace:                default\n\
             Labels:                   app=frontend-svc\n\
             Annotations:              <none>\n\
             Selector:                 app=frontend-svc\n\
             Type:                     NodePort\n\
             IP Family Policy:         SingleStack\n\
             IP Families:              IPv4\n\
             IP:                       {ip}\n\
             IPs:                      {ip}\n\
             Port:                     80-5000  80/TCP\n\
             TargetPort:               5000/TCP\n\
             NodePort:                 80-5000  32233/TCP\n\
             Endpoints:                <none>\n\
             Session Affinity:         None\n\
             External Traffic Policy:  Cluster\n\
             Internal Traffic Policy:  Cluster\n\
             Events:                   <none>\n"
        )
    );
}

#[test]
fn label_annotate_patch_edit_delete_and_wait() {
    let Some((_cp, kubectl)) = start() else {
        return;
    };
    kubectl.ok_stdin(&["apply", "-f", "-"], Some(SERVICE));
    assert_eq!(
        kubectl.ok(&["label", "svc", "web", "tier=front"]),
        "service/web labeled\n"
    );
    assert_eq!(
        kubectl.ok(&["annotate", "svc", "web", "owner=team-a"]),
        "service/web annotated\n"
    );
    assert_eq!(
        kubectl.ok(&["get", "svc", "-l", "tier=front", "-o", "name"]),
        "service/web\n"
    );
    // A list read in chunks of two follows the continue tokens to the end.
    for name in ["api", "db", "queue", "zeta"] {
        kubectl.ok_stdin(
            &["apply", "-f", "-"],
            Some(&SERVICE.replace("name: web", &format!("name: {name}"))),
        );
    }
    assert_eq!(
        kubectl.ok(&["get", "svc", "--chunk-size=2", "-o", "name"]),
        "service/api\nservice/db\nservice/queue\nservice/web\nservice/zeta\n"
    );
    let chunked = kubectl.ok(&["get", "svc", "--chunk-size=2", "--no-headers"]);
    assert_eq!(chunked.lines().count(), 5, "{chunked}");
    assert_eq!(
        kubectl.ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.owner}"
        ]),
        "team-a"
    );
    // Strategic merge: the ports list merges on `port`.
    let strategic = r#"{"spec":{"ports":[{"port":443,"targetPort":8443,"name":"https"},{"port":80,"name":"http"}]}}"#;
    assert_eq!(
        kubectl.ok(&["patch", "svc", "web", "-p", strategic]),
        "service/web patched\n"
    );
    assert_eq!(
        kubectl.ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={range .spec.ports[*]}{.port}:{.targetPort} {end}"
        ]),
        "80:8080 443:8443 "
    );
    let merge = r#"{"metadata":{"labels":{"tier":null}}}"#;
    assert_eq!(
        kubectl.ok(&["patch", "svc", "web", "--type=merge", "-p", merge]),
        "service/web patched\n"
    );
    let json = r#"[{"op":"replace","path":"/spec/ports/0/targetPort","value":9090}]"#;
    assert_eq!(
        kubectl.ok(&["patch", "svc", "web", "--type=json", "-p", json]),
        "service/web patched\n"
    );
    assert_eq!(
        kubectl.ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].targetPort} {.metadata.labels}"
        ]),
        "9090 "
    );
    let out = kubectl
        .command(&["edit", "svc", "web"])
        .env("EDITOR", "sed -i s/targetPort:\\ 9090/targetPort:\\ 9191/")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "service/web edited\n",
        "{out:?}"
    );
    assert_eq!(
        kubectl.ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ]),
        "9191"
    );
    let mut wait = kubectl
        .command(&["wait", "--for=delete", "svc/web", "--timeout=30s", "-v=6"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Deleted only once the wait's watch is open (kubectl logs each request
    // at -v=6), so the deletion reaches it as an event: a wait started
    // after the deletion would succeed silently instead.
    let log = BufReader::new(wait.stderr.take().unwrap());
    let (opened, watching) = std::sync::mpsc::channel();
    // Reads the log to its end: kubectl dies of SIGPIPE writing to a closed one.
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            if line.contains("watch=true") {
                let _ = opened.send(());
            }
        }
    });
    let timeout = std::time::Duration::from_secs(30);
    assert!(
        watching.recv_timeout(timeout).is_ok(),
        "kubectl wait never opened its watch"
    );
    assert_eq!(
        kubectl.ok(&["delete", "svc", "web"]),
        "service \"web\" deleted\n"
    );
    let waited = wait.wait_with_output().unwrap();
    assert!(waited.status.success());
    assert_eq!(
        String::from_utf8_lossy(&waited.stdout),
        "service/web condition met\n"
    );
}

#[test]
fn get_watch_streams_changes() {
    let Some((_cp, kubectl)) = start() else {
        return;
    };
    kubectl.ok_stdin(&["apply", "-f", "-"], Some(SERVICE));
    let mut watch = kubectl
        .command(&["get", "svc", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "service/web");
    let api = SERVICE.replace("name: web", "name: api");
    kubectl.ok_stdin(&["apply", "-f", "-"], Some(&api));
    assert_eq!(lines.next().unwrap().unwrap(), "service/api");
    kubectl.ok(&["delete", "svc", "web"]);
    assert_eq!(lines.next().unwrap().unwrap(), "service/web");
    watch.kill().unwrap();
    let _ = watch.wait();
}

#[test]
fn discovery_explain_and_raw_health() {
    let Some((_cp, kubectl)) = start() else {
        return;
    };
    assert_eq!(
        kubectl.ok(&["api-resources"]),
        "NAME                       SHORTNAMES   APIVERSION                 NAMESPACED   KIND\n\
         endpoints                  ep           v1                         true         Endpoints\n\
         events                     ev           v1                         true         Event\n\
         namespaces                 ns           v1                         false        Namespace\n\
         nodes                      no           v1                         false        Node\n\
         pods                       po           v1                         true         Pod\n\
         services                   svc          v1                         true         Service\n\
         deployments                deploy       apps/v1                    true         Deployment\n\
         selfsubjectreviews                      authentication.k8s.io/v1   false        SelfSubjectReview\n\
         selfsubjectaccessreviews                authorization.k8s.io/v1    false        SelfSubjectAccessReview\n\
         endpointslices                          discovery.k8s.io/v1        true         EndpointSlice\n\
         controlplanes                           switchyard.io/v1           false        ControlPlane\n\
         tokens                                  switchyard.io/v1           false        BootstrapToken\n\
         users                                   switchyard.io/v1           false        User\n"
    );
    let explained = kubectl.ok(&["explain", "service.spec.ports"]);
    assert!(
        explained
            .starts_with("KIND:       Service\nVERSION:    v1\n\nFIELD: ports <[]ServicePort>\n"),
        "{explained}"
    );
    assert!(
        explained.contains("  port\t<integer> -required-\n"),
        "{explained}"
    );
    assert_eq!(kubectl.ok(&["get", "--raw", "/healthz"]), "ok");
    assert_eq!(kubectl.ok(&["get", "--raw", "/readyz"]), "ok");
    let version = kubectl.ok(&["version", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["serverVersion"]["minor"], "32");
    let cps = kubectl.ok(&["get", "controlplanes", "-o", "name"]);
    assert_eq!(cps.lines().count(), 1, "{cps}");
    assert!(cps.starts_with("controlplane.switchyard.io/"), "{cps}");
    assert_eq!(kubectl.ok(&["get", "events"]), "");
}

/// Without a certificate the REST API answers only what kube-apiserver's
/// public-info role allows, and a 401 Status otherwise.
#[test]
fn without_a_certificate_only_version_and_health_answer() {
    let Some((cp, _kubectl)) = start() else {
        return;
    };
    let curl = |path: &str| {
        let out = Command::new("curl")
            .args(["-sk", "-w", "\n%{http_code}"])
            .arg(format!("{}{path}", cp.server))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(curl("/healthz"), "ok\n200");
    assert!(curl("/version").ends_with("\n200"));
    let refused = curl("/api/v1/namespaces/default/services");
    let (body, code) = refused.rsplit_once('\n').unwrap();
    assert_eq!(code, "401");
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(status["reason"], "Unauthorized");
    assert_eq!(
        status["message"],
        "Unauthorized: a client certificate signed by the cluster CA is required"
    );
}

#[test]
fn whoami_can_i_and_forbidden_for_admin_and_view_users() {
    let Some((cp, kubectl)) = start() else { return };
    assert_eq!(
        kubectl.ok(&["auth", "whoami"]),
        "ATTRIBUTE   VALUE\nUsername    admin\nGroups      [switchyard:admin system:authenticated]\n"
    );
    assert_eq!(
        kubectl.ok(&["auth", "can-i", "create", "services"]),
        "yes\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let view_conf = dir.path().join("view.conf");
    cp.ok(&[
        "create",
        "user",
        "view-user",
        "--role",
        "view",
        "-o",
        view_conf.to_str().unwrap(),
    ]);
    let view = Kubectl::new(&view_conf);
    assert_eq!(
        view.ok(&["auth", "whoami"]),
        "ATTRIBUTE   VALUE\nUsername    view-user\nGroups      [switchyard:view system:authenticated]\n"
    );
    assert_eq!(view.ok(&["auth", "can-i", "list", "services"]), "yes\n");
    let out = view.run(&["auth", "can-i", "create", "services"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no\n");
    assert_eq!(
        view.fails(&["apply", "-f", "-"], Some(SERVICE)),
        "Error from server (Forbidden): error when creating \"STDIN\": services is forbidden: User \"view-user\" cannot create resource \"services\" in API group \"\" in the namespace \"default\"\n"
    );
    assert_eq!(
        view.fails(&["get", "users"], None),
        "Error from server (Forbidden): users.switchyard.io is forbidden: User \"view-user\" cannot list resource \"users\" in API group \"switchyard.io\" at the cluster scope\n"
    );
    // swctl writes the same kubeconfig for the credentials it uses.
    let written = dir.path().join("kubeconfig");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swctl"))
        .args([
            "--config",
            view_conf.to_str().unwrap(),
            "--server",
            &cp.server,
        ])
        .args(["config", "kubeconfig", "-o", written.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        Kubectl::new(&written).ok(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}"
        ]),
        "view-user"
    );
}

#[test]
fn dual_stack_services_as_kube_apiserver_makes_them() {
    let Some((_cp, kubectl)) = start_with(&["--service-cidr", "10.96.0.0/16,fd00:10:96::/112"])
    else {
        return;
    };
    let dual = SERVICE.replace("spec:\n", "spec:\n  ipFamilyPolicy: PreferDualStack\n");
    assert_eq!(
        kubectl.ok_stdin(&["apply", "-f", "-"], Some(&dual)),
        "service/web created\n"
    );
    let fields = |name: &str| {
        kubectl.ok(&[
            "get",
            "svc",
            name,
            "-o",
            "jsonpath={.spec.ipFamilyPolicy} {.spec.ipFamilies} {.spec.clusterIP} {.spec.clusterIPs}",
        ])
    };
    let got = fields("web");
    let parts: Vec<&str> = got.split(' ').collect();
    assert_eq!(
        parts[..2],
        ["PreferDualStack", r#"["IPv4","IPv6"]"#],
        "{got}"
    );
    let ips: Vec<String> = serde_json::from_str(parts[3]).unwrap();
    let (v4, v6): (std::net::IpAddr, std::net::IpAddr) =
        (ips[0].parse().unwrap(), ips[1].parse().unwrap());
    assert!(
        v4.to_string().starts_with("10.96.") && v6.to_string().starts_with("fd00:10:96::"),
        "{got}"
    );
    assert_eq!(parts[2], ips[0], "clusterIP is the primary (IPv4) address");
    // The table shows the primary address only, as kube-apiserver prints it.
    assert_eq!(
        without_age(&kubectl.ok(&["get", "svc", "web"])),
        format!("NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S)\nweb ClusterIP {v4} <none> 80/TCP")
    );
    let describe = kubectl.ok(&["describe", "svc", "web"]);
    let lines: Vec<String> = describe
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for want in [
        "IP Family Policy: PreferDualStack".to_string(),
        "IP Families: IPv4,IPv6".to_string(),
        format!("IP: {v4}"),
        format!("IPs: {v4},{v6}"),
    ] {
        assert!(lines.contains(&want), "{want:?} not in {describe}");
    }

    // SingleStack releases the secondary address: another Service may take it.
    assert_eq!(
        kubectl.ok(&[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"ipFamilyPolicy":"SingleStack"}}"#
        ]),
        "service/web patched\n"
    );
    assert_eq!(
        fields("web"),
        format!(r#"SingleStack ["IPv4"] {v4} ["{v4}"]"#)
    );
    let v6_only = SERVICE.replace("name: web", "name: six").replace(
        "spec:\n",
        &format!("spec:\n  ipFamilies: [IPv6]\n  clusterIP: {v6}\n"),
    );
    assert_eq!(
        kubectl.ok_stdin(&["apply", "-f", "-"], Some(&v6_only)),
        "service/six created\n"
    );
    assert_eq!(
        fields("six"),
        format!(r#"SingleStack ["IPv6"] {v6} ["{v6}"]"#)
    );

    // Asking for both again gets a new secondary address; the primary stays.
    assert_eq!(
        kubectl.ok(&[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"ipFamilyPolicy":"RequireDualStack"}}"#
        ]),
        "service/web patched\n"
    );
    let again: Vec<String> = serde_json::from_str(&kubectl.ok(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.clusterIPs}",
    ]))
    .unwrap();
    assert_eq!(again[0], v4.to_string());
    assert!(
        again[1].starts_with("fd00:10:96::") && again[1] != v6.to_string(),
        "{again:?}"
    );
    // A replace that leaves the addresses out keeps them (and the policy).
    kubectl.ok_stdin(&["replace", "-f", "-"], Some(SERVICE));
    assert_eq!(
        fields("web"),
        format!(
            r#"RequireDualStack ["IPv4","IPv6"] {v4} ["{v4}","{}"]"#,
            again[1]
        )
    );

    // Kubernetes' refusals, word for word.
    let patch = |json: &str| kubectl.fails(&["patch", "svc", "web", "-p", json], None);
    assert_eq!(
        patch(&format!(r#"{{"spec":{{"clusterIPs":["{v4}","fd00:10:96::99"]}}}}"#)),
        format!("The Service \"web\" is invalid: spec.clusterIPs[1]: Invalid value: []string{{\"{v4}\", \"fd00:10:96::99\"}}: may not change once set\n")
    );
    assert_eq!(
        patch(r#"{"spec":{"ipFamilies":["IPv4"]}}"#),
        "The Service \"web\" is invalid: spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": must be 'SingleStack' to release the secondary IP family\n"
    );
    let outside = SERVICE
        .replace("name: web", "name: far")
        .replace("spec:\n", "spec:\n  ipFamilyPolicy: RequireDualStack\n  clusterIPs: [10.96.0.50, \"2001:db8::1\"]\n  clusterIP: 10.96.0.50\n");
    assert_eq!(
        kubectl.fails(&["apply", "-f", "-"], Some(&outside)),
        "The Service \"far\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.50\", \"2001:db8::1\"}: failed to allocate IP 2001:db8::1: the provided IP (2001:db8::1) is not in the valid range. The range of valid IPs is fd00:10:96::/112\n"
    );
    let same_family = SERVICE.replace("name: web", "name: twice").replace(
        "spec:\n",
        "spec:\n  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv4, IPv4]\n",
    );
    assert_eq!(
        kubectl.fails(&["apply", "-f", "-"], Some(&same_family)),
        "The Service \"twice\" is invalid: spec.ipFamilies[1]: Duplicate value: \"IPv4\"\n"
    );
}
