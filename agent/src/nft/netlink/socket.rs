//! The agent's `NETLINK_NETFILTER` socket: opened once (in the data path's
//! network namespace), then one blocking `send` and outcome wait per batch.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{
    netlink, recv, send, socket_with, sockopt, AddressFamily, RecvFlags, SendFlags, SocketFlags,
    SocketType,
};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use super::message::{acks, set_ack, set_seq};
use super::Batch;
use crate::nft::error::NftError;

/// How long to wait for the kernel's next ack: nf_tables answers within
/// the `send` itself, so this only fires on a kernel bug, and keeps that
/// from hanging the agent.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive buffer room beyond the echoed messages: the replies of a whole
/// batch are queued before `send` returns, each with skb overhead, and a
/// dropped reply would leave the outcome unknown.
const RCVBUF_SLACK: usize = 1 << 20;
/// Smallest receive buffer: an error echoes the refused message.
const MIN_RECV_BUF: usize = 64 * 1024;

/// A `NETLINK_NETFILTER` socket, kept open for the life of the agent.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    /// Sequence number of the next message sent.
    next_seq: u32,
    /// Current `SO_SNDBUF` / `SO_RCVBUF` as the kernel reports them.
    sndbuf: usize,
    rcvbuf: usize,
    buf: Vec<u8>,
}

impl Socket {
    /// Opens the socket in the current network namespace, or, with
    /// `Some(name)`, inside `/run/netns/NAME`. A socket stays bound to the
    /// namespace it was created in, so a short-lived thread enters the
    /// namespace, creates it and exits: the caller's thread never moves.
    pub fn open(netns: Option<&str>) -> Result<Socket, NftError> {
        let fd = match netns {
            None => new_socket(),
            Some(name) => {
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    return Err(NftError::Netlink(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("invalid network namespace name {name:?}"),
                    )));
                }
                let path = Path::new("/run/netns").join(name);
                std::thread::spawn(move || {
                    let ns = File::open(&path)?;
                    move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))?;
                    new_socket()
                })
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
            }
        }
        .map_err(NftError::Netlink)?;
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(REPLY_TIMEOUT))
            .map_err(netlink_error)?;
        let sndbuf = sockopt::socket_send_buffer_size(&fd).map_err(netlink_error)?;
        let rcvbuf = sockopt::socket_recv_buffer_size(&fd).map_err(netlink_error)?;
        Ok(Socket {
            fd,
            next_seq: 1,
            sndbuf,
            rcvbuf,
            buf: vec![0; MIN_RECV_BUF],
        })
    }

    /// Sends one batch as one atomic transaction and waits for its outcome.
    /// On any error the kernel aborts the whole batch; the error names the
    /// command whose message failed.
    ///
    /// Only the last request asks for an ack, as nft does not ask for any:
    /// the kernel reports every refused message and a failed commit anyway,
    /// and acking each of the ~30,000 messages of a first load would need a
    /// receive buffer of tens of MiB.
    pub fn send(&mut self, batch: &mut Batch) -> Result<(), NftError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.discard_stale().map_err(NftError::Netlink)?;
        let count = batch.offsets.len();
        let base = self.next_seq;
        self.next_seq = base.wrapping_add(count as u32);
        let last = count - 2;
        for (i, &offset) in batch.offsets.iter().enumerate() {
            set_seq(&mut batch.bytes, offset, base.wrapping_add(i as u32));
            if (1..=last).contains(&i) {
                set_ack(&mut batch.bytes, offset, i == last);
            }
        }
        let len = batch.bytes.len();
        self.reserve(len, batch.largest_message())
            .map_err(NftError::Netlink)?;
        let sent =
            retry(|| send(&self.fd, &batch.bytes, SendFlags::empty())).map_err(netlink_error)?;
        if sent != len {
            return Err(NftError::Netlink(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {len} bytes"),
            )));
        }
        self.await_outcome(batch, base, last)
    }

    /// Waits for the ack of the request at index `last` (sequence numbers
    /// start at `base`); any error before it, including one against
    /// BATCH_BEGIN for a failed commit, means the batch was aborted.
    fn await_outcome(&mut self, batch: &Batch, base: u32, last: usize) -> Result<(), NftError> {
        let count = batch.offsets.len();
        loop {
            let len = self.recv(RecvFlags::empty()).map_err(|e| match e {
                Errno::AGAIN => NftError::Netlink(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no reply from nf_tables within {REPLY_TIMEOUT:?}"),
                )),
                e => netlink_error(e),
            })?;
            for ack in acks(&self.buf[..len]) {
                let index = ack.seq.wrapping_sub(base) as usize;
                if index >= count {
                    continue; // a late reply to an earlier batch
                }
                if ack.errno != 0 {
                    return Err(rejection(index, ack.errno));
                }
                if index == last {
                    return Ok(());
                }
            }
        }
    }

    /// Drops replies left over from an earlier batch that failed before
    /// all its acks were read.
    fn discard_stale(&mut self) -> io::Result<()> {
        loop {
            match self.recv(RecvFlags::DONTWAIT) {
                Ok(_) => continue,
                Err(Errno::AGAIN) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One datagram into `self.buf`; its length, capped to the buffer.
    fn recv(&mut self, flags: RecvFlags) -> Result<usize, Errno> {
        let buf = &mut self.buf[..];
        let (_, len) = retry(|| recv(&self.fd, &mut *buf, flags | RecvFlags::TRUNC))?;
        Ok(len.min(self.buf.len()))
    }

    /// Grows the socket buffers for a batch of `len` bytes: the kernel
    /// refuses a datagram larger than `SO_SNDBUF`, and drops replies that do
    /// not fit `SO_RCVBUF`.
    fn reserve(&mut self, len: usize, largest: usize) -> io::Result<()> {
        let want_snd = len + 4096;
        if want_snd > self.sndbuf {
            sockopt::set_socket_send_buffer_size_force(&self.fd, want_snd)
                .or_else(|_| sockopt::set_socket_send_buffer_size(&self.fd, want_snd))?;
            self.sndbuf = sockopt::socket_send_buffer_size(&self.fd)?;
        }
        // Errors echo their message, so the whole batch may come back.
        let want_rcv = 2 * len + RCVBUF_SLACK;
        if want_rcv > self.rcvbuf {
            sockopt::set_socket_recv_buffer_size_force(&self.fd, want_rcv)
                .or_else(|_| sockopt::set_socket_recv_buffer_size(&self.fd, want_rcv))?;
            self.rcvbuf = sockopt::socket_recv_buffer_size(&self.fd)?;
        }
        let want_buf = (largest + 1024).max(MIN_RECV_BUF);
        if self.buf.len() < want_buf {
            self.buf.resize(want_buf, 0);
        }
        Ok(())
    }
}

fn new_socket() -> io::Result<OwnedFd> {
    Ok(socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        Some(netlink::NETFILTER),
    )?)
}

/// Repeats a syscall interrupted by a signal.
fn retry<T>(mut call: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match call() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

fn netlink_error(errno: Errno) -> NftError {
    NftError::Netlink(errno.into())
}

/// The error for a refused message; BATCH_BEGIN (index 0) is where the
/// kernel reports a failed commit.
fn rejection(index: usize, errno: i32) -> NftError {
    NftError::Refused {
        request: index.checked_sub(1),
        errno,
    }
}
