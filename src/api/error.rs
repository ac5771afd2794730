//! The one API error type: it alone chooses status codes, and it never leaks internals.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::queries::ListError;
use crate::store::StoreError;

/// An error answered as `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a query parameter or body field is invalid.
    #[error("invalid parameter `{param}`: {message}")]
    BadRequest {
        /// The parameter at fault.
        param: String,
        /// What is wrong.
        message: String,
    },
    /// 401: the bearer token is missing or wrong.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 415: a pushed body in a content coding the server does not decode (gzip, br…).
    #[error("Content-Encoding {0:?} is not accepted: send the body uncompressed")]
    UnsupportedEncoding(String),
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(String),
    /// 503: another writer held the store's lock past the busy timeout; retry later.
    #[error("the store is locked by another writer; retry later")]
    Busy(#[source] StoreError),
    /// 500: the store failed (details are logged, not returned).
    #[error("internal error")]
    Internal(#[source] StoreError),
    /// 500: a blocking task the request ran did not finish (it panicked or was cancelled).
    #[error("internal error")]
    Task(#[from] tokio::task::JoinError),
}

impl ApiError {
    /// A 400 naming the parameter.
    pub fn bad(param: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { param: param.to_string(), message: message.into() }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::UnsupportedEncoding(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_busy"),
            ApiError::Internal(_) | ApiError::Task(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_busy() {
            ApiError::Busy(e)
        } else {
            ApiError::Internal(e)
        }
    }
}

impl From<ListError> for ApiError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::Cursor(_) => ApiError::bad("cursor", "not a cursor this server issued for this query"),
            ListError::Store(s) => s.into(),
        }
    }
}

/// The JSON error body for a status and code (also used by fallbacks and layers).
pub fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        match &self {
            ApiError::Internal(e) => tracing::error!(error = %e, "request failed in the store"),
            ApiError::Busy(e) => tracing::warn!(error = %e, "request waited for the store's lock in vain"),
            ApiError::Task(e) => tracing::error!(error = %e, "request's worker task failed"),
            _ => {}
        }
        let mut resp = error_body(status, code, &self.to_string());
        if matches!(self, ApiError::Unauthorized) {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
