//! Lenient timestamp parsing for every spelling the inputs use.
//!
//! Accepted (all normalized to UTC):
//! - ISO-8601 / RFC 3339 with `T` or a space, 0–9 fractional digits (more are truncated),
//!   `Z`, `±HH:MM`, `±HHMM`, `±HH` or no zone (→ the stream's `default_tz`);
//! - the US spelling of the portal and some exports: `M/D/YYYY[,] H:MM[:SS[.fff]] [AM|PM] [±HH:MM]`;
//! - .NET's JSON date, `/Date(1772640902000)/` (milliseconds since the epoch, UTC, with an
//!   optional `±HHMM` that only says where it was written), as Windows PowerShell 5.1's
//!   `ConvertTo-Json` writes every date of a Graph or Log Analytics export.
//!
//! Anything else gives `None`: a record whose time is there but unreadable is an
//! `invalid_timestamp` parse error (its callers), not a sign-in placed at the time it
//! was read, which would put an old failure into today's incidents.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Parses any supported spelling; `None` when it is none of them.
pub fn parse_timestamp(s: &str, default_tz: Tz) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let b = s.as_bytes();
    if let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        parse_dotnet(inner)
    } else if b.len() >= 10 && b[4] == b'-' {
        parse_iso(b, default_tz)
    } else if b.contains(&b'/') {
        parse_us(s, default_tz)
    } else {
        None
    }
}

/// The inside of `/Date(…)/`: milliseconds since the epoch, then an optional `±HHMM`.
fn parse_dotnet(inner: &str) -> Option<DateTime<Utc>> {
    let digits_end = inner
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(inner.len(), |(i, _)| i);
    let (ms, zone) = inner.split_at(digits_end);
    let zone_ok = zone.is_empty()
        || (zone.len() == 5
            && (zone.starts_with('+') || zone.starts_with('-'))
            && zone[1..].bytes().all(|d| d.is_ascii_digit()));
    if !zone_ok {
        return None;
    }
    Utc.timestamp_millis_opt(ms.parse().ok()?).single()
}

/// Reads exactly `n` ASCII digits at `*i`.
fn digits(b: &[u8], i: &mut usize, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for _ in 0..n {
        let d = *b.get(*i)?;
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(d - b'0');
        *i += 1;
    }
    Some(v)
}

/// Reads 1..=max digits at `*i`.
fn some_digits(b: &[u8], i: &mut usize, max: usize) -> Option<u32> {
    let start = *i;
    let mut v = 0u32;
    while *i < b.len() && b[*i].is_ascii_digit() && *i - start < max {
        v = v * 10 + u32::from(b[*i] - b'0');
        *i += 1;
    }
    (*i > start).then_some(v)
}

/// Fractional seconds after a `.` or `,`: any number of digits, truncated to nanoseconds.
fn fraction(b: &[u8], i: &mut usize) -> u32 {
    if *i < b.len() && (b[*i] == b'.' || b[*i] == b',') {
        *i += 1;
        let mut nanos = 0u32;
        let mut n = 0;
        while *i < b.len() && b[*i].is_ascii_digit() {
            if n < 9 {
                nanos = nanos * 10 + u32::from(b[*i] - b'0');
                n += 1;
            }
            *i += 1;
        }
        while n < 9 {
            nanos *= 10;
            n += 1;
        }
        nanos
    } else {
        0
    }
}

/// A zone designator at `*i` (after optional spaces): `Some(None)` for none,
/// `Some(Some(offset_seconds))` for one, `None` for garbage.
fn zone(b: &[u8], i: &mut usize) -> Option<Option<i32>> {
    while *i < b.len() && b[*i] == b' ' {
        *i += 1;
    }
    if *i >= b.len() {
        return Some(None);
    }
    match b[*i] {
        b'Z' | b'z' => {
            *i += 1;
            Some(Some(0))
        }
        sign @ (b'+' | b'-') => {
            *i += 1;
            let h = digits(b, i, 2)?;
            if *i < b.len() && b[*i] == b':' {
                *i += 1;
            }
            let m = if *i < b.len() { digits(b, i, 2)? } else { 0 };
            let secs = i32::try_from(h * 3600 + m * 60).ok()?;
            Some(Some(if sign == b'-' { -secs } else { secs }))
        }
        _ => None,
    }
}

