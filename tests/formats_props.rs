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
    feed_decoder(StreamDecoder::new(o.clone()), bytes, cuts)
}

/// Feeds `bytes` to `d` cut at `cuts`, then finishes it.
fn feed_decoder(mut d: StreamDecoder, bytes: &[u8], cuts: &[usize]) -> Vec<DecodedItem> {
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

/// A reader that hands `bytes` out in pieces of the given sizes (then the rest), never
/// more than the caller asks for: short reads, as pipes and growing files give.
struct Pieces<'a> {
    bytes: &'a [u8],
    sizes: std::vec::IntoIter<usize>,
}

impl std::io::Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let piece = self.sizes.next().unwrap_or(self.bytes.len()).max(1);
        let n = piece.min(buf.len()).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// Reads `bytes` through `feed_from` in short reads of at most `max` bytes, with a
/// `feed` of the first `fed` bytes first; returns the items and every byte `seen` saw.
fn read_through(
    o: &DecodeOptions,
    bytes: &[u8],
    fed: usize,
    sizes: Vec<usize>,
    max: usize,
) -> (Vec<DecodedItem>, Vec<u8>) {
    let mut d = StreamDecoder::new(o.clone());
    let mut out = Vec::new();
    let fed = fed.min(bytes.len());
    d.feed(&bytes[..fed], &mut out);
    let mut seen = bytes[..fed].to_vec();
    let mut src = Pieces { bytes: &bytes[fed..], sizes: sizes.into_iter() };
    while d.feed_from(&mut src, max, |b| seen.extend_from_slice(b), &mut out).expect("in-memory read") > 0 {}
    d.finish(&mut out);
    (out, seen)
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
    fn reading_into_the_decoder_gives_the_items_of_feeding_it(
        bytes in stream(),
        sizes in prop::collection::vec(1..64usize, 0..16),
        fed in any::<usize>(),
        max in 1..40usize,
        f in 0..5usize,
        small in any::<bool>(),
    ) {
        let o = opts(FORMATS[f], if small { 48 } else { 1 << 20 });
        let whole = decode_bytes(&o, &bytes);
        let (items, seen) = read_through(&o, &bytes, fed % (bytes.len() + 1), sizes, max);
        prop_assert_eq!(&items, &whole);
        prop_assert_eq!(&seen, &bytes);
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

// The chatter prefilter (Passport records skipped from their raw bytes) must give exactly
// the items of the full decoder: same failures, successes, redactions, parse errors.

/// Message texts: chatter, every kind of outcome anchor in drifting case, escapes that
/// spell an anchor only once decoded, token-endpoint bodies, non-ASCII.
const MESSAGES: &[&str] = &[
    "Presenting Passport login window",
    "Loaded configuration profile io.kandji.passport (version 14)",
    "POST https://login.microsoftonline.com/x/oauth2/v2.0/token",
    "AADSTS50126: Error validating credentials due to invalid username or password.",
    "aadsts50126 in lower case",
    "AaDsTs50076 drift",
    "Authentication FAILED for bob@contoso.example",
    "Authentication Succeeded for carol.2702@contoso.example",
    "Login successful",
    "<private>",
    "  <private>  ",
    "<PRIVATE>",
    "token request failed",
    "INVALID_GRANT",
    "Interaction_Required",
    "unauthorized_client",
    "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS50126: x\",\"error_codes\":[50126]}",
    "Token body {\"error_codes\":[50076]}",
    "Fault",
    "Using the default identity provider",
    "fail",
    "SUCCE",
    "The credentials provided were invalid.",
    // Catalogue failure texts with none of the prefilter's anchors: a failure when the
    // record names no level.
    "Your account is locked.",
    "You must use multi-factor authentication to access this resource",
    // A failure text whose pattern has a gap (`.{0,200}?`): a bad byte inside it reads
    // as `?` once decoded, which the gap matches.
    "User does not exist in tenant 'Contoso' and cannot access the application",
    "Keychain item created é ü 日本",
    "Correlation ID: 11111111-2222-3333-4444-555555555555",
    "Passport: user signed in successfully",
    "",
];

/// JSON spellings of a message that decode to an anchor the raw bytes do not show.
const ESCAPED: &[&str] = &[
    "\\u0041ADSTS50126: hidden code",
    "\\u0061adsts",
    "Authentication fa\\u0069led",
    "login succ\\u0065eded",
    "\\u003cprivate\\u003e",
    "\\u003cprivate>",
    "\\\"error\\\":\\\"invalid_grant\\\"",
    "plain\\ttab",
    "line\\nbreak AADSTS50058",
];

fn message_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0..MESSAGES.len()).prop_map(|i| serde_json::to_string(MESSAGES[i]).unwrap_or_default()),
        2 => (0..ESCAPED.len()).prop_map(|i| format!("\"{}\"", ESCAPED[i])),
        1 => prop_oneof![
            Just("null".to_string()),
            Just("50126".to_string()),
            Just("1.5e3".to_string()),
            Just("true".to_string()),
            Just("{\"a\":\"AADSTS50126\"}".to_string()),
            Just("[\"fail\"]".to_string()),
        ],
        1 => "[ -~]{0,16}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
    ]
}

