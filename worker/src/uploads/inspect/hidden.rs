//! Polyglots: a file that is valid as its own format but carries a second
//! one, a ZIP archive (its end record in the tail, or a local header after
//! the first byte) or HTML, SVG, PHP or script markup anywhere in the head
//! or tail. Browsers and extractors that sniff content would find the
//! second format, so such a file is refused whatever its first format
//! is. Data after the end its format declares is reported the same way.

use super::archive::{ZIP_END, ZIP_LOCAL};
use super::scan::{contains_ignore_case, find};
use super::{Format, Refusal, View};

/// What a second format hidden in a file is.
#[derive(Clone, Copy)]
pub(super) enum Hidden {
    Zip,
    Script,
    Html,
    Php,
    Svg,
    AfterEnd,
}

/// The polyglot message for `hidden` inside `format`.
fn hidden_message(format: Format, hidden: Hidden) -> &'static str {
    match hidden {
        Hidden::Zip => by_format!(format, "a ZIP archive is hidden in the ", ""),
        Hidden::Script => by_format!(format, "a script is hidden in the ", ""),
        Hidden::Html => by_format!(format, "an HTML page is hidden in the ", ""),
        Hidden::Php => by_format!(format, "PHP code is hidden in the ", ""),
        Hidden::Svg => by_format!(format, "an SVG image is hidden in the ", ""),
        Hidden::AfterEnd => by_format!(format, "there is data after the end of the ", ""),
    }
}

pub(super) fn polyglot(format: Format, hidden: Hidden) -> Refusal {
    Refusal::Polyglot(hidden_message(format, hidden))
}

/// A second format found in the head or tail, if any.
pub(super) fn hidden_content(view: &View<'_>) -> Option<Hidden> {
    let after_start = view.head.get(1..).unwrap_or_default();
    if find(view.tail, ZIP_END).is_some() || find(after_start, ZIP_LOCAL).is_some() {
        return Some(Hidden::Zip);
    }
    let markup = [
        (b"<script".as_slice(), Hidden::Script),
        (b"<html", Hidden::Html),
        (b"<?php", Hidden::Php),
        (b"<svg", Hidden::Svg),
    ];
    markup
        .into_iter()
        .find(|(tag, _)| contains_ignore_case(view.head, tag) || contains_ignore_case(view.tail, tag))
        .map(|(_, hidden)| hidden)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uploads::inspect::fixtures::{check, gif, jpeg, mp3, pdf, png, safe_zip, webp};

    #[test]
    fn hidden_formats_are_refused_as_polyglots() {
        let mut with_zip = png();
        with_zip.extend(safe_zip());
        assert_eq!(
            check(&with_zip, "image/png"),
            Err(Refusal::Polyglot("a ZIP archive is hidden in the PNG image"))
        );
        let mut after_iend = png();
        after_iend.extend_from_slice(b"trailing bytes");
        assert_eq!(
            check(&after_iend, "image/png"),
            Err(Refusal::Polyglot("there is data after the end of the PNG image"))
        );
        let mut after_eoi = jpeg();
        after_eoi.extend_from_slice(b"trailing bytes");
        assert_eq!(
            check(&after_eoi, "image/jpeg"),
            Err(Refusal::Polyglot("there is data after the end of the JPEG image"))
        );
        let mut html_in_gif = gif();
        html_in_gif.splice(13..13, b"<HTML><body>".iter().copied());
        assert_eq!(
            check(&html_in_gif, "image/gif"),
            Err(Refusal::Polyglot("an HTML page is hidden in the GIF image"))
        );
        let mut php_in_mp3 = mp3();
        php_in_mp3.extend_from_slice(b"<?php system($_GET['c']); ?>");
        assert_eq!(
            check(&php_in_mp3, "audio/mpeg"),
            Err(Refusal::Polyglot("PHP code is hidden in the MP3 audio"))
        );
        let mut after_webp = webp();
        after_webp.extend_from_slice(b"more");
        assert_eq!(
            check(&after_webp, "image/webp"),
            Err(Refusal::Polyglot("there is data after the end of the WebP image"))
        );
        let mut after_eof = pdf("");
        after_eof.extend(vec![b'x'; 2000]);
        assert_eq!(
            check(&after_eof, "application/pdf"),
            Err(Refusal::Polyglot(
                "there is data after the end of the PDF document"
            ))
        );
    }
}
