//! Lowercase hex, for the hashed keys the runtime and the stores build.

/// The two digits of every byte: one load per byte instead of two nibbles looked up apart.
const PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// Appends `bytes` to `out` as lowercase hex, two digits per byte.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    // Up to 32 bytes at a time into a buffer of digits, then one `push_str` (not a checked
    // `push` per digit).
    let mut digits = [[0u8; 2]; 32];
    for chunk in bytes.chunks(32) {
        for (pair, &byte) in digits.iter_mut().zip(chunk) {
            *pair = PAIRS[usize::from(byte)];
        }
        let digits = digits.as_flattened();
        // Hex digits are ASCII, so this is always `Ok`.
        if let Ok(text) = std::str::from_utf8(&digits[..2 * chunk.len()]) {
            out.push_str(text);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_lowercase_digits_per_byte() {
        let mut out = String::from("x:");
        super::push_hex(&mut out, &[0x00, 0x9f, 0xff]);
        assert_eq!(out, "x:009fff");
    }

    #[test]
    fn every_byte_across_chunk_boundaries() {
        let bytes: Vec<u8> = (0..=255).chain(0..=40).collect();
        let mut out = String::new();
        super::push_hex(&mut out, &bytes);
        let expected = bytes.iter().fold(String::new(), |mut text, b| {
            use std::fmt::Write as _;
            let _ = write!(text, "{b:02x}");
            text
        });
        assert_eq!(out, expected);
    }
}
