//! The nf_tables expressions our rules are made of, encoded attribute by
//! attribute as nft 1.0.6 writes them (`nft --debug=netlink,mnl`), so that a
//! rule sent from here lists exactly like the same text loaded by `nft -f`.
//!
//! Every expression works on `NFT_REG_1`: our rules never need two values
//! alive at once.

use super::consts::*;
use super::message::Writer;
use crate::nft::state::Verdict;

/// Where a payload load reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Network,
    Transport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
}

/// A rule's verdict: `jump`/`goto CHAIN` or `drop`. Map data reuses the
/// same encoding (see [`write_verdict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleVerdict {
    Jump(String),
    Goto(String),
    Drop,
}

impl From<&Verdict> for RuleVerdict {
    fn from(v: &Verdict) -> Self {
        match v {
            Verdict::Goto(chain) => RuleVerdict::Goto(chain.clone()),
            Verdict::Drop => RuleVerdict::Drop,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `[ payload load LENb @ HEADER + OFFSET => reg 1 ]`
    Payload {
        header: Header,
        offset: u32,
        len: u32,
    },
    /// `[ meta load l4proto => reg 1 ]`
    MetaL4Proto,
    /// `[ cmp OP reg 1 DATA ]`
    Cmp { op: CmpOp, data: Vec<u8> },
    /// `[ bitwise reg 1 = ( reg 1 & MASK ) ^ 0 ]`: a non-byte-aligned prefix.
    Mask { mask: Vec<u8> },
    /// `[ immediate reg 0 VERDICT ]`
    Immediate(RuleVerdict),
    /// `[ numgen reg 1 = random mod MODULUS offset OFFSET ]`
    NumgenRandom { modulus: u32, offset: u32 },
    /// `[ lookup reg 1 set SET dreg 1 ]`: a map lookup by name.
    Lookup { set: String },
    /// `[ nat dnat ip addr_min reg 1 proto_min reg 9 ]`: address and port
    /// from the `addr . port` a map lookup left in reg 1.
    DnatFromConcat,
    /// `[ fib saddr type => reg 1 ]`
    FibSaddrType,
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Payload { .. } => "payload",
            Expr::MetaL4Proto => "meta",
            Expr::Cmp { .. } => "cmp",
            Expr::Mask { .. } => "bitwise",
            Expr::Immediate(_) => "immediate",
            Expr::NumgenRandom { .. } => "numgen",
            Expr::Lookup { .. } => "lookup",
            Expr::DnatFromConcat => "nat",
            Expr::FibSaddrType => "fib",
        }
    }

    /// Writes `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { … } }`.
    pub fn write(&self, w: &mut Writer) -> Option<()> {
        let elem = w.begin_nest(NFTA_LIST_ELEM);
        w.string(NFTA_EXPR_NAME, self.name())?;
        let data = w.begin_nest(NFTA_EXPR_DATA);
        self.write_data(w)?;
        w.end_nest(data)?;
        w.end_nest(elem)
    }

