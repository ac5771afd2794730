//! The incident engine against a real SQLite file: lifecycle in event time, reopen vs
//! new, opening gates, correlation, detectors, pruning, and pagination under inserts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use passportd::event::{Category, Outcome, Position, SignInEvent};
use passportd::incidents::{IncidentStatus, OpenGate, Policy};
use passportd::store::{Batch, IncidentQuery, IncidentSort, Store, StoredEvent};

const T0: i64 = 1_772_640_000_000; // 2026-03-04T16:00:00Z

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(T0 + minutes * 60_000).unwrap()
}

#[derive(Clone)]
struct Ev {
    id: String,
    code: u32,
    category: Category,
    outcome: Outcome,
    minute: i64,
    user: Option<String>,
    ip: Option<String>,
    correlation: Option<String>,
    source: &'static str,
    app: Option<&'static str>,
    /// Decoded from a Passport log (`format = "passport"`), not an Entra export.
    passport_format: bool,
}

fn ev(id: &str, code: u32, category: Category, minute: i64) -> Ev {
    Ev {
        id: id.into(),
        code,
        category,
        outcome: Outcome::Failure,
        minute,
        user: Some(format!("user-{id}")),
        ip: None,
        correlation: None,
        source: "entra",
        app: Some("app-1"),
        passport_format: false,
    }
}

fn stored(e: Ev) -> StoredEvent {
    let event = SignInEvent {
        received_at: at(e.minute),
        occurred_at: at(e.minute),
        occurred_from_record: true,
        time_is_logged: false,
        source: e.source.into(),
        // A failure of the source named "passport" is read from a Mac's log, as in the daemon.
        format: if e.passport_format || e.source == "passport" { "passport" } else { "azure-diagnostic" }.into(),
        outcome: e.outcome,
        category: (e.outcome != Outcome::Success).then_some(e.category),
        codes: vec![e.code],
        entry_id: Some(format!("aadsts-{}", e.code)),
        message: Some("m".into()),
        user: None,
        app_id: e.app.map(String::from),
        app_name: None,
        tenant_id: Some("tenant".into()),
        client_app: None,
        auth_protocol: None,
        token_issuer_type: None,
        ip: None,
        correlation_id: e.correlation,
        record_id: Some(e.id.clone()),
        device: None,
        position: Some(Position { file_key: "f".into(), offset: 0 }),
    };
    StoredEvent::new(event, format!("title {}", e.code), format!("fix {}", e.code), "high".into(), e.user, e.ip)
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("db/p.db")).await.unwrap();
    (dir, s)
}

async fn commit(s: &Store, p: &Policy, evs: Vec<Ev>) -> passportd::store::BatchResult {
    let batch = Batch { events: evs.into_iter().map(stored).collect(), ..Batch::default() };
    s.commit_batch(&batch, p).await.unwrap()
}

async fn all(s: &Store) -> Vec<passportd::incidents::Incident> {
    s.list_incidents(&IncidentQuery { limit: 500, ..IncidentQuery::default() }).await.unwrap().items
}

#[tokio::test]
async fn lifecycle_quiet_period_reopen_and_new_incident_in_event_time() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let r =
        commit(&s, &p, vec![ev("a", 50076, Category::MfaRequired, 0), ev("b", 50076, Category::MfaRequired, 10)]).await;
    assert_eq!(r.incidents_opened.get(&Category::MfaRequired), Some(&1));
    let inc = &all(&s).await[0];
    assert_eq!((inc.status, inc.event_count, inc.users_affected), (IncidentStatus::Open, 2, 2));
    assert_eq!(inc.first_seen, at(0));
    assert_eq!(inc.last_seen, at(10));

    // Other events move the event-time clock past the quiet period: auto-resolved at
    // last_seen + 30 min, even though no wall time passed.
    let mut ok = ev("s1", 0, Category::Other, 45);
    ok.outcome = Outcome::Success;
    commit(&s, &p, vec![ok]).await;
    let inc = &all(&s).await[0];
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert_eq!(inc.resolved_at, Some(at(40)));

    // A recurrence within the reopen window reopens the same incident.
    let r = commit(&s, &p, vec![ev("c", 50076, Category::MfaRequired, 60)]).await;
    assert_eq!(r.incidents_opened.get(&Category::MfaRequired), Some(&1));
    let incs = all(&s).await;
    assert_eq!(incs.len(), 1);
    assert_eq!((incs[0].status, incs[0].reopened_count, incs[0].event_count), (IncidentStatus::Open, 1, 3));

    // Quiet again, then a recurrence after the reopen window: a new incident.
    let week = 7 * 24 * 60;
    let mut ok = ev("s2", 0, Category::Other, 100);
    ok.outcome = Outcome::Success;
    commit(&s, &p, vec![ok]).await;
    commit(&s, &p, vec![ev("d", 50076, Category::MfaRequired, 90 + week + 10)]).await;
    let incs = all(&s).await;
    assert_eq!(incs.len(), 2);
    assert_eq!(incs[0].status, IncidentStatus::Open);
    assert_eq!(incs[1].status, IncidentStatus::Resolved);
    assert_eq!(incs[0].fingerprint, incs[1].fingerprint);
}

/// `users_affected` stays exact when one batch brings more new users than the writer's
/// connection queues result rows for (the inserted pairs come back as rows), and when
/// the next batch repeats some of them.
#[tokio::test]
async fn thousands_of_users_in_one_batch_are_each_counted_once() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let many = |from: usize, to: usize, prefix: &str| -> Vec<Ev> {
        (from..to)
            .map(|i| {
                let mut e = ev(&format!("{prefix}{i}"), 50076, Category::MfaRequired, 0);
                e.user = Some(format!("user-{i}"));
                e
            })
            .collect()
    };
    commit(&s, &p, many(0, 5000, "a")).await;
    let inc = &all(&s).await[0];
    assert_eq!((inc.event_count, inc.users_affected), (5000, 5000));
    // 2,500 of these users are known already.
    commit(&s, &p, many(2500, 7500, "b")).await;
    let incs = all(&s).await;
    assert_eq!(incs.len(), 1);
    assert_eq!((incs[0].event_count, incs[0].users_affected), (10000, 7500));
}

#[tokio::test]
async fn acknowledge_resolve_and_regression() {
    let (_d, s) = store().await;
    let p = Policy::default();
    commit(&s, &p, vec![ev("a", 7000218, Category::ClientMisconfigured, 0)]).await;
    let id = all(&s).await[0].id;
    let acked = s.acknowledge(id, Some("oncall@example"), Utc::now()).await.unwrap().unwrap();
    assert_eq!(acked.status, IncidentStatus::Acknowledged);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("oncall@example"));
    // A further failure within the quiet period keeps it acknowledged.
    commit(&s, &p, vec![ev("b", 7000218, Category::ClientMisconfigured, 5)]).await;
    assert_eq!(s.incident(id).await.unwrap().unwrap().status, IncidentStatus::Acknowledged);
    let resolved = s.resolve(id, Utc::now()).await.unwrap().unwrap();
    assert_eq!(resolved.status, IncidentStatus::Resolved);
    // Acknowledging a resolved incident changes nothing, not even who acknowledged it.
    let late = s.acknowledge(id, Some("latecomer@example"), Utc::now()).await.unwrap().unwrap();
    assert_eq!(late.status, IncidentStatus::Resolved);
    assert_eq!(late.acknowledged_by.as_deref(), Some("oncall@example"));
    assert_eq!(late.acknowledged_at, resolved.acknowledged_at);
    // The fix did not hold: the next failure reopens it.
    commit(&s, &p, vec![ev("c", 7000218, Category::ClientMisconfigured, 6)]).await;
    let again = s.incident(id).await.unwrap().unwrap();
    assert_eq!((again.status, again.reopened_count), (IncidentStatus::Open, 1));
    assert!(s.acknowledge(9999, None, Utc::now()).await.unwrap().is_none());
}

#[tokio::test]
async fn per_category_quiet_period() {
    let (_d, s) = store().await;
    let mut p = Policy::default();
    p.quiet_by_category.insert(Category::InvalidCredentials, Duration::from_secs(300));
    commit(&s, &p, vec![ev("a", 50126, Category::InvalidCredentials, 0), ev("b", 50076, Category::MfaRequired, 0)])
        .await;
    let mut ok = ev("s", 0, Category::Other, 10);
    ok.outcome = Outcome::Success;
    commit(&s, &p, vec![ok]).await;
    let incs = all(&s).await;
    let cred = incs.iter().find(|i| i.category == Category::InvalidCredentials).unwrap();
    let mfa = incs.iter().find(|i| i.category == Category::MfaRequired).unwrap();
    assert_eq!(cred.status, IncidentStatus::Resolved);
    assert_eq!(cred.resolved_at, Some(at(5)));
    assert_eq!(mfa.status, IncidentStatus::Open);
}

#[tokio::test]
async fn interrupts_and_successes_never_open_incidents() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let mut i = ev("i", 50140, Category::InterruptInformational, 0);
    i.outcome = Outcome::Interrupt;
    let mut ok = ev("ok", 0, Category::Other, 0);
    ok.outcome = Outcome::Success;
    let r = commit(&s, &p, vec![i, ok]).await;
    assert!(r.incidents_opened.is_empty());
    assert!(all(&s).await.is_empty());
}

