//! The real binary: commands, exit codes, the replay summary, graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn passportd(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(args)
        .current_dir(dir)
        .env_remove("PASSPORTD_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run passportd")
}

/// [`passportd`] with extra environment variables.
fn passportd_env(dir: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_passportd"));
    cmd.args(args).current_dir(dir).env_remove("PASSPORTD_CONFIG").env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run passportd")
}

/// One Passport `log show --style ndjson` entry of the plugin (subsystem and sender set).
fn passport_ndjson(timestamp: &str, kind: &str, message: &str) -> String {
    format!(
        r#"{{"timestamp":"{timestamp}","messageType":"{kind}","subsystem":"io.kandji.passport","senderImagePath":"/Library/Security/SecurityAgentPlugins/KandjiPassport.bundle/Contents/MacOS/KandjiPassport","processID":612,"eventMessage":"{message}"}}"#
    )
}

/// Runs passportd as `passportd_env` does, with `input` on its standard input.
fn passportd_piped(dir: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)], input: &[u8]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_passportd"));
    cmd.args(args).current_dir(dir).env_remove("PASSPORTD_CONFIG").env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[test]
fn replay_prints_the_contract_summary_and_a_second_replay_counts_only_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::fixtures().join("e2e/entra.json");
    let fixture = fixture.to_str().unwrap();
    let first = json(&passportd(dir.path(), &["replay", "--json", fixture]));
    assert_eq!(first["records"], 7, "{first}");
    assert_eq!(first["successes"], 2);
    assert_eq!(first["failures"], 4);
    assert_eq!(first["interrupts"], 1);
    assert_eq!(first["duplicates"], 0);
    assert_eq!(first["parse_errors"], 0);
    assert_eq!(first["skipped"], 0);
    assert_eq!(first["by_category"]["mfa_required"], 2);
    assert_eq!(first["by_category"]["invalid_credentials"], 1);
    assert_eq!(first["by_category"]["client_misconfigured"], 1);
    assert_eq!(first["by_code"]["50076"], 2);
    assert_eq!(first["by_code"]["7000218"], 1);
    assert_eq!(first["incidents_opened"], 3);
    assert!(dir.path().join("passportd.db").is_file(), "default store in the working directory");

    let second = json(&passportd(dir.path(), &["replay", "--json", fixture]));
    assert_eq!(second["records"], 0, "{second}");
    assert_eq!(second["duplicates"], 7);
    assert_eq!(second["incidents_opened"], 0);
    assert_eq!(second["by_category"], serde_json::json!({}));
}

#[test]
fn a_replayed_passport_line_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("passport.ndjson");
    std::fs::write(
        &log,
        concat!(
            r#"{"timestamp":"2026-03-04 08:15:02.123456-0800","messageType":"Error","eventMessage":"Token request failed: AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access.","subsystem":"io.kandji.passport","category":"auth","processImagePath":"/System/Library/Frameworks/Security.framework/Versions/A/MachServices/SecurityAgent.bundle/Contents/MacOS/SecurityAgent","senderImagePath":"/Library/Security/SecurityAgentPlugins/KandjiPassport.bundle/Contents/MacOS/KandjiPassport","processID":612}"#,
            "\n"
        ),
    )
    .unwrap();
    let log = log.to_str().unwrap();
    let first = json(&passportd(dir.path(), &["replay", "--json", "--format", "passport", log]));
    assert_eq!(first["failures"], 1, "{first}");
    assert_eq!(first["by_category"]["mfa_required"], 1);
    let second = json(&passportd(dir.path(), &["replay", "--json", "--format", "passport", log]));
    assert_eq!(second["records"], 0, "{second}");
    assert_eq!(second["duplicates"], 1);
}

/// A Passport log entry has no id: it is keyed by its time and message, so two exports
/// of one Mac's log (overlapping windows, another style, a copy of the file) count each
/// entry once, whatever file and offset it is read from.
#[test]
fn one_passport_entry_in_several_exports_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |second: u32, text: &str| {
        format!(
            "2026-03-04 08:15:{second:02}.123456-0800  mac-042 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] {text}\n"
        )
    };
    let monday = entry(2, "Token request failed: AADSTS50053: account locked") + &entry(3, "Authentication succeeded");
    let tuesday =
        monday.clone() + &entry(9, "Token request failed: AADSTS50076: you must use multi-factor authentication");
    let ndjson = passport_ndjson(
        "2026-03-04 08:15:02.123456-0800",
        "Error",
        "Token request failed: AADSTS50053: account locked",
    ) + "\n";
    // The compact style gives milliseconds and no offset (the source's timezone, UTC here).
    let compact = "2026-03-04 16:15:02.123 E  SecurityAgent[612:26b7] [io.kandji.passport:auth] Token request failed: AADSTS50053: account locked\n".to_string();
    let mut paths = Vec::new();
    for (name, text) in
        [("monday.log", &monday), ("tuesday.log", &tuesday), ("monday.ndjson", &ndjson), ("compact.log", &compact)]
    {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        paths.push(p.to_str().unwrap().to_string());
    }
    let v = json(&passportd(dir.path(), &["replay", "--json", "--format", "passport", &paths[0]]));
    assert_eq!((v["failures"].as_u64(), v["successes"].as_u64()), (Some(1), Some(1)), "{v}");
    let v =
        json(&passportd(dir.path(), &["replay", "--json", "--format", "passport", &paths[1], &paths[2], &paths[3]]));
    assert_eq!((v["records"].as_u64(), v["duplicates"].as_u64()), (Some(1), Some(4)), "{v}");
    assert_eq!(v["by_category"]["mfa_required"].as_u64(), Some(1), "{v}");
    // Keys are the store's, not the privacy settings': hashing users with a key now does
    // not make the same entries new.
    let v = json(&passportd_env(
        dir.path(),
        &["replay", "--json", "--format", "passport", &paths[1]],
        &[
            ("PASSPORTD_PRIVACY__USERS", "hash".as_ref()),
            ("PASSPORTD_PRIVACY__HASH_KEY", "0123456789abcdef0123".as_ref()),
        ],
    ));
    assert_eq!((v["records"].as_u64(), v["duplicates"].as_u64()), (Some(0), Some(3)), "{v}");
}

/// A byte that is not UTF-8 (a name saved as Windows-1252) reads as `?` in a text export
/// too (README): inside a catalogue failure text's gap, the line is still a failure, and
/// chatter with such a byte is still chatter. Replay skips chatter from the raw bytes, so
/// this is also the prefilter's answer.
#[test]
fn a_syslog_line_that_is_not_utf8_is_read_with_its_bad_bytes_as_question_marks() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("passport.log");
    let head = |s: u32| {
        format!("2026-03-04 08:15:{s:02}.123456-0800  mac-17 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] ")
    };
    let mut bytes = Vec::new();
    for (s, message) in [
        (1, &b"User does not exist in tenant 'Contoso \xc9tudes' and cannot access the application"[..]),
        (2, b"Presenting Passport login window to Ren\xe9e"),
    ] {
        bytes.extend_from_slice(head(s).as_bytes());
        bytes.extend_from_slice(message);
        bytes.push(b'\n');
    }
    std::fs::write(&log, bytes).unwrap();
    let v = json(&passportd(dir.path(), &["replay", "--json", log.to_str().unwrap()]));
    assert_eq!(v["failures"], 1, "{v}");
    assert_eq!(v["skipped"], 1, "{v}");
    assert_eq!(v["parse_errors"], 0, "{v}");
}

/// An ndjson entry with no level (its `messageType` blank or null) is read as a level-less
/// syslog line is: a catalogue failure text counts, where at a known calm level it is
/// chatter (README). Replay skips chatter from the raw bytes, so this is also the
/// prefilter's answer.
#[test]
fn a_catalogue_failure_text_with_no_level_counts_as_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("levels.ndjson");
    // A second apart: one entry logged twice would count once.
    let t = |s: u32| format!("2026-03-04 08:15:{s:02}.123456-0800");
    let lines = [
        passport_ndjson(&t(1), "", "Your account is locked."),
        passport_ndjson(&t(2), "  ", "Your account is locked."),
        passport_ndjson(&t(3), "Default", "Your account is locked.").replace(r#""Default""#, "null"),
        passport_ndjson(&t(4), "Default", "Your account is locked."),
        passport_ndjson(&t(5), "Default", "Presenting Passport login window"),
    ];
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let v = json(&passportd(dir.path(), &["replay", "--json", log.to_str().unwrap()]));
    assert_eq!(v["failures"], 3, "{v}");
    assert_eq!(v["skipped"], 2, "{v}");
    assert_eq!(v["parse_errors"], 0, "{v}");
}

#[test]
fn records_without_a_time_of_their_own_are_still_counted_once() {
    // Without a timestamp the event time is the receive time, different on every read:
    // the idempotency key must not depend on it.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("timeless.ndjson");
    std::fs::write(
        &log,
        concat!(
            r#"{"messageType":"Error","eventMessage":"Token request failed: AADSTS50126: Error validating credentials due to invalid username or password.","subsystem":"io.kandji.passport","category":"auth"}"#,
            "\n",
            r#"{"messageType":"Default","eventMessage":"Authentication succeeded","subsystem":"io.kandji.passport","category":"auth"}"#,
            "\n",
        ),
    )
    .unwrap();
    let log = log.to_str().unwrap();
    let first = json(&passportd(dir.path(), &["replay", "--json", "--format", "passport", log]));
    assert_eq!((first["failures"].as_u64(), first["successes"].as_u64()), (Some(1), Some(1)), "{first}");
    let second = json(&passportd(dir.path(), &["replay", "--json", "--format", "passport", log]));
    assert_eq!(second["records"], 0, "{second}");
    assert_eq!(second["duplicates"], 2);
}

