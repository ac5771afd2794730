//! The shared middle of every input path (tail, replay, stdin, HTTP push): decoded
//! items → classified, privacy-filtered `SignInEvent`s → batches → the single writer,
//! which commits them and updates the metrics.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use regex::Regex;
use serde::Serialize;
use sha2::Sha256;

use crate::classify::{ClassifyInput, SharedClassifier};
use crate::config::{PrivacyMode, PrivacySettings};
use crate::event::{Category, Outcome, Position, SignInEvent};
use crate::incidents::Policy;
use crate::ingest::formats::{DecodedItem, ItemKind, RawSignIn};
use crate::metrics::Metrics;
use crate::store::{Batch, BatchResult, Store, StoreError, StoredEvent, StoredSuccess, WriteTx};

/// What an ingest run did: the `replay --json` summary of CONTRACT.md §1 (and the body
/// that `POST /api/v1/ingest/{source}` answers with).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IngestSummary {
    /// Sign-in events newly stored (successes + failures + interrupts).
    pub records: u64,
    /// Newly stored successes.
    pub successes: u64,
    /// Newly stored failures.
    pub failures: u64,
    /// Newly stored interrupts.
    pub interrupts: u64,
    /// Records skipped because their id was already stored.
    pub duplicates: u64,
    /// Records skipped because they are older than what retention keeps (not in
    /// `records`; they may have been stored before and pruned).
    pub expired: u64,
    /// Records that could not be decoded.
    pub parse_errors: u64,
    /// Records decoded but not sign-in related.
    pub skipped: u64,
    /// Failures per category.
    pub by_category: BTreeMap<String, u64>,
    /// Failures per primary code (`none` when a failure carried no code).
    pub by_code: BTreeMap<String, u64>,
    /// Incidents opened or reopened.
    pub incidents_opened: u64,
    /// Passport records whose message was `<private>` (also counted in `skipped`).
    pub redacted: u64,
    /// Parse errors per reason.
    pub parse_errors_by_reason: BTreeMap<String, u64>,
}

impl IngestSummary {
    /// Adds what a committed batch stored.
    pub fn add_result(&mut self, r: &BatchResult) {
        for ((_, outcome), n) in &r.stored {
            self.records += n;
            match outcome {
                Outcome::Success => self.successes += n,
                Outcome::Failure => self.failures += n,
                Outcome::Interrupt => self.interrupts += n,
            }
        }
        for ((_, category, code), n) in &r.failures {
            *self.by_category.entry(category.as_str().to_string()).or_default() += n;
            *self.by_code.entry(code.map(|c| c.to_string()).unwrap_or_else(|| "none".into())).or_default() += n;
        }
        self.duplicates += r.duplicates;
        self.expired += r.expired_by_source.values().sum::<u64>();
        self.incidents_opened += r.incidents_opened.values().sum::<u64>();
    }

    /// Adds the decode-side counts of another summary.
    pub fn add_decode_counts(&mut self, other: &DecodeTally) {
        self.parse_errors += other.parse_errors.values().sum::<u64>();
        for (reason, n) in &other.parse_errors {
            *self.parse_errors_by_reason.entry(reason.to_string()).or_default() += n;
        }
        self.skipped += other.skipped + other.redacted;
        self.redacted += other.redacted;
    }
}

/// Decode-side counts of one chunk of input (what never reaches the store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeTally {
    /// Records read (every item).
    pub lines: u64,
    /// Not sign-in related.
    pub skipped: u64,
    /// `<private>` messages.
    pub redacted: u64,
    /// Undecodable records per reason.
    pub parse_errors: BTreeMap<&'static str, u64>,
}

impl DecodeTally {
    /// Folds another tally in.
    pub fn merge(&mut self, o: &DecodeTally) {
        self.lines += o.lines;
        self.skipped += o.skipped;
        self.redacted += o.redacted;
        for (k, v) in &o.parse_errors {
            *self.parse_errors.entry(k).or_default() += v;
        }
    }

    /// Records the tally in the metrics of `source`.
    pub fn record(&self, metrics: &Metrics, source: &str) {
        metrics.ingest_lines.with_label_values(&[source]).inc_by(self.lines);
        metrics.skipped.with_label_values(&[source]).inc_by(self.skipped);
        metrics.redacted.with_label_values(&[source]).inc_by(self.redacted);
        for (reason, n) in &self.parse_errors {
            metrics.parse_errors.with_label_values(&[source, reason]).inc_by(*n);
        }
        if self.lines > 0 {
            metrics.last_ingest.with_label_values(&[source]).set(Utc::now().timestamp_millis() as f64 / 1000.0);
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Applies `[privacy]` to personal values before anything is stored.
#[derive(Clone)]
pub struct Privacy {
    users: PrivacyMode,
    ips: PrivacyMode,
    // Each key is held as an HMAC already keyed: keying hashes the padded key twice,
    // which would otherwise be paid again for every value hashed.
    key: HmacSha256,
    user_key_secret: HmacSha256,
    /// The store's own secret: keys Passport entries' idempotency keys, which must not
    /// change with the privacy settings.
    entry_key_secret: HmacSha256,
    /// Runs of the characters an IPv4 or IPv6 address is written with; each is parsed
    /// before it counts as one.
    ip_like: Regex,
}

impl std::fmt::Debug for Privacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Privacy").field("users", &self.users).field("ips", &self.ips).finish_non_exhaustive()
    }
}

/// An HMAC-SHA256 keyed with `key`, ready to be cloned for each value.
fn keyed_hmac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail; the empty key stands in
    // rather than a panic if the crate ever changes that.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()))
}

fn hmac_hex(keyed: &HmacSha256, value: &str) -> String {
    let mut hex = String::with_capacity(32);
    push_hmac_hex(&mut hex, keyed, &[value.as_bytes()]);
    hex
}

/// Appends to `out` the [`hmac_hex`] of the parts one after another: without joining them
/// into one string first, nor the hex into `out` through a string of its own.
fn push_hmac_hex(out: &mut String, keyed: &HmacSha256, parts: &[&[u8]]) {
    let mut mac = keyed.clone();
    for part in parts {
        mac.update(part);
    }
    // The first 16 bytes of the 32-byte HMAC-SHA256.
    crate::hex::push_hex(out, &mac.finalize().into_bytes()[..16]);
}

/// The address a client IP field or message names, however it is written: with a port
/// (`203.0.113.5:443`, `[2001:db8::1]:443`), in brackets, IPv6 with leading zeros or in
/// full, or IPv4 mapped into IPv6 (`::ffff:203.0.113.9`, which is that IPv4 address).
fn parse_ip(value: &str) -> Option<std::net::IpAddr> {
    let value = value.trim();
    let ip = value
        .parse::<std::net::IpAddr>()
        .ok()
        .or_else(|| value.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| value.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(ip.to_canonical())
}

/// An address's one written form (`parse_ip`, then as Rust prints it: lower case, zeros
/// compressed), so that one address gives one hash; text that is no address, lower-cased.
fn canonical_ip(value: &str) -> String {
    parse_ip(value).map_or_else(|| value.trim().to_lowercase(), |ip| ip.to_string())
}

/// The network part of an address: /24 for IPv4, /48 for IPv6; anything that is not
/// an address is dropped rather than stored as it is.
fn truncate_ip(value: &str) -> Option<String> {
    match parse_ip(value)? {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(format!("{a}.{b}.{c}.0/24"))
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(format!("{}/48", std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0)))
        }
    }
}