#[tokio::test]
async fn opening_gate_holds_noisy_failures_until_enough_gather() {
    let (_d, s) = store().await;
    let mut p = Policy::default();
    p.gates.insert(Category::InvalidCredentials, OpenGate { events: 3, users: 0, within: Duration::from_secs(600) });
    let mut a = ev("a", 50126, Category::InvalidCredentials, 0);
    a.user = Some("same".into());
    let mut b = ev("b", 50126, Category::InvalidCredentials, 1);
    b.user = Some("same".into());
    commit(&s, &p, vec![a, b]).await;
    assert!(all(&s).await.is_empty(), "two failures stay below the gate");
    let r = commit(&s, &p, vec![ev("c", 50126, Category::InvalidCredentials, 2)]).await;
    assert_eq!(r.incidents_opened.get(&Category::InvalidCredentials), Some(&1));
    let inc = &all(&s).await[0];
    assert_eq!((inc.event_count, inc.users_affected), (3, 2), "held-back failures join the incident");
    assert_eq!(inc.first_seen, at(0));
    // Failures more than `within` apart never open it.
    let (_d2, s2) = store().await;
    commit(
        &s2,
        &p,
        vec![ev("x", 50126, Category::InvalidCredentials, 0), ev("y", 50126, Category::InvalidCredentials, 20)],
    )
    .await;
    commit(&s2, &p, vec![ev("z", 50126, Category::InvalidCredentials, 40)]).await;
    assert!(all(&s2).await.is_empty());
    // The same three failures in another order open the same incident: the gate looks a
    // window either side of a late failure, not only before it.
    for order in [[1, 8, 9], [8, 9, 1], [9, 1, 8]] {
        let (_d3, s3) = store().await;
        for minute in order {
            commit(&s3, &p, vec![ev(&format!("m{minute}"), 50126, Category::InvalidCredentials, minute)]).await;
        }
        let incs = all(&s3).await;
        assert_eq!(incs.len(), 1, "{order:?}: {incs:?}");
        assert_eq!((incs[0].event_count, incs[0].first_seen, incs[0].last_seen), (3, at(1), at(9)), "{order:?}");
    }
    // Held before the gate opened and between the incident and a later failure that
    // reopens it: it joins that incident, as in time order (where it reopens it itself).
    let mut short = Policy { quiet_period: Duration::from_secs(120), ..p.clone() };
    short
        .gates
        .insert(Category::InvalidCredentials, OpenGate { events: 3, users: 0, within: Duration::from_secs(300) });
    let mut outcomes = Vec::new();
    for order in [[0, 2, 4, 8, 9], [0, 4, 8, 2, 9]] {
        let (_d5, s5) = store().await;
        for minute in order {
            commit(&s5, &short, vec![ev(&format!("m{minute}"), 50126, Category::InvalidCredentials, minute)]).await;
        }
        let counted: i64 = all(&s5).await.iter().map(|i| i.event_count).sum();
        outcomes.push((order, counted));
    }
    assert_eq!(outcomes.iter().map(|o| o.1).collect::<Vec<_>>(), [5, 5], "{outcomes:?}");
    // Failures held long before an incident never met the gate: a late failure from
    // before them all, which joins the incident, does not take them along.
    let (_d6, s6) = store().await;
    for (id, minute) in [("h0", 0), ("h1", 100), ("b0", 200), ("b1", 200), ("b2", 201), ("late", -1000)] {
        commit(&s6, &p, vec![ev(id, 50126, Category::InvalidCredentials, minute)]).await;
    }
    let counted: i64 = all(&s6).await.iter().map(|i| i.event_count).sum();
    assert_eq!(counted, 4, "the burst and the late failure, not the two held ones");
    // A failure held less than a quiet period before the window that opens the incident
    // is part of it, in one run as when it arrives after the opening.
    let mut outcomes = Vec::new();
    for order in [[0, 8, 15, 17], [8, 15, 17, 0]] {
        let (_d7, s7) = store().await;
        for minute in order {
            commit(&s7, &p, vec![ev(&format!("m{minute}"), 50126, Category::InvalidCredentials, minute)]).await;
        }
        let incs = all(&s7).await;
        assert_eq!(incs.len(), 1, "{order:?}: {incs:?}");
        outcomes.push((incs[0].event_count, incs[0].first_seen, incs[0].last_seen));
    }
    let (_d8, s8) = store().await;
    commit(
        &s8,
        &p,
        [0, 8, 15, 17].iter().map(|m| ev(&format!("m{m}"), 50126, Category::InvalidCredentials, *m)).collect(),
    )
    .await;
    let incs = all(&s8).await;
    assert_eq!(incs.len(), 1, "one batch: {incs:?}");
    outcomes.push((incs[0].event_count, incs[0].first_seen, incs[0].last_seen));
    assert_eq!(outcomes, [(4, at(0), at(17)), (4, at(0), at(17)), (4, at(0), at(17))]);
    // A failure held before the gate opened, after the window that opens it, joins too, as
    // it would have had it arrived after the opening.
    for order in [[0, 5, 9, 18], [0, 9, 18, 5]] {
        let (_d4, s4) = store().await;
        for minute in order {
            commit(&s4, &p, vec![ev(&format!("m{minute}"), 50126, Category::InvalidCredentials, minute)]).await;
        }
        let incs = all(&s4).await;
        assert_eq!(incs.len(), 1, "{order:?}: {incs:?}");
        assert_eq!((incs[0].event_count, incs[0].last_seen), (4, at(18)), "{order:?}");
    }
}

/// One MFA-blocked sign-in as both sides log it, sharing a correlation id: the Entra
/// record (naming the user) at `entra_minute`, the Passport line (no user, no app) at
/// `passport_minute`.
fn one_attempt(entra_minute: i64, passport_minute: i64) -> (Ev, Ev) {
    let mut entra = ev("entra-1", 50076, Category::MfaRequired, entra_minute);
    entra.correlation = Some("corr-1".into());
    let mut passport = ev("passport-1", 50076, Category::MfaRequired, passport_minute);
    passport.correlation = Some("corr-1".into());
    passport.source = "passport";
    passport.app = None;
    passport.user = None;
    (entra, passport)
}

#[tokio::test]
async fn a_passport_failure_and_its_entra_record_count_once() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let (entra, passport) = one_attempt(0, 0);
    commit(&s, &p, vec![entra]).await;
    commit(&s, &p, vec![passport]).await;
    let incs = all(&s).await;
    assert_eq!(incs.len(), 1, "{incs:?}");
    assert_eq!(incs[0].event_count, 1);
    assert_eq!(incs[0].sources, vec!["entra".to_string(), "passport".to_string()]);
    let events = s
        .list_events(&passportd::store::EventQuery { incident: Some(incs[0].id), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(events.items.len(), 2, "both copies are kept and joined to the incident");
    let counted = events.items.iter().filter(|e| e.counted).count();
    assert_eq!(counted as i64, incs[0].event_count, "the events list says which copy counts");
}

/// Entra gives retries and MFA steps of one session the same correlation id, each record
/// its own id: two Entra records are two sign-ins, both counted, each in its incident;
/// only a Passport line joins an Entra record (or another line of the same attempt).
#[tokio::test]
async fn two_entra_records_of_one_correlation_id_are_two_sign_ins() {
    for one_batch in [true, false] {
        let (_d, s) = store().await;
        let p = Policy::default();
        let mut wrong_password = ev("entra-1", 50126, Category::InvalidCredentials, 0);
        wrong_password.correlation = Some("corr-s".into());
        let mut retry = ev("entra-2", 50126, Category::InvalidCredentials, 1);
        retry.correlation = Some("corr-s".into());
        let mut locked = ev("entra-3", 50053, Category::AccountLocked, 2);
        locked.correlation = Some("corr-s".into());
        // The first sign-in again, from another shape whose time differs (another
        // precision): stored again, but one sign-in, counted once.
        let mut same_again = ev("entra-1", 50126, Category::InvalidCredentials, 3);
        same_again.correlation = Some("corr-s".into());
        let all_of_them = [wrong_password, retry, locked, same_again];
        if one_batch {
            commit(&s, &p, all_of_them.to_vec()).await;
        } else {
            for e in all_of_them {
                commit(&s, &p, vec![e]).await;
            }
        }
        let incs = all(&s).await;
        let count = |c: Category| incs.iter().find(|i| i.category == c).map(|i| i.event_count);
        assert_eq!(count(Category::InvalidCredentials), Some(2), "{one_batch}: {incs:?}");
        assert_eq!(count(Category::AccountLocked), Some(1), "{one_batch}: {incs:?}");
    }
}

/// An incident resolved when the catalogue changed, and reopened since, shows what the
/// loaded catalogue says (a reload updates only active incidents).
#[tokio::test]
async fn a_reopened_incident_takes_the_current_catalogue_texts() {
    let (_d, s) = store().await;
    let p = Policy::default();
    commit(&s, &p, vec![ev("a", 50076, Category::MfaRequired, 0)]).await;
    let mut later = stored(ev("b", 50076, Category::MfaRequired, 120));
    later.title = "MFA required (edited)".into();
    later.remediation = "The edited fix.".into();
    s.commit_batch(&Batch { events: vec![later], ..Batch::default() }, &p).await.unwrap();
    let incs = all(&s).await;
    assert_eq!(incs.len(), 1, "{incs:?}");
    assert_eq!(incs[0].reopened_count, 1, "{incs:?}");
    assert_eq!((incs[0].title.as_str(), incs[0].remediation.as_str()), ("MFA required (edited)", "The edited fix."));
}

/// Live, the Passport line (no user) usually arrives before its Entra record, which names
/// the user and may carry an earlier time: the copy's user is affected, and its time is
/// part of the incident.
#[tokio::test]
async fn an_entra_copy_after_its_passport_line_counts_its_user_and_time() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let (entra, passport) = one_attempt(0, 1);
    commit(&s, &p, vec![passport]).await;
    assert_eq!(all(&s).await[0].users_affected, 0);
    commit(&s, &p, vec![entra]).await;
    let incs = all(&s).await;
    assert_eq!(incs.len(), 1, "{incs:?}");
    assert_eq!((incs[0].event_count, incs[0].users_affected), (1, 1));
    assert_eq!((incs[0].first_seen, incs[0].last_seen), (at(0), at(1)));
}

/// A Passport line logged twice for one attempt (two lines, one correlation id) moves with
/// its Entra record whole: no incident is left behind holding only a copy.
#[tokio::test]
async fn a_superseded_line_takes_its_copies_along() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let (entra, passport) = federated_attempt("corr-f", 1, 0);
    let (_, mut again) = federated_attempt("corr-f", 1, 0);
    again.id = "passport-corr-f-again".into();
    commit_stored(&s, &p, vec![from_passport(passport), from_passport(again)]).await;
    commit_stored(&s, &p, vec![stored(entra)]).await;
    let incs = all(&s).await;
    assert_eq!(incs.len(), 1, "{incs:?}");
    assert_eq!((incs[0].category, incs[0].event_count), (Category::FederationUnsupported, 1));
    let events = s
        .list_events(&passportd::store::EventQuery { incident: Some(incs[0].id), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(events.items.len(), 3);
}

/// An incident withdrawn by a supersede gives its id up for good: the next incident takes
/// a new one (a link or a script holding the old id must not reach another problem). One
/// an operator acknowledged is resolved and kept instead.
#[tokio::test]
async fn a_withdrawn_incident_id_is_never_given_again_and_an_acknowledged_one_stays() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let (entra, passport) = federated_attempt("corr-1", 1, 0);
    let r = commit_stored(&s, &p, vec![from_passport(passport)]).await;
    let wrong = r.opened_ids[0];
    commit_stored(&s, &p, vec![stored(entra)]).await;
    let r = commit(&s, &p, vec![ev("mfa", 50076, Category::MfaRequired, 2)]).await;
    assert!(r.opened_ids[0] > wrong + 1, "{r:?}: the ids of the withdrawn and the federation incident");
    assert!(s.incident(wrong).await.unwrap().is_none());

    let (entra, passport) = federated_attempt("corr-2", 11, 10);
    let r = commit_stored(&s, &p, vec![from_passport(passport)]).await;
    let acked = r.opened_ids[0];
    s.acknowledge(acked, Some("oncall@example"), Utc::now()).await.unwrap().unwrap();
    commit_stored(&s, &p, vec![stored(entra)]).await;
    let kept = s.incident(acked).await.unwrap().expect("an acknowledged incident is kept");
    assert_eq!((kept.status, kept.event_count), (IncidentStatus::Resolved, 0), "{kept:?}");
    // It holds nothing any more: no source either.
    assert!(kept.sources.is_empty(), "{kept:?}");
}

/// A failure a year ahead and a current one of the same problem, then the current one's
/// Passport line superseded: the incident's times, recomputed from what it still holds,
/// stop at the clock's ceiling as when they were first recorded.
#[tokio::test]
async fn times_recomputed_after_a_supersede_stay_under_the_clock_ceiling() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let now = (Utc::now().timestamp_millis() - T0) / 60_000;
    let (entra, passport) = federated_attempt("corr-now", now, now - 1);
    let mut ahead = ev("ahead", 50126, Category::InvalidCredentials, now + 365 * 24 * 60);
    ahead.source = "passport";
    ahead.app = None;
    commit_stored(&s, &p, vec![from_passport(passport), from_passport(ahead)]).await;
    commit_stored(&s, &p, vec![stored(entra)]).await;
    let ceiling = Utc::now() + chrono::Duration::minutes(6);
    for inc in all(&s).await {
        assert!(inc.first_seen <= ceiling && inc.last_seen <= ceiling, "{inc:?}");
    }
}

/// A detector incident begins where its threshold was first met, whichever half of the
/// attack arrives first.
#[tokio::test]
async fn a_detectors_first_seen_does_not_depend_on_arrival_order() {
    let p = Policy::default();
    let attack = |range: std::ops::Range<i64>| range.map(|i| victim_failure(&format!("bf{i}"), i)).collect::<Vec<_>>();
    let (_d, in_order) = store().await;
    commit(&in_order, &p, attack(0..20)).await;
    let (_d2, reversed) = store().await;
    commit(&reversed, &p, attack(10..20)).await;
    commit(&reversed, &p, attack(0..10)).await;
    assert_eq!(detections(&reversed).await, detections(&in_order).await);
}

