//! Incidents: failures grouped by fingerprint (category + primary code + app + tenant),
//! with a lifecycle (open → acknowledged → resolved, auto-resolve after a quiet period
//! in event time, reopen within a window). This module is pure: the store executes
//! its decisions inside the batch transaction.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::Category;

/// Where an incident is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// New or reopened: needs attention.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Fixed, or quiet for the quiet period.
    Resolved,
}

impl IncidentStatus {
    /// Every status.
    pub const ALL: [IncidentStatus; 3] = [IncidentStatus::Open, IncidentStatus::Acknowledged, IncidentStatus::Resolved];

    /// The stable name (API, database).
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Open or acknowledged.
    pub fn is_active(self) -> bool {
        self != IncidentStatus::Resolved
    }
}

impl fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incident as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Incident {
    /// Stable numeric id.
    pub id: i64,
    /// Versioned hash of category + code + app + tenant (or of a detector's subject).
    pub fingerprint: String,
    /// `failure` (a catalogue failure group) or a detector: `password_spray`,
    /// `brute_force`, `lockout_wave`.
    pub kind: String,
    /// A detector's evidence, as counts only.
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<serde_json::Value>,
    /// The failure category.
    pub category: Category,
    /// The primary AADSTS code (null for code-less pattern matches).
    pub code: Option<u32>,
    /// The catalogue entry that classified the failures.
    pub entry: Option<String>,
    /// Catalogue title.
    pub title: String,
    /// Catalogue severity.
    pub severity: String,
    /// Lifecycle state.
    pub status: IncidentStatus,
    /// Earliest event time.
    pub first_seen: DateTime<Utc>,
    /// Latest event time.
    pub last_seen: DateTime<Utc>,
    /// Failures counted (each sign-in attempt once).
    pub event_count: i64,
    /// Distinct users (exact, from keyed hashes).
    pub users_affected: i64,
    /// Application display name or id.
    pub app: Option<String>,
    /// Tenant id.
    pub tenant: Option<String>,
    /// Sources that reported it.
    pub sources: Vec<String>,
    /// What to do about it (from the catalogue).
    pub remediation: String,
    /// How many times it came back after resolving.
    pub reopened_count: i64,
    /// When it was opened (event time).
    pub opened_at: DateTime<Utc>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When it was acknowledged (wall time).
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// The fingerprint scheme version, part of every fingerprint so the scheme can change
/// without merging unrelated incidents.
pub const FINGERPRINT_VERSION: &str = "v1";

/// Versioned fingerprint of what makes failures "the same problem". The source is
/// deliberately not part of it: a Passport failure and its Entra record are one incident.
///
/// A failure without a code is told apart by the catalogue entry its text matched
/// (`entry`): "blocked by security defaults" and "blocked by Conditional Access" share a
/// category but not a fix, and one incident must not show the other's. A failure with a
/// code ignores `entry` (its fingerprint is what it always was).
pub fn fingerprint(
    category: Category,
    code: Option<u32>,
    entry: Option<&str>,
    app: Option<&str>,
    tenant: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    h.update(category.as_str().as_bytes());
    h.update([0]);
    match (code, entry) {
        (Some(c), _) => h.update(c.to_string().as_bytes()),
        // Not a number: no code's fingerprint can collide with it.
        (None, Some(e)) => {
            h.update(b"entry:");
            h.update(e.as_bytes());
        }
        (None, None) => {}
    }
    h.update([0]);
    h.update(app.unwrap_or("").to_ascii_lowercase().as_bytes());
    h.update([0]);
    h.update(tenant.unwrap_or("").to_ascii_lowercase().as_bytes());
    let mut out = format!("{FINGERPRINT_VERSION}:");
    crate::hex::push_hex(&mut out, &h.finalize()[..12]);
    out
}

/// How many failures must gather before a gated category opens an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenGate {
    /// Open once this many failures (0 = not used) …
    pub events: u32,
    /// … or this many distinct users (0 = not used) …
    pub users: u32,
    /// … fall within this window.
    pub within: Duration,
}

