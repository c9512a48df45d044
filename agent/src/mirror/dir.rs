//! The manifest directory (IO): each scan lists it and re-reads only the
//! files whose size, times or inode changed, and re-parses only those whose
//! content hash changed, so a poll costs one `stat` per file plus work in
//! proportion to what changed.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifests::{self, Declared, Host, MirrorPod, PodKey};

const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

#[derive(Debug, thiserror::Error)]
#[error("cannot read the pod manifest directory {}: {source}", .dir.display())]
pub struct DirError {
    pub dir: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What tells a file changed without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
        }
    }
}

#[derive(Debug)]
struct Seen {
    stamp: Stamp,
    digest: [u8; 32],
    pods: Vec<MirrorPod>,
}

/// The directory and what each file declared when last read.
#[derive(Debug)]
pub struct ManifestDir {
    dir: PathBuf,
    files: BTreeMap<PathBuf, Seen>,
}

impl ManifestDir {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            files: BTreeMap::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Brings the files up to date; `Ok(true)` when what they declare may
    /// have changed. A file that cannot be read or parsed keeps declaring
    /// what it did (nothing, when new), and is reported once per content.
    pub fn scan(&mut self, host: &Host) -> Result<bool, DirError> {
        let failed = |source| DirError {
            dir: self.dir.clone(),
            source,
        };
        let mut present = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir).map_err(failed)? {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            let wanted = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e));
            // Follows symlinks, as kubelet does.
            match std::fs::metadata(&path) {
                Ok(m) if wanted && m.is_file() => {
                    present.insert(path, Stamp::of(&m));
                }
                _ => {}
            }
        }
        let before = self.files.len();
        self.files.retain(|path, _| present.contains_key(path));
        let mut changed = self.files.len() != before;
        for (path, stamp) in present {
            changed |= self.refresh(path, stamp, host);
        }
        Ok(changed)
    }

    /// Re-reads one file if its stamp moved; true when its pods changed.
    fn refresh(&mut self, path: PathBuf, stamp: Stamp, host: &Host) -> bool {
        if self.files.get(&path).is_some_and(|s| s.stamp == stamp) {
            return false;
        }
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(file = %shown, error = %e, "cannot read pod manifest");
                return false;
            }
        };
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if let Some(seen) = self.files.get_mut(&path) {
            seen.stamp = stamp;
            if seen.digest == digest {
                return false;
            }
            seen.digest = digest;
        }
        let parsed = manifests::parse(&shown, &text, host);
        let seen = self.files.entry(path).or_insert(Seen {
            stamp,
            digest,
            pods: Vec::new(),
        });
        match parsed {
            Ok(Declared { pods, ignored }) => {
                for line in ignored {
                    tracing::warn!("{line}");
                }
                seen.pods = pods;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "pod manifest refused; keeping what the file declared before");
                false
            }
        }
    }

    /// The pods all files declare now, and what was dropped as a duplicate.
    pub fn desired(&self) -> (BTreeMap<PodKey, MirrorPod>, Vec<String>) {
        manifests::desired(
            self.files
                .iter()
                .map(|(path, seen)| (path.display(), &seen.pods[..])),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: NAME\nspec:\n  hostNetwork: true\n  containers:\n    - name: c\n";

    fn host() -> Host {
        Host {
            node_name: "n1".into(),
            node_ip: std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
        }
    }

    fn names(dir: &ManifestDir) -> Vec<String> {
        dir.desired().0.keys().map(|k| k.name.clone()).collect()
    }

    #[test]
    fn scans_follow_the_files_and_skip_what_did_not_change() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |file: &str, name: &str| {
            std::fs::write(tmp.path().join(file), POD.replace("NAME", name)).unwrap()
        };
        let mut dir = ManifestDir::new(tmp.path().to_path_buf());
        assert!(!dir.scan(&host()).unwrap(), "empty");
        write("a.yaml", "a");
        write("b.json.txt", "ignored");
        assert!(dir.scan(&host()).unwrap());
        assert_eq!(names(&dir), vec!["a-n1"]);
        assert!(!dir.scan(&host()).unwrap(), "nothing changed");
        // Rewritten with the same content: read again, not re-parsed.
        write("a.yaml", "a");
        assert!(!dir.scan(&host()).unwrap());
        write("b.yml", "b");
        assert!(dir.scan(&host()).unwrap());
        assert_eq!(names(&dir), vec!["a-n1", "b-n1"]);
        // A broken file keeps what it declared.
        std::fs::write(tmp.path().join("b.yml"), "kind: [").unwrap();
        assert!(!dir.scan(&host()).unwrap());
        assert_eq!(names(&dir), vec!["a-n1", "b-n1"]);
        std::fs::remove_file(tmp.path().join("a.yaml")).unwrap();
        assert!(dir.scan(&host()).unwrap());
        assert_eq!(names(&dir), vec!["b-n1"]);
        let gone = ManifestDir::new(tmp.path().join("missing")).scan(&host());
        assert!(gone.is_err());
    }
}
