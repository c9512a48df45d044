//! Kernel ABI numbers (`linux/netlink.h`, `linux/netfilter/nfnetlink.h`,
//! `linux/netfilter/nf_tables.h`), written out because no crate we use
//! carries the nf_tables ones; and the numbers nft 1.0.6 writes into rule
//! and set userdata (libnftnl's `udata.h`, nft's own enums), which `nft
//! list` reads back. Only the values the encoder emits are here.

// --- netlink (linux/netlink.h) ---
pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_ERROR: u16 = 2;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
/// Set on attributes that hold attributes (`NLA_F_NESTED`); nft sets it too.
pub const NLA_F_NESTED: u16 = 0x8000;

// --- nfnetlink (linux/netfilter/nfnetlink.h) ---
/// `struct nfgenmsg` follows every nfnetlink header.
pub const NFGENMSG_LEN: usize = 4;
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 16;
pub const NFNL_MSG_BATCH_END: u16 = 17;
pub const NFNETLINK_V0: u8 = 0;
pub const NFPROTO_UNSPEC: u8 = 0;
pub const NFPROTO_IPV4: u8 = 2;

// --- message types (enum nf_tables_msg_types) ---
pub const NFT_MSG_NEWTABLE: u16 = 0;
pub const NFT_MSG_NEWCHAIN: u16 = 3;
pub const NFT_MSG_DELCHAIN: u16 = 5;
pub const NFT_MSG_NEWRULE: u16 = 6;
pub const NFT_MSG_DELRULE: u16 = 8;
pub const NFT_MSG_NEWSET: u16 = 9;
pub const NFT_MSG_DELSET: u16 = 11;
pub const NFT_MSG_NEWSETELEM: u16 = 12;
pub const NFT_MSG_DELSETELEM: u16 = 14;

// --- object attributes ---
pub const NFTA_TABLE_NAME: u16 = 1;
pub const NFTA_TABLE_FLAGS: u16 = 2;
pub const NFTA_CHAIN_TABLE: u16 = 1;
pub const NFTA_CHAIN_NAME: u16 = 3;
pub const NFTA_CHAIN_HOOK: u16 = 4;
pub const NFTA_CHAIN_POLICY: u16 = 5;
pub const NFTA_CHAIN_TYPE: u16 = 7;
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
pub const NFTA_HOOK_PRIORITY: u16 = 2;
pub const NFTA_SET_TABLE: u16 = 1;
pub const NFTA_SET_NAME: u16 = 2;
pub const NFTA_SET_FLAGS: u16 = 3;
pub const NFTA_SET_KEY_TYPE: u16 = 4;
pub const NFTA_SET_KEY_LEN: u16 = 5;
pub const NFTA_SET_DATA_TYPE: u16 = 6;
pub const NFTA_SET_DATA_LEN: u16 = 7;
pub const NFTA_SET_DESC: u16 = 9;
pub const NFTA_SET_ID: u16 = 10;
pub const NFTA_SET_TIMEOUT: u16 = 11;
pub const NFTA_SET_USERDATA: u16 = 13;
pub const NFTA_SET_DESC_SIZE: u16 = 1;
pub const NFTA_RULE_TABLE: u16 = 1;
pub const NFTA_RULE_CHAIN: u16 = 2;
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub const NFTA_RULE_USERDATA: u16 = 7;
pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
pub const NFTA_SET_ELEM_KEY: u16 = 1;
pub const NFTA_SET_ELEM_DATA: u16 = 2;
pub const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub const NFTA_SET_ELEM_USERDATA: u16 = 6;
/// The last key of a concatenated range (pipapo sets), beside its first.
pub const NFTA_SET_ELEM_KEY_END: u16 = 10;
/// `NFTA_SET_ELEM_FLAGS`: the element ends an interval (the key after it).
pub const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
pub const NFTA_LIST_ELEM: u16 = 1;
pub const NFTA_EXPR_NAME: u16 = 1;
pub const NFTA_EXPR_DATA: u16 = 2;
pub const NFTA_DATA_VALUE: u16 = 1;
pub const NFTA_DATA_VERDICT: u16 = 2;
pub const NFTA_VERDICT_CODE: u16 = 1;
pub const NFTA_VERDICT_CHAIN: u16 = 2;

// --- verdicts (enum nft_verdicts, netfilter.h) ---
pub const NF_DROP: i32 = 0;
pub const NF_ACCEPT: u32 = 1;
pub const NFT_JUMP: i32 = -3;
pub const NFT_GOTO: i32 = -4;
pub const NFT_RETURN: i32 = -5;

// --- hooks (enum nf_inet_hooks) ---
pub const NF_INET_PRE_ROUTING: u32 = 0;
pub const NF_INET_LOCAL_IN: u32 = 1;
pub const NF_INET_FORWARD: u32 = 2;
pub const NF_INET_LOCAL_OUT: u32 = 3;
pub const NF_INET_POST_ROUTING: u32 = 4;

