//! The normalized sign-in event: the one type shared by ingest, classify, incidents,
//! the store and the API (FORMATS.md §C).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a sign-in attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The sign-in completed (result code 0).
    Success,
    /// The sign-in failed; counted, classified and grouped into incidents.
    Failure,
    /// An expected interrupt logged with a non-zero code (e.g. 50140): never an incident.
    Interrupt,
}

impl Outcome {
    /// All outcomes, in a stable order (metrics pre-initialisation, summaries).
    pub const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Failure, Outcome::Interrupt];

    /// The stable label / column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Interrupt => "interrupt",
        }
    }

    /// Parses the stable name back.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! categories {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// The stable failure categories of CONTRACT.md §2. Metrics, alerts and the API
        /// use these names; never rename one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum Category {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Category {
            /// Every category, in contract order.
            pub const ALL: &'static [Category] = &[$(Category::$variant),*];

            /// The stable name used in metrics, the API and the catalogue.
            pub fn as_str(self) -> &'static str {
                match self { $(Category::$variant => $name),* }
            }

            /// Parses a stable name; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(Category::$variant),)* _ => None }
            }
        }
    };
}

categories! {
    MfaRequired => "mfa_required",
    ConditionalAccessBlock => "conditional_access_block",
    DeviceOrCompliance => "device_or_compliance",
    RiskBlock => "risk_block",
    InvalidCredentials => "invalid_credentials",
    FederationUnsupported => "federation_unsupported",
    HybridOnprem => "hybrid_onprem",
    AccountLocked => "account_locked",
    AccountDisabled => "account_disabled",
    PasswordExpired => "password_expired",
    UserNotFound => "user_not_found",
    UserNotAssigned => "user_not_assigned",
    ConsentRequired => "consent_required",
    ClientMisconfigured => "client_misconfigured",
    AppNotFound => "app_not_found",
    TenantIssue => "tenant_issue",
    TokenOrGrantInvalid => "token_or_grant_invalid",
    TransientServiceError => "transient_service_error",
    ProtocolError => "protocol_error",
    InterruptInformational => "interrupt_informational",
    Other => "other",
    Unclassified => "unclassified",
}

impl Category {
    /// Categories that a failure can be counted under (everything but interrupts).
    pub fn failure_categories() -> impl Iterator<Item = Category> {
        Self::ALL.iter().copied().filter(|c| *c != Category::InterruptInformational)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event's bytes came from, so a line without a record id still has a stable
/// idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The file generation's identity key (see the tailer), or `stdin` / `http`.
    pub file_key: String,
    /// Byte offset of the record's first byte in that generation.
    pub offset: u64,
}

/// One normalized sign-in event (FORMATS.md §C), after classification and privacy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInEvent {
    /// When passportd read it.
    pub received_at: DateTime<Utc>,
    /// The event's own timestamp, in UTC (the receive time when the record has none).
    pub occurred_at: DateTime<Utc>,
    /// False when the record carried no time of its own and `occurred_at` is the receive
    /// time: such a time differs on every read, so it cannot be part of the idempotency key.
    #[serde(default = "default_true")]
    pub occurred_from_record: bool,
    /// `occurred_at` is when the record was logged, not when the sign-in happened
    /// ([`crate::ingest::formats::RawSignIn::time_is_logged`]): the same sign-in's record
    /// with its own time is found by its id, not by this time.
    #[serde(skip)]
    pub time_is_logged: bool,
    /// The configured source name (`replay` for an ad-hoc replay).
    pub source: String,
    /// The decoder that produced it (`azure-diagnostic`, `graph`, `passport`, …).
    pub format: String,
    /// Success, failure or interrupt.
    pub outcome: Outcome,
    /// The category the classifier chose (`None` for successes).
    pub category: Option<Category>,
    /// Every AADSTS code seen, the primary (most specific) first.
    pub codes: Vec<u32>,
    /// The catalogue entry that matched, if any.
    pub entry_id: Option<String>,
    /// The failure text (already redacted per the privacy setting).
    pub message: Option<String>,
    /// The user, per `privacy.users` (kept, HMAC-hashed or dropped).
    pub user: Option<String>,
    /// Application (client) id.
    pub app_id: Option<String>,
    /// Application display name.
    pub app_name: Option<String>,
    /// Entra tenant id.
    pub tenant_id: Option<String>,
    /// `clientAppUsed`.
    pub client_app: Option<String>,
    /// `authenticationProtocol` (`ropc` marks Passport's password grant).
    pub auth_protocol: Option<String>,
    /// `tokenIssuerType` (`AzureAD`, `ADFederationServices`, …).
    pub token_issuer_type: Option<String>,
    /// Client IP, per `privacy.ips`.
    pub ip: Option<String>,
    /// Correlation id: joins a Passport failure to its Entra record.
    pub correlation_id: Option<String>,
    /// The sign-in's unique id, when the record has one (the de-duplication key).
    pub record_id: Option<String>,
    /// Mac host name or serial, when known.
    pub device: Option<String>,
    /// Where the bytes came from.
    pub position: Option<Position>,
}

impl SignInEvent {
    /// The correlation id, unless there is none or it is empty (which joins nothing).
    pub fn correlation(&self) -> Option<&str> {
        self.correlation_id.as_deref().filter(|c| !c.is_empty())
    }

    /// The primary (most specific) code, if any.
    pub fn primary_code(&self) -> Option<u32> {
        self.codes.first().copied()
    }

    /// The time the idempotency key is unique under (milliseconds): the record's own time,
    /// or 0 for a record without one. Keys are unique per (time, key) rather than per key
    /// so the uniqueness index is clustered by time (issue #8); any deterministic function
    /// of the record's bytes keeps de-duplication exact, the receive time would not.
    pub fn dedup_at(&self) -> i64 {
        if self.occurred_from_record {
            self.occurred_at.timestamp_millis()
        } else {
            0
        }
    }

    /// The idempotency key: the record id when there is one, else file identity + offset.
    pub fn dedup_key(&self) -> Option<String> {
        dedup_key(self.record_id.as_deref(), self.position.as_ref().map(|p| (p.file_key.as_str(), p.offset)))
    }
}

/// The idempotency key of a record: `id:` and its record id (lower-cased: ids are GUIDs,
/// written in either case), else `pos:` and its file generation and byte offset.
pub fn dedup_key(record_id: Option<&str>, position: Option<(&str, u64)>) -> Option<String> {
    if let Some(id) = record_id.filter(|s| !s.is_empty()) {
        let mut key = String::with_capacity(3 + id.len());
        key.push_str("id:");
        key.push_str(id);
        key.make_ascii_lowercase();
        return Some(key);
    }
    position.map(|(file_key, offset)| format!("pos:{file_key}:{offset}"))
}

fn default_true() -> bool {
    true
}
