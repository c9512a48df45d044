//! Files the packages carry that are generated from a program's command
//! line definition: man pages (clap_mangen) and shell completions.
//!
//! They are committed (`deploy/man/`, `deploy/completions/`) so cargo-deb
//! packs them as they are, with no build step of its own; each program has
//! a test that generates them afresh and fails on a stale copy, naming the
//! command that rewrites them (see [`stale`]).

use std::io;
use std::path::Path;

use clap::Command;
use clap_complete::Shell;

/// The environment variable that makes the tests rewrite the committed
/// copies instead of comparing.
pub const BLESS: &str = "SWITCHYARD_BLESS";

/// `NAME.1`, and `NAME-SUB.1` for every subcommand, into `dir`.
pub fn write_man_pages(cmd: Command, dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(cmd, dir)
}

/// Completion scripts for bash, zsh and fish (`NAME.bash`, `_NAME`,
/// `NAME.fish`), in a directory per shell.
pub fn write_completions(mut cmd: Command, bin: &str, dir: &Path) -> io::Result<()> {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let shell_dir = dir.join(shell.to_string());
        std::fs::create_dir_all(&shell_dir)?;
        clap_complete::generate_to(shell, &mut cmd, bin, &shell_dir)?;
    }
    Ok(())
}

/// Compares a program's committed man pages (`<deploy>/man`) and, with
/// `completions`, completion scripts (`<deploy>/completions`) with fresh
/// ones; with [`BLESS`] set, rewrites them instead. The error lists what is
/// stale and how to rewrite it.
pub fn check_committed(
    cmd: Command,
    bin: &str,
    completions: bool,
    deploy: &Path,
) -> Result<(), String> {
    let write = |root: &Path| -> io::Result<()> {
        write_man_pages(cmd.clone(), &root.join("man"))?;
        if completions {
            write_completions(cmd.clone(), bin, &root.join("completions"))?;
        }
        Ok(())
    };
    if std::env::var_os(BLESS).is_some() {
        return write(deploy).map_err(|e| format!("writing into {}: {e}", deploy.display()));
    }
    let fresh = std::env::temp_dir().join(format!("{bin}-packaged-{}", std::process::id()));
    let result = write(&fresh).and_then(|()| stale(&fresh, deploy));
    let _ = std::fs::remove_dir_all(&fresh);
    match result.map_err(|e| e.to_string())? {
        stale if stale.is_empty() => Ok(()),
        stale => Err(format!(
            "stale in {}: {}; `{BLESS}=1 cargo test` rewrites them",
            deploy.display(),
            stale.join(", ")
        )),
    }
}

/// The files of `fresh` (recursively) missing from `committed` or differing
/// from it, as paths relative to `fresh`.
pub fn stale(fresh: &Path, committed: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    walk(fresh, Path::new(""), &mut |rel| {
        let new = std::fs::read(fresh.join(rel))?;
        if std::fs::read(committed.join(rel)).ok().as_deref() != Some(new.as_slice()) {
            out.push(rel.display().to_string());
        }
        Ok(())
    })?;
    out.sort();
    Ok(out)
}

fn walk(root: &Path, rel: &Path, visit: &mut dyn FnMut(&Path) -> io::Result<()>) -> io::Result<()> {
    for entry in std::fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            walk(root, &rel, visit)?;
        } else {
            visit(&rel)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> Command {
        Command::new("tool")
            .version("1.0")
            .about("A tool")
            .arg(clap::Arg::new("verbose").long("verbose").help("Say more"))
            .subcommand(Command::new("run").about("Run it"))
    }

    #[test]
    fn man_pages_cover_the_subcommands_and_a_changed_one_is_stale() {
        let fresh = tempfile::tempdir().unwrap();
        let committed = tempfile::tempdir().unwrap();
        write_man_pages(cmd(), fresh.path()).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(fresh.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["tool-run.1", "tool.1"]);
        let page = std::fs::read_to_string(fresh.path().join("tool.1")).unwrap();
        assert!(page.contains("\\-\\-verbose"), "{page}");
        assert_eq!(
            stale(fresh.path(), committed.path()).unwrap(),
            ["tool-run.1", "tool.1"]
        );
        write_man_pages(cmd(), committed.path()).unwrap();
        assert!(stale(fresh.path(), committed.path()).unwrap().is_empty());
        write_man_pages(cmd().about("Another tool"), committed.path()).unwrap();
        assert_eq!(stale(fresh.path(), committed.path()).unwrap(), ["tool.1"]);
    }

    #[test]
    fn completions_for_three_shells_under_their_packaged_names() {
        let dir = tempfile::tempdir().unwrap();
        write_completions(cmd(), "tool", dir.path()).unwrap();
        for file in ["bash/tool.bash", "zsh/_tool", "fish/tool.fish"] {
            let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
            assert!(text.contains("run"), "{file}: {text}");
        }
    }
}
