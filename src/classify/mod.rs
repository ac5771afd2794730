//! Classification: the error catalogue (`catalogue.rs`: load, merge, validate, compile)
//! and the pure matcher (`matcher.rs`: no I/O) that turns a failure into a category,
//! a title and a remediation, and `reload.rs`, the atomically swapped classifier in use.
//!
//! INTERFACE NOTE (kept stable for the rest of the crate): `Catalogue::load`,
//! `Catalogue::from_shipped`, `Catalogue::entries`, `Catalogue::passport_relevant_codes`,
//! `Classifier::new`, `Classifier::classify`, `Classifier::catalogue`, `ClassifyInput`,
//! `Classification`, `MatchedBy`, `CatalogueError`, `extract_codes`.

pub mod catalogue;
pub mod matcher;
pub mod reload;

pub use catalogue::{Catalogue, CatalogueError, Conditions, Entry, Example, Require, Severity};
pub use matcher::{extract_codes, Classification, Classifier, ClassifyInput, ExampleMismatch, MatchedBy};
pub use reload::SharedClassifier;

/// The shipped catalogue, embedded so that the binary works with no files around it.
pub const SHIPPED_CATALOGUE: &str = include_str!("../../config/catalogue.toml");

/// Classifies pasted text, as `passportd classify` and `POST /api/v1/classify` do. A whole
/// record (an Entra sign-in in any supported shape, a Passport log line) is decoded first,
/// so that its result code, status and token issuer decide as they do when the daemon
/// reads it: a success stays a success, a federated 50126 is a federation problem. Any
/// other text (an error message, a token endpoint's JSON body) is classified as a message.
///
/// A Passport line the daemon would not count (a `<private>` message, Default-level
/// chatter) still gets the verdict of its text, marked `not_counted` with the reason.
pub fn classify_text(classifier: &Classifier, text: &str) -> Classification {
    let mut all = classify_records(classifier, text);
    all.swap_remove(0)
}

/// [`classify_text`] for text that may hold several records (an Event Hubs envelope, a
/// Graph page, a JSON array, records joined on one line): one verdict per sign-in record,
/// in order, as the daemon would count each. Text that is not such a run of records gets
/// one verdict, as `classify_text` gives it. Never empty.
pub fn classify_records(classifier: &Classifier, text: &str) -> Vec<Classification> {
    classify_records_of(classifier, text, None)
}

/// [`classify_records`] for records read by a source whose `app_id` stands in for a record
/// that names no app (a Passport line), as the daemon classifies them.
pub fn classify_records_of(classifier: &Classifier, text: &str, source_app_id: Option<&str>) -> Vec<Classification> {
    use crate::ingest::formats::{decode_bytes, DecodeOptions, ItemKind};
    let trimmed = text.trim();
    let items = decode_bytes(&DecodeOptions::default(), trimmed.as_bytes());
    let record_text = |i: &crate::ingest::formats::DecodedItem| {
        let (start, end) = (usize::try_from(i.start_offset).ok()?, usize::try_from(i.end_offset).ok()?);
        trimmed.get(start..end)
    };
    let of_signin = |raw: &crate::ingest::formats::RawSignIn| {
        let mut input = ClassifyInput::of_signin(raw);
        if input.app_id.map_or(true, str::is_empty) {
            input.app_id = source_app_id;
        }
        let mut c = classifier.classify(&input);
        // As the daemon decides (`Normalizer::event`): a Passport failure that
        // `<private>` hid and nothing places counts as redacted.
        if raw.format == "passport" && raw.redacted && c.codes.is_empty() && c.matched_by.is_none() {
            c.not_counted = Some("redacted".to_owned());
        } else if raw.result_code.is_none() && c.codes.is_empty() && c.matched_by.is_none() && raw.format != "passport"
        {
            // An Entra object without a result of its own (an AuditLogs record in an
            // envelope): the daemon skips it (`Normalizer::event`).
            c.not_counted = Some("not_signin".to_owned());
        }
        c
    };
    let not_counted = |why: &str| {
        let mut c = classifier.classify(&ClassifyInput::message(""));
        c.not_counted = Some(why.to_owned());
        c
    };
    // Several records (an envelope, a page, an array): each the daemon reads gets its
    // verdict, those it would not count marked so; records it could not decode at all
    // (counted as parse errors) get none.
    if items.len() > 1 && items.iter().any(|i| matches!(i.kind, ItemKind::SignIn(_))) {
        let passport_export = items.iter().any(|i| match &i.kind {
            ItemKind::SignIn(raw) => raw.format == "passport",
            ItemKind::Redacted => true,
            _ => false,
        });
        return items
            .iter()
            .filter_map(|i| match &i.kind {
                ItemKind::SignIn(raw) => Some(of_signin(raw)),
                ItemKind::Redacted => Some(not_counted("redacted")),
                // A Passport export's chatter is marked so; in an Entra export, what is
                // skipped is a record of another log (`AuditLogs`), or a CSV header or a
                // page's wrapper, no record at all.
                ItemKind::Skipped if passport_export => Some(not_counted("chatter")),
                ItemKind::Skipped if record_text(i).is_some_and(is_entra_object) => Some(not_counted("not_signin")),
                ItemKind::Skipped | ItemKind::Error(_) => None,
            })
            .collect();
    }
    let not_counted = match items.as_slice() {
        [item] => match &item.kind {
            ItemKind::SignIn(raw) => return vec![of_signin(raw)],
            ItemKind::Redacted => Some("redacted"),
            // Skipped whole records are the reader's chatter (plain text is no record), or
            // an Entra record of another log (`AuditLogs`).
            ItemKind::Skipped if is_entra_object(text) && !crate::ingest::formats::is_log_trailer(text) => {
                Some("not_signin")
            }
            ItemKind::Skipped => Some("chatter"),
            ItemKind::Error(reason) => rejected_record(text, *reason),
        },
        _ => None,
    };
    // As the Passport decoder does for a log line: the first address in the text is the
    // user, whose domain a condition (`federated_domains`) may read.
    let user = crate::ingest::formats::email_spans(text).next().map(|span| span.address(text));
    let mut c = classifier.classify(&ClassifyInput { user: user.as_deref(), ..ClassifyInput::message(text) });
    c.not_counted = not_counted.map(str::to_owned);
    vec![c]
}

