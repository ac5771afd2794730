//! Decoder throughput: `cargo run --release --example decode_bench [N]`.
//!
//! Generates N realistic ~2.5 KB diagnostic-settings sign-in records in memory and prints
//! records/s for `StreamDecoder` (fed 64 KiB chunks, as the tailer reads) against a plain
//! `serde_json::from_slice::<serde_json::Value>` per line, for JSON lines, Event Hubs
//! envelopes and a pretty-printed Graph page.

use std::time::Instant;

use passportd::ingest::formats::{DecodeOptions, Format, ItemKind, StreamDecoder};

fn record(i: usize) -> String {
    let code = [0, 50126, 50076, 0, 50140, 7000218, 0, 53003][i % 8];
    let reason = if code == 0 {
        String::new()
    } else {
        format!(",\"failureReason\":\"AADSTS{code}: Something about sign-in number {i} went wrong for this user.\"")
    };
    format!(
        concat!(
            "{{\"time\":\"2026-03-04T08:{m:02}:{s:02}.{i:07}Z\",\"resourceId\":\"/tenants/9c3e2d1a-4b5f-4e6a-8c7d-0f1e2d3c4b5a/providers/Microsoft.aadiam\",",
            "\"operationName\":\"Sign-in activity\",\"operationVersion\":\"1.0\",\"category\":\"SignInLogs\",\"tenantId\":\"9c3e2d1a-4b5f-4e6a-8c7d-0f1e2d3c4b5a\",",
            "\"resultType\":\"{code}\",\"resultSignature\":\"None\",\"durationMs\":0,\"callerIpAddress\":\"192.0.2.{ip}\",\"correlationId\":\"{i:08x}-1111-4222-8333-444444444444\",",
            "\"identity\":\"User {i}\",\"Level\":4,\"location\":\"US\",\"properties\":{{\"id\":\"{i:08x}-aaaa-4bbb-8ccc-dddddddddddd\",\"createdDateTime\":\"2026-03-04T08:{m:02}:{s:02}.{i:07}+00:00\",",
            "\"userDisplayName\":\"User {i}\",\"userPrincipalName\":\"user{i}@contoso.example\",\"userId\":\"{i:08x}-0000-4000-8000-000000000000\",\"appId\":\"5f0c1a2b-7d3e-4c59-9a61-2b8e4f6d7c10\",",
            "\"appDisplayName\":\"Kandji Passport\",\"ipAddress\":\"192.0.2.{ip}\",\"status\":{{\"errorCode\":{code}{reason}}},\"clientAppUsed\":\"Mobile Apps and Desktop clients\",",
            "\"userAgent\":\"Kandji Passport/2.4 CFNetwork/1494.0.7 Darwin/23.4.0\",\"deviceDetail\":{{\"deviceId\":\"\",\"displayName\":\"\",\"operatingSystem\":\"MacOs\",\"browser\":\"\"}},",
            "\"location\":{{\"city\":\"Springfield\",\"state\":\"Example\",\"countryOrRegion\":\"US\",\"geoCoordinates\":{{\"latitude\":40.0,\"longitude\":-89.0}}}},",
            "\"correlationId\":\"{i:08x}-1111-4222-8333-444444444444\",\"conditionalAccessStatus\":\"notApplied\",\"appliedConditionalAccessPolicies\":[",
            "{{\"id\":\"0f0e0d0c-0b0a-4909-8807-060504030201\",\"displayName\":\"Require MFA for all users\",\"enforcedGrantControls\":[\"Mfa\"],\"enforcedSessionControls\":[],\"result\":\"notApplied\"}},",
            "{{\"id\":\"1f0e0d0c-0b0a-4909-8807-060504030201\",\"displayName\":\"Block legacy authentication\",\"enforcedGrantControls\":[\"Block\"],\"enforcedSessionControls\":[],\"result\":\"notApplied\"}}],",
            "\"originalRequestId\":\"{i:08x}-2222-4333-8444-555555555555\",\"isInteractive\":true,\"tokenIssuerName\":\"\",\"tokenIssuerType\":\"AzureAD\",\"authenticationProtocol\":\"ropc\",",
            "\"authenticationRequirement\":\"singleFactorAuthentication\",\"processingTimeInMilliseconds\":123,\"riskDetail\":\"none\",\"riskLevelAggregated\":\"none\",",
            "\"riskLevelDuringSignIn\":\"none\",\"riskState\":\"none\",\"riskEventTypes_v2\":[],\"resourceDisplayName\":\"Microsoft Graph\",\"resourceId\":\"00000003-0000-0000-c000-000000000000\",",
            "\"resourceTenantId\":\"9c3e2d1a-4b5f-4e6a-8c7d-0f1e2d3c4b5a\",\"homeTenantId\":\"9c3e2d1a-4b5f-4e6a-8c7d-0f1e2d3c4b5a\",\"authenticationDetails\":[{{\"authenticationStepDateTime\":",
            "\"2026-03-04T08:{m:02}:{s:02}+00:00\",\"authenticationMethod\":\"Password\",\"succeeded\":true,\"authenticationStepResultDetail\":\"Correct password\"}}],\"mfaDetail\":{{}}}}}}"
        ),
        i = i,
        m = (i / 60) % 60,
        s = i % 60,
        ip = i % 250,
        code = code,
        reason = reason,
    )
}

