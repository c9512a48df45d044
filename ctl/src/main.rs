//! `swctl`: kubectl-style command line for Switchyard.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use swctl::cli::{Cli, Command};
use swctl::client::Client;
use swctl::commands;
use swctl::login::Login;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// kubectl prints client-side errors as `error: …`; server refusals carry
/// their own prefix.
fn message(e: &anyhow::Error) -> String {
    match e.downcast_ref::<swctl::client::ClientError>() {
        Some(c) if c.is_prefixed() => e.to_string(),
        _ => format!("error: {e:#}"),
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    if let Command::Completion { shell } = &cli.command {
        clap_complete::generate(*shell, &mut Cli::command(), "swctl", &mut std::io::stdout());
        return Ok(true);
    }
    let login = Login::resolve(cli.server.as_deref(), cli.config.as_deref())?;
    if let Command::Config(c) = &cli.command {
        return commands::config::run(&login, c);
    }
    let mut client = Client::connect(&login).await?;
    let ns = cli.namespace.as_str();
    match &cli.command {
        Command::Apply(a) => commands::apply::run(&mut client, ns, a).await,
        Command::Get(a) => commands::get::run(&mut client, ns, a).await,
        Command::Describe(a) => commands::describe::run(&mut client, ns, a).await,
        Command::Delete(a) => commands::delete::run(&mut client, ns, a).await,
        Command::Create(c) => commands::create::run(&mut client, ns, c).await,
        Command::Expose(a) => commands::expose::run(&mut client, ns, a).await,
        Command::PortForward(a) => commands::port_forward::run(&login, ns, a).await,
        Command::Env(a) => commands::env::run(&mut client, ns, a).await,
        Command::Config(_) | Command::Completion { .. } => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use switchyard_daemon::packaged;

    use super::*;

    #[test]
    fn the_committed_man_pages_and_completions_are_current() {
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let checked = packaged::check_committed(Cli::command(), "swctl", true, &deploy);
        assert_eq!(checked, Ok(()));
    }
}
