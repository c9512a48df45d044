use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use super::*;

#[derive(Debug, PartialEq, Parser)]
#[command(name = "daemon")]
struct Args {
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[arg(long, default_value = "/var/lib/d")]
    data_dir: PathBuf,
    #[arg(long = "node-ip", required = true)]
    node_ips: Vec<Ipv4Addr>,
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: SocketAddr,
    #[arg(long)]
    insecure: bool,
    #[arg(long = "node-labels", value_parser = parse_label, value_delimiter = ',')]
    node_labels: Vec<(String, String)>,
    #[arg(long, default_value = "20s", value_parser = parse_grace)]
    grace_period: String,
    #[arg(long, value_parser = ["ip", "inet"], default_value = "ip")]
    family: String,
    #[arg(long, default_value_t = 7)]
    log_retention: u64,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn parse_grace(s: &str) -> Result<String, String> {
    match s.strip_suffix('s').and_then(|n| n.parse::<u32>().ok()) {
        Some(n) if n >= 5 => Ok(s.to_string()),
        Some(_) => Err("must be at least 5s".to_string()),
        None => Err(format!("invalid duration {s:?}")),
    }
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn parse_with(text: &str, flags: &[&str]) -> Result<Args, ConfigError> {
    let f = file(text);
    let path = f.path().to_str().unwrap().to_string();
    let mut args = vec!["daemon", "--config", &path];
    args.extend(flags);
    parse_from::<Args, _>(args)
}

fn refusal(text: &str) -> String {
    let f = file(text);
    let path = f.path().to_str().unwrap().to_string();
    let err = parse_from::<Args, _>(["daemon", "--config", &path]).unwrap_err();
    err.to_string().replace(&path, "FILE")
}

#[test]
fn keys_are_kubernetes_camel_case() {
    assert_eq!(key_for("node-ip"), "nodeIP");
    assert_eq!(key_for("data-dir"), "dataDir");
    assert_eq!(key_for("listen"), "listen");
    assert_eq!(key_for("service-cidr"), "serviceCIDR");
    assert_eq!(key_for("pod-cidr"), "podCIDR");
    assert_eq!(key_for("cluster-dns"), "clusterDNS");
    assert_eq!(key_for("node-cert-ttl"), "nodeCertTTL");
    assert_eq!(key_for("dns-upstream"), "dnsUpstream");
    assert_eq!(key_for("ca-cert-hash"), "caCertHash");
    assert_eq!(key_for("lb-pool"), "lbPool");
    assert_eq!(key_for("etcd-cafile"), "etcdCafile");
    assert_eq!(key_for("healthz-timeout-seconds"), "healthzTimeoutSeconds");
}

#[test]
fn every_setting_is_a_key_but_the_invocations_own() {
    let cmd = Args::command();
    let keys: Vec<String> = settings(&cmd).map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "dataDir",
            "nodeIP",
            "listen",
            "insecure",
            "nodeLabels",
            "gracePeriod",
            "family",
            "logRetention"
        ]
    );
}

#[test]
fn the_file_sets_what_the_flags_would() {
    let text = "dataDir: /srv/d\nnodeIP: [10.0.0.1, 10.0.0.2]\nlisten: 0.0.0.0:7443\n\
                insecure: true\nnodeLabels: {zone: a, rack: r1}\ngracePeriod: 6s\n\
                family: inet\nlogRetention: 100\n";
    let from_file = parse_with(text, &[]).unwrap();
    let from_flags = Args::try_parse_from([
        "daemon",
        "--data-dir=/srv/d",
        "--node-ip=10.0.0.1",
        "--node-ip=10.0.0.2",
        "--listen=0.0.0.0:7443",
        "--insecure",
        "--node-labels=rack=r1,zone=a",
        "--grace-period=6s",
        "--family=inet",
        "--log-retention=100",
    ])
    .unwrap();
    assert_eq!(
        Args {
            config: None,
            ..from_file
        },
        from_flags
    );
}

#[test]
fn a_single_value_may_stand_for_a_list_and_commas_split_as_on_the_flag() {
    let args = parse_with("nodeIP: 10.0.0.1\nnodeLabels: zone=a,rack=r1\n", &[]).unwrap();
    assert_eq!(args.node_ips, [Ipv4Addr::new(10, 0, 0, 1)]);
    assert_eq!(
        args.node_labels,
        [("zone".into(), "a".into()), ("rack".into(), "r1".into())]
    );
}

#[test]
fn the_command_line_wins_over_the_file() {
    let text = "nodeIP: [10.0.0.1, 10.0.0.2]\ndataDir: /srv/d\nlogRetention: 100\n";
    let args = parse_with(text, &["--node-ip", "10.0.0.9", "--log-retention=5"]).unwrap();
    assert_eq!(args.node_ips, [Ipv4Addr::new(10, 0, 0, 9)]);
    assert_eq!(args.log_retention, 5);
    assert_eq!(args.data_dir, PathBuf::from("/srv/d"));
}

