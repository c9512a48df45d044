//! Removing lab namespaces: the lab's own teardown and `down --prefix`.

use crate::cmd;
use crate::error::{LabError, Result};

/// Names of all named network namespaces on the machine.
pub fn list_namespaces() -> Result<Vec<String>> {
    let out = cmd::ip(&["netns", "list"])?;
    Ok(parse_netns_list(&out))
}

/// Parses `ip netns list` output (`name (id: 3)` or just `name` per line).
pub fn parse_netns_list(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Namespaces whose name starts with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Result<Vec<String>> {
    Ok(list_namespaces()?
        .into_iter()
        .filter(|ns| ns.starts_with(prefix))
        .collect())
}

/// SIGKILLs every process still inside `ns`: a namespace only really goes away
/// (with its veths and nftables table) once nothing runs in it.
pub fn kill_processes_in(ns: &str) -> Result<()> {
    let pids = cmd::ip(&["netns", "pids", ns])?;
    let pids: Vec<&str> = pids.split_whitespace().collect();
    if pids.is_empty() {
        return Ok(());
    }
    let mut args = vec!["-KILL"];
    args.extend(pids);
    // A process may exit between listing and killing; that is not an error.
    let _ = cmd::output("kill", &args)?;
    Ok(())
}

/// Kills what runs in `ns`, then deletes it.
pub fn remove_namespace(ns: &str) -> Result<()> {
    kill_processes_in(ns)?;
    cmd::ip(&["netns", "del", ns]).map(|_| ())
}

/// Removes every namespace starting with `prefix` (and the log directories
/// of those labs), returning the namespaces removed. Keeps going past failures
/// so one stuck namespace does not hide the others; the first error is
/// returned at the end.
pub fn down(prefix: &str) -> Result<Vec<String>> {
    if prefix.is_empty() {
        return Err(LabError::Config("refusing an empty prefix".into()));
    }
    remove_log_dirs(prefix);
    let mut removed = Vec::new();
    let mut first_err = None;
    for ns in namespaces_with_prefix(prefix)? {
        match remove_namespace(&ns) {
            Ok(()) => removed.push(ns),
            Err(e) => {
                eprintln!("switchyard-lab: removing {ns}: {e}");
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(removed), Err)
}

/// Log directories are named `switchyard-lab-<prefix>` (no dash), so the
/// usual `<prefix>-` argument is matched without its trailing dash.
fn remove_log_dirs(prefix: &str) {
    let wanted = format!("switchyard-lab-{}", prefix.trim_end_matches('-'));
    let tmp = std::env::temp_dir();
    let Ok(entries) = std::fs::read_dir(&tmp) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&wanted) {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                eprintln!("switchyard-lab: removing {}: {e}", entry.path().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_netns_list_with_and_without_ids() {
        let out = "sy1-n1 (id: 3)\nsy1-br\n\nother (id: 0)\n";
        assert_eq!(parse_netns_list(out), vec!["sy1-n1", "sy1-br", "other"]);
    }
}
