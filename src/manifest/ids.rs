//! A set of UserIDs held compactly: one buffer of their bytes and one offset each, sorted and
//! without repeats.
//!
//! Desired subscribers are what subsync keeps in memory longest (the set in force, for every
//! reconcile), so they are kept at about 20 bytes each (a 15-byte UserID and a 4-byte offset)
//! instead of the 50 or more of a `Vec<String>`, and built without one allocation per UserID.

use std::fmt;

/// Sorted, distinct UserIDs (byte order, as the ledger sorts them).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IdList {
    text: String,
    /// Where each UserID ends in `text`; the first starts at 0, each next where the last ended.
    ends: Vec<u32>,
}

impl IdList {
    /// The list of `ids`, which must already be sorted and distinct.
    pub fn from_sorted<S: AsRef<str>>(ids: impl IntoIterator<Item = S>) -> IdList {
        let mut list = IdList::default();
        for id in ids {
            list.push_sorted(id.as_ref());
        }
        list
    }

    /// The list whose UserIDs are `text` cut at `ends`, already sorted and distinct.
    pub(super) fn from_packed(text: String, ends: Vec<u32>) -> IdList {
        let list = IdList { text, ends };
        debug_assert!(list.iter().zip(list.iter().skip(1)).all(|(a, b)| a < b));
        list
    }

    /// Appends `id`, which sorts after every UserID already in the list.
    pub(super) fn push_sorted(&mut self, id: &str) {
        debug_assert!(self.last().is_none_or(|last| last < id), "unsorted {id:?}");
        self.text.push_str(id);
        // A list is bounded far below 4 GiB (see `Limits`), so an offset fits in 32 bits.
        self.ends
            .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th UserID in order.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)? as usize;
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize,
        };
        self.text.get(start..end)
    }

    fn last(&self) -> Option<&str> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }

    /// Whether `id` is in the list (a binary search).
    pub fn contains(&self, id: &str) -> bool {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = (low + high) / 2;
            match self.get(mid).unwrap_or_default().cmp(id) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }

    /// Bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * 4
    }
}

/// For tests and small lists: sorts and removes repeats.
impl<S: AsRef<str>> FromIterator<S> for IdList {
    fn from_iter<I: IntoIterator<Item = S>>(ids: I) -> IdList {
        let mut all: Vec<String> = ids.into_iter().map(|s| s.as_ref().to_owned()).collect();
        all.sort_unstable();
        all.dedup();
        IdList::from_sorted(all)
    }
}

impl fmt::Debug for IdList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for IdList {
    fn eq(&self, other: &[S; N]) -> bool {
        self.len() == N && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl PartialEq<Vec<String>> for IdList {
    fn eq(&self, other: &Vec<String>) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_reads_back_in_order_and_finds_its_members() {
        let list: IdList = ["b", "a", "c", "a"].into_iter().collect();
        assert_eq!(list, ["a", "b", "c"]);
        assert_eq!(list.get(1), Some("b"));
        assert_eq!(list.get(3), None);
        assert!(list.contains("c") && !list.contains("d") && !list.contains(""));
        assert!(IdList::default().iter().next().is_none());
    }

    #[test]
    fn a_list_costs_its_bytes_and_an_offset_each() {
        let list = IdList::from_sorted((0..1000).map(|i| format!("user-{i:010}")));
        assert!(list.heap_bytes() < 1000 * 24, "{}", list.heap_bytes());
    }
}
