//! Every response the API gives, happy and error paths alike, conforms to the OpenAPI
//! document the server itself serves at /api/v1/openapi.json.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{settings, TestServer};
use serde_json::Value;

/// A small JSON Schema checker for what utoipa emits (OpenAPI 3.1): `$ref`, `type`
/// (string or list, incl. "null"), `properties`, `required`, `items`,
/// `additionalProperties`, `enum`, `oneOf`/`anyOf`/`allOf`, integer `minimum`.
fn check(doc: &Value, schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    check_keys(doc, schema, v, path, errors, true)
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")]),
        None => schema,
    }
}

fn check_keys(doc: &Value, schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>, strict: bool) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "dangling $ref {r}");
        return check_keys(doc, target, v, path, errors, strict);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        // Each member checks its own keys; unknown keys are judged against their union.
        for s in all {
            check_keys(doc, s, v, path, errors, false);
        }
        if let (true, Value::Object(map)) = (strict, v) {
            let known: BTreeSet<&String> = all
                .iter()
                .filter_map(|s| resolve(doc, s).get("properties").and_then(Value::as_object))
                .flat_map(|p| p.keys())
                .collect();
            for k in map.keys().filter(|k| !known.contains(k)) {
                errors.push(format!("{path}: undocumented key `{k}`"));
            }
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let ok = alts.iter().any(|s| {
                let mut e = Vec::new();
                check(doc, s, v, path, &mut e);
                e.is_empty()
            });
            if !ok {
                errors.push(format!("{path}: matches none of {key}"));
            }
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types.iter().any(|t| *t == actual || (*t == "number" && actual == "integer"));
        if !fits {
            errors.push(format!("{path}: is {actual}, schema says {types:?}"));
            return;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!("{path}: {v} not in enum"));
        }
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            errors.push(format!("{path}: {n} below minimum {min}"));
        }
    }
    if let Value::Object(map) = v {
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !map.contains_key(r) {
                    errors.push(format!("{path}: missing required `{r}`"));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, val) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(doc, s, val, &format!("{path}.{k}"), errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{path}: unexpected `{k}`")),
                    Some(s @ Value::Object(_)) => check(doc, s, val, &format!("{path}.{k}"), errors),
                    // Undocumented keys in a typed object mean the document drifted.
                    _ if strict && props.is_some() && schema.get("allOf").is_none() => {
                        errors.push(format!("{path}: undocumented key `{k}`"))
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(doc, s, item, &format!("{path}[{i}]"), errors);
        }
    }
}

struct Conformance {
    doc: Value,
    exercised: BTreeSet<(String, String)>,
}

