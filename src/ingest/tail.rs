//! Tailing a source's files: discover by glob, follow each file generation by
//! identity, drain renamed and deleted files to their true end, restart truncated ones,
//! find copies and files rotated while stopped by their content, and hand chunks
//! (events + checkpoint) to the single writer.
//!
//! One [`Tailer::poll_round`] is the unit of work (tests drive it directly): stat every
//! matching path, reconcile what is there with the generations followed, read every
//! file that may have bytes, close what was drained. A stat poll every `poll_interval`
//! is the source of truth; file-system events from `notify` only wake the loop early.
//! When the watcher cannot be set up, or fails later, the source keeps working on
//! polling alone and says so once (and in a metric).
//!
//! Why this never loses or double-counts a complete line: a chunk's checkpoint covers
//! exactly the records in it and commits in the same transaction; every event's key is
//! (generation key, offset), and a generation keeps its key across renames, copies and
//! restarts, so re-reading committed bytes only meets `ON CONFLICT DO NOTHING`. A file
//! whose identity says nothing yet (seen empty, or as the beginning of a known file) is
//! not read until its bytes show whether it is a copy of a known generation (`vet`):
//! otherwise a half-made copy would become a new generation and be read whole.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::discover::PathMatcher;
use super::identity::{self, FileIdentity};
use super::reader::{Chunk, FileReader, Holds, ReadError, READ_BUFFER_BYTES};
use crate::config::{SourceSettings, StartAt};
use crate::metrics::Metrics;
use crate::pipeline::Normalizer;
use crate::store::Checkpoint;

/// How many bytes one file may read per pass before others get their turn.
const PASS_BUDGET: usize = 4 * READ_BUFFER_BYTES;
/// Passes per round: bounds a round when a file grows as fast as it is read, so new
/// files are still discovered and drained files still closed.
const MAX_PASSES: usize = 64;
/// Sibling entries looked at when searching a folder for a generation by content.
const MAX_SIBLINGS: usize = 4096;
/// Drained generations remembered in one run (see `Tailer::drained`), at a few hundred
/// bytes each: a rotation a minute for the default `forget_after` of a day fits seven
/// times over.
const MAX_DRAINED: usize = 10_000;
/// Rounds a new file that looks like an unfinished copy waits before it is taken as new.
const COPY_WAIT_ROUNDS: u32 = 5;
/// And the least time it waits: file events can make rounds follow each other faster
/// than a copy of a large file is written.
const COPY_WAIT_MIN: Duration = Duration::from_secs(1);

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
    /// The sources configured before this one, by name, with their path patterns: a file
    /// that one of them matches is theirs (see `Tailer::yield_to`).
    pub earlier: Vec<(String, PathMatcher)>,
    /// This is the source's first start ever (see `Store::first_start_of`).
    pub first_run: bool,
}

/// One followed file generation.
struct Tracked {
    reader: FileReader,
    /// When the generation was first missing from the matched paths (renamed away or
    /// deleted); it is drained and closed once idle at its end for `read_grace`.
    gone_since: Option<Instant>,
    /// Last time a read returned bytes (or the generation was found).
    last_growth: Instant,
    /// Round of the last read, for closing the least recently used descriptors.
    last_used: u64,
    /// Last time its checkpoint was handed to the writer.
    last_sent: Option<Instant>,
    /// Size and modification time at the last stat.
    size: u64,
    mtime: Option<SystemTime>,
    /// Status-change time at the last stat: a rewrite that keeps the size and sets the
    /// modification time back (or lands within a coarse mtime's tick) still changes it.
    ctime: Option<(i64, i64)>,
    /// False while it was seen only empty: its first bytes are looked at before they are
    /// read (see `Tailer::vet`).
    vetted: bool,
    /// The path it had before its last rename to another matched path (`app.log` →
    /// `app.log.1` under `app.log*`). Once another file holds that path, the generation
    /// was rotated away although still matched: its unterminated last record is emitted
    /// once idle at its end for `read_grace`, as a gone file's is. (A temporary file
    /// renamed into place has no successor at its old path: it is the live file.)
    renamed_from: Option<PathBuf>,
}

/// What one round did (for tests and the loop).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    /// Bytes read.
    pub bytes: u64,
    /// Generations followed after the round.
    pub files: usize,
    /// Descriptors held after the round.
    pub open: usize,
    /// Generations drained and closed in this round.
    pub closed: usize,
}

/// The tailer of one source.
pub struct Tailer {
    source: SourceSettings,
    name: String,
    matcher: PathMatcher,
    normalizer: Normalizer,
    tx: mpsc::Sender<Chunk>,
    metrics: Metrics,
    cancel: CancellationToken,
    tracked: HashMap<(u64, u64), Tracked>,
    /// Checkpoints not (yet) matched to a file: the start-up ones during the first
    /// round; afterwards the generations whose content was just destroyed in place,
    /// whose copy may appear (copytruncate).
    lost: Vec<Checkpoint>,
    /// Generations drained and closed in this run (gone from every matched path), newest
    /// last, kept for `forget_after` as their stored checkpoints are: a file moved out and
    /// back, deleted and written again, or a link swapped back to it, is that generation
    /// resumed, as after a restart, not a new one read again from 0.
    drained: std::collections::VecDeque<(Instant, Checkpoint)>,
    /// Old files left alone by `ignore_older`, with the mtime they were judged by.
    ignored: HashMap<(u64, u64), Option<SystemTime>>,
    /// How long a record held at a file's end waits for its rest (`HOLDS`).
    holds: Holds,
    /// Compressed files a pattern such as `app.log*` matches (a rotated generation that
    /// newsyslog or logrotate gzipped): their lines were read before, as text; never read.
    /// Keyed by inode with the modification time judged by: an inode freed and given to a
    /// new file (logrotate deletes the oldest `.gz`, then creates `app.log`) is judged
    /// anew.
    compressed: HashMap<(u64, u64), Option<SystemTime>>,
    /// Matched files that could not be opened (permissions), each warned about once
    /// until it opens.
    unreadable: HashSet<(u64, u64)>,
    /// Files that may be a copy still being written (see `hold`): rounds waited, when
    /// first seen, and the last round counted.
    deferred: HashMap<(u64, u64), (u32, Instant, u64)>,
    first_round: bool,
    /// The source had no checkpoint at start: it runs for the first time, and only then
    /// does `start_at = "end"` apply. A later start finds files that appeared while it was
    /// stopped (a rotation's new file), which are new and read whole.
    first_run: bool,
    /// Sources configured before this one (see `yield_to`).
    earlier: Vec<(String, PathMatcher)>,
    /// The earlier source that takes each file found but not followed (`None`: none), as
    /// judged when it was first found.
    owners: HashMap<FileKey, Option<String>>,
    round: u64,
}

/// (device, inode).
type FileKey = (u64, u64);

