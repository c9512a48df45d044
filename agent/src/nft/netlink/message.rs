//! Netlink framing: message headers and (nested) attributes, written into
//! one growing buffer so a whole batch goes to the kernel in one `send`.
//!
//! Lengths are patched in when a message or nest is closed. A nest longer
//! than an attribute length can say (64 KiB) makes [`Writer::end_nest`]
//! return `None`; element lists are chunked well below that, so it only
//! guards against a bug turning into a malformed message.

use super::consts::{
    NFGENMSG_LEN, NFNETLINK_V0, NFTA_DATA_VALUE, NLA_F_NESTED, NLMSG_ERROR, NLMSG_HDRLEN,
    NLM_F_ACK, NLM_F_REQUEST,
};

/// Netlink aligns headers and attributes to 4 bytes.
const ALIGN: usize = 4;
const NLA_HDRLEN: usize = 4;

fn align(len: usize) -> usize {
    len.div_ceil(ALIGN) * ALIGN
}

/// An attribute or message whose length is written when it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "close it with end_nest / end_message"]
pub struct Open(usize);

/// Appends netlink messages to a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Starts a message: `nlmsghdr` (sequence number 0, filled in at send
    /// time) and `nfgenmsg`. `res_id` is written in network order, as the
    /// kernel reads it.
    pub fn begin_message(&mut self, msg_type: u16, flags: u16, family: u8, res_id: u16) -> Open {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched
        self.buf.extend_from_slice(&msg_type.to_ne_bytes());
        self.buf
            .extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_seq, patched
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: kernel fills
        self.buf.push(family);
        self.buf.push(NFNETLINK_V0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        debug_assert_eq!(self.buf.len() - start, NLMSG_HDRLEN + NFGENMSG_LEN);
        Open(start)
    }

    /// Closes a message: writes its length (a u32, so it cannot overflow
    /// for any buffer we could hold).
    pub fn end_message(&mut self, message: Open) -> Option<()> {
        let len = u32::try_from(self.buf.len() - message.0).ok()?;
        self.buf[message.0..message.0 + 4].copy_from_slice(&len.to_ne_bytes());
        Some(())
    }

    /// An attribute holding raw bytes, padded to 4 bytes.
    pub fn bytes(&mut self, kind: u16, data: &[u8]) -> Option<()> {
        let len = u16::try_from(NLA_HDRLEN + data.len()).ok()?;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        Some(())
    }

    /// A NUL-terminated string attribute (`NLA_STRING`/`NLA_NUL_STRING`).
    pub fn string(&mut self, kind: u16, value: &str) -> Option<()> {
        let mut data = Vec::with_capacity(value.len() + 1);
        data.extend_from_slice(value.as_bytes());
        data.push(0);
        self.bytes(kind, &data)
    }

    /// A 32-bit attribute in network order: nf_tables' `NLA_BE32`.
    pub fn be32(&mut self, kind: u16, value: u32) -> Option<()> {
        self.bytes(kind, &value.to_be_bytes())
    }

    /// A 64-bit attribute in network order (`NLA_BE64`).
    pub fn be64(&mut self, kind: u16, value: u64) -> Option<()> {
        self.bytes(kind, &value.to_be_bytes())
    }

    pub fn begin_nest(&mut self, kind: u16) -> Open {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes()); // nla_len, patched
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        Open(start)
    }

    pub fn end_nest(&mut self, nest: Open) -> Option<()> {
        let len = u16::try_from(self.buf.len() - nest.0).ok()?;
        self.buf[nest.0..nest.0 + 2].copy_from_slice(&len.to_ne_bytes());
        Some(())
    }

    /// `kind { NFTA_DATA_VALUE: data }`: how nf_tables wraps a constant.
    pub fn data_value(&mut self, kind: u16, data: &[u8]) -> Option<()> {
        let nest = self.begin_nest(kind);
        self.bytes(NFTA_DATA_VALUE, data)?;
        self.end_nest(nest)
    }

    fn pad(&mut self) {
        self.buf.resize(align(self.buf.len()), 0);
    }
}

/// Overwrites the sequence number of the message starting at `offset`.
pub fn set_seq(buf: &mut [u8], offset: usize, seq: u32) {
    buf[offset + 8..offset + 12].copy_from_slice(&seq.to_ne_bytes());
}