/// A failure older than the event-time clock (a late export) opens its incident in the
/// past: the incident resolves at once, at the end of its own quiet period, instead of
/// staying open until the clock next moves.
#[tokio::test]
async fn a_late_failure_long_before_the_clock_opens_an_incident_already_resolved() {
    let (_d, s) = store().await;
    let p = Policy::default();
    commit(&s, &p, vec![ev("now", 50079, Category::MfaRequired, 200)]).await;
    let r = commit(&s, &p, vec![ev("late", 50076, Category::MfaRequired, 0)]).await;
    assert_eq!(r.incidents_opened.values().sum::<u64>(), 1);
    assert_eq!(r.incidents_auto_resolved, 1);
    let incs = all(&s).await;
    let late = incs.iter().find(|i| i.code == Some(50076)).unwrap();
    assert_eq!(late.status, IncidentStatus::Resolved, "{late:?}");
    assert_eq!(late.resolved_at, Some(at(30)));
}

/// A late failure that joins an incident the sweep already resolved moves its resolution
/// with it (one quiet period after its last failure), whether the two late failures come
/// in one batch or two.
#[tokio::test]
async fn a_late_failure_joining_a_resolved_incident_moves_its_resolution() {
    for one_batch in [false, true] {
        let (_d, s) = store().await;
        let p = Policy::default();
        commit(&s, &p, vec![ev("now", 50079, Category::MfaRequired, 200)]).await;
        let late = |id: &str, minute| ev(id, 50076, Category::MfaRequired, minute);
        if one_batch {
            commit(&s, &p, vec![late("a", 0), late("b", 20)]).await;
        } else {
            commit(&s, &p, vec![late("a", 0)]).await;
            commit(&s, &p, vec![late("b", 20)]).await;
        }
        let incs = all(&s).await;
        let inc = incs.iter().find(|i| i.code == Some(50076)).unwrap();
        assert_eq!((inc.event_count, inc.status), (2, IncidentStatus::Resolved), "one_batch={one_batch}: {inc:?}");
        assert_eq!((inc.last_seen, inc.resolved_at), (at(20), Some(at(50))), "one_batch={one_batch}");
    }
}

/// A late failure that joins an incident the sweep resolved, and whose own quiet period
/// has not ended by the clock, makes it active again (it never went quiet): it is open,
/// takes the live failures that follow, and resolves one quiet period after the last.
#[tokio::test]
async fn a_late_failure_makes_an_incident_resolved_too_early_active_again() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let mfa = |id: &str, minute| ev(id, 50076, Category::MfaRequired, minute);
    commit(&s, &p, vec![mfa("first", 0)]).await;
    commit(&s, &p, vec![ev("elsewhere", 50079, Category::MfaRequired, 31)]).await;
    let find = |incs: Vec<passportd::incidents::Incident>| incs.into_iter().find(|i| i.code == Some(50076)).unwrap();
    assert_eq!(find(all(&s).await).status, IncidentStatus::Resolved);
    let r = commit(&s, &p, vec![mfa("late", 20)]).await;
    assert!(r.changed_incidents(), "the open-incidents gauge is read back: {r:?}");
    let inc = find(all(&s).await);
    assert_eq!((inc.status, inc.resolved_at, inc.reopened_count), (IncidentStatus::Open, None, 0), "{inc:?}");
    commit(&s, &p, vec![mfa("live", 40)]).await;
    commit(&s, &p, vec![ev("later", 50079, Category::MfaRequired, 100)]).await;
    let incs = all(&s).await;
    let inc = find(incs.clone());
    assert_eq!((inc.event_count, inc.status, inc.resolved_at), (3, IncidentStatus::Resolved, Some(at(70))), "{incs:?}");
}

/// A late copy (the Entra record of a Passport line) that joins an incident the sweep
/// resolved moves its end, and its resolution with it, however the input is batched; and
/// a superseded line taken out of a resolved incident moves its resolution back.
#[tokio::test]
async fn a_resolution_follows_late_copies_and_withdrawn_lines_in_any_batching() {
    for one_batch in [false, true] {
        let (_d, s) = store().await;
        let p = Policy::default();
        let (entra, passport) = one_attempt(2, 0);
        let clock = ev("clock", 50079, Category::MfaRequired, 40);
        let batches =
            if one_batch { vec![vec![passport, clock, entra]] } else { vec![vec![passport], vec![clock], vec![entra]] };
        for b in batches {
            commit(&s, &p, b).await;
        }
        let inc = all(&s).await.into_iter().find(|i| i.code == Some(50076)).unwrap();
        assert_eq!((inc.last_seen, inc.resolved_at), (at(2), Some(at(32))), "one_batch={one_batch}: {inc:?}");
    }
    let (_d, s) = store().await;
    let p = Policy::default();
    let (fed_entra, fed_passport) = federated_attempt("corr-f", 1, 1);
    let mut other = ev("passport-other", 50126, Category::InvalidCredentials, 0);
    other.source = "passport";
    other.app = None;
    commit_stored(&s, &p, vec![from_passport(other), from_passport(fed_passport)]).await;
    commit(&s, &p, vec![ev("clock", 50079, Category::MfaRequired, 40)]).await;
    commit_stored(&s, &p, vec![stored(fed_entra)]).await;
    let inc = all(&s).await.into_iter().find(|i| i.category == Category::InvalidCredentials).unwrap();
    assert_eq!((inc.event_count, inc.last_seen, inc.resolved_at), (1, at(0), Some(at(30))), "{inc:?}");
}

/// While no input arrives the incident clock runs on with the wall clock. Records re-sent
/// and found stored are no input (a feed that only re-delivers has gone quiet), the time
/// since the last input counts across a restart (it is kept in the store), and a batch
/// arriving after a quiet spell is judged by that clock too: a late failure from before
/// it opens an incident that is resolved at once.
#[tokio::test]
async fn the_idle_clock_ignores_duplicates_survives_a_restart_and_judges_late_input() {
    use passportd::metrics::Metrics;
    use passportd::pipeline::Writer;
    let (d, s) = store().await;
    let p = Policy { quiet_period: Duration::from_secs(60), ..Policy::default() };
    let now = (Utc::now().timestamp_millis() - T0) / 60_000;
    let batch = |id: &str, code, minute| Batch {
        events: vec![stored(ev(id, code, Category::MfaRequired, minute))],
        ..Batch::default()
    };
    let metrics = || Metrics::new(&[], &[], &[]).unwrap();
    // Moves the store's note of the last input back: that much time passes without input.
    let quiet_for = |ms: i64| {
        let path = d.path().join("db/p.db");
        async move {
            let other = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            sqlx::query("UPDATE meta SET value = CAST(value AS INTEGER) - ? WHERE key = 'input_at_ms'")
                .bind(ms)
                .execute(&other)
                .await
                .unwrap();
            other.close().await;
        }
    };
    let writer = Writer::new(s.clone(), metrics(), p.clone());
    writer.commit(&batch("a", 50076, now - 5)).await.unwrap();
    quiet_for(90_000).await;
    // A new process on the same store (a restart) knows how long it has been.
    let restarted = Writer::new(s.clone(), metrics(), p.clone());
    assert_eq!(restarted.resolve_quiet(Duration::ZERO).await.unwrap(), 1);

    // Minutes before this host's clock, which the incidents' clock never passes (the 90 s
    // without input are only written into the store, not waited for). Two minutes later
    // than `a`: still after the clock that ran on by the 90 s moved back above.
    restarted.commit(&batch("b", 50079, now - 3)).await.unwrap();
    quiet_for(90_000).await;
    // The feed re-delivers what is stored: no input, and the clock that ran on meanwhile
    // resolves the incident of the quiet feed.
    let again = restarted.commit(&batch("b", 50079, now - 3)).await.unwrap();
    assert_eq!((again.duplicates, again.incidents_auto_resolved), (1, 1), "{again:?}");

    // A late failure from before that clock's quiet period: opened and resolved at once.
    let late = restarted.commit(&batch("c", 50074, now - 7)).await.unwrap();
    assert_eq!((late.incidents_opened.len(), late.incidents_auto_resolved), (1, 1), "{late:?}");
    assert!(all(&s).await.iter().all(|i| i.status == IncidentStatus::Resolved));

    // Steady input that does not move the newest event time (a replay of an older file)
    // is judged in its own time: the wall time it takes does not move the clock.
    let clock = || {
        let path = d.path().join("db/p.db");
        async move {
            let other = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            let v: String =
                sqlx::query_scalar("SELECT value FROM meta WHERE key = 'clock_ms'").fetch_one(&other).await.unwrap();
            other.close().await;
            v
        }
    };
    let before = clock().await;
    for k in 0..3 {
        restarted.commit(&batch(&format!("older-{k}"), 50074, now - 8 - k)).await.unwrap();
    }
    assert_eq!(clock().await, before);
}

/// One failure stamped a year ahead (a Mac with a wrong clock) is stored with its own
/// time, but its incident's times go no further than the event-time clock may (an hour
/// past this host's clock), so the incident goes quiet and resolves like any other
/// instead of catching every later failure for a year.
#[tokio::test]
async fn a_failure_from_a_clock_a_year_ahead_does_not_pin_its_incident_open() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let year_ahead = (Utc::now().timestamp_millis() + 365 * 86_400_000 - T0) / 60_000;
    commit(&s, &p, vec![ev("future", 50076, Category::MfaRequired, year_ahead)]).await;
    let incs = all(&s).await;
    let ceiling = Utc::now() + chrono::Duration::minutes(61);
    assert!(incs[0].last_seen <= ceiling && incs[0].first_seen <= ceiling, "{incs:?}");
    let events = s.list_events(&passportd::store::EventQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(events.items[0].occurred_at, at(year_ahead), "the event keeps its own time");
}

/// A Mac whose clock runs ahead does not make every other machine's current failures
/// late: under a quiet period shorter than the lead an incident's times may take (two
/// minutes against five), failures that happen now, before and after one stamped a year
/// ahead, still open incidents that stay open.
#[tokio::test]
async fn a_clock_ahead_does_not_resolve_current_failures_under_a_short_quiet_period() {
    let (_d, s) = store().await;
    let p = Policy { quiet_period: Duration::from_secs(120), ..Policy::default() };
    let now = (Utc::now().timestamp_millis() - T0) / 60_000;
    commit(&s, &p, vec![ev("now-1", 50126, Category::InvalidCredentials, now)]).await;
    commit(&s, &p, vec![ev("future", 50076, Category::MfaRequired, now + 365 * 24 * 60)]).await;
    let mut later = ev("now-2", 50053, Category::AccountLocked, now);
    later.app = Some("app-2");
    let r = commit(&s, &p, vec![later]).await;
    assert_eq!(r.incidents_auto_resolved, 0, "{r:?}");
    let incs = all(&s).await;
    let status = |code| incs.iter().find(|i| i.code == Some(code)).map(|i| i.status);
    assert_eq!(status(50126), Some(IncidentStatus::Open), "{incs:?}");
    assert_eq!(status(50053), Some(IncidentStatus::Open), "{incs:?}");
}

