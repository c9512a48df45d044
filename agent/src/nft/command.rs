//! One statement of a transaction, kept structured so the same plan can be
//! encoded as netlink messages (what the agent sends, see
//! [`super::netlink`]) or written as nft syntax (`nft -f`: the fallback,
//! logs, tests and the benchmark's floor).

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::state::{BackendRange, BaseHook, MapKey, Target, Verdict};

/// A statement on the agent's table (`ip <table>`, given at render time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    AddTable,
    /// `add map|set ip T NAME { DECL }`.
    AddSet {
        kind: SetKind,
        name: String,
        decl: String,
    },
    AddChain {
        name: String,
        base: Option<BaseHook>,
    },
    FlushChain(String),
    DeleteChain(String),
    /// `add rule ip T CHAIN RULE`; `rule` is nft syntax, comment included.
    AddRule {
        chain: String,
        rule: String,
    },
    FlushSet {
        kind: SetKind,
        name: String,
    },
    DeleteSet {
        kind: SetKind,
        name: String,
    },
    AddElements {
        set: String,
        elements: Vec<Element>,
    },
    /// Deletes by key; the value half of each element is ignored.
    DeleteElements {
        set: String,
        elements: Vec<Element>,
    },
}

/// nft names maps and sets differently in commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    Set,
    Map,
}

impl fmt::Display for SetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SetKind::Set => "set",
            SetKind::Map => "map",
        })
    }
}

/// An element of one of the table's sets or maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    /// `addr . proto . port : verdict` (or `proto . port`) in a verdict map.
    Service(MapKey, Verdict),
    /// `first-last : addr . port` in a backend (interval) map.
    Backend(u32, BackendRange),
    /// `addr . addr` in the hairpin set.
    Hairpin(Ipv4Addr),
    /// A mark in the canary set.
    Mark(u32),
    /// A Service address tuple in one of the constant layout's fact sets.
    Tuple(MapKey),
    /// `tuple . slot : addr . port` in a constant-layout dispatch map.
    Slot(MapKey, u32, Target),
    /// `tuple . source range` in the constant layout's firewall-allow set.
    Allow(MapKey, Ipv4Net),
}

impl Element {
    /// The key alone, as `delete element` wants it.
    pub fn key(&self) -> String {
        match self {
            Element::Service(key, _) => key.to_string(),
            Element::Backend(first, range) if *first == range.last => first.to_string(),
            Element::Backend(first, range) => format!("{first}-{}", range.last),
            Element::Mark(key) => key.to_string(),
            Element::Hairpin(ip) => format!("{ip} . {ip}"),
            Element::Tuple(key) => key.to_string(),
            Element::Slot(key, slot, _) => format!("{key} . {slot}"),
            Element::Allow(key, range) => format!("{key} . {range}"),
        }
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Service(key, verdict) => write!(f, "{key} : {verdict}"),
            Element::Backend(_, range) => write!(f, "{} : {}", self.key(), range.target),
            Element::Slot(_, _, target) => write!(f, "{} : {target}", self.key()),
            Element::Hairpin(_) | Element::Mark(_) | Element::Tuple(_) | Element::Allow(..) => {
                f.write_str(&self.key())
            }
        }
    }
}

/// Elements per `add element`/`delete element` line, to keep lines sane.
const ELEMENTS_PER_LINE: usize = 500;

impl Command {
    /// Appends the nft syntax of this command (one or more lines).
    pub fn render(&self, table: &str, out: &mut String) {
        use fmt::Write as _;
        let t = table;
        // Writing to a String cannot fail.
        let _ = match self {
            Command::AddTable => writeln!(out, "add table ip {t}"),
            Command::AddSet { kind, name, decl } => {
                writeln!(out, "add {kind} ip {t} {name} {{ {decl} }}")
            }
            Command::AddChain { name, base: None } => writeln!(out, "add chain ip {t} {name}"),
            Command::AddChain {
                name,
                base: Some(b),
            } => writeln!(
                out,
                "add chain ip {t} {name} {{ type {} hook {} priority {}; policy accept; }}",
                b.kind, b.hook, b.priority
            ),
            Command::FlushChain(name) => writeln!(out, "flush chain ip {t} {name}"),
            Command::DeleteChain(name) => writeln!(out, "delete chain ip {t} {name}"),
            Command::AddRule { chain, rule } => writeln!(out, "add rule ip {t} {chain} {rule}"),
            Command::FlushSet { kind, name } => writeln!(out, "flush {kind} ip {t} {name}"),
            Command::DeleteSet { kind, name } => writeln!(out, "delete {kind} ip {t} {name}"),
            Command::AddElements { set, elements } => {
                render_elements(out, t, "add", set, elements, Element::to_string);
                Ok(())
            }
            Command::DeleteElements { set, elements } => {
                render_elements(out, t, "delete", set, elements, Element::key);
                Ok(())
            }
        };
    }
}

fn render_elements(
    out: &mut String,
    table: &str,
    verb: &str,
    set: &str,
    elements: &[Element],
    item: impl Fn(&Element) -> String,
) {
    for chunk in elements.chunks(ELEMENTS_PER_LINE) {
        let items: Vec<String> = chunk.iter().map(&item).collect();
        out.push_str(&format!(
            "{verb} element ip {table} {set} {{ {} }}\n",
            items.join(", ")
        ));
    }
}

/// The `nft -f` script of `commands`.
pub fn script<'a>(table: &str, commands: impl IntoIterator<Item = &'a Command>) -> String {
    let mut out = String::new();
    for command in commands {
        command.render(table, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use crate::nft::state::Target;

    #[test]
    fn renders_nft_syntax() {
        let key = MapKey {
            addr: Some(Ipv4Addr::new(10, 96, 0, 10)),
            protocol: Protocol::Udp,
            port: 53,
        };
        let target = Target {
            ip: Ipv4Addr::new(10, 244, 1, 5),
            port: 5353,
            protocol: Protocol::Udp,
        };
        let commands = [
            Command::AddElements {
                set: "service-ips".into(),
                elements: vec![Element::Service(key, Verdict::Goto("svc-a".into()))],
            },
            Command::DeleteElements {
                set: "backend-ranges-udp-0".into(),
                elements: vec![
                    Element::Backend(7, BackendRange { last: 7, target }),
                    Element::Backend(8, BackendRange { last: 99, target }),
                ],
            },
            Command::AddElements {
                set: "hairpin".into(),
                elements: vec![Element::Hairpin(target.ip)],
            },
            Command::FlushSet {
                kind: SetKind::Set,
                name: "canary".into(),
            },
        ];
        assert_eq!(
            script("sy", &commands),
            "add element ip sy service-ips { 10.96.0.10 . udp . 53 : goto svc-a }\n\
             delete element ip sy backend-ranges-udp-0 { 7, 8-99 }\n\
             add element ip sy hairpin { 10.244.1.5 . 10.244.1.5 }\n\
             flush set ip sy canary\n"
        );
    }
}
