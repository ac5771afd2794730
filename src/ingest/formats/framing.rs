//! `StreamDecoder`: frames records out of a byte stream fed in arbitrary chunks.
//!
//! The stream is a sequence of top-level units, each sniffed on its own (so a file may
//! mix shapes line by line):
//! - `{` starts an object: an Event Hubs / Graph envelope (`records` / `value` first, see
//!   `scan::sniff_envelope`) is streamed element by element; any other object is one
//!   record, on one line (fast path: the line is handed to serde directly) or pretty-printed
//!   over many (framed with `scan::Scanner`), ending with its line (trailing garbage ignored);
//! - `[` starts an array, streamed element by element;
//! - a timestamp-led line starts a Passport text record, held until the next record starts
//!   (continuation lines), `flush()` or `finish()`; a line that is a whole Entra sign-in,
//!   Passport `ndjson` entry, envelope or array of them, or a CSV header, starts the next
//!   record too;
//! - a header row naming `TimeGenerated` switches the rest of the stream to portal CSV;
//! - `log show` / `log stream` banners and headers are skipped.
//!
//! Only the record being framed (or a held Passport record) is buffered. A record longer
//! than `max_record_bytes` is dropped while it streams past and reported once, when its end
//! is seen, so that every decision depends on the bytes alone and never on the chunking.
//! Every such length is measured from the record's first byte to its end (newline
//! excluded).
//!
//! A JSON line cut short (a writer crash) whose cut falls outside a string looks like the
//! first line of a pretty-printed object. When the next line starts a record of its own (a
//! whole JSON record, or a timestamp-led line), the cut line alone is an error item.
//! Known limit: otherwise the lines after it are read as that object's continuation until
//! it closes or exceeds `max_record_bytes` (one error item). A cut inside a string is
//! caught at once (raw newline in a string).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::azure::{auto_label, is_signin, to_signin};
use super::passport::{
    decide, decide_text, leading_timestamp_len, starts_with_timestamp, Matcher, PassportFields, Prefilter,
};
use super::record::{field_of, text_of, with_obj, JsonFail, Obj, F};
use super::scan::{count_nl, csv_cells, is_banner, is_rule, sniff_envelope, trim_ascii, Scan, Scanner, Sniff};
use super::{DecodeOptions, DecodedItem, Format, ItemKind, ParseErrorReason};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether `a` starts with a UTF-8 BOM: `Some(true)` / `Some(false)`, or `None` while the
/// bytes so far are only the start of one (the rest may be in the next chunk).
fn starts_with_bom(a: &[u8], eof: bool) -> Option<bool> {
    if a.first() != Some(&BOM[0]) {
        return Some(false);
    }
    let n = a.len().min(BOM.len());
    if a[..n] != BOM[..n] {
        Some(false)
    } else if n == BOM.len() {
        Some(true)
    } else if eof {
        Some(false)
    } else {
        None
    }
}

/// A portal CSV header: the cells as written (for the checkpoint) and their fields.
#[derive(Debug, PartialEq)]
struct CsvHeader {
    text: String,
    fields: Vec<F>,
}

impl CsvHeader {
    fn parse(text: &str) -> Option<Self> {
        let cells = csv_cells(text)?;
        let names: Vec<&str> = cells.iter().map(|c| c.trim_start_matches('\u{feff}')).collect();
        // The Entra admin center's own download of the sign-in logs names its columns for
        // people ("Date (UTC)", "Sign-in error code"), and its "Status" is a word
        // ("Failure"), not Log Analytics' object: read by those names alone.
        let admin_center = names.iter().any(|n| admin_center_column(n) == Some(F::ResultType));
        let fields = names
            .iter()
            .map(|n| if admin_center { admin_center_column(n).unwrap_or(F::Other) } else { field_of(n) })
            .collect();
        Some(Self { text: text.to_owned(), fields })
    }
}

/// The field of a column of the Entra admin center's sign-in log download (Monitoring →
/// Sign-in logs → Download → CSV), by its name with case, spaces and punctuation left out.
fn admin_center_column(name: &str) -> Option<F> {
    let key: String = name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    Some(match key.as_str() {
        "dateutc" | "date" => F::TimeGenerated,
        "requestid" => F::Id,
        "correlationid" => F::CorrelationId,
        "username" => F::Upn,
        "user" => F::Identity,
        "application" => F::AppName,
        "applicationid" => F::AppId,
        "ipaddress" => F::Ip,
        "signinerrorcode" => F::ResultType,
        "failurereason" => F::ResultDescription,
        "clientapp" => F::ClientApp,
        "tokenissuertype" => F::TokenIssuerType,
        "authenticationprotocol" => F::AuthProtocol,
        // The directory signed in to, as the other shapes give it (a guest's home tenant
        // is another directory).
        "resourcetenantid" => F::AadTenantId,
        _ => return None,
    })
}

/// Where the framer is between records.
#[derive(Debug, Clone)]
enum Mode {
    /// Between top-level units.
    Top,
    /// Inside a streamed array; `env` when the array is an envelope's member.
    Array { env: bool },
    /// After an envelope's array: skipping the rest of the object to its `}`.
    EnvTail(Scanner),
    /// The rest of a line after a top-level array or envelope (`step_linetail`).
    LineTail,
    /// Inside a line longer than `max_record_bytes` that holds JSON values one after
    /// another (`{…}{…}` or `{…},{…}` for megabytes, or records separated by bare CRs):
    /// each value is read on its own, bounded like a record (`step_values_on_line`).
    ValuesOnLine,
    /// Trailing garbage after a value: passed over, unread, to the line's end.
    SkipLine,
    /// A stream that is not UTF-8 (UTF-16, by its byte-order mark): reported once, then
    /// passed over to its end, whatever is appended.
    Discard,
    /// Portal CSV rows under this header.
    Csv(Arc<CsvHeader>),
}

/// Why bytes are being dropped (a record longer than `max_record_bytes`).
#[derive(Debug, Clone, Copy)]
enum DropUntil {
    Newline,
    /// Until the value ends, then (`then_newline`) the end of its line.
    Value {
        sc: Scanner,
        then_newline: bool,
    },
    CsvRow {
        in_quotes: bool,
    },
}

/// The record at `pos` while it is being framed.
#[derive(Debug, Clone, Copy)]
enum Work {
    None,
    /// A top-level object spanning lines; `end` (relative to `pos`) once it closed.
    Value {
        sc: Scanner,
        scanned: usize,
        end: Option<usize>,
    },
    /// An array element.
    Elem {
        sc: Scanner,
        scanned: usize,
    },
    /// A CSV row.
    Row {
        scanned: usize,
        in_quotes: bool,
    },
    /// A too-long record started at `start` (stream offset) on `line`.
    Drop {
        start: u64,
        line: u64,
        until: DropUntil,
    },
}

/// Whether a line reads as part of a Passport message rather than a record of its own:
/// Entra's trailer lines (`Trace ID:`, `Correlation ID:`, `Timestamp:`), a token body's
/// brackets, or one of its keys (`"error_codes" : [50126]`; not a quoted CSV row or a
/// quoted message alone on its line).
fn looks_like_continuation(line: &[u8]) -> bool {
    let trimmed = trim_ascii(line);
    let json_key = || {
        let rest = trimmed.strip_prefix(b"\"")?;
        let close = rest.iter().position(|b| *b == b'"')?;
        trim_ascii(&rest[close + 1..]).first().map(|b| *b == b':')
    };
    matches!(trimmed.first(), Some(b'{' | b'}' | b'[' | b']'))
        || json_key() == Some(true)
        || [TRACE_ID, CORRELATION_ID, TIMESTAMP].iter().any(|label| starts_ignoring_case(trimmed, label))
}

/// The labels of the trailer Entra ends an error description with, one line each, in
/// this order (lower case).
const TRACE_ID: &[u8] = b"trace id:";
const CORRELATION_ID: &[u8] = b"correlation id:";
const TIMESTAMP: &[u8] = b"timestamp:";

