//! Order statistics over repeated runs. Nearest-rank percentiles: with few
//! samples a p99 is the worst run, which is the honest reading.

use serde::{Deserialize, Serialize};

/// Median, p99 and range of one set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// The answer latencies `dns-query` tallied (it keeps no minimum).
    pub fn of_dns(tally: &switchyard_lab::DnsTally) -> Summary {
        Summary {
            n: tally.answered as usize,
            median: tally.p50_ms,
            p99: tally.p99_ms,
            min: 0.0,
            max: tally.max_ms,
        }
    }

    /// `None` for no samples; NaNs are dropped.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Summary {
            n: v.len(),
            median: percentile(&v, 50.0),
            p99: percentile(&v, 99.0),
            min: v[0],
            max: v[v.len() - 1],
        })
    }

    /// One measurement repeated once.
    pub fn single(value: f64) -> Summary {
        Summary {
            n: 1,
            median: value,
            p99: value,
            min: value,
            max: value,
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn nearest_rank() {
        let s = Summary::of(&(1..=100).map(f64::from).collect::<Vec<_>>()).unwrap();
        assert_eq!((s.median, s.p99, s.min, s.max), (50.0, 99.0, 1.0, 100.0));
        let few = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((few.median, few.p99), (2.0, 3.0));
        assert!(Summary::of(&[]).is_none());
    }
}
