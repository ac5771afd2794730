//! The HTTP API (axum): health, `/metrics`, incidents, events, summary, catalogue,
//! classify and push ingestion. Only this module knows about HTTP.

pub mod doc;
pub mod error;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::classify::SharedClassifier;
use crate::config::{Settings, SourceSettings};
use crate::event::Category;
use crate::incidents::{Incident, IncidentStatus};
use crate::ingest::formats::decode_bytes;
use crate::ingest::reader::decode_options;
use crate::pipeline::{DecodeTally, IngestSummary, Normalized, Normalizer, Writer};
use crate::store::queries::{EventQuery, IncidentQuery, IncidentSort};
use crate::store::Summary;
use crate::store::{Batch, Store};
use error::{error_body, ApiError};

/// The name of the always-available push source.
pub const HTTP_SOURCE: &str = "http";

/// Health of each running source: `Ok` or the reason it stopped.
pub type SourceHealth = Arc<RwLock<BTreeMap<String, Result<(), String>>>>;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The writer (push ingestion commits through it).
    pub writer: Writer,
    /// The live catalogue.
    pub classifier: Arc<SharedClassifier>,
    /// Turns decoded items into events.
    pub normalizer: Normalizer,
    /// The configuration.
    pub settings: Arc<Settings>,
    /// Source health for `/readyz`.
    pub health: SourceHealth,
}

