//! Picking a free value from a contiguous range, Kubernetes style: the low
//! band of the range is kept for explicit requests, so dynamic allocation
//! takes from the upper band first and only then falls back to the low band
//! (KEP-3070 for ClusterIPs, KEP-3668 for NodePorts).

use rand::Rng;

/// A range of `size` consecutive values starting at `first`, whose lowest
/// `static_band` values are preferred for explicit requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BandedRange {
    pub first: u64,
    pub size: u64,
    pub static_band: u64,
}

impl BandedRange {
    /// Kubernetes' band size: `min(max(min_band, size / divisor), max_band)`.
    pub fn new(first: u64, size: u64, divisor: u64, min_band: u64, max_band: u64) -> Self {
        let band = (size / divisor).clamp(min_band, max_band).min(size);
        Self {
            first,
            size,
            static_band: band,
        }
    }

    pub fn contains(&self, v: u64) -> bool {
        v >= self.first && v < self.first + self.size
    }

    /// A random free value, upper band first; `None` when the range is full.
    pub fn pick(&self, is_used: impl Fn(u64) -> bool, rng: &mut impl Rng) -> Option<u64> {
        let upper = (self.first + self.static_band, self.size - self.static_band);
        let lower = (self.first, self.static_band);
        [upper, lower]
            .into_iter()
            .find_map(|(start, len)| pick_in(start, len, &is_used, rng))
    }
}

/// Starts at a random offset and probes forward, wrapping once.
fn pick_in(
    start: u64,
    len: u64,
    is_used: &impl Fn(u64) -> bool,
    rng: &mut impl Rng,
) -> Option<u64> {
    if len == 0 {
        return None;
    }
    let offset = rng.random_range(0..len);
    (0..len)
        .map(|i| start + (offset + i) % len)
        .find(|v| !is_used(*v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn prefers_upper_band_then_falls_back() {
        let r = BandedRange::new(0, 100, 10, 5, 50);
        assert_eq!(r.static_band, 10);
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let v = r.pick(|_| false, &mut rng).unwrap();
            assert!((10..100).contains(&v), "{v} outside the dynamic band");
        }
        let v = r.pick(|v| v >= 10, &mut rng).unwrap();
        assert!(v < 10);
        assert_eq!(r.pick(|_| true, &mut rng), None);
    }

    #[test]
    fn band_is_clamped() {
        assert_eq!(BandedRange::new(0, 2768, 32, 16, 128).static_band, 86);
        assert_eq!(BandedRange::new(0, 100, 32, 16, 128).static_band, 16);
        assert_eq!(BandedRange::new(0, 1 << 20, 16, 16, 256).static_band, 256);
        assert_eq!(BandedRange::new(0, 4, 16, 16, 256).static_band, 4);
    }
}
