//! B: Kandji Passport unified-log records (ndjson / json objects and the text styles).
//!
//! Which records count is `PassportFilter`'s job; what a counted record becomes:
//! - message exactly `<private>` → `Redacted` (private data logging is off);
//! - message carrying an `AADSTSnnnnn` code or a token-endpoint error body
//!   (`{"error":..,"error_description":..,"error_codes":[..],"correlation_id":..}`) →
//!   `SignIn` with `message_codes`, `oauth_error`, `correlation_id` and the first e-mail
//!   address (UPN) in the message;
//! - `messageType` Error / Fault → `SignIn` (Passport logs failures at these levels);
//! - otherwise only clear outcome phrases make a `SignIn`: failure phrases
//!   ("authentication failed", "sign in failed", "login failed", "token request failed",
//!   "invalid_grant", ...) and success phrases ("authentication succeeded",
//!   "successfully authenticated", "signed in successfully", ...), the latter with
//!   `result_code = Some(0)`; a bare mention of "token" is chatter, not an outcome;
//! - everything else → `Skipped`.
//!
//! `result_code` stays `None` for every failure: Passport text carries no result code,
//! the catalogue decides from `message_codes` and message patterns.

use std::borrow::Cow;
use std::sync::{LazyLock, OnceLock};

use memchr::memmem;

use serde::Deserialize;

use super::record::{LCode, LStr};
use super::time::parse_timestamp;
use super::words::bytes_equal;
use super::{ItemKind, ParseErrorReason, PassportFilter, RawSignIn};

/// `PassportFilter` with its needles lower-cased once.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    subsystems: Vec<String>,
    senders: Vec<String>,
    processes: Vec<String>,
    any_aadsts: bool,
}

fn lower_all(v: &[String]) -> Vec<String> {
    v.iter().filter(|s| !s.is_empty()).map(|s| s.to_ascii_lowercase()).collect()
}

fn contains_ci(hay: &str, needle_lower: &str) -> bool {
    if needle_lower.len() > hay.len() {
        return false;
    }
    hay.as_bytes().windows(needle_lower.len()).any(|w| w.eq_ignore_ascii_case(needle_lower.as_bytes()))
}

impl Matcher {
    pub fn new(f: &PassportFilter) -> Self {
        Self {
            subsystems: lower_all(&f.subsystems),
            senders: lower_all(&f.sender_images),
            processes: lower_all(&f.processes),
            any_aadsts: f.any_aadsts_message,
        }
    }

    fn accepts(&self, r: &PassportFields<'_>) -> bool {
        self.subsystems.iter().any(|n| contains_ci(r.subsystem, n))
            || self.senders.iter().any(|n| contains_ci(r.sender, n))
            || self.processes.iter().any(|n| contains_ci(r.process, n))
            || ((self.any_aadsts || (r.subsystem.is_empty() && r.sender.is_empty() && passport_host(r.process)))
                && AADSTS.find(r.message.as_bytes()).is_some())
    }
}

/// A process a Passport record without a sender or subsystem may come from: none named,
/// or the authorization hosts Passport's plugin runs in (`MSTeams[612]:` is not one).
fn passport_host(process: &str) -> bool {
    let name = process.rsplit('/').next().unwrap_or(process);
    name.is_empty()
        || ["securityagent", "authorizationhost", "authd", "kandji", "passport"]
            .iter()
            .any(|host| contains_ci(name, host))
}

/// The fields of one Passport record, whatever style it came in.
#[derive(Debug, Default)]
pub(crate) struct PassportFields<'s> {
    pub timestamp: Option<&'s str>,
    pub message_type: Option<&'s str>,
    pub message: &'s str,
    pub subsystem: &'s str,
    pub sender: &'s str,
    pub process: &'s str,
    pub device: Option<&'s str>,
    /// The process id, when the style prints it (all of `log show`'s do).
    pub pid: Option<u32>,
    /// The time, written without an offset (the compact style), came after the export's
    /// clock went back within the hour (a DST fall-back): in the repeated hour it is the
    /// second reading, at the later offset.
    pub second_pass: bool,
}

const FAILURE_PHRASES: &[&str] = &[
    "authentication failed",
    "authentication failure",
    "auth failed",
    "sign in failed",
    "sign-in failed",
    "signin failed",
    "login failed",
    "log in failed",
    "token request failed",
    "failed to obtain token",
    "failed to acquire token",
    "failed to get token",
    "invalid_grant",
    "invalid_client",
    "interaction_required",
    "unauthorized_client",
    // Passport's other identity providers, as the shipped catalogue's entries for them
    // read: Okta's password grant, Google Workspace's Secure LDAP bind.
    "failed to authenticate",
    "credentials provided were invalid",
    "invalid credentials",
    "invalidcredentials",
    "bind failed",
    "authorization failed",
    "password verification failed",
    "login attempt failed",
    "sign in attempt failed",
    "sign-in attempt failed",
];

const SUCCESS_PHRASES: &[&str] = &[
    "authentication succeeded",
    "authentication successful",
    "successfully authenticated",
    "sign in succeeded",
    "sign-in succeeded",
    "signed in successfully",
    "login succeeded",
    "login successful",
];

/// Substrings at least one of which every outcome phrase contains ("fail" or "invalid"
/// or ... for failures, "succe" for successes). Most Passport lines are chatter that
/// contains none of them: five SIMD scans of the lower-cased line settle it, instead of
/// a byte-by-byte case-insensitive window over every phrase (30 % of the reader's time).
const FAILURE_ANCHORS: &[&str] = &["fail", "invalid", "interaction_required", "unauthorized_client"];
const SUCCESS_ANCHOR: &str = "succe";

/// `AADSTS`, built once: `memmem::find` builds its searcher on every call, which costs
/// more than the search itself on a short line.
static AADSTS: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new("AADSTS"));

/// Where a syslog-style line's process (`SecurityAgent[612]: `) ends and its message begins.
static SYSLOG_PROCESS_END: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new("]: "));

/// What may make a Passport record more than chatter, lower-cased: `decide` returns
/// `Skipped` for every record whose ASCII-lower-cased text contains none of these
/// (`aadsts`: a code; `<private>`: redaction; `error`: an error body's `"error` key or an
/// `Error` message type; `fault`: a `Fault` message type, see [`FAULT`]; the outcome
/// phrase anchors). The compact style's one-letter types (`E`, `F`) escape this and are
/// checked apart.
const CHATTER_ANCHORS: &[&str] = &[
    "aadsts",
    "<private>",
    "error",
    "fault",
    FAILURE_ANCHORS[0],
    FAILURE_ANCHORS[1],
    FAILURE_ANCHORS[2],
    FAILURE_ANCHORS[3],
    SUCCESS_ANCHOR,
];

/// The chatter anchors as one search: one vectorised pass over a line (aho-corasick's
/// Teddy, which serves only leftmost semantics) where a searcher per anchor made nine.
static CHATTER_ANCHOR_SET: LazyLock<Option<aho_corasick::AhoCorasick>> = LazyLock::new(|| {
    aho_corasick::AhoCorasick::builder().match_kind(aho_corasick::MatchKind::LeftmostFirst).build(CHATTER_ANCHORS).ok()
});

/// The index of `fault` in [`CHATTER_ANCHORS`]. It stands only for a `Fault` message type,
/// a value of its own once trimmed: in JSON after a quote or whitespace, in a text head
/// after the column's whitespace, never straight after a letter. `Default`, the commonest
/// type of all, holds it after `de`: counted as an anchor, it sent every Default-level
/// line of an ndjson export (a fifth of the benchmark's lines) to the full decoder, which
/// costs about twice what the skim of a chatter line does.
const FAULT: usize = 3;
const _: () = assert!(matches!(CHATTER_ANCHORS[FAULT].as_bytes(), b"fault"));

/// Settles, from the raw bytes and without parsing, that most Passport records are
/// chatter (`decide` would return `Skipped`). Answers only "surely chatter" or "don't
/// know"; the caller decodes everything it does not skip exactly as before.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefilter {
    /// The lower-cased record (reused between records).
    lower: Vec<u8>,
}

/// What one pass over a record's bytes saw.
struct Lowered {
    /// A byte below 0x20 (JSON forbids them in strings).
    control: bool,
    /// A backslash: a JSON escape can spell an anchor (`\u0041ADSTS`) or a key that the
    /// raw bytes do not show.
    backslash: bool,
    /// A byte above ASCII: without one the text is surely UTF-8.
    non_ascii: bool,
}

impl Prefilter {
    /// Lower-cases `text` into the scratch buffer in one branch-free pass that also notes
    /// control bytes and backslashes.
    fn lower(&mut self, text: &[u8]) -> Lowered {
        self.lower.clear();
        self.lower.reserve(text.len());
        let (mut control, mut backslash, mut non_ascii) = (false, false, false);
        self.lower.extend(text.iter().map(|&b| {
            control |= b < 0x20;
            backslash |= b == b'\\';
            non_ascii |= !b.is_ascii();
            b.to_ascii_lowercase()
        }));
        Lowered { control, backslash, non_ascii }
    }