/// How an ndjson line's keys and members are separated: in place of `": "` and `, "`
/// (`log show`'s own spacing, listed twice to come up most often).
const SEPARATORS: &[(&str, &str)] =
    &[("\": ", ", \""), ("\": ", ", \""), ("\":", ",\""), ("\" : ", " , \""), ("\":\t", ",\t\""), ("\":  ", ",  \"")];

fn ndjson_line() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        6 => Just("eventMessage"),
        1 => Just("EVENTMESSAGE"),
        1 => Just("eventmessage"),
        1 => Just("event\\u004dessage"),
        1 => Just(" eventMessage"),
        1 => Just("message"),
    ];
    let mtype = prop_oneof![
        Just("Default"),
        Just("DEFAULT"),
        Just("Info"),
        Just("Debug"),
        Just("Error"),
        Just("ERROR"),
        Just("fault"),
        Just(" Fault "),
        Just("\u{a0}Fault"),
        Just("E"),
        Just("F"),
        // No level once decoded: a catalogue failure text then counts.
        Just(""),
        Just("  "),
        Just("\u{3000}"),
    ];
    let extra = prop_oneof![
        Just("\"traceID\": 0".to_string()),
        Just("\"processID\": 612".to_string()),
        Just("\"machTimestamp\": 6311280380650".to_string()),
        Just("\"n\": 01".to_string()),
        Just("\"n\": -0".to_string()),
        Just("\"n\": 1.25".to_string()),
        Just("\"n\": 123456789012345678901234".to_string()),
        Just("\"n\": 1e999".to_string()),
        Just("\"source\": null".to_string()),
        Just("\"b\": truex".to_string()),
        Just("\"properties\": {\"eventMessage\": \"x\", \"a\": [1, {\"b\": []}]}".to_string()),
        Just("\"resultType\": \"0\"".to_string()),
        Just("\"records\": []".to_string()),
        Just("\"senderImagePath\": \"/Library/Security/SecurityAgentPlugins/KandjiPassport.bundle/Contents/MacOS/KandjiPassport\"".to_string()),
        Just("\"processImagePath\": \"/usr/libexec/other\"".to_string()),
        Just("\"subsystem\": \"com.apple.xpc\"".to_string()),
        Just("\"timestamp\": \"2026-03-04 08:15:02.123456-0800\"".to_string()),
        Just("\"timestamp\": \"not a time\"".to_string()),
        Just("\"category\": \"auth\"\t".to_string()),
        Just("\"c\": \"\u{e9}\"".to_string()),
        // Message types that leave the level as it was, set one, or are not one at all.
        Just("\"messageType\": null".to_string()),
        Just("\"messageType\": \"\"".to_string()),
        Just("\"messageType\": \"Debug\"".to_string()),
        Just("\"MessageType\": 3".to_string()),
        Just("\"messageType\": [\"Debug\"]".to_string()),
        Just("\" messageType \": \"Info\"".to_string()),
        Just("\"messageType [level]\": \"Info\"".to_string()),
        Just("\"messageTypes\": \"Info\"".to_string()),
        Just("\"a\": {\"messageType\": \"Debug\"}".to_string()),
    ];
    // Whose record it is: Passport's own (what the matcher counts) most of the time, so
    // that what the prefilter skips is mostly what the decoder would have counted.
    let who = prop_oneof![
        6 => Just(Some("\"subsystem\": \"io.kandji.passport\"")),
        1 => Just(Some("\"senderImagePath\": \"/Library/Security/SecurityAgentPlugins/KandjiPassport.bundle/Contents/MacOS/KandjiPassport\"")),
        2 => Just(None),
    ];
    (
        (key, who),
        message_value(),
        prop::option::of(mtype),
        prop::collection::vec(extra, 0..5),
        any::<usize>(),
        prop_oneof![Just(""), Just("\r"), Just(" trailing"), Just(" \u{ff}"), Just("\u{1}")],
        prop_oneof![
            8 => Just(None),
            1 => Just(Some(b"\xff".to_vec())),
            1 => Just(Some(b"\xc3".to_vec())),
            1 => Just(Some(b"\x01".to_vec()))
        ],
        (any::<bool>(), 0..SEPARATORS.len()),
    )
        .prop_map(|((key, who), msg, mtype, mut extra, at, tail, raw, (close, separators))| {
            let mut fields = vec![format!("\"{key}\": {msg}")];
            fields.extend(who.map(str::to_string));
            if let Some(t) = mtype {
                fields.push(format!("\"messageType\": \"{t}\""));
            }
            fields.append(&mut extra);
            let n = fields.len();
            fields.rotate_left(at % n);
            // `log show` writes `": "` and `", "`; other writers space them otherwise.
            let (colon, comma) = SEPARATORS[separators];
            let line = format!("{{{}", fields.join(", ")).replace("\": ", colon).replace(", \"", comma);
            let mut line = line.into_bytes();
            if let Some(r) = raw {
                // A stray byte inside the last value or after it.
                let k = line.len().saturating_sub(2);
                line.splice(k..k, r);
            }
            if close {
                line.push(b'}');
            }
            line.extend_from_slice(tail.as_bytes());
            line.push(b'\n');
            line
        })
}

