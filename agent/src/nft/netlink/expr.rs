//! The nf_tables expressions our rules are made of, encoded attribute by
//! attribute as nft 1.0.6 writes them (`nft --debug=netlink,mnl`), so that a
//! rule sent from here lists exactly like the same text loaded by `nft -f`.
//!
//! Registers are chosen as nft chooses them: a single value lives in
//! `NFT_REG_1`; the fields of a concatenation (`ip daddr . meta l4proto .
//! th dport`) in consecutive 32-bit words from there (`NFT_REG_1`,
//! `NFT_REG32_01`, `NFT_REG32_02`); `dnat to A:P` puts the port in
//! `NFT_REG_2`.

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

/// What `meta` loads or sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    L4Proto,
    Mark,
}

/// Which address `fib … type` classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FibAddr {
    Saddr,
    Daddr,
}

/// A rule's verdict: `jump`/`goto CHAIN`, `drop` or `return`. Map data
/// reuses the same encoding (see [`write_verdict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleVerdict {
    Jump(String),
    Goto(String),
    Drop,
    Return,
}

impl From<&Verdict> for RuleVerdict {
    fn from(v: &Verdict) -> Self {
        match v {
            Verdict::Goto(chain) => RuleVerdict::Goto(chain.clone()),
            Verdict::Drop => RuleVerdict::Drop,
        }
    }
}

