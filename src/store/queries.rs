//! Read queries for the API: incident lists with keyset cursors, incident detail,
//! events and summaries. All SQL is parameterized.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{from_ms, to_ms, Store, StoreError};
use crate::event::{Category, Outcome};
use crate::incidents::{Detector, Incident, IncidentStatus};

/// How an incident list is ordered (always newest first, ties by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncidentSort {
    /// By `last_seen` (the default).
    #[default]
    LastSeen,
    /// By `first_seen`.
    FirstSeen,
    /// By `event_count`.
    EventCount,
    /// By `users_affected`.
    UsersAffected,
}

impl IncidentSort {
    /// Parses the query value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "last_seen" => Some(Self::LastSeen),
            "first_seen" => Some(Self::FirstSeen),
            "event_count" => Some(Self::EventCount),
            "users_affected" => Some(Self::UsersAffected),
            _ => None,
        }
    }

    fn column(self) -> &'static str {
        match self {
            Self::LastSeen => "last_seen",
            Self::FirstSeen => "first_seen",
            Self::EventCount => "event_count",
            Self::UsersAffected => "users_affected",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::LastSeen => "l",
            Self::FirstSeen => "f",
            Self::EventCount => "e",
            Self::UsersAffected => "u",
        }
    }
}

/// Filters for `GET /api/v1/incidents`.
#[derive(Debug, Clone, Default)]
pub struct IncidentQuery {
    /// `None` = all statuses.
    pub status: Option<IncidentStatus>,
    /// Only this category.
    pub category: Option<Category>,
    /// Only this primary code.
    pub code: Option<u32>,
    /// Only this app (exact, case-insensitive).
    pub app: Option<String>,
    /// `last_seen >= since`.
    pub since: Option<DateTime<Utc>>,
    /// `last_seen < until`.
    pub until: Option<DateTime<Utc>>,
    /// Ordering.
    pub sort: IncidentSort,
    /// Page size.
    pub limit: u32,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
}

/// A page of results.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor for the next page, `None` on the last.
    pub next_cursor: Option<String>,
}

/// Filters for `GET /api/v1/events`.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events of this incident.
    pub incident: Option<i64>,
    /// Only this category.
    pub category: Option<Category>,
    /// Only this primary code.
    pub code: Option<u32>,
    /// Only this source.
    pub source: Option<String>,
    /// `occurred_at >= since`.
    pub since: Option<DateTime<Utc>>,
    /// `occurred_at < until`.
    pub until: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: u32,
    /// Opaque cursor.
    pub cursor: Option<String>,
}

/// A stored failure event as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventRow {
    /// Row id.
    pub id: i64,
    /// Event time.
    pub occurred_at: DateTime<Utc>,
    /// When it was read.
    pub received_at: DateTime<Utc>,
    /// Source name.
    pub source: String,
    /// Decoder.
    pub format: String,
    /// Outcome.
    pub outcome: String,
    /// Category.
    pub category: Option<String>,
    /// Primary code.
    pub code: Option<i64>,
    /// All codes, primary first.
    pub codes: Vec<u32>,
    /// Catalogue entry.
    pub entry: Option<String>,
    /// Failure text.
    pub message: Option<String>,
    /// User (per the privacy setting).
    pub user: Option<String>,
    /// App id.
    pub app_id: Option<String>,
    /// App name.
    pub app_name: Option<String>,
    /// Tenant.
    pub tenant_id: Option<String>,
    /// Client app.
    pub client_app: Option<String>,
    /// Auth protocol.
    pub auth_protocol: Option<String>,
    /// Token issuer type.
    pub token_issuer_type: Option<String>,
    /// IP (per the privacy setting).
    pub ip: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Record id.
    pub record_id: Option<String>,
    /// Device.
    pub device: Option<String>,
    /// Incident it belongs to.
    pub incident_id: Option<i64>,
    /// False for a copy of a sign-in attempt already counted by another record (the
    /// Passport line and the Entra record of one attempt): an incident's `event_count` is
    /// its events with `counted` true.
    pub counted: bool,
}

/// Counts for `GET /api/v1/summary`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// Window start.
    pub since: DateTime<Utc>,
    /// Window end.
    pub until: DateTime<Utc>,
    /// Events per outcome.
    pub events: BTreeMap<String, i64>,
    /// Failures per category.
    pub failures_by_category: BTreeMap<String, i64>,
    /// Failures per primary code.
    pub failures_by_code: BTreeMap<String, i64>,
    /// Open incidents per category (now, not windowed).
    pub open_incidents_by_category: BTreeMap<String, i64>,
}

