//! What the write path's in-memory copies of the store (`recent`, the detectors' rows;
//! `correlations`, the correlation filter) share: when they can no longer be trusted,
//! and how a handle locks one.

use std::sync::{Mutex, MutexGuard};

/// An in-memory copy of part of the store, kept by the write path and shared between a
/// store's handles. It may answer only while nothing it did not see changed the store.
pub(crate) trait WriteCache {
    /// Drops what it holds: it answers for nothing until it is filled again.
    fn forget(&mut self);

    /// The writer connection's number and `data_version` it was last checked under.
    fn checked_under(&mut self) -> &mut Option<(i64, i64)>;

    /// At the start of a batch, under the write lock: forgets everything if the store may
    /// have changed behind the copy (another connection committed, or the writer's
    /// connection is a new one).
    fn check(&mut self, connection: i64, data_version: i64) {
        let now = Some((connection, data_version));
        if *self.checked_under() != now {
            self.forget();
            *self.checked_under() = now;
        }
    }
}

/// Locks a shared copy; a panic elsewhere while it was held leaves it possibly
/// half-changed, so it is forgotten rather than trusted.
pub(crate) fn lock<T: WriteCache>(cache: &Mutex<T>) -> MutexGuard<'_, T> {
    match cache.lock() {
        Ok(guard) => guard,
        Err(poisoned) => {
            cache.clear_poison();
            let mut guard = poisoned.into_inner();
            guard.forget();
            guard
        }
    }
}
