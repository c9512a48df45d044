//! `switchyard-lab udp-send`: a UDP client with a pinned source port, so tests
//! can show that one conntrack flow keeps hitting the same backend.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct UdpSendArgs {
    /// Destination (a pod, service, node or LB address).
    #[arg(long)]
    to: SocketAddr,
    /// Local source port (0 = ephemeral, chosen once for all datagrams).
    #[arg(long, default_value_t = 0)]
    from_port: u16,
    /// Number of datagrams.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Pause between datagrams.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// How long to wait for each reply.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Prefix each reply with the address it came from (checks reverse NAT).
    #[arg(long)]
    show_source: bool,
}

/// Prints one line per datagram (the reply, or `timeout`); returns false when
/// any datagram went unanswered, so the process exits non-zero and `exec_ok`
/// callers notice.
pub fn run(args: &UdpSendArgs) -> Result<bool> {
    let socket = UdpSocket::bind(("0.0.0.0", args.from_port))
        .with_context(|| format!("binding UDP source port {}", args.from_port))?;
    socket.set_read_timeout(Some(Duration::from_millis(args.timeout_ms.max(1))))?;
    let mut missing = 0;
    for i in 0..args.count {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
        socket
            .send_to(format!("ping {i}\n").as_bytes(), args.to)
            .with_context(|| format!("sending to {}", args.to))?;
        match receive(&socket)? {
            Some((from, text)) if args.show_source => println!("{from} {text}"),
            Some((_, text)) => println!("{text}"),
            None => {
                missing += 1;
                println!("timeout");
            }
        }
    }
    if missing > 0 {
        eprintln!("{missing} of {} datagrams got no reply", args.count);
    }
    Ok(missing == 0)
}

fn receive(socket: &UdpSocket) -> Result<Option<(SocketAddr, String)>> {
    let mut buf = [0u8; 2048];
    match socket.recv_from(&mut buf) {
        Ok((n, from)) => {
            let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
            Ok(Some((from, text.trim_end().to_string())))
        }
        Err(e) if is_timeout(&e) => Ok(None),
        // An ICMP port-unreachable surfaces as ECONNREFUSED on the next read.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(None),
        Err(e) => Err(e).context("receiving reply"),
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
