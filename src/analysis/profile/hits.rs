//! Samples per byte offset of one function, kept sparse.
//!
//! - Only sampled offsets are stored, as `(offset, count)` pairs in offset
//!   order: a function of 23 MB with three sampled instructions costs three
//!   pairs, not 23 M counters, and a function no sample hit costs nothing.
//! - Lookups are binary searches; the walks that credit samples to
//!   instructions ([`crate::disasm::instruction_hits`]) merge the pairs with
//!   the instructions in one pass.

/// Samples at each sampled byte offset of a function, in offset order
/// (offsets distinct, counts never 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hits(Vec<(u32, u64)>);

impl Hits {
    /// No samples.
    pub fn new() -> Hits {
        Hits(Vec::new())
    }

    /// From `(offset, count)` pairs in any order: equal offsets are summed,
    /// zero counts dropped.
    pub fn from_pairs(mut pairs: Vec<(u32, u64)>) -> Hits {
        pairs.sort_unstable_by_key(|p| p.0);
        pairs.dedup_by(|b, a| {
            let same = a.0 == b.0;
            if same {
                a.1 += b.1;
            }
            same
        });
        pairs.retain(|p| p.1 > 0);
        pairs.shrink_to_fit();
        Hits(pairs)
    }

    /// From a counter per byte offset (tests, small hand-made profiles).
    pub fn from_dense(counts: &[u64]) -> Hits {
        Hits(
            counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(o, c)| (o as u32, *c))
                .collect(),
        )
    }

    /// A counter per byte offset of code `len` bytes long (tests, and
    /// comparisons with hand-written tables).
    pub fn dense(&self, len: usize) -> Vec<u64> {
        let mut v = vec![0; len];
        for &(o, n) in &self.0 {
            if let Some(c) = v.get_mut(o as usize) {
                *c += n;
            }
        }
        v
    }

    /// Samples at `offset`.
    pub fn get(&self, offset: u32) -> u64 {
        self.0
            .binary_search_by_key(&offset, |p| p.0)
            .map_or(0, |i| self.0[i].1)
    }

    /// The sampled offsets in `[start, end)`, in offset order.
    pub fn range(&self, start: u32, end: u32) -> &[(u32, u64)] {
        let from = self.0.partition_point(|p| p.0 < start);
        let to = self.0.partition_point(|p| p.0 < end);
        &self.0[from..to.max(from)]
    }

    /// Every sampled offset with its count, in offset order.
    pub fn as_slice(&self) -> &[(u32, u64)] {
        &self.0
    }

    /// Every sampled offset with its count, in offset order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.0.iter().copied()
    }

    /// Sampled offsets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no offset was sampled.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All samples.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|p| p.1).sum()
    }

    /// Adds `other`'s samples offset by offset (the same code in two
    /// generations, or in two profiles).
    pub fn add(&mut self, other: &Hits) {
        if other.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.0);
        all.extend_from_slice(&other.0);
        *self = Hits::from_pairs(all);
    }

    /// The offset with the most samples (ties: the lowest offset).
    pub fn hottest(&self) -> Option<(u32, u64)> {
        self.0
            .iter()
            .copied()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_sorted_summed_and_zeroes_dropped() {
        let h = Hits::from_pairs(vec![(9, 1), (2, 3), (9, 4), (5, 0)]);
        assert_eq!(h.as_slice(), &[(2, 3), (9, 5)]);
        assert_eq!(h.get(9), 5);
        assert_eq!(h.get(5), 0);
        assert_eq!(h.range(3, 10), &[(9, 5)]);
        assert_eq!(h.range(3, 9), &[]);
        assert_eq!(h.total(), 8);
        assert_eq!(h.hottest(), Some((9, 5)));
    }

    #[test]
    fn dense_and_add() {
        let mut h = Hits::from_dense(&[0, 2, 0, 1]);
        assert_eq!(h.as_slice(), &[(1, 2), (3, 1)]);
        h.add(&Hits::from_pairs(vec![(3, 1), (0, 7)]));
        assert_eq!(h.as_slice(), &[(0, 7), (1, 2), (3, 2)]);
        assert_eq!(Hits::from_dense(&[4, 4]).hottest(), Some((0, 4)));
    }
}