/// Why a cursor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

fn encode_cursor(tag: &str, key: i64, id: i64) -> String {
    // `{:x}` of a negative i64 prints its two's complement; write the sign instead.
    let hex = |v: i64| if v < 0 { format!("-{:x}", v.unsigned_abs()) } else { format!("{v:x}") };
    format!("{tag}{}.{}", hex(key), hex(id))
}

fn decode_cursor(tag: &str, cursor: &str) -> Result<(i64, i64), InvalidCursor> {
    let rest = cursor.strip_prefix(tag).ok_or(InvalidCursor)?;
    let (key, id) = rest.split_once('.').ok_or(InvalidCursor)?;
    let parse = |s: &str| {
        let (neg, digits) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s),
        };
        i64::from_str_radix(digits, 16).map(|v| if neg { -v } else { v }).map_err(|_| InvalidCursor)
    };
    Ok((parse(key)?, parse(id)?))
}

fn incident_from_row(r: &SqliteRow) -> Result<Incident, StoreError> {
    let category: String = r.try_get("category")?;
    let status: String = r.try_get("status")?;
    let sources: String = r.try_get("sources")?;
    Ok(Incident {
        id: r.try_get("id")?,
        fingerprint: r.try_get("fingerprint")?,
        kind: r.try_get("kind")?,
        evidence: r.try_get::<Option<String>, _>("evidence")?.and_then(|e| serde_json::from_str(&e).ok()),
        category: Category::parse(&category)
            .ok_or(StoreError::Corrupt { column: "incidents.category", value: category.clone() })?,
        code: r.try_get::<Option<i64>, _>("code")?.and_then(|c| u32::try_from(c).ok()),
        entry: r.try_get("entry_id")?,
        title: r.try_get("title")?,
        severity: r.try_get("severity")?,
        status: IncidentStatus::parse(&status)
            .ok_or(StoreError::Corrupt { column: "incidents.status", value: status.clone() })?,
        first_seen: from_ms(r.try_get("first_seen")?),
        last_seen: from_ms(r.try_get("last_seen")?),
        event_count: r.try_get("event_count")?,
        users_affected: r.try_get("users_affected")?,
        app: r.try_get("app")?,
        tenant: r.try_get("tenant")?,
        sources: sources.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
        remediation: r.try_get("remediation")?,
        reopened_count: r.try_get("reopened_count")?,
        opened_at: from_ms(r.try_get("opened_at")?),
        acknowledged_by: r.try_get("acknowledged_by")?,
        acknowledged_at: r.try_get::<Option<i64>, _>("acknowledged_at")?.map(from_ms),
        resolved_at: r.try_get::<Option<i64>, _>("resolved_at")?.map(from_ms),
    })
}

/// The failures a detector's incident stands for. They belong to their own failure
/// incidents (`events.incident_id`); a detector's incident is their sliding window: the
/// credential failures from its IP (spray) or of its user (brute force, counted ones), or
/// every lockout (lockout wave), from one window before it first met its threshold until
/// it last did.
#[derive(Debug)]
struct DetectorScope {
    detector: Detector,
    /// `incidents.subject_key`: the keyed hash of the IP or the user.
    subject: Option<String>,
    from: i64,
    to: i64,
}

/// `kind, subject_key, first_seen, last_seen` and the evidence's window in seconds.
type IncidentScopeRow = (String, Option<String>, i64, i64, Option<i64>);

