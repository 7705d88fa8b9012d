//! Standard base64 (RFC 4648 §4), as the fakes need it: Basic auth, SMTP AUTH, MIME bodies.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes with `=` padding.
pub(crate) fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes, with or without padding, surrounding whitespace ignored; `None` if anything else
/// is outside the alphabet.
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    decode_with(s.trim().trim_end_matches('='), false)
}

/// Decodes MIME-style: whitespace, padding and anything outside the alphabet are skipped.
pub(crate) fn decode_lenient(s: &str) -> Vec<u8> {
    decode_with(s, true).unwrap_or_default()
}

fn decode_with(s: &str, skip_others: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ if skip_others => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for s in ["", "a", "ab", "abc", "user:pässword", "AC0123:tok"] {
            assert_eq!(decode(&encode(s.as_bytes())).unwrap(), s.as_bytes(), "{s}");
            assert_eq!(decode_lenient(&format!(" {} \r\n", encode(s.as_bytes()))), s.as_bytes(), "{s}");
        }
        assert_eq!(encode(b"Username:"), "VXNlcm5hbWU6");
        assert_eq!(decode("!!"), None);
        assert_eq!(decode_lenient("!!"), b"");
    }
}
