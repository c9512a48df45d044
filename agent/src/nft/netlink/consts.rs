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
pub const NFT_MSG_DELRULE: u16 = 8;
pub const NFT_MSG_NEWSET: u16 = 9;
pub const NFT_MSG_DELSET: u16 = 11;
pub const NFT_MSG_NEWSETELEM: u16 = 12;
pub const NFT_MSG_DELSETELEM: u16 = 14;

// --- object attributes ---
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
pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub const NFTA_SET_ELEM_KEY: u16 = 1;
pub const NFTA_SET_ELEM_DATA: u16 = 2;
/// The last key of a concatenated range (pipapo sets), beside its first.
pub const NFTA_SET_ELEM_KEY_END: u16 = 10;
pub const NFTA_LIST_ELEM: u16 = 1;
pub const NFTA_DATA_VALUE: u16 = 1;

// --- verdicts (enum nft_verdicts, netfilter.h) ---

// --- hooks (enum nf_inet_hooks) ---

// --- set flags (enum nft_set_flags) ---

// --- registers (enum nft_registers) ---

// --- expression attributes ---

// --- rule userdata (libnftnl's udata.h) ---

/// Longest table, chain and set name, without the NUL (`NFT_NAME_MAXLEN` − 1).
pub const NFT_NAME_MAXLEN: usize = 255;

// --- set userdata (libnftnl's udata.h; read back by nft to print the set) ---
pub const NFTNL_UDATA_SET_KEYBYTEORDER: u8 = 0;
pub const NFTNL_UDATA_SET_KEY_TYPEOF: u8 = 3;
/// Inside a `*_TYPEOF` record: the expression type, then its own data.
pub const NFTNL_UDATA_SET_TYPEOF_EXPR: u8 = 0;
pub const NFTNL_UDATA_SET_TYPEOF_DATA: u8 = 1;

// --- nft's own enums, as they appear in set userdata and key types ---
/// `enum byteorder`.
pub const BYTEORDER_INVALID: u32 = 0;
pub const BYTEORDER_HOST_ENDIAN: u32 = 1;
pub const BYTEORDER_BIG_ENDIAN: u32 = 2;
pub const EXPR_CONCAT: u32 = 13;
pub const TYPE_IPADDR: u32 = 7;
pub const TYPE_INET_PROTOCOL: u32 = 12;
pub const TYPE_INET_SERVICE: u32 = 13;
pub const TYPE_MARK: u32 = 19;
pub const TYPE_BITS: u32 = 6;
