//! Benchmark corpus tool (issue #8; run by `scripts/bench.sh`, never by `cargo test`).
//!
//! - `azure N OUT [--seed S] [--start-ms T]`: Entra diagnostic-setting records (A1, one
//!   JSON object per line, ~2.5 KB), ~20 % failures over the real code mix, unique ids.
//! - `passport-ndjson N OUT [--seed S]` / `passport-syslog N OUT [--seed S]`: Passport
//!   exports where ~5 % of the lines carry an AADSTS error among ordinary chatter.
//! - `parse FILE`: the physical reference, a plain typed `serde_json` parse of every line
//!   (what any JSON consumer must at least pay), printing records/s.
//! - `seed-store DB --incidents N --events M`: a large store for the API benchmark, filled
//!   with SQL directly (orders of magnitude faster than ingesting).
//!
//! The generator is deterministic for a seed, so figures are reproducible.

use std::fmt::Write as _;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;

/// splitmix64: tiny, fast and good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn uuid(&mut self, out: &mut String) {
        let a = self.next();
        let b = self.next();
        let _ = write!(
            out,
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        );
    }
}

/// (code, weight within failures, failureReason, additionalDetails)
const FAILURES: &[(u32, u64, &str, &str)] = &[
    (50126, 30, "Error validating credentials due to invalid username or password.", "The user didn't enter the right credentials. It's expected to see some number of these errors in your logs due to users making mistakes."),
    (50076, 18, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access 'Kandji Passport'.", "MFA required in Azure AD"),
    (50140, 12, "This error occurred due to 'Keep me signed in' interrupt when the user was signing in.", "This is an expected part of the login flow, where a user is asked if they want to remain signed into this browser to make further logins easier."),
    (53003, 9, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.", "Conditional Access policy requires a compliant device, and the device is not compliant."),
    (50053, 7, "The account is locked, you've tried to sign in too many times with an incorrect user ID or password.", "Sign-in was blocked because it came from an IP address with malicious activity"),
    (7000218, 6, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", "Public client flows are disabled for this application registration."),
    (50074, 5, "Strong Authentication is required.", "The user was presented an MFA challenge and did not complete it."),
    (50158, 3, "External security challenge not satisfied. User will be redirected to another page or authentication provider to satisfy additional authentication challenges.", "External security challenge was not satisfied."),
    (50055, 3, "The password is expired.", "The user's password is expired, and therefore their login or session was ended."),
    (50057, 2, "The user account is disabled.", "The user object in Active Directory backing this account has been disabled."),
    (50034, 2, "The user account does not exist in the directory.", "The user account doesn't exist in the directory. An admin can add the account."),
    (65001, 2, "The user or administrator has not consented to use the application.", "Send an interactive authorization request for this user and resource."),
    (700016, 1, "Application with identifier was not found in the directory.", "The application wasn't found in the directory/tenant."),
];

const APPS: &[(&str, &str)] = &[
    ("5f0c1a2b-7d3e-4c59-9a61-2b8e4f6d7c10", "Kandji Passport"),
    ("00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online"),
    ("00000003-0000-0ff1-ce00-000000000000", "Office 365 SharePoint Online"),
    ("1fec8e78-bce4-4aaf-ab1b-5451cc387264", "Microsoft Teams"),
    ("d3590ed6-52b3-4102-aeff-aad2292ab01c", "Microsoft Office"),
    ("4765445b-32c6-49b0-83e6-1d93765276ca", "OfficeHome"),
    ("c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "Azure Portal"),
    ("29d9ed98-a469-4536-ade2-f981bc1d605e", "Microsoft Authentication Broker"),
    ("9ba1a5c7-f17a-4de9-a1f1-6178c8d51223", "Microsoft Intune Company Portal"),
    ("de8bc8b5-d9f9-48b1-a8ad-b748da725064", "Graph Explorer"),
];
const TENANTS: &[&str] = &["9c3e2d1a-4b5f-4e6a-8c7d-0f1e2d3c4b5a", "2f6b8e1c-9d0a-4c3b-8e7f-1a2b3c4d5e6f"];
const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia",
    "peggy", "rupert", "sybil", "trent", "victor", "walter", "yusuf",
];
const CLIENTS: &[&str] = &["Mobile Apps and Desktop clients", "Browser", "Exchange ActiveSync", "Other clients"];
const PROTOCOLS: &[&str] = &["ropc", "none", "oAuth2", "deviceCode"];
const CITIES: &[(&str, &str, &str)] = &[
    ("Springfield", "Illinois", "US"),
    ("Seattle", "Washington", "US"),
    ("Berlin", "Berlin", "DE"),
    ("Paris", "Ile-de-France", "FR"),
];

/// 2026-03-04T00:00:00Z
const DEFAULT_START_MS: i64 = 1_772_582_400_000;

fn iso(ms: i64, out: &mut String, offset_form: bool) {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let frac = (ms.rem_euclid(1000)) * 10_000;
    let _ = write!(out, "{}.{frac:07}", t.format("%Y-%m-%dT%H:%M:%S"));
    out.push_str(if offset_form { "+00:00" } else { "Z" });
}

fn ip(rng: &mut Rng, out: &mut String) {
    let n = rng.below(4000);
    let _ = match n % 4 {
        0 => write!(out, "198.51.{}.{}", 100 + n / 400, n % 250 + 1),
        1 => write!(out, "203.0.{}.{}", 113 + n / 1000, n % 250 + 1),
        2 => write!(out, "192.0.2.{}", n % 250 + 1),
        _ => write!(out, "2001:db8:{:x}::{:x}", n / 16, n % 16 + 1),
    };
}

fn user(rng: &mut Rng) -> (String, String) {
    let n = rng.below(5000);
    let first = FIRST[(n % FIRST.len() as u64) as usize];
    let upn = format!("{first}.{n}@contoso.example");
    let mut display = first.to_string();
    if let Some(c) = display.get_mut(0..1) {
        c.make_ascii_uppercase();
    }
    (upn, format!("{display} Example{n}"))
}

fn pick_failure(rng: &mut Rng) -> &'static (u32, u64, &'static str, &'static str) {
    let total: u64 = FAILURES.iter().map(|f| f.1).sum();
    let mut r = rng.below(total);
    for f in FAILURES {
        if r < f.1 {
            return f;
        }
        r -= f.1;
    }
    &FAILURES[0]
}

fn azure_record(rng: &mut Rng, ms: i64, out: &mut String) {
    let failure = if rng.below(100) < 20 { Some(pick_failure(rng)) } else { None };
    let code = failure.map_or(0, |f| f.0);
    let tenant = if rng.below(10) == 0 { TENANTS[1] } else { TENANTS[0] };
    let (app_id, app_name) = *rng.pick(APPS);
    let (upn, display) = user(rng);
    let mut addr = String::new();
    ip(rng, &mut addr);
    let mut corr = String::new();
    rng.uuid(&mut corr);
    let mut id = String::new();
    rng.uuid(&mut id);
    let mut user_id = String::new();
    rng.uuid(&mut user_id);
    let mut req = String::new();
    rng.uuid(&mut req);
    let mut pol = String::new();
    rng.uuid(&mut pol);
    let (city, state, country) = *rng.pick(CITIES);
    out.push_str("{\"time\":\"");
    iso(ms, out, false);
    let _ = write!(
        out,
        "\",\"resourceId\":\"/tenants/{tenant}/providers/Microsoft.aadiam\",\"operationName\":\"Sign-in activity\",\
         \"operationVersion\":\"1.0\",\"category\":\"SignInLogs\",\"tenantId\":\"{tenant}\",\"resultType\":\"{code}\",\
         \"resultSignature\":\"None\","
    );
    if let Some(f) = failure {
        let _ = write!(out, "\"resultDescription\":\"{}\",", f.2);
    }
    let _ = write!(
        out,
        "\"durationMs\":0,\"callerIpAddress\":\"{addr}\",\"correlationId\":\"{corr}\",\"identity\":\"{display}\",\
         \"Level\":4,\"location\":\"{country}\",\"properties\":{{\"id\":\"{id}\",\"createdDateTime\":\""
    );
    iso(ms, out, true);
    let _ = write!(
        out,
        "\",\"userDisplayName\":\"{display}\",\"userPrincipalName\":\"{upn}\",\"userId\":\"{user_id}\",\
         \"appId\":\"{app_id}\",\"appDisplayName\":\"{app_name}\",\"ipAddress\":\"{addr}\",\"status\":{{\"errorCode\":{code}"
    );
    if let Some(f) = failure {
        let _ = write!(out, ",\"failureReason\":\"{}\",\"additionalDetails\":\"{}\"", f.2, f.3);
    }
    let _ = write!(
        out,
        "}},\"clientAppUsed\":\"{}\",\"userAgent\":\"Kandji Passport/2.4 CFNetwork/1494.0.7 Darwin/23.4.0\",\
         \"deviceDetail\":{{\"deviceId\":\"\",\"displayName\":\"mac-{:04}\",\"operatingSystem\":\"MacOs\",\"browser\":\"\"}},\
         \"location\":{{\"city\":\"{city}\",\"state\":\"{state}\",\"countryOrRegion\":\"{country}\",\
         \"geoCoordinates\":{{\"latitude\":40.0,\"longitude\":-89.0}}}},\"correlationId\":\"{corr}\",\
         \"conditionalAccessStatus\":\"{}\",\"appliedConditionalAccessPolicies\":[{{\"id\":\"{pol}\",\
         \"displayName\":\"Require MFA for all users\",\"enforcedGrantControls\":[\"Mfa\"],\"enforcedSessionControls\":[],\
         \"result\":\"{}\"}},{{\"id\":\"{pol}\",\"displayName\":\"Require compliant device\",\"enforcedGrantControls\":[\"RequireCompliantDevice\"],\
         \"enforcedSessionControls\":[],\"result\":\"notApplied\"}}],\"originalRequestId\":\"{req}\",\"isInteractive\":true,\
         \"tokenIssuerName\":\"\",\"tokenIssuerType\":\"AzureAD\",\"authenticationProtocol\":\"{}\",\
         \"authenticationRequirement\":\"singleFactorAuthentication\",\"processingTimeInMilliseconds\":{},\
         \"riskDetail\":\"none\",\"riskLevelAggregated\":\"none\",\"riskLevelDuringSignIn\":\"none\",\"riskState\":\"none\",\
         \"riskEventTypes_v2\":[],\"resourceDisplayName\":\"Microsoft Graph\",\"resourceId\":\"00000003-0000-0000-c000-000000000000\",\
         \"resourceTenantId\":\"{tenant}\",\"homeTenantId\":\"{tenant}\",\"authenticationDetails\":[{{\"authenticationStepDateTime\":\"",
        rng.pick(CLIENTS),
        rng.below(2000),
        if code == 53003 { "failure" } else { "notApplied" },
        if code == 50076 { "failure" } else { "notApplied" },
        rng.pick(PROTOCOLS),
        20 + rng.below(400),
    );
    iso(ms, out, true);
    let _ = writeln!(
        out,
        "\",\"authenticationMethod\":\"Password\",\"succeeded\":{},\"authenticationStepResultDetail\":\"{}\"}}],\
         \"authenticationProcessingDetails\":[{{\"key\":\"Legacy TLS (TLS 1.0, 1.1, 3DES)\",\"value\":\"False\"}},\
         {{\"key\":\"Is CAE Token\",\"value\":\"False\"}}],\"networkLocationDetails\":[],\"mfaDetail\":{{}}}}}}",
        code == 0,
        if code == 50126 { "Invalid username or password" } else { "Correct password" },
    );
}

const CHATTER: &[(&str, &str, &str)] = &[
    ("Default", "ui", "Presenting Passport login window"),
    ("Info", "auth", "Starting ROPC authentication for {u}"),
    (
        "Debug",
        "network",
        "POST https://login.microsoftonline.com/9c3e2d1a-4b5f-4e6a-8c7d-0f1e2d3c4b5a/oauth2/v2.0/token",
    ),
    ("Debug", "network", "Token endpoint responded with status 200 in 212 ms"),
    ("Default", "auth", "Authentication succeeded for {u}"),
    ("Info", "sync", "Local account password synchronised with the identity provider"),
    ("Debug", "ui", "Rendering login window background image"),
    ("Info", "keychain", "Stored refresh token in the system keychain"),
    ("Debug", "config", "Loaded configuration profile io.kandji.passport (version 14)"),
    ("Default", "ui", "Showing menu bar extra"),
];

fn passport_failure(rng: &mut Rng, ms: i64, upn: &str) -> (String, &'static str) {
    let f = loop {
        let f = pick_failure(rng);
        if f.0 != 50140 {
            break f;
        }
    };
    let mut corr = String::new();
    rng.uuid(&mut corr);
    let mut trace = String::new();
    rng.uuid(&mut trace);
    let mut ts = String::new();
    iso(ms, &mut ts, false);
    let oauth = match f.0 {
        50076 | 50074 | 50158 | 53003 => "interaction_required",
        7000218 | 700016 => "invalid_client",
        _ => "invalid_grant",
    };
    let _ = upn;
    let msg = format!(
        "Token request failed: {{\"error\":\"{oauth}\",\"error_description\":\"AADSTS{}: {}\\r\\nTrace ID: {trace}\\r\\nCorrelation ID: {corr}\\r\\nTimestamp: {ts}\",\"error_codes\":[{}],\"timestamp\":\"{ts}\",\"trace_id\":\"{trace}\",\"correlation_id\":\"{corr}\",\"error_uri\":\"https://login.microsoftonline.com/error?code={}\"}}",
        f.0, f.2, f.0, f.0
    );
    (msg, "Error")
}

fn local_ts(ms: i64, out: &mut String) {
    // Pacific standard time, as a Mac in the example logs writes it.
    let t = chrono::DateTime::from_timestamp_millis(ms - 8 * 3_600_000).unwrap_or_default();
    let _ = write!(out, "{}.{:06}-0800", t.format("%Y-%m-%d %H:%M:%S"), ms.rem_euclid(1000) * 1000);
}

fn passport_line(rng: &mut Rng, ms: i64, ndjson: bool, out: &mut String) {
    let (upn, _) = user(rng);
    let (message, kind, category) = if rng.below(100) < 5 {
        let (m, k) = passport_failure(rng, ms, &upn);
        (m, k, "auth")
    } else {
        let (k, c, m) = *rng.pick(CHATTER);
        (m.replace("{u}", &upn), k, c)
    };
    let host = rng.below(300);
    let mut ts = String::new();
    local_ts(ms, &mut ts);
    if ndjson {
        // The message is JSON text inside a JSON string: escape quotes and backslashes.
        let escaped = message.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            out,
            "{{\"traceID\": 0, \"eventType\": \"logEvent\", \"source\": null, \"formatString\": \"%{{public}}s\", \
             \"activityIdentifier\": 0, \"bootUUID\": \"6B1F7A7E-3C1D-4E2B-9A0F-5D4C3B2A1908\", \
             \"processImagePath\": \"/System/Library/Frameworks/Security.framework/Versions/A/MachServices/SecurityAgent.bundle/Contents/MacOS/SecurityAgent\", \
             \"processImageUUID\": \"0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9\", \
             \"senderImagePath\": \"/Library/Security/SecurityAgentPlugins/KandjiPassport.bundle/Contents/MacOS/KandjiPassport\", \
             \"senderImageUUID\": \"1B2C3D4E-5F60-4172-8394-B5C6D7E8F901\", \"senderProgramCounter\": 123456, \
             \"parentActivityIdentifier\": 0, \"processID\": 612, \"timezoneName\": \"\", \"timestamp\": \"{ts}\", \
             \"messageType\": \"{kind}\", \"category\": \"{category}\", \"subsystem\": \"io.kandji.passport\", \
             \"eventMessage\": \"{escaped}\", \"threadID\": {}, \"machTimestamp\": {}}}",
            9000 + host,
            rng.next() >> 20
        );
    } else {
        let _ = writeln!(
            out,
            "{ts}  mac-lab-{host:03} SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:{category}] {message}"
        );
    }
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct RefStatus {
    #[serde(rename = "errorCode")]
    error_code: Option<u32>,
    #[serde(rename = "failureReason")]
    failure_reason: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct RefProps {
    id: Option<String>,
    #[serde(rename = "userPrincipalName")]
    upn: Option<String>,
    #[serde(rename = "appId")]
    app_id: Option<String>,
    #[serde(rename = "appDisplayName")]
    app_name: Option<String>,
    #[serde(rename = "ipAddress")]
    ip: Option<String>,
    status: Option<RefStatus>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct RefRecord {
    time: Option<String>,
    #[serde(rename = "resultType")]
    result_type: Option<String>,
    #[serde(rename = "eventMessage")]
    event_message: Option<String>,
    timestamp: Option<String>,
    properties: Option<RefProps>,
}

fn parse_reference(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let started = Instant::now();
    let (mut n, mut failures, mut errors) = (0u64, 0u64, 0u64);
    for line in reader.split(b'\n') {
        let line = line.map_err(|e| e.to_string())?;
        match serde_json::from_slice::<RefRecord>(&line) {
            Ok(r) => {
                n += 1;
                if r.result_type.as_deref().is_some_and(|c| c != "0")
                    || r.event_message.as_deref().is_some_and(|m| m.contains("AADSTS"))
                {
                    failures += 1;
                }
            }
            Err(_) => errors += 1,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"records\":{n},\"non_success\":{failures},\"errors\":{errors},\"seconds\":{secs:.3},\"records_per_s\":{:.0}}}",
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn generate(kind: &str, n: u64, out: &Path, seed: u64, start_ms: i64) -> Result<(), String> {
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xA5A5);
    let mut buf = String::with_capacity(8192);
    let mut ms = start_ms;
    for _ in 0..n {
        buf.clear();
        // ~20 ms apart on average: 1 M records span about 5.5 hours.
        ms += rng.below(40) as i64;
        match kind {
            "azure" => azure_record(&mut rng, ms, &mut buf),
            "passport-ndjson" => passport_line(&mut rng, ms, true, &mut buf),
            _ => passport_line(&mut rng, ms, false, &mut buf),
        }
        w.write_all(buf.as_bytes()).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

async fn seed_store(db: &Path, incidents: u64, events: u64) -> Result<(), String> {
    // Migrate through the daemon's own code so the schema is exactly the real one.
    let store = passportd::store::Store::open(db).await.map_err(|e| e.to_string())?;
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.map_err(|e| e.to_string())?;
    let run = |sql: String| {
        let pool = pool.clone();
        async move { sqlx::query(&sql).execute(&pool).await.map(|_| ()).map_err(|e| e.to_string()) }
    };
    run("PRAGMA journal_mode=WAL".into()).await?;
    run("PRAGMA synchronous=OFF".into()).await?;
    let start = DEFAULT_START_MS;
    run(format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {incidents})
         INSERT INTO incidents (fingerprint, category, code, app, tenant, entry_id, title, severity, status,
            first_seen, last_seen, event_count, users_affected, sources, remediation, opened_at, kind, resolved_at)
         SELECT 'fp-' || x, CASE x % 4 WHEN 0 THEN 'invalid_credentials' WHEN 1 THEN 'mfa_required'
                WHEN 2 THEN 'conditional_access_block' ELSE 'account_locked' END,
            50126, 'Kandji Passport', 'tenant', 'aadsts-50126', 'Wrong password', 'medium',
            CASE WHEN x % 10 = 0 THEN 'open' ELSE 'resolved' END,
            {start} + x * 1000, {start} + x * 1000 + 60000, 1 + x % 50, 1 + x % 7, 'azure', 'Check the password',
            {start} + x * 1000, 'failure', CASE WHEN x % 10 = 0 THEN NULL ELSE {start} + x * 1000 + 3600000 END
         FROM c"
    ))
    .await?;
    // Events in slices so one statement never holds gigabytes of undo in the WAL.
    let slice = 500_000u64;
    let mut done = 0u64;
    while done < events {
        let upto = (done + slice).min(events);
        run(format!(
            "WITH RECURSIVE c(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM c WHERE x < {upto})
             INSERT INTO events (dedup_key, dedup_at, source, format, received_at, occurred_at, outcome, category, code,
                codes, user, app_id, app_name, tenant_id, ip, record_id, incident_id, fingerprint, user_key, ip_key)
             SELECT 'id:seed-' || x, {start} + x * 20, 'azure', 'azure-diagnostic', {start} + x * 20, {start} + x * 20, 'failure',
                CASE WHEN x % 5 = 0 THEN 'invalid_credentials' END, CASE WHEN x % 5 = 0 THEN 50126 END,
                CASE WHEN x % 5 = 0 THEN '50126' END, 'user' || (x % 5000) || '@contoso.example',
                '5f0c1a2b-7d3e-4c59-9a61-2b8e4f6d7c10', 'Kandji Passport', 'tenant', '198.51.100.' || (x % 250),
                'seed-' || x, CASE WHEN x % 5 = 0 THEN 1 + (x / 5) % {incidents} END,
                CASE WHEN x % 5 = 0 THEN 'fp-' || (1 + (x / 5) % {incidents}) END,
                CASE WHEN x % 5 = 0 THEN 'uk' || (x % 5000) END, CASE WHEN x % 5 = 0 THEN 'ik' || (x % 250) END
             FROM c WHERE x % 5 = 0;
             WITH RECURSIVE c(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM c WHERE x < {upto})
             INSERT INTO successes (dedup_at, dedup_key, occurred_at, source)
             SELECT {start} + x * 20, 'id:seed-' || x, {start} + x * 20, 'azure' FROM c WHERE x % 5 != 0",
            first = done + 1,
            incidents = incidents.max(1),
        ))
        .await?;
        done = upto;
    }
    run("PRAGMA wal_checkpoint(TRUNCATE)".into()).await?;
    pool.close().await;
    println!("{{\"incidents\":{incidents},\"events\":{events}}}");
    Ok(())
}

fn usage() -> String {
    "usage: passportd-corpus (azure|passport-ndjson|passport-syslog) N OUT [--seed S] [--start-ms T]\n\
     \x20      passportd-corpus parse FILE\n\
     \x20      passportd-corpus seed-store DB --incidents N --events M"
        .to_string()
}

fn flag(args: &[String], name: &str) -> Option<u64> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some(kind @ ("azure" | "passport-ndjson" | "passport-syslog")) => {
            match (args.get(1).and_then(|n| n.parse::<u64>().ok()), args.get(2)) {
                (Some(n), Some(out)) => generate(
                    kind,
                    n,
                    &PathBuf::from(out),
                    flag(&args, "--seed").unwrap_or(1),
                    flag(&args, "--start-ms").map_or(DEFAULT_START_MS, |v| v as i64),
                ),
                _ => Err(usage()),
            }
        }
        Some("parse") => match args.get(1) {
            Some(p) => parse_reference(Path::new(p)),
            None => Err(usage()),
        },
        Some("seed-store") => match args.get(1) {
            Some(db) => {
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string()).and_then(
                    |rt| {
                        rt.block_on(seed_store(
                            Path::new(db),
                            flag(&args, "--incidents").unwrap_or(100_000),
                            flag(&args, "--events").unwrap_or(5_000_000),
                        ))
                    },
                )
            }
            None => Err(usage()),
        },
        _ => Err(usage()),
    };
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(2);
    }
}