/// A federated user's failed sign-in as both sides log it: the Passport line can only say
/// AADSTS50126 (`invalid_credentials`, no user), the Entra record also names the federated
/// token issuer (`federation_unsupported`) and the user.
fn federated_attempt(correlation: &str, entra_minute: i64, passport_minute: i64) -> (Ev, Ev) {
    let mut entra = ev(&format!("entra-{correlation}"), 50126, Category::FederationUnsupported, entra_minute);
    entra.correlation = Some(correlation.into());
    entra.user = Some("user-fed".into());
    let mut passport = ev(&format!("passport-{correlation}"), 50126, Category::InvalidCredentials, passport_minute);
    passport.correlation = Some(correlation.into());
    passport.source = "passport";
    passport.app = None;
    passport.user = None;
    (entra, passport)
}

/// [`stored`], decoded from a Passport log.
fn from_passport(e: Ev) -> StoredEvent {
    let mut s = stored(e);
    s.event.format = "passport".into();
    s
}

async fn commit_stored(s: &Store, p: &Policy, events: Vec<StoredEvent>) -> passportd::store::BatchResult {
    s.commit_batch(&Batch { events, ..Batch::default() }, p).await.unwrap()
}

/// Live, the Passport line of a federated user's 50126 arrives first and can only be read
/// as a wrong password. Its Entra record, which names the federated issuer, decides: one
/// `federation_unsupported` incident with both copies, counted once, and no
/// wrong-password incident left behind, whether the two arrive in one batch or two.
#[tokio::test]
async fn an_entra_record_classified_otherwise_supersedes_its_passport_line() {
    for one_batch in [false, true] {
        let (_d, s) = store().await;
        let p = Policy::default();
        let (entra, passport) = federated_attempt("corr-f", 1, 0);
        let opened = if one_batch {
            let r = commit_stored(&s, &p, vec![from_passport(passport), stored(entra)]).await;
            assert!(r.incidents_withdrawn.is_empty(), "opened and withdrawn in one batch: {r:?}");
            r.incidents_opened.values().sum::<u64>()
        } else {
            let first = commit_stored(&s, &p, vec![from_passport(passport)]).await;
            let wrong = first.opened_ids.clone();
            let second = commit_stored(&s, &p, vec![stored(entra)]).await;
            assert_eq!(second.incidents_withdrawn, wrong, "the wrong-password incident goes");
            first.incidents_opened.values().sum::<u64>() + second.incidents_opened.values().sum::<u64>()
                - second.incidents_withdrawn.len() as u64
        };
        assert_eq!(opened, 1, "one_batch={one_batch}");
        let incs = all(&s).await;
        assert_eq!(incs.len(), 1, "one_batch={one_batch}: {incs:?}");
        let inc = &incs[0];
        assert_eq!(inc.category, Category::FederationUnsupported);
        assert_eq!((inc.event_count, inc.users_affected), (1, 1), "one_batch={one_batch}");
        assert_eq!((inc.first_seen, inc.last_seen), (at(0), at(1)));
        let mut sources = inc.sources.clone();
        sources.sort();
        assert_eq!(sources, vec!["entra".to_string(), "passport".to_string()]);
        let events = s
            .list_events(&passportd::store::EventQuery { incident: Some(inc.id), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(events.items.len(), 2, "both copies are kept and joined to the incident");
        // Sent again, nothing changes.
        let (entra, passport) = federated_attempt("corr-f", 1, 0);
        let again = commit_stored(&s, &p, vec![from_passport(passport), stored(entra)]).await;
        assert_eq!(again.duplicates, 2);
        assert_eq!(all(&s).await, incs);
    }
}

/// A gated wrong-password incident that two users' Passport lines opened, one of them a
/// federated user's whose Entra record then decides otherwise: the one line left is below
/// the gate, so the incident goes and the line is held again, as when Entra's record comes
/// first.
#[tokio::test]
async fn a_supersede_that_leaves_an_incident_below_its_gate_takes_it_back() {
    let mut p = Policy::default();
    p.gates.insert(Category::InvalidCredentials, OpenGate { events: 3, users: 2, within: Duration::from_secs(600) });
    let mut outcomes = Vec::new();
    for (name, passport_first, one_batch) in
        [("passport first", true, false), ("passport first, one batch", true, true), ("entra first", false, false)]
    {
        let (_d, s) = store().await;
        let (entra, fed_line) = federated_attempt("corr-a", 2, 0);
        let mut fed_line = fed_line;
        fed_line.user = Some("user-a".into());
        let mut other = ev("passport-b", 50126, Category::InvalidCredentials, 1);
        other.source = "passport";
        other.app = None;
        other.user = Some("user-b".into());
        other.correlation = Some("corr-b".into());
        let batches = match (passport_first, one_batch) {
            (true, true) => vec![vec![from_passport(fed_line), from_passport(other), stored(entra)]],
            (true, false) => vec![vec![from_passport(fed_line), from_passport(other)], vec![stored(entra)]],
            (false, _) => vec![vec![stored(entra)], vec![from_passport(fed_line), from_passport(other)]],
        };
        let mut opened_net = 0i64;
        for batch in batches {
            let r = commit_stored(&s, &p, batch).await;
            opened_net += r.incidents_opened.values().sum::<u64>() as i64 - r.incidents_withdrawn.len() as i64;
        }
        let mut incs: Vec<(Category, i64)> = all(&s).await.iter().map(|i| (i.category, i.event_count)).collect();
        incs.sort_by_key(|(c, _)| c.as_str());
        outcomes.push((name, incs, opened_net));
    }
    for (name, incs, opened) in &outcomes {
        assert_eq!(incs, &[(Category::FederationUnsupported, 1)], "{name}: {outcomes:?}");
        assert_eq!(*opened, 1, "{name}");
    }
}

/// The wrong-password incident the superseded line had joined keeps its other failures:
/// it gives back one count, and its span shrinks to what it still holds. A Passport line
/// whose Entra record agrees stays the counted copy.
#[tokio::test]
async fn a_superseded_line_leaves_the_rest_of_its_incident_as_it_was() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let (fed_entra, fed_passport) = federated_attempt("corr-f", 1, 0);
    let mut wrong = ev("passport-w", 50126, Category::InvalidCredentials, 5);
    wrong.correlation = Some("corr-w".into());
    wrong.source = "passport";
    wrong.app = None;
    wrong.user = None;
    let mut wrong_entra = ev("entra-w", 50126, Category::InvalidCredentials, 6);
    wrong_entra.correlation = Some("corr-w".into());
    commit_stored(&s, &p, vec![from_passport(fed_passport), from_passport(wrong)]).await;
    let before = all(&s).await;
    assert_eq!((before.len(), before[0].event_count, before[0].first_seen), (1, 2, at(0)));
    let r = commit_stored(&s, &p, vec![stored(fed_entra), stored(wrong_entra)]).await;
    assert_eq!(r.superseded, 1);
    assert!(r.incidents_withdrawn.is_empty());
    let incs = all(&s).await;
    let by = |c: Category| incs.iter().find(|i| i.category == c).unwrap().clone();
    let wrong_pw = by(Category::InvalidCredentials);
    assert_eq!(wrong_pw.id, before[0].id);
    assert_eq!((wrong_pw.event_count, wrong_pw.users_affected), (1, 1), "{wrong_pw:?}");
    assert_eq!((wrong_pw.first_seen, wrong_pw.last_seen), (at(5), at(6)));
    let federated = by(Category::FederationUnsupported);
    assert_eq!((federated.event_count, federated.users_affected), (1, 1));
    assert_eq!(incs.len(), 2, "{incs:?}");
}

/// Copies of one attempt are seconds apart: a correlation id seen again more than 12 hours
/// later is a new attempt (counted), and a copy joins the earliest counted failure within
/// 12 hours of it, whether the copies arrive in one batch or one per batch.
#[tokio::test]
async fn correlated_copies_join_only_within_twelve_hours() {
    let copy = |id: &str, minute: i64, source: &'static str| {
        let mut e = ev(id, 50076, Category::MfaRequired, minute);
        e.correlation = Some("corr-1".into());
        e.source = source;
        e.user = Some("user-1".into());
        e
    };
    let scenario = || {
        vec![
            copy("entra-a", 0, "entra"),
            copy("passport-b", 2, "passport"),
            // 13 h after the first: a new attempt, counted.
            copy("passport-c", 13 * 60, "passport"),
            // Its Entra copy: the first is out of reach, so it joins passport-c.
            copy("entra-d", 13 * 60 + 1, "entra"),
            // 11 h after the first: joins it.
            copy("entra-e", 11 * 60, "entra"),
        ]
    };
    for one_batch in [true, false] {
        let (_d, s) = store().await;
        let p = Policy::default();
        if one_batch {
            commit(&s, &p, scenario()).await;
        } else {
            for e in scenario() {
                commit(&s, &p, vec![e]).await;
            }
        }
        let incs = all(&s).await;
        let counted: i64 = incs.iter().map(|i| i.event_count).sum();
        assert_eq!(counted, 2, "one_batch={one_batch}: {incs:?}");
        let linked = s
            .list_events(&passportd::store::EventQuery { limit: 10, ..Default::default() })
            .await
            .unwrap()
            .items
            .iter()
            .filter(|e| e.incident_id.is_some())
            .count();
        assert_eq!(linked, 5, "one_batch={one_batch}: every copy is kept and linked");
    }
}

/// Runs `statements` on the closed store at `path`: how a test puts a store back as an
/// older release left it.
async fn rewind(path: &std::path::Path, statements: &[&str]) {
    use sqlx::Connection;
    let mut old = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    for sql in statements {
        sqlx::query(sql).execute(&mut old).await.unwrap();
    }
    old.close().await.unwrap();
}

/// Stores an Entra failure, closes the store, puts its schema back with `statements` (as
/// an older version left it), and opens it again: the upgrade leads the correlation index
/// by the hour (migration 0012), and a Passport copy arriving after it joins the failure
/// stored before, counted once.
async fn a_copy_after_an_upgrade_joins_a_failure_stored_before_it(statements: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let p = Policy::default();
    let mut entra = ev("entra-1", 50076, Category::MfaRequired, 0);
    entra.correlation = Some("corr-1".into());
    let s = Store::open(&path).await.unwrap();
    commit(&s, &p, vec![entra]).await;
    s.close().await;
    rewind(&path, statements).await;

    let s = Store::open(&path).await.unwrap();
    let index: String = {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE name = 'events_by_correlation'")
            .fetch_one(&mut c)
            .await
            .unwrap()
    };
    assert!(index.contains("occurred_at / 3600000, correlation_id"), "{index}");
    let mut passport = ev("passport-1", 50076, Category::MfaRequired, 1);
    passport.correlation = Some("corr-1".into());
    passport.source = "passport";
    commit(&s, &p, vec![passport]).await;
    let incs = all(&s).await;
    assert_eq!(incs.len(), 1, "{incs:?}");
    assert_eq!(incs[0].event_count, 1, "the copy is not counted again");
    assert_eq!(incs[0].sources, vec!["entra".to_string(), "passport".to_string()]);
}

/// A store written before migration 0006 (correlation and detector indexes led by their
/// key) is upgraded on open, through the day buckets of 0007 to the hour buckets of 0012.
#[tokio::test]
async fn a_copy_after_the_upgrade_joins_a_failure_stored_before_it() {
    a_copy_after_an_upgrade_joins_a_failure_stored_before_it(&[
        "DROP INDEX events_by_correlation",
        "CREATE INDEX events_by_correlation ON events (correlation_id) WHERE correlation_id IS NOT NULL AND outcome = 'failure'",
        "DROP INDEX events_by_ip_key",
        "CREATE INDEX events_by_ip_key ON events (ip_key, occurred_at, user_key, code, outcome)
            WHERE ip_key IS NOT NULL AND outcome = 'failure' AND code IN (50126, 50053)",
        "DROP INDEX events_by_user_key",
        "CREATE INDEX events_by_user_key ON events (user_key, occurred_at, code, outcome, counted)
            WHERE user_key IS NOT NULL AND outcome = 'failure' AND counted = 1 AND code IN (50126, 50053)",
        "DROP INDEX events_lockouts",
        "DELETE FROM _sqlx_migrations WHERE version IN (6, 7, 12)",
    ])
    .await;
}

