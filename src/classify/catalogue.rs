//! The error catalogue: loading, merging and validating catalogue TOML files.
//!
//! # File schema
//!
//! ```toml
//! version = 1                      # optional; only 1 is understood
//!
//! [[entry]]
//! id = "aadsts-50076"              # unique; operator files override shipped entries by id
//! codes = [50076]                  # AADSTS codes (may be empty for pattern-only entries)
//! name = "UserStrongAuthClientAuthNRequired"   # Microsoft's identifier, optional
//! category = "mfa_required"        # a CONTRACT.md §2 category (not `unclassified`)
//! actor = "admin"                  # user | admin | service
//! severity = "high"                # info | low | medium | high | critical
//! passport_relevant = true
//! title = "MFA required"
//! remediation = "Exclude the Passport app registration from MFA ..."
//! patterns = ["you must use multi-factor authentication to access"]  # case-insensitive regexes
//! oauth_errors = ["interaction_required"]   # weak fallback on the OAuth `error` value
//! priority = 0                     # orders competing pattern matches (higher wins)
//! wrapper = false                  # true: its codes yield to any other code in the message
//! outcome = "failure"              # optional: success | failure | interrupt (default from category)
//! conditions = { require = "all", token_issuer_type = ["ADFederationServices"],
//!                federated_domain = true, auth_protocol = ["ropc"], app_id = ["..."],
//!                oauth_error = ["invalid_grant"] }
//! examples = ["a message that must classify to this entry",
//!             { message = "...", token_issuer_type = "ADFederationServices" }]
//! counter_examples = ["a message that must not"]
//! ```
//!
//! In an operator file (`[catalogue] extra_paths`), an entry whose `id` already exists is a
//! patch: only the keys it gives replace the earlier values. A new id must give at least
//! `category`, `title` and `remediation` plus something to match on. An operator entry
//! without conditions that lists a code claimed by another entry takes that code over; an
//! entry left with no code is overridden: the entry that took its first code also takes
//! its `patterns` and `oauth_errors` (the same failure's text without its code), and it is
//! dropped, unless the same file patched it by id.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::event::{Category, Outcome};

/// The name errors use for the embedded catalogue.
pub const SHIPPED_ORIGIN: &str = "config/catalogue.toml (shipped)";

/// The highest value an AADSTS code can have (seven digits).
pub const MAX_CODE: u32 = 9_999_999;

/// The actors the catalogue knows: who can fix the failure.
pub const ACTORS: [&str; 3] = ["user", "admin", "service"];

/// How urgent a failure of this kind is for an administrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Expected, nothing to do (successes, interrupts).
    Info,
    /// One user, usually self-inflicted (a typo'd password).
    Low,
    /// One user needs an administrator, or a transient fault.
    Medium,
    /// A policy or configuration blocks a group of users.
    High,
    /// Passport cannot sign anyone in.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] =
        [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    /// The stable name used in the catalogue, the API and incidents.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a stable name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether every given condition must hold, or any one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Require {
    /// All conditions must hold (the default).
    #[default]
    All,
    /// One condition is enough.
    Any,
}

/// Field conditions on the classifier input. List values match case-insensitively, any
/// element being enough; an empty list is "not a condition".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Conditions {
    /// Combine the conditions below with `all` (default) or `any`.
    pub require: Require,
    /// `tokenIssuerType` values (e.g. `ADFederationServices`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_issuer_type: Vec<String>,
    /// `true`: the user's domain is in the configured `federated_domains`; `false`: it is known
    /// and not listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federated_domain: Option<bool>,
    /// `authenticationProtocol` values (e.g. `ropc`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub auth_protocol: Vec<String>,
    /// Application (client) ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub app_id: Vec<String>,
    /// OAuth `error` values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub oauth_error: Vec<String>,
}

