//! The catalogue and classifier against the code table, the Kandji article, operator files
//! and hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use passportd::classify::{
    extract_codes, Catalogue, CatalogueError, Classification, Classifier, ClassifyInput, MatchedBy, Severity,
    SharedClassifier,
};
use passportd::event::{Category, Outcome};
use proptest::prelude::*;

fn shipped() -> Classifier {
    Classifier::new(Arc::new(Catalogue::from_shipped().unwrap()), Vec::new())
}

fn classify(c: &Classifier, msg: &str) -> Classification {
    c.classify(&ClassifyInput::message(msg))
}

fn body(code: u32, text: &str) -> String {
    format!(
        r#"{{"error":"invalid_grant","error_description":"AADSTS{code}: {text}\r\nTrace ID: 0b5a2c1e-7d2f-4a8e-9b1c-2f0d4e6a8b00\r\nCorrelation ID: 6f1e9d2a-3c4b-4e5f-8a7b-1c2d3e4f5a6b\r\nTimestamp: 2026-03-04 16:15:02Z","error_codes":[{code}],"timestamp":"2026-03-04 16:15:02Z","trace_id":"0b5a2c1e-7d2f-4a8e-9b1c-2f0d4e6a8b00","correlation_id":"6f1e9d2a-3c4b-4e5f-8a7b-1c2d3e4f5a6b"}}"#
    )
}

fn tsv_rows() -> Vec<(u32, String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aadsts-codes.tsv");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].parse().unwrap(), f[2].to_owned(), f[4].to_owned())
        })
        .collect()
}