/// A store at migration 0011 (the correlation index led by the day) is upgraded on open.
#[tokio::test]
async fn a_copy_after_the_hour_bucket_upgrade_joins_a_failure_stored_before_it() {
    a_copy_after_an_upgrade_joins_a_failure_stored_before_it(&[
        "DROP INDEX events_by_correlation",
        "CREATE INDEX events_by_correlation ON events (occurred_at / 86400000, correlation_id)
            WHERE correlation_id IS NOT NULL AND outcome = 'failure' AND counted = 1",
        "DELETE FROM _sqlx_migrations WHERE version = 12",
    ])
    .await;
}

/// A detection's figures come from one window: 12 failures by 10 users in the first,
/// 11 by 11 in a later one, is not "12 failures by 11 users", which no window held.
#[tokio::test]
async fn a_detections_evidence_describes_one_window() {
    let (_d, s) = store().await;
    let p = Policy { quiet_period: Duration::from_secs(2 * 3600), ..Policy::default() };
    let spray = |id: String, user: String, minute: i64| {
        let mut e = ev(&id, 50126, Category::InvalidCredentials, minute);
        e.ip = Some("ipkey-1".into());
        e.user = Some(user);
        e
    };
    let first: Vec<Ev> = (0..12).map(|i| spray(format!("a{i}"), format!("u{}", i % 10), i / 2)).collect();
    let later: Vec<Ev> = (0..11).map(|i| spray(format!("b{i}"), format!("v{i}"), 100 + i / 2)).collect();
    commit(&s, &p, first.iter().chain(&later).cloned().collect()).await;
    let figures = |incs: Vec<passportd::incidents::Incident>| {
        let detection = incs.into_iter().find(|i| i.kind == "password_spray").expect("a spray");
        let evidence = detection.evidence.clone().expect("evidence");
        (
            detection.event_count,
            detection.users_affected,
            evidence["failures_in_window"].as_i64(),
            evidence["distinct_users_in_window"].as_i64(),
        )
    };
    let whole = figures(all(&s).await);
    assert_eq!(whole, (11, 11, Some(11), Some(11)));
    // The evidence says which window: the later one, ending at its last failure.
    let spray = all(&s).await.into_iter().find(|i| i.kind == "password_spray").expect("a spray");
    let evidence = spray.evidence.expect("evidence");
    assert_eq!(
        (evidence["window_start"].as_str(), evidence["window_end"].as_str()),
        (Some("2026-03-04T17:35:00Z"), Some("2026-03-04T17:45:00Z")),
        "{evidence}"
    );
    // The same input in two batches: the same figures.
    let (_d2, s2) = store().await;
    commit(&s2, &p, first).await;
    commit(&s2, &p, later).await;
    assert_eq!(figures(all(&s2).await), whole);
}

#[tokio::test]
async fn password_spray_detector_opens_its_own_incident_with_counts() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let evs: Vec<Ev> = (0..12)
        .map(|i| {
            let mut e = ev(&format!("sp{i}"), 50126, Category::InvalidCredentials, i / 2);
            e.ip = Some("ipkey-1".into());
            e
        })
        .collect();
    // Another IP's failure in the same minutes is not part of the spray.
    let mut other = ev("elsewhere", 50126, Category::InvalidCredentials, 2);
    other.ip = Some("ipkey-2".into());
    let r = commit(&s, &p, evs.into_iter().chain([other]).collect()).await;
    assert_eq!(r.detections.get("password_spray"), Some(&1));
    let incs = all(&s).await;
    let spray = incs.iter().find(|i| i.fingerprint.contains("password_spray")).expect("spray incident");
    assert_eq!(spray.users_affected, 12);
    assert_eq!(spray.category, Category::InvalidCredentials);
    // Its events are the failures its window counted (they belong to their own failure
    // incident too), newest first.
    let listed = detector_events(&s, spray.id).await;
    assert_eq!(listed.len(), 12, "{listed:?}");
    assert!(!listed.contains(&"elsewhere".to_string()));
    assert_eq!(listed.first().map(String::as_str), Some("sp11"));
    // One user failing many times from many IPs is brute force, not spray.
    let (_d2, s2) = store().await;
    let evs: Vec<Ev> = (0..10)
        .map(|i| {
            let mut e = ev(&format!("bf{i}"), 50126, Category::InvalidCredentials, 0);
            e.user = Some("victim".into());
            e.ip = Some(format!("ip{i}"));
            e
        })
        .collect();
    let r = commit(&s2, &p, evs).await;
    assert_eq!(r.detections.get("brute_force"), Some(&1));
    assert_eq!(r.detections.get("password_spray"), None);
    let brute = all(&s2).await.into_iter().find(|i| i.kind == "brute_force").expect("brute-force incident");
    assert_eq!(detector_events(&s2, brute.id).await.len(), 10);
}

/// One user's credential failure, from an IP of its own.
fn victim_failure(id: &str, minute: i64) -> Ev {
    let mut e = ev(id, 50126, Category::InvalidCredentials, minute);
    e.user = Some("victim".into());
    e.ip = Some(format!("ip-{id}"));
    e
}

/// The detectors' incidents, as text that does not depend on ids.
async fn detections(s: &Store) -> Vec<String> {
    let mut out: Vec<String> = all(s)
        .await
        .into_iter()
        .filter(|i| i.kind != "failure")
        .map(|i| {
            format!(
                "{} {:?} reopened {} first {} last {} resolved {:?}",
                i.kind, i.status, i.reopened_count, i.first_seen, i.last_seen, i.resolved_at
            )
        })
        .collect();
    out.sort();
    out
}

/// A late failure completes the windows of the failures after it: nine failures of one
/// user, then a tenth from earlier (a slower export), is brute force, as the ten are in
/// one batch.
#[tokio::test]
async fn a_late_failure_completes_a_detectors_window() {
    let nine = || (0..9).map(|i| victim_failure(&format!("bf{i}"), i)).collect::<Vec<_>>();
    let (_d, split) = store().await;
    let p = Policy::default();
    let r = commit(&split, &p, nine()).await;
    assert_eq!(r.detections.get("brute_force"), None);
    let r = commit(&split, &p, vec![victim_failure("late", 4)]).await;
    assert_eq!(r.detections.get("brute_force"), Some(&1), "{r:?}");
    let (_d2, whole) = store().await;
    commit(&whole, &p, nine().into_iter().chain([victim_failure("late", 4)]).collect()).await;
    assert_eq!(detections(&split).await, detections(&whole).await);
    assert_eq!(detections(&whole).await.len(), 1);
}

/// An attack that goes on for hours, met in every window, is one detection incident that
/// never resolved in between, however the failures are cut into batches.
#[tokio::test]
async fn a_long_attack_is_one_detection_in_one_batch_or_many() {
    let attack = || (0..150).map(|i| victim_failure(&format!("long{i}"), i)).collect::<Vec<_>>();
    let p = Policy::default();
    let (_d, whole) = store().await;
    commit(&whole, &p, attack()).await;
    let (_d2, split) = store().await;
    for part in attack().chunks(20) {
        let part: Vec<Ev> = part.iter().map(|e| victim_failure(&e.id, e.minute)).collect();
        commit(&split, &p, part).await;
    }
    let found = detections(&whole).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("reopened 0"), "{found:?}");
    assert_eq!(found, detections(&split).await);
}

/// One attack in three files replayed in any order (its start, its rest, and a later
/// sign-in that moves the clock past its quiet period) is one detection incident with the
/// same start, end, resolution and no reopen.
#[tokio::test]
async fn a_detection_does_not_depend_on_the_order_of_its_files() {
    // A short quiet period: the detections recorded along the attack are a few minutes
    // apart, and the part that arrives late must still reach its incident.
    let p = Policy { quiet_period: Duration::from_secs(120), ..Policy::default() };
    let start = || (0..12).map(|i| victim_failure(&format!("a{i}"), i)).collect::<Vec<_>>();
    let rest = || (12..41).map(|i| victim_failure(&format!("b{i}"), i)).collect::<Vec<_>>();
    let later = || vec![ev("later", 50079, Category::MfaRequired, 200)];
    let mut outcomes = Vec::new();
    for order in ["abc", "acb", "bac", "cba"] {
        let (_d, s) = store().await;
        for part in order.chars() {
            let events = match part {
                'a' => start(),
                'b' => rest(),
                _ => later(),
            };
            commit(&s, &p, events).await;
        }
        outcomes.push((order, detections(&s).await));
    }
    assert_eq!(outcomes[0].1.len(), 1, "{outcomes:?}");
    assert!(outcomes[0].1[0].contains("reopened 0"), "{outcomes:?}");
    for (order, found) in &outcomes[1..] {
        assert_eq!(found, &outcomes[0].1, "{order} against abc");
    }
}

/// The record ids of the events listed for incident `id`.
async fn detector_events(s: &Store, id: i64) -> Vec<String> {
    let page = s
        .list_events(&passportd::store::EventQuery { incident: Some(id), limit: 100, ..Default::default() })
        .await
        .unwrap();
    page.items.into_iter().filter_map(|e| e.record_id).collect()
}

#[tokio::test]
async fn lockout_wave_detector() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let evs: Vec<Ev> = (0..5).map(|i| ev(&format!("l{i}"), 50053, Category::AccountLocked, i)).collect();
    let r = commit(&s, &p, evs).await;
    assert_eq!(r.detections.get("lockout_wave"), Some(&1));
    let wave = all(&s).await.into_iter().find(|i| i.kind == "lockout_wave").expect("wave incident");
    assert_eq!(detector_events(&s, wave.id).await, vec!["l4", "l3", "l2", "l1", "l0"]);
}

/// Five users locked out, each seen both in a Mac's Passport log and in Entra (one
/// correlation id per attempt): a wave of five failures by five users, not ten, whichever
/// copy comes first, in one batch or one per batch, and with the windows read from the
/// store (a fresh handle per batch) or from the writer's memory.
#[tokio::test]
async fn a_lockout_wave_seen_on_both_sides_counts_each_attempt_once() {
    let attempt = |i: i64| {
        let mut entra = ev(&format!("entra-{i}"), 50053, Category::AccountLocked, i);
        entra.correlation = Some(format!("corr-{i}"));
        entra.user = Some(format!("user-{i}"));
        let mut passport = ev(&format!("passport-{i}"), 50053, Category::AccountLocked, i);
        passport.correlation = Some(format!("corr-{i}"));
        passport.source = "passport";
        passport.user = Some(format!("user-{i}"));
        (entra, passport)
    };
    for passport_first in [false, true] {
        for (one_batch, fresh_handles) in [(true, false), (false, false), (false, true)] {
            let case = format!("passport_first={passport_first} one_batch={one_batch} fresh={fresh_handles}");
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.db");
            let p = Policy::default();
            let mut s = Store::open(&path).await.unwrap();
            let mut order = Vec::new();
            for i in 0..5 {
                let (entra, passport) = attempt(i);
                if passport_first {
                    order.extend([passport, entra]);
                } else {
                    order.extend([entra, passport]);
                }
            }
            if one_batch {
                commit(&s, &p, order).await;
            } else {
                for e in order {
                    if fresh_handles {
                        s.close().await;
                        s = Store::open(&path).await.unwrap();
                    }
                    commit(&s, &p, vec![e]).await;
                }
            }
            let waves: Vec<_> = all(&s).await.into_iter().filter(|i| i.kind == "lockout_wave").collect();
            assert_eq!(waves.len(), 1, "{case}: {waves:?}");
            let evidence = waves[0].evidence.clone().expect("evidence");
            assert_eq!(
                (
                    waves[0].event_count,
                    waves[0].users_affected,
                    evidence["failures_in_window"].as_i64(),
                    evidence["distinct_users_in_window"].as_i64()
                ),
                (5, 5, Some(5), Some(5)),
                "{case}"
            );
        }
    }
}