/// A file's status-change time (seconds, nanoseconds).
fn change_time(meta: &Metadata) -> Option<(i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.ctime(), meta.ctime_nsec()))
}
/// What a scan found: each inode once, with a path and its metadata.
type Seen = HashMap<FileKey, (PathBuf, Metadata)>;

fn dev_ino(meta: &Metadata) -> (u64, u64) {
    identity::file_id(meta)
}

impl Tailer {
    /// A tailer for `source`, resuming from `checkpoints` (the source's stored ones).
    pub fn new(
        source: SourceSettings,
        checkpoints: Vec<Checkpoint>,
        normalizer: Normalizer,
        tx: mpsc::Sender<Chunk>,
        metrics: Metrics,
        cancel: CancellationToken,
    ) -> Result<Tailer, super::discover::GlobError> {
        let matcher = PathMatcher::new(&source.paths, &source.exclude)?;
        let first_run = checkpoints.is_empty();
        Ok(Tailer {
            first_run,
            earlier: Vec::new(),
            owners: HashMap::new(),
            name: source.name.clone(),
            source,
            matcher,
            normalizer,
            tx,
            metrics,
            cancel,
            tracked: HashMap::new(),
            lost: checkpoints,
            drained: std::collections::VecDeque::new(),
            ignored: HashMap::new(),
            compressed: HashMap::new(),
            holds: HOLDS,
            unreadable: HashSet::new(),
            deferred: HashMap::new(),
            first_round: true,
            round: 0,
        })
    }

    /// Says whether this is the source's first start ever, as the store knows it (rather
    /// than from its checkpoints alone: a first start may have found no file).
    pub fn first_start(mut self, first_run: bool) -> Self {
        self.first_run = first_run;
        self
    }

    /// Other waits for the rest of a held record than `HOLDS` (tests: a minute is long).
    pub fn holding(mut self, holds: Holds) -> Self {
        self.holds = holds;
        self
    }

    /// Leaves every file that a source configured before this one matches to that source:
    /// two sources reading one file would each store its records (and whichever won the
    /// race to a record's key would count it), so a file is one source's, the first in
    /// the configuration that matches it.
    pub fn yield_to(mut self, earlier: Vec<(String, PathMatcher)>) -> Self {
        self.earlier = earlier;
        self
    }

    /// The path patterns (for the watcher).
    pub fn matcher(&self) -> &PathMatcher {
        &self.matcher
    }

    /// Generations currently followed.
    pub fn files(&self) -> usize {
        self.tracked.len()
    }

    /// Descriptors currently held.
    pub fn open_files(&self) -> usize {
        self.tracked.values().filter(|t| t.reader.is_open()).count()
    }

    fn send(&self, chunk: Chunk) -> Result<(), ReadError> {
        // Blocking here is the backpressure: when the writer lags, reading pauses and
        // the file itself is the buffer.
        self.tx.blocking_send(chunk).map_err(|_| ReadError::WriterGone)
    }

    /// One poll round: reconcile, read, close, report.
    pub fn poll_round(&mut self) -> Result<RoundReport, ReadError> {
        let now = Instant::now();
        self.round += 1;
        let mut report = RoundReport::default();

        let seen = self.scan();

        self.ignored.retain(|k, _| seen.contains_key(k));
        self.compressed.retain(|k, _| seen.contains_key(k));
        let tracked = &self.tracked;
        // A followed file renamed away keeps its count, or it would wait for ever.
        self.deferred.retain(|k, _| seen.contains_key(k) || tracked.contains_key(k));
        self.reconcile_tracked(&seen, now)?;
        self.adopt_new(&seen, now)?;
        self.vet_pending();
        self.recover_lost(now)?;
        self.send_due_checkpoints(now)?;
        report.bytes = self.read_all(&seen)?;
        report.closed = self.close_drained(now)?;
        self.flush_idle()?;
        self.finish_renamed(now)?;
        self.enforce_descriptor_cap();

        let mut lag = 0u64;
        for (key, t) in &self.tracked {
            let size = match seen.get(key) {
                Some((_, meta)) => meta.len(),
                None => t.reader.file.as_ref().and_then(|f| f.metadata().ok()).map_or(t.size, |m| m.len()),
            };
            lag += size.saturating_sub(t.reader.committed_offset());
        }
        report.files = self.tracked.len();
        report.open = self.open_files();
        self.metrics.tail_lag_bytes.with_label_values(&[&self.name]).set(i64::try_from(lag).unwrap_or(i64::MAX));
        self.metrics.tail_open_files.with_label_values(&[&self.name]).set(report.open as i64);
        self.metrics.tail_files.with_label_values(&[&self.name]).set(report.files as i64);
        self.first_round = false;
        Ok(report)
    }