impl Conformance {
    async fn call(
        &mut self,
        server: &TestServer,
        method: &str,
        template: &str,
        path: &str,
        body: Option<String>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{}", server.base, path);
        let mut req = match method {
            "get" => server.client.get(url),
            _ => server.client.post(url),
        };
        if let Some(b) = body {
            req = req.body(b);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = resp.text().await.unwrap();
        let op = &self.doc["paths"][template][method];
        assert!(!op.is_null(), "{method} {template} is not in the OpenAPI document");
        let documented = &op["responses"][status.to_string()];
        assert!(
            !documented.is_null(),
            "{method} {template} answered {status}, which the document does not list: {text}"
        );
        self.exercised.insert((method.to_string(), template.to_string()));
        if !ctype.starts_with("application/json") {
            return (status, Value::Null);
        }
        let value: Value = serde_json::from_str(&text).unwrap();
        let schema = &documented["content"]["application/json"]["schema"];
        assert!(!schema.is_null(), "{method} {template} {status}: no JSON schema documented");
        let mut errors = Vec::new();
        check(&self.doc, schema, &value, "$", &mut errors);
        assert!(errors.is_empty(), "{method} {path} {status} does not conform:\n{}\n{value}", errors.join("\n"));
        (status, value)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_conforms_to_the_served_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let token = "t0ken-t0ken-t0ken";
    let server = TestServer::start(settings(&format!(
        "[storage]\npath = \"{}\"\n[server]\nmax_body_bytes = 200000\n[api]\ntoken = \"{token}\"\n",
        dir.path().join("p.db").display()
    )))
    .await;
    let doc: Value = server.get_json("/api/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut c = Conformance { doc: doc.clone(), exercised: BTreeSet::new() };
    let fixture = std::fs::read_to_string(common::fixtures().join("e2e/entra.json")).unwrap();

    c.call(&server, "get", "/healthz", "/healthz", None, None).await;
    c.call(&server, "get", "/readyz", "/readyz", None, None).await;
    c.call(&server, "get", "/metrics", "/metrics", None, None).await;
    c.call(&server, "get", "/api/v1/openapi.json", "/api/v1/openapi.json", None, None).await;

    let ing = "/api/v1/ingest/{source}";
    assert_eq!(c.call(&server, "post", ing, "/api/v1/ingest/http", Some(fixture.clone()), None).await.0, 401);
    let (st, summary) = c.call(&server, "post", ing, "/api/v1/ingest/http", Some(fixture), Some(token)).await;
    assert_eq!((st, summary["failures"].as_u64()), (200, Some(4)));
    assert_eq!(c.call(&server, "post", ing, "/api/v1/ingest/nosuch", Some("{}".into()), Some(token)).await.0, 404);
    let big = "x".repeat(300_000);
    assert_eq!(c.call(&server, "post", ing, "/api/v1/ingest/http", Some(big), Some(token)).await.0, 413);

    let list = "/api/v1/incidents";
    let (_, page) = c.call(&server, "get", list, "/api/v1/incidents?limit=2", None, None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    c.call(&server, "get", list, &format!("/api/v1/incidents?limit=2&cursor={cursor}"), None, None).await;
    c.call(
        &server,
        "get",
        list,
        "/api/v1/incidents?status=all&sort=event_count&category=mfa_required&code=50076",
        None,
        None,
    )
    .await;
    for bad in ["status=x", "sort=x", "limit=501", "category=x", "code=x", "since=x", "cursor=x", "bogus=1"] {
        assert_eq!(c.call(&server, "get", list, &format!("/api/v1/incidents?{bad}"), None, None).await.0, 400, "{bad}");
    }
    let id = page["items"][0]["id"].as_i64().unwrap();
    let one = "/api/v1/incidents/{id}";
    let (_, detail) = c.call(&server, "get", one, &format!("/api/v1/incidents/{id}"), None, None).await;
    assert!(!detail["recent_events"].as_array().unwrap().is_empty());
    assert_eq!(c.call(&server, "get", one, "/api/v1/incidents/424242", None, None).await.0, 404);

    let ack = "/api/v1/incidents/{id}/acknowledge";
    assert_eq!(c.call(&server, "post", ack, &format!("/api/v1/incidents/{id}/acknowledge"), None, None).await.0, 401);
    assert_eq!(
        c.call(&server, "post", ack, &format!("/api/v1/incidents/{id}/acknowledge"), None, Some("wrong")).await.0,
        401
    );
    let (_, acked) = c
        .call(
            &server,
            "post",
            ack,
            &format!("/api/v1/incidents/{id}/acknowledge"),
            Some(r#"{"by":"oncall"}"#.into()),
            Some(token),
        )
        .await;
    assert_eq!((acked["status"].as_str(), acked["acknowledged_by"].as_str()), (Some("acknowledged"), Some("oncall")));
    assert_eq!(
        c.call(
            &server,
            "post",
            ack,
            &format!("/api/v1/incidents/{id}/acknowledge"),
            Some("{\"who\":1}".into()),
            Some(token)
        )
        .await
        .0,
        400
    );
    // serde builds a struct from an array of its fields too: only an object is a body.
    for body in [r#"["mallory"]"#, "[]", "\"mallory\""] {
        let (status, reply) = c
            .call(&server, "post", ack, &format!("/api/v1/incidents/{id}/acknowledge"), Some(body.into()), Some(token))
            .await;
        assert_eq!(status, 400, "{body}: {reply}");
    }
    assert_eq!(c.call(&server, "post", ack, "/api/v1/incidents/999999/acknowledge", None, Some(token)).await.0, 404);
    let res = "/api/v1/incidents/{id}/resolve";
    let (_, resolved) =
        c.call(&server, "post", res, &format!("/api/v1/incidents/{id}/resolve"), None, Some(token)).await;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(c.call(&server, "post", res, &format!("/api/v1/incidents/{id}/resolve"), None, None).await.0, 401);
    assert_eq!(c.call(&server, "post", res, "/api/v1/incidents/999999/resolve", None, Some(token)).await.0, 404);

    let ev = "/api/v1/events";
    c.call(&server, "get", ev, &format!("/api/v1/events?incident={id}&limit=1"), None, None).await;
    c.call(&server, "get", ev, "/api/v1/events?source=http&category=mfa_required", None, None).await;
    assert_eq!(c.call(&server, "get", ev, "/api/v1/events?incident=x", None, None).await.0, 400);

    let sum = "/api/v1/summary";
    let (_, s) = c
        .call(&server, "get", sum, "/api/v1/summary?since=2026-03-04T00:00:00Z&until=2026-03-05T00:00:00Z", None, None)
        .await;
    assert_eq!(s["events"]["failure"], 4);
    c.call(&server, "get", sum, "/api/v1/summary?window=15m&source=http", None, None).await;
    assert_eq!(c.call(&server, "get", sum, "/api/v1/summary?window=forever", None, None).await.0, 400);
    // Past the calendar's range (it was a panic and a dropped connection), or before 1970:
    // counted from 1970.
    for window in ["9999999999d", "3000000d"] {
        let path = format!("/api/v1/summary?window={window}");
        let (status, s) = c.call(&server, "get", sum, &path, None, None).await;
        assert_eq!(status, 200, "{window}");
        assert_eq!(s["since"], "1970-01-01T00:00:00Z", "{window}");
    }

    let (_, cat) = c.call(&server, "get", "/api/v1/catalogue", "/api/v1/catalogue", None, None).await;
    assert!(cat["count"].as_u64().unwrap() >= 357);
    let code = "/api/v1/catalogue/{code}";
    let (_, e) = c.call(&server, "get", code, "/api/v1/catalogue/50076", None, None).await;
    assert_eq!(e["category"], "mfa_required");
    c.call(&server, "get", code, "/api/v1/catalogue/AADSTS7000218", None, None).await;
    assert_eq!(c.call(&server, "get", code, "/api/v1/catalogue/1234567", None, None).await.0, 404);
    // Any text an entry id may be is an unknown id; anything else is no code at all.
    assert_eq!(c.call(&server, "get", code, "/api/v1/catalogue/abc", None, None).await.0, 404);
    assert_eq!(c.call(&server, "get", code, "/api/v1/catalogue/ours.x", None, None).await.0, 404);
    assert_eq!(c.call(&server, "get", code, "/api/v1/catalogue/a%20b", None, None).await.0, 400);
    // The catalogue takes no filters: one given is refused, not ignored.
    let list = "/api/v1/catalogue";
    assert_eq!(c.call(&server, "get", list, "/api/v1/catalogue?category=mfa_required", None, None).await.0, 400);
    assert_eq!(c.call(&server, "get", code, "/api/v1/catalogue/50076?x=1", None, None).await.0, 400);
    // A code's conditional entries come with it, and an entry is found by its id.
    let (_, e) = c.call(&server, "get", code, "/api/v1/catalogue/50126", None, None).await;
    assert_eq!(e["id"], "aadsts-50126");
    let conditional: Vec<&str> =
        e["conditional"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(conditional.contains(&"aadsts-50126-federated"), "{e}");
    let (_, e) = c.call(&server, "get", code, "/api/v1/catalogue/aadsts-50126-federated", None, None).await;
    assert_eq!(e["category"], "federation_unsupported");
    assert_eq!(c.call(&server, "get", code, "/api/v1/catalogue/okta-does-not-exist", None, None).await.0, 404);

    let cl = "/api/v1/classify";
    let (_, r) = c
        .call(
            &server,
            "post",
            cl,
            cl,
            Some(
                r#"{"message":"AADSTS50126: Error validating credentials due to invalid username or password."}"#
                    .into(),
            ),
            None,
        )
        .await;
    assert_eq!(r["category"], "invalid_credentials");
    let (_, r) = c.call(&server, "post", cl, cl, Some(r#"{"message":"nothing to see"}"#.into()), None).await;
    assert_eq!(r["category"], "unclassified");
    assert_eq!(c.call(&server, "post", cl, cl, Some("not json".into()), None).await.0, 400);
    assert_eq!(c.call(&server, "post", cl, cl, Some(r#"["AADSTS50126"]"#.into()), None).await.0, 400);
    // A page of many records lists the first thousand verdicts and says how many more.
    let many: Vec<String> = (0..1500).map(|i| format!(r#"{{\"id\":\"r{i}\",\"resultType\":\"50126\"}}"#)).collect();
    let body = format!(r#"{{"message":"[{}]"}}"#, many.join(","));
    let (_, r) = c.call(&server, "post", cl, cl, Some(body), None).await;
    assert_eq!((r["records"].as_array().map(Vec::len), r["records_omitted"].as_u64()), (Some(1000), Some(500)));
    // A body over a megabyte is refused: classify is for pasted text, not pushes.
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(1 << 20));
    assert_eq!(c.call(&server, "post", cl, cl, Some(big), None).await.0, 413);

    // Every documented operation was exercised (a new endpoint needs a conformance case).
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| (m.clone(), p.clone())))
        .collect();
    assert_eq!(documented, c.exercised);
    server.stop().await;
}

/// A request that outlives `server.request_timeout` (here a body that never finishes
/// arriving) is answered 408 in the contract's error shape, like every other error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_request_gets_the_json_error_shape() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path(), "[server]\nrequest_timeout = \"200ms\"\n").await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/v1/ingest/http HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{",
        )
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .expect("answered within 10 s")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.to_ascii_lowercase().contains("content-type: application/json"), "{reply}");
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {reply}"));
    assert_eq!(v["error"]["code"], "timeout");
    server.stop().await;
}

/// The bearer scheme name is case-insensitive (RFC 9110).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::in_dir(dir.path(), "[api]\ntoken = \"t0ken-t0ken\"\n").await;
    let url = format!("{}/api/v1/incidents/1/acknowledge", server.base);
    for (header, status) in [
        ("Bearer t0ken-t0ken", 404),
        ("bearer t0ken-t0ken", 404),
        ("BEARER t0ken-t0ken", 404),
        ("Basic t0ken-t0ken", 401),
        ("bearer wrong", 401),
        ("t0ken-t0ken", 401),
    ] {
        let r = server.client.post(&url).header("authorization", header).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{header}");
    }
    server.stop().await;
}