    fn any_anchor(&self) -> bool {
        // Without the searcher (it cannot fail to build from these literals) nothing is
        // settled as chatter, which only costs time.
        let Some(set) = CHATTER_ANCHOR_SET.as_ref() else {
            return true;
        };
        let hay = &self.lower;
        let mut from = 0;
        while let Some(m) = set.find(aho_corasick::Input::new(hay).span(from..hay.len())) {
            let inside_a_word = m.start() > 0 && hay[m.start() - 1].is_ascii_alphabetic();
            if m.pattern().as_usize() != FAULT || !inside_a_word {
                return true;
            }
            // On from the next byte, not the match's end: another anchor may start inside.
            from = m.start() + 1;
        }
        false
    }

    /// True when the unified-log text record `text` (its head line and continuation
    /// lines, as read) is surely chatter.
    pub fn text_is_chatter(&mut self, text: &[u8]) -> bool {
        // `log show --style compact` writes the message type as `E` / `F` (Error / Fault).
        if compact_error_type(text) {
            return false;
        }
        let seen = self.lower(text);
        // A record that is not UTF-8 is left to the decoder, which reads each bad byte as
        // `?`: a catalogue pattern's `.` matches that `?` but not the byte, so these bytes
        // could hide a failure text. Only a record with a byte above ASCII can be one
        // (the lower-casing pass noted any), and most have none, so most chatter is
        // skipped without the check.
        if seen.non_ascii && std::str::from_utf8(text).is_err() {
            return false;
        }
        if self.any_anchor() {
            return false;
        }
        // A level-less line may be a failure by its message alone (`decide`). In the syslog
        // style the message follows `process[pid]: `: only that part is searched (the
        // header is half the line); any other line is searched whole.
        let message_at = SYSLOG_PROCESS_END.find(&self.lower).unwrap_or(0);
        !shipped_failure_text(&self.lower[message_at..])
    }

    /// True when `line` holds one JSON object that `parse_obj` surely decodes, whose top
    /// level has an `eventMessage` key (so it is decoded as a Passport record, not an
    /// Azure one or an envelope), and that is surely chatter.
    pub fn json_is_chatter(&mut self, line: &[u8]) -> bool {
        // One trailing CR (CRLF files) sits after the object, where serde ignores it.
        let body = line.strip_suffix(b"\r").unwrap_or(line);
        // The answer can only be yes when the key's 12 bytes are there as they are (an
        // escaped key means a backslash, which answers no below). Azure records (2–3 KB,
        // no such key) are let go after one quick scan instead of being lower-cased,
        // searched for anchors, UTF-8 checked and skimmed whole.
        if !has_event_message_bytes(body) {
            return false;
        }
        let seen = self.lower(body);
        if seen.control || seen.backslash || self.any_anchor() {
            return false;
        }
        // Only a line with a byte above ASCII can fail it (the lower-casing pass noted
        // any), and most lines have none.
        if seen.non_ascii && std::str::from_utf8(body).is_err() {
            return false;
        }
        let Some(skim) = skim_object(body) else {
            return false;
        };
        // An entry with no level (no `messageType`, or one that is null or blank) is
        // judged by its text as a level-less line is (`decide`): a failure message of the
        // catalogue counts.
        skim.event_message && (skim.has_level || !shipped_failure_text(&self.lower))
    }
}

/// Whether `b` holds `eventmessage` in any ASCII casing.
fn has_event_message_bytes(b: &[u8]) -> bool {
    const KEY: &[u8; 12] = b"eventmessage";
    // Anchored on the `v`, rarer in sign-in JSON than the other letters.
    memchr::memchr2_iter(b'v', b'V', b)
        .any(|at| at >= 1 && b.get(at - 1..at + 11).is_some_and(|w| w.eq_ignore_ascii_case(KEY)))
}