    /// Every matching file now, each inode once, but those an earlier source takes.
    fn scan(&mut self) -> Seen {
        let mut seen: Seen = HashMap::new();
        let mut owners: HashMap<FileKey, Option<String>> = HashMap::new();
        for path in self.matcher.scan() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let key = dev_ino(&meta);
            if !self.earlier.is_empty() && !self.tracked.contains_key(&key) {
                // Judged once per file (by inode) while it is there, by every name that
                // reaches it, and a file left to another source is logged then.
                let owner = match owners.get(&key).or_else(|| self.owners.get(&key)) {
                    Some(known) => known.clone(),
                    None => {
                        let owner = self.earlier_owner(&path);
                        if let Some(owner) = &owner {
                            tracing::warn!(source = %self.name, path = %path.display(), owner = %owner,
                                "a file both sources' paths match is read by the one configured first only");
                        }
                        owner
                    }
                };
                let yielded = owner.is_some();
                owners.insert(key, owner);
                if yielded {
                    continue;
                }
            }
            // Sorted paths: the first name of a multiply-linked inode wins.
            seen.entry(key).or_insert((path, meta));
        }
        // Only the files still there are remembered.
        self.owners = owners;
        seen
    }

    /// The earlier source whose paths take in `path` by any name that reaches it: as
    /// found, through the links in it resolved, and that relative to the working folder
    /// (a source's relative pattern).
    fn earlier_owner(&self, path: &Path) -> Option<String> {
        let real = std::fs::canonicalize(path).ok();
        let relative = real.as_ref().and_then(|r| {
            let cwd = std::env::current_dir().ok()?;
            r.strip_prefix(cwd).ok().map(Path::to_path_buf)
        });
        let names = [Some(path.to_path_buf()), real, relative];
        self.earlier
            .iter()
            .find(|(_, m)| names.iter().flatten().any(|name| m.matches(name)))
            .map(|(owner, _)| owner.clone())
    }

    /// Followed generations against what the scan found: renames, disappearances,
    /// truncations and in-place rewrites (which start a new generation).
    fn reconcile_tracked(&mut self, seen: &Seen, now: Instant) -> Result<(), ReadError> {
        let mut reset = Vec::new();
        for (key, t) in self.tracked.iter_mut() {
            let Some((path, meta)) = seen.get(key) else {
                if t.gone_since.is_none() {
                    t.gone_since = Some(now);
                    self.metrics.tail_rotations.with_label_values(&[&self.name]).inc();
                    tracing::debug!(source = %self.name, path = %t.reader.path.display(), "file rotated away or deleted; draining");
                }
                continue;
            };
            t.gone_since = None;
            if t.reader.path != *path {
                self.metrics.tail_rotations.with_label_values(&[&self.name]).inc();
                tracing::debug!(source = %self.name, from = %t.reader.path.display(), to = %path.display(), "file renamed");
                t.renamed_from = Some(std::mem::replace(&mut t.reader.path, path.clone()));
            }
            let mtime = meta.modified().ok();
            let shrunk = meta.len() < t.reader.read_offset;
            // Same size and time: unchanged, no need to read its head again.
            let ctime = change_time(meta);
            let changed = meta.len() != t.size || mtime != t.mtime || ctime != t.ctime;
            let rewritten = !shrunk && changed && !t.reader.head_unchanged(path).unwrap_or(true);
            t.size = meta.len();
            t.mtime = mtime;
            t.ctime = ctime;
            if shrunk || rewritten {
                reset.push(*key);
            }
        }
        for key in reset {
            if let Some(mut t) = self.tracked.remove(&key) {
                self.metrics.tail_truncations.with_label_values(&[&self.name]).inc();
                self.metrics.tail_generation_resets.with_label_values(&[&self.name]).inc();
                tracing::info!(source = %self.name, path = %t.reader.path.display(), key = %t.reader.key, "file truncated or rewritten; reading its new content from the start");
                // A record read whole and held for a next line (a Passport message waiting
                // for its Trace ID, or for the rest of an open body) was read before the
                // bytes were destroyed: with no copy of them beside the file (copytruncate
                // makes its copy first, and the copy is read from the committed offset,
                // held record and what followed it included), it is emitted, not dropped.
                let mut exclude: HashSet<(u64, u64)> = self.tracked.keys().copied().collect();
                exclude.insert(key);
                if find_sibling(&t.reader.checkpoint(), &exclude).is_none() {
                    if let Some(chunk) = t.reader.flush(&self.normalizer) {
                        self.send(chunk)?;
                    }
                }
                // Its unread bytes may live on in a copy (copytruncate): look for it.
                self.lost.push(t.reader.checkpoint());
            }
        }
        Ok(())
    }

    /// Inodes seen for the first time: a start-up checkpoint (same inode and content),
    /// a known generation under another inode (a copy, or renamed across file systems),
    /// else a new generation.
    fn adopt_new(&mut self, seen: &Seen, now: Instant) -> Result<(), ReadError> {
        let mut fresh: Vec<(&FileKey, &(PathBuf, Metadata))> =
            seen.iter().filter(|(k, _)| !self.tracked.contains_key(k)).collect();
        fresh.sort_by(|a, b| a.1 .0.cmp(&b.1 .0));
        for (key, (path, meta)) in fresh {
            let mtime = meta.modified().ok();
            if self.compressed.get(key) == Some(&mtime) {
                continue;
            }
            if let Some(judged) = self.ignored.get(key) {
                if *judged == mtime {
                    continue;
                }
                self.ignored.remove(key);
            }
            let (file, id) = match identity::identify_path(path) {
                Ok(opened) => {
                    self.unreadable.remove(key);
                    opened
                }
                Err(e) => {
                    // Gone between the scan and the open is the next round's business;
                    // anything else (permissions) the operator must hear of, once.
                    if e.kind() != std::io::ErrorKind::NotFound && self.unreadable.insert(*key) {
                        tracing::warn!(source = %self.name, path = %path.display(), error = %e,
                            "a matched file cannot be opened: it is not read until it can be");
                    }
                    continue;
                }
            };
            if (id.dev, id.ino) != *key {
                continue; // replaced between the scan and the open: next round
            }
            // Two checkpoints can hold one file: a copy followed for a moment as a new
            // generation, then found to be a known generation's copy and read on under that
            // one's key. The one read furthest is the file's: resuming the other would read
            // again what was stored under the first (a kill between the two left both).
            let by_inode = self
                .lost
                .iter()
                .enumerate()
                .filter(|(_, c)| c.dev == id.dev && c.ino == id.ino && identity::same_content(c, &id))
                .max_by_key(|(_, c)| (c.offset, c.fingerprint.len()))
                .map(|(i, _)| i);
            let by_content = || self.lost_generation_holding(&id, Some(seen));
            // A checkpoint with no head was taken while its file was still empty: the
            // inode says nothing of what fills it since (maybe a copy of a known
            // generation), so content decides first and the blank checkpoint only lends
            // its key when nothing else claims the file.
            let blank = by_inode.filter(|i| self.lost[*i].fingerprint.is_empty());
            let mut adopted: Option<Checkpoint> =
                by_inode.filter(|_| blank.is_none()).or_else(by_content).map(|i| self.lost.swap_remove(i));
            if adopted.is_none() {
                adopted = self.take_drained(&id, Some(seen));
            }
            if adopted.is_none() {
                adopted = self.copy_of_followed(&id);
            }
            // A copy caught while it is being written (copytruncate's copy is created
            // empty, then filled) holds only a prefix of a known generation's head, or
            // nothing; taken as new now, it would be read again from 0 once complete: a
            // duplicate of every line. Such a file is followed but not read until `vet`
            // has seen what fills it. (Followed at once, so that a file renamed away
            // meanwhile is still drained.)
            // New, or known only by a checkpoint that read none of it (a restart after it
            // was followed empty).
            let unread = adopted.as_ref().map_or(true, |cp| cp.offset == 0);
            if unread && self.leave_if_compressed(*key, path, &id.head, || mtime) {
                continue;
            }
            let maybe_copy = adopted.is_none() && self.may_be_copy_in_progress(&id);
            if adopted.is_none() {
                adopted = blank.map(|i| self.lost.swap_remove(i));
            }
            let vetted = id.size > 0 && !maybe_copy;
            if vetted {
                self.deferred.remove(key);
            }
            let reader = match adopted {
                Some(cp) => {
                    if (cp.dev, cp.ino) != (id.dev, id.ino) {
                        self.metrics.tail_recovered.with_label_values(&[&self.name]).inc();
                    }
                    tracing::debug!(source = %self.name, path = %path.display(), key = %cp.file_key, offset = cp.offset, "following a known generation");
                    FileReader::new(&self.source, path.clone(), Some(file), id, cp.file_key, cp.offset, &cp.state)
                }
                None => {
                    let too_old = self.source.ignore_older.is_some_and(|age| {
                        mtime.and_then(|m| SystemTime::now().duration_since(m).ok()).is_some_and(|d| d > age.get())
                    });
                    if too_old {
                        self.ignored.insert(*key, mtime);
                        continue;
                    }
                    // Only files present at the source's first start honour start_at =
                    // "end"; files that appear later are new and read whole. A line being
                    // written at the end is read whole once finished, not from where it
                    // was cut.
                    let offset = if self.first_round && self.first_run && self.source.start_at == StartAt::End {
                        identity::start_of_last_line(&file, id.size, self.source.max_line_bytes).unwrap_or(id.size)
                    } else {
                        0
                    };
                    let key = identity::new_file_key(&id);
                    tracing::debug!(source = %self.name, path = %path.display(), %key, offset, size = id.size, "following a new generation");
                    FileReader::new(&self.source, path.clone(), Some(file), id, key, offset, "")
                }
            };
            let mut t = Tracked {
                reader,
                gone_since: None,
                last_growth: now,
                last_used: self.round,
                last_sent: None,
                size: meta.len(),
                mtime,
                ctime: change_time(meta),
                vetted,
                renamed_from: None,
            };
            // Identification opened it; keep descriptors within the cap until read.
            if self.open_files() >= self.source.max_open_files {
                t.reader.close();
            }
            self.tracked.insert(*key, t);
        }
        Ok(())
    }

    /// True when this new file holds less than a lost or followed generation and its head
    /// is a prefix of that generation's head: maybe a copy in progress. What is known of
    /// the generation is its size, not what was read of it: a file first seen in the same
    /// round as its half-made copy has been read nowhere yet.
    fn may_be_copy_in_progress(&self, id: &FileIdentity) -> bool {
        let prefix_of = |head: &[u8], known_size: u64| {
            id.size < known_size && id.head.len() <= head.len() && head.starts_with(&id.head)
        };
        self.lost
            .iter()
            .chain(self.drained.iter().map(|(_, c)| c))
            .any(|c| id.size < c.offset && c.fingerprint.may_begin_with(&id.head))
            || self.tracked.iter().any(|(key, t)| {
                *key != (id.dev, id.ino) && prefix_of(&t.reader.identity.head, t.size.max(t.reader.read_offset))
            })
    }

    /// Counts one more round (once per round, however often asked) of waiting for a
    /// file that may be an unfinished copy; true while it should still wait.
    fn hold(&mut self, key: FileKey, now: Instant) -> bool {
        let round = self.round;
        let (rounds, since, last_round) = self.deferred.entry(key).or_insert((0, now, 0));
        if *last_round != round {
            *last_round = round;
            *rounds += 1;
        }
        *rounds <= COPY_WAIT_ROUNDS || now.duration_since(*since) < COPY_WAIT_MIN
    }

    /// Vets every generation not vetted yet (see `vet`). Runs before `recover_lost`, so
    /// that the checkpoints lost this round can still claim what filled them.
    fn vet_pending(&mut self) {
        let pending: Vec<FileKey> = self.tracked.iter().filter(|(_, t)| !t.vetted).map(|(k, _)| *k).collect();
        for key in pending {
            self.vet(&key);
        }
    }

    /// A generation first seen empty is read only once what filled it has been looked
    /// at: copytruncate creates its copy empty, and the bytes may be a known generation's,
    /// which then keeps its key and offset (nothing was read under the first key, so
    /// changing it loses nothing). True when the generation may be read now.
    /// A new file whose first bytes are a compressor's magic number is left alone for
    /// good (noted once): it is a rotated generation compressed after it was read, and
    /// read as text it would be nothing but parse errors.
    /// `mtime` is asked for only when the file is compressed.
    fn leave_if_compressed(
        &mut self,
        key: FileKey,
        path: &Path,
        head: &[u8],
        mtime: impl FnOnce() -> Option<SystemTime>,
    ) -> bool {
        let Some(kind) = compression_of(head) else {
            self.compressed.remove(&key);
            return false;
        };
        if self.compressed.insert(key, mtime()).is_none() {
            tracing::info!(source = %self.name, path = %path.display(), compression = kind,
                "a matched file is compressed: not read (a rotated file's lines are read before it is compressed; replay it with zcat if it never was)");
        }
        true
    }

    fn vet(&mut self, key: &FileKey) -> bool {
        let Some(t) = self.tracked.get(key) else {
            return false;
        };
        if t.vetted {
            return true;
        }
        let identified = match &t.reader.file {
            Some(file) => identity::identify(file),
            None => identity::identify_path(&t.reader.path).map(|(_, id)| id),
        };
        let Ok(id) = identified else {
            return false;
        };
        if (id.dev, id.ino) != *key {
            return false;
        }
        if id.size == 0 {
            // Still empty: its end is reached without reading (bytes appended from now on
            // are vetted first).
            if let Some(t) = self.tracked.get_mut(key) {
                t.reader.at_eof = true;
            }
            return false;
        }
        let adopted = match self.lost_generation_holding(&id, None) {
            Some(i) => Some(self.lost.swap_remove(i)),
            None => self.take_drained(&id, None).or_else(|| self.copy_of_followed(&id)),
        };
        let Some(cp) = adopted else {
            let path = self.tracked.get(key).map(|t| t.reader.path.clone()).unwrap_or_default();
            if self.leave_if_compressed(*key, &path, &id.head, || modified(&path)) {
                self.tracked.remove(key);
                return false;
            }
            if self.may_be_copy_in_progress(&id) && self.hold(*key, Instant::now()) {
                return false;
            }
            self.deferred.remove(key);
            if let Some(t) = self.tracked.get_mut(key) {
                t.reader.identity = id;
                t.vetted = true;
            }
            return true;
        };
        self.deferred.remove(key);
        self.metrics.tail_recovered.with_label_values(&[&self.name]).inc();
        let Some(t) = self.tracked.get_mut(key) else {
            return false;
        };
        tracing::debug!(source = %self.name, path = %t.reader.path.display(), key = %cp.file_key, offset = cp.offset, "a file first seen empty holds a copy of a known generation; following it as that");
        let path = t.reader.path.clone();
        let file = t.reader.file.take();
        t.reader = FileReader::new(&self.source, path, file, id, cp.file_key, cp.offset, &cp.state);
        t.vetted = true;
        t.last_sent = None;
        true
    }

    /// The lost checkpoint (its index) whose generation this file holds under another
    /// inode, the longest known head first. Not one whose own inode is still on disk with
    /// its content (`seen` is this round's scan, when there is one): that file is the
    /// generation, and this one only begins the same way (a `log stream` banner).
    fn lost_generation_holding(&self, id: &FileIdentity, seen: Option<&Seen>) -> Option<usize> {
        self.lost
            .iter()
            .enumerate()
            .filter(|(_, c)| identity::same_content_elsewhere(c, id, false))
            .filter(|(_, c)| !original_still_there(c, seen))
            .max_by_key(|(_, c)| c.fingerprint.len())
            .map(|(i, _)| i)
    }

    /// A generation drained earlier in this run that this file is: its inode with its
    /// content, else its content under another inode (as `lost_generation_holding`).
    /// Taken out of the list: it is followed again.
    fn take_drained(&mut self, id: &FileIdentity, seen: Option<&Seen>) -> Option<Checkpoint> {
        let forget = self.source.forget_after.get();
        while self.drained.front().is_some_and(|(at, _)| at.elapsed() > forget) {
            self.drained.pop_front();
        }
        let same_inode = |c: &Checkpoint| c.dev == id.dev && c.ino == id.ino && identity::same_content(c, id);
        let at = self.drained.iter().rposition(|(_, c)| same_inode(c)).or_else(|| {
            self.drained
                .iter()
                .enumerate()
                .filter(|(_, (_, c))| identity::same_content_elsewhere(c, id, false))
                .filter(|(_, (_, c))| !original_still_there(c, seen))
                .max_by_key(|(_, (_, c))| c.fingerprint.len())
                .map(|(i, _)| i)
        })?;
        self.drained.remove(at).map(|(_, c)| c)
    }

    /// A followed generation this new file is a copy of (its head continues that
    /// generation's head), as its checkpoint: reading the copy under the same key from
    /// the committed offset loses nothing and duplicates nothing.
    fn copy_of_followed(&self, id: &FileIdentity) -> Option<Checkpoint> {
        // On the heads in memory, as `same_content_elsewhere` does on a checkpoint's: a
        // checkpoint (a digest) for every followed file, for every new file, made five
        // thousand files under one source quadratic in digests.
        self.tracked
            .iter()
            .filter(|(key, _)| **key != (id.dev, id.ino))
            .filter(|(_, t)| {
                let head = &t.reader.identity.head;
                head.len() >= identity::MIN_CONTENT_MATCH
                    && id.size >= t.reader.committed_offset()
                    && id.head.starts_with(head)
            })
            .max_by_key(|(_, t)| t.reader.identity.head.len())
            .map(|(_, t)| t.reader.checkpoint())
    }

    /// Checkpoints still unmatched: look beside their last path for a rotated name
    /// (`app.log.1`, `app.log-20240101`) holding the same inode or content; drain it from
    /// the committed offset and close it. What cannot be found is gone from disk.
    fn recover_lost(&mut self, now: Instant) -> Result<(), ReadError> {
        let lost = std::mem::take(&mut self.lost);
        for cp in lost {
            let exclude: HashSet<(u64, u64)> = self.tracked.keys().copied().collect();
            let Some((path, file, id)) = find_sibling(&cp, &exclude) else {
                // A start-up checkpoint of a file gone from every matched path (moved out
                // while passportd was stopped, or while it ran before): remembered as a
                // generation drained in this run is, so that the file coming back is
                // resumed where it was, not read again from 0.
                if self.first_round {
                    self.drained.push_back((now, cp));
                    if self.drained.len() > MAX_DRAINED {
                        self.drained.pop_front();
                    }
                }
                continue;
            };
            // A checkpoint of a file followed while still empty, which a compressor then
            // filled: nothing of it was read, and nothing is.
            if cp.offset == 0 && self.leave_if_compressed((id.dev, id.ino), &path, &id.head, || modified(&path)) {
                continue;
            }
            tracing::info!(source = %self.name, path = %path.display(), key = %cp.file_key, offset = cp.offset, "found a rotated file by its content; draining it");
            self.metrics.tail_recovered.with_label_values(&[&self.name]).inc();
            let key = (id.dev, id.ino);
            let size = id.size;
            let reader = FileReader::new(&self.source, path, Some(file), id, cp.file_key, cp.offset, &cp.state);
            self.tracked.insert(
                key,
                Tracked {
                    reader,
                    gone_since: Some(now),
                    last_growth: now,
                    last_used: self.round,
                    last_sent: None,
                    size,
                    mtime: None,
                    ctime: None,
                    vetted: true,
                    renamed_from: None,
                },
            );
        }
        Ok(())
    }

    /// Commits the checkpoint of every generation that has none yet (so a file read
    /// from its end is remembered) or whose checkpoint is getting old (so that only
    /// vanished files age out under `forget_after`).
    fn send_due_checkpoints(&mut self, now: Instant) -> Result<(), ReadError> {
        let refresh = (self.source.forget_after.get() / 4).max(Duration::from_secs(10));
        let due: Vec<(u64, u64)> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.last_sent.map_or(true, |s| now.duration_since(s) >= refresh))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(t) = self.tracked.get_mut(&key) {
                t.last_sent = Some(now);
                let chunk =
                    Chunk { source: self.name.clone(), checkpoint: Some(t.reader.checkpoint()), ..Chunk::default() };
                self.send(chunk)?;
            }
        }
        Ok(())
    }

    /// Reads every generation that may have bytes, a budget at a time, until a pass
    /// reads nothing (or the pass cap). Returns the bytes read.
    fn read_all(&mut self, seen: &Seen) -> Result<u64, ReadError> {
        let mut total = 0u64;
        let mut keys: Vec<(u64, u64)> = self.tracked.keys().copied().collect();
        keys.sort_by_key(|k| self.tracked.get(k).map(|t| t.last_used));
        for _ in 0..MAX_PASSES {
            let mut progressed = false;
            for key in &keys {
                if self.cancel.is_cancelled() {
                    return Ok(total);
                }
                let Some(t) = self.tracked.get(key) else {
                    continue;
                };
                if !t.reader.is_open() {
                    // Closed while idle: reopen only when the stat says it grew, or to
                    // drain it when it went away.
                    let grew = seen.get(key).is_some_and(|(_, m)| m.len() > t.reader.read_offset);
                    if !grew && t.gone_since.is_none() {
                        continue;
                    }
                    // Prefer closing an idle file at its end; else any file still on disk
                    // (it reopens by path at its position). Skipping instead could leave a
                    // file unread for the whole round, lost if it is deleted before the next.
                    if !self.make_room() && !self.make_room_strict() {
                        continue;
                    }
                    let Some(t) = self.tracked.get_mut(key) else {
                        continue;
                    };
                    let path = seen.get(key).map(|(p, _)| p.clone()).or_else(|| moved_to(&t.reader));
                    let Some(path) = path else {
                        continue;
                    };
                    match t.reader.reopen(&path) {
                        Ok(true) => {
                            self.unreadable.remove(key);
                        }
                        Ok(false) => continue,
                        Err(e) => {
                            // Its unread bytes wait: the operator must hear why, once.
                            if e.kind() != std::io::ErrorKind::NotFound && self.unreadable.insert(*key) {
                                tracing::warn!(source = %self.name, path = %path.display(), error = %e,
                                    "a followed file cannot be opened again: its new lines are not read until it can be");
                            }
                            continue;
                        }
                    }
                }
                let n = self.read_checked(key)?;
                if n > 0 {
                    progressed = true;
                    total += n;
                }
            }
            if !progressed {
                break;
            }
        }
        Ok(total)
    }

    /// Reads one budget from a generation and hands the chunk to the writer, unless the
    /// file turned out to have been truncated and rewritten under the reader (copytruncate
    /// racing the read): then the bytes read belong to a new generation, so the chunk is
    /// dropped and the old generation is looked for in a copy from its committed offset.
    /// Returns the bytes read and kept.
    fn read_checked(&mut self, key: &(u64, u64)) -> Result<u64, ReadError> {
        if !self.vet(key) {
            return Ok(0);
        }
        let Some(t) = self.tracked.get_mut(key) else {
            return Ok(0);
        };
        t.last_used = self.round;
        let before = t.reader.snapshot();
        let chunk = match t.reader.read_some(PASS_BUDGET, &self.normalizer) {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(0),
            Err(e) => {
                tracing::warn!(source = %self.name, error = %e, "read failed; will retry");
                return Ok(0);
            }
        };
        let n = t.reader.last_read_bytes;
        // The new content is written from offset 0 before it can reach the offset we
        // read at, so a rewrite under the read shows in the head by now.
        if n > 0 && !t.reader.head_unchanged(&t.reader.path.clone()).unwrap_or(true) {
            self.tracked.remove(key);
            self.metrics.tail_truncations.with_label_values(&[&self.name]).inc();
            self.metrics.tail_generation_resets.with_label_values(&[&self.name]).inc();
            tracing::info!(source = %self.name, "file truncated and rewritten during a read; reading its new content from the start");
            self.lost.push(before.checkpoint());
            return Ok(0);
        }
        if n > 0 {
            t.last_growth = Instant::now();
            self.metrics.tail_bytes_read.with_label_values(&[&self.name]).inc_by(n);
        }
        t.last_sent = Some(Instant::now());
        self.send(chunk)?;
        Ok(n)
    }

    /// Frees a descriptor for a reopen when at the cap: closes the least recently used
    /// idle file that is still in place (a rotated-away one may not be reopenable).
    fn make_room(&mut self) -> bool {
        if self.open_files() < self.source.max_open_files {
            return true;
        }
        let victim = self
            .tracked
            .iter()
            .filter(|(_, t)| t.reader.is_open() && t.reader.at_eof && t.gone_since.is_none())
            .min_by_key(|(_, t)| t.last_used)
            .map(|(k, _)| *k);
        match victim.and_then(|k| self.tracked.get_mut(&k)) {
            Some(t) => {
                t.reader.close();
                true
            }
            None => false,
        }
    }

    fn enforce_descriptor_cap(&mut self) {
        while self.open_files() > self.source.max_open_files {
            if !self.make_room_strict() {
                break;
            }
        }
    }

    fn make_room_strict(&mut self) -> bool {
        let victim = self
            .tracked
            .iter()
            .filter(|(_, t)| t.reader.is_open() && t.gone_since.is_none())
            .min_by_key(|(_, t)| (!t.reader.at_eof, t.last_used))
            .map(|(k, _)| *k);
        match victim.and_then(|k| self.tracked.get_mut(&k)) {
            Some(t) => {
                t.reader.close();
                true
            }
            None => false,
        }
    }

    /// Generations gone from every matched path and idle at their true end for
    /// `read_grace`: emit an unterminated last record, commit, close the descriptor.
    fn close_drained(&mut self, now: Instant) -> Result<usize, ReadError> {
        let grace = self.source.read_grace.get();
        let done: Vec<(u64, u64)> = self
            .tracked
            .iter()
            .filter(|(_, t)| {
                t.gone_since.is_some_and(|g| now.duration_since(g) >= grace)
                    && now.duration_since(t.last_growth) >= grace
                    && (t.reader.at_eof || !t.reader.is_open())
            })
            .map(|(k, _)| *k)
            .collect();
        // A generation may have been read to its end in an earlier round but grown
        // since: read it once more before closing.
        let mut closed = 0;
        for key in done {
            let Some(mut t) = self.tracked.remove(&key) else {
                continue;
            };
            let was_closed = !t.reader.is_open();
            if was_closed {
                // Closed to stay under `max_open_files` while rotated away: it may still
                // hold unread lines where it went. Reopen it there (same inode) to drain
                // it, one descriptor over the cap for as long as that takes.
                if let Some(path) = moved_to(&t.reader) {
                    let _ = t.reader.reopen(&path);
                }
            }
            if t.reader.is_open() {
                self.tracked.insert(key, t);
                let mut grew = false;
                loop {
                    grew |= self.read_checked(&key)? > 0;
                    match self.tracked.get(&key) {
                        Some(t) if !t.reader.at_eof && t.reader.last_read_bytes > 0 => {}
                        _ => break,
                    }
                }
                let Some(back) = self.tracked.remove(&key) else {
                    continue; // reset during the read: its content went elsewhere
                };
                t = back;
                if grew {
                    // It grew: not drained after all; keep following it (closed again if
                    // it was, to keep under the cap: it is reopened the same way).
                    t.last_growth = now;
                    if was_closed {
                        t.reader.close();
                    }
                    self.tracked.insert(key, t);
                    continue;
                }
            }
            let chunk = t.reader.finish(&self.normalizer);
            self.send(chunk)?;
            self.drained.push_back((now, t.reader.checkpoint()));
            if self.drained.len() > MAX_DRAINED {
                self.drained.pop_front();
            }
            self.metrics.tail_files_closed.with_label_values(&[&self.name]).inc();
            tracing::debug!(source = %self.name, path = %t.reader.path.display(), "rotated-away file drained and closed");
            closed += 1;
        }
        Ok(closed)
    }

    /// Renamed generations idle at their end for `read_grace`: emit an unterminated last
    /// record (a text line cut by rotation), as `close_drained` does for gone ones, but
    /// keep following them (they are still matched).
    fn finish_renamed(&mut self, now: Instant) -> Result<(), ReadError> {
        let grace = self.source.read_grace.get();
        let mut chunks = Vec::new();
        for (key, t) in self.tracked.iter_mut() {
            let succeeded = |old: &Path| std::fs::metadata(old).is_ok_and(|m| dev_ino(&m) != *key);
            if t.reader.at_eof
                && now.duration_since(t.last_growth) >= grace
                && t.reader.committed_offset() < t.reader.read_offset
                && t.renamed_from.as_deref().is_some_and(succeeded)
            {
                chunks.push(t.reader.finish(&self.normalizer));
            }
        }
        for chunk in chunks {
            self.send(chunk)?;
        }
        Ok(())
    }

    /// Lets decoders emit records held while the stream was busy (multi-line values).
    /// When the first held message of a file at its end is due to be emitted.
    pub fn next_flush_in(&self) -> Option<Duration> {
        self.tracked.values().filter(|t| t.reader.at_eof).filter_map(|t| t.reader.hold_left(&self.holds)).min()
    }

    fn flush_idle(&mut self) -> Result<(), ReadError> {
        let mut chunks = Vec::new();
        // A held message waits a moment for a next line (a second when it announces one);
        // the first round after that emits it either way.
        for t in self.tracked.values_mut() {
            if t.reader.at_eof && t.reader.hold_left(&self.holds).is_none() {
                if let Some(chunk) = t.reader.flush(&self.normalizer) {
                    chunks.push(chunk);
                }
            }
        }
        for chunk in chunks {
            self.send(chunk)?;
        }
        Ok(())
    }
}

