//! Transactions as raw nf_tables netlink batches, sent from the agent's
//! own socket instead of an `nft -f` run.
//!
//! Why: each `nft` run costs ~20 ms of process and socket teardown, and
//! nft 1.0.6 first dumps every chain of the table (~40 ms at 10,000
//! Services), whatever the size of the change; on a first load, parsing
//! and evaluating the script takes longer than the kernel's work. A batch
//! here costs what its messages cost.
//!
//! What a change of the constant layout writes is encoded: elements of
//! every set and map, set declarations (`set.rs`), flushes and deletions.
//! [`encode`] returns `None` for anything else (rules: the record chain
//! rewritten when an affinity timeout comes or goes), and the caller runs
//! that transaction through `nft -f` instead; so do full loads. Each
//! message replicates what nft itself sends for the same text, so both
//! paths leave identical tables.

mod consts;
mod element;
mod message;
mod set;
mod socket;

pub use socket::Socket;

use consts::*;
use message::Writer;

use super::command::{Command, Element};
use super::error::NftError;

/// Elements per netlink message: the same lines `nft -f` would get, so an
/// error names the same `add element` line nft would have shown.
const ELEMENTS_PER_MESSAGE: usize = 500;
/// Bytes of element list per message, well below the 64 KiB an attribute
/// length can express (long chain names make verdict elements large).
const ELEMENT_BYTES_PER_MESSAGE: usize = 32 * 1024;

/// A transaction encoded as `BATCH_BEGIN`, one message per command (or per
/// chunk of elements; a rule with an anonymous map also declares and fills
/// it), `BATCH_END`; sequence numbers are set by [`Socket::send`].
#[derive(Debug, Clone)]
pub struct Batch {
    table: String,
    bytes: Vec<u8>,
    /// Where each message starts, batch begin and end included.
    offsets: Vec<usize>,
    /// Where each request message (between begin and end) comes from, so
    /// an error can name it without the batch holding a copy of every
    /// command (megabytes on a first load).
    requests: Vec<Origin>,
}

/// The command a request message encodes: its position in the encoded
/// list and, for element commands, which of its elements the message
/// holds (an error names that chunk, as nft names the failed line). The
/// messages of a rule's anonymous map name the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Origin {
    command: usize,
    elements: Option<(usize, usize)>,
}

