//! A direct decoder for the common shape of a JSON record: the bytes straight into an
//! [`Obj`], without serde's visitor machinery.
//!
//! Why: decoding was nearly three quarters of the reader's instructions on Entra records
//! (2.7 KB, some 80 keys with the nested ones, most of them skipped), and ten times mtail
//! on those files needs the replay faster than a plain typed `serde_json` parse of the
//! same records. Reading the one shape it needs, with no visitor dispatch or error values
//! on the way, costs a fifth less (BENCHMARKS.md, twenty-fifth pass).
//!
//! It answers only for JSON it reads entirely, and gives the same `Obj` (and the same end
//! offset) that the serde path in `record.rs` gives: the same key matching (`field_of`),
//! the same slot rules (`Obj::slot`, last non-null wins), the same lenient scalars. For
//! anything else it answers `None` and the serde path decides: every error (so every error
//! message and `JsonFail` stays serde's), `records` / `value` lists, a lone UTF-16
//! surrogate escape in a string it keeps, a number other than a plain unsigned integer
//! where a field reads one, nesting deeper than [`MAX_DEPTH`]. A property test holds the two paths to the same
//! answer wherever this one gives one.

use std::borrow::Cow;

use super::record::{
    field_of, field_of_name, parse_code, set, space_control_or_non_ascii, DeviceDetail, LStr, Obj, Status, F,
};
use super::words::{bytes_below, bytes_equal};

/// Nesting this decoder reads; deeper values go to serde, whose own limit (128) then
/// applies as before.
const MAX_DEPTH: u32 = 64;

/// Decodes the object at the start of `text` (after any whitespace): the object and the
/// offset just past its closing brace, or `None` when the serde path must decide.
pub(crate) fn decode(text: &str) -> Option<(Box<Obj<'_>>, usize)> {
    let mut c = Cursor { text, b: text.as_bytes(), i: 0 };
    c.ws();
    if c.peek()? != b'{' {
        return None;
    }
    c.i += 1;
    let mut o = Box::<Obj<'_>>::default();
    c.object_into(&mut o, 1)?;
    Some((o, c.i))
}

struct Cursor<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

/// Marks the bytes of an eight-byte word that end a string's plain run: `"`, `\` or a
/// control byte (see `words.rs`: the first mark is the first such byte).
fn special_bytes(w: u64) -> u64 {
    bytes_equal(w, b'"') | bytes_equal(w, b'\\') | bytes_below(w, 0x20)
}

