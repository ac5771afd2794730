//! Metrics, alert rules and the dashboard against the real thing: a running passportd
//! scraped by a real Prometheus (1 s scrape and rule interval, the e2e copy of the
//! rules) that notifies a real Alertmanager; `promtool check metrics` on a real scrape;
//! every PromQL expression of the Grafana dashboard evaluated by that Prometheus.
//!
//! Needs the Debian packages `prometheus` and `prometheus-alertmanager` (.ci/run installs
//! them). Outside CI the test skips with a loud message when they are absent; in CI
//! (`CI=true`) it fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{poll_until, settings, TestServer};

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")]) {
        for n in names {
            let candidate = dir.join(n);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn tools() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let found = (
        find_binary(&["prometheus"]),
        find_binary(&["prometheus-alertmanager", "alertmanager"]),
        find_binary(&["promtool"]),
    );
    match found {
        (Some(p), Some(a), Some(t)) => Some((p, a, t)),
        _ => {
            let msg =
                "prometheus, alertmanager or promtool not found (apt-get install prometheus prometheus-alertmanager)";
            assert!(std::env::var("CI").map(|v| v != "true").unwrap_or(true), "{msg}: CI must run this test");
            eprintln!("\n\n!!!!! SKIPPING the Prometheus/Alertmanager end-to-end test: {msg} !!!!!\n");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the child process when the test ends, however it ends.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn mfa_record(i: usize) -> String {
    serde_json::json!({
        "time": chrono::Utc::now().to_rfc3339(),
        "tenantId": "9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "operationName": "Sign-in activity",
        "category": "SignInLogs",
        "resultType": "50076",
        "resultDescription": "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access.",
        "correlationId": format!("c0ffee00-0000-4000-8000-{i:012}"),
        "properties": {
            "id": format!("e2e00000-0000-4000-8000-{i:012}"),
            "createdDateTime": chrono::Utc::now().to_rfc3339(),
            "userPrincipalName": format!("user{i}@contoso.example"),
            "appId": "0d6f7c1e-2a3b-4c5d-9e8f-7a6b5c4d3e2f",
            "appDisplayName": "Kandji Passport",
            "ipAddress": "192.0.2.10",
            "status": {"errorCode": 50076, "failureReason": "Strong authentication is required."}
        }
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_burst_fires_the_alert_in_a_real_alertmanager_and_the_dashboard_evaluates() {
    let Some((prometheus, alertmanager, promtool)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let server = TestServer::start(settings(&format!(
        "[storage]\npath = \"{}\"\n[[sources]]\nname = \"entra\"\npaths = [\"{}/*.json\"]\npoll_interval = \"100ms\"\n",
        dir.path().join("p.db").display(),
        logs.display()
    )))
    .await;
    let passportd_addr = server.base.trim_start_matches("http://").to_string();

    // promtool lints a real scrape.
    let scrape = server.metrics().await;
    let mut lint = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let (prom_port, am_port) = (free_port(), free_port());
    let cfg = dir.path().join("prom");
    let render = Command::new("bash")
        .arg(repo().join("deploy/prometheus/test/render-e2e.sh"))
        .args([cfg.to_str().unwrap(), &passportd_addr, &format!("127.0.0.1:{am_port}")])
        .output()
        .unwrap();
    assert!(render.status.success(), "{}", String::from_utf8_lossy(&render.stderr));

    let _am = Reaper(
        Command::new(&alertmanager)
            .arg(format!("--config.file={}", cfg.join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", cfg.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _prom = Reaper(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", cfg.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", cfg.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let prom = format!("http://127.0.0.1:{prom_port}");
    let am = format!("http://127.0.0.1:{am_port}");
    let query = |q: String| {
        let http = http.clone();
        let prom = prom.clone();
        async move {
            let r = http.get(format!("{prom}/api/v1/query")).query(&[("query", q)]).send().await.ok()?;
            r.json::<serde_json::Value>().await.ok()
        }
    };

    // Wait until Prometheus has a few scrapes of passportd, so the burst is a change.
    poll_until("Prometheus scraping passportd", Duration::from_secs(60), || async {
        let v = query("count_over_time(up{job=\"passportd\"}[1m]) >= 3".into()).await?;
        (v["data"]["result"].as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await;

    let mut f = std::fs::File::create(logs.join("PT1H.json")).unwrap();
    for i in 0..40 {
        writeln!(f, "{}", mfa_record(i)).unwrap();
    }
    f.flush().unwrap();

    let alert = poll_until("PassportdMfaBlockSpike active in Alertmanager", Duration::from_secs(90), || async {
        let r = http.get(format!("{am}/api/v2/alerts")).send().await.ok()?;
        let alerts: serde_json::Value = r.json().await.ok()?;
        alerts
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "PassportdMfaBlockSpike" && a["status"]["state"] == "active")
            .cloned()
    })
    .await;
    assert_eq!(alert["labels"]["category"], "mfa_required", "{alert}");
    assert_eq!(alert["labels"]["source"], "entra", "{alert}");
    assert_eq!(alert["labels"]["severity"], "page", "{alert}");
    assert!(alert["annotations"]["runbook_url"].as_str().unwrap_or("").contains("RUNBOOK.md#passportdmfablockspike"));

    // Every dashboard expression evaluates without error against this Prometheus.
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("deploy/grafana/passportd.json")).unwrap()).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "dashboard has {} expressions", exprs.len());
    for expr in exprs {
        let q = expr
            .replace("$__rate_interval", "1m")
            .replace("${source:regex}", ".*")
            .replace("${source}", ".*")
            .replace("$source", ".*");
        let v = query(q.clone()).await.unwrap_or_default();
        assert_eq!(v["status"], "success", "dashboard expression failed: {expr}\n{v}");
    }
    server.stop().await;
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m {
                if k == "expr" {
                    if let Some(s) = val.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    collect_exprs(val, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}