/// Whether `line` starts with `prefix` (lower-case ASCII) in any casing.
fn starts_ignoring_case(line: &[u8], prefix: &[u8]) -> bool {
    line.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Whether a line is a whole JSON record of its own: an Entra sign-in, a Passport
/// `ndjson` entry, or an Event Hubs / Graph envelope of them. After a held Passport text
/// record, such a line starts the next record (a file mixing shapes line by line); any
/// other line, JSON included (a token endpoint's error body that the message printed on a
/// line of its own), continues the held message.
fn is_json_record(line: &[u8]) -> bool {
    with_obj(line, |r, _| {
        r.is_ok_and(|o| {
            o.event_message_seen
                || is_signin(&o)
                || holds_records(o.records.as_deref())
                || holds_records(o.value.as_deref())
        })
    })
}

/// Whether an envelope's `records` / `value` array is one of records: empty (a page with
/// no sign-ins) or starting with a record. Any other object with such an array (an error
/// body's `"value":[…]`) is not an envelope.
fn holds_records(list: Option<&[&serde_json::value::RawValue]>) -> bool {
    list.is_some_and(|l| l.first().map_or(true, |first| is_json_record(first.get().as_bytes())))
}

/// Whether a line, from its first byte, is a record that no pretty-printed object would
/// hold that way: a whole JSON record (see [`is_json_record`]) or a timestamp-led text line.
fn starts_own_record(line: &[u8]) -> bool {
    (line.first() == Some(&b'{') && is_json_record(line)) || starts_with_timestamp(line)
}

/// Whether a line is a whole JSON array whose first element is such a record.
fn is_json_array_of_records(line: &[u8]) -> bool {
    serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(line)
        .ok()
        .and_then(|items| items.first().map(|first| is_json_record(first.get().as_bytes())))
        .unwrap_or(false)
}

/// A Passport text record held for continuation lines (stream offsets).
#[derive(Debug, Clone, Copy)]
struct Pending {
    start: u64,
    end: u64,
    line: u64,
    /// Longer than `max_record_bytes`: it will be one `line_too_long` error, its bytes are
    /// no longer kept, and its further lines are swallowed as they come (so that neither
    /// a cut-short message nor its rest as orphan lines is reported).
    overlong: bool,
    /// `end` is inside a line of an overlong record, whose rest is swallowed first.
    in_line: bool,
    /// Its head's time is in an hour the export's clock is repeating (see `LocalClock`).
    second_pass: bool,
}

/// The clock of a text export whose times carry no offset (the compact style), as its
/// record heads give it: when it goes back within an hour (a DST fall-back repeats the
/// hour), the heads after that, in the repeated hour, are that hour's second pass. Without
/// this, both readings of 01:30 were the first (one failure lost as a duplicate of the
/// other, or stored an hour early).
#[derive(Debug, Clone, Copy, Default)]
struct LocalClock {
    /// The last head's `YYYY-MM-DD HH:MM:SS`.
    last: Option<[u8; 19]>,
    /// The `YYYY-MM-DD HH` being repeated, while it lasts.
    repeated_hour: Option<[u8; 13]>,
}

impl LocalClock {
    /// Notes a head's time (`line` starts with it; `stamp_len` from `leading_timestamp_len`)
    /// and says whether it is in an hour being repeated. A time with an offset is
    /// unambiguous: never.
    fn second_pass(&mut self, line: &[u8], stamp_len: usize) -> bool {
        let Some(stamp) = line.get(..19).and_then(|s| <[u8; 19]>::try_from(s).ok()) else {
            return false;
        };
        if line.get(19..stamp_len).is_some_and(|zone| zone.iter().any(|b| matches!(b, b'Z' | b'+' | b'-'))) {
            return false;
        }
        let two = |s: &[u8; 19], at: usize| {
            u32::from(s[at].wrapping_sub(b'0')) * 10 + u32::from(s[at + 1].wrapping_sub(b'0'))
        };
        let seconds = |s: &[u8; 19]| two(s, 11) * 3600 + two(s, 14) * 60 + two(s, 17);
        if let Some(last) = self.last {
            // Back by a minute or more within one hour: the hour starts again. (Entries a
            // few hundred milliseconds out of order are not a fall-back.)
            let same_hour = stamp[..13] == last[..13];
            if same_hour && seconds(&last).saturating_sub(seconds(&stamp)) >= 60 {
                self.repeated_hour = <[u8; 13]>::try_from(&stamp[..13]).ok();
            }
        }
        if self.repeated_hour.is_some_and(|h| h[..] != stamp[..13]) {
            self.repeated_hour = None;
        }
        self.last = Some(stamp);
        self.repeated_hour.is_some()
    }
}

/// Whether a line longer than `max_record_bytes` starts a record of its own rather than
/// continuing a held text message, judged from its first bytes alone (it is too long to
/// be decoded, and may not be whole yet): a timestamp-led line, or a JSON value.
fn overlong_starts_record(line: &[u8]) -> bool {
    starts_with_timestamp(line) || matches!(line.first(), Some(b'{' | b'['))
}

/// The framing state at a checkpoint.
#[derive(Debug, Clone)]
struct Saved {
    line: u64,
    mode: SavedMode,
    prev_text: bool,
    leading: bool,
}

#[derive(Debug, Clone)]
enum SavedMode {
    Top,
    Array,
    Envelope,
    EnvTail,
    LineTail,
    ValuesOnLine,
    SkipLine,
    Discard,
    Csv(Arc<CsvHeader>),
}

/// `resume_state()` as stored: short keys, JSON so that a CSV header survives any bytes.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Wire {
    #[serde(default)]
    l: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    m: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    t: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    h: Option<String>,
    /// No record head read yet (`StreamDecoder::leading`); absent in older checkpoints,
    /// which resume as past it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    o: bool,
}

/// The decoder's buffer: `data[..len]` is the unframed tail of the stream; the rest of
/// `data` is room kept initialized, so that a read can land in it directly (no copy from a
/// separate read buffer, and no zeroing before every read).
#[derive(Debug, Default)]
struct StreamBuf {
    data: Vec<u8>,
    len: usize,
    /// How much the next read asks for (0: not read yet).
    read_size: usize,
}

/// The first read's size. Each read that fills what it asked for doubles the next one (up
/// to the caller's maximum): a tailed file with small appends keeps a small buffer (a
/// source may hold hundreds of files open), and a replay reaches full-size reads at once.
const FIRST_READ_BYTES: usize = 16 * 1024;

impl std::ops::Deref for StreamBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl StreamBuf {
    /// Room for `want` more bytes after the tail (grown, never shrunk: it is reused).
    fn spare(&mut self, want: usize) -> &mut [u8] {
        let end = self.len + want;
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        &mut self.data[self.len..end]
    }

    /// Takes the first `n` bytes of the room into the tail; returns them.
    fn commit(&mut self, n: usize) -> &[u8] {
        let start = self.len;
        self.len = (start + n).min(self.data.len());
        &self.data[start..self.len]
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.spare(bytes.len()).copy_from_slice(bytes);
        self.commit(bytes.len());
    }

    /// Drops the first `n` bytes of the tail.
    fn drain_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.data.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

/// Decodes one stream (a file generation, stdin, an HTTP body) fed in arbitrary chunks.
#[derive(Debug)]
pub struct StreamDecoder {
    opts: DecodeOptions,
    matcher: Matcher,
    /// Skips Passport chatter without decoding it; `None` when off (see `set_prefilter`)
    /// or when the format cannot hold Passport records.
    prefilter: Option<Prefilter>,
    buf: StreamBuf,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// First byte of `buf` not yet framed.
    pos: usize,
    /// Line number at `pos`.
    line: u64,
    /// How far past `pos` the newline search already looked.
    nl_scan: usize,
    mode: Mode,
    work: Work,
    pending: Option<Pending>,
    /// The previous top-level record was Passport text: orphan continuation lines after it
    /// (e.g. after `flush()`) are skipped rather than reported as unknown.
    prev_text: bool,
    /// No record head has been read since this decoder started: lines that read as a
    /// message's rest are the orphans of a message cut before the start (a file read from
    /// its end, the new file of a copytruncate), not lines to report.
    leading: bool,
    /// The last element of the array being read was malformed JSON (cut short, or too
    /// long): if the stream ends there, that element is the error of the cut.
    last_element_broken: bool,
    /// The clock of the text records' heads (see `LocalClock`).
    local_clock: LocalClock,
    ckpt_off: u64,
    ckpt: Saved,
}

impl StreamDecoder {
    /// A new stream at offset 0.
    pub fn new(opts: DecodeOptions) -> Self {
        Self::resume(opts, 0, "")
    }

