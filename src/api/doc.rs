//! The OpenAPI 3 document, generated from the handlers' annotations and the response
//! types themselves, so it cannot drift from what the server sends.

use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::classify::catalogue::{Conditions, Example, Require};
use crate::classify::{Classification, Entry, MatchedBy, Severity};
use crate::event::{Category, Outcome};
use crate::incidents::{Incident, IncidentStatus};
use crate::pipeline::IngestSummary;
use crate::store::{EventRow, Summary};

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of an error body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`bad_request`, `unauthorized`, `not_found`, …).
    pub code: String,
    /// One sentence for humans, naming the parameter at fault.
    pub message: String,
}

/// `{"status": "ok"}` / `{"status": "ready"}`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

/// A page of incidents.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentPage {
    /// The incidents.
    pub items: Vec<Incident>,
    /// Cursor for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The events.
    pub items: Vec<EventRow>,
    /// Cursor for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/catalogue/{code}`: the code's entry, with the conditional entries that can
/// also decide the code (a federated 50126 is a federation problem).
#[derive(Debug, Serialize, ToSchema)]
pub struct CodeEntry {
    /// The code's entry.
    #[serde(flatten)]
    pub entry: Entry,
    /// Entries whose conditions, when they hold, decide the code instead; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditional: Vec<Entry>,
}

/// One incident with what the on-call engineer needs next to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentDetail {
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
    /// Microsoft's page for the code.
    pub doc_url: Option<String>,
    /// The newest failures counted in it (correlated copies included).
    pub recent_events: Vec<EventRow>,
    /// The same failures joined by correlation id: one sign-in attempt seen by Passport
    /// (the Mac) and by Entra (the IdP) becomes one row with the facts of both.
    pub attempts: Vec<Attempt>,
}

/// One sign-in attempt, joined across sources by correlation id.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    /// The correlation id (null for an event that carries none).
    pub correlation_id: Option<String>,
    /// The earliest event time of the attempt.
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// Sources that saw it.
    pub sources: Vec<String>,
    /// Every code seen, primary first.
    pub codes: Vec<u32>,
    /// Mac host name or serial (from Passport).
    pub device: Option<String>,
    /// User (per the privacy setting).
    pub user: Option<String>,
    /// Client IP (from Entra, per the privacy setting).
    pub ip: Option<String>,
    /// Application.
    pub app: Option<String>,
    /// Token issuer type (from Entra).
    pub token_issuer_type: Option<String>,
    /// The Entra record id.
    pub record_ids: Vec<String>,
}

/// Joins events that share a correlation id into attempts, newest first.
pub fn join_attempts(events: &[EventRow]) -> Vec<Attempt> {
    let mut out: Vec<Attempt> = Vec::new();
    for e in events {
        let existing =
            e.correlation_id.as_ref().and_then(|c| out.iter_mut().find(|a| a.correlation_id.as_ref() == Some(c)));
        let attempt = match existing {
            Some(a) => a,
            None => {
                out.push(Attempt {
                    correlation_id: e.correlation_id.clone(),
                    occurred_at: e.occurred_at,
                    sources: Vec::new(),
                    codes: Vec::new(),
                    device: None,
                    user: None,
                    ip: None,
                    app: None,
                    token_issuer_type: None,
                    record_ids: Vec::new(),
                });
                let Some(last) = out.last_mut() else { continue };
                last
            }
        };
        attempt.occurred_at = attempt.occurred_at.min(e.occurred_at);
        if !attempt.sources.contains(&e.source) {
            attempt.sources.push(e.source.clone());
        }
        for c in &e.codes {
            if !attempt.codes.contains(c) {
                attempt.codes.push(*c);
            }
        }
        attempt.device = attempt.device.take().or_else(|| e.device.clone());
        attempt.user = attempt.user.take().or_else(|| e.user.clone());
        attempt.ip = attempt.ip.take().or_else(|| e.ip.clone());
        attempt.app = attempt.app.take().or_else(|| e.app_name.clone().or_else(|| e.app_id.clone()));
        attempt.token_issuer_type = attempt.token_issuer_type.take().or_else(|| e.token_issuer_type.clone());
        if let Some(r) = &e.record_id {
            attempt.record_ids.push(r.clone());
        }
    }
    for a in &mut out {
        a.sources.sort();
    }
    out
}

/// The loaded catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogueList {
    /// Every entry.
    pub entries: Vec<Entry>,
    /// How many.
    pub count: usize,
}

/// `POST /api/v1/classify` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClassifyRequest {
    /// The error message or raw log line.
    pub message: String,
}

/// `POST /api/v1/classify` answer: the first record's verdict (or the message's), and for
/// text holding several records every record's, up to 1,000.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClassifyAnswer {
    /// The verdict of the first record, or of the message.
    #[serde(flatten)]
    pub verdict: Classification,
    /// Each record's verdict, in order (text holding several records only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<Classification>>,
    /// Records beyond the 1,000 listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_omitted: Option<usize>,
}

/// Optional `POST /api/v1/incidents/{id}/acknowledge` body.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    /// Who is on it (free text, at most 200 characters kept).
    #[serde(default)]
    pub by: Option<String>,
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "passportd",
        description = "Kandji Passport and Microsoft Entra sign-in failures: incidents, events, summaries, the error catalogue, classification and push ingestion."
    ),
    paths(
        super::healthz,
        super::readyz,
        super::metrics,
        super::list_incidents,
        super::get_incident,
        super::acknowledge,
        super::resolve,
        super::list_events,
        super::summary,
        super::catalogue,
        super::catalogue_code,
        super::classify,
        super::ingest,
        super::openapi,
    ),
    components(schemas(
        ClassifyAnswer,
        ErrorBody, ErrorDetail, Health, IncidentPage, EventPage, IncidentDetail, Attempt, CatalogueList, CodeEntry,
        ClassifyRequest, AcknowledgeRequest, Incident, IncidentStatus, EventRow, Summary,
        IngestSummary, Classification, Entry, Conditions, Example, Require, Severity, MatchedBy,
        Category, Outcome
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}