/// Where in a run of address characters (`ip_like`) an address is written: the run
/// itself, or the run without the punctuation around it ("IP:192.0.2.7." in prose). A
/// leading `::` belongs to an IPv6 address and is kept.
fn ip_within(run: &str) -> Option<(usize, usize)> {
    let is_ip = |s: &str| s.parse::<std::net::IpAddr>().is_ok();
    if is_ip(run) {
        return Some((0, run.len()));
    }
    let start = if run.starts_with("::") { 0 } else { run.len() - run.trim_start_matches([':', '.']).len() };
    let inner = &run[start..];
    if is_ip(inner) {
        return Some((start, run.len()));
    }
    let end = start + inner.trim_end_matches([':', '.']).len();
    if is_ip(&run[start..end]) {
        return Some((start, end));
    }
    // An IPv4 address with its port ("203.0.113.5:443"): the address alone. (An IPv6
    // address takes a port only inside brackets, which end the run.)
    let (host, port) = run[start..end].rsplit_once(':')?;
    let v4 = host.parse::<std::net::Ipv4Addr>().is_ok();
    (v4 && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some((start, start + host.len()))
}

/// The first address written in `text[from..to]`, a run of address characters
/// (`ip_like`) or its tail. A run starts wherever hex digits do, so it may begin inside
/// the word before the address ("remote:203.0.113.20" runs from the `e`, "source:2001:db8::25"
/// from `ce`): each place an address could start is tried in turn, the run's start, after
/// each `:`, and where digits follow letters ("src203.0.113.16"); not after a `.`, which
/// would find "1.2.3.4" inside "9.1.2.3.4".
///
/// An address glued to a word ("Error::Format", "x1.2.3.4abc") is not one, with one
/// exception: an IPv4 address with only letters before it is (a version string that looks
/// like one is redacted too; an address left in the text would be the worse mistake).
fn address_in(text: &str, from: usize, to: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let glued = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_alphanumeric);
    // An address (with a port) ends at the run's end, punctuation aside, and is never
    // longer than this: only starts that close to the end are tried, so a long run (a hex
    // dump in a message) costs linear time, not a parse per colon.
    const LONGEST: usize = 64;
    let last = from + text[from..to].trim_end_matches([':', '.']).len();
    (from.max(last.saturating_sub(LONGEST))..to)
        .filter(|&i| {
            i == from || bytes[i - 1] == b':' || (bytes[i - 1].is_ascii_alphabetic() && bytes[i].is_ascii_digit())
        })
        .find_map(|s| {
            let (a, b) = ip_within(&text[s..to])?;
            let (start, end) = (s + a, s + b);
            if glued(end) {
                return None;
            }
            let left = start.checked_sub(1).map(|i| bytes[i]);
            let v4_after_letters =
                left.is_some_and(|l| l.is_ascii_alphabetic()) && text[start..end].parse::<std::net::Ipv4Addr>().is_ok();
            (!left.is_some_and(|l| l.is_ascii_alphanumeric()) || v4_after_letters).then_some((start, end))
        })
}

impl Privacy {
    /// Builds the filter. `store_secret` keys the users-affected hashes when no
    /// `hash_key` is configured (it never leaves the database).
    pub fn new(settings: &PrivacySettings, store_secret: &[u8]) -> Privacy {
        let key = settings.hash_key.expose().as_bytes().to_vec();
        let user_key_secret = if key.is_empty() { store_secret.to_vec() } else { key.clone() };
        Privacy {
            users: settings.users,
            ips: settings.ips,
            key: keyed_hmac(&key),
            user_key_secret: keyed_hmac(&user_key_secret),
            entry_key_secret: keyed_hmac(store_secret),
            #[allow(clippy::expect_used)]
            ip_like: Regex::new(r"[0-9A-Fa-f:.]{3,}").expect("static regex"),
        }
    }

    fn apply(&self, mode: PrivacyMode, value: Option<String>) -> Option<String> {
        let value = value.filter(|v| !v.is_empty())?;
        match mode {
            PrivacyMode::Keep => Some(value),
            PrivacyMode::Hash => {
                let mut hashed = String::with_capacity(37);
                hashed.push_str("hmac:");
                push_hmac_hex(&mut hashed, &self.key, &[value.to_lowercase().as_bytes()]);
                Some(hashed)
            }
            PrivacyMode::Drop => None,
            PrivacyMode::Truncate => truncate_ip(&value),
        }
    }

    /// The stored form of a user principal name.
    pub fn user(&self, value: Option<String>) -> Option<String> {
        self.apply(self.users, value)
    }

    /// The stored form of an IP address.
    pub fn ip(&self, value: Option<String>) -> Option<String> {
        // Hashed, one address is one hash however it was written.
        let value = if self.ips == PrivacyMode::Hash { value.map(|v| canonical_ip(&v)) } else { value };
        self.apply(self.ips, value)
    }

    /// A keyed hash of the client IP, for the spray detector.
    pub fn ip_key(&self, ip: Option<&str>) -> Option<String> {
        let ip = ip.filter(|i| !i.is_empty())?;
        let mut key = String::with_capacity(32);
        push_hmac_hex(&mut key, &self.user_key_secret, &[b"ip:", canonical_ip(ip).as_bytes()]);
        Some(key)
    }

    /// A keyed hash identifying the user for exact `users_affected` counts.
    pub fn user_key(&self, user: Option<&str>) -> Option<String> {
        let user = user.filter(|u| !u.is_empty())?;
        Some(hmac_hex(&self.user_key_secret, &user.to_lowercase()))
    }

    /// A Passport log entry's idempotency key: its time to the millisecond (the compact
    /// style's precision; the others give microseconds) and its whole message, keyed like
    /// the store's own secret (the message may name a user; not `privacy.hash_key`, whose
    /// change would make every entry new). An entry has no id, and its file and
    /// offset differ between two exports of one Mac's log (overlapping windows, another
    /// style, a copy), which would count it once per export.
    ///
    /// The message is compared as the text styles print it: their lines end at `\n`
    /// (a `\r` before it is line framing to them, text to ndjson) and trailing blanks are
    /// not kept.
    ///
    /// The logging process's id, which every `log show` style prints, is part of the key
    /// when known: the same bare message (`AADSTS50076: …`, no trace id) logged in the
    /// same millisecond on two Macs of a fleet export is two entries.
    pub fn entry_key(&self, at: DateTime<Utc>, pid: Option<u32>, message: &str) -> String {
        let message = message.trim_end();
        let message = if message.contains('\r') {
            std::borrow::Cow::Owned(message.replace("\r\n", "\n"))
        } else {
            message.into()
        };
        let mut key = String::with_capacity(36);
        key.push_str("log:");
        // The hash reads `millis\npid\nmessage` (or `millis\nmessage`) part by part: a
        // `format!` of it was most of this key's cost, paid for every stored Passport
        // line (BENCHMARKS.md, twenty-fourth pass).
        let (mut millis, mut process) = ([0; 20], [0; 20]);
        let millis = crate::hex::decimal(at.timestamp_millis(), &mut millis);
        match pid {
            Some(pid) => push_hmac_hex(
                &mut key,
                &self.entry_key_secret,
                &[millis, b"\n", crate::hex::decimal(i64::from(pid), &mut process), b"\n", message.as_bytes()],
            ),
            None => push_hmac_hex(&mut key, &self.entry_key_secret, &[millis, b"\n", message.as_bytes()]),
        }
        key
    }

