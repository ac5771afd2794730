//! No input can make the metrics grow without bound, and no label carries personal data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::TestServer;

/// A small deterministic generator (xorshift) so the test needs no RNG crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn series_count(metrics: &str) -> usize {
    metrics.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_random_codes_users_and_ips_keep_series_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path(), "").await;
    let before = series_count(&server.metrics().await);

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut body = String::new();
    for i in 0..10_000 {
        let code = 10_000 + rng.next() % 9_990_000;
        let user = format!("u{}@r{}.example", rng.next(), rng.next() % 1000);
        let ip = format!("198.51.{}.{}", rng.next() % 256, rng.next() % 256);
        body.push_str(
            &serde_json::json!({
                "time": "2026-03-04T16:15:02Z",
                "resultType": code.to_string(),
                "resultDescription": format!("AADSTS{code}: something for {user}"),
                "correlationId": format!("corr-{i}"),
                "properties": {
                    "id": format!("rand-{i}"),
                    "userPrincipalName": user,
                    "ipAddress": ip,
                    "appId": format!("app-{}", rng.next()),
                    "status": {"errorCode": code}
                }
            })
            .to_string(),
        );
        body.push('\n');
    }
    let r = server.client.post(format!("{}/api/v1/ingest/http", server.base)).body(body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let summary: serde_json::Value = r.json().await.unwrap();
    assert_eq!(summary["records"], 10_000, "{summary}");

    // Hit a templated route with many raw paths: one series per template.
    for id in 1..50 {
        let _ = server.get(&format!("/api/v1/incidents/{id}")).await;
    }

    // And with any token as the method (a client may send one): one label for them all.
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("M{i}-ALICE.EXAMPLE").as_bytes()).unwrap();
        let _ = server.client.request(method, format!("{}/healthz", server.base)).send().await.unwrap();
    }

    let metrics = server.metrics().await;
    let after = series_count(&metrics);
    assert!(metrics.contains("method=\"other\""), "unknown methods share one label");
    assert!(after < before + 300, "series grew from {before} to {after}");
    let codes: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("passportd_signin_failures_total{"))
        .filter_map(|l| l.split("code=\"").nth(1)?.split('"').next())
        .collect();
    assert!(codes.contains("other"), "{codes:?}");
    assert!(codes.len() < 400, "{} distinct code labels", codes.len());
    assert!(
        !metrics.contains(".example") && !metrics.contains("198.51.") && !metrics.contains("ALICE"),
        "personal data in a label"
    );
    assert!(metrics.contains("route=\"/api/v1/incidents/{id}\""), "route template label");
    assert!(!metrics.contains("route=\"/api/v1/incidents/7\""), "raw path label");
    server.stop().await;
}
