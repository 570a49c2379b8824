//! A tiny deterministic random number generator (splitmix64) for the seeded datasets.
//!
//! The datasets must be identical for the same seed on every machine and every version of the
//! dependencies, so the generator is written out here rather than taken from a crate whose
//! output may change between releases.

/// splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, good enough statistics for test data.
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator for one dataset: `salt` keeps the datasets independent, so that changing the
    /// number of Yida records does not change the Jushuitan shops.
    pub(crate) fn new(seed: u64, salt: u64) -> Self {
        SplitMix64 {
            state: seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0; the modulo bias is irrelevant for test data).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with the given probability in percent.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // `below` never reaches `len`, so the index is always in bounds for a non-empty slice;
        // callers only pass constant, non-empty tables.
        let index = self.below(items.len() as u64) as usize;
        &items[index.min(items.len().saturating_sub(1))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // Reference output of splitmix64 seeded with 0 (Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(0, 0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }
}