impl Batch {
    /// Whether the batch changes nothing (no message besides begin/end).
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Turns [`NftError::Refused`] from [`Socket::send`] into the refused
    /// command's nft syntax and the kernel's reason; `commands` are the
    /// ones this batch was encoded from. Other errors pass through.
    pub fn explain<'a>(
        &self,
        commands: impl IntoIterator<Item = &'a Command>,
        error: NftError,
    ) -> NftError {
        let NftError::Refused { request, errno } = error else {
            return error;
        };
        let what = request
            .and_then(|index| self.describe(commands, index))
            .unwrap_or_else(|| format!("commit of the batch on table ip {}", self.table));
        NftError::Rejected {
            status: "netlink".to_owned(),
            stderr: format!("{what}: {}", strerror(errno)),
        }
    }

    /// The nft syntax of request `index`.
    fn describe<'a>(
        &self,
        commands: impl IntoIterator<Item = &'a Command>,
        index: usize,
    ) -> Option<String> {
        let origin = self.requests.get(index)?;
        let command = commands.into_iter().nth(origin.command)?;
        let chunk = |elements: &[Element]| -> Option<Vec<Element>> {
            let (start, end) = origin.elements?;
            elements.get(start..end).map(<[Element]>::to_vec)
        };
        let part = match command {
            Command::AddElements { set, elements } => {
                chunk(elements).map(|elements| Command::AddElements {
                    set: set.clone(),
                    elements,
                })
            }
            Command::DeleteElements { set, elements } => {
                chunk(elements).map(|elements| Command::DeleteElements {
                    set: set.clone(),
                    elements,
                })
            }
            _ => None,
        };
        let mut text = String::new();
        part.as_ref()
            .unwrap_or(command)
            .render(&self.table, &mut text);
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

/// The C library's message for `errno`, as nft would print it.
fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.strip_suffix(&format!(" (os error {errno})")) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

/// Encodes `commands` on table `ip TABLE` as one atomic batch, or `None`
/// when some command has no netlink encoding here (the caller then falls
/// back to `nft -f`).
pub fn encode<'a>(table: &str, commands: impl IntoIterator<Item = &'a Command>) -> Option<Batch> {
    if !identifier(table) {
        return None;
    }
    let commands: Vec<&Command> = commands.into_iter().collect();
    let mut enc = Encoder {
        table,
        w: Writer::with_capacity(commands.iter().map(|c| upper_bound(c)).sum()),
        offsets: Vec::new(),
        requests: Vec::new(),
        current: 0,
        last_set_id: 0,
    };
    enc.batch_marker(NFNL_MSG_BATCH_BEGIN)?;
    for (index, command) in commands.into_iter().enumerate() {
        enc.current = index;
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

/// A generous bound on the bytes `command` encodes to. The batch buffer is
/// reserved at the sum up front: a first load is tens of MiB, growing it by
/// doubling would hold old and new copies at once, and reserved pages that
/// are never written cost no memory.
fn upper_bound(command: &Command) -> usize {
    const MESSAGE: usize = 1024;
    const ELEMENT: usize = 128;
    match command {
        Command::AddElements { elements, .. } | Command::DeleteElements { elements, .. } => {
            MESSAGE * elements.len().div_ceil(ELEMENTS_PER_MESSAGE) + ELEMENT * elements.len()
        }
        Command::AddRule { rule, .. } => MESSAGE + 64 * rule.len(),
        _ => MESSAGE,
    }
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
    requests: Vec<Origin>,
    /// Position of the command being encoded.
    current: usize,
    /// nft numbers the sets it declares in a batch from 1; the kernel
    /// finds a set not yet named (an anonymous one) by that number.
    last_set_id: u32,
}

impl Encoder<'_> {
    fn batch_marker(&mut self, msg_type: u16) -> Option<()> {
        self.offsets.push(self.w.len());
        let m = self
            .w
            .begin_message(msg_type, 0, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES);
        self.w.end_message(m)
    }

    /// Writes one nf_tables request whose attributes `body` writes. The
    /// caller records the command to name should the kernel refuse it.
    /// Only the last request asks for an ack (see `Socket::send`).
    fn request(
        &mut self,
        msg_type: u16,
        flags: u16,
        body: impl FnOnce(&mut Writer) -> Option<()>,
    ) -> Option<()> {
        self.offsets.push(self.w.len());
        let m = self
            .w
            .begin_message(NFNL_SUBSYS_NFTABLES << 8 | msg_type, flags, NFPROTO_IPV4, 0);
        body(&mut self.w)?;
        self.w.end_message(m)
    }

    /// Records that the next `count` request messages encode the current
    /// command as a whole.
    fn record(&mut self, count: usize) {
        let origin = Origin {
            command: self.current,
            elements: None,
        };
        self.requests.extend(std::iter::repeat_n(origin, count));
    }

    fn next_set_id(&mut self) -> u32 {
        self.last_set_id += 1;
        self.last_set_id
    }

    fn command(&mut self, command: &Command) -> Option<()> {
        let table = self.table;
        match command {
            Command::AddSet { kind, name, decl } if identifier(name) => {
                let decl = set::parse(*kind, decl)?;
                let id = self.next_set_id();
                self.request(NFT_MSG_NEWSET, NLM_F_CREATE, |w| {
                    decl.write(w, table, name, id)
                })?
            }
            Command::FlushChain(name) if identifier(name) => {
                self.request(NFT_MSG_DELRULE, 0, |w| {
                    w.string(NFTA_RULE_TABLE, table)?;
                    w.string(NFTA_RULE_CHAIN, name)
                })?
            }
            // No element list: the kernel flushes the whole set.
            Command::FlushSet { name, .. } if identifier(name) => {
                self.request(NFT_MSG_DELSETELEM, 0, |w| {
                    w.string(NFTA_SET_ELEM_LIST_TABLE, table)?;
                    w.string(NFTA_SET_ELEM_LIST_SET, name)
                })?
            }
            Command::DeleteSet { name, .. } if identifier(name) => {
                self.request(NFT_MSG_DELSET, 0, |w| {
                    w.string(NFTA_SET_TABLE, table)?;
                    w.string(NFTA_SET_NAME, name)
                })?
            }
            // Element commands record one origin per chunk.
            Command::AddElements { set, elements } => return self.elements(set, elements, false),
            Command::DeleteElements { set, elements } => return self.elements(set, elements, true),
            _ => return None,
        }
        self.record(1);
        Some(())
    }

    /// `NEWSETELEM`/`DELSETELEM` messages for `elements`. An empty list
    /// sends nothing: a `DELSETELEM` without elements would flush the set.
    fn elements(&mut self, set: &str, elements: &[Element], delete: bool) -> Option<()> {
        if !identifier(set) {
            return None;
        }
        let (msg_type, flags) = match delete {
            true => (NFT_MSG_DELSETELEM, 0),
            false => (NFT_MSG_NEWSETELEM, NLM_F_CREATE),
        };
        let table = self.table;
        let chunks = self.element_messages(
            msg_type,
            flags,
            elements,
            |w| {
                w.string(NFTA_SET_ELEM_LIST_TABLE, table)?;
                w.string(NFTA_SET_ELEM_LIST_SET, set)
            },
            |w, element| element::write(w, element, delete),
        )?;
        let mut start = 0;
        for taken in chunks {
            self.requests.push(Origin {
                command: self.current,
                elements: Some((start, start + taken)),
            });
            start += taken;
        }
        Some(())
    }

    /// Writes `items` as messages of type `msg_type`, each holding the
    /// attributes `header` writes and a list of up to
    /// [`ELEMENTS_PER_MESSAGE`] items of about
    /// [`ELEMENT_BYTES_PER_MESSAGE`] bytes. Returns how many items each
    /// message took; the caller records the commands.
    fn element_messages<T>(
        &mut self,
        msg_type: u16,
        flags: u16,
        items: &[T],
        header: impl Fn(&mut Writer) -> Option<()>,
        item: impl Fn(&mut Writer, &T) -> Option<()>,
    ) -> Option<Vec<usize>> {
        let mut chunks = Vec::new();
        let mut rest = items;
        while !rest.is_empty() {
            let mut taken = 0;
            self.request(msg_type, flags, |w| {
                header(w)?;
                let list = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
                let start = w.len();
                for element in rest.iter().take(ELEMENTS_PER_MESSAGE) {
                    if w.len() - start > ELEMENT_BYTES_PER_MESSAGE {
                        break;
                    }
                    item(w, element)?;
                    taken += 1;
                }
                w.end_nest(list)
            })?;
            chunks.push(taken);
            rest = &rest[taken..];
        }
        Some(chunks)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::Protocol;
    use crate::nft::command::SetKind;
    use crate::nft::state::{MapKey, Target};

    fn slot(port: u16) -> Element {
        let tuple = MapKey {
            addr: Some(Ipv4Addr::new(10, 96, 0, 1)),
            protocol: Protocol::Tcp,
            port,
        };
        let target = Target {
            ip: Ipv4Addr::new(10, 244, 1, 5),
            port: 8080,
            protocol: Protocol::Tcp,
        };
        Element::Slot(tuple, 0x1_0000, target)
    }

    #[test]
    fn unsupported_commands_are_none() {
        let unsupported = [
            Command::AddSet {
                kind: SetKind::Set,
                name: "s".into(),
                decl: "type ipv6_addr;".into(),
            },
            Command::AddSet {
                kind: SetKind::Set,
                name: "bad name".into(),
                decl: "type mark;".into(),
            },
            Command::DeleteSet {
                kind: SetKind::Map,
                name: "bad name".into(),
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
    }

    fn message_types(batch: &Batch) -> Vec<u16> {
        batch
            .offsets
            .iter()
            .map(|&o| u16::from_ne_bytes([batch.bytes[o + 4], batch.bytes[o + 5]]))
            .collect()
    }

    #[test]
    fn frames_every_command_between_begin_and_end() {
        let commands = [
            Command::AddSet {
                kind: SetKind::Set,
                name: "affinity-60".into(),
                decl: "type ipv4_addr . inet_proto . inet_service;".into(),
            },
            Command::FlushChain("affinity-record".into()),
            Command::DeleteElements {
                set: "hairpin".into(),
                elements: vec![],
            },
            Command::DeleteSet {
                kind: SetKind::Set,
                name: "affinity-10800".into(),
            },
        ];
        let batch = encode("sy", &commands).unwrap();
        // Begin, three requests, end; the empty delete sends nothing.
        assert_eq!(batch.requests.len(), 3);
        assert_eq!(message_types(&batch), [16, 0x0a09, 0x0a08, 0x0a0b, 17]);
        assert_eq!(
            batch.describe(&commands, 2).unwrap(),
            "delete set ip sy affinity-10800"
        );
    }

    #[test]
    fn a_refusal_names_the_failed_command() {
        let commands = [
            Command::FlushSet {
                kind: SetKind::Set,
                name: "a".into(),
            },
            Command::FlushChain("b".into()),
        ];
        let batch = encode("sy", &commands).unwrap();
        let refused = |request| NftError::Refused { request, errno: 2 };
        let err = batch.explain(&commands, refused(Some(1)));
        assert_eq!(
            err.nft_stderr(),
            Some("flush chain ip sy b: No such file or directory")
        );
        let err = batch.explain(&commands, refused(None));
        assert_eq!(
            err.nft_stderr(),
            Some("commit of the batch on table ip sy: No such file or directory")
        );
    }

    #[test]
    fn large_element_lists_are_chunked_like_nft_lines() {
        let elements: Vec<Element> = (0..1200).map(slot).collect();
        let commands = [Command::AddElements {
            set: "service-backends".into(),
            elements: elements.clone(),
        }];
        let batch = encode("sy", &commands).unwrap();
        assert_eq!(batch.requests.len(), 3);
        let mut last = String::new();
        Command::AddElements {
            set: "service-backends".into(),
            elements: elements[1000..].to_vec(),
        }
        .render("sy", &mut last);
        assert_eq!(batch.describe(&commands, 2).unwrap(), last.trim_end());
        assert!(batch.largest_message() < 40 * 1024);
    }
}