#[test]
fn exit_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let out = passportd(dir.path(), &["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("passportd "));
    for cmd in ["serve", "replay", "classify", "check-config", "catalogue"] {
        let out = passportd(dir.path(), &[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help");
        assert!(!out.stdout.is_empty());
    }
    // Usage errors: exit 2, one line like every other error, naming the help to read.
    for (argv, says) in [
        (&["frobnicate"][..], "unrecognized subcommand 'frobnicate'; see `passportd --help`"),
        (&["replay"][..], "not provided: <FILE>...; see `passportd replay --help`"),
        (&["classify", "--bogus"][..], "unexpected argument '--bogus' found; see `passportd classify --help`"),
        (&["replay", "--format", "nope", "x.json"][..], "see `passportd replay --help`"),
    ] {
        let out = passportd(dir.path(), argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}");
        assert!(stderr.starts_with("passportd: ") && stderr.contains(says) && stderr.lines().count() == 1, "{stderr}");
    }
    assert_eq!(passportd(dir.path(), &["--version"]).status.code(), Some(0));
    // Configuration errors name the file and the key.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"not an address\"\n").unwrap();
    let out = passportd(dir.path(), &["check-config", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("server.listen"), "{err}");
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "[server]\nlisten = \"127.0.0.1:1\"\nport = 3\n").unwrap();
    let out = passportd(dir.path(), &["check-config", "--config", unknown.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("port"));
    let out = passportd(dir.path(), &["replay", "/no/such/file.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.json"));
    // Embedded default.
    let out = passportd(dir.path(), &["check-config"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("embedded default") && text.contains("127.0.0.1:9477"), "{text}");
}

#[test]
fn env_overrides_apply() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["check-config"])
        .current_dir(dir.path())
        .env_remove("PASSPORTD_CONFIG")
        .env("PASSPORTD_SERVER__LISTEN", "127.0.0.1:19999")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:19999"));
    let out = Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["check-config"])
        .current_dir(dir.path())
        .env_remove("PASSPORTD_CONFIG")
        .env("PASSPORTD_SERVER__LISTEN", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

/// An operator entry that takes over a shipped code, or a shipped entry's text, is what
/// overriding means: check-config exits 0, noting the shipped examples another entry now
/// decides (one that took a code over whole replaces its entry, examples and all). An
/// operator's own example that does not hold is an error naming the entry.
#[test]
fn check_config_notes_overridden_examples_and_refuses_broken_operator_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.toml");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, format!("[catalogue]\nextra_paths = [\"{}\"]\n", ours.display())).unwrap();
    let entry = "[[entry]]\nid = \"ours-50076\"\ncodes = [50076]\ncategory = \"mfa_required\"\n\
                 title = \"MFA (ours)\"\nremediation = \"Use the kiosk account.\"\n";
    let okta = "[[entry]]\nid = \"ours-okta\"\ncategory = \"invalid_credentials\"\ntitle = \"Okta (ours)\"\n\
                remediation = \"Reset it in Okta.\"\npatterns = [\"the credentials provided were invalid\"]\npriority = 50\n";
    std::fs::write(&ours, format!("{entry}\n{okta}")).unwrap();
    let out = passportd(dir.path(), &["check-config", "--config", cfg.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("note:") && stdout.contains("okta-invalid-credentials"), "{stdout}");
    assert!(!stdout.contains("aadsts-50076"), "replaced whole, its examples with it: {stdout}");
    // The default relative store path, as this process resolves it (its working directory).
    let database = dir.path().canonicalize().unwrap().join("passportd.db");
    assert!(stdout.contains(&format!("database: {}", database.display())), "{stdout}");

    std::fs::write(&ours, format!("{entry}examples = [\"AADSTS50126: wrong password\"]\n\n{okta}")).unwrap();
    let out = passportd(dir.path(), &["check-config", "--config", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ours-50076") && stderr.contains("line 1"), "{stderr}");
    // The daemon, replay and classify refuse it alike, before anything is read.
    for args in [&["serve"][..], &["replay", "-"][..], &["classify", "x"][..]] {
        let mut argv = args.to_vec();
        argv.extend(["--config", cfg.to_str().unwrap()]);
        let out = passportd(dir.path(), &argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {stderr}");
        assert!(stderr.contains("ours-50076"), "{argv:?}: {stderr}");
    }
}

/// A catalogue entry conditioned on an app holds for a Passport line of a source whose
/// `app_id` names that app, as it does for the line's Entra record: both are classified
/// alike, whichever arrives first.
#[test]
fn a_sources_app_id_decides_app_conditions_for_its_passport_lines() {
    let dir = tempfile::tempdir().unwrap();
    let app = "aaaaaaaa-0000-0000-0000-000000000001";
    let ours = dir.path().join("ours.toml");
    std::fs::write(
        &ours,
        format!(
            "[[entry]]\nid = \"ours-50076-passport\"\ncodes = [50076]\ncategory = \"client_misconfigured\"\n\
             title = \"MFA on the Passport app\"\nremediation = \"Exclude the app.\"\n\
             conditions = {{ app_id = [\"{app}\"] }}\n"
        ),
    )
    .unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\npath = \"p.db\"\n[catalogue]\nextra_paths = [\"{}\"]\n\
             [[sources]]\nname = \"passport\"\npaths = [\"nowhere/*.ndjson\"]\nformat = \"passport\"\napp_id = \"{app}\"\n",
            ours.display()
        ),
    )
    .unwrap();
    let line = dir.path().join("p.ndjson");
    let message = "Token request failed: AADSTS50076: Due to a configuration change made by your administrator, \
                   or because you moved to a new location, you must use multi-factor authentication.";
    std::fs::write(&line, passport_ndjson("2026-03-04 08:15:02.123456-0800", "Error", message) + "\n").unwrap();
    let summary = json(&passportd(
        dir.path(),
        &["replay", "--json", "--config", cfg.to_str().unwrap(), "--source", "passport", line.to_str().unwrap()],
    ));
    assert_eq!(summary["by_category"]["client_misconfigured"], 1, "{summary}");
    // `classify --source` judges the line as that source reads it; without, as any line.
    let line_text = std::fs::read_to_string(&line).unwrap();
    let verdict = |extra: &[&str]| {
        let mut args = vec!["classify", "--json", "--config", cfg.to_str().unwrap()];
        args.extend(extra);
        args.push(line_text.trim());
        json(&passportd(dir.path(), &args))["category"].as_str().unwrap().to_string()
    };
    assert_eq!(verdict(&["--source", "passport"]), "client_misconfigured");
    assert_eq!(verdict(&[]), "mfa_required");
    let out = passportd(dir.path(), &["classify", "--config", cfg.to_str().unwrap(), "--source", "nope", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A sign-in record with no result (a Graph `$select` that left `status` out, a null
/// status or error code) has an unknown outcome: a `not_signin` parse error, reported,
/// not a line "not sign-in related". A record of another log in an envelope still is.
#[test]
fn a_signin_without_a_result_is_a_parse_error_and_an_audit_record_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let page = r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns(id,createdDateTime,userPrincipalName)","value":[
{"id":"s-1","createdDateTime":"2026-03-04T08:00:00Z","userPrincipalName":"a@contoso.example"},
{"id":"s-2","createdDateTime":"2026-03-04T08:01:00Z","userPrincipalName":"b@contoso.example","status":null},
{"id":"s-3","createdDateTime":"2026-03-04T08:02:00Z","userPrincipalName":"c@contoso.example","status":{"errorCode":null}},
{"id":"s-4","createdDateTime":"2026-03-04T08:03:00Z","userPrincipalName":"d@contoso.example","status":{"errorCode":50126}}]}
{"records":[{"time":"2026-03-04T08:04:00Z","category":"AuditLogs","operationName":"Update user","resultType":"","properties":{"id":"audit-1"}}]}
{"value":[{"id":"u-1","userPrincipalName":"a@contoso.example","riskLevel":"high","riskLastUpdatedDateTime":"2026-03-04T08:05:00Z"}]}
"#;
    let file = dir.path().join("page.json");
    std::fs::write(&file, page).unwrap();
    let out = passportd_env(
        dir.path(),
        &["replay", "--json", file.to_str().unwrap()],
        &[("PASSPORTD_STORAGE__PATH", dir.path().join("p.db").as_os_str())],
    );
    let summary = json(&out);
    assert_eq!((summary["failures"].as_u64(), summary["parse_errors"].as_u64()), (Some(1), Some(3)), "{summary}");
    assert_eq!(summary["skipped"], 2, "another log's record and a riskyUsers page are skipped: {summary}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not_signin") && stderr.contains("page.json"), "{stderr}");
}

/// A compressed file handed to `replay` (a rotated generation newsyslog gzipped) is
/// refused before anything is stored, saying how to replay what it holds.
#[test]
fn replay_refuses_a_compressed_file_and_says_how_to_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("PT1H.json.gz");
    // A gzip member's header: what newsyslog's `.gz` generations begin with.
    std::fs::write(&file, [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03, 0x01, 0x00]).unwrap();
    let db = dir.path().join("p.db");
    let out =
        passportd_env(dir.path(), &["replay", file.to_str().unwrap()], &[("PASSPORTD_STORAGE__PATH", db.as_os_str())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("gzip-compressed") && stderr.contains("zcat"), "{stderr}");
    assert!(!db.exists(), "nothing stored");
    // On standard input too: said so, nothing of it decoded.
    let out = passportd_piped(
        dir.path(),
        &["replay", "--json", "-"],
        &[("PASSPORTD_STORAGE__PATH", db.as_os_str())],
        &std::fs::read(&file).unwrap(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("-: is gzip-compressed"), "{stderr}");
}

/// Live, a Mac logs its failure before Entra's export brings the record of it: the
/// Passport line is the counted copy, and it names no user and no client IP. The detectors
/// see the attempts as Entra recorded them all the same: a brute force on one user, a
/// password spray from one address.
#[test]
fn detectors_see_entra_users_and_ips_when_the_passport_lines_came_first() {
    let dir = tempfile::tempdir().unwrap();
    let attempts = |users: &[String], ip: &str, tag: &str| -> (String, String) {
        let (mut passport, mut entra) = (String::new(), String::new());
        for (k, user) in users.iter().enumerate() {
            let correlation = format!("{tag}-{k:04}-4000-8000-000000000000");
            let second = 10 + 15 * k;
            let (minute, second) = (second / 60, second % 60);
            passport += &passport_ndjson(
                &format!("2026-03-04 08:{minute:02}:{second:02}.000000+0000"),
                "Error",
                &format!(
                    "AADSTS50126: Error validating credentials due to invalid username or password.\\r\\nCorrelation ID: {}",
                    correlation.to_uppercase()
                ),
            );
            passport.push('\n');
            entra += &format!(
                r#"{{"time":"2026-03-04T08:{minute:02}:{second:02}.400Z","category":"SignInLogs","resultType":"50126","properties":{{"id":"{tag}-{k}","createdDateTime":"2026-03-04T08:{minute:02}:{second:02}.400Z","userPrincipalName":"{user}","ipAddress":"{ip}","correlationId":"{correlation}","appId":"app-1","tokenIssuerType":"AzureAD","status":{{"errorCode":50126}}}}}}"#
            );
            entra.push('\n');
        }
        (passport, entra)
    };
    let victim: Vec<String> = (0..12).map(|_| "victim@contoso.example".to_owned()).collect();
    let sprayed: Vec<String> = (0..12).map(|k| format!("user{k}@contoso.example")).collect();
    for (users, ip, tag, detector) in
        [(victim, "198.51.100.1", "aaaaaaaa", "brute_force"), (sprayed, "203.0.113.77", "bbbbbbbb", "password_spray")]
    {
        let (passport, entra) = attempts(&users, ip, tag);
        let (mac, log) = (dir.path().join(format!("{tag}.ndjson")), dir.path().join(format!("{tag}.json")));
        std::fs::write(&mac, passport).unwrap();
        std::fs::write(&log, entra).unwrap();
        let db = dir.path().join(format!("{tag}.db"));
        let env = [("PASSPORTD_STORAGE__PATH", db.as_os_str())];
        let first = json(&passportd_env(
            dir.path(),
            &["replay", "--json", "--format", "passport", mac.to_str().unwrap()],
            &env,
        ));
        assert_eq!(first["failures"], 12, "{first}");
        let second = json(&passportd_env(dir.path(), &["replay", "--json", log.to_str().unwrap()], &env));
        assert_eq!((second["records"].as_u64(), second["failures"].as_u64()), (Some(12), Some(12)), "{second}");
        // The Entra records joined their lines: one incident of the failures, counted once.
        assert_eq!(second["incidents_opened"], 1, "only the detector's: {second}");
        let found: Vec<(i64, i64, i64)> = store_rows(
            &db,
            &format!("SELECT id, event_count, users_affected FROM incidents WHERE fingerprint LIKE 'v1:{detector}:%'"),
        );
        assert_eq!(found.len(), 1, "{detector}: {found:?}");
        assert!(found[0].1 >= 10, "{detector}: {found:?}");
        // Its events are the attempts its window counted, each once (the counted copy).
        let listed = runtime().block_on(async {
            let store = passportd::store::Store::open(&db).await.unwrap();
            let q = passportd::store::EventQuery { incident: Some(found[0].0), limit: 100, ..Default::default() };
            let page = store.list_events(&q).await.unwrap();
            store.close().await;
            page.items.len()
        });
        assert_eq!(listed, 12, "{detector}");
    }
}

/// A Log Analytics export without `CreatedDateTime` gives each sign-in the time its row
/// was logged (`TimeGenerated`, here 41 s after the sign-in); the diagnostic record of the
/// same sign-in has its own. Whichever comes first, in one replay or two, each sign-in is
/// stored once, by its id.
#[test]
fn a_sign_in_logged_later_than_it_happened_is_stored_once_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let diagnostic = dir.path().join("PT1H.json");
    std::fs::write(
        &diagnostic,
        "{\"time\":\"2026-03-04T08:09:59Z\",\"category\":\"SignInLogs\",\"resultType\":\"50076\",\"resultDescription\":\"Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication.\",\"properties\":{\"id\":\"11111111-0000-4000-8000-000000000001\",\"createdDateTime\":\"2026-03-04T08:09:18.0729893+00:00\",\"userPrincipalName\":\"a@contoso.example\",\"appId\":\"app-1\",\"status\":{\"errorCode\":50076}}}\n\
         {\"time\":\"2026-03-04T08:10:41Z\",\"category\":\"SignInLogs\",\"resultType\":\"0\",\"properties\":{\"id\":\"11111111-0000-4000-8000-000000000002\",\"createdDateTime\":\"2026-03-04T08:10:00Z\",\"status\":{\"errorCode\":0}}}\n",
    )
    .unwrap();
    let analytics = dir.path().join("la.json");
    std::fs::write(
        &analytics,
        "{\"TimeGenerated\":\"2026-03-04T08:09:59Z\",\"ResultType\":\"50076\",\"ResultDescription\":\"Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication.\",\"UserPrincipalName\":\"a@contoso.example\",\"AppId\":\"app-1\",\"Id\":\"11111111-0000-4000-8000-000000000001\",\"Category\":\"SignInLogs\"}\n\
         {\"TimeGenerated\":\"2026-03-04T08:10:41Z\",\"ResultType\":\"0\",\"Id\":\"11111111-0000-4000-8000-000000000002\",\"Category\":\"SignInLogs\"}\n",
    )
    .unwrap();
    let replay = |db: &str, files: &[&Path]| {
        let mut args = vec!["replay", "--json"];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        json(&passportd_env(dir.path(), &args, &[("PASSPORTD_STORAGE__PATH", dir.path().join(db).as_os_str())]))
    };
    for (db, first, second) in [("a.db", &diagnostic, &analytics), ("b.db", &analytics, &diagnostic)] {
        let one = replay(db, &[first]);
        assert_eq!((one["records"].as_u64(), one["duplicates"].as_u64()), (Some(2), Some(0)), "{one}");
        let two = replay(db, &[second]);
        assert_eq!((two["records"].as_u64(), two["duplicates"].as_u64()), (Some(0), Some(2)), "{two}");
        assert_eq!(two["incidents_opened"], 0, "{two}");
    }
    let both = replay("c.db", &[&diagnostic, &analytics]);
    assert_eq!((both["records"].as_u64(), both["duplicates"].as_u64()), (Some(2), Some(2)), "{both}");
    assert_eq!((both["failures"].as_u64(), both["successes"].as_u64()), (Some(1), Some(1)), "{both}");
}

/// A store this binary cannot use (written by a newer passportd; a key file it did not
/// write) is refused by check-config as by serve and replay, with exit 2 (a restart cannot
/// mend it) and a sentence naming the file.
#[test]
fn a_store_from_a_newer_passportd_or_with_a_foreign_key_file_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/logs/entra/PT1H.json");
    let env = [("PASSPORTD_STORAGE__PATH", db.as_os_str())];
    let out = passportd_env(dir.path(), &["replay", input.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let refused = |want: &str| {
        for args in [&["check-config"][..], &["replay", input.to_str().unwrap()][..]] {
            let out = passportd_env(dir.path(), args, &env);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(want), "{args:?}: {stderr}");
        }
    };

    let key = dir.path().join("p.db.key");
    let secret = std::fs::read(&key).unwrap();
    std::fs::write(&key, "garbage\n").unwrap();
    refused("p.db.key");
    std::fs::write(&key, secret).unwrap();

    let _: Vec<(i64,)> = store_rows(
        &db,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'future', 1, x'00', 0) RETURNING version",
    );
    refused("newer passportd");
}

/// A line in no layout `log` writes (here `/var/log/system.log`'s) is an `unknown_format`
/// error under `format = "passport"` as under `auto`: counted and warned of, so failures
/// in it are not passed over in silence.
#[test]
fn lines_of_another_layout_are_errors_under_the_passport_format_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("system.log");
    std::fs::write(
        &file,
        "Mar  4 08:15:02 mac-lab-07 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] Token request failed: AADSTS50126: Error validating credentials.\n\
         2026-03-04 08:15:03.123456-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] AADSTS50076: Due to a configuration change made by your administrator\n",
    )
    .unwrap();
    for format in ["passport", "auto"] {
        let out = passportd_env(
            dir.path(),
            &["replay", "--json", "--format", format, file.to_str().unwrap()],
            &[("PASSPORTD_STORAGE__PATH", dir.path().join(format!("{format}.db")).as_os_str())],
        );
        let summary = json(&out);
        assert_eq!(summary["parse_errors_by_reason"]["unknown_format"], 1, "{format}: {summary}");
        assert_eq!(summary["failures"], 1, "{format}: {summary}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_format"), "{format}");
    }
    // The rest of a message whose head this file does not hold (read from its end while the
    // message was being written, or cut by a copytruncate) is an orphan continuation.
    let tail = dir.path().join("tail.log");
    std::fs::write(
        &tail,
        "Correlation ID: 00000000-0000-4000-8000-000000000002\r\nTimestamp: 2026-03-05 17:00:00Z\n  \"error_codes\" : [50126]\n}\n\
         2026-03-04 08:15:03.123456-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] AADSTS50076: Due to a configuration change made by your administrator\n",
    )
    .unwrap();
    let summary = json(&passportd_env(
        dir.path(),
        &["replay", "--json", "--format", "passport", tail.to_str().unwrap()],
        &[("PASSPORTD_STORAGE__PATH", dir.path().join("tail.db").as_os_str())],
    ));
    assert_eq!((summary["parse_errors"].as_u64(), summary["skipped"].as_u64()), (Some(0), Some(4)), "{summary}");
    assert_eq!(summary["failures"], 1, "{summary}");
    // Not anywhere in a file, and not a quoted CSV row or quoted message: those are errors.
    let quoted = dir.path().join("export.csv");
    std::fs::write(
        &quoted,
        "\"Time\",\"Host\",\"Message\"\n\"2026-11-28 01:00:00\",\"mac-1\",\"Authentication failed: AADSTS50126: invalid password\"\n\
         \"Authentication failed: AADSTS50076: you must use multi-factor authentication\"\n\
         Trace ID: 11111111-0000-4000-8000-000000000002\n",
    )
    .unwrap();
    let summary = json(&passportd_env(
        dir.path(),
        &["replay", "--json", "--format", "passport", quoted.to_str().unwrap()],
        &[("PASSPORTD_STORAGE__PATH", dir.path().join("quoted.db").as_os_str())],
    ));
    assert_eq!(summary["parse_errors"], 4, "{summary}");
}

/// Failures without a code that the catalogue places in different entries (security
/// defaults against a Conditional Access policy) are different problems with different
/// fixes: each opens its own incident, titled by its own entry.
#[test]
fn failures_without_a_code_from_different_entries_are_different_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let line = |t: &str, msg: &str| {
        format!(
            r#"{{"timestamp":"2026-03-04 08:{t}.000000-0800","messageType":"Error","eventMessage":"{msg}","subsystem":"io.kandji.passport","category":"auth","processID":612,"senderImagePath":"/Library/Security/SecurityAgentPlugins/KandjiPassport.bundle/Contents/MacOS/KandjiPassport"}}"#
        ) + "\n"
    };
    let text = line("00:00", "Sign in failed: Access has been blocked by security defaults. Security defaults are enabled.")
        + &line(
            "00:05",
            "Sign in failed: Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
        )
        + &line("00:09", "Sign in failed: Access has been blocked by security defaults. Security defaults are enabled.");
    let file = dir.path().join("mac.ndjson");
    std::fs::write(&file, text).unwrap();
    let db = dir.path().join("p.db");
    let summary = json(&passportd_env(
        dir.path(),
        &["replay", "--json", "--format", "passport", file.to_str().unwrap()],
        &[("PASSPORTD_STORAGE__PATH", db.as_os_str())],
    ));
    assert_eq!(summary["failures"], 3, "{summary}");
    let incidents: Vec<(String, i64)> = store_rows(&db, "SELECT entry_id, event_count FROM incidents ORDER BY id");
    assert_eq!(incidents, [("aadsts-530035".to_string(), 2), ("aadsts-53003".to_string(), 1)]);
}

