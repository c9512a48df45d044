//! The results table: one row per measured quantity, judged against its
//! target, printed for people and written as CSV and JSON for tools.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// Which statistic a target bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    Median,
    P99,
}

/// An upper bound from the issue, e.g. "p99 ≤ 50 ms".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub stat: Stat,
    pub max: f64,
}

impl Target {
    pub fn p99(max: f64) -> Self {
        Self {
            stat: Stat::P99,
            max,
        }
    }

    pub fn median(max: f64) -> Self {
        Self {
            stat: Stat::Median,
            max,
        }
    }

    fn judge(&self, s: &Summary) -> Verdict {
        let value = match self.stat {
            Stat::Median => s.median,
            Stat::P99 => s.p99,
        };
        match value <= self.max {
            true => Verdict::Pass,
            false => Verdict::Miss,
        }
    }

    fn describe(&self, unit: &str) -> String {
        let stat = match self.stat {
            Stat::Median => "median",
            Stat::P99 => "p99",
        };
        format!("{stat} <= {} {unit}", fmt_num(self.max))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Miss,
    /// Measured for context; no target applies.
    #[serde(rename = "-")]
    Info,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
            Verdict::Info => "-",
        }
    }
}

/// One measured quantity at one scale.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Benchmark id, also the plot file stem (e.g. `programming-latency`).
    pub bench: String,
    /// What changed or what was measured (e.g. `endpoint-unready`).
    pub case: String,
    /// Human scale, e.g. `1000 agents`.
    pub scale: String,
    /// The x value for plots.
    pub scale_value: f64,
    pub unit: String,
    pub summary: Summary,
    pub target: Option<Target>,
    pub target_text: String,
    pub verdict: Verdict,
}

impl Row {
    /// Starts a row: what was measured, at which scale.
    pub fn at(bench: &str, case: &str, scale: impl Into<String>, scale_value: f64) -> RowBuilder {
        RowBuilder {
            bench: bench.to_owned(),
            case: case.to_owned(),
            scale: scale.into(),
            scale_value,
        }
    }
}

/// Fills in the measurement part of a [`Row`].
pub struct RowBuilder {
    bench: String,
    case: String,
    scale: String,
    scale_value: f64,
}

impl RowBuilder {
    pub fn measured(self, unit: &str, summary: Summary, target: Option<Target>) -> Row {
        let (verdict, target_text) = match &target {
            Some(t) => (t.judge(&summary), t.describe(unit)),
            None => (Verdict::Info, String::new()),
        };
        Row {
            bench: self.bench,
            case: self.case,
            scale: self.scale,
            scale_value: self.scale_value,
            unit: unit.to_owned(),
            summary,
            target,
            target_text,
            verdict,
        }
    }
}

/// Everything one run produced.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub command: String,
    pub machine: String,
    pub rows: Vec<Row>,
    /// Per benchmark: how it was set up.
    pub setups: Vec<(String, String)>,
    /// Benchmarks or parts not run, with the reason.
    pub skipped: Vec<String>,
    /// Per benchmark: notes worth reading next to the numbers.
    pub notes: Vec<(String, String)>,
}

impl Report {
    pub fn setup(&mut self, bench: &str, text: impl Into<String>) {
        self.setups.push((bench.to_owned(), text.into()));
    }

    pub fn note(&mut self, bench: &str, text: impl Into<String>) {
        self.notes.push((bench.to_owned(), text.into()));
    }

    /// Whether `bench`, which programs real nftables in a network
    /// namespace, can run: without root its skip is recorded (loudly).
    pub fn has_root(&mut self, root: bool, bench: &str) -> bool {
        if !root {
            self.skip(format!(
                "{bench}: needs root (real nftables in a network namespace)"
            ));
        }
        root
    }

    pub fn skip(&mut self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("\n!!! SKIPPED: {what}\n");
        self.skipped.push(what);
    }

    pub fn push(&mut self, row: Row) {
        println!(
            "  {:<24} {:<28} {:<22} median {:>10} {:<4} p99 {:>10} {}",
            row.bench,
            row.case,
            row.scale,
            fmt_num(row.summary.median),
            row.unit,
            fmt_num(row.summary.p99),
            row.verdict.as_str()
        );
        self.rows.push(row);
    }

    /// The aligned table printed at the end and pasted into the README.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| benchmark | case | scale | n | median | p99 | target | result |\n\
             | --- | --- | --- | ---: | ---: | ---: | --- | --- |\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} {} | {} {} | {} | {} |",
                r.bench,
                r.case,
                r.scale,
                r.summary.n,
                fmt_num(r.summary.median),
                r.unit,
                fmt_num(r.summary.p99),
                r.unit,
                r.target_text,
                r.verdict.as_str()
            );
        }
        out
    }

    /// Setup, notes and skipped parts as Markdown paragraphs.
    pub fn narrative(&self) -> String {
        let mut out = String::new();
        for (bench, text) in &self.setups {
            let _ = writeln!(out, "- **{bench}** — {text}");
        }
        for (bench, text) in &self.notes {
            let _ = writeln!(out, "- *{bench}*: {text}");
        }
        for s in &self.skipped {
            let _ = writeln!(out, "- **SKIPPED**: {s}");
        }
        out
    }

    pub fn write_files(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join("results.json"), json)?;
        let mut csv = std::fs::File::create(dir.join("results.csv"))?;
        writeln!(
            csv,
            "bench,case,scale,scale_value,unit,n,median,p99,min,max,target,result"
        )?;
        for r in &self.rows {
            writeln!(
                csv,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&r.bench),
                csv_field(&r.case),
                csv_field(&r.scale),
                r.scale_value,
                csv_field(&r.unit),
                r.summary.n,
                r.summary.median,
                r.summary.p99,
                r.summary.min,
                r.summary.max,
                csv_field(&r.target_text),
                r.verdict.as_str()
            )?;
        }
        std::fs::write(dir.join("results.md"), self.markdown())?;
        Ok(())
    }

    /// The README section body: command, table, setup, notes.
    pub fn markdown(&self) -> String {
        format!(
            "Command: `{}` on {}.\n\n{}\n{}",
            self.command,
            self.machine,
            self.table(),
            self.narrative()
        )
    }
}

fn csv_field(s: &str) -> String {
    match s.contains([',', '"', '\n']) {
        true => format!("\"{}\"", s.replace('"', "\"\"")),
        false => s.to_owned(),
    }
}

/// Three significant digits, no exponent for everyday magnitudes.
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn targets_judge_the_named_statistic() {
        let s = Summary::of(&[1.0, 2.0, 30.0]).unwrap();
        let row = Row::at("b", "c", "1", 1.0).measured("ms", s, Some(Target::p99(10.0)));
        assert_eq!(row.verdict, Verdict::Miss);
        let row = Row::at("b", "c", "1", 1.0).measured("ms", s, Some(Target::median(10.0)));
        assert_eq!(row.verdict, Verdict::Pass);
        assert_eq!(row.target_text, "median <= 10.0 ms");
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
    }
}
