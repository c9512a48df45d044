//! Running external tools (`ip`, `kill`, …) with readable errors.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::error::{LabError, Result};

/// Directories searched after `PATH`, because test runners often start with a
/// PATH that lacks the sbin directories where `ip` and `nft` live.
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Finds an executable by name in `PATH` and the usual system directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Like [`find_tool`] but an error when the tool is missing.
pub fn tool(name: &str) -> Result<PathBuf> {
    find_tool(name).ok_or_else(|| LabError::MissingTool(name.to_string()))
}

/// Renders a command line for error messages and logs.
pub fn render<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut line = program.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.as_ref().to_string_lossy());
    }
    line
}

/// Runs a tool to completion, capturing its output whatever the exit status.
pub fn output<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<Output> {
    Command::new(tool(program)?)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: render(program, args),
            source,
        })
}

/// Turns a finished command into its stdout, or an error carrying its stderr.
pub fn check(cmd: String, out: Output) -> Result<String> {
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(LabError::Command {
        cmd,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Runs a tool and fails unless it exits successfully; returns stdout.
pub fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String> {
    let out = output(program, args)?;
    check(render(program, args), out)
}

/// Runs `ip` with the given arguments, failing on a non-zero exit.
pub fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

/// Runs `ip -n <ns> …`, i.e. an `ip` command inside a named namespace.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    ip(&full)
}
