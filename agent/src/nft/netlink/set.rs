//! Set declarations (`NFT_MSG_NEWSET`) for the sets a change declares (an
//! affinity timeout's tuple sets), attribute for attribute as nft 1.0.6
//! sends them.
//!
//! The kernel only needs key types and lengths; nft also stores in
//! `NFTA_SET_USERDATA` how to print the set back (key byte order, and
//! that the key is a concatenation). Without the same userdata `nft list`
//! would show a netlink-made set differently. Accepted: plain sets
//! `type T [. T …];` with T one of `ipv4_addr`, `inet_proto`,
//! `inet_service`, `mark`.

use super::consts::*;
use super::message::Writer;
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

/// The `NEWSET` attributes for `add set ip T NAME { DECL }`, or `None`
/// for a declaration not listed in the module docs.
pub fn parse(kind: SetKind, decl: &str) -> Option<SetDecl> {
    let mut statements = decl.split(';').map(str::trim).filter(|s| !s.is_empty());
    let first: Vec<&str> = statements.next()?.split_whitespace().collect();
    let ["type", types @ ..] = first.as_slice() else {
        return None;
    };
    (kind == SetKind::Set && statements.next().is_none()).then_some(())?;
    typed(types)
}

/// `T [. T …]`.
fn typed(words: &[&str]) -> Option<SetDecl> {
    // Types at even positions, `.` between them.
    let mut fields = Vec::new();
    for (i, word) in words.iter().enumerate() {
        match i % 2 {
            0 => fields.push(DATA_TYPES.iter().find(|t| t.name == *word)?),
            _ if *word == "." => {}
            _ => return None,
        }
    }
    if words.len().is_multiple_of(2) || fields.len() > MAX_CONCAT_FIELDS {
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
    if fields.len() > 1 {
        // nft records a concatenation of plain types as an empty concat.
        udata.typeof_record(NFTNL_UDATA_SET_KEY_TYPEOF, EXPR_CONCAT, Udata::default())?;
    }
    Some(SetDecl {
        flags: 0,
        key_type,
        key_len,
        data: None,
        timeout_ms: 0,
        size: None,
        userdata: udata.into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Userdata bytes as `nft --debug=mnl` shows them (x86-64, host order).
    #[test]
    fn plain_and_concatenated_sets_match_nft() {
        let canary = parse(SetKind::Set, "type mark;").unwrap();
        assert_eq!((canary.flags, canary.key_type, canary.key_len), (0, 19, 4));
        assert_eq!(canary.userdata, [0, 4, 1, 0, 0, 0]);
        let hairpin = parse(SetKind::Set, "type ipv4_addr . ipv4_addr;").unwrap();
        assert_eq!((hairpin.key_type, hairpin.key_len), (0x1c7, 8));
        assert_eq!(
            hairpin.userdata,
            [0, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0]
        );
        let tuples = parse(SetKind::Set, "type ipv4_addr . inet_proto . inet_service;").unwrap();
        assert_eq!((tuples.key_type, tuples.key_len), (0x730d, 12));
        let node_ports = parse(SetKind::Set, "type inet_proto . inet_service;").unwrap();
        assert_eq!((node_ports.key_type, node_ports.key_len), (0x30d, 8));
        assert_eq!(node_ports.userdata, hairpin.userdata);
    }

    #[test]
    fn other_declarations_are_none() {
        for (kind, decl) in [
            (
                SetKind::Map,
                "type ipv4_addr . inet_proto . inet_service : verdict;",
            ),
            (SetKind::Map, "type ipv4_addr;"),
            (SetKind::Set, "type ipv6_addr;"),
            (SetKind::Set, "type ipv4_addr ipv4_addr;"),
            (SetKind::Set, "type ipv4_addr .;"),
            (SetKind::Set, "type;"),
            (SetKind::Set, "type ipv4_addr; flags interval;"),
            (SetKind::Set, "type ipv4_addr; timeout 3h;"),
            (SetKind::Map, "typeof ip saddr : verdict;"),
            (SetKind::Set, ""),
        ] {
            assert_eq!(parse(kind, decl), None, "{decl}");
        }
    }
}
