//! Reading one file generation (or stdin) through its decoder into `Chunk`s: events
//! plus the checkpoint that covers exactly them.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use tokio::sync::mpsc;

use super::formats::{DecodeOptions, DecodedItem, StreamDecoder};
use super::identity::{self, FileIdentity, FINGERPRINT_BYTES};
use crate::config::SourceSettings;
use crate::pipeline::{DecodeTally, EventBudget, Normalized, Normalizer};
use crate::store::{Checkpoint, StoredEvent, StoredSuccess};

/// Read buffer size: large reads are an order of magnitude faster than 8 KiB ones.
pub const READ_BUFFER_BYTES: usize = 256 * 1024;

/// What a reader hands to the writer: events and the position that covers them.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The source name.
    pub source: String,
    /// Failures and interrupts decoded from the bytes up to `checkpoint.offset`.
    pub events: Vec<StoredEvent>,
    /// Successes decoded from the same bytes.
    pub successes: Vec<StoredSuccess>,
    /// What did not become an event.
    pub tally: DecodeTally,
    /// The file's new position, committed with the events.
    pub checkpoint: Option<Checkpoint>,
}

impl Chunk {
    /// How many records (events and successes) the chunk carries.
    pub fn records(&self) -> usize {
        self.events.len() + self.successes.len()
    }

    /// Where the normalizer appends this chunk's records.
    pub fn output(&mut self) -> Normalized<'_> {
        Normalized { events: &mut self.events, successes: &mut self.successes, tally: &mut self.tally }
    }
}

/// Errors reading an input.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The writer went away (shutdown).
    #[error("the writer stopped")]
    WriterGone,
}

/// Decoder options for a source.
pub fn decode_options(source: &SourceSettings) -> DecodeOptions {
    DecodeOptions {
        format: source.format,
        max_record_bytes: source.max_line_bytes,
        default_tz: source.tz(),
        passport: source.passport.clone(),
        // The pipeline keeps only a success's time and id.
        success_detail: false,
    }
}

/// How long an idle tailer waits for the rest of a record held at a file's end before
/// it decodes what it has, so that a writer that writes a record in pieces still
/// delivers it whole.
#[derive(Debug, Clone, Copy)]
pub struct Holds {
    /// A Passport message, for a next line (a writer that writes line by line).
    pub plain: std::time::Duration,
    /// A Passport message that announces its next line (its text ends with `:`).
    pub announced: std::time::Duration,
    /// A Passport message whose token-endpoint body is still open, and a CSV row with all
    /// its cells but no newline yet (its last cell may be cut: a writer fetching its next
    /// page pauses mid-row).
    pub open_body: std::time::Duration,
}

/// One open file generation being read.
pub struct FileReader {
    /// The source it belongs to.
    pub source: String,
    /// Where it was last seen.
    pub path: PathBuf,
    /// The open descriptor (kept after a rename so the old file can be drained; `None`
    /// while closed to respect the descriptor cap).
    pub file: Option<File>,
    /// Its identity.
    pub identity: FileIdentity,
    /// Its generation key.
    pub key: String,
    /// Byte position of the next read.
    pub read_offset: u64,
    decoder: StreamDecoder,
    items: Vec<DecodedItem>,
    /// True when the last read hit end of file.
    pub at_eof: bool,
    /// Bytes the last `read_some` read.
    pub last_read_bytes: u64,
    /// When a read last returned bytes (or the reader was made).
    last_bytes_at: std::time::Instant,
}

impl FileReader {
    /// Wraps a file (open, or `None` to open it when first read), resuming at `offset`
    /// with the decoder `state`.
    pub fn new(
        source: &SourceSettings,
        path: PathBuf,
        file: Option<File>,
        identity: FileIdentity,
        key: String,
        offset: u64,
        state: &str,
    ) -> Self {
        let opts = decode_options(source);
        let decoder = if offset == 0 { StreamDecoder::new(opts) } else { StreamDecoder::resume(opts, offset, state) };
        Self {
            source: source.name.clone(),
            path,
            file,
            identity,
            key,
            read_offset: offset,
            decoder,
            items: Vec::new(),
            at_eof: false,
            last_read_bytes: 0,
            last_bytes_at: std::time::Instant::now(),
        }
    }