/// A password spray whose every record Entra delivered in two shapes (the same record
/// id, another time precision: stored again, uncounted): its failures are the attempts.
#[tokio::test]
async fn a_spray_seen_in_two_shapes_counts_each_attempt_once() {
    for one_batch in [true, false] {
        let (_d, s) = store().await;
        let p = Policy::default();
        let users = i64::from(p.detectors.spray_users);
        let mut evs = Vec::new();
        for i in 0..users {
            let mut e = ev(&format!("r{i}"), 50126, Category::InvalidCredentials, i);
            e.ip = Some("ipkey-1".into());
            e.correlation = Some(format!("corr-{i}"));
            let mut again = e.clone();
            again.minute += 1;
            evs.extend([e, again]);
        }
        if one_batch {
            commit(&s, &p, evs).await;
        } else {
            for e in evs {
                commit(&s, &p, vec![e]).await;
            }
        }
        let spray = all(&s).await.into_iter().find(|i| i.kind == "password_spray").expect("a spray");
        let evidence = spray.evidence.clone().expect("evidence");
        assert_eq!(
            (evidence["failures_in_window"].as_i64(), evidence["distinct_users_in_window"].as_i64()),
            (Some(users), Some(users)),
            "one_batch={one_batch}"
        );
    }
}

/// A wave whose lockouts arrive one per batch is seen from the stored ones (the window
/// is read back from the store), once; and so is a wave that an upgrade to migration
/// 0007 (which indexes the lockouts anew) interrupts half-way.
#[tokio::test]
async fn a_lockout_wave_across_batches_and_an_upgrade_is_seen_once() {
    for upgrade_midway in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let p = Policy::default();
        let mut s = Store::open(&path).await.unwrap();
        let mut detections = 0;
        for i in 0..5 {
            if upgrade_midway && i == 3 {
                s.close().await;
                // As version 0006 left it: half-day correlation buckets, no lockout index.
                rewind(
                    &path,
                    &[
                        "DROP INDEX events_by_correlation",
                        "CREATE INDEX events_by_correlation ON events (occurred_at / 43200000, correlation_id)
                            WHERE correlation_id IS NOT NULL AND outcome = 'failure' AND counted = 1",
                        "DROP INDEX events_lockouts",
                        "DELETE FROM _sqlx_migrations WHERE version = 7",
                    ],
                )
                .await;
                s = Store::open(&path).await.unwrap();
            }
            let r = commit(&s, &p, vec![ev(&format!("l{i}"), 50053, Category::AccountLocked, i)]).await;
            detections += r.detections.get("lockout_wave").copied().unwrap_or(0);
        }
        assert_eq!(detections, 1, "upgrade_midway={upgrade_midway}");
        let waves: Vec<_> = all(&s).await.into_iter().filter(|i| i.kind == "lockout_wave").collect();
        assert_eq!(waves.len(), 1, "upgrade_midway={upgrade_midway}: {waves:?}");
        assert_eq!(waves[0].users_affected, 5, "upgrade_midway={upgrade_midway}: {waves:?}");
    }
}

/// A store holding an MFA failure (its incident resolved long ago) and, 40 days later,
/// a credential failure: the retention tests' starting point.
async fn store_with_old_and_new_failures() -> (tempfile::TempDir, Store) {
    let (d, s) = store().await;
    let p = Policy::default();
    commit(&s, &p, vec![ev("old", 50076, Category::MfaRequired, 0)]).await;
    commit(&s, &p, vec![ev("new", 50126, Category::InvalidCredentials, 40 * 24 * 60)]).await;
    (d, s)
}

#[tokio::test]
async fn pruning_removes_old_events_and_old_resolved_incidents_only() {
    let (_d, s) = store_with_old_and_new_failures().await;
    let pruned = s.prune(Duration::from_secs(30 * 86_400), Duration::from_secs(20 * 86_400), 1).await.unwrap();
    assert_eq!(pruned.events, 1);
    assert_eq!(pruned.incidents, 1, "the MFA incident resolved 40 days ago");
    let incs = all(&s).await;
    assert_eq!(incs.len(), 1);
    assert_eq!(incs[0].category, Category::InvalidCredentials);
    // The pruned failure sent again (the same export replayed) is not stored and counted a
    // second time, and neither is anything else older than what retention keeps; a late
    // record inside the kept window still is.
    let again = commit(&s, &Policy::default(), vec![ev("old", 50076, Category::MfaRequired, 0)]).await;
    assert_eq!(again.expired_by_source.get("entra"), Some(&1), "{again:?}");
    assert!(again.stored.is_empty() && again.incidents_opened.is_empty(), "{again:?}");
    let kept = commit(&s, &Policy::default(), vec![ev("late", 50076, Category::MfaRequired, 11 * 24 * 60)]).await;
    assert!(kept.expired_by_source.is_empty());
    assert_eq!(kept.stored.values().sum::<u64>(), 1);
    assert_eq!(all(&s).await.len(), 2, "the late failure opens its own (already quiet) incident");
}

/// The writer's connection does not enforce foreign keys (it sets every incident id
/// itself); retention deletes incidents on the other pool, so an event kept longer than
/// its incident must still lose the link (ON DELETE SET NULL), not point at nothing.
#[tokio::test]
async fn an_event_outliving_its_pruned_incident_loses_the_link() {
    let (_d, s) = store_with_old_and_new_failures().await;
    let pruned = s.prune(Duration::from_secs(60 * 86_400), Duration::from_secs(20 * 86_400), 100).await.unwrap();
    assert_eq!((pruned.events, pruned.incidents), (0, 1), "the MFA incident goes, its event stays");
    let events = s.list_events(&passportd::store::EventQuery { limit: 10, ..Default::default() }).await.unwrap();
    let old = events.items.iter().find(|e| e.record_id.as_deref() == Some("old")).expect("the old event is kept");
    assert_eq!(old.incident_id, None, "{old:?}");
    let new = events.items.iter().find(|e| e.record_id.as_deref() == Some("new")).expect("the new event");
    assert!(new.incident_id.is_some());
}