/// After `replay` exits, the database file holds the whole store: a copy of the file and
/// its key file (the README's backup) has every record, not just what a checkpoint of the
/// write-ahead log had moved into it.
#[test]
fn a_replayed_store_copied_without_its_log_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/logs/entra/PT1H.json");
    let db = dir.path().join("p.db");
    let first = json(&passportd_env(
        dir.path(),
        &["replay", "--json", input.to_str().unwrap()],
        &[("PASSPORTD_STORAGE__PATH", db.as_os_str())],
    ));
    assert!(first["records"].as_u64().unwrap() > 0, "{first}");
    let wal = std::fs::metadata(dir.path().join("p.db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the write-ahead log is checkpointed into the file at exit");

    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&db, copy.path().join("p.db")).unwrap();
    std::fs::copy(dir.path().join("p.db.key"), copy.path().join("p.db.key")).unwrap();
    let again = json(&passportd_env(
        copy.path(),
        &["replay", "--json", input.to_str().unwrap()],
        &[("PASSPORTD_STORAGE__PATH", copy.path().join("p.db").as_os_str())],
    ));
    assert_eq!(again["records"], 0, "{again}");
    assert_eq!(again["duplicates"], first["records"], "{again}");
}

/// Diagnostic settings streaming every category to one Event Hub, or a Log Analytics
/// export of several tables, mix records of other logs in with the sign-ins. Those are
/// skipped even when their result and text read like a failure's (a provisioning failure
/// naming a disabled account, a self-service reset of a locked one), and Graph activity
/// records, which carry no id or result, are skipped, not counted as parse errors.
#[test]
fn records_of_other_logs_are_skipped_whatever_their_text() {
    let dir = tempfile::tempdir().unwrap();
    let lines = r#"{"records":[{"time":"2026-03-04T08:23:00Z","category":"ProvisioningLogs","tenantId":"a1b2","resultType":"Failure","resultDescription":"Failed to update User 'alice@contoso.example' in ServiceNow: the user account is disabled","properties":{"id":"prov1","activityDateTime":"2026-03-04T08:23:00Z"}},{"time":"2026-03-04T08:24:00Z","category":"MicrosoftGraphActivityLogs","resultSignature":"200","properties":{"requestId":"r1","responseStatusCode":200,"requestUri":"https://graph.microsoft.com/v1.0/me","ipAddress":"203.0.113.5"}},{"time":"2026-03-04T08:25:00Z","category":"SignInLogs","resultType":"50126","resultDescription":"Invalid username or password.","properties":{"id":"si-1","createdDateTime":"2026-03-04T08:25:00Z","userPrincipalName":"bob@contoso.example"}}]}
{"TimeGenerated":"2026-03-04T08:30:00Z","Id":"SSGM_1","Category":"UserManagement","OperationName":"Reset password (self-service)","ResultDescription":"User's account is locked","Type":"AuditLogs"}
{"TimeGenerated":"2026-03-04T08:31:00Z","RequestId":"r2","ResponseStatusCode":"403","IPAddress":"203.0.113.6","AppId":"app-1","Type":"MicrosoftGraphActivityLogs"}
{"TimeGenerated":"2026-03-04T08:32:00Z","Id":"si-2","ResultType":"50076","ResultDescription":"Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication.","Type":"SigninLogs","Category":"SignInLogs"}
"#;
    let file = dir.path().join("mixed.json");
    std::fs::write(&file, lines).unwrap();
    let out = passportd_env(
        dir.path(),
        &["replay", "--json", file.to_str().unwrap()],
        &[("PASSPORTD_STORAGE__PATH", dir.path().join("p.db").as_os_str())],
    );
    let summary = json(&out);
    assert_eq!(summary["records"], 2, "only the two sign-ins count: {summary}");
    assert_eq!(summary["failures"], 2, "{summary}");
    assert_eq!(summary["parse_errors"], 0, "{summary}");
    assert_eq!(summary["skipped"], 4, "{summary}");
    assert_eq!(summary["by_category"]["invalid_credentials"], 1, "{summary}");
    assert_eq!(summary["by_category"]["mfa_required"], 1, "{summary}");

    // classify says the daemon would not count another log's record.
    let audit = lines.lines().nth(1).unwrap();
    let out = passportd_env(dir.path(), &["classify", "--json", audit], &[]);
    let verdict = json(&out);
    assert_eq!(verdict["not_counted"], "not_signin", "{verdict}");
}