    /// How much longer an idle flush waits for more of a held record, counted from the
    /// stream's last bytes (see [`Holds`]). `None` when nothing waits.
    pub fn hold_left(&self, holds: &Holds) -> Option<std::time::Duration> {
        let hold = if self.decoder.holds_open_body()
            || self.decoder.holds_unterminated_row()
            || self.decoder.holds_open_trailer()
        {
            holds.open_body
        } else if self.decoder.holds_open_ended_record() {
            holds.announced
        } else if self.decoder.holds_text_record() {
            holds.plain
        } else {
            return None;
        };
        hold.checked_sub(self.last_bytes_at.elapsed()).filter(|left| !left.is_zero())
    }

    /// Opens `path`, finds its checkpoint among `checkpoints` (resuming there) or
    /// starts a new generation at `new_offset(size)`.
    pub fn open(
        source: &SourceSettings,
        path: &Path,
        checkpoints: &[Checkpoint],
        new_offset: impl Fn(u64) -> u64,
    ) -> Result<Self, ReadError> {
        let io = |e| ReadError::Io { path: path.to_path_buf(), source: e };
        let (file, id) = identity::identify_path(path).map_err(io)?;
        let (key, offset, state) = match identity::find_checkpoint(checkpoints, &id) {
            Some(cp) => (cp.file_key.clone(), cp.offset, cp.state.clone()),
            None => (identity::new_file_key(&id), new_offset(id.size), String::new()),
        };
        Ok(Self::new(source, path.to_path_buf(), Some(file), id, key, offset, &state))
    }

    /// Offset just past the last record emitted (what the next checkpoint commits).
    pub fn committed_offset(&self) -> u64 {
        self.decoder.checkpoint_offset()
    }

    /// True while a descriptor is held.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Releases the descriptor; the decoder keeps its state so reading resumes exactly.
    pub fn close(&mut self) {
        self.file = None;
    }

    /// Reopens the file at `path` if it is still this generation: same inode, the head
    /// read so far unchanged and at least `read_offset` bytes. Returns false otherwise.
    pub fn reopen(&mut self, path: &Path) -> std::io::Result<bool> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if identity::file_id(&meta) != (self.identity.dev, self.identity.ino) || meta.len() < self.read_offset {
            return Ok(false);
        }
        if identity::read_head(&file, self.identity.head.len())? != self.identity.head {
            return Ok(false);
        }
        self.path = path.to_path_buf();
        self.file = Some(file);
        Ok(true)
    }

    /// True when the file still starts with the bytes this generation began with. Uses
    /// the open descriptor, or opens `path` for the check when closed.
    pub fn head_unchanged(&self, path: &Path) -> std::io::Result<bool> {
        let n = self.identity.head.len();
        let head = match &self.file {
            Some(f) => identity::read_head(f, n)?,
            None => identity::read_head(&File::open(path)?, n)?,
        };
        Ok(head == self.identity.head)
    }

    /// The checkpoint for everything emitted so far.
    pub fn checkpoint(&self) -> Checkpoint {
        self.snapshot().checkpoint()
    }

    /// What [`FileReader::checkpoint`] gives now, with the head still as bytes: digesting
    /// it is left to when the checkpoint is needed (a read keeps one in case the file
    /// turns out rewritten, and almost never needs it).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            checkpoint: Checkpoint {
                file_key: self.key.clone(),
                source: self.source.clone(),
                path: self.path.display().to_string(),
                dev: self.identity.dev,
                ino: self.identity.ino,
                fingerprint: identity::HeadPrint::default(),
                offset: self.decoder.checkpoint_offset(),
                state: self.decoder.resume_state(),
            },
            head: self.identity.head.clone(),
        }
    }

    /// Reads up to `budget` bytes (in reads of up to `READ_BUFFER_BYTES`, straight into
    /// the decoder's buffer), decoding into a chunk. Returns `None` when nothing new was
    /// read and nothing was emitted.
    pub fn read_some(&mut self, budget: usize, normalizer: &Normalizer) -> Result<Option<Chunk>, ReadError> {
        let path = self.path.clone();
        let io = |e| ReadError::Io { path: path.clone(), source: e };
        self.last_read_bytes = 0;
        let Some(mut file) = self.file.take() else {
            return Ok(None);
        };
        let result = self.read_into(&mut file, budget);
        self.file = Some(file);
        let read_total = result.map_err(io)?;
        self.last_read_bytes = read_total as u64;
        if read_total > 0 {
            self.last_bytes_at = std::time::Instant::now();
        }
        if read_total == 0 && self.items.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.take_chunk(normalizer)))
    }

    fn read_into(&mut self, file: &mut File, budget: usize) -> std::io::Result<usize> {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(self.read_offset))?;
        let mut read_total = 0usize;
        self.at_eof = false;
        while read_total < budget {
            // The read lands in the decoder's buffer, not in one of ours to be copied
            // from. The decoder frames and discards over-long records itself; the tailer
            // never holds more than that buffer.
            let (head, offset) = (&mut self.identity.head, self.read_offset);
            let seen = |data: &[u8]| extend_head(head, offset, data);
            let n = self.decoder.feed_from(file, READ_BUFFER_BYTES, seen, &mut self.items)?;
            if n == 0 {
                self.at_eof = true;
                break;
            }
            self.read_offset += n as u64;
            read_total += n;
        }
        Ok(read_total)
    }

    /// The stream is idle: let the decoder emit a held multi-line record.
    pub fn flush(&mut self, normalizer: &Normalizer) -> Option<Chunk> {
        self.decoder.flush(&mut self.items);
        if self.items.is_empty() {
            return None;
        }
        Some(self.take_chunk(normalizer))
    }

    /// The generation is closed for good: emit an unterminated last record too.
    pub fn finish(&mut self, normalizer: &Normalizer) -> Chunk {
        self.decoder.finish(&mut self.items);
        self.take_chunk(normalizer)
    }

    fn take_chunk(&mut self, normalizer: &Normalizer) -> Chunk {
        let mut chunk = Chunk { source: self.source.clone(), ..Chunk::default() };
        normalizer.report_parse_errors(&self.source, &self.path.display().to_string(), &self.items);
        // Drains the items, moving their strings into the events.
        normalizer.process_owned(&self.source, &self.key, &mut self.items, Utc::now(), chunk.output());
        chunk.checkpoint = Some(self.checkpoint());
        chunk
    }
}

