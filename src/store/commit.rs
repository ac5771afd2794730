//! The write path: one transaction per batch holding the events, everything they do to
//! incidents (lifecycle, opening gates, correlation, detectors) and the checkpoints.

use chrono::Utc;
use serde_json::json;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::{to_ms, Batch, BatchResult, Store, StoreError, StoredEvent};
use crate::event::{Category, Outcome};
use crate::incidents::{self, Decision, Detector, IncidentState, IncidentStatus, Policy};

type Tx<'c> = Transaction<'c, Sqlite>;

/// Codes that count as credential failures for the spray and brute-force detectors.
const CREDENTIAL_CODES: &str = "50126, 50053";
/// The lockout code.
const LOCKOUT_CODE: i64 = 50053;

/// What a new incident is made of.
struct NewIncident<'a> {
    kind: &'a str,
    fingerprint: &'a str,
    category: Category,
    code: Option<u32>,
    app: Option<&'a str>,
    tenant: Option<&'a str>,
    entry: Option<&'a str>,
    title: &'a str,
    severity: &'a str,
    remediation: &'a str,
    at: i64,
    evidence: Option<String>,
}

impl Store {
    /// Commits a batch in one transaction: events (deduplicated by their idempotency
    /// key), incident updates, detector findings, the quiet-period sweep and the
    /// checkpoints. A crash before the commit leaves none of it.
    pub async fn commit_batch(&self, batch: &Batch, policy: &Policy) -> Result<BatchResult, StoreError> {
        let mut result = BatchResult::default();
        if batch.is_empty() {
            return Ok(result);
        }
        let mut tx = self.pool().begin().await?;
        let mut watermark: i64 =
            sqlx::query_scalar("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'watermark_ms'")
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or(i64::MIN);
        // A clock far in the future on one machine must not resolve every incident:
        // the event-time clock never runs more than an hour ahead of this host.
        let ceiling = to_ms(Utc::now()) + 3_600_000;
        let batch_max = batch.events.iter().map(|e| to_ms(e.event.occurred_at).min(ceiling)).max().unwrap_or(i64::MIN);
        // Incidents that went quiet before this batch close first (so a recurrence
        // reopens them); the batch's own clock advance is swept after its events, so a
        // failure inside the batch can still extend the incident it belongs to.
        result.incidents_auto_resolved += sweep(&mut tx, watermark, policy).await?;

        let mut credential_failures: Vec<&StoredEvent> = Vec::new();
        for stored in &batch.events {
            let ev = &stored.event;
            let Some(key) = ev.dedup_key() else {
                continue;
            };
            let category = ev.category.unwrap_or(Category::Unclassified);
            let fingerprint = (ev.outcome == Outcome::Failure)
                .then(|| incidents::fingerprint(category, ev.primary_code(), app_key(stored), ev.tenant_id.as_deref()));
            let Some(event_id) = insert_event(&mut tx, stored, &key, fingerprint.as_deref()).await? else {
                result.duplicates += 1;
                *result.duplicates_by_source.entry(ev.source.clone()).or_default() += 1;
                continue;
            };
            *result.stored.entry((ev.source.clone(), ev.outcome)).or_default() += 1;
            let Some(fingerprint) = fingerprint else {
                continue;
            };
            *result.failures.entry((ev.source.clone(), category, ev.primary_code())).or_default() += 1;
            if matches!(ev.primary_code(), Some(50126 | 50053)) {
                credential_failures.push(stored);
            }
            if join_correlated(&mut tx, stored, event_id).await? {
                continue;
            }
            place_failure(&mut tx, stored, event_id, category, &fingerprint, policy, &mut result).await?;
        }

        if policy.detectors.enabled && !credential_failures.is_empty() {
            run_detectors(&mut tx, &credential_failures, policy, &mut result).await?;
        }

        if batch_max > watermark {
            watermark = batch_max;
            result.incidents_auto_resolved += sweep(&mut tx, watermark, policy).await?;
        }
        if watermark != i64::MIN {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('watermark_ms', ?)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(watermark.to_string())
            .execute(&mut *tx)
            .await?;
        }

        let now = to_ms(Utc::now());
        for cp in &batch.checkpoints {
            sqlx::query(
                "INSERT INTO checkpoints (file_key, source, path, dev, ino, fingerprint, file_offset, state, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (file_key) DO UPDATE SET source = excluded.source, path = excluded.path,
                    dev = excluded.dev, ino = excluded.ino, fingerprint = excluded.fingerprint,
                    file_offset = excluded.file_offset, state = excluded.state, updated_at = excluded.updated_at",
            )
            .bind(&cp.file_key)
            .bind(&cp.source)
            .bind(&cp.path)
            .bind(cp.dev as i64)
            .bind(cp.ino as i64)
            .bind(&cp.fingerprint)
            .bind(cp.offset as i64)
            .bind(&cp.state)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(result)
    }
}

/// The app part of the fingerprint: the id when known (stable), else the name.
fn app_key(stored: &StoredEvent) -> Option<&str> {
    stored.event.app_id.as_deref().or(stored.event.app_name.as_deref())
}

async fn insert_event(
    tx: &mut Tx<'_>,
    stored: &StoredEvent,
    key: &str,
    fingerprint: Option<&str>,
) -> Result<Option<i64>, StoreError> {
    let ev = &stored.event;
    let codes = ev.codes.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
    let id = sqlx::query_scalar(
        "INSERT INTO events (dedup_key, source, format, received_at, occurred_at, outcome,
            category, code, codes, entry_id, message, user, app_id, app_name, tenant_id,
            client_app, auth_protocol, token_issuer_type, ip, correlation_id, record_id,
            device, file_key, file_offset, user_key, ip_key, fingerprint)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (dedup_key) DO NOTHING
         RETURNING id",
    )
    .bind(key)
    .bind(&ev.source)
    .bind(&ev.format)
    .bind(to_ms(ev.received_at))
    .bind(to_ms(ev.occurred_at))
    .bind(ev.outcome.as_str())
    .bind(ev.category.map(|c| c.as_str()))
    .bind(ev.primary_code().map(i64::from))
    .bind(if codes.is_empty() { None } else { Some(codes) })
    .bind(&ev.entry_id)
    .bind(&ev.message)
    .bind(&ev.user)
    .bind(&ev.app_id)
    .bind(&ev.app_name)
    .bind(&ev.tenant_id)
    .bind(&ev.client_app)
    .bind(&ev.auth_protocol)
    .bind(&ev.token_issuer_type)
    .bind(&ev.ip)
    .bind(&ev.correlation_id)
    .bind(&ev.record_id)
    .bind(&ev.device)
    .bind(ev.position.as_ref().map(|p| p.file_key.as_str()))
    .bind(ev.position.as_ref().map(|p| p.offset as i64))
    .bind(&stored.user_key)
    .bind(&stored.ip_key)
    .bind(fingerprint)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(id)
}