/// Sets or clears `NLM_F_ACK` on the message starting at `offset`.
pub fn set_ack(buf: &mut [u8], offset: usize, ack: bool) {
    let at = offset + 6;
    let flags = u16::from_ne_bytes([buf[at], buf[at + 1]]);
    let flags = match ack {
        true => flags | NLM_F_ACK,
        false => flags & !NLM_F_ACK,
    };
    buf[at..at + 2].copy_from_slice(&flags.to_ne_bytes());
}

/// The reply to one request: its sequence number and the errno the kernel
/// put in `nlmsgerr` (0 for a plain ack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub seq: u32,
    pub errno: i32,
}

/// Parses the `NLMSG_ERROR` messages of one datagram; anything else is
/// skipped: nothing but acks is expected on the socket.
pub fn acks(datagram: &[u8]) -> Vec<Ack> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while rest.len() >= NLMSG_HDRLEN {
        let word =
            |at: usize| u32::from_ne_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
        let len = word(0) as usize;
        if len < NLMSG_HDRLEN {
            break;
        }
        let msg_type = u16::from_ne_bytes([rest[4], rest[5]]);
        // An error cut short by a small buffer (MSG_TRUNC) still has its
        // header and errno: keep those, the echoed request is not needed.
        if msg_type == NLMSG_ERROR && rest.len() >= NLMSG_HDRLEN + 4 {
            let seq = word(8);
            // nlmsgerr.error is a negative errno, 0 for an ack.
            let error = word(NLMSG_HDRLEN) as i32;
            out.push(Ack {
                seq,
                errno: error.saturating_neg(),
            });
        }
        rest = &rest[align(len).min(rest.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::netlink::consts::*;

    #[test]
    fn writes_headers_and_padded_attributes() {
        let mut w = Writer::default();
        let msg = w.begin_message(
            NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_DELRULE,
            NLM_F_ACK,
            NFPROTO_IPV4,
            0,
        );
        w.string(NFTA_RULE_TABLE, "sy").unwrap();
        let nest = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        w.be32(7, 0x0102_0304).unwrap();
        w.end_nest(nest).unwrap();
        w.end_message(msg).unwrap();
        let b = w.into_bytes();
        assert_eq!(b.len(), 16 + 4 + 8 + 12);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 0x0a08);
        assert_eq!(
            u16::from_ne_bytes(b[6..8].try_into().unwrap()),
            NLM_F_REQUEST | NLM_F_ACK
        );
        assert_eq!(&b[16..20], &[2, 0, 0, 0]);
        // "sy\0" is 7 bytes long, padded to 8.
        assert_eq!(&b[20..28], &[7, 0, 1, 0, b's', b'y', 0, 0]);
        assert_eq!(&b[28..32], &[12, 0, 3, 0x80]);
        assert_eq!(&b[32..40], &[8, 0, 7, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn batch_header_carries_subsystem_in_network_order() {
        let mut w = Writer::default();
        let msg = w.begin_message(
            NFNL_MSG_BATCH_BEGIN,
            0,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        w.end_message(msg).unwrap();
        let mut b = w.into_bytes();
        set_seq(&mut b, 0, 77);
        assert_eq!(&b[16..20], &[0, 0, 0, 10]);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 77);
    }

    #[test]
    fn oversized_nest_is_refused() {
        let mut w = Writer::default();
        let nest = w.begin_nest(1);
        for _ in 0..20_000 {
            w.be32(1, 0).unwrap();
        }
        assert_eq!(w.end_nest(nest), None);
    }

    fn ack_message(seq: u32, error: i32, echoed: usize) -> Vec<u8> {
        let len = 16 + 4 + 16 + echoed;
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&error.to_ne_bytes());
        m.resize(len, 0);
        m.resize(align(len), 0);
        m
    }

    #[test]
    fn parses_acks_and_errors() {
        let mut datagram = ack_message(5, 0, 0);
        datagram.extend(ack_message(6, -2, 3));
        assert_eq!(
            acks(&datagram),
            [Ack { seq: 5, errno: 0 }, Ack { seq: 6, errno: 2 }]
        );
        // A message cut short still yields its ack; a stub header does not.
        assert_eq!(acks(&datagram[..datagram.len() - 8]).len(), 2);
        assert_eq!(acks(&datagram[..36 + 12]).len(), 1);
    }
}
