//! The anonymous verdict map of `numgen random mod N vmap { 0 : goto a, … }`
//! (ClientIP affinity picks an endpoint chain with it).
//!
//! nft sends such a rule as three steps of the same batch, and so do we:
//! a `NEWSET` named `__map%d` (the kernel makes the name unique) flagged
//! anonymous, constant and map, with a set id unique in the batch and the
//! element count as its size; its elements (`NEWSETELEM` naming the set by
//! that id); then the rule, whose lookup names `__map%d` and the set id.
//! The kernel binds the set to the rule and frees it with the rule.

use super::consts::*;
use super::expr::{write_verdict, RuleVerdict};
use super::message::Writer;
use super::set::{SetDecl, Udata};

/// The name nft sends; the kernel replaces `%d` with a free number.
pub const NAME: &str = "__map%d";

/// The elements of one rule's anonymous verdict map, keyed by numgen value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousMap {
    pub elements: Vec<(u32, RuleVerdict)>,
}

impl AnonymousMap {
    /// The `NEWSET` attributes: keys are numgen values (a host-order
    /// integer), data verdicts; the userdata records both, as nft does.
    pub fn declaration(&self) -> Option<SetDecl> {
        let mut udata = Udata::default();
        udata
            .u32(NFTNL_UDATA_SET_KEYBYTEORDER, BYTEORDER_HOST_ENDIAN)?
            .u32(NFTNL_UDATA_SET_DATABYTEORDER, BYTEORDER_INVALID)?
            .typeof_record(NFTNL_UDATA_SET_DATA_TYPEOF, EXPR_VERDICT, Udata::default())?
            .u32(NFTNL_UDATA_SET_DATA_INTERVAL, 0)?;
        Some(SetDecl {
            flags: NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_MAP,
            key_type: TYPE_INTEGER,
            key_len: 4,
            data: Some((NFT_DATA_VERDICT, 0)),
            timeout_ms: 0,
            size: Some(u32::try_from(self.elements.len()).ok()?),
            userdata: udata.into_bytes(),
        })
    }
}

/// Writes one `NFTA_LIST_ELEM`: the numgen value, then the verdict.
pub fn write_element(w: &mut Writer, key: u32, verdict: &RuleVerdict) -> Option<()> {
    let elem = w.begin_nest(NFTA_LIST_ELEM);
    w.data_value(NFTA_SET_ELEM_KEY, &key.to_ne_bytes())?;
    write_verdict(w, NFTA_SET_ELEM_DATA, verdict)?;
    w.end_nest(elem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declaration_matches_nft() {
        let map = AnonymousMap {
            elements: vec![
                (0, RuleVerdict::Goto("ep-a".into())),
                (1, RuleVerdict::Goto("ep-b".into())),
            ],
        };
        let decl = map.declaration().unwrap();
        assert_eq!(decl.flags, 0x0b);
        assert_eq!((decl.key_type, decl.key_len), (4, 4));
        assert_eq!(decl.size, Some(2));
        // From `nft --debug=mnl` for `numgen random mod 2 vmap { … }`.
        assert_eq!(
            decl.userdata,
            [0, 4, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 4, 8, 0, 4, 1, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0]
        );
        let mut w = Writer::default();
        decl.write(&mut w, "sy", NAME, 10).unwrap();
        let bytes = w.into_bytes();
        // … id 10, then desc { size 2 }, then the userdata.
        let id = [
            8, 0, 10, 0, 0, 0, 0, 10, 12, 0, 9, 0x80, 8, 0, 1, 0, 0, 0, 0, 2,
        ];
        assert!(bytes.windows(id.len()).any(|x| x == id), "{bytes:?}");
    }
}
