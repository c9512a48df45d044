//! The Debian packages as an operator gets them: built by cargo-deb from the
//! workspace's binaries, their metadata, contents and maintainer scripts;
//! then unpacked into a throwaway root, checked by `systemd-analyze verify`,
//! and each packaged unit's ExecStart run as written (its binary from the
//! root, the packaged example config copied to /etc/switchyard as the
//! README says) inside the lab: the control plane on its host, the agent
//! joining it from node 1. No systemd runs here (this machine's PID 1 is not
//! systemd), so the unit's sandboxing and notify protocol are not exercised
//! by this test; `agent/tests/e2e_systemd_restart.rs` plays systemd's side
//! of the protocol.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use switchyard_lab::{
    cluster::parse_token_output, eventually, require_packaging, require_root, ChildGuard, Lab,
    LabConfig,
};

const PACKAGES: [&str; 3] = ["switchyard-control-plane", "switchyard-agent", "swctl"];
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(program: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run(program, args).stdout).into_owned()
}

/// `cargo deb` for each package, from the binaries the test build made.
fn build(out: &Path) -> BTreeMap<&'static str, PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    PACKAGES
        .iter()
        .map(|pkg| {
            let status = Command::new(&cargo)
                .current_dir(&workspace)
                .args(["deb", "-p", pkg, "--profile", "dev", "--no-build", "--fast"])
                .arg("--output")
                .arg(out)
                .status()
                .unwrap_or_else(|e| panic!("cargo deb -p {pkg}: {e}"));
            assert!(status.success(), "cargo deb -p {pkg}: {status}");
            (*pkg, out.join(format!("{pkg}_{VERSION}-1_amd64.deb")))
        })
        .collect()
}

fn field(deb: &Path, name: &str) -> String {
    stdout("dpkg-deb", &["-f", deb.to_str().unwrap(), name])
        .trim()
        .to_string()
}

/// The regular files (and links) a package installs, without the leading `./`.
fn files(deb: &Path) -> Vec<String> {
    let listing = stdout("dpkg-deb", &["-c", deb.to_str().unwrap()]);
    let mut files: Vec<String> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches("./").to_string())
        .collect();
    files.sort();
    files
}