impl OpenGate {
    /// True when the counts reach either threshold.
    pub fn is_met(&self, events: u64, users: u64) -> bool {
        (self.events > 0 && events >= u64::from(self.events)) || (self.users > 0 && users >= u64::from(self.users))
    }
}

/// Thresholds of the built-in detectors (all within `window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorPolicy {
    /// Off switch.
    pub enabled: bool,
    /// Password spray: this many distinct users failing credentials from one IP.
    pub spray_users: u32,
    /// Brute force: this many credential failures for one user.
    pub brute_force_failures: u32,
    /// Lockout wave: this many distinct users locked out.
    pub lockout_users: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Default for DetectorPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            spray_users: 10,
            brute_force_failures: 10,
            lockout_users: 5,
            window: Duration::from_secs(600),
        }
    }
}

/// Lifecycle timings and opening rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Auto-resolve after this long without events (event time), unless the category
    /// has its own.
    pub quiet_period: Duration,
    /// Per-category quiet periods.
    pub quiet_by_category: HashMap<Category, Duration>,
    /// A recurrence within this long after resolution reopens.
    pub reopen_window: Duration,
    /// Categories that open an incident only once enough failures gather.
    pub gates: HashMap<Category, OpenGate>,
    /// Built-in detectors.
    pub detectors: DetectorPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            quiet_period: Duration::from_secs(30 * 60),
            quiet_by_category: HashMap::new(),
            reopen_window: Duration::from_secs(7 * 86_400),
            gates: HashMap::new(),
            detectors: DetectorPolicy::default(),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Policy {
    /// The quiet period of a category.
    pub fn quiet_for(&self, category: Category) -> Duration {
        self.quiet_by_category.get(&category).copied().unwrap_or(self.quiet_period)
    }

    /// The quiet period of a category in milliseconds.
    pub fn quiet_ms(&self, category: Category) -> i64 {
        ms(self.quiet_for(category))
    }

    fn reopen_ms(&self) -> i64 {
        ms(self.reopen_window)
    }

    /// When an active incident of `category` last seen at `last_seen_ms` resolves by itself.
    pub fn auto_resolve_at(&self, category: Category, last_seen_ms: i64) -> i64 {
        last_seen_ms.saturating_add(self.quiet_ms(category))
    }
}

/// The newest incident of a fingerprint, as the engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentState {
    /// Its id.
    pub id: i64,
    /// Its status.
    pub status: IncidentStatus,
    /// Latest event time (ms).
    pub last_seen_ms: i64,
    /// When it resolved (ms), if it did.
    pub resolved_at_ms: Option<i64>,
}

/// What to do with a failure event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Count it in this incident; the status does not change.
    Append(i64),
    /// Count it and reopen this incident (`reopened_count` + 1).
    Reopen(i64),
    /// Open a new incident.
    Open,
}

/// Decides where a failure of `category` at `event_ms` goes, given the newest incident
/// with its fingerprint. Pure; the store applies the decision.
pub fn decide(existing: Option<IncidentState>, category: Category, event_ms: i64, policy: &Policy) -> Decision {
    let Some(inc) = existing else {
        return Decision::Open;
    };
    // A late event that falls inside the incident's own lifetime is part of it, whatever
    // the status now: replaying an old file must not reopen or split an incident.
    let natural_end = policy.auto_resolve_at(category, inc.last_seen_ms);
    let lifetime_end = match inc.status {
        IncidentStatus::Resolved => inc.resolved_at_ms.unwrap_or(inc.last_seen_ms).min(natural_end),
        _ => natural_end,
    };
    if event_ms <= lifetime_end {
        return Decision::Append(inc.id);
    }
    if event_ms <= lifetime_end.saturating_add(policy.reopen_ms()) {
        Decision::Reopen(inc.id)
    } else {
        Decision::Open
    }
}