/// A Passport failure and its Entra record (same correlation id) are one sign-in
/// attempt: the later one joins the earlier one's incident without being counted again.
async fn join_correlated(tx: &mut Tx<'_>, stored: &StoredEvent, event_id: i64) -> Result<bool, StoreError> {
    let Some(correlation) = stored.event.correlation_id.as_deref().filter(|c| !c.is_empty()) else {
        return Ok(false);
    };
    let row = sqlx::query(
        "SELECT incident_id, fingerprint FROM events
         WHERE correlation_id = ? AND outcome = 'failure' AND id != ? AND counted = 1
         ORDER BY id LIMIT 1",
    )
    .bind(correlation)
    .bind(event_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let incident: Option<i64> = row.try_get("incident_id")?;
    let fingerprint: Option<String> = row.try_get("fingerprint")?;
    sqlx::query("UPDATE events SET counted = 0, incident_id = ?, fingerprint = COALESCE(?, fingerprint) WHERE id = ?")
        .bind(incident)
        .bind(fingerprint)
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
    if let Some(id) = incident {
        // The incident now has been seen by this source too, and is as recent as this copy.
        add_source(tx, id, &stored.event.source, to_ms(stored.event.occurred_at)).await?;
    }
    Ok(true)
}

async fn add_source(tx: &mut Tx<'_>, id: i64, source: &str, at: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE incidents SET last_seen = MAX(last_seen, ?),
            sources = CASE WHEN instr(',' || sources || ',', ',' || ? || ',') > 0 THEN sources
                           WHEN sources = '' THEN ? ELSE sources || ',' || ? END
         WHERE id = ?",
    )
    .bind(at)
    .bind(source)
    .bind(source)
    .bind(source)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn newest_incident(tx: &mut Tx<'_>, fingerprint: &str) -> Result<Option<IncidentState>, StoreError> {
    let row = sqlx::query(
        "SELECT id, status, last_seen, resolved_at FROM incidents WHERE fingerprint = ? ORDER BY id DESC LIMIT 1",
    )
    .bind(fingerprint)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let status: String = r.try_get("status")?;
    Ok(Some(IncidentState {
        id: r.try_get("id")?,
        status: IncidentStatus::parse(&status)
            .ok_or(StoreError::Corrupt { column: "incidents.status", value: status })?,
        last_seen_ms: r.try_get("last_seen")?,
        resolved_at_ms: r.try_get("resolved_at")?,
    }))
}

async fn open_incident(tx: &mut Tx<'_>, n: NewIncident<'_>) -> Result<i64, StoreError> {
    let id = sqlx::query_scalar(
        "INSERT INTO incidents (kind, fingerprint, category, code, app, tenant, entry_id, title, severity,
            status, first_seen, last_seen, event_count, users_affected, sources, remediation,
            reopened_count, opened_at, evidence)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, 0, 0, '', ?, 0, ?, ?)
         RETURNING id",
    )
    .bind(n.kind)
    .bind(n.fingerprint)
    .bind(n.category.as_str())
    .bind(n.code.map(i64::from))
    .bind(n.app)
    .bind(n.tenant)
    .bind(n.entry)
    .bind(n.title)
    .bind(n.severity)
    .bind(n.at)
    .bind(n.at)
    .bind(n.remediation)
    .bind(n.at)
    .bind(n.evidence)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