    /// Continues a stream from a checkpoint: `offset` and `state` as `checkpoint_offset()`
    /// and `resume_state()` gave them. An empty or unreadable state resumes between
    /// top-level records, counting lines from 1.
    pub fn resume(opts: DecodeOptions, offset: u64, state: &str) -> Self {
        let wire: Wire =
            if state.is_empty() { Wire::default() } else { serde_json::from_str(state).unwrap_or_default() };
        let header = wire.h.as_deref().and_then(CsvHeader::parse).map(Arc::new);
        let mode = match (wire.m.as_str(), header) {
            ("arr", _) => Mode::Array { env: false },
            ("env", _) => Mode::Array { env: true },
            ("envtail", _) => Mode::EnvTail(Scanner::inside_object()),
            ("tail", _) => Mode::LineTail,
            ("values", _) => Mode::ValuesOnLine,
            ("discard", _) => Mode::Discard,
            ("skipline", _) => Mode::SkipLine,
            ("csv", Some(h)) => Mode::Csv(h),
            _ => Mode::Top,
        };
        let matcher = Matcher::new(&opts.passport);
        let prefilter = matches!(opts.format, Format::Auto | Format::Passport).then(Prefilter::default);
        let mut d = Self {
            opts,
            matcher,
            prefilter,
            buf: StreamBuf::default(),
            base: offset,
            pos: 0,
            line: wire.l.max(1),
            nl_scan: 0,
            mode,
            work: Work::None,
            pending: None,
            prev_text: wire.t,
            // A stream from its start (no state) has read no head yet.
            leading: state.is_empty() || wire.o,
            last_element_broken: false,
            local_clock: LocalClock::default(),
            ckpt_off: offset,
            ckpt: Saved { line: 1, mode: SavedMode::Top, prev_text: false, leading: true },
        };
        d.mark();
        d
    }

    /// Turns the chatter prefilter off or back on (it is on for `auto` and `passport`). The
    /// prefilter skips, from the raw bytes, Passport records that cannot be anything but
    /// chatter; the items are the same either way, which the equivalence tests check by
    /// decoding with it off.
    pub fn set_prefilter(&mut self, on: bool) {
        let can = matches!(self.opts.format, Format::Auto | Format::Passport);
        self.prefilter = (on && can).then(Prefilter::default);
    }

    /// The next bytes of the stream; pushes an item for every record now complete.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<DecodedItem>) {
        self.buf.extend_from_slice(chunk);
        self.run(out, false);
        self.compact();
    }

    /// Like [`StreamDecoder::feed`] with one `read` of up to `max` bytes from `src`, which
    /// lands in the decoder's own buffer instead of being copied there (the first read
    /// asks for less; see `FIRST_READ_BYTES`). `seen` gets the bytes read before they are
    /// framed. Returns how many were read (0: end of input).
    pub fn feed_from(
        &mut self,
        src: &mut impl std::io::Read,
        max: usize,
        seen: impl FnOnce(&[u8]),
        out: &mut Vec<DecodedItem>,
    ) -> std::io::Result<usize> {
        let want = self.buf.read_size.max(FIRST_READ_BYTES).min(max.max(1));
        let n = src.read(self.buf.spare(want))?;
        self.buf.read_size = if n == want { want.saturating_mul(2) } else { want };
        seen(self.buf.commit(n));
        if n > 0 {
            self.run(out, false);
            self.compact();
        }
        Ok(n)
    }

    /// The stream is idle: emits a held Passport text record (all of its lines are
    /// complete, and no line is being written after them; a continuation arriving later
    /// is skipped), or a last line without its newline that is one whole JSON object.
    pub fn flush(&mut self, out: &mut Vec<DecodedItem>) {
        // A line still being written after a held message may be its next line ("Trace
        // ID", "Correlation ID: …" arriving in two writes): the message waits for it.
        // A line being written that already starts with a timestamp is the next record's
        // head, not the held message's next line: the message is whole (a block-buffered
        // writer's block may end anywhere in the next line, and wait long for the rest).
        let next_record_begun =
            self.pending.is_some_and(|p| !p.in_line) && self.text_ok() && starts_with_timestamp(&self.buf[self.pos..]);
        let line_in_progress =
            (self.pos < self.buf.len() && !next_record_begun) || self.pending.is_some_and(|p| p.in_line);
        if self.pending.is_some() && !line_in_progress {
            self.emit_pending(out);
            self.mark();
            self.compact();
        } else if self.pending.is_some_and(|p| !p.in_line) && self.rest_is_one_rule_line() {
            // A held message, then a whole line of dashes whose next line is not there: the
            // rule waits to see whether `log show`'s counts follow it (then it ends the
            // message). Idle, the file says no more: decided as at its end.
            self.run(out, true);
            self.mark();
            self.compact();
        } else if self.holds_whole_unterminated_object() || self.holds_unterminated_csv_row() {
            // An hourly `PT1H.json` blob or a CSV export may end without a newline and never
            // grow again: its last record would wait for ever. A whole JSON object cannot be
            // the start of a longer line, so it is decoded now; a newline that follows is
            // blank. A CSV row with all its cells has waited (`holds_unterminated_row`) for
            // the rest of a cell still being written.
            self.run(out, true);
            self.mark();
            self.compact();
        }
    }

    /// Whether all that is left is one whole line (its newline included) of dashes.
    fn rest_is_one_rule_line(&self) -> bool {
        let rest = &self.buf[self.pos..];
        rest.last() == Some(&b'\n') && memchr::memchr(b'\n', rest) == Some(rest.len() - 1) && is_rule(rest)
    }

    /// Whether all that is left is one line without its newline holding exactly one
    /// whole JSON object (and blanks): a record, not a line still being written.
    fn holds_whole_unterminated_object(&self) -> bool {
        if !matches!(self.mode, Mode::Top) || !matches!(self.work, Work::None) {
            return false;
        }
        let rest = &self.buf[self.pos..];
        let value = trim_ascii(rest);
        value.first() == Some(&b'{')
            && value.last() == Some(&b'}')
            && !self.too_long(rest.len())
            && memchr::memchr(b'\n', rest).is_none()
            && serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok()
    }

    /// Whether all that is left is one CSV row without its newline, outside quotes, with
    /// as many cells as the header: an export's last row, or a row still being written.
    fn holds_unterminated_csv_row(&self) -> bool {
        let Mode::Csv(header) = &self.mode else {
            return false;
        };
        if !matches!(self.work, Work::None | Work::Row { .. }) {
            return false;
        }
        let rest = &self.buf[self.pos..];
        let row = trim_ascii(rest);
        !row.is_empty()
            && !self.too_long(rest.len())
            && memchr::memchr(b'\n', rest).is_none()
            && row.iter().filter(|b| **b == b'"').count() % 2 == 0
            && std::str::from_utf8(row).ok().and_then(csv_cells).is_some_and(|cells| cells.len() == header.fields.len())
    }

    /// Whether an unterminated CSV row is held (see `holds_unterminated_csv_row`): a tailer
    /// waits a moment for the rest of its last cell before `flush` decodes it.
    pub fn holds_unterminated_row(&self) -> bool {
        self.holds_unterminated_csv_row()
    }

    /// Whether a Passport text record is held whose token-endpoint body is still open
    /// (from the `{` that starts a JSON object, more `{`/`[` than `}`/`]` outside its
    /// strings): the rest of the body is to come, however late a block-buffered writer
    /// delivers it. A stray bracket in the message's own words is no body.
    pub fn holds_open_body(&self) -> bool {
        self.pending
            .is_some_and(|p| !p.overlong && open_json_depth(json_body_start(&self.buf[self.pending_range(p)])) > 0)
    }

    /// Whether a Passport text record is held whose last line is an Entra error's `Trace ID:`
    /// or `Correlation ID:` line: Entra ends that trailer with its `Timestamp:` line, still
    /// to come however late a block-buffered writer delivers it (cut there, the message
    /// would lose its correlation id and read differently from its copy in another export).
    pub fn holds_open_trailer(&self) -> bool {
        self.pending.is_some_and(|p| {
            if p.overlong {
                return false;
            }
            let text = trim_ascii(&self.buf[self.pending_range(p)]);
            let mut lines = text.rsplit(|b| *b == b'\n').map(trim_ascii);
            match lines.next() {
                // (Not the message's first line: a trailer follows a description.)
                Some(last) if text.contains(&b'\n') && starts_ignoring_case(last, TRACE_ID) => true,
                // A Correlation ID line alone is a message of its own making; after Entra's
                // Trace ID line, its Timestamp line is to come.
                Some(last) if starts_ignoring_case(last, CORRELATION_ID) => {
                    lines.next().is_some_and(|l| starts_ignoring_case(l, TRACE_ID))
                }
                _ => false,
            }
        })
    }

    /// Whether a Passport text record is held whose text, trailing blanks aside, ends
    /// with `:`: it announces more ("Token request failed:", then the token endpoint's
    /// body on the next line), which a writer may deliver in a later write. A tailer
    /// waits a little before `flush` for such a record.
    pub fn holds_open_ended_record(&self) -> bool {
        self.holds_text_record_ending_with_colon()
    }

    /// Whether a Passport text record is held: its next line may still come (a writer
    /// that writes a message line by line), so a tailer waits a moment before `flush`.
    pub fn holds_text_record(&self) -> bool {
        self.pending.is_some()
    }

