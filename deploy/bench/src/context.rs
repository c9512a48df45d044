//! What every benchmark needs: where the binaries are, a scratch directory,
//! the cluster shape for this run, and the loaded control-plane store shared
//! by the benchmarks that start from "10,000 Services loaded".

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::control_plane::{copy_dir, ControlPlane, Transport};
use crate::fixture::Shape;

pub struct Ctx {
    pub bins: PathBuf,
    pub quick: bool,
    pub root: bool,
    /// The big cluster: 10,000 Services × 10 endpoints (smaller with `--quick`).
    pub shape: Shape,
    /// Logs, sockets, data directories of this run.
    pub work: tempfile::TempDir,
    /// Loaded stores kept between runs, keyed by shape.
    pub cache: PathBuf,
    /// Hollow agent counts to run instead of the defaults.
    pub agents: Vec<usize>,
    /// Where results go.
    pub out: PathBuf,
    /// `--services` was given: this run is a part of a bigger one.
    pub services_override: bool,
    /// How the loaded control planes serve (`--plaintext`: `--insecure`).
    pub transport: Transport,
}

impl Ctx {
    pub fn new(bins: PathBuf, quick: bool, root: bool) -> anyhow::Result<Ctx> {
        let shape = match quick {
            true => Shape {
                services: 1_000,
                endpoints: 10,
            },
            false => Shape {
                services: 10_000,
                endpoints: 10,
            },
        };
        let cache = bins
            .parent()
            .map(|t| t.join("bench-cache"))
            .unwrap_or_else(|| PathBuf::from("bench-cache"));
        let work = tempfile::Builder::new()
            .prefix("switchyard-bench-")
            .tempdir()
            .context("creating the scratch directory")?;
        Ok(Ctx {
            bins,
            quick,
            root,
            shape,
            work,
            cache,
            agents: Vec::new(),
            out: PathBuf::from("bench-results"),
            services_override: false,
            transport: Transport::Tls,
        })
    }

    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// Where the loaded store for `shape` is cached.
    pub fn cached_store(&self, shape: &Shape) -> PathBuf {
        self.cache.join(format!("store-{}", shape.id()))
    }

    /// A fresh copy of the loaded store (loading it first if needed),
    /// served by a new control plane.
    pub async fn loaded_control_plane(&self, shape: &Shape) -> anyhow::Result<ControlPlane> {
        let cached = self.cached_store(shape);
        if !cached.join("conf").exists() {
            eprintln!(
                "no cached store for {} Services x {} endpoints; loading one (benchmark api-throughput measures this)",
                shape.services, shape.endpoints
            );
            crate::bench::api::load_into_cache(self, shape).await?;
        }
        let dir = tempfile::Builder::new()
            .prefix("store-")
            .tempdir_in(self.work())?
            .keep();
        copy_dir(&cached, &dir)?;
        ControlPlane::start_with(&self.bins, &dir, self.work(), self.transport).await
    }
}