#[tokio::test]
async fn pagination_never_skips_or_repeats_while_incidents_arrive() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let codes = [50076u32, 50079, 50074, 500121, 50158, 53003, 53004, 50126, 50053, 50057, 50055, 50034];
    let mut n = 0;
    for (i, code) in codes.iter().enumerate() {
        let mut e = ev(&format!("e{i}"), *code, Category::Other, i as i64);
        e.app = Some("app-page");
        commit(&s, &p, vec![e]).await;
        n += 1;
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut extra = 0;
    for sort in [IncidentSort::LastSeen] {
        loop {
            let page = s
                .list_incidents(&IncidentQuery {
                    status: None,
                    sort,
                    limit: 5,
                    cursor: cursor.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
            seen.extend(page.items.iter().map(|i| i.id));
            // Newer incidents arriving between pages land before the cursor and are not
            // part of this walk; older pages stay stable.
            let mut e = ev(&format!("late{extra}"), 90000 + extra, Category::Other, 1000 + extra as i64);
            e.app = Some("app-page");
            commit(&s, &p, vec![e]).await;
            extra += 1;
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "no repeats: {seen:?}");
    assert_eq!(seen.len(), n, "every incident present at the start seen once");
}

#[tokio::test]
async fn a_burst_early_in_a_long_batch_is_still_detected() {
    // Replay commits large batches that can span hours of event time: a spray in the
    // first minutes must be found however the events were cut into batches.
    let (_d, s) = store().await;
    let p = Policy::default();
    let mut evs: Vec<Ev> = (0..12)
        .map(|i| {
            let mut e = ev(&format!("early{i}"), 50126, Category::InvalidCredentials, i / 3);
            e.ip = Some("ipkey-early".into());
            e
        })
        .collect();
    for i in 0..30 {
        let mut e = ev(&format!("later{i}"), 50126, Category::InvalidCredentials, 60 + i * 6);
        e.ip = Some(format!("other-{i}"));
        evs.push(e);
    }
    let r = commit(&s, &p, evs).await;
    assert_eq!(r.detections.get("password_spray"), Some(&1), "{r:?}");
    let spray = all(&s).await.into_iter().find(|i| i.kind == "password_spray").expect("spray incident");
    assert_eq!(spray.first_seen, at(3), "the window first held 10 users at minute 3");
    assert_eq!(spray.users_affected, 12);
}

/// A pseudo-random mix of credential failures (and some MFA failures) over two hours from
/// three IPs and fifteen users, with correlated Passport copies (stored uncounted), a
/// brute-force burst and one batch of data an hour behind the rest, cut into batches.
fn detector_scenario() -> Vec<Vec<Ev>> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut events = Vec::new();
    let mut pending_records: Vec<(usize, Ev)> = Vec::new();
    for i in 0..600_i64 {
        let code = match next(6) {
            0 => 50053,
            1 => 50076,
            _ => 50126,
        };
        let category = match code {
            50053 => Category::AccountLocked,
            50076 => Category::MfaRequired,
            _ => Category::InvalidCredentials,
        };
        let mut e = ev(&format!("d{i}"), code, category, i / 5);
        e.user = Some(format!("user-{}", next(15)));
        e.ip = Some(format!("ip-{}", next(3)));
        if i % 7 == 0 {
            e.correlation = Some(format!("corr-{i}"));
            let mut copy = ev(&format!("d{i}-passport"), code, category, i / 5);
            copy.user = e.user.clone();
            copy.ip = e.ip.clone();
            copy.correlation = e.correlation.clone();
            copy.source = "passport";
            events.push(e);
            events.push(copy);
        } else {
            events.push(e);
        }
        if i % 11 == 0 {
            // A Passport line naming its user, counted first, and 30 records later its
            // Entra record with another verdict, which supersedes it: the line leaves the
            // user's counted credential failures (brute force) wherever they are kept.
            let mut line = ev(&format!("d{i}-line"), 50126, Category::InvalidCredentials, i / 5);
            line.user = Some(format!("user-{}", i % 4));
            line.correlation = Some(format!("fed-{i}"));
            line.source = "passport";
            line.passport_format = true;
            let mut record = ev(&format!("d{i}-fed"), 50126, Category::FederationUnsupported, i / 5);
            record.user = line.user.clone();
            record.correlation = line.correlation.clone();
            events.push(line);
            pending_records.push((events.len() + 30, record));
        }
        while pending_records.first().is_some_and(|(due, _)| *due <= events.len()) {
            events.push(pending_records.remove(0).1);
        }
        if i == 300 {
            for k in 0..12 {
                let mut burst = ev(&format!("burst{k}"), 50126, Category::InvalidCredentials, i / 5);
                burst.user = Some("victim".into());
                burst.ip = Some(format!("burst-ip-{k}"));
                events.push(burst);
            }
        }
    }
    events.extend(pending_records.into_iter().map(|(_, record)| record));
    let mut batches: Vec<Vec<Ev>> = Vec::new();
    let mut rest = events.into_iter().peekable();
    let mut size = 1;
    while rest.peek().is_some() {
        batches.push(rest.by_ref().take(size).collect());
        size = size % 37 + 5;
    }
    // An hour behind the clock: its windows are read from the store.
    let late = (0..20)
        .map(|k| {
            let mut e = ev(&format!("late{k}"), 50126, Category::InvalidCredentials, 55 + k / 4);
            e.user = Some(format!("late-user-{k}"));
            e.ip = Some("ip-late".into());
            e
        })
        .collect();
    batches.insert(batches.len() - 3, late);
    batches
}

/// What the detectors and the incident engine decided, without wall-clock fields.
async fn decided(s: &Store) -> Vec<String> {
    all(s)
        .await
        .iter()
        .map(|i| {
            format!(
                "{} {} {:?} {:?} {} {} {} {} {:?}",
                i.id,
                i.fingerprint,
                i.status,
                i.category,
                i.first_seen,
                i.last_seen,
                i.event_count,
                i.users_affected,
                i.evidence
            )
        })
        .collect()
}

/// How the scenarios of the write path's in-memory copies commit their batches: through
/// one handle (the copy in use), a handle opened afresh for every batch (an empty copy,
/// filled from the store), two handles taking turns (each must forget its copy when the
/// other commits), or one handle applying three batches per transaction (as replay does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    OneHandle,
    FreshHandlePerBatch,
    TwoHandlesTakingTurns,
    BatchesSharingTransactions,
}

/// Every [`Mode`], the first the reference the others must match.
const HANDLE_MODES: [Mode; 4] =
    [Mode::OneHandle, Mode::FreshHandlePerBatch, Mode::TwoHandlesTakingTurns, Mode::BatchesSharingTransactions];

/// Two handles on one store, for every [`Mode`].
struct Handles {
    path: std::path::PathBuf,
    first: Store,
    second: Store,
    /// The transaction batches share ([`Mode::BatchesSharingTransactions`]).
    open: Option<passportd::store::WriteTx>,
}

impl Handles {
    async fn open(path: std::path::PathBuf) -> Self {
        let first = Store::open(&path).await.unwrap();
        let second = Store::open(&path).await.unwrap();
        Handles { path, first, second, open: None }
    }

    /// Commits batch `n` as `mode` does; returns what it decided and the handle that
    /// wrote it. Call [`Handles::finish`] after the last batch.
    async fn commit(
        &mut self,
        mode: Mode,
        n: usize,
        evs: Vec<Ev>,
        p: &Policy,
    ) -> (passportd::store::BatchResult, &Store) {
        if mode == Mode::BatchesSharingTransactions {
            let batch = Batch { events: evs.into_iter().map(stored).collect(), ..Batch::default() };
            let tx = match &mut self.open {
                Some(tx) => tx,
                open => open.insert(self.first.begin_write().await.unwrap()),
            };
            let r = self.first.apply_batch(tx, &batch, p).await.unwrap();
            if n % 3 == 2 {
                self.finish().await;
            }
            return (r, &self.first);
        }
        let handle = self.for_batch(mode, n).await;
        (commit(handle, p, evs).await, handle)
    }

    /// Commits the transaction still open, if any.
    async fn finish(&mut self) {
        if let Some(tx) = self.open.take() {
            tx.commit().await.unwrap();
        }
    }

    /// The handle batch `n` commits through in `mode`.
    async fn for_batch(&mut self, mode: Mode, n: usize) -> &Store {
        match mode {
            Mode::FreshHandlePerBatch => {
                self.first.close().await;
                self.first = Store::open(&self.path).await.unwrap();
                &self.first
            }
            Mode::TwoHandlesTakingTurns if n % 2 == 1 => &self.second,
            _ => &self.first,
        }
    }
}

/// The detectors read their windows from an in-memory copy of the recent credential
/// failures when it holds them (issue #8). What they find must be exactly what reading
/// the windows from the store finds, in every way of committing the batches
/// ([`HANDLE_MODES`]).
#[tokio::test]
async fn detections_do_not_depend_on_the_in_memory_copy_of_recent_failures() {
    let p = Policy::default();
    let mut outcomes = Vec::new();
    for mode in HANDLE_MODES {
        let dir = tempfile::tempdir().unwrap();
        let mut handles = Handles::open(dir.path().join("p.db")).await;
        let mut detections = std::collections::BTreeMap::new();
        let mut copy_in_use = false;
        for (n, batch) in detector_scenario().into_iter().enumerate() {
            let (r, handle) = handles.commit(mode, n, batch, &p).await;
            for (detector, k) in r.detections {
                *detections.entry(detector).or_insert(0) += k;
            }
            copy_in_use |= handle.detector_rows_in_memory() > 0;
        }
        handles.finish().await;
        assert!(copy_in_use, "{mode:?}: the copy was never used");
        assert!(detections.len() == 3, "{mode:?}: every detector fires in this scenario: {detections:?}");
        outcomes.push((mode, detections, decided(&handles.first).await));
    }
    for (mode, detections, incidents) in &outcomes[1..] {
        assert_eq!(detections, &outcomes[0].1, "{mode:?} against {:?}", outcomes[0].0);
        assert_eq!(incidents, &outcomes[0].2, "{mode:?} against {:?}", outcomes[0].0);
    }
}

/// Batches of Entra failures, each with its own correlation id, in which every batch after
/// the first also carries Passport lines of attempts Entra logged in earlier batches (the
/// previous one and three before) and in this one. Batches hold more failures with a
/// correlation id than the filter needs to be filled.
fn correlation_scenario() -> Vec<Vec<Ev>> {
    let entra = |b: i64, i: i64| {
        let mut e = ev(&format!("e{b}-{i}"), 50076, Category::MfaRequired, b * 30 + i % 20);
        e.correlation = Some(format!("corr-{b}-{i}"));
        e
    };
    let passport = |b: i64, i: i64| {
        let mut e = ev(&format!("p{b}-{i}"), 50076, Category::MfaRequired, b * 30 + i % 20);
        e.correlation = Some(format!("corr-{b}-{i}"));
        e.source = "passport";
        e.user = None;
        e
    };
    (0..8)
        .map(|b| {
            let mut batch: Vec<Ev> = (0..40).map(|i| entra(b, i)).collect();
            if b > 0 {
                batch.push(passport(b - 1, b));
                batch.push(passport(b, 7));
            }
            if b > 2 {
                batch.push(passport(b - 3, 39));
            }
            batch
        })
        .collect()
}

/// The correlation join rules out in memory the correlation ids the store cannot hold
/// (issue #8). It must join exactly what lookups in the store join, in every way of
/// committing the batches ([`HANDLE_MODES`]: with the filter in use, filled afresh, or
/// forgotten when another handle commits). Every Passport line joins its Entra record,
/// uncounted.
#[tokio::test]
async fn correlation_joins_do_not_depend_on_the_in_memory_filter() {
    let p = Policy::default();
    let entra_records = correlation_scenario().iter().flatten().filter(|e| e.source == "entra").count() as i64;
    let mut outcomes = Vec::new();
    for mode in HANDLE_MODES {
        let dir = tempfile::tempdir().unwrap();
        let mut handles = Handles::open(dir.path().join("p.db")).await;
        let mut filter_in_use = false;
        for (n, batch) in correlation_scenario().into_iter().enumerate() {
            let (_, handle) = handles.commit(mode, n, batch, &p).await;
            filter_in_use |= handle.correlation_ids_in_memory() > 0;
        }
        handles.finish().await;
        assert!(filter_in_use, "{mode:?}: the filter was never used");
        let counted: i64 = all(&handles.first).await.iter().map(|i| i.event_count).sum();
        assert_eq!(counted, entra_records, "{mode:?}: every Passport line joined its Entra record");
        outcomes.push((mode, decided(&handles.first).await));
    }
    for (mode, incidents) in &outcomes[1..] {
        assert_eq!(incidents, &outcomes[0].1, "{mode:?} against {:?}", outcomes[0].0);
    }
}

/// The filter answers only for the buckets it covers. Filled for failures after noon, it
/// covers their day only: a Passport line just after midnight, whose Entra record was
/// stored before midnight by another handle, is looked up in the store and joins it.
#[tokio::test]
async fn a_lookup_reaching_into_a_day_the_filter_does_not_cover_goes_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let p = Policy::default();
    // T0 is 16:00 UTC: minute 480 is midnight.
    let failure = |id: &str, minute: i64, source: &'static str| {
        let mut e = ev(id, 50076, Category::MfaRequired, minute);
        e.correlation = Some(format!("corr-{id}"));
        e.source = source;
        e
    };
    {
        let earlier = Store::open(&path).await.unwrap();
        commit(&earlier, &p, vec![failure("x", 450, "entra")]).await;
        earlier.close().await;
    }
    let s = Store::open(&path).await.unwrap();
    commit(&s, &p, (0..40).map(|i| failure(&format!("noon{i}"), 480 + 13 * 60, "entra")).collect()).await;
    assert!(s.correlation_ids_in_memory() >= 40, "the filter was filled");
    let mut line = failure("x", 510, "passport");
    line.id = "line-x".into();
    line.user = None;
    commit(&s, &p, vec![line]).await;
    let counted: i64 = all(&s).await.iter().map(|i| i.event_count).sum();
    assert_eq!(counted, 41, "the line joined its Entra record of the day before");
}

/// A backfill: with the filter filled for today, a batch of enough Passport lines from
/// the day before to fill it again (their Entra records stored by another handle) fills
/// it from that earlier day. Every line joins its record, and a line of today still
/// joins its own afterwards.
#[tokio::test]
async fn a_backfill_of_an_earlier_day_refills_the_filter_and_every_line_joins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let p = Policy::default();
    // T0 is 16:00 UTC: minute 480 is midnight.
    let failure = |id: String, minute: i64, source: &'static str| {
        let mut e = ev(&id, 50076, Category::MfaRequired, minute);
        e.correlation = Some(format!("corr-{id}"));
        e.source = source;
        e
    };
    let line = |id: String, minute: i64| {
        let mut e = failure(id.clone(), minute, "passport");
        e.id = format!("line-{id}");
        e.user = None;
        e
    };
    {
        let earlier = Store::open(&path).await.unwrap();
        commit(&earlier, &p, (0..40).map(|i| failure(format!("old{i}"), 100 + i, "entra")).collect()).await;
        earlier.close().await;
    }
    let s = Store::open(&path).await.unwrap();
    commit(&s, &p, (0..40).map(|i| failure(format!("new{i}"), 480 + 13 * 60 + i, "entra")).collect()).await;
    assert_eq!(s.correlation_ids_in_memory(), 40, "the filter was filled for today");
    commit(&s, &p, (0..40).map(|i| line(format!("old{i}"), 101 + i)).collect()).await;
    // Both days' 80 Entra ids read back, then the 40 lines' own ids taken in.
    assert_eq!(s.correlation_ids_in_memory(), 120, "filled again, from the day before");
    commit(&s, &p, vec![line("new7".into(), 480 + 13 * 60 + 30)]).await;
    let counted: i64 = all(&s).await.iter().map(|i| i.event_count).sum();
    assert_eq!(counted, 80, "every line joined its Entra record");
}

