//! Tailing a source's files: discover by glob, follow each file generation by
//! identity, drain renamed and deleted files to their true end, restart truncated ones,
//! and hand chunks (events + checkpoint) to the single writer.
//!
//! A stat poll every `poll_interval` is the source of truth; file-system events from
//! `notify` only wake the loop early. When the watcher cannot be set up the source
//! keeps working on polling alone and says so once (and in a metric).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::discover::PathMatcher;
use super::identity;
use super::reader::{Chunk, FileReader, ReadError, READ_BUFFER_BYTES};
use crate::config::{SourceSettings, StartAt};
use crate::metrics::Metrics;
use crate::pipeline::Normalizer;
use crate::store::Checkpoint;

/// How many bytes one file may read per round before others get their turn.
const ROUND_BUDGET: usize = 4 * READ_BUFFER_BYTES;

/// Everything a tail task needs.
pub struct TailContext {
    /// The source.
    pub source: SourceSettings,
    /// Its checkpoints at start-up.
    pub checkpoints: Vec<Checkpoint>,
    /// Shared normalizer.
    pub normalizer: Normalizer,
    /// To the writer.
    pub tx: mpsc::Sender<Chunk>,
    /// Metrics.
    pub metrics: Metrics,
    /// Stop signal.
    pub cancel: CancellationToken,
    /// Wakes the loop (notify events, shutdown).
    pub wake_rx: std_mpsc::Receiver<()>,
    /// To hand to the watcher.
    pub wake_tx: std_mpsc::Sender<()>,
}

/// Runs the tail loop on the current (blocking) thread until cancelled.
pub fn run(ctx: TailContext) -> Result<(), ReadError> {
    let TailContext { source, mut checkpoints, normalizer, tx, metrics, cancel, wake_rx, wake_tx } = ctx;
    let name = source.name.clone();
    let matcher = match PathMatcher::new(&source.paths, &source.exclude) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(source = %name, error = %e, "invalid path pattern; source stopped");
            return Ok(());
        }
    };
    let _watcher = start_watcher(&matcher, &name, wake_tx, &metrics);
    let mut readers: HashMap<(u64, u64), FileReader> = HashMap::new();
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut first_scan = true;
    let poll = source.poll_interval.get();

    while !cancel.is_cancelled() {
        let paths = matcher.scan();
        let mut seen: HashMap<(u64, u64), PathBuf> = HashMap::new();
        for path in paths {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let key = dev_ino(&meta);
            seen.insert(key, path.clone());
            if let Some(r) = readers.get_mut(&key) {
                if meta.len() < r.read_offset {
                    // Same inode, fewer bytes: truncated (copytruncate). Start a new
                    // generation from 0; the old one's unread bytes are gone.
                    metrics.tail_truncations.with_label_values(&[&name]).inc();
                    readers.remove(&key);
                } else {
                    if r.path != path {
                        metrics.tail_rotations.with_label_values(&[&name]).inc();
                    }
                    r.path = path.clone();
                    continue;
                }
            }
            let start_at_end = first_scan && source.start_at == StartAt::End;
            // Checkpoints only matter for files present at start-up; later files are
            // new generations read from their first byte.
            match FileReader::open(&source, &path, &checkpoints, |size| if start_at_end { size } else { 0 }) {
                Ok(mut r) => {
                    // A checkpoint whose head no longer matches (rewritten in place) is a
                    // new generation: identity::find_checkpoint already refused it.
                    if r.identity.size < r.read_offset {
                        r = FileReader::new(
                            &source,
                            path.clone(),
                            r.file,
                            r.identity.clone(),
                            identity::new_file_key(&r.identity),
                            0,
                            "",
                        );
                    }
                    readers.insert(key, r);
                }
                Err(e) => tracing::warn!(source = %name, error = %e, "cannot open file"),
            }
        }
        first_scan = false;
        checkpoints.clear();
        metrics.tail_open_files.set(readers.len() as i64);

        // Read every file; those gone from all paths are drained to their true end and
        // closed. Loop until a whole round reads nothing, so a burst is not held back
        // by the poll interval.
        let mut lag: u64 = 0;
        loop {
            let mut progressed = false;
            let keys: Vec<(u64, u64)> = readers.keys().copied().collect();
            for key in keys {
                if cancel.is_cancelled() {
                    break;
                }
                let Some(r) = readers.get_mut(&key) else {
                    continue;
                };
                match r.read_some(&mut buf, ROUND_BUDGET, &normalizer) {
                    Ok(Some(chunk)) => {
                        progressed = true;
                        metrics.tail_bytes_read.with_label_values(&[&name]).inc_by(r.last_read_bytes);
                        if tx.blocking_send(chunk).is_err() {
                            return Err(ReadError::WriterGone);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(source = %name, error = %e, "read failed; will retry");
                    }
                }
            }
            if !progressed || cancel.is_cancelled() {
                break;
            }
        }
        let gone: Vec<(u64, u64)> = readers.keys().filter(|k| !seen.contains_key(k)).copied().collect();
        for key in gone {
            if let Some(mut r) = readers.remove(&key) {
                if r.at_eof {
                    let chunk = r.finish(&normalizer);
                    if tx.blocking_send(chunk).is_err() {
                        return Err(ReadError::WriterGone);
                    }
                    metrics.tail_rotations.with_label_values(&[&name]).inc();
                } else {
                    readers.insert(key, r);
                }
            }
        }
        for r in readers.values_mut() {
            if r.at_eof {
                if let Some(chunk) = r.flush(&normalizer) {
                    if tx.blocking_send(chunk).is_err() {
                        return Err(ReadError::WriterGone);
                    }
                }
            }
            if let Ok(meta) = r.file.metadata() {
                lag += meta.len().saturating_sub(r.checkpoint().offset);
            }
        }
        metrics.tail_lag_bytes.with_label_values(&[&name]).set(lag as i64);
        metrics.tail_open_files.set(readers.len() as i64);

        if cancel.is_cancelled() {
            break;
        }
        match wake_rx.recv_timeout(poll) {
            Ok(()) => while wake_rx.try_recv().is_ok() {},
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(poll),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn dev_ino(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dev_ino(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

fn start_watcher(
    matcher: &PathMatcher,
    name: &str,
    wake: std_mpsc::Sender<()>,
    metrics: &Metrics,
) -> Option<notify::RecommendedWatcher> {
    let handler = move |res: notify::Result<notify::Event>| {
        // Any event (including overflow/rescan) just wakes the loop, which rescans.
        let _ = res;
        let _ = wake.send(());
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(source = %name, error = %e, "file events unavailable; polling only");
            metrics.watcher_poll_fallback.with_label_values(&[name]).set(1);
            return None;
        }
    };
    let mut failed = false;
    for (root, recursive) in matcher.roots() {
        let mode = if *recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        if let Err(e) = watcher.watch(root, mode) {
            if !failed {
                tracing::warn!(source = %name, folder = %root.display(), error = %e, "cannot watch folder; polling it");
            }
            failed = true;
        }
    }
    if failed {
        metrics.watcher_poll_fallback.with_label_values(&[name]).set(1);
    }
    Some(watcher)
}
