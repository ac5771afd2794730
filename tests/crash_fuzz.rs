//! The headline guarantee, end to end: the real daemon binary is SIGKILLed at random
//! moments while a writer appends sequence-numbered records (no record ids, so only
//! file identity + offset deduplicate), rotating by rename and by copytruncate now and
//! then. The writer is released round by round and each kill lands after a random share
//! of the round is on disk, so nothing here is paced by the clock. After the last
//! restart the store holds every sequence number exactly once and `/metrics` agrees
//! with the store.
//!
//! `FUZZ_SEED=<n>` replays a schedule (the seed is printed); `FUZZ_LOG` sets the
//! daemon's log filter, e.g. `passportd::ingest=debug`, whose lines a failure prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tail_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tail_support::line;

/// xorshift64*: enough randomness for a fuzz schedule, reproducible from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The daemon under test; killed when dropped, so a failing test leaves none behind.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path, log: &Path) -> Daemon {
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", std::env::var("FUZZ_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    Daemon(child)
}

/// SIGKILL (`Child::kill` sends it on Unix), then reap.
fn kill9(daemon: Daemon) {
    drop(daemon);
}

fn stored(db: &Path) -> BTreeMap<u64, u64> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let Ok(pool) = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await else {
            return BTreeMap::new();
        };
        let rows: Vec<(Option<String>,)> =
            sqlx::query_as("SELECT message FROM events").fetch_all(&pool).await.unwrap_or_default();
        pool.close().await;
        let mut out = BTreeMap::new();
        for (m,) in rows {
            let seq: u64 = m.unwrap_or_default().trim_start_matches("seq-").parse().unwrap();
            *out.entry(seq).or_default() += 1;
        }
        out
    })
}

fn metrics(port: u16) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The daemon's count of failures it stored in this run.
const FAILURES: &str = r#"passportd_signin_events_total{outcome="failure",source="fuzz"}"#;

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `f` with a growing pause until it answers or `timeout` passes (`None`). The
/// one place this test waits for a result.
fn poll_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        // The poll interval, bounded by the deadline above.
        std::thread::park_timeout(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    match poll_for(timeout, f) {
        Some(v) => v,
        None => panic!("timed out waiting for {what}"),
    }
}

/// How far the log writer may go, and how far it has gone: the kill loop hands out
/// lines round by round and kills the daemon once a random share of a round is on disk,
/// so kills land while the writer writes and rotates without pacing it by the clock.
#[derive(Default)]
struct Progress {
    state: Mutex<(u64, u64)>,
    changed: Condvar,
}

impl Progress {
    fn allow(&self, upto: u64) {
        let mut s = self.state.lock().unwrap();
        s.0 = s.0.max(upto);
        self.changed.notify_all();
    }
    fn wrote(&self, seq: u64) {
        let mut s = self.state.lock().unwrap();
        s.1 = seq + 1;
        self.changed.notify_all();
    }
    /// Blocks until the writer may write `seq` (false: timed out, the test gave up).
    fn wait_allowed(&self, seq: u64) -> bool {
        let s = self.state.lock().unwrap();
        let (s, t) = self.changed.wait_timeout_while(s, Duration::from_secs(120), |s| s.0 <= seq).unwrap();
        drop(s);
        !t.timed_out()
    }
    /// Blocks until at least `n` lines are written.
    fn wait_written(&self, n: u64) {
        let s = self.state.lock().unwrap();
        let (_written, t) = self.changed.wait_timeout_while(s, Duration::from_secs(60), |s| s.1 < n).unwrap();
        assert!(!t.timed_out(), "the log writer stalled before line {n}");
    }
}

