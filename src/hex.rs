//! Lower-case hex of digests (the keyed hashes of users and IPs, incident fingerprints and
//! the idempotency keys of stdin and HTTP input), and integers in decimal.
//!
//! Written without the formatting machinery: every stored failure hashes its user, its IP
//! and its fingerprint, and a `String` per byte of `format!("{b:02x}")` was a visible share
//! of the writer's time (BENCHMARKS.md, sixth pass); a `format!` of each Passport line's
//! entry key was most of that key's cost (twenty-fourth pass).

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends the lower-case hex of `bytes` to `out`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// `n` in decimal, as `format!("{n}")` writes it, at the end of `buf` (20 bytes hold
/// `i64::MIN`).
pub fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        // `rest % 10` is below 10.
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_format_idiom() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = String::from("x:");
        push_hex(&mut out, &bytes);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(out, format!("x:{expected}"));
    }

    #[test]
    fn decimal_is_to_string() {
        for n in [0, 1, -1, 9, 10, -10, 99, 100, 123_456_789, i64::MAX, i64::MIN, i64::MIN + 1] {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string().as_bytes());
        }
        for n in (0..10_000).chain(u32::MAX - 10..=u32::MAX).map(i64::from) {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string().as_bytes());
            assert_eq!(decimal(-n, &mut [0; 20]), (-n).to_string().as_bytes());
        }
    }
}