#[test]
fn without_a_file_the_flags_parse_as_always() {
    let args = parse_from::<Args, _>(["daemon", "--node-ip", "10.0.0.1"]).unwrap();
    assert_eq!(args.data_dir, PathBuf::from("/var/lib/d"));
    let missing = parse_from::<Args, _>(["daemon"]).unwrap_err();
    assert!(matches!(missing, ConfigError::Cli(_)), "{missing:?}");
}

#[test]
fn an_empty_file_sets_nothing() {
    let args = parse_with("", &["--node-ip=10.0.0.1"]).unwrap();
    assert_eq!(args.listen, "127.0.0.1:7443".parse().unwrap());
}

#[test]
fn refusals_name_the_file_the_key_and_the_rule() {
    assert_eq!(
        refusal("nodeIP: 10.0.0.300\n"),
        r#"FILE: nodeIP: invalid IP address "10.0.0.300""#
    );
    assert_eq!(
        refusal("nodeIPs: [10.0.0.1]\n"),
        "FILE: nodeIPs: unknown key"
    );
    assert_eq!(refusal("node-ip: 10.0.0.1\n"), "FILE: node-ip: unknown key");
    assert_eq!(
        refusal("nodeIP: 10.0.0.1\ndataDir: [a, b]\n"),
        "FILE: dataDir: must be a single value, not a list (the flag takes one)"
    );
    assert_eq!(
        refusal("nodeIP: 10.0.0.1\ninsecure: yes\n"),
        "FILE: insecure: must be true or false, not a string"
    );
    assert_eq!(
        refusal("nodeIP: 10.0.0.1\ngracePeriod: 4s\n"),
        r#"FILE: gracePeriod: invalid value "4s": must be at least 5s"#
    );
    assert_eq!(
        refusal("nodeIP: 10.0.0.1\nlogRetention: -1\n"),
        r#"FILE: logRetention: invalid value "-1": invalid digit found in string"#
    );
    assert_eq!(
        refusal("nodeIP: 10.0.0.1\nfamily: inet6\n"),
        r#"FILE: family: invalid value "inet6": must be one of ip, inet"#
    );
    assert_eq!(
        refusal("nodeIP: 10.0.0.1\nnodeLabels: [zone]\n"),
        r#"FILE: nodeLabels: invalid value "zone": expected KEY=VALUE, got "zone""#
    );
    assert_eq!(
        refusal("nodeIP: [[10.0.0.1]]\n"),
        "FILE: nodeIP: each value must be a string or a number, not a list"
    );
    assert_eq!(
        refusal("- nodeIP\n"),
        "FILE: must be a mapping of settings (key: value)"
    );
}

#[test]
fn a_missing_file_is_named() {
    let err = parse_from::<Args, _>(["daemon", "--config", "/nonexistent/d.yaml"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/d.yaml: No such file or directory (os error 2)"
    );
}

#[test]
fn a_value_starting_with_a_dash_stays_a_value() {
    let err = parse_with("nodeIP: 10.0.0.1\ndataDir: --insecure\n", &[]).unwrap();
    assert_eq!(err.data_dir, PathBuf::from("--insecure"));
    assert!(!err.insecure);
}

#[test]
fn an_example_must_name_every_key_with_a_value_its_flag_takes() {
    let full =
        "# Settings of daemon.\ndataDir: /srv/d\nnodeIP: [10.0.0.1]\n# listen: 0.0.0.0:7443\n\
                # insecure: true\n# nodeLabels: {zone: a}\n# gracePeriod: 6s\n# family: inet\n\
                # logRetention: 9\n";
    assert_eq!(check_example::<Args>(full), Ok(()));
    let short = full.replace("# family: inet\n", "");
    assert_eq!(
        check_example::<Args>(&short),
        Err("keys missing from the example: family".to_string())
    );
    let bad = full.replace("# gracePeriod: 6s", "# gracePeriod: 2s");
    assert!(check_example::<Args>(&bad)
        .unwrap_err()
        .contains("must be at least 5s"));
}

#[test]
fn the_long_help_lists_every_key_with_its_flag() {
    let help = with_keys(Args::command()).render_long_help().to_string();
    assert!(
        help.contains(
            "Keys: dataDir (--data-dir), nodeIP (--node-ip), listen (--listen), insecure \
             (--insecure), nodeLabels (--node-labels), gracePeriod (--grace-period), family \
             (--family), logRetention (--log-retention)."
        ),
        "{help}"
    );
}