/// The whole router, with metrics, a body limit and a timeout.
pub fn router(state: AppState) -> Router {
    let max_body = state.settings.server.max_body_bytes;
    let timeout = state.settings.server.request_timeout.get();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route(
            "/api/v1/incidents/{id}/acknowledge",
            post(acknowledge).route_layer(middleware::from_fn_with_state(state.clone(), require_token)),
        )
        .route(
            "/api/v1/incidents/{id}/resolve",
            post(resolve).route_layer(middleware::from_fn_with_state(state.clone(), require_token)),
        )
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/summary", get(summary))
        .route("/api/v1/catalogue", get(catalogue))
        .route("/api/v1/catalogue/{code}", get(catalogue_code))
        .route(
            "/api/v1/classify",
            post(classify)
                // A pasted message, page or envelope: a megabyte is plenty, and a verdict
                // per record of a push-sized body took gigabytes.
                .layer::<_, std::convert::Infallible>(axum::extract::DefaultBodyLimit::max(
                    CLASSIFY_MAX_BODY.min(max_body),
                ))
                // Taken once the body is read (a megabyte at most): a slow client holds its
                // connection, not a permit the others wait for.
                .layer::<_, std::convert::Infallible>(axum::Extension(ClassifyPermits(Arc::new(
                    tokio::sync::Semaphore::new(CLASSIFIES_AT_ONCE),
                ))))
                // And at most so many bodies read or held at once (each up to a megabyte,
                // and its parsed copy): the rest wait with their bodies unread.
                .route_layer(middleware::from_fn_with_state(
                    Arc::new(tokio::sync::Semaphore::new(CLASSIFY_BODIES_AT_ONCE)),
                    a_few_at_a_time,
                )),
        )
        .route(
            "/api/v1/ingest/{source}",
            post(ingest)
                // A route layer too: a wrong method is a 405 at once, not after a permit.
                .route_layer(middleware::from_fn_with_state(
                    Arc::new(tokio::sync::Semaphore::new(INGESTS_AT_ONCE)),
                    a_few_at_a_time,
                ))
                // Outermost: a client without the token neither waits for nor holds a
                // permit, and its body is never read. A route layer: a wrong method is
                // still a 405.
                .route_layer(middleware::from_fn_with_state(state.clone(), require_token)),
        )
        .route("/api/v1/openapi.json", get(openapi))
        .fallback(|| async { error_body(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        // Inside `json_errors` and `observe`, so a timed-out request gets the JSON error
        // shape and is counted like any other.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The bearer-token check, as a layer that runs before anything else of the request is
/// read: its body (a 401, not a 413, for a large one) or an ingest permit.
async fn require_token(State(state): State<AppState>, req: axum::extract::Request, next: middleware::Next) -> Response {
    match authorize(&state, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Pushes decoded at once. Each holds its body and what it decodes to (about three times
/// the body) until its batch commits, and batches commit one at a time anyway: a few
/// permits keep twenty concurrent 15 MB pushes from taking half a gigabyte.
const INGESTS_AT_ONCE: usize = 2;

/// The permits of classify's CPU work (`CLASSIFIES_AT_ONCE`).
#[derive(Clone)]
struct ClassifyPermits(Arc<tokio::sync::Semaphore>);

/// Classify requests served at once (each is CPU work off the async workers).
const CLASSIFIES_AT_ONCE: usize = 2;
/// Classify requests whose bodies are read or held at once (`CLASSIFIES_AT_ONCE` of them
/// are classified): slow uploads by a few clients do not stop the others, and memory stays
/// bounded at a few tens of megabytes.
const CLASSIFY_BODIES_AT_ONCE: usize = 16;
/// Largest classify body (bytes).
const CLASSIFY_MAX_BODY: usize = 1 << 20;
/// Most verdicts one classify answer lists under `records`; how many more there were is
/// `records_omitted`.
const CLASSIFY_MAX_RECORDS: usize = 1000;

/// Waits for a permit of the route's semaphore before the body is read: a waiting
/// request holds a connection, not its body.
async fn a_few_at_a_time(
    State(permits): State<Arc<tokio::sync::Semaphore>>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match permits.acquire().await {
        Ok(_permit) => next.run(req).await,
        // Never closed; answering busy is the safe reading if it were.
        Err(_) => error_body(StatusCode::SERVICE_UNAVAILABLE, "store_busy", "ingestion is shutting down"),
    }
}

/// Errors produced outside our handlers (body too large, wrong method, timeout) come as
/// plain text from axum and tower; give them the contract's JSON shape too.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than this endpoint takes (server.max_body_bytes; 1 MiB for classify)",
        ),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this endpoint does not accept that method"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took longer than server.request_timeout"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "unsupported content type"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "the request could not be read"),
    };
    let mut out = error_body(status, code, message);
    if let Some(allow) = resp.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

/// Counts requests and latency by route template (never the raw path).
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    // A client may send any token as its method: label only the standard ones.
    let method = match *req.method() {
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::DELETE | Method::PATCH | Method::OPTIONS => {
            req.method().as_str()
        }
        _ => "other",
    }
    .to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let metrics = state.writer.metrics();
    metrics.http_requests.with_label_values(&[&route, &method, resp.status().as_str()]).inc();
    metrics.http_duration.with_label_values(&[&route, &method]).observe(started.elapsed().as_secs_f64());
    resp
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "The process is up", body = doc::Health)))]
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Readiness: the store answers and every source runs.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready", body = doc::Health),
    (status = 503, description = "Not ready, with the reason", body = doc::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Response {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "store not reachable");
        return error_body(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the store is not reachable");
    }
    let failed: Vec<String> = match state.health.read() {
        Ok(h) => h.iter().filter_map(|(name, r)| r.as_ref().err().map(|e| format!("source {name}: {e}"))).collect(),
        Err(_) => vec!["source health unavailable".into()],
    };
    if !failed.is_empty() {
        return error_body(StatusCode::SERVICE_UNAVAILABLE, "not_ready", &failed.join("; "));
    }
    Json(json!({"status": "ready"})).into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Metrics", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.writer.metrics().render();
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], body)
        .into_response()
}

type Params = Query<Vec<(String, String)>>;

/// The query's parameters by name; one given twice is a 400 (which would count is not
/// for the server to guess).
fn unique(params: Vec<(String, String)>) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::with_capacity(params.len());
    for (name, value) in params {
        if out.contains_key(&name) {
            return Err(ApiError::bad(&name, "given more than once"));
        }
        out.insert(name, value);
    }
    Ok(out)
}

