//! A stream of DNS queries from a lab pod (`switchyard-lab dns-query`),
//! for tests that change an agent under load and count what went
//! unanswered.

use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::error::{LabError, Result};
use crate::{ChildGuard, DnsTally};

/// `switchyard-lab dns-query` running until [`DnsQueries::finish`].
pub struct DnsQueries {
    child: ChildGuard,
    stop: PathBuf,
}

impl DnsQueries {
    /// From pod `pod` of node `node`: a query for `name` to `server`
    /// every 5 ms, waiting `timeout_ms` for each answer; `extra` adds
    /// `dns-query` flags.
    pub fn start(
        c: &Cluster,
        (node, pod): (usize, usize),
        server: &str,
        name: &str,
        timeout_ms: u32,
        extra: &[&str],
    ) -> Result<DnsQueries> {
        let stop = c.lab.log_dir().join(format!("dns-query-{node}-{pod}.stop"));
        let timeout = timeout_ms.to_string();
        let stop_arg = stop.to_string_lossy().into_owned();
        let lab_bin = c.bin("switchyard-lab");
        let mut args = vec![
            lab_bin.as_str(),
            "dns-query",
            "--server",
            server,
            "--name",
            name,
            "--interval-ms",
            "5",
            "--timeout-ms",
            &timeout,
            "--duration-s",
            "180",
            "--until-file",
            &stop_arg,
        ];
        args.extend_from_slice(extra);
        let child = c.lab.spawn(&c.lab.pod(node, pod).ns, &args)?;
        Ok(DnsQueries { child, stop })
    }

    pub fn child(&self) -> &ChildGuard {
        &self.child
    }

    /// Stops the queries; their tally and the tool's whole log.
    pub fn finish(self) -> Result<(DnsTally, String)> {
        std::fs::write(&self.stop, "").map_err(|e| LabError::Cluster(format!("{e}")))?;
        self.child
            .wait_for_log("queries ", Duration::from_secs(10))?;
        let log = self.child.log();
        match DnsTally::from_log(&log) {
            Some(tally) => Ok((tally, log)),
            None => Err(LabError::Cluster(format!(
                "dns-query printed no tally:\n{log}"
            ))),
        }
    }
}