    /// E-mail addresses and IP addresses inside free text, treated like user names and
    /// client IPs.
    pub fn message(&self, text: Option<String>) -> Option<String> {
        let text = text?;
        let text = if self.users == PrivacyMode::Keep {
            text
        } else {
            let mut out = String::new();
            let mut copied = 0;
            for span in crate::ingest::formats::email_spans(&text) {
                out.push_str(&text[copied..span.start]);
                match self.users {
                    // The same hash as the user field's when the message names that user.
                    PrivacyMode::Hash => {
                        out.push_str("<user:hmac:");
                        push_hmac_hex(&mut out, &self.key, &[span.address(&text).to_lowercase().as_bytes()]);
                        out.push('>');
                    }
                    _ => out.push_str("<redacted>"),
                }
                copied = span.end;
            }
            if copied == 0 {
                text
            } else {
                out.push_str(&text[copied..]);
                out
            }
        };
        if self.ips == PrivacyMode::Keep || !text.bytes().any(|b| b == b'.' || b == b':') {
            return Some(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for run in self.ip_like.find_iter(&text) {
            let mut from = run.start();
            while let Some((start, end)) = address_in(&text, from, run.end()) {
                let ip = &text[start..end];
                out.push_str(&text[copied..start]);
                match self.ips {
                    PrivacyMode::Hash => {
                        out.push_str("<ip:hmac:");
                        push_hmac_hex(&mut out, &self.key, &[canonical_ip(ip).as_bytes()]);
                        out.push('>');
                    }
                    PrivacyMode::Truncate => out.push_str(truncate_ip(ip).as_deref().unwrap_or("<redacted>")),
                    _ => out.push_str("<redacted>"),
                }
                copied = end;
                from = end;
            }
        }
        out.push_str(&text[copied..]);
        Some(out)
    }
}

/// Turns decoded items into stored events: classification, privacy, idempotency keys.
#[derive(Clone)]
pub struct Normalizer {
    classifier: Arc<SharedClassifier>,
    privacy: Privacy,
    defaults: Arc<std::collections::HashMap<String, SourceDefaults>>,
    error_log: Arc<ParseErrorLog>,
}

/// Logs undecodable records at most once a minute per input, naming the input, the first
/// line and its reason, every reason with its count (`reasons`), never the content, and
/// how many were suppressed since.
#[derive(Debug, Default)]
pub struct ParseErrorLog {
    last: std::sync::Mutex<std::collections::HashMap<String, ErrorLogState>>,
}

/// What one input has logged, and held back since.
#[derive(Debug, Default)]
struct ErrorLogState {
    logged_at: Option<std::time::Instant>,
    suppressed: u64,
    /// Line and reason of the first record held back since the last report.
    first_suppressed: Option<(u64, String)>,
}

/// How often one input may log its parse errors.
const PARSE_ERROR_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

impl ParseErrorLog {
    /// Notes the error items of one chunk from `origin` (a path, `stdin`, an HTTP route).
    pub fn report(&self, source: &str, origin: &str, items: &[DecodedItem]) {
        let mut errors = items.iter().filter_map(|i| match i.kind {
            ItemKind::Error(reason) => Some((i.line, reason)),
            _ => None,
        });
        let Some((line, reason)) = errors.next() else {
            return;
        };
        // Every reason with its count: one chunk can hold, say, bad JSON and bad UTF-8.
        let mut by_reason = std::collections::BTreeMap::from([(reason.as_str(), 1u64)]);
        for (_, r) in errors {
            *by_reason.entry(r.as_str()).or_default() += 1;
        }
        let count: u64 = by_reason.values().sum();
        let reasons = by_reason.iter().map(|(r, n)| format!("{r}={n}")).collect::<Vec<_>>().join(",");
        let now = std::time::Instant::now();
        let mut last = match self.last.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        let entry = last.entry(origin.to_string()).or_default();
        if entry.logged_at.is_some_and(|at| now.duration_since(at) < PARSE_ERROR_LOG_INTERVAL) {
            entry.suppressed += count;
            entry.first_suppressed.get_or_insert_with(|| (line, reason.as_str().to_owned()));
            return;
        }
        let suppressed = entry.suppressed;
        *entry = ErrorLogState { logged_at: Some(now), ..ErrorLogState::default() };
        drop(last);
        tracing::warn!(
            source,
            file = origin,
            line,
            reason = reason.as_str(),
            records = count,
            reasons,
            suppressed_since_last_report = suppressed,
            "undecodable records skipped (counted in passportd_parse_errors_total)"
        );
    }

    /// The input `origin` has ended (a replayed file or stream): logs what was held back
    /// since its last report, naming the first such line, so that every parse error of
    /// a replay is accounted for on stderr before its summary.
    pub fn finish(&self, source: &str, origin: &str) {
        let mut last = match self.last.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(state) = last.remove(origin) else {
            return;
        };
        drop(last);
        if let Some((line, reason)) = state.first_suppressed {
            tracing::warn!(
                source,
                file = origin,
                line,
                reason = reason.as_str(),
                records = state.suppressed,
                "more undecodable records skipped since the last report (counted in passportd_parse_errors_total)"
            );
        }
    }
}

/// Values a source supplies for records that carry none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceDefaults {
    /// Application (client) id.
    pub app_id: Option<String>,
    /// Tenant id.
    pub tenant_id: Option<String>,
}

impl Normalizer {
    /// Builds a normalizer.
    pub fn new(classifier: Arc<SharedClassifier>, privacy: Privacy) -> Self {
        Self { classifier, privacy, defaults: Arc::default(), error_log: Arc::default() }
    }

    /// Logs (rate-limited) the undecodable records among `items` read from `origin`.
    pub fn report_parse_errors(&self, source: &str, origin: &str, items: &[DecodedItem]) {
        self.error_log.report(source, origin, items);
    }

    /// Logs the parse errors of `origin` held back by the rate limit: it has ended.
    pub fn finish_parse_errors(&self, source: &str, origin: &str) {
        self.error_log.finish(source, origin);
    }

    /// Adds per-source defaults (from `[[sources]] app_id / tenant_id`).
    pub fn with_source_defaults(mut self, defaults: std::collections::HashMap<String, SourceDefaults>) -> Self {
        self.defaults = Arc::new(defaults);
        self
    }

    /// Classifies and normalizes `items` read from `file_key`, appending events and
    /// successes to `out` and counting everything else in its tally. Copies what it keeps
    /// of each item; a caller that is done with the items should call
    /// [`Normalizer::process_owned`] instead, which moves it.
    pub fn process(
        &self,
        source: &str,
        file_key: &str,
        items: &[DecodedItem],
        received_at: DateTime<Utc>,
        mut out: Normalized<'_>,
    ) {
        let classifier = self.classifier.current();
        let shared: Arc<str> = Arc::from(source);
        for item in items {
            let raw = match &item.kind {
                ItemKind::SignIn(raw) => Some(raw.as_ref().clone()),
                _ => None,
            };
            self.one(&classifier, &shared, file_key, item, raw, received_at, &mut out);
        }
    }

    /// [`Normalizer::process`] for items the caller no longer needs: drains `items` and
    /// moves each sign-in's strings into its event instead of copying them (the reader's
    /// hot path: an Azure record carries a dozen strings).
    pub fn process_owned(
        &self,
        source: &str,
        file_key: &str,
        items: &mut Vec<DecodedItem>,
        received_at: DateTime<Utc>,
        mut out: Normalized<'_>,
    ) {
        let classifier = self.classifier.current();
        let shared: Arc<str> = Arc::from(source);
        for mut item in items.drain(..) {
            let raw = match std::mem::replace(&mut item.kind, ItemKind::Skipped) {
                ItemKind::SignIn(raw) => Some(*raw),
                other => {
                    item.kind = other;
                    None
                }
            };
            self.one(&classifier, &shared, file_key, &item, raw, received_at, &mut out);
        }
    }

    /// Counts one item, or turns its sign-in (`raw`, taken out of the item) into an event.
    #[allow(clippy::too_many_arguments)]
    fn one(
        &self,
        classifier: &crate::classify::Classifier,
        source: &Arc<str>,
        file_key: &str,
        item: &DecodedItem,
        raw: Option<RawSignIn>,
        received_at: DateTime<Utc>,
        out: &mut Normalized<'_>,
    ) {
        out.tally.lines += 1;
        if let Some(raw) = raw {
            let redacted = raw.redacted;
            match self.event(classifier, source, file_key, item.start_offset, raw, received_at) {
                Some(Made::Event(ev)) => out.events.push(*ev),
                Some(Made::Success(s)) => out.successes.push(s),
                // Nothing to classify, but `<private>` may be what hid it ("Token request
                // failed: <private>"): counted as redacted, as a wholly private message is.
                None if redacted => out.tally.redacted += 1,
                None => out.tally.skipped += 1,
            }
            return;
        }
        match &item.kind {
            ItemKind::Skipped | ItemKind::SignIn(_) => out.tally.skipped += 1,
            ItemKind::Redacted => out.tally.redacted += 1,
            ItemKind::Error(reason) => *out.tally.parse_errors.entry(reason.as_str()).or_default() += 1,
        }
    }