fn run_decoder(name: &str, format: Format, data: &[u8], n: usize) {
    let opts = DecodeOptions { format, ..DecodeOptions::default() };
    let t = Instant::now();
    let mut d = StreamDecoder::new(opts);
    let mut out = Vec::with_capacity(4096);
    let mut signins = 0usize;
    for chunk in data.chunks(64 * 1024) {
        d.feed(chunk, &mut out);
        signins += out.iter().filter(|i| matches!(i.kind, ItemKind::SignIn(_))).count();
        out.clear();
    }
    d.finish(&mut out);
    signins += out.iter().filter(|i| matches!(i.kind, ItemKind::SignIn(_))).count();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(signins, n, "{name}: every record decoded");
    println!("{name:<44} {:>10.0} records/s  {:>7.1} MB/s", n as f64 / secs, data.len() as f64 / secs / 1e6);
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let records: Vec<String> = (0..n).map(record).collect();
    let avg = records.iter().map(String::len).sum::<usize>() / n.max(1);
    println!("{n} records, {avg} bytes each on average\n");

    let lines = records.join("\n") + "\n";
    let lines = lines.as_bytes();

    // Baseline: frame lines with memchr, build a serde_json::Value DOM per line.
    let t = Instant::now();
    let mut ok = 0usize;
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', lines) {
        if serde_json::from_slice::<serde_json::Value>(&lines[start..nl]).is_ok() {
            ok += 1;
        }
        start = nl + 1;
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(ok, n);
    println!(
        "{:<44} {:>10.0} records/s  {:>7.1} MB/s",
        "baseline serde_json::Value per line",
        n as f64 / secs,
        lines.len() as f64 / secs / 1e6
    );

    run_decoder("StreamDecoder JSON lines (azure-diagnostic)", Format::AzureDiagnostic, lines, n);
    run_decoder("StreamDecoder JSON lines (auto)", Format::Auto, lines, n);

    let envelopes: String = records.chunks(50).map(|c| format!("{{\"records\":[{}]}}\n", c.join(","))).collect();
    run_decoder("StreamDecoder Event Hubs envelopes (auto)", Format::Auto, envelopes.as_bytes(), n);

    let values: Vec<serde_json::Value> = records
        .iter()
        .take(n.min(20_000))
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(r).ok())
        .map(|mut v| v["properties"].take())
        .collect();
    let page = serde_json::to_string_pretty(&serde_json::json!({
        "@odata.context": "https://graph.microsoft.com/beta/$metadata#auditLogs/signIns",
        "value": values,
    }))
    .unwrap_or_default();
    run_decoder("StreamDecoder pretty Graph page (auto)", Format::Auto, page.as_bytes(), n.min(20_000));
}
