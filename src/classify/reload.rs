//! Hot reload: the classifier in use, swapped atomically when the catalogue changes.
//!
//! Readers take a cheap `Arc` clone and keep using that classifier for as long as they
//! like; a reload builds, validates and compiles the new one completely before the swap,
//! so a bad operator file never disturbs classification in flight.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::catalogue::{Catalogue, CatalogueError};
use super::matcher::{Classifier, ExampleMismatch};

/// Loads the shipped catalogue plus `extra_paths` and builds its classifier, as
/// `check-config` validates it: an example in an operator's file that does not classify
/// to its own entry (or a counter-example that does) is an error, naming the file and the
/// entry's line. Also returns the shipped examples that now classify to operator entries, which
/// overriding a shipped entry intends (`check-config` lists them as notes).
///
/// Only `with_shipped` classifies the shipped entries' examples too (tens of milliseconds,
/// which every start and every `classify` would pay): without it, only operator entries'
/// are checked and no shadowed ones are returned, and the shipped patterns are taken as
/// the test suite checked them (`Catalogue::check_shipped` checks them again).
pub fn load_checked(
    extra_paths: &[PathBuf],
    federated_domains: Vec<String>,
    with_shipped: bool,
) -> Result<(Classifier, Vec<ExampleMismatch>), CatalogueError> {
    if with_shipped {
        Catalogue::check_shipped()?;
    }
    let catalogue = Catalogue::load(extra_paths)?;
    let classifier = Classifier::new(Arc::new(catalogue), federated_domains);
    let operator = |e: &super::Entry| e.source != super::catalogue::SHIPPED_ORIGIN;
    let operator_entry = |id: &str| classifier.catalogue().entries().iter().find(|e| e.id == id && operator(e));
    let (own, shadowed): (Vec<_>, Vec<_>) = classifier
        .check_examples_of(|e| with_shipped || operator(e))
        .into_iter()
        .partition(|m| operator_entry(&m.entry).is_some());
    if let Some(first) = own.first() {
        let (origin, line) = operator_entry(&first.entry).map_or((String::new(), 0), |e| (e.source.clone(), e.line));
        let more = match own.len() {
            1 => String::new(),
            n => format!(" (and {} more example(s) that do not hold)", n - 1),
        };
        return Err(CatalogueError::Example { origin, line, mismatch: first.to_string(), more });
    }
    Ok((classifier, shadowed))
}

/// The classifier shared by every pipeline task.
#[derive(Debug)]
pub struct SharedClassifier {
    inner: RwLock<Arc<Classifier>>,
}

impl SharedClassifier {
    /// Wraps the initial classifier.
    pub fn new(c: Classifier) -> Self {
        SharedClassifier { inner: RwLock::new(Arc::new(c)) }
    }

    /// The classifier in use now (an `Arc` clone under a read lock: cheap on the hot path).
    pub fn current(&self) -> Arc<Classifier> {
        // A writer cannot leave the slot half-written (it only assigns an Arc), so a
        // poisoned lock still holds a valid classifier.
        match self.inner.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Loads the shipped catalogue plus `extra_paths`, compiles it and swaps it in.
    /// Returns the number of entries. On any error the old classifier stays in place.
    pub fn reload(&self, extra_paths: &[PathBuf], federated_domains: Vec<String>) -> Result<usize, CatalogueError> {
        let (classifier, _) = load_checked(extra_paths, federated_domains, false)?;
        classifier.prepare();
        let entries = classifier.catalogue().len();
        self.replace(classifier);
        Ok(entries)
    }

    /// Swaps in an already built classifier.
    pub fn replace(&self, c: Classifier) {
        let new = Arc::new(c);
        match self.inner.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}
