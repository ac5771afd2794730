//! Which correlation ids the store may hold a counted failure for, kept by the write path
//! as a Bloom filter (issue #8).
//!
//! The correlation join (`commit::counted_copies`) looks each new failure's correlation id
//! up in `events_by_correlation`. Almost every lookup finds nothing: each Entra record has
//! its own correlation id, and a Passport line of the same attempt is the exception. Yet
//! each lookup is a seek into an index whose keys are random within each bucket of event
//! time (a day, before migration 0012 made it an hour), and a lookup probes every bucket
//! of its ±12 h window. Once the index outgrows the writer's page cache, the seeks read
//! its pages back from the WAL or the database. In a 3 M-record replay, that was about a
//! third of the wall time.
//! The filter rules those probes out in memory.
//!
//! The filter may answer "maybe" for an id the store does not hold: for 1 in 15,000 such
//! ids when it holds 100 k, 1 in 28 at 600 k, 1 in 7 when full. It never answers "no" for
//! one the store holds. It holds the correlation id of every counted failure stored in its
//! buckets, from its first bucket (`covers_from`) on: read from the index when it is
//! filled, then added by the write path as it inserts rows, before their transaction
//! commits. Nothing is removed: a row that is later uncounted or deleted only leaves a
//! "maybe" behind.
//!
//! The filter is forgotten whenever the store may have changed behind it, as the
//! detectors' copy is (`recent`):
//! - another connection committed (the writer connection's `data_version` changed);
//! - the writer's connection is a new one;
//! - a write transaction ended without committing: a fill inside it read its rows, and
//!   a row it uncounted (a superseded Passport line) is counted again after the rollback
//!   but may be missing from the filter;
//! - it holds more than [`MAX_ENTRIES`] ids. It is filled again when a batch needs it, but
//!   not from a bucket a fill was refused from (over capacity), an earlier one, or one
//!   less than a day of event time later.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use super::cache::WriteCache;

/// Bits of the filter (512 KiB), a power of two.
const BITS: usize = 1 << 22;
/// Bits set per id.
const HASHES: u64 = 4;
/// Most ids held before the filter is forgotten. At this load about 14 % of the probes
/// for ids it does not hold still go to the index.
pub(crate) const MAX_ENTRIES: usize = 1_000_000;
/// How many buckets after one a fill was refused from (a day of event time) the next fill
/// may start. A fill from the next hour's bucket would read nearly the same ids again
/// (over a million, about 0.6 s) and be refused again, every hour of event time.
const REFILL_AFTER_REFUSAL: i64 = 86_400_000 / super::commit::CORRELATION_BUCKET_MS;
/// Fewest probes in one batch for which an empty filter is filled. Live tailing commits
/// small batches, whose few lookups cost less than a fill read back from a large store.
pub(crate) const MIN_PROBES_TO_FILL: usize = 32;

/// The bits and the hasher that sets them.
#[derive(Default)]
pub(crate) struct Bloom {
    hasher: RandomState,
    bits: Vec<u64>,
    entries: usize,
}

impl Bloom {
    /// An empty filter of [`BITS`] bits.
    pub(crate) fn new() -> Self {
        Bloom { hasher: RandomState::new(), bits: vec![0; BITS / 64], entries: 0 }
    }

    /// Sets the bits of `id`.
    pub(crate) fn insert(&mut self, id: &str) {
        for p in positions(self.hasher.hash_one(id)) {
            if let Some(word) = self.bits.get_mut(p / 64) {
                *word |= 1 << (p % 64);
            }
        }
        self.entries += 1;
    }

    /// False only when `id` was never inserted.
    fn may_contain(&self, id: &str) -> bool {
        positions(self.hasher.hash_one(id))
            .all(|p| self.bits.get(p / 64).map_or(true, |word| word & (1 << (p % 64)) != 0))
    }

    /// Ids inserted.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }
}

/// Its size, not its 65,536 words: the store's handles print as `Debug`.
impl std::fmt::Debug for Bloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bloom").field("entries", &self.entries).field("bits", &(self.bits.len() * 64)).finish()
    }
}

/// The bit positions of an id's hash (double hashing: an odd step visits distinct
/// positions modulo a power of two).
fn positions(hash: u64) -> impl Iterator<Item = usize> {
    let step = hash.rotate_left(32) | 1;
    (0..HASHES).map(move |i| (hash.wrapping_add(i.wrapping_mul(step)) as usize) & (BITS - 1))
}

/// The filter and when it may answer.
#[derive(Debug, Default)]
pub(crate) struct SeenCorrelations {
    /// The first correlation bucket (`occurred_at / CORRELATION_BUCKET_MS`) from which
    /// every counted failure's correlation id is in `bloom`; `None`: it answers for nothing.
    covers_from: Option<i64>,
    bloom: Bloom,
    /// The writer connection's number and `data_version` it was last checked under.
    checked_under: Option<(i64, i64)>,
    /// The latest bucket a fill was refused from (it read more than [`MAX_ENTRIES`] ids): a
    /// fill from it or an earlier bucket would read at least those ids again.
    refused_from: Option<i64>,
}

