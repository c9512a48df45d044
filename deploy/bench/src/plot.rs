//! PNG plots of latency against scale, one file per benchmark with more than
//! one scale point. Text is drawn with a font embedded in the binary, so the
//! plots render on hosts without any system fonts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::{Report, Row};

const FONT: &str = "sans-serif";
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Registers the embedded font once; plotters looks fonts up by family name.
fn register_font() -> anyhow::Result<()> {
    plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::HACK_REGULAR)
        .map_err(|_| anyhow!("the embedded plot font does not parse"))
}

/// Writes `<dir>/<bench>.png` for every benchmark worth plotting.
pub fn write_all(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    register_font()?;
    // One plot per benchmark and unit; ratios ("x") are single numbers.
    let mut groups: BTreeMap<(&str, &str), Vec<&Row>> = BTreeMap::new();
    for r in report.rows.iter().filter(|r| r.unit != "x") {
        groups.entry((&r.bench, &r.unit)).or_default().push(r);
    }
    let units_per_bench = |bench: &str| groups.keys().filter(|(b, _)| *b == bench).count();
    let mut written = Vec::new();
    for ((bench, unit), rows) in &groups {
        let mut series = series(rows);
        series.retain(|_, points| points.len() >= 2);
        if series.is_empty() {
            continue;
        }
        let stem = match units_per_bench(bench) {
            1 => bench.to_string(),
            _ => format!("{bench}-{}", unit.replace('/', "per")),
        };
        let path = dir.join(format!("{stem}.png"));
        draw(&path, bench, unit, &series).with_context(|| format!("plotting {bench}"))?;
        written.push(path);
    }
    Ok(written)
}

/// Per case: (x, median, p99) sorted by x.
fn series<'a>(rows: &[&'a Row]) -> BTreeMap<&'a str, Vec<(f64, f64, f64)>> {
    let mut out: BTreeMap<&str, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for r in rows {
        out.entry(r.case.as_str()).or_default().push((
            r.scale_value,
            r.summary.median,
            r.summary.p99,
        ));
    }
    for points in out.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn draw(
    path: &Path,
    title: &str,
    unit: &str,
    series: &BTreeMap<&str, Vec<(f64, f64, f64)>>,
) -> anyhow::Result<()> {
    let (x_max, y_max) = series
        .values()
        .flatten()
        .fold((1.0f64, 0.0f64), |(x, y), p| (x.max(p.0), y.max(p.2)));
    let root = BitMapBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{title}: median (solid) and p99 (dashed)"),
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max * 1.05, 0f64..(y_max * 1.1).max(1e-3))
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("scale")
        .y_desc(unit)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, (case, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow!("{e}"))?
            .label(*case)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        chart
            .draw_series(DashedLineSeries::new(
                points.iter().map(|p| (p.0, p.2)),
                6,
                4,
                color.stroke_width(1),
            ))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
            )
            .map_err(|e| anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
