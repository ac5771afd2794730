//! The write path: a batch's events, everything they do to incidents (lifecycle, opening
//! gates, correlation, detectors) and the checkpoints, written inside one transaction
//! (a batch per transaction when tailing; several when replaying, see `run_writer`).
//!
//! Why it is shaped this way (issue #8, BENCHMARKS.md): every statement is a round trip
//! to sqlx's SQLite worker thread, which cost more than the SQLite work itself when the
//! path issued ~1 statement per event plus ~6 per failure. Now events go in as multi-row
//! INSERTs, incident state is looked up once per fingerprint per batch and kept in step
//! in memory, and the per-incident counters, users and event links are written once per
//! incident at the end of the batch. The decisions are the same, taken in the same order
//! on the same state: every query that reads events restricts itself to the rows that
//! existed when the per-event path would have run it (`id <= ?`), and pending writes
//! are flushed before any query that could observe them.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use chrono::Utc;
use serde_json::json;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Encode, QueryBuilder, Sqlite, Transaction, Type};

use super::cache::{self, WriteCache};
use super::correlations::{self, Bloom, SharedCorrelations};
use super::recent::{self, CredentialFailure, RollbackGuard, SharedRecent, WindowRow};
use super::{to_ms, Batch, BatchResult, Store, StoreError, StoredEvent};
use crate::event::{Category, Outcome};
use crate::incidents::{self, Decision, Detector, IncidentState, IncidentStatus, Policy};

type Tx<'c> = Transaction<'c, Sqlite>;

/// Codes that count as credential failures for the spray and brute-force detectors.
const CREDENTIAL_CODES: &str = "50126, 50053";
/// The lockout code.
const LOCKOUT_CODE: i64 = 50053;
/// Columns of one event row.
const EVENT_COLUMNS: usize = 31;
/// Rows per multi-row INSERT: large enough that the per-statement round trip vanishes,
/// small enough to stay far below SQLite's bind-parameter limit (32766).
const INSERT_ROWS: usize = 128;
/// Success rows per multi-row INSERT (3 columns each).
const SUCCESS_ROWS: usize = 512;
/// The multi-row INSERT of events (`insert_events`).
static EVENT_INSERTS: InsertTexts = InsertTexts {
    head: "INSERT OR IGNORE INTO events (id, dedup_key, dedup_at, source, format, received_at, occurred_at, outcome,
            category, code, codes, entry_id, message, user, app_id, app_name, tenant_id,
            client_app, auth_protocol, token_issuer_type, ip, correlation_id, record_id,
            device, file_key, file_offset, user_key, ip_key, fingerprint, incident_id, counted) VALUES ",
    columns: EVENT_COLUMNS,
    tail: "",
    sizes: [INSERT_ROWS, 32, 8, 1],
    built: OnceLock::new(),
};
/// The multi-row INSERT of successes (`insert_successes`): the source, bound first, then
/// the rows.
static SUCCESS_INSERTS: InsertTexts = InsertTexts {
    head: "INSERT OR IGNORE INTO successes (dedup_at, dedup_key, occurred_at, source) \
           SELECT column1, column2, column3, ? FROM (VALUES ",
    columns: 3,
    tail: ")",
    sizes: [SUCCESS_ROWS, 64, 8, 1],
    built: OnceLock::new(),
};

/// The multi-row INSERT of an incident's new users (`BatchIncidents::flush`): OR IGNORE
/// skips the pairs already stored, and RETURNING names only the pairs it inserted.
static INCIDENT_USER_INSERTS: InsertTexts = InsertTexts {
    head: "INSERT OR IGNORE INTO main.incident_users (incident_id, user_key) VALUES ",
    columns: 2,
    tail: " RETURNING incident_id",
    sizes: [512, 64, 8, 1],
    built: OnceLock::new(),
};

/// A Passport failure and its Entra record are one sign-in attempt when they share a
/// correlation id and lie within this distance of each other in event time. Copies of one
/// attempt are seconds apart; the bound is what lets the correlation index be led by time
/// (migration 0006) instead of by a random id.
pub const CORRELATION_WINDOW_MS: i64 = 12 * 3_600_000;
/// Width of the event-time buckets leading `events_by_correlation`: the expression
/// `occurred_at / 3600000` of migration 0012, verbatim. An hour: keys are random within
/// a bucket, so a commit writes again every page of the current bucket it inserted into;
/// with day buckets (migration 0007) that was the whole day's index at every commit. The
/// ±12 h window then spans up to 25 buckets, but the correlation filter rules out almost
/// every lookup, and a probe of an empty bucket is one short seek.
pub(crate) const CORRELATION_BUCKET_MS: i64 = 3_600_000;
/// How far an incident's times may run ahead of this host's clock: a small lead for Macs
/// whose clocks are a little off, so that one whose clock is hours or a year ahead does not
/// keep its incident open for that long. The event-time clock itself never runs ahead of
/// this host: a lead there would make every current failure of every other machine "late"
/// by as much, resolved as soon as it opened under a quiet period shorter than the lead.
const CLOCK_LEAD_MS: i64 = 5 * 60_000;
/// Width of the event-time buckets leading the detector indexes (`occurred_at / 3600000`).
const DETECTOR_BUCKET_MS: i64 = 3_600_000;
/// How many detector windows back from the event-time clock the in-memory copy of the
/// credential failures reaches (`recent`): one for the windows the next batches end, one
/// more for a feed that lags behind another (a Passport log ahead of its Entra export).
const RECENT_WINDOWS: i64 = 2;
/// What a batch reads first, in one statement: the event-time clock, which writer
/// connection this is and whether another connection committed since (`recent`), and
/// the latest time a stored failure is keyed under (`stored_keys`).
const BATCH_START: &str = "SELECT (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'watermark_ms'),
        (SELECT number FROM temp.writer_connection), (SELECT data_version FROM pragma_data_version),
        (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'retention_horizon_ms'),
        (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'clock_ms'),
        (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'input_at_ms'),
        EXISTS (SELECT 1 FROM logged_time_keys), (SELECT MAX(dedup_at) FROM events)";

/// The incidents' clock's readings, in one statement: the newest event time, the clock at
/// the last input and that input's wall time (`incident_clock`).
const CLOCK_READINGS: &str = "SELECT (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'watermark_ms'),
        (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'clock_ms'),
        (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'input_at_ms')";

/// What `CLOCK_READINGS` returns.
type ClockReadings = (Option<i64>, Option<i64>, Option<i64>);

/// The incidents' clock as of `now`: the event-time clock as it stood at the last input
/// (`clock`, or the newest event time `watermark` for a store written before it was
/// kept) run on by the wall time since that input (`input_at`) once that is at least
/// `MIN_IDLE_MS` (input arriving steadily, a replay, is judged in its own time), never
/// past `ceiling` unless it already was. While no input arrives a feed's incidents go
/// quiet, across restarts too; records re-sent and found stored are no input. `i64::MIN`
/// for a store that has stored nothing.
fn incident_clock(watermark: Option<i64>, clock: Option<i64>, input_at: Option<i64>, now: i64, ceiling: i64) -> i64 {
    let base = watermark.max(clock).unwrap_or(i64::MIN);
    if base == i64::MIN {
        return base;
    }
    let idle = input_at.map_or(0, |at| now.saturating_sub(at).max(0));
    let idle = if idle < MIN_IDLE_MS { 0 } else { idle };
    base.saturating_add(idle).min(ceiling).max(base)
}

/// Wall time without input after which the incidents' clock runs on with it: longer than
/// the gaps between the batches of a steady feed or a replay (whose wall time must not
/// move the clock), shorter than any sensible quiet period.
const MIN_IDLE_MS: i64 = 5_000;

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
    /// A detector's subject (`incidents.subject_key`, migration 0008).
    subject_key: Option<&'a str>,
}

/// What the batch did to one incident and has not written yet.
struct Delta {
    counted: i64,
    first_seen: i64,
    last_seen: i64,
    /// In order of first appearance: `sources` is an ordered list.
    sources: Vec<String>,
    user_keys: Vec<String>,
}

impl Default for Delta {
    fn default() -> Self {
        Self { counted: 0, first_seen: i64::MAX, last_seen: i64::MIN, sources: Vec::new(), user_keys: Vec::new() }
    }
}

impl Delta {
    fn seen_by(&mut self, source: &str, at: i64) {
        self.last_seen = self.last_seen.max(at);
        if !self.sources.iter().any(|s| s == source) {
            self.sources.push(source.to_string());
        }
    }
}

/// A counted failure carrying a correlation id, as the correlation join needs it.
#[derive(Clone)]
struct CorrelationHit {
    event_id: i64,
    occurred_at: i64,
    incident: Option<i64>,
    fingerprint: Option<String>,
    /// The category of a hit decoded from a Passport log (None for Entra's records): an
    /// Entra record classified otherwise supersedes it (`Join::Supersedes`).
    passport_category: Option<String>,
    /// The record's own id (Entra's), which the same sign-in keeps in every shape.
    record_id: Option<String>,
}

/// A failure of an earlier batch that a supersede made uncounted, as the detectors'
/// windows hold it.
struct UncountedFailure {
    at: i64,
    user_key: Option<String>,
    ip_key: Option<String>,
    code: i64,
}

/// The decoder name of Passport's logs (`SignInEvent::format`).
const PASSPORT_FORMAT: &str = "passport";

/// What the correlation join found for a new failure.
enum Join {
    /// No earlier copy of the attempt: the failure counts on its own.
    None,
    /// It joined an earlier copy of the attempt, uncounted.
    Copy,
    /// The earlier copy is a Passport line classified otherwise: this Entra record, which
    /// carries what the Mac never sees (the token issuer type of a federated user, the
    /// Conditional Access verdict), counts instead and takes the line with it.
    Supersedes(CorrelationHit),
}

/// The first (lowest id) of `hits`, which are in id order, within the correlation window
/// of `at`.
fn first_within<'h>(
    hits: &'h [CorrelationHit],
    at: i64,
    from_passport: bool,
    record_id: Option<&str>,
) -> Option<&'h CorrelationHit> {
    // A copy of the attempt from a Mac's log: a Passport line joins Entra's record (or an
    // earlier line of the same attempt), and Entra's record a Passport line. Two Entra
    // records of one correlation id are two sign-ins (a retry, an MFA step: each has its
    // own id), and stay so, unless they are one sign-in in two shapes (the same id, its
    // time written to another precision, so stored twice).
    hits.iter().find(|h| {
        let same_record = record_id.is_some() && h.record_id.as_deref() == record_id;
        (from_passport || h.passport_category.is_some() || same_record)
            && h.occurred_at.abs_diff(at) <= CORRELATION_WINDOW_MS.unsigned_abs()
    })
}

/// Every time bucket of `width` ms that holds a time in `[from, to]`. SQLite's integer
/// division truncates towards zero as Rust's does, so both sides agree on a bucket.
fn buckets(from: i64, to: i64, width: i64) -> std::ops::RangeInclusive<i64> {
    (from / width)..=(to / width)
}

/// The newest incident per fingerprint, as a batch knows it, and which fingerprints'
/// entries hold each incident: an event that joins an incident finds its entries without
/// a pass over every fingerprint of the batch (once per event, that pass was a tenth of
/// the writer's instructions in a replay with a few hundred incidents: BENCHMARKS.md,
/// twentieth pass).
#[derive(Default)]
struct NewestIncidents {
    /// Each fingerprint's newest incident, `None` for a fingerprint that has none.
    by_fingerprint: HashMap<String, Option<IncidentState>>,
    /// Every fingerprint whose entry holds the incident, and maybe some whose entry no
    /// longer does (each is checked on use).
    holders: HashMap<i64, Vec<String>>,
}

impl NewestIncidents {
    /// From the store's newest incident per fingerprint (`newest_incidents`).
    fn from_map(by_fingerprint: HashMap<String, Option<IncidentState>>) -> Self {
        let mut newest = NewestIncidents::default();
        for (fingerprint, state) in by_fingerprint {
            newest.insert(&fingerprint, state);
        }
        newest
    }

    /// The known state of `fingerprint`'s newest incident: `None` when not known,
    /// `Some(None)` when it has none.
    fn get(&self, fingerprint: &str) -> Option<Option<IncidentState>> {
        self.by_fingerprint.get(fingerprint).copied()
    }

    /// Records `state` as `fingerprint`'s newest incident, and `fingerprint` among that
    /// incident's holders.
    fn insert(&mut self, fingerprint: &str, state: Option<IncidentState>) {
        if let Some(st) = state {
            let holders = self.holders.entry(st.id).or_default();
            if !holders.iter().any(|h| h == fingerprint) {
                holders.push(fingerprint.to_owned());
            }
        }
        self.by_fingerprint.insert(fingerprint.to_owned(), state);
    }

    /// Forgets what is known of `fingerprint`: it is read again when next asked for.
    fn remove(&mut self, fingerprint: &str) {
        self.by_fingerprint.remove(fingerprint);
    }

    /// `fingerprint`'s newest incident reopened.
    fn reopened(&mut self, fingerprint: &str) {
        if let Some(Some(st)) = self.by_fingerprint.get_mut(fingerprint) {
            st.status = IncidentStatus::Open;
            st.resolved_at_ms = None;
        }
    }

    /// An event at `at` joined incident `id`: the entries holding it move their last
    /// event up to `at`, except one resolved before `at`, for which this returns true
    /// (its state is then stale: see `BatchIncidents::touch`).
    fn joined(&mut self, id: i64, at: i64) -> bool {
        let mut stale = false;
        for fingerprint in self.holders.get(&id).map(Vec::as_slice).unwrap_or_default() {
            let Some(Some(st)) = self.by_fingerprint.get_mut(fingerprint) else {
                continue;
            };
            if st.id != id {
                continue;
            }
            if st.status == IncidentStatus::Resolved && at > st.last_seen_ms {
                stale = true;
            } else {
                st.last_seen_ms = st.last_seen_ms.max(at);
            }
        }
        stale
    }

    /// Forgets every entry holding incident `id`.
    fn forget_incident(&mut self, id: i64) {
        for fingerprint in self.holders.remove(&id).unwrap_or_default() {
            if self.by_fingerprint.get(&fingerprint).is_some_and(|st| st.is_some_and(|st| st.id == id)) {
                self.by_fingerprint.remove(&fingerprint);
            }
        }
    }
}

/// Incident state for one batch: the newest incident per fingerprint (read once, then
/// kept in step with what the batch decides) and the writes still to flush.
#[derive(Default)]
struct BatchIncidents {
    newest: NewestIncidents,
    pending: HashMap<i64, Delta>,
    /// Counted failures of earlier batches near this batch's failures, per correlation
    /// id, in id order (prefetched).
    prior_correlations: HashMap<String, Vec<CorrelationHit>>,
    /// Counted failures of this batch, per correlation id, in id order.
    batch_correlations: HashMap<String, Vec<CorrelationHit>>,
    /// Set once an opening gate adopted held events: cached event state may be stale,
    /// so from then on the correlation join asks SQL (after a flush).
    events_changed: bool,
    /// The latest time an incident may record (`NewFailure::at`).
    ceiling: i64,
    /// Credential failures of earlier batches that a supersede made uncounted: the
    /// detectors' copy of the recent past marks them so (`recent`).
    uncounted: Vec<UncountedFailure>,
    /// A counted Passport line took the user and IP keys of its Entra record
    /// (`join_correlated`): the detectors' copy of the recent past no longer matches.
    keys_lent: bool,
    /// Each incident's quiet period as SQL over its `category` (`quiet_sql`).
    quiet_sql: String,
    /// The statement `flush` adds incidents' deltas with (`delta_update_sql`).
    delta_sql: String,
    /// A resolved incident got a later event than its last: `flush` makes it active again,
    /// so its state is read back (after a flush) instead of kept.
    flush_before_read: bool,
    /// How many times that happened (`BatchResult::incidents_reactivated`).
    reactivated: u64,
}

impl BatchIncidents {
    async fn state(&mut self, tx: &mut Tx<'_>, fingerprint: &str) -> Result<Option<IncidentState>, StoreError> {
        if let Some(s) = self.newest.get(fingerprint) {
            return Ok(s);
        }
        if self.flush_before_read {
            self.flush(tx).await?;
            self.flush_before_read = false;
        }
        let mut s = newest_incident(tx, fingerprint).await?;
        if let Some(st) = s.as_mut() {
            // A correlated copy may already have moved last_seen without a flush.
            if let Some(d) = self.pending.get(&st.id) {
                st.last_seen_ms = st.last_seen_ms.max(d.last_seen);
            }
        }
        self.newest.insert(fingerprint, s);
        Ok(s)
    }

