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

use std::cmp::Ordering;

/// Bytes read from the start of the object.
pub const HEAD_BYTES: usize = 64 * 1024;
/// Bytes read from the end of the object.
pub const TAIL_BYTES: usize = 64 * 1024;

/// Most entries a ZIP archive may hold.
const MAX_ZIP_ENTRIES: u64 = 10_000;
/// Most bytes a ZIP archive may expand to.
const MAX_ZIP_EXPANDED: u64 = 1 << 30;
/// Most times a ZIP archive may expand beyond its own size.
const MAX_ZIP_RATIO: u64 = 100;
/// Expanded size under which the ratio is not checked: a few kilobytes of
/// repetitive text compress far beyond 100:1 and harm nobody.
const ZIP_RATIO_FLOOR: u64 = 1 << 20;
/// A PDF's last `%%EOF` must lie within this many bytes of its end.
const PDF_EOF_WINDOW: usize = 1024;
/// Zero bytes some JPEG writers pad after the end-of-image marker.
const JPEG_PADDING: usize = 16;
/// A text file may have one control character in this many bytes (ANSI
/// colours in logs); binary data has far more.
const TEXT_BYTES_PER_CONTROL: usize = 50;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
/// The whole IEND chunk: length 0, type, and its fixed CRC.
const PNG_IEND: &[u8] = b"\0\0\0\0IEND\xae\x42\x60\x82";
const JPEG_SOI: &[u8] = b"\xff\xd8\xff";
const JPEG_EOI: &[u8] = b"\xff\xd9";
const EBML_MAGIC: &[u8] = b"\x1a\x45\xdf\xa3";
const ZIP_LOCAL: &[u8] = b"PK\x03\x04";
const ZIP_CENTRAL: &[u8] = b"PK\x01\x02";
const ZIP_END: &[u8] = b"PK\x05\x06";
/// Fixed part of a ZIP end-of-central-directory record.
const ZIP_END_LEN: usize = 22;
/// Fixed part of a ZIP central directory entry.
const ZIP_CENTRAL_LEN: usize = 46;
/// Fixed part of a ZIP local file header.
const ZIP_LOCAL_LEN: usize = 30;
/// Major brands of the ISO media files accepted as MP4 audio (besides `iso2`…`iso9`).
const MP4_BRANDS: [&[u8]; 11] = [
    b"M4A ", b"M4B ", b"mp41", b"mp42", b"isom", b"dash", b"avc1", b"3gp4", b"3gp5", b"3gp6", b"MSNV",
];

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

/// What a worker read of an uploaded object: its first `HEAD_BYTES` and last
/// `TAIL_BYTES` (they overlap, or are the same bytes, for small files), and its size.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The first bytes of the object.
    pub head: &'a [u8],
    /// The last bytes of the object.
    pub tail: &'a [u8],
    /// The object's size in bytes.
    pub size: u64,
}

/// A format recognised by its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
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
    pub fn media_type(self) -> &'static str {
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
    pub fn is_image(self) -> bool {
        matches!(self, Format::Png | Format::Jpeg | Format::Gif | Format::Webp)
    }

    /// Whether the format is audio (WebM, Ogg, MP4, WAV, MP3, AAC, FLAC).
    pub fn is_audio(self) -> bool {
        matches!(
            self,
            Format::Webm | Format::Ogg | Format::Mp4 | Format::Wav | Format::Mp3 | Format::Aac | Format::Flac
        )
    }

    /// The name shown to people: "PNG image", "PDF document", "text", "WebM audio"…
    pub fn human_name(self) -> &'static str {
        by_format!(self, "", "")
    }
}

