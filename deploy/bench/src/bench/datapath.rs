use crate::context::Ctx;
use crate::report::Report;

pub async fn run(_ctx: &Ctx, _report: &mut Report) -> anyhow::Result<()> {
    Ok(())
}

pub async fn backend(_listen: &str) -> anyhow::Result<()> {
    Ok(())
}

pub async fn client(_target: &str, _c: usize, _s: f64) -> anyhow::Result<()> {
    Ok(())
}
