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

/// The documentation link for an AADSTS code.
pub fn doc_url(code: u32) -> String {
    format!("https://login.microsoftonline.com/error?code={code}")
}