/// As [`special_bytes`], also marking spaces and bytes above ASCII: a key ended by its
/// quote with none of these is a plain name, which `field_of` matches as it stands.
fn key_special_bytes(w: u64) -> u64 {
    special_bytes(w) | space_control_or_non_ascii(w)
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    /// The four bytes serde's `parse_whitespace` skips.
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// The index of the next `"`, `\` or control byte from `at`.
    #[inline]
    fn next_special(&self, at: usize) -> Option<usize> {
        self.next_marked(at, special_bytes, |c| c == b'"' || c == b'\\' || c < 0x20)
    }

    /// The index of the first byte from `at` that `mark` marks (eight at a time), or that
    /// `is_marked` picks among the last few.
    #[inline(always)]
    fn next_marked(&self, mut at: usize, mark: fn(u64) -> u64, is_marked: fn(u8) -> bool) -> Option<usize> {
        while let Some(chunk) = self.b.get(at..).and_then(<[u8]>::first_chunk::<8>) {
            let hits = mark(u64::from_le_bytes(*chunk));
            if hits != 0 {
                return Some(at + (hits.trailing_zeros() / 8) as usize);
            }
            at += 8;
        }
        let rest = self.b.get(at..)?;
        rest.iter().position(|&c| is_marked(c)).map(|k| at + k)
    }

    /// A key at the cursor, and its field. A plain name (no escape, space, control byte or
    /// byte above ASCII, as nearly every key is) is matched as it stands.
    fn key(&mut self) -> Option<F> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let end = self.next_marked(start, key_special_bytes, |c| c == b'"' || c == b'\\' || c <= b' ' || c >= 0x80)?;
        if self.b[end] == b'"' {
            self.i = end + 1;
            return Some(field_of_name(&self.b[start..end]));
        }
        Some(field_of(&self.string()?))
    }

    /// A string at the cursor, unescaped: borrowed when it holds no escape, as serde
    /// borrows it.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let end = self.next_special(start)?;
        if self.b[end] == b'"' {
            self.i = end + 1;
            return self.text.get(start..end).map(Cow::Borrowed);
        }
        let mut out = String::with_capacity(end - start + 16);
        out.push_str(self.text.get(start..end)?);
        let mut at = end;
        loop {
            match self.b.get(at)? {
                b'"' => {
                    self.i = at + 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    at = self.unescape(at + 1, &mut out)?;
                }
                _ => return None,
            }
            let next = self.next_special(at)?;
            out.push_str(self.text.get(at..next)?);
            at = next;
        }
    }

    /// Reads the escape whose letter is at `at` into `out`; the index after it. A lone
    /// surrogate is serde's to reject (and `with_obj`'s to repair).
    fn unescape(&self, at: usize, out: &mut String) -> Option<usize> {
        let c = match self.b.get(at)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4(at + 1)?;
                let (c, len) = if (0xD800..0xDC00).contains(&unit) {
                    if self.b.get(at + 5..at + 7)? != b"\\u" {
                        return None;
                    }
                    let low = self.hex4(at + 7)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    (char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?, 11)
                } else {
                    (char::from_u32(unit)?, 5)
                };
                out.push(c);
                return Some(at + len);
            }
            _ => return None,
        };
        out.push(c);
        Some(at + 1)
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        self.b.get(at..at + 4)?.iter().try_fold(0u32, |n, &h| Some(n << 4 | char::from(h).to_digit(16)?))
    }

    /// Skips a string, checking its escapes as serde's `ignore_str` does (any `\uXXXX`).
    fn skip_string(&mut self) -> Option<()> {
        let mut at = self.i + 1;
        loop {
            at = self.next_special(at)?;
            match self.b[at] {
                b'"' => {
                    self.i = at + 1;
                    return Some(());
                }
                b'\\' => {
                    at += match self.b.get(at + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                        b'u' => {
                            self.hex4(at + 2)?;
                            6
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    /// A plain unsigned integer of at most 19 digits, which serde reads as the `u64` whose
    /// decimal text it is (JSON allows no leading zero).
    fn plain_uint(&mut self) -> Option<&'a str> {
        let start = self.i;
        let digits = self.b.get(start..)?.iter().take_while(|c| c.is_ascii_digit()).count();
        let leading_zero = digits > 1 && self.b[start] == b'0';
        // A fraction or exponent after the digits is left for the object's next byte,
        // which must be `,` or `}`, to turn away.
        if digits == 0 || digits > 19 || leading_zero {
            return None;
        }
        self.i = start + digits;
        self.text.get(start..self.i)
    }

    /// Skips a number of JSON's grammar: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn skip_number(&mut self) -> Option<()> {
        let b = self.b;
        let mut i = self.i;
        let digits_from = |i: usize| b.get(i..).map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int = digits_from(i);
        if int == 0 || (int > 1 && b[i] == b'0') {
            return None;
        }
        i += int;
        if b.get(i) == Some(&b'.') {
            let frac = digits_from(i + 1);
            if frac == 0 {
                return None;
            }
            i += 1 + frac;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let exp = digits_from(i);
            if exp == 0 {
                return None;
            }
            i += exp;
        }
        self.i = i;
        Some(())
    }

    /// Skips any value, checking it as serde's `ignore_value` does.
    fn skip(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => {
                self.i += 1;
                self.members(depth, |c, _, depth| c.skip(depth))
            }
            b'[' => {
                self.i += 1;
                let depth = deeper(depth)?;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip(depth)?;
                    self.ws();
                    match self.bump()? {
                        b',' => self.ws(),
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }

    /// Skips a value that a field reads as absent, where serde reads it as it is
    /// (`deserialize_any`): a number then is converted, and one out of `f64`'s range
    /// (`1e999`) is an error, which only a plain integer cannot be.
    fn skip_read_as_absent(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.plain_uint().map(drop),
            _ => self.skip(depth),
        }
    }

    /// The members of an object whose `{` was read: `each` is called with each key's field
    /// and the cursor at its value, which it reads. Inlined, so that `each` is inlined in
    /// turn: a call per member cost the Entra reader 3 % (BENCHMARKS.md, twenty-fifth pass).
    #[inline(always)]
    fn members(&mut self, depth: u32, mut each: impl FnMut(&mut Self, F, u32) -> Option<()>) -> Option<()> {
        let depth = deeper(depth)?;
        let mut first = true;
        while let Some(key) = self.member(&mut first)? {
            each(self, key, depth)?;
        }
        Some(())
    }

    /// Within an object whose `{` was read: the next key's field, with its colon and the
    /// whitespace after it read too, or `Some(None)` at the object's `}`.
    fn member(&mut self, first: &mut bool) -> Option<Option<F>> {
        self.ws();
        if std::mem::take(first) {
            if self.peek()? == b'}' {
                self.i += 1;
                return Some(None);
            }
        } else {
            match self.bump()? {
                b',' => self.ws(),
                b'}' => return Some(None),
                _ => return None,
            }
        }
        let key = self.key()?;
        // Compact JSON, with no whitespace around the colon, is the common case.
        if self.peek()? == b':' && !matches!(self.b.get(self.i + 1), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
            return Some(Some(key));
        }
        self.ws();
        if self.bump()? != b':' {
            return None;
        }
        self.ws();
        Some(Some(key))
    }

    /// As `LStr`'s visitor: strings, plain integers and booleans as text; `null`, objects
    /// and arrays as absent.
    fn lenient_str(&mut self, depth: u32) -> Option<LStr<'a>> {
        Some(LStr(match self.peek()? {
            b'"' => Some(self.string()?),
            b'n' => {
                self.literal(b"null")?;
                None
            }
            b't' => {
                self.literal(b"true")?;
                Some(Cow::Borrowed("true"))
            }
            b'f' => {
                self.literal(b"false")?;
                Some(Cow::Borrowed("false"))
            }
            // serde's text is `u64::to_string`, these same digits.
            b'0'..=b'9' => Some(Cow::Borrowed(self.plain_uint()?)),
            b'{' | b'[' => {
                self.skip(depth)?;
                None
            }
            _ => return None,
        }))
    }

    /// As `LCode`: the code a lenient scalar reads as.
    fn code(&mut self, depth: u32) -> Option<Option<u32>> {
        Some(self.lenient_str(depth)?.get().and_then(parse_code))
    }

    /// The members of an object whose `{` was read, into `o` (as `ObjInPlace`).
    fn object_into(&mut self, o: &mut Obj<'a>, depth: u32) -> Option<()> {
        self.members(depth, |c, key, depth| {
            o.fields += 1;
            match key {
                F::ResultType => {
                    o.result_type_seen = true;
                    if let Some(code) = c.code(depth)? {
                        o.result_type = Some(code);
                    }
                }
                F::Status => o.status = Some(c.status(depth)?),
                F::ProcessId => o.process_id = c.code(depth)?,
                F::Properties => {
                    if let Some(p) = c.properties(depth)? {
                        o.properties = Some(p);
                    }
                }
                F::Records | F::Value => return None,
                F::DeviceDetail => o.device_detail = Some(c.device_detail(depth)?),
                other => match o.slot(other) {
                    Some(slot) => set(slot, c.lenient_str(depth)?),
                    None => c.skip(depth)?,
                },
            }
            Some(())
        })
    }

    /// A value that a field reads as an object (`members` reads them, after the `{`), as
    /// JSON text of one (`text`), or as `absent` (anything else): as the visitors of
    /// `MaybeObj`, `Status` and `DeviceDetail`.
    fn object_or_text<T>(
        &mut self,
        depth: u32,
        members: impl FnOnce(&mut Self, u32) -> Option<T>,
        text: impl FnOnce(&str) -> T,
        absent: T,
    ) -> Option<T> {
        match self.peek()? {
            b'{' => {
                self.i += 1;
                members(self, depth)
            }
            b'"' => Some(text(&self.string()?)),
            _ => {
                self.skip_read_as_absent(depth)?;
                Some(absent)
            }
        }
    }

    /// `properties`: the nested sign-in.
    fn properties(&mut self, depth: u32) -> Option<Option<Box<Obj<'a>>>> {
        let members = |c: &mut Self, depth| {
            let mut p = Box::<Obj<'a>>::default();
            c.object_into(&mut p, depth)?;
            Some(Some(p))
        };
        self.object_or_text(depth, members, |s| Obj::from_json_text(s).map(Box::new), None)
    }

    fn status(&mut self, depth: u32) -> Option<Status<'a>> {
        let members = |c: &mut Self, depth| {
            let mut st = Status::default();
            c.members(depth, |c, key, depth| {
                match key {
                    F::ErrorCode => {
                        st.shaped = true;
                        if let Some(code) = c.code(depth)? {
                            st.error_code = Some(code);
                        }
                    }
                    F::FailureReason => {
                        st.shaped = true;
                        set(&mut st.failure_reason, c.lenient_str(depth)?);
                    }
                    F::AdditionalDetails => {
                        st.shaped = true;
                        set(&mut st.additional_details, c.lenient_str(depth)?);
                    }
                    _ => c.skip(depth)?,
                }
                Some(())
            })?;
            Some(st)
        };
        // The closure turns `Status<'static>` into `Status<'a>`, which the function
        // itself, as clippy would have it, does not.
        #[allow(clippy::redundant_closure)]
        self.object_or_text(depth, members, |s| Status::from_json_text(s), Status::default())
    }

    fn device_detail(&mut self, depth: u32) -> Option<DeviceDetail<'a>> {
        let members = |c: &mut Self, depth| {
            let mut dd = DeviceDetail::default();
            c.members(depth, |c, key, depth| match key {
                F::DisplayName => {
                    set(&mut dd.display_name, c.lenient_str(depth)?);
                    Some(())
                }
                _ => c.skip(depth),
            })?;
            Some(dd)
        };
        // As in `status`, the closure shortens the lifetime.
        #[allow(clippy::redundant_closure)]
        self.object_or_text(depth, members, |s| DeviceDetail::from_json_text(s), DeviceDetail::default())
    }
}

