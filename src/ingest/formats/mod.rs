//! Decoders for every input shape of FORMATS.md, behind one streaming interface.
//!
//! INTERFACE NOTE (kept stable for the rest of the crate): `Format`, `DecodeOptions`,
//! `PassportFilter`, `StreamDecoder::{new, resume, feed, flush, finish, checkpoint_offset,
//! resume_state}`, `DecodedItem`, `ItemKind`, `RawSignIn`, `ParseErrorReason`.
//!
//! A `StreamDecoder` is fed the bytes of one stream (a file generation, stdin, an HTTP
//! body) in arbitrary chunks. It frames records (lines, JSON values inside arrays or
//! envelopes, pretty-printed objects, CSV rows), decodes each into typed structs and
//! pushes one `DecodedItem` per record (or per sign-in inside an envelope) with the
//! byte range it came from. It never emits a record that may still grow.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which decoder a source uses (`format` in a source's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Sniff per file and per line.
    #[default]
    Auto,
    /// A1: diagnostic-settings records (JSON lines, `{"records": [...]}`, arrays, pretty-printed).
    AzureDiagnostic,
    /// A2: Log Analytics / Sentinel `SigninLogs` rows (JSON lines, arrays, portal CSV).
    AzureLoganalytics,
    /// A3: Microsoft Graph `/auditLogs/signIns` pages.
    Graph,
    /// B: Kandji Passport unified-log exports (ndjson, json, syslog, compact).
    Passport,
}

impl Format {
    /// The config / label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::AzureDiagnostic => "azure-diagnostic",
            Format::AzureLoganalytics => "azure-loganalytics",
            Format::Graph => "graph",
            Format::Passport => "passport",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [Format::Auto, Format::AzureDiagnostic, Format::AzureLoganalytics, Format::Graph, Format::Passport]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

/// Which unified-log records count as Passport's (FORMATS.md §B). A record counts when
/// any of the configured needles occurs (case-insensitively) in its subsystem, sender
/// image path or process image path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassportFilter {
    /// Subsystem substrings (default `io.kandji`).
    pub subsystems: Vec<String>,
    /// Sender image path substrings (default `KandjiPassport`, `Passport`).
    pub sender_images: Vec<String>,
    /// Process image path / name substrings (default none: SecurityAgent hosts many plugins).
    pub processes: Vec<String>,
    /// Also accept a record of another sender or subsystem whose message carries an
    /// `AADSTS` code (default false: another app's MSAL errors, Teams' or Office's, are not
    /// Passport sign-ins; a record that names no sender and no subsystem at all is taken
    /// when its message carries a code either way).
    pub any_aadsts_message: bool,
}

impl Default for PassportFilter {
    fn default() -> Self {
        Self {
            subsystems: vec!["io.kandji".into()],
            sender_images: vec!["KandjiPassport".into(), "Passport".into()],
            processes: Vec::new(),
            any_aadsts_message: false,
        }
    }
}

/// Per-stream decoding settings.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// The source's format (`Auto` sniffs).
    pub format: Format,
    /// Records longer than this are discarded while streaming and reported as
    /// `ParseErrorReason::LineTooLong`.
    pub max_record_bytes: usize,
    /// Zone for timestamps that carry no offset.
    pub default_tz: chrono_tz::Tz,
    /// Which Passport records count.
    pub passport: PassportFilter,
    /// Whether a success (result code 0) is decoded with every field. When off, its
    /// `RawSignIn` carries only what the pipeline keeps of a success (format, time, code,
    /// record id): a success is counted and de-duplicated, never stored in full, and
    /// copying its dozen other strings was a tenth of the reader's time (BENCHMARKS.md,
    /// sixth pass). The reader and the HTTP ingest turn it off; the default, on, is for
    /// anything that shows decoded records.
    pub success_detail: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            format: Format::Auto,
            max_record_bytes: 1024 * 1024,
            default_tz: chrono_tz::UTC,
            passport: PassportFilter::default(),
            success_detail: true,
        }
    }
}

