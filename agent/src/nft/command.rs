//! One statement of a transaction, kept structured so the same plan can be
//! encoded as netlink messages (what the agent sends, see
//! [`super::netlink`]) or written as nft syntax (`nft -f`: the fallback,
//! logs, tests and the benchmark's floor).

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::state::{MapKey, Target};

/// A statement on the agent's table (`ip <table>`, given at render time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `add map|set ip T NAME { DECL }`.
    AddSet {
        kind: SetKind,
        name: String,
        decl: String,
    },
    FlushChain(String),
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
    /// `client . tuple` in the affinity map (deleted only: the kernel adds).
    Remembered(Ipv4Addr, MapKey),
}

impl Element {
    /// The key alone, as `delete element` wants it.
    pub fn key(&self) -> String {
        match self {
            Element::Mark(key) => key.to_string(),
            Element::Hairpin(ip) => format!("{ip} . {ip}"),
            Element::Tuple(key) => key.to_string(),
            Element::Slot(key, slot, _) => format!("{key} . {slot}"),
            Element::Allow(key, range) => format!("{key} . {range}"),
            Element::Remembered(client, key) => format!("{client} . {key}"),
        }
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Slot(_, _, target) => write!(f, "{} : {target}", self.key()),
            Element::Hairpin(_)
            | Element::Mark(_)
            | Element::Tuple(_)
            | Element::Allow(..)
            | Element::Remembered(..) => f.write_str(&self.key()),
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
            Command::AddSet { kind, name, decl } => {
                writeln!(out, "add {kind} ip {t} {name} {{ {decl} }}")
            }
            Command::FlushChain(name) => writeln!(out, "flush chain ip {t} {name}"),
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
                set: "service-backends".into(),
                elements: vec![Element::Slot(key, 0x1_0000, target)],
            },
            Command::DeleteElements {
                set: "service-backends".into(),
                elements: vec![Element::Slot(key, 0x2_0001, target)],
            },
            Command::AddElements {
                set: "firewall-allow".into(),
                elements: vec![Element::Allow(key, "192.0.2.0/24".parse().unwrap())],
            },
            Command::AddElements {
                set: "hairpin".into(),
                elements: vec![Element::Hairpin(target.ip)],
            },
            Command::DeleteElements {
                set: "affinity".into(),
                elements: vec![Element::Remembered(Ipv4Addr::new(192, 0, 2, 1), key)],
            },
            Command::FlushSet {
                kind: SetKind::Set,
                name: "canary".into(),
            },
        ];
        assert_eq!(
            script("sy", &commands),
            "add element ip sy service-backends { 10.96.0.10 . udp . 53 . 65536 : 10.244.1.5 . 5353 }\n\
             delete element ip sy service-backends { 10.96.0.10 . udp . 53 . 131073 }\n\
             add element ip sy firewall-allow { 10.96.0.10 . udp . 53 . 192.0.2.0/24 }\n\
             add element ip sy hairpin { 10.244.1.5 . 10.244.1.5 }\n\
             delete element ip sy affinity { 192.0.2.1 . 10.96.0.10 . udp . 53 }\n\
             flush set ip sy canary\n"
        );
    }
}
