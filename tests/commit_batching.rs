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

async fn run(batches: Vec<Vec<StoredEvent>>) -> (Vec<String>, Vec<String>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("p.db")).await.unwrap();
    let mut p = Policy::default();
    p.detectors.enabled = false;
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