fn check_known(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    let mut unknown: Vec<&String> = params.keys().filter(|k| !known.contains(&k.as_str())).collect();
    unknown.sort();
    match unknown.first() {
        Some(k) => Err(ApiError::bad(k, format!("unknown parameter (accepted: {})", known.join(", ")))),
        None => Ok(()),
    }
}

/// A time parameter, up to the next whole millisecond: the store keeps milliseconds, and
/// both bounds of `[since, until)` keep their meaning rounded up (a `since` cut down
/// would take in events before it).
fn parse_time(params: &HashMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    params
        .get(name)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| {
                    let t = t.with_timezone(&Utc);
                    let below_ms = t.timestamp_subsec_nanos() % 1_000_000;
                    if below_ms == 0 {
                        return t;
                    }
                    t.checked_add_signed(chrono::Duration::nanoseconds(i64::from(1_000_000 - below_ms))).unwrap_or(t)
                })
                .map_err(|_| ApiError::bad(name, format!("{v:?} is not an RFC 3339 time such as 2026-03-04T08:15:02Z")))
        })
        .transpose()
}

fn parse_limit(params: &HashMap<String, String>) -> Result<u32, ApiError> {
    match params.get("limit") {
        None => Ok(50),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(ApiError::bad("limit", format!("{v:?}: use a whole number from 1 to 500"))),
        },
    }
}

fn parse_category(params: &HashMap<String, String>) -> Result<Option<Category>, ApiError> {
    params
        .get("category")
        .map(|v| Category::parse(v).ok_or_else(|| ApiError::bad("category", format!("unknown category {v:?}"))))
        .transpose()
}

fn parse_code(params: &HashMap<String, String>) -> Result<Option<u32>, ApiError> {
    params
        .get("code")
        .map(|v| v.parse::<u32>().map_err(|_| ApiError::bad("code", format!("{v:?} is not an AADSTS number"))))
        .transpose()
}

fn with_next_link(
    uri_path: &str,
    params: &HashMap<String, String>,
    next: Option<&str>,
    body: serde_json::Value,
) -> Response {
    let mut resp = Json(body).into_response();
    if let Some(cursor) = next {
        let mut pairs: Vec<(&String, &String)> = params.iter().filter(|(k, _)| k.as_str() != "cursor").collect();
        pairs.sort();
        let mut query: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        query.push(format!("cursor={}", encode(cursor)));
        let link = format!("<{uri_path}?{}>; rel=\"next\"", query.join("&"));
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Incidents, newest first by the chosen key, one page at a time.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents",
    params(
        ("status" = Option<String>, Query, description = "open (default), acknowledged, resolved or all"),
        ("category" = Option<Category>, Query, description = "only this category"),
        ("code" = Option<u32>, Query, description = "only this primary AADSTS code"),
        ("app" = Option<String>, Query, description = "only this app (case-insensitive)"),
        ("since" = Option<String>, Query, description = "last_seen at or after this RFC 3339 time"),
        ("until" = Option<String>, Query, description = "last_seen before this RFC 3339 time"),
        ("sort" = Option<String>, Query, description = "last_seen (default), first_seen, event_count or users_affected"),
        ("limit" = Option<u32>, Query, description = "page size, 1 to 500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page; a Link rel=next header mirrors next_cursor", body = doc::IncidentPage),
        (status = 400, description = "A parameter is invalid (the message names it)", body = doc::ErrorBody)))]