/// Whether the first token after a text line's timestamp is a compact-style Error / Fault
/// type (`E`, `Er`, `F`, `Ft`). CR and LF end a token here too, which can only say yes
/// more often than `parse_text_head`.
fn compact_error_type(text: &[u8]) -> bool {
    let Some(ts) = leading_timestamp_len(text) else {
        return false;
    };
    let rest = &text[ts..];
    let start = rest.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(rest.len());
    let rest = &rest[start..];
    let end = rest.iter().position(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')).unwrap_or(rest.len());
    matches!(&rest[..end], b"E" | b"Er" | b"F" | b"Ft")
}

/// What [`skim_object`] saw at an object's top level.
struct Skimmed {
    /// A key `eventMessage`, in any ASCII casing.
    event_message: bool,
    /// The record has a message type, as `LStr::get` reads the decoded one: the last
    /// `messageType` that is not null, an object or an array (those leave it as it was)
    /// is a number, a boolean, or a string that is not blank once trimmed.
    has_level: bool,
}

/// Validates, without building anything, that `b` starts with a JSON object that serde
/// decodes without error, and reports what its top level says (see [`Skimmed`]). Only a
/// subset is recognised: no escapes or control bytes (the caller checked), valid UTF-8
/// (likewise), integers of at most 18 digits (serde reads wider or fractional numbers as
/// floats, which can fail as out of range), nesting at most 32 deep (serde's limit is
/// 128); anything else is `None`, and the caller takes the full decoder. Like
/// `parse_obj`, it ignores what follows the object.
fn skim_object(b: &[u8]) -> Option<Skimmed> {
    let mut p = JsonSkim { b, i: 0, event_message: false, level: None };
    p.ws();
    p.object(0)?;
    let has_level = p.level.is_some_and(|v| std::str::from_utf8(v).is_ok_and(|v| !v.trim().is_empty()));
    Some(Skimmed { event_message: p.event_message, has_level })
}

/// Whether a top-level key names the message type as `record::field_of` reads keys: the
/// name in any ASCII casing, or (rarely) with whitespace around it or a CSV-style
/// `" [unit]"` suffix. Not `field_of` itself for every key: the skim meets some twenty
/// keys a line, and classifying each (or testing each against both names through one
/// helper) made the ndjson reader 4 % dearer; a length test settles most keys, and only
/// the rare key that needs trimming goes through `field_of`. (`eventMessage` is matched
/// exactly: a spelling the skim does not know takes the full decoder, which only costs
/// time.)
fn is_message_type_key(key: &[u8]) -> bool {
    const NAME: &[u8] = b"messagetype";
    match key.len().cmp(&NAME.len()) {
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => key.eq_ignore_ascii_case(NAME),
        std::cmp::Ordering::Greater => {
            // Only a key holding a space, a control or a non-ASCII byte can be trimmed or
            // split down to the name; the others are not worth `field_of`'s general path.
            super::record::has_space_control_or_non_ascii(key)
                && std::str::from_utf8(key).is_ok_and(|k| super::record::field_of(k) == super::record::F::MessageType)
        }
    }
}

/// The index of the first `"` in `b` at or after `from`. A record has some fifty strings,
/// its keys mostly under 16 bytes: the first 16 bytes are searched eight at a time, as
/// `memchr`'s vector search costs more to set up than that, and the rest (paths, UUIDs,
/// the message) by `memchr`.
fn next_quote(b: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    for _ in 0..2 {
        let Some(w) = b.get(at..).and_then(<[u8]>::first_chunk::<8>) else {
            return b.get(at..)?.iter().position(|&c| c == b'"').map(|k| at + k);
        };
        // The lowest mark (the first byte, read little-endian) is the first quote.
        let marks = bytes_equal(u64::from_le_bytes(*w), b'"');
        if marks != 0 {
            return Some(at + (marks.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr::memchr(b'"', b.get(at..)?).map(|k| at + k)
}

struct JsonSkim<'a> {
    b: &'a [u8],
    i: usize,
    event_message: bool,
    /// The value of the last top-level message type that sets one (see [`Skimmed`]):
    /// a string's contents, or a number's or a boolean's text.
    level: Option<&'a [u8]>,
}

impl<'a> JsonSkim<'a> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// Whitespace, `c`, whitespace. `log show` writes `: ` and `, ` (the byte and one
    /// space), taken here in one step instead of three tests: a record has some fifty
    /// (2 % of the reader's instructions on an ndjson export).
    fn separator(&mut self, c: u8) -> Option<()> {
        if self.b.get(self.i..self.i + 2) == Some(&[c, b' ']) {
            self.i += 2;
        } else {
            self.ws();
            self.eat(c)?;
        }
        self.ws();
        Some(())
    }

    /// After an object's member: `Some(true)` at its closing brace, `Some(false)` past the
    /// comma before the next member, `None` at anything else.
    fn next_member(&mut self) -> Option<bool> {
        if self.b.get(self.i..self.i + 2) == Some(b", ") {
            self.i += 2;
            self.ws();
            return Some(false);
        }
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(true);
        }
        self.eat(b',')?;
        self.ws();
        Some(false)
    }

    /// A string without escapes; returns its contents.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let b = self.b;
        let end = next_quote(b, self.i)?;
        let s = &b[self.i..end];
        self.i = end + 1;
        Some(s)
    }

    fn object(&mut self, depth: u32) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.string()?;
            let mut message_type = false;
            if depth == 0 {
                if key.len() == "eventmessage".len() && key.eq_ignore_ascii_case(b"eventmessage") {
                    self.event_message = true;
                }
                message_type = is_message_type_key(key);
            }
            self.separator(b':')?;
            let at = self.i;
            self.value(depth)?;
            if message_type {
                // As `LStr` decodes: null, an object or an array leaves the type as it was.
                let b = self.b;
                match b[at] {
                    b'"' => self.level = Some(&b[at + 1..self.i - 1]),
                    b'n' | b'{' | b'[' => {}
                    _ => self.level = Some(&b[at..self.i]),
                }
            }
            if self.next_member()? {
                return Some(());
            }
        }
    }

    fn array(&mut self, depth: u32) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            if self.eat(b']').is_some() {
                return Some(());
            }
            self.separator(b',')?;
        }
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => self.string().map(|_| ()),
            b'{' if depth < 32 => self.object(depth + 1),
            b'[' if depth < 32 => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b.get(self.i..self.i + word.len()).filter(|w| *w == word)?;
        self.i += word.len();
        self.delimited()
    }

    /// `-?(0|[1-9][0-9]{0,17})`, then a delimiter.
    fn integer(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        let digits = self.b[self.i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 18 || (digits > 1 && self.b[self.i] == b'0') {
            return None;
        }
        self.i += digits;
        self.delimited()
    }

    /// What may follow a scalar inside a container (serde rejects `truex`, `1.`, `1e`).
    fn delimited(&self) -> Option<()> {
        matches!(self.b.get(self.i), Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')).then_some(())
    }
}

/// Searchers for a list of needles, built once (building one costs more than a search of
/// a short message, and every record that passes the prefilter runs all of them).
fn finders(needles: &[&'static str]) -> Vec<memmem::Finder<'static>> {
    needles.iter().map(|n| memmem::Finder::new(n.as_bytes())).collect()
}

/// The shipped catalogue's failure message patterns ("you must use multi-factor
/// authentication to access", "\baccount is locked", …), searched in ASCII lower-cased
/// text. A record with no level (the syslog style prints none) whose message one of them
/// matches is a failure, as the same entry at Error level in an ndjson export is;
/// without it, such a message with no code in it was chatter in one style and a failure
/// in the other. `None` if the shipped catalogue had no pattern (it has).
static SHIPPED_FAILURE_TEXTS: LazyLock<Option<FailureTexts>> = LazyLock::new(|| {
    let catalogue = crate::classify::Catalogue::from_shipped().ok()?;
    let patterns: Vec<String> = catalogue
        .entries()
        .iter()
        .filter(|e| e.outcome == crate::event::Outcome::Failure)
        .flat_map(|e| e.patterns.iter().map(|p| lower_literals(p)))
        .collect();
    FailureTexts::new(&patterns)
});

/// Failure patterns, each searched only in a line that holds its longest required
/// literal, so that a pattern costly to search costs only on the lines that hold its
/// literal (one alternation of them all, run on any line holding any literal, paid for
/// every pattern on every such line: BENCHMARKS.md, eighteenth pass).
struct FailureTexts {
    /// Any literal at all: aho-corasick's SIMD search (Teddy), which serves only
    /// leftmost semantics; most lines hold none and stop here.
    gate: aho_corasick::AhoCorasick,
    /// The same literals with standard semantics, for every match, overlapping ones
    /// included (a leftmost search hides a literal inside or across another).
    overlapping: aho_corasick::AhoCorasick,
    /// For each literal, the patterns that require it.
    patterns_of: Vec<Vec<usize>>,
    /// The patterns without a required literal (none shipped): tried on every line.
    ungated: Vec<usize>,
    /// Each distinct pattern, compiled when first needed (a start-up that compiled them
    /// all cost more than a 100 k-line export's searches). One that does not compile
    /// (none shipped) matches nothing.
    patterns: Vec<LazyPattern>,
}

/// A pattern's source, and its regex once a line needed it.
struct LazyPattern {
    source: String,
    compiled: OnceLock<Option<regex::bytes::Regex>>,
}

impl LazyPattern {
    fn is_match(&self, lower: &[u8]) -> bool {
        let re = self.compiled.get_or_init(|| regex::bytes::Regex::new(&self.source).ok());
        re.as_ref().is_some_and(|re| re.is_match(lower))
    }
}

impl FailureTexts {
    fn new(sources: &[String]) -> Option<Self> {
        let (mut literals, mut patterns_of, mut ungated, mut patterns) =
            (Vec::<String>::new(), Vec::<Vec<usize>>::new(), Vec::new(), Vec::<LazyPattern>::new());
        for source in sources {
            // Two entries may share a pattern (50126 and its federated variant).
            if patterns.iter().any(|p| p.source == *source) {
                continue;
            }
            let index = patterns.len();
            patterns.push(LazyPattern { source: source.clone(), compiled: OnceLock::new() });
            let Some(literal) = required_literal(source).map(|l| search_window(&l).to_string()) else {
                ungated.push(index);
                continue;
            };
            match literals.iter().position(|l| *l == literal) {
                Some(at) => patterns_of[at].push(index),
                None => {
                    literals.push(literal);
                    patterns_of.push(vec![index]);
                }
            }
        }
        if patterns.is_empty() {
            return None;
        }
        let gate = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .build(&literals)
            .ok()?;
        let overlapping = aho_corasick::AhoCorasick::new(&literals).ok()?;
        Some(FailureTexts { gate, overlapping, patterns_of, ungated, patterns })
    }

    /// Whether ASCII-lower-cased `lower` holds one of the failure texts.
    fn is_match(&self, lower: &[u8]) -> bool {
        if self.ungated.iter().any(|&p| self.patterns[p].is_match(lower)) {
            return true;
        }
        // No literal starts before the gate's leftmost one.
        let Some(first) = self.gate.find(lower) else {
            return false;
        };
        let mut tried = vec![false; self.patterns.len()];
        let from = aho_corasick::Input::new(lower).span(first.start()..lower.len());
        for m in self.overlapping.find_overlapping_iter(from) {
            for &p in &self.patterns_of[m.pattern().as_usize()] {
                if !std::mem::replace(&mut tried[p], true) && self.patterns[p].is_match(lower) {
                    return true;
                }
            }
        }
        false
    }
}

/// The part of a required literal that [`FailureTexts`] searches for: its suffix from the
/// four bytes least common in English text, at least [`MIN_WINDOW`] bytes long (or all of
/// a shorter literal).
///
/// Teddy, aho-corasick's SIMD search, matches each literal's first four bytes by their
/// nibbles, then checks each candidate in full. Literals starting with common letters
/// (`acco`, `the `) made many positions of a chatter line candidates: from the rarest
/// start the gate does an eighth fewer instructions (BENCHMARKS.md, twenty-fourth pass).
/// A suffix of a required literal is required too, so no line the whole literal is in
/// goes unsearched.
fn search_window(literal: &str) -> &str {
    /// Lower-case letters from the commonest in English; the space is commoner still,
    /// and any other byte (digit, punctuation) rarer than them all.
    const BY_FREQUENCY: &[u8] = b" etaoinsrhldcumfpgwybvkxjqz";
    let rank = |b: &u8| BY_FREQUENCY.iter().position(|c| c == b).map_or(0, |p| BY_FREQUENCY.len() - p);
    let b = literal.as_bytes();
    let last = b.len().saturating_sub(MIN_WINDOW);
    let start = (0..=last)
        .filter(|&i| literal.is_char_boundary(i))
        // The first of equally rare starts, so that the window is the longest of them.
        .min_by_key(|&i| (b[i..].iter().take(4).map(rank).sum::<usize>(), i))
        .unwrap_or(0);
    &literal[start..]
}

/// The shortest window [`search_window`] cuts from a longer literal: long enough that it
/// is hardly ever in a line the whole literal is not in.
const MIN_WINDOW: usize = 8;

/// The longest run of plain characters (at least 3) that every match of `pattern`
/// contains: outside groups, classes and escapes, a character a quantifier makes optional
/// left out; `None` with an alternation at the top (no one literal is required then).
fn required_literal(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.chars().collect();
    // `class`: how deep inside `[…]` (classes nest: `[[:digit:]a-f]`).
    let (mut depth, mut class, mut best, mut run) = (0usize, 0usize, String::new(), String::new());
    let mut i = 0;
    let flush = |run: &mut String, best: &mut String| {
        if run.len() > best.len() {
            *best = run.clone();
        }
        run.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        let quantified = matches!(chars.get(i + 1), Some('?' | '*' | '+' | '{'));
        match c {
            '\\' => {
                flush(&mut run, &mut best);
                let escaped = chars.get(i + 1).copied();
                i += 2;
                if chars.get(i) == Some(&'{') && matches!(escaped, Some('p' | 'P' | 'x' | 'u' | 'U')) {
                    // `\p{Greek}`, `\x{41}`, `\u{…}`: the braces belong to the escape.
                    while i < chars.len() && chars[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    // `\pL`, `\x2f`, `\u002f`, `\U0001F600`: so do the letter or digits.
                    i += match escaped {
                        Some('p' | 'P') => 1,
                        Some('x') => 2,
                        Some('u') => 4,
                        Some('U') => 8,
                        _ => 0,
                    };
                }
                continue;
            }
            '{' if class == 0 => {
                // A counted repetition `{0,200}`: not text; what it repeats may be absent.
                flush(&mut run, &mut best);
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
            }
            '[' => {
                flush(&mut run, &mut best);
                class += 1;
                // A `]` first in a class (after any `^`) is one of its members.
                if chars.get(i + 1) == Some(&'^') {
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    i += 1;
                }
            }
            ']' if class > 0 => class -= 1,
            _ if class > 0 => {}
            '(' => {
                flush(&mut run, &mut best);
                // Whitespace and `#` comments are no text once a flag group at the top
                // (`(?x)`, `(?sx)`, `(?ix-m)`) turns on the `x` flag; inside a group
                // nothing is taken anyway.
                if depth == 0 && top_flags_enable_x(&chars[i + 1..]) {
                    return None;
                }
                depth += 1;
            }
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => return None,
            _ if depth > 0 => {}
            c if (c.is_ascii_alphanumeric() || " ',:/-_#=\"@".contains(c)) && !quantified => run.push(c),
            _ => flush(&mut run, &mut best),
        }
        i += 1;
    }
    flush(&mut run, &mut best);
    (best.len() >= 3).then_some(best)
}

/// Whether `after`, what follows a `(`, is a bare flag group (`?flags)`, not `?flags:…`)
/// that turns the `x` flag on.
fn top_flags_enable_x(after: &[char]) -> bool {
    let Some(('?', flags)) = after.split_first().map(|(c, rest)| (*c, rest)) else {
        return false;
    };
    let Some(end) = flags.iter().position(|c| !c.is_ascii_alphabetic() && *c != '-') else {
        return false;
    };
    // The flags before a `-` are turned on, those after it off.
    let turned_on = flags[..end].split(|c| *c == '-').next();
    flags[end] == ')' && turned_on.is_some_and(|on| on.contains(&'x'))
}

/// A catalogue pattern for ASCII-lower-cased text: its letters lower-cased, its escapes
/// (`\S`, `\W`, `\b`, `\p{…}`) as written. Matching lower-cased text with it is matching
/// the text case-insensitively, as the classifier does, for these patterns, and lets the
/// regex engine's literal prefilter work (a case-insensitive one multiplies literals).
fn lower_literals(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        out.push(c);
        let Some(escaped) = chars.next() else { break };
        out.push(escaped);
        if matches!(escaped, 'p' | 'P') {
            // `\pL`, `\p{Greek}`: the class name keeps its case.
            match chars.next() {
                Some('{') => {
                    out.push('{');
                    for n in chars.by_ref() {
                        out.push(n);
                        if n == '}' {
                            break;
                        }
                    }
                }
                Some(n) => out.push(n),
                None => {}
            }
        }
    }
    out
}

/// Whether ASCII-lower-cased `lower` holds a failure message of the shipped catalogue.
fn shipped_failure_text(lower: &[u8]) -> bool {
    SHIPPED_FAILURE_TEXTS.as_ref().is_some_and(|t| t.is_match(lower))
}

static FAILURE_ANCHOR_FINDERS: LazyLock<Vec<memmem::Finder<'static>>> = LazyLock::new(|| finders(FAILURE_ANCHORS));
static FAILURE_PHRASE_FINDERS: LazyLock<Vec<memmem::Finder<'static>>> = LazyLock::new(|| finders(FAILURE_PHRASES));
static SUCCESS_ANCHOR_FINDER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(SUCCESS_ANCHOR));
static SUCCESS_PHRASE_FINDERS: LazyLock<Vec<memmem::Finder<'static>>> = LazyLock::new(|| finders(SUCCESS_PHRASES));

fn any_of(finders: &[memmem::Finder<'static>], hay: &[u8]) -> bool {
    finders.iter().any(|f| f.find(hay).is_some())
}

/// (failure phrase present, success phrase present and no failure phrase).
fn outcome_phrases(msg: &str) -> (bool, bool) {
    let lower = msg.to_ascii_lowercase();
    let hay = lower.as_bytes();
    let failure = any_of(&FAILURE_ANCHOR_FINDERS, hay) && any_of(&FAILURE_PHRASE_FINDERS, hay);
    let success = !failure && SUCCESS_ANCHOR_FINDER.find(hay).is_some() && any_of(&SUCCESS_PHRASE_FINDERS, hay);
    (failure, success)
}

/// Decides what a Passport record is (see the module docs for the rules).
pub(crate) fn decide(r: &PassportFields<'_>, m: &Matcher, tz: chrono_tz::Tz) -> ItemKind {
    if !m.accepts(r) {
        return ItemKind::Skipped;
    }
    let msg = r.message.trim();
    if msg == "<private>" {
        return ItemKind::Redacted;
    }
    let mut codes = Vec::new();
    extract_codes(msg, &mut codes);
    let body = find_token_body(msg);
    let mut s = RawSignIn { format: "passport", ..RawSignIn::default() };
    if let Some(b) = &body {
        // As the classifier reads `error_codes` in text: 5 to 7 digits. A 0 or a 123 is
        // no AADSTS code (0 would read as a success).
        for c in &b.error_codes {
            if let Some(c) = c.0.filter(|c| (10_000..=9_999_999).contains(c)) {
                push_code(&mut codes, c);
            }
        }
        s.oauth_error = b.error.owned();
        s.correlation_id = b.correlation_id.owned();
    }
    let is_error_level =
        r.message_type.is_some_and(|t| t.eq_ignore_ascii_case("error") || t.eq_ignore_ascii_case("fault"));
    let (mut failure_text, success_text) = outcome_phrases(msg);
    if codes.is_empty() && body.is_none() && !is_error_level && !failure_text && !success_text {
        // No level to go by (the syslog style prints none): a message the shipped
        // catalogue knows as a failure counts, as it does at Error level in ndjson.
        failure_text = r.message_type.is_none() && shipped_failure_text(msg.to_ascii_lowercase().as_bytes());
        if !failure_text {
            return ItemKind::Skipped;
        }
    }
    // A code named only in passing is no failure: a configuration dump listing codes
    // ("Loaded error map: AADSTS50076, AADSTS50079, …"), or at a level that is known and
    // not Error/Fault ("Retry policy: errors such as AADSTS50076 are not retried", an
    // alert's "(AADSTS50076)" echoing a failure logged on its own). A failure names its
    // code as Entra's description does (`AADSTS50126: …`), carries the token endpoint's
    // body, or says it failed.
    if body.is_none() && !failure_text && !is_error_level && !codes.is_empty() && !describes_a_code(msg) {
        let known_calm_level = r.message_type.is_some();
        if known_calm_level || codes.len() >= LISTED_CODES {
            return ItemKind::Skipped;
        }
    }
    if success_text && codes.is_empty() && body.is_none() && !is_error_level {
        s.result_code = Some(0);
    }
    s.message_codes = codes;
    s.redacted = msg.contains("<private>");
    s.occurred_at = match r.timestamp.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => match parse_timestamp(t, tz) {
            Some(at) if r.second_pass => Some(second_reading(at, tz)),
            Some(at) => Some(at),
            None => return ItemKind::Error(ParseErrorReason::InvalidTimestamp),
        },
        None => None,
    };
    s.message = Some(msg.to_owned());
    if s.correlation_id.is_none() {
        s.correlation_id = find_correlation_id(msg).map(str::to_owned);
    }
    if s.oauth_error.is_none() {
        s.oauth_error = find_oauth_error(msg).map(str::to_owned);
    }
    s.user = find_email(msg);
    s.device = r.device.map(str::to_owned);
    s.process_id = r.pid;
    ItemKind::SignIn(Box::new(s))
}

/// Bare codes a line below Error level names that make it a list (a configuration dump),
/// not a failure; a failure names one or two (`AADSTS50126 (then AADSTS50053 on retry)`).
const LISTED_CODES: usize = 3;

/// Whether `msg` names a code as Entra's error descriptions do: `AADSTS` and its digits,
/// then a colon (`AADSTS50126: Error validating credentials …`).
fn describes_a_code(msg: &str) -> bool {
    let b = msg.as_bytes();
    AADSTS.find_iter(b).any(|at| {
        let digits = b[at + 6..].iter().take_while(|d| d.is_ascii_digit()).count();
        (5..=7).contains(&digits) && b.get(at + 6 + digits) == Some(&b':')
    })
}

fn push_code(codes: &mut Vec<u32>, c: u32) {
    crate::classify::matcher::push_unique(codes, c);
}

/// Appends every `AADSTS` followed by 5–7 digits (a longer run is not a code), in order,
/// without repeats, as the classifier reads them.
pub(crate) fn extract_codes(msg: &str, codes: &mut Vec<u32>) {
    let b = msg.as_bytes();
    for at in AADSTS.find_iter(b) {
        let digits = &b[at + 6..];
        let n = digits.iter().take(8).take_while(|d| d.is_ascii_digit()).count();
        if (5..=7).contains(&n) {
            let mut v = 0u32;
            for d in &digits[..n] {
                v = v * 10 + u32::from(d - b'0');
            }
            // `AADSTS00000` names no error (as code 0 it would read as a success).
            if v != 0 {
                push_code(codes, v);
            }
        }
    }
}

/// An identity provider's token-endpoint error body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenBody<'a> {
    #[serde(borrow)]
    error: LStr<'a>,
    #[serde(borrow)]
    error_description: LStr<'a>,
    error_codes: Vec<LCode>,
    #[serde(borrow)]
    correlation_id: LStr<'a>,
}

fn find_token_body(msg: &str) -> Option<TokenBody<'_>> {
    let b = msg.as_bytes();
    memchr::memmem::find(b, b"\"error")?;
    // Passport may prefix the body with its own text: try the first few braces.
    for at in memchr::memchr_iter(b'{', b).take(8) {
        let mut de = serde_json::Deserializer::from_str(&msg[at..]);
        if let Ok(body) = TokenBody::deserialize(&mut de) {
            if body.error.0.is_some() || body.error_description.0.is_some() || !body.error_codes.is_empty() {
                return Some(body);
            }
        }
    }
    None
}

