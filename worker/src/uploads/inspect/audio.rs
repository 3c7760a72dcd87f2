//! Audio: WebM/Matroska, Ogg, MP4/M4A, WAV, MP3, AAC and FLAC, as voice
//! messages and uploads arrive. Containers are told by their headers (the
//! EBML DocType, the ISO major brand, the RIFF form); raw MP3 and AAC
//! streams have no magic, so two consecutive valid frame headers are
//! required (one could be chance), past an ID3 tag if there is one. A WAV
//! must not run past the size its RIFF header declares; Ogg and FLAC
//! headers must be whole. Samples are never decoded.

use std::cmp::Ordering;

use super::hidden::{Hidden, polyglot};
use super::refusal::incomplete;
use super::scan::{be32, le32};
use super::{Format, Refusal, View};

pub(super) const EBML_MAGIC: &[u8] = b"\x1a\x45\xdf\xa3";
/// Major brands of the ISO media files accepted as MP4 audio (besides `iso2`…`iso9`).
const MP4_BRANDS: [&[u8]; 11] = [
    b"M4A ", b"M4B ", b"mp41", b"mp42", b"isom", b"dash", b"avc1", b"3gp4", b"3gp5", b"3gp6", b"MSNV",
];

/// Whether a Matroska header names the `webm` or `matroska` DocType in its first 64 bytes.
pub(super) fn is_webm(head: &[u8]) -> bool {
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
pub(super) fn is_mp4(head: &[u8]) -> bool {
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
pub(super) fn id3_end(head: &[u8]) -> Option<usize> {
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
pub(super) fn is_stream(head: &[u8], size: u64, frame_len: fn(&[u8], usize) -> Option<usize>) -> bool {
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
pub(super) fn mpeg_frame_len(bytes: &[u8], at: usize) -> Option<usize> {
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
pub(super) fn adts_frame_len(bytes: &[u8], at: usize) -> Option<usize> {
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

/// A WAV does not run past the size its RIFF header declares.
pub(super) fn check_wav(view: &View<'_>) -> Result<(), Refusal> {
    let (format, head) = (Format::Wav, view.head);
    // Recorders that stream write 0 or 0xFFFFFFFF as the size, and
    // some leave one byte of padding uncounted: neither is appended data.
    let riff = le32(head, 4).unwrap_or_default();
    if riff != 0 && riff != u32::MAX && u64::from(riff) + 8 + 1 < view.size {
        Err(polyglot(format, Hidden::AfterEnd))
    } else {
        Ok(())
    }
}

/// An Ogg file starts with a whole page header of version 0.
pub(super) fn check_ogg(view: &View<'_>) -> Result<(), Refusal> {
    let (format, head) = (Format::Ogg, view.head);
    match head.get(4) {
        _ if head.len() < 27 => Err(incomplete(format)),
        Some(0) => Ok(()),
        _ => Err(Refusal::Unrecognised),
    }
}

/// A FLAC file that starts with `fLaC` follows it with a STREAMINFO block header.
pub(super) fn check_flac(view: &View<'_>) -> Result<(), Refusal> {
    let (format, head) = (Format::Flac, view.head);
    match head.get(4) {
        _ if head.len() < 8 => Err(incomplete(format)),
        Some(block) if block & 0x7f == 0 => Ok(()),
        _ => Err(Refusal::Unrecognised),
    }
}