async fn list_incidents(State(state): State<AppState>, Query(params): Params) -> Result<Response, ApiError> {
    let params = unique(params)?;
    check_known(&params, &["status", "category", "code", "app", "since", "until", "limit", "cursor", "sort"])?;
    let status = match params.get("status").map(String::as_str) {
        None | Some("open") => Some(IncidentStatus::Open),
        Some("all") => None,
        Some(v) => Some(
            IncidentStatus::parse(v)
                .ok_or_else(|| ApiError::bad("status", format!("{v:?}: use open, acknowledged, resolved or all")))?,
        ),
    };
    let sort = match params.get("sort") {
        None => IncidentSort::LastSeen,
        Some(v) => IncidentSort::parse(v).ok_or_else(|| {
            ApiError::bad("sort", format!("{v:?}: use last_seen, first_seen, event_count or users_affected"))
        })?,
    };
    let (since, until) = parse_span(&params)?;
    let q = IncidentQuery {
        status,
        category: parse_category(&params)?,
        code: parse_code(&params)?,
        app: params.get("app").cloned(),
        since,
        until,
        sort,
        limit: parse_limit(&params)?,
        cursor: params.get("cursor").cloned(),
    };
    let page = state.store.list_incidents(&q).await?;
    let body = json!({"items": page.items, "next_cursor": page.next_cursor});
    Ok(with_next_link("/api/v1/incidents", &params, page.next_cursor.as_deref(), body))
}

/// A query's `since` and `until`, each optional.
type Span = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `since` and `until`, when given, in that order.
fn parse_span(params: &HashMap<String, String>) -> Result<Span, ApiError> {
    let (since, until) = (parse_time(params, "since")?, parse_time(params, "until")?);
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::bad("since", "must not be after until"));
        }
    }
    Ok((since, until))
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(|| ApiError::NotFound(format!("no incident {raw:?}")))
}

/// One incident with its remediation and most recent events.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "incident id")),
    responses(
        (status = 200, description = "The incident", body = doc::IncidentDetail),
        (status = 404, description = "No such incident", body = doc::ErrorBody)))]
async fn get_incident(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let incident = state.store.incident(id).await?.ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    let events =
        state.store.list_events(&EventQuery { incident: Some(id), limit: 20, ..EventQuery::default() }).await?;
    let doc_url = incident.code.map(crate::classify::doc_url);
    let attempts = doc::join_attempts(&events.items);
    Ok(Json(doc::IncidentDetail { incident, doc_url, recent_events: events.items, attempts }).into_response())
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = state.settings.api.token.expose();
    if token.is_empty() {
        return Ok(());
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")))
        .map_or("", |(_, token)| token.trim_start());
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Compares without an early exit, so timing does not reveal how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        let y = b.get(i % b.len().max(1)).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

/// Acknowledge an incident (optionally saying who).
#[utoipa::path(post, path = "/api/v1/incidents/{id}/acknowledge", tag = "incidents",
    params(("id" = i64, Path, description = "incident id")),
    request_body(content = Option<doc::AcknowledgeRequest>, description = "optional: who acknowledges"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The acknowledged incident", body = Incident),
        (status = 400, description = "Invalid body", body = doc::ErrorBody),
        (status = 401, description = "Bearer token missing or wrong", body = doc::ErrorBody),
        (status = 404, description = "No such incident", body = doc::ErrorBody)))]
async fn acknowledge(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let ack: doc::AcknowledgeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        doc::AcknowledgeRequest::default()
    } else {
        json_object(&body).map_err(|e| ApiError::bad("body", format!("expected {{\"by\": \"name\"}}: {e}")))?
    };
    let by = ack.by.map(|s| s.chars().take(200).collect::<String>());
    let incident = state
        .store
        .acknowledge(id, by.as_deref(), Utc::now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    state.writer.refresh_incident_gauge().await?;
    Ok(Json(incident).into_response())
}

/// Resolve an incident by hand; a later failure reopens it.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/resolve", tag = "incidents",
    params(("id" = i64, Path, description = "incident id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The resolved incident", body = Incident),
        (status = 401, description = "Bearer token missing or wrong", body = doc::ErrorBody),
        (status = 404, description = "No such incident", body = doc::ErrorBody)))]
async fn resolve(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let incident =
        state.store.resolve(id, Utc::now()).await?.ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    state.writer.refresh_incident_gauge().await?;
    Ok(Json(incident).into_response())
}

