//! passportd: tails Kandji Passport and Microsoft Entra sign-in logs, classifies every
//! failure against the error catalogue, groups failures into incidents kept in SQLite,
//! and serves Prometheus metrics and an incident API.
//!
//! Reading order (the pipeline, left to right):
//! - [`event`]: `SignInEvent`, `Outcome`, `Category`, the types every stage shares.
//! - [`ingest`]: decoders for every input shape (`ingest::formats`) and the sources.
//! - [`classify`]: the catalogue and the pure matcher.

pub mod classify;
pub mod event;
pub mod ingest;
