//! Test files: one small valid file of each accepted format (and a
//! Windows program), built byte by byte so that every test shows what it
//! feeds `inspect`, a ZIP archive builder whose entries
//! can lie about their size, mode and names, and the two ways a worker
//! samples a file (whole, or head and tail).

use super::archive::{ZIP_CENTRAL, ZIP_END, ZIP_LOCAL};
use super::audio::EBML_MAGIC;
use super::image::PNG_SIGNATURE;
use super::{Format, HEAD_BYTES, Refusal, Sample, TAIL_BYTES, inspect};

pub(super) fn allowed() -> Vec<String> {
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
pub(super) fn whole(bytes: &[u8]) -> Sample<'_> {
    Sample {
        head: bytes,
        tail: bytes,
        size: bytes.len() as u64,
    }
}

/// A file of any size read the way a worker reads it.
pub(super) fn sampled(bytes: &[u8]) -> Sample<'_> {
    Sample {
        head: &bytes[..bytes.len().min(HEAD_BYTES)],
        tail: &bytes[bytes.len().saturating_sub(TAIL_BYTES)..],
        size: bytes.len() as u64,
    }
}

pub(super) fn check(bytes: &[u8], declared: &str) -> Result<(Format, String), Refusal> {
    inspect(&whole(bytes), declared, &allowed())
}

pub(super) fn ok(format: Format, media_type: &str) -> Result<(Format, String), Refusal> {
    Ok((format, media_type.to_owned()))
}

pub(super) fn crc32(bytes: &[u8]) -> u32 {
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

pub(super) fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&chunk[4..]).to_be_bytes());
    chunk
}

/// A PNG whose image data is `idat` (a real 1x1 grey pixel by default).
pub(super) fn png_with(idat: &[u8]) -> Vec<u8> {
    let mut png = PNG_SIGNATURE.to_vec();
    // 1x1, 8-bit greyscale, deflate, no filter, no interlace.
    png.extend(png_chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
    png.extend(png_chunk(b"IDAT", idat));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

pub(super) fn png() -> Vec<u8> {
    // zlib header, one stored final block holding the scanline [filter 0, pixel 0], Adler-32.
    png_with(&[
        0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01,
    ])
}

pub(super) fn jpeg() -> Vec<u8> {
    let mut jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00".to_vec();
    jpeg.extend_from_slice(b"\xff\xd9");
    jpeg
}

pub(super) fn gif() -> Vec<u8> {
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00\x21\xf9\x04\x01\x00\x00\x00\x00\
      \x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b"
        .to_vec()
}

pub(super) fn webp() -> Vec<u8> {
    b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
        .to_vec()
}

pub(super) fn pdf(body: &str) -> Vec<u8> {
    format!("%PDF-1.4\n1 0 obj\n<< /Type /Catalog {body}>>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
        .into_bytes()
}

pub(super) fn webm(doc_type: &[u8]) -> Vec<u8> {
    let mut elements = b"\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82".to_vec();
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

pub(super) fn ogg() -> Vec<u8> {
    let mut page = b"OggS\x00\x02".to_vec();
    page.extend_from_slice(&[0; 8]); // granule position
    page.extend_from_slice(&[1, 2, 3, 4]); // serial
    page.extend_from_slice(&[0; 4]); // sequence
    page.extend_from_slice(&[9, 9, 9, 9]); // checksum
    page.extend_from_slice(&[1, 19]); // one segment of 19 bytes
    page.extend_from_slice(b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00");
    page
}

pub(super) fn m4a() -> Vec<u8> {
    let mut file = b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom\x00\x00\x00\x00".to_vec();
    file.extend_from_slice(b"\x00\x00\x00\x18mdat");
    file.extend_from_slice(&[0x21; 16]);
    file
}

pub(super) fn wav() -> Vec<u8> {
    let mut body =
        b"WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00".to_vec();
    body.extend_from_slice(b"data\x04\x00\x00\x00\x01\x02\x03\x04");
    let mut file = b"RIFF".to_vec();
    file.extend_from_slice(&(body.len() as u32).to_le_bytes());
    file.extend(body);
    file
}

/// Two MPEG-1 layer III frames, 128 kbit/s, 44.1 kHz: 417 bytes each.
pub(super) fn mp3_frames() -> Vec<u8> {
    let mut frame = b"\xff\xfb\x90\x00".to_vec();
    frame.resize(417, 0x55);
    frame.repeat(2)
}

pub(super) fn mp3() -> Vec<u8> {
    let mut file = b"ID3\x03\x00\x00\x00\x00\x00\x0aTIT2\x00\x00\x00\x00".to_vec();
    file.extend_from_slice(&[0; 6]);
    file.extend(mp3_frames());
    file
}

pub(super) fn adts(frames: usize) -> Vec<u8> {
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

pub(super) fn flac() -> Vec<u8> {
    let mut file = b"fLaC\x80\x00\x00\x22".to_vec();
    file.extend_from_slice(&[0x10; 34]);
    file.extend_from_slice(b"\xff\xf8\x69\x08\x00\x00");
    file
}

pub(super) fn exe() -> Vec<u8> {
    let mut file = vec![0; 256];
    file[..2].copy_from_slice(b"MZ");
    file[0x3c] = 0x40;
    file[0x40..0x44].copy_from_slice(b"PE\0\0");
    file
}

/// One ZIP entry as the archive builder should write it.
pub(super) struct Entry {
    pub(super) name: &'static str,
    pub(super) data: Vec<u8>,
    /// The uncompressed size the central directory claims.
    pub(super) claimed_size: u32,
    pub(super) external: u32,
}

pub(super) fn entry(name: &'static str, data: &[u8]) -> Entry {
    Entry {
        name,
        data: data.to_vec(),
        claimed_size: data.len() as u32,
        external: 0,
    }
}

pub(super) fn zip(entries: &[Entry]) -> Vec<u8> {
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

pub(super) fn safe_zip() -> Vec<u8> {
    zip(&[
        entry("docs/readme.txt", b"hello"),
        entry("docs/a..b.txt", b"dots inside a name are fine"),
    ])
}
