//! PDF documents: a PDF must end with `%%EOF` within its last kilobyte
//! (more after it is a second file riding along), and must not name an
//! action that runs code or opens other files (`/JavaScript`, `/JS`,
//! `/Launch`, `/EmbeddedFile`): a viewer would run them. Only the head and
//! tail are searched, as written: compressed object streams and `#xx`
//! escaped names are not seen (see the module doc of `inspect`).

use super::hidden::{Hidden, polyglot};
use super::refusal::incomplete;
use super::scan::{find, rfind};
use super::{Format, Refusal, View};

/// A PDF's last `%%EOF` must lie within this many bytes of its end.
const PDF_EOF_WINDOW: usize = 1024;

/// Whether the PDF names an action that runs code or opens other files.
pub(super) fn has_pdf_actions(view: &View<'_>) -> bool {
    let names: [&[u8]; 3] = [b"/JavaScript", b"/Launch", b"/EmbeddedFile"];
    [view.head, view.tail]
        .into_iter()
        .any(|part| names.iter().any(|name| find(part, name).is_some()) || has_pdf_name(part, b"/JS"))
}

/// Whether `name` occurs as a whole PDF name (followed by a delimiter, not more name).
fn has_pdf_name(haystack: &[u8], name: &[u8]) -> bool {
    let mut rest = haystack;
    while let Some(at) = find(rest, name) {
        let after = at + name.len();
        match rest.get(after) {
            None => return true,
            Some(b) if b.is_ascii_whitespace() || b"()<>[]{}/%".contains(b) => return true,
            Some(_) => rest = rest.get(after..).unwrap_or_default(),
        }
    }
    false
}

/// A PDF ends with `%%EOF`, within `PDF_EOF_WINDOW` bytes of its end.
pub(super) fn check_pdf(view: &View<'_>) -> Result<(), Refusal> {
    let (format, tail) = (Format::Pdf, view.tail);
    match rfind(tail, b"%%EOF") {
        Some(at) if at >= tail.len().saturating_sub(PDF_EOF_WINDOW) => Ok(()),
        Some(_) => Err(polyglot(format, Hidden::AfterEnd)),
        None => Err(incomplete(format)),
    }
}