fn finish(naive: NaiveDateTime, offset: Option<i32>, tz: Tz) -> Option<DateTime<Utc>> {
    match offset {
        Some(secs) => {
            let off = FixedOffset::east_opt(secs)?;
            match off.from_local_datetime(&naive) {
                LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
                _ => None,
            }
        }
        None => match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
            // A wall-clock time inside a DST gap does not exist; the nearest reading is
            // the same wall time at the offset in force just before the gap.
            LocalResult::None => {
                use chrono::Offset;
                let fixed = tz.offset_from_utc_datetime(&naive).fix();
                fixed.from_local_datetime(&naive).single().map(|t| t.with_timezone(&Utc))
            }
        },
    }
}

fn parse_iso(b: &[u8], tz: Tz) -> Option<DateTime<Utc>> {
    let mut i = 0;
    let y = digits(b, &mut i, 4)?;
    (b.get(i) == Some(&b'-')).then_some(())?;
    i += 1;
    let mo = digits(b, &mut i, 2)?;
    (b.get(i) == Some(&b'-')).then_some(())?;
    i += 1;
    let d = digits(b, &mut i, 2)?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, mo, d)?;
    if i == b.len() {
        return finish(date.and_hms_opt(0, 0, 0)?, None, tz);
    }
    if !matches!(b[i], b'T' | b't' | b' ') {
        return None;
    }
    i += 1;
    let h = digits(b, &mut i, 2)?;
    (b.get(i) == Some(&b':')).then_some(())?;
    i += 1;
    let mi = digits(b, &mut i, 2)?;
    let mut sec = 0;
    if b.get(i) == Some(&b':') {
        i += 1;
        sec = digits(b, &mut i, 2)?;
    }
    let nanos = fraction(b, &mut i);
    let off = zone(b, &mut i)?;
    if i != b.len() {
        return None;
    }
    // Leap seconds (":60") are folded into the last nanosecond of the minute by chrono.
    let naive = date.and_hms_nano_opt(h, mi, sec.min(59), nanos)?;
    finish(naive, off, tz)
}

