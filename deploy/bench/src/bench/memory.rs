use crate::context::Ctx;
use crate::report::Report;

pub async fn run(_ctx: &Ctx, _report: &mut Report) -> anyhow::Result<()> {
    Ok(())
}
