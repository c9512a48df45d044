//! The netlink encoder against a real kernel: every element kind and
//! declaration a change of the constant layout sends as a raw nf_tables
//! batch must list exactly like the same text loaded by `nft -f` into a
//! twin set; failures must name the command and leave nothing of the
//! batch behind.
//!
//! Runs inside throwaway network namespaces (never the root namespace).
//! Needs root; without it each test prints `SKIPPED` and passes, unless
//! `SWITCHYARD_E2E=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::net::Ipv4Addr;

use support::Netns;
use switchyard_agent::model::Protocol;
use switchyard_agent::nft::command::{script, Command, Element, SetKind};
use switchyard_agent::nft::netlink::{encode, Socket};
use switchyard_agent::nft::state::{MapKey, Target, CANARY_SET, HAIRPIN_SET};
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

/// The constant layout's sets and maps (as `layout::render` declares
/// them), each with a twin.
fn declarations() -> String {
    let tuples = "type ipv4_addr . inet_proto . inet_service;";
    let sets: [(&str, &str, &str); 8] = [
        ("set", "cluster-ips", tuples),
        ("set", "node-ports", "type inet_proto . inet_service;"),
        (
            "set",
            "firewall-allow",
            "type ipv4_addr . inet_proto . inet_service . ipv4_addr; flags interval;",
        ),
        ("set", HAIRPIN_SET, "type ipv4_addr . ipv4_addr;"),
        ("set", CANARY_SET, "type mark;"),
        (
            "map",
            "service-backends",
            "typeof ip daddr . meta l4proto . th dport . numgen random mod 2 : ip daddr . th dport;",
        ),
        (
            "map",
            "node-port-backends",
            "typeof meta l4proto . th dport . numgen random mod 2 : ip daddr . th dport;",
        ),
        (
            "map",
            "affinity",
            "type ipv4_addr . ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags dynamic,timeout;",
        ),
    ];
    let mut out = format!("add table ip {TABLE}\n");
    for (kind, name, decl) in sets {
        for object in [name.to_owned(), format!("{name}{TWIN}")] {
            out.push_str(&format!("add {kind} ip {TABLE} {object} {{ {decl} }}\n"));
        }
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

/// What the kernel holds for a set, as `nft --debug=netlink` prints it:
/// each element's key and data bytes, sorted (hash order differs between
/// sets). Stricter than the listing, where different bytes may print alike.
fn kernel_view(ns: &Netns, name: &str) -> Vec<String> {
    let out = ns
        .nft(&format!("--debug=netlink list set ip {TABLE} {name}"))
        .or_else(|_| ns.nft(&format!("--debug=netlink list map ip {TABLE} {name}")))
        .unwrap();
    let mut lines = Vec::new();
    let mut inside = false;
    for line in out.lines().filter(|l| !l.is_empty()) {
        if !line.starts_with(char::is_whitespace) {
            inside = line == format!("ip {TABLE} @{name}");
        } else if inside {
            lines.push(line.trim().to_owned());
        }
    }
    lines.sort();
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
    assert_eq!(kernel_view(ns, object), kernel_view(ns, &twin), "{object}");
}

fn tuple(addr: Option<[u8; 4]>, protocol: Protocol, port: u16) -> MapKey {
    MapKey {
        addr: addr.map(Ipv4Addr::from),
        protocol,
        port,
    }
}

fn target(ip: [u8; 4], port: u16, protocol: Protocol) -> Target {
    Target {
        ip: ip.into(),
        port,
        protocol,
    }
}

/// Elements of every kind a change writes, varied where the encoding
/// depends on the value (protocols, slot byte order, range lengths).
fn elements() -> Vec<(&'static str, &'static str, Vec<Element>)> {
    let vip = tuple(Some([10, 96, 0, 10]), Protocol::Tcp, 80);
    let dns = tuple(Some([10, 96, 0, 10]), Protocol::Udp, 53);
    let sctp = tuple(Some([10, 96, 0, 11]), Protocol::Sctp, 65535);
    vec![
        (
            "set",
            "cluster-ips",
            vec![
                Element::Tuple(vip),
                Element::Tuple(dns),
                Element::Tuple(sctp),
            ],
        ),
        (
            "set",
            "node-ports",
            vec![
                Element::Tuple(tuple(None, Protocol::Tcp, 30080)),
                Element::Tuple(tuple(None, Protocol::Udp, 30081)),
            ],
        ),
        (
            "set",
            "firewall-allow",
            vec![
                Element::Allow(vip, "172.18.0.0/24".parse().unwrap()),
                Element::Allow(vip, "192.0.2.7/32".parse().unwrap()),
                Element::Allow(dns, "0.0.0.0/0".parse().unwrap()),
            ],
        ),
        (
            "set",
            HAIRPIN_SET,
            vec![
                Element::Hairpin(Ipv4Addr::new(10, 244, 1, 5)),
                Element::Hairpin(Ipv4Addr::new(10, 244, 1, 6)),
            ],
        ),
        (
            "set",
            CANARY_SET,
            vec![Element::Mark(7), Element::Mark(u32::MAX)],
        ),
        (
            "map",
            "service-backends",
            vec![
                Element::Slot(vip, 0x1_0000, target([10, 244, 1, 5], 8080, Protocol::Tcp)),
                Element::Slot(
                    vip,
                    0x8002_0001,
                    target([10, 244, 2, 5], 8080, Protocol::Tcp),
                ),
                Element::Slot(
                    dns,
                    0x100_3fff,
                    target([10, 244, 1, 5], 5353, Protocol::Udp),
                ),
                Element::Slot(sctp, 0x1_0000, target([10, 244, 1, 7], 9, Protocol::Sctp)),
            ],
        ),
        (
            "map",
            "node-port-backends",
            vec![Element::Slot(
                tuple(None, Protocol::Tcp, 30080),
                0x1_0000,
                target([10, 244, 1, 5], 8080, Protocol::Tcp),
            )],
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
        // Deleting by key (the data ignored) leaves the rest.
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

/// The kernel fills the affinity map; the agent only deletes from it.
#[test]
fn a_remembered_client_is_deleted_by_its_key() {
    let Some((ns, mut socket)) = setup("a_remembered_client_is_deleted_by_its_key") else {
        return;
    };
    for map in ["affinity", "affinity-twin"] {
        ns.nft(&format!(
            "add element ip {TABLE} {map} {{ 192.0.2.1 . 10.96.0.10 . tcp . 80 timeout 1h : 10.244.1.5 . 8080, \
             192.0.2.2 . 172.18.0.11 . udp . 30081 timeout 1h : 10.244.2.5 . 53 }}"
        ))
        .unwrap();
    }
    let gone = Element::Remembered(
        Ipv4Addr::new(192, 0, 2, 1),
        tuple(Some([10, 96, 0, 10]), Protocol::Tcp, 80),
    );
    send(
        &mut socket,
        &[Command::DeleteElements {
            set: "affinity".into(),
            elements: vec![gone.clone()],
        }],
    )
    .unwrap();
    let left = ns.nft(&format!("list map ip {TABLE} affinity")).unwrap();
    assert!(!left.contains("192.0.2.1 "), "{left}");
    assert!(
        left.contains("192.0.2.2 . 172.18.0.11 . udp . 30081"),
        "{left}"
    );
    nft_script(
        &ns,
        &script(
            TABLE,
            &[Command::DeleteElements {
                set: "affinity-twin".into(),
                elements: vec![gone],
            }],
        ),
    )
    .unwrap();
    let keys = |name: &str| -> Vec<String> {
        kernel_view(&ns, name)
            .into_iter()
            .map(|l| l.split(" : ").next().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(keys("affinity"), keys("affinity-twin"));
}

#[test]
fn an_affinity_timeouts_sets_are_declared_and_deleted_like_nft() {
    let Some((ns, mut socket)) = setup("an_affinity_timeouts_sets") else {
        return;
    };
    for (name, decl) in [
        ("affinity-60", "type ipv4_addr . inet_proto . inet_service;"),
        ("affinity-node-ports-60", "type inet_proto . inet_service;"),
    ] {
        assert_twins(&ns, &mut socket, "set", name, |name| {
            vec![Command::AddSet {
                kind: SetKind::Set,
                name: name.into(),
                decl: decl.into(),
            }]
        });
        let delete = |name: &str| {
            vec![Command::DeleteSet {
                kind: SetKind::Set,
                name: name.into(),
            }]
        };
        send(&mut socket, &delete(name)).unwrap();
        assert!(ns.nft(&format!("list set ip {TABLE} {name}")).is_err());
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

    // Leftover acks of the aborted batch do not confuse the next one.
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
fn large_batch_is_chunked_and_fully_acked() {
    let Some((ns, mut socket)) = setup("large_batch_is_chunked_and_fully_acked") else {
        return;
    };
    let vip = tuple(Some([10, 96, 0, 10]), Protocol::Tcp, 80);
    let elements: Vec<Element> = (0..20_000u32)
        .map(|i| {
            let ip = [10, 244, (i >> 8) as u8, i as u8];
            Element::Slot(vip, 0x100_0000 | i, target(ip, 8080, Protocol::Tcp))
        })
        .collect();
    send(
        &mut socket,
        &[Command::AddElements {
            set: "service-backends".into(),
            elements,
        }],
    )
    .unwrap();
    let map = ns
        .nft(&format!("-j list map ip {TABLE} service-backends"))
        .unwrap();
    assert_eq!(map.matches("\"concat\"").count(), 2 * 20_000);
}

#[test]
fn missing_namespace_is_a_socket_error() {
    let err = Socket::open(Some("sytest-no-such-namespace")).unwrap_err();
    assert!(matches!(err, NftError::Netlink(_)), "{err:?}");
    let err = Socket::open(Some("../etc")).unwrap_err();
    assert!(matches!(err, NftError::Netlink(_)), "{err:?}");
}
