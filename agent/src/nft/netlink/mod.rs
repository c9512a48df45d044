//! Deltas as raw nf_tables netlink batches, sent from the agent's own
//! socket instead of an `nft -f` run.
//!
//! Why: each `nft` run costs ~20 ms of process and socket teardown, and
//! nft 1.0.6 first dumps every chain of the table (~40 ms at 10,000
//! Services), whatever the size of the change. A batch here costs what its
//! messages cost.
//!
//! Only what a delta needs is encoded: regular chains, flushes, elements of
//! the agent's sets and maps, and the handful of rule shapes the agent
//! writes (listed in `rule.rs`).
//! [`encode`] returns `None` for anything else, and the caller runs that
//! transaction through `nft -f` instead. Each message replicates what nft
//! itself sends for the same text, so both paths leave identical tables.

mod consts;
mod element;
mod expr;
mod message;
mod rule;
mod socket;

pub use socket::Socket;

use consts::*;
use message::Writer;

use super::command::{Command, Element};
use super::state::Verdict;

/// Elements per netlink message: the same lines `nft -f` would get, so an
/// error names the same `add element` line nft would have shown.
const ELEMENTS_PER_MESSAGE: usize = 500;
/// Bytes of element list per message, well below the 64 KiB an attribute
/// length can express (long chain names make verdict elements large).
const ELEMENT_BYTES_PER_MESSAGE: usize = 32 * 1024;

/// A transaction encoded as `BATCH_BEGIN`, one message per command (or per
/// chunk of elements), `BATCH_END`; sequence numbers are set by
/// [`Socket::send`].
#[derive(Debug, Clone)]
pub struct Batch {
    table: String,
    bytes: Vec<u8>,
    /// Where each message starts, batch begin and end included.
    offsets: Vec<usize>,
    /// The command each request message (between begin and end) encodes;
    /// element commands are split like the messages, so an error names the
    /// chunk that failed.
    requests: Vec<Command>,
}

impl Batch {
    /// Whether the batch changes nothing (no message besides begin/end).
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The nft syntax of request `index`, for error messages.
    fn describe(&self, index: usize) -> Option<String> {
        let mut text = String::new();
        self.requests.get(index)?.render(&self.table, &mut text);
        Some(text.trim_end().to_owned())
    }

    /// The longest message, to size the receive buffer: a failed request
    /// comes back echoed in its error.
    fn largest_message(&self) -> usize {
        self.offsets
            .windows(2)
            .map(|w| w[1] - w[0])
            .chain([self.bytes.len() - self.offsets.last().copied().unwrap_or(0)])
            .max()
            .unwrap_or(0)
    }
}

/// Encodes `commands` on table `ip TABLE` as one atomic batch, or `None`
/// when some command has no netlink encoding here (the caller then falls
/// back to `nft -f`).
pub fn encode<'a>(table: &str, commands: impl IntoIterator<Item = &'a Command>) -> Option<Batch> {
    if !identifier(table) {
        return None;
    }
    let mut enc = Encoder {
        table,
        w: Writer::default(),
        offsets: Vec::new(),
        requests: Vec::new(),
    };
    enc.batch_marker(NFNL_MSG_BATCH_BEGIN)?;
    for command in commands {
        enc.command(command)?;
    }
    enc.batch_marker(NFNL_MSG_BATCH_END)?;
    Some(Batch {
        table: table.to_owned(),
        bytes: enc.w.into_bytes(),
        offsets: enc.offsets,
        requests: enc.requests,
    })
}

/// Whether nft reads `name` as one identifier (its scanner's `string`:
/// a letter, `_` or `.`, then letters, digits, `/`, `-`, `_`, `.`) of a
/// length the kernel accepts. Anything else nft would parse differently or
/// refuse, so it is not ours to send.
fn identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= NFT_NAME_MAXLEN
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '.'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
}

struct Encoder<'a> {
    table: &'a str,
    w: Writer,
    offsets: Vec<usize>,
    requests: Vec<Command>,
}

