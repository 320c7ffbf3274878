//! A set of UserIDs held compactly: sorted, without repeats, each stored as what it does not
//! share with the one before it (front coding), and shared rather than copied.
//!
//! Desired subscribers are what subsync keeps in memory longest (the set in force, for every
//! reconcile, and every account's set at once while a plan's header is written). Sorted UserIDs
//! share most of their bytes with their neighbours (`user-001-0000041`, `user-001-0000042`),
//! so each is kept as the length of the prefix it shares with the one before, its length, and
//! the rest: about 4 bytes a subscriber where the whole text and an offset took 20. Every
//! [`BLOCK`]th UserID is stored whole and its place is kept, so that a lookup is a binary search
//! over those followed by at most [`BLOCK`] steps.
//!
//! A list is immutable once built and its clones share one buffer: a daemon that re-reads one
//! manifest keeps the other accounts' lists as they are instead of holding them twice.
//!
//! Invariants: UserIDs are in strictly increasing byte order; a shared prefix never splits a
//! character, so every suffix is UTF-8 on its own.

use std::fmt;
use std::sync::Arc;

/// UserIDs per block: one in [`BLOCK`] is stored whole.
const BLOCK: usize = 16;

/// Sorted, distinct UserIDs (byte order, as the ledger sorts them).
#[derive(Clone, Default)]
pub(crate) struct IdList(Arc<Encoded>);

#[derive(Default, PartialEq, Eq)]
struct Encoded {
    /// What each UserID does not share with the one before it, one after the other (the
    /// first of a block whole).
    text: String,
    /// For each UserID, as varints: the length it shares with the one before (not for the
    /// first of a block), then the length of what follows in `text`.
    lengths: Vec<u8>,
    /// Where each block starts: in `text`, and in `lengths`.
    blocks: Vec<(u32, u32)>,
    len: usize,
}

/// Builds an [`IdList`] from UserIDs given in order.
#[derive(Default)]
pub(crate) struct Builder {
    encoded: Encoded,
    last: String,
}

impl Builder {
    /// Appends `id`, which sorts after every UserID already appended.
    pub(crate) fn push(&mut self, id: &str) {
        debug_assert!(
            self.encoded.len == 0 || self.last.as_str() < id,
            "unsorted {id:?}"
        );
        let e = &mut self.encoded;
        let shared = if e.len.is_multiple_of(BLOCK) {
            // A list is bounded far below 4 GiB (see `Limits`), so offsets fit in 32 bits.
            let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            e.blocks.push((at(e.text.len()), at(e.lengths.len())));
            0
        } else {
            let mut shared = common_prefix(self.last.as_bytes(), id.as_bytes());
            while !id.is_char_boundary(shared) {
                shared -= 1;
            }
            put_varint(&mut e.lengths, shared);
            shared
        };
        let rest = &id[shared..];
        put_varint(&mut e.lengths, rest.len());
        e.text.push_str(rest);
        e.len += 1;
        self.last.truncate(shared);
        self.last.push_str(rest);
    }

    pub(crate) fn finish(mut self) -> IdList {
        self.encoded.text.shrink_to_fit();
        self.encoded.lengths.shrink_to_fit();
        self.encoded.blocks.shrink_to_fit();
        IdList(Arc::new(self.encoded))
    }
}

/// How many bytes `a` and `b` start with alike, compared eight at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while let (Some(x), Some(y)) = (a.get(i..i + 8), b.get(i..i + 8)) {
        let word = |s: &[u8]| s.try_into().map_or(0, u64::from_le_bytes);
        let differ = word(x) ^ word(y);
        if differ != 0 {
            return i + (differ.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

fn put_varint(bytes: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        bytes.push((n as u8) | 0x80);
        n >>= 7;
    }
    bytes.push(n as u8);
}

/// Reads a varint at `*at`, moving past it; 0 past the end (never, for a list's own bytes).
fn get_varint(bytes: &[u8], at: &mut usize) -> usize {
    if let Some(&b) = bytes.get(*at).filter(|b| **b < 0x80) {
        *at += 1;
        return usize::from(b);
    }
    let mut n = 0usize;
    let mut shift = 0;
    while let Some(&b) = bytes.get(*at) {
        *at += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    n
}

impl IdList {
    /// The list of `ids`, which must already be sorted and distinct.
    pub(crate) fn from_sorted<S: AsRef<str>>(ids: impl IntoIterator<Item = S>) -> IdList {
        let mut builder = Builder::default();
        for id in ids {
            builder.push(id.as_ref());
        }
        builder.finish()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Reads the UserIDs in order, from the first.
    pub(crate) fn cursor(&self) -> Cursor<'_> {
        self.cursor_at_block(0)
    }

    fn cursor_at_block(&self, block: usize) -> Cursor<'_> {
        let (text, lengths) = self.0.blocks.get(block).copied().unwrap_or((0, 0));
        let mut cursor = Cursor {
            list: &self.0,
            text: text as usize,
            lengths: lengths as usize,
            index: block * BLOCK,
            current: String::new(),
        };
        cursor.load();
        cursor
    }

    /// Calls `f` with each UserID in order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&str)) {
        let mut cursor = self.cursor();
        while let Some(id) = cursor.peek() {
            f(id);
            cursor.advance();
        }
    }

    /// The UserIDs in order, each as its own `String` (for small lists and tests; see
    /// [`IdList::cursor`] for large ones).
    pub(crate) fn iter(&self) -> impl Iterator<Item = String> + '_ {
        let mut cursor = self.cursor();
        std::iter::from_fn(move || {
            let id = cursor.peek()?.to_owned();
            cursor.advance();
            Some(id)
        })
    }

    /// Whether `id` is in the list: a binary search over the blocks' first UserIDs, then a
    /// walk through one block.
    pub(crate) fn contains(&self, id: &str) -> bool {
        // The last block whose first UserID is at most `id`.
        let (mut low, mut high) = (0, self.0.blocks.len());
        while low < high {
            let mid = (low + high) / 2;
            if self.first_of(mid) <= id {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let Some(block) = low.checked_sub(1) else {
            return false;
        };
        let mut cursor = self.cursor_at_block(block);
        for _ in 0..BLOCK {
            match cursor.peek().map(|c| c.cmp(id)) {
                Some(std::cmp::Ordering::Less) => cursor.advance(),
                Some(std::cmp::Ordering::Equal) => return true,
                _ => return false,
            }
        }
        false
    }

    /// The first UserID of `block`, stored whole.
    fn first_of(&self, block: usize) -> &str {
        let (text, lengths) = self.0.blocks[block];
        let len = get_varint(&self.0.lengths, &mut (lengths as usize));
        let start = text as usize;
        self.0.text.get(start..start + len).unwrap_or_default()
    }

    /// True when `other` is a clone of this list (the same buffer, not merely equal): for
    /// the tests of sharing.
    #[cfg(test)]
    pub(crate) fn shares_buffer_with(&self, other: &IdList) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<String> {
        self.iter().collect()
    }

    /// Bytes held, for its tests' memory accounting.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        let e = &self.0;
        e.text.capacity() + e.lengths.capacity() + e.blocks.capacity() * 8
    }
}

