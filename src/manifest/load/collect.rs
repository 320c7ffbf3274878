//! Gathering one set's distinct subscribers as they are read, within the cap.

use crate::manifest::IdList;
use crate::manifest::ids::Builder;
use crate::manifest::shape::MAX_REPORTED_PER_LIST;

/// Where a listed subscriber came from, for messages. The order is the reading order, so
/// the smallest origin of an id is its first listing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Origin {
    Inline(u32),
    ListFile { index: u32, line: u32 },
}

/// One UserID gathered: where its bytes are in the collector's buffer, and where it was listed.
#[derive(Clone, Copy)]
struct Gathered {
    start: u32,
    len: u32,
    origin: Origin,
}

/// The distinct subscribers of one set, gathered as they are read.
///
/// UserIDs are appended to one buffer (no allocation per UserID) and sorted and deduplicated
/// in place whenever they reach twice the cap, so memory follows the distinct subscribers (at
/// most twice the cap) however many times a file repeats them, and no hashing is needed: the
/// final sort is one the plan needs anyway.
pub(super) struct Collector {
    text: String,
    entries: Vec<Gathered>,
    max: usize,
    pub(super) duplicates: Vec<(String, Origin)>,
    pub(super) duplicate_count: usize,
}

impl Collector {
    pub(super) fn new(max: usize) -> Collector {
        Collector {
            text: String::new(),
            entries: Vec::new(),
            max,
            duplicates: Vec::new(),
            duplicate_count: 0,
        }
    }

    /// Adds `id`; fails once the distinct subscribers are known to exceed the cap.
    pub(super) fn add(&mut self, id: &str, origin: Origin) -> Result<(), String> {
        let (Ok(start), Ok(len)) = (u32::try_from(self.text.len()), u32::try_from(id.len())) else {
            return Err(self.too_many());
        };
        if start.checked_add(len).is_none() {
            return Err(self.too_many());
        }
        self.text.push_str(id);
        self.entries.push(Gathered { start, len, origin });
        if self.entries.len() >= self.max.saturating_mul(2).max(1024) {
            self.compact();
            self.check()?;
        }
        Ok(())
    }

    fn too_many(&self) -> String {
        format!(
            "more than {} for one account; raise --max-subscribers (SUBSYNC_MAX_SUBSCRIBERS) if the account's MaxSubscriberNum allows more",
            crate::words::count(
                self.max as u64,
                "distinct subscriber",
                "distinct subscribers"
            )
        )
    }

    fn check(&self) -> Result<(), String> {
        if self.entries.len() > self.max {
            return Err(self.too_many());
        }
        Ok(())
    }

    /// Sorts and removes repeats, remembering the first few for warnings (at the repeat, not
    /// the first listing), and packs the buffer down to the distinct UserIDs.
    fn compact(&mut self) {
        let mut text = String::new();
        let mut kept: Vec<Gathered> = Vec::new();
        self.distinct(|id, e| {
            // The new buffer is never longer than the old, whose offsets fit.
            let start = u32::try_from(text.len()).unwrap_or(u32::MAX);
            text.push_str(id);
            kept.push(Gathered { start, ..e });
        });
        self.text = text;
        self.entries = kept;
    }

    /// Hands each distinct UserID to `keep` in order, and empties the collector; repeats are
    /// counted (and the first few kept for warnings) on the way.
    fn distinct(&mut self, mut keep: impl FnMut(&str, Gathered)) {
        let old = std::mem::take(&mut self.text);
        let id = |e: &Gathered| {
            old.get(e.start as usize..(e.start + e.len) as usize)
                .unwrap_or_default()
        };
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_unstable_by(|a, b| id(a).cmp(id(b)).then(a.origin.cmp(&b.origin)));
        let mut last: Option<&str> = None;
        for e in entries {
            let this = id(&e);
            if last == Some(this) {
                self.duplicate_count += 1;
                if self.duplicates.len() < MAX_REPORTED_PER_LIST {
                    self.duplicates.push((this.to_owned(), e.origin));
                }
                continue;
            }
            last = Some(this);
            keep(this, e);
        }
    }

    /// The distinct subscribers, sorted; the collector keeps its duplicate record.
    pub(super) fn take_sorted(&mut self) -> Result<IdList, String> {
        let mut list = Builder::default();
        let mut distinct = 0usize;
        self.distinct(|id, _| {
            distinct += 1;
            list.push(id);
        });
        if distinct > self.max {
            return Err(self.too_many());
        }
        Ok(list.finish())
    }
}
