//! Set and map elements as nf_tables stores them: keys and data are raw
//! register bytes, every field of a concatenation padded to 4 bytes.
//!
//! Byte orders follow what the matching expression leaves in the register:
//! payload loads (addresses, ports) are network order, `meta mark` a
//! host-order u32, and `numgen` a host-order u32 that the backend rule
//! converts to network order, because the backend maps are interval maps.
//!
//! An interval is two elements, as nft sends it: its first key with the
//! data, then the key after its last one flagged as an interval end (none
//! when the range reaches the top of the key space: nft marks that start
//! "open" in its userdata instead). Adjacent ranges put an end and a start
//! on the same key; the kernel refuses a start right after another start,
//! so the end must come first, which ascending order of ranges gives.

use super::consts::{
    NFTA_DATA_VALUE, NFTA_LIST_ELEM, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_KEY,
    NFTA_SET_ELEM_USERDATA, NFTNL_SET_ELEM_F_INTERVAL_OPEN, NFTNL_UDATA_SET_ELEM_FLAGS,
    NFT_SET_ELEM_INTERVAL_END,
};
use super::expr::{write_verdict, RuleVerdict};
use super::message::Writer;
use super::rule::ip_proto;
use super::set::Udata;
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

/// The key bytes of an element (an interval's first key).
pub fn key(element: &Element) -> Vec<u8> {
    match element {
        Element::Service(key, _) => service_key(key),
        Element::Backend(first, _) => first.to_be_bytes().to_vec(),
        Element::Mark(key) => key.to_ne_bytes().to_vec(),
        Element::Hairpin(ip) => [ip.octets(), ip.octets()].concat(),
    }
}

/// Writes the `NFTA_LIST_ELEM`s of one element (key, and data unless
/// `key_only`; for an interval also its end). nft numbers the entries of
/// a list 1, 2, …; the kernel ignores their type, so every entry here is
/// `NFTA_LIST_ELEM`.
pub fn write(w: &mut Writer, element: &Element, key_only: bool) -> Option<()> {
    write_start(w, element, key_only)?;
    match element {
        Element::Backend(_, range) => match range.last.checked_add(1) {
            Some(end) => write_interval_end(w, end),
            None => Some(()),
        },
        _ => Some(()),
    }
}

/// `{ FLAGS interval-end, KEY }`, attributes in nft's order.
fn write_interval_end(w: &mut Writer, end: u32) -> Option<()> {
    let elem = w.begin_nest(NFTA_LIST_ELEM);
    w.be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END)?;
    w.data_value(NFTA_SET_ELEM_KEY, &end.to_be_bytes())?;
    w.end_nest(elem)
}

fn write_start(w: &mut Writer, element: &Element, key_only: bool) -> Option<()> {
    let elem = w.begin_nest(NFTA_LIST_ELEM);
    w.data_value(NFTA_SET_ELEM_KEY, &key(element))?;
    if !key_only {
        match element {
            Element::Service(_, verdict) => {
                write_verdict(w, NFTA_SET_ELEM_DATA, &RuleVerdict::from(verdict))?
            }
            Element::Backend(_, range) => {
                let target = range.target;
                let data = [target.ip.octets(), port_field(target.port)].concat();
                let nest = w.begin_nest(NFTA_SET_ELEM_DATA);
                w.bytes(NFTA_DATA_VALUE, &data)?;
                w.end_nest(nest)?;
                if range.last == u32::MAX {
                    let mut open = Udata::default();
                    open.u32(NFTNL_UDATA_SET_ELEM_FLAGS, NFTNL_SET_ELEM_F_INTERVAL_OPEN)?;
                    w.bytes(NFTA_SET_ELEM_USERDATA, &open.into_bytes())?;
                }
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
    use crate::nft::state::{BackendRange, Target, Verdict};

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

    fn range(last: u32) -> BackendRange {
        BackendRange {
            last,
            target: Target {
                ip: Ipv4Addr::new(10, 244, 1, 5),
                port: 8080,
                protocol: Protocol::Tcp,
            },
        }
    }

    #[test]
    fn mark_keys_are_host_order_and_interval_keys_network_order() {
        let target = range(0).target;
        assert_eq!(
            key(&Element::Backend(16385, range(16390))),
            [0, 0, 0x40, 0x01]
        );
        assert_eq!(key(&Element::Mark(7)), 7u32.to_ne_bytes());
        assert_eq!(
            key(&Element::Hairpin(target.ip)),
            [10, 244, 1, 5, 10, 244, 1, 5]
        );
    }

    #[test]
    fn a_backend_range_is_a_start_with_data_and_a_flagged_end() {
        let mut w = Writer::default();
        write(&mut w, &Element::Backend(1, range(4)), false).unwrap();
        // From `nft --debug=mnl add element … { 1-4 : 10.244.1.5 . 8080 }`:
        // elem { key { value(1) }, data { value(10.244.1.5 . 8080) } },
        // elem { flags(interval end), key { value(5) } }.
        let hex: String = w.into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "200001800c0001800800010000000001100002800c0001000af401051f900000\
             1800018008000300000000010c0001800800010000000005"
        );
        let mut keys_only = Writer::default();
        write(&mut keys_only, &Element::Backend(1, range(4)), true).unwrap();
        assert_eq!(keys_only.len(), (4 + 4 + 8) + (4 + 8 + 4 + 8));
        let mut top = Writer::default();
        write(
            &mut top,
            &Element::Backend(u32::MAX - 1, range(u32::MAX)),
            true,
        )
        .unwrap();
        assert_eq!(top.len(), 4 + 4 + 8, "no end after the last key");
    }
}