/// Once an opening gate adopts held failures, each later failure of the batch looks its
/// copies up in the store, through the filter: a Passport line joins its Entra record
/// whether that was stored (and held) by an earlier batch or earlier in this one.
#[tokio::test]
async fn after_a_gate_opens_lines_still_join_their_entra_records_through_the_filter() {
    let (_d, s) = store().await;
    let mut p = Policy::default();
    p.gates.insert(Category::InvalidCredentials, OpenGate { events: 3, users: 0, within: Duration::from_secs(600) });
    let failure = |id: &str, corr: &str, minute: i64, source: &'static str| {
        let mut e = ev(id, 50126, Category::InvalidCredentials, minute);
        e.correlation = Some(format!("corr-{corr}"));
        e.source = source;
        if source == "passport" {
            e.user = None;
        }
        e
    };
    let others = |batch: i64| {
        (0..40).map(move |i| {
            let mut e = ev(&format!("mfa{batch}-{i}"), 50076, Category::MfaRequired, 1);
            e.correlation = Some(format!("corr-mfa{batch}-{i}"));
            e
        })
    };
    let mut first: Vec<Ev> = others(1).collect();
    first.push(failure("y", "y", 0, "entra"));
    commit(&s, &p, first).await;
    assert!(s.correlation_ids_in_memory() > 0, "the filter is in use");
    assert!(all(&s).await.iter().all(|i| i.category != Category::InvalidCredentials), "y is held");
    let mut second = vec![failure("a2", "a2", 1, "entra"), failure("a3", "a3", 2, "entra")];
    second.extend([
        failure("z", "z", 3, "entra"),
        failure("line-y", "y", 3, "passport"),
        failure("line-z", "z", 4, "passport"),
    ]);
    second.extend(others(2));
    commit(&s, &p, second).await;
    let counted: Vec<i64> =
        all(&s).await.iter().filter(|i| i.category == Category::InvalidCredentials).map(|i| i.event_count).collect();
    assert_eq!(counted, [4], "y, a2, a3 and z count; both lines joined their records");
}

/// A handle opened on a store that already holds many counted failures reads all of their
/// correlation ids back (page after page, day after day) before it rules any lookup out:
/// Passport lines of attempts spread over the whole store all join their Entra records.
#[tokio::test]
async fn a_fresh_handle_reads_every_stored_correlation_id_before_ruling_one_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let p = Policy::default();
    // Over two UTC days (T0 is 16:00), each with more ids than one page of the fill reads
    // (8192).
    let total = 17_000i64;
    let minute = |i: i64| 480 + i * 2 * 1440 / total;
    {
        let writer = Store::open(&path).await.unwrap();
        for chunk in (0..total).collect::<Vec<_>>().chunks(3_000) {
            let evs = chunk
                .iter()
                .map(|&i| {
                    let mut e = ev(&format!("e{i}"), 50076, Category::MfaRequired, minute(i));
                    e.correlation = Some(format!("corr-{i:05}"));
                    e
                })
                .collect();
            commit(&writer, &p, evs).await;
        }
        writer.close().await;
    }
    let counted = |s: &Store| {
        let s = s.clone();
        async move { all(&s).await.iter().map(|i| i.event_count).sum::<i64>() }
    };
    let s = Store::open(&path).await.unwrap();
    assert_eq!(counted(&s).await, total);
    // Forty lines: copies of the ids read last on each day (its second page).
    let lines: Vec<Ev> = (0..20)
        .flat_map(|k| [total / 2 - 1 - k * 7, total - 1 - k * 7])
        .map(|i| {
            let mut e = ev(&format!("p{i}"), 50076, Category::MfaRequired, minute(i));
            e.correlation = Some(format!("corr-{i:05}"));
            e.source = "passport";
            e.user = None;
            e
        })
        .collect();
    commit(&s, &p, lines).await;
    assert!(s.correlation_ids_in_memory() >= 40, "the filter was filled: {}", s.correlation_ids_in_memory());
    assert_eq!(counted(&s).await, total, "every line joined its Entra record");
}

/// A batch applied and then rolled back leaves nothing in the detectors' memory: a spray
/// that only the rolled-back failures would complete is not detected.
#[tokio::test]
async fn a_rolled_back_batch_leaves_no_failures_in_the_detectors_memory() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let from_one_ip = |id: &str, minute: i64| {
        let mut e = ev(id, 50126, Category::InvalidCredentials, minute);
        e.ip = Some("ip-x".into());
        e
    };
    commit(&s, &p, vec![from_one_ip("first", 0)]).await;
    assert!(s.detector_rows_in_memory() > 0, "the copy holds the first failure");
    {
        let mut tx = s.begin_write().await.unwrap();
        let evs = (0..8).map(|i| stored(from_one_ip(&format!("gone{i}"), 1))).collect();
        let r = s.apply_batch(&mut tx, &Batch { events: evs, ..Batch::default() }, &p).await.unwrap();
        assert_eq!(r.detections.get("password_spray"), None);
        // Dropped without committing: rolled back.
    }
    let r = commit(&s, &p, vec![from_one_ip("last", 2)]).await;
    assert_eq!(r.detections.get("password_spray"), None, "two users from ip-x are stored, not ten");
    let evs = (0..8).map(|i| from_one_ip(&format!("kept{i}"), 3)).collect();
    let r = commit(&s, &p, evs).await;
    assert_eq!(r.detections.get("password_spray"), Some(&1), "ten users from ip-x once they are stored");
}

/// A batch of Passport lines whose Entra records are all stored looks up more
/// `[bucket, id]` pairs than one correlation statement takes (25,000; 25 buckets per
/// line): every line still joins its record, counted once, whichever statement found it.
#[tokio::test]
async fn thousands_of_correlation_lookups_in_one_batch_each_join_once() {
    let (_d, s) = store().await;
    let p = Policy::default();
    let total = 2_500i64;
    let attempt = |i: i64, source: &'static str| {
        let mut e = ev(&format!("{source}-{i}"), 50076, Category::MfaRequired, 1 + i % 50);
        e.correlation = Some(format!("corr-{i:05}"));
        e.source = source;
        if source == "passport" {
            e.user = None;
        }
        e
    };
    commit(&s, &p, (0..total).map(|i| attempt(i, "entra")).collect()).await;
    commit(&s, &p, (0..total).map(|i| attempt(i, "passport")).collect()).await;
    let counted: i64 = all(&s).await.iter().map(|i| i.event_count).sum();
    assert_eq!(counted, total, "every line joined its Entra record");
}

/// The background checkpointer copies committed pages into the store's file while the
/// write path goes on, and leaves the write path's in-memory copies in place: a checkpoint
/// that made the writer's connection see another commit (as a `TRUNCATE` checkpoint does)
/// would make it forget them, and a batch with too few correlation lookups to refill the
/// filter would then leave it empty.
#[tokio::test]
async fn a_background_checkpoint_keeps_the_write_paths_filter() {
    let (dir, s) = store().await;
    let p = Policy::default();
    let correlated = |id: String, minute: i64| {
        let mut e = ev(&id, 50076, Category::MfaRequired, minute);
        e.correlation = Some(format!("corr-{id}"));
        e
    };
    commit(&s, &p, (0..40).map(|i| correlated(format!("a{i}"), 1)).collect()).await;
    assert!(s.correlation_ids_in_memory() >= 40, "forty lookups fill the filter");
    let file = dir.path().join("db/p.db");
    let size_before = std::fs::metadata(&file).unwrap().len();
    let checkpoints_before = s.background_checkpoints();
    let source: std::sync::Arc<str> = "entra".into();
    let successes_at = |minute: i64| {
        (0..12_000i64)
            .map(|i| passportd::store::StoredSuccess {
                source: source.clone(),
                occurred_at_ms: at(minute).timestamp_millis() + i,
                dedup_at: at(minute).timestamp_millis() + i,
                time_is_logged: false,
                key: format!("id:s{minute}-{i}"),
            })
            .collect()
    };
    s.commit_batch(&Batch { successes: successes_at(2), ..Batch::default() }, &p).await.unwrap();
    common::poll_until("a background checkpoint after 12,000 rows", Duration::from_secs(30), || async {
        (s.background_checkpoints() > checkpoints_before).then_some(())
    })
    .await;
    assert!(std::fs::metadata(&file).unwrap().len() > size_before, "the pages were copied into the file");
    commit(&s, &p, vec![correlated("b".into(), 3)]).await;
    assert!(s.correlation_ids_in_memory() >= 41, "the filter was kept: {}", s.correlation_ids_in_memory());
    // Closing right after a commit that starts another checkpoint waits for it, and then
    // empties the log into the file.
    s.commit_batch(&Batch { successes: successes_at(3), ..Batch::default() }, &p).await.unwrap();
    s.close().await;
    let log = std::fs::metadata(dir.path().join("db/p.db-wal")).map_or(0, |m| m.len());
    assert_eq!(log, 0, "the write-ahead log is empty after close");
}

/// Resolved by hand a minute after the last input arrived, an incident is resolved on the
/// incidents' clock (the newest event time, run on by that minute): a failure that happened
/// before the resolve and arrives after it (Entra's records come late) joins it without
/// reopening it.
#[tokio::test]
async fn a_resolve_by_hand_is_on_the_incident_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let s = Store::open(&path).await.unwrap();
    let p = Policy::default();
    commit(&s, &p, vec![ev("a", 50076, Category::MfaRequired, 0)]).await;
    // The last input arrived a minute ago (in wall time).
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        let a_minute_ago = Utc::now().timestamp_millis() - 60_000;
        sqlx::query("UPDATE meta SET value = ? WHERE key = 'input_at_ms'")
            .bind(a_minute_ago)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let id = all(&s).await[0].id;
    let resolved = s.resolve(id, Utc::now()).await.unwrap().unwrap();
    let at = resolved.resolved_at.unwrap();
    assert!(at >= self::at(0) + chrono::Duration::seconds(59), "{at}");
    // Thirty seconds after the last event, before the resolve.
    let mut stored_late = stored(ev("b", 50076, Category::MfaRequired, 0));
    stored_late.event.occurred_at = self::at(0) + chrono::Duration::seconds(30);
    let stored_late = StoredEvent::new(
        stored_late.event.clone(),
        stored_late.title.clone(),
        stored_late.remediation.clone(),
        stored_late.severity.clone(),
        stored_late.user_key.clone(),
        stored_late.ip_key.clone(),
    );
    let r = s.commit_batch(&Batch { events: vec![stored_late], ..Batch::default() }, &p).await.unwrap();
    assert!(r.incidents_opened.is_empty(), "{r:?}");
    let inc = &all(&s).await[0];
    assert_eq!((inc.status, inc.event_count, inc.reopened_count), (IncidentStatus::Resolved, 2, 0));
}

/// Two sprays from one IP eight days apart (past the reopen window) are two incidents,
/// each with its own figures and window, in one batch as in two.
#[tokio::test]
async fn two_attacks_in_one_batch_each_report_their_own_window() {
    let p = Policy::default();
    let spray = |id: String, user: String, minute: i64| {
        let mut e = ev(&id, 50126, Category::InvalidCredentials, minute);
        e.ip = Some("ipkey-1".into());
        e.user = Some(user);
        e
    };
    let eight_days = 8 * 24 * 60;
    let a: Vec<Ev> = (0..10).map(|i| spray(format!("a{i}"), format!("u{i}"), i / 4)).collect();
    let b: Vec<Ev> = (0..15).map(|i| spray(format!("b{i}"), format!("v{i}"), eight_days + i / 4)).collect();
    for one_batch in [true, false] {
        let (_d, s) = store().await;
        if one_batch {
            commit(&s, &p, a.iter().chain(&b).cloned().collect()).await;
        } else {
            commit(&s, &p, a.clone()).await;
            commit(&s, &p, b.clone()).await;
        }
        let mut sprays: Vec<_> = all(&s).await.into_iter().filter(|i| i.kind == "password_spray").collect();
        sprays.sort_by_key(|i| i.first_seen);
        let figures: Vec<_> = sprays
            .iter()
            .map(|i| {
                let e = i.evidence.clone().unwrap();
                (i.event_count, i.users_affected, e["window_end"].as_str().unwrap().to_string())
            })
            .collect();
        assert_eq!(
            figures,
            vec![(10, 10, "2026-03-04T16:02:00Z".to_string()), (15, 15, "2026-03-12T16:03:00Z".to_string())],
            "one_batch={one_batch}"
        );
    }
}