/// A code a Passport line names only in passing is chatter, not a failure: a list of
/// codes (a configuration dump), or a bare code at a known level below Error (an alert
/// echoing a failure, a retry policy). A failure names its code as Entra's description
/// does, carries the token endpoint's body, says it failed, or is logged at Error.
#[test]
fn codes_named_in_passing_are_chatter() {
    let dir = tempfile::tempdir().unwrap();
    let t = "2026-03-04 08:15:02.123456-0800";
    let lines = [
        passport_ndjson(t, "Info", "Retry policy: errors such as AADSTS50076 are not retried"),
        passport_ndjson(t, "Default", "Displaying alert 'Your sign-in needs MFA (AADSTS50076)'"),
        passport_ndjson(t, "Default", "Loaded error map: AADSTS50076, AADSTS50079, AADSTS50126"),
        passport_ndjson("2026-03-04 08:15:03.000000-0800", "Error", "Authentication failed for a user: AADSTS50076"),
        passport_ndjson(
            "2026-03-04 08:15:04.000000-0800",
            "Default",
            "AADSTS50126: Error validating credentials due to invalid username or password.",
        ),
        passport_ndjson(
            "2026-03-04 08:15:05.000000-0800",
            "Debug",
            r#"HTTP 400 response body: {\"error\":\"invalid_grant\",\"error_codes\":[50053]}"#,
        ),
        // Logged at Error, two bare codes are a failure, not a list.
        passport_ndjson(
            "2026-03-04 08:15:06.000000-0800",
            "Error",
            "Entra rejected the password: AADSTS50126 (then AADSTS50053 on retry)",
        ),
    ];
    let file = dir.path().join("p.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let summary = json(&passportd_env(
        dir.path(),
        &["replay", "--json", "--format", "passport", file.to_str().unwrap()],
        &[("PASSPORTD_STORAGE__PATH", dir.path().join("p.db").as_os_str())],
    ));
    assert_eq!((summary["failures"].as_u64(), summary["skipped"].as_u64()), (Some(4), Some(3)), "{summary}");
    assert_eq!(summary["by_code"], serde_json::json!({"50076": 1, "50126": 2, "50053": 1}), "{summary}");
    // Without a level (the syslog style), two bare codes still count; a list of three is
    // a dump.
    let head =
        "2026-03-04 08:15:02.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth]";
    let syslog = format!(
        "{head} Error AADSTS50076 / AADSTS50079 for a user: MFA registration required\n\
         {head} Loaded error map: AADSTS50076, AADSTS50079, AADSTS50126\n"
    );
    let file = dir.path().join("p.log");
    std::fs::write(&file, syslog).unwrap();
    let summary = json(&passportd_env(
        dir.path(),
        &["replay", "--json", "--format", "passport", file.to_str().unwrap()],
        &[("PASSPORTD_STORAGE__PATH", dir.path().join("q.db").as_os_str())],
    ));
    assert_eq!((summary["failures"].as_u64(), summary["skipped"].as_u64()), (Some(1), Some(1)), "{summary}");
}

/// Piped exports whose records span lines get one verdict per record, as `replay` reads
/// them: a pretty-printed Graph page and a CSV export under its header. Plain messages
/// still get one verdict per line.
#[test]
fn classify_reads_piped_exports_record_by_record() {
    let dir = tempfile::tempdir().unwrap();
    let run = |input: &str| -> Vec<serde_json::Value> {
        let out = passportd_piped(dir.path(), &["classify", "--json"], &[], input.as_bytes());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let page = serde_json::to_string_pretty(&serde_json::json!({"value": [
        {"id": "g-1", "createdDateTime": "2026-03-04T08:00:00Z", "status": {"errorCode": 0}},
        {"id": "g-2", "createdDateTime": "2026-03-04T08:01:00Z", "status": {"errorCode": 50126},
         "tokenIssuerType": "ADFederationServices"}
    ]}))
    .unwrap();
    let verdicts = run(&page);
    let outcome =
        |v: &serde_json::Value| (v["outcome"].as_str().map(String::from), v["category"].as_str().map(String::from));
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert_eq!(verdicts[0]["outcome"], "success");
    assert_eq!(outcome(&verdicts[1]), (Some("failure".into()), Some("federation_unsupported".into())));
    let csv = "TimeGenerated [UTC],ResultType,UserPrincipalName,Id\r\n\
               2026-03-04T08:00:00Z,0,a@contoso.example,r-1\r\n\
               2026-03-04T08:01:00Z,50140,b@contoso.example,r-2\r\n";
    let verdicts = run(csv);
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert_eq!(
        (verdicts[0]["outcome"].as_str(), verdicts[1]["outcome"].as_str()),
        (Some("success"), Some("interrupt"))
    );
    let verdicts = run("AADSTS50126: wrong password\nAADSTS50076: MFA\n");
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert_eq!(verdicts[1]["category"], "mfa_required");
    // The admin center's own download names its time column `Date`: read as replay reads it.
    let admin = "Date,Request ID,Username,Application,Sign-in error code,Failure reason,Correlation ID\n\
                 2026-11-27T10:00:00Z,req-1,jane@contoso.com,Kandji Passport,50126,Invalid username or password,c1\n\
                 2026-11-27T10:01:00Z,req-2,jane@contoso.com,Kandji Passport,50053,Account locked,c2\n";
    let verdicts = run(admin);
    let codes: Vec<_> = verdicts.iter().map(|v| v["code"].as_u64()).collect();
    assert_eq!(codes, [Some(50126), Some(50053)], "{verdicts:?}");
    // Lines that merely start with a bracket, or cut-off token bodies, are messages.
    assert_eq!(
        run("[auth] error AADSTS50126 invalid username or password\n[auth] error AADSTS50053 account is locked\n")
            .len(),
        2
    );
    assert_eq!(
        run("{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS50126: Error validating...\n{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS50053: locked\n").len(),
        2
    );
    // Plain messages around a log line: one verdict each, as before.
    let mixed = "AADSTS50053: The account is locked\n\
                 2026-03-04 01:29:59.367 E  SecurityAgent[612:26b7] [io.kandji.passport:auth] AADSTS50126: Error validating credentials\n\
                 AADSTS50076: Due to a configuration change you must use MFA\n";
    assert_eq!(run(mixed).len(), 3);
    // A `log show` text export (after its banner and header): a record's message is its
    // lines up to the next record's, one verdict per record, as replay reads it.
    let compact = "Filtering the log data using \"subsystem BEGINSWITH \\\"io.kandji\\\"\"\n\
                   Timestamp               Ty Process[PID:TID]\n\
                   2026-03-04 08:15:02.123 E  SecurityAgent[612:26b7] [io.kandji.passport:auth] AADSTS50126: Error validating credentials.\n\
                   Trace ID: 5b9e1d2c-3f4a-4b6c-8d7e-9f0a1b2c3d4e\n\
                   Correlation ID: 66666666-fe3b-490b-93f4-48b3a5aa3c81\n\
                   2026-03-04 08:15:03.123 E  SecurityAgent[612:26b7] [io.kandji.passport:auth] Token request failed: HTTP 400\n\
                   {\n  \"error\" : \"invalid_client\",\n  \"error_codes\" : [7000218]\n}\n";
    let verdicts = run(compact);
    let counted: Vec<_> =
        verdicts.iter().filter(|v| v.get("not_counted").is_none()).map(|v| v["code"].as_u64()).collect();
    assert_eq!(counted, [Some(50126), Some(7000218)], "{verdicts:?}");
    assert_eq!(verdicts.len(), 4, "the banner and header marked not counted: {verdicts:?}");
    // `log show --style json` after its banner: an array of records, one verdict each.
    let entry = |t: &str| {
        serde_json::json!({"timestamp": format!("2026-03-04 08:15:0{t}.123456-0800"), "messageType": "Error",
            "eventMessage": "AADSTS50126: Error validating credentials.", "subsystem": "io.kandji.passport",
            "senderImagePath": "/Library/Security/SecurityAgentPlugins/KandjiPassport.bundle/Contents/MacOS/KandjiPassport"})
    };
    let array = format!(
        "Filtering the log data using \"subsystem BEGINSWITH \\\"io.kandji\\\"\"\n{}\n",
        serde_json::to_string_pretty(&serde_json::json!([entry("1"), entry("2"), entry("3")])).unwrap()
    );
    let verdicts = run(&array);
    let counted: Vec<_> =
        verdicts.iter().filter(|v| v.get("not_counted").is_none()).map(|v| v["code"].as_u64()).collect();
    assert_eq!(counted, [Some(50126); 3], "{verdicts:?}");

    // A live pipe (`log stream | passportd classify`) is answered line by line as it comes,
    // not at its end.
    let mut child = Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["classify", "--json"])
        .current_dir(dir.path())
        .env_remove("PASSPORTD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    {
        use std::io::Write;
        stdin.write_all(b"AADSTS50076: MFA\n").unwrap();
        stdin.flush().unwrap();
    }
    let mut first = String::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let _ = reader.read_line(&mut first);
        let _ = tx.send(first);
    });
    let answer = rx.recv_timeout(Duration::from_secs(10)).expect("answered before the pipe closes");
    assert!(answer.contains("mfa_required"), "{answer}");
    drop(stdin);
    let _ = child.wait();
}

/// Processes started together on a new store (a `serve` and a `replay`, two replays)
/// all set it up and use it: the losers of the race to create its tables, switch its
/// journal or write its key file try again and find the work done.
#[test]
fn replays_started_together_on_a_new_store_all_succeed() {
    let fixture = common::fixtures().join("e2e/entra.json");
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_passportd"))
                    .args(["replay", "--json", fixture.to_str().unwrap()])
                    .current_dir(dir.path())
                    .env_remove("PASSPORTD_CONFIG")
                    .env("PASSPORTD_STORAGE__PATH", &db)
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut records = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            let v = json(&out);
            records += v["records"].as_u64().unwrap();
            assert_eq!(v["records"].as_u64().unwrap() + v["duplicates"].as_u64().unwrap(), 7, "round {round}: {v}");
        }
        assert_eq!(records, 7, "round {round}: each record stored once");
    }
}