    fn event(
        &self,
        classifier: &crate::classify::Classifier,
        shared_source: &Arc<str>,
        file_key: &str,
        offset: u64,
        mut raw: RawSignIn,
        received_at: DateTime<Utc>,
    ) -> Option<Made> {
        let entry_key = self.passport_entry_key(&raw);
        // The source's app and tenant stand in for a record that names none (a Passport
        // line) before it is classified: a catalogue condition on the app then holds for
        // the line as for its Entra record.
        let source: &str = shared_source;
        let defaults = self.defaults.get(source);
        for (own, pick) in [
            (&mut raw.app_id, (|d| &d.app_id) as fn(&SourceDefaults) -> &Option<String>),
            (&mut raw.tenant_id, |d| &d.tenant_id),
        ] {
            if own.as_deref().map_or(true, str::is_empty) {
                *own = defaults.and_then(|d| pick(d).clone());
            }
        }
        if raw.result_code == Some(0) {
            // Result code 0 is a success whatever else the record says (the classifier's
            // first rule). Asking it anyway would build the catalogue texts of a success
            // (five allocations) for most records, only to drop them here.
            return Self::success(shared_source, file_key, offset, &raw, received_at, entry_key).map(Made::Success);
        }
        let c = classifier.classify(&ClassifyInput::of_signin(&raw));
        // Nothing places it: an Entra object without a result of its own is not a sign-in,
        // and a Passport line whose only text is `<private>`-hidden counts as redacted.
        // Any other Passport line got here past `decide`'s gate (an Error or Fault level,
        // a failure phrase, a token body): it counts, as an unclassified failure.
        if raw.result_code.is_none()
            && c.codes.is_empty()
            && c.matched_by.is_none()
            && (raw.format != "passport" || raw.redacted)
        {
            return None;
        }
        if c.outcome == Outcome::Success {
            return Self::success(shared_source, file_key, offset, &raw, received_at, entry_key).map(Made::Success);
        }
        let occurred_at = raw.occurred_at.unwrap_or(received_at);
        let failure = c.outcome == Outcome::Failure;
        // The keyed hashes read the raw values, before privacy replaces them.
        let ip_key = if failure { self.privacy.ip_key(raw.ip.as_deref()) } else { None };
        let user_key = if failure { self.privacy.user_key(raw.user.as_deref()) } else { None };
        let event = SignInEvent {
            received_at,
            occurred_at,
            occurred_from_record: raw.occurred_at.is_some(),
            time_is_logged: raw.time_is_logged,
            source: source.to_string(),
            format: raw.format.to_string(),
            outcome: c.outcome,
            category: Some(c.category),
            codes: c.codes,
            entry_id: c.entry,
            message: self.privacy.message(raw.message),
            user: self.privacy.user(raw.user),
            app_id: raw.app_id,
            app_name: raw.app_name,
            tenant_id: raw.tenant_id,
            client_app: raw.client_app,
            auth_protocol: raw.auth_protocol,
            token_issuer_type: raw.token_issuer_type,
            ip: self.privacy.ip(raw.ip),
            // A GUID in either case is one id: Entra writes it lower-cased, a Mac's log often
            // in capitals, and the two copies of one attempt are joined on it.
            correlation_id: raw.correlation_id.map(|id| id.to_ascii_lowercase()),
            record_id: raw.record_id,
            // A Passport host column or an Entra device name can be an address or an IP:
            // scrubbed as a message is, by the same settings.
            device: self.privacy.message(raw.device),
            position: Some(Position { file_key: file_key.to_string(), offset }),
        };
        // Only a failure can open an incident, the one use of the catalogue texts.
        let (title, remediation, severity) = if failure {
            (c.title, c.remediation, c.severity.as_str().to_string())
        } else {
            (String::new(), String::new(), String::new())
        };
        let stored = StoredEvent::new(event, title, remediation, severity, user_key, ip_key);
        Some(Made::Event(Box::new(match entry_key {
            Some(key) => stored.keyed_by(key),
            None => stored,
        })))
    }

    /// The content key of a Passport log entry with a time of its own (`Privacy::entry_key`);
    /// `None` for a record with an id, or without a time (its key is its position).
    fn passport_entry_key(&self, raw: &RawSignIn) -> Option<String> {
        if raw.format != "passport" || raw.record_id.is_some() {
            return None;
        }
        Some(self.privacy.entry_key(raw.occurred_at?, raw.process_id, raw.message.as_deref()?))
    }

    /// A success is only counted and de-duplicated (by record id or entry key, else
    /// position): it
    /// never reaches a table or an API with its details, so it carries none of them and
    /// skips the privacy work (a keyed hash per user).
    fn success(
        source: &Arc<str>,
        file_key: &str,
        offset: u64,
        raw: &RawSignIn,
        received_at: DateTime<Utc>,
        entry_key: Option<String>,
    ) -> Option<StoredSuccess> {
        let key = match entry_key {
            Some(key) => key,
            None => crate::event::dedup_key(raw.record_id.as_deref(), Some((file_key, offset)))?,
        };
        let occurred_at_ms = raw.occurred_at.unwrap_or(received_at).timestamp_millis();
        Some(StoredSuccess {
            source: Arc::clone(source),
            occurred_at_ms,
            dedup_at: if raw.occurred_at.is_some() { occurred_at_ms } else { 0 },
            time_is_logged: raw.time_is_logged,
            key,
        })
    }
}

/// What the normalizer makes of one sign-in.
enum Made {
    /// A failure or an interrupt, stored in full (boxed: the enum would otherwise be as
    /// large as its largest variant for every success too).
    Event(Box<StoredEvent>),
    /// A success, only counted.
    Success(StoredSuccess),
}

/// Where [`Normalizer::process`] puts what it makes of the items.
pub struct Normalized<'a> {
    /// Failures and interrupts, in full.
    pub events: &'a mut Vec<StoredEvent>,
    /// Successes, compact.
    pub successes: &'a mut Vec<StoredSuccess>,
    /// Everything that did not become either.
    pub tally: &'a mut DecodeTally,
}

/// The single database writer: commits batches and keeps the metrics in step.
#[derive(Clone)]
pub struct Writer {
    store: Store,
    metrics: Metrics,
    policy: Policy,
    /// When a batch that stored records was last written (or the writer was built).
    last_input: Arc<std::sync::Mutex<Instant>>,
}

impl Writer {
    /// Builds a writer.
    pub fn new(store: Store, metrics: Metrics, policy: Policy) -> Self {
        Self { store, metrics, policy, last_input: Arc::new(std::sync::Mutex::new(Instant::now())) }
    }

    /// Lets the incident clock run on while no input arrives: the event-time clock (the
    /// newest event's time) only moves with events, so a feed that goes quiet would keep
    /// its incidents open until the next sign-in. Once nothing has been written for
    /// `min_idle`, incidents are resolved as of that clock plus the time since the last
    /// input. Catching up on a backlog writes continuously, so old data is still judged
    /// in its own time. Returns how many incidents this resolved.
    pub async fn resolve_quiet(&self, min_idle: std::time::Duration) -> Result<u64, StoreError> {
        let idle = match self.last_input.lock() {
            Ok(last) => last.elapsed(),
            Err(poisoned) => poisoned.into_inner().elapsed(),
        };
        if idle < min_idle {
            return Ok(0);
        }
        let resolved = self.store.resolve_quiet(idle, &self.policy).await?;
        if resolved > 0 {
            self.refresh_incident_gauge().await?;
        }
        Ok(resolved)
    }

    fn note_input(&self, result: &BatchResult) {
        // Duplicates are no input: a feed that only re-delivers what is stored is quiet.
        if !result.stored.is_empty() {
            let mut last = match self.last_input.lock() {
                Ok(l) => l,
                Err(poisoned) => poisoned.into_inner(),
            };
            *last = Instant::now();
        }
    }

    /// Commits one batch and updates metrics; the result says what was stored.
    pub async fn commit(&self, batch: &Batch) -> Result<BatchResult, StoreError> {
        if batch.is_empty() {
            return Ok(BatchResult::default());
        }
        let started = Instant::now();
        let mut tx = self.store.begin_write().await?;
        let result = self.store.apply_batch(&mut tx, batch, &self.policy).await?;
        self.finish(tx, result.changed_incidents()).await?;
        self.metrics.batch_commit.observe(started.elapsed().as_secs_f64());
        self.record(batch, &result);
        Ok(result)
    }

    /// Opens a transaction that several batches can be applied to ([`Writer::apply`])
    /// before one commit ([`Writer::finish`]).
    pub async fn begin(&self) -> Result<WriteTx, StoreError> {
        self.store.begin_write().await
    }

    /// Writes one batch inside `tx` and counts what it stored. The counters move now,
    /// not at the commit, so that the batch can be freed before it; if the commit then
    /// fails, the caller fails with it (replay exits non-zero). The read-back gauges
    /// wait for [`Writer::finish`]: other connections cannot see the batch before.
    pub async fn apply(&self, tx: &mut WriteTx, batch: &Batch) -> Result<BatchResult, StoreError> {
        let result = self.store.apply_batch(tx, batch, &self.policy).await?;
        self.record(batch, &result);
        Ok(result)
    }