    /// An uncounted copy joined incident `id`: the incident has now been seen by its
    /// source, spans its time and counts its user.
    fn join_copy(&mut self, id: i64, source: &str, at: i64, user_key: Option<&str>) {
        self.touch(id, at);
        let d = self.pending.entry(id).or_default();
        d.seen_by(source, at);
        d.first_seen = d.first_seen.min(at);
        if let Some(user_key) = user_key {
            d.user_keys.push(user_key.to_owned());
        }
    }

    /// An event at `at` joins incident `id`: mirrors `last_seen = MAX(last_seen, at)` into
    /// its cached state. If the incident is resolved and `at` is after its last event,
    /// `flush` may make it active again (see there): its cached state is dropped instead,
    /// to be read back after a flush.
    fn touch(&mut self, id: i64, at: i64) {
        if self.newest.joined(id, at) {
            self.newest.forget_incident(id);
            self.flush_before_read = true;
            self.reactivated += 1;
        }
    }

    /// Writes what the batch did to its incidents in a handful of statements, whatever
    /// the number of incidents: each statement is a round trip to the SQLite thread.
    async fn flush(&mut self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut deltas: Vec<(i64, Delta)> = self.pending.drain().collect();
        deltas.sort_unstable_by_key(|(id, _)| *id);
        // Users first: which (incident, user) pairs are new decides users_affected.
        let pairs: Vec<(i64, &str)> =
            deltas.iter().flat_map(|(id, d)| d.user_keys.iter().map(move |k| (*id, k.as_str()))).collect();
        let mut new_users: HashMap<i64, i64> = HashMap::new();
        let mut left = pairs.as_slice();
        while !left.is_empty() {
            // Multi-row VALUES of a few fixed sizes, each prepared once. A bound JSON list
            // (one statement) cost SQLite more in parsing and extracting it than the extra
            // round trips cost: its thread does 4.8 % less work without it
            // (BENCHMARKS.md, twenty-second pass).
            let (n, sql) = INCIDENT_USER_INSERTS.next(left.len());
            let (head, more) = left.split_at(n);
            let mut args = SqliteArguments::default();
            args.reserve(2 * head.len(), 0);
            for (id, key) in head {
                bind(&mut args, *id)?;
                bind(&mut args, *key)?;
            }
            let inserted: Vec<(i64,)> = sqlx::query_as_with(sql, args).persistent(true).fetch_all(&mut **tx).await?;
            for (id,) in inserted {
                *new_users.entry(id).or_default() += 1;
            }
            left = more;
        }
        // One bound JSON list, whatever the number of incidents: a few hundred a batch at
        // most, one per incident, where the users above are one per failure.
        let rows: Vec<(i64, i64, i64, i64, i64, &str)> = deltas
            .iter()
            .map(|(id, d)| {
                let source = d.sources.first().map(String::as_str).unwrap_or("");
                (*id, d.counted, new_users.get(id).copied().unwrap_or(0), d.first_seen, d.last_seen, source)
            })
            .collect();
        let list = serde_json::to_string(&rows)
            .map_err(|e| StoreError::Corrupt { column: "incidents", value: e.to_string() })?;
        sqlx::query(&self.delta_sql).bind(list).persistent(true).execute(&mut **tx).await?;
        for (id, d) in &deltas {
            for source in d.sources.iter().skip(1) {
                add_source(tx, *id, source, d.last_seen).await?;
            }
        }
        Ok(())
    }
}

/// The statement that adds incidents' deltas, a JSON list of `[id, n, u, f, l, s]` bound
/// as `?1`, to their rows, for incidents whose quiet period is `quiet_sql` (see
/// `quiet_sql`). Its text is the same for every batch, so it is prepared once and kept:
/// prepared afresh for every batch (its text varied with the number of incidents), it
/// cost the SQLite thread about a third of a millisecond each time (BENCHMARKS.md,
/// twentieth pass).
fn delta_update_sql(quiet_sql: &str) -> String {
    // An incident the sweep resolved (at its last event plus its quiet period) that a
    // late failure or copy joins did not go quiet then: it is active again, and the sweep
    // at the end of the batch resolves it at its new end if the clock has passed that.
    // The right-hand sides read the row as it was.
    let resolved_too_early =
        format!("status = 'resolved' AND v.l > last_seen AND resolved_at = last_seen + {quiet_sql}");
    format!(
        "WITH v(id, n, u, f, l, s) AS (SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
                                             value ->> 5 FROM json_each(?1))
         UPDATE incidents SET event_count = event_count + v.n,
            users_affected = users_affected + v.u,
            status = CASE WHEN {resolved_too_early}
                          THEN CASE WHEN acknowledged_at IS NOT NULL THEN 'acknowledged' ELSE 'open' END
                          ELSE status END,
            resolved_at = CASE WHEN {resolved_too_early} THEN NULL ELSE resolved_at END,
            first_seen = MIN(first_seen, v.f), last_seen = MAX(last_seen, v.l),
            sources = CASE WHEN v.s = '' OR instr(',' || sources || ',', ',' || v.s || ',') > 0 THEN sources
                           WHEN sources = '' THEN v.s ELSE sources || ',' || v.s END
         FROM v WHERE incidents.id = v.id"
    )
}

/// A new failure event: where it is and what the incident engine needs.
struct NewFailure<'a> {
    stored: &'a StoredEvent,
    /// Its time as incidents see it: the event time, but never more than the event-time
    /// clock's ceiling (`CLOCK_LEAD_MS` past this host's clock). A Mac whose clock runs a year
    /// ahead must not keep its incident open, and catching every later failure, for a year.
    at: i64,
    /// Index into `BatchRows::rows`.
    row: usize,
    event_id: i64,
    category: Category,
    fingerprint: &'a str,
}

/// A new (not yet stored) failure or interrupt row. Its incident is decided before the
/// row is written, so the row goes in once, complete: no second write to link it, and
/// no entry in the held-events index that is removed again a moment later.
struct NewRow<'a> {
    stored: &'a StoredEvent,
    key: &'a str,
    occurred_at: i64,
    dedup_at: i64,
    id: i64,
    /// The failure's own, or that of the copy it joined (read from the store).
    fingerprint: Option<Cow<'a, str>>,
    incident_id: Option<i64>,
    counted: bool,
}

/// The batch's new rows, in batch order (ids grow with it), and how many are written.
/// Anything that reads `events` first writes the rows it may see (`write_through`).
struct BatchRows<'a> {
    rows: Vec<NewRow<'a>>,
    written: usize,
}

impl BatchRows<'_> {
    /// Writes every row before index `end` that is not written yet.
    async fn write_through(&mut self, tx: &mut Tx<'_>, end: usize) -> Result<(), StoreError> {
        let end = end.min(self.rows.len());
        while self.written < end {
            self.written += insert_events(tx, &self.rows[self.written..end]).await?;
        }
        Ok(())
    }
}

impl Store {
    /// Commits a batch in one transaction: events (deduplicated by their idempotency
    /// key), incident updates, detector findings, the quiet-period sweep and the
    /// checkpoints. A crash before the commit leaves none of it.
    pub async fn commit_batch(&self, batch: &Batch, policy: &Policy) -> Result<BatchResult, StoreError> {
        if batch.is_empty() {
            return Ok(BatchResult::default());
        }
        let mut tx = self.begin_write().await?;
        let result = self.apply_batch(&mut tx, batch, policy).await?;
        tx.commit().await?;
        Ok(result)
    }

    /// The incidents' event-time clock at wall time `now` (the newest event time, run on by
    /// the wall time since the last input once that is 5 s or more, never past `now`), as
    /// the quiet-period sweep reads it; `None` before any event.
    pub(crate) async fn incident_clock_at(&self, now: i64) -> Result<Option<i64>, StoreError> {
        let (watermark, clock, input_at): ClockReadings = sqlx::query_as(CLOCK_READINGS).fetch_one(self.pool()).await?;
        Ok(watermark.map(|_| incident_clock(watermark, clock, input_at, now, now)))
    }

    /// Resolves the incidents that have been quiet for their quiet period as of the
    /// event-time clock advanced by the wall time since the store last stored a record
    /// (`input_at_ms`, kept across restarts, so the time `serve` was stopped counts too),
    /// or by `idle` (this process's, see `Writer::resolve_quiet`) for a store written
    /// before that was kept. Returns how many it resolved.
    pub async fn resolve_quiet(&self, idle: std::time::Duration, policy: &Policy) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let (watermark, clock, input_at): ClockReadings = sqlx::query_as(CLOCK_READINGS).fetch_one(&mut *tx.tx).await?;
        if watermark.is_none() {
            return Ok(0);
        }
        let now = to_ms(Utc::now());
        let clock_now = match input_at {
            Some(_) => incident_clock(watermark, clock, input_at, now, now),
            // A store written before the last input's time was kept: this process's idle time.
            None => {
                incident_clock(watermark, clock, Some(now - i64::try_from(idle.as_millis()).unwrap_or(0)), now, now)
            }
        };
        let resolved = sweep(&mut tx.tx, clock_now, policy).await?;
        tx.commit().await?;
        Ok(resolved)
    }

    /// Opens a write transaction on the writer's connection, for [`Store::apply_batch`].
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        // IMMEDIATE: take the write lock first. A deferred transaction reads (watermark,
        // MAX(id)) under a snapshot and then fails with SQLITE_BUSY if another writer (the
        // HTTP ingest, an acknowledgement, retention) committed meanwhile; this one waits
        // its turn (busy_timeout) instead, and the ids it assigns cannot be taken.
        let tx = self.writer_pool().begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx {
            tx,
            guard: RollbackGuard::new(self.recent.clone(), self.correlations.clone()),
            checkpointer: self.checkpointer.clone(),
            records: 0,
        })
    }

    /// Writes one batch inside `tx`, exactly as [`Store::commit_batch`] does, without
    /// committing. Batches applied one after another in one transaction decide the same
    /// as if each were committed on its own: every read inside sees the writes before it.
    pub async fn apply_batch(
        &self,
        tx: &mut WriteTx,
        batch: &Batch,
        policy: &Policy,
    ) -> Result<BatchResult, StoreError> {
        let mut result = BatchResult::default();
        if batch.is_empty() {
            return Ok(result);
        }
        tx.records += batch.records();
        let tx = &mut tx.tx;
        type BatchStart = (Option<i64>, i64, i64, Option<i64>, Option<i64>, Option<i64>, bool, Option<i64>);
        let (watermark, connection, data_version, horizon, clock, input_at, any_logged_time, newest_key_time): BatchStart =
            sqlx::query_as(BATCH_START).fetch_one(&mut **tx).await?;
        // Records with a time of their own (dedup_at > 0) before what retention pruned.
        let horizon = horizon.unwrap_or(i64::MIN);
        let mut expired = |dedup_at: i64, source: &str| {
            let old = dedup_at != 0 && dedup_at < horizon;
            if old {
                *result.expired_by_source.entry(source.to_owned()).or_default() += 1;
            }
            old
        };
        let now = to_ms(Utc::now());
        // A clock in the future on one machine must not resolve every incident: the
        // event-time clock never runs ahead of this host, and an incident's times no more
        // than `CLOCK_LEAD_MS`.
        let ceiling = now + CLOCK_LEAD_MS;
        // What incidents are judged by: the event-time clock, run on by the wall time
        // since the last input (a feed that went quiet, or `serve` stopped meanwhile).
        let clock_before = incident_clock(watermark, clock, input_at, now, now);
        let mut watermark = watermark.unwrap_or(i64::MIN);
        let watermark_before = watermark;
        cache::lock(&self.recent).check(connection, data_version);
        cache::lock(&self.correlations).check(connection, data_version);
        let batch_max = batch
            .events
            .iter()
            .map(|e| to_ms(e.event.occurred_at))
            .chain(batch.successes.iter().map(|s| s.occurred_at_ms))
            .map(|t| t.min(now))
            .max()
            .unwrap_or(i64::MIN);
        // Incidents that went quiet before this batch close first (so a recurrence
        // reopens them); the batch's own clock advance is swept after its events, so a
        // failure inside the batch can still extend the incident it belongs to.
        result.incidents_auto_resolved += sweep(tx, clock_before, policy).await?;

        // Every event row first, in batch order (ids grow with it), then the incident
        // work in the same order as if each had been inserted just before it.
        let mut rows: Vec<(&StoredEvent, &str)> = Vec::with_capacity(batch.events.len());
        let mut successes: Vec<SuccessRow<'_>> = Vec::with_capacity(batch.successes.len());
        for stored in &batch.events {
            let ev = &stored.event;
            let Some(key) = stored.dedup_key() else {
                continue;
            };
            if expired(ev.dedup_at(), &ev.source) {
                continue;
            }
            if ev.outcome == Outcome::Success {
                successes.push(SuccessRow {
                    dedup_at: ev.dedup_at(),
                    time_is_logged: ev.time_is_logged,
                    occurred_at: to_ms(ev.occurred_at),
                    key,
                    source: &ev.source,
                });
                continue;
            }
            rows.push((stored, key));
        }
        successes.extend(batch.successes.iter().filter(|s| !expired(s.dedup_at, &s.source)).map(|s| SuccessRow {
            dedup_at: s.dedup_at,
            time_is_logged: s.time_is_logged,
            occurred_at: s.occurred_at_ms,
            key: s.key.as_str(),
            source: &s.source,
        }));
        drop_copies_under_another_time(tx, &mut rows, &mut successes, any_logged_time, &mut result).await?;
        insert_successes(tx, &successes, &mut result).await?;

        // Which rows are new: stored before (one indexed lookup per key no later than the
        // newest stored, clustered by time), or repeated inside this batch.
        let stored_before = stored_keys(tx, &rows, newest_key_time).await?;
        let mut seen: HashSet<(i64, &str)> = HashSet::with_capacity(rows.len());
        let next_id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&mut **tx).await?;
        let mut batch_rows = BatchRows { rows: Vec::with_capacity(rows.len()), written: 0 };
        let mut failures: Vec<NewFailure<'_>> = Vec::new();
        for &(stored, key) in &rows {
            let ev = &stored.event;
            let occurred_at = to_ms(ev.occurred_at);
            let dedup_at = ev.dedup_at();
            let already = !stored_before.is_empty() && stored_before.contains(&(dedup_at, key.to_owned()));
            if already || !seen.insert((dedup_at, key)) {
                result.duplicates += 1;
                *result.duplicates_by_source.entry(ev.source.clone()).or_default() += 1;
                continue;
            }
            *result.stored.entry((ev.source.clone(), ev.outcome)).or_default() += 1;
            let id = next_id + 1 + batch_rows.rows.len() as i64;
            let fingerprint = stored.fingerprint();
            if let Some(fingerprint) = fingerprint {
                let category = ev.category.unwrap_or(Category::Unclassified);
                *result.failures.entry((ev.source.clone(), category, ev.primary_code())).or_default() += 1;
                failures.push(NewFailure {
                    stored,
                    at: occurred_at.min(ceiling),
                    row: batch_rows.rows.len(),
                    event_id: id,
                    category,
                    fingerprint,
                });
            }
            batch_rows.rows.push(NewRow {
                stored,
                key,
                occurred_at,
                dedup_at,
                id,
                fingerprint: fingerprint.map(Cow::Borrowed),
                incident_id: None,
                counted: true,
            });
        }

        let quiet = quiet_sql(policy);
        let mut state = BatchIncidents {
            ceiling,
            delta_sql: delta_update_sql(&quiet),
            quiet_sql: quiet,
            ..BatchIncidents::default()
        };
        // Every fingerprint's newest incident in one statement, instead of one round trip
        // to the SQLite thread per fingerprint (a few hundred per batch).
        let mut fingerprints: Vec<&str> = failures.iter().map(|f| f.fingerprint).collect();
        fingerprints.sort_unstable();
        fingerprints.dedup();
        state.newest = NewestIncidents::from_map(newest_incidents(tx, &fingerprints).await?);
        if let Some(first_new) = failures.iter().map(|f| f.event_id).min() {
            let probes: Vec<(&str, i64)> = failures
                .iter()
                .filter_map(|f| Some((f.stored.event.correlation()?, to_ms(f.stored.event.occurred_at))))
                .collect();
            let probes = may_find_copies(tx, &self.correlations, probes).await?;
            state.prior_correlations = counted_copies(tx, &probes, first_new).await?;
        }
        // The filter takes in this batch's rows before they are written: the lookups below
        // find rows of this batch too. Every row with a correlation id, counted or not yet
        // decided: an id too many is only a lookup more.
        {
            let mut filter = cache::lock(&self.correlations);
            for row in &batch_rows.rows {
                if let Some(c) = row.stored.event.correlation() {
                    filter.add(c);
                }
            }
        }
        let mut credential_failures: Vec<&StoredEvent> = Vec::new();
        for f in &failures {
            if matches!(f.stored.event.primary_code(), Some(50126 | 50053)) {
                credential_failures.push(f.stored);
            }
            match join_correlated(tx, &mut state, &mut batch_rows, f, &self.correlations).await? {
                Join::Copy => {}
                Join::None => place_failure(tx, &mut state, &mut batch_rows, f, policy, &mut result).await?,
                Join::Supersedes(hit) => {
                    place_failure(tx, &mut state, &mut batch_rows, f, policy, &mut result).await?;
                    supersede(tx, &mut state, &mut batch_rows, f, &hit, policy, &mut result).await?;
                }
            }
        }
        batch_rows.write_through(tx, usize::MAX).await?;
        state.flush(tx).await?;
        result.incidents_reactivated += state.reactivated;

        if policy.detectors.enabled {
            let mut copy = cache::lock(&self.recent);
            for line in &state.uncounted {
                copy.uncount(&CredentialFailure {
                    at: line.at,
                    ip_key: line.ip_key.as_deref(),
                    user_key: line.user_key.as_deref(),
                    counted: true,
                    lockout: line.code == LOCKOUT_CODE,
                });
            }
            for row in &batch_rows.rows {
                if let Some(failure) = credential_failure(row) {
                    copy.add(&failure);
                }
            }
            if state.keys_lent {
                copy.forget();
            }
        }
        if policy.detectors.enabled && !credential_failures.is_empty() {
            let recent = Recent { copy: &self.recent, watermark_before };
            run_detectors(tx, &credential_failures, policy, &recent, ceiling, &mut result).await?;
        }

        watermark = watermark.max(batch_max);
        let clock_after = clock_before.max(watermark);
        // The clock advanced; or a late failure, older than the clock, may have opened (or
        // extended) an incident that went quiet long ago: it resolves now, not at the
        // next advance.
        if clock_after > clock_before || failures.iter().any(|f| f.at < clock_after) {
            result.incidents_auto_resolved += sweep(tx, clock_after, policy).await?;
        }
        if policy.detectors.enabled {
            // Later batches' windows end at or after about the clock; keep one window more
            // for feeds that lag behind each other.
            let window = i64::try_from(policy.detectors.window.as_millis()).unwrap_or(i64::MAX);
            cache::lock(&self.recent).trim(watermark.saturating_sub(window.saturating_mul(RECENT_WINDOWS)));
        } else {
            cache::lock(&self.recent).forget();
        }
        if watermark != i64::MIN {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('watermark_ms', ?)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(watermark.to_string())
            .execute(&mut **tx)
            .await?;
        }
        if !result.stored.is_empty() && clock_after != i64::MIN {
            // The incidents' clock as of this input, and when input last arrived by the
            // wall clock (`incident_clock`). Records re-sent and found stored are no input:
            // a feed that only re-delivers has gone quiet.
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('clock_ms', ?1), ('input_at_ms', ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(clock_after.to_string())
            .bind(now.to_string())
            .execute(&mut **tx)
            .await?;
        }

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
            .bind(cp.fingerprint.to_bytes())
            .bind(cp.offset as i64)
            .bind(&cp.state)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Ok(result)
    }
}

