//! SMS text encodings and segment fitting.
//!
//! An SMS segment holds 160 characters of the GSM 03.38 alphabet (7 bits each; `^ { } \ [ ~ ] |
//! €` and form feed take two, an escape and the char), or 70 UTF-16 code units (UCS-2) as soon
//! as one character is outside that alphabet: a single `é` is fine (it is in GSM-7), but a
//! single `ł`, `日` or `👍` turns the whole message into UCS-2. A message longer than one
//! segment is sent as several, each of 153 GSM-7 chars or 67 UCS-2 units (the rest of each is
//! the concatenation header), and billed as several.
//!
//! [`fit`] makes a message fit a number of segments: it picks GSM-7 when the text that will be
//! sent is all GSM-7, and cuts at a character boundary (never inside a surrogate pair or an
//! escape sequence) with a visible marker: `...` in GSM-7 text, `…` in UCS-2 text.
//!
//! ```
//! use watchbell_sms::encoding::{fit, Encoding};
//! assert_eq!(fit("disk full on db-1", 1), ("disk full on db-1".to_owned(), Encoding::Gsm7));
//! let (text, enc) = fit(&"x".repeat(200), 1);
//! assert_eq!((text.len(), enc), (160, Encoding::Gsm7));
//! assert!(text.ends_with("..."));
//! let (text, enc) = fit(&format!("👍 {}", "y".repeat(100)), 1);
//! assert_eq!(enc, Encoding::Ucs2);
//! assert_eq!(text.encode_utf16().count(), 70);
//! ```

use std::fmt;

/// How an SMS body is encoded on the air.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The GSM 03.38 7-bit default alphabet (with its extension table): 160 chars per segment.
    Gsm7,
    /// UCS-2 / UTF-16: 70 code units per segment.
    Ucs2,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        })
    }
}

/// The GSM 03.38 basic character set (without the escape code).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table (each costs two septets).
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{0c}";

