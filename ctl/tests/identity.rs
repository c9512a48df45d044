//! Identity and authorization through the real binaries, without root: a
//! control plane on a loopback port serving mutual TLS, swctl with the
//! credentials files the control plane and `swctl create user` write.
//! Every refusal is checked word for word, as users will see it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{binary, rows_without_age, ControlPlane};

const LOGGED_OUT: &str = "error: You must be logged in to the server (Unauthorized)\n";

/// swctl against `cp` with the credentials in `config` (and nothing else:
/// no environment the harness would add).
fn swctl_as(cp: &ControlPlane, config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swctl"))
        .arg("--server")
        .arg(&cp.server)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SWITCHYARD_CONFIG")
        .env_remove("SWITCHYARD_SERVER")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A user of `role` with a credentials file in the test's directory.
fn user(cp: &ControlPlane, name: &str, role: &str) -> std::path::PathBuf {
    let path = cp.data_dir.with_file_name(format!("{name}.conf"));
    let out = cp.ok(&[
        "create",
        "user",
        name,
        "--role",
        role,
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out, format!("user/{name} created\n"));
    path
}

#[test]
fn the_control_plane_makes_its_pki_and_admin_credentials_private() {
    use std::os::unix::fs::PermissionsExt;
    let cp = ControlPlane::start(&[]);
    for file in ["pki/ca.key", "pki/server.key", "admin.conf"] {
        let mode = std::fs::metadata(cp.data_dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let ca = std::fs::read_to_string(cp.data_dir.join("pki/ca.crt")).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let users = cp.ok(&["get", "users"]);
    assert_eq!(
        rows_without_age(&users)
            .into_iter()
            .map(|mut r| {
                r.truncate(2);
                r
            })
            .collect::<Vec<_>>(),
        vec![vec!["NAME", "ROLE"], vec!["admin", "admin"]]
    );
}

#[test]
fn without_or_with_a_refused_credential_swctl_is_logged_out() {
    let cp = ControlPlane::start(&[]);
    // No credentials file at all.
    let out = Command::new(env!("CARGO_BIN_EXE_swctl"))
        .args(["--server", &cp.server, "get", "svc"])
        .env_remove("SWITCHYARD_CONFIG")
        .env("HOME", cp.data_dir.with_file_name("no-home"))
        .output()
        .unwrap();
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(1), LOGGED_OUT)
    );

    // A file that names the CA but no client certificate.
    let creds = switchyard_tls::credentials::Credentials::read(&cp.config()).unwrap();
    let anonymous = switchyard_tls::credentials::Credentials {
        client_cert_pem: None,
        client_key_pem: None,
        ..creds
    };
    let path = cp.data_dir.with_file_name("anonymous.conf");
    anonymous.write(&path).unwrap();
    let out = swctl_as(&cp, &path, &["get", "svc"]);
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(1), LOGGED_OUT)
    );

    // A certificate from another cluster's CA, presented with this CA.
    let other = ControlPlane::start(&[]);
    let mut foreign = switchyard_tls::credentials::Credentials::read(&other.config()).unwrap();
    foreign.ca_pem = switchyard_tls::credentials::Credentials::read(&cp.config())
        .unwrap()
        .ca_pem;
    let path = cp.data_dir.with_file_name("foreign.conf");
    foreign.write(&path).unwrap();
    let out = swctl_as(&cp, &path, &["get", "svc"]);
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(1), LOGGED_OUT)
    );
}

#[test]
fn a_plaintext_client_is_told_at_once_that_the_server_needs_tls() {
    let cp = ControlPlane::start(&[]);
    let plain = cp.server.replacen("https://", "http://", 1);
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_swctl"))
        .args(["--server", &plain, "get", "svc"])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "swctl hung");
    let authority = plain.trim_start_matches("http://");
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (
            Some(1),
            format!("error: the server {authority} closed the connection: it requires TLS (use an https:// --server and a credentials file)\n")
        )
    );
}