    fn holds_text_record_ending_with_colon(&self) -> bool {
        self.pending.is_some_and(|p| !p.overlong && trim_ascii(&self.buf[self.pending_range(p)]).last() == Some(&b':'))
    }

    /// Where a held text record's bytes are in the buffer.
    fn pending_range(&self, p: Pending) -> std::ops::Range<usize> {
        let e = usize::try_from(p.end - self.base).unwrap_or(0).min(self.buf.len());
        usize::try_from(p.start - self.base).unwrap_or(0).min(e)..e
    }

    /// End of stream for good: also decodes an unterminated last record.
    pub fn finish(&mut self, out: &mut Vec<DecodedItem>) {
        self.run(out, true);
        if self.pending.is_some() {
            self.emit_pending(out);
        }
        if let Work::Drop { start, line, .. } = self.work {
            self.advance(self.buf.len() - self.pos);
            self.work = Work::None;
            let end = self.abs(self.pos);
            push(out, start, end, line, ItemKind::Error(ParseErrorReason::LineTooLong));
            self.last_element_broken = true;
        }
        if matches!(self.mode, Mode::Array { .. } | Mode::EnvTail(_)) {
            // An array or envelope never closed: the stream was cut (an upload or a copy
            // that stopped short). Cut inside a record, that record is the error already;
            // cut between records (`{"records": [` and nothing more), this says so.
            let cut_inside_a_record = matches!(self.mode, Mode::Array { .. }) && self.last_element_broken;
            if !cut_inside_a_record {
                let at = self.abs(self.buf.len());
                push(out, at, at, self.line, ItemKind::Error(ParseErrorReason::InvalidJson));
            }
            self.mode = Mode::Top;
        }
        self.work = Work::None;
        self.mark();
        self.compact();
    }

    /// Every byte before this offset has been emitted as items (or was framing only):
    /// restarting here with `resume_state()` loses and duplicates nothing.
    pub fn checkpoint_offset(&self) -> u64 {
        self.ckpt_off
    }

    /// The framing state to store with `checkpoint_offset()`; `""` at the start of a
    /// stream. Carries the line number, whether the checkpoint is inside a streamed array
    /// or envelope, and the CSV header.
    pub fn resume_state(&self) -> String {
        let s = &self.ckpt;
        let (m, h) = match &s.mode {
            SavedMode::Top => ("", None),
            SavedMode::Array => ("arr", None),
            SavedMode::Envelope => ("env", None),
            SavedMode::EnvTail => ("envtail", None),
            SavedMode::LineTail => ("tail", None),
            SavedMode::ValuesOnLine => ("values", None),
            SavedMode::Discard => ("discard", None),
            SavedMode::SkipLine => ("skipline", None),
            SavedMode::Csv(h) => ("csv", Some(h.text.clone())),
        };
        if s.line <= 1 && m.is_empty() && !s.prev_text && s.leading {
            return String::new();
        }
        let w = Wire { l: s.line, m: m.to_owned(), t: s.prev_text, h, o: s.leading };
        serde_json::to_string(&w).unwrap_or_default()
    }

