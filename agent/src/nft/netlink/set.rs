//! Set and map declarations (`NFT_MSG_NEWSET`) for the declarations the
//! differ writes, attribute for attribute as nft 1.0.6 sends them.
//!
//! The kernel only needs key and data types and lengths; nft also stores
//! in `NFTA_SET_USERDATA` how to print the set back (key and data byte
//! order, and for `typeof` declarations the expressions the types came
//! from). Without the same userdata, `nft list` would show a netlink-made
//! set differently (`type integer` instead of `typeof numgen …`), and the
//! live reader would misread its elements. Accepted declarations:
//!
//! - `type T [. T …] [: verdict];` with T one of `ipv4_addr`,
//!   `inet_proto`, `inet_service`, `mark`; a map iff `: verdict`;
//! - `typeof numgen random mod M : ip daddr . PROTO dport;` (a map);
//!
//! each optionally followed by `flags F[,F];` (F `dynamic` or `timeout`,
//! and `interval` for the `typeof numgen` map only: nft sends other
//! interval sets with more attributes)
//! and `timeout Ns;` (nft's limit: at most 8 digits).

use super::consts::*;
use super::message::Writer;
use super::rule::{number, protocol};
use crate::model::Protocol;
use crate::nft::command::SetKind;

/// What a `NEWSET` message says about one set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDecl {
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    /// Data type and length of a map.
    pub data: Option<(u32, u32)>,
    /// Default element timeout; 0 sends none.
    pub timeout_ms: u64,
    /// `NFTA_SET_DESC_SIZE`: nft sends the element count of anonymous sets only.
    pub size: Option<u32>,
    pub userdata: Vec<u8>,
}

impl SetDecl {
    /// Writes the attributes of a `NEWSET` message declaring `name` with
    /// batch-unique set id `id` (nft numbers every set it sends).
    pub fn write(&self, w: &mut Writer, table: &str, name: &str, id: u32) -> Option<()> {
        w.string(NFTA_SET_TABLE, table)?;
        w.string(NFTA_SET_NAME, name)?;
        w.be32(NFTA_SET_FLAGS, self.flags)?;
        w.be32(NFTA_SET_KEY_TYPE, self.key_type)?;
        w.be32(NFTA_SET_KEY_LEN, self.key_len)?;
        if let Some((data_type, data_len)) = self.data {
            w.be32(NFTA_SET_DATA_TYPE, data_type)?;
            w.be32(NFTA_SET_DATA_LEN, data_len)?;
        }
        w.be32(NFTA_SET_ID, id)?;
        if self.timeout_ms > 0 {
            w.be64(NFTA_SET_TIMEOUT, self.timeout_ms)?;
        }
        if let Some(size) = self.size {
            let desc = w.begin_nest(NFTA_SET_DESC);
            w.be32(NFTA_SET_DESC_SIZE, size)?;
            w.end_nest(desc)?;
        }
        w.bytes(NFTA_SET_USERDATA, &self.userdata)
    }
}

/// libnftnl's userdata: TLVs of a type byte, a length byte and the value;
/// numbers are u32 in host order.
#[derive(Debug, Default)]
pub struct Udata(Vec<u8>);

impl Udata {
    pub fn put(&mut self, kind: u8, value: &[u8]) -> Option<&mut Self> {
        self.0.push(kind);
        self.0.push(u8::try_from(value.len()).ok()?);
        self.0.extend_from_slice(value);
        Some(self)
    }

    pub fn u32(&mut self, kind: u8, value: u32) -> Option<&mut Self> {
        self.put(kind, &value.to_ne_bytes())
    }

