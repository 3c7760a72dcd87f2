//! Upload inspection: the bytes of a file a user uploaded are checked before
//! the file is accepted.
//!
//! A worker reads the first [`HEAD_BYTES`] and the last [`TAIL_BYTES`] of the
//! uploaded object into a [`Sample`], and [`inspect`] decides from those bytes
//! alone what the file really is: programs (PE, ELF, Mach-O, Java classes,
//! WebAssembly, Windows shortcuts, OLE compound files) and scripts (shell,
//! PHP, batch, HTML, SVG) are refused whatever the client declared; the
//! allowed formats (images, PDF, text, ZIP, audio) are recognised by their
//! magic bytes and their structure (an image must end where its format says
//! it ends, a PDF must end with `%%EOF`); a file carrying a second format
//! (a ZIP archive or HTML/PHP/SVG markup hidden in an image, a PDF or an
//! audio file) is refused as a polyglot; and the detected format must be in
//! the configured allow-list and agree with the declared media type. A ZIP
//! archive is then read whole by [`check_zip`]: its central directory must
//! hold no path that leaves the extraction folder, no symbolic link and no
//! zip bomb.
//!
//! This is format validation, not antivirus. It does not decode images or
//! audio, does not look inside compressed PDF streams (a `/JavaScript` action
//! in an object stream, or a name written with `#xx` escapes, is not seen),
//! does not scan the middle of files larger than the head and tail, does not
//! open the members of a ZIP archive (an `.exe` inside a `.zip`, or a
//! `.docx` with macros, passes), does not decrypt anything, and does not
//! recognise UTF-16 text. Macro-capable OLE files (old `.doc`/`.xls`, and
//! `.msi` installers, which share the format) are refused as programs.
//! Whoever extracts an accepted archive must still stop at the sizes its
//! central directory declared: a deflate stream can lie about its size.
//!
//! The checks are in files of their own: `programs` (what is refused
//! whatever was declared), one per family of formats (`image`, `audio`,
//! `pdf`, `text`, `archive`), `hidden` (polyglots), `media_type` (the
//! declared type and the allow-list), `refusal` (the messages) and `scan`
//! (reading fields and searching bytes).

/// Bytes read from the start of the object.
pub(crate) const HEAD_BYTES: usize = 64 * 1024;
/// Bytes read from the end of the object.
pub(crate) const TAIL_BYTES: usize = 64 * 1024;

// Defined before the `mod` lines below: a macro is visible only after its definition.
/// One static string per format, built at compile time around the format's
/// human name, so that every message names the format without allocating.
macro_rules! by_format {
    ($format:expr, $before:literal, $after:literal) => {
        match $format {
            Format::Png => concat!($before, "PNG image", $after),
            Format::Jpeg => concat!($before, "JPEG image", $after),
            Format::Gif => concat!($before, "GIF image", $after),
            Format::Webp => concat!($before, "WebP image", $after),
            Format::Pdf => concat!($before, "PDF document", $after),
            Format::Text => concat!($before, "text", $after),
            Format::Zip => concat!($before, "ZIP archive", $after),
            Format::Webm => concat!($before, "WebM audio", $after),
            Format::Ogg => concat!($before, "Ogg audio", $after),
            Format::Mp4 => concat!($before, "MP4 audio", $after),
            Format::Wav => concat!($before, "WAV audio", $after),
            Format::Mp3 => concat!($before, "MP3 audio", $after),
            Format::Aac => concat!($before, "AAC audio", $after),
            Format::Flac => concat!($before, "FLAC audio", $after),
        }
    };
}

mod archive;
mod audio;
#[cfg(test)]
mod fixtures;
mod hidden;
mod image;
mod media_type;
mod pdf;
mod programs;
mod refusal;
mod scan;
mod text;

pub(crate) use archive::check_zip;
pub(crate) use media_type::normalise;
pub(crate) use refusal::Refusal;

