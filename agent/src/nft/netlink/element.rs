//! Set and map elements as nf_tables stores them: keys and data are raw
//! register bytes, every field of a concatenation padded to 4 bytes.
//!
//! Byte orders follow what the matching expression leaves in the register:
//! payload loads (addresses, ports) are network order, `meta mark` and
//! `numgen` (the dispatch slots) host-order u32s.
//!
//! A concatenated range (`tuple . source range`) is one element holding
//! its first and its last key (`KEY`, `KEY_END`).

use std::net::Ipv4Addr;

use super::consts::{NFTA_LIST_ELEM, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END};
use super::message::Writer;
use crate::model::Protocol;
use crate::nft::command::Element;
use crate::nft::state::{MapKey, Target};

/// The IP protocol number `inet_proto` holds.
pub fn ip_proto(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

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

/// The key bytes of an element (a range's first key).
pub fn key(element: &Element) -> Vec<u8> {
    match element {
        Element::Tuple(key) => service_key(key),
        Element::Mark(key) => key.to_ne_bytes().to_vec(),
        Element::Hairpin(ip) => [ip.octets(), ip.octets()].concat(),
        Element::Slot(key, slot, _) => [service_key(key), slot.to_ne_bytes().to_vec()].concat(),
        Element::Allow(key, range) => tuple_and_address(key, range.network()),
        Element::Remembered(client, key) => [client.octets().to_vec(), service_key(key)].concat(),
    }
}

/// Writes the `NFTA_LIST_ELEM` of one element: its key (and last key, for
/// a range), and its data unless `key_only`. nft numbers the entries of a
/// list 1, 2, …; the kernel ignores their type, so every entry here is
/// `NFTA_LIST_ELEM`.
pub fn write(w: &mut Writer, element: &Element, key_only: bool) -> Option<()> {
    let elem = w.begin_nest(NFTA_LIST_ELEM);
    w.data_value(NFTA_SET_ELEM_KEY, &key(element))?;
    if let Element::Allow(tuple, range) = element {
        w.data_value(
            NFTA_SET_ELEM_KEY_END,
            &tuple_and_address(tuple, range.broadcast()),
        )?;
    }
    if let (Element::Slot(_, _, target), false) = (element, key_only) {
        w.data_value(NFTA_SET_ELEM_DATA, &target_data(target))?;
    }
    w.end_nest(elem)
}

/// `ipv4_addr . inet_service`: a DNAT target as map data.
fn target_data(target: &Target) -> Vec<u8> {
    [target.ip.octets(), port_field(target.port)].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn tuple(addr: Option<[u8; 4]>, protocol: Protocol, port: u16) -> MapKey {
        MapKey {
            addr: addr.map(Ipv4Addr::from),
            protocol,
            port,
        }
    }

    #[test]
    fn tuple_keys_pad_each_field() {
        let with_addr = Element::Tuple(tuple(Some([10, 96, 0, 10]), Protocol::Udp, 53));
        assert_eq!(key(&with_addr), [10, 96, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0]);
        let node_port = Element::Tuple(tuple(None, Protocol::Tcp, 30080));
        assert_eq!(key(&node_port), [6, 0, 0, 0, 0x75, 0x80, 0, 0]);
        let ip = Ipv4Addr::new(10, 244, 1, 5);
        assert_eq!(key(&Element::Hairpin(ip)), [10, 244, 1, 5, 10, 244, 1, 5]);
        assert_eq!(key(&Element::Mark(7)), 7u32.to_ne_bytes());
        let remembered = Element::Remembered(
            Ipv4Addr::new(192, 0, 2, 1),
            tuple(Some([10, 96, 0, 10]), Protocol::Tcp, 80),
        );
        assert_eq!(
            key(&remembered),
            [192, 0, 2, 1, 10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0]
        );
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn slots_and_source_ranges_match_nft() {
        let vip = tuple(Some([10, 96, 0, 10]), Protocol::Tcp, 80);
        let target = Target {
            ip: Ipv4Addr::new(10, 244, 1, 5),
            port: 8080,
            protocol: Protocol::Tcp,
        };
        // From `nft --debug=mnl add element ip t sb { 10.96.0.10 . tcp . 80
        // . 65537 : 10.244.1.5 . 8080 }` (a typeof … numgen map): the slot
        // is host order, little-endian here.
        let mut w = Writer::default();
        write(&mut w, &Element::Slot(vip, 0x1_0001, target), false).unwrap();
        assert_eq!(
            hex(&w.into_bytes()),
            "2c0001801800018014000100\
             0a60000a06000000005000000100010010000280\
             0c0001000af401051f900000"
        );
        let mut keys_only = Writer::default();
        write(&mut keys_only, &Element::Slot(vip, 0x1_0001, target), true).unwrap();
        assert_eq!(keys_only.len(), 4 + 4 + 4 + 16);
        // `… fw { 10.96.0.10 . tcp . 80 . 172.18.0.0/24 }` in a set of
        // type `ipv4_addr . inet_proto . inet_service . ipv4_addr; flags interval`.
        let allow = Element::Allow(vip, "172.18.0.0/24".parse().unwrap());
        let mut w = Writer::default();
        write(&mut w, &allow, false).unwrap();
        assert_eq!(
            hex(&w.into_bytes()),
            "3400018018000180140001000a60000a0600000000500000ac120000\
             18000a80140001000a60000a0600000000500000ac1200ff"
        );
    }
}
