//! Property tests: no input panics a decoder, chunking never changes the items, and a
//! checkpoint resumes exactly where it left off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use passportd::ingest::formats::{decode_bytes, DecodeOptions, DecodedItem, Format, StreamDecoder};
use proptest::prelude::*;

const FORMATS: [Format; 5] =
    [Format::Auto, Format::AzureDiagnostic, Format::AzureLoganalytics, Format::Graph, Format::Passport];

fn opts(format: Format, max: usize) -> DecodeOptions {
    DecodeOptions { format, max_record_bytes: max, ..DecodeOptions::default() }
}

/// Realistic pieces that streams are made of, to be concatenated in any order.
const PIECES: &[&str] = &[
    "{\"time\":\"2026-03-04T08:00:01Z\",\"resultType\":\"50126\",\"properties\":{\"id\":\"a\",\"status\":{\"errorCode\":50126}}}\n",
    "{\"records\":[{\"time\":\"2026-03-04T08:00:01Z\",\"resultType\":\"0\"},{\"resultType\":50076}]}\n",
    "{\n  \"@odata.context\": \"x\",\n  \"value\": [\n    {\"id\":\"g\",\"createdDateTime\":\"2026-03-04T08:00:00Z\",\"status\":{\"errorCode\":0}},\n    {\"id\":\"h\",\"status\":{\"errorCode\":50126}}\n  ],\n  \"@odata.nextLink\": \"y\"\n}\n",
    "[\n {\"TimeGenerated\":\"2026-03-04T08:00:00Z\",\"ResultType\":\"0\",\"Id\":\"r\"},\n 7\n]\n",
    "{\n  \"time\": \"2026-03-04T08:00:00Z\",\n  \"resultType\": \"50140\"\n}\n",
    "2026-03-04 08:15:02.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] AADSTS50126: bad\n",
    "   continuation line\n",
    "2026-03-04 08:15:02.123 E  SecurityAgent[612:26b7] [io.kandji.passport:auth] Authentication failed\n",
    "Filtering the log data using \"x\"\n",
    "{\"timestamp\":\"2026-03-04 08:15:02.123456-0800\",\"messageType\":\"Error\",\"subsystem\":\"io.kandji.passport\",\"eventMessage\":\"<private>\"}\n",
    "\n",
    "\r\n",
    "garbage line\n",
    "{\"broken\": \n",
    "{\"resultType\":\"0\"} trailing\n",
    "\u{feff}",
    "{\"time\":\"\u{e9}\",\"resultType\":\"0\"}",
    "TimeGenerated [UTC],ResultType,Status,Id\n2026-03-04T08:00:00Z,50126,\"{\"\"errorCode\"\":50126,\n\"\"x\"\":1}\",id\n",
    "\"a,\"\"b\"\"\",c\n",
];

fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => (0..PIECES.len()).prop_map(|i| PIECES[i].as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..12),
        ],
        0..12,
    )
    .prop_map(|v| v.concat())
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "[a-zA-Z0-9 :./\\-\"\\\\\n{}\\[\\]]{0,12}".prop_map(serde_json::Value::String),
        prop_oneof![
            Just("resultType"),
            Just("ResultType"),
            Just("status"),
            Just("records"),
            Just("value"),
            Just("eventMessage"),
            Just("properties"),
            Just("time"),
        ]
        .prop_map(|s| serde_json::Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("resultType".to_string()),
                        Just("ResultType".to_string()),
                        Just("status".to_string()),
                        Just("errorCode".to_string()),
                        Just("records".to_string()),
                        Just("value".to_string()),
                        Just("properties".to_string()),
                        Just("eventMessage".to_string()),
                        Just("time".to_string()),
                        Just("id".to_string()),
                        Just("subsystem".to_string()),
                        "[a-z@.]{1,8}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn feed_chunks(o: &DecodeOptions, bytes: &[u8], cuts: &[usize]) -> Vec<DecodedItem> {
    let mut d = StreamDecoder::new(o.clone());
    let mut out = Vec::new();
    let mut at = 0;
    for &c in cuts {
        let c = c.min(bytes.len()).max(at);
        d.feed(&bytes[at..c], &mut out);
        at = c;
    }
    d.feed(&bytes[at..], &mut out);
    d.finish(&mut out);
    out
}

fn cuts_for(len: usize, raw: Vec<usize>) -> Vec<usize> {
    let mut c: Vec<usize> = raw.into_iter().map(|x| x % (len + 1)).collect();
    c.sort_unstable();
    c
}

proptest! {

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), f in 0..5usize) {
        let _ = decode_bytes(&opts(FORMATS[f], 64), &bytes);
        let _ = decode_bytes(&opts(FORMATS[f], 1 << 20), &bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value(), pretty in any::<bool>(), f in 0..5usize) {
        let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) };
        let text = text.unwrap_or_default();
        let _ = decode_bytes(&opts(FORMATS[f], 1 << 20), text.as_bytes());
        let lines = format!("{text}\n{text}\n");
        let _ = decode_bytes(&opts(FORMATS[f], 40), lines.as_bytes());
    }

    #[test]
    fn chunking_never_changes_items(
        bytes in stream(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..8),
        f in 0..5usize,
        small in any::<bool>(),
    ) {
        let o = opts(FORMATS[f], if small { 48 } else { 1 << 20 });
        let whole = decode_bytes(&o, &bytes);
        let cuts = cuts_for(bytes.len(), raw_cuts);
        prop_assert_eq!(&feed_chunks(&o, &bytes, &cuts), &whole);
        // Byte by byte, and a split at any single position.
        let all: Vec<usize> = (0..bytes.len()).collect();
        prop_assert_eq!(&feed_chunks(&o, &bytes, &all), &whole);
    }

    #[test]
    fn checkpoint_resume_yields_exactly_the_rest(
        bytes in stream(),
        raw_cuts in prop::collection::vec(any::<usize>(), 1..6),
        f in 0..5usize,
        small in any::<bool>(),
    ) {
        let o = opts(FORMATS[f], if small { 48 } else { 1 << 20 });
        let whole = decode_bytes(&o, &bytes);
        let cuts = cuts_for(bytes.len(), raw_cuts);
        for &cut in &cuts {
            // Run up to `cut`, take the checkpoint, restart from it on the remaining bytes.
            let mut d = StreamDecoder::new(o.clone());
            let mut before = Vec::new();
            d.feed(&bytes[..cut], &mut before);
            let off = d.checkpoint_offset();
            let state = d.resume_state();
            prop_assert!(off as usize <= cut);
            let kept: Vec<DecodedItem> = before.into_iter().filter(|i| i.start_offset < off).collect();
            let mut r = StreamDecoder::resume(o.clone(), off, &state);
            let mut after = Vec::new();
            r.feed(&bytes[off as usize..], &mut after);
            r.finish(&mut after);
            let mut got = kept;
            got.extend(after);
            prop_assert_eq!(&got, &whole, "cut {} off {} state {}", cut, off, state);
        }
    }
}

#[test]
fn every_split_point_of_each_piece_decodes_once() {
    for p in PIECES {
        let b = p.as_bytes();
        for f in FORMATS {
            let o = opts(f, 1 << 20);
            let whole = decode_bytes(&o, b);
            for cut in 0..=b.len() {
                assert_eq!(feed_chunks(&o, b, &[cut]), whole, "{p:?} {f:?} cut {cut}");
            }
        }
    }
}