/// A store path that cannot be a database is a configuration error (exit 2, naming
/// `storage.path`) in check-config, replay and serve alike, before anything is opened.
#[test]
fn an_unusable_store_path_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_db = dir.path().join("notes.txt");
    std::fs::write(&not_db, "these are my notes, not a database\n").unwrap();
    let cfg = dir.path().join("c.toml");
    for path in [dir.path().to_path_buf(), not_db.clone(), not_db.join("p.db")] {
        std::fs::write(&cfg, format!("[storage]\npath = \"{}\"\n", path.display())).unwrap();
        for args in [&["check-config"][..], &["replay", "-"][..], &["serve"][..]] {
            let mut argv = args.to_vec();
            argv.extend(["--config", cfg.to_str().unwrap()]);
            let out = passportd(dir.path(), &argv);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{argv:?} with {}: {stderr}", path.display());
            assert!(stderr.contains("storage.path"), "{stderr}");
        }
    }
    assert_eq!(std::fs::read_to_string(&not_db).unwrap(), "these are my notes, not a database\n");
    // Shorter than SQLite's header: named as what it is, not as a read that came up short.
    let tiny = dir.path().join("tiny.db");
    std::fs::write(&tiny, "hello").unwrap();
    std::fs::write(&cfg, format!("[storage]\npath = \"{}\"\n", tiny.display())).unwrap();
    let out = passportd(dir.path(), &["check-config", "--config", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not a SQLite database"), "{stderr}");
    // Set from the environment: the variable is named, not the file, which sets no path.
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:9477\"\n").unwrap();
    let out = passportd_env(
        dir.path(),
        &["check-config", "--config", cfg.to_str().unwrap()],
        &[("PASSPORTD_STORAGE__PATH", dir.path().as_os_str())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("environment variable PASSPORTD_STORAGE__PATH") && !stderr.contains("c.toml"), "{stderr}");
}

/// The warning about undecodable records names every reason with its count, not the
/// first record's reason for all of them.
#[test]
fn the_parse_error_warning_counts_each_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{\"bad json\n\xff\xfe\n{\"also\": bad}\n").unwrap();
    let out = passportd(dir.path(), &["replay", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("records=3 reasons=\"invalid_json=2,invalid_utf8=1\""), "{stderr}");
}

/// A Passport message whose failure text macOS redacted ("Token request failed:
/// <private>") is counted as redacted, as a wholly private message is, not as chatter
/// (`skipped` counts both kinds, as the summary's contract says).
#[test]
fn a_partly_private_failure_counts_as_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("p.ndjson");
    let line = |kind: &str, msg: &str| passport_ndjson("2026-03-04 08:15:02.123456-0800", kind, msg);
    let text = [
        line("Error", "Token request failed: <private>"),
        line("Default", "<private>"),
        line("Default", "Presenting Passport login window"),
    ]
    .join("\n");
    std::fs::write(&log, text + "\n").unwrap();
    let v = json(&passportd(dir.path(), &["replay", "--json", log.to_str().unwrap()]));
    assert_eq!(
        (v["redacted"].as_u64(), v["skipped"].as_u64(), v["records"].as_u64()),
        (Some(2), Some(3), Some(0)),
        "{v}"
    );
}

/// A Passport line past the sign-in gate (Error or Fault level, or a failure phrase) that
/// no catalogue entry places still counts, as an unclassified failure, in every export
/// style; a Default-level line with neither is chatter.
#[test]
fn a_passport_failure_no_entry_places_counts_as_unclassified() {
    let dir = tempfile::tempdir().unwrap();
    let ndjson = dir.path().join("p.ndjson");
    let fault = passport_ndjson(
        "2026-03-04 08:15:04.123456-0800",
        "Fault",
        "Unexpected response from identity provider (HTTP 418)",
    );
    let chatter = passport_ndjson("2026-03-04 08:15:05.123456-0800", "Default", "Refreshing the login window");
    std::fs::write(&ndjson, format!("{fault}\n{chatter}\n")).unwrap();
    let syslog = dir.path().join("p.log");
    std::fs::write(
        &syslog,
        "2026-03-04 08:15:02.123456-0800  mac-042 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] Authentication failed: the plug-in returned state 7.\n",
    )
    .unwrap();
    let v = json(&passportd(dir.path(), &["replay", "--json", ndjson.to_str().unwrap(), syslog.to_str().unwrap()]));
    assert_eq!((v["records"].as_u64(), v["skipped"].as_u64()), (Some(2), Some(1)), "{v}");
    assert_eq!(v["by_category"]["unclassified"].as_u64(), Some(2), "{v}");
}

#[test]
fn classify_cli_explains_the_kandji_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = passportd(
        dir.path(),
        &[
            "classify",
            "--json",
            "AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication to access 'x'.",
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["category"], "mfa_required");
    assert_eq!(lines[0]["code"], 50076);
    assert_eq!(lines[0]["doc_url"], "https://login.microsoftonline.com/error?code=50076");
    assert_eq!(lines[1]["category"], "client_misconfigured");
}

/// `classify` says when the daemon would not count a whole Passport line it is given
/// (a `<private>` message, Default-level chatter), and still what the text means.
#[test]
fn classify_marks_lines_the_daemon_does_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let private = r#"{"timestamp":"2026-03-04 08:15:02.123456-0800","messageType":"Error","eventMessage":"<private>","subsystem":"io.kandji.passport"}"#;
    // A Default-level line whose only clue is a catalogue pattern, not a failure phrase.
    let chatter = "2026-03-04 08:15:02.123 Df SecurityAgent[612:26b7] [io.kandji.passport:auth] Reminder: the password is expired.";
    let bare = "The credentials provided were invalid.";
    let out = passportd(dir.path(), &["classify", "--json", private, chatter, bare]);
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["not_counted"], "redacted");
    assert_eq!(
        (lines[1]["not_counted"].as_str(), lines[1]["category"].as_str()),
        (Some("chatter"), Some("password_expired"))
    );
    assert!(lines[2].get("not_counted").is_none(), "a bare message is no log line: {}", lines[2]);
}

/// Only a record's own result code 0 is a success: a token body whose `error_codes`
/// holds 0 (or a number too short to be a code) and a message naming `AADSTS00000` are
/// failures, decided by their text.
#[test]
fn a_code_zero_in_a_message_is_no_success() {
    let dir = tempfile::tempdir().unwrap();
    let body = |codes: &str| {
        passport_ndjson(
            "2026-03-04 08:15:02.123456-0800",
            "Error",
            &format!(
                r#"{{\"error\":\"invalid_grant\",\"error_description\":\"Error validating credentials due to invalid username or password.\",\"error_codes\":[{codes}]}}"#
            ),
        )
    };
    let out = passportd(dir.path(), &["classify", "--json", &body("0"), &body("123"), "AADSTS00000: Something failed"]);
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    for line in &lines[..2] {
        assert_eq!(
            (line["outcome"].as_str(), line["category"].as_str()),
            (Some("failure"), Some("invalid_credentials")),
            "{line}"
        );
    }
    assert_eq!(lines[2]["outcome"], "failure", "{}", lines[2]);
}

/// A closed stderr (`2>&1 | head`) loses log lines, nothing else: replay finishes and
/// exits 0. Reporting the failed write with eprintln! panicked the logging thread, and
/// at debug level replay hung.
#[cfg(unix)]
#[test]
fn a_closed_stderr_does_not_stop_a_replay() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["replay", "--json", concat!(env!("CARGO_MANIFEST_DIR"), "/examples/logs/entra/PT1H.json")])
        .current_dir(dir.path())
        .env("PASSPORTD_STORAGE__PATH", dir.path().join("p.db"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("replay with a closed stderr did not finish");
        }
        // Poll interval, bounded by the deadline above.
        std::thread::park_timeout(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let out = child.wait_with_output().unwrap();
    assert_eq!(json(&out)["records"], 34, "{}", String::from_utf8_lossy(&out.stdout));
}

/// A path that is no regular file but can be read (a pipe such as `<(zcat x.gz)`, a
/// device) is replayed as a stream, like stdin; a missing path or a folder is a usage error.
#[cfg(unix)]
#[test]
fn replay_reads_pipes_and_devices() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("entra.pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let blob = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/logs/entra/PT1H.json")).unwrap();
            std::fs::write(&fifo, blob).unwrap();
        })
    };
    let v = json(&passportd(dir.path(), &["replay", "--json", fifo.to_str().unwrap()]));
    writer.join().unwrap();
    assert_eq!(v["records"], 34, "{v}");
    let v = json(&passportd(dir.path(), &["replay", "--json", "/dev/null"]));
    assert_eq!(v["records"], 0, "{v}");
    let out = passportd(dir.path(), &["replay", dir.path().join("missing.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json: no such file"));
    // A loop of links is there, and says so.
    std::os::unix::fs::symlink(dir.path().join("b"), dir.path().join("a")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("b")).unwrap();
    let out = passportd(dir.path(), &["replay", dir.path().join("a").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is a symbolic link that leads nowhere") && stderr.lines().count() == 1, "{stderr}");
}

/// Lines on stdin are classified one by one: a byte that is not UTF-8 does not stop the
/// rest, and a reader that closes the output early (`| head -1`) ends it quietly.
#[cfg(unix)]
#[test]
fn classify_stdin_goes_past_a_bad_byte_and_stops_quietly_when_output_closes() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["classify", "--json"])
        .current_dir(dir.path())
        .env("PASSPORTD_STORAGE__PATH", dir.path().join("p.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"AADSTS50126\nbad \xff here\nAADSTS50076\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let categories: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["category"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(categories, ["invalid_credentials", "unclassified", "mfa_required"]);

    let mut child = Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["classify"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the output before anything is written, then give it many lines.
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all("AADSTS50126\n".repeat(10_000).as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[cfg(unix)]
#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = serve_config(dir.path(), "");
    let logs = dir.path().join("logs");
    let (child, addr) = spawn_serve(dir.path(), &cfg);
    // SIGHUP reloads the catalogue (counted in the metrics).
    assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
    wait_for_metric(
        &addr,
        "passportd_catalogue_reloads_total{result=\"success\"} 1",
        "SIGHUP did not reload the catalogue",
    );
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let status = wait_within(child, Duration::from_secs(5), "exits within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    // What it read before stopping is in the store, with its checkpoint.
    let out = passportd(dir.path(), &["replay", "--json", logs.join("a.json").to_str().unwrap()]);
    let v = json(&out);
    assert_eq!(v["records"].as_u64().unwrap() + v["duplicates"].as_u64().unwrap(), 7);
}

/// A SIGTERM while `serve` is still starting (opening and migrating its store) stops it
/// cleanly once it runs: exit 0, not killed by the signal's default action.
#[cfg(unix)]
#[test]
fn sigterm_while_starting_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = serve_config(dir.path(), "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    // Logged once the handlers are in, before the store is opened.
    while !line.contains("configuration loaded") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "exited early");
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let status = wait_within(child, Duration::from_secs(20), "exits");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// A SIGTERM that cannot drain within `shutdown_timeout` (another process holds the
/// store's lock while a batch waits to commit) is no clean stop: exit 1, at the deadline,
/// not after SQLite's own busy wait. What was not committed is read at the next start.
#[cfg(unix)]
#[test]
fn a_shutdown_that_cannot_drain_in_time_exits_one_at_its_deadline() {
    use sqlx::Connection;
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let cfg = serve_config(dir.path(), "");
    let db = dir.path().join("p.db");
    let (child, addr) = spawn_serve_with(
        dir.path(),
        &cfg,
        &[("PASSPORTD_STORAGE__PATH", db.as_os_str()), ("PASSPORTD_SERVER__SHUTDOWN_TIMEOUT", "2s".as_ref())],
    );
    wait_for_metric(&addr, "passportd_ingest_lines_total{source=\"entra\"} 7", "the fixture was not stored");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut lock = rt.block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut c).await.unwrap();
        c
    });
    let fixture = std::fs::read_to_string(common::fixtures().join("e2e/entra.json")).unwrap();
    let more = fixture.replace("\"id\":\"", "\"id\":\"again-").replace("\"id\": \"", "\"id\": \"again-");
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("logs/a.json"))
        .unwrap()
        .write_all(more.as_bytes())
        .unwrap();
    // Read and handed to the writer, which now waits for the lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http_get(&addr, "/metrics").lines().any(|l| {
        l.strip_prefix("passportd_tail_bytes_read_total{source=\"entra\"} ")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v > fixture.len() as u64)
    }) {
        assert!(Instant::now() < deadline, "the appended lines were not read");
        std::thread::park_timeout(Duration::from_millis(20));
    }
    let stopped_at = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = wait_within(child, Duration::from_secs(8), "exits soon after its 2 s deadline");
    let took = stopped_at.elapsed();
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    rt.block_on(async {
        sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
        lock.close().await.unwrap();
    });
    // The next run reads what was not committed, once.
    let out = passportd_env(
        dir.path(),
        &["replay", "--json", dir.path().join("logs/a.json").to_str().unwrap()],
        &[("PASSPORTD_STORAGE__PATH", db.as_os_str())],
    );
    let v = json(&out);
    assert_eq!(v["records"].as_u64().unwrap() + v["duplicates"].as_u64().unwrap(), 14, "{v}");
}

