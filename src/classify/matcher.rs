//! The pure matcher: turns a failure (codes, message, record fields) into a
//! [`Classification`]. No I/O; everything expensive is compiled in [`Classifier::new`],
//! except the pattern set: on first use, or by [`Classifier::prepare`].
//!
//! # Precedence (deterministic)
//!
//! 1. `result_code = Some(0)` is a success, whatever else the input says.
//! 2. Codes: the record's result code, then the codes of the message (as given by the
//!    decoder, or extracted here), in order of appearance. The primary code is the first
//!    known non-wrapper code, else the first unknown code, else the first wrapper code.
//!    Wrapper codes are those of entries marked `wrapper = true` (shipped: 50000, 70000,
//!    70002, 90010: generic envelopes that older responses put around the real code). An
//!    unknown code outranks a wrapper because it is probably a new specific code.
//!    For the primary code, a conditional entry whose conditions hold wins
//!    (`matched_by = condition`), else its plain entry (`code`); an unknown code gives
//!    `unclassified` with the code kept. Message patterns are not consulted when a code
//!    was found: the code is authoritative.
//! 3. No code: every entry with a matching message pattern, or (weak fallback) whose
//!    `oauth_errors` contains the OAuth `error` (given, or read from a `"error":"…"` in
//!    the message), is a candidate; entries with conditions only when they hold. The best
//!    candidate is the one with held conditions, then the highest `priority`, then a
//!    message pattern over an `oauth_errors` match, then the catalogue order (first code,
//!    id).
//! 4. Nothing matched: a failure in `unclassified`, `matched_by = null`.
//!
//! The outcome comes from the winning entry: `interrupt_informational` entries give
//! `interrupt`, an entry may say `outcome = "success"` (the shipped `aadsts-0`), all others
//! give `failure`. Successes keep the category of their entry (`other` for code 0); the
//! pipeline ignores the category of successes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, OnceLock};

use memchr::memmem;
use regex::{Regex, RegexSet, RegexSetBuilder};
use serde::{Deserialize, Serialize};

use super::catalogue::{compile_pattern, Catalogue, Conditions, Entry, Example, Require, Severity};
use crate::event::{Category, Outcome};

static AADSTS: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new("AADSTS"));
static ERROR_CODES: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new("error_codes"));
static ERROR_KEY: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new("\"error"));
static SUBERROR_KEY: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new("\"suberror"));

/// Every AADSTS code in a message, in order of appearance, without duplicates (at most
/// [`MAX_CODES`]): each `AADSTS` followed by 5 to 7 digits (a longer digit run is not a
/// code), and every number of 5 to 7 digits in a JSON `"error_codes":[…]` array (also in
/// its escaped `\"error_codes\":[…]` form; other numbers there are passed over).
pub fn extract_codes(message: &str) -> Vec<u32> {
    let mut out = Vec::new();
    extract_codes_into(message, &mut out);
    out
}

/// Most distinct codes kept from one message. A real message holds one to three; the
/// bound keeps a crafted one (hundreds of thousands of codes pasted into the classify
/// API) from costing time quadratic in its length and an answer as large as itself.
pub const MAX_CODES: usize = 32;

/// Appends `code` unless it is there already or the list is full.
pub fn push_unique(out: &mut Vec<u32>, code: u32) {
    if out.len() < MAX_CODES && !out.contains(&code) {
        out.push(code);
    }
}

fn extract_codes_into(message: &str, out: &mut Vec<u32>) {
    let bytes = message.as_bytes();
    // Merge the two scans by position so that codes come out in order of appearance.
    let mut prefixed = AADSTS.find_iter(bytes).peekable();
    let mut arrays = ERROR_CODES.find_iter(bytes).peekable();
    loop {
        match (prefixed.peek().copied(), arrays.peek().copied()) {
            (None, None) => break,
            (Some(p), a) if a.map_or(true, |a| p < a) => {
                prefixed.next();
                if let Some(code) = aadsts_code_at(bytes, p + "AADSTS".len()) {
                    push_unique(out, code);
                }
            }
            _ => {
                if let Some(a) = arrays.next() {
                    error_codes_at(bytes, a + "error_codes".len(), out);
                }
            }
        }
    }
}

fn digits_at(bytes: &[u8], start: usize) -> usize {
    bytes.get(start..).map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count())
}

fn parse_digits(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
}