    /// Counts a written batch: its size, what it stored, and each record's lag.
    fn record(&self, batch: &Batch, result: &BatchResult) {
        self.note_input(result);
        self.metrics.batch_records.observe(batch.records() as f64);
        self.metrics.record_batch(result);
        let now = Utc::now().timestamp_millis();
        // One label lookup per run of events from the same source, not one per event
        // (a hash and a lock each): a batch almost always comes from one source.
        let mut lag_of: Option<(&str, prometheus::Histogram)> = None;
        let events = batch.events.iter().map(|e| (e.event.source.as_str(), e.event.occurred_at.timestamp_millis()));
        let successes = batch.successes.iter().map(|s| (&*s.source, s.occurred_at_ms));
        for (source, occurred_at_ms) in events.chain(successes) {
            let lag = now.saturating_sub(occurred_at_ms).max(0) as f64 / 1000.0;
            match &lag_of {
                Some((s, h)) if *s == source => h.observe(lag),
                _ => {
                    let h = self.metrics.ingest_lag.with_label_values(&[source]);
                    h.observe(lag);
                    lag_of = Some((source, h));
                }
            }
        }
    }

    /// Commits `tx`, then refreshes what is read back from the store: the open-incident
    /// gauge when `incidents_changed` (a batch in it opened or resolved incidents), and
    /// the store size.
    pub async fn finish(&self, tx: WriteTx, incidents_changed: bool) -> Result<(), StoreError> {
        tx.commit().await?;
        if incidents_changed {
            self.refresh_incident_gauge().await?;
        }
        self.metrics.store_size.set(self.store.size_bytes() as i64);
        Ok(())
    }

    /// Re-reads the open-incident counts into `passportd_incidents_open`.
    pub async fn refresh_incident_gauge(&self) -> Result<(), StoreError> {
        let open = self.store.open_incidents_by_category(None).await?;
        for category in Category::failure_categories() {
            self.metrics
                .incidents_open
                .with_label_values(&[category.as_str()])
                .set(open.get(&category).copied().unwrap_or(0));
        }
        Ok(())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    /// Stored hashes must not change between versions (they key users, IPs and Passport
    /// entries already in the store): a keyed HMAC cloned for each value is RFC 4231's.
    #[test]
    fn keyed_hmac_is_rfc_4231_hmac_sha256() {
        let keyed = keyed_hmac(b"Jefe");
        assert_eq!(hmac_hex(&keyed, "what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c7");
        // The keyed state is not consumed: the same value hashes the same way twice.
        assert_eq!(hmac_hex(&keyed, "what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c7");
        let long_key = [0xaa_u8; 131];
        assert_eq!(
            hmac_hex(&keyed_hmac(&long_key), "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f"
        );
    }

    /// A success travels as a compact record carrying exactly the key, the times and the
    /// source its full event would have had; failures still travel in full.
    #[test]
    fn a_success_travels_compact_with_the_key_and_times_of_its_full_event() {
        use crate::classify::{Catalogue, Classifier};
        use crate::ingest::formats::{decode_bytes, DecodeOptions};
        let catalogue = Catalogue::load(&[]).expect("embedded catalogue");
        let classifier = Arc::new(SharedClassifier::new(Classifier::new(Arc::new(catalogue), Vec::new())));
        let normalizer = Normalizer::new(classifier, Privacy::new(&PrivacySettings::default(), b"store-secret"));
        let with_id = r#"{"time":"2026-03-04T16:15:02Z","category":"SignInLogs","resultType":"0","properties":{"id":"AbC-1","status":{"errorCode":0}}}"#;
        let without_id = r#"{"category":"SignInLogs","resultType":"0","properties":{"status":{"errorCode":0}}}"#;
        let failure = r#"{"time":"2026-03-04T16:15:03Z","category":"SignInLogs","resultType":"50126","properties":{"id":"f-1","status":{"errorCode":50126}}}"#;
        let text = format!("{with_id}\n{without_id}\n{failure}\n");
        let items = decode_bytes(&DecodeOptions::default(), text.as_bytes());
        let received_at = DateTime::parse_from_rfc3339("2026-03-05T00:00:00Z").expect("time").with_timezone(&Utc);
        let (mut events, mut successes, mut tally) = (Vec::new(), Vec::new(), DecodeTally::default());
        let out = Normalized { events: &mut events, successes: &mut successes, tally: &mut tally };
        normalizer.process("entra", "gen-1", &items, received_at, out);
        let at = DateTime::parse_from_rfc3339("2026-03-04T16:15:02Z").expect("time").timestamp_millis();
        let second = items[1].start_offset;
        assert_eq!(
            successes,
            vec![
                StoredSuccess {
                    source: Arc::from("entra"),
                    occurred_at_ms: at,
                    dedup_at: at,
                    // Its only time is the record's (`time`), not the sign-in's.
                    time_is_logged: true,
                    key: "id:abc-1".into(),
                },
                StoredSuccess {
                    source: Arc::from("entra"),
                    occurred_at_ms: received_at.timestamp_millis(),
                    dedup_at: 0,
                    time_is_logged: false,
                    key: format!("pos:gen-1:{second}"),
                },
            ]
        );
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].event.outcome, Outcome::Failure);
        assert_eq!(events[0].event.dedup_key().as_deref(), Some("id:f-1"));
        assert_eq!(tally.lines, 3);
    }

    /// The reader decodes a success lean (`success_detail: false`): whatever the shape,
    /// that must normalize to exactly what the full decode does.
    #[test]
    fn a_lean_success_decode_normalizes_exactly_as_the_full_one() {
        use crate::classify::{Catalogue, Classifier};
        use crate::ingest::formats::{decode_bytes, DecodeOptions, ItemKind};
        let catalogue = Catalogue::load(&[]).expect("embedded catalogue");
        let classifier = Arc::new(SharedClassifier::new(Classifier::new(Arc::new(catalogue), Vec::new())));
        let normalizer = Normalizer::new(classifier, Privacy::new(&PrivacySettings::default(), b"store-secret"));
        let root = env!("CARGO_MANIFEST_DIR");
        let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(format!("{root}/tests/fixtures/azure"))
            .expect("fixtures")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x != "md"))
            .map(|p| std::fs::read(p).expect("fixture"))
            .collect();
        inputs.push(std::fs::read(format!("{root}/examples/logs/entra/PT1H.json")).expect("example"));
        // Traps: the id only at the top level, a status held as text, no time at all, a
        // success code in resultType alone, and a failure next to them.
        inputs.push(
            concat!(
                r#"{"time":"2026-03-04T16:15:02Z","resultType":0,"Id":"Top-1","properties":{"userPrincipalName":"a@b.example"}}"#,
                "\n",
                r#"{"TimeGenerated":"2026-03-04T16:15:03Z","Id":"la-1","Status":"{\"errorCode\":0}","UserPrincipalName":"a@b.example"}"#,
                "\n",
                r#"{"resultType":"0","properties":{"status":{"errorCode":0},"ipAddress":"192.0.2.1"}}"#,
                "\n",
                r#"{"time":"2026-03-04T16:15:04Z","resultType":"50126","properties":{"id":"f-1","userPrincipalName":"a@b.example"}}"#,
                "\n"
            )
            .as_bytes()
            .to_vec(),
        );
        // A Log Analytics CSV export: the same decoder behind a header row.
        inputs.push(
            concat!(
                "TimeGenerated [UTC],ResultType,UserPrincipalName,IPAddress,Status,Id\r\n",
                "2026-03-04T08:16:00Z,0,b@contoso.example,192.0.2.2,\"{\"\"errorCode\"\":0}\",id-2\r\n",
                "2026-03-04T08:17:00Z,50126,b@contoso.example,192.0.2.2,\"{\"\"errorCode\"\":50126}\",id-3\r\n",
            )
            .as_bytes()
            .to_vec(),
        );
        let received_at = DateTime::parse_from_rfc3339("2026-03-05T00:00:00Z").expect("time").with_timezone(&Utc);
        let mut lean_successes = 0;
        for bytes in &inputs {
            let normalize = |success_detail: bool| {
                let items = decode_bytes(&DecodeOptions { success_detail, ..DecodeOptions::default() }, bytes);
                let (mut events, mut successes, mut tally) = (Vec::new(), Vec::new(), DecodeTally::default());
                let out = Normalized { events: &mut events, successes: &mut successes, tally: &mut tally };
                normalizer.process("entra", "gen-1", &items, received_at, out);
                (items, events, successes, tally)
            };
            let (_, full_events, full_successes, full_tally) = normalize(true);
            let (lean_items, lean_events, successes, tally) = normalize(false);
            assert_eq!(successes, full_successes);
            assert_eq!(format!("{lean_events:?}"), format!("{full_events:?}"));
            assert_eq!(format!("{tally:?}"), format!("{full_tally:?}"));
            lean_successes += lean_items
                .iter()
                .filter(|i| matches!(&i.kind, ItemKind::SignIn(s) if s.result_code == Some(0) && s.user.is_none() && s.ip.is_none()))
                .count();
        }
        assert!(lean_successes >= 4, "the lean decode did not run: {lean_successes}");
    }