/// The built-in detectors: findings that need per-user or per-IP keys, which metrics
/// must never see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detector {
    /// Many users failing credentials from one IP.
    PasswordSpray,
    /// One user failing credentials many times.
    BruteForce,
    /// Many users locked out at once.
    LockoutWave,
}

impl Detector {
    /// Every detector.
    pub const ALL: [Detector; 3] = [Detector::PasswordSpray, Detector::BruteForce, Detector::LockoutWave];

    /// The stable name (incident `kind`, metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::PasswordSpray => "password_spray",
            Detector::BruteForce => "brute_force",
            Detector::LockoutWave => "lockout_wave",
        }
    }

    /// The category its incidents are filed under.
    pub fn category(self) -> Category {
        match self {
            Detector::PasswordSpray | Detector::BruteForce => Category::InvalidCredentials,
            Detector::LockoutWave => Category::AccountLocked,
        }
    }

    /// Incident title.
    pub fn title(self) -> &'static str {
        match self {
            Detector::PasswordSpray => "Possible password spray: many users failing from one IP address",
            Detector::BruteForce => "Possible brute force: repeated credential failures for one user",
            Detector::LockoutWave => "Lockout wave: many users locked out at once",
        }
    }

    /// What to do.
    pub fn remediation(self) -> &'static str {
        match self {
            Detector::PasswordSpray => "Open the Entra sign-in logs filtered on the failing IP address (the events of this incident carry it per the privacy setting) and check whether it is one of your own egress addresses (a shared Mac lab, a NAT) or an outside address. For an outside address: block it with a Conditional Access named location, confirm smart lockout is on, and review Identity Protection risk detections for the affected users.",
            Detector::BruteForce => "One account keeps failing its password. If it is a Mac whose keychain or Passport still holds an old password, have the user sign in once with the new password. Otherwise treat it as an attack on that account: check the sign-in log's IP addresses and locations, and reset the password or require a password change.",
            Detector::LockoutWave => "Many accounts hit smart lockout together. Look for a common cause: a password-expiry wave, a Passport or Wi-Fi profile with stale credentials, or a spray from outside (see any password-spray incident). Unlock legitimate users once the cause is fixed; review the smart lockout threshold.",
        }
    }
}