impl Encoder<'_> {
    fn batch_marker(&mut self, msg_type: u16) -> Option<()> {
        self.offsets.push(self.w.len());
        let m = self
            .w
            .begin_message(msg_type, 0, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES);
        self.w.end_message(m)
    }

    /// Writes one nf_tables request (with `NLM_F_ACK`, so success is
    /// confirmed per message) whose attributes `body` writes. The caller
    /// records the command to name should the kernel refuse it.
    fn request(
        &mut self,
        msg_type: u16,
        flags: u16,
        body: impl FnOnce(&mut Writer) -> Option<()>,
    ) -> Option<()> {
        self.offsets.push(self.w.len());
        let m = self.w.begin_message(
            NFNL_SUBSYS_NFTABLES << 8 | msg_type,
            flags | NLM_F_ACK,
            NFPROTO_IPV4,
            0,
        );
        body(&mut self.w)?;
        self.w.end_message(m)
    }

    fn command(&mut self, command: &Command) -> Option<()> {
        let table = self.table;
        match command {
            Command::AddChain { name, base: None } if identifier(name) => {
                self.request(NFT_MSG_NEWCHAIN, NLM_F_CREATE, |w| {
                    w.string(NFTA_CHAIN_TABLE, table)?;
                    w.string(NFTA_CHAIN_NAME, name)
                })?
            }
            Command::FlushChain(name) if identifier(name) => {
                self.request(NFT_MSG_DELRULE, 0, |w| {
                    w.string(NFTA_RULE_TABLE, table)?;
                    w.string(NFTA_RULE_CHAIN, name)
                })?
            }
            Command::DeleteChain(name) if identifier(name) => {
                self.request(NFT_MSG_DELCHAIN, 0, |w| {
                    w.string(NFTA_CHAIN_TABLE, table)?;
                    w.string(NFTA_CHAIN_NAME, name)
                })?
            }
            // No element list: the kernel flushes the whole set.
            Command::FlushSet { name, .. } if identifier(name) => {
                self.request(NFT_MSG_DELSETELEM, 0, |w| {
                    w.string(NFTA_SET_ELEM_LIST_TABLE, table)?;
                    w.string(NFTA_SET_ELEM_LIST_SET, name)
                })?
            }
            Command::AddRule { chain, rule } if identifier(chain) => {
                let rule = rule::parse(rule)?;
                self.request(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, |w| {
                    w.string(NFTA_RULE_TABLE, table)?;
                    w.string(NFTA_RULE_CHAIN, chain)?;
                    let list = w.begin_nest(NFTA_RULE_EXPRESSIONS);
                    for expr in &rule.exprs {
                        expr.write(w)?;
                    }
                    w.end_nest(list)?;
                    match rule.userdata() {
                        Some(data) => w.bytes(NFTA_RULE_USERDATA, &data),
                        None => Some(()),
                    }
                })?
            }
            // Element commands record one origin per chunk.
            Command::AddElements { set, elements } => return self.elements(set, elements, false),
            Command::DeleteElements { set, elements } => return self.elements(set, elements, true),
            _ => return None,
        }
        self.requests.push(command.clone());
        Some(())
    }

    /// `NEWSETELEM`/`DELSETELEM` messages for `elements`, each holding up
    /// to [`ELEMENTS_PER_MESSAGE`] elements and about
    /// [`ELEMENT_BYTES_PER_MESSAGE`] bytes. An empty list sends nothing: a
    /// `DELSETELEM` without elements would flush the set.
    fn elements(&mut self, set: &str, elements: &[Element], delete: bool) -> Option<()> {
        if !identifier(set) || !elements.iter().all(element_names_ok) {
            return None;
        }
        let (msg_type, flags) = match delete {
            true => (NFT_MSG_DELSETELEM, 0),
            false => (NFT_MSG_NEWSETELEM, NLM_F_CREATE),
        };
        let table = self.table;
        let mut rest = elements;
        while !rest.is_empty() {
            let mut taken = 0;
            self.request(msg_type, flags, |w| {
                w.string(NFTA_SET_ELEM_LIST_TABLE, table)?;
                w.string(NFTA_SET_ELEM_LIST_SET, set)?;
                let list = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
                let start = w.len();
                for element in rest.iter().take(ELEMENTS_PER_MESSAGE) {
                    if w.len() - start > ELEMENT_BYTES_PER_MESSAGE {
                        break;
                    }
                    element::write(w, element, delete)?;
                    taken += 1;
                }
                w.end_nest(list)
            })?;
            let (now, later) = rest.split_at(taken);
            let (set, elements) = (set.to_owned(), now.to_vec());
            self.requests.push(match delete {
                true => Command::DeleteElements { set, elements },
                false => Command::AddElements { set, elements },
            });
            rest = later;
        }
        Some(())
    }
}