/// `path`'s modification time, if it can be read.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok().and_then(|m| m.modified().ok())
}

/// The compressor whose magic number `head` starts with, if any.
pub(crate) fn compression_of(head: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 4] = [
        (&[0x1f, 0x8b], "gzip"),
        (b"BZh", "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
    ];
    MAGIC.iter().find(|(magic, _)| head.starts_with(magic)).map(|(_, kind)| *kind)
}

/// Where a closed, rotated-away generation went: the folder of its last path, by inode.
fn moved_to(reader: &FileReader) -> Option<PathBuf> {
    let dir = reader.path.parent()?;
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .flatten()
        .take(MAX_SIBLINGS)
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).is_ok_and(|m| dev_ino(&m) == (reader.identity.dev, reader.identity.ino)))
}

/// True when the checkpoint's own inode still holds its content: at a path of this
/// round's scan, or beside its last path (a rotated name).
fn original_still_there(cp: &Checkpoint, seen: Option<&Seen>) -> bool {
    let holds = |path: &Path| {
        identity::identify_path(path)
            .is_ok_and(|(_, id)| (id.dev, id.ino) == (cp.dev, cp.ino) && identity::same_content(cp, &id))
    };
    if let Some((path, _)) = seen.and_then(|seen| seen.get(&(cp.dev, cp.ino))) {
        if holds(path) {
            return true;
        }
    }
    siblings(cp).any(|(path, meta)| dev_ino(&meta) == (cp.dev, cp.ino) && holds(&path))
}