/// The septets `c` takes in GSM-7 (1 or 2), or `None` if GSM-7 cannot carry it.
pub fn gsm_septets(c: char) -> Option<usize> {
    if c.is_ascii_alphanumeric() || c == ' ' || GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The encoding `text` needs: GSM-7 when every char is in the GSM alphabet, else UCS-2.
pub fn detect(text: &str) -> Encoding {
    if text.chars().all(|c| gsm_septets(c).is_some()) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// The length of `text` in `encoding`'s units: septets for GSM-7 (chars outside the alphabet
/// count 1), UTF-16 code units for UCS-2.
pub fn units(text: &str, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => text.chars().map(|c| gsm_septets(c).unwrap_or(1)).sum(),
        Encoding::Ucs2 => watchbell_core::text::utf16_len(text),
    }
}

/// The most units a message of `segments` segments holds: 160 / 70 for one segment, 153 / 67
/// per segment for more.
pub fn limit(encoding: Encoding, segments: usize) -> usize {
    let segments = segments.max(1);
    match (encoding, segments) {
        (Encoding::Gsm7, 1) => 160,
        (Encoding::Ucs2, 1) => 70,
        (Encoding::Gsm7, n) => 153 * n,
        (Encoding::Ucs2, n) => 67 * n,
    }
}

/// The number of segments `text` is sent as.
pub fn segments(text: &str) -> usize {
    let enc = detect(text);
    let n = units(text, enc);
    if n <= limit(enc, 1) {
        1
    } else {
        n.div_ceil(limit(enc, 2) / 2)
    }
}

/// The GSM-7 marker of a cut text.
pub const GSM_MARKER: &str = "...";
/// The UCS-2 marker of a cut text.
pub const UCS2_MARKER: &str = "…";

/// Fits `text` into `segments` segments (at least 1): the text itself when it fits, else its
/// longest prefix that fits with the marker. GSM-7 is chosen whenever the text that is sent is
/// all GSM-7 (so a non-GSM char that is cut away does not cost the UCS-2 limit).
pub fn fit(text: &str, segments: usize) -> (String, Encoding) {
    let gsm = limit(Encoding::Gsm7, segments);
    let budget = gsm - GSM_MARKER.len();
    let mut used = 0;
    // The byte index where a cut text would end (kept septets <= budget).
    let mut cut = None;
    let mut all_gsm = true;
    for (i, c) in text.char_indices() {
        let Some(w) = gsm_septets(c) else {
            all_gsm = false;
            break;
        };
        if cut.is_none() && used + w > budget {
            cut = Some(i);
        }
        used += w;
        if used > gsm {
            // Over the GSM limit with GSM chars only up to here: cut, and it is GSM-7.
            let keep = cut.unwrap_or(i);
            return (format!("{}{GSM_MARKER}", text[..keep].trim_end()), Encoding::Gsm7);
        }
    }
    if all_gsm {
        return (text.to_owned(), Encoding::Gsm7);
    }
    let ucs = limit(Encoding::Ucs2, segments);
    if units(text, Encoding::Ucs2) <= ucs {
        return (text.to_owned(), Encoding::Ucs2);
    }
    let cut = watchbell_core::text::truncate_utf16(text, ucs - UCS2_MARKER.encode_utf16().count(), "");
    (format!("{}{UCS2_MARKER}", cut.trim_end()), Encoding::Ucs2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet() {
        for c in ['a', 'Z', '0', ' ', '@', '£', 'é', 'Ä', 'ß', '_', '\n', '¿', 'Ω'] {
            assert_eq!(gsm_septets(c), Some(1), "{c:?}");
        }
        for c in ['^', '{', '}', '\\', '[', ']', '~', '|', '€'] {
            assert_eq!(gsm_septets(c), Some(2), "{c:?}");
        }
        for c in ['`', 'ł', 'á', '日', '👍', '…', '\t', 'ç'] {
            assert_eq!(gsm_septets(c), None, "{c:?}");
        }
        assert_eq!(detect("Café {ok} €5"), Encoding::Gsm7);
        assert_eq!(detect("Łódź"), Encoding::Ucs2);
        assert_eq!(units("a{b}€", Encoding::Gsm7), 8);
        assert_eq!(units("a👍", Encoding::Ucs2), 3);
    }

    #[test]
    fn fitting() {
        // Exactly 160 GSM chars fit; 161 are cut to 157 + "...".
        let s = "a".repeat(160);
        assert_eq!(fit(&s, 1), (s.clone(), Encoding::Gsm7));
        let (t, e) = fit(&"a".repeat(161), 1);
        assert_eq!((t.len(), e), (160, Encoding::Gsm7));
        assert!(t.ends_with("..."));
        // Extension chars count two.
        let (t, _) = fit(&"{".repeat(100), 1);
        assert_eq!(units(&t, Encoding::Gsm7), 159);
        // A non-GSM char beyond the cut does not force UCS-2.
        let s = format!("{}日本", "b".repeat(200));
        let (t, e) = fit(&s, 1);
        assert_eq!((e, units(&t, e)), (Encoding::Gsm7, 160));
        // A non-GSM char inside the kept text does.
        let s = format!("日{}", "b".repeat(200));
        let (t, e) = fit(&s, 1);
        assert_eq!((e, units(&t, e)), (Encoding::Ucs2, 70));
        assert!(t.ends_with('…'));
        // Emoji are never split.
        let (t, e) = fit(&"👍".repeat(50), 1);
        assert_eq!(e, Encoding::Ucs2);
        assert!(units(&t, e) <= 70 && t.chars().all(|c| c == '👍' || c == '…'));
        // Several segments.
        assert_eq!(fit(&"c".repeat(300), 2).0.len(), 300);
        assert_eq!(fit(&"c".repeat(400), 2).0.len(), 306);
        assert_eq!(segments(&"c".repeat(300)), 2);
        assert_eq!(segments("short"), 1);
        assert_eq!(segments(&"日".repeat(71)), 2);
    }
}