// --- set flags (enum nft_set_flags) ---
pub const NFT_SET_ANONYMOUS: u32 = 0x1;
pub const NFT_SET_CONSTANT: u32 = 0x2;
pub const NFT_SET_INTERVAL: u32 = 0x4;
pub const NFT_SET_MAP: u32 = 0x8;
pub const NFT_SET_TIMEOUT: u32 = 0x10;
pub const NFT_SET_EVAL: u32 = 0x20;
/// `NFTA_SET_DATA_TYPE` of a verdict map (`NFT_DATA_VERDICT`).
pub const NFT_DATA_VERDICT: u32 = 0xffff_ff00;

// --- registers (enum nft_registers) ---
pub const NFT_REG_VERDICT: u32 = 0;
/// The first 16-byte data register; 32-bit view: `NFT_REG32_00`…`03`.
pub const NFT_REG_1: u32 = 1;
/// The second 16-byte register: nft loads the port of `dnat to A:P` there.
pub const NFT_REG_2: u32 = 2;
/// The second 32-bit word of `NFT_REG_1`: where a concatenation's second
/// field (the port of `addr . port`) lands.
pub const NFT_REG32_01: u32 = 9;
/// The third 32-bit word of `NFT_REG_1`: a concatenation's third field.
pub const NFT_REG32_02: u32 = 10;

// --- expression attributes ---
pub const NFTA_PAYLOAD_DREG: u16 = 1;
pub const NFTA_PAYLOAD_BASE: u16 = 2;
pub const NFTA_PAYLOAD_OFFSET: u16 = 3;
pub const NFTA_PAYLOAD_LEN: u16 = 4;
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;

pub const NFTA_META_DREG: u16 = 1;
pub const NFTA_META_KEY: u16 = 2;
pub const NFTA_META_SREG: u16 = 3;
pub const NFT_META_MARK: u32 = 3;
pub const NFT_META_L4PROTO: u32 = 16;

pub const NFTA_CT_DREG: u16 = 1;
pub const NFTA_CT_KEY: u16 = 2;
pub const NFT_CT_STATE: u32 = 0;
/// `ct state new` tests this bit (`NF_CT_STATE_BIT(IP_CT_NEW)`).
pub const NF_CT_STATE_NEW: u32 = 1 << 3;

pub const NFTA_CMP_SREG: u16 = 1;
pub const NFTA_CMP_OP: u16 = 2;
pub const NFTA_CMP_DATA: u16 = 3;
pub const NFT_CMP_EQ: u32 = 0;
pub const NFT_CMP_NEQ: u32 = 1;

pub const NFTA_BITWISE_SREG: u16 = 1;
pub const NFTA_BITWISE_DREG: u16 = 2;
pub const NFTA_BITWISE_LEN: u16 = 3;
pub const NFTA_BITWISE_MASK: u16 = 4;
pub const NFTA_BITWISE_XOR: u16 = 5;
pub const NFTA_BITWISE_OP: u16 = 6;
pub const NFT_BITWISE_BOOL: u32 = 0;

pub const NFTA_IMMEDIATE_DREG: u16 = 1;
pub const NFTA_IMMEDIATE_DATA: u16 = 2;

pub const NFTA_NG_DREG: u16 = 1;
pub const NFTA_NG_MODULUS: u16 = 2;
pub const NFTA_NG_TYPE: u16 = 3;
pub const NFTA_NG_OFFSET: u16 = 4;
pub const NFTA_BYTEORDER_SREG: u16 = 1;
pub const NFTA_BYTEORDER_DREG: u16 = 2;
pub const NFTA_BYTEORDER_OP: u16 = 3;
pub const NFTA_BYTEORDER_LEN: u16 = 4;
pub const NFTA_BYTEORDER_SIZE: u16 = 5;
pub const NFT_BYTEORDER_HTON: u32 = 1;
pub const NFT_NG_RANDOM: u32 = 1;

pub const NFTA_LOOKUP_SET: u16 = 1;
pub const NFTA_LOOKUP_SREG: u16 = 2;
pub const NFTA_LOOKUP_DREG: u16 = 3;
pub const NFTA_LOOKUP_SET_ID: u16 = 4;

pub const NFTA_DYNSET_SET_NAME: u16 = 1;
pub const NFTA_DYNSET_SREG_KEY: u16 = 3;
pub const NFTA_DYNSET_OP: u16 = 4;
pub const NFT_DYNSET_OP_UPDATE: u32 = 1;

pub const NFTA_NAT_TYPE: u16 = 1;
pub const NFTA_NAT_FAMILY: u16 = 2;
pub const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
pub const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
pub const NFTA_NAT_FLAGS: u16 = 7;
pub const NFT_NAT_DNAT: u32 = 1;
/// `NF_NAT_RANGE_PROTO_SPECIFIED`: nft's flag for `dnat to A:P`.
pub const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 0x2;
/// `NF_NAT_RANGE_PROTO_RANDOM_FULLY`: `masquerade fully-random`.
pub const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 0x10;
pub const NFTA_MASQ_FLAGS: u16 = 1;