fn text_record() -> impl Strategy<Value = Vec<u8>> {
    let head = prop_oneof![
        Just("  localhost SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] ".to_string()),
        Just("  mac-17 SecurityAgent[612]: (Other) [com.apple.xpc:x] ".to_string()),
        prop_oneof![
            Just("E"), Just("Er"), Just("F"), Just("Ft"), Just("Df"), Just("I"), Just("D"), Just("e"), Just("Error")
        ]
        .prop_map(|t| format!(" {t}  SecurityAgent[612:26b7] [io.kandji.passport:auth] ")),
        prop_oneof![Just("Error"), Just("Default"), Just("fault"), Just("Info")]
            .prop_map(|t| format!(" 0x26b7     {t}       0x0                  612    0    SecurityAgent: (KandjiPassport) [io.kandji.passport:auth] ")),
        Just(" ".to_string()),
        Just(" E".to_string()),
    ];
    let ts = prop_oneof![
        Just("2026-03-04 08:15:02.123456-0800"),
        Just("2026-03-04 08:15:02.123"),
        Just("2026-03-04T08:15:02Z"),
    ];
    (
        ts,
        head,
        (0..MESSAGES.len()),
        prop::collection::vec((0..MESSAGES.len()).prop_map(|i| format!("   {}", MESSAGES[i])), 0..2),
        prop_oneof![Just("\n"), Just("\r\n")],
        prop_oneof![6 => Just(None), 1 => Just(Some(b"\xc3".to_vec())), 2 => Just(Some(b"\xff".to_vec()))],
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(ts, head, m, cont, nl, raw, inside)| {
            let mut r = format!("{ts}{head}{}{nl}", MESSAGES[m]).into_bytes();
            if let Some(b) = raw {
                // At the end of the line, or anywhere in the message.
                let end = r.len() - nl.len();
                let k = inside.map_or(end, |i| end - i.index(MESSAGES[m].len() + 1));
                r.splice(k..k, b);
            }
            for c in cont {
                r.extend_from_slice(c.as_bytes());
                r.extend_from_slice(nl.as_bytes());
            }
            r
        })
}