impl Conditions {
    /// True when no condition is given at all.
    pub fn is_empty(&self) -> bool {
        self.token_issuer_type.is_empty()
            && self.federated_domain.is_none()
            && self.auth_protocol.is_empty()
            && self.app_id.is_empty()
            && self.oauth_error.is_empty()
    }
}

/// A test case carried by an entry: a message, optionally with the fields a decoder would
/// supply. In TOML either a plain string or a table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Example {
    /// The message text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Azure record's result code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_code: Option<u32>,
    /// The OAuth `error` value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_error: Option<String>,
    /// `tokenIssuerType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_issuer_type: Option<String>,
    /// A (fictitious) UPN, for domain conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `authenticationProtocol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_protocol: Option<String>,
    /// Application id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
}

impl Example {
    /// A short description for test failures and `check-config` output.
    pub fn describe(&self) -> String {
        let mut s = match (&self.message, self.result_code) {
            (Some(m), _) => format!("{m:?}"),
            (None, Some(c)) => format!("result code {c}"),
            (None, None) => "(empty example)".to_owned(),
        };
        if let (Some(_), Some(c)) = (&self.message, self.result_code) {
            s.push_str(&format!(" with result code {c}"));
        }
        if let Some(t) = &self.token_issuer_type {
            s.push_str(&format!(" with token_issuer_type={t}"));
        }
        s
    }
}

// A plain string is by far the common case, so accept it as shorthand for `{ message = .. }`
// while keeping `deny_unknown_fields` errors for the table form.
fn deserialize_examples<'de, D>(d: D) -> Result<Option<Vec<Example>>, D::Error>
where
    D: Deserializer<'de>,
{
    struct OneOrTable;
    impl<'de> Visitor<'de> for OneOrTable {
        type Value = Example;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a message string or a table with `message`, `result_code`, ...")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Example, E> {
            Ok(Example { message: Some(v.to_owned()), ..Example::default() })
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Example, A::Error> {
            Example::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    struct Wrapped(Example);
    impl<'de> Deserialize<'de> for Wrapped {
        fn deserialize<D2: Deserializer<'de>>(d: D2) -> Result<Self, D2::Error> {
            d.deserialize_any(OneOrTable).map(Wrapped)
        }
    }
    let v: Option<Vec<Wrapped>> = Option::deserialize(d)?;
    Ok(v.map(|v| v.into_iter().map(|w| w.0).collect()))
}

/// One catalogue entry: what a failure means and what an administrator should do.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Entry {
    /// Stable id (e.g. `aadsts-50076`, `okta-invalid-credentials`).
    pub id: String,
    /// The AADSTS codes this entry stands for (empty for pattern-only entries).
    pub codes: Vec<u32>,
    /// Microsoft's identifier for the code, when it has one.
    pub name: Option<String>,
    /// The category failures matching this entry are counted under.
    pub category: Category,
    /// Who can fix it: `user`, `admin` or `service`.
    pub actor: String,
    /// How urgent it is.
    pub severity: Severity,
    /// Whether Passport's sign-in realistically produces it.
    pub passport_relevant: bool,
    /// A few words for dashboards.
    pub title: String,
    /// What an administrator should do.
    pub remediation: String,
    /// Case-insensitive regexes matched against messages that carry no code.
    pub patterns: Vec<String>,
    /// OAuth `error` values matched as a weak fallback when no pattern matched.
    pub oauth_errors: Vec<String>,
    /// Field conditions; an entry with conditions only matches when they hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Conditions>,
    /// Orders competing pattern matches: higher wins.
    pub priority: i32,
    /// Its codes yield to any other code found in the same message.
    pub wrapper: bool,
    /// The outcome a match produces (failure, or interrupt for `interrupt_informational`).
    pub outcome: Outcome,
    /// Inputs that must classify to this entry.
    pub examples: Vec<Example>,
    /// Inputs that must not classify to this entry.
    pub counter_examples: Vec<Example>,
    /// The file the entry (or its last patch) came from.
    pub source: String,
    /// Its line in that file (from 1), for errors.
    #[serde(skip)]
    pub line: usize,
}

