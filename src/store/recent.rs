//! The detectors' recent past, kept in memory by the write path (issue #8).
//!
//! The spray, brute-force and lockout detectors slide a window over the credential
//! failures (AADSTS50126 and 50053) of every key a batch touches. Reading those windows
//! back from the store was a sixth of the commit path's time (a JSON read per detector
//! per batch on SQLite's thread, and its decoding on the writer's). In a replay or a live
//! feed the windows a batch needs are almost always the last few minutes of event time,
//! which this writer itself stored, so it keeps them: every credential failure later
//! than a moving bound, exactly as the store holds them.
//!
//! The copy must never differ from the store, or detections would depend on what the
//! process happened to remember. It is dropped whole when it could:
//! - another connection committed to the store (a second process, retention, the API):
//!   SQLite's `data_version` of the writer's connection changed;
//! - the writer's connection was replaced (the pool recycles it): each connection
//!   carries its own number in a temporary table;
//! - a transaction that added rows did not commit ([`RollbackGuard`]);
//! - it would hold more than [`MAX_ENTRIES`] rows (a burst): the windows are read from the
//!   store as before.
//!
//! A batch whose windows reach back before the copy's bound (data older than the feed
//! it follows, as an hourly Entra blob behind a live Passport log) reads them from the
//! store, also as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::cache::{lock, WriteCache};
use super::correlations::SharedCorrelations;

/// One failure as a window reads it. Read from the store as a JSON array
/// `[time, user key, counted]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
pub(crate) struct WindowRow {
    /// Event time (Unix ms).
    pub at: i64,
    /// Keyed hash of the user.
    pub user: Option<String>,
    /// Counted for its sign-in attempt: a window's failures are its counted rows, its
    /// users those of every copy.
    pub counted: bool,
}

/// Most rows the copy holds, over its three lists, before it gives up (each about 150
/// bytes: a few MB at most, against the 64 MB peak-RSS budget).
pub(crate) const MAX_ENTRIES: usize = 30_000;

/// A stored credential failure, as the copy takes it in.
pub(crate) struct CredentialFailure<'a> {
    /// Event time (Unix ms).
    pub at: i64,
    /// Keyed hash of the IP address.
    pub ip_key: Option<&'a str>,
    /// Keyed hash of the user.
    pub user_key: Option<&'a str>,
    /// Counted for its sign-in attempt (not a correlated copy): brute force reads only these.
    pub counted: bool,
    /// AADSTS50053 (the lockout wave reads only these).
    pub lockout: bool,
}

/// Every stored credential failure later than `covers_after`, by IP key, by user key
/// (counted rows only) and the lockouts, each in time order: the rows the detector
/// windows would read from `events_by_ip_key`, `events_by_user_key` and
/// `events_lockouts`.
#[derive(Debug, Default)]
pub(crate) struct RecentFailures {
    /// `None`: the copy holds nothing it may answer for.
    covers_after: Option<i64>,
    by_ip: HashMap<String, Vec<WindowRow>>,
    by_user: HashMap<String, Vec<WindowRow>>,
    lockouts: Vec<WindowRow>,
    /// Rows held, over the three lists (a row can be in each).
    entries: usize,
    /// The writer connection's number and `data_version` the copy was last checked under.
    checked_under: Option<(i64, i64)>,
    /// Batches to go before another fill is tried, after one found too many rows (a
    /// burst): each try reads up to `MAX_FILL_ROWS` rows only to drop them.
    fill_pause: u32,
}

/// Most rows a fill reads: each row makes up to three entries.
pub(crate) const MAX_FILL_ROWS: usize = MAX_ENTRIES / 3;
/// Batches to wait after a refused fill.
const FILL_PAUSE_BATCHES: u32 = 64;

fn insert_sorted(rows: &mut Vec<WindowRow>, row: WindowRow) {
    // Rows nearly always arrive in time order: the search ends at the back.
    let at = rows.partition_point(|r| r.at <= row.at);
    rows.insert(at, row);
}

impl WriteCache for RecentFailures {
    /// Drops every row; keeps when it was checked and any pause before the next fill.
    fn forget(&mut self) {
        let (checked_under, fill_pause) = (self.checked_under, self.fill_pause);
        *self = RecentFailures { checked_under, fill_pause, ..RecentFailures::default() };
    }