fn parse_us(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mo = some_digits(b, &mut i, 2)?;
    (b.get(i) == Some(&b'/')).then_some(())?;
    i += 1;
    let d = some_digits(b, &mut i, 2)?;
    (b.get(i) == Some(&b'/')).then_some(())?;
    i += 1;
    let y = digits(b, &mut i, 4)?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, mo, d)?;
    if b.get(i) == Some(&b',') {
        i += 1;
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    if i == b.len() {
        return finish(date.and_hms_opt(0, 0, 0)?, None, tz);
    }
    let mut h = some_digits(b, &mut i, 2)?;
    (b.get(i) == Some(&b':')).then_some(())?;
    i += 1;
    let mi = digits(b, &mut i, 2)?;
    let mut sec = 0;
    if b.get(i) == Some(&b':') {
        i += 1;
        sec = digits(b, &mut i, 2)?;
    }
    let nanos = fraction(b, &mut i);
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let rest = &b[i..];
    if rest.len() >= 2 && rest[1].eq_ignore_ascii_case(&b'M') {
        let pm = rest[0].eq_ignore_ascii_case(&b'P');
        if !pm && !rest[0].eq_ignore_ascii_case(&b'A') {
            return None;
        }
        if h == 0 || h > 12 {
            return None;
        }
        h = match (pm, h) {
            (false, 12) => 0,
            (true, 12) => 12,
            (true, h) => h + 12,
            (false, h) => h,
        };
        i += 2;
    }
    let off = zone(b, &mut i)?;
    if i != b.len() {
        return None;
    }
    let naive = date.and_hms_nano_opt(h, mi, sec.min(59), nanos)?;
    finish(naive, off, tz)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<String> {
        parse_timestamp(s, chrono_tz::UTC).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }

    #[test]
    fn iso_variants() {
        assert_eq!(p("2007-01-09T09:41:00").as_deref(), Some("2007-01-09T09:41:00Z"));
        assert_eq!(p("2007-01-09T09:41:00.22Z").as_deref(), Some("2007-01-09T09:41:00.220Z"));
        assert_eq!(p("2007-01-09T09:41:00.6816663Z").as_deref(), Some("2007-01-09T09:41:00.681666300Z"));
        assert_eq!(p("2007-01-09T09:41:00.535404056Z").as_deref(), Some("2007-01-09T09:41:00.535404056Z"));
        assert_eq!(p("2007-01-09T09:41:00.992099+00:00").as_deref(), Some("2007-01-09T09:41:00.992099Z"));
        assert_eq!(p("2007-01-09T11:41:00+02:00").as_deref(), Some("2007-01-09T09:41:00Z"));
        assert_eq!(p("2026-03-04 08:15:02.123456-0800").as_deref(), Some("2026-03-04T16:15:02.123456Z"));
        assert_eq!(p("2026-03-04 08:15:02.123").as_deref(), Some("2026-03-04T08:15:02.123Z"));
        assert_eq!(p("2026-03-04T08:15:02.1234567891Z").as_deref(), Some("2026-03-04T08:15:02.123456789Z"));
        assert_eq!(p("2026-13-04T08:15:02Z"), None);
        assert_eq!(p("2026-03-04T08:15:02Zjunk"), None);
        assert_eq!(p(""), None);
        assert_eq!(p("yesterday"), None);
    }

    #[test]
    fn dotnet_json_dates() {
        assert_eq!(p("/Date(1772640902000)/").as_deref(), Some("2026-03-04T16:15:02Z"));
        assert_eq!(p("/Date(1772640902123+0100)/").as_deref(), Some("2026-03-04T16:15:02.123Z"));
        assert_eq!(p("/Date(-1000)/").as_deref(), Some("1969-12-31T23:59:59Z"));
        for bad in [
            "/Date()/",
            "/Date(12a)/",
            "/Date(1772640902000+01)/",
            "/Date(1772640902000",
            "/Date(99999999999999999999)/",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn us_variants() {
        for s in [
            "01/09/2007 09:41:00",
            "1/9/2007 09:41:00",
            "01/09/2007 09:41:00 AM",
            "1/9/2007 9:41:00 AM",
            "1/9/2007 10:41:00 AM +01:00",
        ] {
            assert_eq!(p(s).as_deref(), Some("2007-01-09T09:41:00Z"), "{s}");
        }
        assert_eq!(p("11/14/2025 1:48:53 AM").as_deref(), Some("2025-11-14T01:48:53Z"));
        assert_eq!(p("11/14/2025 12:48:53 AM").as_deref(), Some("2025-11-14T00:48:53Z"));
        assert_eq!(p("11/14/2025 1:48:53 PM").as_deref(), Some("2025-11-14T13:48:53Z"));
        assert_eq!(p("3/4/2026, 8:15:02.123 AM").as_deref(), Some("2026-03-04T08:15:02.123Z"));
        assert_eq!(p("13/14/2025 1:48:53 AM"), None);
        assert_eq!(p("11/14/2025 13:48:53 PM"), None);
    }

    #[test]
    fn default_zone_applies_to_zoneless() {
        let t = parse_timestamp("2026-03-04 08:15:02", chrono_tz::America::Los_Angeles);
        assert_eq!(t.map(|t| t.to_rfc3339()).as_deref(), Some("2026-03-04T16:15:02+00:00"));
        // Inside the 2026-03-08 spring-forward gap: still a time, never a panic.
        assert!(parse_timestamp("2026-03-08 02:30:00", chrono_tz::America::Los_Angeles).is_some());
    }
}