/// A write transaction open on the writer's connection ([`Store::begin_write`]): batches
/// applied to it ([`Store::apply_batch`]) become visible, and durable, together when it
/// commits. Dropped without [`WriteTx::commit`], it rolls back.
pub struct WriteTx {
    tx: Tx<'static>,
    /// Forgets the write path's in-memory copies unless the transaction commits.
    guard: RollbackGuard,
    /// Told how many records committed.
    checkpointer: std::sync::Arc<super::checkpointer::Checkpointer>,
    /// Records of the batches applied.
    records: usize,
}

impl WriteTx {
    /// Records of the batches applied so far (what `Batch::records` counts).
    pub fn records(&self) -> usize {
        self.records
    }

    /// Commits everything applied.
    pub async fn commit(self) -> Result<(), StoreError> {
        let WriteTx { tx, guard, checkpointer, records } = self;
        tx.commit().await?;
        guard.committed();
        checkpointer.committed(records as u64);
        Ok(())
    }
}

/// A success as stored: successes are only counted, so the row is just what the summary
/// and de-duplication need.
struct SuccessRow<'a> {
    dedup_at: i64,
    time_is_logged: bool,
    occurred_at: i64,
    key: &'a str,
    source: &'a str,
}

/// Stores successes (skipping keys already stored) and counts what was new per source.
/// Rows go in per run of one source so `rows_affected` attributes duplicates exactly.
async fn insert_successes(
    tx: &mut Tx<'_>,
    rows: &[SuccessRow<'_>],
    result: &mut BatchResult,
) -> Result<(), StoreError> {
    let mut rest = rows;
    while let Some(first) = rest.first() {
        let run = rest.iter().position(|r| r.source != first.source).unwrap_or(rest.len());
        let (same_source, tail) = rest.split_at(run);
        let mut inserted = 0u64;
        let mut left = same_source;
        while !left.is_empty() {
            let (n, sql) = SUCCESS_INSERTS.next(left.len());
            let (head, more) = left.split_at(n);
            // OR IGNORE rather than ON CONFLICT DO NOTHING: the same for a stored key, and
            // no statement journal (see `insert_events`); no column can be NULL. The run's
            // one source is bound once, not once per row: each bound text is copied twice
            // (by sqlx for its SQLite thread, then by SQLite).
            let mut args = SqliteArguments::default();
            args.reserve(1 + 3 * n, 0);
            bind(&mut args, first.source)?;
            for r in head {
                bind(&mut args, r.dedup_at)?;
                bind(&mut args, r.key)?;
                bind(&mut args, r.occurred_at)?;
            }
            inserted += sqlx::query_with(sql, args).persistent(true).execute(&mut **tx).await?.rows_affected();
            left = more;
        }
        let duplicates = same_source.len() as u64 - inserted;
        if inserted > 0 {
            *result.stored.entry((first.source.to_string(), Outcome::Success)).or_default() += inserted;
        }
        if duplicates > 0 {
            result.duplicates += duplicates;
            *result.duplicates_by_source.entry(first.source.to_string()).or_default() += duplicates;
        }
        rest = tail;
    }
    Ok(())
}

/// How long after a sign-in its log record may be written (`time`, `TimeGenerated`):
/// minutes as a rule. Every row of the store in that span before a batch of such records
/// is read to find their ids (there is no index by id alone: see `events_dedup`), so the
/// span is what the lag needs, with room, not more.
const LOGGED_LAG_MS: i64 = 6 * 3_600_000;

/// Which of a JSON list of record keys are stored under a time from `?2` to `?3`, or
/// under a logged time (`logged_time_keys`).
const STORED_AROUND: &str = "WITH v(k) AS (SELECT value FROM json_each(?1))
    SELECT json_group_array(k) FROM (
        SELECT s.dedup_key AS k FROM successes s
         WHERE s.dedup_at BETWEEN ?2 AND ?3 AND s.dedup_key IN (SELECT k FROM v)
        UNION SELECT e.dedup_key FROM events e INDEXED BY events_dedup
         WHERE e.dedup_at BETWEEN ?2 AND ?3 AND e.dedup_key IN (SELECT k FROM v)
        UNION SELECT l.dedup_key FROM logged_time_keys l WHERE l.dedup_key IN (SELECT k FROM v))";

/// Which of a JSON list of record keys are stored under a logged time.
const STORED_UNDER_LOGGED_TIME: &str = "SELECT json_group_array(l.dedup_key)
      FROM json_each(?1) v JOIN logged_time_keys l ON l.dedup_key = v.value";

/// Records are unique on (time, id), and one sign-in can come under two times: its own
/// (`createdDateTime`: a diagnostic record, a Graph object) and when its log record was
/// written (a Log Analytics row exported without `CreatedDateTime`). Drops the copies of
/// sign-ins already stored under the other time, or in this batch under it, as
/// duplicates, and remembers the ids stored under a logged time. Costs nothing more
/// unless the batch holds such a record or the store ever took one (`any_logged_time`).
async fn drop_copies_under_another_time(
    tx: &mut Tx<'_>,
    rows: &mut Vec<(&StoredEvent, &str)>,
    successes: &mut Vec<SuccessRow<'_>>,
    any_logged_time: bool,
    result: &mut BatchResult,
) -> Result<(), StoreError> {
    let by_id = |key: &str| key.starts_with("id:");
    let logged = ids_under_logged_time(rows, successes);
    if logged.is_empty() && !any_logged_time {
        return Ok(());
    }
    let own: Vec<&str> = rows
        .iter()
        .filter(|(s, k)| !s.event.time_is_logged && by_id(k))
        .map(|(_, k)| *k)
        .chain(successes.iter().filter(|s| !s.time_is_logged && by_id(s.key)).map(|s| s.key))
        .collect();
    // Logged-time copies of sign-ins stored before under any time (their own, up to the
    // lag earlier, or this same logged time), or here in this batch under their own.
    let mut drop_logged: HashSet<String> = HashSet::new();
    if !logged.is_empty() {
        let keys: Vec<&str> = logged.iter().map(|(k, _)| *k).collect();
        let from = logged.iter().map(|(_, t)| *t).min().unwrap_or(0).saturating_sub(LOGGED_LAG_MS);
        // A few minutes past the newest: two hosts' clocks.
        let to = logged.iter().map(|(_, t)| *t).max().unwrap_or(0).saturating_add(600_000);
        drop_logged.extend(fetch_json_rows::<String, _>(tx, STORED_AROUND, &keys, &[from, to], "dedup_key").await?);
        let own_here: HashSet<&str> = own.iter().copied().collect();
        drop_logged.extend(keys.iter().filter(|k| own_here.contains(*k)).map(|k| (*k).to_owned()));
    }
    // Own-time copies of sign-ins stored before under a logged time.
    let mut drop_own: HashSet<String> = HashSet::new();
    if any_logged_time && !own.is_empty() {
        drop_own.extend(fetch_json_rows::<String, _>(tx, STORED_UNDER_LOGGED_TIME, &own, &[], "dedup_key").await?);
    }
    let mut count = |source: &str| {
        result.duplicates += 1;
        *result.duplicates_by_source.entry(source.to_owned()).or_default() += 1;
    };
    let dropped = |logged: bool, key: &str| if logged { drop_logged.contains(key) } else { drop_own.contains(key) };
    rows.retain(|(s, k)| {
        let keep = !by_id(k) || !dropped(s.event.time_is_logged, k);
        if !keep {
            count(&s.event.source);
        }
        keep
    });
    successes.retain(|s| {
        let keep = !by_id(s.key) || !dropped(s.time_is_logged, s.key);
        if !keep {
            count(s.source);
        }
        keep
    });
    // The ids now stored under a logged time, for the records with their own time to come.
    let kept = ids_under_logged_time(rows, successes);
    if !kept.is_empty() {
        let list = serde_json::to_string(&kept)
            .map_err(|e| StoreError::Corrupt { column: "dedup_key", value: e.to_string() })?;
        sqlx::query(
            "INSERT OR IGNORE INTO logged_time_keys (dedup_key, dedup_at) SELECT value ->> 0, value ->> 1 FROM json_each(?)",
        )
        .bind(list)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The (key, time) of the records among `rows` and `successes` keyed by id under a logged
/// time (`SignInEvent::time_is_logged`).
fn ids_under_logged_time<'r>(rows: &[(&StoredEvent, &'r str)], successes: &[SuccessRow<'r>]) -> Vec<(&'r str, i64)> {
    let by_id = |key: &str| key.starts_with("id:");
    rows.iter()
        .filter(|(s, k)| s.event.time_is_logged && by_id(k))
        .map(|(s, k)| (*k, s.event.dedup_at()))
        .chain(successes.iter().filter(|s| s.time_is_logged && by_id(s.key)).map(|s| (s.key, s.dedup_at)))
        .collect()
}

/// The (event time, key) pairs among `rows` that are already stored. Only rows keyed
/// no later than `newest` (the latest time a stored row is keyed under) are looked up:
/// a later one cannot be stored, and a replay of new records in time order has almost
/// no other.
async fn stored_keys(
    tx: &mut Tx<'_>,
    rows: &[(&StoredEvent, &str)],
    newest: Option<i64>,
) -> Result<HashSet<(i64, String)>, StoreError> {
    let Some(newest) = newest else {
        return Ok(HashSet::new());
    };
    let list: Vec<(i64, &str)> = rows
        .iter()
        .map(|(stored, key)| (stored.event.dedup_at(), *key))
        .filter(|&(dedup_at, _)| dedup_at <= newest)
        .collect();
    if list.is_empty() {
        return Ok(HashSet::new());
    }
    // One JSON row, not one result row per duplicate (see `window_events`): a replayed
    // file is all duplicates.
    let keys: Vec<(i64, String)> = fetch_json_rows(tx, STORED_KEYS, &list, &[], "events.dedup_key").await?;
    Ok(keys.into_iter().collect())
}

/// Which of a JSON list of `[dedup_at, dedup_key]` are stored.
const STORED_KEYS: &str = "WITH v(t, k) AS (SELECT value ->> 0, value ->> 1 FROM json_each(?1))
    SELECT json_group_array(json_array(e.dedup_at, e.dedup_key))
      FROM v CROSS JOIN events e INDEXED BY events_dedup ON e.dedup_at = v.t AND e.dedup_key = v.k";

/// Runs `sql`, a query over a JSON list bound as `?1` (and `extra` as `?2`, …) that returns
/// its rows as ONE JSON array (`json_group_array`), and decodes that: sqlx ships every
/// result row over its worker channel with a thread wake-up, which cost more than the
/// queries that return many rows. One bound list instead of a VALUES list
/// of placeholders keeps the statement's text fixed: it is prepared once and cached,
/// where a VALUES list of a few hundred rows was parsed afresh every time (a sixth of
/// the SQLite thread's time).
async fn fetch_json_rows<T: serde::de::DeserializeOwned, L: serde::Serialize>(
    tx: &mut Tx<'_>,
    sql: &str,
    list: &L,
    extra: &[i64],
    what: &'static str,
) -> Result<Vec<T>, StoreError> {
    let list = serde_json::to_string(list).map_err(|e| StoreError::Corrupt { column: what, value: e.to_string() })?;
    fetch_json(tx, sql, Some(list), extra, what).await
}

/// Runs `sql`, bound to `list` as `?1` if there is one and then `extra`, that returns
/// its rows as one JSON array, and decodes that (see `fetch_json_rows`).
async fn fetch_json<T: serde::de::DeserializeOwned>(
    tx: &mut Tx<'_>,
    sql: &str,
    list: Option<String>,
    extra: &[i64],
    what: &'static str,
) -> Result<Vec<T>, StoreError> {
    let mut q = sqlx::query_scalar::<_, String>(sql);
    if let Some(list) = list {
        q = q.bind(list);
    }
    for value in extra {
        q = q.bind(*value);
    }
    let json = q.fetch_one(&mut **tx).await?;
    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt { column: what, value: e.to_string() })
}

/// The text of a multi-row INSERT for each row count it runs with, built once per
/// process. `QueryBuilder` wrote every placeholder and separator through `fmt::Write`:
/// a fifth of the writer's instructions in a replay (BENCHMARKS.md, twentieth pass).
/// Few row counts, so sqlx's prepared-statement cache holds a handful of programs
/// instead of one (large) program per batch remainder.
struct InsertTexts {
    /// Up to the first row's tuple.
    head: &'static str,
    /// Placeholders per row.
    columns: usize,
    /// After the last row's tuple.
    tail: &'static str,
    /// The row counts, largest first.
    sizes: [usize; 4],
    /// The text for each of `sizes`.
    built: OnceLock<[String; 4]>,
}