    fn checked_under(&mut self) -> &mut Option<(i64, i64)> {
        &mut self.checked_under
    }
}

impl RecentFailures {
    /// Whether a fill may be tried now (counting this batch against a pause).
    pub(crate) fn may_fill(&mut self) -> bool {
        if self.fill_pause > 0 {
            self.fill_pause -= 1;
            return false;
        }
        true
    }

    /// A fill found more rows than the copy may hold: wait a while before the next.
    pub(crate) fn fill_refused(&mut self) {
        self.forget();
        self.fill_pause = FILL_PAUSE_BATCHES;
    }

    /// True when every stored credential failure later than `from` is here.
    pub(crate) fn covers(&self, from: i64) -> bool {
        matches!(self.covers_after, Some(bound) if bound <= from)
    }

    /// Takes in a row just written. Rows at or before the bound are not kept (the copy
    /// does not answer for that time).
    pub(crate) fn add(&mut self, row: &CredentialFailure<'_>) {
        let Some(bound) = self.covers_after else {
            return;
        };
        if row.at <= bound {
            return;
        }
        if self.entries >= MAX_ENTRIES {
            self.forget();
            return;
        }
        let user = row.user_key.map(str::to_string);
        let window_row = WindowRow { at: row.at, user, counted: row.counted };
        if let Some(ip) = row.ip_key {
            insert_sorted(self.by_ip.entry(ip.to_string()).or_default(), window_row.clone());
            self.entries += 1;
        }
        if let (Some(key), true) = (row.user_key, row.counted) {
            insert_sorted(self.by_user.entry(key.to_string()).or_default(), window_row.clone());
            self.entries += 1;
        }
        if row.lockout {
            insert_sorted(&mut self.lockouts, window_row);
            self.entries += 1;
        }
    }

    /// A counted failure taken in before is no longer counted (an Entra record superseded
    /// its Passport line): it leaves its user's counted failures, and stays in its IP's
    /// and the lockouts' windows as a copy (its user still counts there, its failure no
    /// longer does).
    pub(crate) fn uncount(&mut self, row: &CredentialFailure<'_>) {
        let Some(bound) = self.covers_after else {
            return;
        };
        if row.at <= bound {
            return;
        }
        let is_the_row = |r: &WindowRow| r.at == row.at && r.counted && r.user.as_deref() == row.user_key;
        if let Some(user_key) = row.user_key {
            if let Some(rows) = self.by_user.get_mut(user_key) {
                if let Some(i) = rows.iter().position(is_the_row) {
                    rows.remove(i);
                    self.entries = self.entries.saturating_sub(1);
                }
                if rows.is_empty() {
                    self.by_user.remove(user_key);
                }
            }
        }
        // Rows equal but for the flag are interchangeable: whichever of them is marked,
        // the window holds the same rows as the store.
        let by_ip = row.ip_key.and_then(|ip| self.by_ip.get_mut(ip));
        let lockouts = row.lockout.then_some(&mut self.lockouts);
        for rows in by_ip.into_iter().chain(lockouts) {
            if let Some(r) = rows.iter_mut().find(|r| is_the_row(r)) {
                r.counted = false;
            }
        }
    }

    /// Replaces the contents with `rows`, every stored credential failure later than
    /// `after` (read from the store in this transaction).
    pub(crate) fn fill<'a>(&mut self, after: i64, rows: impl IntoIterator<Item = CredentialFailure<'a>>) {
        self.forget();
        self.covers_after = Some(after);
        for row in rows {
            self.add(&row);
            if self.covers_after.is_none() {
                return;
            }
        }
    }

    /// Forgets the rows at or before `bound` (they have left every window the next
    /// batches can end): the copy then answers for later times only.
    pub(crate) fn trim(&mut self, bound: i64) {
        let Some(current) = self.covers_after else {
            return;
        };
        if bound <= current {
            return;
        }
        let drop_through = |rows: &mut Vec<WindowRow>| {
            let cut = rows.partition_point(|r| r.at <= bound);
            rows.drain(..cut);
        };
        for map in [&mut self.by_ip, &mut self.by_user] {
            map.retain(|_, rows| {
                drop_through(rows);
                !rows.is_empty()
            });
        }
        drop_through(&mut self.lockouts);
        self.entries =
            self.by_ip.values().chain(self.by_user.values()).map(Vec::len).sum::<usize>() + self.lockouts.len();
        self.covers_after = Some(bound);
    }

    /// Rows held over the three lists; 0 when the copy answers for nothing.
    pub(crate) fn entries(&self) -> usize {
        if self.covers_after.is_some() {
            self.entries
        } else {
            0
        }
    }

    /// Per IP key, its failures in time order.
    pub(crate) fn by_ip(&self) -> &HashMap<String, Vec<WindowRow>> {
        &self.by_ip
    }

    /// Per user key, its counted failures in time order.
    pub(crate) fn by_user(&self) -> &HashMap<String, Vec<WindowRow>> {
        &self.by_user
    }

    /// The lockouts in time order.
    pub(crate) fn lockouts(&self) -> &[WindowRow] {
        &self.lockouts
    }
}