    #[test]
    fn the_event_budget_holds_a_reader_until_the_writer_gives_back() {
        let budget = EventBudget::new(10);
        assert!(budget.take_blocking(10));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let reader = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                let taken = budget.take_blocking(5);
                let _ = done_tx.send(taken);
            })
        };
        // Nothing was given back, so the reader cannot have got its 5.
        assert!(done_rx.try_recv().is_err());
        budget.give_back(5);
        assert_eq!(done_rx.recv_timeout(std::time::Duration::from_secs(10)), Ok(true));
        let _ = reader.join();
    }

    #[test]
    fn a_chunk_larger_than_the_budget_takes_all_of_it_and_a_closed_budget_refuses() {
        let budget = EventBudget::new(4);
        assert!(budget.take_blocking(1000), "an oversized chunk must not wait forever");
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let reader = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                let _ = done_tx.send(budget.take_blocking(1));
            })
        };
        assert!(done_rx.try_recv().is_err());
        // The writer stopped (an error): the waiting reader is told so instead of hanging.
        drop(CloseOnDrop(Some(budget.clone())));
        assert_eq!(done_rx.recv_timeout(std::time::Duration::from_secs(10)), Ok(false));
        let _ = reader.join();
        assert!(!budget.take_blocking(0));
    }

    #[test]
    fn privacy_modes() {
        let mut s = PrivacySettings::default();
        let keep = Privacy::new(&s, b"store-secret");
        assert_eq!(keep.user(Some("a@b.example".into())).as_deref(), Some("a@b.example"));
        s.users = PrivacyMode::Hash;
        s.ips = PrivacyMode::Drop;
        s.hash_key = Secret::new("0123456789abcdef");
        let p = Privacy::new(&s, b"store-secret");
        let hashed = p.user(Some("Alice@Contoso.example".into())).expect("hashed");
        assert!(hashed.starts_with("hmac:") && !hashed.contains("alice"), "{hashed}");
        assert_eq!(p.user(Some("alice@contoso.example".into())), Some(hashed));
        assert_eq!(p.ip(Some("192.0.2.1".into())), None);
        let msg = p.message(Some("AADSTS50034: user alice@contoso.example does not exist".into())).expect("msg");
        assert!(!msg.contains("alice"), "{msg}");
        assert!(msg.contains("AADSTS50034"));
        assert_eq!(p.user_key(Some("A@b.example")), p.user_key(Some("a@B.example")));
    }

    #[test]
    fn an_entry_is_keyed_by_its_text_as_every_export_style_prints_it() {
        let p = Privacy::new(&PrivacySettings::default(), b"k");
        let at = DateTime::<Utc>::from_timestamp_millis(1_772_640_902_123).expect("time");
        // ndjson keeps a CRLF inside the message; the text styles end their lines at LF.
        let text = p.entry_key(at, None, "AADSTS50055: expired\nTrace ID: t");
        assert_eq!(p.entry_key(at, None, "AADSTS50055: expired\r\nTrace ID: t\r\n"), text);
        assert_eq!(p.entry_key(at, None, "AADSTS50055: expired\nTrace ID: t  "), text);
        assert_ne!(p.entry_key(at, None, "AADSTS50055: expired\nTrace ID: u"), text);
    }

    #[test]
    fn keyed_hashes_are_the_ones_stores_already_hold() {
        // Hashes written part by part hash the bytes the joined strings did: the user and
        // IP keys count `users_affected` and key the detectors across restarts.
        let mut s = PrivacySettings { users: PrivacyMode::Hash, ..PrivacySettings::default() };
        s.hash_key = Secret::new("0123456789abcdef");
        let p = Privacy::new(&s, b"k");
        let user = p.user(Some("Alice@Contoso.example".into()));
        assert_eq!(user, Some(format!("hmac:{}", hmac_hex(&p.key, "alice@contoso.example"))));
        let ip_key = p.ip_key(Some("::ffff:203.0.113.9"));
        assert_eq!(ip_key, Some(hmac_hex(&p.user_key_secret, "ip:203.0.113.9")));
        let message = p.message(Some("sign-in by bob@contoso.example".into())).expect("message");
        assert_eq!(message, format!("sign-in by <user:hmac:{}>", hmac_hex(&p.key, "bob@contoso.example")));
    }

    #[test]
    fn entry_keys_are_the_keys_stores_already_hold() {
        // A store de-duplicates a replayed line by this key: a key that changed with the
        // version would count every line of a file replayed again twice.
        let p = Privacy::new(&PrivacySettings::default(), b"k");
        for millis in [1_772_640_902_123, 0, 9, -1, -1_000, i64::from(i32::MAX) * 1000] {
            let at = DateTime::<Utc>::from_timestamp_millis(millis).expect("time");
            for pid in [None, Some(0), Some(612), Some(u32::MAX)] {
                let message = "AADSTS50126: Error validating credentials\nTrace ID: t é";
                let joined = match pid {
                    Some(pid) => format!("{millis}\n{pid}\n{message}"),
                    None => format!("{millis}\n{message}"),
                };
                let want = format!("log:{}", hmac_hex(&p.entry_key_secret, &joined));
                assert_eq!(p.entry_key(at, pid, message), want, "{millis} {pid:?}");
            }
        }
    }

    /// One address is one network, one hash and one detector key however it is written:
    /// IPv4 mapped into IPv6 is its IPv4 address, IPv6 with zeros in full or with a port
    /// is the address.
    #[test]
    fn an_address_is_the_same_however_it_is_written() {
        assert_eq!(truncate_ip("::ffff:203.0.113.9").as_deref(), Some("203.0.113.0/24"));
        assert_eq!(truncate_ip("2001:db8:0:12::1").as_deref(), Some("2001:db8::/48"));
        assert_eq!(truncate_ip("203.0.113.5:443").as_deref(), Some("203.0.113.0/24"));
        assert_eq!(truncate_ip("[2001:db8:abcd:12::1]:443").as_deref(), Some("2001:db8:abcd::/48"));
        assert_eq!(truncate_ip("not an address"), None);
        let s = PrivacySettings {
            ips: PrivacyMode::Hash,
            hash_key: Secret::new("0123456789abcdef"),
            ..PrivacySettings::default()
        };
        let p = Privacy::new(&s, b"k");
        let spellings = ["2001:db8:abcd:12::1", "2001:0DB8:abcd:0012:0000:0000:0000:0001", "[2001:db8:abcd:12::1]:443"];
        let hashes: HashSet<_> = spellings.iter().map(|a| p.ip(Some((*a).to_owned()))).collect();
        let keys: HashSet<_> = spellings.iter().map(|a| p.ip_key(Some(a))).collect();
        assert_eq!((hashes.len(), keys.len()), (1, 1), "{hashes:?} {keys:?}");
        assert_eq!(p.ip_key(Some("::ffff:203.0.113.9")), p.ip_key(Some("203.0.113.9")));
    }

    #[test]
    fn addresses_inside_messages_follow_the_ip_setting() {
        let text = "AADSTS50053: locked after attempts from 192.0.2.17, IP:198.51.100.4. and 2001:db8:aa:bb::7; \
                    not 08:15:02, 50126, v2.4, Error::Format, x1.2.3.4abc, 9.1.2.3.4 or 1.2.3.456";
        let mut s = PrivacySettings { ips: PrivacyMode::Drop, ..PrivacySettings::default() };
        let dropped = Privacy::new(&s, b"k").message(Some(text.into())).expect("msg");
        assert_eq!(
            dropped,
            "AADSTS50053: locked after attempts from <redacted>, IP:<redacted>. and <redacted>; \
             not 08:15:02, 50126, v2.4, Error::Format, x1.2.3.4abc, 9.1.2.3.4 or 1.2.3.456"
        );
        // After a word ending in a hex letter and a colon, or glued to letters (IPv4).
        let labelled = "from remote:203.0.113.20 source:2001:db8::25 src203.0.113.16 x1.2.3.4 \
                    peer:203.0.113.22 face:198.51.100.9:443 cafe::1 at 08:15:02.123456";
        assert_eq!(
            Privacy::new(&s, b"k").message(Some(labelled.into())).as_deref(),
            Some(
                "from remote:<redacted> source:<redacted> src<redacted> x<redacted> \
                 peer:<redacted> face:<redacted>:443 <redacted> at 08:15:02.123456"
            )
        );
        s.ips = PrivacyMode::Truncate;
        let truncated = Privacy::new(&s, b"k").message(Some(text.into())).expect("msg");
        assert!(truncated.contains("from 192.0.2.0/24, IP:198.51.100.0/24. and 2001:db8:aa::/48;"), "{truncated}");
        s.ips = PrivacyMode::Hash;
        s.hash_key = Secret::new("0123456789abcdef");
        let hashed = Privacy::new(&s, b"k").message(Some(text.into())).expect("msg");
        assert!(!hashed.contains("192.0.2.17") && hashed.contains("<ip:hmac:"), "{hashed}");
        s.ips = PrivacyMode::Keep;
        assert_eq!(Privacy::new(&s, b"k").message(Some(text.into())).as_deref(), Some(text));
        // With a port, and a guest's name (which embeds the guest's own address).
        let s = PrivacySettings { ips: PrivacyMode::Drop, users: PrivacyMode::Drop, ..PrivacySettings::default() };
        let text = "could not connect to 203.0.113.5:443 at 08:15:02 for User account \
                    'alice_gmail.com#EXT#@contoso.onmicrosoft.com'";
        assert_eq!(
            Privacy::new(&s, b"k").message(Some(text.into())).as_deref(),
            Some("could not connect to <redacted>:443 at 08:15:02 for User account '<redacted>'")
        );
        // Letters beyond ASCII and the punctuation local parts allow keep nothing back.
        let text = "jörg@contoso.example, o'neil@contoso.example, al!ce@contoso.example, \
                    `bob@müller.example`, user=carol@contoso.example";
        assert_eq!(
            Privacy::new(&s, b"k").message(Some(text.into())).as_deref(),
            Some("<redacted>, <redacted>, <redacted>, `<redacted>`, user=<redacted>")
        );
        // URL-encoded in a logged form body, and quoted with a JSON escape in a token body.
        let text =
            r"username=gina%40contoso.example&grant_type=password: User account \u0027bob@fabrikam.example\u0027 from";
        assert_eq!(
            Privacy::new(&s, b"k").message(Some(text.into())).as_deref(),
            Some(r"username=<redacted>&grant_type=password: User account \u0027<redacted>\u0027 from")
        );
        let escaped =
            r"User account \u0027first\u002Blast@contoso.example\u0027 and \u0027jos\u00e9@contoso.example\u0027";
        assert_eq!(
            Privacy::new(&s, b"k").message(Some(escaped.into())).as_deref(),
            Some(r"User account \u0027<redacted>\u0027 and \u0027<redacted>\u0027")
        );
        // A letter that was not UTF-8 reads as `?` and the address is still one; a version
        // string is no address.
        assert_eq!(
            Privacy::new(&s, b"k").message(Some("for Jos?@contoso.example via KandjiPassport@2.4.1".into())).as_deref(),
            Some("for <redacted> via KandjiPassport@2.4.1")
        );
        // Hashed, an address in a message reads as the same user as the user field.
        let h = PrivacySettings {
            users: PrivacyMode::Hash,
            hash_key: Secret::new("0123456789abcdef"),
            ..PrivacySettings::default()
        };
        let p = Privacy::new(&h, b"k");
        let user = p.user(Some("Bob@Fabrikam.example".into())).expect("user");
        let hashed = p.message(Some(text.into())).expect("msg");
        assert!(hashed.contains(&format!(r"\u0027<user:{user}>\u0027")), "{hashed} vs {user}");
        assert!(!hashed.contains("gina") && !hashed.contains("bob"), "{hashed}");
        // A long run of address characters (a hex dump) costs linear time.
        let dump = format!("{} from 192.0.2.7", "a1:".repeat(200_000));
        let started = std::time::Instant::now();
        let redacted = Privacy::new(&s, b"k").message(Some(dump)).expect("msg");
        assert!(redacted.ends_with("from <redacted>"));
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        // So does a long run of local-part characters full of `%40`s.
        let run = format!("{}a.example", "a%40".repeat(200_000));
        let started = std::time::Instant::now();
        let redacted = Privacy::new(&s, b"k").message(Some(run)).expect("msg");
        assert!(redacted.ends_with("<redacted>"), "{}", &redacted[redacted.len() - 80..]);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        let s = PrivacySettings { users: PrivacyMode::Hash, ..s };
        let hashed = Privacy::new(&s, b"k").message(Some("'Alice@Contoso.example'".into())).expect("msg");
        let bare = Privacy::new(&s, b"k").message(Some("alice@contoso.example".into())).expect("msg");
        assert_eq!(hashed, format!("'{bare}'"));
    }
}

