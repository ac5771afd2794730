//! The catalogue reloads while the daemon runs: a changed operator file is validated and
//! swapped in; an invalid one keeps the old catalogue and is counted as an error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{poll_until, sample, settings, TestServer};
use passportd::classify::catalogue::Catalogue;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_catalogue_changes_apply_live_and_invalid_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.toml");
    std::fs::write(&ours, "[[entry]]\nid = \"aadsts-50076\"\nremediation = \"Version one of our fix.\"\n").unwrap();
    let server = serve_with_operator_file(dir.path(), &ours).await;
    let entry = server.get_json("/api/v1/catalogue/50076").await;
    assert_eq!(entry["remediation"], "Version one of our fix.");

    // An open incident carries the remediation of its entry.
    ingest_entra_fixture(&server).await;

    // Editors replace files by writing a new one and renaming it over the old.
    let tmp = dir.path().join("ours.toml.tmp");
    std::fs::write(
        &tmp,
        "[[entry]]\nid = \"aadsts-50076\"\nremediation = \"Version two of our fix.\"\n\n\
         [[entry]]\nid = \"acme-7777772\"\ncodes = [7777772]\ncategory = \"account_locked\"\ntitle = \"ACME lock\"\nremediation = \"Call ACME.\"\n",
    )
    .unwrap();
    std::fs::rename(&tmp, &ours).unwrap();
    poll_until("the new remediation", Duration::from_secs(10), || async {
        let e = server.get_json("/api/v1/catalogue/50076").await;
        (e["remediation"] == "Version two of our fix.").then_some(())
    })
    .await;
    // A code the reloaded catalogue adds has its series at 0, as the shipped ones do.
    let m = server.metrics().await;
    assert_eq!(
        sample(&m, r#"passportd_signin_failures_total{category="account_locked",code="7777772",source="http"}"#),
        Some(0.0)
    );
    // Open incidents follow the catalogue.
    poll_until("the incident's new remediation", Duration::from_secs(10), || async {
        let i = server.get_json("/api/v1/incidents?category=mfa_required").await;
        (i["items"][0]["remediation"] == "Version two of our fix.").then_some(())
    })
    .await;

    std::fs::write(&ours, "[[entry]]\nid = \"aadsts-50076\"\npatterns = [\"(unclosed\"]\n").unwrap();
    poll_until("a counted reload error", Duration::from_secs(10), || async {
        let m = server.metrics().await;
        (sample(&m, r#"passportd_catalogue_reloads_total{result="error"}"#).unwrap_or(0.0) >= 1.0).then_some(())
    })
    .await;
    let e = server.get_json("/api/v1/catalogue/50076").await;
    assert_eq!(e["remediation"], "Version two of our fix.", "the invalid file kept the previous catalogue");
    // An operator's example that does not hold is as invalid to the daemon as to
    // check-config: refused, counted, the catalogue kept.
    std::fs::write(
        &ours,
        "[[entry]]\nid = \"aadsts-50076\"\nremediation = \"Version three.\"\n\n\
         [[entry]]\nid = \"ours-66666\"\ncodes = [66666]\ncategory = \"other\"\ntitle = \"t\"\nremediation = \"r\"\n\
         examples = [\"AADSTS50126: wrong password\"]\n",
    )
    .unwrap();
    poll_until("a second counted reload error", Duration::from_secs(10), || async {
        let m = server.metrics().await;
        (sample(&m, r#"passportd_catalogue_reloads_total{result="error"}"#).unwrap_or(0.0) >= 2.0).then_some(())
    })
    .await;
    let e = server.get_json("/api/v1/catalogue/50076").await;
    assert_eq!(e["remediation"], "Version two of our fix.", "the file whose example fails kept the catalogue");
    let c = server
        .client
        .post(format!("{}/api/v1/classify", server.base))
        .body(r#"{"message":"AADSTS50076: MFA"}"#)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(c["remediation"], "Version two of our fix.", "CLI, API and pipeline share the live catalogue");
    server.stop().await;
}

/// An operator entry taken out by a reload: the open incident it titled is handed to the
/// shipped entry that serves its code again, texts included, and new failures join it
/// under them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_of_a_removed_operator_entry_takes_its_codes_entry() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.toml");
    std::fs::write(
        &ours,
        "[[entry]]\nid = \"ours-50076\"\ncodes = [50076]\ncategory = \"mfa_required\"\ntitle = \"Ours\"\n\
         remediation = \"OURS remediation.\"\n",
    )
    .unwrap();
    let server = serve_with_operator_file(dir.path(), &ours).await;
    ingest_entra_fixture(&server).await;
    let i = server.get_json("/api/v1/incidents?category=mfa_required").await;
    assert_eq!(i["items"][0]["remediation"], "OURS remediation.", "{i}");

    std::fs::write(&ours, "# nothing of ours any more\n").unwrap();
    let shipped = Catalogue::from_shipped().unwrap();
    let want = shipped.entry("aadsts-50076").unwrap().remediation.clone();
    poll_until("the shipped remediation", Duration::from_secs(10), || async {
        let i = server.get_json("/api/v1/incidents?category=mfa_required").await;
        (i["items"][0]["remediation"] == want.as_str()).then_some(())
    })
    .await;
    let i = server.get_json("/api/v1/incidents?category=mfa_required").await;
    assert_eq!(
        (i["items"][0]["title"].as_str(), i["items"].as_array().unwrap().len()),
        (Some("MFA required"), 1),
        "{i}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_and_api_classify_alike() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path(), "").await;
    let messages = [
        r#"{"error":"invalid_grant","error_description":"AADSTS50126: Error validating credentials due to invalid username or password.","error_codes":[50126]}"#,
        "AADSTS70002: Error validating credentials. AADSTS50126: Invalid username or password",
        "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        "Access has been blocked by Conditional Access policies",
        "AADSTS9999999: something new",
        "nothing at all",
    ];
    let cli = classify_cli(dir.path(), &messages);
    assert_eq!(cli.len(), messages.len());
    for (m, from_cli) in messages.iter().zip(&cli) {
        assert_eq!(&classify_api(&server, m).await, from_cli, "{m}");
    }
    assert_eq!(cli[1]["code"], 50126, "the wrapper 70002 yields");
    assert_eq!(cli[4]["category"], "unclassified");
    assert_eq!(cli[4]["code"], 9999999);

    // Raw Entra log lines decide as the daemon decides when it reads them: by result code,
    // status and token issuer, not by their text alone.
    let blob =
        std::fs::read_to_string(format!("{}/examples/logs/entra/PT1H.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let lines: Vec<&str> = blob.lines().collect();
    let syslog = "2026-03-04 00:19:42.068157-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) \
                  [io.kandji.passport:auth] Token request failed: AADSTS50126: Error validating credentials.";
    // (line of PT1H.json or a Passport line, outcome, category, code)
    let cases = [
        (lines[0], "success", "other", Some(0u64)),
        (lines[2], "failure", "mfa_required", Some(50076)),
        (lines[5], "failure", "invalid_credentials", Some(50126)),
        (lines[7], "failure", "federation_unsupported", Some(50126)),
        (lines[9], "interrupt", "interrupt_informational", Some(50140)),
        (syslog, "failure", "invalid_credentials", Some(50126)),
    ];
    let raw: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let cli = classify_cli(dir.path(), &raw);
    assert_eq!(cli.len(), raw.len());
    for ((line, outcome, category, code), from_cli) in cases.iter().zip(&cli) {
        assert_eq!(
            (from_cli["outcome"].as_str(), from_cli["category"].as_str(), from_cli["code"].as_u64()),
            (Some(*outcome), Some(*category), *code),
            "{line}"
        );
        assert_eq!(&classify_api(&server, line).await, from_cli, "{line}");
    }
    server.stop().await;
}

/// `passportd classify --json` of `messages`, run in `dir`: one classification each.
fn classify_cli(dir: &std::path::Path, messages: &[&str]) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["classify", "--json"])
        .args(messages)
        .current_dir(dir)
        .env_remove("PASSPORTD_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A server whose catalogue adds the operator file `file`, with its store in `dir`.
async fn serve_with_operator_file(dir: &std::path::Path, file: &std::path::Path) -> TestServer {
    TestServer::start(settings(&format!(
        "[storage]\npath = \"{}\"\n[catalogue]\nextra_paths = [\"{}\"]\n",
        dir.join("p.db").display(),
        file.display()
    )))
    .await
}

/// Posts the end-to-end Entra fixture, which opens an MFA-required incident among others.
async fn ingest_entra_fixture(server: &TestServer) {
    let body = std::fs::read_to_string(common::fixtures().join("e2e/entra.json")).unwrap();
    let r = server.client.post(format!("{}/api/v1/ingest/http", server.base)).body(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// `POST /api/v1/classify` of one message.
async fn classify_api(server: &TestServer, message: &str) -> serde_json::Value {
    server
        .client
        .post(format!("{}/api/v1/classify", server.base))
        .json(&serde_json::json!({ "message": message }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A reload is counted once all of it is done (README): a script that waits for
/// `passportd_catalogue_reloads_total{result="success"}` finds the open incidents already
/// showing the new texts, with no second wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_reload_has_reached_the_stored_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.toml");
    std::fs::write(&ours, "[[entry]]\nid = \"aadsts-50076\"\nremediation = \"Before.\"\n").unwrap();
    let server = serve_with_operator_file(dir.path(), &ours).await;
    ingest_entra_fixture(&server).await;
    let i = server.get_json("/api/v1/incidents?category=mfa_required").await;
    assert_eq!(i["items"][0]["remediation"], "Before.", "{i}");

    // Swapped in whole (written elsewhere, then renamed), so that no reload reads it half
    // written.
    let staged = dir.path().join("staged");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::write(staged.join("ours.toml"), "[[entry]]\nid = \"aadsts-50076\"\nremediation = \"After.\"\n").unwrap();
    std::fs::rename(staged.join("ours.toml"), &ours).unwrap();
    let reloads = r#"passportd_catalogue_reloads_total{result="success"}"#;
    poll_until("a counted reload", Duration::from_secs(10), || async {
        (sample(&server.metrics().await, reloads).unwrap_or(0.0) >= 1.0).then_some(())
    })
    .await;
    let i = server.get_json("/api/v1/incidents?category=mfa_required").await;
    assert_eq!(i["items"][0]["remediation"], "After.", "{i}");
    server.stop().await;
}

/// A Kubernetes ConfigMap changes its files by swapping the `..data` link they point
/// through, never writing the file's own name: the new contents are loaded all the same.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_update_through_its_data_link_reloads() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let cm = dir.path().join("cm");
    for (version, fix) in [("v1", "ConfigMap version one."), ("v2", "ConfigMap version two.")] {
        std::fs::create_dir_all(cm.join(version)).unwrap();
        let entry = format!("[[entry]]\nid = \"aadsts-50076\"\nremediation = \"{fix}\"\n");
        std::fs::write(cm.join(version).join("ours.toml"), entry).unwrap();
    }
    symlink("v1", cm.join("..data")).unwrap();
    symlink("..data/ours.toml", cm.join("ours.toml")).unwrap();
    let server = serve_with_operator_file(dir.path(), &cm.join("ours.toml")).await;
    assert_eq!(server.get_json("/api/v1/catalogue/50076").await["remediation"], "ConfigMap version one.");
    symlink("v2", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
    // The new catalogue serves lookups as soon as it is swapped in; the reload is counted
    // once the rest of it (metrics, stored incidents) is done.
    let reloads = r#"passportd_catalogue_reloads_total{result="success"}"#;
    poll_until("the swapped-in remediation, its reload counted", Duration::from_secs(10), || async {
        let e = server.get_json("/api/v1/catalogue/50076").await;
        let counted = sample(&server.metrics().await, reloads).unwrap_or(0.0) >= 1.0;
        (e["remediation"] == "ConfigMap version two." && counted).then_some(())
    })
    .await;
    let m = server.metrics().await;
    assert_eq!(sample(&m, reloads), Some(1.0), "one reload");
    server.stop().await;
}