impl WriteCache for SeenCorrelations {
    /// Drops every id, and the bits' memory.
    fn forget(&mut self) {
        self.covers_from = None;
        self.bloom = Bloom::default();
    }

    fn checked_under(&mut self) -> &mut Option<(i64, i64)> {
        &mut self.checked_under
    }
}

impl SeenCorrelations {
    /// True when the filter holds every counted failure's id from `bucket` on.
    pub(crate) fn covers(&self, bucket: i64) -> bool {
        matches!(self.covers_from, Some(from) if from <= bucket)
    }

    /// Whether a lookup of `id` whose buckets start at `first_bucket` may find a row:
    /// true unless the filter covers those buckets and never took `id` in.
    pub(crate) fn may_hold(&self, id: &str, first_bucket: i64) -> bool {
        !self.covers(first_bucket) || self.bloom.may_contain(id)
    }

    /// Takes in the id of a row being written. Past [`MAX_ENTRIES`] the filter is
    /// forgotten (a later fill starts from a later bucket).
    pub(crate) fn add(&mut self, id: &str) {
        if self.covers_from.is_none() {
            return;
        }
        self.bloom.insert(id);
        if self.bloom.entries() > MAX_ENTRIES {
            self.forget();
        }
    }

    /// Whether a fill from bucket `from` may hold all it reads: not when one from that
    /// bucket or a later one was refused (the store only grows, but for retention), nor
    /// when one was refused less than [`REFILL_AFTER_REFUSAL`] buckets before.
    pub(crate) fn may_fill(&self, from: i64) -> bool {
        self.refused_from.map_or(true, |refused| refused.saturating_add(REFILL_AFTER_REFUSAL) <= from)
    }

    /// Installs a filter read from the store: every counted failure's id from bucket
    /// `from` on. One holding more than [`MAX_ENTRIES`] is refused, and so are later fills
    /// from that bucket or an earlier one.
    pub(crate) fn fill(&mut self, from: i64, bloom: Bloom) {
        if bloom.entries() > MAX_ENTRIES {
            self.forget();
            self.refused_from = Some(from);
            return;
        }
        self.covers_from = Some(from);
        self.bloom = bloom;
    }

    /// Ids held; 0 when the filter answers for nothing.
    pub(crate) fn entries(&self) -> usize {
        if self.covers_from.is_some() {
            self.bloom.entries()
        } else {
            0
        }
    }
}

/// The filter as the store shares it between its handles.
pub(crate) type SharedCorrelations = Arc<Mutex<SeenCorrelations>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter answers only for the buckets it covers, never rules out an id it took
    /// in, rules out nearly every other id, and gives up past its capacity.
    #[test]
    fn the_filter_rules_out_only_ids_it_never_took_in() {
        let mut filter = SeenCorrelations::default();
        filter.add("a");
        assert!(filter.may_hold("zz", 5) && filter.entries() == 0, "empty until filled");
        let mut bloom = Bloom::new();
        bloom.insert("a");
        filter.fill(5, bloom);
        filter.add("b");
        assert!(filter.may_hold("a", 5) && filter.may_hold("b", 9));
        assert!(filter.may_hold("c", 4), "bucket 4 is not covered");
        let ids: Vec<String> = (0..100_000).map(|i| format!("{i:08x}-0000-4000-8000-000000000000")).collect();
        for id in &ids {
            filter.add(id);
        }
        assert!(ids.iter().all(|id| filter.may_hold(id, 5)), "no id taken in is ruled out");
        let others = (0..100_000).filter(|i| filter.may_hold(&format!("{i:08x}-1111-4000-8000-000000000000"), 5));
        assert!(others.count() < 100, "at 100 k ids, fewer than 1 in 10,000 others is a maybe");
        filter.check(1, 1);
        assert!(filter.may_hold("zz", 5) && filter.entries() == 0, "checked under a new version: forgotten");
    }

    /// A fill over capacity is refused; so is a later one from that bucket or an earlier
    /// one (it would read the same ids again), or from a bucket less than a day later, not
    /// one from a day later.
    #[test]
    fn a_fill_over_capacity_is_refused_with_every_fill_that_would_read_it_again() {
        let mut filter = SeenCorrelations::default();
        let mut bloom = Bloom::new();
        for i in 0..=MAX_ENTRIES {
            bloom.insert(&i.to_string());
        }
        filter.fill(0, bloom);
        assert_eq!(filter.entries(), 0);
        assert!(!filter.may_fill(0) && !filter.may_fill(-1));
        assert!(!filter.may_fill(REFILL_AFTER_REFUSAL - 1) && filter.may_fill(REFILL_AFTER_REFUSAL));
        assert_eq!(REFILL_AFTER_REFUSAL, 24, "a day of hour buckets");
        filter.fill(1, Bloom::new());
        for i in 0..=MAX_ENTRIES {
            filter.add(&i.to_string());
        }
        assert!(filter.may_hold("anything", 1) && filter.entries() == 0, "past capacity: forgotten");
    }
}
