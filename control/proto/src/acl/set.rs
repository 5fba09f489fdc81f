//! A set of global signal indices (positions in a [`crate::catalog::Catalog`]'s registry), as a
//! bitset: access evaluation intersects and tests membership once per signal, and a catalog of
//! 100 000 signals costs 12.5 KB per set.

/// A set of global signal indices below a fixed capacity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignalSet {
    words: Vec<u64>,
    capacity: u32,
}

impl SignalSet {
    /// An empty set for indices `0..capacity`.
    pub fn empty(capacity: u32) -> Self {
        Self {
            words: vec![0; (capacity as usize).div_ceil(64)],
            capacity,
        }
    }

    /// Every index `0..capacity`.
    pub fn full(capacity: u32) -> Self {
        let mut s = Self::empty(capacity);
        for i in 0..capacity {
            s.insert(i);
        }
        s
    }

    /// Indices this set can hold.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Adds `index`; indices at or above the capacity are ignored (they name no signal).
    pub fn insert(&mut self, index: u32) {
        if index < self.capacity {
            if let Some(w) = self.words.get_mut(index as usize / 64) {
                *w |= 1 << (index % 64);
            }
        }
    }

    /// True when `index` is in the set.
    pub fn contains(&self, index: u32) -> bool {
        self.words
            .get(index as usize / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    /// Number of indices in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// True when the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// The indices in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.capacity).filter(|i| self.contains(*i))
    }

    /// Keeps only indices also in `other`.
    pub fn intersect_with(&mut self, other: &SignalSet) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }
}

impl FromIterator<u32> for SignalSet {
    /// A set sized to the largest index given.
    fn from_iter<T: IntoIterator<Item = u32>>(iter: T) -> Self {
        let items: Vec<u32> = iter.into_iter().collect();
        let capacity = items.iter().max().map_or(0, |m| m.saturating_add(1));
        let mut s = Self::empty(capacity);
        for i in items {
            s.insert(i);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_counts_and_intersection() {
        let mut a = SignalSet::empty(130);
        for i in [0, 63, 64, 129, 130, 500] {
            a.insert(i);
        }
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 63, 64, 129]);
        assert_eq!(a.len(), 4);
        assert!(!a.contains(130));
        let b: SignalSet = [63, 129, 7].into_iter().collect();
        a.intersect_with(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![63, 129]);
        assert!(SignalSet::empty(0).is_empty());
        assert_eq!(SignalSet::full(70).len(), 70);
    }
}
