//! Copies committed pages from the write-ahead log into the database file on a connection
//! of its own, so that the write path does not wait for it (issue #8).
//!
//! SQLite checkpoints on the connection that commits, inside its `COMMIT`, once the log
//! holds `wal_autocheckpoint` pages: the writer reads every page back from the log, writes
//! it into the database file and waits for two `fsync`s, while the reader of the input
//! waits for the writer. A `PASSIVE` checkpoint on another connection does the same work
//! while the writer goes on with the next transaction. It takes no lock the writer needs,
//! and it changes neither the store's content nor the writer connection's `data_version`,
//! so the write path's in-memory copies (`recent`, `correlations`) stay valid.
//!
//! A checkpoint starts once [`ROWS_PER_CHECKPOINT`] rows have been committed since the
//! last one started: after every commit of a replay, and in `serve` after as many rows,
//! whatever the number of commits. The writer's own automatic checkpoint stays, at twice
//! the other connections' 8,000 pages (`WRITER_AUTOCHECKPOINT` in the store), as the bound
//! on the log: this one cannot restart the log (only the writer does, when it next writes
//! and finds everything copied), and a checkpoint cannot copy past a snapshot a reader
//! still holds. The writer's checkpoint then copies only what this one has not; it is
//! skipped while this one runs, so the bound is not exact.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::SqlitePool;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

/// Rows committed (events and successes offered) after which a checkpoint starts. A row of
/// an Azure replay adds about a tenth of a page to the log, so this starts one well before
/// the writer's own bound.
pub(crate) const ROWS_PER_CHECKPOINT: u64 = 12_000;

/// The background checkpointer: its task, and what the write path tells it. Dropped
/// (with the store's last handle), it lets its task end.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    /// Held while stopping, so that every caller of [`Checkpointer::stop`] returns only
    /// once the task has ended.
    task: Mutex<Option<JoinHandle<()>>>,
}

/// What the write path and the task share.
#[derive(Debug, Default)]
struct Shared {
    /// Rows committed since the last checkpoint started.
    rows: AtomicU64,
    wake: Notify,
    closing: AtomicBool,
    /// Checkpoints that ran to the end of the log as they found it (a diagnostic).
    done: AtomicU64,
}

impl Checkpointer {
    /// Starts the task, which checkpoints on `pool` (one connection, opened when first
    /// needed).
    pub(crate) fn start(pool: SqlitePool) -> Checkpointer {
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(run(pool, shared.clone()));
        Checkpointer { shared, task: Mutex::new(Some(task)) }
    }

    /// Counts `rows` just committed, and wakes the task once enough have been. A wake-up
    /// while a checkpoint runs starts one more after it.
    pub(crate) fn committed(&self, rows: u64) {
        let total = self.shared.rows.fetch_add(rows, Ordering::Relaxed).saturating_add(rows);
        if total >= ROWS_PER_CHECKPOINT {
            self.shared.rows.store(0, Ordering::Relaxed);
            self.shared.wake.notify_one();
        }
    }

    /// Checkpoints that ran to the end of the log as they found it.
    pub(crate) fn completed(&self) -> u64 {
        self.shared.done.load(Ordering::Relaxed)
    }

    /// Stops the task, after the checkpoint under way, if any, and closes its connection.
    pub(crate) async fn stop(&self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
        let mut task = self.task.lock().await;
        if let Some(running) = task.take() {
            if let Err(e) = running.await {
                tracing::debug!(error = %e, "the checkpointer's task ended abnormally");
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

async fn run(pool: SqlitePool, shared: Arc<Shared>) {
    loop {
        shared.wake.notified().await;
        if shared.closing.load(Ordering::Relaxed) {
            break;
        }
        // Best effort: a checkpoint that fails or is refused (another one under way) leaves
        // the pages in the log, where the next one, or the writer's, copies them.
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&pool).await {
            Ok((busy, log, copied)) => {
                if busy == 0 {
                    shared.done.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(busy, log, copied, "checkpointed the write-ahead log");
            }
            Err(e) => tracing::debug!(error = %e, "the write-ahead log was not checkpointed"),
        }
    }
    pool.close().await;
}
