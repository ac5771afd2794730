//! A1 / A2 / A3: one decoded Entra sign-in object → `RawSignIn`.
//!
//! The three shapes share field names modulo casing (handled by `record::field_of`), so one
//! mapping serves all of them; A1 nests the Graph object under `properties`, which wins
//! over the top level where both carry a field.

use super::passport::extract_codes;
use super::record::{LStr, Obj};
use super::time::parse_timestamp;
use super::{DecodeOptions, ItemKind, ParseErrorReason, RawSignIn};

/// The `format` label for an object decoded under `Format::Auto`.
pub(crate) fn auto_label(o: &Obj<'_>) -> &'static str {
    if o.time_generated.0.is_some() {
        "azure-loganalytics"
    } else if o.properties.is_some() || o.time.0.is_some() || o.result_type_seen {
        "azure-diagnostic"
    } else {
        "graph"
    }
}

/// Whether the object looks like a sign-in at all (the time-formats fragments, holding only
/// `time` and `category`, do not). A `status` counts only as a sign-in's status object
/// (`{"errorCode":…}`, or JSON text of one), and `properties` only when it holds a sign-in
/// or its id: a token endpoint's error body (`{"status":400,"error":"invalid_grant",…}`,
/// which Passport prints on a line of its own within a message) is not a sign-in.
pub(crate) fn is_signin(o: &Obj<'_>) -> bool {
    o.result_type_seen
        || o.status.as_ref().is_some_and(|s| s.shaped)
        || o.properties.as_deref().is_some_and(|p| p.id.0.is_some() || is_signin(p))
        || o.upn.0.is_some()
        || o.created.0.is_some()
        || (o.time_generated.0.is_some() && o.id.0.is_some())
}

fn first<'s>(a: &'s LStr<'_>, b: Option<&'s LStr<'_>>) -> Option<&'s str> {
    a.get().or_else(|| b.and_then(LStr::get))
}

/// Maps an Entra sign-in object (A1 record, A2 row, A3 signIn) to a `RawSignIn`; a
/// success only to its time and id unless `opts.success_detail`.
pub(crate) fn to_signin(o: &Obj<'_>, label: &'static str, opts: &DecodeOptions) -> ItemKind {
    // A record of another log, which diagnostic settings streaming every category to one
    // Event Hub mix in (`AuditLogs`, `ProvisioningLogs`, `MicrosoftGraphActivityLogs`), is
    // no sign-in even when its result and text read like one's.
    if names_another_log(o) {
        return ItemKind::Skipped;
    }
    if !is_signin(o) {
        return ItemKind::Error(ParseErrorReason::NotSignin);
    }
    // Entra writes every time in UTC, with or without a `Z` (a portal CSV says so in its
    // `[UTC]` header suffix): a source's `timezone` is for Passport's offset-less stamps.
    let tz = chrono_tz::UTC;
    let p = o.properties.as_deref();
    // properties (the Graph object) first, then the envelope / row.
    macro_rules! pick {
        ($f:ident) => {
            p.and_then(|p| p.$f.get()).or_else(|| o.$f.get()).map(str::to_owned)
        };
    }
    let status = p.and_then(|p| p.status.as_ref()).or(o.status.as_ref());
    let result_code = status.and_then(|s| s.error_code).or(o.result_type).or_else(|| p.and_then(|p| p.result_type));
    // A sign-in whose status survives only as a type name (PowerShell's `ConvertTo-Json`
    // below the default depth) and that has no result type: its outcome is unknown, an
    // error to report rather than a record to pass over as not a sign-in.
    if result_code.is_none() && status.is_some_and(|s| s.unreadable) {
        return ItemKind::Error(ParseErrorReason::InvalidJson);
    }
    // When the sign-in happened (`createdDateTime`, the same instant in every shape of one
    // sign-in) before when its log record was written (`time`, `TimeGenerated`, which can
    // lag it by minutes).
    let times = [p.map_or(&o.created, |p| &p.created), &o.created, &o.time, &o.time_generated];
    let found = times.into_iter().enumerate().find_map(|(i, t)| Some((i, parse_timestamp(t.get()?, tz)?)));
    let (occurred_at, time_is_logged) = (found.map(|(_, t)| t), found.is_some_and(|(i, _)| i >= 2));
    if occurred_at.is_none() && times.into_iter().any(|t| t.get().is_some()) {
        return ItemKind::Error(ParseErrorReason::InvalidTimestamp);
    }
    if result_code == Some(0) && !opts.success_detail {
        return ItemKind::SignIn(Box::new(RawSignIn {
            format: label,
            occurred_at,
            time_is_logged,
            result_code,
            record_id: pick!(id),
            ..RawSignIn::default()
        }));
    }
    let message = status
        .and_then(|s| s.failure_reason.get())
        .or_else(|| o.result_description.get())
        .or_else(|| p.and_then(|p| p.result_description.get()))
        .or_else(|| status.and_then(|s| s.additional_details.get()))
        .map(str::to_owned);
    // A sign-in with no result and no failure text (a Graph `$select` that left `status`
    // out, `"status": null`, an empty error code): its outcome is unknown, an error to
    // report, not a record to pass over as not sign-in related. A record of another log
    // (`"category": "AuditLogs"` in an envelope) is passed over as before.
    if result_code.is_none() && message.as_deref().map_or(true, |m| m.trim().is_empty()) && names_a_signin(o) {
        return ItemKind::Error(ParseErrorReason::NotSignin);
    }
    let mut message_codes = Vec::new();
    if let Some(m) = &message {
        extract_codes(m, &mut message_codes);
    }
    // A Log Analytics row's `TenantId` is the workspace's: its Entra tenant is
    // `AADTenantId`, or the one its `ResourceId` names.
    let row_tenant = if o.time_generated.0.is_some() { None } else { o.tenant_id.get() };
    let tenant_id = o
        .aad_tenant_id
        .get()
        .or(row_tenant)
        .or_else(|| p.and_then(|p| p.tenant_id.get()))
        .map(str::to_owned)
        .or_else(|| tenant_from_resource_id(o.resource_id.get()))
        .or_else(|| first(&o.resource_tenant_id, p.map(|p| &p.resource_tenant_id)).map(str::to_owned));
    let device =
        p.and_then(|p| p.device_detail.as_ref()).or(o.device_detail.as_ref()).and_then(|d| d.display_name.owned());
    let s = RawSignIn {
        format: label,
        occurred_at,
        time_is_logged,
        result_code,
        message_codes,
        message,
        oauth_error: None,
        redacted: false,
        user: pick!(upn).or_else(|| o.identity.owned()),
        app_id: pick!(app_id),
        app_name: pick!(app_name),
        tenant_id,
        client_app: pick!(client_app),
        auth_protocol: pick!(auth_protocol),
        token_issuer_type: pick!(token_issuer_type),
        ip: pick!(ip).or_else(|| o.caller_ip.owned()),
        correlation_id: pick!(correlation_id),
        record_id: pick!(id),
        device,
        process_id: None,
    };
    ItemKind::SignIn(Box::new(s))
}

/// Whether the record says it is a sign-in: a sign-in log's category (`SignInLogs`,
/// `NonInteractiveUserSignInLogs`, …) or, naming no log, a sign-in's `createdDateTime`.
/// A record of another log (`AuditLogs`) or resource (a Graph `riskyUsers` page, a Log
/// Analytics `AADRiskyUsers` row) says neither.
fn names_a_signin(o: &Obj<'_>) -> bool {
    let category = o.category.get().or_else(|| o.properties.as_deref().and_then(|p| p.category.get()));
    match category.filter(|c| !c.is_empty()) {
        Some(c) => c.to_ascii_lowercase().contains("signin"),
        None => o.created.0.is_some() || o.properties.as_deref().is_some_and(|p| p.created.0.is_some()),
    }
}

/// Whether the record names a log that is not a sign-in log: its diagnostic `category`
/// (or a Log Analytics row's `Category`) or, naming none, a Log Analytics row's table
/// (`Type`). Every sign-in log's name says so (`SignInLogs`, `NonInteractiveUserSignInLogs`,
/// `ServicePrincipalSignInLogs`, `ADFSSignInLogs`, the tables `SigninLogs`,
/// `AADManagedIdentitySignInLogs`, …).
fn names_another_log(o: &Obj<'_>) -> bool {
    fn named<'s>(s: &'s LStr<'_>) -> Option<&'s str> {
        s.get().map(str::trim).filter(|c| !c.is_empty())
    }
    let category = named(&o.category).or_else(|| o.properties.as_deref().and_then(|p| named(&p.category)));
    let log = category.or_else(|| if o.time_generated.0.is_some() { named(&o.log_type) } else { None });
    log.is_some_and(|l| !l.to_ascii_lowercase().contains("signin"))
}

/// `/tenants/<id>/providers/...` → `<id>`.
fn tenant_from_resource_id(r: Option<&str>) -> Option<String> {
    let rest = r?.strip_prefix("/tenants/")?;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}
