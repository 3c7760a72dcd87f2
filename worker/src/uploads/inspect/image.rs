//! Images: PNG, JPEG, GIF and WebP. Besides the magic bytes that announce
//! it, an image must end where its format says it ends: a PNG is a chain
//! of well-formed chunks from IHDR to IEND, a JPEG ends with its
//! end-of-image marker (a little zero padding allowed), a GIF with its
//! trailer byte, and a WebP's RIFF header declares its size. Bytes after
//! that end are a second file riding along (a polyglot); a missing end
//! means the upload was cut. Pixels are never decoded.

use std::cmp::Ordering;

use super::hidden::{Hidden, polyglot};
use super::refusal::incomplete;
use super::scan::{be32, find, le32};
use super::{Format, Refusal, View};

pub(super) const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
/// The whole IEND chunk: length 0, type, and its fixed CRC.
const PNG_IEND: &[u8] = b"\0\0\0\0IEND\xae\x42\x60\x82";
pub(super) const JPEG_SOI: &[u8] = b"\xff\xd8\xff";
const JPEG_EOI: &[u8] = b"\xff\xd9";
/// Zero bytes some JPEG writers pad after the end-of-image marker.
const JPEG_PADDING: usize = 16;

/// A PNG starts with IHDR, is a chain of well-formed chunks, and ends with IEND.
pub(super) fn check_png(view: &View<'_>) -> Result<(), Refusal> {
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

/// A JPEG ends with its end-of-image marker, maybe followed by zero padding.
pub(super) fn check_jpeg(view: &View<'_>) -> Result<(), Refusal> {
    let (format, head, tail) = (Format::Jpeg, view.head, view.tail);
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

/// A GIF holds its header and screen descriptor and ends with its trailer byte.
pub(super) fn check_gif(view: &View<'_>) -> Result<(), Refusal> {
    let (format, head, tail) = (Format::Gif, view.head, view.tail);
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

/// A WebP holds a VP8 chunk and is exactly as long as its RIFF header says.
pub(super) fn check_webp(view: &View<'_>) -> Result<(), Refusal> {
    let (format, head) = (Format::Webp, view.head);
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