/// A GUID after "Correlation ID:", `"correlation_id":"`, `correlationId=` and similar.
fn find_correlation_id(msg: &str) -> Option<&str> {
    let b = msg.as_bytes();
    let mut from = 0;
    while let Some(rel) = find_ci(&b[from..], b"correlation") {
        let mut i = from + rel + "correlation".len();
        while i < b.len() && matches!(b[i], b' ' | b'_' | b'-') {
            i += 1;
        }
        if b.len() >= i + 2 && b[i..i + 2].eq_ignore_ascii_case(b"id") {
            i += 2;
            while i < b.len() && matches!(b[i], b'"' | b'\'' | b':' | b'=' | b' ' | b'\t') {
                i += 1;
            }
            let n = b[i..].iter().take(36).take_while(|c| c.is_ascii_hexdigit() || **c == b'-').count();
            if n == 36 {
                return msg.get(i..i + 36);
            }
        }
        from = i.max(from + rel + 1);
    }
    None
}

/// The value of a (possibly partial) `"error":"..."` member.
fn find_oauth_error(msg: &str) -> Option<&str> {
    let b = msg.as_bytes();
    let at = memchr::memmem::find(b, b"\"error\"")?;
    let mut i = at + 7;
    while i < b.len() && matches!(b[i], b' ' | b':') {
        i += 1;
    }
    if b.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    let n = b[i..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
    (n > 0).then(|| msg.get(i..i + n)).flatten()
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}

/// The first e-mail-shaped token (a UPN) in the message ([`super::email_spans`]), with
/// `@` however the message wrote it.
fn find_email(msg: &str) -> Option<String> {
    super::email_spans(msg).next().map(|span| span.address(msg))
}

/// The unified-log text line header: the parts before the message.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct TextHead<'s> {
    pub timestamp: &'s str,
    pub host: Option<&'s str>,
    pub message_type: Option<&'s str>,
    pub process: &'s str,
    pub pid: Option<u32>,
    pub sender: &'s str,
    pub subsystem: &'s str,
    /// Byte offset of the message within the line.
    pub message_at: usize,
}