impl InsertTexts {
    /// The next statement for `left` rows still to insert: the largest row count they
    /// fill (at least 1), and its text.
    fn next(&'static self, left: usize) -> (usize, &'static str) {
        let built = self.built.get_or_init(|| {
            self.sizes.map(|n| format!("{}{}{}", self.head, placeholder_rows(self.columns, n), self.tail))
        });
        let i = self.sizes.iter().position(|&n| n <= left).unwrap_or(self.sizes.len() - 1);
        (self.sizes[i], built[i].as_str())
    }
}

/// `rows` tuples of `columns` placeholders each: `(?, ?), (?, ?)`.
fn placeholder_rows(columns: usize, rows: usize) -> String {
    let tuple = format!("({})", vec!["?"; columns].join(", "));
    vec![tuple; rows].join(", ")
}

/// Adds `value` to a statement's arguments.
fn bind<'q, T: Encode<'q, Sqlite> + Type<Sqlite> + 'q>(
    args: &mut SqliteArguments<'q>,
    value: T,
) -> Result<(), StoreError> {
    args.add(value).map_err(|e| StoreError::Query(sqlx::Error::Encode(e)))
}

/// An event's codes as the `codes` column holds them: comma-separated, NULL for none.
fn codes_text(codes: &[u32]) -> Option<String> {
    let (first, rest) = codes.split_first()?;
    let mut text = first.to_string();
    for code in rest {
        text.push(',');
        text.push_str(&code.to_string());
    }
    Some(text)
}

/// Inserts the first rows of `rows` in one statement (up to `INSERT_ROWS`, as many as one
/// of `EVENT_INSERTS`' texts takes) and says how many, with the ids, incidents and
/// counted flags already decided. The keys were checked to be new in this transaction,
/// so a conflict here is a bug and fails the batch rather than shifting ids.
async fn insert_events(tx: &mut Tx<'_>, rows: &[NewRow<'_>]) -> Result<usize, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let (n, sql) = EVENT_INSERTS.next(rows.len());
    let rows = &rows[..n];
    debug_assert!(rows.len() * EVENT_COLUMNS < 32_766);
    // OR IGNORE: a violation skips the row instead of aborting the statement, so SQLite
    // keeps no statement journal (a copy of every page the statement touches, to undo it
    // alone). The rows were checked to be new and complete, so none may be skipped: the
    // count below turns a skipped row into an error that rolls the batch back.
    let mut args = SqliteArguments::default();
    args.reserve(rows.len() * EVENT_COLUMNS, 0);
    for row in rows {
        let (stored, ev) = (row.stored, &row.stored.event);
        bind(&mut args, row.id)?;
        bind(&mut args, row.key)?;
        bind(&mut args, row.dedup_at)?;
        bind(&mut args, ev.source.as_str())?;
        bind(&mut args, ev.format.as_str())?;
        bind(&mut args, to_ms(ev.received_at))?;
        bind(&mut args, row.occurred_at)?;
        bind(&mut args, ev.outcome.as_str())?;
        bind(&mut args, ev.category.map(|c| c.as_str()))?;
        bind(&mut args, ev.primary_code().map(i64::from))?;
        bind(&mut args, codes_text(&ev.codes))?;
        bind(&mut args, ev.entry_id.as_deref())?;
        bind(&mut args, ev.message.as_deref())?;
        bind(&mut args, ev.user.as_deref())?;
        bind(&mut args, ev.app_id.as_deref())?;
        bind(&mut args, ev.app_name.as_deref())?;
        bind(&mut args, ev.tenant_id.as_deref())?;
        bind(&mut args, ev.client_app.as_deref())?;
        bind(&mut args, ev.auth_protocol.as_deref())?;
        bind(&mut args, ev.token_issuer_type.as_deref())?;
        bind(&mut args, ev.ip.as_deref())?;
        bind(&mut args, ev.correlation_id.as_deref())?;
        bind(&mut args, ev.record_id.as_deref())?;
        bind(&mut args, ev.device.as_deref())?;
        bind(&mut args, ev.position.as_ref().map(|p| p.file_key.as_str()))?;
        bind(&mut args, ev.position.as_ref().map(|p| p.offset as i64))?;
        bind(&mut args, stored.user_key.as_deref())?;
        bind(&mut args, stored.ip_key.as_deref())?;
        bind(&mut args, row.fingerprint.as_deref())?;
        bind(&mut args, row.incident_id)?;
        bind(&mut args, i64::from(row.counted))?;
    }
    let stored = sqlx::query_with(sql, args).persistent(true).execute(&mut **tx).await?.rows_affected();
    if stored != rows.len() as u64 {
        return Err(StoreError::RowsSkipped { table: "events", sent: rows.len() as u64, stored });
    }
    Ok(n)
}

/// `[event id, correlation id, event time, incident, fingerprint, category of a Passport
/// line]`, as `CORRELATED_COPIES` returns a row.
type CopyRow = (i64, String, i64, Option<i64>, Option<String>, Option<String>, Option<String>);

/// The counted failures with an id below `below` that share a correlation id with one of
/// `probes` (correlation id, event time) and lie within the correlation window of its
/// time, per correlation id in id order. Rows of the buckets around a probe but outside
/// its window come back too; the caller applies the exact window (`first_within`).
async fn counted_copies(
    tx: &mut Tx<'_>,
    probes: &[(&str, i64)],
    below: i64,
) -> Result<HashMap<String, Vec<CorrelationHit>>, StoreError> {
    let mut pairs: Vec<(i64, &str)> =
        probes.iter().flat_map(|&(c, at)| probe_buckets(at).map(move |b| (b, c))).collect();
    pairs.sort_unstable();
    // Each pair once, in one statement: named twice, a row would come back twice.
    pairs.dedup();
    let mut rows: Vec<CopyRow> = Vec::new();
    for pairs in pairs.chunks(PAIRS_PER_STATEMENT) {
        rows.extend(
            fetch_json_rows::<CopyRow, _>(tx, CORRELATED_COPIES, &pairs, &[below], "events (correlation join)").await?,
        );
    }
    let mut found: HashMap<String, Vec<CorrelationHit>> = HashMap::new();
    for (event_id, c, occurred_at, incident, fingerprint, passport_category, record_id) in rows {
        found.entry(c).or_default().push(CorrelationHit {
            event_id,
            occurred_at,
            incident,
            fingerprint,
            passport_category,
            record_id,
        });
    }
    for hits in found.values_mut() {
        hits.sort_unstable_by_key(|h| h.event_id);
    }
    Ok(found)
}

/// `[bucket, correlation id]` pairs per correlation lookup statement. A lookup names up to
/// 25 buckets (its ±12 h window of hour buckets): a batch of 8,000 failures the filter
/// cannot rule out (a store too dense for it) would otherwise send 200,000 pairs, about
/// 9 MB of JSON, in one statement.
const PAIRS_PER_STATEMENT: usize = 25_000;

/// The correlation buckets a lookup around event time `at` probes.
fn probe_buckets(at: i64) -> std::ops::RangeInclusive<i64> {
    buckets(at.saturating_sub(CORRELATION_WINDOW_MS), at.saturating_add(CORRELATION_WINDOW_MS), CORRELATION_BUCKET_MS)
}

/// The first correlation bucket a lookup around event time `at` probes.
fn first_bucket(at: i64) -> i64 {
    *probe_buckets(at).start()
}

/// The probes whose lookup may find a row: the filter of correlation ids seen
/// (`correlations`) rules out the rest. Fills the filter first when it does not cover
/// enough of the probes.
async fn may_find_copies<'p>(
    tx: &mut Tx<'_>,
    filter: &SharedCorrelations,
    probes: Vec<(&'p str, i64)>,
) -> Result<Vec<(&'p str, i64)>, StoreError> {
    let fill_from = {
        let seen = cache::lock(filter);
        let (uncovered, earliest) = probes
            .iter()
            .map(|&(_, at)| first_bucket(at))
            .filter(|&b| !seen.covers(b))
            .fold((0, i64::MAX), |(n, earliest), b| (n + 1, earliest.min(b)));
        (uncovered >= correlations::MIN_PROBES_TO_FILL && seen.may_fill(earliest)).then_some(earliest)
    };
    if let Some(from) = fill_from {
        let bloom = read_correlations(tx, from).await?;
        cache::lock(filter).fill(from, bloom);
    }
    let seen = cache::lock(filter);
    Ok(probes.into_iter().filter(|&(c, at)| seen.may_hold(c, first_bucket(at))).collect())
}

/// Ids read per page when the filter is filled.
const FILL_PAGE: i64 = 8192;

/// Every counted failure's correlation id from bucket `from` on, as a filter: read a
/// bucket at a time, in pages of one JSON array each (see `fetch_json_rows`), keyed on
/// the id so each page is one seek. Stops once over the filter's capacity (the filter
/// then refuses it).
async fn read_correlations(tx: &mut Tx<'_>, from: i64) -> Result<Bloom, StoreError> {
    let mut bloom = Bloom::new();
    let mut bucket: Option<i64> =
        sqlx::query_scalar(NEXT_CORRELATION_BUCKET).bind(from).fetch_optional(&mut **tx).await?;
    while let Some(b) = bucket {
        let mut after = String::new();
        loop {
            let page: Vec<String> =
                fetch_json(tx, CORRELATION_PAGE, Some(after), &[b, FILL_PAGE], "events.correlation_id").await?;
            for id in &page {
                bloom.insert(id);
            }
            if bloom.entries() > correlations::MAX_ENTRIES {
                return Ok(bloom);
            }
            match page.last() {
                Some(last) if page.len() as i64 == FILL_PAGE => after = last.clone(),
                _ => break,
            }
        }
        bucket =
            sqlx::query_scalar(NEXT_CORRELATION_BUCKET).bind(b.saturating_add(1)).fetch_optional(&mut **tx).await?;
    }
    Ok(bloom)
}

/// The first correlation bucket at or after `?1` that holds a counted failure.
const NEXT_CORRELATION_BUCKET: &str = "SELECT occurred_at / 3600000 FROM events INDEXED BY events_by_correlation
     WHERE occurred_at / 3600000 >= ?1 AND correlation_id IS NOT NULL AND outcome = 'failure' AND counted = 1
     ORDER BY occurred_at / 3600000 LIMIT 1";

/// Up to `?3` correlation ids of counted failures in bucket `?2` after id `?1`, in id
/// order, as one JSON array.
const CORRELATION_PAGE: &str = "SELECT json_group_array(c) FROM (
      SELECT correlation_id AS c FROM events INDEXED BY events_by_correlation
       WHERE occurred_at / 3600000 = ?2 AND correlation_id > ?1
         AND correlation_id IS NOT NULL AND outcome = 'failure' AND counted = 1
       ORDER BY correlation_id LIMIT ?3)";

/// The correlation lookup for a JSON list of `[bucket, correlation id]` pairs (`?1`),
/// below event id `?2`: one seek per pair into the time-led index, all rows as one JSON
/// array (see `fetch_json_rows`). The index is named and the join order pinned (CROSS
/// JOIN: the list outside): against a long list the planner otherwise walks the table,
/// or the whole index, once per query. The bucket width is `CORRELATION_BUCKET_MS`.
const CORRELATED_COPIES: &str = "WITH v(b, c) AS (SELECT value ->> 0, value ->> 1 FROM json_each(?1))
    SELECT json_group_array(json_array(e.id, e.correlation_id, e.occurred_at, e.incident_id, e.fingerprint,
            CASE WHEN e.format = 'passport' THEN e.category END, e.record_id))
      FROM v CROSS JOIN events e INDEXED BY events_by_correlation
        ON e.occurred_at / 3600000 = v.b AND e.correlation_id = v.c
     WHERE e.correlation_id IS NOT NULL AND e.outcome = 'failure' AND e.counted = 1 AND e.id < ?2";