async fn reopen(tx: &mut Tx<'_>, id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE incidents SET status = 'open', resolved_at = NULL, acknowledged_by = NULL,
            acknowledged_at = NULL, reopened_count = reopened_count + 1 WHERE id = ?",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Counts one failure into an incident.
async fn count_into(tx: &mut Tx<'_>, id: i64, stored: &StoredEvent, event_id: i64) -> Result<(), StoreError> {
    let occurred = to_ms(stored.event.occurred_at);
    let mut new_user = 0i64;
    if let Some(user_key) = &stored.user_key {
        new_user =
            sqlx::query("INSERT INTO incident_users (incident_id, user_key) VALUES (?, ?) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(user_key)
                .execute(&mut **tx)
                .await?
                .rows_affected() as i64;
    }
    sqlx::query(
        "UPDATE incidents SET event_count = event_count + 1, users_affected = users_affected + ?,
            first_seen = MIN(first_seen, ?) WHERE id = ?",
    )
    .bind(new_user)
    .bind(occurred)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    add_source(tx, id, &stored.event.source, occurred).await?;
    sqlx::query("UPDATE events SET incident_id = ? WHERE id = ?").bind(id).bind(event_id).execute(&mut **tx).await?;
    Ok(())
}

/// Puts a new failure into its incident: extend, reopen, open, or (behind an opening
/// gate) hold it until enough failures gather.
async fn place_failure(
    tx: &mut Tx<'_>,
    stored: &StoredEvent,
    event_id: i64,
    category: Category,
    fingerprint: &str,
    policy: &Policy,
    result: &mut BatchResult,
) -> Result<(), StoreError> {
    let ev = &stored.event;
    let occurred = to_ms(ev.occurred_at);
    let existing = newest_incident(tx, fingerprint).await?;
    let id = match incidents::decide(existing, category, occurred, policy) {
        Decision::Append(id) => id,
        Decision::Reopen(id) => {
            reopen(tx, id).await?;
            *result.incidents_opened.entry(category).or_default() += 1;
            id
        }
        Decision::Open => {
            let gate = policy.gates.get(&category).copied();
            let window_start = gate.map(|g| occurred - i64::try_from(g.within.as_millis()).unwrap_or(i64::MAX));
            if let (Some(gate), Some(start)) = (gate, window_start) {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n, COUNT(DISTINCT user_key) AS users FROM events
                     WHERE fingerprint = ? AND incident_id IS NULL AND counted = 1
                       AND occurred_at >= ? AND occurred_at <= ?",
                )
                .bind(fingerprint)
                .bind(start)
                .bind(occurred)
                .fetch_one(&mut **tx)
                .await?;
                let (n, users): (i64, i64) = (row.try_get("n")?, row.try_get("users")?);
                if !gate.is_met(n as u64, users as u64) {
                    return Ok(());
                }
            }
            let id = open_incident(
                tx,
                NewIncident {
                    kind: "failure",
                    fingerprint,
                    category,
                    code: ev.primary_code(),
                    app: ev.app_name.as_deref().or(ev.app_id.as_deref()),
                    tenant: ev.tenant_id.as_deref(),
                    entry: ev.entry_id.as_deref(),
                    title: &stored.title,
                    severity: &stored.severity,
                    remediation: &stored.remediation,
                    at: occurred,
                    evidence: None,
                },
            )
            .await?;
            *result.incidents_opened.entry(category).or_default() += 1;
            if let Some(start) = window_start {
                adopt_pending(tx, id, fingerprint, start, occurred).await?;
                return Ok(());
            }
            id
        }
    };
    count_into(tx, id, stored, event_id).await
}

/// A gated incident just opened: the failures that were held back join it.
async fn adopt_pending(tx: &mut Tx<'_>, id: i64, fingerprint: &str, start: i64, end: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE events SET incident_id = ?
         WHERE fingerprint = ? AND incident_id IS NULL AND occurred_at >= ? AND occurred_at <= ?",
    )
    .bind(id)
    .bind(fingerprint)
    .bind(start)
    .bind(end)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO incident_users (incident_id, user_key)
         SELECT DISTINCT ?, user_key FROM events WHERE incident_id = ? AND counted = 1 AND user_key IS NOT NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE incidents SET
            event_count = (SELECT COUNT(*) FROM events WHERE incident_id = ?1 AND counted = 1),
            users_affected = (SELECT COUNT(*) FROM incident_users WHERE incident_id = ?1),
            first_seen = COALESCE((SELECT MIN(occurred_at) FROM events WHERE incident_id = ?1), first_seen),
            last_seen = COALESCE((SELECT MAX(occurred_at) FROM events WHERE incident_id = ?1), last_seen),
            sources = COALESCE((SELECT group_concat(source) FROM (SELECT DISTINCT source FROM events WHERE incident_id = ?1)), '')
         WHERE id = ?1",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Resolves every active incident whose quiet period (per category) ended before
/// `watermark`, at the moment it went quiet.
async fn sweep(tx: &mut Tx<'_>, watermark: i64, policy: &Policy) -> Result<u64, StoreError> {
    if watermark == i64::MIN {
        return Ok(0);
    }
    let mut done = 0;
    for (category, quiet) in &policy.quiet_by_category {
        let quiet = i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX);
        done += sqlx::query(
            "UPDATE incidents SET status = 'resolved', resolved_at = last_seen + ?
             WHERE status IN ('open', 'acknowledged') AND category = ? AND last_seen < ? - ?",
        )
        .bind(quiet)
        .bind(category.as_str())
        .bind(watermark)
        .bind(quiet)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    let quiet = i64::try_from(policy.quiet_period.as_millis()).unwrap_or(i64::MAX);
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new("UPDATE incidents SET status = 'resolved', resolved_at = last_seen + ");
    q.push_bind(quiet)
        .push(" WHERE status IN ('open', 'acknowledged') AND last_seen < ")
        .push_bind(watermark.saturating_sub(quiet));
    if !policy.quiet_by_category.is_empty() {
        q.push(" AND category NOT IN (");
        let mut list = q.separated(", ");
        for c in policy.quiet_by_category.keys() {
            list.push_bind(c.as_str());
        }
        list.push_unseparated(")");
    }
    done += q.build().execute(&mut **tx).await?.rows_affected();
    Ok(done)
}

/// Password spray (many users, one IP), brute force (one user, many failures) and
/// lockout waves, evaluated for the keys this batch touched.
async fn run_detectors(
    tx: &mut Tx<'_>,
    failures: &[&StoredEvent],
    policy: &Policy,
    result: &mut BatchResult,
) -> Result<(), StoreError> {
    let window = i64::try_from(policy.detectors.window.as_millis()).unwrap_or(i64::MAX);
    let end = failures.iter().map(|s| to_ms(s.event.occurred_at)).max().unwrap_or(0);
    let start = end.saturating_sub(window);
    let mut ips: Vec<&str> = failures.iter().filter_map(|s| s.ip_key.as_deref()).collect();
    ips.sort_unstable();
    ips.dedup();
    for ip in ips {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT user_key) AS users FROM events
             WHERE ip_key = ? AND outcome = 'failure' AND code IN ({CREDENTIAL_CODES})
               AND occurred_at > ? AND occurred_at <= ?"
        ))
        .bind(ip)
        .bind(start)
        .bind(end)
        .fetch_one(&mut **tx)
        .await?;
        let (n, users): (i64, i64) = (row.try_get("n")?, row.try_get("users")?);
        if users >= i64::from(policy.detectors.spray_users) {
            record_detection(tx, Detector::PasswordSpray, ip, n, users, end, policy, result).await?;
        }
    }
    let mut users_seen: Vec<&str> = failures.iter().filter_map(|s| s.user_key.as_deref()).collect();
    users_seen.sort_unstable();
    users_seen.dedup();
    for user in users_seen {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM events
             WHERE user_key = ? AND outcome = 'failure' AND counted = 1 AND code IN ({CREDENTIAL_CODES})
               AND occurred_at > ? AND occurred_at <= ?"
        ))
        .bind(user)
        .bind(start)
        .bind(end)
        .fetch_one(&mut **tx)
        .await?;
        if n >= i64::from(policy.detectors.brute_force_failures) {
            record_detection(tx, Detector::BruteForce, user, n, 1, end, policy, result).await?;
        }
    }
    if failures.iter().any(|s| s.event.primary_code() == Some(LOCKOUT_CODE as u32)) {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT user_key) AS users FROM events
             WHERE code = ? AND outcome = 'failure' AND occurred_at > ? AND occurred_at <= ?",
        )
        .bind(LOCKOUT_CODE)
        .bind(start)
        .bind(end)
        .fetch_one(&mut **tx)
        .await?;
        let (n, users): (i64, i64) = (row.try_get("n")?, row.try_get("users")?);
        if users >= i64::from(policy.detectors.lockout_users) {
            record_detection(tx, Detector::LockoutWave, "all", n, users, end, policy, result).await?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn record_detection(
    tx: &mut Tx<'_>,
    detector: Detector,
    subject_key: &str,
    failures: i64,
    users: i64,
    at: i64,
    policy: &Policy,
    result: &mut BatchResult,
) -> Result<(), StoreError> {
    let category = detector.category();
    let fingerprint = incidents::detector_fingerprint(detector, subject_key);
    let window = policy.detectors.window;
    let evidence = json!({
        "detector": detector.as_str(),
        "failures_in_window": failures,
        "distinct_users_in_window": users,
        "window_seconds": window.as_secs(),
    })
    .to_string();
    let existing = newest_incident(tx, &fingerprint).await?;
    let id = match incidents::decide(existing, category, at, policy) {
        Decision::Append(id) => id,
        Decision::Reopen(id) => {
            reopen(tx, id).await?;
            *result.incidents_opened.entry(category).or_default() += 1;
            *result.detections.entry(detector.as_str()).or_default() += 1;
            id
        }
        Decision::Open => {
            *result.incidents_opened.entry(category).or_default() += 1;
            *result.detections.entry(detector.as_str()).or_default() += 1;
            open_incident(
                tx,
                NewIncident {
                    kind: detector.as_str(),
                    fingerprint: &fingerprint,
                    category,
                    code: None,
                    app: None,
                    tenant: None,
                    entry: None,
                    title: detector.title(),
                    severity: "high",
                    remediation: detector.remediation(),
                    at,
                    evidence: None,
                },
            )
            .await?
        }
    };
    // Evidence is the largest window seen so far: counts only, never names.
    sqlx::query(
        "UPDATE incidents SET last_seen = MAX(last_seen, ?), event_count = MAX(event_count, ?),
            users_affected = MAX(users_affected, ?),
            evidence = CASE WHEN event_count < ? OR evidence IS NULL THEN ? ELSE evidence END
         WHERE id = ?",
    )
    .bind(at)
    .bind(failures)
    .bind(users)
    .bind(failures)
    .bind(evidence)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