fn aadsts_code_at(bytes: &[u8], start: usize) -> Option<u32> {
    let n = digits_at(bytes, start);
    // `AADSTS00000` names no error: as code 0 it would read as a success.
    if !(5..=7).contains(&n) {
        return None;
    }
    Some(parse_digits(&bytes[start..start + n])).filter(|code| *code != 0)
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// After the word `error_codes`: an optional `\` and `"`, `:`, `[`, numbers, `]`.
fn error_codes_at(bytes: &[u8], mut i: usize, out: &mut Vec<u32>) {
    if bytes.get(i) == Some(&b'\\') {
        i += 1;
    }
    if bytes.get(i) != Some(&b'"') {
        return;
    }
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) != Some(&b':') {
        return;
    }
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) != Some(&b'[') {
        return;
    }
    i += 1;
    loop {
        i = skip_ws(bytes, i);
        let n = digits_at(bytes, i);
        if n == 0 {
            return;
        }
        if (5..=7).contains(&n) && parse_digits(&bytes[i..i + n]) != 0 {
            push_unique(out, parse_digits(&bytes[i..i + n]));
        }
        i = skip_ws(bytes, i + n);
        if bytes.get(i) != Some(&b',') {
            return;
        }
        i += 1;
    }
}

/// The OAuth `error` value of a JSON body inside a message (`"error":"invalid_grant"`, also
/// escaped), if any.
fn oauth_error_in(message: &str) -> Option<&str> {
    string_value_in(message, &ERROR_KEY, "\"error".len())
}

/// The code an MSAL `suberror` stands for in a body that carries none (CATALOGUE.md §2.4:
/// `consent_required` is AADSTS65001, `basic_action` AADSTS50079), with the suberror.
fn suberror_code_in(message: &str) -> Option<(u32, &str)> {
    let value = string_value_in(message, &SUBERROR_KEY, "\"suberror".len())?;
    match value {
        "consent_required" => Some((65001, value)),
        "basic_action" => Some((50079, value)),
        _ => None,
    }
}

/// The string value of the JSON key `finder` finds (`"key"`, `key_len` bytes, then an
/// optional `\` and `"`, `:`, and a string of letters, digits and `_`), also escaped.
fn string_value_in<'m>(message: &'m str, finder: &memmem::Finder<'_>, key_len: usize) -> Option<&'m str> {
    let bytes = message.as_bytes();
    for pos in finder.find_iter(bytes) {
        let mut i = pos + key_len;
        if bytes.get(i) == Some(&b'\\') {
            i += 1;
        }
        if bytes.get(i) != Some(&b'"') {
            continue;
        }
        i = skip_ws(bytes, i + 1);
        if bytes.get(i) != Some(&b':') {
            continue;
        }
        i = skip_ws(bytes, i + 1);
        if bytes.get(i) == Some(&b'\\') {
            i += 1;
        }
        if bytes.get(i) != Some(&b'"') {
            continue;
        }
        let start = i + 1;
        let len =
            bytes.get(start..).map_or(0, |r| r.iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count());
        if len > 0 {
            return message.get(start..start + len);
        }
    }
    None
}

/// What the classifier looks at. Build it from whatever the decoder has; every field is
/// optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassifyInput<'a> {
    /// The Azure record's result code: `Some(0)` is a success; `None` for text-only input.
    pub result_code: Option<u32>,
    /// Codes a decoder already extracted; when empty they are extracted from `message`.
    pub message_codes: &'a [u32],
    /// The failure text (token-endpoint body, `resultDescription`, a log line).
    pub message: Option<&'a str>,
    /// The OAuth `error` value, if known.
    pub oauth_error: Option<&'a str>,
    /// `tokenIssuerType`.
    pub token_issuer_type: Option<&'a str>,
    /// The raw UPN, only used to derive its domain; never logged or returned.
    pub user: Option<&'a str>,
    /// `authenticationProtocol`.
    pub auth_protocol: Option<&'a str>,
    /// Application (client) id.
    pub app_id: Option<&'a str>,
}

impl<'a> ClassifyInput<'a> {
    /// Input that is only a message (a Passport log line, a pasted error).
    pub fn message(msg: &'a str) -> Self {
        ClassifyInput { message: Some(msg), ..ClassifyInput::default() }
    }

    /// The input a decoded record gives: its result code, status text and the fields
    /// the catalogue's conditions read.
    pub fn of_signin(raw: &'a crate::ingest::formats::RawSignIn) -> Self {
        ClassifyInput {
            result_code: raw.result_code,
            message_codes: &raw.message_codes,
            message: raw.message.as_deref(),
            oauth_error: raw.oauth_error.as_deref(),
            token_issuer_type: raw.token_issuer_type.as_deref(),
            user: raw.user.as_deref(),
            auth_protocol: raw.auth_protocol.as_deref(),
            app_id: raw.app_id.as_deref(),
        }
    }