impl Store {
    /// The scope of incident `id` when a detector opened it.
    async fn detector_scope(&self, id: i64) -> Result<Option<DetectorScope>, StoreError> {
        let row: Option<IncidentScopeRow> = sqlx::query_as(
            "SELECT kind, subject_key, first_seen, last_seen, json_extract(evidence, '$.window_seconds')
             FROM incidents WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some((kind, subject, first_seen, last_seen, window_s)) = row else {
            return Ok(None);
        };
        let Some(detector) = Detector::ALL.into_iter().find(|d| d.as_str() == kind) else {
            return Ok(None);
        };
        let window_ms = window_s.unwrap_or(0).max(0).saturating_mul(1000);
        Ok(Some(DetectorScope { detector, subject, from: first_seen.saturating_sub(window_ms), to: last_seen }))
    }
}

/// The SQL of one events page (`prefix` lets a test ask for its plan). Newest first
/// by (occurred_at, id): `events_by_occurred` gives that order on its own (an index
/// ends with the rowid), so no page ever sorts.
fn events_page_query<'q>(
    prefix: &str,
    q: &'q EventQuery,
    detector: Option<&'q DetectorScope>,
) -> Result<QueryBuilder<'q, Sqlite>, ListError> {
    let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(prefix);
    match (q.incident, detector) {
        (_, Some(d)) => {
            // Read by time: the scope is one incident's span, and the page's order is the
            // index's, so nothing is sorted.
            b.push("SELECT * FROM events INDEXED BY events_by_occurred WHERE outcome = 'failure'");
            b.push(" AND occurred_at >= ").push_bind(d.from).push(" AND occurred_at <= ").push_bind(d.to);
            match (d.detector, d.subject.as_deref()) {
                (Detector::PasswordSpray, Some(ip_key)) => {
                    b.push(" AND code IN (50126, 50053) AND counted = 1 AND ip_key = ").push_bind(ip_key);
                }
                (Detector::BruteForce, Some(user_key)) => {
                    b.push(" AND code IN (50126, 50053) AND counted = 1 AND user_key = ").push_bind(user_key);
                }
                (Detector::LockoutWave, _) => {
                    b.push(" AND code = 50053");
                }
                // Opened before migration 0008 and not fired since: its subject is unknown.
                _ => {
                    b.push(" AND 0");
                }
            }
        }
        (Some(i), None) => {
            b.push("SELECT * FROM events WHERE outcome = 'failure'");
            b.push(" AND incident_id = ").push_bind(i);
        }
        (None, None) => {
            b.push("SELECT * FROM events WHERE outcome = 'failure'");
        }
    }
    if let Some(c) = q.category {
        b.push(" AND category = ").push_bind(c.as_str());
    }
    if let Some(code) = q.code {
        b.push(" AND code = ").push_bind(i64::from(code));
    }
    if let Some(s) = &q.source {
        b.push(" AND source = ").push_bind(s.as_str());
    }
    if let Some(since) = q.since {
        b.push(" AND occurred_at >= ").push_bind(to_ms(since));
    }
    if let Some(until) = q.until {
        b.push(" AND occurred_at < ").push_bind(to_ms(until));
    }
    if let Some(cursor) = &q.cursor {
        let (key, id) = decode_cursor("o", cursor)?;
        b.push(" AND (occurred_at, id) < (").push_bind(key).push(", ").push_bind(id).push(")");
    }
    b.push(" ORDER BY occurred_at DESC, id DESC LIMIT ").push_bind(i64::from(q.limit) + 1);
    Ok(b)
}

fn event_from_row(r: &SqliteRow) -> Result<EventRow, StoreError> {
    let codes: Option<String> = r.try_get("codes")?;
    Ok(EventRow {
        id: r.try_get("id")?,
        occurred_at: from_ms(r.try_get("occurred_at")?),
        received_at: from_ms(r.try_get("received_at")?),
        source: r.try_get("source")?,
        format: r.try_get("format")?,
        outcome: r.try_get("outcome")?,
        category: r.try_get("category")?,
        code: r.try_get("code")?,
        codes: codes.unwrap_or_default().split(',').filter_map(|c| c.parse().ok()).collect(),
        entry: r.try_get("entry_id")?,
        message: r.try_get("message")?,
        user: r.try_get("user")?,
        app_id: r.try_get("app_id")?,
        app_name: r.try_get("app_name")?,
        tenant_id: r.try_get("tenant_id")?,
        client_app: r.try_get("client_app")?,
        auth_protocol: r.try_get("auth_protocol")?,
        token_issuer_type: r.try_get("token_issuer_type")?,
        ip: r.try_get("ip")?,
        correlation_id: r.try_get("correlation_id")?,
        record_id: r.try_get("record_id")?,
        device: r.try_get("device")?,
        incident_id: r.try_get("incident_id")?,
        counted: r.try_get::<i64, _>("counted")? != 0,
    })
}

/// Errors of list queries: a bad cursor is the caller's fault, the rest the store's.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The cursor is not one this server produced for this ordering.
    #[error(transparent)]
    Cursor(#[from] InvalidCursor),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ListError {
    fn from(e: sqlx::Error) -> Self {
        ListError::Store(StoreError::Query(e))
    }
}