/// Stable `reason` label values for `passportd_parse_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseErrorReason {
    /// Not valid JSON where JSON was expected.
    InvalidJson,
    /// Valid JSON / text, but not a sign-in record of the expected shape.
    NotSignin,
    /// Longer than `max_record_bytes`.
    LineTooLong,
    /// Not UTF-8.
    InvalidUtf8,
    /// Sniffing could not tell what this is.
    UnknownFormat,
    /// A timestamp that could not be parsed.
    InvalidTimestamp,
    /// A CSV row that does not fit its header.
    InvalidCsv,
    /// A whole stream in UTF-16 (it starts with a UTF-16 byte-order mark: what Windows
    /// PowerShell 5.1's `>` and `Out-File` write): one error for the stream, which is not
    /// read; it must be converted to UTF-8.
    Utf16,
}

impl ParseErrorReason {
    /// Every reason (metrics pre-initialisation).
    pub const ALL: [ParseErrorReason; 8] = [
        ParseErrorReason::InvalidJson,
        ParseErrorReason::NotSignin,
        ParseErrorReason::LineTooLong,
        ParseErrorReason::InvalidUtf8,
        ParseErrorReason::UnknownFormat,
        ParseErrorReason::InvalidTimestamp,
        ParseErrorReason::InvalidCsv,
        ParseErrorReason::Utf16,
    ];

    /// The stable label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ParseErrorReason::InvalidJson => "invalid_json",
            ParseErrorReason::NotSignin => "not_signin",
            ParseErrorReason::LineTooLong => "line_too_long",
            ParseErrorReason::InvalidUtf8 => "invalid_utf8",
            ParseErrorReason::UnknownFormat => "unknown_format",
            ParseErrorReason::InvalidTimestamp => "invalid_timestamp",
            ParseErrorReason::InvalidCsv => "invalid_csv",
            ParseErrorReason::Utf16 => "utf16",
        }
    }
}

/// A decoded sign-in, before classification and privacy. Strings are owned: the
/// decoder borrows from the input while parsing and copies only these fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawSignIn {
    /// The decoder that produced it (`azure-diagnostic`, `azure-loganalytics`, `graph`, `passport`).
    pub format: &'static str,
    /// The event's own time, normalized to UTC (`None` when the record has none; the
    /// pipeline then uses the time it was read).
    pub occurred_at: Option<DateTime<Utc>>,
    /// `occurred_at` is when the record was logged (`time`, `TimeGenerated`), the sign-in's
    /// own time (`createdDateTime`) missing: the sign-in happened up to minutes earlier.
    pub time_is_logged: bool,
    /// The record's result code: `Some(0)` = success, `Some(n)` = failure or interrupt
    /// with code n (prefer `status.errorCode` over `resultType`). `None` for text-only
    /// records (Passport messages), where the catalogue decides.
    pub result_code: Option<u32>,
    /// Every AADSTS code found in the message / `error_codes` arrays, in order of appearance.
    pub message_codes: Vec<u32>,
    /// The failure text (resultDescription / failureReason / Passport eventMessage).
    pub message: Option<String>,
    /// The OAuth `error` value when the message is a token-endpoint error body.
    pub oauth_error: Option<String>,
    /// True when the message was `<private>` (unified-log redaction).
    pub redacted: bool,
    /// User principal name (raw; privacy is applied by the pipeline).
    pub user: Option<String>,
    /// Application (client) id.
    pub app_id: Option<String>,
    /// Application display name.
    pub app_name: Option<String>,
    /// Tenant id.
    pub tenant_id: Option<String>,
    /// `clientAppUsed`.
    pub client_app: Option<String>,
    /// `authenticationProtocol`.
    pub auth_protocol: Option<String>,
    /// `tokenIssuerType`.
    pub token_issuer_type: Option<String>,
    /// Client IP (raw).
    pub ip: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Unique sign-in id (`id` / `Id` / `properties.id`).
    pub record_id: Option<String>,
    /// Mac host name or serial (Passport syslog host, when known).
    pub device: Option<String>,
    /// The logging process's id (a Passport entry's `processID`, or the `[pid]` of a text
    /// style): part of the entry's idempotency key.
    pub process_id: Option<u32>,
}

