//! The six benchmarks of issue 6, what TLS costs (issue 14), the churn
//! soak (issue 15), sled beside etcd (issue 17) and DNS under a flood
//! (issue 24), the Kubernetes API beside gRPC (issue 25), the whole
//! agent's push → ACK (issue 26), one module each.

pub mod api;
mod compare;
pub mod datapath;
pub mod dns_flood;
pub mod dns_latency;
pub mod full_sync;
pub mod incremental;
pub mod kube_api;
pub mod memory;
pub mod programming;
pub mod soak;
pub mod store;
pub mod tls_cost;
pub mod whole_agent;

use crate::context::Ctx;
use crate::report::Report;
use crate::Command;

/// Runs one benchmark, or all of them in an order that reuses the loaded
/// store (the API benchmark loads it).
pub async fn run(command: &Command, ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    match command {
        Command::All => {
            // Results are written after each benchmark, so a run stopped
            // part-way (or killed) still leaves what it measured.
            api::run(ctx, report).await?;
            report.write_files(&ctx.out)?;
            memory::run(ctx, report).await?;
            report.write_files(&ctx.out)?;
            full_sync::run(ctx, report).await?;
            report.write_files(&ctx.out)?;
            incremental::run(ctx, report).await?;
            report.write_files(&ctx.out)?;
            whole_agent::run(ctx, report).await?;
            report.write_files(&ctx.out)?;
            datapath::run(ctx, report).await?;
            report.write_files(&ctx.out)?;
            tls_cost::run(ctx, report).await?;
            report.write_files(&ctx.out)?;
            store::run(ctx, report).await?;
            report.write_files(&ctx.out)?;
            dns_latency::run(ctx, report).await?;
            report.write_files(&ctx.out)?;
            programming::run(ctx, report).await
        }
        Command::Programming => programming::run(ctx, report).await,
        Command::FullSync => full_sync::run(ctx, report).await,
        Command::Incremental => incremental::run(ctx, report).await,
        Command::WholeAgent => whole_agent::run(ctx, report).await,
        Command::Datapath => datapath::run(ctx, report).await,
        Command::Memory => memory::run(ctx, report).await,
        Command::Api => api::run(ctx, report).await,
        Command::TlsCost => tls_cost::run(ctx, report).await,
        Command::Store => store::run(ctx, report).await,
        Command::DnsLatency => dns_latency::run(ctx, report).await,
        Command::DnsFlood => dns_flood::run(ctx, report).await,
        Command::KubeApi => kube_api::run(ctx, report).await,
        Command::Soak { changes, hollow } => {
            let size = soak::Size {
                changes: *changes,
                hollow: *hollow,
            };
            soak::run(ctx, report, size).await
        }
        _ => Ok(()),
    }
}
