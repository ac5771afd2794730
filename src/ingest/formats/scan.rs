//! Byte-level framing helpers: an incremental JSON value scanner, the envelope sniffer,
//! banner detection and the CSV cell splitter.

use std::borrow::Cow;

/// Finds where one JSON value ends without parsing it, across any number of chunks.
///
/// It tracks only nesting depth and string state, so it accepts some invalid JSON (the
/// decoder that runs on the framed bytes reports that); what it guarantees is that the
/// frame ends where a valid value would.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Scanner {
    depth: u32,
    in_str: bool,
    esc: bool,
    started: bool,
    bare: bool,
    /// The value is known to lie on one line (`on_one_line`): any raw newline ends it.
    one_line: bool,
}

/// What a scan step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The value ends just before this index of the slice given.
    Done(usize),
    /// The slice ended inside the value.
    More,
    /// A raw newline inside a string at this index: valid JSON never has one, so this is a
    /// broken line rather than a value spanning lines.
    Abort(usize),
}

fn is_delim(c: u8) -> bool {
    matches!(c, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n')
}

impl Scanner {
    /// Positioned just inside an object whose `{` was already consumed.
    pub fn inside_object() -> Self {
        Self { depth: 1, started: true, ..Self::default() }
    }

    /// For a value inside one line (many records on a line too long for one): a raw newline
    /// anywhere, not only inside a string, aborts it, so a record cut short inside a nested
    /// object costs that line, not every line after it.
    pub fn on_one_line() -> Self {
        Self { one_line: true, ..Self::default() }
    }

    /// Continues the scan over the next bytes of the value.
    pub fn scan(&mut self, b: &[u8], abort_on_newline: bool) -> Scan {
        let mut i = 0;
        if !self.started {
            let Some(&c) = b.first() else {
                return Scan::More;
            };
            self.started = true;
            match c {
                b'{' | b'[' => {
                    self.depth = 1;
                    i = 1;
                }
                b'"' => {
                    self.in_str = true;
                    i = 1;
                }
                _ => self.bare = true,
            }
        }
        if self.bare {
            return match b.iter().position(|&c| is_delim(c)) {
                Some(k) => Scan::Done(k),
                None => Scan::More,
            };
        }
        while i < b.len() {
            if self.in_str {
                if self.esc {
                    self.esc = false;
                    i += 1;
                    continue;
                }
                match memchr::memchr3(b'"', b'\\', b'\n', &b[i..]) {
                    None => return Scan::More,
                    Some(k) => {
                        let j = i + k;
                        match b[j] {
                            b'"' => {
                                self.in_str = false;
                                i = j + 1;
                                if self.depth == 0 {
                                    return Scan::Done(i);
                                }
                            }
                            b'\\' => {
                                self.esc = true;
                                i = j + 1;
                            }
                            _ => {
                                if abort_on_newline {
                                    return Scan::Abort(j);
                                }
                                i = j + 1;
                            }
                        }
                    }
                }
            } else {
                let c = b[i];
                i += 1;
                match c {
                    b'"' => self.in_str = true,
                    b'\n' if self.one_line => return Scan::Abort(i - 1),
                    b'{' | b'[' => self.depth = self.depth.saturating_add(1),
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            return Scan::Done(i);
                        }
                    }
                    _ => {}
                }
            }
        }
        Scan::More
    }
}

/// Which envelope key holds the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniff {
    /// `{"records": [` / `{"@odata...": .., "value": [`: the `[` is at this index.
    Envelope(usize),
    /// An ordinary object.
    No,
    /// Cannot tell from the bytes so far.
    NeedMore,
}

/// How far into an object the envelope sniffer looks. Fixed, so that the answer never
/// depends on how the stream was chunked.
pub(crate) const SNIFF_LIMIT: usize = 4096;

