//! The netlink encoder against a real kernel: every declaration, rule shape
//! and element kind sent as a raw nf_tables batch must list exactly like
//! the same text loaded by `nft -f` into a twin table, chain or map;
//! failures must name the command and leave nothing of the batch behind.
//!
//! Runs inside throwaway network namespaces (never the root namespace).
//! Needs root; without it each test prints `SKIPPED` and passes, unless
//! `SWITCHYARD_E2E=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use support::Netns;
use switchyard_agent::model::Protocol;
use switchyard_agent::nft::command::{script, Command, Element, SetKind};
use switchyard_agent::nft::names::fingerprint_comment;
use switchyard_agent::nft::netlink::{encode, Socket};
use switchyard_agent::nft::ruleset::skeleton;
use switchyard_agent::nft::state::{
    all_backend_maps, backends_map, BackendRange, MapKey, MapName, Target, Verdict,
    BACKEND_PROTOCOLS, CANARY_SET, HAIRPIN_SET, MARK_MASQ_CHAIN, REJECT_CHAIN,
};
use switchyard_agent::nft::NftError;

const TABLE: &str = "sy";
/// Suffix of the object that `nft -f` fills, next to the netlink one.
const TWIN: &str = "-twin";

/// Runs an nft script inside the namespace.
fn nft_script(ns: &Netns, text: &str) -> Result<String, String> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    ns.nft(&format!("-f {}", file.path().display()))
}

/// Every set and map the agent declares (as `plan_declarations` does, with
/// one backend shard per protocol), each with a twin, plus chains.
fn declarations() -> String {
    let mut sets: Vec<(&str, String, String)> = MapName::ALL
        .into_iter()
        .map(|m| {
            (
                "map",
                m.as_str().to_owned(),
                format!("type {};", m.type_decl()),
            )
        })
        .collect();
    for protocol in BACKEND_PROTOCOLS {
        let decl =
            format!("typeof numgen random mod 1 : ip daddr . {protocol} dport; flags interval;");
        sets.push(("map", backends_map(protocol, 0), decl));
    }
    sets.push(("set", CANARY_SET.into(), "type mark;".into()));
    let hairpin = "type ipv4_addr . ipv4_addr;";
    sets.push(("set", HAIRPIN_SET.into(), hairpin.into()));
    let affinity = "type ipv4_addr; flags dynamic,timeout; timeout 10800s;";
    sets.push(("set", "aff-a".into(), affinity.into()));
    let mut out = format!("add table ip {TABLE}\n");
    for (kind, name, decl) in &sets {
        for suffix in ["", TWIN] {
            out.push_str(&format!(
                "add {kind} ip {TABLE} {name}{suffix} {{ {decl} }}\n"
            ));
        }
    }
    for chain in [
        MARK_MASQ_CHAIN,
        REJECT_CHAIN,
        "services",
        "svc-a",
        "svc-b",
        "ep-a",
        "ep-b",
        "nl",
        "nl-twin",
    ] {
        out.push_str(&format!("add chain ip {TABLE} {chain}\n"));
    }
    out
}

fn setup(test: &str) -> Option<(Netns, Socket)> {
    let ns = Netns::create(test)?;
    nft_script(&ns, &declarations()).unwrap();
    let socket = Socket::open(Some(&ns.name)).unwrap();
    Some((ns, socket))
}

fn send(socket: &mut Socket, commands: &[Command]) -> Result<(), NftError> {
    let mut batch = encode(TABLE, commands).expect("every command here has an encoding");
    socket
        .send(&mut batch)
        .map_err(|e| batch.explain(commands, e))
}

/// `nft list KIND NAME`, with the object's own name replaced by `NAME`,
/// so a netlink object and its twin compare equal.
fn listing(ns: &Netns, kind: &str, name: &str) -> String {
    ns.nft(&format!("list {kind} ip {TABLE} {name}"))
        .unwrap()
        .replace(&format!("{kind} {name} {{"), &format!("{kind} NAME {{"))
}

