//! The daemon with file events switched off: stat polling alone finds and reads files,
//! and the metric says which mode runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod tail_support;

use std::time::Duration;

use common::{poll_until, sample, settings, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_poll_mode_reads_files_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let text = format!(
        "[storage]\npath = \"{}\"\n[[sources]]\nname = \"polled\"\npaths = [\"{}/**/*.json\"]\nwatch = false\npoll_interval = \"50ms\"\n",
        dir.path().join("state/p.db").display(),
        logs.display()
    );
    let server = TestServer::start(settings(&text)).await;
    std::fs::create_dir_all(logs.join("a/b")).unwrap();
    let body: String = (0..3).map(|s| tail_support::line(s, 150)).collect();
    std::fs::write(logs.join("a/b/x.json"), body).unwrap();
    let m = poll_until("three events", Duration::from_secs(10), || async {
        let m = server.metrics().await;
        (sample(&m, r#"passportd_signin_events_total{outcome="failure",source="polled"}"#) == Some(3.0)).then_some(m)
    })
    .await;
    assert_eq!(sample(&m, r#"passportd_watcher_poll_fallback{source="polled"}"#), Some(1.0));
    assert_eq!(sample(&m, r#"passportd_tail_open_files{source="polled"}"#), Some(1.0));
    server.stop().await;
}