/// Sends a replayed chunk once its events fit in `budget` (see [`EventBudget`]).
fn send_within(budget: &EventBudget, tx: &mpsc::Sender<Chunk>, chunk: Chunk) -> Result<(), ReadError> {
    if !budget.take_blocking(chunk.records()) {
        return Err(ReadError::WriterGone);
    }
    tx.blocking_send(chunk).map_err(|_| ReadError::WriterGone)
}

/// Replays one whole file (from byte 0, whatever its checkpoint says) into `tx`,
/// never more than `budget` events ahead of the writer. The file's checkpoint is added to
/// `checkpoints`, so that the same file (or a copy) named again in the same run keeps
/// its key and its records without ids are duplicates, as in a later run.
///
/// Once `stop` is set it sends nothing more, not even the record the last read cut in
/// two: what it sent is complete, and a later replay reads the whole file again.
pub fn replay_file(
    source: &SourceSettings,
    path: &Path,
    checkpoints: &mut Vec<Checkpoint>,
    normalizer: &Normalizer,
    tx: &mpsc::Sender<Chunk>,
    budget: &EventBudget,
    stop: &AtomicBool,
) -> Result<(), ReadError> {
    let mut reader = FileReader::open(source, path, checkpoints, |_| 0)?;
    if reader.read_offset != 0 {
        // Known file: keep its key (so lines without ids deduplicate) but read it all.
        let file = reader
            .file
            .take()
            .ok_or_else(|| ReadError::Io { path: path.to_path_buf(), source: std::io::Error::other("file closed") })?;
        reader = FileReader::new(source, reader.path.clone(), Some(file), reader.identity, reader.key, 0, "");
    }
    while let Some(chunk) = reader.read_some(4 * READ_BUFFER_BYTES, normalizer)? {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        send_within(budget, tx, chunk)?;
        if reader.at_eof {
            break;
        }
    }
    if stop.load(Ordering::Relaxed) {
        return Ok(());
    }
    let last = reader.finish(normalizer);
    normalizer.finish_parse_errors(&source.name, &path.display().to_string());
    if let Some(cp) = &last.checkpoint {
        checkpoints.push(cp.clone());
    }
    send_within(budget, tx, last)
}