/// Waits for `child` to exit, at most `within` (a process that hangs fails the test with
/// `what` instead of hanging it).
fn wait_within(mut child: std::process::Child, within: Duration, what: &str) -> std::process::ExitStatus {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx.recv_timeout(within).expect(what).unwrap()
}

/// Starts `passportd serve --config cfg` in `dir` and waits until it says it is serving.
/// Returns the child and the address it listens on; its log goes on being read (and
/// dropped) in the background, so a chatty daemon never blocks on a full pipe.
#[cfg(unix)]
fn spawn_serve(dir: &Path, cfg: &Path) -> (std::process::Child, String) {
    spawn_serve_with(dir, cfg, &[])
}

/// [`spawn_serve`] with extra environment variables.
#[cfg(unix)]
fn spawn_serve_with(dir: &Path, cfg: &Path, env: &[(&str, &std::ffi::OsStr)]) -> (std::process::Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_passportd"));
    cmd.args(["serve", "--config", cfg.to_str().unwrap()]).current_dir(dir).env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "exited early");
        if line.contains("passportd serving") {
            break;
        }
        assert!(Instant::now() < deadline, "never started");
    }
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let addr = line.split("addr=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap();
    let addr = addr.trim_matches(|c: char| !c.is_ascii_digit() && c != '.' && c != ':').to_string();
    (child, addr)
}

/// Polls `/metrics` at `addr` until it holds `sample` (a whole exposition line prefix).
fn wait_for_metric(addr: &str, sample: &str, failure: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http_get(addr, "/metrics").lines().any(|l| l == sample) {
        assert!(Instant::now() < deadline, "{failure}");
        // Poll interval, bounded by the deadline above.
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// CPU time the process `pid` has used so far, in nanoseconds: the sum of its threads'
/// scheduler times (`/proc/PID/task/*/schedstat`, whose first field is time on a CPU).
#[cfg(target_os = "linux")]
fn cpu_ns(pid: u32) -> u128 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next().and_then(|ns| ns.parse::<u128>().ok()))
        .sum()
}

/// Writes a `serve` config for `dir`: an ephemeral port, text logs, and a source `entra`
/// watching `dir/logs/*.json`, which holds the end-to-end fixture; then `extra` TOML.
#[cfg(unix)]
fn serve_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::copy(common::fixtures().join("e2e/entra.json"), logs.join("a.json")).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[log]\nformat = \"text\"\n{extra}\
             [[sources]]\nname = \"entra\"\npaths = [\"{}/*.json\"]\n",
            logs.display()
        ),
    )
    .unwrap();
    cfg
}

/// A daemon with nothing to read sleeps: watching files and catalogue folders with
/// inotify must not wake on its own opens of them (rescan, reopen, wake again), and a
/// SIGHUP reloads the catalogue once, not on every event the reload's own read causes.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_daemon_sleeps_and_reloads_once_per_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.toml");
    std::fs::write(&ours, "[[entry]]\nid = \"aadsts-50076\"\nremediation = \"Our fix.\"\n").unwrap();
    let cfg = serve_config(dir.path(), &format!("[catalogue]\nextra_paths = [\"{}\"]\n", ours.display()));
    let (mut child, addr) = spawn_serve(dir.path(), &cfg);
    wait_for_metric(
        &addr,
        "passportd_signin_events_total{outcome=\"failure\",source=\"entra\"} 4",
        "the file was not read",
    );
    assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
    wait_for_metric(
        &addr,
        "passportd_catalogue_reloads_total{result=\"success\"} 1",
        "SIGHUP did not reload the catalogue",
    );

    // Nothing may happen for a while: watch the daemon's CPU time (nanoseconds, so a short
    // window tells) and fail as soon as it spends a tenth of the window.
    let window = Duration::from_millis(500);
    let (before, started) = (cpu_ns(child.id()), Instant::now());
    let mut used = 0;
    while started.elapsed() < window && used * 10 < window.as_nanos() {
        // Poll interval, bounded by the window above.
        std::thread::park_timeout(Duration::from_millis(20));
        used = cpu_ns(child.id()) - before;
    }
    let metrics = http_get(&addr, "/metrics");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert!(used * 10 < window.as_nanos(), "an idle daemon used {} ms of CPU within {window:?}", used / 1_000_000);
    assert!(
        metrics.lines().any(|l| l == "passportd_catalogue_reloads_total{result=\"success\"} 1"),
        "one SIGHUP, one reload: {}",
        metrics.lines().filter(|l| l.contains("reloads_total")).collect::<Vec<_>>().join("\n")
    );
}

/// SIGHUP reads the configuration's `[catalogue]` section again: a catalogue file and a
/// federated domain added there take effect without a restart; a configuration that no
/// longer loads is a counted reload error that keeps the catalogue in use.
#[cfg(target_os = "linux")]
#[test]
fn sighup_rereads_the_catalogue_section_of_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.toml");
    std::fs::write(
        &ours,
        "[[entry]]\nid = \"acme-5555555\"\ncodes = [5555555]\ncategory = \"account_locked\"\ntitle = \"ACME lock\"\nremediation = \"Call ACME.\"\n",
    )
    .unwrap();
    let cfg = serve_config(dir.path(), "");
    let (mut child, addr) = spawn_serve(dir.path(), &cfg);
    assert!(http_get(&addr, "/api/v1/catalogue/5555555").starts_with("HTTP/1.0 404"));
    let text = std::fs::read_to_string(&cfg).unwrap();
    let section =
        format!("[catalogue]\nextra_paths = [\"{}\"]\nfederated_domains = [\"fed.example\"]\n", ours.display());
    std::fs::write(&cfg, format!("{section}{text}")).unwrap();
    let hup = |child: &std::process::Child| {
        assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
    };
    hup(&child);
    wait_for_metric(&addr, "passportd_catalogue_reloads_total{result=\"success\"} 1", "SIGHUP did not reload");
    assert!(http_get(&addr, "/api/v1/catalogue/5555555").starts_with("HTTP/1.0 200"), "the added file is read");
    let verdict = Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args([
            "classify",
            "--config",
            cfg.to_str().unwrap(),
            "--json",
            "AADSTS50126: Error validating credentials. User: bob@fed.example",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&verdict.stdout).contains("federation_unsupported"), "the file itself is right");
    let classified = http_post(
        &addr,
        "/api/v1/classify",
        r#"{"message":"AADSTS50126: Error validating credentials. User: bob@fed.example"}"#,
    );
    assert!(classified.contains("federation_unsupported"), "the daemon took the new domain: {classified}");

    std::fs::write(&cfg, format!("[catalogue]\nfederated_domains = 5\n{text}")).unwrap();
    hup(&child);
    wait_for_metric(
        &addr,
        "passportd_catalogue_reloads_total{result=\"error\"} 1",
        "a bad configuration was not refused",
    );
    assert!(http_get(&addr, "/api/v1/catalogue/5555555").starts_with("HTTP/1.0 200"), "the catalogue in use is kept");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// A minimal HTTP/1.0 POST of a JSON body.
fn http_post(addr: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

/// A minimal HTTP/1.0 GET, enough for /metrics in a synchronous test.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

#[test]
fn replay_of_every_shape_at_once_counts_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = Vec::new();
    for folder in ["tests/fixtures/azure", "examples/logs/entra", "examples/logs/passport"] {
        let mut names: Vec<_> = std::fs::read_dir(root.join(folder))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n != "SOURCES.md"))
            .collect();
        names.sort();
        files.extend(names.iter().map(|p| p.display().to_string()));
    }
    let mut args = vec!["replay", "--json"];
    args.extend(files.iter().map(String::as_str));
    let v = json(&passportd(dir.path(), &args));
    // 16 decodable public sample records (7 of them repeat an id already seen), 45 example
    // sign-ins; the invalid Graph page and the 11 time-only fragments are parse errors;
    // Passport chatter, banners and <private> lines are skipped.
    assert_eq!(v["records"], 54, "{v}");
    assert_eq!(v["duplicates"], 7);
    assert_eq!(v["parse_errors"], 12);
    assert_eq!(v["parse_errors_by_reason"], serde_json::json!({"invalid_json": 1, "not_signin": 11}));
    assert_eq!(v["skipped"], 41);
    assert_eq!(v["redacted"], 2);
    assert_eq!(
        (v["successes"].as_u64(), v["failures"].as_u64(), v["interrupts"].as_u64()),
        (Some(19), Some(30), Some(5))
    );
    assert_eq!(v["by_code"]["50076"], 10);
    assert_eq!(v["by_category"]["federation_unsupported"], 1);
    let again = json(&passportd(dir.path(), &args));
    assert_eq!(again["records"], 0, "{again}");
    assert_eq!(again["duplicates"], 61);
}

/// A seeded corpus of `records` Azure diagnostic records at `dir/azure.json`.
fn azure_corpus(dir: &Path, records: u32, seed: u32) -> std::path::PathBuf {
    let corpus = dir.join("azure.json");
    let generated = Command::new(env!("CARGO_BIN_EXE_passportd-corpus"))
        .args(["azure", &records.to_string(), corpus.to_str().unwrap(), "--seed", &seed.to_string()])
        .output()
        .unwrap();
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    corpus
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The rows `sql` returns from the store at `db`, as another process sees it.
fn store_rows<T>(db: &Path, sql: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    runtime().block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    })
}

/// Records (events and successes) committed to the store at `db`, as another process sees
/// them; 0 while it does not exist yet.
async fn stored_records(db: &Path) -> i64 {
    let Ok(pool) = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await else {
        return 0;
    };
    let n: Result<i64, _> =
        sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM successes)")
            .fetch_one(&pool)
            .await;
    pool.close().await;
    n.unwrap_or(0)
}

/// Every incident of the store at `db`, as text, in a stable order that does not depend
/// on ids (detector incidents opened by one batch take ids in keyed-hash order).
fn incident_dump(db: &Path) -> Vec<String> {
    runtime().block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        // One text per incident: every column that the batching could change.
        let mut dump: Vec<String> = sqlx::query_scalar(
            "SELECT concat_ws('|', kind, category, code, status, first_seen, last_seen, event_count,
                    users_affected, sources, reopened_count, resolved_at, evidence) FROM incidents",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        dump.sort();
        dump
    })
}

/// Parse errors are logged at most once a minute per file, but a replay accounts for all
/// of them on stderr before its summary: what the rate limit held back is logged when
/// the file ends, naming the first such line.
#[test]
fn a_replay_names_the_parse_errors_the_rate_limit_held_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("errs.json");
    let mut text = String::from("not json\n");
    for i in 0..12_000 {
        let record = serde_json::json!({"time": "2026-03-04T16:00:00Z", "operationName": "Sign-in activity",
            "category": "SignInLogs", "resultType": "0", "properties": {"id": format!("ok-{i}"), "padding": "x".repeat(200)}});
        text.push_str(&format!("{record}\n"));
    }
    text.push_str("{bad\n{bad again\n");
    std::fs::write(&file, text).unwrap();
    let out = passportd(dir.path(), &["replay", "--json", file.to_str().unwrap()]);
    let v = json(&out);
    assert_eq!(v["parse_errors"], 3, "{v}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line=1 "), "{stderr}");
    assert!(stderr.contains("line=12002 ") && stderr.contains("records=2"), "{stderr}");
}