/// The set a lookup reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRef {
    /// A named set of the table: found by name.
    Named(String),
    /// The rule's own anonymous map, declared just before it in the same
    /// batch: the kernel names it (`__map%d` becomes `__map0`, …), so it is
    /// found by its set id. See [`super::anonymous`].
    Anonymous,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `[ payload load LENb @ HEADER + OFFSET => reg DREG ]`
    Payload {
        header: Header,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// `[ meta load KEY => reg DREG ]`
    Meta { key: MetaKey, dreg: u32 },
    /// `[ meta set mark with reg 1 ]`
    MetaSetMark,
    /// `[ ct load state => reg 1 ]`
    CtState,
    /// `[ cmp OP reg 1 DATA ]`
    Cmp { op: CmpOp, data: Vec<u8> },
    /// `[ bitwise reg 1 = ( reg 1 & MASK ) ^ XOR ]`. nft names the
    /// operation (`NFTA_BITWISE_OP`) only for `and`/`or`/`xor` written out
    /// in the rule (`named_op`), not for prefixes and flag tests.
    Bitwise {
        mask: Vec<u8>,
        xor: Vec<u8>,
        named_op: bool,
    },
    /// `[ immediate reg 0 VERDICT ]`
    Immediate(RuleVerdict),
    /// `[ immediate reg DREG DATA ]`
    ImmediateData { dreg: u32, data: Vec<u8> },
    /// `[ numgen reg 1 = random mod MODULUS offset OFFSET ]`
    NumgenRandom { modulus: u32, offset: u32 },
    /// `[ byteorder reg 1 = hton(reg 1, 4, 4) ]`: interval sets compare
    /// keys as big-endian bytes, so nft converts a host-order u32 first.
    HtonReg1,
    /// `[ lookup reg 1 set SET [dreg DREG] ]`: a set match, or a map
    /// lookup whose result lands in `dreg` (0: a verdict map). nft also
    /// sends the set id it gave a named set in its own cache; the kernel
    /// only reads the id when the name is not found, so named sets go
    /// without (as in `dynset`).
    Lookup { set: SetRef, dreg: Option<u32> },
    /// `[ dynset update reg_key 1 set SET ]`
    DynsetUpdate { set: String },
    /// `[ nat dnat ip addr_min reg 1 proto_min reg PROTO [flags FLAGS] ]`:
    /// address and port from registers, either the `addr . port` a map
    /// lookup left in reg 1 (no flags), or two immediates (`dnat to A:P`).
    Dnat { proto_reg: u32, flags: Option<u32> },
    /// `[ fib ADDR type => reg 1 ]`
    FibType(FibAddr),
    /// `[ reject type TYPE code CODE ]`
    Reject { kind: u32, code: u8 },
    /// `[ masq flags FLAGS ]`
    Masquerade { flags: u32 },
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Payload { .. } => "payload",
            Expr::Meta { .. } | Expr::MetaSetMark => "meta",
            Expr::CtState => "ct",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Immediate(_) | Expr::ImmediateData { .. } => "immediate",
            Expr::NumgenRandom { .. } => "numgen",
            Expr::HtonReg1 => "byteorder",
            Expr::Lookup { .. } => "lookup",
            Expr::DynsetUpdate { .. } => "dynset",
            Expr::Dnat { .. } => "nat",
            Expr::FibType(_) => "fib",
            Expr::Reject { .. } => "reject",
            Expr::Masquerade { .. } => "masq",
        }
    }

    /// Writes `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { … } }`.
    /// `anonymous` is the set id of the rule's anonymous map, if it has one.
    pub fn write(&self, w: &mut Writer, anonymous: Option<u32>) -> Option<()> {
        let elem = w.begin_nest(NFTA_LIST_ELEM);
        w.string(NFTA_EXPR_NAME, self.name())?;
        let data = w.begin_nest(NFTA_EXPR_DATA);
        self.write_data(w, anonymous)?;
        w.end_nest(data)?;
        w.end_nest(elem)
    }

    fn write_data(&self, w: &mut Writer, anonymous: Option<u32>) -> Option<()> {
        match self {
            Expr::Payload {
                header,
                offset,
                len,
                dreg,
            } => {
                let base = match header {
                    Header::Network => NFT_PAYLOAD_NETWORK_HEADER,
                    Header::Transport => NFT_PAYLOAD_TRANSPORT_HEADER,
                };
                w.be32(NFTA_PAYLOAD_DREG, *dreg)?;
                w.be32(NFTA_PAYLOAD_BASE, base)?;
                w.be32(NFTA_PAYLOAD_OFFSET, *offset)?;
                w.be32(NFTA_PAYLOAD_LEN, *len)
            }
            Expr::Meta { key, dreg } => {
                w.be32(NFTA_META_KEY, meta_key(*key))?;
                w.be32(NFTA_META_DREG, *dreg)
            }
            Expr::MetaSetMark => {
                w.be32(NFTA_META_KEY, NFT_META_MARK)?;
                w.be32(NFTA_META_SREG, NFT_REG_1)
            }
            Expr::CtState => {
                w.be32(NFTA_CT_KEY, NFT_CT_STATE)?;
                w.be32(NFTA_CT_DREG, NFT_REG_1)
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
            Expr::Bitwise {
                mask,
                xor,
                named_op,
            } => {
                w.be32(NFTA_BITWISE_SREG, NFT_REG_1)?;
                w.be32(NFTA_BITWISE_DREG, NFT_REG_1)?;
                if *named_op {
                    w.be32(NFTA_BITWISE_OP, NFT_BITWISE_BOOL)?;
                }
                w.be32(NFTA_BITWISE_LEN, u32::try_from(mask.len()).ok()?)?;
                w.data_value(NFTA_BITWISE_MASK, mask)?;
                w.data_value(NFTA_BITWISE_XOR, xor)
            }
            Expr::Immediate(verdict) => {
                w.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT)?;
                write_verdict(w, NFTA_IMMEDIATE_DATA, verdict)
            }
            Expr::ImmediateData { dreg, data } => {
                w.be32(NFTA_IMMEDIATE_DREG, *dreg)?;
                w.data_value(NFTA_IMMEDIATE_DATA, data)
            }
            Expr::NumgenRandom { modulus, offset } => {
                w.be32(NFTA_NG_DREG, NFT_REG_1)?;
                w.be32(NFTA_NG_MODULUS, *modulus)?;
                w.be32(NFTA_NG_TYPE, NFT_NG_RANDOM)?;
                w.be32(NFTA_NG_OFFSET, *offset)
            }
            Expr::HtonReg1 => {
                w.be32(NFTA_BYTEORDER_SREG, NFT_REG_1)?;
                w.be32(NFTA_BYTEORDER_DREG, NFT_REG_1)?;
                w.be32(NFTA_BYTEORDER_OP, NFT_BYTEORDER_HTON)?;
                w.be32(NFTA_BYTEORDER_LEN, 4)?;
                w.be32(NFTA_BYTEORDER_SIZE, 4)
            }
            Expr::Lookup { set, dreg } => {
                w.be32(NFTA_LOOKUP_SREG, NFT_REG_1)?;
                if let Some(dreg) = dreg {
                    w.be32(NFTA_LOOKUP_DREG, *dreg)?;
                }
                match set {
                    SetRef::Named(name) => w.string(NFTA_LOOKUP_SET, name),
                    SetRef::Anonymous => {
                        w.string(NFTA_LOOKUP_SET, super::anonymous::NAME)?;
                        w.be32(NFTA_LOOKUP_SET_ID, anonymous?)
                    }
                }
            }
            Expr::DynsetUpdate { set } => {
                w.be32(NFTA_DYNSET_OP, NFT_DYNSET_OP_UPDATE)?;
                w.be32(NFTA_DYNSET_SREG_KEY, NFT_REG_1)?;
                w.string(NFTA_DYNSET_SET_NAME, set)
            }
            Expr::Dnat { proto_reg, flags } => {
                w.be32(NFTA_NAT_TYPE, NFT_NAT_DNAT)?;
                w.be32(NFTA_NAT_FAMILY, u32::from(NFPROTO_IPV4))?;
                w.be32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1)?;
                w.be32(NFTA_NAT_REG_PROTO_MIN, *proto_reg)?;
                match flags {
                    Some(flags) => w.be32(NFTA_NAT_FLAGS, *flags),
                    None => Some(()),
                }
            }
            Expr::FibType(addr) => {
                let flags = match addr {
                    FibAddr::Saddr => NFTA_FIB_F_SADDR,
                    FibAddr::Daddr => NFTA_FIB_F_DADDR,
                };
                w.be32(NFTA_FIB_FLAGS, flags)?;
                w.be32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE)?;
                w.be32(NFTA_FIB_DREG, NFT_REG_1)
            }
            Expr::Reject { kind, code } => {
                w.be32(NFTA_REJECT_TYPE, *kind)?;
                w.bytes(NFTA_REJECT_ICMP_CODE, &[*code])
            }
            Expr::Masquerade { flags } => w.be32(NFTA_MASQ_FLAGS, *flags),
        }
    }
}

fn meta_key(key: MetaKey) -> u32 {
    match key {
        MetaKey::L4Proto => NFT_META_L4PROTO,
        MetaKey::Mark => NFT_META_MARK,
    }
}

/// `kind { NFTA_DATA_VERDICT { NFTA_VERDICT_CODE [, NFTA_VERDICT_CHAIN] } }`:
/// a rule's immediate verdict and a verdict map's element data alike.
pub fn write_verdict(w: &mut Writer, kind: u16, verdict: &RuleVerdict) -> Option<()> {
    let (code, chain) = match verdict {
        RuleVerdict::Jump(chain) => (NFT_JUMP, Some(chain)),
        RuleVerdict::Goto(chain) => (NFT_GOTO, Some(chain)),
        RuleVerdict::Drop => (NF_DROP, None),
        RuleVerdict::Return => (NFT_RETURN, None),
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
        .write(&mut w, None)
        .unwrap();
        let b = w.into_bytes();
        // The value attribute is 6 bytes long (4 + 2), padded to 8.
        let value = b.windows(4).position(|x| x == [6, 0, 1, 0]).unwrap();
        assert_eq!(&b[value + 4..value + 8], &[10, 244, 0, 0]);
    }
}
