//! Why a file is refused: [`Refusal`], whose text is shown to the user as
//! is, so every variant reads as a plain sentence naming the format with
//! the right article ("a PNG image", "an SVG image", "MP3 audio").

use super::Format;

/// Why a file was refused: the Display text is shown to the user as is, a plain sentence
/// (e.g. "the file is a Windows program (.exe), which is not allowed",
/// "the file says it is image/png but its content is a PDF document", "the file is empty").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// The file has no bytes.
    #[error("the file is empty")]
    Empty,
    /// A program, refused whatever was declared: what kind of program.
    #[error("the file is {}, which is not allowed", with_article(.0))]
    Executable(&'static str),
    /// A script or active markup, refused whatever was declared: what kind.
    #[error("the file is {}, which is not allowed", with_article(.0))]
    Script(&'static str),
    /// The content matches no format this module recognises.
    #[error("the file's content does not match any accepted file type")]
    Unrecognised,
    /// The content is not what the client declared.
    #[error("the file says it is {declared} but its content is {}", with_article(.detected))]
    Mismatch {
        /// The declared media type, normalised.
        declared: String,
        /// The human name of the real format.
        detected: &'static str,
    },
    /// The content was recognised but its media type is not in the allow-list.
    #[error("the file is {}, which is not accepted here", with_article(.detected))]
    NotAllowed {
        /// The human name of the real format.
        detected: &'static str,
    },
    /// The file carries a second format besides its own: what is hidden where.
    #[error("the file is refused because {0}")]
    Polyglot(&'static str),
    /// A ZIP archive that could harm whoever extracts it: why.
    #[error("the archive is refused because {0}")]
    UnsafeArchive(String),
    /// The file ends before its format says it should: which format.
    #[error("{0}")]
    Truncated(&'static str),
}

pub(super) fn incomplete(format: Format) -> Refusal {
    Refusal::Truncated(by_format!(format, "the ", " is incomplete"))
}

/// `name` with "a" or "an" in front, or bare for what is not counted ("text", "MP3 audio").
fn with_article(name: &str) -> String {
    let first = name.split(' ').next().unwrap_or_default();
    let last = name.rsplit(' ').next().unwrap_or_default();
    if first == "text" || last == "text" || last == "audio" {
        return name.to_owned();
    }
    let initial = first.chars().next().unwrap_or(' ').to_ascii_uppercase();
    let letters = first.chars().take_while(char::is_ascii_alphabetic);
    let acronym =
        first.len() > 1 && letters.clone().count() > 1 && letters.clone().all(|c| c.is_ascii_uppercase());
    // An acronym is read letter by letter: "an HTML page", "an SVG image", "a PDF document".
    let vowel_sound = if acronym {
        "AEFHILMNORSX".contains(initial)
    } else {
        "AEIOU".contains(initial)
    };
    format!("{} {name}", if vowel_sound { "an" } else { "a" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uploads::inspect::hidden::{Hidden, polyglot};
    use crate::uploads::inspect::normalise;

    #[test]
    fn refusals_read_as_plain_sentences() {
        let refusals = [
            (Refusal::Empty, "the file is empty"),
            (
                Refusal::Executable("Windows program (.exe)"),
                "the file is a Windows program (.exe), which is not allowed",
            ),
            (
                Refusal::Executable("Windows installer or old Office document (OLE)"),
                "the file is a Windows installer or old Office document (OLE), which is not allowed",
            ),
            (
                Refusal::Script("HTML page"),
                "the file is an HTML page, which is not allowed",
            ),
            (
                Refusal::Script("SVG image"),
                "the file is an SVG image, which is not allowed",
            ),
            (
                Refusal::Script("PHP script"),
                "the file is a PHP script, which is not allowed",
            ),
            (
                Refusal::Script("text with an HTML script in it"),
                "the file is text with an HTML script in it, which is not allowed",
            ),
            (
                Refusal::Unrecognised,
                "the file's content does not match any accepted file type",
            ),
            (
                Refusal::Mismatch {
                    declared: "image/png".into(),
                    detected: "PDF document",
                },
                "the file says it is image/png but its content is a PDF document",
            ),
            (
                Refusal::Mismatch {
                    declared: "audio/mpeg".into(),
                    detected: "MP4 audio",
                },
                "the file says it is audio/mpeg but its content is MP4 audio",
            ),
            (
                Refusal::NotAllowed {
                    detected: "PNG image",
                },
                "the file is a PNG image, which is not accepted here",
            ),
            (
                Refusal::NotAllowed { detected: "CSV text" },
                "the file is CSV text, which is not accepted here",
            ),
            (
                Refusal::NotAllowed {
                    detected: "Ogg audio",
                },
                "the file is Ogg audio, which is not accepted here",
            ),
            (
                Refusal::NotAllowed {
                    detected: "ZIP archive",
                },
                "the file is a ZIP archive, which is not accepted here",
            ),
            (
                Refusal::Polyglot("a ZIP archive is hidden in the PNG image"),
                "the file is refused because a ZIP archive is hidden in the PNG image",
            ),
            (
                Refusal::UnsafeArchive("its entry `../evil` points outside the archive".into()),
                "the archive is refused because its entry `../evil` points outside the archive",
            ),
            (
                Refusal::Truncated("the PNG image is incomplete"),
                "the PNG image is incomplete",
            ),
        ];
        for (refusal, text) in refusals {
            assert_eq!(refusal.to_string(), text);
        }
        // Every format's messages are sentences too.
        let formats = [
            Format::Png,
            Format::Jpeg,
            Format::Gif,
            Format::Webp,
            Format::Pdf,
            Format::Text,
            Format::Zip,
            Format::Webm,
            Format::Ogg,
            Format::Mp4,
            Format::Wav,
            Format::Mp3,
            Format::Aac,
            Format::Flac,
        ];
        for format in formats {
            for message in [
                Refusal::NotAllowed {
                    detected: format.human_name(),
                }
                .to_string(),
                incomplete(format).to_string(),
                polyglot(format, Hidden::AfterEnd).to_string(),
            ] {
                assert!(
                    message.starts_with("the ") && !message.ends_with('.'),
                    "{message}"
                );
                let words: Vec<&str> = message.split(' ').collect();
                for pair in words.windows(2) {
                    let vowel = pair[1].starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']);
                    let article_fits = match pair[0] {
                        "a" => !vowel,
                        "an" => vowel,
                        _ => true,
                    };
                    assert!(article_fits, "{message}");
                }
            }
            assert_eq!(
                format.is_image() || format.is_audio(),
                !matches!(format, Format::Pdf | Format::Text | Format::Zip)
            );
            assert_eq!(normalise(format.media_type()), format.media_type());
        }
    }
}