fn write_temp(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn every_tsv_code_classifies_to_its_category() {
    let c = shipped();
    let rows = tsv_rows();
    assert_eq!(rows.len(), 357);
    let listed = c.catalogue().codes();
    for (code, category, _) in &rows {
        assert!(listed.contains(code), "code {code} missing from the catalogue");
        let by_record = c.classify(&ClassifyInput { result_code: Some(*code), ..ClassifyInput::default() });
        if category == "success" {
            assert_eq!(by_record.outcome, Outcome::Success, "code {code}");
            continue;
        }
        assert_eq!(by_record.category.as_str(), category, "code {code} by result code");
        assert_eq!(by_record.code, Some(*code));
        assert_eq!(by_record.matched_by, Some(MatchedBy::Code));
        let expected_outcome =
            if category == "interrupt_informational" { Outcome::Interrupt } else { Outcome::Failure };
        assert_eq!(by_record.outcome, expected_outcome, "code {code}");
        let by_text = classify(&c, &format!("AADSTS{code}: something went wrong."));
        assert_eq!(by_text.category.as_str(), category, "code {code} by message");
        assert_eq!(by_text.entry.as_deref(), Some(format!("aadsts-{code}").as_str()));
    }
}

#[test]
fn passport_relevant_codes_match_the_tsv() {
    let c = Catalogue::from_shipped().unwrap();
    let mut want: Vec<u32> = tsv_rows().into_iter().filter(|r| r.2 == "yes").map(|r| r.0).collect();
    want.sort_unstable();
    assert_eq!(c.passport_relevant_codes(), want);
    for code in &want {
        let e = c.entry_for_code(*code).unwrap();
        assert!(!e.examples.is_empty(), "relevant entry {} has no example", e.id);
    }
}

#[test]
fn kandji_article_errors_carry_the_article_remediation() {
    let c = shipped();
    let mfa = classify(
        &c,
        &body(50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'."),
    );
    assert_eq!(mfa.category, Category::MfaRequired);
    assert_eq!(mfa.code, Some(50076));
    assert_eq!(mfa.entry.as_deref(), Some("aadsts-50076"));
    assert!(mfa.remediation.contains("Exclude the Passport app registration"));
    assert!(mfa.remediation.contains("Web Login"));
    assert!(mfa.remediation.contains("security defaults"));
    assert!(mfa.remediation.contains("per-user MFA"));
    assert!(mfa.remediation.contains("Conditional Access"));

    let pw = classify(&c, &body(50126, "Error validating credentials due to invalid username or password."));
    assert_eq!(pw.category, Category::InvalidCredentials);
    assert!(pw.remediation.contains("re-enter the password"));
    assert!(pw.remediation.contains("federated"));
    assert!(pw.remediation.contains("AllowCloudPasswordValidation"));
    assert!(pw.remediation.contains("password hash sync"));

    let public = classify(
        &c,
        "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    );
    assert_eq!(public.category, Category::ClientMisconfigured);
    assert_eq!(public.code, Some(7000218));
    assert!(public.remediation.contains("Allow public client flows"));
    assert!(public.remediation.contains("Authentication"));
    assert!(public.remediation.contains("Yes"));
}

#[test]
fn contract_json_shape() {
    let c = shipped();
    let v = serde_json::to_value(classify(&c, &body(50076, "you must use multi-factor authentication to access 'x'.")))
        .unwrap();
    assert_eq!(v["outcome"], "failure");
    assert_eq!(v["category"], "mfa_required");
    assert_eq!(v["code"], 50076);
    assert_eq!(v["codes"], serde_json::json!([50076]));
    assert_eq!(v["entry"], "aadsts-50076");
    assert_eq!(v["matched_by"], "code");
    assert_eq!(v["doc_url"], "https://login.microsoftonline.com/error?code=50076");
    assert_eq!(v["severity"], "high");
    assert!(v["title"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(v["reason"].as_str().is_some_and(|s| s.contains("50076")));

    let none = serde_json::to_value(classify(&c, "hello world")).unwrap();
    assert_eq!(none["category"], "unclassified");
    assert_eq!(none["outcome"], "failure");
    assert!(none["code"].is_null());
    assert!(none["entry"].is_null());
    assert!(none["matched_by"].is_null());
}

#[test]
fn federated_50126_by_issuer_type_and_by_domain() {
    let cat = Arc::new(Catalogue::from_shipped().unwrap());
    let c = Classifier::new(cat.clone(), vec!["Contoso.com".into()]);
    let msg = body(50126, "Error validating credentials due to invalid username or password.");
    for issuer in ["ADFederationServices", "adfederationservices", "Federated"] {
        let r = c.classify(&ClassifyInput {
            message: Some(&msg),
            token_issuer_type: Some(issuer),
            ..ClassifyInput::default()
        });
        assert_eq!(r.category, Category::FederationUnsupported, "{issuer}");
        assert_eq!(r.entry.as_deref(), Some("aadsts-50126-federated"));
        assert_eq!(r.matched_by, Some(MatchedBy::Condition));
        assert_eq!(r.code, Some(50126));
        assert!(r.reason.contains("token_issuer_type="), "{}", r.reason);
        assert!(r.remediation.contains("AllowCloudPasswordValidation"));
    }
    let by_domain = c.classify(&ClassifyInput {
        result_code: Some(50126),
        user: Some("alice@CONTOSO.com"),
        ..ClassifyInput::default()
    });
    assert_eq!(by_domain.category, Category::FederationUnsupported);
    assert_eq!(by_domain.matched_by, Some(MatchedBy::Condition));
    assert!(!by_domain.reason.contains("alice"), "reason must not carry the user");

    let other_domain = c.classify(&ClassifyInput {
        result_code: Some(50126),
        user: Some("bob@fabrikam.com"),
        token_issuer_type: Some("AzureAD"),
        ..ClassifyInput::default()
    });
    assert_eq!(other_domain.category, Category::InvalidCredentials);
    assert_eq!(other_domain.matched_by, Some(MatchedBy::Code));

    // Text without a code, from a federated domain: condition beats the plain pattern.
    let text = c.classify(&ClassifyInput {
        message: Some("Error validating credentials due to invalid username or password."),
        user: Some("carol@contoso.com"),
        ..ClassifyInput::default()
    });
    assert_eq!(text.entry.as_deref(), Some("aadsts-50126-federated"));
    assert_eq!(text.code, None);
}

/// `classify` on pasted text: a message naming a user of a federated domain is judged
/// with that user, as the same text in a Passport line is; a JSON record the daemon
/// rejects as a parse error is marked not counted, with the reason, while a token
/// endpoint's error body is a message like any other.
#[test]
fn pasted_text_is_judged_as_the_daemon_would_count_it() {
    use passportd::classify::classify_text;
    let c = Classifier::new(Arc::new(Catalogue::from_shipped().unwrap()), vec!["fed.example".into()]);
    let message =
        "AADSTS50126: Error validating credentials due to invalid username or password. User: bob@fed.example";
    let bare = classify_text(&c, message);
    assert_eq!(
        (bare.category, bare.entry.as_deref()),
        (Category::FederationUnsupported, Some("aadsts-50126-federated"))
    );
    let line = format!(
        "2026-03-04 08:15:02.100000-0800  mac-001 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] {message}."
    );
    assert_eq!(classify_text(&c, &line).category, Category::FederationUnsupported);
    assert_eq!(classify_text(&c, message.split(" User:").next().unwrap()).category, Category::InvalidCredentials);

    for (record, why) in [
        (
            r#"{"id":"g1","createdDateTime":"yesterday","userPrincipalName":"a@b.c","status":{"errorCode":50076}}"#,
            "invalid_timestamp",
        ),
        (r#"{"time": "2007-01-09T09:41:00.22Z", "category": "SignInLogs"}"#, "not_signin"),
        // A record with a stray `error` key is still a record, not a token error body.
        (r#"{"Error":"boom","TimeGenerated":"garbage","ResultType":"50126","Id":"zz3"}"#, "invalid_timestamp"),
        // A sign-in whose status PowerShell truncated to a type name.
        (
            r#"{"TimeGenerated":"2026-03-04T08:00:07Z","Id":"s8","Status":"System.Collections.Hashtable"}"#,
            "invalid_json",
        ),
        // A record cut short, or with a trailing comma: not a JSON object at all.
        (
            r#"{"time":"2026-03-04T10:00:00Z","resultType":"0","properties":{"id":"t1","status":{"errorCode":0}"#,
            "invalid_json",
        ),
        (r#"{"id":"t2","createdDateTime":"2026-03-04T10:00:00Z","status":{"errorCode":0},}"#, "invalid_json"),
    ] {
        assert_eq!(classify_text(&c, record).not_counted.as_deref(), Some(why), "{record}");
    }
    let token_body = classify_text(&c, &body(50076, "you must use multi-factor authentication"));
    assert_eq!((token_body.code, token_body.not_counted), (Some(50076), None));
    // `log show --style ndjson`'s closing counts are an export's chatter, as replay skips them.
    assert_eq!(classify_text(&c, r#"{"count":93,"finished":1}"#).not_counted.as_deref(), Some("chatter"));
    // A token error body pasted in part is still a message.
    let cut = &body(50076, "you must use multi-factor authentication")[..60];
    assert_eq!(classify_text(&c, cut).not_counted, None, "{cut}");
}

#[test]
fn wrapper_code_yields_to_the_specific_one() {
    let c = shipped();
    let r = classify(&c, "AADSTS70002: Error validating credentials. AADSTS50126: Invalid username or password");
    assert_eq!(r.code, Some(50126));
    assert_eq!(r.codes, vec![50126, 70002]);
    assert_eq!(r.category, Category::InvalidCredentials);
    assert!(r.reason.contains("wrapper 70002"), "{}", r.reason);

    let alone = classify(
        &c,
        "AADSTS70002: The request body must contain the following parameter: 'client_secret or client_assertion'.",
    );
    assert_eq!(alone.code, Some(70002));
    assert_eq!(alone.category, Category::ClientMisconfigured);

    let decoder_codes = [90010, 9001023];
    let r = c.classify(&ClassifyInput { message_codes: &decoder_codes, ..ClassifyInput::default() });
    assert_eq!(r.codes, vec![9001023, 90010]);
}

/// A record's own result code is its verdict. A code its failure text mentions takes over
/// only from a wrapper; an unknown result code stays primary (unclassified, grouped by
/// itself) instead of borrowing a known code from the text.
#[test]
fn a_records_own_result_code_is_primary_unless_it_is_a_wrapper() {
    let c = shipped();
    let with = |result_code: u32, message: &str| {
        c.classify(&ClassifyInput {
            result_code: Some(result_code),
            message: Some(message),
            ..ClassifyInput::default()
        })
    };
    let unknown = with(99999, "AADSTS50126: Error validating credentials due to invalid username or password.");
    assert_eq!((unknown.category, unknown.code), (Category::Unclassified, Some(99999)));
    assert_eq!(unknown.codes, vec![99999, 50126]);
    let known = with(50076, "AADSTS50126: Error validating credentials.");
    assert_eq!((known.category, known.code), (Category::MfaRequired, Some(50076)));
    let wrapper = with(70002, "AADSTS50126: Error validating credentials due to invalid username or password.");
    assert_eq!((wrapper.category, wrapper.code), (Category::InvalidCredentials, Some(50126)));
}

#[test]
fn unknown_code_is_unclassified_but_kept() {
    let c = shipped();
    let r = classify(&c, "AADSTS9999999: Something new.");
    assert_eq!(r.outcome, Outcome::Failure);
    assert_eq!(r.category, Category::Unclassified);
    assert_eq!(r.code, Some(9999999));
    assert_eq!(r.entry, None);
    assert_eq!(r.matched_by, None);
    assert_eq!(r.doc_url.as_deref(), Some("https://login.microsoftonline.com/error?code=9999999"));
}

#[test]
fn interrupt_and_success() {
    let c = shipped();
    let r = c.classify(&ClassifyInput {
        result_code: Some(50140),
        message: Some("This error occurred due to 'Keep me signed in' interrupt when the user was signing in."),
        ..ClassifyInput::default()
    });
    assert_eq!(r.outcome, Outcome::Interrupt);
    assert_eq!(r.category, Category::InterruptInformational);
    assert_eq!(classify(&c, "AADSTS50140: KMSI").outcome, Outcome::Interrupt);

    let ok = c.classify(&ClassifyInput {
        result_code: Some(0),
        message: Some("AADSTS50126: stale text"),
        ..ClassifyInput::default()
    });
    assert_eq!(ok.outcome, Outcome::Success);
    assert_eq!(ok.entry.as_deref(), Some("aadsts-0"));
    assert_eq!(ok.severity, Severity::Info);
}

#[test]
fn text_only_patterns_and_fallbacks() {
    let c = shipped();
    let cases = [
        (
            "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
            "aadsts-53003",
        ),
        (
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            "aadsts-7000218",
        ),
        ("The request body must contain the following parameter: 'grant_type'.", "aadsts-900144"),
        ("ID3242: The security token could not be authenticated or authorized.", "adfs-security-token-rejected"),
        (
            r#"{"error":"invalid_grant","error_description":"The credentials provided were invalid."}"#,
            "okta-invalid-credentials",
        ),
        (r#"{"error":"interaction_required","error_description":"nope"}"#, "oauth-interaction-required"),
        ("ldap_bind: Invalid credentials (49)", "google-ldap-invalid-credentials"),
        ("LDAP bind failed: Result Code 50 \"Insufficient Access Rights\"", "google-ldap-insufficient-access"),
    ];
    for (msg, want) in cases {
        let r = classify(&c, msg);
        assert_eq!(r.entry.as_deref(), Some(want), "{msg}: {}", r.reason);
        assert_eq!(r.code, None);
        assert_eq!(r.matched_by, Some(MatchedBy::Pattern));
    }
    // The OAuth error given by the decoder is used when the message has no JSON.
    let r = c.classify(&ClassifyInput {
        message: Some("sign-in failed"),
        oauth_error: Some("Invalid_Grant"),
        ..ClassifyInput::default()
    });
    assert_eq!(r.entry.as_deref(), Some("oauth-invalid-grant"));
    assert!(r.reason.contains("weak fallback"));
    // Named as a word of its own in plain text (an MSAL error, `error=…`), as the
    // Passport decoder counts such a line a failure for it; not inside a longer word.
    for (msg, want) in [
        ("Token request failed: invalid_grant", Some("oauth-invalid-grant")),
        ("Token request failed: error=interaction_required", Some("oauth-interaction-required")),
        ("UserInfo={MSALOAuthErrorKey=invalid_grant, MSALOAuthSubErrorKey=basic_action}", Some("oauth-invalid-grant")),
        ("Token request failed: unauthorized_client.", Some("oauth-client-rejected")),
        ("Token request failed: HTTP 429 Too Many Requests", Some("oauth-server-error")),
        ("Token request failed: HTTP/1.1 503", Some("oauth-server-error")),
        ("Token request failed: my_invalid_grants", None),
        ("Request failed with HTTP 400: see https://docs.example/errors/access_denied", None),
        ("Failed: client invalid_client-id", None),
        ("Failed: invalid_grant.example.org", None),
        ("Token request failed: HTTP 4290", None),
    ] {
        let r = classify(&c, msg);
        assert_eq!(r.entry.as_deref(), want, "{msg}: {}", r.reason);
    }
}

/// MSAL's `suberror` names the code a body without one stands for (CATALOGUE.md §2.4):
/// `consent_required` is AADSTS65001, `basic_action` AADSTS50079; the verdict carries no
/// code of its own, and a code in the body still decides first.
#[test]
fn a_suberror_stands_for_its_code_in_a_body_without_one() {
    let c = shipped();
    let r = classify(&c, r#"{"error":"invalid_grant","error_description":"xyz","suberror":"consent_required"}"#);
    assert_eq!((r.category, r.entry.as_deref(), r.code), (Category::ConsentRequired, Some("aadsts-65001"), None));
    assert_eq!(r.matched_by, Some(MatchedBy::Condition));
    let r = classify(&c, r#"{\"error\":\"invalid_grant\",\"suberror\":\"basic_action\"}"#);
    assert_eq!(r.entry.as_deref(), Some("aadsts-50079"));
    let r = classify(&c, r#"{"error":"invalid_grant","error_codes":[50126],"suberror":"basic_action"}"#);
    assert_eq!(r.code, Some(50126), "a code decides first");
    let r = classify(&c, r#"{"error":"invalid_grant","suberror":"something_else"}"#);
    assert_eq!(r.entry.as_deref(), Some("oauth-invalid-grant"), "an unknown suberror changes nothing");
}

#[test]
fn every_shipped_example_holds() {
    let c = shipped();
    let failures: Vec<String> = c.check_examples().iter().map(ToString::to_string).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let total: usize = c.catalogue().entries().iter().map(|e| e.examples.len()).sum();
    assert!(total > 100, "only {total} examples");
}

#[test]
fn entries_are_sorted_and_complete() {
    let c = Catalogue::from_shipped().unwrap();
    let keys: Vec<(u64, &str)> =
        c.entries().iter().map(|e| (e.codes.first().map_or(u64::MAX, |c| u64::from(*c)), e.id.as_str())).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    for e in c.entries() {
        assert!(!e.title.trim().is_empty() && !e.remediation.trim().is_empty(), "{}", e.id);
    }
    let json = serde_json::to_value(c.entry("aadsts-50126-federated").unwrap()).unwrap();
    assert_eq!(json["category"], "federation_unsupported");
    assert_eq!(json["source"], "config/catalogue.toml (shipped)");
}

#[test]
fn operator_file_overrides_and_adds() {
    let f = write_temp(
        r#"
[[entry]]
id = "aadsts-50076"
remediation = "Call the identity team on extension 4242."

[[entry]]
id = "acme-vpn-required"
category = "conditional_access_block"
actor = "admin"
severity = "medium"
title = "VPN required"
remediation = "Connect to the ACME VPN first."
patterns = ['ACME-ERR-\d+: VPN']
examples = ["ACME-ERR-17: VPN not connected"]

[[entry]]
id = "acme-locked"
codes = [50053]
category = "account_locked"
title = "Locked (ACME)"
remediation = "Open a ticket in the ACME portal."
"#,
    );
    let cat = Catalogue::load(&[f.path().to_owned()]).unwrap();
    let shipped = Catalogue::from_shipped().unwrap();
    assert_eq!(cat.len(), shipped.len() + 1, "two entries added, one overridden");
    let e = cat.entry("aadsts-50076").unwrap();
    assert_eq!(e.remediation, "Call the identity team on extension 4242.");
    assert_eq!(e.title, "MFA required", "untouched fields keep their shipped value");
    assert_eq!(e.source, f.path().display().to_string());
    assert_eq!(cat.entry_for_code(50053).unwrap().id, "acme-locked");
    // The shipped entry lost its only code: it is overridden, and the entry that claimed
    // the code matches its text without a code too.
    assert!(cat.entry("aadsts-50053").is_none());

    let c = Classifier::new(Arc::new(cat), Vec::new());
    let r = classify(&c, &body(50076, "you must use multi-factor authentication"));
    assert_eq!(r.remediation, "Call the identity team on extension 4242.");
    let r = classify(&c, "acme-err-3: vpn down");
    assert_eq!(r.entry.as_deref(), Some("acme-vpn-required"));
    assert_eq!(classify(&c, "AADSTS50053: locked").entry.as_deref(), Some("acme-locked"));
    assert_eq!(classify(&c, "Your account is locked.").entry.as_deref(), Some("acme-locked"));
}

/// An entry that claims a shipped entry's code in another category overrides it for the
/// failure's text without a code as well: one error never lands in two categories.
#[test]
fn claiming_a_code_takes_over_the_text_of_the_entry_it_overrides() {
    let f = write_temp(
        r#"
[[entry]]
id = "ours-mfa"
codes = [50076]
category = "conditional_access_block"
title = "Ours: MFA via CA"
remediation = "Our runbook."
"#,
    );
    let c = Classifier::new(Arc::new(Catalogue::load(&[f.path().to_owned()]).unwrap()), Vec::new());
    let text = "Due to a configuration change made by your administrator, or because you moved to a new location, \
                you must use multi-factor authentication to access 'x'.";
    // Several shipped entries overridden at once, by one entry and by two.
    for ours in [
        "[[entry]]\nid = \"ours-two\"\ncodes = [50126, 50056]\ncategory = \"invalid_credentials\"\ntitle = \"T\"\nremediation = \"R\"\n",
        "[[entry]]\nid = \"ours-a\"\ncodes = [50126]\ncategory = \"invalid_credentials\"\ntitle = \"T\"\nremediation = \"R\"\n\n\
         [[entry]]\nid = \"ours-b\"\ncodes = [50076]\ncategory = \"mfa_required\"\ntitle = \"T\"\nremediation = \"R\"\n",
    ] {
        let g = write_temp(ours);
        let cat = Catalogue::load(&[g.path().to_owned()]).unwrap();
        assert!(cat.entry("aadsts-50126").is_none() && cat.entry_for_code(50126).is_some_and(|e| e.id.starts_with("ours")));
    }
    for msg in [format!("AADSTS50076: {text}"), text.to_string()] {
        let r = classify(&c, &msg);
        assert_eq!((r.entry.as_deref(), r.category), (Some("ours-mfa"), Category::ConditionalAccessBlock), "{msg}");
    }
}

/// A file that patches a shipped entry without listing codes claims none: a new entry in
/// the same file may take over the patched entry's code, as it would take over any
/// earlier file's (it was refused as a duplicate claim by that file).
#[test]
fn a_patch_without_codes_does_not_claim_the_codes_it_inherits() {
    let f = write_temp(
        r#"
[[entry]]
id = "acme-mfa"
codes = [50076]
category = "mfa_required"
title = "MFA (ACME)"
remediation = "Use the ACME token."

[[entry]]
id = "aadsts-50076"
remediation = "Patched, without codes."
"#,
    );
    let cat = Catalogue::load(&[f.path().to_owned()]).unwrap();
    assert_eq!(cat.entry_for_code(50076).unwrap().id, "acme-mfa");
    assert_eq!(cat.entry("aadsts-50076").unwrap().remediation, "Patched, without codes.");
    assert!(cat.entry("aadsts-50076").unwrap().codes.is_empty(), "it keeps its patterns, not the code");
}

fn parse_err(text: &str) -> String {
    match Catalogue::parse_str(text, "/etc/x.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const GOOD: &str = r#"
category = "invalid_credentials"
actor = "user"
severity = "low"
title = "T"
remediation = "R"
"#;

#[test]
fn invalid_files_give_precise_errors() {
    let e = parse_err(&format!("[[entry]]\nid = \"okta-invalid-grant\"\n{GOOD}patterns = [\"ok\", \"(unclosed\"]\n"));
    assert!(
        e.starts_with(
            "catalogue /etc/x.toml: entry \"okta-invalid-grant\" (line 1): field `patterns[1]`: invalid regex: "
        ),
        "{e}"
    );

    let e =
        parse_err(&format!("[[entry]]\nid = \"a\"\ncodes = [1]\n{GOOD}\n[[entry]]\nid = \"a\"\ncodes = [2]\n{GOOD}"));
    // The duplicate is named with its own line, and the first definition with its line.
    assert!(
        e.contains("entry \"a\" (line 11): field `id`: duplicate id in this file (first defined at entry #1 (line 1))"),
        "{e}"
    );

    let e = parse_err(&format!(
        "[[entry]]\nid = \"a\"\ncodes = [50126]\n{GOOD}\n[[entry]]\nid = \"b\"\ncodes = [50126]\n{GOOD}"
    ));
    assert!(e.contains("entry \"b\" (line 11): field `codes`: code 50126 is already claimed by entry \"a\""), "{e}");

    let e = parse_err("[[entry]]\nid = \"a\"\ncodes = [1]\ncategory = \"mfa\"\ntitle = \"T\"\nremediation = \"R\"\n");
    assert!(e.contains("entry \"a\" (line 1): field `category`: unknown category \"mfa\""), "{e}");

    let e = parse_err(&format!("[[entry]]\nid = \"a\"\ncodes = [1]\n{}", GOOD.replace("\"low\"", "\"urgent\"")));
    assert!(e.contains("field `severity`: unknown severity \"urgent\""), "{e}");

    let e = parse_err(&format!("[[entry]]\nid = \"a\"\ncodes = [1]\n{}", GOOD.replace("\"user\"", "\"robot\"")));
    assert!(e.contains("field `actor`: unknown actor \"robot\""), "{e}");

    let e =
        parse_err(&format!("[[entry]]\nid = \"a\"\ncodes = [1]\n{}", GOOD.replace("title = \"T\"", "title = \"  \"")));
    assert!(e.contains("field `title`: must not be empty"), "{e}");

    let e = parse_err(&format!(
        "[[entry]]\nid = \"a\"\ncodes = [1]\n{}",
        GOOD.replace("remediation = \"R\"", "remediation = \"\"")
    ));
    assert!(e.contains("field `remediation`: must not be empty"), "{e}");

    let e = parse_err(&format!("[[entry]]\nid = \"a\"\ncodes = [1]\nremedy = \"x\"\n{GOOD}"));
    assert!(e.contains("entry \"a\" (line 1): field `remedy`: unknown field `remedy`"), "{e}");

    let e = parse_err(&format!("[[entry]]\nid = \"a\"\ncodes = [1]\nconditions = {{ issuer = [\"x\"] }}\n{GOOD}"));
    assert!(e.contains("field `conditions`: unknown field `issuer`"), "{e}");

    let e =
        parse_err(&format!("[[entry]]\nid = \"a\"\ncodes = [1]\nexamples = [\"ok\", {{ mesage = \"x\" }}]\n{GOOD}"));
    assert!(e.contains("field `examples[1]`: unknown field `mesage`"), "{e}");

    let e = parse_err(&format!("[[entry]]\nid = \"a\"\n{GOOD}"));
    assert!(e.contains("matches nothing"), "{e}");

    let e = parse_err(&format!("[[entry]]\ncodes = [1]\n{GOOD}"));
    assert!(e.contains("entry #1 (line 1): field `id`: missing"), "{e}");
    // Later entries name their own line (counted entry after entry, not from the top).
    let three = format!("[[entry]]\nid = \"a\"\ncodes = [1]\n{GOOD}\n[[entry]]\nid = \"b\"\ncodes = [2]\n{GOOD}\n");
    let e = parse_err(&format!("{three}[[entry]]\ncodes = [3]\n{GOOD}"));
    let line = three.lines().count() + 1;
    assert!(e.contains(&format!("entry #3 (line {line}): field `id`: missing")), "{e}");
    let e = parse_err(&format!("{three}[[entry]]\nid = \"b\"\ncodes = [3]\n{GOOD}"));
    let second_at = three.match_indices("[[entry]]").nth(1).map(|(i, _)| i).unwrap();
    let first = three[..second_at].matches('\n').count() + 1;
    assert!(first > 2);
    assert!(e.contains(&format!("first defined at entry #2 (line {first})")), "{e}");

    let e = parse_err("[[entry]]\nid = \"a\"\ncodes = [1,\n");
    assert!(e.starts_with("catalogue /etc/x.toml: line "), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");

    let e = parse_err(&format!("[[entry]]\nid = \"a\"\ncodes = [\"x\"]\n{GOOD}"));
    assert!(e.contains("field `codes[0]`"), "{e}");

    let err = Catalogue::load(&[PathBuf::from("/nonexistent/passportd/extra.toml")]).unwrap_err();
    assert!(matches!(err, CatalogueError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/passportd/extra.toml"), "{err}");
}

#[test]
fn reload_keeps_the_old_catalogue_on_error() {
    let shared = SharedClassifier::new(shipped());
    let before = shared.current();
    let bad = write_temp(
        "[[entry]]\nid = \"x\"\npatterns = [\"(\"]\ncategory = \"other\"\ntitle = \"T\"\nremediation = \"R\"\n",
    );
    let err = shared.reload(&[bad.path().to_owned()], Vec::new()).unwrap_err();
    assert!(err.to_string().contains("field `patterns[0]`"), "{err}");
    assert!(Arc::ptr_eq(&before, &shared.current()), "old classifier still in place");

    let good = write_temp(
        "[[entry]]\nid = \"x\"\npatterns = [\"xyzzy\"]\ncategory = \"other\"\ntitle = \"T\"\nremediation = \"R\"\n",
    );
    let n = shared.reload(&[good.path().to_owned()], vec!["contoso.com".into()]).unwrap();
    assert_eq!(n, before.catalogue().len() + 1);
    assert_eq!(classify(&shared.current(), "xyzzy").entry.as_deref(), Some("x"));
    // The reader that took the old Arc keeps a working classifier.
    assert_eq!(classify(&before, "xyzzy").entry, None);
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,400}", rc in proptest::option::of(0u32..20_000_000)) {
        let c = shipped_cached();
        let codes = extract_codes(&s);
        prop_assert!(codes.iter().all(|c| *c > 0));
        let r = c.classify(&ClassifyInput { result_code: rc, message: Some(&s), user: Some(&s), token_issuer_type: Some(&s), ..ClassifyInput::default() });
        prop_assert!(r.codes.first().copied() == r.code || r.code.is_none());
    }

    #[test]
    fn code_like_noise_never_panics(s in "(AADSTS[0-9]{0,9}|\"error_codes\\\\?\"?:? ?\\[[0-9, ]{0,20}\\]?|\"error\":\"[a-z_]{0,12}\"|[ a-z]{0,5}){0,8}") {
        let c = shipped_cached();
        let _ = extract_codes(&s);
        let _ = c.classify(&ClassifyInput::message(&s));
    }
}

fn shipped_cached() -> &'static Classifier {
    static C: std::sync::OnceLock<Classifier> = std::sync::OnceLock::new();
    C.get_or_init(shipped)
}

/// Pasted text holding several records (an Event Hubs envelope, a Graph page, an array,
/// records joined on a line) gets one verdict per record, each by its own result code, as
/// the daemon counts them; text that is one record or none gets one verdict.
#[test]
fn several_records_in_one_paste_get_a_verdict_each() {
    let c = shipped();
    let rec = |id: &str, code: u32| {
        format!(
            r#"{{"time":"2026-03-04T08:00:00Z","category":"SignInLogs","resultType":"{code}","properties":{{"id":"{id}","status":{{"errorCode":{code}}}}}}}"#
        )
    };
    let page = |codes: &[u32]| {
        let values: Vec<String> = codes
            .iter()
            .enumerate()
            .map(|(i, code)| {
                format!(r#"{{"id":"g{i}","createdDateTime":"2026-03-04T08:00:00Z","status":{{"errorCode":{code}}}}}"#)
            })
            .collect();
        format!(r#"{{"@odata.context":"x","value":[{}]}}"#, values.join(","))
    };
    let cases = [
        (
            format!(r#"{{"records":[{},{},{},{}]}}"#, rec("a", 50053), rec("b", 50053), rec("c", 0), rec("d", 50140)),
            vec![
                (Outcome::Failure, Some(50053)),
                (Outcome::Failure, Some(50053)),
                (Outcome::Success, Some(0)),
                (Outcome::Interrupt, Some(50140)),
            ],
        ),
        (
            format!("[{},{}]", rec("a", 50057), rec("b", 50053)),
            vec![(Outcome::Failure, Some(50057)), (Outcome::Failure, Some(50053))],
        ),
        (page(&[7000218, 50126]), vec![(Outcome::Failure, Some(7000218)), (Outcome::Failure, Some(50126))]),
        (
            format!("{}{}", rec("a", 50076), rec("b", 50074)),
            vec![(Outcome::Failure, Some(50076)), (Outcome::Failure, Some(50074))],
        ),
    ];
    for (text, want) in cases {
        let got: Vec<_> =
            passportd::classify::classify_records(&c, &text).iter().map(|v| (v.outcome, v.code)).collect();
        assert_eq!(got, want, "{text}");
    }
    // What the daemon would not count is marked so; what it cannot decode gets none.
    let audit = r#"{"time":"2026-03-04T08:00:00Z","category":"AuditLogs","resultType":"","properties":{"id":"x1"}}"#;
    let text = format!(r#"{{"records":[{audit},{{"foo":1}},{}]}}"#, rec("b", 50076));
    let got: Vec<_> =
        passportd::classify::classify_records(&c, &text).iter().map(|v| (v.code, v.not_counted.clone())).collect();
    assert_eq!(got, [(None, Some("not_signin".to_string())), (Some(50076), None)]);
    // One record, and a message of several lines, are one verdict each.
    assert_eq!(passportd::classify::classify_records(&c, &rec("a", 50057)).len(), 1);
    let lines = "AADSTS50076: Due to a configuration change made by your administrator\nTrace ID: x\nCorrelation ID: y";
    let one = passportd::classify::classify_records(&c, lines);
    assert_eq!((one.len(), one[0].code), (1, Some(50076)));
}