/// The files beside a checkpoint's last path whose names start with that file's name
/// (`app.log.1`, `app.log-2024…`), at most `MAX_SIBLINGS` of the folder's entries looked at.
fn siblings(cp: &Checkpoint) -> impl Iterator<Item = (PathBuf, Metadata)> {
    let last = Path::new(&cp.path);
    let dir = last.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stem = last.file_name().map(|n| n.to_string_lossy().into_owned());
    let entries = stem.as_ref().and_then(|_| std::fs::read_dir(dir).ok());
    entries.into_iter().flatten().flatten().take(MAX_SIBLINGS).filter_map(move |entry| {
        let stem = stem.as_deref()?;
        if !entry.file_name().to_string_lossy().starts_with(stem) {
            return None;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path).ok()?;
        Some((path, meta))
    })
}

/// A file beside the checkpoint's last path (see `siblings`) with bytes past its
/// offset that holds the generation (same inode and content, or the same content under
/// another inode), opened.
fn find_sibling(cp: &Checkpoint, exclude: &HashSet<(u64, u64)>) -> Option<(PathBuf, std::fs::File, FileIdentity)> {
    siblings(cp)
        .filter(|(_, meta)| meta.is_file() && !exclude.contains(&dev_ino(meta)) && meta.len() > cp.offset)
        .find_map(|(path, _)| {
            let (file, id) = identity::identify_path(&path).ok()?;
            let same_inode = (id.dev, id.ino) == (cp.dev, cp.ino) && identity::same_content(cp, &id);
            (same_inode || identity::same_content_elsewhere(cp, &id, false)).then_some((path, file, id))
        })
}

