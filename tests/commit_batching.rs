//! The write path takes its incident decisions per event, in order, whatever the batch
//! boundaries: committing events one per batch and all in one batch must give the same
//! incidents and the same event links (no sweep or detector in play, so batching is the
//! only difference). This pins the batched write path (multi-row inserts, cached incident
//! state, deferred counters) to the per-event semantics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use passportd::event::{Category, Outcome, Position, SignInEvent};
use passportd::incidents::{OpenGate, Policy};
use passportd::store::{Batch, EventQuery, IncidentQuery, Store, StoredEvent};

const T0: i64 = 1_772_640_000_000;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(T0 + seconds * 1000).unwrap()
}

fn ev(
    id: &str,
    code: u32,
    category: Category,
    second: i64,
    user: &str,
    corr: Option<&str>,
    source: &str,
) -> StoredEvent {
    let passport = source == "passport";
    StoredEvent::new(
        SignInEvent {
            received_at: at(second),
            occurred_at: at(second),
            occurred_from_record: true,
            time_is_logged: false,
            source: source.into(),
            format: if passport { "passport" } else { "azure-diagnostic" }.into(),
            outcome: Outcome::Failure,
            category: Some(category),
            codes: vec![code],
            entry_id: Some(format!("aadsts-{code}")),
            message: Some("m".into()),
            user: None,
            app_id: (!passport).then(|| "app-1".to_string()),
            app_name: None,
            tenant_id: Some("tenant".into()),
            client_app: None,
            auth_protocol: None,
            token_issuer_type: None,
            ip: None,
            correlation_id: corr.map(String::from),
            record_id: Some(id.into()),
            device: None,
            position: Some(Position { file_key: "f".into(), offset: 0 }),
        },
        format!("title {code}"),
        format!("fix {code}"),
        "high".into(),
        Some(user.into()),
        None,
    )
}

fn scenario() -> Vec<StoredEvent> {
    use Category::{InvalidCredentials as Ic, MfaRequired as Mfa};
    vec![
        ev("e1", 50126, Ic, 0, "u1", Some("c1"), "entra"),
        ev("p1", 50126, Ic, 1, "u1", Some("c1"), "passport"),
        ev("e2", 50126, Ic, 2, "u2", None, "entra"),
        ev("p2", 50076, Mfa, 3, "u4", Some("c2"), "passport"),
        ev("e4", 50076, Mfa, 4, "u4", Some("c2"), "entra"),
        ev("e3", 50126, Ic, 5, "u1", None, "entra"),
        ev("e5", 50126, Ic, 6, "u3", Some("c3"), "entra"),
        ev("p3", 50126, Ic, 7, "u3", Some("c3"), "passport"),
        ev("e6", 50076, Mfa, 8, "u5", None, "entra"),
        ev("e6", 50076, Mfa, 8, "u5", None, "entra"),
        ev("p4", 50076, Mfa, 9, "u6", Some("c4"), "passport"),
        ev("p5", 50076, Mfa, 10, "u6", Some("c4"), "passport"),
    ]
}

/// A new store (in a directory removed with the first value) and the default policy
/// without its detectors: batching is then the only difference between runs.
async fn fresh_store() -> (tempfile::TempDir, Store, Policy) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("p.db")).await.unwrap();
    let mut p = Policy::default();
    p.detectors.enabled = false;
    (dir, s, p)
}

async fn run(batches: Vec<Vec<StoredEvent>>) -> (Vec<String>, Vec<String>, u64) {
    let (_dir, s, mut p) = fresh_store().await;
    p.gates.insert(Category::InvalidCredentials, OpenGate { events: 3, users: 0, within: Duration::from_secs(600) });
    let mut duplicates = 0;
    for events in batches {
        duplicates += s.commit_batch(&Batch { events, ..Batch::default() }, &p).await.unwrap().duplicates;
    }
    let incidents = s.list_incidents(&IncidentQuery { limit: 100, ..IncidentQuery::default() }).await.unwrap().items;
    let mut summary = Vec::new();
    let mut links = Vec::new();
    for i in &incidents {
        summary.push(format!(
            "{} {:?} n={} users={} sources={:?} first={} last={} status={} reopened={}",
            i.fingerprint,
            i.category,
            i.event_count,
            i.users_affected,
            i.sources,
            i.first_seen,
            i.last_seen,
            i.status,
            i.reopened_count
        ));
        let evs =
            s.list_events(&EventQuery { incident: Some(i.id), limit: 100, ..EventQuery::default() }).await.unwrap();
        let mut ids: Vec<String> = evs.items.iter().map(|e| format!("{}@{}", e.occurred_at, e.source)).collect();
        ids.sort();
        links.push(format!("{}: {}", i.fingerprint, ids.join(",")));
    }
    summary.sort();
    links.sort();
    (summary, links, duplicates)
}

#[tokio::test]
async fn one_batch_decides_like_one_event_per_batch() {
    let per_event = run(scenario().into_iter().map(|e| vec![e]).collect()).await;
    let one_batch = run(vec![scenario()]).await;
    let halves = {
        let mut all = scenario();
        let rest = all.split_off(5);
        run(vec![all, rest]).await
    };
    assert_eq!(per_event.2, 1, "the repeated e6 is a duplicate");
    assert!(!per_event.0.is_empty());
    assert_eq!(one_batch, per_event);
    assert_eq!(halves, per_event);
}