/// Why a file was refused: the Display text is shown to the user as is, a plain sentence
/// (e.g. "the file is a Windows program (.exe), which is not allowed",
/// "the file says it is image/png but its content is a PDF document", "the file is empty").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
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
pub fn inspect(sample: &Sample<'_>, declared: &str, allowed: &[String]) -> Result<(Format, String), Refusal> {
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

/// Checks a whole ZIP archive (called when `inspect` found Format::Zip and zip is allowed):
/// central directory parsed from the EOCD; refuse entries with `..` components, absolute paths
/// (leading `/` or `\\` or a drive letter like `C:`), backslash traversal, symlinks (unix mode in external
/// attributes), more than 10_000 entries, total uncompressed size over 1 GiB or ratio over 100:1,
/// and a central directory that does not fit the file.
///
/// Also refused: entries whose data overlap (the non-recursive zip bomb),
/// local headers whose names differ in safety from the central directory's,
/// split archives and ZIP64 (no archive within these limits needs it).
pub fn check_zip(archive: &[u8]) -> Result<(), Refusal> {
    let damaged = || unsafe_archive("its table of contents is missing or damaged");
    let end = find_zip_end(archive).ok_or_else(damaged)?;
    let field16 = |at: usize| le16(archive, end + at).ok_or_else(damaged);
    let field32 = |at: usize| le32(archive, end + at).ok_or_else(damaged);
    let (disk, directory_disk, entries_here, entries) = (field16(4)?, field16(6)?, field16(8)?, field16(10)?);
    let (directory_size, directory_offset) = (field32(12)?, field32(16)?);
    if entries == u16::MAX || directory_size == u32::MAX || directory_offset == u32::MAX {
        return Err(unsafe_archive("it uses the ZIP64 format, which is not supported"));
    }
    if disk != 0 || directory_disk != 0 || entries_here != entries {
        return Err(unsafe_archive(
            "it is split into several parts, which is not supported",
        ));
    }
    if u64::from(entries) > MAX_ZIP_ENTRIES {
        return Err(unsafe_archive(format!(
            "it has more than {MAX_ZIP_ENTRIES} entries"
        )));
    }
    let directory_start = to_usize(directory_offset);
    let directory_end = directory_start.checked_add(to_usize(directory_size));
    if directory_end != Some(end) {
        return Err(unsafe_archive("its table of contents does not fit the file"));
    }
    let directory = archive.get(directory_start..end).ok_or_else(damaged)?;

    let mut pos = 0usize;
    let mut expanded = 0u64;
    let mut spans = Vec::with_capacity(usize::from(entries));
    for _ in 0..entries {
        let entry = directory.get(pos..).ok_or_else(damaged)?;
        if !entry.starts_with(ZIP_CENTRAL) {
            return Err(damaged());
        }
        let field16 = |at: usize| le16(entry, at).map(usize::from).ok_or_else(damaged);
        let field32 = |at: usize| le32(entry, at).ok_or_else(damaged);
        let (compressed, uncompressed) = (field32(20)?, field32(24)?);
        let (name_len, extra_len, comment_len) = (field16(28)?, field16(30)?, field16(32)?);
        let (external, local_offset) = (field32(38)?, field32(42)?);
        let name = entry
            .get(ZIP_CENTRAL_LEN..ZIP_CENTRAL_LEN + name_len)
            .ok_or_else(damaged)?;
        check_entry_name(name)?;
        if (external >> 16) & 0o170_000 == 0o120_000 {
            return Err(unsafe_archive(format!(
                "its entry `{}` is a symbolic link",
                shown_name(name)
            )));
        }
        if compressed == u32::MAX || uncompressed == u32::MAX {
            return Err(unsafe_archive("it uses the ZIP64 format, which is not supported"));
        }
        expanded += u64::from(uncompressed);
        spans.push(local_span(
            archive,
            to_usize(local_offset),
            to_usize(compressed),
            directory_start,
        )?);
        pos += ZIP_CENTRAL_LEN + name_len + extra_len + comment_len;
    }
    if pos != directory.len() {
        return Err(damaged());
    }
    if expanded > MAX_ZIP_EXPANDED {
        return Err(unsafe_archive("it would expand to more than 1 GiB"));
    }
    if expanded > ZIP_RATIO_FLOOR && expanded > len64(archive).saturating_mul(MAX_ZIP_RATIO) {
        return Err(unsafe_archive(format!(
            "it would expand to more than {MAX_ZIP_RATIO} times its size, like a zip bomb"
        )));
    }
    spans.sort_unstable();
    if spans.windows(2).any(|pair| pair[0].1 > pair[1].0) {
        return Err(unsafe_archive("its entries overlap, like a zip bomb"));
    }
    Ok(())
}

/// Normalises a media type: lower case, parameters dropped, aliases mapped
/// (image/jpg→image/jpeg, audio/x-wav|audio/wave|audio/vnd.wave→audio/wav, audio/x-m4a|audio/m4a→audio/mp4,
/// video/webm→audio/webm, video/ogg|audio/opus→audio/ogg, audio/mp3→audio/mpeg, audio/x-flac→audio/flac,
/// text/x-markdown→text/markdown, application/x-zip-compressed→application/zip).
pub fn normalise(media_type: &str) -> String {
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

/// What a second format hidden in a file is.
#[derive(Clone, Copy)]
enum Hidden {
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

fn incomplete(format: Format) -> Refusal {
    Refusal::Truncated(by_format!(format, "the ", " is incomplete"))
}

fn polyglot(format: Format, hidden: Hidden) -> Refusal {
    Refusal::Polyglot(hidden_message(format, hidden))
}

fn unsafe_archive(reason: impl Into<String>) -> Refusal {
    Refusal::UnsafeArchive(reason.into())
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

/// The kind of program the file starts as, if it is one.
fn executable(view: &View<'_>) -> Option<&'static str> {
    let head = view.head;
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(b"MZ") {
        // A DOS header always holds zero bytes; a text that happens to start with "MZ" does not.
        return (!is_text(view)).then_some("Windows program (.exe)");
    }
    if starts(b"\x7fELF") {
        return Some("Linux program (ELF)");
    }
    if [
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
    ]
    .iter()
    .any(|magic| starts(*magic))
    {
        return Some("macOS program (Mach-O)");
    }
    if starts(b"\xca\xfe\xba\xbe") || starts(b"\xca\xfe\xba\xbf") || starts(b"\xbe\xba\xfe\xca") {
        // A universal Mach-O binary and a Java class share their magic.
        return Some("macOS or Java program");
    }
    if starts(b"\0asm") {
        return Some("WebAssembly module");
    }
    if starts(b"dex\n") {
        return Some("Android program (DEX)");
    }
    if starts(b"\x4c\0\0\0\x01\x14\x02\0") {
        return Some("Windows shortcut (.lnk)");
    }
    if starts(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        // OLE compound files are .msi installers and macro-capable Office 97 documents.
        return Some("Windows installer or old Office document (OLE)");
    }
    None
}

/// The kind of script or active markup the file starts as, if it is one.
fn script_start(head: &[u8]) -> Option<&'static str> {
    let mut rest = skip_space(head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head));
    if rest.starts_with(b"#!") {
        return Some("shell script");
    }
    if starts_with_tag(rest, b"@echo") {
        return Some("Windows batch file");
    }
    // XML declarations and comments may come before the element that matters.
    for _ in 0..16 {
        rest = skip_space(rest);
        if starts_with_tag(rest, b"<?php") {
            return Some("PHP script");
        }
        if starts_with_ignore_case(rest, b"<?xml") {
            rest = after(rest, b"?>")?;
            continue;
        }
        if starts_with_ignore_case(rest, b"<!--") {
            rest = after(rest, b"-->")?;
            continue;
        }
        if starts_with_tag(rest, b"<svg") || starts_with_tag(rest, b"<!doctype svg") {
            return Some("SVG image");
        }
        let html = [
            b"<!doctype html".as_slice(),
            b"<html",
            b"<head",
            b"<body",
            b"<script",
            b"<iframe",
        ];
        if html.iter().any(|tag| starts_with_tag(rest, tag)) {
            return Some("HTML page");
        }
        return None;
    }
    None
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

/// A second format found in the head or tail, if any.
fn hidden_content(view: &View<'_>) -> Option<Hidden> {
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

/// Checks that the file is long enough for its header and ends where its format ends.
fn check_ending(format: Format, view: &View<'_>) -> Result<(), Refusal> {
    let (head, tail) = (view.head, view.tail);
    match format {
        Format::Png => check_png(view),
        Format::Jpeg => {
            if head.len() < 4 {
                return Err(incomplete(format));
            }
            let padding = tail
                .iter()
                .rev()
                .take(JPEG_PADDING)
                .take_while(|b| **b == 0)
                .count();
            let body = tail.get(..tail.len() - padding).unwrap_or_default();
            if body.ends_with(JPEG_EOI) {
                Ok(())
            } else if find(tail, JPEG_EOI).is_some() {
                Err(polyglot(format, Hidden::AfterEnd))
            } else {
                Err(incomplete(format))
            }
        }
        Format::Gif => {
            if head.len() < 13 {
                Err(incomplete(format))
            } else if tail.last() == Some(&0x3b) {
                Ok(())
            } else {
                // The trailer byte is too common to tell a cut file from appended data.
                Err(Refusal::Truncated(
                    "the GIF image is incomplete or has data after its end",
                ))
            }
        }
        Format::Webp => {
            let chunk = head.get(12..16).ok_or_else(|| incomplete(format))?;
            if ![b"VP8 ".as_slice(), b"VP8L", b"VP8X"].contains(&chunk) {
                return Err(Refusal::Unrecognised);
            }
            let declared_end = le32(head, 4).map_or(0, u64::from) + 8;
            match declared_end.cmp(&view.size) {
                Ordering::Equal => Ok(()),
                Ordering::Less => Err(polyglot(format, Hidden::AfterEnd)),
                Ordering::Greater => Err(incomplete(format)),
            }
        }
        Format::Wav => {
            // Recorders that stream write 0 or 0xFFFFFFFF as the size, and
            // some leave one byte of padding uncounted: neither is appended data.
            let riff = le32(head, 4).unwrap_or_default();
            if riff != 0 && riff != u32::MAX && u64::from(riff) + 8 + 1 < view.size {
                Err(polyglot(format, Hidden::AfterEnd))
            } else {
                Ok(())
            }
        }
        Format::Pdf => match rfind(tail, b"%%EOF") {
            Some(at) if at >= tail.len().saturating_sub(PDF_EOF_WINDOW) => Ok(()),
            Some(_) => Err(polyglot(format, Hidden::AfterEnd)),
            None => Err(incomplete(format)),
        },
        Format::Zip => {
            if find(tail, ZIP_END).is_some() {
                Ok(())
            } else {
                Err(incomplete(format))
            }
        }
        Format::Ogg => match head.get(4) {
            _ if head.len() < 27 => Err(incomplete(format)),
            Some(0) => Ok(()),
            _ => Err(Refusal::Unrecognised),
        },
        Format::Flac if head.starts_with(b"fLaC") => match head.get(4) {
            _ if head.len() < 8 => Err(incomplete(format)),
            Some(block) if block & 0x7f == 0 => Ok(()),
            _ => Err(Refusal::Unrecognised),
        },
        Format::Flac | Format::Text | Format::Webm | Format::Mp4 | Format::Mp3 | Format::Aac => Ok(()),
    }
}

/// A PNG starts with IHDR, is a chain of well-formed chunks, and ends with IEND.
fn check_png(view: &View<'_>) -> Result<(), Refusal> {
    let head = view.head;
    let Some(first) = head.get(8..16) else {
        return Err(incomplete(Format::Png));
    };
    if first != b"\0\0\0\x0dIHDR" {
        return Err(Refusal::Unrecognised);
    }
    if head.len() < 33 {
        return Err(incomplete(Format::Png));
    }
    let mut pos = PNG_SIGNATURE.len() as u64;
    while let Some(chunk) = usize::try_from(pos)
        .ok()
        .and_then(|at| head.get(at..))
        .and_then(|c| c.get(..8))
    {
        let len = be32(chunk, 0).unwrap_or_default();
        let kind = chunk.get(4..8).unwrap_or_default();
        if len > 0x7fff_ffff || !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(Refusal::Unrecognised);
        }
        let end = pos + 12 + u64::from(len);
        if kind == b"IEND" {
            match end.cmp(&view.size) {
                Ordering::Less => return Err(polyglot(Format::Png, Hidden::AfterEnd)),
                Ordering::Greater => return Err(incomplete(Format::Png)),
                Ordering::Equal => break,
            }
        }
        pos = end;
    }
    if view.tail.ends_with(PNG_IEND) {
        Ok(())
    } else if find(view.tail, PNG_IEND).is_some() || find(head, PNG_IEND).is_some() {
        Err(polyglot(Format::Png, Hidden::AfterEnd))
    } else {
        Err(incomplete(Format::Png))
    }
}

/// Whether the PDF names an action that runs code or opens other files.
fn has_pdf_actions(view: &View<'_>) -> bool {
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

/// Whether a Matroska header names the `webm` or `matroska` DocType in its first 64 bytes.
fn is_webm(head: &[u8]) -> bool {
    let window = head.get(..64).unwrap_or(head);
    for at in 0..window.len() {
        if window.get(at..at + 2) != Some(b"\x42\x82") {
            continue;
        }
        let Some(&size) = window.get(at + 2) else {
            continue;
        };
        // A one-byte EBML size has its top bit set and the length in the rest.
        if size & 0x80 == 0 {
            continue;
        }
        let doc_type = head.get(at + 3..at + 3 + usize::from(size & 0x7f));
        if doc_type == Some(b"webm") || doc_type == Some(b"matroska") {
            return true;
        }
    }
    false
}

/// Whether the file is an ISO media file whose major brand is an audio-capable MP4 one.
fn is_mp4(head: &[u8]) -> bool {
    if head.get(4..8) != Some(b"ftyp") || be32(head, 0).is_none_or(|size| size < 16) {
        return false;
    }
    let Some(brand) = head.get(8..12) else {
        return false;
    };
    let iso_n = brand.starts_with(b"iso") && brand.get(3).is_some_and(|n| (b'2'..=b'9').contains(n));
    iso_n || MP4_BRANDS.contains(&brand)
}

/// Where an ID3v2 tag at the start ends, if there is one.
fn id3_end(head: &[u8]) -> Option<usize> {
    let header = head.get(..10)?;
    if !header.starts_with(b"ID3") || !(2..=4).contains(&header[3]) || header[4] == 0xff {
        return None;
    }
    let size_bytes = header.get(6..10)?;
    if size_bytes.iter().any(|b| b & 0x80 != 0) {
        return None;
    }
    // A "synchsafe" integer: seven bits per byte.
    let size = size_bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 7) | usize::from(*b));
    let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + size + footer)
}

/// Whether the head starts with a frame that `frame_len` accepts and, when
/// the next frame is within the head, that one too: one valid header could be chance.
fn is_stream(head: &[u8], size: u64, frame_len: fn(&[u8], usize) -> Option<usize>) -> bool {
    let Some(len) = frame_len(head, 0) else {
        return false;
    };
    match u64::try_from(len).unwrap_or(u64::MAX).cmp(&size) {
        // A first frame longer than the file is chance, not audio.
        Ordering::Greater => false,
        Ordering::Equal => true,
        Ordering::Less => head.len() < len.saturating_add(4) || frame_len(head, len).is_some(),
    }
}

/// The length of the MPEG audio frame whose header is at `at`, if it is a valid one.
fn mpeg_frame_len(bytes: &[u8], at: usize) -> Option<usize> {
    const V1_L1: [usize; 15] = [
        0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ];
    const V1_L2: [usize; 15] = [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384];
    const V1_L3: [usize; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
    const V2_L1: [usize; 15] = [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256];
    const V2_L23: [usize; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let header = bytes.get(at..)?.get(..4)?;
    if header[0] != 0xff || header[1] & 0xe0 != 0xe0 {
        return None;
    }
    // Version: 3 is MPEG-1, 2 is MPEG-2, 0 is MPEG-2.5, 1 is reserved.
    // Layer: 3 is layer I, 2 is layer II, 1 is layer III, 0 is reserved.
    let version = (header[1] >> 3) & 3;
    let layer = (header[1] >> 1) & 3;
    let bitrate_index = usize::from(header[2] >> 4);
    let rate_index = usize::from((header[2] >> 2) & 3);
    let padding = usize::from((header[2] >> 1) & 1);
    if version == 1 || layer == 0 || bitrate_index == 0 {
        return None;
    }
    let table = match (version == 3, layer) {
        (true, 3) => &V1_L1,
        (true, 2) => &V1_L2,
        (true, _) => &V1_L3,
        (false, 3) => &V2_L1,
        (false, _) => &V2_L23,
    };
    let bits_per_second = table.get(bitrate_index)? * 1000;
    let shift = match version {
        3 => 0,
        2 => 1,
        _ => 2,
    };
    let rate = [44_100usize, 48_000, 32_000].get(rate_index)? >> shift;
    Some(match layer {
        3 => (12 * bits_per_second / rate + padding) * 4,
        1 if version != 3 => 72 * bits_per_second / rate + padding,
        _ => 144 * bits_per_second / rate + padding,
    })
}

/// The length of the AAC ADTS frame whose header is at `at`, if it is a valid one.
fn adts_frame_len(bytes: &[u8], at: usize) -> Option<usize> {
    let header = bytes.get(at..)?.get(..7)?;
    // Twelve sync bits, then the MPEG version bit, then layer 0.
    if header[0] != 0xff || header[1] & 0xf6 != 0xf0 || (header[2] >> 2) & 0xf >= 13 {
        return None;
    }
    let len =
        (usize::from(header[3] & 3) << 11) | (usize::from(header[4]) << 3) | usize::from(header[5] >> 5);
    let header_len = if header[1] & 1 == 0 { 9 } else { 7 };
    (len >= header_len).then_some(len)
}

/// Whether the sample is UTF-8 text with no NUL and few control characters.
fn is_text(view: &View<'_>) -> bool {
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

/// Accepts a recognised binary format if it is allowed and agrees with the declared type.
fn accept(format: Format, declared: &str, allowed: &[String]) -> Result<(Format, String), Refusal> {
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

/// Accepts text under the declared text type, if that type is inert and allowed.
fn accept_text(declared: &str, allowed: &[String]) -> Result<(Format, String), Refusal> {
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

/// Whether a declared type carries no information about the content.
fn says_nothing(declared: &str) -> bool {
    declared.is_empty() || declared == "application/octet-stream"
}

fn is_allowed(allowed: &[String], media_type: &str) -> bool {
    allowed.iter().any(|a| normalise(a) == media_type)
}

/// Where the last ZIP end-of-central-directory record starts whose comment reaches the file's end.
fn find_zip_end(archive: &[u8]) -> Option<usize> {
    let last = archive.len().checked_sub(ZIP_END_LEN)?;
    let first = last.saturating_sub(usize::from(u16::MAX));
    (first..=last).rev().find(|&at| {
        archive
            .get(at..)
            .is_some_and(|record| record.starts_with(ZIP_END))
            && le16(archive, at + 20)
                .is_some_and(|comment| at + ZIP_END_LEN + usize::from(comment) == archive.len())
    })
}

/// Where an entry's local header and data lie, checking the header and its name on the way.
fn local_span(
    archive: &[u8],
    offset: usize,
    compressed: usize,
    directory_start: usize,
) -> Result<(usize, usize), Refusal> {
    let damaged = || unsafe_archive("its table of contents is missing or damaged");
    let header = archive.get(offset..).ok_or_else(damaged)?;
    if !header.starts_with(ZIP_LOCAL) {
        return Err(damaged());
    }
    let name_len = le16(header, 26).map(usize::from).ok_or_else(damaged)?;
    let extra_len = le16(header, 28).map(usize::from).ok_or_else(damaged)?;
    let name = header
        .get(ZIP_LOCAL_LEN..ZIP_LOCAL_LEN + name_len)
        .ok_or_else(damaged)?;
    // Streaming extractors read the local name, not the central one.
    check_entry_name(name)?;
    let end = offset
        .saturating_add(ZIP_LOCAL_LEN + name_len + extra_len)
        .saturating_add(compressed);
    if end > directory_start {
        return Err(damaged());
    }
    Ok((offset, end))
}

/// Refuses an entry name that is absolute or climbs out of the extraction folder.
fn check_entry_name(name: &[u8]) -> Result<(), Refusal> {
    if name.is_empty() || name.contains(&0) {
        return Err(unsafe_archive("one of its entries has no valid name"));
    }
    let is_drive = |part: &[u8]| part.len() >= 2 && part[0].is_ascii_alphabetic() && part[1] == b':';
    let parts = || name.split(|b| *b == b'/' || *b == b'\\');
    if name[0] == b'/' || name[0] == b'\\' || parts().any(is_drive) {
        return Err(unsafe_archive(format!(
            "its entry `{}` has an absolute path",
            shown_name(name)
        )));
    }
    // Windows drops trailing dots and spaces, so `.. ` and `...` climb too.
    let climbs = |part: &[u8]| {
        part.iter().filter(|b| **b == b'.').count() >= 2 && part.iter().all(|b| matches!(b, b'.' | b' '))
    };
    if parts().any(climbs) {
        return Err(unsafe_archive(format!(
            "its entry `{}` points outside the archive",
            shown_name(name)
        )));
    }
    Ok(())
}

/// An entry name as it can be shown in a message: printable and not too long.
fn shown_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(100)
        .collect()
}

fn len64(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

fn to_usize(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn le16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..)?.get(..2)?.try_into().ok()?))
}

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..)?.get(..4)?.try_into().ok()?))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..)?.get(..4)?.try_into().ok()?))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|window| window == needle)
}