/// Commits `batch`, waiting out another writer that holds the store's lock longer than
/// the busy timeout (an operator's `sqlite3` session, a stopped `replay`): the batch is
/// whole in memory and a failed attempt rolled back, so trying again stores it once.
/// Any other error ends the writer (and the daemon, which a supervisor restarts; file
/// positions are committed with the records, so nothing is lost).
async fn commit_when_unlocked(writer: &Writer, batch: &Batch) -> Result<BatchResult, StoreError> {
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        match writer.commit(batch).await {
            Err(e) if e.is_busy() => {
                tracing::warn!(error = %e, retry_in = ?wait, "the store is locked by another writer; the batch waits");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
            result => return result,
        }
    }
}

/// Batching limits of the writer loop.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Commit when a batch holds this many events…
    pub max_records: usize,
    /// …or when it has waited this long.
    pub max_wait: std::time::Duration,
    /// Wait for batches to fill (replay) instead of committing as soon as the queue is
    /// momentarily empty (live tailing, where latency matters).
    pub fill: bool,
    /// With `fill`: apply batches one after another in one transaction until it holds
    /// this many records (or is `commit_after` old), then commit; or earlier when the
    /// writer would wait for input (see `next_chunk`). Each commit rewrites every page
    /// the transaction touched, and a batch's failures touch a few hundred index pages
    /// wherever they land, so fewer, larger commits write far less; memory stays
    /// bounded by the batch, not by the transaction.
    pub commit_records: usize,
    /// …or until it has been open this long: other writers of the store (a `serve` on
    /// the same file) wait for the write lock meanwhile.
    pub commit_after: std::time::Duration,
}

/// How many decoded events may be on their way from the readers to the end of their
/// commit. Replay reads far faster than it commits; without a bound on events (a
/// channel bounds chunks, and a chunk holds anything from 0 to ~400 events) memory
/// grows with the reader's lead. With room for two batches the reader fills the next
/// batch while the writer commits this one, and no more.
#[derive(Debug, Clone)]
pub struct EventBudget {
    state: Arc<(std::sync::Mutex<BudgetState>, std::sync::Condvar)>,
    total: usize,
}

#[derive(Debug)]
struct BudgetState {
    free: usize,
    closed: bool,
}

impl EventBudget {
    /// A budget of `total` events (at least 1).
    pub fn new(total: usize) -> Self {
        let total = total.max(1);
        let state = BudgetState { free: total, closed: false };
        EventBudget { state: Arc::new((std::sync::Mutex::new(state), std::sync::Condvar::new())), total }
    }

