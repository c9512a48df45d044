//! The summary line `switchyard-lab dns-query` ends with: written and read
//! back by this one type, so the tests and benchmarks that read it follow
//! what the tool prints.

use std::fmt;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DnsTally {
    pub queries: u64,
    pub answered: u64,
    /// No reply within the timeout.
    pub unanswered: u64,
    /// A reply, but an error or no record.
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl fmt::Display for DnsTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "queries {} answered {} unanswered {} failed {} p50_ms {:.2} p99_ms {:.2} max_ms {:.2}",
            self.queries,
            self.answered,
            self.unanswered,
            self.failed,
            self.p50_ms,
            self.p99_ms,
            self.max_ms
        )
    }
}

impl DnsTally {
    /// The line the tool prints once its first query is answered, so a
    /// test can wait for the loop to run before it disturbs the server.
    pub const FIRST_ANSWER: &'static str = "first answer";

    /// The line `--progress-every` prints when `answered` queries are.
    pub fn progress_line(answered: u64) -> String {
        format!("answered {answered}")
    }

    /// The most answers a log's progress lines report so far.
    pub fn answered_so_far(log: &str) -> u64 {
        log.lines()
            .filter_map(|l| l.strip_prefix("answered ")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
    }

    /// The tally in a dns-query log (its last summary line), if any.
    pub fn from_log(log: &str) -> Option<DnsTally> {
        log.lines()
            .rev()
            .find(|l| l.starts_with("queries "))
            .and_then(DnsTally::parse)
    }

    fn parse(line: &str) -> Option<DnsTally> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let value = |name: &str| -> Option<&str> {
            let at = fields.iter().position(|f| *f == name)?;
            fields.get(at + 1).copied()
        };
        let count = |name: &str| value(name)?.parse::<u64>().ok();
        let ms = |name: &str| value(name)?.parse::<f64>().ok();
        Some(DnsTally {
            queries: count("queries")?,
            answered: count("answered")?,
            unanswered: count("unanswered")?,
            failed: count("failed")?,
            p50_ms: ms("p50_ms")?,
            p99_ms: ms("p99_ms")?,
            max_ms: ms("max_ms")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::DnsTally;

    #[test]
    fn a_printed_tally_reads_back() {
        let tally = DnsTally {
            queries: 478,
            answered: 477,
            unanswered: 1,
            failed: 0,
            p50_ms: 0.96,
            p99_ms: 2.78,
            max_ms: 13.95,
        };
        let log = format!("query 7: unanswered\n{tally}\n");
        assert_eq!(
            tally.to_string(),
            "queries 478 answered 477 unanswered 1 failed 0 p50_ms 0.96 p99_ms 2.78 max_ms 13.95"
        );
        assert_eq!(DnsTally::from_log(&log), Some(tally));
        assert_eq!(DnsTally::from_log("query 7: unanswered\n"), None);
    }
}