/// Records without an id are keyed by their file and position. The same file named twice
/// in one replay (overlapping globs), through another path, or a copy of it, counts them
/// once, as a second replay does.
#[test]
fn a_file_named_twice_in_one_replay_counts_its_records_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("noid.json");
    let mut lines = String::new();
    for i in 0..6 {
        let record = serde_json::json!({
            "time": format!("2026-03-04T16:1{i}:00Z"), "operationName": "Sign-in activity",
            "category": "SignInLogs", "resultType": "50076", "correlationId": format!("c0ffee00-0000-4000-8000-00000000010{i}"),
            "properties": {"userPrincipalName": format!("u{i}@contoso.example"), "status": {"errorCode": 50076}}
        });
        lines.push_str(&format!("{record}\n"));
    }
    std::fs::write(&file, lines).unwrap();
    let copy = dir.path().join("copy.json");
    std::fs::copy(&file, &copy).unwrap();
    let dotted = dir.path().join(".").join("noid.json");
    let (file, copy, dotted) = (file.to_str().unwrap(), copy.to_str().unwrap(), dotted.to_str().unwrap());
    let v = json(&passportd(dir.path(), &["replay", "--json", file, dotted, copy, file]));
    assert_eq!((v["records"].as_u64(), v["duplicates"].as_u64()), (Some(6), Some(18)), "{v}");
    let again = json(&passportd(dir.path(), &["replay", "--json", copy]));
    assert_eq!((again["records"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(6)), "{again}");
}

/// A federated user's failed sign-in, Passport's line first (as it arrives live) and its
/// Entra record in a later batch of the same replay: one `federation_unsupported`
/// incident, and the summary counts one incident opened, not the wrong-password one the
/// line opened until its record came.
#[test]
fn a_federated_failure_seen_by_passport_first_is_one_federation_incident() {
    let correlation = "0f5e1d2c-aaaa-4bbb-8ccc-000000000126";
    // A Mac's log may write the GUID in capitals; Entra writes it in lower case.
    for on_the_mac in [correlation.to_string(), correlation.to_uppercase()] {
        one_federated_failure_seen_by_passport_first(correlation, &on_the_mac);
    }
}

fn one_federated_failure_seen_by_passport_first(correlation: &str, on_the_mac: &str) {
    let dir = tempfile::tempdir().unwrap();
    let passport = dir.path().join("passport.ndjson");
    let message = format!(
        r#"Token request failed: {{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS50126: Error validating credentials due to invalid username or password.\\r\\nTrace ID: 5b9e1d2c-3f4a-4b6c-8d7e-9f0a1b2c3d4e\\r\\nCorrelation ID: {on_the_mac}\\r\\nTimestamp: 2026-03-04 16:18:04Z\",\"error_codes\":[50126],\"correlation_id\":\"{on_the_mac}\"}}"#
    );
    std::fs::write(&passport, passport_ndjson("2026-03-04 08:18:04.501710-0800", "Error", &message) + "\n").unwrap();
    let entra = dir.path().join("entra.json");
    let record = serde_json::json!({
        "time": "2026-03-04T16:18:05Z", "operationName": "Sign-in activity", "category": "SignInLogs",
        "tenantId": "9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "resultType": "50126",
        "resultDescription": "Error validating credentials due to invalid username or password.",
        "correlationId": correlation,
        "properties": {"id": "fed00000-0000-4000-8000-000000000126", "createdDateTime": "2026-03-04T16:18:05Z",
            "userPrincipalName": "fed.user@fabrikam.example", "appDisplayName": "Kandji Passport",
            "appId": "0d6f7c1e-2a3b-4c5d-9e8f-7a6b5c4d3e2f", "correlationId": correlation,
            "tokenIssuerType": "ADFederationServices", "authenticationProtocol": "ropc",
            "status": {"errorCode": 50126}}
    });
    std::fs::write(&entra, format!("{record}\n")).unwrap();
    let one: &std::ffi::OsStr = "1".as_ref();
    let v = json(&passportd_env(
        dir.path(),
        &["replay", "--json", passport.to_str().unwrap(), entra.to_str().unwrap()],
        &[("PASSPORTD_STORAGE__REPLAY_BATCH_RECORDS", one)],
    ));
    assert_eq!(v["failures"], 2, "{on_the_mac}: {v}");
    assert_eq!(v["by_category"]["federation_unsupported"], 1, "each record's own verdict: {v}");
    assert_eq!(v["incidents_opened"], 1, "{v}");
    let dump = incident_dump(&dir.path().join("passportd.db"));
    assert_eq!(dump.len(), 1, "{dump:?}");
    assert!(dump[0].starts_with("failure|federation_unsupported|50126|open|"), "{dump:?}");
    assert!(dump[0].contains("|1|1|"), "one failure, one user: {dump:?}");
}

/// A file among a configured source's paths is that source's: replayed without
/// `--source` after the source read it, its records with no id (keyed by their place in
/// the file) are found stored, not counted again under another source name. Files of a
/// source and files of none are not mixed in one replay.
#[test]
fn replaying_a_file_of_a_configured_source_without_naming_it_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let file = logs.join("PT1H.json");
    let records: String = (0..3)
        .map(|i| {
            serde_json::json!({
                "time": format!("2026-03-04T16:2{i}:00Z"), "category": "SignInLogs", "resultType": "50126",
                "properties": {"userPrincipalName": format!("u{i}@contoso.example"), "status": {"errorCode": 50126}}
            })
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&file, records).unwrap();
    let config = dir.path().join("passportd.toml");
    std::fs::write(&config, format!("[[sources]]\nname = \"entra\"\npaths = [\"{}/*.json\"]\n", logs.display()))
        .unwrap();
    let replay = |args: &[&str]| {
        let mut all = vec!["replay", "--config", config.to_str().unwrap(), "--json"];
        all.extend_from_slice(args);
        passportd_env(dir.path(), &all, &[])
    };
    let first = json(&replay(&["--source", "entra", file.to_str().unwrap()]));
    assert_eq!(first["failures"], 3, "{first}");
    // As the tailer names it, and by any other path to the same file.
    #[cfg(unix)]
    std::os::unix::fs::symlink(&logs, dir.path().join("link")).unwrap();
    for name in
        ["logs/PT1H.json", "./logs/PT1H.json", "logs/../logs/PT1H.json", file.to_str().unwrap(), "link/PT1H.json"]
    {
        if !dir.path().join(name).exists() {
            continue;
        }
        let again = json(&replay(&[name]));
        assert_eq!(again["failures"], 0, "{name}: {again}");
    }
    // Standard input is no source's file, even from a folder a source's pattern covers.
    let everything = dir.path().join("everything.toml");
    std::fs::write(
        &everything,
        format!("[[sources]]\nname = \"macs\"\nformat = \"passport\"\npaths = [\"{}/**\"]\n", dir.path().display()),
    )
    .unwrap();
    let mut stdin_replay = Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["replay", "--config", everything.to_str().unwrap(), "--json", "-"])
        .current_dir(dir.path())
        .env_remove("PASSPORTD_CONFIG")
        .env("PASSPORTD_STORAGE__PATH", dir.path().join("stdin.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let records = std::fs::read(&file).unwrap();
    std::io::Write::write_all(&mut stdin_replay.stdin.take().unwrap(), &records).unwrap();
    let piped = json(&stdin_replay.wait_with_output().unwrap());
    assert_eq!(piped["failures"], 3, "read as Entra records under the name replay: {piped}");
    let elsewhere = dir.path().join("other.json");
    std::fs::copy(&file, &elsewhere).unwrap();
    let mixed = replay(&[file.to_str().unwrap(), elsewhere.to_str().unwrap()]);
    assert_eq!(mixed.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&mixed.stderr);
    assert!(stderr.contains("other.json") && stderr.contains("--source"), "{stderr}");
}

#[test]
fn the_replay_summary_does_not_depend_on_the_batch_size() {
    // Replay keeps at most two batches of events between the reader and the end of their
    // commit: with tiny batches the reader waits on nearly every chunk (a chunk holds
    // hundreds of records, far more than the whole budget). Nothing may be lost, repeated
    // or stuck. Batches share a transaction until it holds replay_commit_records: what
    // each decides must not depend on where the commits fall.
    let dir = tempfile::tempdir().unwrap();
    let corpus = azure_corpus(dir.path(), 1500, 5);
    let replay = |store: &str, batch: &str, commit: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_passportd"))
            .args(["replay", "--json", corpus.to_str().unwrap()])
            .current_dir(dir.path())
            .env_remove("PASSPORTD_CONFIG")
            .env("PASSPORTD_STORAGE__PATH", dir.path().join(store))
            .env("PASSPORTD_STORAGE__REPLAY_BATCH_RECORDS", batch)
            .env("PASSPORTD_STORAGE__REPLAY_COMMIT_RECORDS", commit)
            .output()
            .unwrap();
        (json(&out), incident_dump(&dir.path().join(store)))
    };
    let (whole, incidents) = replay("default.db", "8000", "1000000");
    assert_eq!(whole["records"], 1500, "{whole}");
    assert!(whole["failures"].as_u64().unwrap() > 100, "{whole}");
    assert!(incidents.len() > 5, "{incidents:?}");
    for (batch, commit) in [("1", "1"), ("7", "7"), ("7", "50"), ("400", "400"), ("400", "1000"), ("8000", "8000")] {
        let store = format!("batch-{batch}-{commit}.db");
        let (small, small_incidents) = replay(&store, batch, commit);
        assert_eq!(small, whole, "replay_batch_records = {batch}, replay_commit_records = {commit}");
        assert_eq!(small_incidents, incidents, "replay_batch_records = {batch}, replay_commit_records = {commit}");
    }
}

/// `passportd replay --json -` run in `dir` into the store `db`, with stdin, stdout and
/// stderr piped.
fn replay_from_stdin(dir: &Path, db: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["replay", "--json", "-"])
        .current_dir(dir)
        .env_remove("PASSPORTD_CONFIG")
        .env("PASSPORTD_STORAGE__PATH", db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_replay_whose_input_pauses_commits_what_it_has() {
    // Batches share a transaction, but an open transaction hides them from every other
    // reader of the store: when stdin goes quiet, what was read must become visible
    // without waiting for the end of the input.
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("paused.db");
    // More than the first block (256 KiB) that stdin replay reads (and keys the stream by)
    // before it decodes anything.
    let input = std::fs::read(azure_corpus(dir.path(), 600, 9)).unwrap();
    assert!(input.len() > 1 << 20, "{} bytes", input.len());
    let mut child = replay_from_stdin(dir.path(), &db);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&input).unwrap();
    stdin.flush().unwrap();
    let rt = runtime();
    rt.block_on(common::poll_until(
        "the paused replay to commit what it has read",
        Duration::from_secs(30),
        || async { (stored_records(&db).await > 0).then_some(()) },
    ));
    assert!(child.try_wait().unwrap().is_none(), "the replay must still be waiting for input");
    drop(stdin);
    let done = json(&child.wait_with_output().unwrap());
    assert_eq!(done["records"], 600, "{done}");
    assert_eq!(rt.block_on(stored_records(&db)), 600);
}

/// SIGINT or SIGTERM stops a replay: what it read before the signal is committed and
/// summarized on stdout, nothing read after it is stored, and the exit code (130) says it
/// was cut short.
#[test]
fn a_replay_stopped_by_sigint_commits_and_summarizes_what_it_read() {
    for signal in ["-INT", "-TERM"] {
        replay_stopped_by(signal);
    }
}

fn replay_stopped_by(signal: &str) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stopped.db");
    let input = std::fs::read(azure_corpus(dir.path(), 600, 9)).unwrap();
    let more = std::fs::read(azure_corpus(dir.path(), 50, 10)).unwrap();
    let mut child = replay_from_stdin(dir.path(), &db);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&input).unwrap();
    stdin.flush().unwrap();
    let rt = runtime();
    rt.block_on(common::poll_until("the paused replay to commit all it read", Duration::from_secs(30), || async {
        (stored_records(&db).await == 600).then_some(())
    }));
    // The log says when the signal has been taken (stderr, read on a thread of its own).
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let reading = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.iter().any(|l: &String| l.contains("stopping")) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no stopping message: {log:?}");
        if let Ok(line) = lines.recv_timeout(left) {
            log.push(line);
        }
    }
    // Whatever comes after the signal is not read into the store.
    let _ = stdin.write_all(&more);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    reading.join().unwrap();
    log.extend(lines.try_iter());
    assert_eq!(out.status.code(), Some(130), "{signal}: stderr: {log:?}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the summary on stdout");
    assert_eq!(summary["records"], 600, "{summary}");
    assert_eq!(rt.block_on(stored_records(&db)), 600);
    assert!(log.iter().any(|l| l.contains("interrupted")), "{log:?}");
}

