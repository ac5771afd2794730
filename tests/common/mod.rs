//! Helpers shared by the integration tests: a real server on 127.0.0.1:0 with a
//! temporary database, and polling with a deadline (never a fixed sleep).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use passportd::app::Application;
use passportd::config::{self, Settings};
use tokio::sync::oneshot;

/// The fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Settings from TOML text (validated like a real config file).
pub fn settings(text: &str) -> Settings {
    config::from_parts(text, "test.toml", &[]).expect("test config").0
}

/// A running server.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), passportd::app::AppError>>>,
}

impl TestServer {
    /// Starts the application with `settings` (listen is forced to 127.0.0.1:0).
    pub async fn start(mut settings: Settings) -> TestServer {
        settings.server.listen = "127.0.0.1:0".into();
        let app = Application::build(settings).await.expect("build");
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run(async move {
            let _ = rx.await;
        }));
        TestServer { base, client: reqwest::Client::new(), stop: Some(tx), handle: Some(handle) }
    }

    /// Starts the application with its store at `dir/p.db` and `extra` TOML on top.
    pub async fn in_dir(dir: &std::path::Path, extra: &str) -> TestServer {
        let text = format!("[storage]\npath = \"{}\"\n{extra}", dir.join("p.db").display());
        TestServer::start(settings(&text)).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{}", self.base, path)).send().await.expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.expect("metrics text")
    }

    /// Stops the server and waits for the drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(15), h)
                .await
                .expect("shutdown within 15 s")
                .expect("join")
                .expect("run");
        }
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The value of one sample in a Prometheus text exposition (`name{labels}` exactly as
/// rendered, labels in the registry's order).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}