/// A Passport failure and its Entra record (same correlation id) are one sign-in
/// attempt: the later one joins the earlier one's incident without being counted again
/// (two records of one side are two sign-ins: see `first_within`),
/// unless it is Entra's record of a Passport line classified otherwise (`Join::Supersedes`).
async fn join_correlated(
    tx: &mut Tx<'_>,
    state: &mut BatchIncidents,
    rows: &mut BatchRows<'_>,
    f: &NewFailure<'_>,
    filter: &SharedCorrelations,
) -> Result<Join, StoreError> {
    let Some(correlation) = f.stored.event.correlation() else {
        return Ok(Join::None);
    };
    let at = to_ms(f.stored.event.occurred_at);
    let from_passport = f.stored.event.format == PASSPORT_FORMAT;
    let record_id = f.stored.event.record_id.as_deref();
    let hit = if state.events_changed {
        if !cache::lock(filter).may_hold(correlation, first_bucket(at)) {
            return Ok(Join::None);
        }
        // Earlier rows of this batch may be what it finds: write them (not this one,
        // whose incident is being decided).
        rows.write_through(tx, f.row).await?;
        let found = counted_copies(tx, &[(correlation, at)], f.event_id).await?;
        found.get(correlation).and_then(|hits| first_within(hits, at, from_passport, record_id)).cloned()
    } else {
        // Earlier batches' rows have lower ids than this batch's: they come first.
        let prior =
            state.prior_correlations.get(correlation).and_then(|hits| first_within(hits, at, from_passport, record_id));
        prior
            .or_else(|| {
                state
                    .batch_correlations
                    .get(correlation)
                    .and_then(|hits| first_within(hits, at, from_passport, record_id))
            })
            .cloned()
    };
    let Some(hit) = hit else {
        return Ok(Join::None);
    };
    let supersedes = f.stored.event.format != PASSPORT_FORMAT
        && f.category != Category::Unclassified
        && hit.passport_category.as_deref().is_some_and(|c| c != f.category.as_str());
    if supersedes {
        return Ok(Join::Supersedes(hit));
    }
    let row = &mut rows.rows[f.row];
    row.counted = false;
    row.incident_id = hit.incident;
    if let Some(fp) = hit.fingerprint {
        row.fingerprint = Some(Cow::Owned(fp));
    }
    if let Some(id) = hit.incident {
        // The incident now has been seen by this source too, spans this copy's time, and
        // counts its user: a Passport line names no user, and the Entra record of the same
        // sign-in, arriving after it, is such a copy.
        state.join_copy(id, &f.stored.event.source, f.at, f.stored.user_key.as_deref());
    }
    // The line counted first (live, a Mac logs its failure before Entra's export comes)
    // often names no user and never the client IP: it takes the keys of its Entra record,
    // so that the detectors, which read counted attempts by user and by IP, see the
    // attempt as Entra saw it, whichever copy came first.
    if hit.passport_category.is_some() && !from_passport && (f.stored.user_key.is_some() || f.stored.ip_key.is_some()) {
        rows.write_through(tx, f.row).await?;
        let lent = sqlx::query(
            "UPDATE events SET user_key = COALESCE(user_key, ?1), ip_key = COALESCE(ip_key, ?2)
             WHERE id = ?3 AND ((user_key IS NULL AND ?1 IS NOT NULL) OR (ip_key IS NULL AND ?2 IS NOT NULL))",
        )
        .bind(f.stored.user_key.as_deref())
        .bind(f.stored.ip_key.as_deref())
        .bind(hit.event_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        state.keys_lent |= lent > 0;
    }
    Ok(Join::Copy)
}

/// Entra's record `f`, just placed as a counted failure, supersedes the Passport line
/// `hit` of the same attempt, which was counted first under another category (a 50126
/// whose Entra record names a federated issuer is `federation_unsupported`, not a wrong
/// password). The line, and the copies of the attempt that had joined it, become `f`'s
/// uncounted copies, in `f`'s incident; the incident they leave gives back the line's
/// count, and their users and sources where no other event holds them, and goes if no
/// counted failure is left in it (`withdraw`). Rare, so plain statements.
async fn supersede(
    tx: &mut Tx<'_>,
    state: &mut BatchIncidents,
    rows: &mut BatchRows<'_>,
    f: &NewFailure<'_>,
    hit: &CorrelationHit,
    policy: &Policy,
    result: &mut BatchResult,
) -> Result<(), StoreError> {
    // The line, this record and their incidents as stored, with this batch's decisions so
    // far (an opening gate links the record in the table, not in its row here).
    rows.write_through(tx, f.row + 1).await?;
    state.flush(tx).await?;
    type Placed = (Option<i64>, Option<i64>, Option<String>, Option<String>, Option<i64>);
    let (left, joined, line_user, line_ip, line_code): Placed = sqlx::query_as(
        "SELECT (SELECT incident_id FROM events WHERE id = ?1), (SELECT incident_id FROM events WHERE id = ?2),
                (SELECT user_key FROM events WHERE id = ?1), (SELECT ip_key FROM events WHERE id = ?1),
                (SELECT code FROM events WHERE id = ?1)",
    )
    .bind(hit.event_id)
    .bind(f.event_id)
    .fetch_one(&mut **tx)
    .await?;
    let correlation = f.stored.event.correlation_id.as_deref().unwrap_or("");
    let moved: Vec<(Option<String>, String, i64)> = sqlx::query_as(
        "UPDATE events SET counted = 0, incident_id = ?1, fingerprint = ?2
         WHERE id = ?3
            OR (?4 IS NOT NULL AND incident_id = ?4 AND correlation_id = ?5 AND counted = 0
                AND abs(occurred_at - ?6) <= ?7)
         RETURNING user_key, source, occurred_at",
    )
    .bind(joined)
    .bind(f.fingerprint)
    .bind(hit.event_id)
    .bind(left)
    .bind(correlation)
    .bind(hit.occurred_at)
    .bind(CORRELATION_WINDOW_MS)
    .fetch_all(&mut **tx)
    .await?;
    if let Some(id) = joined {
        for (user_key, source, at) in &moved {
            state.join_copy(id, source, (*at).min(state.ceiling), user_key.as_deref());
        }
    }
    if let Some(left) = left.filter(|l| Some(*l) != joined) {
        withdraw(tx, left, &moved, (state.ceiling, &state.quiet_sql), policy, result).await?;
        // Its fingerprint's newest incident may now be an older one, or none.
        state.newest.forget_incident(left);
    }
    // The caches learn that the line no longer counts, so that the rest of the batch
    // keeps its fast path: later copies of the attempt find this record (remembered when
    // it was placed), and the detectors' copy of the recent past drops the line from the
    // counted failures of its user.
    for cache in [&mut state.prior_correlations, &mut state.batch_correlations] {
        if let Some(hits) = cache.get_mut(correlation) {
            hits.retain(|h| h.event_id != hit.event_id);
        }
    }
    match rows.rows.iter_mut().find(|r| r.id == hit.event_id) {
        Some(row) => {
            row.counted = false;
            row.incident_id = joined;
        }
        None => state.uncounted.push(UncountedFailure {
            at: hit.occurred_at,
            user_key: line_user,
            ip_key: line_ip,
            code: line_code.unwrap_or_default(),
        }),
    }
    result.superseded += 1;
    Ok(())
}

/// Takes one counted failure, with its copies (`moved`: user key, source, time; their
/// rows already moved elsewhere), out of incident `id`: the count, and the users and
/// sources that no other event of the incident holds. An incident left with no counted
/// failure was opened on what turned out to be the wrong verdict: it is removed (its id
/// never given again), or, if someone acknowledged it, resolved and kept.
async fn withdraw(
    tx: &mut Tx<'_>,
    id: i64,
    moved: &[(Option<String>, String, i64)],
    (ceiling, quiet_sql): (i64, &str),
    policy: &Policy,
    result: &mut BatchResult,
) -> Result<(), StoreError> {
    let counted_left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE incident_id = ? AND counted = 1)")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
    if !counted_left || !still_meets_its_gate(tx, id, policy).await? {
        return remove_withdrawn(tx, id, result).await;
    }
    let mut users_gone = 0u64;
    let mut users: Vec<&str> = moved.iter().filter_map(|(u, _, _)| u.as_deref()).collect();
    users.sort_unstable();
    users.dedup();
    for user_key in users {
        users_gone += sqlx::query(
            "DELETE FROM incident_users WHERE incident_id = ?1 AND user_key = ?2
               AND NOT EXISTS (SELECT 1 FROM events WHERE incident_id = ?1 AND user_key = ?2)",
        )
        .bind(id)
        .bind(user_key)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    // An incident the sweep resolved at its last event plus its quiet period keeps that
    // rule with its new last event. The right-hand sides read the row as it was.
    let last = "COALESCE(MIN((SELECT MAX(occurred_at) FROM events WHERE incident_id = ?1), ?3), last_seen)";
    sqlx::query(&format!(
        "UPDATE incidents SET event_count = MAX(event_count - 1, 0),
            users_affected = MAX(users_affected - ?2, 0),
            first_seen = COALESCE(MIN((SELECT MIN(occurred_at) FROM events WHERE incident_id = ?1), ?3), first_seen),
            last_seen = {last},
            resolved_at = CASE WHEN status = 'resolved' AND resolved_at = last_seen + {quiet}
                               THEN {last} + {quiet} ELSE resolved_at END
         WHERE id = ?1",
        quiet = quiet_sql,
    ))
    .bind(id)
    .bind(i64::try_from(users_gone).unwrap_or(i64::MAX))
    .bind(ceiling)
    .execute(&mut **tx)
    .await?;
    let mut sources: Vec<&str> = moved.iter().map(|(_, s, _)| s.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    for source in sources {
        sqlx::query(
            "UPDATE incidents SET sources = trim(replace(',' || sources || ',', ',' || ?2 || ',', ','), ',')
             WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM events WHERE incident_id = ?1 AND source = ?2)",
        )
        .bind(id)
        .bind(source)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Whether incident `id`'s counted failures still meet its category's opening gate in
/// some window (true without a gate). Without the ones a supersede took away, they may
/// be fewer than the gate asks: then the incident never opened, as when Entra's record
/// came first, and its failures are held again.
async fn still_meets_its_gate(tx: &mut Tx<'_>, id: i64, policy: &Policy) -> Result<bool, StoreError> {
    let category: Option<String> =
        sqlx::query_scalar("SELECT category FROM incidents WHERE id = ? AND kind = 'failure'")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(gate) = category.as_deref().and_then(Category::parse).and_then(|c| policy.gates.get(&c)).copied() else {
        return Ok(true);
    };
    let held: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT occurred_at, user_key FROM events WHERE incident_id = ? AND counted = 1 ORDER BY occurred_at",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    let within = i64::try_from(gate.within.as_millis()).unwrap_or(i64::MAX);
    Ok(gate_met_anywhere(&held, within, gate))
}

/// Whether some window of `within` ms holds enough of the time-ordered `held` failures
/// to open a gated incident.
fn gate_met_anywhere(held: &[(i64, Option<String>)], within: i64, gate: incidents::OpenGate) -> bool {
    let mut users: HashMap<&str, u32> = HashMap::new();
    let mut lo = 0usize;
    for (hi, (at, user)) in held.iter().enumerate() {
        if let Some(u) = user.as_deref() {
            *users.entry(u).or_default() += 1;
        }
        while held[lo].0 < at.saturating_sub(within) {
            if let Some(u) = held[lo].1.as_deref() {
                if let Some(n) = users.get_mut(u) {
                    *n -= 1;
                    if *n == 0 {
                        users.remove(u);
                    }
                }
            }
            lo += 1;
        }
        if gate.is_met((hi + 1 - lo) as u64, users.len() as u64) {
            return true;
        }
    }
    false
}

/// Removes incident `id`, which holds no counted failure any more (see `withdraw`); one
/// an operator acknowledged is resolved instead, so that the acknowledgement stays on
/// record. Its id is never given again (`INCIDENT_ID_FLOOR`): a link or a script holding
/// it must not reach another incident.
async fn remove_withdrawn(tx: &mut Tx<'_>, id: i64, result: &mut BatchResult) -> Result<(), StoreError> {
    let resolved = sqlx::query(
        "UPDATE incidents SET status = 'resolved', resolved_at = COALESCE(resolved_at, last_seen),
            event_count = 0, users_affected = 0, sources = ''
         WHERE id = ? AND acknowledged_at IS NOT NULL",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM incident_users WHERE incident_id = ?").bind(id).execute(&mut **tx).await?;
    // Its failures are held again either way (they wait for the gate, as had the
    // superseding record come first): an incident kept because someone acknowledged it
    // counts none of them.
    sqlx::query("UPDATE events SET incident_id = NULL WHERE incident_id = ?").bind(id).execute(&mut **tx).await?;
    if resolved > 0 {
        result.incidents_auto_resolved += 1;
        return Ok(());
    }
    sqlx::query(RAISE_INCIDENT_ID_FLOOR).bind(id).execute(&mut **tx).await?;
    let category: Option<String> = sqlx::query_scalar("DELETE FROM incidents WHERE id = ? RETURNING category")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(at) = result.opened_ids.iter().position(|o| *o == id) {
        // Opened by this very batch: it was never really opened.
        result.opened_ids.swap_remove(at);
        if let Some(n) = category.as_deref().and_then(Category::parse).and_then(|c| result.incidents_opened.get_mut(&c))
        {
            *n = n.saturating_sub(1);
        }
        result.incidents_opened.retain(|_, n| *n > 0);
    } else {
        result.incidents_withdrawn.push(id);
    }
    Ok(())
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

/// The newest incident of each of `fingerprints` (None for one that has none).
async fn newest_incidents(
    tx: &mut Tx<'_>,
    fingerprints: &[&str],
) -> Result<HashMap<String, Option<IncidentState>>, StoreError> {
    let mut newest: HashMap<String, Option<IncidentState>> = HashMap::with_capacity(fingerprints.len());
    if fingerprints.is_empty() {
        return Ok(newest);
    }
    let rows: Vec<(String, i64, String, i64, Option<i64>)> =
        fetch_json_rows(tx, NEWEST_INCIDENTS, &fingerprints, &[], "incidents (newest per fingerprint)").await?;
    newest.extend(fingerprints.iter().map(|f| (f.to_string(), None)));
    for (fingerprint, id, status, last_seen_ms, resolved_at_ms) in rows {
        let status =
            IncidentStatus::parse(&status).ok_or(StoreError::Corrupt { column: "incidents.status", value: status })?;
        newest.insert(fingerprint, Some(IncidentState { id, status, last_seen_ms, resolved_at_ms }));
    }
    Ok(newest)
}

/// The newest incident of each fingerprint in a JSON list (`?1`).
const NEWEST_INCIDENTS: &str = "WITH v(f) AS (SELECT DISTINCT value FROM json_each(?1))
    SELECT json_group_array(json_array(i.fingerprint, i.id, i.status, i.last_seen, i.resolved_at))
      FROM v CROSS JOIN incidents i
     WHERE i.id = (SELECT id FROM incidents WHERE fingerprint = v.f ORDER BY id DESC LIMIT 1)";

/// Each incident's quiet period in ms, as an SQL expression over its `category` (the
/// values are numbers and category names from the policy, not input).
fn quiet_sql(policy: &Policy) -> String {
    let default = i64::try_from(policy.quiet_period.as_millis()).unwrap_or(i64::MAX);
    if policy.quiet_by_category.is_empty() {
        return default.to_string();
    }
    // In a fixed order: the text is part of statements sqlx keeps prepared by their text.
    let mut by_category: Vec<_> = policy.quiet_by_category.iter().collect();
    by_category.sort_unstable_by_key(|(category, _)| category.as_str());
    let mut sql = String::from("(CASE category");
    for (category, quiet) in by_category {
        let quiet = i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX);
        sql.push_str(&format!(" WHEN '{}' THEN {quiet}", category.as_str()));
    }
    sql.push_str(&format!(" ELSE {default} END)"));
    sql
}

/// Keeps the highest incident id ever removed (`?1`) in `meta`, so that no new incident
/// takes it: withdrawn incidents (`remove_withdrawn`) and retention remove incidents, and
/// an `INTEGER PRIMARY KEY` without AUTOINCREMENT reuses the highest id once it is gone.
pub(crate) const RAISE_INCIDENT_ID_FLOOR: &str = "INSERT INTO meta (key, value) VALUES ('incident_id_floor', ?1)
    ON CONFLICT (key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))";

/// The newest incident of one fingerprint (a detector's, or one whose cached state a
/// batch dropped), the same statement as `newest_incidents`.
async fn newest_incident(tx: &mut Tx<'_>, fingerprint: &str) -> Result<Option<IncidentState>, StoreError> {
    Ok(newest_incidents(tx, &[fingerprint]).await?.remove(fingerprint).flatten())
}

async fn open_incident(tx: &mut Tx<'_>, n: NewIncident<'_>) -> Result<i64, StoreError> {
    // The id past every id ever given: SQLite would hand out the id of a removed newest
    // incident again (`INCIDENT_ID_FLOOR`).
    let id = sqlx::query_scalar(
        "INSERT INTO incidents (id, kind, fingerprint, category, code, app, tenant, entry_id, title, severity,
            status, first_seen, last_seen, event_count, users_affected, sources, remediation,
            reopened_count, opened_at, evidence, subject_key)
         VALUES (1 + MAX(COALESCE((SELECT MAX(id) FROM incidents), 0),
                         COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'incident_id_floor'), 0)),
                 ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, 0, 0, '', ?, 0, ?, ?, ?)
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
    .bind(n.subject_key)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

/// Reopens a resolved incident. `texts` (title, severity, remediation) are the loaded
/// catalogue's for the failure that reopens it: a reload while it was resolved did not
/// reach it (`refresh_incident_texts` updates active incidents), so it takes them now.
async fn reopen(tx: &mut Tx<'_>, id: i64, texts: Option<(&str, &str, &str)>) -> Result<(), StoreError> {
    let texts = texts.filter(|(title, _, _)| !title.is_empty());
    sqlx::query(
        "UPDATE incidents SET status = 'open', resolved_at = NULL, acknowledged_by = NULL,
            acknowledged_at = NULL, reopened_count = reopened_count + 1,
            title = COALESCE(?2, title), severity = COALESCE(?3, severity),
            remediation = COALESCE(?4, remediation)
         WHERE id = ?1",
    )
    .bind(id)
    .bind(texts.map(|t| t.0))
    .bind(texts.map(|t| t.1))
    .bind(texts.map(|t| t.2))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Counts one failure into an incident (written at the batch's flush).
fn count_into(state: &mut BatchIncidents, rows: &mut BatchRows<'_>, id: i64, f: &NewFailure<'_>) {
    let occurred = f.at;
    state.touch(id, occurred);
    let d = state.pending.entry(id).or_default();
    d.counted += 1;
    d.first_seen = d.first_seen.min(occurred);
    d.seen_by(&f.stored.event.source, occurred);
    if let Some(user_key) = &f.stored.user_key {
        d.user_keys.push(user_key.clone());
    }
    rows.rows[f.row].incident_id = Some(id);
}

/// Puts a new failure into its incident: extend, reopen, open, or (behind an opening
/// gate) hold it until enough failures gather.
async fn place_failure(
    tx: &mut Tx<'_>,
    state: &mut BatchIncidents,
    rows: &mut BatchRows<'_>,
    f: &NewFailure<'_>,
    policy: &Policy,
    result: &mut BatchResult,
) -> Result<(), StoreError> {
    let (stored, category, fingerprint) = (f.stored, f.category, f.fingerprint);
    let ev = &stored.event;
    let occurred = f.at;
    // The opening gate counts stored events by their own times.
    let real = to_ms(ev.occurred_at);
    let existing = state.state(tx, fingerprint).await?;
    let placed = match incidents::decide(existing, category, occurred, policy) {
        Decision::Append(id) => Some(id),
        Decision::Reopen(id) => {
            let texts = (f.stored.title.as_str(), f.stored.severity.as_str(), f.stored.remediation.as_str());
            reopen(tx, id, Some(texts)).await?;
            state.newest.reopened(fingerprint);
            *result.incidents_opened.entry(category).or_default() += 1;
            Some(id)
        }
        Decision::Open => {
            let gate = policy.gates.get(&category).copied();
            let within = gate.map(|g| i64::try_from(g.within.as_millis()).unwrap_or(i64::MAX));
            // Held failures this one may gather with: one window either side, since
            // failures arrive out of order too (the gate opens on the same failures
            // whatever order they come in).
            let around = within.map(|w| (real.saturating_sub(w), real.saturating_add(w)));
            if let (Some(gate), Some(within), Some((from, to))) = (gate, within, around) {
                // The gate counts held events as stored, this one included (it is held
                // unless the gate opens, and then adopted with the others).
                rows.write_through(tx, f.row + 1).await?;
                let held: Vec<(i64, Option<String>)> = sqlx::query_as(
                    "SELECT occurred_at, user_key FROM events
                     WHERE fingerprint = ? AND incident_id IS NULL AND counted = 1
                       AND occurred_at >= ? AND occurred_at <= ? AND id <= ?
                     ORDER BY occurred_at",
                )
                .bind(fingerprint)
                .bind(from)
                .bind(to)
                .bind(f.event_id)
                .fetch_all(&mut **tx)
                .await?;
                if !gate_met_around(&held, real, within, gate) {
                    remember_correlation(state, f, None);
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
                    subject_key: None,
                },
            )
            .await?;
            *result.incidents_opened.entry(category).or_default() += 1;
            result.opened_ids.push(id);
            if let Some((from, to)) = around {
                adopt_pending(tx, id, fingerprint, (from, to), f.event_id, policy.quiet_ms(category), state.ceiling)
                    .await?;
                // adopt_pending rewrote counters and event links from the table: read
                // them back rather than mirror them.
                state.newest.remove(fingerprint);
                state.events_changed = true;
                return Ok(());
            }
            state.newest.insert(
                fingerprint,
                Some(IncidentState { id, status: IncidentStatus::Open, last_seen_ms: occurred, resolved_at_ms: None }),
            );
            Some(id)
        }
    };
    if let Some(id) = placed {
        count_into(state, rows, id, f);
        remember_correlation(state, f, Some(id));
        if let Some(inc) = existing.filter(|inc| policy.gates.contains_key(&category) && real > inc.last_seen_ms) {
            // Failures held by the gate before it opened, out of order, between the
            // incident's last event and this later one would have joined it had they come
            // now. (Nothing before the incident: those never met the gate.)
            let (from, to) = (inc.last_seen_ms, real);
            let held: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM events WHERE fingerprint = ? AND incident_id IS NULL
                    AND counted = 1 AND occurred_at >= ? AND occurred_at <= ?)",
            )
            .bind(fingerprint)
            .bind(from)
            .bind(to)
            .fetch_one(&mut **tx)
            .await?;
            if held {
                rows.write_through(tx, f.row + 1).await?;
                state.flush(tx).await?;
                adopt_pending(tx, id, fingerprint, (from, to), f.event_id, policy.quiet_ms(category), state.ceiling)
                    .await?;
                state.newest.remove(fingerprint);
                state.events_changed = true;
            }
        }
    }
    Ok(())
}

/// Whether some window of `within` ms holding `at` holds enough of the time-ordered
/// `held` failures (`at`'s own among them) to open a gated incident.
fn gate_met_around(held: &[(i64, Option<String>)], at: i64, within: i64, gate: incidents::OpenGate) -> bool {
    // Every window worth trying starts at a held failure no more than `within` before
    // `at`; sliding the start forward only moves the end forward: one pass.
    let first = held.partition_point(|(t, _)| *t < at.saturating_sub(within));
    let mut users: HashMap<&str, u32> = HashMap::new();
    let mut hi = first;
    for lo in first..held.len() {
        let start = held[lo].0;
        if start > at {
            break;
        }
        if lo > first {
            if let Some(u) = held[lo - 1].1.as_deref() {
                if let Some(n) = users.get_mut(u) {
                    *n -= 1;
                    if *n == 0 {
                        users.remove(u);
                    }
                }
            }
        }
        let end = start.saturating_add(within);
        while hi < held.len() && held[hi].0 <= end {
            if let Some(u) = held[hi].1.as_deref() {
                *users.entry(u).or_default() += 1;
            }
            hi += 1;
        }
        if gate.is_met((hi - lo) as u64, users.len() as u64) {
            return true;
        }
    }
    false
}

/// A counted failure of this batch is what later copies (within the window) may join.
fn remember_correlation(state: &mut BatchIncidents, f: &NewFailure<'_>, incident: Option<i64>) {
    if let Some(c) = f.stored.event.correlation() {
        state.batch_correlations.entry(c.to_string()).or_default().push(CorrelationHit {
            event_id: f.event_id,
            occurred_at: to_ms(f.stored.event.occurred_at),
            incident,
            fingerprint: Some(f.fingerprint.to_owned()),
            passport_category: (f.stored.event.format == PASSPORT_FORMAT).then(|| f.category.as_str().to_owned()),
            record_id: f.stored.event.record_id.clone(),
        });
    }
}

/// A gated incident just opened: the failures that were held back in `(start, end)`
/// join it, and then, one quiet period at a time, the held failures after them (which
/// arrived first, out of order, and would have joined the open incident had they come
/// after it).
async fn adopt_pending(
    tx: &mut Tx<'_>,
    id: i64,
    fingerprint: &str,
    (start, end): (i64, i64),
    upto_event: i64,
    quiet: i64,
    ceiling: i64,
) -> Result<(), StoreError> {
    let (mut from, mut to) = (start, end);
    loop {
        let adopted = sqlx::query(
            "UPDATE events SET incident_id = ?
             WHERE fingerprint = ? AND incident_id IS NULL AND occurred_at >= ? AND occurred_at <= ? AND id <= ?",
        )
        .bind(id)
        .bind(fingerprint)
        .bind(from)
        .bind(to)
        .bind(upto_event)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(occurred_at) FROM events WHERE incident_id = ?")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
        let next = last.map_or(to, |l| l.saturating_add(quiet));
        if adopted == 0 || next <= to {
            break;
        }
        (from, to) = (to, next);
    }
    // And back: a failure held less than a quiet period before the incident's first is
    // part of it, as it would be had it arrived after the opening (a late failure joins).
    // Without this, one run left it in no incident for good and a split run did not.
    loop {
        let first: Option<i64> = sqlx::query_scalar("SELECT MIN(occurred_at) FROM events WHERE incident_id = ?")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
        let Some(first) = first else {
            break;
        };
        let adopted = sqlx::query(
            "UPDATE events SET incident_id = ?
             WHERE fingerprint = ? AND incident_id IS NULL AND occurred_at >= ? AND occurred_at < ? AND id <= ?",
        )
        .bind(id)
        .bind(fingerprint)
        .bind(first.saturating_sub(quiet))
        .bind(first)
        .bind(upto_event)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if adopted == 0 {
            break;
        }
    }
    sqlx::query(
        "INSERT INTO incident_users (incident_id, user_key)
         SELECT DISTINCT ?, user_key FROM events WHERE incident_id = ? AND user_key IS NOT NULL
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
            first_seen = COALESCE(MIN((SELECT MIN(occurred_at) FROM events WHERE incident_id = ?1), ?2), first_seen),
            last_seen = COALESCE(MIN((SELECT MAX(occurred_at) FROM events WHERE incident_id = ?1), ?2), last_seen),
            sources = COALESCE((SELECT group_concat(source) FROM (SELECT DISTINCT source FROM events WHERE incident_id = ?1)), '')
         WHERE id = ?1",
    )
    .bind(id)
    .bind(ceiling)
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
    done += q.build().persistent(false).execute(&mut **tx).await?.rows_affected();
    Ok(done)
}

/// Password spray (many users, one IP), brute force (one user, many failures) and
/// lockout waves, evaluated for the keys this batch touched. Each key's sliding window is
/// evaluated at every new failure time of that key (in memory, from one grouped read), so
/// what is detected does not depend on how events were cut into batches.
/// `ceiling` bounds the times a detection records, as `NewFailure::at` does a failure's.
async fn run_detectors(
    tx: &mut Tx<'_>,
    failures: &[&StoredEvent],
    policy: &Policy,
    recent: &Recent<'_>,
    ceiling: i64,
    result: &mut BatchResult,
) -> Result<(), StoreError> {
    let window = i64::try_from(policy.detectors.window.as_millis()).unwrap_or(i64::MAX);
    let mut by_ip: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut by_user: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut lockouts: Vec<i64> = Vec::new();
    for s in failures {
        let t = to_ms(s.event.occurred_at);
        if let Some(ip) = s.ip_key.as_deref() {
            by_ip.entry(ip).or_default().push(t);
        }
        if let Some(user) = s.user_key.as_deref() {
            by_user.entry(user).or_default().push(t);
        }
        if s.event.primary_code() == Some(LOCKOUT_CODE as u32) {
            lockouts.push(t);
        }
    }
    let spray_users = i64::from(policy.detectors.spray_users);
    let brute = i64::from(policy.detectors.brute_force_failures);
    let lockout_users = i64::from(policy.detectors.lockout_users);
    let spray = |_, users| users >= spray_users;
    let brute_force = |n, _| n >= brute;
    let wave = |_, users| users >= lockout_users;
    let step = |d: Detector| policy.quiet_ms(d.category());
    // The copy's lock is released before anything else is awaited.
    let from_copy = recent_windows(tx, failures, window, recent).await?.map(|copy| DetectorHits {
        spray: scan_keys(&by_ip, copy.by_ip(), window, step(Detector::PasswordSpray), spray),
        brute_force: scan_keys(&by_user, copy.by_user(), window, step(Detector::BruteForce), brute_force),
        lockout_wave: scan_window(copy.lockouts(), &lockouts, window, step(Detector::LockoutWave), wave),
    });
    let hits = match from_copy {
        Some(hits) => hits,
        None => {
            let history = window_events(tx, "ip_key", &by_ip, "", window).await?;
            let spray = scan_keys(&by_ip, &history, window, step(Detector::PasswordSpray), spray);
            let history = window_events(tx, "user_key", &by_user, "AND e.counted = 1", window).await?;
            let brute_force = scan_keys(&by_user, &history, window, step(Detector::BruteForce), brute_force);
            let mut lockout_wave = None;
            if let (Some(&first), Some(&last)) = (lockouts.iter().min(), lockouts.iter().max()) {
                // One JSON row: a wave's window holds many lockouts. JSON arrays come in no
                // promised order, and the window slides over time. Up to a window after the
                // last: a late lockout also completes the windows of the ones after it.
                let bounds = [first.saturating_sub(window), last.saturating_add(window)];
                let mut events: Vec<WindowRow> =
                    fetch_json(tx, LOCKOUT_WINDOW, None, &bounds, "events (lockout window)").await?;
                events.sort_unstable();
                lockout_wave = scan_window(&events, &lockouts, window, step(Detector::LockoutWave), wave);
            }
            DetectorHits { spray, brute_force, lockout_wave }
        }
    };
    for (ip, hit) in hits.spray {
        record_hit(tx, Detector::PasswordSpray, ip, hit, policy, ceiling, result).await?;
    }
    for (user, hit) in hits.brute_force {
        record_hit(tx, Detector::BruteForce, user, hit, policy, ceiling, result).await?;
    }
    if let Some(hit) = hits.lockout_wave {
        record_hit(tx, Detector::LockoutWave, "all", hit, policy, ceiling, result).await?;
    }
    Ok(())
}

/// Where each detector's threshold was met in this batch's windows.
struct DetectorHits<'k> {
    spray: Vec<(&'k str, Hit)>,
    brute_force: Vec<(&'k str, Hit)>,
    lockout_wave: Option<Hit>,
}

/// The in-memory copy of the detectors' recent past (`recent`) and the event-time clock
/// before this batch.
struct Recent<'a> {
    copy: &'a SharedRecent,
    watermark_before: i64,
}

/// The copy, locked, when it holds every window that ends at one of `failures` (the
/// batch's credential failures, already in it); filled from the store first when it
/// was forgotten or falls short and the store's recent past is small enough to read.
/// `None`: the windows are to be read from the store.
async fn recent_windows<'a>(
    tx: &mut Tx<'_>,
    failures: &[&StoredEvent],
    window: i64,
    recent: &Recent<'a>,
) -> Result<Option<std::sync::MutexGuard<'a, recent::RecentFailures>>, StoreError> {
    let Some(first) = failures.iter().map(|s| to_ms(s.event.occurred_at)).min() else {
        return Ok(None);
    };
    let from = first.saturating_sub(window);
    if cache::lock(recent.copy).covers(from) {
        return Ok(Some(cache::lock(recent.copy)));
    }
    // Data far behind the clock (an old export) reads its windows from the store, as
    // a fill would have to read everything since.
    let reach = window.saturating_mul(RECENT_WINDOWS + 1);
    if recent.watermark_before != i64::MIN && recent.watermark_before.saturating_sub(from) > reach {
        return Ok(None);
    }
    if !cache::lock(recent.copy).may_fill() {
        return Ok(None);
    }
    let limit = i64::try_from(recent::MAX_FILL_ROWS).unwrap_or(i64::MAX);
    let rows: Vec<FillRow> =
        fetch_json(tx, RECENT_FILL, None, &[from, limit.saturating_add(1)], "events (recent credential failures)")
            .await?;
    if rows.len() > recent::MAX_FILL_ROWS {
        cache::lock(recent.copy).fill_refused();
        return Ok(None);
    }
    let mut copy = cache::lock(recent.copy);
    copy.fill(
        from,
        rows.iter().map(|(at, ip_key, user_key, counted, code)| CredentialFailure {
            at: *at,
            ip_key: ip_key.as_deref(),
            user_key: user_key.as_deref(),
            counted: *counted == 1,
            lockout: *code == LOCKOUT_CODE,
        }),
    );
    Ok(copy.covers(from).then_some(copy))
}