/// Stored failure events, newest first.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(
        ("incident" = Option<i64>, Query, description = "only events of this incident"),
        ("category" = Option<Category>, Query, description = "only this category"),
        ("code" = Option<u32>, Query, description = "only this primary code"),
        ("source" = Option<String>, Query, description = "only this source"),
        ("since" = Option<String>, Query, description = "at or after this RFC 3339 time"),
        ("until" = Option<String>, Query, description = "before this RFC 3339 time"),
        ("limit" = Option<u32>, Query, description = "page size, 1 to 500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page", body = doc::EventPage),
        (status = 400, description = "A parameter is invalid", body = doc::ErrorBody),
        (status = 404, description = "No such incident (`incident`)", body = doc::ErrorBody)))]
async fn list_events(State(state): State<AppState>, Query(params): Params) -> Result<Response, ApiError> {
    let params = unique(params)?;
    check_known(&params, &["incident", "category", "code", "source", "since", "until", "limit", "cursor"])?;
    let incident = params
        .get("incident")
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| ApiError::bad("incident", format!("{v:?} is not an incident id")))
        })
        .transpose()?;
    let (since, until) = parse_span(&params)?;
    // An incident that does not exist is a 404, as its own URL is, not an empty page
    // that reads like an incident without events.
    if let Some(id) = incident {
        if state.store.incident(id).await?.is_none() {
            return Err(ApiError::NotFound(format!("no incident {id}")));
        }
    }
    let q = EventQuery {
        incident,
        category: parse_category(&params)?,
        code: parse_code(&params)?,
        source: params.get("source").cloned(),
        since,
        until,
        limit: parse_limit(&params)?,
        cursor: params.get("cursor").cloned(),
    };
    let page = state.store.list_events(&q).await?;
    let body = json!({"items": page.items, "next_cursor": page.next_cursor});
    Ok(with_next_link("/api/v1/events", &params, page.next_cursor.as_deref(), body))
}

/// Counts by event time.
#[utoipa::path(get, path = "/api/v1/summary", tag = "events",
    params(
        ("window" = Option<String>, Query, description = "90s, 15m, 1h (default), 7d …"),
        ("since" = Option<String>, Query, description = "RFC 3339; overrides window"),
        ("until" = Option<String>, Query, description = "RFC 3339; default now"),
        ("source" = Option<String>, Query, description = "only this source"),
    ),
    responses(
        (status = 200, description = "The counts", body = Summary),
        (status = 400, description = "A parameter is invalid", body = doc::ErrorBody)))]
async fn summary(State(state): State<AppState>, Query(params): Params) -> Result<Response, ApiError> {
    let params = unique(params)?;
    check_known(&params, &["window", "since", "until", "source"])?;
    let until = parse_time(&params, "until")?.unwrap_or_else(Utc::now);
    let window = match params.get("window") {
        None => Duration::from_secs(3600),
        Some(v) => v
            .parse::<crate::config::HumanDuration>()
            .map(|d| d.get())
            .map_err(|_| ApiError::bad("window", format!("{v:?}: use e.g. 90s, 15m, 1h or 7d")))?,
    };
    let since = match parse_time(&params, "since")? {
        Some(s) => s,
        // Checked (9999999999d is past the calendar's range: it was a panic), and clamped
        // at 1970: there is nothing to count before it.
        None => chrono::Duration::from_std(window)
            .ok()
            .and_then(|w| until.checked_sub_signed(w))
            .filter(|t| t.timestamp() >= 0)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
    };
    if since > until {
        return Err(match params.contains_key("since") {
            true => ApiError::bad("since", "must not be after until"),
            // The window's start defaults to it: nothing is counted before 1970.
            false => ApiError::bad("until", "must not be before 1970-01-01T00:00:00Z"),
        });
    }
    let s = state.store.summary(since, until, params.get("source").map(String::as_str)).await?;
    Ok(Json(s).into_response())
}

/// The loaded (merged) catalogue.
#[utoipa::path(get, path = "/api/v1/catalogue", tag = "catalogue",
    responses(
        (status = 200, description = "Every entry", body = doc::CatalogueList),
        (status = 400, description = "A query parameter was given: it takes none", body = doc::ErrorBody)))]
