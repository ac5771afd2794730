//! Reader-side throughput, one thread: `cargo run --release --example reader_bench -- FILE
//! [--format F] [--runs N] [--digest] [--config PATH]`.
//!
//! Runs exactly what `passportd replay` runs on its reader thread (`FileReader::read_some`:
//! framing and decoding, classification, `Normalizer`) over FILE, minus the store: chunks go
//! through a bounded channel, as in replay, to a sink thread that counts and drops them (so
//! the reader thread does not pay for freeing what the writer would free). Prints, for each
//! run and as the median of the runs, records/s (events produced), lines/s (decoded items)
//! and MB/s, measured on the reader thread alone.
//!
//! `--digest` also prints a SHA-256 over every event (with the read time zeroed) and the
//! decode tally, so that a change to the reader can be checked to produce the same events.
//! The digest pass runs separately from the timed runs.

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Instant;

use passportd::classify::{Catalogue, Classifier, SharedClassifier};
use passportd::config::{self, SourceSettings};
use passportd::ingest::formats::Format;
use passportd::ingest::reader::{Chunk, FileReader, READ_BUFFER_BYTES};
use passportd::pipeline::{DecodeTally, Normalizer, Privacy};
use sha2::{Digest, Sha256};

struct Args {
    file: PathBuf,
    format: Format,
    runs: usize,
    digest: bool,
    config: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args { file: PathBuf::new(), format: Format::Auto, runs: 3, digest: false, config: None };
    let mut file = None;
    while let Some(x) = it.next() {
        match x.as_str() {
            "--format" => {
                let f = it.next().ok_or("--format needs a value")?;
                a.format = Format::parse(&f).ok_or_else(|| format!("unknown format {f:?}"))?;
            }
            "--runs" => a.runs = it.next().and_then(|n| n.parse().ok()).ok_or("--runs needs a number")?,
            "--digest" => a.digest = true,
            "--config" => a.config = Some(it.next().ok_or("--config needs a path")?.into()),
            _ if file.is_none() && !x.starts_with("--") => file = Some(PathBuf::from(x)),
            _ => return Err(format!("unexpected argument {x:?}")),
        }
    }
    a.file = file.ok_or("usage: reader_bench FILE [--format F] [--runs N] [--digest] [--config PATH]")?;
    Ok(a)
}

/// What one pass produced.
#[derive(Default)]
struct Pass {
    secs: f64,
    events: u64,
    tally: DecodeTally,
    digest: Option<String>,
}

/// One replay-like pass over the file. The sink thread plays the writer's part.
fn pass(
    source: &SourceSettings,
    normalizer: &Normalizer,
    file: &std::path::Path,
    digest: bool,
) -> Result<Pass, String> {
    let (tx, rx) = sync_channel::<Chunk>(4);
    let sink = std::thread::spawn(move || {
        let mut events = 0u64;
        let mut tally = DecodeTally::default();
        let mut h = digest.then(Sha256::new);
        for mut chunk in rx {
            events += chunk.records() as u64;
            tally.merge(&chunk.tally);
            if let Some(h) = h.as_mut() {
                for ev in &mut chunk.events {
                    // The read time is the clock's; an event without its own time takes it.
                    let e = &mut ev.event;
                    if e.occurred_at == e.received_at {
                        e.occurred_at = chrono::DateTime::UNIX_EPOCH;
                    }
                    e.received_at = chrono::DateTime::UNIX_EPOCH;
                    // A new file generation's key carries the time it was first seen.
                    if let Some(p) = e.position.as_mut() {
                        p.file_key.clear();
                    }
                    h.update(format!(
                        "{:?}|{}|{}|{}|{:?}|{:?}\n",
                        e, ev.title, ev.remediation, ev.severity, ev.user_key, ev.ip_key
                    ));
                }
                for s in &chunk.successes {
                    // As above: a time that is not the record's own is the clock's, and a
                    // position key names a generation whose key carries a time.
                    let at = if s.dedup_at == 0 { 0 } else { s.occurred_at_ms };
                    let key = if s.key.starts_with("pos:") { s.key.rsplit(':').next().unwrap_or("") } else { &s.key };
                    h.update(format!("success|{}|{at}|{}|{key}\n", s.source, s.dedup_at));
                }
            }
        }
        (events, tally, h.map(|h| h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()))
    });
    let started = Instant::now();
    let mut reader = FileReader::open(source, file, &[], |_| 0).map_err(|e| e.to_string())?;
    loop {
        let chunk = reader.read_some(4 * READ_BUFFER_BYTES, normalizer).map_err(|e| e.to_string())?;
        let Some(chunk) = chunk else { break };
        tx.send(chunk).map_err(|e| e.to_string())?;
        if reader.at_eof {
            break;
        }
    }
    tx.send(reader.finish(normalizer)).map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    drop(tx);
    let (events, tally, digest) = sink.join().map_err(|_| "sink thread panicked".to_string())?;
    Ok(Pass { secs, events, tally, digest })
}

fn main() -> Result<(), String> {
    let a = args()?;
    let loaded = config::load(a.config.as_deref()).map_err(|e| e.to_string())?;
    let settings = loaded.settings;
    let catalogue = Catalogue::load(&settings.catalogue.extra_paths).map_err(|e| e.to_string())?;
    let classifier = Arc::new(SharedClassifier::new(Classifier::new(
        Arc::new(catalogue),
        settings.catalogue.federated_domains.clone(),
    )));
    // A fixed store secret: the keyed hashes only need to be stable between runs.
    let privacy = Privacy::new(&settings.privacy, b"reader-bench-store-secret");
    let normalizer = Normalizer::new(classifier, privacy);
    let source = SourceSettings { format: a.format, ..SourceSettings::replay_default() };
    let bytes = std::fs::metadata(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?.len() as f64;

    let mut runs = Vec::new();
    for i in 0..a.runs.max(1) {
        let p = pass(&source, &normalizer, &a.file, false)?;
        println!(
            "run {}: {:.3} s  {:>10.0} records/s  {:>10.0} lines/s  {:>7.1} MB/s",
            i + 1,
            p.secs,
            p.events as f64 / p.secs,
            p.tally.lines as f64 / p.secs,
            bytes / p.secs / 1e6
        );
        runs.push(p);
    }
    runs.sort_by(|x, y| x.secs.total_cmp(&y.secs));
    let m = &runs[runs.len() / 2];
    println!(
        "median: {} records ({} lines) in {:.3} s: {:.0} records/s, {:.0} lines/s, {:.1} MB/s",
        m.events,
        m.tally.lines,
        m.secs,
        m.events as f64 / m.secs,
        m.tally.lines as f64 / m.secs,
        bytes / m.secs / 1e6
    );
    println!(
        "tally: skipped {} redacted {} parse errors {:?}",
        m.tally.skipped, m.tally.redacted, m.tally.parse_errors
    );
    if a.digest {
        let p = pass(&source, &normalizer, &a.file, true)?;
        println!(
            "digest: {} events {} lines {} skipped {} redacted {} errors {:?}",
            p.digest.unwrap_or_default(),
            p.events,
            p.tally.lines,
            p.tally.skipped,
            p.tally.redacted,
            p.tally.parse_errors
        );
    }
    Ok(())
}