/// The row `row` is to the detectors, if it is a credential failure: what the detector
/// indexes (`events_by_ip_key`, `events_by_user_key`, `events_lockouts`) hold of it.
fn credential_failure<'a>(row: &'a NewRow<'_>) -> Option<CredentialFailure<'a>> {
    let ev = &row.stored.event;
    let code = i64::from(ev.primary_code()?);
    if ev.outcome != Outcome::Failure || !(code == 50126 || code == LOCKOUT_CODE) {
        return None;
    }
    Some(CredentialFailure {
        at: row.occurred_at,
        ip_key: row.stored.ip_key.as_deref(),
        user_key: row.stored.user_key.as_deref(),
        counted: row.counted,
        lockout: code == LOCKOUT_CODE,
    })
}

/// `[time, IP key, user key, counted, code]`, as `RECENT_FILL` returns a row.
type FillRow = (i64, Option<String>, Option<String>, i64, i64);

/// Every credential failure later than `?1` (at most `?2` of them) as one JSON array of
/// `[time, IP key, user key, counted, code]`: what fills the in-memory copy.
const RECENT_FILL: &str = "SELECT json_group_array(json_array(occurred_at, ip_key, user_key, counted, code))
      FROM (SELECT occurred_at, ip_key, user_key, counted, code FROM events INDEXED BY events_by_code_time
             WHERE code IN (50126, 50053) AND outcome = 'failure' AND occurred_at > ?1 LIMIT ?2)";

/// The lockouts (AADSTS50053 failures) in `(?1, ?2]` of event time as one JSON array of
/// `[time, user key, counted]`, read from their own partial index alone (migrations 0007,
/// 0010). The code is written out, not bound: only then may SQLite use an index partial
/// on it.
const LOCKOUT_WINDOW: &str =
    "SELECT json_group_array(json_array(occurred_at, user_key, json(iif(counted = 1, 'true', 'false'))))
      FROM events INDEXED BY events_lockouts
     WHERE code = 50053 AND outcome = 'failure' AND occurred_at > ?1 AND occurred_at <= ?2";

/// Unix ms as an RFC 3339 time, as the API writes times.
fn rfc3339_ms(ms: i64) -> String {
    super::from_ms(ms).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Where a sliding window met a detector's threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hit {
    /// The window ends where it was met, thinned to what the incident needs (`Fired`).
    fired: Vec<i64>,
    /// Every window that met the threshold: `(end, failures, users)`, in time order.
    met: Vec<(i64, i64, i64)>,
}

