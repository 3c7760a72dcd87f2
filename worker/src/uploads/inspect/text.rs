//! Text: what has no magic bytes is accepted as text only if its head and
//! tail are UTF-8 (a character cut where the sample was cut is allowed)
//! with no NUL and few control characters. Text is stored under the text
//! type the client declared (plain, Markdown, CSV, JSON…), never under one
//! a browser would run (HTML, JavaScript, XML, VBScript), and a declared
//! non-text type with text content is a mismatch.

use super::View;

/// A text file may have one control character in this many bytes (ANSI
/// colours in logs); binary data has far more.
const TEXT_BYTES_PER_CONTROL: usize = 50;

/// Whether the sample is UTF-8 text with no NUL and few control characters.
pub(super) fn is_text(view: &View<'_>) -> bool {
    is_utf8(view.head, false, view.head_ends_mid_file)
        && is_plain(view.head)
        && is_utf8(view.tail, view.tail_starts_mid_file, false)
        && is_plain(view.tail)
}

/// Whether `bytes` is UTF-8, allowing a character cut at a side that lies inside the file.
fn is_utf8(bytes: &[u8], cut_at_start: bool, cut_at_end: bool) -> bool {
    let mut bytes = bytes;
    if cut_at_start {
        let continuation = bytes.iter().take(4).take_while(|b| **b & 0xc0 == 0x80).count();
        if continuation > 3 {
            return false;
        }
        bytes = bytes.get(continuation..).unwrap_or_default();
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(error) => cut_at_end && error.error_len().is_none(),
    }
}

/// Whether `bytes` has no NUL and at most one control character in `TEXT_BYTES_PER_CONTROL`.
fn is_plain(bytes: &[u8]) -> bool {
    if bytes.contains(&0) {
        return false;
    }
    let controls = bytes
        .iter()
        .filter(|b| (**b < 0x20 && !matches!(**b, b'\t' | b'\n' | b'\r' | 0x0c)) || **b == 0x7f)
        .count();
    controls * TEXT_BYTES_PER_CONTROL <= bytes.len()
}

#[cfg(test)]
mod tests {
    use crate::uploads::inspect::Format;
    use crate::uploads::inspect::fixtures::{check, ok};

    #[test]
    fn text_keeps_its_declared_text_type() {
        let text = "Bonjour à tous ✓\n\tindented\r\n".as_bytes();
        assert_eq!(
            check(text, "text/plain; charset=utf-8"),
            ok(Format::Text, "text/plain")
        );
        assert_eq!(
            check(b"name,age\nAda,36\n", "text/csv"),
            ok(Format::Text, "text/csv")
        );
        assert_eq!(
            check(br#"{"a": [1, 2]}"#, "application/json"),
            ok(Format::Text, "application/json")
        );
        assert_eq!(
            check(b"# Title\n\nBody", "text/x-markdown"),
            ok(Format::Text, "text/markdown")
        );
        assert_eq!(
            check("\u{feff}with a BOM".as_bytes(), "text/plain"),
            ok(Format::Text, "text/plain")
        );
        // A text that happens to start like a DOS header is still text.
        assert_eq!(
            check(b"MZ is a country code", "text/plain"),
            ok(Format::Text, "text/plain")
        );
    }
}