use archive::{ZIP_END, ZIP_LOCAL, check_zip_tail};
use audio::{
    EBML_MAGIC, adts_frame_len, check_flac, check_ogg, check_wav, id3_end, is_mp4, is_stream, is_webm,
    mpeg_frame_len,
};
use hidden::{hidden_content, polyglot};
use image::{JPEG_SOI, PNG_SIGNATURE, check_gif, check_jpeg, check_png, check_webp};
use media_type::accept;
use media_type::accept_text;
use pdf::{check_pdf, has_pdf_actions};
use programs::{executable, script_start};
use scan::{contains_ignore_case, len64};
use text::is_text;

/// What a worker read of an uploaded object: its first `HEAD_BYTES` and last
/// `TAIL_BYTES` (they overlap, or are the same bytes, for small files), and its size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample<'a> {
    /// The first bytes of the object.
    pub head: &'a [u8],
    /// The last bytes of the object.
    pub tail: &'a [u8],
    /// The object's size in bytes.
    pub size: u64,
}

/// A format recognised by its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// PNG image.
    Png,
    /// JPEG image.
    Jpeg,
    /// GIF image.
    Gif,
    /// WebP image.
    Webp,
    /// PDF document.
    Pdf,
    /// UTF-8 text: plain, Markdown, CSV, JSON…
    Text,
    /// ZIP archive (also `.docx`, `.xlsx`, `.odt`…).
    Zip,
    /// WebM or Matroska audio.
    Webm,
    /// Ogg audio (Vorbis, Opus).
    Ogg,
    /// MP4 / M4A audio.
    Mp4,
    /// WAV audio.
    Wav,
    /// MPEG audio (MP3).
    Mp3,
    /// AAC audio in ADTS frames.
    Aac,
    /// FLAC audio.
    Flac,
}

impl Format {
    /// The canonical media type: image/png, image/jpeg, image/gif, image/webp, application/pdf,
    /// text/plain, application/zip, audio/webm, audio/ogg, audio/mp4, audio/wav, audio/mpeg, audio/aac, audio/flac.
    pub(crate) fn media_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
            Format::Pdf => "application/pdf",
            Format::Text => "text/plain",
            Format::Zip => "application/zip",
            Format::Webm => "audio/webm",
            Format::Ogg => "audio/ogg",
            Format::Mp4 => "audio/mp4",
            Format::Wav => "audio/wav",
            Format::Mp3 => "audio/mpeg",
            Format::Aac => "audio/aac",
            Format::Flac => "audio/flac",
        }
    }

    /// Whether the format is an image (PNG, JPEG, GIF, WebP).
    #[cfg(test)]
    pub(crate) fn is_image(self) -> bool {
        matches!(self, Format::Png | Format::Jpeg | Format::Gif | Format::Webp)
    }

    /// Whether the format is audio (WebM, Ogg, MP4, WAV, MP3, AAC, FLAC).
    #[cfg(test)]
    pub(crate) fn is_audio(self) -> bool {
        matches!(
            self,
            Format::Webm | Format::Ogg | Format::Mp4 | Format::Wav | Format::Mp3 | Format::Aac | Format::Flac
        )
    }

    /// The name shown to people: "PNG image", "PDF document", "text", "WebM audio"…
    pub(crate) fn human_name(self) -> &'static str {
        by_format!(self, "", "")
    }
}