/// The incident list query (shared by the API and the query-plan test).
fn incident_list_query(q: &IncidentQuery, select: &str) -> Result<QueryBuilder<'static, Sqlite>, InvalidCursor> {
    let col = q.sort.column();
    let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(format!("{select} FROM incidents WHERE 1 = 1"));
    if let Some(status) = q.status {
        b.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(c) = q.category {
        b.push(" AND category = ").push_bind(c.as_str());
    }
    if let Some(code) = q.code {
        b.push(" AND code = ").push_bind(i64::from(code));
    }
    if let Some(app) = &q.app {
        b.push(" AND app = ").push_bind(app.clone()).push(" COLLATE NOCASE");
    }
    if let Some(since) = q.since {
        b.push(" AND last_seen >= ").push_bind(to_ms(since));
    }
    if let Some(until) = q.until {
        b.push(" AND last_seen < ").push_bind(to_ms(until));
    }
    if let Some(cursor) = &q.cursor {
        let (key, id) = decode_cursor(q.sort.tag(), cursor)?;
        // A row-value comparison lets SQLite seek the (key, id) index directly.
        b.push(format!(" AND ({col}, id) < (")).push_bind(key).push(", ").push_bind(id).push(")");
    }
    b.push(format!(" ORDER BY {col} DESC, id DESC LIMIT ")).push_bind(i64::from(q.limit) + 1);
    Ok(b)
}

