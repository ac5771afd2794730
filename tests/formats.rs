//! Decoder tests: the public Azure samples, every shape and trap, and property tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use passportd::ingest::formats::{
    decode_bytes, DecodeOptions, DecodedItem, Format, ItemKind, ParseErrorReason, RawSignIn, StreamDecoder,
};

fn fixture(rel: &str) -> Vec<u8> {
    let p = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn opts(format: Format) -> DecodeOptions {
    DecodeOptions { format, ..DecodeOptions::default() }
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
    (
        "elastic-integrations_signinlogs_test-alternative-time-and-duration-as-string.log",
        Format::AzureDiagnostic,
        1,
        &[],
    ),
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

/// A body cut before its envelope or array closed says so, whether the cut fell inside a
/// record (that record is the error) or between records (one error for the cut), and a
/// closed, empty one is no error.
#[test]
fn a_stream_cut_before_its_array_or_envelope_closes_is_one_error() {
    for cut in [
        b"[" as &[u8],
        b"{\"records\": [",
        b"{\"value\": [",
        b"{\"value\": [], \"x\": ",
        b"{\"records\":[{\"time\":\"2026",
        // Cut inside a record whose line ends after the cut, or blank lines follow it.
        b"[{\"id\":\"1\",\"createdDateTime\":\"2026-03-04T08:00:00Z\",\"status\":{\"errorCode\":50126}},{\"id\":\"x\",\"createdDa\n",
        b"{\"records\": [\n  {\"time\": \"2026-03-04T08:00:00Z\",\n   \"resultType\": \"50\n\n\n",
    ] {
        assert_eq!(errors(&auto(cut)), [ParseErrorReason::InvalidJson], "{}", String::from_utf8_lossy(cut));
    }
    for whole in [b"[]" as &[u8], b"{\"records\":[]}", b"{\"value\": []}\n"] {
        assert_eq!(errors(&auto(whole)), [], "{}", String::from_utf8_lossy(whole));
    }
    // Cut inside a record too long to keep: that record's error alone. Whole but too long,
    // then cut: its error, and the cut's.
    let small = DecodeOptions { max_record_bytes: 100, ..DecodeOptions::default() };
    let long = "x".repeat(300);
    let cut_inside = format!("[{{\"a\":\"{long}");
    assert_eq!(errors(&decode_bytes(&small, cut_inside.as_bytes())), [ParseErrorReason::LineTooLong]);
    let cut_after = format!("[{{\"a\":\"{long}\"}},");
    assert_eq!(
        errors(&decode_bytes(&small, cut_after.as_bytes())),
        [ParseErrorReason::LineTooLong, ParseErrorReason::InvalidJson]
    );
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
    // The sign-in's own time (`createdDateTime`), not when its log record was written
    // (`time`, here in US spelling and two and a half minutes later).
    let items =
        auto(&fixture("azure/elastic-integrations_signinlogs_test-alternative-time-and-duration-as-string.log"));
    let r = signins(&items)[0].clone();
    assert_eq!(r.occurred_at.unwrap().to_rfc3339(), "2025-11-14T01:46:16.428297500+00:00");
    assert_eq!(r.result_code, Some(0));
    // Without one, `time` in US spelling still parses.
    let r = signins(&auto(b"{\"time\":\"11/14/2025 1:48:53 AM\",\"resultType\":\"50126\"}\n"))[0].clone();
    assert_eq!(r.occurred_at.unwrap().to_rfc3339(), "2025-11-14T01:48:53+00:00");
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
    assert_eq!(items.len(), 34);
    assert_eq!(s.len(), 34);
    let mut ids: Vec<_> = s.iter().map(|r| r.record_id.clone().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 34);
    let count = |c: u32| s.iter().filter(|r| r.result_code == Some(c)).count();
    assert!(count(50076) >= 3 && count(50126) >= 3 && count(7000218) >= 1 && count(53003) >= 1);
    assert!(count(50053) >= 1 && count(50140) >= 1 && count(0) >= 5);
    assert!(s
        .iter()
        .any(|r| r.result_code == Some(50126) && r.token_issuer_type.as_deref() == Some("ADFederationServices")));
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
        vec!["skipped", "skipped", "skipped", "signin:passport:-:[7000218]", "skipped", "signin:passport:-:[50076]",]
    );
    let s = signins(&items);
    assert!(s[0].correlation_id.is_some());
    assert_eq!(s[1].oauth_error.as_deref(), Some("interaction_required"));
}

const REC_A: &str = r#"{"time":"2026-03-04T08:00:01Z","resultType":"50126","properties":{"id":"id-a","userPrincipalName":"a@contoso.example","status":{"errorCode":50126,"failureReason":"Error validating credentials due to invalid username or password."}}}"#;
const REC_B: &str =
    r#"{"time":"2026-03-04T08:00:02Z","resultType":"0","properties":{"id":"id-b","status":{"errorCode":0}}}"#;

#[test]
fn event_hubs_envelopes_one_line_and_pretty() {
    let one = format!("{{\"records\": [{REC_A},{REC_B}]}}\n{{\"records\":[{REC_B}]}}\n");
    let items = auto(one.as_bytes());
    assert_eq!(
        tags(&items),
        vec!["signin:azure-diagnostic:50126:[]", "signin:azure-diagnostic:0:[]", "signin:azure-diagnostic:0:[]"]
    );
    let starts: Vec<u64> = items.iter().map(|i| i.start_offset).collect();
    assert_eq!(starts[0], one.find(REC_A).unwrap() as u64);
    assert!(starts[0] < starts[1] && starts[1] < starts[2]);
    assert_eq!(&one[items[1].start_offset as usize..items[1].end_offset as usize], REC_B);

    let pretty_a = serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(REC_A).unwrap()).unwrap();
    let pretty = format!("{{\n  \"records\": [\n{pretty_a},\n{REC_B}\n  ]\n}}\n{REC_A}\n");
    let items = decode_bytes(&opts(Format::AzureDiagnostic), pretty.as_bytes());
    assert_eq!(
        tags(&items),
        vec!["signin:azure-diagnostic:50126:[]", "signin:azure-diagnostic:0:[]", "signin:azure-diagnostic:50126:[]"]
    );
    assert_eq!(items[0].line, 3);
    assert_eq!(items[2].line, pretty.lines().count() as u64);
    // An envelope whose `records` is not the first key is decoded whole.
    let late = format!("{{\"meta\":{{\"n\":2}},\"records\":[{REC_A},{REC_B}]}}\n");
    assert_eq!(auto(late.as_bytes()).len(), 2);
}

#[test]
fn arrays_and_pretty_objects() {
    let arr = format!("[\n  {REC_A},\n  {REC_B}\n]\n{REC_B}\n");
    assert_eq!(auto(arr.as_bytes()).len(), 3);
    let arr = format!("[{REC_A},{REC_B},42,\"x\"] trailing\n");
    assert_eq!(
        tags(&auto(arr.as_bytes())),
        vec![
            "signin:azure-diagnostic:50126:[]",
            "signin:azure-diagnostic:0:[]",
            "error:not_signin",
            "error:not_signin"
        ]
    );
    let obj = serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(REC_A).unwrap()).unwrap();
    let two = format!("{obj}\n{obj}\n");
    let items = auto(two.as_bytes());
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].start_offset as usize, obj.len() + 1);
    assert_eq!(items[1].line, obj.lines().count() as u64 + 1);
}