    /// Bytes currently held between feeds (an incomplete record, a held Passport record):
    /// bounded by about `max_record_bytes` plus one chunk.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    fn abs(&self, idx: usize) -> u64 {
        self.base + idx as u64
    }

    fn advance(&mut self, n: usize) {
        let to = self.pos + n;
        self.line += count_nl(&self.buf[self.pos..to]);
        self.pos = to;
        self.nl_scan = 0;
    }

    /// Moves past the line `[pos, next)` that `line_end` found: it holds no newline
    /// before `nl` and one at `nl` unless it ends the input, so there is nothing to count
    /// (recounting them took about 4 % of the CPU samples of an ndjson replay).
    fn advance_line(&mut self, nl: usize, next: usize) {
        debug_assert_eq!(count_nl(&self.buf[self.pos..next]), u64::from(next > nl));
        self.line += u64::from(next > nl);
        self.pos = next;
        self.nl_scan = 0;
    }

    /// Moves past the run of bytes at `pos` that `sep` takes (blanks, separators between
    /// values), with a checkpoint after it; whether there was one.
    fn skip_while(&mut self, sep: impl Fn(&u8) -> bool) -> bool {
        let n = self.buf[self.pos..].iter().take_while(|c| sep(c)).count();
        if n > 0 {
            self.advance(n);
            self.mark();
        }
        n > 0
    }

    /// Records a checkpoint here, when nothing before `pos` is still owed.
    fn mark(&mut self) {
        if self.pending.is_some() || !matches!(self.work, Work::None) {
            return;
        }
        let mode = match &self.mode {
            Mode::Top => SavedMode::Top,
            Mode::Array { env: false } => SavedMode::Array,
            Mode::Array { env: true } => SavedMode::Envelope,
            Mode::EnvTail(_) => SavedMode::EnvTail,
            Mode::LineTail => SavedMode::LineTail,
            Mode::ValuesOnLine => SavedMode::ValuesOnLine,
            Mode::Discard => SavedMode::Discard,
            Mode::SkipLine => SavedMode::SkipLine,
            Mode::Csv(h) => SavedMode::Csv(h.clone()),
        };
        self.ckpt_off = self.abs(self.pos);
        self.ckpt = Saved { line: self.line, mode, prev_text: self.prev_text, leading: self.leading };
    }

    fn compact(&mut self) {
        let keep = match self.pending {
            // An overlong record's bytes are not needed: it is reported by its offsets.
            Some(p) if !p.overlong => usize::try_from(p.start.saturating_sub(self.base)).unwrap_or(0).min(self.pos),
            _ => self.pos,
        };
        if keep > 0 {
            self.buf.drain_front(keep);
            self.base += keep as u64;
            self.pos -= keep;
        }
    }

    fn run(&mut self, out: &mut Vec<DecodedItem>, eof: bool) {
        loop {
            let progressed = match self.work {
                Work::Drop { .. } => self.step_drop(out, eof),
                Work::Value { .. } => self.step_value(out, eof),
                Work::Elem { .. } => self.step_elem(out, eof),
                Work::Row { .. } => self.step_row(out, eof),
                Work::None => match self.mode {
                    Mode::Top => self.step_top(out, eof),
                    Mode::Array { .. } => self.step_array(out, eof),
                    Mode::EnvTail(_) => self.step_envtail(),
                    Mode::LineTail => self.step_linetail(),
                    Mode::ValuesOnLine => self.step_values_on_line(eof),
                    Mode::Discard => self.step_discard(),
                    Mode::SkipLine => self.step_skipline(),
                    Mode::Csv(_) => self.step_csv(eof),
                },
            };
            if !progressed {
                break;
            }
        }
    }

    /// The line at `pos`: `(raw_end, next)` where `raw_end` is the newline's index (or the
    /// buffer's end at eof) and `next` the index after it.
    fn line_end(&mut self, eof: bool) -> Option<(usize, usize)> {
        let from = self.pos + self.nl_scan;
        match memchr::memchr(b'\n', &self.buf[from..]) {
            Some(k) => Some((from + k, from + k + 1)),
            None => {
                self.nl_scan = self.buf.len() - self.pos;
                eof.then_some((self.buf.len(), self.buf.len()))
            }
        }
    }

    fn too_long(&self, raw_len: usize) -> bool {
        raw_len > self.opts.max_record_bytes
    }

    fn too_long_u64(&self, raw_len: u64) -> bool {
        raw_len > self.opts.max_record_bytes as u64
    }

    /// Starts dropping the record at `pos` (already known to be too long).
    fn start_drop(&mut self, until: DropUntil) {
        self.work = Work::Drop { start: self.abs(self.pos), line: self.line, until };
        self.advance(self.buf.len() - self.pos);
    }

    fn emit_pending(&mut self, out: &mut Vec<DecodedItem>) {
        let Some(p) = self.pending.take() else {
            return;
        };
        if p.overlong {
            push(out, p.start, p.end, p.line, ItemKind::Error(ParseErrorReason::LineTooLong));
            self.prev_text = true;
            return;
        }
        let range = self.pending_range(p);
        let text = &self.buf[range];
        let kind = if self.too_long(text.len()) {
            ItemKind::Error(ParseErrorReason::LineTooLong)
        } else if self.prefilter.as_mut().is_some_and(|p| p.text_is_chatter(text)) {
            ItemKind::Skipped
        } else {
            // A byte that is not UTF-8 (a legacy-encoded letter) reads as `?`, as in a
            // JSON record (`replace_invalid_utf8`): it must not cost the whole message.
            decide_text(text_of(text).trim_end(), &self.matcher, self.opts.default_tz, p.second_pass)
        };
        push(out, p.start, p.end, p.line, kind);
        self.prev_text = true;
    }

    fn step_top(&mut self, out: &mut Vec<DecodedItem>, eof: bool) -> bool {
        if let Some(p) = self.pending.filter(|p| p.in_line) {
            return self.swallow_line(p, eof);
        }
        if self.abs(self.pos) == 0 {
            // A UTF-16 byte-order mark (little- or big-endian) at the start of the stream.
            match self.buf.get(..2) {
                Some([0xFF, 0xFE] | [0xFE, 0xFF]) => {
                    self.advance(2);
                    push(out, 0, 2, self.line, ItemKind::Error(ParseErrorReason::Utf16));
                    self.mode = Mode::Discard;
                    self.mark();
                    return true;
                }
                None if !eof && matches!(self.buf.first(), Some(0xFF | 0xFE)) => return false,
                _ => {}
            }
        }
        // NUL counts as blank between records: a file extended before a crash and written
        // after it holds a run of NULs where the lost bytes were, and the records the
        // writer appends after them must still be read.
        if self.skip_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'\0')) {
            return true;
        }
        // A BOM where a line starts, not only at byte 0: files each starting with one
        // concatenated (`cat a.json b.json`), or a shipper writing BOM'd bodies.
        if let Some(progress) = self.skip_bom_at(eof) {
            return progress;
        }
        let a = &self.buf[self.pos..];
        let Some(&c) = a.first() else {
            return false;
        };
        if self.pending.is_none() && c == b',' {
            // `{…}, {…}` whose first record was read on its own (the writer paused after
            // it, and the tailer emits a whole object once the file is idle): the comma
            // separates it from the next, as on one line read at once.
            let gap = a.iter().take_while(|c| matches!(c, b',' | b' ' | b'\t' | b'\r' | b'\n')).count();
            match a.get(gap) {
                Some(b'{' | b'[') => {
                    self.advance(gap);
                    self.mark();
                    return true;
                }
                None if !eof && !self.too_long(a.len()) => return false,
                _ => {}
            }
        }
        if self.pending.is_none() && c == b'{' {
            return self.top_object(out, eof);
        }
        if self.pending.is_none() && c == b'[' {
            self.advance(1);
            self.mode = Mode::Array { env: false };
            self.prev_text = false;
            self.mark();
            return true;
        }
        let Some((nl, next)) = self.line_end(eof) else {
            if self.too_long(self.buf.len() - self.pos) {
                let own = overlong_starts_record(&self.buf[self.pos..]);
                if let Some(p) = self.pending.filter(|_| !own) {
                    // A continuation line too long to hold: the message is one error.
                    let p = Pending { overlong: true, in_line: true, ..p };
                    self.pending = Some(p);
                    return self.swallow_line(p, eof);
                }
                if self.pending.is_some() {
                    self.emit_pending(out);
                    self.mark();
                    return true;
                }
                if self.text_ok() && starts_with_timestamp(&self.buf[self.pos..]) {
                    // A message whose first line is too long: swallowed with its
                    // continuation lines, as one error.
                    let (start, line) = (self.abs(self.pos), self.line);
                    let p = Pending { start, end: start, line, overlong: true, in_line: true, second_pass: false };
                    self.pending = Some(p);
                    return self.swallow_line(p, eof);
                }
                self.prev_text = false;
                self.start_drop(DropUntil::Newline);
                return true;
            }
            return false;
        };
        let raw = &self.buf[self.pos..nl];
        let starts_record = if self.too_long(nl - self.pos) {
            // Judged as if the line were still being written (see above), so that the
            // outcome does not depend on how the bytes were read.
            overlong_starts_record(raw)
        } else if self.pending.is_some() && is_rule(raw) {
            // A line of dashes ends `log show`'s output, before its `Log - Default: …`
            // counts; inside a message it is the message's own (a response body framed by
            // rules). The line after it tells them apart.
            match memchr::memchr(b'\n', &self.buf[next..]) {
                Some(k) => is_banner(&self.buf[next..next + k]) && !is_rule(&self.buf[next..next + k]),
                None if eof => true,
                None if self.too_long(self.buf.len() - next) => false,
                None => return false,
            }
        } else {
            starts_with_timestamp(raw)
                || is_banner(raw)
                || (self.pending.is_some()
                    && ((c == b'{' && is_json_record(raw))
                    || (c == b'[' && is_json_array_of_records(raw))
                    // The portal writes the column as `TimeGenerated`: a cheap test first,
                    // since a held message's every continuation line comes here.
                    || (memchr::memmem::find(raw, b"TimeGenerated").is_some() && self.csv_header(raw).is_some())))
        };
        if let Some(p) = self.pending {
            let new_end = self.base + next as u64;
            if !starts_record {
                // A message grown too long stays held (by its offsets only) and swallows
                // its further lines: it is one `line_too_long` error like the same entry
                // in an ndjson export, not a message cut short followed by orphan lines.
                let overlong = p.overlong || self.too_long(nl - self.pos) || self.too_long_u64(new_end - p.start);
                self.pending = Some(Pending { end: new_end, overlong, ..p });
                self.advance_line(nl, next);
                return true;
            }
            self.emit_pending(out);
            self.mark();
            return true;
        }
        self.text_line(out, nl, next);
        true
    }

    /// A BOM at `pos`, where a line or row starts: skipped (`Some(true)`, progress), or
    /// maybe one whose rest is still to come (`Some(false)`, wait); `None` when there is
    /// none.
    fn skip_bom_at(&mut self, eof: bool) -> Option<bool> {
        match starts_with_bom(&self.buf[self.pos..], eof) {
            Some(true) => {
                self.advance(BOM.len());
                self.mark();
                Some(true)
            }
            None => Some(false),
            Some(false) => None,
        }
    }

    /// Whether the format can hold Passport text records.
    fn text_ok(&self) -> bool {
        matches!(self.opts.format, Format::Auto | Format::Passport)
    }

    /// Swallows the rest of the line at `pos`, which belongs to the overlong held record
    /// `p` (`p.in_line`), as far as it has come.
    fn swallow_line(&mut self, p: Pending, eof: bool) -> bool {
        let a = &self.buf[self.pos..];
        let (n, whole) = match memchr::memchr(b'\n', a) {
            Some(k) => (k + 1, true),
            None => (a.len(), eof),
        };
        self.advance(n);
        self.pending = Some(Pending { end: self.abs(self.pos), in_line: !whole, ..p });
        // Progress only when the line ended: otherwise the rest is still to come.
        whole && n > 0
    }

    /// A complete non-JSON top-level line `[pos, nl)`, with no record held.
    fn text_line(&mut self, out: &mut Vec<DecodedItem>, nl: usize, next: usize) {
        let start = self.abs(self.pos);
        let end = self.abs(next);
        let line = self.line;
        let raw = &self.buf[self.pos..nl];
        let fmt = self.opts.format;
        let text_ok = matches!(fmt, Format::Auto | Format::Passport);
        let kind = if self.too_long(nl - self.pos) {
            if text_ok && starts_with_timestamp(raw) {
                // A message whose first line is too long: one error with its
                // continuation lines (held by offsets only), which are no orphans.
                self.pending = Some(Pending { start, end, line, overlong: true, in_line: false, second_pass: false });
                self.advance_line(nl, next);
                return;
            }
            ItemKind::Error(ParseErrorReason::LineTooLong)
        } else if is_banner(raw) {
            ItemKind::Skipped
        } else if let Some(stamp_len) = text_ok.then(|| leading_timestamp_len(raw)).flatten() {
            // Held whatever its bytes: `emit_pending` reads one that is not UTF-8 as `?`.
            let second_pass = self.local_clock.second_pass(raw, stamp_len);
            self.leading = false;
            self.pending = Some(Pending { start, end, line, overlong: false, in_line: false, second_pass });
            self.advance_line(nl, next);
            return;
        } else if std::str::from_utf8(raw).is_err() {
            ItemKind::Error(ParseErrorReason::InvalidUtf8)
        } else if let Some(h) = self.csv_header(raw) {
            self.mode = Mode::Csv(Arc::new(h));
            ItemKind::Skipped
        } else if self.prev_text && text_ok {
            // An orphan continuation of a text record already emitted (after `flush`).
            push(out, start, end, line, ItemKind::Skipped);
            self.advance_line(nl, next);
            self.mark();
            return;
        } else {
            match fmt {
                // The rest of a message whose head is not in this stream (a file read from
                // its end while a message was being written, the new file after a
                // copytruncate cut one): an orphan continuation, as after `flush`.
                Format::Passport if self.leading && looks_like_continuation(raw) => ItemKind::Skipped,
                // A line of no layout `log` writes (a `/var/log/system.log` line, a
                // shipper's wrapping): an error to report, as under `auto`, never a
                // failure passed over in silence.
                Format::Passport | Format::Auto => {
                    self.leading = false;
                    ItemKind::Error(ParseErrorReason::UnknownFormat)
                }
                _ => ItemKind::Error(ParseErrorReason::InvalidJson),
            }
        };
        self.prev_text = false;
        push(out, start, end, line, kind);
        self.advance_line(nl, next);
        self.mark();
    }

    fn csv_header(&self, raw: &[u8]) -> Option<CsvHeader> {
        if !matches!(self.opts.format, Format::Auto | Format::AzureLoganalytics) {
            return None;
        }
        let text = std::str::from_utf8(trim_ascii(raw)).ok()?;
        let h = CsvHeader::parse(text)?;
        let named = h.fields.contains(&F::TimeGenerated)
            || (self.opts.format == Format::AzureLoganalytics
                && h.fields.len() > 1
                && h.fields.iter().any(|f| *f != F::Other));
        named.then_some(h)
    }

    fn top_object(&mut self, out: &mut Vec<DecodedItem>, eof: bool) -> bool {
        match sniff_envelope(&self.buf[self.pos..], eof) {
            Sniff::NeedMore => return false,
            Sniff::Envelope(open) => {
                self.advance(open + 1);
                self.mode = Mode::Array { env: true };
                self.prev_text = false;
                self.mark();
                return true;
            }
            Sniff::No => {}
        }
        let Some((nl, next)) = self.line_end(eof) else {
            if self.too_long(self.buf.len() - self.pos) {
                // Too long for one record: maybe many, one after another.
                self.prev_text = false;
                self.mode = Mode::ValuesOnLine;
                return true;
            }
            return false;
        };
        self.prev_text = false;
        let start = self.abs(self.pos);
        let end = self.abs(next);
        if self.too_long(nl - self.pos) {
            self.mode = Mode::ValuesOnLine;
            return true;
        }
        let bytes = &self.buf[self.pos..nl];
        if self.prefilter.as_mut().is_some_and(|p| p.json_is_chatter(bytes)) {
            push(out, start, end, self.line, ItemKind::Skipped);
            self.advance_line(nl, next);
            self.mark();
            return true;
        }
        let (opts, matcher, line) = (&self.opts, &self.matcher, self.line);
        let mut next_object = None;
        let fail = with_obj(bytes, |r, bytes| match r {
            Ok(o) => {
                match o.next_object {
                    // Another object follows on this line: this one ends where it ends,
                    // and the next is read from where it begins, as a line of its own.
                    Some((this_end, next)) => {
                        let this_end_abs = start + this_end as u64;
                        dispatch(opts, matcher, &o, &bytes[..this_end], start, this_end_abs, line, out, false);
                        next_object = Some(next);
                    }
                    None => dispatch(opts, matcher, &o, bytes, start, end, line, out, false),
                }
                None
            }
            Err(f) => Some(f),
        });
        if let Some(next) = next_object {
            self.advance(next);
            self.mark();
            return true;
        }
        match fail {
            None | Some(JsonFail::Invalid) | Some(JsonFail::Utf8) => {
                if let Some(f) = fail {
                    push(out, start, end, self.line, ItemKind::Error(json_reason(f)));
                }
                self.advance_line(nl, next);
                self.mark();
            }
            Some(JsonFail::Eof) => {
                // An object left open at the end of its line is the first line of a
                // pretty-printed object, or a one-line record cut short (a writer that
                // crashed mid-line and then appended on). The next line tells them apart
                // when it starts a record of its own: then only this line is lost.
                let first_line_has_content = trim_ascii(bytes).len() > 1;
                if first_line_has_content {
                    // Waiting for the next line is bounded like any record: a line longer
                    // than `max_record_bytes` starts no record, judged as soon as that many
                    // bytes have come, whole or not (so the outcome never depends on chunking).
                    let following = match memchr::memchr(b'\n', &self.buf[next..]) {
                        Some(k) => Some(&self.buf[next..next + k]),
                        None if eof => Some(&self.buf[next..]),
                        None if self.too_long(self.buf.len() - next) => None,
                        None => return false,
                    };
                    let own = following.filter(|l| !self.too_long(l.len())).is_some_and(starts_own_record);
                    if own {
                        push(out, start, end, self.line, ItemKind::Error(ParseErrorReason::InvalidJson));
                        self.advance_line(nl, next);
                        self.mark();
                        return true;
                    }
                }
                self.work = Work::Value { sc: Scanner::default(), scanned: 0, end: None };
            }
        }
        true
    }

    fn step_value(&mut self, out: &mut Vec<DecodedItem>, eof: bool) -> bool {
        let Work::Value { mut sc, mut scanned, mut end } = self.work else {
            return false;
        };
        let start = self.abs(self.pos);
        let line = self.line;
        if end.is_none() {
            match sc.scan(&self.buf[self.pos + scanned..], true) {
                Scan::Done(n) => end = Some(scanned + n),
                Scan::Abort(n) => {
                    let nl = self.pos + scanned + n;
                    let kind = if self.too_long(nl - self.pos) {
                        ParseErrorReason::LineTooLong
                    } else {
                        ParseErrorReason::InvalidJson
                    };
                    push(out, start, self.abs(nl + 1), line, ItemKind::Error(kind));
                    self.work = Work::None;
                    self.advance(nl + 1 - self.pos);
                    self.mark();
                    return true;
                }
                Scan::More => {
                    let len = self.buf.len() - self.pos;
                    if eof {
                        let kind = if self.too_long(len) {
                            ParseErrorReason::LineTooLong
                        } else {
                            ParseErrorReason::InvalidJson
                        };
                        push(out, start, self.abs(self.buf.len()), line, ItemKind::Error(kind));
                        self.work = Work::None;
                        self.advance(len);
                        self.mark();
                        return true;
                    }
                    if self.too_long(len) {
                        self.start_drop(DropUntil::Value { sc, then_newline: true });
                        return true;
                    }
                    self.work = Work::Value { sc, scanned: len, end: None };
                    return false;
                }
            }
            scanned = self.buf.len() - self.pos;
            self.work = Work::Value { sc, scanned, end };
        }
        let Some(e) = end else {
            return false;
        };
        let from = self.pos + e;
        let (nl, next) = match memchr::memchr(b'\n', &self.buf[from..]) {
            Some(k) => (from + k, from + k + 1),
            None if eof => (self.buf.len(), self.buf.len()),
            None => {
                if self.too_long(self.buf.len() - self.pos) {
                    self.work = Work::None;
                    self.start_drop(DropUntil::Newline);
                    return true;
                }
                return false;
            }
        };
        let end_off = self.abs(next);
        if self.too_long(nl - self.pos) {
            push(out, start, end_off, line, ItemKind::Error(ParseErrorReason::LineTooLong));
        } else {
            let bytes = &self.buf[self.pos..self.pos + e];
            let (opts, matcher) = (&self.opts, &self.matcher);
            with_obj(bytes, |r, bytes| match r {
                Ok(o) => dispatch(opts, matcher, &o, bytes, start, end_off, line, out, false),
                Err(f) => push(out, start, end_off, line, ItemKind::Error(json_reason(f))),
            });
        }
        self.work = Work::None;
        self.advance(next - self.pos);
        self.mark();
        true
    }

    fn step_array(&mut self, out: &mut Vec<DecodedItem>, _eof: bool) -> bool {
        let Mode::Array { env } = self.mode else {
            return false;
        };
        if self.skip_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b',')) {
            return true;
        }
        let a = &self.buf[self.pos..];
        let Some(&c) = a.first() else {
            return false;
        };
        match c {
            b']' => {
                self.advance(1);
                self.mode = if env { Mode::EnvTail(Scanner::inside_object()) } else { Mode::LineTail };
                self.mark();
            }
            b'}' => {
                self.advance(1);
                self.mode = Mode::LineTail;
                self.mark();
            }
            _ => {
                self.work = Work::Elem { sc: Scanner::default(), scanned: 0 };
            }
        }
        let _ = out;
        true
    }

    fn step_elem(&mut self, out: &mut Vec<DecodedItem>, eof: bool) -> bool {
        let Work::Elem { mut sc, scanned } = self.work else {
            return false;
        };
        let env = matches!(self.mode, Mode::Array { env: true });
        let start = self.abs(self.pos);
        let line = self.line;
        // Whether the element is malformed or cut short (not merely too long but whole).
        let mut broken = true;
        let (e, kind) = match sc.scan(&self.buf[self.pos + scanned..], true) {
            Scan::Done(n) => {
                broken = false;
                let e = (scanned + n).max(1);
                let kind = if self.too_long(e) { Some(ItemKind::Error(ParseErrorReason::LineTooLong)) } else { None };
                (e, kind)
            }
            Scan::Abort(n) => {
                let nl = scanned + n;
                let r = if self.too_long(nl) { ParseErrorReason::LineTooLong } else { ParseErrorReason::InvalidJson };
                (nl + 1, Some(ItemKind::Error(r)))
            }
            Scan::More => {
                let len = self.buf.len() - self.pos;
                if eof {
                    let r =
                        if self.too_long(len) { ParseErrorReason::LineTooLong } else { ParseErrorReason::InvalidJson };
                    (len, Some(ItemKind::Error(r)))
                } else if self.too_long(len) {
                    self.start_drop(DropUntil::Value { sc, then_newline: false });
                    return true;
                } else {
                    self.work = Work::Elem { sc, scanned: len };
                    return false;
                }
            }
        };
        let end = self.abs(self.pos + e);
        self.last_element_broken = broken;
        match kind {
            Some(k) => push(out, start, end, line, k),
            None => {
                let bytes = &self.buf[self.pos..self.pos + e];
                if bytes[0] == b'{' && self.prefilter.as_mut().is_some_and(|p| p.json_is_chatter(bytes)) {
                    push(out, start, end, line, ItemKind::Skipped);
                } else if bytes[0] == b'{' {
                    let (opts, matcher) = (&self.opts, &self.matcher);
                    with_obj(bytes, |r, bytes| match r {
                        Ok(o) => dispatch(opts, matcher, &o, bytes, start, end, line, out, env),
                        Err(f) => push(out, start, end, line, ItemKind::Error(json_reason(f))),
                    });
                } else {
                    push(out, start, end, line, ItemKind::Error(ParseErrorReason::NotSignin));
                }
            }
        }
        self.work = Work::None;
        self.advance(e);
        self.end_values_line_at_newline();
        self.mark();
        true
    }

    /// A value of a long line that ended at its line's newline (cut short, or dropped up
    /// to it): the next line starts afresh.
    fn end_values_line_at_newline(&mut self) {
        if matches!(self.mode, Mode::ValuesOnLine) && self.pos > 0 && self.buf[self.pos - 1] == b'\n' {
            self.mode = Mode::Top;
        }
    }

    fn step_envtail(&mut self) -> bool {
        let Mode::EnvTail(mut sc) = self.mode else {
            return false;
        };
        let len = self.buf.len() - self.pos;
        if len == 0 {
            return false;
        }
        match sc.scan(&self.buf[self.pos..], false) {
            Scan::Done(n) => {
                self.advance(n);
                self.mode = Mode::LineTail;
                self.mark();
                true
            }
            Scan::More | Scan::Abort(_) => {
                self.mode = Mode::EnvTail(sc);
                self.advance(len);
                false
            }
        }
    }

    /// After a top-level array or envelope, or a value on a line too long for one record:
    /// what else the line holds. Another value (`{…}{…}`, `{…},{…}`, as `curl >>` appends
    /// Graph pages and some shippers write envelopes) is read as a line of its own;
    /// anything else is trailing garbage, ignored to the line's end as after a one-line
    /// record.
    fn step_linetail(&mut self) -> bool {
        let a = &self.buf[self.pos..];
        let skip = a.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b',')).count();
        match a.get(skip) {
            None => {
                // Separators only, so far: nothing is owed for them.
                self.advance(skip);
                self.mark();
                false
            }
            Some(b'\n' | b'{' | b'[') => {
                self.advance(skip);
                self.mode = Mode::Top;
                self.mark();
                true
            }
            Some(_) => {
                self.mode = Mode::SkipLine;
                true
            }
        }
    }

    /// Trailing garbage, passed over as it comes (never buffered) up to its line's end.
    fn step_skipline(&mut self) -> bool {
        let a = &self.buf[self.pos..];
        match memchr::memchr(b'\n', a) {
            Some(k) => {
                self.advance(k);
                self.mode = Mode::Top;
                self.mark();
                true
            }
            None => {
                if !a.is_empty() {
                    self.advance(a.len());
                    self.mark();
                }
                false
            }
        }
    }

    fn step_discard(&mut self) -> bool {
        let len = self.buf.len() - self.pos;
        if len > 0 {
            self.advance(len);
            self.mark();
        }
        false
    }

    /// One value of a line too long to be one record ([`Mode::ValuesOnLine`]): separators
    /// skipped, an envelope or array streamed as at a line's start, an object read as an
    /// array's element is (each bounded by `max_record_bytes` on its own), until the line
    /// ends. Anything else on the line is trailing garbage, ignored to its end.
    fn step_values_on_line(&mut self, eof: bool) -> bool {
        if self.skip_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b',' | b'\0')) {
            return true;
        }
        let a = &self.buf[self.pos..];
        match a.first() {
            None => false,
            Some(b'\n') => {
                self.advance(1);
                self.mode = Mode::Top;
                self.mark();
                true
            }
            Some(b'[') => {
                self.advance(1);
                self.mode = Mode::Array { env: false };
                self.mark();
                true
            }
            Some(b'{') => match sniff_envelope(a, eof) {
                Sniff::NeedMore => false,
                Sniff::Envelope(open) => {
                    self.advance(open + 1);
                    self.mode = Mode::Array { env: true };
                    self.mark();
                    true
                }
                Sniff::No => {
                    self.work = Work::Elem { sc: Scanner::on_one_line(), scanned: 0 };
                    true
                }
            },
            // Trailing garbage after a value, ignored as on any line (`step_linetail`).
            Some(_) => {
                self.mode = Mode::LineTail;
                true
            }
        }
    }

    fn step_csv(&mut self, eof: bool) -> bool {
        if self.skip_while(|c| matches!(c, b'\r' | b'\n')) {
            return true;
        }
        // A BOM starting a row: a second export appended with `cat` (its header follows).
        if let Some(progress) = self.skip_bom_at(eof) {
            return progress;
        }
        let a = &self.buf[self.pos..];
        if a.is_empty() {
            return false;
        }
        self.work = Work::Row { scanned: 0, in_quotes: false };
        true
    }

    fn step_row(&mut self, out: &mut Vec<DecodedItem>, eof: bool) -> bool {
        let Work::Row { mut scanned, mut in_quotes } = self.work else {
            return false;
        };
        let found = csv_row_end(&self.buf[self.pos..], &mut scanned, &mut in_quotes);
        let (nl, next) = match found {
            Some(nl) => (self.pos + nl, self.pos + nl + 1),
            None if eof => (self.buf.len(), self.buf.len()),
            None => {
                if self.too_long(self.buf.len() - self.pos) {
                    self.work = Work::None;
                    self.start_drop(DropUntil::CsvRow { in_quotes });
                    return true;
                }
                self.work = Work::Row { scanned, in_quotes };
                return false;
            }
        };
        let start = self.abs(self.pos);
        let end = self.abs(next);
        let line = self.line;
        let Mode::Csv(header) = self.mode.clone() else {
            return false;
        };
        let kind = if self.too_long(nl - self.pos) {
            ItemKind::Error(ParseErrorReason::LineTooLong)
        } else if found.is_none() && in_quotes {
            ItemKind::Error(ParseErrorReason::InvalidCsv)
        } else {
            let raw = &self.buf[self.pos..nl];
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            // A portal CSV re-saved by a spreadsheet in a legacy encoding: such a byte
            // reads as `?` rather than costing the row.
            let (kind, new_header) = csv_row(&self.opts, &header, &text_of(raw));
            if let Some(h) = new_header {
                self.mode = Mode::Csv(Arc::new(h));
            }
            kind
        };
        push(out, start, end, line, kind);
        self.work = Work::None;
        self.advance(next - self.pos);
        self.mark();
        true
    }

    fn step_drop(&mut self, out: &mut Vec<DecodedItem>, eof: bool) -> bool {
        let Work::Drop { start, line, until } = self.work else {
            return false;
        };
        let a = &self.buf[self.pos..];
        if a.is_empty() {
            return false;
        }
        let done_at = match until {
            DropUntil::Newline => memchr::memchr(b'\n', a).map(|k| k + 1),
            DropUntil::Value { mut sc, then_newline } => match sc.scan(a, true) {
                Scan::Done(n) if then_newline => {
                    self.advance(n);
                    self.work = Work::Drop { start, line, until: DropUntil::Newline };
                    return true;
                }
                Scan::Done(n) => Some(n),
                Scan::Abort(n) => Some(n + 1),
                Scan::More => {
                    self.work = Work::Drop { start, line, until: DropUntil::Value { sc, then_newline } };
                    None
                }
            },
            DropUntil::CsvRow { mut in_quotes } => {
                let mut scanned = 0;
                let r = csv_row_end(a, &mut scanned, &mut in_quotes).map(|k| k + 1);
                self.work = Work::Drop { start, line, until: DropUntil::CsvRow { in_quotes } };
                r
            }
        };
        match done_at {
            Some(n) => {
                self.advance(n);
                self.end_values_line_at_newline();
                self.work = Work::None;
                let end = self.abs(self.pos);
                push(out, start, end, line, ItemKind::Error(ParseErrorReason::LineTooLong));
                // Too long but whole: a stream that ends after it was cut after it.
                self.last_element_broken = false;
                self.mark();
                true
            }
            None => {
                self.advance(a.len());
                let _ = eof;
                false
            }
        }
    }
}