pub const NFTA_REJECT_TYPE: u16 = 1;
pub const NFTA_REJECT_ICMP_CODE: u16 = 2;
pub const NFT_REJECT_ICMP_UNREACH: u32 = 0;
pub const NFT_REJECT_TCP_RST: u32 = 1;
/// `ICMP_PORT_UNREACH`: what a bare `reject` answers in an ip table.
pub const ICMP_PORT_UNREACH: u8 = 3;

pub const NFTA_FIB_DREG: u16 = 1;
pub const NFTA_FIB_RESULT: u16 = 2;
pub const NFTA_FIB_FLAGS: u16 = 3;
pub const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
pub const NFTA_FIB_F_SADDR: u32 = 1;
pub const NFTA_FIB_F_DADDR: u32 = 2;
/// `RTN_LOCAL` (linux/rtnetlink.h): what `fib … type local` compares to.
pub const RTN_LOCAL: u32 = 2;

// --- rule userdata (libnftnl's udata.h) ---
/// TLV type of the rule comment in `NFTA_RULE_USERDATA`.
pub const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
/// nft refuses longer comments (`NFTNL_UDATA_COMMENT_MAXLEN`).
pub const NFTNL_UDATA_COMMENT_MAXLEN: usize = 128;

/// Longest table, chain and set name, without the NUL (`NFT_NAME_MAXLEN` − 1).
pub const NFT_NAME_MAXLEN: usize = 255;

// --- set userdata (libnftnl's udata.h; read back by nft to print the set) ---
pub const NFTNL_UDATA_SET_KEYBYTEORDER: u8 = 0;
pub const NFTNL_UDATA_SET_DATABYTEORDER: u8 = 1;
pub const NFTNL_UDATA_SET_KEY_TYPEOF: u8 = 3;
pub const NFTNL_UDATA_SET_DATA_TYPEOF: u8 = 4;
pub const NFTNL_UDATA_SET_DATA_INTERVAL: u8 = 6;
/// Element userdata: flags, of which nft knows one, "interval open" (a
/// range reaching the top of the key space, so it has no end element).
pub const NFTNL_UDATA_SET_ELEM_FLAGS: u8 = 1;
pub const NFTNL_SET_ELEM_F_INTERVAL_OPEN: u32 = 1;
/// Inside a `*_TYPEOF` record: the expression type, then its own data.
pub const NFTNL_UDATA_SET_TYPEOF_EXPR: u8 = 0;
pub const NFTNL_UDATA_SET_TYPEOF_DATA: u8 = 1;
/// A payload expression's data: protocol and header field (nft's ids).
pub const NFTNL_UDATA_SET_KEY_PAYLOAD_DESC: u8 = 0;
pub const NFTNL_UDATA_SET_KEY_PAYLOAD_TYPE: u8 = 1;
/// A numgen expression's data.
pub const NFTNL_UDATA_SET_KEY_NUMGEN_TYPE: u8 = 0;
pub const NFTNL_UDATA_SET_KEY_NUMGEN_MOD: u8 = 1;
pub const NFTNL_UDATA_SET_KEY_NUMGEN_OFFSET: u8 = 2;

// --- nft's own enums, as they appear in set userdata and key types ---
/// `enum byteorder`.
pub const BYTEORDER_INVALID: u32 = 0;
pub const BYTEORDER_HOST_ENDIAN: u32 = 1;
pub const BYTEORDER_BIG_ENDIAN: u32 = 2;
/// `enum expr_types`.
pub const EXPR_VERDICT: u32 = 1;
pub const EXPR_PAYLOAD: u32 = 7;
pub const EXPR_CONCAT: u32 = 13;
pub const EXPR_NUMGEN: u32 = 23;
/// `enum datatypes`; a concatenation's type packs its fields' types in
/// `TYPE_BITS` bits each, first field highest.
pub const TYPE_INTEGER: u32 = 4;
pub const TYPE_IPADDR: u32 = 7;
pub const TYPE_INET_PROTOCOL: u32 = 12;
pub const TYPE_INET_SERVICE: u32 = 13;
pub const TYPE_MARK: u32 = 19;
pub const TYPE_BITS: u32 = 6;
/// `enum proto_desc_id`.
pub const PROTO_DESC_UDP: u32 = 6;
pub const PROTO_DESC_TCP: u32 = 8;
pub const PROTO_DESC_SCTP: u32 = 10;
pub const PROTO_DESC_IP: u32 = 12;
/// Header field indexes: `IPHDR_DADDR`; `dport` is field 2 of TCP, UDP and SCTP.
pub const IPHDR_DADDR: u32 = 12;
pub const L4HDR_DPORT: u32 = 2;