/// `line` with the kernel's names of anonymous sets (`__map0`, `__map1`, …)
/// made equal: twins get different ones.
fn anonymous_names(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("__map") {
        out.push_str(&rest[..at + 5]);
        rest = rest[at + 5..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// nft adds an interval end at key 0 when it first fills an empty interval
/// map; lookups below the first range miss either way, so the agent sends
/// none.
const NFT_ZERO_END: &str = "element 00000000  : 1 [end]";

/// What the kernel holds for a chain or set, as `nft --debug=netlink`
/// prints it: each rule's expressions and userdata bytes, or each
/// element's key and data bytes (sorted: hash order differs between sets).
/// Stricter than the listing, where different expressions may print alike.
/// Anonymous maps are compared through the listing, which prints them
/// inline.
fn kernel_view(ns: &Netns, kind: &str, name: &str) -> Vec<String> {
    let out = ns
        .nft(&format!("--debug=netlink list {kind} ip {TABLE} {name}"))
        .unwrap();
    let wanted = |header: &str| match kind {
        "chain" => {
            let words: Vec<&str> = header.split_whitespace().collect();
            words.len() >= 4 && words[..3] == ["ip", TABLE, name]
        }
        _ => header == format!("ip {TABLE} @{name}"),
    };
    let mut lines = Vec::new();
    let mut inside = false;
    for line in out.lines().filter(|l| !l.is_empty()) {
        if !line.starts_with(char::is_whitespace) {
            inside = wanted(line);
            if inside && kind == "chain" {
                lines.push("rule".to_owned());
            }
        } else if inside && line.trim() != NFT_ZERO_END {
            lines.push(anonymous_names(line.trim()));
        }
    }
    if kind != "chain" {
        lines.sort();
    }
    lines
}

/// Applies `commands` on `object` through netlink and, as nft text, on its
/// twin (`with(twin)` builds the same commands for the other name), then
/// asserts both list the same.
fn assert_twins(
    ns: &Netns,
    socket: &mut Socket,
    kind: &str,
    object: &str,
    with: impl Fn(&str) -> Vec<Command>,
) {
    let twin = format!("{object}{TWIN}");
    send(socket, &with(object)).unwrap();
    nft_script(ns, &script(TABLE, &with(&twin))).unwrap();
    let ours = listing(ns, kind, object);
    assert_eq!(ours, listing(ns, kind, &twin));
    assert!(ours.contains("NAME"), "{ours}");
    assert_eq!(
        kernel_view(ns, kind, object),
        kernel_view(ns, kind, &twin),
        "{kind} {object}"
    );
}

/// Every shape of rule text the compiler writes (see `ruleset.rs`), with
/// the numbers and names varied where nft's encoding depends on them.
const RULE_SHAPES: &[&str] = &[
    "ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
    "ip daddr 10.96.0.10 sctp dport 80 ip saddr != 10.244.0.0/20 jump mark-for-masquerade",
    "ip daddr 10.96.0.10 udp dport 53 ip saddr != 10.244.1.7/32 jump mark-for-masquerade",
    "ip daddr 10.96.0.11 udp dport 53 jump mark-for-masquerade",
    "ip daddr 203.0.113.7 tcp dport 65535 jump mark-for-masquerade",
    "meta l4proto tcp dnat ip to numgen random mod 3 offset 16384 map @backend-ranges-tcp-00",
    "meta l4proto udp dnat ip to numgen random mod 1 offset 0 map @backend-ranges-udp-00",
    "meta l4proto sctp dnat ip to numgen random mod 2 offset 4294967293 map @backend-ranges-sctp-00",
    "jump svc-a",
    "goto svc-b",
    "ip saddr 10.244.1.0/24 goto svc-a",
    "ip saddr 10.0.0.0/8 goto svc-a",
    "ip saddr 10.244.1.7/31 goto svc-a",
    "ip saddr 0.0.0.0/0 goto svc-a",
    "ip saddr 192.168.1.10 goto svc-b",
    "fib saddr type local jump svc-a",
    "fib saddr type local goto svc-b",
    "drop",
    // Load-balancer source ranges.
    "ip saddr 10.10.0.0/16 return",
    "ip saddr 172.18.0.201 return",
    "jump reject-chain",
    // Base and fixed chains of the skeleton.
    "ct state new jump services",
    "ct state new goto svc-a",
    "ip daddr . meta l4proto . th dport vmap @service-ips",
    "ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
    "ip daddr . meta l4proto . th dport vmap @firewall-ips",
    "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
    "fib daddr type local ip daddr != 127.0.0.0/12 meta l4proto . th dport vmap @no-endpoint-nodeports",
    "meta l4proto tcp reject with tcp reset",
    "reject",
    "meta mark set meta mark or 0x4000",
    "meta mark set meta mark or 1",
    "meta mark set meta mark xor 0x4000",
    "meta mark set meta mark xor 0xffffffff",
    "ip saddr . ip daddr @hairpin jump mark-for-masquerade",
    "meta mark and 0x4000 == 0 return",
    "meta mark and 0x80000001 == 0 goto svc-a",
    "masquerade fully-random",
    // ClientIP affinity.
    "ip saddr @aff-a goto ep-a",
    "update @aff-a { ip saddr }",
    "meta l4proto tcp dnat to 10.244.1.5:8080",
    "meta l4proto udp dnat to 10.244.1.6:53",
    "meta l4proto sctp dnat to 192.168.0.1:65535",
    "numgen random mod 1 vmap { 0 : goto ep-a }",
    "numgen random mod 2 vmap { 0 : goto ep-a, 1 : goto ep-b }",
    "numgen random mod 3 vmap { 0 : goto ep-a, 1 : goto ep-b, 2 : jump ep-a }",
];

#[test]
fn every_rule_shape_lists_like_nft() {
    let Some((ns, mut socket)) = setup("every_rule_shape_lists_like_nft") else {
        return;
    };
    let comment = fingerprint_comment("0123456789abcdef", "default/web:http tcp 80");
    let mut rules: Vec<String> = RULE_SHAPES.iter().map(|r| r.to_string()).collect();
    rules.extend(
        RULE_SHAPES
            .iter()
            .map(|r| format!("{r} comment \"{comment}\"")),
    );
    rules.push(format!("drop comment \"{}\"", "x".repeat(128)));
    rules.push("drop comment \"\"".into());
    assert_twins(&ns, &mut socket, "chain", "nl", |chain| {
        rules
            .iter()
            .map(|rule| Command::AddRule {
                chain: chain.into(),
                rule: rule.clone(),
            })
            .collect()
    });
    let listed = listing(&ns, "chain", "nl");
    assert_eq!(listed.matches(&comment).count(), RULE_SHAPES.len());
    assert!(
        listed.contains("ip saddr 10.244.1.6/31 goto svc-a"),
        "{listed}"
    );
    let view = kernel_view(&ns, "chain", "nl");
    assert_eq!(view.iter().filter(|l| *l == "rule").count(), rules.len());
    assert!(
        view.iter().any(|l| l.starts_with("[ bitwise reg 1")),
        "{view:?}"
    );
}

fn service(addr: Option<[u8; 4]>, protocol: Protocol, port: u16, verdict: Verdict) -> Element {
    let key = MapKey {
        addr: addr.map(Ipv4Addr::from),
        protocol,
        port,
    };
    Element::Service(key, verdict)
}

fn backend(keys: RangeInclusive<u32>, ip: [u8; 4], port: u16, protocol: Protocol) -> Element {
    let target = Target {
        ip: ip.into(),
        port,
        protocol,
    };
    let last = *keys.end();
    Element::Backend(*keys.start(), BackendRange { last, target })
}

/// Elements of every kind, by set, and which of them a later batch deletes.
fn elements() -> Vec<(&'static str, &'static str, Vec<Element>)> {
    let goto = |c: &str| Verdict::Goto(c.into());
    vec![
        (
            "map",
            "service-ips",
            vec![
                service(Some([10, 96, 0, 10]), Protocol::Tcp, 80, goto("svc-a")),
                service(Some([10, 96, 0, 10]), Protocol::Udp, 53, goto("svc-b")),
                service(Some([10, 96, 0, 11]), Protocol::Sctp, 9, Verdict::Drop),
                service(Some([203, 0, 113, 7]), Protocol::Tcp, 65535, goto("svc-a")),
            ],
        ),
        (
            "map",
            "no-endpoint-services",
            vec![
                service(Some([10, 96, 0, 12]), Protocol::Tcp, 80, Verdict::reject()),
                service(Some([10, 96, 0, 13]), Protocol::Udp, 1, Verdict::Drop),
            ],
        ),
        (
            "map",
            "service-nodeports",
            vec![
                service(None, Protocol::Tcp, 30080, goto("svc-a")),
                service(None, Protocol::Udp, 30053, goto("svc-b")),
                service(None, Protocol::Sctp, 30132, Verdict::Drop),
            ],
        ),
        (
            "map",
            "no-endpoint-nodeports",
            vec![
                service(None, Protocol::Tcp, 30082, Verdict::reject()),
                service(None, Protocol::Udp, 30083, Verdict::Drop),
            ],
        ),
        (
            "map",
            "backend-ranges-tcp-00",
            vec![
                backend(16384..=16389, [10, 244, 1, 5], 8080, Protocol::Tcp),
                backend(16390..=32767, [10, 244, 2, 5], 80, Protocol::Tcp),
                backend(
                    u32::MAX - 4..=u32::MAX,
                    [10, 244, 3, 5],
                    65535,
                    Protocol::Tcp,
                ),
            ],
        ),
        (
            "map",
            "backend-ranges-udp-00",
            vec![
                backend(0..=0, [10, 244, 1, 6], 5353, Protocol::Udp),
                backend(1..=1, [10, 244, 1, 7], 53, Protocol::Udp),
            ],
        ),
        (
            "map",
            "backend-ranges-sctp-00",
            vec![backend(7..=100, [10, 244, 1, 8], 9, Protocol::Sctp)],
        ),
        (
            "set",
            HAIRPIN_SET,
            vec![
                Element::Hairpin(Ipv4Addr::new(10, 244, 1, 5)),
                Element::Hairpin(Ipv4Addr::new(10, 244, 2, 6)),
            ],
        ),
        (
            "set",
            CANARY_SET,
            vec![Element::Mark(7), Element::Mark(0x8000_0001)],
        ),
    ]
}

#[test]
fn every_element_kind_lists_like_nft() {
    let Some((ns, mut socket)) = setup("every_element_kind_lists_like_nft") else {
        return;
    };
    for (kind, set, items) in elements() {
        assert_twins(&ns, &mut socket, kind, set, |name| {
            vec![Command::AddElements {
                set: name.into(),
                elements: items.clone(),
            }]
        });
        let starts = kernel_view(&ns, kind, set)
            .into_iter()
            .filter(|e| !e.ends_with(": 1 [end]"))
            .count();
        assert_eq!(starts, items.len(), "{set}");
        // Deleting by key (the value half is ignored) leaves the rest.
        assert_twins(&ns, &mut socket, kind, set, |name| {
            vec![Command::DeleteElements {
                set: name.into(),
                elements: items[..1].to_vec(),
            }]
        });
        let left = listing(&ns, kind, set);
        assert_eq!(left.contains("elements"), items.len() > 1, "{left}");
    }
}

#[test]
fn failed_command_is_named_and_batch_is_atomic() {
    let Some((ns, mut socket)) = setup("failed_command_is_named_and_batch_is_atomic") else {
        return;
    };
    let err = send(
        &mut socket,
        &[
            Command::AddElements {
                set: HAIRPIN_SET.into(),
                elements: vec![Element::Hairpin(Ipv4Addr::new(10, 1, 1, 1))],
            },
            Command::DeleteElements {
                set: HAIRPIN_SET.into(),
                elements: vec![Element::Hairpin(Ipv4Addr::new(10, 9, 9, 9))],
            },
        ],
    )
    .unwrap_err();
    let NftError::Rejected { status, stderr } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(status, "netlink");
    assert_eq!(
        stderr,
        "delete element ip sy hairpin { 10.9.9.9 . 10.9.9.9 }: No such file or directory"
    );
    assert!(!listing(&ns, "set", HAIRPIN_SET).contains("10.1.1.1"));

    let err = send(
        &mut socket,
        &[
            Command::AddChain {
                name: "fresh".into(),
                base: None,
            },
            Command::AddRule {
                chain: "fresh".into(),
                rule: "jump svc-a".into(),
            },
            Command::AddRule {
                chain: "missing".into(),
                rule: "drop".into(),
            },
        ],
    )
    .unwrap_err();
    assert_eq!(
        err.nft_stderr(),
        Some("add rule ip sy missing drop: No such file or directory")
    );
    assert!(ns.nft("list chain ip sy fresh").is_err());

    // Leftover acks of the aborted batches do not confuse the next one.
    send(
        &mut socket,
        &[Command::AddElements {
            set: HAIRPIN_SET.into(),
            elements: vec![Element::Hairpin(Ipv4Addr::new(10, 1, 1, 1))],
        }],
    )
    .unwrap();
    assert!(listing(&ns, "set", HAIRPIN_SET).contains("10.1.1.1 . 10.1.1.1"));
}

#[test]
fn flush_set_and_map_empties_them() {
    let Some((ns, mut socket)) = setup("flush_set_and_map_empties_them") else {
        return;
    };
    for (kind, set, items) in elements() {
        let kind_enum = match kind {
            "map" => SetKind::Map,
            _ => SetKind::Set,
        };
        send(
            &mut socket,
            &[Command::AddElements {
                set: set.into(),
                elements: items,
            }],
        )
        .unwrap();
        assert!(listing(&ns, kind, set).contains("elements"));
        assert_twins(&ns, &mut socket, kind, set, |name| {
            vec![Command::FlushSet {
                kind: kind_enum,
                name: name.into(),
            }]
        });
        assert!(!listing(&ns, kind, set).contains("elements"));
    }
}

#[test]
fn flush_and_delete_chain() {
    let Some((ns, mut socket)) = setup("flush_and_delete_chain") else {
        return;
    };
    let rules = |chain: &str| {
        vec![
            Command::AddChain {
                name: chain.into(),
                base: None,
            },
            Command::AddRule {
                chain: chain.into(),
                rule: "jump svc-a".into(),
            },
            Command::AddRule {
                chain: chain.into(),
                rule: "drop".into(),
            },
        ]
    };
    send(&mut socket, &rules("gone")).unwrap();
    assert!(ns
        .nft("list chain ip sy gone")
        .unwrap()
        .contains("jump svc-a"));
    send(&mut socket, &[Command::FlushChain("gone".into())]).unwrap();
    let flushed = ns.nft("list chain ip sy gone").unwrap();
    assert!(!flushed.contains("jump svc-a") && !flushed.contains("drop"));

    // Refill and delete in one batch, as a delta deleting a Service does.
    let mut batch = rules("gone");
    batch.extend([
        Command::FlushChain("gone".into()),
        Command::DeleteChain("gone".into()),
    ]);
    send(&mut socket, &batch).unwrap();
    assert!(ns.nft("list chain ip sy gone").is_err());
}

#[test]
fn large_batch_is_chunked_and_fully_acked() {
    let Some((ns, mut socket)) = setup("large_batch_is_chunked_and_fully_acked") else {
        return;
    };
    let elements: Vec<Element> = (0..5000)
        .map(|i| {
            backend(
                i..=i,
                [10, 244, (i >> 8) as u8, i as u8],
                8080,
                Protocol::Tcp,
            )
        })
        .collect();
    let mut commands = vec![Command::AddElements {
        set: "backend-ranges-tcp-00".into(),
        elements,
    }];
    commands.extend((0..3000).map(|i| Command::AddRule {
        chain: "nl".into(),
        rule: format!(
            "ip daddr 10.96.{}.{} tcp dport 80 jump svc-a",
            i / 250,
            i % 250
        ),
    }));
    send(&mut socket, &commands).unwrap();
    let rules = ns.nft("list chain ip sy nl").unwrap();
    assert_eq!(rules.matches("jump svc-a").count(), 3000);
    let map = ns.nft("-j list map ip sy backend-ranges-tcp-00").unwrap();
    assert_eq!(map.matches("\"concat\"").count(), 5000);
}

/// The table `name` as `nft list` and `nft -j list` show it, its name
/// replaced by `NAME` and handles dropped, so twin tables compare equal.
fn table_views(ns: &Netns, name: &str) -> (String, serde_json::Value) {
    let text = ns
        .nft(&format!("list table ip {name}"))
        .unwrap()
        .replace(&format!("table ip {name} {{"), "table ip NAME {");
    let json = ns.nft(&format!("-j list table ip {name}")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&json).unwrap();
    normalize(&mut json, name);
    (text, json)
}

/// Drops `handle` keys and renames the table, recursively.
fn normalize(value: &mut serde_json::Value, table: &str) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("handle");
            for (key, v) in map.iter_mut() {
                match (key.as_str(), &v) {
                    ("table" | "name", serde_json::Value::String(s)) if s == table => {
                        *v = "NAME".into();
                    }
                    _ => normalize(v, table),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| normalize(v, table)),
        _ => {}
    }
}

/// Every declaration the differ writes: the table, the verdict maps, all
/// backend maps, the canary and hairpin sets, affinity sets (timeouts at
/// nft's limits too), the skeleton's base chains and the regular chains
/// the test elements name.
fn declaration_commands() -> Vec<Command> {
    let mut commands = vec![Command::AddTable];
    let mut set = |kind, name: &str, decl: String| {
        commands.push(Command::AddSet {
            kind,
            name: name.into(),
            decl,
        })
    };
    for map in MapName::ALL {
        set(
            SetKind::Map,
            map.as_str(),
            format!("type {};", map.type_decl()),
        );
    }
    for (protocol, name) in all_backend_maps() {
        let decl =
            format!("typeof numgen random mod 1 : ip daddr . {protocol} dport; flags interval;");
        set(SetKind::Map, &name, decl);
    }
    set(SetKind::Set, CANARY_SET, "type mark;".into());
    set(
        SetKind::Set,
        HAIRPIN_SET,
        "type ipv4_addr . ipv4_addr;".into(),
    );
    for timeout in [0, 1, 10800, 99_999_999] {
        let decl = format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;");
        set(SetKind::Set, &format!("aff-{timeout}"), decl);
    }
    for (name, spec) in skeleton().chains {
        if let Some(base) = spec.base {
            commands.push(Command::AddChain {
                name,
                base: Some(base),
            });
        }
    }
    for name in ["svc-a", "svc-b", REJECT_CHAIN] {
        commands.push(Command::AddChain {
            name: name.into(),
            base: None,
        });
    }
    commands
}

#[test]
fn every_declaration_lists_like_nft() {
    let Some(ns) = Netns::create("every_declaration_lists_like_nft") else {
        return;
    };
    let mut socket = Socket::open(Some(&ns.name)).unwrap();
    let (ours, twin) = ("decl", "decl-twin");
    let commands = declaration_commands();
    socket.send(&mut encode(ours, &commands).unwrap()).unwrap();
    nft_script(&ns, &script(twin, &commands)).unwrap();
    let (text, json) = table_views(&ns, ours);
    assert_eq!(text, table_views(&ns, twin).0);
    assert_eq!(json, table_views(&ns, twin).1);
    for expected in [
        "typeof numgen random mod 1 : ip daddr . sctp dport",
        "type ipv4_addr . inet_proto . inet_service : verdict",
        "hook postrouting priority srcnat; policy accept;",
        "timeout 1157d9h46m39s",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    // Elements print by the types the userdata records.
    let fill: Vec<Command> = elements()
        .into_iter()
        .map(|(_, set, items)| Command::AddElements {
            set: set.into(),
            elements: items,
        })
        .collect();
    socket.send(&mut encode(ours, &fill).unwrap()).unwrap();
    nft_script(&ns, &script(twin, &fill)).unwrap();
    let (text, json) = table_views(&ns, ours);
    assert_eq!(text, table_views(&ns, twin).0);
    assert_eq!(json, table_views(&ns, twin).1);
    assert!(text.contains("16384-16389 : 10.244.1.5 . 8080"), "{text}");
}

#[test]
fn delete_set_and_map() {
    let Some((ns, mut socket)) = setup("delete_set_and_map") else {
        return;
    };
    for (kind, enum_kind, name) in [
        ("map", SetKind::Map, "backend-ranges-udp-00"),
        ("set", SetKind::Set, "aff-a"),
    ] {
        let delete = |name: &str| {
            vec![Command::DeleteSet {
                kind: enum_kind,
                name: name.into(),
            }]
        };
        send(&mut socket, &delete(name)).unwrap();
        nft_script(&ns, &script(TABLE, &delete(&format!("{name}{TWIN}")))).unwrap();
        for object in [name.to_owned(), format!("{name}{TWIN}")] {
            let listed = ns.nft(&format!("list {kind} ip {TABLE} {object}"));
            assert!(listed.is_err(), "{object}: {listed:?}");
        }
    }
    // A set still referenced by a rule cannot go; the batch names it.
    send(
        &mut socket,
        &[Command::AddRule {
            chain: "nl".into(),
            rule: "ip saddr . ip daddr @hairpin jump svc-a".into(),
        }],
    )
    .unwrap();
    let err = send(
        &mut socket,
        &[Command::DeleteSet {
            kind: SetKind::Set,
            name: HAIRPIN_SET.into(),
        }],
    )
    .unwrap_err();
    assert_eq!(
        err.nft_stderr(),
        Some("delete set ip sy hairpin: Device or resource busy")
    );
}

#[test]
fn large_anonymous_map_is_chunked() {
    let Some((ns, mut socket)) = setup("large_anonymous_map_is_chunked") else {
        return;
    };
    let arms: Vec<String> = (0..3000)
        .map(|i| format!("{i} : goto ep-{}", ["a", "b"][i % 2]))
        .collect();
    let rule = format!("numgen random mod 3000 vmap {{ {} }}", arms.join(", "));
    assert_twins(&ns, &mut socket, "chain", "nl", |chain| {
        vec![Command::AddRule {
            chain: chain.into(),
            rule: rule.clone(),
        }]
    });
    let listed = listing(&ns, "chain", "nl");
    assert!(listed.contains("2999 : goto ep-b }"), "{listed}");
}

#[test]
fn missing_namespace_is_a_socket_error() {
    let err = Socket::open(Some("sytest-no-such-namespace")).unwrap_err();
    assert!(matches!(err, NftError::Netlink(_)), "{err:?}");
    let err = Socket::open(Some("../etc")).unwrap_err();
    assert!(matches!(err, NftError::Netlink(_)), "{err:?}");
}