/// Whether `line` is the header of a sign-in CSV export, as the decoder knows one (it names
/// the time column: Log Analytics' `TimeGenerated [UTC]`, the admin center's `Date (UTC)`
/// or `Date`).
pub fn is_csv_export_header(line: &str) -> bool {
    csv_cells(line.trim()).is_some_and(|cells| {
        cells.len() > 1
            && cells.iter().any(|c| {
                let c = c.trim_start_matches('\u{feff}');
                (field_of(c) == F::TimeGenerated || admin_center_column(c) == Some(F::TimeGenerated))
                    && !c.bytes().any(|b| b.is_ascii_digit())
            })
    })
}

/// One CSV record under `h`; a repeated header row (a second export appended, whose
/// columns may come in another order) gives the header that replaces `h`.
fn csv_row(opts: &DecodeOptions, h: &CsvHeader, text: &str) -> (ItemKind, Option<CsvHeader>) {
    let Some(cells) = csv_cells(text) else {
        return (ItemKind::Error(ParseErrorReason::InvalidCsv), None);
    };
    // A header names the `TimeGenerated` column (the admin center's `Date (UTC)`) in any
    // position; a row holds a time there, which has digits.
    let names_the_time = |c: &str| {
        let c = c.trim_start_matches('\u{feff}');
        (field_of(c) == F::TimeGenerated || admin_center_column(c) == Some(F::TimeGenerated))
            && !c.bytes().any(|b| b.is_ascii_digit())
    };
    if cells.iter().any(|c| names_the_time(c)) {
        return (ItemKind::Skipped, CsvHeader::parse(text));
    }
    if cells.len() != h.fields.len() {
        return (ItemKind::Error(ParseErrorReason::InvalidCsv), None);
    }
    let mut o = Obj::default();
    for (f, c) in h.fields.iter().zip(cells) {
        if *f != F::Other && !c.trim().is_empty() {
            o.set_text(*f, c);
        }
    }
    let label = match opts.format {
        Format::Auto => "azure-loganalytics",
        f => f.as_str(),
    };
    (to_signin(&o, label, opts), None)
}

