//! Hot reload: the classifier in use, swapped atomically when the catalogue changes.
//!
//! Readers take a cheap `Arc` clone and keep using that classifier for as long as they
//! like; a reload builds and validates the new one completely before the swap, so a bad
//! operator file never disturbs classification in flight.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::catalogue::{Catalogue, CatalogueError};
use super::matcher::Classifier;

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
        let catalogue = Catalogue::load(extra_paths)?;
        let entries = catalogue.len();
        self.replace(Classifier::new(Arc::new(catalogue), federated_domains));
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