impl Store {
    /// One page of incidents, newest first by the chosen key; keyset pagination, so pages
    /// never skip or repeat while new incidents arrive. An incident whose key moves while
    /// a client pages (new failures raise its `last_seen`) leaves its place: it shows on
    /// the next walk, not on this one; one whose key moves down past the cursor (a late
    /// failure lowering `first_seen`) shows again later in the same walk.
    pub async fn list_incidents(&self, q: &IncidentQuery) -> Result<Page<Incident>, ListError> {
        let mut b = incident_list_query(q, "SELECT *")?;
        let rows = b.build().fetch_all(self.pool()).await?;
        let mut items = rows.iter().map(incident_from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > q.limit as usize {
            items.truncate(q.limit as usize);
            items.last().map(|i| {
                let key = match q.sort {
                    IncidentSort::LastSeen => to_ms(i.last_seen),
                    IncidentSort::FirstSeen => to_ms(i.first_seen),
                    IncidentSort::EventCount => i.event_count,
                    IncidentSort::UsersAffected => i.users_affected,
                };
                encode_cursor(q.sort.tag(), key, i.id)
            })
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// One incident.
    pub async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        let row = sqlx::query("SELECT * FROM incidents WHERE id = ?").bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(incident_from_row).transpose()
    }

    /// One page of stored failure events, newest first.
    pub async fn list_events(&self, q: &EventQuery) -> Result<Page<EventRow>, ListError> {
        let detector = match q.incident {
            Some(id) => self.detector_scope(id).await?,
            None => None,
        };
        let mut b = events_page_query("", q, detector.as_ref())?;
        let rows = b.build().fetch_all(self.pool()).await?;
        let mut items = rows.iter().map(event_from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > q.limit as usize {
            items.truncate(q.limit as usize);
            items.last().map(|e| encode_cursor("o", to_ms(e.occurred_at), e.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Counts by event time in `[since, until)`, optionally for one source.
    pub async fn summary(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        source: Option<&str>,
    ) -> Result<Summary, StoreError> {
        let mut events: BTreeMap<String, i64> = Outcome::ALL.iter().map(|o| (o.as_str().to_string(), 0)).collect();
        let mut by_category = BTreeMap::new();
        let mut by_code = BTreeMap::new();
        let rows = sqlx::query(
            "SELECT outcome, category, code, COUNT(*) AS n FROM events
             WHERE occurred_at >= ? AND occurred_at < ? AND (? IS NULL OR source = ?)
             GROUP BY outcome, category, code",
        )
        .bind(to_ms(since))
        .bind(to_ms(until))
        .bind(source)
        .bind(source)
        .fetch_all(self.pool())
        .await?;
        // Successes are counted from their own table (migration 0004). Its key starts with
        // dedup_at, which is occurred_at except for records without a time of their own
        // (dedup_at 0): the range is read from the key, those few rows by a scan.
        let successes: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM successes
                     WHERE dedup_at >= ?1 AND dedup_at < ?2 AND dedup_at != 0 AND (?3 IS NULL OR source = ?3))
                  + (SELECT COUNT(*) FROM successes
                     WHERE dedup_at = 0 AND occurred_at >= ?1 AND occurred_at < ?2 AND (?3 IS NULL OR source = ?3))",
        )
        .bind(to_ms(since))
        .bind(to_ms(until))
        .bind(source)
        .fetch_one(self.pool())
        .await?;
        *events.entry(Outcome::Success.as_str().to_string()).or_default() += successes;
        for r in rows {
            let outcome: String = r.try_get("outcome")?;
            let n: i64 = r.try_get("n")?;
            *events.entry(outcome.clone()).or_default() += n;
            if outcome == "failure" {
                let cat: Option<String> = r.try_get("category")?;
                *by_category.entry(cat.unwrap_or_else(|| "unclassified".into())).or_default() += n;
                let code: Option<i64> = r.try_get("code")?;
                *by_code.entry(code.map(|c| c.to_string()).unwrap_or_else(|| "none".into())).or_default() += n;
            }
        }
        let open = self
            .open_incidents_by_category(source)
            .await?
            .into_iter()
            .map(|(c, n)| (c.as_str().to_string(), n))
            .collect();
        Ok(Summary {
            since,
            until,
            events,
            failures_by_category: by_category,
            failures_by_code: by_code,
            open_incidents_by_category: open,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_events_page_sorts_or_scans_the_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("p.db")).await.expect("open");
        let at = Utc::now();
        let pages = [
            EventQuery { limit: 50, ..EventQuery::default() },
            EventQuery { limit: 50, since: Some(at), until: Some(at), ..EventQuery::default() },
            EventQuery { limit: 50, cursor: Some(encode_cursor("o", 5, 6)), ..EventQuery::default() },
            EventQuery { limit: 50, category: Some(Category::MfaRequired), ..EventQuery::default() },
            EventQuery { limit: 50, code: Some(50126), ..EventQuery::default() },
            EventQuery { limit: 50, source: Some("entra".into()), ..EventQuery::default() },
            EventQuery { limit: 50, incident: Some(3), ..EventQuery::default() },
        ];
        let scopes =
            Detector::ALL.map(|detector| DetectorScope { detector, subject: Some("k".into()), from: 1, to: 2 });
        let cases = pages.iter().map(|q| (q, None)).chain(scopes.iter().map(|d| (&pages[6], Some(d))));
        for (q, scope) in cases {
            let rows = events_page_query("EXPLAIN QUERY PLAN ", q, scope)
                .expect("query")
                .build()
                .fetch_all(store.pool())
                .await
                .expect("plan");
            let plan = rows
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" | ");
            assert!(plan.contains("USING INDEX"), "{q:?} {scope:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{q:?} {scope:?}: {plan}");
        }
    }

    async fn plan(store: &Store, q: &IncidentQuery) -> String {
        let mut b = incident_list_query(q, "EXPLAIN QUERY PLAN SELECT *").expect("query");
        let rows = b.build().fetch_all(store.pool()).await.expect("explain");
        rows.iter().map(|r| r.try_get::<String, _>("detail").unwrap_or_default()).collect::<Vec<_>>().join(" | ")
    }

    #[tokio::test]
    async fn incident_pages_are_served_from_indexes_without_sorting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("p.db")).await.expect("open");
        let deep = encode_cursor("l", 1_700_000_000_000, 42);
        for q in [
            IncidentQuery { status: None, limit: 50, ..Default::default() },
            IncidentQuery { status: Some(IncidentStatus::Open), limit: 50, ..Default::default() },
            IncidentQuery { status: None, limit: 50, cursor: Some(deep.clone()), ..Default::default() },
            IncidentQuery {
                status: Some(IncidentStatus::Resolved),
                limit: 50,
                cursor: Some(deep),
                ..Default::default()
            },
            IncidentQuery { status: None, category: Some(Category::MfaRequired), limit: 50, ..Default::default() },
        ] {
            let p = plan(&store, &q).await;
            assert!(p.contains("USING INDEX"), "{q:?}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{q:?} sorts instead of reading the index in order: {p}");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for (k, id) in [(0, 1), (1_700_000_000_000, 42), (-5, 3)] {
            let c = encode_cursor("l", k, id);
            assert_eq!(decode_cursor("l", &c), Ok((k, id)));
            assert_eq!(decode_cursor("f", &c), Err(InvalidCursor));
        }
        for bad in ["", "l", "lzz.1", "l1", "l1.", "x1.1"] {
            assert_eq!(decode_cursor("l", bad), Err(InvalidCursor), "{bad}");
        }
    }
}