fn skip_ws(b: &[u8], mut i: usize, lim: usize) -> usize {
    while i < lim && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// End (index of the closing quote) of a string whose opening quote is at `start`.
fn string_end(b: &[u8], start: usize, lim: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < lim {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Tells an Event Hubs / Graph envelope from an ordinary object, given bytes from its `{`.
/// Envelopes are recognised only when `records` / `value` comes first or after
/// `@odata.*` annotations with scalar values, which is how every producer writes them.
pub(crate) fn sniff_envelope(b: &[u8], eof: bool) -> Sniff {
    let lim = b.len().min(SNIFF_LIMIT);
    let more = if b.len() >= SNIFF_LIMIT || eof { Sniff::No } else { Sniff::NeedMore };
    let mut i = 1;
    loop {
        i = skip_ws(b, i, lim);
        if i >= lim {
            return more;
        }
        if b[i] != b'"' {
            return Sniff::No;
        }
        let Some(ke) = string_end(b, i, lim) else {
            return more;
        };
        let key = &b[i + 1..ke];
        i = skip_ws(b, ke + 1, lim);
        if i >= lim {
            return more;
        }
        if b[i] != b':' {
            return Sniff::No;
        }
        i = skip_ws(b, i + 1, lim);
        if i >= lim {
            return more;
        }
        if key.eq_ignore_ascii_case(b"records") || key.eq_ignore_ascii_case(b"value") {
            return if b[i] == b'[' { Sniff::Envelope(i) } else { Sniff::No };
        }
        if !key.starts_with(b"@") {
            return Sniff::No;
        }
        if b[i] == b'"' {
            let Some(e) = string_end(b, i, lim) else {
                return more;
            };
            i = e + 1;
        } else if matches!(b[i], b'{' | b'[') {
            return Sniff::No;
        } else {
            while i < lim && !is_delim(b[i]) {
                i += 1;
            }
        }
        i = skip_ws(b, i, lim);
        if i >= lim {
            return more;
        }
        if b[i] != b',' {
            return Sniff::No;
        }
        i += 1;
    }
}

/// Lines that `log show` / `log stream` print around the records.
pub(crate) fn is_banner(line: &[u8]) -> bool {
    let l = trim_ascii(line);
    l.starts_with(b"Filtering the log data")
        || l.starts_with(b"Timestamp ")
        || l.starts_with(b"Skipping info and debug messages")
        || is_rule(l)
        // syslogd's (`/var/log/system.log`) note that the line before it came again: not
        // part of that message, which would then read differently from its other copies.
        || (l.starts_with(b"--- last message repeated ") && l.ends_with(b" ---"))
        || (l.starts_with(b"Log ") && memchr::memmem::find(l, b"Default:").is_some())
        || (l.starts_with(b"Activity ") && memchr::memmem::find(l, b"Create:").is_some())
}

/// A line of only dashes or equals signs (at least three): the rule `log show` prints
/// before its closing counts.
pub(crate) fn is_rule(line: &[u8]) -> bool {
    let l = trim_ascii(line);
    l.len() >= 3 && l.iter().all(|&c| c == b'-' || c == b'=')
}

/// ASCII whitespace trimmed both sides.
pub(crate) fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// Splits one CSV record (RFC 4180: quoted cells, doubled quotes, newlines inside quotes).
/// `None` when a quote is left open.
pub(crate) fn csv_cells(row: &str) -> Option<Vec<Cow<'_, str>>> {
    let b = row.as_bytes();
    let mut cells = Vec::new();
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'"') {
            i += 1;
            let mut seg = i;
            let mut owned: Option<String> = None;
            loop {
                let k = memchr::memchr(b'"', &b[i..])?;
                let j = i + k;
                if b.get(j + 1) == Some(&b'"') {
                    owned.get_or_insert_with(String::new).push_str(&row[seg..=j]);
                    i = j + 2;
                    seg = i;
                } else {
                    let cell = match owned {
                        Some(mut s) => {
                            s.push_str(&row[seg..j]);
                            Cow::Owned(s)
                        }
                        None => Cow::Borrowed(&row[seg..j]),
                    };
                    cells.push(cell);
                    i = j + 1;
                    break;
                }
            }
            // Anything between the closing quote and the next comma is not valid CSV; skip it.
            match memchr::memchr(b',', &b[i..]) {
                Some(k) => i += k + 1,
                None => break,
            }
            if i == b.len() {
                cells.push(Cow::Borrowed(""));
                break;
            }
        } else {
            match memchr::memchr(b',', &b[i..]) {
                Some(k) => {
                    cells.push(Cow::Borrowed(&row[i..i + k]));
                    i += k + 1;
                    if i == b.len() {
                        cells.push(Cow::Borrowed(""));
                        break;
                    }
                }
                None => {
                    cells.push(Cow::Borrowed(&row[i..]));
                    break;
                }
            }
        }
    }
    Some(cells)
}

/// Number of newlines in `b`.
pub(crate) fn count_nl(b: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', b).count() as u64
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn scanner_across_chunks() {
        let v = br#"{"a":"x}\"y","b":[1,{"c":2}]} trailing"#;
        for split in 0..v.len() {
            let mut s = Scanner::default();
            let r = match s.scan(&v[..split], true) {
                Scan::Done(n) => n,
                Scan::More => match s.scan(&v[split..], true) {
                    Scan::Done(n) => split + n,
                    other => panic!("{other:?}"),
                },
                Scan::Abort(_) => panic!("abort"),
            };
            assert_eq!(r, v.len() - " trailing".len(), "split {split}");
        }
        let mut s = Scanner::default();
        assert_eq!(s.scan(b"{\"a\":\"x\ny\"}", true), Scan::Abort(7));
        let mut s = Scanner::default();
        assert_eq!(s.scan(b"123,", true), Scan::Done(3));
        let mut s = Scanner::default();
        assert_eq!(s.scan(b"\"a\\\"b\",", true), Scan::Done(6));
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff_envelope(br#"{"records": [{}]}"#, false), Sniff::Envelope(12));
        assert_eq!(sniff_envelope(b"{\n  \"@odata.context\": \"x\",\n  \"value\": [", false), Sniff::Envelope(38));
        assert_eq!(sniff_envelope(br#"{"time": "x"}"#, false), Sniff::No);
        assert_eq!(sniff_envelope(br#"{"@odata.context": "x"#, false), Sniff::NeedMore);
        assert_eq!(sniff_envelope(br#"{"@odata.context": "x"#, true), Sniff::No);
        assert_eq!(sniff_envelope(br#"{"value": 3}"#, false), Sniff::No);
    }

    #[test]
    fn csv() {
        let c = csv_cells(
            r#"a,"b ""q"", c",,"multi
line",x,"#,
        )
        .unwrap();
        assert_eq!(c, vec!["a", "b \"q\", c", "", "multi\nline", "x", ""]);
        assert!(csv_cells(r#"a,"open"#).is_none());
    }
}
