//! Lower-case hex of digests: the keyed hashes of users and IPs, incident fingerprints and
//! the idempotency keys of stdin and HTTP input.
//!
//! One function instead of the `format!("{b:02x}")`-per-byte idiom: every stored failure
//! hashes its user, its IP and its fingerprint, and a `String` per byte was a visible
//! share of the writer's time (BENCHMARKS.md, sixth pass).

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends the lower-case hex of `bytes` to `out`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
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
}