impl Entry {
    /// True when the entry only matches under field conditions.
    pub fn is_conditional(&self) -> bool {
        self.conditions.is_some()
    }

    /// The documentation link for the entry's first code, if it has one.
    pub fn doc_url(&self) -> Option<String> {
        self.codes.first().filter(|c| **c != 0).map(|c| super::doc_url(*c))
    }
}

/// Why a catalogue could not be loaded. Every message names the file, and where it applies
/// the entry and field at fault.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// A file could not be read.
    #[error("catalogue {}: cannot read the file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("catalogue {origin}: line {line}, column {column}: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the TOML parser said.
        message: String,
    },
    /// A problem with the file as a whole (e.g. its `version`).
    #[error("catalogue {origin}: {problem}")]
    File {
        /// The file.
        origin: String,
        /// What is wrong.
        problem: String,
    },
    /// An operator's example that does not classify to its own entry (or a
    /// counter-example that does): the file says something its author did not mean.
    #[error("catalogue {origin}: line {line}: {mismatch}{more}")]
    Example {
        /// The file.
        origin: String,
        /// The entry's line.
        line: usize,
        /// The first example that does not hold.
        mismatch: String,
        /// How many more do not, in words (empty when none).
        more: String,
    },
    /// A problem with one field of one entry.
    #[error("catalogue {origin}: entry {entry}: field `{field}`: {problem}")]
    Invalid {
        /// The file.
        origin: String,
        /// The entry's id in quotes, or its position when it has no id.
        entry: String,
        /// The field (with an index for list elements, e.g. `patterns[1]`).
        field: String,
        /// What is wrong.
        problem: String,
    },
}

/// The loaded catalogue: validated entries, sorted by first code then id.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    entries: Vec<Entry>,
    by_id: HashMap<String, usize>,
    by_code: HashMap<u32, usize>,
}

impl Catalogue {
    /// The embedded, shipped catalogue.
    pub fn from_shipped() -> Result<Catalogue, CatalogueError> {
        Ok(Self::from_entries(shipped_entries()?))
    }

    /// The shipped catalogue with the operator files merged over it, in order.
    pub fn load(extra_paths: &[PathBuf]) -> Result<Catalogue, CatalogueError> {
        let mut merged = shipped_entries()?;
        for path in extra_paths {
            let text = read(path)?;
            merge_layer(&mut merged, &text, &path.display().to_string(), Layer::Patch)?;
        }
        Ok(Self::from_entries(merged))
    }

    /// Checks the embedded catalogue as an operator's file is checked: every pattern
    /// compiles and matches something. Loading skips this (the test suite does it); the
    /// daemon's start and `check-config` do it, so a binary built without the tests
    /// still refuses a bad shipped pattern.
    pub fn check_shipped() -> Result<(), CatalogueError> {
        Self::parse_str(super::SHIPPED_CATALOGUE, SHIPPED_ORIGIN).map(|_| ())
    }

    /// One file on its own, every entry complete. `origin` names it in errors.
    pub fn parse_str(text: &str, origin: &str) -> Result<Catalogue, CatalogueError> {
        let mut merged = Vec::new();
        merge_layer(&mut merged, text, origin, Layer::Whole)?;
        Ok(Self::from_entries(merged))
    }

