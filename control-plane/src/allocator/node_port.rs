//! NodePorts from the configured range (default 30000-32767).

use std::ops::RangeInclusive;

use rand::Rng;

use super::range::BandedRange;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePortRange {
    ports: RangeInclusive<u16>,
    range: BandedRange,
}

impl NodePortRange {
    pub fn new(ports: RangeInclusive<u16>) -> Self {
        let size = u64::from(*ports.end()).saturating_sub(u64::from(*ports.start())) + 1;
        Self {
            range: BandedRange::new(u64::from(*ports.start()), size, 32, 16, 128),
            ports,
        }
    }

    pub fn ports(&self) -> RangeInclusive<u16> {
        self.ports.clone()
    }

    pub fn allocate(&self, is_used: impl Fn(u16) -> bool, rng: &mut impl Rng) -> Option<u16> {
        self.range.pick(|v| is_used(to_port(v)), rng).map(to_port)
    }
}

fn to_port(v: u64) -> u16 {
    // Values come from a range built out of u16 bounds.
    u16::try_from(v).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn allocates_inside_the_range_until_full() {
        let r = NodePortRange::new(30000..=30003);
        let mut rng = StdRng::seed_from_u64(9);
        let mut taken = Vec::new();
        for _ in 0..4 {
            let p = r.allocate(|p| taken.contains(&p), &mut rng).unwrap();
            assert!((30000..=30003).contains(&p));
            taken.push(p);
        }
        assert_eq!(r.allocate(|p| taken.contains(&p), &mut rng), None);
    }
}
