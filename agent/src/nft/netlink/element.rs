//! Set and map elements as nf_tables stores them: keys and data are raw
//! register bytes, every field of a concatenation padded to 4 bytes.
//!
//! Byte orders follow what the matching expression leaves in the register:
//! payload loads (addresses, ports) are network order, while `meta mark`
//! and `numgen` write a host-order u32.

use super::consts::{NFTA_DATA_VALUE, NFTA_LIST_ELEM, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_KEY};
use super::expr::{write_verdict, RuleVerdict};
use super::message::Writer;
use super::rule::ip_proto;
use crate::nft::command::Element;
use crate::nft::state::MapKey;

/// `inet_service` in a concatenation: big-endian port, 2 bytes of padding.
fn port_field(port: u16) -> [u8; 4] {
    let [hi, lo] = port.to_be_bytes();
    [hi, lo, 0, 0]
}

/// `[addr .] inet_proto . inet_service`.
fn service_key(key: &MapKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    if let Some(addr) = key.addr {
        out.extend_from_slice(&addr.octets());
    }
    out.extend_from_slice(&[ip_proto(key.protocol), 0, 0, 0]);
    out.extend_from_slice(&port_field(key.port));
    out
}

/// The key bytes of an element.
pub fn key(element: &Element) -> Vec<u8> {
    match element {
        Element::Service(key, _) => service_key(key),
        Element::Backend(key, _) | Element::Mark(key) => key.to_ne_bytes().to_vec(),
        Element::Hairpin(ip) => [ip.octets(), ip.octets()].concat(),
    }
}

/// Writes one `NFTA_LIST_ELEM` (key, and data unless `key_only`). nft
/// numbers the entries of a list 1, 2, …; the kernel ignores their type,
/// so every entry here is `NFTA_LIST_ELEM`.
pub fn write(w: &mut Writer, element: &Element, key_only: bool) -> Option<()> {
    let elem = w.begin_nest(NFTA_LIST_ELEM);
    w.data_value(NFTA_SET_ELEM_KEY, &key(element))?;
    if !key_only {
        match element {
            Element::Service(_, verdict) => {
                write_verdict(w, NFTA_SET_ELEM_DATA, &RuleVerdict::from(verdict))?
            }
            Element::Backend(_, target) => {
                let data = [target.ip.octets(), port_field(target.port)].concat();
                let nest = w.begin_nest(NFTA_SET_ELEM_DATA);
                w.bytes(NFTA_DATA_VALUE, &data)?;
                w.end_nest(nest)?;
            }
            Element::Hairpin(_) | Element::Mark(_) => {}
        }
    }
    w.end_nest(elem)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::Protocol;
    use crate::nft::state::{Target, Verdict};

    #[test]
    fn service_keys_pad_each_field() {
        let with_addr = Element::Service(
            MapKey {
                addr: Some(Ipv4Addr::new(10, 96, 0, 10)),
                protocol: Protocol::Udp,
                port: 53,
            },
            Verdict::Drop,
        );
        assert_eq!(key(&with_addr), [10, 96, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0]);
        let nodeport = Element::Service(
            MapKey {
                addr: None,
                protocol: Protocol::Tcp,
                port: 30080,
            },
            Verdict::Drop,
        );
        assert_eq!(key(&nodeport), [6, 0, 0, 0, 0x75, 0x80, 0, 0]);
    }

    #[test]
    fn numgen_and_mark_keys_are_host_order() {
        let target = Target {
            ip: Ipv4Addr::new(10, 244, 1, 5),
            port: 8080,
            protocol: Protocol::Tcp,
        };
        assert_eq!(
            key(&Element::Backend(16385, target)),
            16385u32.to_ne_bytes()
        );
        assert_eq!(key(&Element::Mark(7)), 7u32.to_ne_bytes());
        assert_eq!(
            key(&Element::Hairpin(target.ip)),
            [10, 244, 1, 5, 10, 244, 1, 5]
        );
    }

    #[test]
    fn backend_data_is_addr_dot_port() {
        let target = Target {
            ip: Ipv4Addr::new(10, 244, 1, 5),
            port: 8080,
            protocol: Protocol::Tcp,
        };
        let mut w = Writer::default();
        write(&mut w, &Element::Backend(1, target), false).unwrap();
        let b = w.into_bytes();
        // list elem { key { value(1) }, data { value(10.244.1.5 . 8080) } }
        assert_eq!(&b[b.len() - 8..], &[10, 244, 1, 5, 0x1f, 0x90, 0, 0]);
        let mut keys_only = Writer::default();
        write(&mut keys_only, &Element::Backend(1, target), true).unwrap();
        assert_eq!(keys_only.len(), 4 + 4 + 8);
    }
}