impl Hit {
    /// The window with the most users (then failures) among those ending in
    /// `[from, to]`: one window's figures, as an incident reports them.
    fn best_between(&self, from: i64, to: i64) -> Option<(i64, i64, i64)> {
        self.met
            .iter()
            .filter(|(end, _, _)| (from..=to).contains(end))
            .max_by_key(|(end, n, u)| (*u, *n, -*end))
            .copied()
    }
}

/// The ends of the windows that met a threshold, in time order, thinned: the first and
/// the last, and enough in between that no two kept ends are further apart than `step`
/// (the detector's quiet period) unless the threshold itself lapsed for that long. A
/// detection recorded at each kept end extends its incident as the attack goes on,
/// instead of a first and a last end an hour apart reading as two attacks with a quiet
/// period between them.
struct Fired {
    step: i64,
    kept: Vec<i64>,
    prev: Option<i64>,
}

impl Fired {
    fn new(step: i64) -> Self {
        Self { step, kept: Vec::new(), prev: None }
    }

    fn push(&mut self, end: i64) {
        match (self.prev, self.kept.last().copied()) {
            (Some(prev), Some(last)) => {
                if end.saturating_sub(prev) > self.step {
                    // The threshold lapsed: keep where it stopped and where it resumed.
                    if prev != last {
                        self.kept.push(prev);
                    }
                    self.kept.push(end);
                } else if end.saturating_sub(last) > self.step {
                    // prev is within step of last, and end within step of prev.
                    self.kept.push(prev);
                }
            }
            _ => self.kept.push(end),
        }
        self.prev = Some(end);
    }

    fn finish(mut self) -> Vec<i64> {
        if let Some(prev) = self.prev {
            if self.kept.last() != Some(&prev) {
                self.kept.push(prev);
            }
        }
        self.kept
    }
}

/// Failure times and user keys per key, in time order, covering every window a new event
/// of the key ends (and possibly more: whole hourly buckets).
async fn window_events(
    tx: &mut Tx<'_>,
    column: &'static str,
    keys: &HashMap<&str, Vec<i64>>,
    extra: &'static str,
    window: i64,
) -> Result<HashMap<String, Vec<WindowRow>>, StoreError> {
    let mut out: HashMap<String, Vec<WindowRow>> = HashMap::with_capacity(keys.len());
    let probes = window_probes(keys, window);
    let (Some(start), Some(end)) = (probes.iter().map(|p| p.2).min(), probes.iter().map(|p| p.3).max()) else {
        return Ok(out);
    };
    let pairs: Vec<(&str, i64)> = probes.iter().map(|p| (p.0, p.1)).collect();
    let sql = window_sql(column, extra);
    let found: Vec<(String, i64, Option<String>, bool)> =
        fetch_json_rows(tx, &sql, &pairs, &[start, end], "events (detector window)").await?;
    for (k, at, user, counted) in found {
        out.entry(k).or_default().push(WindowRow { at, user, counted });
    }
    // Time order per key (aggregates do not promise their input order).
    for events in out.values_mut() {
        events.sort_unstable();
    }
    Ok(out)
}

/// The (key, hourly bucket) pairs holding every window that a new time `t` of a key
/// falls in, `(t - window, t + window]` (it ends one, and completes those of the key's
/// later failures when it arrives late), each with the time range it is needed for (to
/// narrow the read).
/// Overlapping windows of a key share their buckets, so a burst costs a few seeks.
fn window_probes<'k>(keys: &HashMap<&'k str, Vec<i64>>, window: i64) -> Vec<(&'k str, i64, i64, i64)> {
    let mut probes: Vec<(&str, i64, i64, i64)> = Vec::new();
    let mut sorted: Vec<(&str, &Vec<i64>)> = keys.iter().map(|(k, ts)| (*k, ts)).collect();
    sorted.sort_unstable_by_key(|(k, _)| *k);
    for (key, times) in sorted {
        let mut times = times.clone();
        times.sort_unstable();
        let mut spans: Vec<(i64, i64)> = Vec::new();
        for t in times {
            let (from, to) = (t.saturating_sub(window), t.saturating_add(window));
            match spans.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => spans.push((from, to)),
            }
        }
        for (from, to) in spans {
            for bucket in buckets(from, to, DETECTOR_BUCKET_MS) {
                match probes.last_mut() {
                    // Two spans of a key can meet in one bucket: widen, not repeat, it.
                    Some(p) if p.0 == key && p.1 == bucket => p.3 = to,
                    _ => probes.push((key, bucket, from, to)),
                }
            }
        }
    }
    probes
}

/// The detector window read for a JSON list of `[key, hourly bucket]` pairs (`?1`) of
/// `column` (`ip_key` or `user_key`), between times `?2` (excluded) and `?3`, as one
/// JSON array of `[key, time, user key, counted]`: one result row instead of one per event,
/// because sqlx ships every result row over its worker channel with a thread wake-up,
/// which cost more than the query. The index is named: without statistics the planner
/// preferred the (code, time) index and then read every row of the table; and the join
/// order is pinned (CROSS JOIN: the list outside), or against a long list it walks the
/// whole index.
fn window_sql(column: &'static str, extra: &'static str) -> String {
    let index = if column == "ip_key" { "events_by_ip_key" } else { "events_by_user_key" };
    format!(
        "WITH v(k, b) AS (SELECT value ->> 0, value ->> 1 FROM json_each(?1))
         SELECT json_group_array(json_array(v.k, e.occurred_at, e.user_key, json(iif(e.counted = 1, 'true', 'false'))))
           FROM v CROSS JOIN events e INDEXED BY {index}
             ON e.occurred_at / {DETECTOR_BUCKET_MS} = v.b AND e.{column} = v.k
          WHERE e.{column} IS NOT NULL AND e.outcome = 'failure' {extra} AND e.code IN ({CREDENTIAL_CODES})
            AND e.occurred_at > ?2 AND e.occurred_at <= ?3"
    )
}

/// Runs `scan_window` for every key, in key order (deterministic incident ids).
fn scan_keys<'k>(
    keys: &HashMap<&'k str, Vec<i64>>,
    history: &HashMap<String, Vec<WindowRow>>,
    window: i64,
    step: i64,
    met: impl Fn(i64, i64) -> bool + Copy,
) -> Vec<(&'k str, Hit)> {
    let mut hits: Vec<(&str, Hit)> = keys
        .iter()
        .filter_map(|(k, new_times)| {
            let events = history.get(*k)?;
            Some((*k, scan_window(events, new_times, window, step, met)?))
        })
        .collect();
    hits.sort_unstable_by_key(|(k, _)| *k);
    hits
}

/// Slides a window of `window` ms over `events` (time-ordered), ending at each of
/// `new_times` and at each stored event a new time falls within one window before (a late
/// or out-of-order failure also completes the windows of the failures after it); reports
/// where `met(failures, distinct users)` holds (thinned by `step`, see `Fired`) and the
/// largest counts seen there.
fn scan_window(
    events: &[WindowRow],
    new_times: &[i64],
    window: i64,
    step: i64,
    met: impl Fn(i64, i64) -> bool,
) -> Option<Hit> {
    let mut new_sorted: Vec<i64> = new_times.to_vec();
    new_sorted.sort_unstable();
    new_sorted.dedup();
    let mut ends: Vec<i64> = new_sorted.clone();
    // Events in (t, t + window] for some new t: the latest new time before each event.
    let mut latest_new = 0usize;
    for &WindowRow { at, .. } in events {
        while latest_new < new_sorted.len() && new_sorted[latest_new] < at {
            latest_new += 1;
        }
        if latest_new > 0 && at.saturating_sub(new_sorted[latest_new - 1]) <= window {
            ends.push(at);
        }
    }
    ends.sort_unstable();
    ends.dedup();
    let (mut lo, mut hi) = (0usize, 0usize);
    let mut users: HashMap<&str, u32> = HashMap::new();
    // Failures are the window's counted rows: a Passport line and its Entra record are
    // one attempt. Users come from every copy.
    let mut counted = 0i64;
    let mut fired = Fired::new(step);
    let mut met_windows = Vec::new();
    for end in ends {
        while hi < events.len() && events[hi].at <= end {
            if let Some(u) = events[hi].user.as_deref() {
                *users.entry(u).or_default() += 1;
            }
            counted += i64::from(events[hi].counted);
            hi += 1;
        }
        while lo < hi && events[lo].at <= end.saturating_sub(window) {
            if let Some(u) = events[lo].user.as_deref() {
                if let Some(n) = users.get_mut(u) {
                    *n -= 1;
                    if *n == 0 {
                        users.remove(u);
                    }
                }
            }
            counted -= i64::from(events[lo].counted);
            lo += 1;
        }
        let (n, u) = (counted, users.len() as i64);
        if met(n, u) {
            fired.push(end);
            // Each window's own figures: maxima taken apart could describe a window that
            // never was, and one attack's must not describe another's.
            met_windows.push((end, n, u));
        }
    }
    (!met_windows.is_empty()).then(|| Hit { fired: fired.finish(), met: met_windows })
}

async fn record_hit(
    tx: &mut Tx<'_>,
    detector: Detector,
    key: &str,
    hit: Hit,
    policy: &Policy,
    ceiling: i64,
    result: &mut BatchResult,
) -> Result<(), StoreError> {
    let step = policy.quiet_ms(detector.category());
    let ends: Vec<i64> = hit.fired.iter().map(|at| (*at).min(ceiling)).collect();
    // The unbroken runs of met windows (`Fired` keeps their ends at most a quiet period
    // apart), each with its own best window: two attacks a week apart are two incidents,
    // and neither reports the other's figures.
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &end in &hit.fired {
        match runs.last_mut() {
            Some(run) if end.saturating_sub(run.1) <= step => run.1 = end,
            _ => runs.push((end, end)),
        }
    }
    let best_of_run = |at: i64| {
        runs.iter().find(|(from, to)| (*from..=*to).contains(&at)).and_then(|(from, to)| hit.best_between(*from, *to))
    };
    let mut recorded = i64::MIN;
    for (i, &at) in ends.iter().enumerate() {
        // Ends past the ceiling all clamp to it: one detection there.
        if at == recorded {
            continue;
        }
        // The last end of the unbroken run of met windows this one belongs to (`Fired`
        // keeps them at most a quiet period apart): an earlier part of an attack that
        // arrives late reaches its incident through it.
        let mut run_end = at;
        for &next in &ends[i + 1..] {
            if next.saturating_sub(run_end) > step {
                break;
            }
            run_end = next;
        }
        let Some((window_end, failures, users)) = best_of_run(hit.fired[i]) else {
            continue;
        };
        let d = Detection { failures, users, window_end, at, run_end };
        record_detection(tx, detector, key, d, policy, result).await?;
        recorded = at;
    }
    Ok(())
}

/// One recorded detection: the largest counts of its hit, where its window ended, and
/// where the unbroken run of met windows it belongs to ends.
struct Detection {
    failures: i64,
    users: i64,
    window_end: i64,
    at: i64,
    run_end: i64,
}