    /// What a chunk of `events` events takes: a chunk larger than the whole budget
    /// takes all of it rather than waiting forever.
    fn cost(&self, events: usize) -> usize {
        events.min(self.total)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        self.state.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Blocks the calling (reader) thread until `events` more events fit. Returns
    /// false when the writer is gone, so the reader stops instead of waiting forever.
    pub fn take_blocking(&self, events: usize) -> bool {
        let need = self.cost(events);
        let mut state = self.lock();
        while state.free < need && !state.closed {
            state = self.state.1.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if state.closed {
            return false;
        }
        state.free -= need;
        true
    }

    /// Returns what committed (and freed) events took.
    fn give_back(&self, taken: usize) {
        let mut state = self.lock();
        state.free = (state.free + taken).min(self.total);
        self.state.1.notify_all();
    }

    /// The writer stopped: wake and refuse every waiting reader.
    fn close(&self) {
        self.lock().closed = true;
        self.state.1.notify_all();
    }
}

/// Closes the budget however the writer loop ends (an error return included).
struct CloseOnDrop(Option<EventBudget>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(budget) = &self.0 {
            budget.close();
        }
    }
}

/// The most event slots a batch reserves up front (a configured batch size far beyond
/// what arrives must not allocate that much for nothing).
const MAX_RESERVED_EVENTS: usize = 16_384;

/// Receives chunks from every reader and commits them in batches until all senders
/// are gone. Returns the summary of everything committed. Each batch carries the
/// newest checkpoint of every file it has events from, so events and positions
/// commit together. With a `budget`, the events of each batch are given back to it
/// once the batch is committed (the readers take them, [`EventBudget::take_blocking`]).
pub async fn run_writer(
    mut rx: tokio::sync::mpsc::Receiver<crate::ingest::reader::Chunk>,
    writer: Writer,
    limits: BatchLimits,
    budget: Option<EventBudget>,
) -> Result<IngestSummary, StoreError> {
    let mut summary = IngestSummary::default();
    // Failure incidents opened by earlier batches of this run: one withdrawn later was
    // never really opened (a batch nets out its own, `BatchResult::incidents_withdrawn`).
    let mut opened_earlier: HashSet<i64> = HashSet::new();
    let _close_budget = CloseOnDrop(budget.clone());
    // Replay applies several batches per transaction (`commit_records`); live tailing
    // commits each batch, since nothing is visible before its commit.
    let shared_commits = limits.fill && limits.commit_records > limits.max_records;
    let mut open: Option<OpenCommit> = None;
    loop {
        let next = next_chunk(&mut rx, &mut open, &writer, &limits, None).await?;
        let Some(first) = next else {
            break;
        };
        let deadline = tokio::time::Instant::now() + limits.max_wait;
        let mut idle_since_first = false;
        let mut batch = Batch::default();
        // Sized once: growing it chunk by chunk re-copied every (large) event each time.
        batch.events.reserve(limits.max_records.min(MAX_RESERVED_EVENTS));
        batch.successes.reserve(limits.max_records.min(MAX_RESERVED_EVENTS));
        let mut tallies: BTreeMap<String, DecodeTally> = BTreeMap::new();
        let mut checkpoints: BTreeMap<String, crate::store::Checkpoint> = BTreeMap::new();
        let mut taken = 0usize;
        let mut absorb = |chunk: crate::ingest::reader::Chunk, batch: &mut Batch| {
            tallies.entry(chunk.source.clone()).or_default().merge(&chunk.tally);
            taken += budget.as_ref().map_or(0, |b| b.cost(chunk.records()));
            // Exactly what the last chunk needs, not the doubling `extend` would do.
            batch.events.reserve_exact(chunk.events.len());
            batch.events.extend(chunk.events);
            batch.successes.reserve_exact(chunk.successes.len());
            batch.successes.extend(chunk.successes);
            if let Some(cp) = chunk.checkpoint {
                checkpoints.insert(cp.file_key.clone(), cp);
            }
        };
        absorb(first, &mut batch);
        // Take what is already queued without waiting: under load chunks pile up and
        // batches grow to max_records; when idle a lone chunk commits at once instead
        // of sitting out max_wait (which only bounds how long a growing batch waits).
        while batch.records() < limits.max_records {
            if limits.fill {
                // Throughput mode (replay): wait for more up to max_wait; bigger batches
                // amortize SQLite's per-commit page writes.
                match next_chunk(&mut rx, &mut open, &writer, &limits, Some(deadline)).await? {
                    Some(chunk) => absorb(chunk, &mut batch),
                    None => break,
                }
                continue;
            }
            match rx.try_recv() {
                Ok(chunk) => absorb(chunk, &mut batch),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    if idle_since_first || tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    idle_since_first = true;
                    tokio::task::yield_now().await;
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        batch.checkpoints = checkpoints.into_values().collect();
        let result = if shared_commits {
            let started = Instant::now();
            let mut o = match open.take() {
                Some(o) => o,
                None => OpenCommit { tx: writer.begin().await?, opened: Instant::now(), incidents_changed: false },
            };
            let result = writer.apply(&mut o.tx, &batch).await?;
            o.incidents_changed |= result.changed_incidents();
            if o.tx.records() >= limits.commit_records || o.opened.elapsed() >= limits.commit_after {
                writer.finish(o.tx, o.incidents_changed).await?;
            } else {
                open = Some(o);
            }
            writer.metrics.batch_commit.observe(started.elapsed().as_secs_f64());
            result
        } else {
            commit_when_unlocked(&writer, &batch).await?
        };
        for (source, tally) in &tallies {
            tally.record(&writer.metrics, source);
            summary.add_decode_counts(tally);
        }
        for (source, n) in result.duplicates_by_source.iter() {
            writer.metrics.duplicates.with_label_values(&[source]).inc_by(*n);
        }
        summary.add_result(&result);
        for id in &result.incidents_withdrawn {
            if opened_earlier.remove(id) {
                summary.incidents_opened = summary.incidents_opened.saturating_sub(1);
            }
        }
        opened_earlier.extend(&result.opened_ids);
        // Freed here, not handed to another thread: with jemalloc, freeing a batch on the
        // writer's thread costs less than waking a blocking-pool thread to do it, which
        // the system allocator made worthwhile (BENCHMARKS.md, twelfth pass).
        drop(batch);
        if let Some(budget) = &budget {
            budget.give_back(taken);
        }
    }
    if let Some(o) = open {
        writer.finish(o.tx, o.incidents_changed).await?;
    }
    Ok(summary)
}

/// The next chunk, waiting until `deadline` (or for good). With a transaction open, the
/// writer commits it before it waits: at once if it holds `commit_records / 8` records
/// (the writer has caught up with the readers, so the commit overlaps their reading, and
/// the last commit after the end of the input stays small); otherwise when nothing
/// arrives within `max_wait` (or by `deadline`). A reader that is just a few milliseconds behind (as after
/// every batch, when the budget lets it go on) does not cut a transaction short.
async fn next_chunk(
    rx: &mut tokio::sync::mpsc::Receiver<crate::ingest::reader::Chunk>,
    open: &mut Option<OpenCommit>,
    writer: &Writer,
    limits: &BatchLimits,
    deadline: Option<tokio::time::Instant>,
) -> Result<Option<crate::ingest::reader::Chunk>, StoreError> {
    use tokio::sync::mpsc::error::TryRecvError;
    match rx.try_recv() {
        Ok(chunk) => return Ok(Some(chunk)),
        Err(TryRecvError::Disconnected) => return Ok(None),
        Err(TryRecvError::Empty) => {}
    }
    if let Some(o) = open.take() {
        if o.tx.records() >= limits.commit_records / 8 {
            writer.finish(o.tx, o.incidents_changed).await?;
        } else {
            let pause = tokio::time::Instant::now() + limits.max_wait;
            let until = deadline.map_or(pause, |d| d.min(pause));
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(next) => {
                    *open = Some(o);
                    return Ok(next);
                }
                Err(_) => writer.finish(o.tx, o.incidents_changed).await?,
            }
        }
    }
    Ok(match deadline {
        Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok().flatten(),
        None => rx.recv().await,
    })
}

/// A transaction the writer loop keeps open across batches (see `BatchLimits::commit_records`).
struct OpenCommit {
    tx: WriteTx,
    /// When it began.
    opened: Instant,
    /// Whether any of its batches opened or resolved incidents.
    incidents_changed: bool,
}
