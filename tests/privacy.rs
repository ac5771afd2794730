//! In `hash` and `drop` modes the raw user principal names and IP addresses appear
//! nowhere in the database files, while exact user counts still work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{settings, TestServer};

fn db_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        all.extend(std::fs::read(entry.path()).unwrap_or_default());
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_and_drop_keep_personal_data_out_of_the_database() {
    for (users, ips) in [("hash", "drop"), ("drop", "hash"), ("hash", "truncate")] {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(settings(&format!(
            "[storage]\npath = \"{}\"\n[privacy]\nusers = \"{users}\"\nips = \"{ips}\"\nhash_key = \"0123456789abcdef0123\"\n",
            dir.path().join("p.db").display()
        )))
        .await;
        let mut body = std::fs::read_to_string(common::fixtures().join("e2e/entra.json")).unwrap();
        // A message that names the user, as AADSTS50034 descriptions do, and the client's
        // address.
        body.push_str(
            &serde_json::json!({
                "time": "2026-03-04T16:30:00Z",
                "resultType": "50034",
                "resultDescription": "AADSTS50034: The user account eve@contoso.example does not exist in the directory (sign-in from 192.0.2.99).",
                "callerIpAddress": "192.0.2.99",
                "properties": {"id": "p-50034", "userPrincipalName": "eve@contoso.example",
                               "ipAddress": "192.0.2.99", "status": {"errorCode": 50034},
                               // A device named by an address, as a host column can be.
                               "deviceDetail": {"displayName": "zoe@contoso.example at 192.0.2.77"}}
            })
            .to_string(),
        );
        body.push('\n');
        let r = server.client.post(format!("{}/api/v1/ingest/http", server.base)).body(body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let incidents = server.get_json("/api/v1/incidents?category=mfa_required").await;
        assert_eq!(incidents["items"][0]["users_affected"], 2, "exact counts survive {users}/{ips}");
        let events = server.get_json("/api/v1/events?code=50034").await;
        let msg = events["items"][0]["message"].as_str().unwrap().to_string();
        assert!(!msg.contains("eve@"), "{msg}");
        let device = events["items"][0]["device"].as_str().unwrap_or_default().to_string();
        assert!(device.contains(" at "), "the rest of the name is kept: {device}");
        assert!(!device.contains("zoe@") && !device.contains("192.0.2.77"), "{device}");
        server.stop().await;
        let bytes = db_bytes(dir.path());
        for raw in [
            "alice@contoso.example",
            "bob@contoso.example",
            "eve@contoso.example",
            "192.0.2.10",
            "192.0.2.99",
            "zoe@contoso.example",
            "192.0.2.77",
        ] {
            assert!(!contains(&bytes, raw), "{raw} found in the database with users={users} ips={ips}");
        }
    }
}

/// A file's checkpoint identifies it by digests of its first bytes, not the bytes: a
/// replayed file's user names and addresses are not kept there either.
#[test]
fn checkpoints_keep_no_bytes_of_the_files_they_identify() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let log = dir.path().join("entra.json");
    std::fs::copy(common::fixtures().join("e2e/entra.json"), &log).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_passportd"))
        .args(["replay", "--json", log.to_str().unwrap()])
        .current_dir(dir.path())
        .env("PASSPORTD_STORAGE__PATH", store.join("p.db"))
        .env("PASSPORTD_PRIVACY__USERS", "drop")
        .env("PASSPORTD_PRIVACY__IPS", "drop")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("alice@contoso.example") && text.contains("192.0.2.10"), "the fixture names them");
    let bytes = db_bytes(&store);
    for raw in ["alice@contoso.example", "192.0.2.10"] {
        assert!(!contains(&bytes, raw), "{raw} found in the database");
    }
}

/// A store written before heads were digested keeps raw file heads in its checkpoints:
/// opening it replaces them with their prints, and the files are still recognised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_an_older_store_digests_the_heads_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let head = b"{\"time\":\"2026-03-04T16:15:02Z\",\"properties\":{\"userPrincipalName\":\"zed@contoso.example\"}}\n";
    let store = passportd::store::Store::open(&path).await.unwrap();
    store.close().await;
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::query(
            "INSERT INTO checkpoints (file_key, source, path, dev, ino, fingerprint, file_offset, state, updated_at)
             VALUES ('f1', 'entra', '/x.json', 1, 2, ?, 10, '', 0)",
        )
        .bind(&head[..])
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    assert!(contains(&db_bytes(dir.path()), "zed@contoso.example"), "the old form holds the bytes");
    let store = passportd::store::Store::open(&path).await.unwrap();
    let checkpoints = store.checkpoints("entra").await.unwrap();
    assert!(checkpoints[0].fingerprint.continued_by(head), "still recognises the file");
    store.close().await;
    // The last connection's close checkpoints the WAL into the file on SQLite's own thread,
    // which may finish a moment after `close` returns: poll, with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while contains(&db_bytes(dir.path()), "zed@contoso.example") && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(!contains(&db_bytes(dir.path()), "zed@contoso.example"), "digested");
}