    /// A `*_TYPEOF` record: expression type, then the expression's own data.
    pub fn typeof_record(&mut self, kind: u8, expr: u32, data: Udata) -> Option<&mut Self> {
        let mut record = Udata::default();
        record
            .u32(NFTNL_UDATA_SET_TYPEOF_EXPR, expr)?
            .put(NFTNL_UDATA_SET_TYPEOF_DATA, &data.0)?;
        self.put(kind, &record.0)
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// A datatype a `type` declaration may name: nft's id, length in bytes
/// and the byte order it records for a key of just that type.
struct DataType {
    name: &'static str,
    id: u32,
    len: u32,
    byteorder: u32,
}

const DATA_TYPES: [DataType; 4] = [
    DataType {
        name: "ipv4_addr",
        id: TYPE_IPADDR,
        len: 4,
        byteorder: BYTEORDER_BIG_ENDIAN,
    },
    DataType {
        name: "inet_proto",
        id: TYPE_INET_PROTOCOL,
        len: 1,
        byteorder: BYTEORDER_INVALID,
    },
    DataType {
        name: "inet_service",
        id: TYPE_INET_SERVICE,
        len: 2,
        byteorder: BYTEORDER_BIG_ENDIAN,
    },
    DataType {
        name: "mark",
        id: TYPE_MARK,
        len: 4,
        byteorder: BYTEORDER_HOST_ENDIAN,
    },
];

/// nft packs a concatenation's type ids into one u32: at most this many.
const MAX_CONCAT_FIELDS: usize = 5;
/// nft's limit on time values: `timeout` takes at most 8 digits.
const MAX_TIME_DIGITS: usize = 8;

/// The `NEWSET` attributes for `add KIND ip T NAME { DECL }`, or `None`
/// for a declaration not listed in the module docs.
pub fn parse(kind: SetKind, decl: &str) -> Option<SetDecl> {
    let mut statements = decl.split(';').map(str::trim).filter(|s| !s.is_empty());
    let first: Vec<&str> = statements.next()?.split_whitespace().collect();
    let (mut set, interval_ok) = match first.as_slice() {
        ["typeof", "numgen", "random", "mod", modulus, ":", "ip", "daddr", ".", proto, "dport"] => {
            (backend_map(number(modulus)?, protocol(proto)?)?, true)
        }
        ["type", types @ ..] => (typed(types)?, false),
        _ => return None,
    };
    let (mut flags, mut timeout) = (None, None);
    for statement in statements {
        match statement.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["flags", list] if flags.is_none() => flags = Some(set_flags(list)?),
            ["timeout", value] if timeout.is_none() => timeout = Some(seconds(value)?),
            _ => return None,
        }
    }
    let flags = flags.unwrap_or(0);
    if flags & NFT_SET_INTERVAL != 0 && !interval_ok {
        return None;
    }
    set.flags |= flags;
    set.timeout_ms = timeout.unwrap_or(0) * 1000;
    // nft sets the timeout flag itself when a default timeout is given.
    if set.timeout_ms > 0 {
        set.flags |= NFT_SET_TIMEOUT;
    }
    (set.data.is_some() == (kind == SetKind::Map)).then_some(set)
}

/// `T [. T …] [: verdict]`.
fn typed(words: &[&str]) -> Option<SetDecl> {
    let (key, data) = match words.iter().position(|w| *w == ":") {
        Some(colon) => (&words[..colon], Some(&words[colon + 1..])),
        None => (words, None),
    };
    let is_map = match data {
        None => false,
        Some(["verdict"]) => true,
        Some(_) => return None,
    };
    // Types at even positions, `.` between them.
    let mut fields = Vec::new();
    for (i, word) in key.iter().enumerate() {
        match i % 2 {
            0 => fields.push(DATA_TYPES.iter().find(|t| t.name == *word)?),
            _ if *word == "." => {}
            _ => return None,
        }
    }
    if key.len() % 2 == 0 || fields.len() > MAX_CONCAT_FIELDS {
        return None;
    }
    let (key_type, key_len, byteorder) = match fields.as_slice() {
        [single] => (single.id, single.len, single.byteorder),
        _ => (
            fields.iter().fold(0, |acc, f| acc << TYPE_BITS | f.id),
            // Each field of a concatenation takes whole 32-bit registers.
            fields.iter().map(|f| f.len.div_ceil(4) * 4).sum(),
            BYTEORDER_INVALID,
        ),
    };
    let mut udata = Udata::default();
    udata.u32(NFTNL_UDATA_SET_KEYBYTEORDER, byteorder)?;
    if is_map {
        udata.u32(NFTNL_UDATA_SET_DATABYTEORDER, BYTEORDER_INVALID)?;
    }
    if fields.len() > 1 {
        // nft records a concatenation of plain types as an empty concat.
        udata.typeof_record(NFTNL_UDATA_SET_KEY_TYPEOF, EXPR_CONCAT, Udata::default())?;
    }
    if is_map {
        udata.u32(NFTNL_UDATA_SET_DATA_INTERVAL, 0)?;
    }
    Some(SetDecl {
        flags: if is_map { NFT_SET_MAP } else { 0 },
        key_type,
        key_len,
        data: is_map.then_some((NFT_DATA_VERDICT, 0)),
        timeout_ms: 0,
        size: None,
        userdata: udata.into_bytes(),
    })
}

/// `typeof numgen random mod M : ip daddr . PROTO dport`: keys are numgen
/// values (host order), data `ipv4_addr . inet_service`.
fn backend_map(modulus: u32, protocol: Protocol) -> Option<SetDecl> {
    let mut numgen = Udata::default();
    numgen
        .u32(NFTNL_UDATA_SET_KEY_NUMGEN_TYPE, NFT_NG_RANDOM)?
        .u32(NFTNL_UDATA_SET_KEY_NUMGEN_MOD, modulus)?
        .u32(NFTNL_UDATA_SET_KEY_NUMGEN_OFFSET, 0)?;
    let desc = match protocol {
        Protocol::Tcp => PROTO_DESC_TCP,
        Protocol::Udp => PROTO_DESC_UDP,
        Protocol::Sctp => PROTO_DESC_SCTP,
    };
    let mut fields = Udata::default();
    for (i, (desc, field)) in [(PROTO_DESC_IP, IPHDR_DADDR), (desc, L4HDR_DPORT)]
        .into_iter()
        .enumerate()
    {
        let mut payload = Udata::default();
        payload
            .u32(NFTNL_UDATA_SET_KEY_PAYLOAD_DESC, desc)?
            .u32(NFTNL_UDATA_SET_KEY_PAYLOAD_TYPE, field)?;
        // A concatenation's fields are records numbered from 0.
        fields.typeof_record(u8::try_from(i).ok()?, EXPR_PAYLOAD, payload)?;
    }
    let mut udata = Udata::default();
    udata
        .u32(NFTNL_UDATA_SET_KEYBYTEORDER, BYTEORDER_HOST_ENDIAN)?
        .u32(NFTNL_UDATA_SET_DATABYTEORDER, BYTEORDER_INVALID)?
        .typeof_record(NFTNL_UDATA_SET_KEY_TYPEOF, EXPR_NUMGEN, numgen)?
        .typeof_record(NFTNL_UDATA_SET_DATA_TYPEOF, EXPR_CONCAT, fields)?
        .u32(NFTNL_UDATA_SET_DATA_INTERVAL, 0)?;
    Some(SetDecl {
        flags: NFT_SET_MAP,
        key_type: TYPE_INTEGER,
        key_len: 4,
        data: Some((TYPE_IPADDR << TYPE_BITS | TYPE_INET_SERVICE, 8)),
        timeout_ms: 0,
        size: None,
        userdata: udata.into_bytes(),
    })
}

fn set_flags(list: &str) -> Option<u32> {
    list.split(',').try_fold(0, |flags, flag| match flag {
        "dynamic" => Some(flags | NFT_SET_EVAL),
        "timeout" => Some(flags | NFT_SET_TIMEOUT),
        "interval" => Some(flags | NFT_SET_INTERVAL),
        _ => None,
    })
}

/// `Ns` with at most [`MAX_TIME_DIGITS`] digits (nft refuses more).
fn seconds(value: &str) -> Option<u64> {
    let digits = value.strip_suffix('s')?;
    let plain = !digits.is_empty()
        && digits.len() <= MAX_TIME_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit());
    plain.then(|| digits.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Userdata bytes as `nft --debug=mnl` shows them (x86-64, host order).
    #[test]
    fn concat_verdict_map_matches_nft() {
        let set = parse(
            SetKind::Map,
            "type ipv4_addr . inet_proto . inet_service : verdict;",
        )
        .unwrap();
        assert_eq!(set.flags, NFT_SET_MAP);
        assert_eq!((set.key_type, set.key_len), (0x730d, 12));
        assert_eq!(set.data, Some((NFT_DATA_VERDICT, 0)));
        assert_eq!(
            set.userdata,
            [0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0]
        );
        let nodeports = parse(SetKind::Map, "type inet_proto . inet_service : verdict;").unwrap();
        assert_eq!((nodeports.key_type, nodeports.key_len), (0x30d, 8));
        assert_eq!(nodeports.userdata, set.userdata);
    }

    #[test]
    fn backend_map_records_its_typeof() {
        let set = parse(
            SetKind::Map,
            "typeof numgen random mod 1 : ip daddr . udp dport;",
        )
        .unwrap();
        assert_eq!((set.key_type, set.key_len), (TYPE_INTEGER, 4));
        assert_eq!(set.data, Some((0x1cd, 8)));
        let expected = "000401000000010400000000031a000417000000011200040100000001040100\
                        0000020400000000043400040d000000012c0014000407000000010c00040c00\
                        000001040c0000000114000407000000010c0004060000000104020000000604\
                        00000000";
        let hex: String = set.userdata.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        let interval = parse(
            SetKind::Map,
            "typeof numgen random mod 1 : ip daddr . udp dport; flags interval;",
        )
        .unwrap();
        // nft 1.0.6 (`--debug=mnl`): the same attributes, flags 0xc.
        assert_eq!(interval.flags, NFT_SET_MAP | NFT_SET_INTERVAL);
        assert_eq!(interval.userdata, set.userdata);
    }

    #[test]
    fn plain_sets_and_affinity_sets() {
        let canary = parse(SetKind::Set, "type mark;").unwrap();
        assert_eq!((canary.flags, canary.key_type, canary.key_len), (0, 19, 4));
        assert_eq!(canary.userdata, [0, 4, 1, 0, 0, 0]);
        let hairpin = parse(SetKind::Set, "type ipv4_addr . ipv4_addr;").unwrap();
        assert_eq!((hairpin.key_type, hairpin.key_len), (0x1c7, 8));
        assert_eq!(
            hairpin.userdata,
            [0, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0]
        );
        let aff = parse(
            SetKind::Set,
            "type ipv4_addr; flags dynamic,timeout; timeout 10800s;",
        )
        .unwrap();
        assert_eq!((aff.flags, aff.timeout_ms), (0x30, 10_800_000));
        assert_eq!(aff.userdata, [0, 4, 2, 0, 0, 0]);
        let zero = parse(SetKind::Set, "type ipv4_addr; timeout 0s;").unwrap();
        assert_eq!((zero.flags, zero.timeout_ms), (0, 0));
        let implied = parse(SetKind::Set, "type ipv4_addr; timeout 99999999s;").unwrap();
        assert_eq!(implied.flags, NFT_SET_TIMEOUT);
    }

    #[test]
    fn other_declarations_are_none() {
        for (kind, decl) in [
            (SetKind::Set, "type ipv4_addr : verdict;"),
            (SetKind::Map, "type ipv4_addr;"),
            (SetKind::Set, "type ipv6_addr;"),
            (SetKind::Set, "type ipv4_addr ipv4_addr;"),
            (SetKind::Set, "type ipv4_addr .;"),
            (SetKind::Set, "type;"),
            (SetKind::Map, "type mark : ipv4_addr;"),
            (SetKind::Set, "type ipv4_addr; flags interval;"),
            (SetKind::Set, "type ipv4_addr; timeout 100000000s;"),
            (SetKind::Set, "type ipv4_addr; timeout 3h;"),
            (
                SetKind::Set,
                "type ipv4_addr; flags timeout; flags dynamic;",
            ),
            (SetKind::Set, "type ipv4_addr; size 10;"),
            (
                SetKind::Map,
                "typeof numgen random mod 1 : ip daddr . icmp dport;",
            ),
            (SetKind::Map, "typeof ip saddr : verdict;"),
            (SetKind::Set, ""),
        ] {
            assert_eq!(parse(kind, decl), None, "{decl}");
        }
    }
}