/// Checks a sample against the declared media type and the allow-list.
/// `declared` is what the client said (parameters like `;codecs=opus` ignored, case-insensitive);
/// `allowed` is the configured allow-list of media types (same normalisation).
/// Returns the format and the media type the file is stored with (the canonical one of the format,
/// except for Text where the declared text type is kept: text/plain, text/markdown, text/csv, application/json
/// are all Format::Text; a declared non-text type with text content is a Mismatch).
///
/// A declared type that says nothing (empty, or `application/octet-stream`,
/// which browsers send for extensions they do not know, such as `.md`) is not
/// a mismatch: the detected format's type is stored instead (`text/plain` for text).
pub(crate) fn inspect(
    sample: &Sample<'_>,
    declared: &str,
    allowed: &[String],
) -> Result<(Format, String), Refusal> {
    let head = sample.head;
    if head.is_empty() {
        return Err(Refusal::Empty);
    }
    let tail = if sample.tail.is_empty() { head } else { sample.tail };
    // A size smaller than the bytes read is a caller's mistake; offsets are
    // computed from the larger so that they cannot go negative.
    let size = sample.size.max(len64(head)).max(len64(tail));
    let view = View {
        head,
        tail,
        size,
        tail_starts_mid_file: len64(tail) < size,
        head_ends_mid_file: len64(head) < size,
    };

    if let Some(kind) = executable(&view) {
        return Err(Refusal::Executable(kind));
    }
    if let Some(kind) = script_start(head) {
        return Err(Refusal::Script(kind));
    }
    if let Some(format) = detect(&view) {
        check_structure(format, &view)?;
        return accept(format, declared, allowed);
    }
    if is_text(&view) {
        if contains_ignore_case(head, b"<script") || contains_ignore_case(tail, b"<script") {
            return Err(Refusal::Script("text with an HTML script in it"));
        }
        return accept_text(declared, allowed);
    }
    Err(Refusal::Unrecognised)
}

/// The sample with what `inspect` derived from it.
struct View<'a> {
    head: &'a [u8],
    tail: &'a [u8],
    size: u64,
    /// The tail does not start at the file's first byte: it may start inside a character.
    tail_starts_mid_file: bool,
    /// The head does not reach the file's end: it may end inside a character.
    head_ends_mid_file: bool,
}

/// The format the magic bytes announce, if any is recognised.
fn detect(view: &View<'_>) -> Option<Format> {
    let head = view.head;
    let starts = |magic: &[u8]| head.starts_with(magic);
    let riff = |form: &[u8]| starts(b"RIFF") && head.get(8..12) == Some(form);
    let format = if starts(PNG_SIGNATURE) {
        Format::Png
    } else if starts(JPEG_SOI) {
        Format::Jpeg
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Format::Gif
    } else if riff(b"WEBP") {
        Format::Webp
    } else if riff(b"WAVE") {
        Format::Wav
    } else if starts(b"%PDF-") {
        Format::Pdf
    } else if starts(ZIP_LOCAL) || starts(ZIP_END) {
        Format::Zip
    } else if starts(EBML_MAGIC) && is_webm(head) {
        Format::Webm
    } else if starts(b"OggS") {
        Format::Ogg
    } else if is_mp4(head) {
        Format::Mp4
    } else if starts(b"fLaC") {
        Format::Flac
    } else if let Some(end) = id3_end(head) {
        // ID3 tags front MP3 files, and sometimes AAC and FLAC ones.
        let mut at = end;
        while head.get(at) == Some(&0) {
            at += 1;
        }
        if head.get(at..).is_some_and(|rest| rest.starts_with(b"fLaC")) {
            Format::Flac
        } else if adts_frame_len(head, at).is_some() {
            Format::Aac
        } else {
            Format::Mp3
        }
    } else if is_stream(head, view.size, adts_frame_len) {
        Format::Aac
    } else if is_stream(head, view.size, mpeg_frame_len) {
        Format::Mp3
    } else {
        return None;
    };
    Some(format)
}

/// Checks what a recognised format must satisfy besides its magic bytes.
fn check_structure(format: Format, view: &View<'_>) -> Result<(), Refusal> {
    if format == Format::Pdf && has_pdf_actions(view) {
        return Err(Refusal::Script("PDF with embedded JavaScript or launch actions"));
    }
    if format != Format::Zip
        && let Some(hidden) = hidden_content(view)
    {
        return Err(polyglot(format, hidden));
    }
    check_ending(format, view)
}

