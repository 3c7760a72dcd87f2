//! Media types: what clients and the configuration write is normalised
//! (case, parameters, aliases such as `image/jpg` or `audio/x-m4a`), and a
//! recognised format is accepted only when its canonical type is in the
//! allow-list and agrees with the declared one. A declared type that says
//! nothing (empty, or `application/octet-stream`) takes the detected one.

use super::{Format, Refusal};

/// Normalises a media type: lower case, parameters dropped, aliases mapped
/// (image/jpg→image/jpeg, audio/x-wav|audio/wave|audio/vnd.wave→audio/wav, audio/x-m4a|audio/m4a→audio/mp4,
/// video/webm→audio/webm, video/ogg|audio/opus→audio/ogg, audio/mp3→audio/mpeg, audio/x-flac→audio/flac,
/// text/x-markdown→text/markdown, application/x-zip-compressed→application/zip).
pub(crate) fn normalise(media_type: &str) -> String {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let canonical = match essence.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg",
        "image/x-png" => "image/png",
        "application/x-pdf" => "application/pdf",
        "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "audio/wav",
        "audio/x-m4a" | "audio/m4a" => "audio/mp4",
        "video/webm" => "audio/webm",
        "video/ogg" | "audio/opus" | "application/ogg" => "audio/ogg",
        "audio/mp3" | "audio/x-mp3" => "audio/mpeg",
        "audio/x-aac" => "audio/aac",
        "audio/x-flac" => "audio/flac",
        "text/x-markdown" => "text/markdown",
        "application/x-zip-compressed" | "application/x-zip" => "application/zip",
        _ => return essence,
    };
    canonical.to_owned()
}

/// Accepts a recognised binary format if it is allowed and agrees with the declared type.
pub(super) fn accept(
    format: Format,
    declared: &str,
    allowed: &[String],
) -> Result<(Format, String), Refusal> {
    let declared = normalise(declared);
    if format == Format::Text {
        return accept_text(&declared, allowed);
    }
    let canonical = format.media_type();
    if !is_allowed(allowed, canonical) {
        return Err(Refusal::NotAllowed {
            detected: format.human_name(),
        });
    }
    let agrees = match format {
        Format::Mp4 => matches!(declared.as_str(), "audio/mp4" | "video/mp4" | "audio/aac"),
        _ => declared == canonical,
    };
    if agrees || says_nothing(&declared) {
        Ok((format, canonical.to_owned()))
    } else {
        Err(Refusal::Mismatch {
            declared,
            detected: format.human_name(),
        })
    }
}

/// Whether a declared type carries no information about the content.
pub(super) fn says_nothing(declared: &str) -> bool {
    declared.is_empty() || declared == "application/octet-stream"
}

pub(super) fn is_allowed(allowed: &[String], media_type: &str) -> bool {
    allowed.iter().any(|a| normalise(a) == media_type)
}

/// Accepts text under the declared text type, if that type is inert and allowed.
pub(super) fn accept_text(declared: &str, allowed: &[String]) -> Result<(Format, String), Refusal> {
    let declared = normalise(declared);
    let stored = if says_nothing(&declared) {
        Format::Text.media_type().to_owned()
    } else {
        declared
    };
    if !(stored.starts_with("text/") || stored == "application/json") {
        return Err(Refusal::Mismatch {
            declared: stored,
            detected: Format::Text.human_name(),
        });
    }
    // Stored under these types, plain text would run in a browser.
    let active = match stored.as_str() {
        "text/html" => Some("HTML page"),
        "text/javascript" | "text/ecmascript" | "text/x-javascript" | "text/jscript" => {
            Some("JavaScript file")
        }
        "text/xml" | "text/xsl" => Some("XML document"),
        "text/vbscript" => Some("VBScript file"),
        _ => None,
    };
    if let Some(kind) = active {
        return Err(Refusal::Script(kind));
    }
    if !is_allowed(allowed, &stored) {
        let detected = match stored.as_str() {
            "text/plain" => "plain text",
            "text/markdown" => "Markdown text",
            "text/csv" => "CSV text",
            "application/json" => "JSON text",
            _ => Format::Text.human_name(),
        };
        return Err(Refusal::NotAllowed { detected });
    }
    Ok((Format::Text, stored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uploads::inspect::fixtures::{check, m4a, ok, pdf, png, whole};
    use crate::uploads::inspect::inspect;

    #[test]
    fn a_declared_type_that_says_nothing_takes_the_detected_one() {
        assert_eq!(
            check(&png(), "application/octet-stream"),
            ok(Format::Png, "image/png")
        );
        assert_eq!(check(b"# Notes", ""), ok(Format::Text, "text/plain"));
    }

    #[test]
    fn the_declared_type_must_match_and_be_allowed() {
        assert_eq!(
            check(&pdf(""), "image/png"),
            Err(Refusal::Mismatch {
                declared: "image/png".into(),
                detected: "PDF document"
            })
        );
        assert_eq!(
            check(b"just words", "image/png"),
            Err(Refusal::Mismatch {
                declared: "image/png".into(),
                detected: "text"
            })
        );
        let only_jpeg = vec!["image/jpeg".to_owned()];
        assert_eq!(
            inspect(&whole(&png()), "image/png", &only_jpeg),
            Err(Refusal::NotAllowed {
                detected: "PNG image"
            })
        );
        let only_plain = vec!["Text/Plain".to_owned()];
        assert_eq!(
            inspect(&whole(b"a,b\n"), "text/csv", &only_plain),
            Err(Refusal::NotAllowed { detected: "CSV text" })
        );
        assert_eq!(
            inspect(&whole(b"a,b\n"), "text/plain", &only_plain),
            ok(Format::Text, "text/plain")
        );
        assert_eq!(
            check(&m4a(), "audio/mpeg"),
            Err(Refusal::Mismatch {
                declared: "audio/mpeg".into(),
                detected: "MP4 audio"
            })
        );
    }

    #[test]
    fn media_types_are_normalised() {
        assert_eq!(normalise(" Audio/WebM ; codecs=opus"), "audio/webm");
        assert_eq!(normalise("image/jpg"), "image/jpeg");
        assert_eq!(normalise("audio/vnd.wave"), "audio/wav");
        assert_eq!(normalise("audio/m4a"), "audio/mp4");
        assert_eq!(normalise("video/ogg"), "audio/ogg");
        assert_eq!(normalise("audio/x-flac"), "audio/flac");
        assert_eq!(normalise("text/x-markdown"), "text/markdown");
        assert_eq!(normalise("application/x-zip-compressed"), "application/zip");
        assert_eq!(normalise("text/csv;charset=utf-8"), "text/csv");
        assert_eq!(normalise(""), "");
    }
}
