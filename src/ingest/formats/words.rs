//! Byte tests on eight bytes at once (one `u64`, read little-endian): which bytes of a
//! word are a given byte, or below a bound, or above ASCII.
//!
//! Each returns the word's high bits (`0x80` of each byte) that mark the bytes found. The
//! subtraction tests can borrow across bytes, but a borrow only leaves a byte that is
//! itself a hit, so it marks bytes after a true hit, never before: the lowest mark
//! (`trailing_zeros() / 8`) is always the first such byte, and "no mark" is exact.

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);

/// The high bit of every byte.
pub(crate) const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

/// Marks the bytes equal to `byte` (each becomes zero, and subtracting one from a zero byte
/// sets its high bit).
pub(crate) fn bytes_equal(w: u64, byte: u8) -> u64 {
    let x = w ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Marks the bytes below `bound` (at most 0x80): subtracting `bound` sets the high bit of
/// a byte below it, and of one at 0x80 or above, which `!w` rules out.
pub(crate) fn bytes_below(w: u64, bound: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(bound)) & !w & HIGH
}

/// Marks the bytes above ASCII.
pub(crate) fn bytes_above_ascii(w: u64) -> u64 {
    w & HIGH
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test's name, the marks it makes, and which bytes it should mark.
    type Case = (&'static str, fn(u64) -> u64, fn(u8) -> bool);

    /// Every byte value at every place of a word, after each kind of byte before it (a hit
    /// whose borrow runs on, or none): the first mark is the first hit.
    #[test]
    fn the_first_mark_is_the_first_byte_found() {
        let tests: [Case; 4] = [
            ("quote", |w| bytes_equal(w, b'"'), |b| b == b'"'),
            ("nul", |w| bytes_equal(w, 0), |b| b == 0),
            ("below 0x21", |w| bytes_below(w, 0x21), |b| b < 0x21),
            ("above ASCII", bytes_above_ascii, |b| b >= 0x80),
        ];
        for (name, marks, is_hit) in tests {
            for filler in [b'a', 0x00, 0x01, 0x20, 0x21, 0x22, 0x23, 0x7f, 0x80, 0xff] {
                for at in 0..8 {
                    for byte in 0..=255u8 {
                        let mut word = [filler; 8];
                        word[at] = byte;
                        let want = word.iter().position(|&b| is_hit(b));
                        let m = marks(u64::from_le_bytes(word));
                        let got = (m != 0).then(|| (m.trailing_zeros() / 8) as usize);
                        assert_eq!(got, want, "{name}: {word:?}");
                    }
                }
            }
        }
    }
}