/// Checks that the file is long enough for its header and ends where its format ends.
fn check_ending(format: Format, view: &View<'_>) -> Result<(), Refusal> {
    match format {
        Format::Png => check_png(view),
        Format::Jpeg => check_jpeg(view),
        Format::Gif => check_gif(view),
        Format::Webp => check_webp(view),
        Format::Wav => check_wav(view),
        Format::Pdf => check_pdf(view),
        Format::Zip => check_zip_tail(view),
        Format::Ogg => check_ogg(view),
        Format::Flac if view.head.starts_with(b"fLaC") => check_flac(view),
        Format::Flac | Format::Text | Format::Webm | Format::Mp4 | Format::Mp3 | Format::Aac => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::uploads::inspect::fixtures::{
        adts, allowed, check, flac, gif, jpeg, m4a, mp3, mp3_frames, ogg, ok, pdf, png, png_with, safe_zip,
        sampled, wav, webm, webp, whole, zip,
    };

    #[test]
    fn valid_files_are_accepted_with_their_canonical_type() {
        let cases: [(Vec<u8>, &str, Format, &str); 15] = [
            (png(), "image/png", Format::Png, "image/png"),
            (jpeg(), "image/jpg", Format::Jpeg, "image/jpeg"),
            (gif(), "image/gif", Format::Gif, "image/gif"),
            (webp(), "image/webp", Format::Webp, "image/webp"),
            (pdf(""), "application/pdf", Format::Pdf, "application/pdf"),
            (
                webm(b"webm"),
                "audio/webm;codecs=opus",
                Format::Webm,
                "audio/webm",
            ),
            (webm(b"matroska"), "video/webm", Format::Webm, "audio/webm"),
            (ogg(), "audio/opus", Format::Ogg, "audio/ogg"),
            (m4a(), "audio/x-m4a", Format::Mp4, "audio/mp4"),
            (m4a(), "video/mp4", Format::Mp4, "audio/mp4"),
            (wav(), "audio/x-wav", Format::Wav, "audio/wav"),
            (mp3(), "audio/mpeg", Format::Mp3, "audio/mpeg"),
            (mp3_frames(), "audio/mp3", Format::Mp3, "audio/mpeg"),
            (adts(3), "audio/aac", Format::Aac, "audio/aac"),
            (flac(), "AUDIO/FLAC", Format::Flac, "audio/flac"),
        ];
        for (bytes, declared, format, stored) in cases {
            assert_eq!(check(&bytes, declared), ok(format, stored), "{declared}");
        }
        assert_eq!(
            check(&safe_zip(), "application/x-zip-compressed"),
            ok(Format::Zip, "application/zip")
        );
        assert_eq!(
            check(&zip(&[]), "application/zip"),
            ok(Format::Zip, "application/zip")
        );
        let mut padded = jpeg();
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(check(&padded, "image/jpeg"), ok(Format::Jpeg, "image/jpeg"));
    }

    #[test]
    fn cut_files_are_refused_as_truncated() {
        let png = png();
        assert_eq!(
            check(&png[..png.len() - 12], "image/png"),
            Err(Refusal::Truncated("the PNG image is incomplete"))
        );
        assert_eq!(
            check(&png[..20], "image/png"),
            Err(Refusal::Truncated("the PNG image is incomplete"))
        );
        let jpeg = jpeg();
        assert_eq!(
            check(&jpeg[..jpeg.len() - 2], "image/jpeg"),
            Err(Refusal::Truncated("the JPEG image is incomplete"))
        );
        let pdf = pdf("");
        assert_eq!(
            check(&pdf[..pdf.len() - 7], "application/pdf"),
            Err(Refusal::Truncated("the PDF document is incomplete"))
        );
        let webp = webp();
        assert_eq!(
            check(&webp[..webp.len() - 4], "image/webp"),
            Err(Refusal::Truncated("the WebP image is incomplete"))
        );
        let gif = gif();
        assert!(matches!(
            check(&gif[..gif.len() - 1], "image/gif"),
            Err(Refusal::Truncated(_))
        ));
    }

    #[test]
    fn empty_and_unknown_files_are_refused() {
        assert_eq!(check(b"", "text/plain"), Err(Refusal::Empty));
        assert_eq!(
            inspect(
                &Sample {
                    head: b"",
                    tail: b"",
                    size: 0
                },
                "",
                &[]
            ),
            Err(Refusal::Empty)
        );
        assert_eq!(
            check(b"\x00\x01\x02\x03binary", "text/plain"),
            Err(Refusal::Unrecognised)
        );
        assert_eq!(check(&webm(b"other"), "audio/webm"), Err(Refusal::Unrecognised));
        assert_eq!(
            check("\u{1b}\u{1b}\u{1b}ab".as_bytes(), "text/plain"),
            Err(Refusal::Unrecognised)
        );
        assert_eq!(
            check(b"\xff\xfeh\x00i\x00", "text/plain"),
            Err(Refusal::Unrecognised)
        );
    }

    #[test]
    fn large_files_are_judged_from_head_and_tail() {
        // 200 KB of image data: the IEND chunk is only in the tail.
        let idat: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let big = png_with(&idat);
        assert_eq!(
            inspect(&sampled(&big), "image/png", &allowed()),
            ok(Format::Png, "image/png")
        );
        let mut with_zip = big.clone();
        with_zip.extend(safe_zip());
        assert_eq!(
            inspect(&sampled(&with_zip), "image/png", &allowed()),
            Err(Refusal::Polyglot("a ZIP archive is hidden in the PNG image"))
        );
        let mut with_script = big.clone();
        with_script.splice(100_000..100_000, b"<script>".iter().copied());
        // The middle is not read: this is a limit of sampling, stated in the module doc.
        assert!(inspect(&sampled(&with_script), "image/png", &allowed()).is_ok());
        // Text whose head and tail boundaries cut three-byte characters.
        let text = "€".repeat(70_000);
        assert!(!text.is_char_boundary(HEAD_BYTES) && !text.is_char_boundary(text.len() - TAIL_BYTES));
        assert_eq!(
            inspect(&sampled(text.as_bytes()), "text/plain", &allowed()),
            ok(Format::Text, "text/plain")
        );
    }

    #[test]
    fn no_input_makes_inspection_panic() {
        let mut rng = StdRng::seed_from_u64(0x1ab5);
        let magics: [&[u8]; 18] = [
            PNG_SIGNATURE,
            b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR",
            JPEG_SOI,
            b"GIF89a",
            b"RIFF\0\0\0\0WEBPVP8L",
            b"RIFF\xff\xff\xff\xffWAVE",
            b"%PDF-1.7",
            ZIP_LOCAL,
            ZIP_END,
            b"\x1a\x45\xdf\xa3\x42\x82\x84webm",
            b"OggS\0",
            b"\0\0\0\x20ftypisom",
            b"fLaC\0",
            b"ID3\x04\0\0\0\0\0\x01",
            b"\xff\xfb\x90",
            b"\xff\xf1\x50\x80",
            b"MZ",
            b"<?xml <!-- ",
        ];
        let everything = allowed();
        let valid = [
            png(),
            jpeg(),
            gif(),
            webp(),
            pdf(""),
            wav(),
            mp3(),
            adts(2),
            flac(),
            ogg(),
            m4a(),
            safe_zip(),
        ];
        for round in 0..20_000 {
            let len = rng.random_range(0..300);
            let mut bytes = vec![0u8; len];
            rng.fill(&mut bytes[..]);
            match round % 3 {
                0 => {
                    let magic = magics[rng.random_range(0..magics.len())];
                    bytes.splice(0..0, magic.iter().copied());
                }
                1 => {
                    // A valid file with a few bytes changed or cut.
                    bytes = valid[rng.random_range(0..valid.len())].clone();
                    for _ in 0..rng.random_range(0..4) {
                        let at = rng.random_range(0..bytes.len());
                        bytes[at] = rng.random();
                    }
                    bytes.truncate(rng.random_range(0..=bytes.len()));
                }
                _ => {}
            }
            // Accepted or refused, either will do: the property is that they return.
            let _ = inspect(&whole(&bytes), "image/png", &everything);
            let _ = check_zip(&bytes);
            // Head and tail cut anywhere, as a worker reading a larger file would see them.
            let head = rng.random_range(0..=bytes.len());
            let tail = rng.random_range(0..=bytes.len());
            let sample = Sample {
                head: &bytes[..head],
                tail: &bytes[bytes.len() - tail..],
                size: rng.random_range(0..1000),
            };
            // As above: returning is the property.
            let _ = inspect(&sample, "text/plain", &everything);
        }
    }
}