/// The secret that keys the user and IP hashes lives in the store's key file (owner-only),
/// not in the database: with it, a copy of the database could check guessed user names
/// and recover IP addresses from their hashes. A store that kept it in the database moves
/// it out, keeping its value (and so the hashes already stored), and zeroes the old bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_that_keys_the_hashes_is_kept_out_of_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = passportd::store::Store::open(&path).await.unwrap();
    let secret = String::from_utf8(store.secret().await.unwrap()).unwrap();
    assert_eq!(store.secret().await.unwrap(), secret.as_bytes(), "the same secret every time");
    let key_file = store.key_file();
    store.close().await;
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), secret);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let database = |dir: &std::path::Path| -> Vec<u8> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| !e.path().to_string_lossy().ends_with(".key"))
            .flat_map(|e| std::fs::read(e.path()).unwrap_or_default())
            .collect()
    };
    assert!(!contains(&database(dir.path()), &secret), "the database holds no secret");

    // A store of an older version: its secret in the database, no key file.
    std::fs::remove_file(&key_file).unwrap();
    let legacy = "0123456789abcdef".repeat(4);
    keep_secret_in_database(&path, &legacy).await;
    assert!(contains(&database(dir.path()), &legacy));
    let store = passportd::store::Store::open(&path).await.unwrap();
    assert_eq!(store.secret().await.unwrap(), legacy.as_bytes(), "its value is kept");
    store.close().await;
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), legacy);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while contains(&database(dir.path()), &legacy) && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(!contains(&database(dir.path()), &legacy), "moved out, its bytes zeroed");
}

/// Processes starting together on a store without a key file agree on one secret (the
/// first written wins, the others read it); and a database that still holds its own
/// secret (an older backup restored beside a newer key file) keeps it: its hashes were
/// made with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_store_has_one_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = passportd::store::Store::open(&path).await.unwrap();
    let key_file = store.key_file();
    store.close().await;
    for _ in 0..5 {
        let _ = std::fs::remove_file(&key_file);
        let mut handles = Vec::new();
        for _ in 0..6 {
            let path = path.clone();
            handles.push(tokio::spawn(async move {
                let store = passportd::store::Store::open(&path).await.unwrap();
                let secret = store.secret().await.unwrap();
                store.close().await;
                secret
            }));
        }
        let mut secrets = Vec::new();
        for h in handles {
            secrets.push(h.await.unwrap());
        }
        secrets.dedup();
        assert_eq!(secrets.len(), 1, "one secret");
        assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim().as_bytes(), secrets[0].as_slice());
    }
    let legacy = "fedcba9876543210".repeat(4);
    keep_secret_in_database(&path, &legacy).await;
    let store = passportd::store::Store::open(&path).await.unwrap();
    assert_eq!(store.secret().await.unwrap(), legacy.as_bytes(), "the database's own secret wins");
    store.close().await;
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), legacy);
}

/// Writes `secret` into the database's `meta` table, as versions before the key file kept it.
async fn keep_secret_in_database(path: &std::path::Path, secret: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("INSERT INTO meta (key, value) VALUES ('secret', ?)").bind(secret).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

/// A key file that is empty or not one this program wrote is an error naming it, never
/// replaced: another secret would silently change every hash the store holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_key_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = passportd::store::Store::open(&dir.path().join("p.db")).await.unwrap();
    for damaged in ["", "not a key\n", &"A".repeat(64)] {
        std::fs::write(store.key_file(), damaged).unwrap();
        let err = store.secret().await.unwrap_err().to_string();
        assert!(err.contains("p.db.key"), "{damaged:?}: {err}");
        assert_eq!(std::fs::read_to_string(store.key_file()).unwrap(), damaged, "left as it was");
    }
    store.close().await;
}
