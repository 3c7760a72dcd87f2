//! Files of the local store encrypted at rest (AES-256-GCM), when
//! `ENCRYPTION_KEY` is set.
//!
//! A sealed file is a header — a magic, the sealing key's id and a random
//! 8-byte file nonce — then the content in chunks of [`CHUNK`] bytes, each
//! sealed on its own (16-byte tag) with the nonce `file nonce || chunk
//! index`, so a range is read by opening only the chunks it covers. Every
//! chunk authenticates the header and whether it is the last one: chunks
//! cannot be reordered, moved to another file, or cut off the end. The
//! content is not bound to the file's key (its path), so the store copies a
//! sealed file as it is. Files written before a key was set stay readable
//! (no magic: plaintext); the key that sealed a file must stay configured
//! (as the current key or an old one) for it to open.

use std::io::{self, SeekFrom};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest, Sha256};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Plaintext bytes per chunk.
pub(super) const CHUNK: usize = 64 * 1024;

/// The tag each sealed chunk carries.
const TAG: usize = 16;

/// `magic (8) || key id (8) || file nonce (8)`.
pub(super) const HEADER: usize = 24;

const MAGIC: &[u8; 8] = b"\0CBXSEAL";

/// Why a sealed file could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SealError {
    /// Sealed with a key that is not configured.
    #[error("the file was encrypted with a key that is not configured (ENCRYPTION_KEY, old keys)")]
    UnknownKey,
    /// Altered, truncated or not a sealed file.
    #[error("the encrypted file failed its integrity check")]
    Corrupt,
}

#[derive(Clone)]
struct Key {
    id: [u8; 8],
    aead: Aes256Gcm,
}

fn key(bytes: &[u8; 32]) -> Key {
    let mut id = [0; 8];
    id.copy_from_slice(&Sha256::digest(bytes)[..8]);
    Key {
        id,
        aead: Aes256Gcm::new(bytes.into()),
    }
}

/// Seals new files with the current key, opens them with any configured one.
pub struct FileCipher {
    current: Key,
    old: Vec<Key>,
}

impl std::fmt::Debug for FileCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCipher").finish_non_exhaustive()
    }
}

/// The header of a sealed file, and the key that opens it.
pub(super) struct Header {
    bytes: [u8; HEADER],
    key: Key,
}

impl FileCipher {
    /// A cipher sealing with `current`, opening with it and `old`.
    pub fn new(current: &[u8; 32], old: &[[u8; 32]]) -> Self {
        FileCipher {
            current: key(current),
            old: old.iter().map(key).collect(),
        }
    }

    /// The header of a new file.
    pub(super) fn new_header(&self) -> Header {
        let mut bytes = [0; HEADER];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8..16].copy_from_slice(&self.current.id);
        bytes[16..].copy_from_slice(&rand::random::<[u8; 8]>());
        Header {
            bytes,
            key: self.current.clone(),
        }
    }

    /// The header of a stored file whose first bytes are `start`; `None`
    /// when it is not sealed (written before a key was set).
    pub(super) fn header(&self, start: &[u8]) -> Result<Option<Header>, SealError> {
        if start.len() < HEADER || &start[..8] != MAGIC {
            return Ok(None);
        }
        let mut bytes = [0; HEADER];
        bytes.copy_from_slice(&start[..HEADER]);
        let key = std::iter::once(&self.current)
            .chain(&self.old)
            .find(|k| k.id[..] == bytes[8..16])
            .ok_or(SealError::UnknownKey)?
            .clone();
        Ok(Some(Header { bytes, key }))
    }
}

impl Header {
    /// The header as stored.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn nonce(&self, index: u64) -> Result<Nonce<aes_gcm::aead::consts::U12>, SealError> {
        let index = u32::try_from(index).map_err(|_| SealError::Corrupt)?;
        let mut nonce = [0; 12];
        nonce[..8].copy_from_slice(&self.bytes[16..]);
        nonce[8..].copy_from_slice(&index.to_be_bytes());
        Ok(Nonce::from(nonce))
    }

    fn aad(&self, last: bool) -> [u8; HEADER + 1] {
        let mut aad = [0; HEADER + 1];
        aad[..HEADER].copy_from_slice(&self.bytes);
        aad[HEADER] = u8::from(last);
        aad
    }

    /// Seals chunk `index` (at most [`CHUNK`] bytes).
    pub(super) fn seal(&self, index: u64, plain: &[u8], last: bool) -> Result<Vec<u8>, SealError> {
        let aad = self.aad(last);
        self.key
            .aead
            .encrypt(
                &self.nonce(index)?,
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Corrupt)
    }

    /// Opens chunk `index` of a file of `chunks` chunks.
    pub(super) fn open(&self, index: u64, sealed: &[u8], chunks: u64) -> Result<Vec<u8>, SealError> {
        let aad = self.aad(index + 1 == chunks);
        self.key
            .aead
            .decrypt(
                &self.nonce(index)?,
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Corrupt)
    }
}