fn control_script(deb: &Path, dir: &Path, name: &str) -> String {
    run(
        "dpkg-deb",
        &["-e", deb.to_str().unwrap(), dir.to_str().unwrap()],
    );
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

fn depends(deb: &Path) -> Vec<String> {
    field(deb, "Depends")
        .split(", ")
        .map(str::to_string)
        .collect()
}

fn check_metadata(debs: &BTreeMap<&str, PathBuf>) {
    for (pkg, deb) in debs {
        assert_eq!(field(deb, "Package"), *pkg);
        assert_eq!(field(deb, "Version"), format!("{VERSION}-1"));
        assert_eq!(field(deb, "Architecture"), "amd64");
        assert_eq!(field(deb, "Section"), "net");
        assert!(
            depends(deb).iter().any(|d| d.starts_with("libc6 (>= ")),
            "{pkg}: {:?}",
            depends(deb)
        );
    }
    let agent = depends(&debs["switchyard-agent"]);
    for needed in ["nftables", "iproute2", "conntrack"] {
        assert!(agent.contains(&needed.to_string()), "{agent:?}");
    }
    assert_eq!(
        field(&debs["switchyard-control-plane"], "Suggests"),
        "etcd-server"
    );
    assert_eq!(field(&debs["swctl"], "Recommends"), "bash-completion");
}

fn check_contents(debs: &BTreeMap<&str, PathBuf>) {
    assert_eq!(
        files(&debs["switchyard-agent"]),
        [
            "usr/bin/switchyard-agent",
            "usr/lib/systemd/system/switchyard-agent.service",
            "usr/share/doc/switchyard-agent/copyright",
            "usr/share/doc/switchyard-agent/examples/agent.yaml",
            "usr/share/man/man1/switchyard-agent.1.gz",
        ]
    );
    assert_eq!(
        files(&debs["switchyard-control-plane"]),
        [
            "usr/bin/switchyard-control-plane",
            "usr/lib/systemd/system/switchyard-control-plane.service",
            "usr/share/doc/switchyard-control-plane/copyright",
            "usr/share/doc/switchyard-control-plane/examples/control-plane.yaml",
            "usr/share/man/man1/switchyard-control-plane.1.gz",
        ]
    );
    let swctl = files(&debs["swctl"]);
    for path in [
        "usr/bin/swctl",
        "usr/share/bash-completion/completions/swctl",
        "usr/share/zsh/vendor-completions/_swctl",
        "usr/share/fish/vendor_completions.d/swctl.fish",
        "usr/share/man/man1/swctl.1.gz",
        "usr/share/man/man1/swctl-apply.1.gz",
        "usr/share/man/man1/swctl-port-forward.1.gz",
    ] {
        assert!(swctl.contains(&path.to_string()), "{path} not in {swctl:?}");
    }
}

/// Installing enables the units but starts none; purging leaves the data
/// and state directories (systemd made them, not the package).
fn check_scripts(debs: &BTreeMap<&str, PathBuf>, scratch: &Path) {
    for pkg in ["switchyard-agent", "switchyard-control-plane"] {
        let dir = scratch.join(format!("{pkg}-control"));
        let postinst = control_script(&debs[pkg], &dir, "postinst");
        assert!(
            postinst.contains(&format!("deb-systemd-helper enable {pkg}.service")),
            "{pkg} postinst does not enable the unit:\n{postinst}"
        );
        assert!(
            !postinst.contains("deb-systemd-invoke start")
                && !postinst.contains("deb-systemd-invoke $_dh_action"),
            "{pkg} postinst starts the unit:\n{postinst}"
        );
        let postrm = control_script(&debs[pkg], &dir, "postrm");
        assert!(!postrm.contains("/var/lib"), "{pkg} postrm:\n{postrm}");
        assert!(!postrm.contains("rm -r"), "{pkg} postrm:\n{postrm}");
    }
    let swctl = scratch.join("swctl-control");
    assert_eq!(control_script(&debs["swctl"], &swctl, "postinst"), "");
}

/// The unit's `KEY=` values, in order.
fn directives<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// ExecStart's words as systemd expands them: `$VAR` splits into words,
/// `${VAR}` stays one; variables come from the EnvironmentFile (in `root`).
fn exec_start(unit: &str, root: &Path) -> Vec<String> {
    let mut env = BTreeMap::new();
    for file in directives(unit, "EnvironmentFile") {
        let text = std::fs::read_to_string(root.join(file.trim_start_matches(['-', '/'])));
        for line in text.unwrap_or_default().lines() {
            if let Some((k, v)) = line.split_once('=') {
                env.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    let line = directives(unit, "ExecStart")[0];
    let mut words = Vec::new();
    for word in line.split_whitespace() {
        match word.strip_prefix('$') {
            Some(var) if var.starts_with('{') => {
                words.push(env[var.trim_matches(['{', '}'])].clone());
            }
            Some(var) => words.extend(
                env.get(var)
                    .map(|v| v.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_else(Vec::new),
            ),
            None => words.push(word.to_string()),
        }
    }
    words
}

/// Runs the unit's ExecStart in `ns`, in a mount namespace of its own where
/// /usr/bin and /etc show the installed root over the host's, and /var/lib
/// and /var/log are scratch directories holding what the unit's
/// StateDirectory= and LogsDirectory= would make.
fn start_unit(lab: &Lab, ns: &str, root: &Path, unit: &str, var: &Path) -> ChildGuard {
    let text = std::fs::read_to_string(root.join("usr/lib/systemd/system").join(unit)).unwrap();
    let (lib, log) = (var.join("lib"), var.join("log"));
    for dir in directives(&text, "StateDirectory") {
        std::fs::create_dir_all(lib.join(dir)).unwrap();
    }
    for dir in directives(&text, "LogsDirectory") {
        std::fs::create_dir_all(log.join(dir)).unwrap();
    }
    std::fs::create_dir_all(&log).unwrap();
    let script = r#"r=$1 lib=$2 log=$3; shift 3
mount -t overlay overlay -o "lowerdir=$r/usr/bin:/usr/bin" /usr/bin &&
mount -t overlay overlay -o "lowerdir=$r/etc:/etc" /etc &&
mount --bind "$lib" /var/lib && mount --bind "$log" /var/log && exec "$@""#;
    let mut args: Vec<String> = ["unshare", "--mount", "--propagation", "private"]
        .into_iter()
        .chain(["sh", "-c", script, unit])
        .map(str::to_string)
        .collect();
    for dir in [root, &lib, &log] {
        args.push(dir.to_str().unwrap().to_string());
    }
    args.extend(exec_start(&text, root));
    lab.spawn(ns, &args).unwrap()
}

/// `systemd-analyze verify` in the root, with the host's targets copied in
/// (the units order themselves after them); man pages are checked as
/// package contents instead, since they are not installed on this host.
fn verify_units(root: &Path) {
    let units = root.join("usr/lib/systemd/system");
    for entry in std::fs::read_dir("/usr/lib/systemd/system").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "target") && path.is_file() {
            std::fs::copy(&path, units.join(path.file_name().unwrap())).unwrap();
        }
    }
    for unit in [
        "switchyard-control-plane.service",
        "switchyard-agent.service",
    ] {
        let path = root.join("usr/lib/systemd/system").join(unit);
        let out = Command::new("systemd-analyze")
            .arg(format!("--root={}", root.display()))
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "systemd-analyze verify {unit}:\n{said}"
        );
        assert!(
            !said.contains(unit),
            "systemd-analyze verify {unit}:\n{said}"
        );
    }
}

#[test]
fn packages_carry_units_configs_and_man_pages_and_start_as_written() {
    let name = "packages_carry_units_configs_and_man_pages_and_start_as_written";
    if !require_root(name) || !require_packaging(name) {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let debs = build(&scratch.path().join("debs"));
    check_metadata(&debs);
    check_contents(&debs);
    check_scripts(&debs, scratch.path());

    let root = scratch.path().join("root");
    for deb in debs.values() {
        run(
            "dpkg-deb",
            &["-x", deb.to_str().unwrap(), root.to_str().unwrap()],
        );
    }
    verify_units(&root);
    std::fs::create_dir_all(root.join("etc/switchyard")).unwrap();
    for (pkg, config) in [
        ("switchyard-control-plane", "control-plane.yaml"),
        ("switchyard-agent", "agent.yaml"),
    ] {
        let example = root.join(format!("usr/share/doc/{pkg}/examples/{config}"));
        std::fs::copy(example, root.join("etc/switchyard").join(config)).unwrap();
    }

    let lab = Lab::new(LabConfig {
        nodes: 1,
        pods_per_node: 0,
    })
    .unwrap();
    let cp = lab.control_plane().clone();
    let cp_var = scratch.path().join("cp-var");
    let _control_plane = start_unit(
        &lab,
        &cp.ns,
        &root,
        "switchyard-control-plane.service",
        &cp_var,
    );
    let server = format!("https://{}:7443", cp.ip);
    eventually(
        "the control plane's /readyz",
        Duration::from_secs(30),
        || {
            let url = format!("{server}/readyz");
            let out = lab
                .exec(&cp.ns, &["curl", "-sk", "--max-time", "2", &url])
                .ok()?;
            (String::from_utf8_lossy(&out.stdout) == "ok").then_some(())
        },
    );
    let admin = cp_var.join("lib/switchyard/admin.conf");
    let swctl = root.join("usr/bin/swctl");
    let swctl = |args: &[&str]| {
        let mut full = vec![
            swctl.to_str().unwrap(),
            "--server",
            &server,
            "--config",
            admin.to_str().unwrap(),
        ];
        full.extend_from_slice(args);
        lab.exec_ok(&cp.ns, &full)
    };
    let (token, pin) =
        parse_token_output(&swctl(&["create", "token", "--node", "node-1"]).unwrap()).unwrap();
    std::fs::create_dir_all(root.join("etc/default")).unwrap();
    std::fs::write(
        root.join("etc/default/switchyard-agent"),
        format!("JOIN_FLAGS=--join-token {token} --ca-cert-hash {pin}\n"),
    )
    .unwrap();

    let node = lab.node(1).clone();
    let agent = start_unit(
        &lab,
        &node.ns,
        &root,
        "switchyard-agent.service",
        &scratch.path().join("agent-var"),
    );
    let nodes = eventually("node-1 Ready", Duration::from_secs(30), || {
        let out = swctl(&["get", "nodes"]).ok()?;
        out.contains("node-1   Ready").then_some(out)
    });
    assert!(nodes.contains("172.18.0.11"), "{nodes}");
    // The example's metricsListen is in force on the node.
    let metrics = lab
        .exec_ok(
            &node.ns,
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "http://127.0.0.1:9465/metrics",
            ],
        )
        .unwrap();
    assert!(metrics.contains("switchyard_"), "{metrics}");
    assert!(
        agent.log().contains("joined the cluster"),
        "{}",
        agent.log()
    );
}