/// Chain names inside verdict elements must be identifiers too.
fn element_names_ok(element: &Element) -> bool {
    match element {
        Element::Service(_, Verdict::Goto(chain)) => identifier(chain),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::Protocol;
    use crate::nft::command::SetKind;
    use crate::nft::state::{BaseHook, MapKey};

    fn service(port: u16, chain: &str) -> Element {
        Element::Service(
            MapKey {
                addr: Some(Ipv4Addr::new(10, 96, 0, 1)),
                protocol: Protocol::Tcp,
                port,
            },
            Verdict::Goto(chain.into()),
        )
    }

    #[test]
    fn unsupported_commands_are_none() {
        let unsupported = [
            Command::AddTable,
            Command::AddSet {
                kind: SetKind::Set,
                name: "s".into(),
                decl: "type mark;".into(),
            },
            Command::DeleteSet {
                kind: SetKind::Map,
                name: "m".into(),
            },
            Command::AddChain {
                name: "input".into(),
                base: Some(BaseHook {
                    kind: "filter",
                    hook: "input",
                    priority: 0,
                }),
            },
            Command::AddRule {
                chain: "c".into(),
                rule: "counter accept".into(),
            },
            Command::FlushChain("bad name".into()),
        ];
        for command in unsupported {
            assert!(
                encode("sy", &[Command::FlushChain("c".into()), command.clone()]).is_none(),
                "{command:?}"
            );
        }
        assert!(encode("bad table", &[]).is_none());
        assert!(encode(
            "sy",
            &[Command::AddElements {
                set: "service-ips".into(),
                elements: vec![service(1, "9lives")]
            }]
        )
        .is_none());
    }

    #[test]
    fn frames_every_command_between_begin_and_end() {
        let batch = encode(
            "sy",
            &[
                Command::AddChain {
                    name: "svc-a".into(),
                    base: None,
                },
                Command::AddRule {
                    chain: "svc-a".into(),
                    rule: "drop".into(),
                },
                Command::DeleteElements {
                    set: "hairpin".into(),
                    elements: vec![],
                },
            ],
        )
        .unwrap();
        // Begin, two requests, end; the empty delete sends nothing.
        assert_eq!(batch.offsets.len(), 4);
        assert_eq!(batch.requests.len(), 2);
        let types: Vec<u16> = batch
            .offsets
            .iter()
            .map(|&o| u16::from_ne_bytes([batch.bytes[o + 4], batch.bytes[o + 5]]))
            .collect();
        assert_eq!(types, [16, 0x0a03, 0x0a06, 17]);
        assert_eq!(batch.describe(1).unwrap(), "add rule ip sy svc-a drop");
    }

    #[test]
    fn large_element_lists_are_chunked_like_nft_lines() {
        let elements: Vec<Element> = (0..1200).map(|p| service(p, "svc-a")).collect();
        let batch = encode(
            "sy",
            &[Command::AddElements {
                set: "service-ips".into(),
                elements: elements.clone(),
            }],
        )
        .unwrap();
        assert_eq!(batch.requests.len(), 3);
        assert_eq!(
            batch.requests[2],
            Command::AddElements {
                set: "service-ips".into(),
                elements: elements[1000..].to_vec()
            }
        );
        // Long chain names are split by size instead.
        let long = "c".repeat(250);
        let elements: Vec<Element> = (0..500).map(|p| service(p, &long)).collect();
        let batch = encode(
            "sy",
            &[Command::DeleteElements {
                set: "service-ips".into(),
                elements: elements.clone(),
            }],
        )
        .unwrap();
        assert_eq!(batch.requests.len(), 1, "keys alone are small");
        let batch = encode(
            "sy",
            &[Command::AddElements {
                set: "service-ips".into(),
                elements,
            }],
        )
        .unwrap();
        assert!(batch.requests.len() > 1);
        assert!(batch.largest_message() < 40 * 1024);
    }
}