    /// The input an entry's example describes.
    pub fn from_example(ex: &'a Example) -> Self {
        ClassifyInput {
            result_code: ex.result_code,
            message_codes: &[],
            message: ex.message.as_deref(),
            oauth_error: ex.oauth_error.as_deref(),
            token_issuer_type: ex.token_issuer_type.as_deref(),
            user: ex.user.as_deref(),
            auth_protocol: ex.auth_protocol.as_deref(),
            app_id: ex.app_id.as_deref(),
        }
    }
}

/// How the winning entry matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// The primary code's plain entry.
    Code,
    /// A message pattern or an OAuth `error` fallback.
    Pattern,
    /// An entry whose field conditions held.
    Condition,
}

impl MatchedBy {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Code => "code",
            MatchedBy::Pattern => "pattern",
            MatchedBy::Condition => "condition",
        }
    }
}

/// The classifier's verdict, serialized exactly as CONTRACT.md §1 `classify --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Classification {
    /// Success, failure or interrupt.
    pub outcome: Outcome,
    /// The category (`unclassified` when nothing matched).
    pub category: Category,
    /// The primary code, or null when the input carries none.
    pub code: Option<u32>,
    /// Every code, primary first.
    pub codes: Vec<u32>,
    /// A few words.
    pub title: String,
    /// What an administrator should do.
    pub remediation: String,
    /// The id of the winning catalogue entry.
    pub entry: Option<String>,
    /// How it matched; null when nothing did.
    pub matched_by: Option<MatchedBy>,
    /// Microsoft's page for the code (or the matched entry's code).
    pub doc_url: Option<String>,
    /// Why this entry won, for humans.
    pub reason: String,
    /// How urgent it is.
    pub severity: Severity,
    /// Present when the input is a whole log record the daemon would not count, and why:
    /// `redacted` (macOS hid its message: `<private>`), `chatter` (a Passport line at
    /// Default or Info level with no code, token body or failure phrase) or `not_signin`
    /// (an Entra object with no result of its own, such as an AuditLogs record). The rest
    /// of the verdict still says what its text means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_counted: Option<String>,
}

/// An example or counter-example of the catalogue that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleMismatch {
    /// The entry carrying the example.
    pub entry: String,
    /// True for a counter-example.
    pub counter: bool,
    /// The example, described.
    pub example: String,
    /// The entry it classified to instead (or the same entry, for a counter-example).
    pub got: Option<String>,
}

impl std::fmt::Display for ExampleMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let got = self.got.as_deref().unwrap_or("nothing");
        if self.counter {
            write!(f, "entry {:?}: counter-example {} classifies to it", self.entry, self.example)
        } else {
            write!(f, "entry {:?}: example {} classifies to {got}", self.entry, self.example)
        }
    }
}

#[derive(Debug)]
struct CompiledConditions {
    require: Require,
    token_issuer_type: Vec<String>,
    federated_domain: Option<bool>,
    auth_protocol: Vec<String>,
    app_id: Vec<String>,
    oauth_error: Vec<String>,
}

/// `None` when `values` is not a condition; `Some(None)` when it fails; `Some(Some(v))`
/// with the value that made it hold.
fn list<'v>(values: &[String], got: Option<&'v str>) -> Option<Option<&'v str>> {
    if values.is_empty() {
        return None;
    }
    let v = got.map(str::trim);
    Some(v.filter(|v| values.iter().any(|x| x.eq_ignore_ascii_case(v))))
}

fn lower_all(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.trim().to_ascii_lowercase()).collect()
}

impl CompiledConditions {
    fn new(c: &Conditions) -> Self {
        CompiledConditions {
            require: c.require,
            token_issuer_type: lower_all(&c.token_issuer_type),
            federated_domain: c.federated_domain,
            auth_protocol: lower_all(&c.auth_protocol),
            app_id: lower_all(&c.app_id),
            oauth_error: lower_all(&c.oauth_error),
        }
    }

    fn needs_oauth(&self) -> bool {
        !self.oauth_error.is_empty()
    }

