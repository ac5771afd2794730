//! The daemon end to end: a real server on 127.0.0.1:0, a temporary SQLite file and
//! temporary log files that grow while it runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::{poll_until, sample, settings, TestServer};

fn config_for(dir: &std::path::Path) -> String {
    format!(
        r#"
[storage]
path = "{db}"
[[sources]]
name = "entra"
paths = ["{logs}/*.json"]
poll_interval = "50ms"
"#,
        db = dir.join("state/passportd.db").display(),
        logs = dir.join("logs").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_failures_become_incidents_in_the_api_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let server = TestServer::start(settings(&config_for(dir.path()))).await;

    assert_eq!(server.get("/healthz").await.status(), 200);
    assert_eq!(server.get("/readyz").await.status(), 200);
    let metrics = server.metrics().await;
    // Known series exist at 0 before the first event, so rate() sees the first failure.
    assert_eq!(
        sample(&metrics, r#"passportd_signin_events_total{outcome="failure",source="entra"}"#),
        Some(0.0),
        "{metrics}"
    );
    assert!(metrics.contains("passportd_build_info{version="), "{metrics}");
    // Every code of the catalogue (not only those Passport itself meets), a conditional
    // entry's category for its code, and an unknown code's series.
    for series in [
        r#"passportd_signin_failures_total{category="token_or_grant_invalid",code="50173",source="entra"}"#,
        r#"passportd_signin_failures_total{category="federation_unsupported",code="50126",source="entra"}"#,
        r#"passportd_signin_failures_total{category="unclassified",code="other",source="entra"}"#,
    ] {
        assert_eq!(sample(&metrics, series), Some(0.0), "{series}");
    }

    let lines = std::fs::read_to_string(common::fixtures().join("e2e/entra.json")).unwrap();
    let path = dir.path().join("logs/PT1H.json");
    let mut file = std::fs::File::create(&path).unwrap();
    // Append in two steps, the second ending mid-line, as a growing blob does.
    let (head, tail) = lines.split_at(lines.len() / 2);
    file.write_all(head.as_bytes()).unwrap();
    file.flush().unwrap();
    file.write_all(tail.as_bytes()).unwrap();
    file.flush().unwrap();

    let incidents = poll_until("three incidents", Duration::from_secs(10), || async {
        let v = server.get_json("/api/v1/incidents").await;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 3).then_some(items)
    })
    .await;
    let mfa = incidents.iter().find(|i| i["category"] == "mfa_required").expect("an MFA incident");
    assert_eq!(mfa["code"], 50076);
    assert_eq!(mfa["event_count"], 2);
    assert_eq!(mfa["users_affected"], 2);
    assert_eq!(mfa["status"], "open");
    assert!(!mfa["remediation"].as_str().unwrap_or("").is_empty(), "{mfa}");
    for category in ["invalid_credentials", "client_misconfigured"] {
        assert!(incidents.iter().any(|i| i["category"] == category), "{category}: {incidents:?}");
    }

    let id = mfa["id"].as_i64().unwrap();
    let detail = server.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(detail["recent_events"].as_array().map(Vec::len), Some(2), "{detail}");
    assert_eq!(detail["doc_url"], "https://login.microsoftonline.com/error?code=50076");

    let metrics = poll_until("failure metrics", Duration::from_secs(5), || async {
        let m = server.metrics().await;
        // Decode-side counters are recorded just after the commit: wait for both.
        (sample(&m, r#"passportd_signin_failures_total{category="mfa_required",code="50076",source="entra"}"#)
            == Some(2.0)
            && sample(&m, r#"passportd_ingest_lines_total{source="entra"}"#) == Some(7.0))
        .then_some(m)
    })
    .await;
    assert_eq!(sample(&metrics, r#"passportd_signin_events_total{outcome="success",source="entra"}"#), Some(2.0));
    assert_eq!(sample(&metrics, r#"passportd_signin_events_total{outcome="interrupt",source="entra"}"#), Some(1.0));
    assert_eq!(sample(&metrics, r#"passportd_incidents_open{category="mfa_required"}"#), Some(1.0));
    assert_eq!(sample(&metrics, r#"passportd_ingest_lines_total{source="entra"}"#), Some(7.0));
    // No personal data in any label.
    assert!(!metrics.contains("contoso.example") && !metrics.contains("192.0.2."), "{metrics}");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_the_checkpoint_without_double_counting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let lines = std::fs::read_to_string(common::fixtures().join("e2e/entra.json")).unwrap();
    let all: Vec<&str> = lines.lines().collect();
    let path = dir.path().join("logs/PT1H.json");
    std::fs::write(&path, format!("{}\n{}\n{}", all[0], all[1], &all[2][..40])).unwrap();

    let server = TestServer::start(settings(&config_for(dir.path()))).await;
    poll_until("two events", Duration::from_secs(10), || async {
        let m = server.metrics().await;
        (sample(&m, r#"passportd_ingest_lines_total{source="entra"}"#) == Some(2.0)).then_some(())
    })
    .await;
    server.stop().await;

    // Finish the partial line and add the rest while the daemon is down.
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    write!(f, "{}\n{}\n", &all[2][40..], all[3..].join("\n")).unwrap();
    drop(f);

    let server = TestServer::start(settings(&config_for(dir.path()))).await;
    let summary = poll_until("all events stored once", Duration::from_secs(10), || async {
        let s = server.get_json("/api/v1/summary?since=2026-03-01T00:00:00Z&until=2026-03-05T00:00:00Z").await;
        let total: i64 =
            ["success", "failure", "interrupt"].iter().map(|k| s["events"][*k].as_i64().unwrap_or(0)).sum();
        (total == 7).then_some(s)
    })
    .await;
    assert_eq!(summary["events"]["failure"], 4, "{summary}");
    // Per source, the open incidents are those holding an event of it.
    let open = &summary["open_incidents_by_category"];
    assert!(!open.as_object().unwrap().is_empty(), "{summary}");
    let window = "/api/v1/summary?since=2026-03-01T00:00:00Z&until=2026-03-05T00:00:00Z";
    let of_entra = server.get_json(&format!("{window}&source=entra")).await;
    assert_eq!(&of_entra["open_incidents_by_category"], open, "{of_entra}");
    let of_other = server.get_json(&format!("{window}&source=passport")).await;
    assert_eq!(of_other["open_incidents_by_category"], serde_json::json!({}), "{of_other}");
    // This run read only what the first one had not committed.
    let m = poll_until("this run's line count", Duration::from_secs(5), || async {
        let m = server.metrics().await;
        (sample(&m, r#"passportd_ingest_lines_total{source="entra"}"#) == Some(5.0)).then_some(m)
    })
    .await;
    assert_eq!(sample(&m, r#"passportd_duplicates_total{source="entra"}"#), Some(0.0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_have_the_contract_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path(), "[api]\ntoken = \"s3cret-token\"\n").await;
    for (path, status, code) in [
        ("/api/v1/incidents/999", 404, "not_found"),
        ("/api/v1/incidents/abc", 404, "not_found"),
        ("/api/v1/incidents?status=bogus", 400, "bad_request"),
        ("/api/v1/incidents?limit=0", 400, "bad_request"),
        ("/api/v1/incidents?since=yesterday", 400, "bad_request"),
        ("/api/v1/incidents?cursor=zzz", 400, "bad_request"),
        ("/api/v1/incidents?since=2026-03-05T00:00:00Z&until=2026-03-04T00:00:00Z", 400, "bad_request"),
        ("/api/v1/events?since=2026-03-05T00:00:00Z&until=2026-03-04T00:00:00Z", 400, "bad_request"),
        ("/api/v1/events?incident=999", 404, "not_found"),
        ("/api/v1/events?incident=-5", 400, "bad_request"),
        ("/api/v1/events?incident=0", 400, "bad_request"),
        ("/api/v1/nope", 404, "not_found"),
        // A parameter given twice: which one would count is not for the server to guess.
        ("/api/v1/incidents?limit=1&limit=3", 400, "bad_request"),
        ("/api/v1/events?category=mfa_required&category=invalid_credentials", 400, "bad_request"),
        ("/api/v1/summary?source=a&source=b", 400, "bad_request"),
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status().as_u16(), status, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{path}");
    }
    let r = server.client.post(format!("{}/api/v1/incidents/1/resolve", server.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = server
        .client
        .post(format!("{}/api/v1/incidents/1/resolve", server.base))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A window before 1970 names the parameter that made it.
    let r = server.get("/api/v1/summary?until=1969-01-01T00:00:00Z").await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("`until`"), "{body}");
    server.stop().await;
}

/// The token is checked before the body is read or a push slot taken: clients without it
/// get their 401 at once (not a 413 for a large body), and cannot hold up pushes that have
/// it. A compressed push is refused, not read as text and answered 200 with nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_checked_before_their_bodies_are_read() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let server =
        TestServer::in_dir(dir.path(), "[api]\ntoken = \"s3cret-token\"\n[server]\nmax_body_bytes = 4000\n").await;
    let url = format!("{}/api/v1/ingest/http", server.base);
    let r = server.client.post(&url).body(vec![b' '; 8000]).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token: refused before the body is read");
    // Two token-less pushes that send their bodies a byte at a time hold no push slot.
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(b"POST /api/v1/ingest/http HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n{").await.unwrap();
        slow.push(conn);
    }
    let record = std::fs::read_to_string(common::fixtures().join("e2e/entra.json")).unwrap();
    let first = record.lines().next().unwrap().to_string();
    let pushed = tokio::time::timeout(
        Duration::from_secs(10),
        server.client.post(&url).bearer_auth("s3cret-token").body(first.clone()).send(),
    )
    .await
    .expect("an authorised push is not held up by token-less ones")
    .unwrap();
    assert_eq!(pushed.status(), 200);
    drop(slow);
    let r = server
        .client
        .post(&url)
        .bearer_auth("s3cret-token")
        .header("Content-Encoding", "gzip")
        .body(vec![0x1f, 0x8b, 8, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
    // Every header and every coding listed counts; identity alone is no coding.
    let with_codings = |codings: &'static [&'static str]| {
        let mut req = server.client.post(&url).bearer_auth("s3cret-token");
        for c in codings {
            req = req.header("Content-Encoding", *c);
        }
        let body = first.clone();
        async move { req.body(body).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(with_codings(&["identity", "gzip"]).await, 415);
    assert_eq!(with_codings(&["identity, gzip"]).await, 415);
    assert_eq!(with_codings(&["identity, "]).await, 200);
    assert_eq!(with_codings(&["Identity"]).await, 200);
    // A wrong method on a guarded route is still a 405, token or not, at once, even while
    // both push slots are held by authorised pushes still sending their bodies.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(
            b"POST /api/v1/ingest/http HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token\r\nContent-Length: 900\r\n\r\n{",
        )
        .await
        .unwrap();
        held.push(conn);
    }
    // Until a push has to wait: both slots are taken.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let probe = server.client.post(&url).bearer_auth("s3cret-token").body(first.clone()).send();
        if tokio::time::timeout(Duration::from_millis(300), probe).await.is_err() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the held pushes never took the slots");
    }
    let wrong_method = tokio::time::timeout(Duration::from_secs(5), server.client.get(&url).send())
        .await
        .expect("a 405 does not wait for a push slot")
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    drop(held);
    server.stop().await;
}

/// `since` keeps its meaning below the millisecond the store keeps: an event 0.9 ms
/// before it is not listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_finer_than_a_millisecond_excludes_what_came_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path(), "").await;
    let record = serde_json::json!({
        "time": "2026-06-09T10:13:20.117Z", "resultType": "50126",
        "properties": {"id": "sub-ms", "createdDateTime": "2026-06-09T10:13:20.117Z", "status": {"errorCode": 50126}}
    });
    let r = server
        .client
        .post(format!("{}/api/v1/ingest/http", server.base))
        .body(record.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (since, listed) in [("2026-06-09T10:13:20.117Z", 1), ("2026-06-09T10:13:20.1179Z", 0)] {
        let events = server.get_json(&format!("/api/v1/events?since={since}")).await;
        assert_eq!(events["items"].as_array().unwrap().len(), listed, "{since}");
    }
    let summary =
        server.get_json("/api/v1/summary?since=2026-06-09T10:13:20.1179Z&until=2026-06-09T10:13:20.118Z").await;
    assert_eq!(summary["failure"].as_u64().unwrap_or(0), 0, "{summary}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mac_failure_and_its_entra_record_are_one_attempt_in_the_incident() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(settings(&format!(
        "[storage]\npath = \"{db}\"\n[[sources]]\nname = \"entra\"\npaths = [\"{d}/none/*.json\"]\n[[sources]]\nname = \"passport\"\npaths = [\"{d}/none/*.log\"]\nformat = \"passport\"\n",
        db = dir.path().join("p.db").display(),
        d = dir.path().display()
    )))
    .await;
    let corr = "7d3b2a10-1c2d-4e5f-9a8b-7c6d5e4f3a2b";
    let entra = serde_json::json!({
        "time": "2026-03-04T16:15:02Z", "resultType": "50076", "correlationId": corr,
        "tenantId": "9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "properties": {"id": "rec-1", "correlationId": corr, "userPrincipalName": "alice@contoso.example",
            "appId": "0d6f7c1e-2a3b-4c5d-9e8f-7a6b5c4d3e2f", "appDisplayName": "Kandji Passport",
            "ipAddress": "192.0.2.10", "tokenIssuerType": "AzureAD", "status": {"errorCode": 50076}}
    })
    .to_string();
    let mac = format!(
        "2026-03-04 08:15:01.900000-0800  mac-lab-042 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] Token request failed: {{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access.\",\"error_codes\":[50076],\"correlation_id\":\"{corr}\"}}\n"
    );
    for (source, body) in [("entra", entra), ("passport", mac)] {
        let r = server.client.post(format!("{}/api/v1/ingest/{source}", server.base)).body(body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let s: serde_json::Value = r.json().await.unwrap();
        assert_eq!(s["failures"], 1, "{source}: {s}");
    }
    let list = server.get_json("/api/v1/incidents").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["event_count"], 1, "one attempt, counted once");
    let detail = server.get_json(&format!("/api/v1/incidents/{}", items[0]["id"])).await;
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{detail}");
    assert_eq!(attempts[0]["device"], "mac-lab-042");
    assert_eq!(attempts[0]["ip"], "192.0.2.10");
    assert_eq!(attempts[0]["sources"], serde_json::json!(["entra", "passport"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_defaults_group_mac_failures_with_their_entra_incident() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(settings(&format!(
        "[storage]\npath = \"{db}\"\n[[sources]]\nname = \"passport\"\npaths = [\"{d}/none/*.log\"]\nformat = \"passport\"\napp_id = \"0d6f7c1e-2a3b-4c5d-9e8f-7a6b5c4d3e2f\"\ntenant_id = \"9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b\"\n",
        db = dir.path().join("p.db").display(),
        d = dir.path().display()
    )))
    .await;
    let body = std::fs::read_to_string(common::fixtures().join("e2e/entra.json")).unwrap();
    let r = server.client.post(format!("{}/api/v1/ingest/http", server.base)).body(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A Mac-side MFA failure without a correlation id: only the source defaults tie it to
    // the Entra incident (same category, code, app and tenant).
    let mac = "2026-03-04 08:20:00.000000-0800  mac-lab-7 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] Token request failed: AADSTS50076: you must use multi-factor authentication to access\n";
    let r = server.client.post(format!("{}/api/v1/ingest/passport", server.base)).body(mac).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let list = server.get_json("/api/v1/incidents?category=mfa_required").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["event_count"], 3);
    assert_eq!(items[0]["sources"], serde_json::json!(["http", "passport"]));
    server.stop().await;
}

/// A configured source named `http` decides pushes to `/api/v1/ingest/http`: its timezone
/// places a compact-style Passport line (which carries no offset), as for any source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_named_http_decides_its_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(settings(&format!(
        "[storage]\npath = \"{db}\"\n[[sources]]\nname = \"http\"\npaths = [\"{d}/none/*.log\"]\nformat = \"passport\"\ntimezone = \"America/Los_Angeles\"\n",
        db = dir.path().join("p.db").display(),
        d = dir.path().display()
    )))
    .await;
    let line = "2026-03-04 08:15:02.123 E  SecurityAgent[612:26b7] [io.kandji.passport:auth] Token request failed: AADSTS50053: account locked\n";
    let r = server.client.post(format!("{}/api/v1/ingest/http", server.base)).body(line).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let events = server.get_json("/api/v1/events").await;
    assert_eq!(events["items"][0]["occurred_at"], "2026-03-04T16:15:02.123Z", "{events}");
    server.stop().await;
}

/// A client that sends half a request header, or nothing, or goes quiet after a request,
/// is disconnected after `request_timeout` (slowloris); the server answers others meanwhile
/// and stops at once with such a client still connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_silent_connections_are_closed_after_the_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path(), "[server]\nrequest_timeout = \"1s\"\n").await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut partial = tokio::net::TcpStream::connect(&addr).await.unwrap();
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert_eq!(server.get("/healthz").await.status(), 200, "others are answered meanwhile");
    let started = std::time::Instant::now();
    for conn in [&mut partial, &mut silent] {
        let mut buf = [0u8; 64];
        // Closed by the server: a read returns 0 bytes (or the connection is reset).
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    // One more half-sent request, and the server still stops promptly.
    let mut another = tokio::net::TcpStream::connect(&addr).await.unwrap();
    another.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let stopping = std::time::Instant::now();
    server.stop().await;
    assert!(stopping.elapsed() < std::time::Duration::from_secs(4), "{:?}", stopping.elapsed());
}

/// At most 256 connections are served at once: one more waits, unaccepted, until a
/// connection closes (here the idle ones, at `request_timeout`), then is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_beyond_the_cap_waits_for_a_free_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path(), "[server]\nrequest_timeout = \"2s\"\n").await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..256 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let started = std::time::Instant::now();
    let mut late = tokio::net::TcpStream::connect(&addr).await.unwrap();
    late.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), late.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    // Served only once the idle connections were closed (2 s after they were accepted).
    assert!(started.elapsed() >= std::time::Duration::from_millis(1000), "{:?}", started.elapsed());
    drop(idle);
    server.stop().await;
}

/// Pushes decode a few at a time (each holds about three times its body until it
/// commits); the rest wait their turn and are all answered, each record stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_wait_their_turn_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path(), "").await;
    let pushes = (0..8).map(|i| {
        let body: String = (0..50)
            .map(|j| {
                format!(
                    "{{\"id\":\"p{i}-{j}\",\"createdDateTime\":\"2026-03-04T08:{:02}:00Z\",\"status\":{{\"errorCode\":50126}}}}\n",
                    j % 60
                )
            })
            .collect();
        let (client, url) = (server.client.clone(), format!("{}/api/v1/ingest/http", server.base));
        tokio::spawn(async move { client.post(url).body(body).send().await.unwrap().json::<serde_json::Value>().await })
    });
    let mut records = 0;
    for push in pushes.collect::<Vec<_>>() {
        let summary = push.await.unwrap().unwrap();
        records += summary["records"].as_u64().unwrap();
    }
    assert_eq!(records, 400);
    let summary = server.get_json("/api/v1/summary?since=2026-03-04T00:00:00Z&until=2026-03-05T00:00:00Z").await;
    assert_eq!(summary["events"]["failure"], 400, "{summary}");
    server.stop().await;
}

/// The incident clock is event time, and it runs on while no input arrives: a live
/// incident resolves once its quiet period passes without failures, even when nothing
/// else is read meanwhile (a quiet night), and the gauge follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_incident_resolves_when_its_feed_goes_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path(), "[incidents]\nquiet_period = \"2s\"\n").await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let record = format!(
        r#"{{"time":"{now}","resultType":"50076","properties":{{"id":"quiet-1","userPrincipalName":"u@contoso.example","appId":"app-1","status":{{"errorCode":50076}}}}}}"#
    );
    let r = server.client.post(format!("{}/api/v1/ingest/http", server.base)).body(record).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let open = server.get_json("/api/v1/incidents").await;
    assert_eq!(open["items"].as_array().unwrap().len(), 1, "{open}");
    let gauge = r#"passportd_incidents_open{category="mfa_required"}"#;
    assert_eq!(sample(&server.metrics().await, gauge), Some(1.0));
    poll_until("the quiet incident to resolve", Duration::from_secs(20), || async {
        let all = server.get_json("/api/v1/incidents?status=resolved").await;
        (all["items"].as_array().map_or(0, Vec::len) == 1).then_some(())
    })
    .await;
    assert_eq!(sample(&server.metrics().await, gauge), Some(0.0));
    server.stop().await;
}

/// A Passport message that announces its next line ("Token request failed:") is held
/// while the writer delivers that line in a later write, instead of being emitted alone
/// at the first idle moment (chatter) with its body counted as a parse error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passport_message_split_across_writes_is_one_failure() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let server = TestServer::start(settings(&format!(
        "[storage]\npath = \"{}\"\n[[sources]]\nname = \"passport\"\nformat = \"passport\"\npaths = [\"{}/*.log\"]\npoll_interval = \"50ms\"\n",
        dir.path().join("p.db").display(),
        dir.path().join("logs").display()
    )))
    .await;
    let path = dir.path().join("logs/passport.log");
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    let head = "2026-03-04 00:19:42.068157-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) \
                [io.kandji.passport:auth] Token request failed for attempt 2:\n";
    append(head);
    // The second write comes once the tailer has read the first to the end of the file,
    // the moment it used to emit the message alone.
    let read = r#"passportd_tail_bytes_read_total{source="passport"}"#;
    poll_until("the first line read", Duration::from_secs(10), || async {
        (sample(&server.metrics().await, read) == Some(head.len() as f64)).then_some(())
    })
    .await;
    append("{\"error\":\"interaction_required\",\"error_description\":\"AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication.\",\"error_codes\":[50076]}\n");
    let failures = r#"passportd_signin_failures_total{category="mfa_required",code="50076",source="passport"}"#;
    poll_until("the split message as one MFA failure", Duration::from_secs(10), || async {
        (sample(&server.metrics().await, failures) == Some(1.0)).then_some(())
    })
    .await;
    let metrics = server.metrics().await;
    assert_eq!(
        sample(&metrics, r#"passportd_parse_errors_total{reason="not_signin",source="passport"}"#).unwrap_or(0.0),
        0.0
    );
    server.stop().await;
}

/// Two sources whose paths both match a file: it is the first configured source's alone,
/// read once, its records always under that name (not under whichever won a race).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_two_sources_match_is_read_by_the_first_only() {
    // By the same name, and through a link to the folder.
    for linked in [false, true] {
        two_sources_match_one_file(linked).await;
    }
}

async fn two_sources_match_one_file(linked: bool) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let second_folder = if linked {
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&logs, &link).unwrap();
        link
    } else {
        logs.clone()
    };
    std::fs::copy(common::fixtures().join("e2e/entra.json"), logs.join("a.json")).unwrap();
    let server = TestServer::start(settings(&format!(
        "[storage]\npath = \"{db}\"\n[[sources]]\nname = \"first\"\npaths = [\"{l}/*.json\"]\npoll_interval = \"50ms\"\n\
         [[sources]]\nname = \"second\"\npaths = [\"{s}/a*\"]\npoll_interval = \"50ms\"\n",
        db = dir.path().join("p.db").display(),
        l = logs.display(),
        s = second_folder.display()
    )))
    .await;
    poll_until("the file's four failures", Duration::from_secs(10), || async {
        let events = server.get_json("/api/v1/events?source=first").await;
        (events["items"].as_array().map_or(0, Vec::len) == 4).then_some(())
    })
    .await;
    // A file only the second source matches: once it is read, the second source has
    // scanned the folder with both files in it.
    let fixture = std::fs::read_to_string(common::fixtures().join("e2e/entra.json")).unwrap();
    let line = fixture.lines().nth(3).unwrap().replace("000000000004", "000000000104");
    std::fs::write(logs.join("a-second-only.log"), format!("{line}\n")).unwrap();
    poll_until("the second source's own file", Duration::from_secs(10), || async {
        let events = server.get_json("/api/v1/events?source=second").await;
        (!events["items"].as_array().map_or(true, Vec::is_empty)).then_some(())
    })
    .await;
    let second = server.get_json("/api/v1/events?source=second").await;
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1), "{second}");
    let m = server.metrics().await;
    assert_eq!(sample(&m, r#"passportd_ingest_lines_total{source="first"}"#), Some(7.0));
    assert_eq!(sample(&m, r#"passportd_ingest_lines_total{source="second"}"#), Some(1.0));
    server.stop().await;
}

/// `start_at = "end"` is for the files a source finds at its very first start. When that
/// start found none, a file that appears while passportd is stopped is new at the next
/// start: read from its beginning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_end_spares_a_file_that_appeared_after_a_first_start_that_found_none() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let config = format!(
        "[storage]\npath = \"{}\"\n[[sources]]\nname = \"entra\"\npaths = [\"{}/*.json\"]\nstart_at = \"end\"\npoll_interval = \"50ms\"\n",
        dir.path().join("p.db").display(),
        logs.display()
    );
    let first = TestServer::start(settings(&config)).await;
    first.stop().await;
    std::fs::copy(common::fixtures().join("e2e/entra.json"), logs.join("a.json")).unwrap();
    let second = TestServer::start(settings(&config)).await;
    poll_until("the new file's four failures", Duration::from_secs(10), || async {
        let events = second.get_json("/api/v1/events?source=entra").await;
        (events["items"].as_array().map_or(0, Vec::len) == 4).then_some(())
    })
    .await;
    second.stop().await;
}

/// A source's folder that does not exist at start (an hour's folder, a mount not yet up)
/// is polled for, then watched once it appears: the poll-fallback gauge goes back to 0,
/// and files written there later are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_that_appears_after_start_is_watched_once_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let later = dir.path().join("later/x");
    let config = format!(
        "[storage]\npath = \"{}\"\n[[sources]]\nname = \"entra\"\npaths = [\"{}/*.json\"]\npoll_interval = \"200ms\"\n",
        dir.path().join("p.db").display(),
        later.display()
    );
    let server = TestServer::start(settings(&config)).await;
    let fallback = |m: &str| sample(m, r#"passportd_watcher_poll_fallback{source="entra"}"#);
    // Set once the source's tailer has started, a moment after the server answers.
    poll_until("polled while the folder is missing", Duration::from_secs(10), || async {
        (fallback(&server.metrics().await) == Some(1.0)).then_some(())
    })
    .await;
    std::fs::create_dir_all(&later).unwrap();
    let lines: Vec<String> = std::fs::read_to_string(common::fixtures().join("e2e/entra.json"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    std::fs::write(later.join("a.json"), format!("{}\n", lines[0])).unwrap();
    poll_until("watched once it exists", Duration::from_secs(10), || async {
        let m = server.metrics().await;
        (fallback(&m) == Some(0.0)).then_some(())
    })
    .await;
    std::fs::write(later.join("b.json"), format!("{}\n", lines[1])).unwrap();
    poll_until("both files read", Duration::from_secs(10), || async {
        let m = server.metrics().await;
        (sample(&m, r#"passportd_ingest_lines_total{source="entra"}"#) == Some(2.0)).then_some(())
    })
    .await;
    server.stop().await;
}

/// Two clients that start a classify request and stall in its body take no permit: a
/// third is answered at once, not after `request_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_classify_bodies_do_not_hold_up_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path(), "[server]\nrequest_timeout = \"20s\"\n").await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = "POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n";
        conn.write_all(head.as_bytes()).await.unwrap();
        // The server asks for the body once the handler reads it: the request is in.
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("100 Continue") {
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf));
            let n = read.await.expect("100 Continue").unwrap();
            assert!(n > 0, "closed");
            seen.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"{\"mes").await.unwrap();
        stalled.push(conn);
    }
    let started = std::time::Instant::now();
    let r = server
        .client
        .post(format!("{}/api/v1/classify", server.base))
        .body(r#"{"message":"AADSTS50126"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    drop(stalled);
    server.stop().await;
}