/// What one framed record turned into.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    /// A sign-in record (Azure) or a Passport record that passed the filter.
    SignIn(Box<RawSignIn>),
    /// Decoded but not sign-in related (banner line, debug chatter, filtered-out process).
    Skipped,
    /// A Passport record whose message is `<private>`: counted as redacted, not an error.
    Redacted,
    /// Could not be decoded.
    Error(ParseErrorReason),
}

/// One decoded record and the bytes it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedItem {
    /// Stream offset of the record's first byte.
    pub start_offset: u64,
    /// Stream offset just past the record (and its line terminator).
    pub end_offset: u64,
    /// 1-based line number of the record's first line in the stream (for error messages).
    pub line: u64,
    /// What it decoded to.
    pub kind: ItemKind,
}

/// Besides letters and digits (any script), the characters an e-mail address's local part
/// may hold as user names carry them: `o'neil@`, a guest's `alice_gmail.com#EXT#@`, and
/// `?`, which a letter that was not UTF-8 reads as (`jos?@`, see `replace_invalid_utf8`). One
/// definition for the user read from a Passport message and for the privacy filter that
/// redacts addresses in messages, so that both take the same address.
pub(crate) const EMAIL_LOCAL_PUNCTUATION: &str = "._%+-#!$&'*^`~?";

/// Quotes written around an address (`'bob@fabrikam.example'`, as AADSTS50020 puts it)
/// that are not part of it, nor a leading dot.
pub(crate) const EMAIL_LEADING_NOISE: [char; 3] = ['\'', '`', '.'];

/// Where an e-mail address is written in a text: `text[start..end]`, its `@` (or the
/// URL-encoded `%40` of a form body or query string) at `at..domain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EmailSpan {
    pub start: usize,
    pub at: usize,
    pub domain: usize,
    pub end: usize,
}

impl EmailSpan {
    /// The address as a user name: `@` whichever way the text wrote it, JSON escapes in the
    /// local part read (`first\u002Blast` is `first+last`).
    pub fn address(&self, text: &str) -> String {
        let local = &text[self.start..self.at];
        let mut out = String::with_capacity(local.len() + 1 + self.end - self.domain);
        let mut rest = local;
        while let Some(i) = rest.find("\\u") {
            let decoded = rest.get(i + 2..i + 6).and_then(|h| u32::from_str_radix(h, 16).ok()).and_then(char::from_u32);
            match decoded {
                Some(c) => {
                    out.push_str(&rest[..i]);
                    out.push(c);
                    rest = &rest[i + 6..];
                }
                None => {
                    out.push_str(&rest[..i + 2]);
                    rest = &rest[i + 2..];
                }
            }
        }
        out.push_str(rest);
        out.push('@');
        out.push_str(&text[self.domain..self.end]);
        out
    }
}

/// The longest local part looked at: a real one is at most 64 characters (113 in a UPN);
/// the bound keeps a long run of local-part characters with many `%40`s in it linear.
const EMAIL_LOCAL_MAX: usize = 256;