    /// `Some(reason)` when the conditions hold. Allocation-free until they do, because a
    /// conditional entry is consulted on every failure with its code.
    fn check(&self, input: &ClassifyInput<'_>, oauth: Option<&str>, federated: &HashSet<String>) -> Option<String> {
        // (name, Some(held value) | None when it failed); skipped when not a condition.
        let checks: [(&str, Option<Option<&str>>); 4] = [
            ("token_issuer_type", list(&self.token_issuer_type, input.token_issuer_type)),
            ("auth_protocol", list(&self.auth_protocol, input.auth_protocol)),
            ("app_id", list(&self.app_id, input.app_id)),
            ("oauth_error", list(&self.oauth_error, oauth)),
        ];
        let domain = self.federated_domain.map(|want| {
            let listed = input
                .user
                .and_then(|u| u.rsplit_once('@'))
                .map(|(_, d)| federated.contains(d.trim().to_ascii_lowercase().as_str()));
            match (want, listed) {
                (true, Some(true)) => Some("the user's domain listed in federated_domains"),
                (false, Some(false)) => Some("the user's domain not listed in federated_domains"),
                _ => None,
            }
        });
        let held = checks
            .iter()
            .filter_map(|(name, r)| r.map(|v| v.map(|v| format!("{name}={v}"))))
            .chain(domain.map(|d| d.map(str::to_owned)));
        match self.require {
            Require::Any => held.flatten().next(),
            Require::All => {
                let all_given = checks.iter().all(|(_, r)| !matches!(r, Some(None))) && !matches!(domain, Some(None));
                if !all_given {
                    return None;
                }
                let parts: Vec<String> = held.flatten().collect();
                (!parts.is_empty()).then(|| parts.join(" and "))
            }
        }
    }
}

/// What the classifier knows about one code.
#[derive(Debug, Default)]
struct CodeInfo {
    plain: Option<usize>,
    wrapper: bool,
    conditional: Vec<usize>,
}

/// Codes are small integers chosen by Microsoft, not by an attacker, so a multiplicative
/// hash is safe here and several times cheaper than SipHash on the hot path.
#[derive(Debug, Default, Clone, Copy)]
struct CodeHasher(u64);

