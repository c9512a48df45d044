//! `switchyard-lab`: build/tear down the namespace lab, and the tiny test
//! backend and UDP client that e2e tests run inside it.

mod backend;
mod demo;
mod dns_query;
mod http;
mod relay;
mod udp_send;
mod up;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "switchyard-lab",
    version,
    about = "Switchyard network-namespace lab"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Test backend: HTTP answering `NAME <client-ip>:<client-port>`, or UDP echo.
    Backend(backend::BackendArgs),
    /// The first demo: control plane on 127.0.0.1:7443, two agents in a lab,
    /// the frontend example, curls through its ClusterIP and NodePort.
    Demo(demo::DemoArgs),
    /// Create a lab and keep it until SIGINT/SIGTERM.
    Up(up::UpArgs),
    /// Remove leftover namespaces (and their processes) whose names start with PREFIX.
    Down(DownArgs),
    /// Send datagrams from a fixed source port and print the replies.
    UdpSend(udp_send::UdpSendArgs),
    /// Ask one DNS question at a steady pace; tally unanswered queries and latency.
    DnsQuery(dns_query::DnsQueryArgs),
    /// Forward every TCP connection to one address (a second path to a server).
    Relay(relay::RelayArgs),
    /// Run PROGRAM with LISTEN_PID set to its process id, as systemd sets it
    /// for a service it passes sockets to (the lab's fake systemd uses it).
    #[command(name = "exec-with-listen-pid")]
    ExecWithListenPid(ExecArgs),
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// The program and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct DownArgs {
    /// Namespace name prefix, e.g. `sy1234x0-` (or `sy` for every lab).
    #[arg(long)]
    prefix: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode> {
    match Cli::parse().cmd {
        Cmd::Backend(args) => backend::run(args).await?,
        Cmd::Demo(args) => demo::run(args).await?,
        Cmd::Up(args) => up::run(args).await?,
        Cmd::Down(args) => down(&args.prefix)?,
        Cmd::UdpSend(args) => {
            if !udp_send::run(&args)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Relay(args) => relay::run(&args).await?,
        Cmd::ExecWithListenPid(args) => exec_with_listen_pid(&args.command)?,
        Cmd::DnsQuery(args) => {
            if !dns_query::run(&args)? {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Becomes `command` (exec keeps the pid), with `LISTEN_PID` naming it.
fn exec_with_listen_pid(command: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = command.split_first() else {
        anyhow::bail!("no command to run");
    };
    let err = std::process::Command::new(program)
        .args(args)
        .env("LISTEN_PID", std::process::id().to_string())
        .exec();
    Err(anyhow::Error::new(err).context(format!("cannot run {program}")))
}

fn down(prefix: &str) -> Result<()> {
    let removed = switchyard_lab::down(prefix)?;
    for ns in &removed {
        println!("removed {ns}");
    }
    println!("{} namespace(s) removed", removed.len());
    Ok(())
}