fn passport_stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => ndjson_line(),
            3 => text_record(),
            1 => (0..PIECES.len()).prop_map(|i| PIECES[i].as_bytes().to_vec()),
            1 => prop::collection::vec(ndjson_line(), 1..3).prop_map(|v| {
                // A `--style json` array of the same objects.
                let elems: Vec<Vec<u8>> = v.into_iter().map(|mut l| { l.pop(); l }).collect();
                let mut a = b"[".to_vec();
                a.extend(elems.join(&b",\n"[..]));
                a.extend_from_slice(b"]\n");
                a
            }),
        ],
        0..10,
    )
    .prop_map(|v| v.concat())
}

fn decode_with(o: &DecodeOptions, bytes: &[u8], prefilter: bool, cuts: &[usize]) -> Vec<DecodedItem> {
    let mut d = StreamDecoder::new(o.clone());
    d.set_prefilter(prefilter);
    feed_decoder(d, bytes, cuts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn prefilter_gives_the_items_of_the_full_decoder(
        bytes in passport_stream(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..4),
        passport in any::<bool>(),
        small in any::<bool>(),
    ) {
        let f = if passport { Format::Passport } else { Format::Auto };
        let o = opts(f, if small { 200 } else { 1 << 20 });
        let cuts = cuts_for(bytes.len(), raw_cuts);
        let slow = decode_with(&o, &bytes, false, &cuts);
        let fast = decode_with(&o, &bytes, true, &cuts);
        prop_assert_eq!(&fast, &slow, "{}", String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn prefilter_equivalence_covers_both_paths() {
    // The generators must produce chatter that the prefilter skips and records it must
    // leave to the decoder, or the property above proves nothing.
    let chatter = "{\"timestamp\": \"2026-03-03 16:00:00.018000-0800\", \"messageType\": \"Debug\", \"subsystem\": \"io.kandji.passport\", \"eventMessage\": \"Presenting Passport login window\", \"traceID\": 0}\n\
        2026-03-04 08:15:02.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:ui] Presenting Passport login window\n";
    let o = opts(Format::Auto, 1 << 20);
    let fast = decode_with(&o, chatter.as_bytes(), true, &[]);
    let slow = decode_with(&o, chatter.as_bytes(), false, &[]);
    assert_eq!(fast, slow);
    assert_eq!(fast.len(), 2);
    assert!(fast.iter().all(|i| i.kind == passportd::ingest::formats::ItemKind::Skipped));
}

#[test]
fn a_record_that_is_not_utf8_is_read_as_the_decoder_reads_it() {
    // A level-less line whose bad byte sits inside a catalogue failure text's gap: the
    // decoder reads the byte as `?`, which the gap matches, and counts a failure; the
    // raw byte would not have matched it.
    let line = b"2026-03-04 08:15:02.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] User does not exist in tenant 'Contos\xff' and cannot access the application\n";
    let o = opts(Format::Auto, 1 << 20);
    let fast = decode_with(&o, line, true, &[]);
    assert_eq!(fast, decode_with(&o, line, false, &[]));
    assert_eq!(fast.len(), 1);
    assert!(matches!(fast[0].kind, passportd::ingest::formats::ItemKind::SignIn(_)), "{:?}", fast[0].kind);
}