/// Index of the newline ending a CSV record (outside quotes), continuing from `scanned`.
/// `text` from the first `{` that starts a JSON object (followed, blanks aside, by a `"`
/// or by the line's end, as a pretty-printed body's first line is); empty when none.
fn json_body_start(text: &[u8]) -> &[u8] {
    let mut from = 0;
    while let Some(k) = memchr::memchr(b'{', &text[from..]) {
        let at = from + k;
        let next = text[at + 1..].iter().find(|b| !matches!(b, b' ' | b'\t'));
        if matches!(next, None | Some(b'"' | b'\n' | b'\r')) {
            return &text[at..];
        }
        from = at + 1;
    }
    &[]
}

/// How many JSON objects and arrays `text` leaves open, counted outside strings (never
/// below 0: a message's own stray `}` closes nothing).
fn open_json_depth(text: &[u8]) -> usize {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
}

fn csv_row_end(b: &[u8], scanned: &mut usize, in_quotes: &mut bool) -> Option<usize> {
    let mut i = *scanned;
    while let Some(k) = memchr::memchr2(b'"', b'\n', &b[i..]) {
        let j = i + k;
        if b[j] == b'"' {
            *in_quotes = !*in_quotes;
        } else if !*in_quotes {
            *scanned = j;
            return Some(j);
        }
        i = j + 1;
    }
    *scanned = b.len();
    None
}