/// Runs the tail loop on the current (blocking) thread until cancelled.
pub fn run(ctx: TailContext) -> Result<(), ReadError> {
    let TailContext { source, checkpoints, normalizer, tx, metrics, cancel, wake_rx, wake_tx, earlier, first_run } =
        ctx;
    let name = source.name.clone();
    let poll = source.poll_interval.get();
    let watch = source.watch;
    let mut tailer = match Tailer::new(source, checkpoints, normalizer, tx, metrics.clone(), cancel.clone()) {
        Ok(t) => t.yield_to(earlier).first_start(first_run),
        Err(e) => {
            tracing::error!(source = %name, error = %e, "invalid path pattern; source stopped");
            return Ok(());
        }
    };
    let failed = Arc::new(AtomicBool::new(false));
    let mut watching = if watch {
        start_watcher(tailer.matcher(), &name, wake_tx, failed.clone(), &metrics)
    } else {
        tracing::info!(source = %name, "file events disabled by configuration; polling only");
        metrics.watcher_poll_fallback.with_label_values(&[&name]).set(1);
        None
    };
    let mut reported_failure = false;
    while !cancel.is_cancelled() {
        tailer.poll_round()?;
        if let Some(w) = watching.as_mut().filter(|w| !w.pending.is_empty()) {
            // A folder that did not exist at start (an hour's folder, a mount not yet up)
            // is watched once it does: until then it is polled.
            // One try per folder once it appears: one that then cannot be watched either
            // (inotify's watch limit) stays polled, not retried every round.
            let Watching { watcher, pending, unwatchable } = w;
            pending.retain(|(root, mode)| {
                if !root.is_dir() {
                    return true;
                }
                *unwatchable |= watcher.watch(root, *mode).is_err();
                false
            });
            if pending.is_empty() && !*unwatchable && !failed.load(Ordering::Relaxed) {
                tracing::info!(source = %name, "every folder is watched now; file events again");
                metrics.watcher_poll_fallback.with_label_values(&[&name]).set(0);
            }
        }
        if failed.load(Ordering::Relaxed) && !reported_failure {
            reported_failure = true;
            tracing::warn!(source = %name, "file events failed; polling only (every {poll:?})");
            metrics.watcher_poll_fallback.with_label_values(&[&name]).set(1);
        }
        if cancel.is_cancelled() {
            break;
        }
        // A held message is emitted when its hold ends, not at the next poll.
        let wait = tailer.next_flush_in().map_or(poll, |left| poll.min(left + Duration::from_millis(1)));
        match wake_rx.recv_timeout(wait) {
            Ok(()) => while wake_rx.try_recv().is_ok() {},
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(poll),
        }
    }
    Ok(())
}

