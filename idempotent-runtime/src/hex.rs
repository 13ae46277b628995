//! Lowercase hex, for the hashed keys the runtime and the stores build.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` to `out` as lowercase hex, two digits per byte.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
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
}