/// What one read of a pipe returns at most with Linux's default pipe size: a full read
/// means more is waiting.
const PIPE_CAPACITY: usize = 64 * 1024;

/// Replays standard input (see [`replay_stream`]).
pub fn replay_stdin(
    source: &SourceSettings,
    normalizer: &Normalizer,
    tx: &mpsc::Sender<Chunk>,
    budget: &EventBudget,
    stop: &AtomicBool,
) -> Result<(), ReadError> {
    replay_stream(source, std::io::stdin().lock(), Path::new("-"), normalizer, tx, budget, stop)
}

/// Replays a stream that is no regular file: standard input, a pipe (`<(zcat
/// PT1H.json.gz)`), a device. Lines without ids are keyed by a hash of the stream's
/// first bytes, so replaying the same input twice does not double-count. Like
/// [`replay_file`], never more than `budget` events ahead of the writer, and sending
/// nothing more once `stop` is set (checked after every read).
pub fn replay_stream(
    source: &SourceSettings,
    mut stdin: impl Read,
    path: &Path,
    normalizer: &Normalizer,
    tx: &mpsc::Sender<Chunk>,
    budget: &EventBudget,
    stop: &AtomicBool,
) -> Result<(), ReadError> {
    use sha2::{Digest, Sha256};
    let io = |e| ReadError::Io { path: path.to_path_buf(), source: e };
    let origin = path.display().to_string();
    let origin = if origin == "-" { "stdin".to_string() } else { origin };
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut first = Vec::new();
    while first.len() < READ_BUFFER_BYTES {
        let n = stdin.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        first.extend_from_slice(&buf[..n]);
    }
    // Compressed bytes (`replay - < x.gz`) are no text: said so, before any is decoded.
    if let Some(kind) = crate::ingest::tail::compression_of(&first) {
        let why = format!("is {kind}-compressed: decompress it first (zcat, bzcat, xzcat or zstdcat)");
        return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidData, why)));
    }
    let digest = Sha256::digest(&first);
    let mut key = String::from("stdin-");
    crate::hex::push_hex(&mut key, &digest[..12]);
    let mut decoder = StreamDecoder::new(decode_options(source));
    let mut items = Vec::new();
    let send = |items: &mut Vec<DecodedItem>| -> Result<(), ReadError> {
        let mut chunk = Chunk { source: source.name.clone(), ..Chunk::default() };
        normalizer.report_parse_errors(&source.name, &origin, items);
        normalizer.process_owned(&source.name, &key, items, Utc::now(), chunk.output());
        send_within(budget, tx, chunk)
    };
    decoder.feed(&first, &mut items);
    send(&mut items)?;
    loop {
        let n = stdin.read(&mut buf).map_err(io)?;
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if n == 0 {
            break;
        }
        decoder.feed(&buf[..n], &mut items);
        // A read short of a pipe's capacity means the writer is slow or paused: send what
        // is decoded, so that it commits when the input pauses (and is in the summary of
        // a replay stopped by a signal) instead of waiting for a thousand more records.
        if items.len() >= 1000 || n < PIPE_CAPACITY {
            send(&mut items)?;
        }
    }
    decoder.finish(&mut items);
    let sent = send(&mut items);
    normalizer.finish_parse_errors(&source.name, &origin);
    sent
}

/// A reader's checkpoint taken before its head is digested ([`FileReader::snapshot`]).
#[derive(Debug)]
pub struct Snapshot {
    checkpoint: Checkpoint,
    head: Vec<u8>,
}

impl Snapshot {
    /// The checkpoint, its head digested.
    pub fn checkpoint(self) -> Checkpoint {
        Checkpoint { fingerprint: identity::HeadPrint::of(&self.head), ..self.checkpoint }
    }
}

/// Extends a file's `head` (its first bytes, up to `FINGERPRINT_BYTES`) with `data`, read
/// at `offset`: only bytes that continue the head count.
fn extend_head(head: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let have = head.len() as u64;
    if have >= FINGERPRINT_BYTES as u64 || offset > have {
        return;
    }
    let skip = (have - offset) as usize;
    if skip < data.len() {
        let take = (FINGERPRINT_BYTES - head.len()).min(data.len() - skip);
        head.extend_from_slice(&data[skip..skip + take]);
    }
}