/// How long an idle tailer keeps a record at a file's end open for its rest:
/// - any Passport message, 300 ms for a next line: a writer that writes line by line, or
///   in blocks, delivers a message's lines milliseconds apart, and a wake-up between them
///   found the file "idle" and cut the message (its Correlation ID line, or the token
///   endpoint's body, read as orphans);
/// - a message that ends with `:` (announcing its next line), a second;
/// - a message whose token-endpoint body is still open, or a CSV row without its newline,
///   a minute: `log stream > file` writes through a block buffer, so the body's rest can
///   come seconds later (its lines read alone would be orphans while the message was
///   stored cut short), and a CSV row's last cell may be cut where a writer paused.
const HOLDS: Holds =
    Holds { plain: Duration::from_millis(300), announced: Duration::from_secs(1), open_body: Duration::from_secs(60) };

/// Whether a file event can mean new or different content. Opening or reading a file
/// cannot, and inotify reports the loop's own opens of the files and folders it scans:
/// waking on those would rescan, reopen and wake again, spinning a core while nothing
/// is written. A writer closing the file can (and is all some writers leave).
pub(crate) fn is_change(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// A source's file watcher and the folders it could not watch yet.
struct Watching {
    watcher: notify::RecommendedWatcher,
    /// Folders (with how deep) not watched yet because they did not exist: tried again
    /// once they do, polled meanwhile.
    pending: Vec<(PathBuf, RecursiveMode)>,
    /// A folder that exists could not be watched: it is polled for good.
    unwatchable: bool,
}

fn start_watcher(
    matcher: &PathMatcher,
    name: &str,
    wake: std_mpsc::Sender<()>,
    failed: Arc<AtomicBool>,
    metrics: &Metrics,
) -> Option<Watching> {
    let handler = move |res: notify::Result<notify::Event>| {
        // Every change, including an overflow / rescan notice, just wakes the loop,
        // which rescans everything. An error means events may be missing from now on:
        // the stat poll carries on alone.
        match res {
            Ok(event) if !is_change(&event.kind) => return,
            Ok(_) => {}
            Err(_) => failed.store(true, Ordering::Relaxed),
        }
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
    let (mut pending, mut unwatchable) = (Vec::new(), false);
    for (root, recursive) in matcher.roots() {
        let mode = if *recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        if let Err(e) = watcher.watch(root, mode) {
            let missing = !root.is_dir();
            if missing {
                tracing::info!(source = %name, folder = %root.display(),
                    "folder does not exist yet; polling for it, watching it once it does");
                pending.push((root.clone(), mode));
            } else if !unwatchable {
                tracing::warn!(source = %name, folder = %root.display(), error = %e, "cannot watch folder; polling it");
                unwatchable = true;
            }
        }
    }
    if !pending.is_empty() || unwatchable {
        metrics.watcher_poll_fallback.with_label_values(&[name]).set(1);
    }
    Some(Watching { watcher, pending, unwatchable })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn lines(seqs: std::ops::Range<u64>) -> String {
        seqs.map(|s| {
            format!(
                r#"{{"correlationId":"seq-{s:08}","time":"2024-05-01T10:00:00Z","category":"SignInLogs","properties":{{"status":{{"errorCode":50126,"failureReason":"seq-{s:08}"}},"pad":"{}"}}}}"#,
                "x".repeat(120)
            ) + "\n"
        })
        .collect()
    }

    /// Every message once per (generation key, offset), as the store would keep it.
    fn stored(rx: &mut mpsc::Receiver<Chunk>) -> BTreeMap<String, usize> {
        let mut kept = BTreeMap::new();
        while let Ok(chunk) = rx.try_recv() {
            for e in chunk.events {
                let p = e.event.position.clone().unwrap();
                kept.insert((p.file_key, p.offset), e.event.message.clone().unwrap_or_default());
            }
        }
        let mut counts = BTreeMap::new();
        for m in kept.into_values() {
            *counts.entry(m).or_default() += 1;
        }
        counts
    }

    /// A store in a temporary folder and the source `t` following `logs/app.log*` in it.
    fn source_t() -> (tempfile::TempDir, PathBuf, SourceSettings, tokio::runtime::Runtime, crate::app::Core) {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let text = format!(
            "[storage]\npath = \"{}\"\n[detectors]\nenabled = false\n[[sources]]\nname = \"t\"\npaths = [\"{}/app.log*\"]\n",
            dir.path().join("db.sqlite").display(),
            logs.display()
        );
        let (settings, _) = crate::config::from_parts(&text, "test.toml", &[]).unwrap();
        let source = settings.sources[0].clone();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let core = rt.block_on(crate::app::Core::build(settings, vec!["t".into()])).unwrap();
        (dir, logs, source, rt, core)
    }

    /// A file two start-up checkpoints hold (a copy followed for a moment under a key of its
    /// own, then read on under its original's, and a kill before the first was forgotten)
    /// resumes where it was read furthest, whichever comes first: nothing is read twice.
    #[test]
    fn a_file_two_checkpoints_hold_resumes_where_it_was_read_furthest() {
        let (_dir, logs, source, _rt, core) = source_t();
        let file = logs.join("app.log.1");
        std::fs::write(&file, lines(0..6)).unwrap();
        let tailer = |checkpoints: Vec<Checkpoint>| {
            let (tx, rx) = mpsc::channel(1024);
            let t = Tailer::new(
                source.clone(),
                checkpoints,
                core.normalizer.clone(),
                tx,
                core.metrics.clone(),
                CancellationToken::new(),
            )
            .unwrap();
            (t, rx)
        };
        let (mut first, mut rx) = tailer(Vec::new());
        first.poll_round().unwrap();
        assert_eq!(stored(&mut rx).len(), 6);
        let read_through = first.tracked.values().next().unwrap().reader.checkpoint();
        let unread =
            Checkpoint { file_key: "another-key".into(), offset: 0, state: String::new(), ..read_through.clone() };
        for checkpoints in [vec![read_through.clone(), unread.clone()], vec![unread, read_through]] {
            let (mut again, mut rx) = tailer(checkpoints);
            again.poll_round().unwrap();
            again.poll_round().unwrap();
            let counts = stored(&mut rx);
            assert!(counts.is_empty(), "read again: {counts:?}");
        }
    }

    #[test]
    fn a_copy_filled_between_its_first_look_and_its_first_read_keeps_the_key_of_its_original() {
        let (_dir, logs, source, _rt, core) = source_t();
        let (tx, mut rx) = mpsc::channel(1024);
        let mut tailer = Tailer::new(
            source,
            Vec::new(),
            core.normalizer.clone(),
            tx,
            core.metrics.clone(),
            CancellationToken::new(),
        )
        .unwrap();

        let live = logs.join("app.log");
        let copy = logs.join("app.log.1");
        std::fs::write(&live, lines(0..4)).unwrap();
        tailer.poll_round().unwrap();
        // copytruncate begins: the copy exists, empty, when the round looks at it ...
        std::fs::write(&copy, "").unwrap();
        let now = Instant::now();
        tailer.round += 1;
        let seen = tailer.scan();
        tailer.reconcile_tracked(&seen, now).unwrap();
        tailer.adopt_new(&seen, now).unwrap();
        tailer.vet_pending();
        tailer.recover_lost(now).unwrap();
        // ... and is filled before the round reads it.
        std::fs::write(&copy, lines(0..4)).unwrap();
        tailer.read_all(&seen).unwrap();
        std::fs::OpenOptions::new().write(true).open(&live).unwrap().set_len(0).unwrap();
        std::fs::write(&live, lines(4..6)).unwrap();
        for _ in 0..3 {
            tailer.poll_round().unwrap();
        }

        let counts = stored(&mut rx);
        assert_eq!(counts.len(), 6, "{counts:?}");
        assert!(counts.values().all(|n| *n == 1), "stored more than once: {counts:?}");
    }
}