fn json_reason(f: JsonFail) -> ParseErrorReason {
    match f {
        JsonFail::Utf8 => ParseErrorReason::InvalidUtf8,
        JsonFail::Eof | JsonFail::Invalid => ParseErrorReason::InvalidJson,
    }
}

fn push(out: &mut Vec<DecodedItem>, start: u64, end: u64, line: u64, kind: ItemKind) {
    out.push(DecodedItem { start_offset: start, end_offset: end, line, kind });
}

/// Turns one decoded object into items: an envelope's members (when `nested` is false) or
/// one record. `bytes` is the object's text (inner offsets are computed from it).
#[allow(clippy::too_many_arguments)]
fn dispatch(
    opts: &DecodeOptions,
    m: &Matcher,
    o: &Obj<'_>,
    bytes: &[u8],
    start: u64,
    end: u64,
    line: u64,
    out: &mut Vec<DecodedItem>,
    nested: bool,
) {
    if !nested && !o.event_message_seen && (o.records.is_some() || o.value.is_some()) {
        let base = bytes.as_ptr() as usize;
        for raw in o.records.iter().chain(o.value.iter()).flatten() {
            let rb = raw.get().as_bytes();
            let off = (rb.as_ptr() as usize).saturating_sub(base).min(bytes.len());
            let s = start + off as u64;
            let e = s + rb.len() as u64;
            let l = line + count_nl(&bytes[..off]);
            if rb.first() == Some(&b'{') {
                with_obj(rb, |r, rb| match r {
                    Ok(inner) => dispatch(opts, m, &inner, rb, s, e, l, out, true),
                    Err(f) => push(out, s, e, l, ItemKind::Error(json_reason(f))),
                });
            } else {
                push(out, s, e, l, ItemKind::Error(ParseErrorReason::NotSignin));
            }
        }
        return;
    }
    let kind = match opts.format {
        _ if is_log_trailer(bytes) => ItemKind::Skipped,
        Format::Passport => {
            if o.event_message_seen {
                passport_obj(opts, m, o)
            } else {
                ItemKind::Error(ParseErrorReason::NotSignin)
            }
        }
        Format::Auto => {
            if o.event_message_seen {
                passport_obj(opts, m, o)
            } else {
                to_signin(o, auto_label(o), opts)
            }
        }
        f => to_signin(o, f.as_str(), opts),
    };
    push(out, start, end, line, kind);
}

/// The summary object `log show --style ndjson` ends its output with,
/// `{"count":1,"finished":1}`: framing, like the banner, not an undecodable record.
pub(crate) fn is_log_trailer(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Trailer {
        #[serde(rename = "count")]
        _count: u64,
        #[serde(rename = "finished")]
        _finished: u64,
    }
    bytes.len() < 64 && bytes.starts_with(b"{\"count\"") && serde_json::from_slice::<Trailer>(bytes).is_ok()
}

fn passport_obj(opts: &DecodeOptions, m: &Matcher, o: &Obj<'_>) -> ItemKind {
    let f = PassportFields {
        timestamp: o.timestamp.get(),
        message_type: o.message_type.get(),
        message: o.event_message.0.as_deref().unwrap_or(""),
        subsystem: o.subsystem.get().unwrap_or(""),
        sender: o.sender_image_path.get().unwrap_or(""),
        process: o.process_image_path.get().unwrap_or(""),
        device: None,
        pid: o.process_id,
        second_pass: false,
    };
    decide(&f, m, opts.default_tz)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Hundreds of tailed files may be open at once: one that only ever sees short appends
    /// must not hold a full-size read buffer, while a long read reaches full-size reads.
    #[test]
    fn read_room_grows_only_with_what_reads_fill() {
        let line = b"{\"eventMessage\":\"Presenting Passport login window\"}\n";
        let mut d = StreamDecoder::new(DecodeOptions::default());
        let mut out = Vec::new();
        for _ in 0..100 {
            let n = d.feed_from(&mut &line[..], 256 * 1024, |_| {}, &mut out).unwrap();
            assert_eq!(n, line.len());
        }
        assert!(d.buf.data.len() <= FIRST_READ_BYTES + line.len(), "{} bytes held", d.buf.data.len());

        let big = line.repeat(20_000);
        let mut src = &big[..];
        let mut d = StreamDecoder::new(DecodeOptions::default());
        let mut sizes = Vec::new();
        while d.feed_from(&mut src, 256 * 1024, |b| sizes.push(b.len()), &mut out).unwrap() > 0 {}
        assert_eq!(&sizes[..6], &[16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 256 << 10]);
    }
}