    fn write_data(&self, w: &mut Writer) -> Option<()> {
        match self {
            Expr::Payload {
                header,
                offset,
                len,
            } => {
                let base = match header {
                    Header::Network => NFT_PAYLOAD_NETWORK_HEADER,
                    Header::Transport => NFT_PAYLOAD_TRANSPORT_HEADER,
                };
                w.be32(NFTA_PAYLOAD_DREG, NFT_REG_1)?;
                w.be32(NFTA_PAYLOAD_BASE, base)?;
                w.be32(NFTA_PAYLOAD_OFFSET, *offset)?;
                w.be32(NFTA_PAYLOAD_LEN, *len)
            }
            Expr::MetaL4Proto => {
                w.be32(NFTA_META_KEY, NFT_META_L4PROTO)?;
                w.be32(NFTA_META_DREG, NFT_REG_1)
            }
            Expr::Cmp { op, data } => {
                let op = match op {
                    CmpOp::Eq => NFT_CMP_EQ,
                    CmpOp::Neq => NFT_CMP_NEQ,
                };
                w.be32(NFTA_CMP_SREG, NFT_REG_1)?;
                w.be32(NFTA_CMP_OP, op)?;
                w.data_value(NFTA_CMP_DATA, data)
            }
            Expr::Mask { mask } => {
                w.be32(NFTA_BITWISE_SREG, NFT_REG_1)?;
                w.be32(NFTA_BITWISE_DREG, NFT_REG_1)?;
                w.be32(NFTA_BITWISE_LEN, u32::try_from(mask.len()).ok()?)?;
                w.data_value(NFTA_BITWISE_MASK, mask)?;
                w.data_value(NFTA_BITWISE_XOR, &vec![0; mask.len()])
            }
            Expr::Immediate(verdict) => {
                w.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT)?;
                write_verdict(w, NFTA_IMMEDIATE_DATA, verdict)
            }
            Expr::NumgenRandom { modulus, offset } => {
                w.be32(NFTA_NG_DREG, NFT_REG_1)?;
                w.be32(NFTA_NG_MODULUS, *modulus)?;
                w.be32(NFTA_NG_TYPE, NFT_NG_RANDOM)?;
                w.be32(NFTA_NG_OFFSET, *offset)
            }
            Expr::Lookup { set } => {
                w.be32(NFTA_LOOKUP_SREG, NFT_REG_1)?;
                w.be32(NFTA_LOOKUP_DREG, NFT_REG_1)?;
                w.string(NFTA_LOOKUP_SET, set)
            }
            Expr::DnatFromConcat => {
                w.be32(NFTA_NAT_TYPE, NFT_NAT_DNAT)?;
                w.be32(NFTA_NAT_FAMILY, u32::from(NFPROTO_IPV4))?;
                w.be32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1)?;
                w.be32(NFTA_NAT_REG_PROTO_MIN, NFT_REG32_01)
            }
            Expr::FibSaddrType => {
                w.be32(NFTA_FIB_FLAGS, NFTA_FIB_F_SADDR)?;
                w.be32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE)?;
                w.be32(NFTA_FIB_DREG, NFT_REG_1)
            }
        }
    }
}

/// `kind { NFTA_DATA_VERDICT { NFTA_VERDICT_CODE [, NFTA_VERDICT_CHAIN] } }`:
/// a rule's immediate verdict and a verdict map's element data alike.
pub fn write_verdict(w: &mut Writer, kind: u16, verdict: &RuleVerdict) -> Option<()> {
    let (code, chain) = match verdict {
        RuleVerdict::Jump(chain) => (NFT_JUMP, Some(chain)),
        RuleVerdict::Goto(chain) => (NFT_GOTO, Some(chain)),
        RuleVerdict::Drop => (NF_DROP, None),
    };
    let data = w.begin_nest(kind);
    let nest = w.begin_nest(NFTA_DATA_VERDICT);
    w.bytes(NFTA_VERDICT_CODE, &code.to_be_bytes())?;
    if let Some(chain) = chain {
        w.string(NFTA_VERDICT_CHAIN, chain)?;
    }
    w.end_nest(nest)?;
    w.end_nest(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goto_verdict_matches_nft_bytes() {
        let mut w = Writer::default();
        write_verdict(&mut w, 2, &RuleVerdict::Goto("svc-a".into())).unwrap();
        // From `nft --debug=mnl`: data { verdict { code -4, chain "svc-a" } }.
        assert_eq!(
            w.into_bytes(),
            [
                28, 0, 2, 0x80, 24, 0, 2, 0x80, 8, 0, 1, 0, 0xff, 0xff, 0xff, 0xfc, 10, 0, 2, 0,
                b's', b'v', b'c', b'-', b'a', 0, 0, 0
            ]
        );
    }

    #[test]
    fn cmp_data_keeps_its_exact_length() {
        let mut w = Writer::default();
        Expr::Cmp {
            op: CmpOp::Neq,
            data: vec![10, 244],
        }
        .write(&mut w)
        .unwrap();
        let b = w.into_bytes();
        // The value attribute is 6 bytes long (4 + 2), padded to 8.
        let value = b.windows(4).position(|x| x == [6, 0, 1, 0]).unwrap();
        assert_eq!(&b[value + 4..value + 8], &[10, 244, 0, 0]);
    }
}
