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
pub fn classify_text(classifier: &Classifier, text: &str) -> Classification {
    use crate::ingest::formats::{decode_bytes, DecodeOptions, ItemKind};
    let items = decode_bytes(&DecodeOptions::default(), text.trim().as_bytes());
    if let [item] = items.as_slice() {
        if let ItemKind::SignIn(raw) = &item.kind {
            return classifier.classify(&ClassifyInput::of_signin(raw));
        }
    }
    classifier.classify(&ClassifyInput::message(text))
}

/// The documentation link for an AADSTS code.
pub fn doc_url(code: u32) -> String {
    format!("https://login.microsoftonline.com/error?code={code}")
}