#[test]
fn viewers_read_and_are_refused_everything_else_in_kubectl_words() {
    let cp = ControlPlane::start(&[]);
    let bob = user(&cp, "bob", "view");
    let out = swctl_as(&cp, &bob, &["get", "ns"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        rows_without_age(&stdout(&out)),
        vec![vec!["NAME", "STATUS"], vec!["default", "Active"]]
    );

    let out = swctl_as(
        &cp,
        &bob,
        &["create", "service", "clusterip", "web", "--tcp=80"],
    );
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (
            Some(1),
            "Error from server (Forbidden): services is forbidden: User \"bob\" cannot create resource \"services\" in API group \"\" in the namespace \"default\"\n".to_string()
        )
    );
    cp.ok(&["create", "service", "clusterip", "web", "--tcp=80"]);
    let out = swctl_as(&cp, &bob, &["delete", "svc", "web"]);
    assert_eq!(
        stderr(&out),
        "Error from server (Forbidden): services \"web\" is forbidden: User \"bob\" cannot delete resource \"services\" in API group \"\" in the namespace \"default\"\n"
    );
    let out = swctl_as(&cp, &bob, &["get", "svc", "web", "-o", "name"]);
    assert_eq!(stdout(&out), "service/web\n");
    for args in [
        &["get", "tokens"][..],
        &["create", "token"],
        &["create", "user", "eve", "--role", "admin"],
    ] {
        let out = swctl_as(&cp, &bob, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).starts_with("Error from server (Forbidden): "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = swctl_as(&cp, &bob, &["port-forward", "svc/web", ":80"]);
    assert_eq!(
        stderr(&out),
        "Error from server (Forbidden): services \"web\" is forbidden: User \"bob\" cannot create resource \"services/portforward\" in API group \"\" in the namespace \"default\"\n"
    );
    let out = swctl_as(&cp, &bob, &["env"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The refusal and the admin's write are in the audit log.
    let events = cp.audit_events();
    let refused = events
        .iter()
        .find(|e| {
            e["user"]["username"] == "bob"
                && e["verb"] == "create"
                && e["objectRef"]["resource"] == "services"
        })
        .expect("the refused create is audited");
    assert_eq!(refused["responseStatus"]["code"], 403);
    assert_eq!(refused["objectRef"]["name"], "web");
    let created = events
        .iter()
        .find(|e| {
            e["user"]["username"] == "admin"
                && e["verb"] == "create"
                && e["objectRef"]["resource"] == "services"
        })
        .expect("the admin's create is audited");
    assert_eq!(created["responseStatus"]["code"], 201);
    assert_eq!(created["kind"], "Event");
    assert_eq!(created["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(created["level"], "Metadata");
    assert!(events.iter().any(|e| e["verb"] == "create"
        && e["objectRef"]["resource"] == "users"
        && e["objectRef"]["name"] == "bob"));
}

#[test]
fn a_deleted_user_is_refused_and_their_watch_ends() {
    let cp = ControlPlane::start(&[]);
    let carol = user(&cp, "carol", "admin");
    let users = cp.ok(&["get", "users", "--no-headers"]);
    let names: Vec<&str> = users
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, vec!["admin", "carol"]);
    let mut watch = Command::new(env!("CARGO_BIN_EXE_swctl"))
        .args([
            "--server",
            &cp.server,
            "--config",
            carol.to_str().unwrap(),
            "get",
            "svc",
            "-w",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        cp.ok(&["delete", "user", "carol"]),
        "user \"carol\" deleted\n"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = watch.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked user's watch was still open after 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(watch.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!((status.code(), err.as_str()), (Some(1), LOGGED_OUT));
    let out = swctl_as(&cp, &carol, &["get", "svc"]);
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(1), LOGGED_OUT)
    );
}

#[test]
fn tokens_print_the_join_command_and_list_without_their_secret() {
    let cp = ControlPlane::start(&["--advertise-address", "10.0.0.1"]);
    let out = cp.ok(&["create", "token", "--node", "node-7", "--ttl", "2h"]);
    let lines: Vec<&str> = out.lines().collect();
    let token = lines[0];
    let (id, secret) = token.split_once('.').unwrap();
    let shaped = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    assert!(shaped(id, 6) && shaped(secret, 16), "{token}");
    let pin = switchyard_tls::certificate::ca_cert_hash(
        &switchyard_tls::pem::certificate(
            &std::fs::read(cp.data_dir.join("pki/ca.crt")).unwrap(),
            "ca",
        )
        .unwrap(),
    )
    .unwrap();
    let port = cp.server.rsplit(':').next().unwrap();
    assert_eq!(
        lines[1],
        format!("switchyard-agent --control-plane https://10.0.0.1:{port} --join-token {token} --ca-cert-hash {pin} --node-name node-7 --node-ip <NODE_IP>")
    );
    cp.ok(&["create", "token", "--reusable"]);
    let table = cp.ok(&["get", "tokens"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], vec!["ID", "NODE", "EXPIRES", "USES"]);
    let mine = rows.iter().find(|r| r[0] == id).unwrap();
    assert_eq!((mine[1], mine[3]), ("node-7", "0"));
    assert!(rows.iter().any(|r| r[1] == "<none>"), "{table}");
    let yaml = cp.ok(&["get", "token", id, "-o", "yaml"]);
    assert!(!yaml.contains(secret), "the secret is not stored:\n{yaml}");
    assert_eq!(
        cp.ok(&["delete", "token", id]),
        format!("token \"{id}\" deleted\n")
    );
    let out = cp.swctl(&["get", "token", id]);
    assert_eq!(
        stderr(&out),
        format!("Error from server (NotFound): tokens \"{id}\" not found\n")
    );
}

#[test]
fn identities_are_issued_not_applied() {
    let cp = ControlPlane::start(&[]);
    let out = cp.swctl_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: switchyard.io/v1\nkind: User\nmetadata:\n  name: mallory\nspec:\n  role: admin\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error from server (BadRequest): error when creating \"STDIN\": users are issued by `swctl create user`, not applied\n"
    );
    let out = cp.swctl(&[
        "create",
        "user",
        "Mallory",
        "--role",
        "admin",
        "-o",
        "/dev/null",
    ]);
    assert!(
        stderr(&out).contains("metadata.name: Invalid value: \"Mallory\""),
        "{}",
        stderr(&out)
    );
    let out = cp.swctl(&[
        "create",
        "user",
        "mallory",
        "--role",
        "root",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(
        stderr(&out),
        "The User \"mallory\" is invalid: spec.role: Unsupported value: \"root\": supported values: \"admin\", \"view\"\n"
    );
}

#[test]
fn insecure_serves_plaintext_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(binary("switchyard-control-plane"))
        .args([
            "--insecure",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let server = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_swctl"))
            .args([
                "--server",
                &server,
                "create",
                "service",
                "clusterip",
                "open",
                "--tcp=80",
            ])
            .env("HOME", dir.path())
            .output()
            .unwrap();
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(stdout(&out), "service/open created\n", "{}", stderr(&out));
    assert!(!dir.path().join("data/admin.conf").exists());
    child.kill().unwrap();
    let logs = child.wait_with_output().unwrap();
    let text = format!("{}{}", stdout(&logs), stderr(&logs));
    assert!(
        text.contains("WARN") && text.contains("--insecure: TLS and authentication are OFF"),
        "{text}"
    );
}

#[test]
fn nodes_act_only_for_themselves_and_users_never_as_nodes() {
    use switchyard_api::v1::agent_sync_client::AgentSyncClient;
    use switchyard_api::v1::tunnel_agent_message::Message as AgentMsg;
    use switchyard_api::v1::tunnel_client::TunnelClient;
    use switchyard_api::v1::{PodReadiness, TunnelAgentMessage, TunnelHello};

    let cp = ControlPlane::start(&[]);
    cp.apply_yaml(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-2\nspec:\n  nodeName: node-2\n  containers:\n    - name: c\nstatus:\n  podIP: 10.244.2.11\n",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let refusal = |status: tonic::Status| (status.code(), status.message().to_string());
    rt.block_on(async {
        let node1 = cp.join("node-1").await.borrow().clone();
        let readiness = |node: &str| PodReadiness {
            node_name: node.into(),
            namespace: "default".into(),
            name: "web-2".into(),
            ready: true,
        };
        let err = AgentSyncClient::new(node1.clone())
            .report_pod_readiness(readiness("node-1"))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(err),
            (
                tonic::Code::PermissionDenied,
                "pods \"web-2\" is forbidden: User \"node:node-1\" cannot update resource \"pods/status\" in API group \"\" in the namespace \"default\": a node may only act as itself".into()
            )
        );
        // Saying it is node-2 changes nothing: the certificate says who it is.
        let err = AgentSyncClient::new(node1.clone())
            .report_pod_readiness(readiness("node-2"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);

        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(TunnelAgentMessage {
            message: Some(AgentMsg::Hello(TunnelHello {
                node_name: "node-2".into(),
                agent_version: "test".into(),
            })),
        })
        .await
        .unwrap();
        let err = TunnelClient::new(node1.clone())
            .serve(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(err),
            (
                tonic::Code::PermissionDenied,
                "nodes \"node-2\" is forbidden: User \"node:node-1\" cannot create resource \"nodes/tunnel\" in API group \"\" at the cluster scope: a node may only act as itself".into()
            )
        );

        // A node reads nothing through the API.
        let mut resources = switchyard_api::v1::resources_client::ResourcesClient::new(node1);
        let err = resources
            .list(switchyard_api::v1::ListRequest {
                kind: "Service".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            refusal(err),
            (
                tonic::Code::PermissionDenied,
                "services is forbidden: User \"node:node-1\" cannot list resource \"services\" in API group \"\" in the namespace \"default\"".into()
            )
        );

        // The admin may do everything a user does, never what a node does.
        let admin = swctl::client::connect_channel(&cp.login()).await.unwrap();
        let err = AgentSyncClient::new(admin)
            .report_pod_readiness(readiness("node-2"))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(err),
            (
                tonic::Code::PermissionDenied,
                "pods \"web-2\" is forbidden: User \"admin\" cannot update resource \"pods/status\" in API group \"\" in the namespace \"default\": only a node's own identity may".into()
            )
        );
    });
}