/// A batch looks up only its failures keyed no later than the newest stored one (issue
/// #8: a replay in time order then looks up almost nothing). Copies of the newest, of
/// older ones, and of ones behind a later failure in their own batch are still
/// duplicates, each counted once, and only the new failures are stored.
#[tokio::test]
async fn copies_of_the_newest_and_of_older_failures_are_duplicates() {
    use Category::InvalidCredentials as Ic;
    let (_dir, s, p) = fresh_store().await;
    let commit = |events: Vec<StoredEvent>| {
        let (s, p) = (&s, &p);
        async move { s.commit_batch(&Batch { events, ..Batch::default() }, p).await.unwrap() }
    };
    let first =
        commit(vec![ev("e1", 50126, Ic, 0, "u1", None, "entra"), ev("e3", 50126, Ic, 10, "u1", None, "entra")]).await;
    assert_eq!(first.duplicates, 0);
    let again = commit(vec![
        ev("e3", 50126, Ic, 10, "u1", None, "entra"),
        ev("e4", 50126, Ic, 20, "u2", None, "entra"),
        ev("e1", 50126, Ic, 0, "u1", None, "entra"),
        ev("e2", 50126, Ic, 5, "u3", None, "entra"),
        ev("e4", 50126, Ic, 20, "u2", None, "entra"),
    ])
    .await;
    assert_eq!(again.duplicates, 3, "e3 (the newest stored), e1 (older) and e4 (twice in the batch)");
    let last = commit(vec![ev("e4", 50126, Ic, 20, "u2", None, "entra")]).await;
    assert_eq!(last.duplicates, 1, "e4, now the newest stored");
    let stored = s.list_events(&EventQuery { limit: 100, ..EventQuery::default() }).await.unwrap();
    let mut ids: Vec<String> = stored.items.iter().filter_map(|e| e.record_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["e1", "e2", "e3", "e4"]);
}

/// A batch writes its incidents' counters in one statement, from a bound list (issue #8):
/// with 150 incidents in one batch, every incident gets exactly its own counts, users,
/// times and sources, none another's.
#[tokio::test]
async fn a_batch_touching_many_incidents_counts_each_exactly() {
    use Category::MfaRequired as Mfa;
    let (_dir, s, mut p) = fresh_store().await;
    p.gates.clear();
    const TENANTS: i64 = 150;
    let failure = |tenant: i64, id: String, second: i64, user: &str, source: &str| {
        let mut e = ev(&id, 50076, Mfa, second, user, None, source);
        e.event.tenant_id = Some(format!("tenant-{tenant}"));
        let e = &e.event;
        StoredEvent::new(e.clone(), "t".into(), "f".into(), "high".into(), Some(user.into()), None)
    };
    let first: Vec<StoredEvent> = (0..TENANTS).map(|t| failure(t, format!("a{t}"), t, "u1", "entra")).collect();
    s.commit_batch(&Batch { events: first, ..Batch::default() }, &p).await.unwrap();
    let second: Vec<StoredEvent> = (0..TENANTS)
        .flat_map(|t| {
            let user = format!("user-{t}");
            [
                failure(t, format!("b{t}"), 1000 + t, "u1", "entra"),
                failure(t, format!("c{t}"), 2000 + t, &user, "replay"),
            ]
        })
        .collect();
    s.commit_batch(&Batch { events: second, ..Batch::default() }, &p).await.unwrap();
    let incidents = s.list_incidents(&IncidentQuery { limit: 500, ..IncidentQuery::default() }).await.unwrap().items;
    assert_eq!(incidents.len(), TENANTS as usize);
    for i in &incidents {
        let t: i64 = i.tenant.as_deref().and_then(|t| t.strip_prefix("tenant-")).unwrap().parse().unwrap();
        let got = (i.event_count, i.users_affected, i.first_seen, i.last_seen, i.sources.clone());
        assert_eq!(got, (3, 2, at(t), at(2000 + t), vec!["entra".to_string(), "replay".to_string()]), "tenant-{t}");
    }
}

/// A failure without a time of its own is keyed under time 0, so it is looked up
/// whatever its event time: sent again, it is a duplicate, even when its event time is
/// later than every stored failure's, and even in the transaction that stored it (replay
/// applies several batches in one).
#[tokio::test]
async fn a_failure_without_a_time_of_its_own_sent_again_is_a_duplicate() {
    use Category::InvalidCredentials as Ic;
    let (_dir, s, p) = fresh_store().await;
    let untimed = || {
        let mut e = ev("u1", 50126, Ic, 100, "u1", None, "entra");
        e.event.occurred_from_record = false;
        StoredEvent::new(e.event, "t".into(), "f".into(), "high".into(), Some("u1".into()), None)
    };
    let timed = |id: &str, second: i64| ev(id, 50126, Ic, second, "u2", None, "entra");
    let batch = |events: Vec<StoredEvent>| Batch { events, ..Batch::default() };
    let mut tx = s.begin_write().await.unwrap();
    let first = s.apply_batch(&mut tx, &batch(vec![timed("e1", 10), untimed()]), &p).await.unwrap();
    let second = s.apply_batch(&mut tx, &batch(vec![untimed(), timed("e2", 20)]), &p).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((first.duplicates, second.duplicates), (0, 1));
    let later = s.commit_batch(&batch(vec![untimed()]), &p).await.unwrap();
    assert_eq!(later.duplicates, 1);
    let stored = s.list_events(&EventQuery { limit: 100, ..EventQuery::default() }).await.unwrap();
    assert_eq!(stored.items.len(), 3, "e1, e2 and u1 once");
}