fn deeper(depth: u32) -> Option<u32> {
    (depth < MAX_DEPTH).then_some(depth + 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::ingest::formats::record::parse_with_serde;

    /// An answer in comparable terms: the object's debug text and its end.
    fn direct(text: &str) -> Option<(String, usize)> {
        decode(text).map(|(o, end)| (format!("{o:?}"), end))
    }

    fn by_serde(text: &str) -> Option<(String, usize)> {
        parse_with_serde(text)?.ok().map(|(o, end)| (format!("{o:?}"), end))
    }

    /// Holds the direct decoder to the serde path wherever it answers; whether it did.
    fn agrees(text: &str) -> bool {
        match direct(text) {
            Some(d) => {
                assert_eq!(Some(d), by_serde(text), "{text}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn every_shipped_and_sample_record_decodes_directly_as_serde_decodes_it() {
        let root = env!("CARGO_MANIFEST_DIR");
        let entra = std::fs::read_to_string(format!("{root}/examples/logs/entra/PT1H.json")).unwrap();
        let lines: Vec<&str> = entra.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(lines.len() > 20);
        for line in &lines {
            assert!(agrees(line), "not decoded directly: {line}");
        }
        let mut answered = 0;
        let mut files = 0;
        for dir in ["tests/fixtures/azure", "examples/logs/passport"] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let Ok(text) = std::fs::read_to_string(entry.unwrap().path()) else { continue };
                files += 1;
                // Whole files (pretty-printed objects, envelopes) and each line.
                agrees(&text);
                for line in text.lines() {
                    answered += usize::from(agrees(line));
                }
            }
        }
        assert!(files > 5 && answered > 50, "{files} files, {answered} lines decoded directly");
    }

    #[test]
    fn the_shapes_it_reads_give_what_serde_gives() {
        let cases = [
            r#"{}"#,
            r#"  {"time" : "2026-03-04T08:02:20Z" , "resultType":50126}  trailing"#,
            r#"{"resultType":"50126","ResultType":null,"RESULTTYPE":true}"#,
            r#"{"resultType":0,"processID":123,"processId":"x"}"#,
            r#"{"id":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00","upn":"é"}"#,
            r#"{"ti\u006de":"x","TIME ":"y"," identity":"z","caTégory":"w"}"#,
            r#"{"status":{"errorCode":50126,"failureReason":"Invalid","additionalDetails":null,"x":[1,{"y":-1.5e+3}]}}"#,
            r#"{"status":"{\"errorCode\":50076}","deviceDetail":"{\"displayName\":\"mac\"}"}"#,
            r#"{"status":"System.Collections.Hashtable","deviceDetail":7,"properties":false}"#,
            r#"{"status":null,"deviceDetail":{"displayName":"a","displayName":null},"status":[1,2]}"#,
            r#"{"properties":{"id":"p","status":{"errorCode":"50126.0"},"properties":{"id":"q"}},"properties":null}"#,
            r#"{"properties":"{\"id\":\"p\",\"createdDateTime\":\"2026-01-01T00:00:00Z\"}"}"#,
            r#"{"category":{"a":[]},"identity":[true,false,null,0,-0,0.5,1E9,"s"],"time":""}"#,
            r#"{"a":{},"b":[],"c":[[[]]],"d":{"e":{"f":{}}}}{"next":1}"#,
            "{\n\t\"time\":\r\n\"x\"\n}",
            // A lone surrogate in a skipped string: serde's `ignore_str` checks only the
            // four hex digits.
            r#"{"x":"\udc00","y":"\ud83d"}"#,
        ];
        for text in cases {
            assert!(agrees(text), "not decoded directly: {text}");
        }
    }

    /// What it leaves to serde, whose answer (an error, or a value this decoder does not
    /// build) stands.
    #[test]
    fn what_it_does_not_read_is_left_to_serde() {
        let cases = [
            r#"{"id":"a\ud83d"}"#,
            "{\"id\":\"a\u{1}b\"}",
            r#"{"a":[1,]}"#,
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"resultType":50126.0}"#,
            r#"{"status":1e999}"#,
            r#"{"properties":-1}"#,
            r#"{"resultType":-1}"#,
            r#"{"resultType":12345678901234567890}"#,
            r#"{"records":[{"id":"x"}]}"#,
            r#"{"value":[]}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":1"#,
            r#"[{"a":1}]"#,
            "",
        ];
        for text in cases {
            assert_eq!(direct(text), None, "{text}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(70), "]".repeat(70));
        assert_eq!(direct(&deep), None);
        assert!(by_serde(&deep).is_some());
    }

    /// JSON texts drawn from proptest's deterministic generator (the same cases every run)
    /// by hand-written rules, simpler here than a tree of strategies.
    struct Gen(proptest::test_runner::TestRng);

    impl Gen {
        fn new() -> Self {
            Gen(proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha))
        }
        fn next(&mut self) -> u64 {
            use proptest::prelude::Rng;
            self.0.next_u64()
        }
        fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
            from[(self.next() % from.len() as u64) as usize]
        }
        fn chance(&mut self, in_100: u64) -> bool {
            self.next() % 100 < in_100
        }
        fn ws(&mut self) -> &'static str {
            if self.chance(85) {
                ""
            } else {
                self.pick(&[" ", "\n", "\t ", "\r\n"])
            }
        }
        fn string(&mut self) -> String {
            let parts = ["plain", "é", "\\\"", "\\\\", "\\/", "\\n", "\\u00e9", "\\ud83d\\ude00", " x ", "", "50126"];
            let rare = ["\\ud83d", "\\q", "\u{1}", "\\u12g4"];
            let mut s = String::from("\"");
            for _ in 0..self.next() % 4 {
                s.push_str(if self.chance(3) { self.pick(&rare) } else { self.pick(&parts) });
            }
            s.push('"');
            s
        }
        fn value(&mut self, depth: u32) -> String {
            let scalars = [
                "0",
                "50126",
                "-5",
                "1.5",
                "50126.0",
                "1e3",
                "-0",
                "007",
                "99999999999999999999",
                "1e999",
                "-1E999",
                "true",
                "false",
                "null",
            ];
            match self.next() % if depth > 3 { 3 } else { 6 } {
                0 => self.pick(&scalars).to_string(),
                1 | 2 => self.string(),
                3 => self.object(depth + 1),
                4 => {
                    let n = self.next() % 4;
                    let items: Vec<String> = (0..n).map(|_| self.value(depth + 1)).collect();
                    format!("[{}{}]", self.ws(), items.join(","))
                }
                _ => match self.next() % 3 {
                    0 => "\"{\\\"errorCode\\\":50126,\\\"failureReason\\\":\\\"x\\\"}\"".into(),
                    1 => "\"{\\\"displayName\\\":\\\"mac\\\",\\\"id\\\":\\\"p\\\"}\"".into(),
                    _ => "\"System.Collections.Hashtable\"".into(),
                },
            }
        }
        fn object(&mut self, depth: u32) -> String {
            let keys = [
                "resultType",
                "RESULTTYPE",
                "status",
                "Status",
                "properties",
                "deviceDetail",
                "errorCode",
                "failureReason",
                "additionalDetails",
                "displayName",
                "time",
                "createdDateTime",
                "id",
                "eventMessage",
                "processID",
                "category",
                "identity",
                "ti\\u006de",
                " time",
                "catégory",
                "other",
                "x y",
                "records",
                "time\u{a0}",
                "\u{3000}category",
                "\u{85}id",
            ];
            let n = self.next() % 6;
            let members: Vec<String> = (0..n)
                .map(|_| {
                    let key = self.pick(&keys);
                    let (a, b, c) = (self.ws(), self.ws(), self.ws());
                    format!("{a}\"{key}\"{b}:{c}{}", self.value(depth))
                })
                .collect();
            format!("{{{}{}}}", members.join(","), self.ws())
        }
    }

    /// Generated objects, and copies with a character deleted, inserted or replaced, or
    /// cut short: wherever the direct decoder answers, serde gives the same object and end.
    #[test]
    fn on_generated_and_damaged_objects_it_answers_only_as_serde_does() {
        let mut g = Gen::new();
        let (mut whole, mut answered) = (0, 0);
        for _ in 0..20_000 {
            let text = g.object(0);
            whole += 1;
            answered += usize::from(agrees(&text));
            let mut chars: Vec<char> = text.chars().collect();
            let at = (g.next() % (chars.len() as u64 + 1)) as usize;
            let put = g.pick(&["{", "}", "[", "]", ",", ":", "\"", "\\", " ", "0", "-", ".", "e", "n", "\u{0}", "é"]);
            match g.next() % 4 {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 => chars.insert(at, put.chars().next().unwrap()),
                2 if at < chars.len() => chars[at] = put.chars().next().unwrap(),
                _ => chars.truncate(at),
            }
            agrees(&chars.into_iter().collect::<String>());
        }
        // Most whole objects are read directly: the comparison above is not vacuous.
        assert!(answered * 3 > whole, "{answered} of {whole}");
    }
}