/// The fingerprint of a detector's incident about one subject (an IP or user key).
pub fn detector_fingerprint(detector: Detector, subject_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(detector.as_str().as_bytes());
    h.update([0]);
    h.update(subject_key.as_bytes());
    let mut out = format!("{FINGERPRINT_VERSION}:{}:", detector.as_str());
    crate::hex::push_hex(&mut out, &h.finalize()[..12]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const C: Category = Category::MfaRequired;

    fn state(status: IncidentStatus, last_seen: i64, resolved: Option<i64>) -> Option<IncidentState> {
        Some(IncidentState { id: 7, status, last_seen_ms: last_seen, resolved_at_ms: resolved })
    }

    #[test]
    fn lifecycle_decisions() {
        let p = Policy::default();
        assert_eq!(decide(None, C, 0, &p), Decision::Open);
        // Within the quiet period: same incident.
        assert_eq!(decide(state(IncidentStatus::Open, 0, None), C, 29 * MIN, &p), Decision::Append(7));
        assert_eq!(decide(state(IncidentStatus::Acknowledged, 0, None), C, 30 * MIN, &p), Decision::Append(7));
        // Quiet period passed but the sweep has not run yet: a recurrence reopens.
        assert_eq!(decide(state(IncidentStatus::Open, 0, None), C, 31 * MIN, &p), Decision::Reopen(7));
        // Resolved by hand at 10 min: a failure at 11 min is a regression.
        assert_eq!(
            decide(state(IncidentStatus::Resolved, 5 * MIN, Some(10 * MIN)), C, 11 * MIN, &p),
            Decision::Reopen(7)
        );
        // A late event from before the resolution belongs to it.
        assert_eq!(
            decide(state(IncidentStatus::Resolved, 5 * MIN, Some(10 * MIN)), C, 4 * MIN, &p),
            Decision::Append(7)
        );
        // After the reopen window: a new incident.
        let week = 7 * 24 * 60 * MIN;
        assert_eq!(
            decide(state(IncidentStatus::Resolved, 0, Some(30 * MIN)), C, 30 * MIN + week + 1, &p),
            Decision::Open
        );
        assert_eq!(
            decide(state(IncidentStatus::Resolved, 0, Some(30 * MIN)), C, 30 * MIN + week, &p),
            Decision::Reopen(7)
        );
        // A category with its own, shorter quiet period.
        let mut short = Policy::default();
        short.quiet_by_category.insert(C, Duration::from_secs(300));
        assert_eq!(decide(state(IncidentStatus::Open, 0, None), C, 6 * MIN, &short), Decision::Reopen(7));
        assert_eq!(decide(state(IncidentStatus::Open, 0, None), Category::Other, 6 * MIN, &short), Decision::Append(7));
    }

    #[test]
    fn gates_open_on_either_threshold() {
        let within = Duration::from_secs(600);
        let g = OpenGate { events: 3, users: 2, within };
        assert!(!g.is_met(2, 1));
        assert!(g.is_met(3, 1));
        assert!(g.is_met(1, 2));
        let events_only = OpenGate { events: 3, users: 0, within };
        assert!(!events_only.is_met(2, 50));
    }

    #[test]
    fn fingerprint_ignores_case_of_app_and_tenant_but_not_code() {
        let a = fingerprint(Category::MfaRequired, Some(50076), None, Some("Kandji Passport"), Some("T"));
        let b = fingerprint(Category::MfaRequired, Some(50076), None, Some("kandji passport"), Some("t"));
        let c = fingerprint(Category::MfaRequired, Some(50079), None, Some("Kandji Passport"), Some("T"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("v1:"));
        // Failures without a code are told apart by the entry their text matched.
        let by = |entry| fingerprint(Category::ConditionalAccessBlock, None, entry, Some("app"), Some("t"));
        assert_ne!(by(Some("aadsts-530035")), by(Some("aadsts-53003")));
        assert_ne!(by(Some("aadsts-53003")), by(None));
        assert_eq!(by(Some("aadsts-53003")), by(Some("aadsts-53003")));
    }

    /// Fingerprints are stored, and an incident is found by its fingerprint: computing
    /// them differently would split every open incident in two on upgrade. Pinned to the
    /// formula as first written (and to one literal value).
    #[test]
    fn fingerprints_stay_what_stores_hold() {
        let first_written = |parts: &[&str], prefix: &str| {
            let mut h = Sha256::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    h.update([0]);
                }
                h.update(p.as_bytes());
            }
            let hex: String = h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
            format!("{prefix}{hex}")
        };
        for (category, code, app, tenant) in [
            (Category::MfaRequired, Some(50076), Some("Kandji Passport"), Some("T")),
            (Category::InvalidCredentials, None, None, None),
            (Category::Unclassified, Some(7000218), Some("APP-ID"), None),
        ] {
            let code_text = code.map(|c| c.to_string()).unwrap_or_default();
            let app_text = app.unwrap_or("").to_ascii_lowercase();
            let tenant_text = tenant.unwrap_or("").to_ascii_lowercase();
            assert_eq!(
                fingerprint(category, code, None, app, tenant),
                first_written(&[category.as_str(), &code_text, &app_text, &tenant_text], "v1:")
            );
            // A coded failure's entry changes nothing.
            if code.is_some() {
                assert_eq!(
                    fingerprint(category, code, Some("x"), app, tenant),
                    fingerprint(category, code, None, app, tenant)
                );
            }
        }
        assert_eq!(
            detector_fingerprint(Detector::BruteForce, "k"),
            first_written(&[Detector::BruteForce.as_str(), "k"], "v1:brute_force:")
        );
        assert_eq!(
            fingerprint(Category::MfaRequired, Some(50076), None, Some("Kandji Passport"), Some("T")),
            "v1:f35d223992e132ff620bb067"
        );
    }
}