/// Whether the line starts with a timestamp's fixed head, `YYYY-MM-DD[ T]HH:MM:SS`: all
/// that framing needs to know of every text line (does a record start here?), and no
/// more than [`leading_timestamp_len`] reads before the optional fraction and zone.
pub(crate) fn starts_with_timestamp(line: &[u8]) -> bool {
    // Checked eight bytes at a time, and without the fraction and zone: framing asks this
    // two or three times of every line, and the whole reading byte by byte was 7 % of the
    // syslog reader's instructions (BENCHMARKS.md, twenty-fourth pass).
    let (Some(date), Some(time), Some(tail)) =
        (line.first_chunk::<8>(), line.get(8..).and_then(<[u8]>::first_chunk::<8>), line.get(16..19))
    else {
        return false;
    };
    // Bytes 0..8 `dddd-dd-`, 8..16 `dd_dd:dd`, 16..19 `:dd` (`_` is a space or `T`).
    const DATE_DIGITS: u64 = 0x00FF_FF00_FFFF_FFFF;
    const DATE_SEPARATORS: u64 = u64::from_le_bytes(*b"\0\0\0\0-\0\0-");
    const TIME_DIGITS: u64 = 0xFFFF_00FF_FF00_FFFF;
    const TIME_COLON: u64 = u64::from_le_bytes(*b"\0\0\0\0\0:\0\0");
    let (date, time) = (u64::from_le_bytes(*date), u64::from_le_bytes(*time));
    all_digits(date, DATE_DIGITS)
        && date & !DATE_DIGITS == DATE_SEPARATORS
        && all_digits(time, TIME_DIGITS)
        && time & 0x0000_FF00_0000_0000 == TIME_COLON
        && matches!(line[10], b' ' | b'T')
        && tail[0] == b':'
        && tail[1].is_ascii_digit()
        && tail[2].is_ascii_digit()
}

/// Whether every byte of `word` that `mask` selects (0xFF) is an ASCII digit.
fn all_digits(word: u64, mask: u64) -> bool {
    const ZEROS: u64 = u64::from_le_bytes(*b"00000000");
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    // The unselected bytes become '0'. A digit is 0x30..=0x39: its high nibble is 3, and
    // adding 6 leaves it 3 (0x3A..=0x3F become 0x40..). With every high nibble 3, no
    // byte's sum carries into the next.
    let bytes = (word & mask) | (ZEROS & !mask);
    bytes & HIGH_NIBBLES == ZEROS & HIGH_NIBBLES
        && bytes.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES == ZEROS & HIGH_NIBBLES
}

/// Length of a leading `YYYY-MM-DD[ T]HH:MM:SS[.f][zone]` timestamp, if the line starts with one.
pub(crate) fn leading_timestamp_len(line: &[u8]) -> Option<usize> {
    if !starts_with_timestamp(line) {
        return None;
    }
    let mut i = 19;
    if line.get(i) == Some(&b'.') {
        i += 1;
        while i < line.len() && line[i].is_ascii_digit() {
            i += 1;
        }
    }
    match line.get(i) {
        Some(b'Z') => i += 1,
        Some(b'+' | b'-') => {
            let n = line[i + 1..].iter().take(5).take_while(|c| c.is_ascii_digit() || **c == b':').count();
            i += 1 + n;
        }
        _ => {}
    }
    Some(i)
}

fn split_token(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    let start = i;
    while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
        i += 1;
    }
    (i > start).then_some((start, i))
}

fn skip_ws(s: &str, mut i: usize) -> usize {
    let b = s.as_bytes();
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

fn compact_type(t: &str) -> Option<&'static str> {
    Some(match t {
        "E" | "Er" => "Error",
        "F" | "Ft" => "Fault",
        "Df" => "Default",
        "I" => "Info",
        "D" | "Db" => "Debug",
        "A" => "Activity",
        _ => return None,
    })
}