async fn catalogue(State(state): State<AppState>, Query(params): Params) -> Result<Response, ApiError> {
    // A filter it does not apply (`?category=`) would answer every entry as if filtered.
    check_known(&unique(params)?, &[])?;
    let c = state.classifier.current();
    Ok(Json(doc::CatalogueList { entries: c.catalogue().entries().to_vec(), count: c.catalogue().len() })
        .into_response())
}

/// The catalogue entry for one code.
#[utoipa::path(get, path = "/api/v1/catalogue/{code}", tag = "catalogue",
    params(("code" = String, Path, description = "AADSTS number, with or without the AADSTS prefix, or an entry's id")),
    responses(
        (status = 200, description = "The entry; for a code, the conditional entries that can also decide it (a federated 50126) under `conditional`", body = doc::CodeEntry),
        (status = 400, description = "Neither a code nor an entry id, or a query parameter was given", body = doc::ErrorBody),
        (status = 404, description = "Not in the catalogue", body = doc::ErrorBody)))]
async fn catalogue_code(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    check_known(&unique(params)?, &[])?;
    let c = state.classifier.current();
    let catalogue = c.catalogue();
    let Ok(code) = raw.trim_start_matches("AADSTS").parse::<u32>() else {
        // An entry's id (`aadsts-50126-federated`, an operator's `okta.invalid`): any text
        // an id may be (the catalogue's rule) that is not loaded is an unknown id (404);
        // anything else is no code at all (400).
        return match catalogue.entries().iter().find(|e| e.id == raw) {
            Some(entry) => Ok(Json(entry).into_response()),
            None if crate::classify::catalogue::is_entry_id(&raw) => {
                Err(ApiError::NotFound(format!("no catalogue entry {raw:?}")))
            }
            None => Err(ApiError::bad("code", format!("{raw:?} is neither an AADSTS number nor an entry id"))),
        };
    };
    let all = catalogue.entries_for_code(code);
    let Some(first) = all.first() else {
        return Err(ApiError::NotFound(format!("code {code} is not in the catalogue")));
    };
    let body = doc::CodeEntry { entry: (*first).clone(), conditional: all[1..].iter().map(|e| (*e).clone()).collect() };
    Ok(Json(body).into_response())
}

/// Decodes a request body that must be one JSON object. serde also builds a struct from
/// a JSON array of its fields in order (`["mallory"]` was taken as `{"by": "mallory"}`),
/// which no client means and the API does not document.
fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => serde_json::from_slice(body).map_err(|e| e.to_string()),
        _ => Err("the body is not a JSON object".to_string()),
    }
}

/// Classify one message; stores nothing.
#[utoipa::path(post, path = "/api/v1/classify", tag = "catalogue",
    request_body = doc::ClassifyRequest,
    responses(
        (status = 200, description = "The classification; when the message holds several records (an Event Hubs envelope, a Graph page, a JSON array), the first record's, with the first 1,000 records' under `records` (and how many more there were under `records_omitted`)", body = doc::ClassifyAnswer),
        (status = 400, description = "Body is not {\"message\": \"...\"}", body = doc::ErrorBody),
        (status = 413, description = "Body larger than 1 MiB (or server.max_body_bytes, if less)", body = doc::ErrorBody)))]