#[test]
fn loganalytics_json_rows_and_array() {
    let row = r#"{"TimeGenerated":"2026-03-04T08:15:02.1234567Z","ResultType":"50076","ResultDescription":"Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access 'Kandji Passport'.","UserPrincipalName":"a@contoso.example","AppDisplayName":"Kandji Passport","AppId":"app-1","ClientAppUsed":"Mobile Apps and Desktop clients","IPAddress":"192.0.2.1","Status":"{\"errorCode\":50076,\"additionalDetails\":\"MFA required in Azure AD\"}","CorrelationId":"c-1","Id":"id-1","TokenIssuerType":"AzureAD","AuthenticationProtocol":"ropc","TenantId":"t-1","Type":"SigninLogs"}"#;
    let row2 = r#"{"TimeGenerated":"2026-03-04T08:16:02Z","ResultType":0,"Status":{"errorCode":0},"Id":"id-2"}"#;
    let text = format!("{row}\r\n{row2}\r\n");
    let items = decode_bytes(&opts(Format::AzureLoganalytics), text.as_bytes());
    assert_eq!(tags(&items), vec!["signin:azure-loganalytics:50076:[]", "signin:azure-loganalytics:0:[]"]);
    let r = signins(&items)[0].clone();
    assert_eq!(r.user.as_deref(), Some("a@contoso.example"));
    assert_eq!(r.ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(r.record_id.as_deref(), Some("id-1"));
    assert_eq!(r.tenant_id, None, "Log Analytics' `TenantId` is the workspace, not the tenant");
    assert_eq!(r.auth_protocol.as_deref(), Some("ropc"));
    // `AADTenantId`, when present, is the directory.
    let with_aad = row.replace(r#""TenantId":"t-1""#, r#""TenantId":"workspace-1","AADTenantId":"t-1""#);
    let items = decode_bytes(&opts(Format::AzureLoganalytics), with_aad.as_bytes());
    assert_eq!(signins(&items)[0].tenant_id.as_deref(), Some("t-1"));
    assert!(r.message.unwrap().contains("multi-factor"));
    let arr = format!("[{row},\n{row2}]");
    assert_eq!(
        tags(&auto(arr.as_bytes())),
        vec!["signin:azure-loganalytics:50076:[]", "signin:azure-loganalytics:0:[]"]
    );
}

const CSV: &str = "\u{feff}TimeGenerated [UTC],ResultType,ResultDescription,UserPrincipalName,AppDisplayName,AppId,IPAddress,Status,CorrelationId,Id,AuthenticationProtocol\r\n\
\"3/4/2026, 8:15:02.123 AM\",50126,\"Error validating credentials due to invalid username or password.\",a@contoso.example,Kandji Passport,app-1,192.0.2.1,\"{\"\"errorCode\"\":50126,\r\n\"\"failureReason\"\":\"\"Error validating credentials\"\"}\",c-1,id-1,ropc\r\n\
2026-03-04T08:16:00Z,0,,b@contoso.example,Kandji Passport,app-1,192.0.2.2,\"{\"\"errorCode\"\":0}\",c-2,id-2,ropc\r\n\
too,few\r\n";

#[test]
fn loganalytics_csv_export() {
    let items = auto(CSV.as_bytes());
    assert_eq!(
        tags(&items),
        vec!["skipped", "signin:azure-loganalytics:50126:[]", "signin:azure-loganalytics:0:[]", "error:invalid_csv"]
    );
    let s = signins(&items);
    assert_eq!(s[0].occurred_at.unwrap().to_rfc3339(), "2026-03-04T08:15:02.123+00:00");
    assert_eq!(s[0].message.as_deref(), Some("Error validating credentials"));
    assert_eq!(s[0].record_id.as_deref(), Some("id-1"));
    assert_eq!(s[1].user.as_deref(), Some("b@contoso.example"));
    assert_eq!(items[2].line, 4, "the quoted newline counts");
}

#[test]
fn passport_styles_and_rules() {
    let ndjson = concat!(
        "Filtering the log data using \"senderImagePath CONTAINS \\\"KandjiPassport\\\"\"\n",
        r#"{"timestamp":"2026-03-04 08:15:02.123456-0800","messageType":"Error","subsystem":"io.kandji.passport","category":"auth","eventMessage":"{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70002: Error validating credentials. AADSTS50126: Error validating credentials due to invalid username or password.\\r\\nTrace ID: x\\r\\nCorrelation ID: 11111111-2222-3333-4444-555555555555\",\"error_codes\":[70002,50126],\"correlation_id\":\"11111111-2222-3333-4444-555555555555\"}"}"#,
        "\n",
        r#"{"timestamp":"2026-03-04 08:15:03.000000-0800","messageType":"Default","subsystem":"com.apple.opendirectoryd","eventMessage":"authentication failed for record"}"#,
        "\n",
        r#"{"timestamp":"2026-03-04 08:15:04.000000-0800","messageType":"Default","senderImagePath":"/Library/Security/SecurityAgentPlugins/KandjiPassport.bundle/Contents/MacOS/KandjiPassport","eventMessage":"Refreshing token cache"}"#,
        "\n",
        r#"{"timestamp":"2026-03-04 08:15:05.000000-0800","messageType":"Default","subsystem":"io.kandji.passport","eventMessage":"User alice@contoso.example successfully authenticated"}"#,
        "\n",
        r#"{"timestamp":"2026-03-04 08:15:06.000000-0800","messageType":"Default","subsystem":"io.kandji.passport","eventMessage":"<private>"}"#,
        "\n",
        r#"{"timestamp":"2026-03-04 08:15:07.000000-0800","messageType":"Info","subsystem":"com.apple.other","eventMessage":"AADSTS50053: locked"}"#,
        "\n",
        r#"{"timestamp":"2026-03-04 08:15:08.000000-0800","messageType":"Default","subsystem":"io.kandji.passport","eventMessage":"Sign in failed: network unreachable"}"#,
    );
    let items = decode_bytes(&opts(Format::Passport), ndjson.as_bytes());
    assert_eq!(
        tags(&items),
        vec![
            "skipped",
            "signin:passport:-:[70002, 50126]",
            "skipped",
            "skipped",
            "signin:passport:0:[]",
            "redacted",
            // Another subsystem's AADSTS line (an app's own MSAL error) is not Passport's.
            "skipped",
            "signin:passport:-:[]",
        ]
    );
    let mut any = opts(Format::Passport);
    any.passport.any_aadsts_message = true;
    assert_eq!(tags(&decode_bytes(&any, ndjson.as_bytes()))[6], "signin:passport:-:[50053]", "when asked to");
    // A record that names no sender and no subsystem is taken when it carries a code.
    let anonymous =
        br#"{"timestamp":"2026-03-04 08:15:07.000000-0800","messageType":"Info","eventMessage":"AADSTS50053: locked"}"#;
    assert_eq!(tags(&decode_bytes(&opts(Format::Passport), anonymous)), vec!["signin:passport:-:[50053]"]);
    let s = signins(&items);
    assert_eq!(s[0].oauth_error.as_deref(), Some("invalid_grant"));
    assert_eq!(s[0].correlation_id.as_deref(), Some("11111111-2222-3333-4444-555555555555"));
    assert_eq!(s[0].occurred_at.unwrap().to_rfc3339(), "2026-03-04T16:15:02.123456+00:00");
    assert_eq!(s[1].user.as_deref(), Some("alice@contoso.example"));

    // --style json: one array, streamed element by element.
    let v: Vec<serde_json::Value> = ndjson.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
    let json = serde_json::to_string_pretty(&v).unwrap();
    let items = auto(json.as_bytes());
    assert_eq!(tags(&items)[..], tags(&decode_bytes(&opts(Format::Passport), ndjson.as_bytes()))[1..]);

    // `log show` default style with its header, and a message spanning lines held until flush.
    let show = "Timestamp                       Thread     Type        Activity             PID    TTL  \n\
2026-03-04 08:15:02.123456-0800 0x26b7     Error       0x0                  612    0    SecurityAgent: (KandjiPassport) [io.kandji.passport:auth] AADSTS50076: Due to a configuration change\n\
 made by your administrator, you must use multi-factor authentication.\n";
    let opts = DecodeOptions::default();
    let mut d = StreamDecoder::new(opts);
    let mut out = Vec::new();
    d.feed(show.as_bytes(), &mut out);
    assert_eq!(tags(&out), vec!["skipped"], "the record may still grow");
    let held = d.checkpoint_offset();
    d.flush(&mut out);
    assert_eq!(tags(&out), vec!["skipped", "signin:passport:-:[50076]"]);
    assert!(d.checkpoint_offset() > held);
    match &out[1].kind {
        ItemKind::SignIn(s) => assert!(s.message.as_deref().unwrap().ends_with("multi-factor authentication.")),
        _ => unreachable!(),
    }
    // A next line still being written when the stream goes idle may continue the message:
    // the message waits for it.
    let head = "2026-03-04 08:15:02.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) \
                [io.kandji.passport:auth] AADSTS50055: The password is expired.\nTrace ID: t-1\nCorrelation ID: 1111";
    let mut d = StreamDecoder::new(DecodeOptions::default());
    let mut out = Vec::new();
    d.feed(head.as_bytes(), &mut out);
    d.flush(&mut out);
    assert!(out.is_empty(), "{:?}", tags(&out));
    d.feed(b"1111-2222-3333-4444-555555555555\n", &mut out);
    d.flush(&mut out);
    assert_eq!(tags(&out), vec!["signin:passport:-:[50055]"]);
    match &out[0].kind {
        ItemKind::SignIn(s) => {
            assert_eq!(s.correlation_id.as_deref(), Some("11111111-2222-3333-4444-555555555555"))
        }
        _ => unreachable!(),
    }
}

#[test]
fn traps() {
    // BOM, CRLF, blank lines, trailing garbage, numbers as strings and vice versa.
    let text = format!("\u{feff}\r\n{REC_A} trailing garbage\r\n\r\n\n{{\"time\":\"2026-03-04T08:00:00\",\"ResultType\":50126,\"durationMs\":\"0\",\"Level\":\"4\",\"properties\":{{}}}}\r\n");
    let items = auto(text.as_bytes());
    assert_eq!(tags(&items), vec!["signin:azure-diagnostic:50126:[]", "signin:azure-diagnostic:50126:[]"]);
    assert_eq!(items[0].start_offset, 5);
    assert_eq!(items[0].line, 2);
    assert_eq!(items[1].line, 5);
    // No final newline: held until finish.
    let mut d = StreamDecoder::new(DecodeOptions::default());
    let mut out = Vec::new();
    d.feed(REC_A.as_bytes(), &mut out);
    assert!(out.is_empty());
    assert_eq!(d.checkpoint_offset(), 0);
    d.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(d.checkpoint_offset(), REC_A.len() as u64);
    // …or until the stream goes idle (`flush`), when it is one whole JSON object: an
    // hourly blob may end without a newline and never grow again. A newline that follows
    // is blank; the next record is read once.
    let mut d = StreamDecoder::new(DecodeOptions::default());
    let mut out = Vec::new();
    d.feed(REC_A.as_bytes(), &mut out);
    d.flush(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(d.checkpoint_offset(), REC_A.len() as u64);
    d.feed(format!("\n{REC_A}\n").as_bytes(), &mut out);
    d.finish(&mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].start_offset, REC_A.len() as u64 + 1);
    // A line still being written is not a whole object, and waits.
    for part in [&REC_A[..REC_A.len() - 1], "{\"time\":\"2026-03-04T08:00:00Z\"", "{\"a\":[1,"] {
        let mut d = StreamDecoder::new(DecodeOptions::default());
        let mut out = Vec::new();
        d.feed(part.as_bytes(), &mut out);
        d.flush(&mut out);
        assert!(out.is_empty(), "{part}");
        assert_eq!(d.checkpoint_offset(), 0, "{part}");
    }
    // Invalid UTF-8 outside any string, invalid JSON, unknown text.
    let bad = b"{\"time\":\"2026-03-04T08:00:00Z\",\"resultType\":\xff\xfe}\n{\"time\":\n}\nnot a log line\n";
    assert_eq!(tags(&auto(bad)), vec!["error:invalid_utf8", "error:invalid_json", "error:unknown_format"]);
    // Inside a field that is read (a name saved as Windows-1252), it reads as `?`: the
    // sign-in counts, its time and code intact, in a JSON record, a text line and a CSV row.
    let cp1252 = b"{\"time\":\"2026-03-04T08:00:00Z\",\"resultType\":\"50126\",\"identity\":\"J\xe9r\xf4me\",\
        \"properties\":{\"deviceDetail\":{\"displayName\":\"J\xe9r\xf4me\x92s Mac\"}}}\n";
    let out = auto(cp1252);
    assert_eq!(tags(&out), vec!["signin:azure-diagnostic:50126:[]"]);
    let ItemKind::SignIn(s) = &out[0].kind else { unreachable!() };
    assert_eq!(s.device.as_deref(), Some("J?r?me?s Mac"));
    let text = b"2026-03-04 08:15:02.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] AADSTS50126: Error validating credentials for J\xe9r\xf4me\n";
    assert_eq!(tags(&auto(text)), vec!["signin:passport:-:[50126]"]);
    // A message with only `time` and `category` is not a sign-in.
    assert_eq!(tags(&auto(b"{\"time\":\"x\",\"category\":\"SignInLogs\"}\n")), vec!["error:not_signin"]);
    // A time that is there but unreadable is an error, not a sign-in placed at the time it
    // was read; one readable time of the record's is enough, and a record without any
    // time is kept (it takes the time it was read).
    assert_eq!(tags(&auto(b"{\"time\":\"yesterday\",\"resultType\":\"50126\"}\n")), vec!["error:invalid_timestamp"]);
    let graph_de = br#"{"value":[{"id":"x","createdDateTime":"04.03.2026 16:15:02","status":{"errorCode":50076}}]}"#;
    assert_eq!(tags(&auto(graph_de)), vec!["error:invalid_timestamp"]);
    let both =
        b"{\"time\":\"yesterday\",\"TimeGenerated\":\"2026-03-04T16:15:02Z\",\"Id\":\"y\",\"ResultType\":\"50126\"}\n";
    assert_eq!(signins(&auto(both))[0].occurred_at.unwrap().to_rfc3339(), "2026-03-04T16:15:02+00:00");
    let r = signins(&auto(b"{\"resultType\":\"50126\",\"properties\":{\"id\":\"z\"}}\n"))[0].clone();
    assert_eq!((r.occurred_at, r.result_code), (None, Some(50126)));
    // PowerShell 5.1's ConvertTo-Json dates.
    let ps = br#"{"value":[{"id":"p","createdDateTime":"\/Date(1772640902000)\/","status":{"errorCode":50126}}]}"#;
    assert_eq!(signins(&auto(ps))[0].occurred_at.unwrap().to_rfc3339(), "2026-03-04T16:15:02+00:00");
    // A Passport record with an unreadable timestamp, too.
    let passport = br#"{"timestamp":"soon","messageType":"Error","subsystem":"io.kandji.passport","eventMessage":"AADSTS50126: Error validating credentials"}"#;
    assert_eq!(tags(&auto(passport)), vec!["error:invalid_timestamp"]);
}

#[test]
fn too_long_records_are_dropped_while_streaming() {
    let o = DecodeOptions { max_record_bytes: 64, ..DecodeOptions::default() };
    let long = format!("{{\"time\":\"{}\",\"resultType\":\"0\"}}", "x".repeat(500));
    let short = r#"{"resultType":"0"}"#;
    let text = format!("{long}\n{short}\n[{long},{short}]\n{{\"records\":[{long},{short}]}}\n");
    let mut d = StreamDecoder::new(o.clone());
    let mut out = Vec::new();
    for c in text.as_bytes().chunks(16) {
        d.feed(c, &mut out);
        assert!(d.buffered_bytes() <= 64 + 16, "never buffered whole");
    }
    d.finish(&mut out);
    let want = vec![
        "error:line_too_long",
        "signin:azure-diagnostic:0:[]",
        "error:line_too_long",
        "signin:azure-diagnostic:0:[]",
        "error:line_too_long",
        "signin:azure-diagnostic:0:[]",
    ];
    assert_eq!(tags(&out), want);
    assert_eq!(out, decode_bytes(&o, text.as_bytes()));
    // The error spans the record; a line too long for one record is read value by value,
    // and its newline after them.
    assert_eq!(out[0].end_offset, long.len() as u64);
}

/// A file mixing shapes line by line: after a Passport text line, a whole Entra record or
/// Passport `ndjson` entry on its own line is a record of its own, not a continuation of
/// that message; a token endpoint's error body on a line of its own still continues it.
#[test]
fn json_records_after_a_text_line_are_records_of_their_own() {
    let syslog = "2026-03-04 00:19:42.068157-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) \
                  [io.kandji.passport:auth] Token request failed: AADSTS50126: Error validating credentials.";
    let ndjson = r#"{"timestamp":"2026-03-04 00:19:45.000000-0800","messageType":"Error","subsystem":"io.kandji.passport","senderImagePath":"/Library/Security/SecurityAgentPlugins/KandjiPassport.bundle/Contents/MacOS/KandjiPassport","eventMessage":"AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}"#;
    let failed = "2026-03-04 00:19:50.068157-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) \
                  [io.kandji.passport:auth] Token request failed with this body:";
    let body = r#"{"error":"interaction_required","error_description":"AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication.","error_codes":[50076]}"#;
    let envelope = format!(r#"{{"records":[{REC_B}]}}"#);
    let array = format!("[{REC_B}]");
    let csv = "TimeGenerated [UTC],ResultType,Id\n2026-03-04T08:16:00Z,50126,id-csv";
    let input = format!(
        "{syslog}\n{REC_A}\n{ndjson}\n{failed}\n{body}\n{syslog}\n{envelope}\n{syslog}\n{array}\n{syslog}\n{csv}\n"
    );
    let items = auto(input.as_bytes());
    assert_eq!(
        tags(&items),
        vec![
            "signin:passport:-:[50126]",
            "signin:azure-diagnostic:50126:[]",
            "signin:passport:-:[7000218]",
            "signin:passport:-:[50076]",
            "signin:passport:-:[50126]",
            "signin:azure-diagnostic:0:[]",
            "signin:passport:-:[50126]",
            "signin:azure-diagnostic:0:[]",
            "signin:passport:-:[50126]",
            "skipped",
            "signin:azure-loganalytics:50126:[]",
        ]
    );
    // Items follow one another without overlap (an envelope's brackets belong to none).
    let mut at = 0;
    for item in &items {
        assert!(item.start_offset >= at && item.end_offset > item.start_offset, "{item:?}");
        at = item.end_offset;
    }
    assert_eq!(at, input.len() as u64);
}

/// A crash can leave a run of NULs where the lost bytes were; what the writer appends
/// after them is read.
#[test]
fn records_after_nul_padding_are_read() {
    let syslog = "2026-03-04 00:19:42.068157-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) \
                  [io.kandji.passport:auth] Token request failed: AADSTS50126: Error validating credentials.";
    let input = format!("{REC_A}\n{}{REC_B}\n{}{syslog}\n", "\0".repeat(64), "\0".repeat(9));
    assert_eq!(
        tags(&auto(input.as_bytes())),
        vec!["signin:azure-diagnostic:50126:[]", "signin:azure-diagnostic:0:[]", "signin:passport:-:[50126]"]
    );
}

/// A writer that crashed mid-line and then appended on leaves one line cut short: that
/// line is one error, and the records after it are read, fed whole or a few bytes at a time.
#[test]
fn a_line_cut_short_loses_only_itself() {
    // Cut where a value is due: the next line's `{` would be read as that value, and the
    // records after it as the rest of this object.
    let at = REC_A.find("\"properties\":").unwrap() + "\"properties\":".len();
    let cut = &REC_A[..at];
    let syslog = "2026-03-04 00:19:42.068157-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) \
                  [io.kandji.passport:auth] Token request failed: AADSTS50126: Error validating credentials.";
    let input = format!("{REC_B}\n{cut}\n{REC_A}\n{cut}\n{syslog}\n{cut}\n{REC_B}");
    let expected = vec![
        "signin:azure-diagnostic:0:[]",
        "error:invalid_json",
        "signin:azure-diagnostic:50126:[]",
        "error:invalid_json",
        // After a text line, the cut line is one more line of that message.
        "signin:passport:-:[50126]",
        "signin:azure-diagnostic:0:[]",
    ];
    assert_eq!(tags(&auto(input.as_bytes())), expected);
    for step in [1, 7, 64] {
        let mut d = StreamDecoder::new(DecodeOptions::default());
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(step) {
            d.feed(piece, &mut out);
        }
        d.finish(&mut out);
        assert_eq!(tags(&out), expected, "fed {step} bytes at a time");
    }
    // Waiting for the line after a cut one holds no more than a record may take.
    let opts = DecodeOptions { max_record_bytes: 4096, ..DecodeOptions::default() };
    let mut d = StreamDecoder::new(opts);
    let mut out = Vec::new();
    d.feed(format!("{cut}\n").as_bytes(), &mut out);
    for _ in 0..64 {
        d.feed("x".repeat(1024).as_bytes(), &mut out);
        assert!(d.buffered_bytes() <= 4096 + 2 * 1024 + cut.len() + 1, "{} bytes held", d.buffered_bytes());
    }
    // A pretty-printed object still reads as one record.
    let pretty =
        "{\"time\": \"2026-03-04T08:00:02Z\",\n  \"resultType\": \"0\",\n  \"properties\": {\"id\": \"id-p\"}\n}\n";
    assert_eq!(tags(&auto(pretty.as_bytes())), vec!["signin:azure-diagnostic:0:[]"]);
}

/// Tailing: a Passport message that ends with `:` announces its next line (the token
/// endpoint's body), which a writer may deliver in a later write; the tailer asks the
/// decoder whether it holds such a record before an idle flush.
#[test]
fn a_message_ending_with_a_colon_is_reported_open_ended() {
    let head = "2026-03-04 00:19:42.068157-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) \
                [io.kandji.passport:auth] Token request failed for attempt 2:\n";
    let body = "  {\"error\":\"interaction_required\",\"error_description\":\"AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication.\",\"error_codes\":[50076]}\n";
    let plain = "2026-03-04 00:19:43.068157-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) \
                 [io.kandji.passport:auth] Token request failed: AADSTS50126: Error validating credentials.\n";

    let mut d = StreamDecoder::new(DecodeOptions::default());
    let mut out = Vec::new();
    d.feed(head.as_bytes(), &mut out);
    assert!(out.is_empty() && d.holds_open_ended_record());
    d.feed(body.as_bytes(), &mut out);
    assert!(!d.holds_open_ended_record());
    d.flush(&mut out);
    assert_eq!(tags(&out), vec!["signin:passport:-:[50076]"]);

    let mut d = StreamDecoder::new(DecodeOptions::default());
    let mut out = Vec::new();
    d.feed(plain.as_bytes(), &mut out);
    assert!(!d.holds_open_ended_record());
    d.flush(&mut out);
    assert_eq!(tags(&out), vec!["signin:passport:-:[50126]"]);
}

/// A source's `timezone` places Passport's offset-less stamps (the compact style); Entra
/// writes UTC whether or not it says so, in JSON records and in the portal's `[UTC]` CSV.
#[test]
fn a_source_timezone_applies_to_passport_stamps_not_to_entra_times() {
    let o = DecodeOptions { default_tz: chrono_tz::America::Los_Angeles, ..DecodeOptions::default() };
    let diagnostic =
        b"{\"time\":\"2026-03-04T16:16:02.1234567\",\"resultType\":\"50126\",\"properties\":{\"id\":\"a\"}}\n";
    let csv = b"TimeGenerated [UTC],ResultType,Id\n\"3/4/2026, 4:15:02.123 PM\",50126,b\n";
    let compact = b"2026-03-04 08:15:02.123 E  SecurityAgent[612:26b7] [io.kandji.passport:auth] AADSTS50126: Error validating credentials\n";
    let at = |bytes: &[u8]| {
        decode_bytes(&o, bytes).iter().find_map(|i| match &i.kind {
            ItemKind::SignIn(s) => s.occurred_at.map(|t| t.to_rfc3339()),
            _ => None,
        })
    };
    assert_eq!(at(diagnostic).as_deref(), Some("2026-03-04T16:16:02.123456700+00:00"));
    assert_eq!(at(csv).as_deref(), Some("2026-03-04T16:15:02.123+00:00"));
    assert_eq!(at(compact).as_deref(), Some("2026-03-04T16:15:02.123+00:00"));
}

/// The times of the sign-ins `text` decodes to, in order, as RFC 3339.
fn times_of(o: &DecodeOptions, text: &str) -> Vec<String> {
    decode_bytes(o, text.as_bytes())
        .iter()
        .filter_map(|i| match &i.kind {
            ItemKind::SignIn(s) => s.occurred_at.map(|t| t.to_rfc3339()),
            _ => None,
        })
        .collect()
}

/// A compact export across a DST fall-back: its clock goes back from 01:59 to 01:00, and
/// the failure at 01:30 after that is the hour's second pass (09:30Z, not 08:30Z again,
/// which lost it as a duplicate of the first); after the repeated hour, times are plain.
#[test]
fn a_compact_export_across_a_dst_fall_back_reads_the_repeated_hour_twice() {
    let o = DecodeOptions { default_tz: chrono_tz::America::Los_Angeles, ..DecodeOptions::default() };
    let head = "SecurityAgent[612:26b7] [io.kandji.passport:auth]";
    let chatter = "SecurityAgent[612:26b7] [io.kandji.passport:ui] Presenting Passport login window";
    let export = format!(
        "Timestamp               Ty Process[PID:TID]\n\
         2026-11-01 01:30:00.000 E  {head} AADSTS50126: Error validating credentials. alice@contoso.example\n\
         2026-11-01 01:59:59.000 Df {chatter}\n\
         2026-11-01 01:00:01.000 Df {chatter}\n\
         2026-11-01 01:30:00.000 E  {head} AADSTS50126: Error validating credentials. alice@contoso.example\n\
         2026-11-01 02:10:00.000 E  {head} AADSTS50126: Error validating credentials. alice@contoso.example\n"
    );
    let times = times_of(&o, &export);
    assert_eq!(times, ["2026-11-01T08:30:00+00:00", "2026-11-01T09:30:00+00:00", "2026-11-01T10:10:00+00:00"]);
    // Entries a moment out of order are no fall-back.
    let reordered = format!(
        "2026-11-01 01:20:01.000 E  {head} AADSTS50126: a\n\
         2026-11-01 01:20:00.900 E  {head} AADSTS50126: b\n\
         2026-11-01 01:40:00.000 E  {head} AADSTS50126: c\n"
    );
    let times = times_of(&o, &reordered);
    assert_eq!(times, ["2026-11-01T08:20:01+00:00", "2026-11-01T08:20:00.900+00:00", "2026-11-01T08:40:00+00:00"]);
}

/// The Entra admin center's own download of the sign-in logs (CSV): columns named for
/// people, `Status` a word. Each row is a sign-in with its time, code, user, app and ids.
#[test]
fn the_admin_center_sign_in_download_is_read_by_its_column_names() {
    let csv = "\u{feff}Date (UTC),Request ID,User agent,Correlation ID,User ID,User,Username,User type,Application,Application ID,Resource,IP address,Location,Status,Sign-in error code,Failure reason,Client app,Authentication Protocol,Token issuer type,Resource tenant ID,Home tenant ID\r\n\
        2026-03-04T16:15:02Z,aaaa0000-0000-4000-8000-000000000001,Mozilla/5.0,c0ffee00-0000-4000-8000-000000000001,u-1,Alice Example,alice@contoso.example,Member,Kandji Passport,0d6f7c1e-2a3b-4c5d-9e8f-7a6b5c4d3e2f,Microsoft Graph,192.0.2.10,\"Seattle, Washington, US\",Failure,50076,\"Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access.\",Mobile Apps and Desktop clients,ROPC,AzureAD,9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b,9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b\r\n\
        2026-03-04T16:16:10Z,aaaa0000-0000-4000-8000-000000000002,Mozilla/5.0,c0ffee00-0000-4000-8000-000000000002,u-2,Lee Guest,lee_fabrikam.example#EXT#@contoso.onmicrosoft.com,Guest,Kandji Passport,0d6f7c1e-2a3b-4c5d-9e8f-7a6b5c4d3e2f,Microsoft Graph,192.0.2.11,\"Seattle, Washington, US\",Success,0,Other.,Mobile Apps and Desktop clients,ROPC,AzureAD,9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b,22222222-0000-4000-8000-000000000000\r\n\
        \u{feff}Request ID,Sign-in error code,Username,Date (UTC),Status\r\n\
        aaaa0000-0000-4000-8000-000000000003,50126,carol@contoso.example,2026-03-04T16:17:00Z,Failure\r\n";
    let items = auto(csv.as_bytes());
    assert_eq!(errors(&items), [], "{items:#?}");
    let rows = signins(&items);
    assert_eq!(rows.len(), 3, "a second export appended, in its own column order: {items:#?}");
    let failure = rows[0];
    assert_eq!(failure.occurred_at.map(|t| t.to_rfc3339()).as_deref(), Some("2026-03-04T16:15:02+00:00"));
    assert_eq!(failure.result_code, Some(50076));
    assert_eq!(failure.user.as_deref(), Some("alice@contoso.example"));
    assert_eq!(failure.app_id.as_deref(), Some("0d6f7c1e-2a3b-4c5d-9e8f-7a6b5c4d3e2f"));
    assert_eq!(failure.app_name.as_deref(), Some("Kandji Passport"));
    assert_eq!(failure.record_id.as_deref(), Some("aaaa0000-0000-4000-8000-000000000001"));
    assert_eq!(failure.correlation_id.as_deref(), Some("c0ffee00-0000-4000-8000-000000000001"));
    assert_eq!(failure.ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(failure.auth_protocol.as_deref(), Some("ROPC"));
    assert_eq!(failure.tenant_id.as_deref(), Some("9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"));
    assert_eq!(rows[1].result_code, Some(0));
    // A guest signs in to this directory, not to its home tenant.
    assert_eq!(rows[1].tenant_id.as_deref(), Some("9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"));
    assert_eq!((rows[2].result_code, rows[2].user.as_deref()), (Some(50126), Some("carol@contoso.example")));
}

/// `ConvertTo-Json` below the default depth writes a nested object as its type name: a
/// sign-in whose `status` is `"System.Collections.Hashtable"` has lost its result. Each
/// is a parse error, not a record passed over as no sign-in.
#[test]
fn a_sign_in_whose_status_powershell_truncated_is_an_error() {
    let page = r#"{"@odata.context":"https://graph.microsoft.com/beta/$metadata#auditLogs/signIns","value":[
 {"id":"d1","createdDateTime":"2026-03-04T10:00:00Z","userPrincipalName":"dana@contoso.example","appId":"29d9ed98-a469-4536-ade2-f981bc1d605e","status":"System.Collections.Hashtable","deviceDetail":"System.Collections.Hashtable"},
 {"id":"d2","createdDateTime":"2026-03-04T10:00:01Z","userPrincipalName":"erin@contoso.example","status":"Microsoft.Graph.PowerShell.Models.MicrosoftGraphSignInStatus"},
 {"id":"d3","createdDateTime":"2026-03-04T10:00:02Z","userPrincipalName":"finn@contoso.example","status":{"errorCode":50126}}]}"#;
    let items = auto(page.as_bytes());
    assert_eq!(errors(&items), [ParseErrorReason::InvalidJson, ParseErrorReason::InvalidJson], "{items:#?}");
    assert_eq!(signins(&items).len(), 1);
}

/// What real exports add around the records: `log show`'s closing summary object, a
/// `DeviceDetail` given as JSON text (az-cli rows, portal CSV cells), and a Log Analytics
/// row whose `TenantId` is the workspace (the Entra tenant is in `ResourceId`).
#[test]
fn export_wrappings_log_trailer_device_text_and_workspace_tenant() {
    let ndjson = concat!(
        r#"{"timestamp":"2026-03-04 08:15:02.123456-0800","messageType":"Error","subsystem":"io.kandji.passport","eventMessage":"AADSTS50126: Error validating credentials"}"#,
        "\n",
        r#"{"count":1,"finished":1}"#,
        "\n"
    );
    for format in [Format::Auto, Format::Passport] {
        assert_eq!(tags(&decode_bytes(&opts(format), ndjson.as_bytes()))[1], "skipped", "{format:?}");
    }
    let row = br#"{"TimeGenerated":"2026-03-04T16:15:02Z","Id":"r1","ResultType":"50126","TenantId":"11111111-0000-0000-0000-000000000000","ResourceId":"/tenants/9c3e2d1a-4b5f-4e6a-8c7d-0f1e2d3c4b5a/providers/Microsoft.aadiam","DeviceDetail":"{\"displayName\":\"mac-042\",\"operatingSystem\":\"MacOs\"}"}"#;
    let r = signins(&auto(row))[0].clone();
    assert_eq!(r.device.as_deref(), Some("mac-042"));
    assert_eq!(r.tenant_id.as_deref(), Some("9c3e2d1a-4b5f-4e6a-8c7d-0f1e2d3c4b5a"));
    let csv = b"TimeGenerated [UTC],Id,ResultType,TenantId,DeviceDetail\n2026-03-04T16:15:02Z,r2,50126,11111111-0000-0000-0000-000000000000,\"{\"\"displayName\"\":\"\"mac-043\"\"}\"\n";
    let r = signins(&auto(csv))[0].clone();
    assert_eq!(r.device.as_deref(), Some("mac-043"));
    assert_eq!(r.tenant_id, None, "the workspace is no tenant");
}

/// A token endpoint's error body that carries the HTTP status (`"status":400`), or other
/// members a sign-in also has a key for, printed on a line of its own within a Passport
/// text message, belongs to that message: it is not split off as an Entra record.
#[test]
fn a_token_error_body_with_a_status_continues_its_message() {
    let head = "2026-03-04 16:00:00.000001-0800  localhost SecurityAgent[612]: (KandjiPassport) \
                [io.kandji.passport:auth] Token request failed for zed@contoso.example:";
    for body in [
        r#"{"status":400,"error":"invalid_grant","error_description":"AADSTS50126: Error validating credentials due to invalid username or password.","error_codes":[50126]}"#,
        r#"{"status":"Bad Request","error":"invalid_grant","error_description":"AADSTS50126: x","error_codes":[50126]}"#,
        r#"{"error":"invalid_grant","error_description":"AADSTS50126: x","error_codes":[50126],"properties":{"retry":false},"value":[1]}"#,
    ] {
        let items = auto(format!("{head}\n{body}\n").as_bytes());
        assert_eq!(tags(&items), vec!["signin:passport:-:[50126]"], "{body}");
        let s = signins(&items);
        assert_eq!(s[0].oauth_error.as_deref(), Some("invalid_grant"), "{body}");
        assert_eq!(s[0].user.as_deref(), Some("zed@contoso.example"), "{body}");
    }
    // Entra's own shapes on such a line still start records of their own: a status
    // object alone, a Log Analytics status given as JSON text, a Graph page.
    for (line, tag) in [
        (r#"{"id":"g1","status":{"errorCode":50126}}"#, "signin:graph:50126:[]"),
        (r#"{"Status":"{\"errorCode\":50053}"}"#, "signin:graph:50053:[]"),
        (r#"{"properties":{"id":"p1","status":{"errorCode":50076}}}"#, "signin:azure-diagnostic:50076:[]"),
        (r#"{"value":[{"id":"g2","status":{"errorCode":50126}}]}"#, "signin:graph:50126:[]"),
    ] {
        let items = auto(format!("{head}\n{line}\n").as_bytes());
        assert_eq!(tags(&items)[1..], [tag.to_string()], "{line}");
    }
}

/// A multi-line Passport text message longer than `max_record_bytes` is one
/// `line_too_long` error, like its ndjson copy: not a message cut short, and its further
/// lines are not orphan records. Its head line, or one of its continuation lines, alone
/// too long gives the same; whatever the chunking, and without holding its bytes.
#[test]
fn a_too_long_text_message_is_one_error_with_all_its_lines() {
    let o = DecodeOptions { max_record_bytes: 256, ..DecodeOptions::default() };
    let head = |s: u32, text: &str| {
        format!("2026-03-04 16:00:{s:02}.000001-0800  localhost SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] {text}\n")
    };
    let lines: String = (1..=14).map(|i| format!("  response line {i} {}\n", "x".repeat(48))).collect();
    let next = head(9, "Token request failed: AADSTS50076: MFA");
    let inputs = [
        // Many short continuation lines, the code on the last.
        format!("{}{lines}  AADSTS50053: The account is locked\n{next}", head(0, "Token request failed:")),
        // One continuation line alone too long, then more lines.
        format!("{}  {}\n  AADSTS50053: locked\n  more\n{next}", head(0, "Token request failed:"), "y".repeat(600)),
        // The head line alone too long, then its continuation lines.
        format!("{}  AADSTS50053: locked\n  more\n{next}", head(0, &"z".repeat(600))),
    ];
    for text in &inputs {
        let whole = decode_bytes(&o, text.as_bytes());
        assert_eq!(tags(&whole), vec!["error:line_too_long", "signin:passport:-:[50076]"], "{text}");
        assert_eq!(whole[0].end_offset, (text.len() - next.len()) as u64, "the error spans all its lines");
        for size in [1, 7, 64, 300] {
            let mut d = StreamDecoder::new(o.clone());
            let mut out = Vec::new();
            for c in text.as_bytes().chunks(size) {
                d.feed(c, &mut out);
                assert!(d.buffered_bytes() <= 2 * 256 + size, "held message and line in progress only");
            }
            d.finish(&mut out);
            assert_eq!(out, whole, "chunks of {size}");
        }
    }
    // In the passport format too (orphan lines would be skipped there, not counted).
    let o = DecodeOptions { format: Format::Passport, ..o };
    let items = decode_bytes(&o, inputs[0].as_bytes());
    assert_eq!(tags(&items), vec!["error:line_too_long", "signin:passport:-:[50076]"]);
}

/// Files that each start with a UTF-8 BOM, concatenated (`cat a b`), or a shipper's BOM'd
/// bodies: a BOM where any line starts is skipped like the one at byte 0, whatever the
/// chunking; a second portal CSV export is read under its own header, columns reordered.
#[test]
fn a_bom_starting_any_line_is_skipped() {
    const BOM: &str = "\u{feff}";
    let rec = |id: &str, code: u32| {
        format!(
            r#"{{"time":"2026-03-04T08:09:18Z","resultType":"{code}","properties":{{"id":"{id}","status":{{"errorCode":{code}}}}}}}"#
        )
    };
    let syslog = "2026-03-04 00:19:42.068157-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) \
                  [io.kandji.passport:auth] Token request failed: AADSTS50053: locked";
    let cases: [(String, Vec<&str>); 3] = [
        (
            format!("{BOM}{}\n{BOM}{}\r\n", rec("a", 50126), rec("b", 50076)),
            vec!["signin:azure-diagnostic:50126:[]", "signin:azure-diagnostic:50076:[]"],
        ),
        (
            format!("{BOM}{syslog}\n{BOM}{syslog}\n{BOM}{}\n", rec("c", 50126)),
            vec!["signin:passport:-:[50053]", "signin:passport:-:[50053]", "signin:azure-diagnostic:50126:[]"],
        ),
        (
            format!(
                "{BOM}TimeGenerated [UTC],ResultType,ResultDescription,Id,UserPrincipalName\n\
                 \"3/4/2026, 9:00:00.000 AM\",50126,d,m1,bob@x\n\
                 {BOM}Id,UserPrincipalName,ResultType,TimeGenerated [UTC],ResultDescription\n\
                 m2,carol@x,50076,\"3/4/2026, 9:00:01.000 AM\",d\n\
                 m3,dan@x,0,\"3/4/2026, 9:00:02.000 AM\",d\n"
            ),
            vec![
                "skipped",
                "signin:azure-loganalytics:50126:[]",
                "skipped",
                "signin:azure-loganalytics:50076:[]",
                "signin:azure-loganalytics:0:[]",
            ],
        ),
    ];
    for (text, want) in &cases {
        let whole = auto(text.as_bytes());
        assert_eq!(tags(&whole), *want, "{text}");
        for size in [1, 2, 5] {
            let mut d = StreamDecoder::new(DecodeOptions::default());
            let mut out = Vec::new();
            for c in text.as_bytes().chunks(size) {
                d.feed(c, &mut out);
            }
            d.finish(&mut out);
            assert_eq!(out, whole, "chunks of {size}");
        }
    }
    let s = auto(cases[2].0.as_bytes());
    let users: Vec<_> = signins(&s).iter().map(|r| r.user.clone().unwrap_or_default()).collect();
    assert_eq!(users, ["bob@x", "carol@x", "dan@x"]);
}

/// A record whose decoded field holds a lone UTF-16 surrogate escape (an emoji cut in half,
/// a stray low surrogate) is valid JSON and counts: the escape reads U+FFFD, in every
/// shape (one line, pretty-printed, an envelope's member, a Passport entry).
#[test]
fn a_lone_surrogate_escape_reads_as_a_replacement_character() {
    let rec = r#"{"time":"2026-03-04T08:09:18Z","resultType":"50126","properties":{"id":"s1","userPrincipalName":"bob\udc00@x","status":{"errorCode":50126,"failureReason":"Invalid \ud83d"}}}"#;
    let pretty = rec.replace(",\"properties\"", ",\n  \"properties\"");
    let envelope = format!(r#"{{"records":[{rec}]}}"#);
    let passport = r#"{"timestamp":"2026-03-04 08:15:02.123456-0800","messageType":"Error","subsystem":"io.kandji.passport","eventMessage":"Token request failed for ann@contoso.example \ud83d: AADSTS50053: locked"}"#;
    for text in [rec, &pretty, &envelope] {
        let items = auto(format!("{text}\n").as_bytes());
        assert_eq!(tags(&items), vec!["signin:azure-diagnostic:50126:[]"], "{text}");
        let s = signins(&items)[0];
        assert_eq!(s.user.as_deref(), Some("bob\u{fffd}@x"));
        assert_eq!(s.message.as_deref(), Some("Invalid \u{fffd}"));
    }
    let items = auto(format!("{passport}\n").as_bytes());
    assert_eq!(tags(&items), vec!["signin:passport:-:[50053]"]);
    let s = signins(&items)[0];
    assert_eq!(s.user.as_deref(), Some("ann@contoso.example"));
    assert!(s.message.as_deref().is_some_and(|m| m.contains("example \u{fffd}:")), "{s:?}");
}

/// Some shippers write several records on one line (`{…}{…}`, `{…}, {…}`). Each is a record
/// of its own, at its own offset (records without ids are keyed by it), and none is lost;
/// the rest of the line after the last one is tolerated as before (a trailing comma).
#[test]
fn several_objects_on_one_line_are_each_a_record() {
    let record = |id: &str| {
        format!(
            r#"{{"time":"2026-03-04T16:00:00Z","operationName":"Sign-in activity","category":"SignInLogs","resultType":"50126","properties":{{"id":"{id}","status":{{"errorCode":50126}}}}}}"#
        )
    };
    let input = format!("{}{}\n{} , {},\n{}\n", record("a"), record("b"), record("c"), record("d"), record("e"));
    for format in [Format::Auto, Format::AzureDiagnostic] {
        let items = decode_bytes(&opts(format), input.as_bytes());
        let ids: Vec<_> = signins(&items).iter().map(|s| s.record_id.clone().unwrap_or_default()).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "e"], "{format:?}");
        assert!(errors(&items).is_empty(), "{format:?}: {:?}", errors(&items));
        let starts: Vec<u64> = items.iter().map(|i| i.start_offset).collect();
        let mut distinct = starts.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 5, "each at its own offset: {starts:?}");
        assert_eq!(items.iter().map(|i| i.line).collect::<Vec<_>>(), [1, 1, 2, 2, 3]);
    }
}

#[test]
fn envelopes_pages_and_arrays_joined_on_one_line_are_all_read() {
    let record = |id: &str| {
        format!(
            r#"{{"time":"2026-03-04T16:00:00Z","operationName":"Sign-in activity","category":"SignInLogs","resultType":"50126","properties":{{"id":"{id}","status":{{"errorCode":50126}}}}}}"#
        )
    };
    let page = |id: &str| {
        format!(
            r#"{{"@odata.context":"x","value":[{{"id":"{id}","createdDateTime":"2026-03-04T08:01:18Z","status":{{"errorCode":50126}}}}]}}"#
        )
    };
    let envelope = |id: &str| format!(r#"{{"records":[{}]}}"#, record(id));
    let pretty = |id: &str| {
        format!(
            "{{\n  \"@odata.context\": \"x\",\n  \"value\": [\n    {{\n      \"id\": \"{id}\",\n      \"createdDateTime\": \"2026-03-04T08:01:18Z\",\n      \"status\": {{ \"errorCode\": 50126 }}\n    }}\n  ]\n}}"
        )
    };
    // What `curl >>` makes of Graph pages (no newline between bodies), shippers' envelopes
    // joined by commas, an envelope then a plain record, two arrays, pretty pages joined.
    let input = format!(
        "{}{}\n{},{}\n{} {}\n[{},{}][{}]\n{}{}\n",
        page("a"),
        page("b"),
        envelope("c"),
        envelope("d"),
        envelope("e"),
        record("f"),
        record("g"),
        record("h"),
        record("i"),
        pretty("j"),
        pretty("k"),
    );
    for format in [Format::Auto, Format::AzureDiagnostic, Format::Graph] {
        let whole = decode_bytes(&opts(format), input.as_bytes());
        let mut d = StreamDecoder::new(opts(format));
        let mut bytewise = Vec::new();
        for b in input.as_bytes() {
            d.feed(std::slice::from_ref(b), &mut bytewise);
        }
        d.finish(&mut bytewise);
        for items in [&whole, &bytewise] {
            let ids: Vec<_> = signins(items).iter().map(|s| s.record_id.clone().unwrap_or_default()).collect();
            assert_eq!(ids, ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"], "{format:?}: {items:#?}");
            assert!(errors(items).is_empty(), "{format:?}: {:?}", errors(items));
        }
    }
    // A plain record, then an array on the same line.
    let items =
        decode_bytes(&opts(Format::Auto), format!("{}[{},{}]\n", record("a"), record("b"), record("c")).as_bytes());
    assert_eq!(signins(&items).len(), 3, "{items:#?}");
    // Anything else after an envelope on its line is trailing garbage, ignored as after a
    // one-line record, however long the line.
    let items =
        decode_bytes(&opts(Format::Auto), format!("{} trailing words\n{}\n", envelope("a"), record("b")).as_bytes());
    assert_eq!(tags(&items), ["signin:azure-diagnostic:50126:[]", "signin:azure-diagnostic:50126:[]"]);
}

#[test]
fn properties_given_as_json_text_read_as_the_object() {
    let inner = r#"{"id":"s1","createdDateTime":"2026-03-04T08:01:18Z","userPrincipalName":"alice@contoso.com","appId":"aaaa","tokenIssuerType":"ADFederationServices","status":{"errorCode":50126}}"#;
    let as_object = format!(
        r#"{{"time":"2026-03-04T08:01:19Z","category":"SignInLogs","identity":"Alice Example","resultType":"50126","properties":{inner}}}"#
    );
    let as_text = format!(
        r#"{{"time":"2026-03-04T08:01:19Z","category":"SignInLogs","identity":"Alice Example","resultType":"50126","properties":{}}}"#,
        serde_json::to_string(inner).unwrap()
    );
    for format in [Format::Auto, Format::AzureDiagnostic] {
        let object = decode_bytes(&opts(format), format!("{as_object}\n").as_bytes());
        let text = decode_bytes(&opts(format), format!("{as_text}\n").as_bytes());
        let (o, t) = (signins(&object), signins(&text));
        assert_eq!((o.len(), t.len()), (1, 1), "{format:?}");
        assert_eq!(t[0], o[0], "{format:?}");
        assert_eq!(t[0].record_id.as_deref(), Some("s1"));
        assert_eq!(t[0].user.as_deref(), Some("alice@contoso.com"));
        assert_eq!(t[0].token_issuer_type.as_deref(), Some("ADFederationServices"));
    }
    // Text that is not an object is ignored, as before.
    let other = r#"{"time":"2026-03-04T08:01:19Z","category":"SignInLogs","resultType":"50126","properties":"n/a"}"#;
    assert_eq!(tags(&auto(format!("{other}\n").as_bytes())), ["signin:azure-diagnostic:50126:[]"]);
}

#[test]
fn a_line_of_many_records_longer_than_the_record_limit_reads_each() {
    let record = |id: usize| {
        format!(
            r#"{{"time":"2026-03-04T16:00:00Z","operationName":"Sign-in activity","category":"SignInLogs","resultType":"50126","properties":{{"id":"r{id}","status":{{"errorCode":50126}}}}}}"#
        )
    };
    let records: Vec<String> = (0..40).map(record).collect();
    let want: Vec<String> = (0..40).map(|i| format!("r{i}")).chain(["after".to_string()]).collect();
    let after = record(0).replace("\"r0\"", "\"after\"");
    let oversized = record(999).replace("\"r999\"", &format!("\"{}\"", "x".repeat(5000)));
    // Each record is ~180 bytes, the limit 4 KiB, each line ~7 KiB: glued, comma-joined,
    // separated by bare CRs (an old Mac editor's line ends), and with one record itself
    // too long in the middle (that one alone is an error).
    let glued = records.concat();
    let commas = records.join(", ");
    let bare_cr = records.join("\r");
    let with_oversized = format!("{}{oversized}{}", records[..20].concat(), records[20..].concat());
    // A record cut short inside a nested array, on a line longer than the limit: that
    // line is one error; the records on the lines after it are read.
    let nested: String = (0..2000).map(|k| format!("{{\"k\":{k}}},")).collect();
    let cut = format!(r#"{{"time":"2026-03-04T08:00:00Z","properties":{{"arr":[{}"#, &nested[..6000]);
    let opts = DecodeOptions { max_record_bytes: 4096, ..DecodeOptions::default() };
    let input = format!("{cut}\n{}\n{after}\n", records[..3].join("\n"));
    for items in [decode_bytes(&opts, input.as_bytes()), {
        let mut d = StreamDecoder::new(opts.clone());
        let mut out = Vec::new();
        for chunk in input.as_bytes().chunks(61) {
            d.feed(chunk, &mut out);
        }
        d.finish(&mut out);
        out
    }] {
        let ids: Vec<_> = signins(&items).iter().map(|s| s.record_id.clone().unwrap_or_default()).collect();
        assert_eq!(ids, ["r0", "r1", "r2", "after"]);
        assert_eq!(errors(&items).len(), 1, "{:?}", errors(&items));
    }
    for (name, line, errors_expected) in
        [("glued", &glued, 0), ("commas", &commas, 0), ("bare CR", &bare_cr, 0), ("one oversized", &with_oversized, 1)]
    {
        let input = format!("{line}\n{after}\n");
        let whole = decode_bytes(&opts, input.as_bytes());
        let mut d = StreamDecoder::new(opts.clone());
        let mut chunked = Vec::new();
        for chunk in input.as_bytes().chunks(97) {
            d.feed(chunk, &mut chunked);
        }
        d.finish(&mut chunked);
        for items in [&whole, &chunked] {
            let ids: Vec<_> = signins(items).iter().map(|s| s.record_id.clone().unwrap_or_default()).collect();
            assert_eq!(ids, want, "{name}");
            assert_eq!(errors(items), vec![ParseErrorReason::LineTooLong; errors_expected], "{name}");
        }
    }
}

/// A tailed file whose writer paused after the first of `{…}, {…}`: the first record is
/// read once the file is idle, and the rest of the line, comma first, is the next record.
#[test]
fn a_comma_after_a_record_read_while_idle_separates_the_next() {
    let record = |id: &str| {
        format!(
            r#"{{"time":"2026-03-04T16:00:00Z","operationName":"Sign-in activity","category":"SignInLogs","resultType":"50126","properties":{{"id":"{id}","status":{{"errorCode":50126}}}}}}"#
        )
    };
    for (sep, format) in
        [(", ", Format::Auto), (",", Format::AzureDiagnostic), (" , ", Format::Auto), (",\n", Format::Auto)]
    {
        let mut d = StreamDecoder::new(opts(format));
        let mut out = Vec::new();
        d.feed(record("a").as_bytes(), &mut out);
        d.flush(&mut out);
        assert_eq!(signins(&out).len(), 1, "read once idle");
        d.feed(format!("{sep}{}\n{}\n", record("b"), record("c")).as_bytes(), &mut out);
        d.finish(&mut out);
        let ids: Vec<_> = signins(&out).iter().map(|s| s.record_id.clone().unwrap_or_default()).collect();
        assert_eq!(ids, ["a", "b", "c"], "{sep:?}");
        assert!(errors(&out).is_empty(), "{sep:?}: {:?}", errors(&out));
    }
}

/// Dashes inside a message (a response body framed by rules) are the message's; the rule
/// before `log show`'s closing counts ends it. syslogd's "last message repeated" note is
/// not part of the message before it, which reads as its other copies do.
#[test]
fn rules_inside_a_message_and_syslogd_repeat_notes() {
    let head =
        "2026-03-04 00:19:42.068157-0800  mac-lab-07 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth]";
    let rule = "-".repeat(40);
    let body = r#"{"error":"invalid_grant","error_description":"AADSTS50076: you must use multi-factor authentication.","error_codes":[50076],"correlation_id":"ae658f33-fe3b-490b-93f4-48b3a5aa3c81"}"#;
    let framed = format!(
        "{head} Token request failed. Response body:\n{rule}\n{body}\n{rule}\n{head} Presenting Passport login window\n{rule}\nLog      - Default:          2, Info:                0, Debug:             0, Error:          0, Fault:          0\n"
    );
    let opts = opts(Format::Passport);
    let whole = decode_bytes(&opts, framed.as_bytes());
    let mut d = StreamDecoder::new(opts.clone());
    let mut bytewise = Vec::new();
    for b in framed.as_bytes() {
        d.feed(std::slice::from_ref(b), &mut bytewise);
    }
    d.finish(&mut bytewise);
    for items in [&whole, &bytewise] {
        let s = signins(items);
        assert_eq!(s.len(), 1, "{items:#?}");
        assert_eq!(s[0].correlation_id.as_deref(), Some("ae658f33-fe3b-490b-93f4-48b3a5aa3c81"));
        assert!(s[0].message.as_deref().is_some_and(|m| m.ends_with(&rule)), "{:?}", s[0].message);
        assert!(errors(items).is_empty(), "{:?}", errors(items));
    }
    // Tailed and idle after a rule whose next line is not written: the message is read.
    let mut d = StreamDecoder::new(opts.clone());
    let mut idle = Vec::new();
    d.feed(
        format!("{head} Token request failed: AADSTS50076: you must use multi-factor authentication\n{rule}\n")
            .as_bytes(),
        &mut idle,
    );
    d.flush(&mut idle);
    assert_eq!(signins(&idle).len(), 1, "{idle:#?}");
    // The same failure with and without syslogd's note after it reads the same.
    let line = format!("{head} Token request failed: AADSTS50076: you must use multi-factor authentication\n");
    let noted = format!("{line}--- last message repeated 1 time ---\n{head} Presenting Passport login window\n");
    let plain = signins(&decode_bytes(&opts, line.as_bytes()))[0].message.clone();
    let items = decode_bytes(&opts, noted.as_bytes());
    assert_eq!(signins(&items)[0].message, plain);
    assert!(errors(&items).is_empty());
}

/// A file in UTF-16 (Windows PowerShell 5.1's `>` writes one) is one `utf16` error for the
/// whole file, not a parse error per line.
#[test]
fn a_utf16_file_is_one_error() {
    let text = format!("[\r\n  {REC_A},\r\n  {REC_B}\r\n]\r\n");
    for bom_first in [true, false] {
        let units: Vec<u16> = text.encode_utf16().collect();
        let mut bytes = if bom_first { vec![0xFF, 0xFE] } else { vec![0xFE, 0xFF] };
        for u in units {
            bytes.extend(if bom_first { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        let whole = decode_bytes(&DecodeOptions::default(), &bytes);
        assert_eq!(tags(&whole), ["error:utf16"]);
        let mut d = StreamDecoder::new(DecodeOptions::default());
        let mut out = Vec::new();
        for b in &bytes {
            d.feed(std::slice::from_ref(b), &mut out);
        }
        d.finish(&mut out);
        assert_eq!(out, whole);
        // Appended to later, it is still passed over.
        let mut d = StreamDecoder::resume(DecodeOptions::default(), d.checkpoint_offset(), &d.resume_state());
        let mut more = Vec::new();
        d.feed(&bytes[2..], &mut more);
        d.finish(&mut more);
        assert!(more.is_empty(), "{more:?}");
    }
}

/// A restart in the middle of a line too long for one record (its records read value by
/// value), or in the middle of trailing garbage: resuming from the checkpoint reads each
/// record once, as reading it in one go does.
#[test]
fn a_restart_inside_a_long_line_of_records_reads_each_once() {
    let record = |id: usize| {
        format!(
            r#"{{"time":"2026-03-04T16:00:00Z","operationName":"Sign-in activity","category":"SignInLogs","resultType":"50126","properties":{{"id":"r{id}","status":{{"errorCode":50126}}}}}}"#
        )
    };
    let long: String = (0..40).map(record).collect::<Vec<_>>().join(",");
    let input = format!("{long} and some garbage {}\n{}\n", "x".repeat(300), record(99));
    let opts = DecodeOptions { max_record_bytes: 4096, ..DecodeOptions::default() };
    let ids = |items: &[DecodedItem]| -> Vec<String> {
        signins(items).iter().map(|s| s.record_id.clone().unwrap_or_default()).collect()
    };
    let whole = ids(&decode_bytes(&opts, input.as_bytes()));
    assert_eq!(whole.len(), 41);
    for cut in (100..input.len()).step_by(331) {
        let mut first = StreamDecoder::new(opts.clone());
        let mut before = Vec::new();
        first.feed(&input.as_bytes()[..cut], &mut before);
        let (offset, state) = (first.checkpoint_offset(), first.resume_state());
        let mut second = StreamDecoder::resume(opts.clone(), offset, &state);
        let mut after = Vec::new();
        second.feed(&input.as_bytes()[offset as usize..], &mut after);
        second.finish(&mut after);
        let mut both = ids(&before);
        both.extend(ids(&after));
        assert_eq!(both, whole, "cut at {cut}, resumed at {offset} with {state:?}");
    }
}
