//! Set and map elements as nf_tables stores them: keys and data are raw
//! register bytes, every field of a concatenation padded to 4 bytes.
//!
//! Byte orders follow what the matching expression leaves in the register:
//! payload loads (addresses, ports) are network order, `meta mark` a
//! host-order u32, and `numgen` a host-order u32 that the backend rule
//! converts to network order, because the backend maps are interval maps;
//! the constant layout's dispatch slots keep `numgen`'s host order.
//!
//! A concatenated range (the constant layout's `tuple . source range`) is
//! one element holding its first and its last key (`KEY`, `KEY_END`).
//!
//! An interval is two elements, as nft sends it: its first key with the
//! data, then the key after its last one flagged as an interval end (none
//! when the range reaches the top of the key space: nft marks that start
//! "open" in its userdata instead). Adjacent ranges put an end and a start
//! on the same key; the kernel refuses a start right after another start,
//! so the end must come first, which ascending order of ranges gives.

use std::net::Ipv4Addr;

use super::consts::{
    NFTA_DATA_VALUE, NFTA_LIST_ELEM, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_KEY,
    NFTA_SET_ELEM_KEY_END, NFTA_SET_ELEM_USERDATA, NFTNL_SET_ELEM_F_INTERVAL_OPEN,
    NFTNL_UDATA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END,
};
use super::expr::{write_verdict, RuleVerdict};
use super::message::Writer;
use super::rule::ip_proto;
use super::set::Udata;
use crate::nft::command::Element;
use crate::nft::state::{MapKey, Target};

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

/// `tuple . addr`, a concatenated range's first or last key.
fn tuple_and_address(key: &MapKey, addr: Ipv4Addr) -> Vec<u8> {
    let mut out = service_key(key);
    out.extend_from_slice(&addr.octets());
    out
}

/// `ipv4_addr . inet_service`: a DNAT target as map data.
fn target_data(target: &Target) -> Vec<u8> {
    [target.ip.octets(), port_field(target.port)].concat()
}

/// The key bytes of an element (an interval's first key).
pub fn key(element: &Element) -> Vec<u8> {
    match element {
        Element::Service(key, _) | Element::Tuple(key) => service_key(key),
        Element::Backend(first, _) => first.to_be_bytes().to_vec(),
        Element::Mark(key) => key.to_ne_bytes().to_vec(),
        Element::Hairpin(ip) => [ip.octets(), ip.octets()].concat(),
        Element::Slot(key, slot, _) => [service_key(key), slot.to_ne_bytes().to_vec()].concat(),
        Element::Allow(key, range) => tuple_and_address(key, range.network()),
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
    if let Element::Allow(tuple, range) = element {
        w.data_value(
            NFTA_SET_ELEM_KEY_END,
            &tuple_and_address(tuple, range.broadcast()),
        )?;
    }
    if !key_only {
        match element {
            Element::Service(_, verdict) => {
                write_verdict(w, NFTA_SET_ELEM_DATA, &RuleVerdict::from(verdict))?
            }
            Element::Slot(_, _, target) => {
                let nest = w.begin_nest(NFTA_SET_ELEM_DATA);
                w.bytes(NFTA_DATA_VALUE, &target_data(target))?;
                w.end_nest(nest)?;
            }
            Element::Backend(_, range) => {
                let nest = w.begin_nest(NFTA_SET_ELEM_DATA);
                w.bytes(NFTA_DATA_VALUE, &target_data(&range.target))?;
                w.end_nest(nest)?;
                if range.last == u32::MAX {
                    let mut open = Udata::default();
                    open.u32(NFTNL_UDATA_SET_ELEM_FLAGS, NFTNL_SET_ELEM_F_INTERVAL_OPEN)?;
                    w.bytes(NFTA_SET_ELEM_USERDATA, &open.into_bytes())?;
                }
            }
            Element::Hairpin(_) | Element::Mark(_) | Element::Tuple(_) | Element::Allow(..) => {}
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

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn constant_layout_elements_match_nft() {
        let tuple = MapKey {
            addr: Some(Ipv4Addr::new(10, 96, 0, 10)),
            protocol: Protocol::Tcp,
            port: 80,
        };
        let slot = Element::Slot(tuple, 0x1_0001, range(0).target);
        // From `nft --debug=mnl add element ip t sb { 10.96.0.10 . tcp . 80
        // . 65537 : 10.244.1.5 . 8080 }` (a typeof … numgen map): the slot
        // is host order, little-endian here.
        let mut w = Writer::default();
        write(&mut w, &slot, false).unwrap();
        assert_eq!(
            hex(&w.into_bytes()),
            "2c0001801800018014000100\
             0a60000a06000000005000000100010010000280\
             0c0001000af401051f900000"
        );
        // `… fw { 10.96.0.10 . tcp . 80 . 172.18.0.0/24 }` in a set of
        // type `ipv4_addr . inet_proto . inet_service . ipv4_addr; flags interval`.
        let allow = Element::Allow(tuple, "172.18.0.0/24".parse().unwrap());
        let mut w = Writer::default();
        write(&mut w, &allow, false).unwrap();
        assert_eq!(
            hex(&w.into_bytes()),
            "3400018018000180140001000a60000a0600000000500000ac120000\
             18000a80140001000a60000a0600000000500000ac1200ff"
        );
        assert_eq!(
            key(&Element::Tuple(tuple)),
            [10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0]
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