async fn record_detection(
    tx: &mut Tx<'_>,
    detector: Detector,
    subject_key: &str,
    d: Detection,
    policy: &Policy,
    result: &mut BatchResult,
) -> Result<(), StoreError> {
    let Detection { failures, users, window_end, at, run_end } = d;
    let category = detector.category();
    let fingerprint = incidents::detector_fingerprint(detector, subject_key);
    let window = policy.detectors.window;
    let evidence = json!({
        "detector": detector.as_str(),
        "failures_in_window": failures,
        "distinct_users_in_window": users,
        "window_seconds": window.as_secs(),
        // The window the counts describe: `(end - window, end]` in event time.
        "window_start": rfc3339_ms(window_end.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))),
        "window_end": rfc3339_ms(window_end),
    })
    .to_string();
    let existing = newest_incident(tx, &fingerprint).await?;
    if existing.is_some_and(|e| e.status == IncidentStatus::Resolved && at > e.last_seen_ms) {
        // The update below may make it active again.
        result.incidents_reactivated += 1;
    }
    let id = match incidents::decide(existing, category, at, policy) {
        Decision::Append(id) => id,
        Decision::Reopen(id) => {
            reopen(tx, id, None).await?;
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
                    subject_key: Some(subject_key),
                },
            )
            .await?
        }
    };
    // Counts and evidence are the window with the most users, then failures, seen so far
    // (as `scan_window` picks within a batch): counts only, never names.
    sqlx::query(
        "UPDATE incidents SET last_seen = MAX(last_seen, ?1),
            -- A late part of the attack moves its start back (through the run of met
            -- windows it belongs to); a window from long before it (which `decide` also
            -- appends) does not stretch it over days.
            first_seen = CASE WHEN ?8 >= first_seen - ?7 THEN MIN(first_seen, ?1) ELSE first_seen END,
            -- Resolved by the sweep before this later detection: the attack went on, so
            -- the incident is active again (the batch's closing sweep resolves it at its
            -- new end once the clock has passed it), as for failures (`flush`).
            status = CASE WHEN status = 'resolved' AND ?1 > last_seen AND resolved_at = last_seen + ?7
                          THEN CASE WHEN acknowledged_at IS NOT NULL THEN 'acknowledged' ELSE 'open' END
                          ELSE status END,
            resolved_at = CASE WHEN status = 'resolved' AND ?1 > last_seen AND resolved_at = last_seen + ?7
                               THEN NULL ELSE resolved_at END,
            event_count = CASE WHEN ?3 > users_affected OR (?3 = users_affected AND ?2 > event_count)
                               THEN ?2 ELSE event_count END,
            users_affected = CASE WHEN ?3 > users_affected OR (?3 = users_affected AND ?2 > event_count)
                                  THEN ?3 ELSE users_affected END,
            evidence = CASE WHEN evidence IS NULL OR ?3 > users_affected OR (?3 = users_affected AND ?2 > event_count)
                            THEN ?4 ELSE evidence END,
            subject_key = COALESCE(subject_key, ?5)
         WHERE id = ?6",
    )
    .bind(at)
    .bind(failures)
    .bind(users)
    .bind(evidence)
    .bind(subject_key)
    .bind(id)
    .bind(policy.quiet_ms(category))
    .bind(run_end)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    /// The plan of `sql` (with its JSON list, if it takes one, and `extra` values bound),
    /// one line per step.
    async fn plan_of(store: &Store, sql: &str, list: Option<String>, extra: &[i64]) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut q = sqlx::query(&explain);
        if let Some(list) = list {
            q = q.bind(list);
        }
        for value in extra {
            q = q.bind(*value);
        }
        let rows = q.fetch_all(store.pool()).await.expect("plan");
        rows.iter().map(|r| r.get::<String, _>("detail")).collect::<Vec<_>>().join("\n")
    }

    async fn empty_store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("plans.db")).await.expect("open")
    }

    /// The event INSERT skips a violating row rather than aborting (so that SQLite keeps
    /// no statement journal): a row it skips must still fail the batch, never leave the
    /// incident counts ahead of the stored rows.
    #[tokio::test]
    async fn an_event_row_the_database_skips_fails_the_batch() {
        let dir = tempfile::tempdir().expect("dir");
        let store = empty_store(&dir).await;
        let t = 1_772_640_000_000;
        let event = crate::store::tests::failure_event(t);
        let stored = StoredEvent::new(event, String::new(), String::new(), String::new(), None, None);
        let row = |id: i64| NewRow {
            stored: &stored,
            key: "id:r-1",
            occurred_at: t,
            dedup_at: t,
            id,
            fingerprint: None,
            incident_id: None,
            counted: true,
        };
        let mut tx = store.writer_pool().begin().await.expect("begin");
        insert_events(&mut tx, &[row(1)]).await.expect("a new row");
        // The same key again: the unique index refuses it.
        let err = insert_events(&mut tx, &[row(2)]).await.expect_err("a stored key");
        assert!(matches!(err, StoreError::RowsSkipped { table: "events", sent: 1, stored: 0 }), "{err}");
    }

    /// Events go in as multi-row INSERTs of a few fixed sizes, their values bound in the
    /// order of the statement's column list: every column of every row lands where it
    /// belongs, whatever size of statement carried it (41 rows: 32, 8 and 1).
    #[tokio::test]
    async fn every_event_column_is_stored_in_its_place_by_each_insert_size() {
        let dir = tempfile::tempdir().expect("dir");
        let store = empty_store(&dir).await;
        let t = 1_772_640_000_000;
        let events: Vec<StoredEvent> = (0..41i64)
            .map(|i| {
                let mut e = crate::store::tests::failure_event(t + i);
                // The three times bound for a row differ, so that no two can swap unseen.
                e.received_at += chrono::Duration::milliseconds(2_000);
                let text = |column: &str| Some(format!("{column}-{i}"));
                e.codes = vec![50126, 50140 + i as u32];
                (e.entry_id, e.message, e.user, e.app_id) = (text("entry"), text("message"), text("user"), text("app"));
                (e.app_name, e.tenant_id, e.client_app) = (text("app name"), text("tenant"), text("client"));
                (e.auth_protocol, e.token_issuer_type, e.ip) = (text("protocol"), text("issuer"), text("ip"));
                (e.correlation_id, e.record_id, e.device) = (text("correlation"), text("record"), text("device"));
                e.position = Some(crate::event::Position { file_key: format!("file-{i}"), offset: 1000 + i as u64 });
                StoredEvent::new(e, String::new(), String::new(), String::new(), text("user key"), text("ip key"))
            })
            .collect();
        let keys: Vec<String> = (0..41).map(|i| format!("id:r-{i}")).collect();
        let mut rows = BatchRows { rows: Vec::new(), written: 0 };
        for (i, stored) in events.iter().enumerate() {
            let at = t + i as i64;
            rows.rows.push(NewRow {
                stored,
                key: &keys[i],
                occurred_at: at + 1_000,
                dedup_at: at,
                id: 1 + i as i64,
                fingerprint: Some(Cow::Owned(format!("fp-{i}"))),
                incident_id: None,
                counted: i % 2 == 0,
            });
        }
        let mut tx = store.writer_pool().begin().await.expect("begin");
        rows.write_through(&mut tx, 41).await.expect("write");
        tx.commit().await.expect("commit");
        let stored = sqlx::query(
            "SELECT id, dedup_key, dedup_at, source, format, received_at, occurred_at, outcome, category, code, codes,
                    entry_id, message, user, app_id, app_name, tenant_id, client_app, auth_protocol,
                    token_issuer_type, ip, correlation_id, record_id, device, file_key, file_offset,
                    user_key, ip_key, fingerprint, incident_id, counted
               FROM events ORDER BY id",
        )
        .fetch_all(store.writer_pool())
        .await
        .expect("read back");
        assert_eq!(stored.len(), 41);
        for (i, row) in stored.iter().enumerate() {
            let n = i as i64;
            let text = |column: &str| row.get::<Option<String>, _>(column);
            let want = |column: &str| Some(format!("{column}-{i}"));
            assert_eq!(row.get::<i64, _>("id"), 1 + n);
            assert_eq!(text("dedup_key"), Some(format!("id:r-{i}")));
            let times = ["dedup_at", "occurred_at", "received_at"].map(|column| row.get::<i64, _>(column));
            assert_eq!(times, [t + n, t + n + 1_000, t + n + 2_000]);
            assert_eq!((text("source"), text("format")), (Some("entra".into()), Some("azure-diagnostic".into())));
            assert_eq!((text("outcome"), text("category")), (Some("failure".into()), Some("mfa_required".into())));
            assert_eq!(row.get::<Option<i64>, _>("code"), Some(50126));
            assert_eq!(text("codes"), Some(format!("50126,{}", 50140 + i)));
            assert_eq!((text("entry_id"), text("message")), (want("entry"), want("message")));
            assert_eq!((text("user"), text("app_id"), text("app_name")), (want("user"), want("app"), want("app name")));
            assert_eq!((text("tenant_id"), text("client_app")), (want("tenant"), want("client")));
            assert_eq!((text("auth_protocol"), text("token_issuer_type")), (want("protocol"), want("issuer")));
            assert_eq!((text("ip"), text("correlation_id")), (want("ip"), want("correlation")));
            assert_eq!((text("record_id"), text("device")), (want("record"), want("device")));
            assert_eq!(
                (text("file_key"), row.get::<Option<i64>, _>("file_offset")),
                (Some(format!("file-{i}")), Some(1000 + n))
            );
            assert_eq!((text("user_key"), text("ip_key")), (want("user key"), want("ip key")));
            assert_eq!(text("fingerprint"), Some(format!("fp-{i}")));
            assert_eq!(row.get::<Option<i64>, _>("incident_id"), None);
            assert_eq!(row.get::<i64, _>("counted"), i64::from(i % 2 == 0));
        }
    }

    /// The batch's incident cache finds an incident's entries by its id: an event that
    /// joins it moves their last event, one resolved before the event marks them stale,
    /// and forgetting the incident drops exactly its entries, never an entry that
    /// went on to hold another incident.
    #[test]
    fn the_incident_cache_finds_and_forgets_an_incidents_entries_by_id() {
        let incident = |id: i64, status: IncidentStatus, last_seen_ms: i64| {
            Some(IncidentState { id, status, last_seen_ms, resolved_at_ms: None })
        };
        let mut newest = NewestIncidents::from_map(HashMap::from([
            ("a".to_string(), incident(1, IncidentStatus::Resolved, 100)),
            ("b".to_string(), incident(2, IncidentStatus::Open, 100)),
            ("c".to_string(), None),
        ]));
        assert!(!newest.joined(2, 150));
        assert_eq!(newest.get("b").flatten().map(|st| st.last_seen_ms), Some(150));
        assert_eq!(newest.get("a").flatten().map(|st| st.last_seen_ms), Some(100), "another incident's entry");
        assert!(!newest.joined(1, 90), "an earlier event does not reopen it");
        assert!(newest.joined(1, 200), "a later event makes a resolved incident stale");
        newest.forget_incident(1);
        assert_eq!(newest.get("a"), None, "read again when next asked for");
        assert_eq!(newest.get("c"), Some(None));

        // "b" goes on to hold incident 3: incident 2's stale holder must not touch it.
        newest.remove("b");
        newest.insert("b", incident(3, IncidentStatus::Resolved, 300));
        assert!(!newest.joined(2, 1000));
        newest.forget_incident(2);
        assert_eq!(newest.get("b").flatten().map(|st| (st.id, st.last_seen_ms)), Some((3, 300)));
        newest.reopened("b");
        assert_eq!(newest.get("b").flatten().map(|st| st.status), Some(IncidentStatus::Open));
        assert!(!newest.joined(3, 400), "reopened: no longer resolved");
        newest.forget_incident(3);
        assert_eq!((newest.get("b"), newest.get("c")), (None, Some(None)));
    }

    /// Successes go in as multi-row INSERTs per run of one source, the source bound once:
    /// each success's key, times and source are stored as sent, whatever size of
    /// statement carried it (two sources: 32 + 8 rows, then 32 + 1).
    #[tokio::test]
    async fn every_success_column_is_stored_in_its_place_by_each_insert_size() {
        let dir = tempfile::tempdir().expect("dir");
        let store = empty_store(&dir).await;
        let t = 1_772_640_000_000;
        let success = |i: i64| crate::store::StoredSuccess {
            source: if i < 40 { "entra".into() } else { "passport".into() },
            occurred_at_ms: t + i + 1_000,
            dedup_at: t + i,
            time_is_logged: false,
            key: format!("id:s-{i:02}"),
        };
        let batch = Batch { successes: (0..73).map(success).collect(), ..Batch::default() };
        let result = store.commit_batch(&batch, &Policy::default()).await.expect("commit");
        assert_eq!(result.stored.values().sum::<u64>(), 73);
        let rows: Vec<(i64, String, i64, String)> =
            sqlx::query_as("SELECT dedup_at, dedup_key, occurred_at, source FROM successes ORDER BY dedup_key")
                .fetch_all(store.writer_pool())
                .await
                .expect("read back");
        let want: Vec<(i64, String, i64, String)> =
            (0..73).map(success).map(|s| (s.dedup_at, s.key, s.occurred_at_ms, s.source.to_string())).collect();
        assert_eq!(rows, want);
    }

    /// Each INSERT text holds one placeholder per value its caller binds, for every row
    /// count it is chosen for, and the row count is the largest that the rows left fill.
    #[test]
    fn insert_texts_hold_a_placeholder_per_bound_value() {
        for (texts, bound_once) in [(&EVENT_INSERTS, 0), (&SUCCESS_INSERTS, 1), (&INCIDENT_USER_INSERTS, 0)] {
            for left in [1000, texts.sizes[0], texts.sizes[1] + 1, 9, 8, 7, 1] {
                let (rows, sql) = texts.next(left);
                assert!(rows <= left && texts.sizes.contains(&rows), "{left} left: {rows}");
                assert!(texts.sizes.iter().all(|&n| n == rows || n > left || n < rows), "{left} left: {rows}");
                assert_eq!(sql.matches('?').count(), rows * texts.columns + bound_once, "{rows} rows");
            }
            assert_eq!(texts.next(9).0, 8);
        }
        assert_eq!(EVENT_INSERTS.columns, EVENT_COLUMNS);
    }

    /// The detector windows are read from their partial indexes alone (issue #8): a
    /// table row per event read would cost a page per failure in a large store. And each
    /// (key, bucket) pair is a seek on both leading columns, never a walk of the index.
    #[tokio::test]
    async fn detector_windows_seek_their_covering_time_led_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = empty_store(&dir).await;
        for (column, extra) in [("ip_key", ""), ("user_key", "AND e.counted = 1")] {
            let plan = plan_of(&store, &window_sql(column, extra), Some(r#"[["a",1]]"#.into()), &[0, 10]).await;
            let seek = format!("USING COVERING INDEX events_by_{column} (<expr>=? AND {column}=?");
            assert!(plan.contains(&seek), "{column}: {plan}");
            assert!(plan.starts_with("SCAN json_each"), "the list is the outer loop: {column}: {plan}");
        }
    }

    /// The correlation join seeks the time-led index once per (bucket, id) pair. Against
    /// a long list the planner would rather walk the whole index once and probe the list
    /// (a Bloom filter), which costs the size of the store: the pinned join order (CROSS
    /// JOIN) keeps it a seek per pair.
    #[tokio::test]
    async fn correlation_join_seeks_its_time_led_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = empty_store(&dir).await;
        let plan = plan_of(&store, CORRELATED_COPIES, Some(r#"[[1,"c"]]"#.into()), &[10]).await;
        assert!(plan.contains("USING INDEX events_by_correlation (<expr>=? AND correlation_id=?"), "{plan}");
        assert!(plan.starts_with("SCAN json_each"), "the list is the outer loop: {plan}");
        // The bucket width in the statement is the one the probes are computed with.
        assert!(CORRELATED_COPIES.contains(&format!("e.occurred_at / {CORRELATION_BUCKET_MS} ")));
    }

    /// The correlation filter's fill seeks the correlation index for each page and each
    /// next bucket (it also reads each row's table entry: the partial index's terms are
    /// not its columns); its bucket width is the lookups'.
    #[tokio::test]
    async fn the_correlation_fill_seeks_its_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = empty_store(&dir).await;
        let page = plan_of(&store, CORRELATION_PAGE, Some("c".into()), &[1, 10]).await;
        assert!(page.contains("USING INDEX events_by_correlation (<expr>=? AND correlation_id>?)"), "{page}");
        let next = plan_of(&store, NEXT_CORRELATION_BUCKET, None, &[1]).await;
        assert!(next.contains("USING INDEX events_by_correlation (<expr>>?)"), "{next}");
        let width = format!("occurred_at / {CORRELATION_BUCKET_MS} ");
        assert!(CORRELATION_PAGE.contains(&width) && NEXT_CORRELATION_BUCKET.contains(&width));
    }

    /// A batch's first statement reads the latest time a stored row is keyed under from
    /// the end of the dedup index, never by walking the table.
    #[tokio::test]
    async fn the_batch_start_reads_the_newest_key_time_from_its_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = empty_store(&dir).await;
        let newest = "SELECT MAX(dedup_at) FROM events";
        assert!(BATCH_START.contains(&format!("({newest})")));
        let plan = plan_of(&store, newest, None, &[]).await;
        assert!(plan.contains("SEARCH events USING COVERING INDEX events_dedup"), "{plan}");
        assert!(!plan.contains("SCAN events"), "{plan}");
    }

    /// The lockout-wave window is one range of the lockouts' own index, with no table
    /// row read per lockout, and the code written in it is the lockout code.
    #[tokio::test]
    async fn the_lockout_window_reads_its_partial_index_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = empty_store(&dir).await;
        let plan = plan_of(&store, LOCKOUT_WINDOW, None, &[0, 10]).await;
        assert!(plan.contains("USING COVERING INDEX events_lockouts (occurred_at>? AND occurred_at<?)"), "{plan}");
        assert!(LOCKOUT_WINDOW.contains(&format!("code = {LOCKOUT_CODE} ")));
    }

    /// The newest incident per fingerprint is two seeks per fingerprint.
    #[tokio::test]
    async fn newest_incidents_seek_by_fingerprint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = empty_store(&dir).await;
        let plan = plan_of(&store, NEWEST_INCIDENTS, Some(r#"["f"]"#.into()), &[]).await;
        assert!(plan.contains("USING INTEGER PRIMARY KEY (rowid=?)"), "{plan}");
        assert!(plan.contains("USING COVERING INDEX incidents_by_fingerprint (fingerprint=?)"), "{plan}");
        assert!(!plan.contains("SCAN i") && !plan.contains("SCAN incidents"), "{plan}");
    }

    /// A full disk makes SQLite roll the whole transaction back itself; sqlx still counts
    /// it open, and every BEGIN on that connection failed from then on ("non-zero
    /// transaction depth") until a restart. The writer gets a working connection instead.
    #[tokio::test]
    async fn a_transaction_sqlite_rolled_back_itself_does_not_wedge_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = empty_store(&dir).await;
        let mut tx = store.begin_write().await.expect("begin");
        // SQLite ends the transaction behind sqlx's back, as it does on a full disk.
        sqlx::query("ROLLBACK").execute(&mut *tx.tx).await.expect("rollback");
        drop(tx);
        for _ in 0..3 {
            let tx = store.begin_write().await.expect("a write after the failed one begins");
            tx.commit().await.expect("and commits");
        }
    }

    /// The duplicate check seeks the uniqueness index once per key.
    #[tokio::test]
    async fn the_duplicate_check_seeks_the_uniqueness_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = empty_store(&dir).await;
        let plan = plan_of(&store, STORED_KEYS, Some(r#"[[1,"id:x"]]"#.into()), &[]).await;
        assert!(plan.contains("USING COVERING INDEX events_dedup (dedup_at=? AND dedup_key=?)"), "{plan}");
        assert!(plan.starts_with("SCAN json_each"), "the list is the outer loop: {plan}");
    }

    /// Buckets cover the whole span on both sides of zero, as SQLite computes them.
    #[test]
    fn buckets_cover_every_time_in_the_span() {
        assert_eq!(buckets(0, 3_599_999, 3_600_000), 0..=0);
        assert_eq!(buckets(3_599_999, 3_600_000, 3_600_000), 0..=1);
        assert_eq!(buckets(-1, 1, 3_600_000), 0..=0);
        let at = 1_772_582_400_000 + 3 * 3_600_000 + 5;
        let span = buckets(at - CORRELATION_WINDOW_MS, at + CORRELATION_WINDOW_MS, CORRELATION_BUCKET_MS);
        // An hour's buckets: the ±12 h window spans 25 of them, never more.
        assert_eq!(span.clone().count() as i64, 2 * CORRELATION_WINDOW_MS / CORRELATION_BUCKET_MS + 1, "{span:?}");
        for t in [at - CORRELATION_WINDOW_MS, at, at + CORRELATION_WINDOW_MS] {
            assert!(span.contains(&(t / CORRELATION_BUCKET_MS)));
        }
    }

    /// A key's overlapping windows share buckets; separate windows name only their own.
    #[test]
    fn window_probes_name_each_needed_bucket_once() {
        let h = DETECTOR_BUCKET_MS;
        let times = vec![10 * h + 100, 10 * h + 200, 14 * h + 10];
        let keys: HashMap<&str, Vec<i64>> = HashMap::from([("k", times)]);
        let probes = window_probes(&keys, 600_000);
        let named: Vec<i64> = probes.iter().map(|p| p.1).collect();
        assert_eq!(named, vec![9, 10, 13, 14]);
        assert!(probes.iter().all(|p| p.2 <= p.3));
    }
}