impl std::hash::Hasher for CodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (u64::from(n) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type CodeMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<CodeHasher>>;

fn push_u32(s: &mut String, n: u32) {
    for &b in crate::hex::decimal(i64::from(n), &mut [0; 20]) {
        s.push(char::from(b));
    }
}

/// Same text as [`super::doc_url`], without the formatting machinery.
fn fast_doc_url(code: u32) -> String {
    const PREFIX: &str = "https://login.microsoftonline.com/error?code=";
    let mut s = String::with_capacity(PREFIX.len() + 10);
    s.push_str(PREFIX);
    push_u32(&mut s, code);
    s
}

#[derive(Debug)]
enum PatternSet {
    Set(RegexSet),
    // Only when the combined set does not compile (too large, or a shipped pattern the
    // test suite would have refused, which is `None` and never matches): slower, still
    // correct.
    Each(Vec<Option<Regex>>),
}

/// The compiled catalogue. Build it once per catalogue (load or reload) and share it.
#[derive(Debug)]
pub struct Classifier {
    catalogue: Arc<Catalogue>,
    codes: CodeMap<CodeInfo>,
    conditions: Vec<Option<CompiledConditions>>,
    /// Compiled when a message is first classified by text: compiling the set is most of
    /// a start-up, and a replay of records that all carry codes never needs it.
    patterns: OnceLock<PatternSet>,
    pattern_entry: Vec<usize>,
    pattern_index_in_entry: Vec<usize>,
    oauth: HashMap<String, Vec<usize>>,
    federated_domains: HashSet<String>,
}

/// One candidate in the no-code path, ordered by the documented precedence.
#[derive(Debug, Clone)]
struct Candidate {
    entry: usize,
    condition: Option<String>,
    by_pattern: Option<usize>,
}

impl Classifier {
    /// Compiles the catalogue: code tables and conditions now, one case-insensitive
    /// RegexSet over every pattern when a message is first classified by text.
    /// `federated_domains` are the operator's federated email domains.
    pub fn new(catalogue: Arc<Catalogue>, federated_domains: Vec<String>) -> Self {
        let entries = catalogue.entries();
        let mut codes: CodeMap<CodeInfo> = CodeMap::default();
        let mut oauth: HashMap<String, Vec<usize>> = HashMap::new();
        let mut pattern_entry = Vec::new();
        let mut pattern_index_in_entry = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            for &c in &e.codes {
                let info = codes.entry(c).or_default();
                if e.conditions.is_some() {
                    info.conditional.push(i);
                } else if info.plain.is_none() {
                    info.plain = Some(i);
                    info.wrapper = e.wrapper;
                }
            }
            for k in 0..e.patterns.len() {
                pattern_entry.push(i);
                pattern_index_in_entry.push(k);
            }
            for o in &e.oauth_errors {
                oauth.entry(o.trim().to_ascii_lowercase()).or_default().push(i);
            }
        }
        for info in codes.values_mut() {
            info.conditional.sort_by(|a, b| entries[*b].priority.cmp(&entries[*a].priority).then(a.cmp(b)));
        }
        let conditions = entries.iter().map(|e| e.conditions.as_ref().map(CompiledConditions::new)).collect();
        let federated_domains = federated_domains
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        Classifier {
            catalogue,
            codes,
            conditions,
            patterns: OnceLock::new(),
            pattern_entry,
            pattern_index_in_entry,
            oauth,
            federated_domains,
        }
    }

    /// The catalogue this classifier was built from.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Classifies one input. Pure: no I/O, no logging of input data, never panics.
    pub fn classify(&self, input: &ClassifyInput<'_>) -> Classification {
        if input.result_code == Some(0) {
            return self.success();
        }
        let mut codes: Vec<u32> = Vec::with_capacity(4);
        if let Some(rc) = input.result_code {
            codes.push(rc);
        }
        if !input.message_codes.is_empty() {
            // Only a record's own result code 0 is a success; a message names no code 0.
            for &c in input.message_codes.iter().filter(|c| **c != 0) {
                push_unique(&mut codes, c);
            }
        } else if let Some(m) = input.message {
            extract_codes_into(m, &mut codes);
        }
        if codes.is_empty() {
            // A body without a code whose MSAL suberror names one decides by that code's
            // entry; the input still carries no code of its own.
            if let Some((code, suberror)) = input.message.and_then(suberror_code_in) {
                let mut c = self.classify_codes(input, vec![code], true);
                if c.entry.is_some() {
                    c.code = None;
                    c.codes = Vec::new();
                    c.matched_by = Some(MatchedBy::Condition);
                    c.reason = format!("suberror {suberror:?} stands for AADSTS{code}");
                    return c;
                }
            }
            self.classify_text(input)
        } else {
            // The record's own result code is its verdict: a code its text mentions only
            // takes over from a wrapper (70002 "error validating credentials" around the
            // 50126 that says why). An unknown result code stays primary and unclassified,
            // grouped by itself, rather than borrowing a known code from the text.
            let pinned = input.result_code.is_some_and(|rc| !self.is_wrapper(rc));
            self.classify_codes(input, codes, pinned)
        }
    }

    fn entry(&self, i: usize) -> &Entry {
        &self.catalogue.entries()[i]
    }

    fn success(&self) -> Classification {
        match self.plain(0).map(|i| self.entry(i)) {
            Some(e) => Classification {
                outcome: Outcome::Success,
                category: e.category,
                code: Some(0),
                codes: vec![0],
                title: e.title.clone(),
                remediation: e.remediation.clone(),
                entry: Some(e.id.clone()),
                matched_by: Some(MatchedBy::Code),
                doc_url: None,
                reason: "result code 0 (success)".to_owned(),
                severity: e.severity,
                not_counted: None,
            },
            None => Classification {
                outcome: Outcome::Success,
                category: Category::Other,
                code: Some(0),
                codes: vec![0],
                title: "Sign-in succeeded".to_owned(),
                remediation: "Nothing to do.".to_owned(),
                entry: None,
                matched_by: None,
                doc_url: None,
                reason: "result code 0 (success)".to_owned(),
                severity: Severity::Info,
                not_counted: None,
            },
        }
    }

    fn plain(&self, code: u32) -> Option<usize> {
        self.codes.get(&code).and_then(|i| i.plain)
    }

    fn is_wrapper(&self, code: u32) -> bool {
        self.codes.get(&code).is_some_and(|i| i.wrapper)
    }

    fn rank(&self, code: u32) -> u8 {
        match self.codes.get(&code) {
            Some(i) if i.wrapper => 2,
            Some(_) => 0,
            None => 1,
        }
    }

    /// Classifies by `codes`; unless `pinned` (the first is the record's own result
    /// code), the most specific of them is the primary.
    fn classify_codes(&self, input: &ClassifyInput<'_>, mut codes: Vec<u32>, pinned: bool) -> Classification {
        // Lowest rank wins, earliest on ties; min_by_key returns the first minimum.
        let best = if codes.len() == 1 || pinned {
            0
        } else {
            codes.iter().enumerate().min_by_key(|(_, c)| self.rank(**c)).map_or(0, |(i, _)| i)
        };
        if best != 0 {
            let primary = codes.remove(best);
            codes.insert(0, primary);
        }
        let primary = codes[0];
        let preferred = if codes.len() > 1 {
            let others: Vec<String> = codes[1..]
                .iter()
                .map(|c| if self.is_wrapper(*c) { format!("wrapper {c}") } else { c.to_string() })
                .collect();
            format!(" (preferred over {})", others.join(", "))
        } else {
            String::new()
        };

        let info = self.codes.get(&primary);
        if let Some(info) = info.filter(|i| !i.conditional.is_empty()) {
            for &i in &info.conditional {
                if let Some(Some(cond)) = self.conditions.get(i) {
                    // Reading the OAuth error costs a scan; only conditions on it need it.
                    let oauth = if cond.needs_oauth() {
                        input.oauth_error.or_else(|| input.message.and_then(oauth_error_in))
                    } else {
                        input.oauth_error
                    };
                    if let Some(why) = cond.check(input, oauth, &self.federated_domains) {
                        let reason = format!("code {primary} with {why}{preferred}");
                        return self.verdict(i, Some(primary), codes, MatchedBy::Condition, reason);
                    }
                }
            }
        }
        if let Some(i) = info.and_then(|i| i.plain) {
            let mut reason = String::with_capacity(16 + preferred.len());
            reason.push_str("code ");
            push_u32(&mut reason, primary);
            reason.push_str(&preferred);
            return self.verdict(i, Some(primary), codes, MatchedBy::Code, reason);
        }
        Classification {
            outcome: Outcome::Failure,
            category: Category::Unclassified,
            code: Some(primary),
            codes,
            title: format!("Unknown error AADSTS{primary}"),
            remediation: format!(
                "AADSTS{primary} is not in the catalogue. Look it up with the documentation link and in the \
                 Entra sign-in log entry; to classify it, add an entry for it to an operator catalogue \
                 file (catalogue.extra_paths)."
            ),
            entry: None,
            matched_by: None,
            doc_url: Some(super::doc_url(primary)),
            reason: format!("code {primary} is not in the catalogue{preferred}"),
            severity: Severity::Medium,
            not_counted: None,
        }
    }

    fn classify_text(&self, input: &ClassifyInput<'_>) -> Classification {
        let oauth = input
            .oauth_error
            .or_else(|| input.message.and_then(oauth_error_in))
            .or_else(|| input.message.and_then(|m| self.oauth_word_in(m)));
        let mut best: Option<Candidate> = None;
        let mut consider = |cand: Candidate, this: &Self| {
            if best.as_ref().map_or(true, |b| this.better(&cand, b)) {
                best = Some(cand);
            }
        };
        if let Some(msg) = input.message {
            let mut seen: Vec<usize> = Vec::new();
            for p in self.matching_patterns(msg) {
                let Some(&i) = self.pattern_entry.get(p) else {
                    continue;
                };
                if seen.contains(&i) {
                    continue;
                }
                seen.push(i);
                if let Some(c) = self.condition_for(i, input, oauth) {
                    consider(Candidate { entry: i, condition: c, by_pattern: Some(p) }, self);
                }
            }
        }
        if let Some(o) = oauth {
            if let Some(list) = self.oauth.get(o.trim().to_ascii_lowercase().as_str()) {
                for &i in list {
                    if let Some(c) = self.condition_for(i, input, oauth) {
                        consider(Candidate { entry: i, condition: c, by_pattern: None }, self);
                    }
                }
            }
        }
        let Some(c) = best else {
            return Classification {
                outcome: Outcome::Failure,
                category: Category::Unclassified,
                code: None,
                codes: Vec::new(),
                title: "Unclassified failure".to_owned(),
                remediation: "No catalogue entry matches this message. Read the full message and the matching \
                              Entra sign-in log entry; if it recurs, add a pattern entry for it to an operator \
                              catalogue file (catalogue.extra_paths)."
                    .to_owned(),
                entry: None,
                matched_by: None,
                doc_url: None,
                reason: "no code and no catalogue pattern matched".to_owned(),
                severity: Severity::Medium,
                not_counted: None,
            };
        };
        let what = match c.by_pattern {
            Some(p) => {
                let e = self.entry(c.entry);
                let text =
                    self.pattern_index_in_entry.get(p).and_then(|k| e.patterns.get(*k)).map_or("", String::as_str);
                format!("message matches pattern {text:?}")
            }
            None => format!("OAuth error {:?} (weak fallback)", oauth.unwrap_or_default()),
        };
        let (by, reason) = match &c.condition {
            Some(why) => (MatchedBy::Condition, format!("{what} with {why}")),
            None => (MatchedBy::Pattern, what),
        };
        self.verdict(c.entry, None, Vec::new(), by, reason)
    }

    /// Every entry's patterns as one case-insensitive set. Operators' patterns were
    /// compiled at load time and shipped ones by the test suite, so none is compiled one
    /// by one first: one that fails fails the set, and the fallback skips it.
    fn compile_patterns(&self) -> PatternSet {
        let entries = self.catalogue.entries();
        let sources: Vec<&str> = self
            .pattern_entry
            .iter()
            .zip(&self.pattern_index_in_entry)
            .map(|(&i, &k)| entries.get(i).and_then(|e| e.patterns.get(k)).map_or("", String::as_str))
            .collect();
        match RegexSetBuilder::new(&sources)
            .case_insensitive(true)
            .size_limit(64 << 20)
            .dfa_size_limit(64 << 20)
            .build()
        {
            Ok(set) => PatternSet::Set(set),
            Err(err) => {
                tracing::warn!(error = %err, "catalogue patterns do not compile as one set; matching them one by one");
                PatternSet::Each(
                    sources
                        .iter()
                        .zip(&self.pattern_entry)
                        .map(|(p, &i)| {
                            compile_pattern(p)
                                .map_err(|err| {
                                    tracing::warn!(entry = %entries.get(i).map_or("", |e| e.id.as_str()), error = %err,
                                        "skipping catalogue pattern that does not compile");
                                })
                                .ok()
                        })
                        .collect(),
                )
            }
        }
    }

    /// Compiles the pattern set now, if no message needed it yet. The daemon does this
    /// before it serves and before a reload's swap, so that no request pays it.
    pub fn prepare(&self) {
        self.pattern_set();
    }

    /// The pattern set, compiled on first use.
    fn pattern_set(&self) -> &PatternSet {
        self.patterns.get_or_init(|| self.compile_patterns())
    }

    /// Indices (into the flat pattern list) of the patterns matching `msg`, ascending.
    fn matching_patterns(&self, msg: &str) -> Vec<usize> {
        match self.pattern_set() {
            PatternSet::Set(set) => set.matches(msg).into_iter().collect(),
            PatternSet::Each(list) => list
                .iter()
                .enumerate()
                .filter(|(_, r)| r.as_ref().is_some_and(|r| r.is_match(msg)))
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// `None`: the entry's conditions do not hold. `Some(None)`: no conditions.
    #[allow(clippy::option_option)]
    /// An OAuth `error` the catalogue knows, named as a word of its own in plain text
    /// (`Token request failed: invalid_grant`, `error=interaction_required`, MSAL's
    /// `MSALOAuthErrorKey=invalid_grant`) rather than in a JSON body: the first one written.
    fn oauth_word_in<'m>(&self, message: &'m str) -> Option<&'m str> {
        let lower = message.to_ascii_lowercase();
        let bytes = lower.as_bytes();
        let word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        self.oauth
            .keys()
            .filter_map(|name| {
                memmem::find_iter(bytes, name.as_bytes())
                    .find(|&at| {
                        let end = at + name.len();
                        // Not part of a path, an identifier or a name (`…/errors/access_denied`,
                        // `invalid_client-id`); a full stop that ends a sentence is no glue.
                        let joins = |b: u8| word_byte(b) || matches!(b, b'-' | b'/' | b'.' | b'@');
                        let glued_before = at.checked_sub(1).is_some_and(|i| joins(bytes[i]));
                        let sentence_end = *bytes.get(end).unwrap_or(&b' ') == b'.'
                            && !bytes.get(end + 1).is_some_and(u8::is_ascii_alphanumeric);
                        let glued_after = !sentence_end && bytes.get(end).is_some_and(|b| joins(*b));
                        !glued_before && !glued_after
                    })
                    .map(|at| (at, name.len()))
            })
            .min()
            .and_then(|(at, len)| message.get(at..at + len))
    }

    fn condition_for(&self, i: usize, input: &ClassifyInput<'_>, oauth: Option<&str>) -> Option<Option<String>> {
        match self.conditions.get(i) {
            Some(Some(cond)) => cond.check(input, oauth, &self.federated_domains).map(Some),
            _ => Some(None),
        }
    }

    fn better(&self, a: &Candidate, b: &Candidate) -> bool {
        let key = |c: &Candidate| {
            (c.condition.is_some(), self.entry(c.entry).priority, c.by_pattern.is_some(), std::cmp::Reverse(c.entry))
        };
        key(a) > key(b)
    }

    fn verdict(&self, i: usize, code: Option<u32>, codes: Vec<u32>, by: MatchedBy, reason: String) -> Classification {
        let e = self.entry(i);
        let doc_url = match code {
            Some(c) if c != 0 => Some(fast_doc_url(c)),
            _ => e.doc_url(),
        };
        Classification {
            outcome: e.outcome,
            category: e.category,
            code,
            codes,
            title: e.title.clone(),
            remediation: e.remediation.clone(),
            entry: Some(e.id.clone()),
            matched_by: Some(by),
            doc_url,
            reason,
            severity: e.severity,
            not_counted: None,
        }
    }

    /// Runs every example and counter-example of the catalogue; returns those that fail.
    /// Operator overrides can legitimately break shipped examples, so this is a report
    /// (`check-config`, tests), not a load error.
    pub fn check_examples(&self) -> Vec<ExampleMismatch> {
        self.check_examples_of(|_| true)
    }

    /// [`Classifier::check_examples`] for the entries `include` picks.
    pub fn check_examples_of(&self, include: impl Fn(&Entry) -> bool) -> Vec<ExampleMismatch> {
        let mut out = Vec::new();
        for e in self.catalogue.entries().iter().filter(|e| include(e)) {
            for ex in &e.examples {
                let got = self.classify(&ClassifyInput::from_example(ex)).entry;
                if got.as_deref() != Some(e.id.as_str()) {
                    out.push(ExampleMismatch { entry: e.id.clone(), counter: false, example: ex.describe(), got });
                }
            }
            for ex in &e.counter_examples {
                let got = self.classify(&ClassifyInput::from_example(ex)).entry;
                if got.as_deref() == Some(e.id.as_str()) {
                    out.push(ExampleMismatch { entry: e.id.clone(), counter: true, example: ex.describe(), got });
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_set_is_compiled_when_first_needed_or_prepared() {
        let catalogue = Arc::new(Catalogue::from_shipped().unwrap());
        let text = ClassifyInput::message("Authentication failed: The network connection was lost.");
        let lazy = Classifier::new(Arc::clone(&catalogue), Vec::new());
        assert!(lazy.patterns.get().is_none(), "no message needed it yet");
        assert!(lazy.classify(&ClassifyInput::message("AADSTS50126: Invalid username or password")).entry.is_some());
        assert!(lazy.patterns.get().is_none(), "a code decides without the patterns");
        let prepared = Classifier::new(catalogue, Vec::new());
        prepared.prepare();
        assert!(prepared.patterns.get().is_some());
        let (a, b) = (lazy.classify(&text), prepared.classify(&text));
        assert_eq!(a.entry.as_deref(), Some("mac-network-unreachable"));
        assert_eq!(a.entry, b.entry);
        assert!(lazy.patterns.get().is_some());
    }

    #[test]
    fn extracts_in_order_and_dedups() {
        let m = r#"{"error":"invalid_grant","error_description":"AADSTS70002: Error validating credentials. AADSTS50126: Invalid username or password","error_codes":[70002,50126, 50053]}"#;
        assert_eq!(extract_codes(m), vec![70002, 50126, 50053]);
    }

    #[test]
    fn rejects_short_and_long_digit_runs() {
        assert_eq!(extract_codes("AADSTS1234 AADSTS12345678 AADSTS"), Vec::<u32>::new());
        assert_eq!(extract_codes("xAADSTS50076y"), vec![50076]);
    }

    #[test]
    fn error_codes_arrays_hold_only_codes_and_pass_over_other_numbers() {
        assert_eq!(extract_codes(r#"{"error_codes":[123, 12345678901, 50076]}"#), vec![50076]);
    }

    /// A message of a hundred thousand distinct codes (a crafted classify request) keeps
    /// the first `MAX_CODES`, in order, instead of costing time quadratic in its length.
    #[test]
    fn a_message_keeps_at_most_max_codes() {
        let many: String = (0..100_000).map(|i| format!("AADSTS{} ", 1_000_000 + i)).collect();
        let codes = extract_codes(&many);
        assert_eq!(codes.len(), MAX_CODES);
        assert_eq!(codes[..2], [1_000_000, 1_000_001]);
        let array = format!(
            "{{\"error_codes\":[{}]}}",
            (0..100_000).map(|i| (1_000_000 + i).to_string()).collect::<Vec<_>>().join(",")
        );
        assert_eq!(extract_codes(&array).len(), MAX_CODES);
    }

    #[test]
    fn reads_escaped_error_codes() {
        assert_eq!(extract_codes(r#"{\"error_codes\": [ 7000218 ]}"#), vec![7000218]);
        assert_eq!(extract_codes(r#""error_codes":"#), Vec::<u32>::new());
    }

    #[test]
    fn fast_formatting_matches_format() {
        for n in [0, 7, 50126, 7000218, u32::MAX] {
            assert_eq!(fast_doc_url(n), super::super::doc_url(n));
        }
    }

    #[test]
    fn finds_oauth_error() {
        assert_eq!(oauth_error_in(r#"{"error_description":"x","error":"invalid_grant"}"#), Some("invalid_grant"));
        assert_eq!(oauth_error_in(r#"{\"error\":\"interaction_required\"}"#), Some("interaction_required"));
        assert_eq!(oauth_error_in("no json"), None);
    }
}