/// Every e-mail-shaped token (a UPN) in `text`, in order: any letters (`josé.garcía@`),
/// the punctuation local parts use (`o'neil@`), without quotes around it (`'bob@…'`, as
/// AADSTS50020 writes it) or a JSON-escaped quote before it (`\u0027bob@…`, as a token
/// body embedded in a message keeps it), with `@` or `%40` (`username=gina%40contoso.example`
/// in a logged request). One definition for the user read from a Passport message and for
/// the privacy filter, so that both take the same address.
pub(crate) fn email_spans(text: &str) -> impl Iterator<Item = EmailSpan> + '_ {
    let is_local = |c: char| c.is_alphanumeric() || EMAIL_LOCAL_PUNCTUATION.contains(c);
    let is_dom = |c: char| c.is_alphanumeric() || c == '.' || c == '-';
    let bytes = text.as_bytes();
    let mut from = 0;
    memchr::memchr2_iter(b'@', b'%', bytes).filter_map(move |at| {
        let sep = match bytes[at] {
            b'@' => 1,
            _ if bytes.get(at + 1..at + 3) == Some(b"40") => 3,
            _ => return None,
        };
        // A token already taken (`a%40b%40c.example`) does not start another.
        if at < from {
            return None;
        }
        // The local part, back from the `@`. A JSON escape inside it (`first\u002Blast@`,
        // `jos\u00e9@`, as .NET writes a token body) is part of it; one of a quote
        // (`\u0027bob@…`) ends it, its digits with it.
        let mut start = at;
        let mut budget = EMAIL_LOCAL_MAX;
        loop {
            let before = &text[from..start];
            let run: usize = before.chars().rev().take_while(|&c| is_local(c)).take(budget).map(char::len_utf8).sum();
            budget = budget.saturating_sub(run);
            let run_start = start - run;
            let escape = text[from..run_start]
                .ends_with('\\')
                .then(|| text.get(run_start..run_start + 5))
                .flatten()
                .filter(|e| e.starts_with('u') && e.len() == 5 && e.as_bytes()[1..].iter().all(u8::is_ascii_hexdigit))
                .and_then(|e| u32::from_str_radix(&e[1..], 16).ok())
                .and_then(char::from_u32);
            match escape {
                Some(c) if is_local(c) && !EMAIL_LEADING_NOISE.contains(&c) && budget > 0 => start = run_start - 1,
                Some(_) => {
                    start = (run_start + 5).min(at);
                    break;
                }
                None => {
                    start = run_start;
                    break;
                }
            }
        }
        let local = &text[start..at];
        let local = local.trim_start_matches(EMAIL_LEADING_NOISE);
        let after = &text[at + sep..];
        let dom_len: usize = after.chars().take_while(|&c| is_dom(c)).map(char::len_utf8).sum();
        let dom = after[..dom_len].trim_end_matches('.');
        // A domain ends in a name of letters (`contoso.example`), not in digits: not
        // `KandjiPassport@2.4.1` or `node@18.1`.
        let tld = dom.rsplit('.').next().unwrap_or("");
        if local.is_empty()
            || !dom.contains('.')
            || dom.starts_with('.')
            || tld.chars().count() < 2
            || !tld.chars().all(char::is_alphabetic)
        {
            return None;
        }
        let span = EmailSpan { start: at - local.len(), at, domain: at + sep, end: at + sep + dom.len() };
        from = span.end;
        Some(span)
    })
}

mod azure;
mod direct;
mod framing;
mod passport;
mod record;
mod scan;
mod time;
mod words;

pub use framing::{is_csv_export_header, StreamDecoder};
pub use time::parse_timestamp;

/// Whether a line is one a `log` export prints around its records (its `Filtering the log
/// data using …` banner, a column header, a rule, the closing counts).
pub fn is_log_banner(line: &str) -> bool {
    scan::is_banner(line.trim_start_matches('\u{feff}').as_bytes())
}

/// Whether a line is the `{"count": …, "finished": …}` object `log show --style ndjson`
/// ends its export with.
pub fn is_log_trailer(line: &str) -> bool {
    framing::is_log_trailer(line.trim().as_bytes())
}

/// Whether a line starts a record of a `log show` text style (it begins with the entry's
/// timestamp); the lines up to the next such line are that record's message.
pub fn starts_passport_text_record(line: &str) -> bool {
    passport::starts_with_timestamp(line.trim_start_matches('\u{feff}').as_bytes())
}

/// Decodes a whole buffer (`new` + `feed` + `finish`): HTTP push ingestion, tests.
pub fn decode_bytes(opts: &DecodeOptions, bytes: &[u8]) -> Vec<DecodedItem> {
    let mut d = StreamDecoder::new(opts.clone());
    let mut out = Vec::new();
    d.feed(bytes, &mut out);
    d.finish(&mut out);
    out
}