/// The stored size of a sealed file of `plain` bytes.
#[cfg(test)]
pub(super) fn sealed_len(plain: u64) -> u64 {
    let chunks = plain.div_ceil(CHUNK as u64).max(1);
    HEADER as u64 + plain + chunks * TAG as u64
}

/// The layout of a sealed file of `stored` bytes: its plaintext size and
/// its number of chunks.
pub(super) fn layout(stored: u64) -> Result<(u64, u64), SealError> {
    let body = stored.checked_sub(HEADER as u64).ok_or(SealError::Corrupt)?;
    let chunks = body.div_ceil((CHUNK + TAG) as u64).max(1);
    let plain = body.checked_sub(chunks * TAG as u64).ok_or(SealError::Corrupt)?;
    Ok((plain, chunks))
}

/// Where chunk `index` starts in the stored file, and its stored length.
pub(super) fn chunk_span(index: u64, stored: u64) -> (u64, u64) {
    let start = HEADER as u64 + index * (CHUNK + TAG) as u64;
    (start, (stored - start.min(stored)).min((CHUNK + TAG) as u64))
}

/// Seals a stream of writes into chunks: a chunk is sealed once the next
/// byte shows it is not the last.
pub(super) struct Sealer {
    header: Header,
    index: u64,
    pending: Vec<u8>,
}

impl Sealer {
    /// A sealer of a new file; write [`Sealer::start`] first.
    pub(super) fn new(header: Header) -> Self {
        Sealer {
            header,
            index: 0,
            pending: Vec::with_capacity(CHUNK),
        }
    }

    /// The file's first bytes.
    pub(super) fn start(&self) -> &[u8] {
        self.header.bytes()
    }

    /// Takes `data`; returns the sealed chunks it completed.
    pub(super) fn push(&mut self, mut data: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::new();
        while !data.is_empty() {
            if self.pending.len() == CHUNK {
                out.extend(self.header.seal(self.index, &self.pending, false)?);
                self.index += 1;
                self.pending.clear();
            }
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(out)
    }

    /// Seals the last chunk.
    pub(super) fn finish(self) -> Result<Vec<u8>, SealError> {
        self.header.seal(self.index, &self.pending, true)
    }
}

impl From<SealError> for io::Error {
    fn from(e: SealError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// A new object being written, sealed when the store has a cipher.
pub(super) struct ObjectWriter {
    file: File,
    sealer: Option<Sealer>,
}

impl ObjectWriter {
    /// Starts writing to `file` (new and empty).
    pub(super) async fn start(mut file: File, cipher: Option<&FileCipher>) -> io::Result<Self> {
        let sealer = cipher.map(|c| Sealer::new(c.new_header()));
        if let Some(sealer) = &sealer {
            file.write_all(sealer.start()).await?;
        }
        Ok(ObjectWriter { file, sealer })
    }

    /// Writes the next bytes of the content.
    pub(super) async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.sealer {
            None => self.file.write_all(data).await,
            Some(sealer) => {
                let sealed = sealer.push(data)?;
                self.file.write_all(&sealed).await
            }
        }
    }

    /// Writes the end and flushes it to disk.
    pub(super) async fn finish(mut self) -> io::Result<()> {
        if let Some(sealer) = self.sealer.take() {
            let last = sealer.finish()?;
            self.file.write_all(&last).await?;
        }
        self.file.sync_data().await
    }
}

/// A stored object opened for reading: plain or sealed.
pub(super) struct ObjectReader {
    file: File,
    /// Bytes on disk.
    stored: u64,
    /// Bytes of content.
    pub(super) size: u64,
    /// The header of a sealed file, and its number of chunks.
    sealed: Option<(Header, u64)>,
}

impl ObjectReader {
    /// Reads the start of `file` (`stored` bytes on disk) to tell a sealed
    /// file from a plain one.
    pub(super) async fn open(mut file: File, stored: u64, cipher: Option<&FileCipher>) -> io::Result<Self> {
        let mut start = [0; HEADER];
        let sealed = if stored >= HEADER as u64 {
            file.read_exact(&mut start).await?;
            file.seek(SeekFrom::Start(0)).await?;
            match cipher {
                Some(cipher) => cipher.header(&start)?,
                None if &start[..8] == MAGIC => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the file is encrypted and no ENCRYPTION_KEY is set",
                    ));
                }
                None => None,
            }
        } else {
            None
        };
        let (size, sealed) = match sealed {
            Some(header) => {
                let (size, chunks) = layout(stored)?;
                (size, Some((header, chunks)))
            }
            None => (stored, None),
        };
        Ok(ObjectReader {
            file,
            stored,
            size,
            sealed,
        })
    }

    /// The file as stored, from its start (to copy it as it is).
    pub(super) fn into_stored(self) -> File {
        self.file
    }

    /// Content bytes `[start, end)`, within the content.
    pub(super) async fn read(&mut self, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let (start, end) = (start.min(self.size), end.min(self.size));
        if end <= start {
            return Ok(Vec::new());
        }
        let Some((header, chunks)) = &self.sealed else {
            let mut buf = vec![0; usize::try_from(end - start).map_err(io::Error::other)?];
            self.file.seek(SeekFrom::Start(start)).await?;
            self.file.read_exact(&mut buf).await?;
            return Ok(buf);
        };
        let first = start / CHUNK as u64;
        let mut out = Vec::new();
        for index in first..=(end - 1) / CHUNK as u64 {
            out.extend(read_chunk(&mut self.file, header, index, *chunks, self.stored).await?);
        }
        let skip = usize::try_from(start - first * CHUNK as u64).map_err(io::Error::other)?;
        let len = usize::try_from(end - start).map_err(io::Error::other)?;
        Ok(out[skip..skip + len].to_vec())
    }

    /// Content bytes `[start, start + len)` as a stream, a chunk at a time.
    pub(super) fn stream(self, start: u64, len: u64) -> impl Stream<Item = io::Result<Bytes>> + Send {
        let end = (start + len).min(self.size);
        futures_util::stream::unfold((self, start), move |(mut reader, at)| async move {
            if at >= end {
                return None;
            }
            // A chunk of a sealed file, or as much of a plain one.
            let next = ((at / CHUNK as u64) + 1) * CHUNK as u64;
            let upto = next.min(end);
            match reader.read(at, upto).await {
                Ok(bytes) => Some((Ok(Bytes::from(bytes)), (reader, upto))),
                Err(e) => Some((Err(e), (reader, end))),
            }
        })
    }
}