/// Whether `text` is one JSON object that is no Passport log entry (it has no
/// `eventMessage`): an Entra record, whatever log it is of.
fn is_entra_object(text: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text.trim())
        .is_ok_and(|o| !o.keys().any(|k| k.eq_ignore_ascii_case("eventMessage")))
}

/// Why the daemon would not count `text`, a JSON object it read and rejected as a record
/// (`not_signin`, `invalid_timestamp`: the parse error's reason), so that its verdict as a
/// message is not taken for the record's. A token endpoint's error body (`error`,
/// `error_description`, `error_codes`) is a message, not a record: `None`, as for text.
fn rejected_record(text: &str, reason: crate::ingest::formats::ParseErrorReason) -> Option<&'static str> {
    use crate::ingest::formats::ParseErrorReason;
    // (`invalid_json` of text that is a JSON object: a sign-in whose status is unreadable.)
    if !matches!(
        reason,
        ParseErrorReason::NotSignin | ParseErrorReason::InvalidTimestamp | ParseErrorReason::InvalidJson
    ) {
        return None;
    }
    let Ok(object) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text.trim()) else {
        // Text that is no whole JSON object (cut short, a trailing comma): a record the
        // daemon could not decode, unless it starts as a token endpoint's error body does
        // (a message pasted in part).
        let token_error = first_key(text).is_some_and(|k| TOKEN_ERROR_KEYS.iter().any(|t| k.eq_ignore_ascii_case(t)));
        return (reason == ParseErrorReason::InvalidJson && !token_error).then(|| reason.as_str());
    };
    // An OAuth error response: an `error` and only the keys such a response carries (a
    // sign-in record with a stray `error` key is still a record).
    let is_token_key = |k: &String| TOKEN_ERROR_KEYS.iter().any(|t| k.eq_ignore_ascii_case(t));
    let token_error_body = object.keys().any(|k| k.eq_ignore_ascii_case("error")) && object.keys().all(is_token_key);
    (!token_error_body).then(|| reason.as_str())
}

/// The keys a token endpoint's OAuth error body carries.
const TOKEN_ERROR_KEYS: &[&str] = &[
    "error",
    "error_description",
    "error_codes",
    "error_uri",
    "suberror",
    "timestamp",
    "trace_id",
    "correlation_id",
    "claims",
];

/// The first key of the JSON object (or of the first object of an array) `text` starts
/// with, as far as it is written.
fn first_key(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('[').map_or(text.trim_start(), str::trim_start);
    let rest = rest.strip_prefix('{')?.trim_start().strip_prefix('"')?;
    rest.find('"').map(|end| &rest[..end])
}

/// The documentation link for an AADSTS code.
pub fn doc_url(code: u32) -> String {
    format!("https://login.microsoftonline.com/error?code={code}")
}