/// Whether `needle` (ASCII, lower case) occurs in `haystack`, ignoring ASCII case.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    haystack.iter().enumerate().any(|(at, b)| {
        *b == first
            && haystack
                .get(at..at + needle.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(needle))
    })
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// Whether `bytes` starts with `tag` (ignoring case) followed by a space, `>`, `/` or nothing.
fn starts_with_tag(bytes: &[u8], tag: &[u8]) -> bool {
    starts_with_ignore_case(bytes, tag)
        && bytes
            .get(tag.len())
            .is_none_or(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
}

fn skip_space(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// The bytes after the first `marker`, if it occurs.
fn after<'a>(bytes: &'a [u8], marker: &[u8]) -> Option<&'a [u8]> {
    bytes.get(find(bytes, marker)? + marker.len()..)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn allowed() -> Vec<String> {
        [
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "application/pdf",
            "text/plain",
            "text/markdown",
            "text/csv",
            "application/json",
            "application/zip",
            "audio/webm",
            "audio/ogg",
            "audio/mp4",
            "audio/wav",
            "audio/mpeg",
            "audio/aac",
            "audio/flac",
        ]
        .map(String::from)
        .to_vec()
    }

    /// A small file read whole: head and tail are the same bytes.
    fn whole(bytes: &[u8]) -> Sample<'_> {
        Sample {
            head: bytes,
            tail: bytes,
            size: bytes.len() as u64,
        }
    }

    /// A file of any size read the way a worker reads it.
    fn sampled(bytes: &[u8]) -> Sample<'_> {
        Sample {
            head: &bytes[..bytes.len().min(HEAD_BYTES)],
            tail: &bytes[bytes.len().saturating_sub(TAIL_BYTES)..],
            size: bytes.len() as u64,
        }
    }

    fn check(bytes: &[u8], declared: &str) -> Result<(Format, String), Refusal> {
        inspect(&whole(bytes), declared, &allowed())
    }

    fn ok(format: Format, media_type: &str) -> Result<(Format, String), Refusal> {
        Ok((format, media_type.to_owned()))
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(&crc32(&chunk[4..]).to_be_bytes());
        chunk
    }

    /// A PNG whose image data is `idat` (a real 1x1 grey pixel by default).
    fn png_with(idat: &[u8]) -> Vec<u8> {
        let mut png = PNG_SIGNATURE.to_vec();
        // 1x1, 8-bit greyscale, deflate, no filter, no interlace.
        png.extend(png_chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
        png.extend(png_chunk(b"IDAT", idat));
        png.extend(png_chunk(b"IEND", &[]));
        png
    }

    fn png() -> Vec<u8> {
        // zlib header, one stored final block holding the scanline [filter 0, pixel 0], Adler-32.
        png_with(&[
            0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01,
        ])
    }

    fn jpeg() -> Vec<u8> {
        let mut jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00".to_vec();
        jpeg.extend_from_slice(b"\xff\xd9");
        jpeg
    }

    fn gif() -> Vec<u8> {
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00\x21\xf9\x04\x01\x00\x00\x00\x00\
          \x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b"
            .to_vec()
    }

    fn webp() -> Vec<u8> {
        b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
            .to_vec()
    }

    fn pdf(body: &str) -> Vec<u8> {
        format!("%PDF-1.4\n1 0 obj\n<< /Type /Catalog {body}>>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
            .into_bytes()
    }

    fn webm(doc_type: &[u8]) -> Vec<u8> {
        let mut elements =
            b"\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82".to_vec();
        elements.push(0x80 | doc_type.len() as u8);
        elements.extend_from_slice(doc_type);
        elements.extend_from_slice(b"\x42\x87\x81\x04\x42\x85\x81\x02");
        let mut file = EBML_MAGIC.to_vec();
        file.push(0x80 | elements.len() as u8);
        file.extend(elements);
        file.extend_from_slice(b"\x18\x53\x80\x67\x01\x00\x00\x00\x00\x00\x00\x10");
        file.extend_from_slice(&[0x11; 16]);
        file
    }

    fn ogg() -> Vec<u8> {
        let mut page = b"OggS\x00\x02".to_vec();
        page.extend_from_slice(&[0; 8]); // granule position
        page.extend_from_slice(&[1, 2, 3, 4]); // serial
        page.extend_from_slice(&[0; 4]); // sequence
        page.extend_from_slice(&[9, 9, 9, 9]); // checksum
        page.extend_from_slice(&[1, 19]); // one segment of 19 bytes
        page.extend_from_slice(b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00");
        page
    }

    fn m4a() -> Vec<u8> {
        let mut file = b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom\x00\x00\x00\x00".to_vec();
        file.extend_from_slice(b"\x00\x00\x00\x18mdat");
        file.extend_from_slice(&[0x21; 16]);
        file
    }

    fn wav() -> Vec<u8> {
        let mut body =
            b"WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00"
                .to_vec();
        body.extend_from_slice(b"data\x04\x00\x00\x00\x01\x02\x03\x04");
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_le_bytes());
        file.extend(body);
        file
    }

    /// Two MPEG-1 layer III frames, 128 kbit/s, 44.1 kHz: 417 bytes each.
    fn mp3_frames() -> Vec<u8> {
        let mut frame = b"\xff\xfb\x90\x00".to_vec();
        frame.resize(417, 0x55);
        frame.repeat(2)
    }

    fn mp3() -> Vec<u8> {
        let mut file = b"ID3\x03\x00\x00\x00\x00\x00\x0aTIT2\x00\x00\x00\x00".to_vec();
        file.extend_from_slice(&[0; 6]);
        file.extend(mp3_frames());
        file
    }

    fn adts(frames: usize) -> Vec<u8> {
        let len = 7 + 20usize;
        let mut frame = vec![
            0xff,
            0xf1,
            0x50,
            0x80 | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 7) << 5) as u8 | 0x1f,
            0xfc,
        ];
        frame.resize(len, 0x33);
        frame.repeat(frames)
    }

    fn flac() -> Vec<u8> {
        let mut file = b"fLaC\x80\x00\x00\x22".to_vec();
        file.extend_from_slice(&[0x10; 34]);
        file.extend_from_slice(b"\xff\xf8\x69\x08\x00\x00");
        file
    }

    fn exe() -> Vec<u8> {
        let mut file = vec![0; 256];
        file[..2].copy_from_slice(b"MZ");
        file[0x3c] = 0x40;
        file[0x40..0x44].copy_from_slice(b"PE\0\0");
        file
    }

    /// One ZIP entry as the archive builder should write it.
    struct Entry {
        name: &'static str,
        data: Vec<u8>,
        /// The uncompressed size the central directory claims.
        claimed_size: u32,
        external: u32,
    }

    fn entry(name: &'static str, data: &[u8]) -> Entry {
        Entry {
            name,
            data: data.to_vec(),
            claimed_size: data.len() as u32,
            external: 0,
        }
    }

    fn zip(entries: &[Entry]) -> Vec<u8> {
        let mut file = Vec::new();
        let mut directory = Vec::new();
        for entry in entries {
            let offset = file.len() as u32;
            let method: u16 = if entry.claimed_size as usize == entry.data.len() {
                0
            } else {
                8
            };
            let crc = crc32(&entry.data).to_le_bytes();
            file.extend_from_slice(ZIP_LOCAL);
            file.extend_from_slice(&[20, 0, 0, 0]);
            file.extend_from_slice(&method.to_le_bytes());
            file.extend_from_slice(&[0; 4]);
            file.extend_from_slice(&crc);
            file.extend_from_slice(&(entry.data.len() as u32).to_le_bytes());
            file.extend_from_slice(&entry.claimed_size.to_le_bytes());
            file.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
            file.extend_from_slice(&[0, 0]);
            file.extend_from_slice(entry.name.as_bytes());
            file.extend_from_slice(&entry.data);

            directory.extend_from_slice(ZIP_CENTRAL);
            directory.extend_from_slice(&[0x1e, 3, 20, 0, 0, 0]);
            directory.extend_from_slice(&method.to_le_bytes());
            directory.extend_from_slice(&[0; 4]);
            directory.extend_from_slice(&crc);
            directory.extend_from_slice(&(entry.data.len() as u32).to_le_bytes());
            directory.extend_from_slice(&entry.claimed_size.to_le_bytes());
            directory.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
            directory.extend_from_slice(&[0; 8]);
            directory.extend_from_slice(&entry.external.to_le_bytes());
            directory.extend_from_slice(&offset.to_le_bytes());
            directory.extend_from_slice(entry.name.as_bytes());
        }
        let directory_offset = file.len() as u32;
        file.extend_from_slice(&directory);
        file.extend_from_slice(ZIP_END);
        file.extend_from_slice(&[0; 4]);
        file.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        file.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        file.extend_from_slice(&(directory.len() as u32).to_le_bytes());
        file.extend_from_slice(&directory_offset.to_le_bytes());
        file.extend_from_slice(&[0, 0]);
        file
    }

    fn safe_zip() -> Vec<u8> {
        zip(&[
            entry("docs/readme.txt", b"hello"),
            entry("docs/a..b.txt", b"dots inside a name are fine"),
        ])
    }

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

    #[test]
    fn a_declared_type_that_says_nothing_takes_the_detected_one() {
        assert_eq!(
            check(&png(), "application/octet-stream"),
            ok(Format::Png, "image/png")
        );
        assert_eq!(check(b"# Notes", ""), ok(Format::Text, "text/plain"));
    }

    #[test]
    fn programs_are_refused_whatever_they_claim_to_be() {
        assert_eq!(
            check(&exe(), "image/png"),
            Err(Refusal::Executable("Windows program (.exe)"))
        );
        let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
        elf.resize(64, 0);
        assert_eq!(
            check(&elf, "application/pdf"),
            Err(Refusal::Executable("Linux program (ELF)"))
        );
        let cases: [(&[u8], &str); 6] = [
            (b"\xcf\xfa\xed\xfe\x07\x00\x00\x01", "macOS program (Mach-O)"),
            (b"\xca\xfe\xba\xbe\x00\x00\x00\x34", "macOS or Java program"),
            (b"\0asm\x01\0\0\0", "WebAssembly module"),
            (b"\x4c\0\0\0\x01\x14\x02\0\0\0\0\0", "Windows shortcut (.lnk)"),
            (
                b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0",
                "Windows installer or old Office document (OLE)",
            ),
            (b"dex\n035\0", "Android program (DEX)"),
        ];
        for (bytes, kind) in cases {
            assert_eq!(check(bytes, "text/plain"), Err(Refusal::Executable(kind)));
        }
    }

    #[test]
    fn scripts_and_active_markup_are_refused() {
        let cases: [(&[u8], &str); 10] = [
            (b"#!/bin/sh\nrm -rf ~\n", "shell script"),
            (b"\xef\xbb\xbf  #!/usr/bin/env python\n", "shell script"),
            (b"<?php echo 1; ?>", "PHP script"),
            (b"@ECHO OFF\r\ndel *\r\n", "Windows batch file"),
            (b"<!DOCTYPE html>\n<html><body>hi</body></html>", "HTML page"),
            (b"  <html lang=en>", "HTML page"),
            (b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>", "SVG image"),
            (
                b"<?xml version=\"1.0\"?>\n<!-- drawn by hand -->\n<SVG onload=\"alert(1)\">",
                "SVG image",
            ),
            (
                b"# Notes\n\nsee <script>alert(1)</script>\n",
                "text with an HTML script in it",
            ),
            (
                b"%PDF-1.7\n<< /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>\n%%EOF",
                "PDF with embedded JavaScript or launch actions",
            ),
        ];
        for (bytes, kind) in cases {
            assert_eq!(check(bytes, "text/plain"), Err(Refusal::Script(kind)), "{kind}");
        }
        assert_eq!(
            check(&pdf("/Names << /EmbeddedFiles 2 0 R >> "), "application/pdf"),
            Err(Refusal::Script("PDF with embedded JavaScript or launch actions"))
        );
        assert_eq!(
            check(&pdf("/AA << /O << /S /JS(x) >> >> "), "application/pdf"),
            Err(Refusal::Script("PDF with embedded JavaScript or launch actions"))
        );
        // Plain text stored under a type a browser would run.
        assert_eq!(check(b"hello", "text/html"), Err(Refusal::Script("HTML page")));
        // XML that is neither SVG nor HTML is text.
        assert_eq!(
            check(b"<?xml version=\"1.0\"?><note>hi</note>", "text/plain"),
            ok(Format::Text, "text/plain")
        );
    }

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
    fn unsafe_archives_are_refused() {
        let unsafe_name = |name: &'static str| check_zip(&zip(&[entry(name, b"x")]));
        let outside = |name: &str| {
            Err(Refusal::UnsafeArchive(format!(
                "its entry `{name}` points outside the archive"
            )))
        };
        let absolute = |name: &str| {
            Err(Refusal::UnsafeArchive(format!(
                "its entry `{name}` has an absolute path"
            )))
        };
        assert_eq!(unsafe_name("../evil"), outside("../evil"));
        assert_eq!(unsafe_name("docs/../../evil"), outside("docs/../../evil"));
        assert_eq!(unsafe_name("..\\..\\evil.bat"), outside("..\\..\\evil.bat"));
        assert_eq!(unsafe_name("a/.../b"), outside("a/.../b"));
        assert_eq!(unsafe_name("/etc/passwd"), absolute("/etc/passwd"));
        assert_eq!(unsafe_name("\\Windows\\x"), absolute("\\Windows\\x"));
        assert_eq!(unsafe_name("C:\\Windows\\x"), absolute("C:\\Windows\\x"));
        assert_eq!(unsafe_name("a/c:/b"), absolute("a/c:/b"));

        let link = Entry {
            external: 0o120_777 << 16,
            ..entry("link", b"/etc/passwd")
        };
        assert_eq!(
            check_zip(&zip(&[link])),
            Err(Refusal::UnsafeArchive(
                "its entry `link` is a symbolic link".into()
            ))
        );

        let bomb = Entry {
            claimed_size: 500 << 20,
            ..entry("bomb.txt", &[0x5a; 5000])
        };
        assert_eq!(
            check_zip(&zip(&[bomb])),
            Err(Refusal::UnsafeArchive(
                "it would expand to more than 100 times its size, like a zip bomb".into()
            ))
        );
        let huge = |name| Entry {
            claimed_size: 600 << 20,
            ..entry(name, &[0x5a; 5000])
        };
        assert_eq!(
            check_zip(&zip(&[huge("a"), huge("b")])),
            Err(Refusal::UnsafeArchive(
                "it would expand to more than 1 GiB".into()
            ))
        );
        // A tiny archive of repetitive text is not a bomb.
        let small = Entry {
            claimed_size: 100_000,
            ..entry("spaces.txt", &[0x5a; 200])
        };
        assert_eq!(check_zip(&zip(&[small])), Ok(()));

        let names: Vec<&'static str> = (0..=MAX_ZIP_ENTRIES)
            .map(|i| &*Box::leak(format!("f{i}").into_boxed_str()))
            .collect();
        let many: Vec<Entry> = names.iter().map(|name| entry(name, b"")).collect();
        assert_eq!(
            check_zip(&zip(&many)),
            Err(Refusal::UnsafeArchive("it has more than 10000 entries".into()))
        );
    }

    #[test]
    fn damaged_and_overlapping_archives_are_refused() {
        assert_eq!(check_zip(&safe_zip()), Ok(()));
        assert_eq!(check_zip(&zip(&[])), Ok(()));
        let damaged = Err(Refusal::UnsafeArchive(
            "its table of contents is missing or damaged".into(),
        ));
        let archive = safe_zip();
        assert_eq!(check_zip(&archive[..archive.len() - 5]), damaged);
        assert_eq!(check_zip(b"PK\x03\x04 not really"), damaged);

        let mut misplaced = archive.clone();
        let end = misplaced.len() - ZIP_END_LEN;
        misplaced[end + 16] = misplaced[end + 16].wrapping_add(1);
        assert_eq!(
            check_zip(&misplaced),
            Err(Refusal::UnsafeArchive(
                "its table of contents does not fit the file".into()
            ))
        );

        // Two central entries sharing one local header: the non-recursive zip bomb.
        let mut shared = zip(&[entry("a", b"xxxx"), entry("b", b"yyyy")]);
        let second_entry = find(&shared, ZIP_CENTRAL).unwrap() + ZIP_CENTRAL_LEN + 1;
        shared[second_entry + 42..second_entry + 46].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            check_zip(&shared),
            Err(Refusal::UnsafeArchive(
                "its entries overlap, like a zip bomb".into()
            ))
        );

        // The local header's name is checked too.
        let mut sneaky = zip(&[entry("ok/evil", b"x")]);
        sneaky[ZIP_LOCAL_LEN..ZIP_LOCAL_LEN + 7].copy_from_slice(b"../evil");
        assert!(matches!(check_zip(&sneaky), Err(Refusal::UnsafeArchive(_))));
    }

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
            let _ = inspect(&sample, "text/plain", &everything);
        }
    }
}