/// The copy as the store shares it between its handles.
pub(crate) type SharedRecent = Arc<Mutex<RecentFailures>>;

/// Forgets the copy, and the correlation filter, when a write transaction ends without
/// committing: they may hold rows the store rolled back.
#[derive(Debug)]
pub(crate) struct RollbackGuard {
    recent: SharedRecent,
    correlations: SharedCorrelations,
    armed: bool,
}

impl RollbackGuard {
    /// Armed until [`RollbackGuard::committed`].
    pub(crate) fn new(recent: SharedRecent, correlations: SharedCorrelations) -> Self {
        RollbackGuard { recent, correlations, armed: true }
    }

    /// The transaction committed: the copy's rows are the store's.
    pub(crate) fn committed(mut self) {
        self.armed = false;
    }
}

impl Drop for RollbackGuard {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.recent).forget();
            lock(&self.correlations).forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(at: i64, ip: &str) -> CredentialFailure<'_> {
        CredentialFailure { at, ip_key: Some(ip), user_key: Some("u"), counted: true, lockout: at % 2 == 0 }
    }

    /// The copy answers only for what it holds: nothing before a fill, nothing at or before
    /// its bound after a trim, nothing once over the cap; a refused fill pauses the next.
    #[test]
    fn the_copy_answers_only_for_what_it_holds() {
        let mut copy = RecentFailures::default();
        copy.add(&failure(10, "a"));
        assert!(!copy.covers(0) && copy.entries() == 0, "empty until filled");
        copy.fill(5, [failure(6, "a"), failure(8, "b")]);
        copy.add(&failure(4, "a"));
        copy.add(&failure(7, "a"));
        assert!(copy.covers(5) && !copy.covers(4));
        let row = |at| WindowRow { at, user: Some("u".to_string()), counted: true };
        assert_eq!(copy.by_ip()["a"], vec![row(6), row(7)], "time order");
        copy.trim(6);
        assert!(!copy.covers(5) && copy.covers(6));
        assert_eq!(copy.by_ip()["a"].len(), 1);
        assert_eq!(copy.lockouts(), [row(8)]);
        copy.check(1, 1);
        copy.fill(0, (1..).take(MAX_ENTRIES).map(|t| failure(t, "c")));
        assert_eq!(copy.entries(), 0, "over the cap: forgotten");
        copy.fill_refused();
        assert!((0..FILL_PAUSE_BATCHES).all(|_| !copy.may_fill()) && copy.may_fill());
        copy.fill(0, [failure(1, "a")]);
        copy.check(1, 2);
        assert_eq!(copy.entries(), 0, "another connection committed: forgotten");
    }

    /// A superseded line leaves its user's counted failures and stays in its IP's and the
    /// lockouts' windows as an uncounted copy, as the store then holds it.
    #[test]
    fn an_uncounted_failure_stays_in_its_windows_as_a_copy() {
        let mut copy = RecentFailures::default();
        copy.fill(0, [failure(2, "a"), failure(2, "a")]);
        copy.uncount(&failure(2, "a"));
        let flags = |rows: &[WindowRow]| rows.iter().map(|r| r.counted).collect::<Vec<_>>();
        assert_eq!(flags(&copy.by_ip()["a"]), [false, true], "one of the two equal rows");
        assert_eq!(flags(copy.lockouts()), [false, true]);
        assert_eq!(copy.by_user()["u"].len(), 1);
        assert_eq!(copy.entries(), 5);
    }
}