    fn from_entries(mut entries: Vec<Entry>) -> Catalogue {
        entries.sort_by(|a, b| {
            let ka = a.codes.first().map_or(u64::MAX, |c| u64::from(*c));
            let kb = b.codes.first().map_or(u64::MAX, |c| u64::from(*c));
            ka.cmp(&kb).then_with(|| a.id.cmp(&b.id))
        });
        let by_id = entries.iter().enumerate().map(|(i, e)| (e.id.clone(), i)).collect();
        let mut by_code = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if e.conditions.is_none() {
                for c in &e.codes {
                    by_code.entry(*c).or_insert(i);
                }
            }
        }
        Catalogue { entries, by_id, by_code }
    }

    /// Every entry, sorted by first code (pattern-only entries last), then id.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry with this id.
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.by_id.get(id).map(|i| &self.entries[*i])
    }

    /// The plain (condition-free) entry for a code.
    pub fn entry_for_code(&self, code: u32) -> Option<&Entry> {
        self.by_code.get(&code).map(|i| &self.entries[*i])
    }

    /// Every entry that lists the code, the plain one first, then conditional ones.
    pub fn entries_for_code(&self, code: u32) -> Vec<&Entry> {
        let plain = self.entry_for_code(code);
        plain
            .into_iter()
            .chain(self.entries.iter().filter(|e| e.conditions.is_some() && e.codes.contains(&code)))
            .collect()
    }

    /// Every code the catalogue knows, ascending.
    pub fn codes(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.entries.iter().flat_map(|e| e.codes.clone()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The codes of Passport-relevant entries, ascending.
    pub fn passport_relevant_codes(&self) -> Vec<u32> {
        let mut v: Vec<u32> =
            self.entries.iter().filter(|e| e.passport_relevant).flat_map(|e| e.codes.clone()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn read(path: &Path) -> Result<String, CatalogueError> {
    std::fs::read_to_string(path).map_err(|source| CatalogueError::Io { path: path.to_owned(), source })
}

/// One `[[entry]]` as written: every key optional so that an operator file can patch.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: Option<String>,
    codes: Option<Vec<u32>>,
    name: Option<String>,
    category: Option<String>,
    actor: Option<String>,
    severity: Option<String>,
    passport_relevant: Option<bool>,
    title: Option<String>,
    remediation: Option<String>,
    patterns: Option<Vec<String>>,
    oauth_errors: Option<Vec<String>>,
    conditions: Option<Conditions>,
    priority: Option<i32>,
    wrapper: Option<bool>,
    outcome: Option<String>,
    #[serde(default, deserialize_with = "deserialize_examples")]
    examples: Option<Vec<Example>>,
    #[serde(default, deserialize_with = "deserialize_examples")]
    counter_examples: Option<Vec<Example>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Option<i64>,
    #[serde(default)]
    entry: Vec<toml::Spanned<toml::Table>>,
}

struct Ctx<'a> {
    origin: &'a str,
    label: String,
    /// The text the entry comes from.
    layer: Layer,
}

impl Ctx<'_> {
    fn err(&self, field: impl Into<String>, problem: impl Into<String>) -> CatalogueError {
        CatalogueError::Invalid {
            origin: self.origin.to_owned(),
            entry: self.label.clone(),
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Line and column (both from 1, the column in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parser messages may span lines; the contract wants one sentence per error.
pub(crate) fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(": ")
}

fn syntax_error(text: &str, origin: &str, e: &toml::de::Error) -> CatalogueError {
    let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
    CatalogueError::Syntax { origin: origin.to_owned(), line, column, message: one_line(e.message()) }
}

/// The embedded catalogue's entries, parsed once per process: a start-up and every
/// reload read them, and so does the Passport reader's failure-text search.
fn shipped_entries() -> Result<Vec<Entry>, CatalogueError> {
    fn parse() -> Result<Vec<Entry>, CatalogueError> {
        let mut merged = Vec::new();
        merge_layer(&mut merged, super::SHIPPED_CATALOGUE, SHIPPED_ORIGIN, Layer::Shipped)?;
        Ok(merged)
    }
    static SHIPPED: LazyLock<Option<Vec<Entry>>> = LazyLock::new(|| parse().ok());
    match &*SHIPPED {
        Some(entries) => Ok(entries.clone()),
        // Never with the file the tests load; parsed again for its error.
        None => parse(),
    }
}

/// What a catalogue text is to the entries loaded before it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layer {
    /// The embedded catalogue: its patterns are not compiled to check them (compiling
    /// them was most of a start-up); the test suite checks them as an operator's are.
    Shipped,
    /// A file on its own, every entry complete.
    Whole,
    /// An operator's file over the entries before it, patching them by id.
    Patch,
}

/// Parses one file and merges it into `merged`. As a `Layer::Patch`, entries whose id
/// already exists are patches and unconditioned codes are taken over from earlier entries.
fn merge_layer(merged: &mut Vec<Entry>, text: &str, origin: &str, layer: Layer) -> Result<(), CatalogueError> {
    let patching = layer == Layer::Patch;
    let file: RawFile = toml::from_str(text).map_err(|e| syntax_error(text, origin, &e))?;
    if let Some(v) = file.version {
        if v != 1 {
            return Err(CatalogueError::File {
                origin: origin.to_owned(),
                problem: format!("`version` {v} is not supported (expected 1)"),
            });
        }
    }

    let mut ids_in_file: HashMap<String, String> = HashMap::new();
    // Entries this file patched (by id): kept, whatever codes they lose.
    let mut patched: HashSet<usize> = HashSet::new();
    // Each entry this file set, with its line.
    let mut touched: Vec<(usize, usize)> = Vec::new();
    // Entries come in file order: count the newlines since the previous entry only
    // (counting from the top for each entry made loading quadratic in the file's size).
    let (mut counted_to, mut line) = (0usize, 1usize);
    for (index, spanned) in file.entry.into_iter().enumerate() {
        let start = spanned.span().start.min(text.len());
        if start >= counted_to {
            line += text.as_bytes().get(counted_to..start).map_or(0, |gap| gap.iter().filter(|b| **b == b'\n').count());
        } else {
            line = line_col(text, start).0;
        }
        counted_to = start;
        let table = spanned.into_inner();
        let position = format!("#{} (line {line})", index + 1);
        let id_label = match table.get("id").and_then(|v| v.as_str()) {
            Some(id) => format!("{id:?} (line {line})"),
            None => position.clone(),
        };
        let ctx = Ctx { origin, label: id_label, layer };
        let raw = decode_entry(table, &ctx)?;
        let gives_codes = raw.codes.is_some();
        let id = raw.id.clone().ok_or_else(|| ctx.err("id", "missing"))?;
        if let Some(first) = ids_in_file.insert(id.clone(), position.clone()) {
            return Err(ctx.err("id", format!("duplicate id in this file (first defined at entry {first})")));
        }
        let existing = if patching { merged.iter().position(|e| e.id == id) } else { None };
        let entry = match existing {
            Some(i) => apply(Some(&merged[i]), raw, &ctx)?,
            None => apply(None, raw, &ctx)?,
        };
        let entry = Entry { source: origin.to_owned(), line, ..entry };
        match existing {
            Some(i) => {
                merged[i] = entry;
                patched.insert(i);
                // A patch that does not list codes claims none: the codes it inherits
                // follow the cross-file rule below, as an untouched entry's do.
                if gives_codes {
                    touched.push((i, line));
                }
            }
            None => {
                merged.push(entry);
                touched.push((merged.len() - 1, line));
            }
        }
    }

    // Within one file, two plain entries claiming a code is ambiguous: refuse it.
    let mut claims: HashMap<u32, usize> = HashMap::new();
    for &(i, line) in &touched {
        let e = &merged[i];
        if e.conditions.is_some() {
            continue;
        }
        for &code in &e.codes {
            if let Some(&other) = claims.get(&code) {
                return Err(CatalogueError::Invalid {
                    origin: origin.to_owned(),
                    entry: format!("{:?} (line {line})", e.id),
                    field: "codes".to_owned(),
                    problem: format!(
                        "code {code} is already claimed by entry {:?} in this file; \
                         give one of them `conditions`",
                        merged[other].id
                    ),
                });
            }
            claims.insert(code, i);
        }
    }

    // Across files, the later file wins a contested code. An entry that loses all its
    // codes is overridden: the entry that claimed them (its first code's) also takes its
    // message patterns and OAuth errors, so that the same failure without its code (the
    // text alone) reaches the overriding entry too, not the overridden one.
    let touched_set: HashSet<usize> = touched.iter().map(|(i, _)| *i).collect();
    let mut emptied: Vec<(usize, Option<usize>)> = Vec::new();
    for (i, e) in merged.iter_mut().enumerate() {
        if touched_set.contains(&i) || e.conditions.is_some() {
            continue;
        }
        let first_code = e.codes.first().copied();
        let before = e.codes.len();
        e.codes.retain(|c| !claims.contains_key(c));
        if e.codes.len() != before && e.codes.is_empty() {
            if patched.contains(&i) {
                // Kept on purpose by this very file: it matches text, as it was patched to.
                continue;
            }
            emptied.push((i, first_code.and_then(|c| claims.get(&c).copied())));
        }
    }
    for &(i, claimer) in &emptied {
        let Some(claimer) = claimer else {
            continue;
        };
        let (patterns, oauth_errors) = (merged[i].patterns.clone(), merged[i].oauth_errors.clone());
        let taker = &mut merged[claimer];
        for p in patterns {
            if !taker.patterns.contains(&p) {
                taker.patterns.push(p);
            }
        }
        for o in oauth_errors {
            if !taker.oauth_errors.iter().any(|t| t.eq_ignore_ascii_case(&o)) {
                taker.oauth_errors.push(o);
            }
        }
    }
    // Named before any is removed: each removal shifts the indices after it.
    let overridden: Vec<(usize, String)> =
        emptied.iter().map(|&(i, claimer)| (i, claimer.map(|c| merged[c].id.clone()).unwrap_or_default())).collect();
    for (i, by) in overridden.into_iter().rev() {
        tracing::debug!(entry = %merged[i].id, by = %by, origin, "catalogue entry lost all its codes to a later file; overridden");
        merged.remove(i);
    }
    Ok(())
}

/// Deserializes an entry table; on failure, pins the error to the key (and list element)
/// at fault by re-trying keys one at a time.
fn decode_entry(table: toml::Table, ctx: &Ctx<'_>) -> Result<RawEntry, CatalogueError> {
    let whole = toml::Value::Table(table.clone()).try_into::<RawEntry>();
    let first_error = match whole {
        Ok(raw) => return Ok(raw),
        Err(e) => e,
    };
    for (key, value) in &table {
        let single = |v: toml::Value| {
            let mut t = toml::Table::new();
            t.insert(key.clone(), v);
            toml::Value::Table(t).try_into::<RawEntry>()
        };
        if let Err(e) = single(value.clone()) {
            if let toml::Value::Array(items) = value {
                for (i, item) in items.iter().enumerate() {
                    if let Err(e) = single(toml::Value::Array(vec![item.clone()])) {
                        return Err(ctx.err(format!("{key}[{i}]"), one_line(e.message())));
                    }
                }
            }
            return Err(ctx.err(key.clone(), one_line(e.message())));
        }
    }
    Err(ctx.err("(entry)", one_line(first_error.message())))
}

/// Builds an entry from `raw`, over `base` when patching, and validates the result.
fn apply(base: Option<&Entry>, raw: RawEntry, ctx: &Ctx<'_>) -> Result<Entry, CatalogueError> {
    let need = |field: &str| ctx.err(field, "missing (required for a new entry)");
    let category = match (raw.category, base) {
        (Some(s), _) => parse_category(&s, ctx)?,
        (None, Some(b)) => b.category,
        (None, None) => return Err(need("category")),
    };
    let severity = match (raw.severity, base) {
        (Some(s), _) => Severity::parse(&s).ok_or_else(|| {
            ctx.err("severity", format!("unknown severity {s:?} (expected one of info, low, medium, high, critical)"))
        })?,
        (None, Some(b)) => b.severity,
        (None, None) => default_severity(category),
    };
    let actor = match (raw.actor, base) {
        (Some(s), _) => {
            if !ACTORS.contains(&s.as_str()) {
                return Err(ctx.err("actor", format!("unknown actor {s:?} (expected user, admin or service)")));
            }
            s
        }
        (None, Some(b)) => b.actor.clone(),
        (None, None) => "admin".to_owned(),
    };
    let outcome = match (raw.outcome, base) {
        (Some(s), _) => Outcome::parse(&s).ok_or_else(|| {
            ctx.err("outcome", format!("unknown outcome {s:?} (expected success, failure or interrupt)"))
        })?,
        // A patch that changes the category re-derives the outcome unless it was explicit.
        (None, Some(b)) if b.outcome == default_outcome(b.category) => default_outcome(category),
        (None, Some(b)) => b.outcome,
        (None, None) => default_outcome(category),
    };
    let id = raw.id.or_else(|| base.map(|b| b.id.clone())).unwrap_or_default();
    let title = raw.title.or_else(|| base.map(|b| b.title.clone())).ok_or_else(|| need("title"))?;
    let remediation =
        raw.remediation.or_else(|| base.map(|b| b.remediation.clone())).ok_or_else(|| need("remediation"))?;
    let conditions = match (raw.conditions, base) {
        (Some(c), _) => Some(c),
        (None, Some(b)) => b.conditions.clone(),
        (None, None) => None,
    };
    let pick = |v: Option<Vec<String>>, b: fn(&Entry) -> &Vec<String>| {
        v.or_else(|| base.map(|e| b(e).clone())).unwrap_or_default()
    };
    let entry = Entry {
        id,
        codes: raw.codes.or_else(|| base.map(|b| b.codes.clone())).unwrap_or_default(),
        name: raw.name.or_else(|| base.and_then(|b| b.name.clone())),
        category,
        actor,
        severity,
        passport_relevant: raw.passport_relevant.or(base.map(|b| b.passport_relevant)).unwrap_or(false),
        title,
        remediation,
        patterns: pick(raw.patterns, |e| &e.patterns),
        oauth_errors: pick(raw.oauth_errors, |e| &e.oauth_errors),
        conditions,
        priority: raw.priority.or(base.map(|b| b.priority)).unwrap_or(0),
        wrapper: raw.wrapper.or(base.map(|b| b.wrapper)).unwrap_or(false),
        outcome,
        examples: raw.examples.or_else(|| base.map(|b| b.examples.clone())).unwrap_or_default(),
        counter_examples: raw.counter_examples.or_else(|| base.map(|b| b.counter_examples.clone())).unwrap_or_default(),
        source: String::new(),
        line: 0,
    };
    validate(&entry, ctx)?;
    Ok(entry)
}

fn parse_category(s: &str, ctx: &Ctx<'_>) -> Result<Category, CatalogueError> {
    match Category::parse(s) {
        Some(Category::Unclassified) => {
            Err(ctx.err("category", "`unclassified` is reserved for failures that match no entry"))
        }
        Some(c) => Ok(c),
        None => {
            let known: Vec<&str> =
                Category::ALL.iter().filter(|c| **c != Category::Unclassified).map(|c| c.as_str()).collect();
            Err(ctx.err("category", format!("unknown category {s:?} (expected one of {})", known.join(", "))))
        }
    }
}

fn default_outcome(category: Category) -> Outcome {
    if category == Category::InterruptInformational {
        Outcome::Interrupt
    } else {
        Outcome::Failure
    }
}

fn default_severity(category: Category) -> Severity {
    match category {
        Category::InterruptInformational => Severity::Info,
        Category::InvalidCredentials | Category::UserNotFound | Category::TokenOrGrantInvalid => Severity::Low,
        Category::MfaRequired
        | Category::ConditionalAccessBlock
        | Category::DeviceOrCompliance
        | Category::FederationUnsupported => Severity::High,
        _ => Severity::Medium,
    }
}

/// Compiles one catalogue pattern the way the classifier does.
pub(crate) fn compile_pattern(p: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(p).case_insensitive(true).size_limit(PATTERN_SIZE_LIMIT).build()
}

/// Per-pattern compiled size limit; generous because bounded repetitions of `.` expand.
pub(crate) const PATTERN_SIZE_LIMIT: usize = 4 << 20;

/// The regex crate's error text spans several lines with a caret diagram; keep the reason.
fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    let reason = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error:"))
        .map_or_else(|| text.trim().to_owned(), |r| r.trim().to_owned());
    format!("invalid regex: {reason}")
}

/// Whether `id` is text an entry's id may be: non-empty, of letters, digits, `-`, `_`,
/// `.` and `:`.
pub fn is_entry_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

fn validate(e: &Entry, ctx: &Ctx<'_>) -> Result<(), CatalogueError> {
    if !is_entry_id(&e.id) {
        return Err(ctx.err("id", "must be non-empty and use only letters, digits, `-`, `_`, `.` or `:`"));
    }
    let mut seen = HashSet::new();
    for (i, &c) in e.codes.iter().enumerate() {
        if c > MAX_CODE {
            return Err(ctx.err(format!("codes[{i}]"), format!("{c} is not an AADSTS code (at most 7 digits)")));
        }
        if !seen.insert(c) {
            return Err(ctx.err(format!("codes[{i}]"), format!("code {c} listed twice")));
        }
    }
    if e.title.trim().is_empty() {
        return Err(ctx.err("title", "must not be empty"));
    }
    if e.remediation.trim().is_empty() {
        return Err(ctx.err("remediation", "must not be empty"));
    }
    for (i, p) in e.patterns.iter().enumerate() {
        if p.trim().is_empty() {
            return Err(ctx.err(format!("patterns[{i}]"), "empty pattern would match every message"));
        }
        if ctx.layer == Layer::Shipped {
            continue;
        }
        let re = compile_pattern(p).map_err(|err| ctx.err(format!("patterns[{i}]"), regex_problem(&err)))?;
        if re.is_match("") {
            return Err(
                ctx.err(format!("patterns[{i}]"), "pattern matches the empty string, so it would match every message")
            );
        }
    }
    for (i, o) in e.oauth_errors.iter().enumerate() {
        if o.trim().is_empty() {
            return Err(ctx.err(format!("oauth_errors[{i}]"), "must not be empty"));
        }
    }
    if let Some(c) = &e.conditions {
        if c.is_empty() {
            return Err(ctx.err(
                "conditions",
                "no condition given (use token_issuer_type, federated_domain, auth_protocol, app_id or oauth_error)",
            ));
        }
    }
    if e.codes.is_empty() && e.patterns.is_empty() && e.oauth_errors.is_empty() {
        return Err(ctx.err("codes", "the entry matches nothing: give `codes`, `patterns` or `oauth_errors`"));
    }
    for (field, list) in [("examples", &e.examples), ("counter_examples", &e.counter_examples)] {
        for (i, ex) in list.iter().enumerate() {
            if ex.message.is_none() && ex.result_code.is_none() {
                return Err(ctx.err(format!("{field}[{i}]"), "an example needs a `message` or a `result_code`"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalogue_loads() {
        let c = Catalogue::from_shipped().expect("shipped catalogue");
        assert!(c.len() > 357);
        // Checked as an operator's file is: every pattern compiles and matches something.
        Catalogue::check_shipped().expect("every shipped pattern compiles and matches something");
        assert_eq!(c.entry_for_code(50076).map(|e| e.id.as_str()), Some("aadsts-50076"));
        assert!(c.entry("aadsts-50126-federated").is_some_and(|e| e.is_conditional()));
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("a\nbc\nd", 3), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }

    #[test]
    fn regex_problem_is_one_line() {
        let err = compile_pattern("(unclosed").expect_err("invalid");
        let p = regex_problem(&err);
        assert!(p.starts_with("invalid regex: "), "{p}");
        assert!(!p.contains('\n'), "{p}");
    }
}
