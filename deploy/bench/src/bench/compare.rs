//! One round of an A/B benchmark (`tls-cost`, `store`): a fresh control
//! plane, the same writes (writes/s) and the same programming changes
//! (latency to the last ACK), whatever the two sides differ in.

use std::time::Duration;

use crate::context::Ctx;
use crate::control_plane::{ControlPlane, Transport};
use crate::fixture::Shape;
use crate::report::{Report, Row};
use crate::stats::Summary;

/// One side's figures over the rounds.
#[derive(Default)]
pub struct Figures {
    pub service_writes: Vec<f64>,
    pub pod_writes: Vec<f64>,
    pub latencies_ms: Vec<f64>,
}

impl Figures {
    /// Reports each figure as `<case>@<side>`.
    pub fn report(&self, bench: &str, side: &str, scale: &str, x: f64, report: &mut Report) {
        for (case, values, unit) in [
            ("service-writes-per-second", &self.service_writes, "1/s"),
            ("pod-writes-per-second", &self.pod_writes, "1/s"),
            ("programming-latency", &self.latencies_ms, "ms"),
        ] {
            if let Some(s) = Summary::of(values) {
                report.push(
                    Row::at(bench, &format!("{case}@{side}"), scale, x).measured(unit, s, None),
                );
            }
        }
    }
}

/// The sizes of one comparison, quick or full.
pub struct Plan {
    pub shape: Shape,
    pub agents: usize,
    pub reps: usize,
    pub rounds: usize,
}

impl Plan {
    pub fn for_ctx(ctx: &Ctx) -> Plan {
        match ctx.quick {
            true => Plan {
                shape: Shape {
                    services: 300,
                    endpoints: 10,
                },
                agents: 25,
                reps: 5,
                rounds: 2,
            },
            false => Plan {
                shape: Shape {
                    services: 1_000,
                    endpoints: 10,
                },
                agents: 100,
                reps: 10,
                rounds: 3,
            },
        }
    }

    pub fn scale(&self) -> (String, f64) {
        (
            format!("{} svc, {} agents", self.shape.services, self.agents),
            self.shape.services as f64,
        )
    }
}

/// One round on a fresh control plane served over `transport` with `extra` flags.
pub async fn measure(
    ctx: &Ctx,
    plan: &Plan,
    transport: Transport,
    extra: &[String],
    into: &mut Figures,
) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("compare-")
        .tempdir_in(ctx.work())?;
    let cp = ControlPlane::start_on(&ctx.bins, dir.path(), ctx.work(), transport, extra).await?;
    let stats = super::api::load(&cp, &plan.shape).await?;
    into.service_writes.push(stats.services.per_second());
    into.pod_writes.push(stats.pods.per_second());
    let latencies =
        super::programming::hollow_latencies(&cp, &plan.shape, plan.agents, plan.reps).await?;
    into.latencies_ms.extend(latencies);
    cp.stop();
    // Let the stopped control plane's sockets and pages go before the next.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}