#[test]
fn a_replay_killed_with_its_transaction_open_loses_and_repeats_nothing() {
    // Replay commits many batches at once: a kill loses the open transaction, file
    // positions included, and the next replay must store exactly what is missing, with
    // the incidents of one uninterrupted run.
    let dir = tempfile::tempdir().unwrap();
    let corpus = azure_corpus(dir.path(), 20_000, 11);
    let run = |db: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_passportd"));
        cmd.args(["replay", "--json", corpus.to_str().unwrap()])
            .current_dir(dir.path())
            .env_remove("PASSPORTD_CONFIG")
            .env("PASSPORTD_STORAGE__PATH", dir.path().join(db))
            .env("PASSPORTD_STORAGE__REPLAY_BATCH_RECORDS", "500")
            .env("PASSPORTD_STORAGE__REPLAY_COMMIT_RECORDS", "4000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    let whole = json(&run("whole.db").output().unwrap());
    assert_eq!(whole["records"], 20_000, "{whole}");

    let killed = dir.path().join("killed.db");
    let mut child = run("killed.db").spawn().unwrap();
    let rt = runtime();
    let committed = rt.block_on(common::poll_until("a first commit", Duration::from_secs(60), || async {
        let n = stored_records(&killed).await;
        (n > 0).then_some(n)
    }));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let before = rt.block_on(stored_records(&killed));
    assert!(!status.success() && before < 20_000, "killed after {committed} records: {status}, {before} stored");

    let rest = json(&run("killed.db").output().unwrap());
    assert_eq!(rest["records"].as_i64().unwrap() + rest["duplicates"].as_i64().unwrap(), 20_000, "{rest}");
    assert_eq!(rest["duplicates"].as_i64(), Some(before), "{rest}");
    assert_eq!(rt.block_on(stored_records(&killed)), rt.block_on(stored_records(&dir.path().join("whole.db"))));
    assert_eq!(incident_dump(&killed), incident_dump(&dir.path().join("whole.db")));
}

#[test]
fn empty_files_and_stdin_replay() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "").unwrap();
    let v = json(&passportd(dir.path(), &["replay", "--json", empty.to_str().unwrap()]));
    assert_eq!((v["records"].as_u64(), v["parse_errors"].as_u64()), (Some(0), Some(0)), "{v}");

    // stdin: the same bytes twice count once (lines keyed by a hash of the stream's start).
    let input = std::fs::read(common::fixtures().join("e2e/entra.json")).unwrap();
    let run = || {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_passportd"))
            .args(["replay", "--json", "-"])
            .current_dir(dir.path())
            .env_remove("PASSPORTD_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        json(&child.wait_with_output().unwrap())
    };
    let first = run();
    assert_eq!(first["records"], 7, "{first}");
    let second = run();
    assert_eq!((second["records"].as_u64(), second["duplicates"].as_u64()), (Some(0), Some(7)), "{second}");
}

/// A Passport message that itself starts with brackets (`[AADSTS50053] …`, `[Auth] …`)
/// keeps them in the syslog style: its code is not lost, and the syslog and ndjson copies
/// of one entry read alike, so they count once.
#[test]
fn a_message_starting_with_brackets_keeps_them_and_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let head = |second: u32| {
        format!("2026-03-04 16:00:{second:02}.000001-0800  localhost SecurityAgent[612]: (KandjiPassport)")
    };
    let syslog = format!(
        "{} [AADSTS50053] Account locked for ann@contoso.example\n{} [io.kandji.passport:auth] [AADSTS50053] Account locked for ann@contoso.example\n",
        head(0),
        head(1)
    );
    let p = dir.path().join("locked.log");
    std::fs::write(&p, syslog).unwrap();
    let v = json(&passportd(dir.path(), &["replay", "--json", p.to_str().unwrap()]));
    assert_eq!((v["failures"].as_u64(), v["skipped"].as_u64()), (Some(2), Some(0)), "{v}");
    assert_eq!(v["by_code"]["50053"].as_u64(), Some(2), "{v}");

    // The same entry in both styles, its subsystem empty (so no `[subsystem:category]`).
    let message =
        "[Auth] Token request failed: AADSTS50126: Error validating credentials due to invalid username or password.";
    let ndjson = format!(
        r#"{{"timestamp":"2026-03-04 15:00:00.123456-0800","messageType":"Error","subsystem":"","category":"","senderImagePath":"/Library/Security/SecurityAgentPlugins/KandjiPassport.bundle/Contents/MacOS/KandjiPassport","processImagePath":"/System/Library/Frameworks/Security.framework/Versions/A/MachServices/SecurityAgent.bundle/Contents/MacOS/SecurityAgent","processID":612,"eventMessage":"{message}"}}"#
    ) + "\n";
    let syslog = format!("2026-03-04 15:00:00.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) {message}\n");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("auth.ndjson"), dir.path().join("auth.log"));
    std::fs::write(&a, ndjson).unwrap();
    std::fs::write(&b, syslog).unwrap();
    let v = json(&passportd(dir.path(), &["replay", "--json", a.to_str().unwrap(), b.to_str().unwrap()]));
    assert_eq!((v["failures"].as_u64(), v["duplicates"].as_u64()), (Some(1), Some(1)), "{v}");
}

/// Fleet exports merged into one file: the same bare message in the same millisecond on
/// several Macs (each its own SecurityAgent) is one entry per Mac; the same Mac's entry in
/// another export style (its process id printed by every style) is still one.
#[test]
fn one_message_on_several_macs_in_one_millisecond_counts_per_mac() {
    let dir = tempfile::tempdir().unwrap();
    let line = |host: &str, pid: u32, micros: &str| {
        format!(
            "2026-03-04 00:19:42.068{micros}-0800  {host} SecurityAgent[{pid}]: (KandjiPassport) [io.kandji.passport:auth] Token request failed: AADSTS50076: you must use multi-factor authentication\n"
        )
    };
    let fleet = line("mac-lab-07", 612, "157") + &line("mac-lab-08", 598, "157") + &line("mac-lab-09", 640, "999");
    let p = dir.path().join("fleet.log");
    std::fs::write(&p, fleet).unwrap();
    let v = json(&passportd(dir.path(), &["replay", "--json", p.to_str().unwrap()]));
    assert_eq!((v["failures"].as_u64(), v["duplicates"].as_u64()), (Some(3), Some(0)), "{v}");
    // mac-lab-08's entry as its own `log show` default-style and ndjson exports.
    let message = "Token request failed: AADSTS50076: you must use multi-factor authentication";
    let default_style = format!(
        "2026-03-04 00:19:42.068157-0800 0x26b7     Error       0x0                  598    0    SecurityAgent: (KandjiPassport) [io.kandji.passport:auth] {message}\n"
    );
    let ndjson = passport_ndjson("2026-03-04 00:19:42.068157-0800", "Error", message).replace("612", "598") + "\n";
    let (a, b) = (dir.path().join("mac-lab-08.log"), dir.path().join("mac-lab-08.ndjson"));
    std::fs::write(&a, default_style).unwrap();
    std::fs::write(&b, ndjson).unwrap();
    let v = json(&passportd(dir.path(), &["replay", "--json", a.to_str().unwrap(), b.to_str().unwrap()]));
    assert_eq!((v["records"].as_u64(), v["duplicates"].as_u64()), (Some(0), Some(2)), "{v}");
}

/// A failure message with no code in it (Entra's text without its `AADSTS…:` prefix) is
/// matched by the catalogue's patterns: at Error level in ndjson, and in the syslog style,
/// which prints no level, alike. With a level that is not an error (compact `I`), it is not.
#[test]
fn a_code_less_failure_text_counts_in_syslog_as_at_error_level_in_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let texts = [
        "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access 'Kandji Passport'.",
        "Your account is locked. You've tried to sign in too many times with an incorrect user ID or password.",
        "The password is expired.",
    ];
    let syslog: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("2026-03-04 00:19:4{i}.068157-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] {t}\n"))
        .collect();
    let ndjson: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| passport_ndjson(&format!("2026-03-04 00:19:4{i}.068157-0800"), "Error", t) + "\n")
        .collect();
    let compact_info =
        format!("2026-03-04 08:19:40.068 I  SecurityAgent[612:26b7] [io.kandji.passport:auth] {}\n", texts[2]);
    let mut by_style = Vec::new();
    for (name, text) in [("lv.log", &syslog), ("lv.ndjson", &ndjson), ("info.log", &compact_info)] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let store = dir.path().join(format!("{name}.db"));
        let v = json(&passportd_env(
            dir.path(),
            &["replay", "--json", p.to_str().unwrap()],
            &[("PASSPORTD_STORAGE__PATH", store.as_os_str())],
        ));
        by_style.push((v["failures"].as_u64(), v["by_category"].clone()));
    }
    assert_eq!(by_style[0], by_style[1], "syslog vs ndjson");
    assert_eq!(by_style[0].0, Some(3), "{by_style:?}");
    assert_eq!(by_style[0].1["mfa_required"], 1, "{by_style:?}");
    assert_eq!(by_style[2].0, Some(0), "an Info-level line is not a failure by its text: {by_style:?}");
}

/// Passport's Okta and Google Secure LDAP failures carry no AADSTS code, and a syslog-style
/// export has no level column: such a line still counts, by its failure phrase, and the
/// catalogue's entries for those providers classify it, as for the same line at Error level
/// in an ndjson export. Chatter stays chatter.
#[test]
fn okta_and_google_ldap_failures_count_in_every_export_style() {
    let dir = tempfile::tempdir().unwrap();
    let head =
        "2026-03-04 08:15:02.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth]";
    let messages = [
        "LDAP bind failed: result code 49 (invalidCredentials)",
        "Failed to authenticate user alice@contoso.example: The credentials provided were invalid.",
        "ldap_bind: Invalid credentials (49)",
        "Authorization failed: Google LDAP error code 50 insufficientAccessRights",
        "Loaded configuration profile io.kandji.passport (version 14)",
    ];
    let syslog = dir.path().join("passport.log");
    let text: String = messages.iter().enumerate().map(|(i, m)| format!("{head} {m} #{i}\n")).collect();
    std::fs::write(&syslog, text).unwrap();
    let v = json(&passportd(dir.path(), &["replay", "--json", "--format", "passport", syslog.to_str().unwrap()]));
    assert_eq!((v["failures"].as_u64(), v["skipped"].as_u64()), (Some(4), Some(1)), "{v}");
    assert_eq!(v["by_category"]["invalid_credentials"], 3, "{v}");
    assert_eq!(v["by_category"]["consent_required"], 1, "{v}");
}

/// A path pattern written from the working folder with a leading `./` matches what the
/// same pattern without it does.
#[test]
fn a_pattern_starting_with_dot_slash_matches_its_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::copy(common::fixtures().join("e2e/entra.json"), dir.path().join("logs/a.json")).unwrap();
    for pattern in ["logs/*.json", "./logs/*.json", "././logs/*.json"] {
        let config = dir.path().join("c.toml");
        std::fs::write(&config, format!("[[sources]]\nname = \"entra\"\npaths = [\"{pattern}\"]\n")).unwrap();
        let out = passportd_env(dir.path(), &["check-config", "--config", config.to_str().unwrap()], &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("1 file(s) match now"), "{pattern}: {text}");
    }
}