async fn classify(
    State(state): State<AppState>,
    axum::Extension(ClassifyPermits(permits)): axum::Extension<ClassifyPermits>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: doc::ClassifyRequest =
        json_object(&body).map_err(|e| ApiError::bad("message", format!("expected {{\"message\": \"...\"}}: {e}")))?;
    // Never closed; answering busy is the safe reading if it were.
    let Ok(_permit) = permits.acquire().await else {
        return Ok(error_body(StatusCode::SERVICE_UNAVAILABLE, "busy", "classification is shutting down"));
    };
    // Off the async workers: a body may be a megabyte of text to scan.
    let classifier = state.classifier.current();
    let all = tokio::task::spawn_blocking(move || crate::classify::classify_records(&classifier, &req.message)).await?;
    // The first record's verdict, as for one; text holding several records (an envelope,
    // a Graph page) lists every record's under `records` too.
    // Plain data: serializing it cannot fail.
    let mut all = all;
    let omitted = all.len().saturating_sub(CLASSIFY_MAX_RECORDS);
    all.truncate(CLASSIFY_MAX_RECORDS);
    // Never empty (`classify_records`).
    let verdict = all[0].clone();
    let several = all.len() > 1;
    let body = doc::ClassifyAnswer {
        verdict,
        records: several.then_some(all),
        records_omitted: (omitted > 0).then_some(omitted),
    };
    Ok(Json(body).into_response())
}

/// Push ingestion: JSON lines, a JSON array, an Event Hubs envelope or a Graph page.
#[utoipa::path(post, path = "/api/v1/ingest/{source}", tag = "ingest",
    params(("source" = String, Path, description = "a configured source, or `http`")),
    request_body(content = String, description = "records in any supported shape", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was stored (the replay summary)", body = IngestSummary),
        (status = 401, description = "Bearer token missing or wrong", body = doc::ErrorBody),
        (status = 404, description = "No such source", body = doc::ErrorBody),
        (status = 413, description = "Body larger than server.max_body_bytes", body = doc::ErrorBody),
        (status = 415, description = "A Content-Encoding other than identity: send the body uncompressed", body = doc::ErrorBody),
        (status = 503, description = "The store is locked by another writer: nothing was stored; retry later", body = doc::ErrorBody)))]
async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(source): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // A compressed body read as text would be all parse errors and a 200: nothing stored,
    // and a shipper that never retries.
    // Every Content-Encoding header, and every coding listed in one (RFC 9110 §8.4).
    let mut codings = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(',').map(|c| c.trim().to_ascii_lowercase()).collect::<Vec<_>>());
    if let Some(coding) = codings.find(|c| !c.is_empty() && c != "identity") {
        return Err(ApiError::UnsupportedEncoding(coding));
    }
    // A configured source of that name decides (also one named `http`, whose timezone and
    // defaults were otherwise ignored); `http` alone takes the defaults.
    let settings: SourceSettings = match state.settings.source(&source) {
        Some(configured) => configured.clone(),
        None if source == HTTP_SOURCE => SourceSettings { name: HTTP_SOURCE.into(), ..SourceSettings::default() },
        None => {
            return Err(ApiError::NotFound(format!(
                "no source named {source:?}; configure it under [[sources]] or push to /api/v1/ingest/{HTTP_SOURCE}"
            )))
        }
    };
    // A retried request with the same body gets the same key, so lines without record
    // ids are not counted twice.
    let digest = Sha256::digest(&body);
    let mut key = format!("http-{source}-");
    crate::hex::push_hex(&mut key, &digest[..12]);
    let items = decode_bytes(&decode_options(&settings), &body);
    let mut batch = Batch::default();
    let mut tally = DecodeTally::default();
    let out = Normalized { events: &mut batch.events, successes: &mut batch.successes, tally: &mut tally };
    state.normalizer.process(&settings.name, &key, &items, Utc::now(), out);
    state.normalizer.report_parse_errors(&settings.name, &format!("POST /api/v1/ingest/{source}"), &items);
    let result = state.writer.commit(&batch).await?;
    tally.record(state.writer.metrics(), &settings.name);
    for (src, n) in &result.duplicates_by_source {
        state.writer.metrics().duplicates.with_label_values(&[src]).inc_by(*n);
    }
    let mut summary = IngestSummary::default();
    summary.add_result(&result);
    summary.add_decode_counts(&tally);
    Ok(Json(summary).into_response())
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3 document", body = Object)))]
async fn openapi() -> Response {
    use utoipa::OpenApi;
    Json(doc::ApiDoc::openapi()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
    }
}
