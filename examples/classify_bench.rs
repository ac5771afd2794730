//! Single-thread classifier throughput: `cargo run --release --example classify_bench`.
//!
//! Prints messages per second for token-endpoint error bodies that carry a code (the hot
//! path: code extraction plus a hash lookup) and for code-less lines (the RegexSet path).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use passportd::classify::{Catalogue, Classifier, ClassifyInput};

fn body(code: u32, text: &str) -> String {
    format!(
        r#"{{"error":"invalid_grant","error_description":"AADSTS{code}: {text}\r\nTrace ID: 0b5a2c1e-7d2f-4a8e-9b1c-2f0d4e6a8b00\r\nCorrelation ID: 6f1e9d2a-3c4b-4e5f-8a7b-1c2d3e4f5a6b\r\nTimestamp: 2026-03-04 16:15:02Z","error_codes":[{code}],"timestamp":"2026-03-04 16:15:02Z","trace_id":"0b5a2c1e-7d2f-4a8e-9b1c-2f0d4e6a8b00","correlation_id":"6f1e9d2a-3c4b-4e5f-8a7b-1c2d3e4f5a6b","error_uri":"https://login.microsoftonline.com/error?code={code}"}}"#
    )
}

fn run(c: &Classifier, messages: &[String], min: Duration) -> (f64, usize) {
    let mut n = 0usize;
    let start = Instant::now();
    loop {
        for m in messages {
            black_box(c.classify(black_box(&ClassifyInput::message(m))));
        }
        n += messages.len();
        if start.elapsed() >= min {
            break;
        }
    }
    (n as f64 / start.elapsed().as_secs_f64(), n)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let catalogue = Arc::new(Catalogue::from_shipped()?);
    let loaded = t.elapsed();
    let t = Instant::now();
    let c = Classifier::new(catalogue, vec!["contoso.com".into()]);
    c.prepare();
    let compiled = t.elapsed();
    println!(
        "catalogue: {} entries, parsed in {:.1} ms, compiled in {:.1} ms",
        c.catalogue().len(),
        loaded.as_secs_f64() * 1e3,
        compiled.as_secs_f64() * 1e3
    );

    let coded: Vec<String> = vec![
        body(50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'."),
        body(50126, "Error validating credentials due to invalid username or password."),
        body(7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
        body(53003, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."),
        body(50053, "The account is locked, you've tried to sign in too many times with an incorrect user ID or password."),
        format!("AADSTS70002: Error validating credentials. AADSTS50126: Invalid username or password{}", " ".repeat(300)),
    ];
    let codeless: Vec<String> = vec![
        "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'.".into(),
        "Error validating credentials due to invalid username or password.".into(),
        r#"{"error":"invalid_grant","error_description":"The credentials provided were invalid."}"#.into(),
        "ID3242: The security token could not be authenticated or authorized.".into(),
        "Passport: authorization mechanism invoked, waiting for user input at the login window".into(),
        r#"{"error":"interaction_required","error_description":"The request requires user interaction."}"#.into(),
    ];
    let avg = |v: &[String]| v.iter().map(String::len).sum::<usize>() / v.len();
    let min = Duration::from_secs(2);

    let (rate, n) = run(&c, &coded, min);
    println!("coded messages    (avg {:>3} bytes): {:>12.0} msg/s ({n} classified)", avg(&coded), rate);
    if std::env::var_os("BENCH_EXTRACT").is_some() {
        let start = Instant::now();
        let mut n = 0usize;
        while start.elapsed() < min {
            for m in &coded {
                black_box(passportd::classify::extract_codes(black_box(m)));
            }
            n += coded.len();
        }
        println!("extract_codes only: {:.0} msg/s", n as f64 / start.elapsed().as_secs_f64());
    }
    let (rate, n) = run(&c, &codeless, min);
    println!("code-less messages (avg {:>3} bytes): {:>12.0} msg/s ({n} classified)", avg(&codeless), rate);
    Ok(())
}
