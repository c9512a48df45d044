//! Splits a push into parts of bounded size.
//!
//! gRPC keeps, on each stream and on both sides, a buffer as big as the
//! biggest message that stream ever carried. A full snapshot of 10,000
//! Services is ~4 MB, so sending it whole would pin ~4 MB per agent in the
//! control plane (gigabytes with thousands of agents) and in every agent.
//! In parts, each side holds one part at a time.

use std::ops::Range;

/// The most Service bytes one part carries, unless a single Service is
/// bigger on its own.
pub const PART_BYTES: usize = 64 * 1024;

/// Consecutive index ranges over items of the given encoded `sizes`, each
/// at most `limit` bytes in total or a single item. Never empty: a push
/// without Services still goes out as one part.
pub fn ranges(sizes: impl IntoIterator<Item = usize>, limit: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes, mut end) = (0, 0, 0);
    for size in sizes {
        if end > start && bytes + size > limit {
            out.push(start..end);
            (start, bytes) = (end, 0);
        }
        bytes += size;
        end += 1;
    }
    out.push(start..end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_under_the_limit_and_cover_every_item_in_order() {
        assert_eq!(ranges([40, 40, 40, 10, 90], 100), vec![0..2, 2..4, 4..5]);
    }

    #[test]
    fn an_item_bigger_than_the_limit_is_a_part_of_its_own() {
        assert_eq!(ranges([10, 500, 10], 100), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn no_items_is_one_empty_part() {
        assert_eq!(ranges([], 100), vec![0..0]);
    }

    #[test]
    fn items_that_fit_are_one_part() {
        assert_eq!(ranges([30, 30, 40], 100), vec![0..3]);
    }
}
