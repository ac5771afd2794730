// Shared by every target: decode whole, then again split at a data-chosen point and in
// small chunks; the items must match (chunking never changes what a stream decodes to).
use passportd::ingest::formats::{decode_bytes, DecodeOptions, Format, StreamDecoder};

pub fn check(format: Format, data: &[u8]) {
    let Some((&knob, data)) = data.split_first() else {
        return;
    };
    let opts = DecodeOptions {
        format,
        max_record_bytes: if knob & 1 == 0 { 64 } else { 1 << 20 },
        ..DecodeOptions::default()
    };
    let whole = decode_bytes(&opts, data);
    let step = usize::from(knob >> 1).max(1);
    let mut d = StreamDecoder::new(opts);
    let mut out = Vec::new();
    for c in data.chunks(step) {
        d.feed(c, &mut out);
    }
    d.finish(&mut out);
    assert_eq!(out, whole);
}