/// Reads and opens chunk `index` of a sealed file of `stored` bytes.
async fn read_chunk(
    file: &mut File,
    header: &Header,
    index: u64,
    chunks: u64,
    stored: u64,
) -> io::Result<Vec<u8>> {
    let (offset, len) = chunk_span(index, stored);
    let mut sealed = vec![0; usize::try_from(len).map_err(io::Error::other)?];
    file.seek(SeekFrom::Start(offset)).await?;
    file.read_exact(&mut sealed).await?;
    Ok(header.open(index, &sealed, chunks)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_all(cipher: &FileCipher, plain: &[u8], writes: usize) -> Vec<u8> {
        let mut sealer = Sealer::new(cipher.new_header());
        let mut out = sealer.start().to_vec();
        for part in plain.chunks(writes.max(1)) {
            out.extend(sealer.push(part).unwrap());
        }
        out.extend(sealer.finish().unwrap());
        out
    }

    fn open_all(cipher: &FileCipher, stored: &[u8]) -> Result<Vec<u8>, SealError> {
        let header = cipher.header(stored)?.ok_or(SealError::Corrupt)?;
        let (plain, chunks) = layout(stored.len() as u64)?;
        let mut out = Vec::new();
        for i in 0..chunks {
            let (start, len) = chunk_span(i, stored.len() as u64);
            out.extend(header.open(i, &stored[start as usize..(start + len) as usize], chunks)?);
        }
        assert_eq!(out.len() as u64, plain);
        Ok(out)
    }

    #[test]
    fn files_of_any_size_round_trip_and_their_size_is_known() {
        let cipher = FileCipher::new(&[7; 32], &[]);
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            for writes in [1000, CHUNK, size] {
                let stored = seal_all(&cipher, &plain, writes);
                assert_eq!(stored.len() as u64, sealed_len(size as u64), "{size}");
                assert_eq!(layout(stored.len() as u64).unwrap().0, size as u64);
                assert_eq!(open_all(&cipher, &stored).unwrap(), plain, "{size}");
            }
        }
    }

    #[test]
    fn altered_truncated_or_foreign_files_do_not_open() {
        let cipher = FileCipher::new(&[7; 32], &[]);
        let plain = vec![5u8; 2 * CHUNK + 10];
        let stored = seal_all(&cipher, &plain, 4096);
        let mut flipped = stored.clone();
        flipped[HEADER + 3] ^= 1;
        assert_eq!(open_all(&cipher, &flipped), Err(SealError::Corrupt));
        let cut = &stored[..HEADER + 2 * (CHUNK + TAG)];
        assert_eq!(
            open_all(&cipher, cut),
            Err(SealError::Corrupt),
            "the last chunk cut off"
        );
        let other = FileCipher::new(&[8; 32], &[]);
        assert!(matches!(open_all(&other, &stored), Err(SealError::UnknownKey)));
        let rotated = FileCipher::new(&[8; 32], &[[7; 32]]);
        assert_eq!(
            open_all(&rotated, &stored).unwrap(),
            plain,
            "an old key still opens"
        );
        assert!(cipher.header(b"plain text file, not sealed").unwrap().is_none());
    }
}