/// Parses the head of a syslog-, compact- or default-style line (the line starts with a
/// timestamp). Unknown layouts still give the timestamp and the rest as the message.
pub(crate) fn parse_text_head(line: &str) -> Option<TextHead<'_>> {
    let ts_len = leading_timestamp_len(line.as_bytes())?;
    let mut h = TextHead { timestamp: line.get(..ts_len)?, ..TextHead::default() };
    let fallback_at = skip_ws(line, ts_len);
    h.message_at = fallback_at;
    let Some((a0, a1)) = split_token(line, ts_len) else {
        return Some(h);
    };
    let t1 = &line[a0..a1];
    let mut i;
    if t1.starts_with("0x") {
        // `log show` default style: thread, type, activity, pid, ttl, "process: ".
        let mut at = a1;
        let mut toks = Vec::with_capacity(4);
        for _ in 0..4 {
            let Some((s, e)) = split_token(line, at) else {
                return Some(h);
            };
            toks.push(&line[s..e]);
            at = e;
        }
        h.message_type = toks.first().copied();
        h.pid = toks.get(2).and_then(|p| p.parse().ok());
        let rest_at = skip_ws(line, at);
        let Some(colon) = line[rest_at..].find(": ") else {
            return Some(h);
        };
        h.process = &line[rest_at..rest_at + colon];
        i = rest_at + colon + 2;
    } else {
        let Some((b0, _)) = split_token(line, a1) else {
            return Some(h);
        };
        // The process name may hold spaces ("Company Portal[901:1a]"): it runs to the
        // bracketed pid.
        let Some((process, pid, after_pid)) = process_and_pid(line, b0) else {
            return Some(h);
        };
        if line[after_pid..].starts_with(':') {
            // syslog: host, "process[pid]:".
            h.host = Some(t1);
            h.process = process;
            h.pid = pid;
            i = after_pid + 1;
        } else if let Some(ty) = compact_type(t1) {
            // compact: type, "process[pid:tid]".
            h.message_type = Some(ty);
            h.process = process;
            h.pid = pid;
            i = after_pid;
        } else {
            return Some(h);
        }
    }
    i = skip_ws(line, i);
    if line[i..].starts_with('(') {
        if let Some(close) = line[i..].find(')') {
            h.sender = &line[i + 1..i + close];
            i = skip_ws(line, i + close + 1);
        }
    }
    if line[i..].starts_with('[') {
        if let Some(close) = line[i..].find(']') {
            // Only a bracket shaped like what `log show` prints is the record's
            // subsystem; any other (`[AADSTS50053] Account locked`, `[Auth] …`) is the
            // message's own text, kept so that the code stays in it and the entry reads the
            // same as in an ndjson export.
            if let Some(subsystem) = subsystem_of(&line[i + 1..i + close]) {
                h.subsystem = subsystem;
                i = skip_ws(line, i + close + 1);
            }
        }
    }
    h.message_at = i;
    Some(h)
}

/// The subsystem of a bracketed `subsystem:category` (or `subsystem` alone) as the text
/// styles print it, when `inner` has that shape: the subsystem is a reverse-DNS name
/// (`io.kandji.passport`, as `os_log_create` callers name theirs; at least one inner dot,
/// letters, digits, `-`, `_`), the category anything. `AADSTS50053`, `Auth` or `ERROR`
/// are not subsystems.
fn subsystem_of(inner: &str) -> Option<&str> {
    let subsystem = inner.split_once(':').map_or(inner, |(s, _)| s);
    let name_chars = subsystem.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    let dotted = subsystem.contains('.')
        && !subsystem.starts_with('.')
        && !subsystem.ends_with('.')
        && !subsystem.contains("..");
    (name_chars && dotted).then_some(subsystem)
}

/// From `from`: a process name (words without brackets or colons, at most 128 bytes) and
/// its bracketed pid, `[612]` or `[612:26b7]`; returns the name, the pid (when it fits a
/// `u32`) and where the bracket ends.
fn process_and_pid(line: &str, from: usize) -> Option<(&str, Option<u32>, usize)> {
    let rest = &line[from..];
    let open = rest.find('[').filter(|at| *at <= 128)?;
    let process = &rest[..open];
    if process.is_empty() || process.contains([']', ':']) || process.ends_with(' ') {
        return None;
    }
    let close = open + rest[open..].find(']')?;
    let pid = &rest[open + 1..close];
    let (pid, thread) = pid.split_once(':').unwrap_or((pid, ""));
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (digits && thread.bytes().all(|b| b.is_ascii_hexdigit())).then(|| (process, pid.parse().ok(), from + close + 1))
}

/// A text record: its head line plus any continuation lines, decoded.
/// The later reading of `at` (the earlier one of a wall-clock time the zone repeats) when
/// its wall-clock time in `tz` is ambiguous; else `at`.
fn second_reading(at: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    match tz.from_local_datetime(&at.with_timezone(&tz).naive_local()) {
        chrono::LocalResult::Ambiguous(earlier, later) if earlier.with_timezone(&chrono::Utc) == at => {
            later.with_timezone(&chrono::Utc)
        }
        _ => at,
    }
}