/// The app being tailed: appends records as far as allowed, rotating by rename or
/// copytruncate now and then. Rotated files keep distinct names so their bytes stay on disk.
fn write_logs(logs: PathBuf, total: u64, seed: u64, progress: Arc<Progress>) {
    let mut rng = Rng(seed | 1);
    let live = logs.join("app.log");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&live).unwrap();
    let mut rotations = 0;
    for seq in 0..total {
        if !progress.wait_allowed(seq) {
            return;
        }
        let len = 80 + rng.below(600) as usize;
        file.write_all(line(seq, len).as_bytes()).unwrap();
        match rng.below(400) {
            0 => {
                rotations += 1;
                std::fs::rename(&live, logs.join(format!("app.log.{rotations}"))).unwrap();
                file = std::fs::OpenOptions::new().create(true).append(true).open(&live).unwrap();
            }
            1 => {
                rotations += 1;
                std::fs::copy(&live, logs.join(format!("app.log.{rotations}"))).unwrap();
                file.set_len(0).unwrap();
            }
            2 => {
                // copytruncate by a tool that copies a piece at a time: the copy is seen
                // empty and half-written.
                rotations += 1;
                let content = std::fs::read(&live).unwrap();
                let mut copy = std::fs::File::create(logs.join(format!("app.log.{rotations}"))).unwrap();
                for piece in content.chunks(256 + rng.below(4096) as usize) {
                    copy.write_all(piece).unwrap();
                }
                file.set_len(0).unwrap();
            }
            _ => {}
        }
        progress.wrote(seq);
    }
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let seed = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("crash fuzz seed {seed} (rerun with FUZZ_SEED={seed})");
    let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let db = dir.path().join("state/passportd.db");
    let port = free_port();
    let config = dir.path().join("passportd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\nbatch_max_records = 200\n\
             [detectors]\nenabled = false\n[[sources]]\nname = \"fuzz\"\npaths = [\"{}/app.log*\"]\n\
             poll_interval = \"20ms\"\nread_grace = \"200ms\"\n",
            db.display(),
            logs.display()
        ),
    )
    .unwrap();
    let daemon_log = dir.path().join("daemon.log");

    const TOTAL: u64 = 6_000;
    const KILLS: u64 = 12;
    let progress = Arc::new(Progress::default());
    let writer = {
        let (logs, progress) = (logs.clone(), progress.clone());
        std::thread::spawn(move || write_logs(logs, TOTAL, seed, progress))
    };

    for round in 0..KILLS {
        let (from, to) = (TOTAL * round / KILLS, TOTAL * (round + 1) / KILLS);
        let child = start(&config, &daemon_log);
        // Random moments: now and then during start-up, mostly while it reads, commits
        // and follows rotations.
        if rng.below(4) != 0 {
            wait_for("the daemon to serve", Duration::from_secs(20), || metrics(port));
        }
        progress.allow(to);
        if rng.below(3) == 0 {
            // While the writer writes (and the daemon may still be starting).
            progress.wait_written(from + rng.below(to - from + 1));
        } else {
            // While the daemon works through the round: once it has stored a random
            // share of it (every line of the round is new, so the share is reachable).
            let share = 1 + rng.below(to - from);
            wait_for("the daemon to store its share of the round", Duration::from_secs(30), || {
                let stored = sample(&metrics(port)?, FAILURES)?;
                (stored >= share as f64).then_some(())
            });
        }
        kill9(child);
    }
    progress.allow(TOTAL);
    writer.join().unwrap();
    let kills = KILLS;

    // The last run: nothing is killed; it catches up and its metrics must agree with
    // what it added to the store.
    let before: u64 = stored(&db).values().sum();
    eprintln!("{kills} kills; {before} of {TOTAL} records stored before the last run");
    let child = start(&config, &daemon_log);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let complete = poll_for(Duration::from_secs(30), || {
            let s = stored(&db);
            (s.len() as u64 == TOTAL).then_some(s)
        });
        let Some(all) = complete else {
            let s = stored(&db);
            let missing: Vec<u64> = (0..TOTAL).filter(|q| !s.contains_key(q)).collect();
            let files: Vec<(String, u64)> = std::fs::read_dir(&logs)
                .unwrap()
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map(|m| m.len()).unwrap_or(0)))
                .collect();
            panic!("{} records missing, first {:?}; files {files:?}", missing.len(), &missing[..missing.len().min(20)]);
        };
        let dup: Vec<_> = all.iter().filter(|(_, n)| **n != 1).collect();
        assert!(dup.is_empty(), "stored more than once: {dup:?}");
        let text = wait_for("metrics caught up", Duration::from_secs(10), || {
            let m = metrics(port)?;
            let lag = sample(&m, r#"passportd_tail_lag_bytes{source="fuzz"}"#)?;
            (lag == 0.0).then_some(m)
        });
        let added = TOTAL - before;
        assert_eq!(
            sample(&text, FAILURES),
            Some(added as f64),
            "the last run's metrics count exactly what it added to the store"
        );
    }));
    kill9(child);
    if let Err(e) = result {
        eprintln!("daemon log:\n{}", std::fs::read_to_string(&daemon_log).unwrap_or_default());
        std::panic::resume_unwind(e);
    }
}
