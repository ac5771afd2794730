//! Decoder tests: the public Azure samples, every shape and trap, and property tests.

use passportd::ingest::formats::{
    decode_bytes, DecodeOptions, DecodedItem, Format, ItemKind, ParseErrorReason, RawSignIn,
    StreamDecoder,
};

fn fixture(rel: &str) -> Vec<u8> {
    let p = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn opts(format: Format) -> DecodeOptions {
    DecodeOptions {
        format,
        ..DecodeOptions::default()
    }
}

fn signins(items: &[DecodedItem]) -> Vec<&RawSignIn> {
    items
        .iter()
        .filter_map(|i| match &i.kind {
            ItemKind::SignIn(s) => Some(&**s),
            _ => None,
        })
        .collect()
}

fn errors(items: &[DecodedItem]) -> Vec<ParseErrorReason> {
    items
        .iter()
        .filter_map(|i| match &i.kind {
            ItemKind::Error(r) => Some(*r),
            _ => None,
        })
        .collect()
}

/// (file, format, records, failure codes (non-zero result codes, in order))
const SAMPLES: &[(&str, Format, usize, &[u32])] = &[
    ("elastic-integrations_signinlogs_test-signinlogs-raw.log", Format::AzureDiagnostic, 5, &[50140; 5]),
    ("elastic-integrations_signinlogs_test-signinlogs-sample.log", Format::AzureDiagnostic, 2, &[]),
    ("elastic-integrations_signinlogs_test-signinlogs.log", Format::AzureDiagnostic, 2, &[50140, 50140]),
    ("elastic-integrations_signinlogs_test-service-principal.log", Format::AzureDiagnostic, 1, &[7000222]),
    ("elastic-integrations_signinlogs_test-non-interactive-user-signin.log", Format::AzureDiagnostic, 1, &[]),
    ("elastic-integrations_signinlogs_test-alternative-time-and-duration-as-string.log", Format::AzureDiagnostic, 1, &[]),
    ("elastic-beats_azure-signinlogs_signin_log.json", Format::AzureDiagnostic, 1, &[]),
    ("msgraph-docs_beta_signin-list_example1_response.json", Format::Graph, 1, &[50126]),
    ("msgraph-docs_beta_signin-list_example2_response.json", Format::Graph, 1, &[50126]),
    ("entra-docs_azure-monitor-sign-ins-log-schema_example.json", Format::AzureDiagnostic, 1, &[50140]),
];

#[test]
fn public_samples_decode_with_expected_counts() {
    for &(file, format, n, fails) in SAMPLES {
        let bytes = fixture(&format!("azure/{file}"));
        for f in [format, Format::Auto] {
            let items = decode_bytes(&opts(f), &bytes);
            let s = signins(&items);
            assert_eq!(s.len(), n, "{file} ({f:?}): {items:#?}");
            assert_eq!(errors(&items), vec![], "{file} ({f:?})");
            let codes: Vec<u32> = s.iter().filter_map(|r| r.result_code).filter(|c| *c != 0).collect();
            assert_eq!(codes, fails, "{file} ({f:?})");
            assert!(s.iter().all(|r| r.result_code.is_some()), "{file}");
            assert!(s.iter().all(|r| r.format == format.as_str()), "{file} ({f:?}) labels");
        }
    }
}

fn example(rel: &str) -> Vec<u8> {
    let p = format!("{}/examples/logs/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// A compact, comparable summary of one item.
fn tag(i: &DecodedItem) -> String {
    match &i.kind {
        ItemKind::SignIn(s) => format!(
            "signin:{}:{}:{:?}",
            s.format,
            s.result_code.map_or("-".to_string(), |c| c.to_string()),
            s.message_codes
        ),
        ItemKind::Skipped => "skipped".into(),
        ItemKind::Redacted => "redacted".into(),
        ItemKind::Error(r) => format!("error:{}", r.as_str()),
    }
}

fn tags(items: &[DecodedItem]) -> Vec<String> {
    items.iter().map(tag).collect()
}

fn auto(bytes: &[u8]) -> Vec<DecodedItem> {
    decode_bytes(&DecodeOptions::default(), bytes)
}

#[test]
fn invalid_graph_page_is_an_error_item_not_a_panic() {
    let bytes = fixture("azure/msgraph-docs_v1.0_signin-list_example1_response_INVALID-trailing-comma.json");
    for f in [Format::Graph, Format::Auto] {
        let items = decode_bytes(&opts(f), &bytes);
        assert_eq!(tags(&items), vec!["error:invalid_json"], "{items:#?}");
    }
}

#[test]
fn time_format_fragments_are_not_signins_and_their_times_parse() {
    let bytes = fixture("azure/elastic-integrations_signinlogs_test-time-formats-corner-cases.log");
    let items = auto(&bytes);
    assert_eq!(items.len(), 11);
    assert!(items.iter().all(|i| i.kind == ItemKind::Error(ParseErrorReason::NotSignin)));
    let want = chrono::DateTime::parse_from_rfc3339("2007-01-09T09:41:00Z").unwrap();
    for line in String::from_utf8(bytes).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = passportd::ingest::formats::parse_timestamp(v["time"].as_str().unwrap(), chrono_tz::UTC)
            .unwrap_or_else(|| panic!("{line}"));
        // Every spelling names 09:41:00 UTC, give or take its fraction.
        assert_eq!(t.timestamp(), want.timestamp(), "{line}");
    }
}

#[test]
fn diagnostic_record_fields() {
    let items = auto(&fixture("azure/elastic-integrations_signinlogs_test-signinlogs.log"));
    let s = signins(&items);
    let r = s[1];
    assert_eq!(r.format, "azure-diagnostic");
    assert_eq!(r.result_code, Some(50140));
    assert_eq!(r.ip.as_deref(), Some("81.171.241.231")); // properties.ipAddress wins
    assert_eq!(r.correlation_id.as_deref(), Some("8a4de8b5-095c-47d0-a96f-a75130c61d53"));
    assert_eq!(r.record_id.as_deref(), Some("8a4de8b5-095c-47d0-a96f-a75130c61d53"));
    assert_eq!(r.tenant_id.as_deref(), Some("8a4de8b5-095c-47d0-a96f-a75130c61d53"));
    assert_eq!(r.app_name.as_deref(), Some("Office 365"));
    assert_eq!(r.client_app.as_deref(), Some("Browser"));
    assert_eq!(r.token_issuer_type.as_deref(), Some("AzureAD"));
    assert!(r.message.as_deref().unwrap().contains("Keep me signed in"));
    assert!(r.occurred_at.is_some());
    // The service principal record: tenant from `tenantId`, no user.
    let items = auto(&fixture("azure/elastic-integrations_signinlogs_test-service-principal.log"));
    let r = signins(&items)[0].clone();
    assert_eq!(r.user, None);
    assert_eq!(r.tenant_id.as_deref(), Some("1111111111-902d-4dea-8026-5a790862fede"));
    // `time` in US spelling still parses.
    let items = auto(&fixture(
        "azure/elastic-integrations_signinlogs_test-alternative-time-and-duration-as-string.log",
    ));
    let r = signins(&items)[0].clone();
    assert_eq!(r.occurred_at.unwrap().to_rfc3339(), "2025-11-14T01:48:53+00:00");
    assert_eq!(r.result_code, Some(0));
}

#[test]
fn graph_page_with_duplicate_keys() {
    let items = auto(&fixture("azure/msgraph-docs_beta_signin-list_example1_response.json"));
    let r = signins(&items)[0].clone();
    assert_eq!(r.format, "graph");
    assert_eq!(r.result_code, Some(50126));
    assert_eq!(r.user.as_deref(), Some("testaccount1@contoso.com"));
    assert_eq!(r.record_id.as_deref(), Some("1691d37b-8579-43a7-966a-0f35583c1300"));
    assert_eq!(r.auth_protocol.as_deref(), Some("oAuth2"));
    // A duplicate of a field that is read: the last non-null value wins, the record survives.
    let page = br#"{"value":[{"id":"a","userPrincipalName":"x@contoso.example","status":{"errorCode":50076},"userPrincipalName":"y@contoso.example","createdDateTime":"2026-03-04T08:00:00Z","id":"b","appId":null,"appId":"app"}]}"#;
    let r = signins(&auto(page))[0].clone();
    assert_eq!(r.user.as_deref(), Some("y@contoso.example"));
    assert_eq!(r.record_id.as_deref(), Some("b"));
    assert_eq!(r.app_id.as_deref(), Some("app"));
    assert_eq!(r.result_code, Some(50076));
}

#[test]
fn example_entra_blob() {
    let items = auto(&example("entra/PT1H.json"));
    let s = signins(&items);
    assert_eq!(items.len(), 30);
    assert_eq!(s.len(), 30);
    let mut ids: Vec<_> = s.iter().map(|r| r.record_id.clone().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30);
    let count = |c: u32| s.iter().filter(|r| r.result_code == Some(c)).count();
    assert!(count(50076) >= 3 && count(50126) >= 3 && count(7000218) >= 1 && count(53003) >= 1);
    assert!(count(50053) >= 1 && count(50140) >= 1 && count(0) >= 5);
    assert!(s.iter().any(|r| r.result_code == Some(50126)
        && r.token_issuer_type.as_deref() == Some("ADFederationServices")));
    assert!(s
        .iter()
        .filter(|r| r.app_name.as_deref() == Some("Kandji Passport"))
        .all(|r| r.auth_protocol.as_deref() == Some("ropc")));
}

#[test]
fn example_passport_ndjson() {
    let items = decode_bytes(&opts(Format::Passport), &example("passport/passport.ndjson"));
    let auto_items = auto(&example("passport/passport.ndjson"));
    assert_eq!(tags(&items).len(), tags(&auto_items).len());
    assert_eq!(items[0].kind, ItemKind::Skipped, "banner");
    assert_eq!(items.iter().filter(|i| i.kind == ItemKind::Redacted).count(), 1);
    let s = signins(&items);
    let codes: Vec<Vec<u32>> = s.iter().filter(|r| r.result_code.is_none()).map(|r| r.message_codes.clone()).collect();
    assert_eq!(codes, vec![vec![50076], vec![50126], vec![7000218], vec![50076], vec![50126]]);
    assert_eq!(s.iter().filter(|r| r.result_code == Some(0)).count(), 2);
    let failure = s.iter().find(|r| r.message_codes == [7000218]).unwrap();
    assert_eq!(failure.oauth_error.as_deref(), Some("invalid_client"));
    assert!(failure.correlation_id.is_some());
    assert!(failure.occurred_at.is_some());
    // Correlation ids join the Mac side to Entra records.
    let entra = auto(&example("entra/PT1H.json"));
    let entra_ids: Vec<_> = signins(&entra).iter().filter_map(|r| r.correlation_id.clone()).collect();
    assert!(s
        .iter()
        .filter(|r| !r.message_codes.is_empty())
        .all(|r| entra_ids.contains(r.correlation_id.as_ref().unwrap())));
}

#[test]
fn example_passport_text_styles() {
    let items = auto(&example("passport/passport-syslog.log"));
    assert_eq!(
        tags(&items),
        vec![
            "skipped",
            "skipped",
            "signin:passport:-:[50126]",
            "skipped", // the multi-line header dump, one record
            "skipped", // loginwindow is not Passport
            "redacted",
            "signin:passport:0:[]",
        ]
    );
    let s = signins(&items);
    assert_eq!(s[0].device.as_deref(), Some("mac-lab-07"));
    assert_eq!(s[0].user, None);
    assert_eq!(s[1].user.as_deref(), Some("erin@contoso.example"));
    assert!(items[3].end_offset > items[3].start_offset + 200, "continuation lines belong to it");

    let items = auto(&example("passport/passport-compact.log"));
    assert_eq!(
        tags(&items),
        vec![
            "skipped",
            "skipped",
            "skipped",
            "signin:passport:-:[7000218]",
            "skipped",
            "signin:passport:-:[50076]",
        ]
    );
    let s = signins(&items);
    assert!(s[0].correlation_id.is_some());
    assert_eq!(s[1].oauth_error.as_deref(), Some("interaction_required"));
}
