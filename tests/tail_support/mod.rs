//! Drives the tailer in-process, one poll round at a time, against a real SQLite store
//! and the real single writer: what the tests observe is exactly what the daemon commits.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use passportd::app::Core;
use passportd::config::{self, SourceSettings};
use passportd::ingest::tail::{RoundReport, Tailer};
use passportd::pipeline::{run_writer, BatchLimits, IngestSummary};
use passportd::store::StoreError;
use tokio_util::sync::CancellationToken;

/// A JSON line that decodes (stub and real decoder alike) as an Azure diagnostic
/// sign-in failure without a record id, tagged with `seq` and padded to about `len` bytes.
/// The tag comes first so that every file's first bytes differ.
pub fn line(seq: u64, len: usize) -> String {
    let head = format!(
        r#"{{"correlationId":"seq-{seq:08}","time":"2024-05-01T10:00:00Z","category":"SignInLogs","properties":{{"status":{{"errorCode":50126,"failureReason":"seq-{seq:08}"}},"pad":""#
    );
    let tail = r#""}}"#;
    let pad = len.saturating_sub(head.len() + tail.len() + 1);
    format!("{head}{}{tail}\n", "x".repeat(pad))
}

/// Line `seq` cut in two after `at` bytes, as a writer's two writes leave it.
pub fn halves(seq: u64, at: usize) -> (String, String) {
    let whole = line(seq, 150);
    let (head, tail) = whole.split_at(at);
    (head.to_string(), tail.to_string())
}

/// The harness.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub logs: PathBuf,
    pub db: PathBuf,
    pub source: SourceSettings,
    pub rt: tokio::runtime::Runtime,
    pub core: Core,
    tailer: Option<Tailer>,
    writer: Option<tokio::task::JoinHandle<Result<IngestSummary, StoreError>>>,
    /// Waits for held records other than the daemon's (`Harness::holding`).
    holds: Option<passportd::ingest::reader::Holds>,
}

impl Harness {
    /// A harness whose source reads `logs/<pattern>`; `extra` adds TOML keys to the source.
    pub fn new(pattern: &str, extra: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let db = dir.path().join("state/passportd.db");
        let text = format!(
            "[storage]\npath = \"{}\"\n[incidents]\nquiet_period = \"30m\"\n[detectors]\nenabled = false\n[[sources]]\nname = \"t\"\npaths = [\"{}/{}\"]\n{}\n",
            db.display(),
            logs.display(),
            pattern,
            extra
        );
        let (settings, _) = config::from_parts(&text, "test.toml", &[]).unwrap();
        let source = settings.sources[0].clone();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let core = rt.block_on(Core::build(settings, vec!["t".into()])).unwrap();
        let mut h = Harness { dir, logs, db, source, rt, core, tailer: None, writer: None, holds: None };
        h.start();
        h
    }

    /// Starts a tailer and a writer from the stored checkpoints.
    pub fn start(&mut self) {
        let checkpoints = self.rt.block_on(self.core.store.checkpoints("t")).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let limits = BatchLimits {
            max_records: 1000,
            max_wait: std::time::Duration::from_millis(100),
            fill: false,
            commit_records: 1000,
            commit_after: std::time::Duration::from_millis(100),
        };
        self.writer = Some(self.rt.spawn(run_writer(rx, self.core.writer.clone(), limits, None)));
        self.tailer = Some(
            Tailer::new(
                self.source.clone(),
                checkpoints,
                self.core.normalizer.clone(),
                tx,
                self.core.metrics.clone(),
                CancellationToken::new(),
            )
            .unwrap(),
        );
        if let Some(holds) = self.holds {
            self.tailer = self.tailer.take().map(|t| t.holding(holds));
        }
    }

    /// Restarts the tailer with other waits for held records (the daemon's longest is a
    /// minute).
    pub fn holding(&mut self, holds: passportd::ingest::reader::Holds) {
        self.holds = Some(holds);
        self.restart();
    }

    /// Stops the tailer and waits until the writer has committed everything sent.
    pub fn stop(&mut self) {
        self.tailer = None;
        if let Some(w) = self.writer.take() {
            self.rt.block_on(w).unwrap().unwrap();
        }
    }

    /// A clean restart (stop, then start from the stored checkpoints).
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// One poll round.
    pub fn poll(&mut self) -> RoundReport {
        self.tailer.as_mut().expect("running").poll_round().unwrap()
    }

    /// Everything committed so far (restarts the writer to flush it).
    pub fn sync(&mut self) {
        self.restart();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    /// Appends `text` to `name` (creating it).
    pub fn append(&self, name: &str, text: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(self.path(name)).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Stored events: sequence number → how many times stored.
    pub fn stored(&self) -> BTreeMap<u64, u64> {
        let rows: Vec<(Option<String>,)> = self.rt.block_on(async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", self.db.display())).await.unwrap();
            let rows = sqlx::query_as("SELECT message FROM events").fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        });
        let mut out = BTreeMap::new();
        for (m,) in rows {
            let m = m.unwrap_or_default();
            let seq: u64 = m.trim_start_matches("seq-").parse().unwrap_or_else(|_| panic!("unexpected message {m:?}"));
            *out.entry(seq).or_default() += 1;
        }
        out
    }

    /// A metric sample from the shared registry.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.core.metrics.render();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no series {series}"))
    }

    /// Parse errors of every reason.
    pub fn parse_errors(&self) -> f64 {
        ["invalid_json", "line_too_long", "not_signin", "unknown_format", "invalid_utf8", "invalid_csv"]
            .iter()
            .map(|r| self.metric(&format!(r#"passportd_parse_errors_total{{reason="{r}",source="t"}}"#)))
            .sum()
    }
}

/// Asserts that `stored` holds exactly the sequence numbers `want`, each once.
pub fn assert_exactly_once(stored: &BTreeMap<u64, u64>, want: impl IntoIterator<Item = u64>) {
    let want: Vec<u64> = want.into_iter().collect();
    let dup: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "stored more than once: {dup:?}");
    let got: Vec<u64> = stored.keys().copied().collect();
    let mut w = want.clone();
    w.sort_unstable();
    let missing: Vec<_> = w.iter().filter(|s| !stored.contains_key(s)).collect();
    let extra: Vec<_> = got.iter().filter(|s| !w.contains(s)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, unexpected {extra:?}");
}

/// Renames within the logs folder.
pub fn rename(h: &Harness, from: &str, to: &str) {
    std::fs::rename(h.path(from), h.path(to)).unwrap();
}

/// Truncates a file in place to nothing (the second half of copytruncate).
pub fn truncate(h: &Harness, name: &str) {
    std::fs::OpenOptions::new().write(true).open(h.path(name)).unwrap().set_len(0).unwrap();
}

/// The size of a file.
pub fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}
