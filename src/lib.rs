//! passportd: tails Kandji Passport and Microsoft Entra sign-in logs, classifies every
//! failure against the error catalogue, groups failures into incidents kept in SQLite,
//! and serves Prometheus metrics and an incident API.
//!
//! Reading order (the pipeline, left to right):
//! - [`config`]: typed settings, layering (file, embedded default, environment), validation.
//! - [`event`]: `SignInEvent`, `Outcome`, `Category`, the types every stage shares.
//! - [`ingest`]: decoders for every input shape (`ingest::formats`), file identity,
//!   discovery, the reader and the tailer.
//! - [`classify`]: the catalogue and the pure matcher (no I/O).
//! - [`pipeline`]: decoded items → classified, privacy-filtered events → batches → the
//!   single writer.
//! - [`incidents`]: fingerprints and the lifecycle (pure decisions).
//! - [`store`]: SQLite; all SQL lives here. One transaction per batch holds events,
//!   incident updates and file checkpoints.
//! - [`metrics`]: the owned Prometheus registry.
//! - [`hex`]: lower-case hex of digests (keys, fingerprints).
//! - [`api`]: the axum router (the only module that knows HTTP).
//! - [`app`]: the service as a value (build, run, drain); [`cli`]: the commands.

pub mod api;
pub mod app;
pub mod classify;
pub mod cli;
pub mod config;
pub mod event;
pub mod hex;
pub mod incidents;
pub mod ingest;
pub mod metrics;
pub mod pipeline;
pub mod store;
pub mod telemetry;