/// A position in an [`IdList`]: the UserID there, decoded, and the way to the next.
pub(crate) struct Cursor<'l> {
    list: &'l Encoded,
    /// Where the next UserID's rest starts in `text`, and its lengths in `lengths`.
    text: usize,
    lengths: usize,
    /// The index of `current` in the list.
    index: usize,
    current: String,
}

impl Cursor<'_> {
    /// The UserID at the cursor, `None` past the last.
    pub(crate) fn peek(&self) -> Option<&str> {
        (self.index < self.list.len).then_some(self.current.as_str())
    }

    /// Moves to the next UserID.
    pub(crate) fn advance(&mut self) {
        if self.index < self.list.len {
            self.index += 1;
            self.load();
        }
    }

    /// Decodes the UserID at `index` into `current`.
    fn load(&mut self) {
        if self.index >= self.list.len {
            return;
        }
        let lengths = &self.list.lengths;
        let shared = if self.index.is_multiple_of(BLOCK) {
            0
        } else {
            get_varint(lengths, &mut self.lengths)
        };
        let len = get_varint(lengths, &mut self.lengths);
        // Each rest starts and ends at a character boundary (see `Builder::push`).
        let rest = self
            .list
            .text
            .get(self.text..self.text + len)
            .unwrap_or_default();
        self.text += len;
        self.current.truncate(shared);
        self.current.push_str(rest);
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

impl PartialEq for IdList {
    fn eq(&self, other: &IdList) -> bool {
        // The encoding of a list is a function of its UserIDs.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for IdList {}

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
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| &a == b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_list_reads_back_in_order_and_finds_its_members() {
        let list: IdList = ["b", "a", "c", "a"].into_iter().collect();
        assert_eq!(list, ["a", "b", "c"]);
        assert!(list.contains("c") && !list.contains("d") && !list.contains(""));
        assert!(IdList::default().iter().next().is_none());
        assert!(!IdList::default().contains("a"));
    }

    #[test]
    fn a_list_costs_a_few_bytes_a_subscriber_when_neighbours_share_a_prefix() {
        let list = IdList::from_sorted((0..100_000).map(|i| format!("user-001-{i:07}")));
        assert!(list.heap_bytes() < 100_000 * 5, "{}", list.heap_bytes());
        // Unrelated UserIDs cost their bytes and two or three more.
        let list: IdList = (0..1000u64)
            .map(|i| format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        assert!(list.heap_bytes() < 1000 * 19, "{}", list.heap_bytes());
    }

    #[test]
    fn clones_share_their_buffer() {
        let list = IdList::from_sorted(["a", "b"]);
        let copy = list.clone();
        assert!(list.shares_buffer_with(&copy));
        assert_eq!(list, copy);
    }

    proptest! {
        /// Whatever the UserIDs (any text, shared prefixes ending inside a character), the
        /// list reads back exactly and finds exactly its members.
        #[test]
        fn a_list_reads_back_what_it_was_built_from(
            ids in proptest::collection::btree_set("[ab\u{e9}\u{1f600}]{0,6}", 0..200),
            probes in proptest::collection::vec("[ab\u{e9}\u{1f600}]{0,6}", 0..50),
        ) {
            let ids: Vec<String> = ids.into_iter().collect();
            let list = IdList::from_sorted(&ids);
            prop_assert_eq!(list.len(), ids.len());
            prop_assert_eq!(list.to_vec(), ids.clone());
            let mut seen = Vec::new();
            list.for_each(|id| seen.push(id.to_owned()));
            prop_assert_eq!(&seen, &ids);
            for probe in probes.iter().chain(&ids) {
                prop_assert_eq!(list.contains(probe), ids.binary_search(probe).is_ok(), "{}", probe);
            }
        }
    }
}