/// Decides a text record; `second_pass` as [`PassportFields::second_pass`].
pub(crate) fn decide_text(lines: &str, m: &Matcher, tz: chrono_tz::Tz, second_pass: bool) -> ItemKind {
    let (first, rest) = match lines.find('\n') {
        Some(i) => (&lines[..i], Some(&lines[i + 1..])),
        None => (lines, None),
    };
    let first = first.trim_end_matches('\r');
    let Some(h) = parse_text_head(first) else {
        return ItemKind::Skipped;
    };
    let mut message: Cow<'_, str> = Cow::Borrowed(first.get(h.message_at..).unwrap_or(""));
    if let Some(rest) = rest {
        let mut m = message.into_owned();
        for l in rest.split('\n') {
            let l = l.trim_end_matches('\r');
            m.push('\n');
            m.push_str(l);
        }
        message = Cow::Owned(m.trim_end().to_owned());
    }
    let device = h.host.filter(|h| !h.eq_ignore_ascii_case("localhost"));
    let f = PassportFields {
        timestamp: Some(h.timestamp),
        message_type: h.message_type,
        message: &message,
        subsystem: h.subsystem,
        sender: h.sender,
        process: h.process,
        device,
        pid: h.pid,
        second_pass,
    };
    decide(&f, m, tz)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_in_order_deduplicated() {
        let mut c = Vec::new();
        extract_codes("AADSTS70002: x AADSTS50126: y AADSTS50126 AADSTS1234 AADSTS7000218: z AADSTS12345678", &mut c);
        // Eight digits are no code (as the classifier reads them), not a 7-digit one.
        assert_eq!(c, vec![70002, 50126, 7000218]);
    }

    #[test]
    fn heads() {
        let h = parse_text_head("2026-03-04 08:15:02.123456-0800  mac-17 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] hello").unwrap();
        assert_eq!(h.host, Some("mac-17"));
        assert_eq!(h.process, "SecurityAgent");
        assert_eq!(h.sender, "KandjiPassport");
        assert_eq!(h.subsystem, "io.kandji.passport");
        assert_eq!(h.timestamp, "2026-03-04 08:15:02.123456-0800");
        let h = parse_text_head("2026-03-04 08:15:02.123 E  SecurityAgent[612:26b7] [io.kandji.passport:auth] msg")
            .unwrap();
        assert_eq!(h.message_type, Some("Error"));
        assert_eq!(h.subsystem, "io.kandji.passport");
        assert_eq!(h.process, "SecurityAgent");
        let h = parse_text_head("2026-03-04 08:15:02.123456-0800 0x26b7     Error       0x0                  612    0    SecurityAgent: (KandjiPassport) [io.kandji.passport:auth] m").unwrap();
        assert_eq!(h.message_type, Some("Error"));
        assert_eq!(h.process, "SecurityAgent");
        assert_eq!(h.sender, "KandjiPassport");
        // A process name with a space: the subsystem is still found, so another app's
        // line is known to be another app's.
        let h = parse_text_head(
            "2026-03-04 08:15:02.123 E  Company Portal[901:1a] [com.microsoft.CompanyPortalMac:auth] AADSTS50076",
        )
        .unwrap();
        assert_eq!((h.process, h.subsystem), ("Company Portal", "com.microsoft.CompanyPortalMac"));
        let h = parse_text_head("2026-03-04 08:15:02.123456-0800  mac-17 Company Portal[901]: (MSAL) [com.microsoft.CompanyPortalMac:auth] AADSTS50053").unwrap();
        assert_eq!((h.host, h.process, h.sender), (Some("mac-17"), "Company Portal", "MSAL"));
        // A message's own leading brackets are no subsystem: they stay in the message.
        for (line, subsystem, message) in [
            ("2026-03-04 16:00:00.000001-0800  localhost SecurityAgent[612]: (KandjiPassport) [AADSTS50053] Account locked", "", "[AADSTS50053] Account locked"),
            ("2026-03-04 16:00:00.000001-0800  localhost SecurityAgent[612]: (KandjiPassport) [Auth] Token request failed", "", "[Auth] Token request failed"),
            ("2026-03-04 16:00:00.123 E  SecurityAgent[612:26b7] [ERROR] AADSTS50076", "", "[ERROR] AADSTS50076"),
            ("2026-03-04 16:00:00.123 E  SecurityAgent[612:26b7] [a.b] [c.d:e] x", "a.b", "[c.d:e] x"),
            ("2026-03-04 16:00:00.123 E  SecurityAgent[612:26b7] [io.kandji.passport:] x", "io.kandji.passport", "x"),
            ("2026-03-04 16:00:00.123 E  SecurityAgent[612:26b7] [.x:auth] x", "", "[.x:auth] x"),
        ] {
            let h = parse_text_head(line).unwrap();
            assert_eq!((h.subsystem, &line[h.message_at..]), (subsystem, message), "{line}");
        }
        let kind = decide_text(
            "2026-03-04 08:15:02.123 E  Company Portal[901:1a] [com.microsoft.CompanyPortalMac:auth] AADSTS50076: x",
            &Matcher::new(&PassportFilter::default()),
            chrono_tz::UTC,
            false,
        );
        assert!(matches!(kind, ItemKind::Skipped), "{kind:?}");
    }

    #[test]
    fn helpers() {
        assert_eq!(
            find_correlation_id("Correlation ID: 11111111-2222-3333-4444-555555555555\r\n"),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert_eq!(
            find_correlation_id(r#"{"correlation_id":"11111111-2222-3333-4444-555555555555"}"#),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert_eq!(find_email("for user alice@contoso.example.").as_deref(), Some("alice@contoso.example"));
        assert_eq!(find_email("User account 'bob@fabrikam.example' from").as_deref(), Some("bob@fabrikam.example"));
        assert_eq!(
            find_email(r"User account \u0027bob@fabrikam.example\u0027 from").as_deref(),
            Some("bob@fabrikam.example")
        );
        assert_eq!(find_email("for josé.garcía@contoso.example").as_deref(), Some("josé.garcía@contoso.example"));
        assert_eq!(find_email("for maría@müller.example.").as_deref(), Some("maría@müller.example"));
        assert_eq!(find_email("o'neil@contoso.example").as_deref(), Some("o'neil@contoso.example"));
        // A guest's name embeds the guest's own address, `#EXT#` included.
        assert_eq!(
            find_email("for alice_gmail.com#EXT#@contoso.onmicrosoft.com").as_deref(),
            Some("alice_gmail.com#EXT#@contoso.onmicrosoft.com")
        );
        assert_eq!(find_email("mail: @contoso.example or x@y"), None);
        assert_eq!(find_email("no @ here"), None);
        // .NET escapes `+` and letters beyond ASCII inside a token body as it does quotes.
        assert_eq!(
            find_email(r"User account \u0027first\u002Blast@contoso.example\u0027 from").as_deref(),
            Some("first+last@contoso.example")
        );
        assert_eq!(
            find_email(r"\u0027jos\u00e9.garc\u00eda@contoso.example\u0027").as_deref(),
            Some("josé.garcía@contoso.example")
        );
        // A logged form body writes the `@` URL-encoded.
        assert_eq!(
            find_email("POST /token username=gina%40contoso.example&grant_type=password").as_deref(),
            Some("gina@contoso.example")
        );
        assert_eq!(find_oauth_error(r#"x {"error":"invalid_grant","error_desc"#), Some("invalid_grant"));
    }

    #[test]
    fn shipped_failure_texts_match_lower_cased_as_the_classifier_matches_any_case() {
        assert_eq!(
            lower_literals(r"\bAccount\S+ ID3242 \p{Greek}\pL [^'] (?:Was )?"),
            r"\baccount\S+ id3242 \p{Greek}\pL [^'] (?:was )?"
        );
        let catalogue = crate::classify::Catalogue::from_shipped().unwrap();
        let mut checked = 0;
        for e in
            catalogue.entries().iter().filter(|e| e.outcome == crate::event::Outcome::Failure && !e.patterns.is_empty())
        {
            for example in e.examples.iter().filter_map(|x| x.message.as_deref()) {
                let any_pattern = e
                    .patterns
                    .iter()
                    .any(|p| regex::RegexBuilder::new(p).case_insensitive(true).build().unwrap().is_match(example));
                if any_pattern {
                    let lower = example.to_ascii_lowercase();
                    assert!(shipped_failure_text(lower.as_bytes()), "{}: {example}", e.id);
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "{checked}");
        assert!(!shipped_failure_text(b"presenting passport login window"));
        // Every shipped pattern has a required literal: none is searched in every line.
        assert!(SHIPPED_FAILURE_TEXTS.as_ref().is_some_and(|t| t.ungated.is_empty()));
        for (pattern, literal) in [
            (
                r"does not exist in tenant\b.{0,200}?\bcannot access the application",
                Some("cannot access the application"),
            ),
            (r"external security challenge (?:was )?not satisfied", Some("external security challenge ")),
            (r"requires admin(?:istrator)? permissions?", Some("requires admin")),
            (r"\bldap\w*\b.{0,40}?invalid credentials", Some("invalid credentials")),
            (r"tenant '[^']{1,200}' not found", Some("' not found")),
            (r"a|b", None),
            (r"\bab\b", None),
            (r"ab.{0,200}cd", None),
            (r"\p{Greek}+ xyz", Some(" xyz")),
            (r"abcd{2,3}e", Some("abc")),
            // Escapes with their letters and digits, the `x` flag, nested classes.
            (r"\x2fcommon endpoint", Some("common endpoint")),
            (r"\x{2f}common", Some("common")),
            (r"\u002fab \U0001F600cd", Some("ab ")),
            (r"\pLabcd \PNxy", Some("abcd ")),
            (r"(?x) must use \s mfa", None),
            (r"(?sx) must use \s mfa", None),
            (r"(?i-m)(?ix-s) must use \s mfa", None),
            // Not the `x` flag: one only inside a group, one turned off, a group's `x`.
            (r"(?x:a b) must use mfa", Some(" must use mfa")),
            (r"(?i-x) must use mfa", Some(" must use mfa")),
            (r"(?-i:xyz) must use mfa", Some(" must use mfa")),
            (r"[[:digit:]abcdefgh] xyz", Some(" xyz")),
            (r"[]abcdefgh] xyz", Some(" xyz")),
            (r"[^]abcdefgh] xyz", Some(" xyz")),
        ] {
            assert_eq!(required_literal(pattern).as_deref(), literal, "{pattern}");
        }
    }

    #[test]
    fn each_failure_text_is_searched_where_its_literal_is_even_inside_another() {
        let patterns: Vec<String> =
            [r"\bmust use mfa\.", r"use mfa now \d+", r"(?:locked|disabled) x"].map(String::from).to_vec();
        let texts = FailureTexts::new(&patterns).unwrap();
        assert_eq!(texts.ungated, [2], "the last pattern has no required literal");
        // "must use mfa" is the leftmost literal here; "use mfa now " overlaps it and is
        // the one whose pattern matches.
        assert!(texts.is_match(b"you must use mfa now 42"));
        assert!(texts.is_match(b"you must use mfa."));
        assert!(texts.is_match(b"account disabled x"));
        assert!(!texts.is_match(b"you must use mfa now, later"));
        assert!(!texts.is_match(b"nothing here"));
    }

    #[test]
    fn failure_texts_are_searched_from_their_rarest_letters() {
        assert_eq!(search_window("the request timed out"), "request timed out");
        assert_eq!(search_window("account is locked"), "ccount is locked");
        // No shorter than eight bytes, unless the literal is.
        assert_eq!(search_window("eeeeeeeeqzzzzzz"), "eqzzzzzz");
        assert_eq!(search_window("http"), "http");
        // A cut falls between characters.
        for literal in ["ééééééééé", "aé ééééééééé zz"] {
            assert!(literal.ends_with(search_window(literal)));
        }
        let catalogue = crate::classify::Catalogue::from_shipped().unwrap();
        for pattern in catalogue.entries().iter().flat_map(|e| &e.patterns) {
            if let Some(literal) = required_literal(&lower_literals(pattern)) {
                let window = search_window(&literal);
                assert!(literal.ends_with(window) && window.len() >= MIN_WINDOW.min(literal.len()), "{literal}");
            }
        }
    }

    /// The byte-by-byte check of the head that the word-at-a-time one replaced.
    fn timestamp_head_reference(line: &[u8]) -> bool {
        const SHAPE: &[u8] = b"dddd-dd-dd_dd:dd:dd";
        line.len() >= SHAPE.len()
            && line.iter().zip(SHAPE).all(|(c, s)| match s {
                b'd' => c.is_ascii_digit(),
                b'_' => *c == b' ' || *c == b'T',
                other => c == other,
            })
    }

    #[test]
    fn leading_timestamps_are_read_as_byte_by_byte() {
        let stamps: [(&[u8], usize); 6] = [
            (b"2026-03-03 16:00:00.007000-0800  mac SecurityAgent[612]: x", 31),
            (b"2026-03-03T16:00:00Z", 20),
            (b"1999-12-31 23:59:59+01:00 y", 25),
            (b"2026-03-03 16:00:00", 19),
            (b"0000-00-00T00:00:00.", 20),
            (b"9999-99-99 99:99:99.123456789-", 30),
        ];
        for (stamp, len) in stamps {
            assert_eq!(leading_timestamp_len(stamp), Some(len), "{}", String::from_utf8_lossy(stamp));
            // Every byte of the head replaced by every value, and every cut: a digit's
            // neighbours ('/', ':'), bytes whose sum with 6 would carry, and the
            // separators in the wrong places.
            for at in 0..19 {
                for byte in 0..=255u8 {
                    let mut line = stamp.to_vec();
                    line[at] = byte;
                    let want = timestamp_head_reference(&line);
                    assert_eq!(starts_with_timestamp(&line), want, "{}", String::from_utf8_lossy(&line));
                    assert_eq!(leading_timestamp_len(&line).is_some(), want);
                }
            }
            for cut in 0..stamp.len() {
                assert_eq!(starts_with_timestamp(&stamp[..cut]), timestamp_head_reference(&stamp[..cut]));
            }
        }
    }

    #[test]
    fn next_quote_finds_the_first_quote_wherever_it_is() {
        // Every position in and across the eight-byte words, after bytes whose borrow
        // could mark a later byte (0x00, 0x01, 0x21 is one above the quote) or none.
        for len in 0..40 {
            for quote in 0..=len {
                for filler in [b'a', 0x00, 0x01, 0x21, 0x23, 0xA2, 0xFF] {
                    let mut b = vec![filler; len];
                    if quote < len {
                        b[quote] = b'"';
                        if quote + 1 < len {
                            b[quote + 1] = b'"';
                        }
                    }
                    for from in 0..=len {
                        let want = b[from..].iter().position(|&c| c == b'"').map(|k| from + k);
                        assert_eq!(next_quote(&b, from), want, "{b:?} from {from}");
                    }
                }
            }
        }
    }

    #[test]
    fn prefilter_skips_chatter_and_nothing_else() {
        let mut p = Prefilter::default();
        let chatter = r#"{"traceID": 0, "processImagePath": "/System/SecurityAgent", "timestamp": "2026-03-03 16:00:00.018000-0800", "messageType": "Debug", "subsystem": "io.kandji.passport", "eventMessage": "Presenting Passport login window", "threadID": 9254, "n": -12, "a": [true, false, null, {"b": []}], "o": {}}"#;
        assert!(p.json_is_chatter(chatter.as_bytes()));
        assert!(p.json_is_chatter(format!("{chatter}\r").as_bytes()));
        assert!(p.json_is_chatter(format!("{chatter} trailing garbage").as_bytes()));
        assert!(p.json_is_chatter(br#"{"EventMessage": null}"#));
        assert!(p.json_is_chatter(br#"{"EVENTMESSAGE": "x"}"#));
        // However the writer spaces it.
        assert!(p.json_is_chatter(br#"{"eventMessage":"x","n":[1,{"a":null}],"t":true}"#));
        assert!(p.json_is_chatter(br#"{ "eventMessage"  :  "x" ,  "n" : [ 1 , 2 ] }"#));
        assert!(p.json_is_chatter(br#"{"eventMessage":  "x",  "n": [1,  2]}"#));
        // `fault` inside a word is no Fault level: Default is the commonest type there is.
        assert!(p.json_is_chatter(br#"{"eventMessage": "x", "messageType": "Default"}"#));
        assert!(p.json_is_chatter(br#"{"eventMessage": "uses the DEFAULT provider"}"#));
        // A catalogue failure text at a known level that is not Error or Fault is chatter,
        // as `decide` reads it; the last type that is not null is the level.
        let locked = "Your account is locked.";
        for level in [r#""Debug""#, "3", r#""Debug", "messageType": null"#, r#""Debug", "messageType": {}"#] {
            let line = format!(r#"{{"eventMessage": "{locked}", "messageType": {level}}}"#);
            assert!(p.json_is_chatter(line.as_bytes()), "{line}");
        }
        assert!(p.json_is_chatter(format!(r#"{{"eventMessage": "{locked}", " messageType ": "Info"}}"#).as_bytes()));
        assert!(has_event_message_bytes(b"eventMessage"));
        assert!(!has_event_message_bytes(b"ventMessage eventMessag"));
        for line in [
            // An anchor, in any case, in any field.
            r#"{"eventMessage": "AADSTS50126: x"}"#,
            r#"{"eventMessage": "Authentication FAILED"}"#,
            r#"{"eventMessage": "x", "messageType": "Fault"}"#,
            r#"{"eventMessage": "x", "messageType": " fault"}"#,
            "{\"eventMessage\": \"x\", \"messageType\": \"\u{a0}Fault\"}",
            // No level (none, null, blank, or only below the top): a catalogue failure
            // text counts, as in a level-less syslog line.
            r#"{"eventMessage": "Your account is locked."}"#,
            r#"{"eventMessage": "Your account is locked.", "messageType": null}"#,
            r#"{"eventMessage": "Your account is locked.", "messageType": ""}"#,
            r#"{"eventMessage": "Your account is locked.", "messageType": " "}"#,
            r#"{"eventMessage": "Your account is locked.", "messageType": "Debug", "messageType": ""}"#,
            r#"{"eventMessage": "Your account is locked.", "messageType": ["Debug"]}"#,
            r#"{"eventMessage": "Your account is locked.", "a": {"messageType": "Debug"}}"#,
            r#"{"eventMessage": "Your account is locked.", "messageTypes": "Debug"}"#,
            r#"{"eventMessage": "<private>"}"#,
            r#"{"eventMessage": "Login Succeeded"}"#,
            // Escapes may spell an anchor.
            r#"{"eventMessage": "\u0041ADSTS50126"}"#,
            // Not a Passport record at the top level, or not surely valid for serde.
            r#"{"message": "x"}"#,
            r#"{"properties": {"eventMessage": "x"}}"#,
            r#"{"eventMessage": "x", "n": 1.5}"#,
            r#"{"eventMessage": "x", "n": 01}"#,
            r#"{"eventMessage": "x", "n": 1234567890123456789}"#,
            r#"{"eventMessage": "x", "b": truex}"#,
            r#"{"eventMessage": "x""#,
            r#"{"eventMessage": "x",}"#,
            r#"{"eventMessage": "x" "n": 1}"#,
            r#"{"eventMessage": "x", "n" 1}"#,
            r#"{"eventMessage": "x", "a": [1 2]}"#,
            r#"{"eventMessage": "x", "a": [1,]}"#,
            r#"{"eventMessage": "x",, "n": 1}"#,
            "{\"eventMessage\": \"x\ty\"}",
        ] {
            assert!(!p.json_is_chatter(line.as_bytes()), "{line}");
        }
        for bad in [&b"\xff"[..], b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"] {
            let line = [&b"{\"eventMessage\": \""[..], bad, b"\"}"].concat();
            assert!(!p.json_is_chatter(&line), "{line:?}");
        }

        let syslog = "2026-03-04 08:15:02.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:ui] Presenting Passport login window\n   more\n";
        assert!(p.text_is_chatter(syslog.as_bytes()));
        assert!(p.text_is_chatter(b"2026-03-04 08:15:02.123 Df SecurityAgent[612:26b7] [io.kandji.passport:ui] window"));
        assert!(p.text_is_chatter(
            b"2026-03-04 08:15:02.123456-0800 0x26b7     Default     0x0   612    0    SecurityAgent: window"
        ));
        for text in [
            "2026-03-04 08:15:02.123 E  SecurityAgent[612:26b7] [io.kandji.passport:auth] window",
            "2026-03-04 08:15:02.123\tFt SecurityAgent[612:26b7] [io.kandji.passport:auth] window",
            "2026-03-04 08:15:02.123 F",
            "2026-03-04 08:15:02.123456-0800 0x26b7     Error       0x0   612    0    SecurityAgent: window",
            "2026-03-04 08:15:02.123456-0800 0x26b7     Fault       0x0   612    0    SecurityAgent: window",
            "2026-03-04 08:15:02.123456-0800  localhost SecurityAgent[612]: window\n   AADSTS50126 on the next line",
        ] {
            assert!(!p.text_is_chatter(text.as_bytes()), "{text}");
        }
        // A record that is not UTF-8 is the decoder's: it reads a bad byte as `?`, which a
        // failure text's `.` matches, though the byte itself it does not.
        let head = "2026-03-04 08:15:02.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] ";
        let bad =
            [head.as_bytes(), b"User does not exist in tenant 'Contos\xff' and cannot access the application"].concat();
        let as_decoded = crate::ingest::formats::record::text_of(&bad).to_ascii_lowercase();
        assert!(shipped_failure_text(as_decoded.as_bytes()));
        assert!(!shipped_failure_text(&bad.to_ascii_lowercase()));
        assert!(!p.text_is_chatter(&bad));
        // A letter above ASCII that is UTF-8 leaves chatter chatter.
        assert!(p.text_is_chatter(format!("{head}Presenting Passport login window to Zoë").as_bytes()));
    }

    #[test]
    fn anchors_cover_every_phrase() {
        for p in FAILURE_PHRASES {
            assert!(FAILURE_ANCHORS.iter().any(|a| p.contains(a)), "{p}");
            assert_eq!(outcome_phrases(&p.to_ascii_uppercase()), (true, false), "{p}");
        }
        for p in SUCCESS_PHRASES {
            assert!(p.contains(SUCCESS_ANCHOR), "{p}");
            assert_eq!(outcome_phrases(&format!("Mac: {p} for x")), (false, true), "{p}");
        }
        assert_eq!(outcome_phrases("Presenting Passport login window"), (false, false));
        assert_eq!(outcome_phrases("Login FAILED, then login succeeded"), (true, false));
    }
}
