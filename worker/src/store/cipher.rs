//! Encryption of message content at rest (AES-256-GCM).
//!
//! Content and session names are stored as `base64(nonce || ciphertext)`
//! with the id of the key that sealed them, so keys rotate: the current key
//! seals, every configured key opens what it sealed. A key's id is the
//! first 8 bytes of its SHA-256, in hex — nothing to configure, and the
//! same on every worker. The ciphertext is bound to where it belongs (the
//! message or session it was written for), so a sealed value copied into
//! another record does not open.
//!
//! Without a key the cipher passes text through (the all-in-one warns; the
//! scaled worker refuses to start unless told to allow it).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// A value as stored: plain, or sealed with the key `key_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sealed {
    /// The stored text: plaintext, or base64 of nonce and ciphertext.
    pub(crate) text: String,
    /// The sealing key's id; `None` for plaintext.
    pub(crate) key_id: Option<String>,
}

/// Why a stored value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CipherError {
    /// The key that sealed it is not configured (any more).
    #[error("content was encrypted with key {0}, which is not configured")]
    UnknownKey(String),
    /// The value was altered, or belongs elsewhere.
    #[error("encrypted content failed its integrity check")]
    Corrupt,
}

struct Key {
    id: String,
    aead: Aes256Gcm,
}

/// Seals and opens stored content.
pub struct ContentCipher {
    current: Option<Key>,
    old: Vec<Key>,
}

/// The id of a key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(key: &[u8; 32]) -> String {
    Sha256::digest(key)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn key(bytes: &[u8; 32]) -> Key {
    Key {
        id: key_id(bytes),
        aead: Aes256Gcm::new(bytes.into()),
    }
}

impl ContentCipher {
    /// A cipher sealing with `current` (if any) and opening with it and `old`.
    pub fn new(current: Option<[u8; 32]>, old: &[[u8; 32]]) -> Self {
        ContentCipher {
            current: current.as_ref().map(key),
            old: old.iter().map(key).collect(),
        }
    }

    /// A cipher that stores plaintext.
    #[cfg(test)]
    pub(crate) fn plaintext() -> Self {
        Self::new(None, &[])
    }

    /// Whether content is encrypted.
    #[cfg(test)]
    pub(crate) fn encrypts(&self) -> bool {
        self.current.is_some()
    }

    /// Seals `text` for the record `context` (for example `message:<id>`).
    pub(crate) fn seal(&self, text: &str, context: &str) -> Sealed {
        let Some(key) = &self.current else {
            return Sealed {
                text: text.to_owned(),
                key_id: None,
            };
        };
        let nonce_bytes: [u8; 12] = rand::random();
        // Encryption with a valid key and nonce cannot fail.
        let ciphertext = key
            .aead
            .encrypt(
                &Nonce::from(nonce_bytes),
                Payload {
                    msg: text.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut stored = Vec::with_capacity(12 + ciphertext.len());
        stored.extend_from_slice(&nonce_bytes);
        stored.extend_from_slice(&ciphertext);
        Sealed {
            text: STANDARD.encode(stored),
            key_id: Some(key.id.clone()),
        }
    }

    /// Opens a stored value written for the record `context`.
    pub(crate) fn open(&self, sealed: &Sealed, context: &str) -> Result<String, CipherError> {
        let Some(id) = &sealed.key_id else {
            return Ok(sealed.text.clone());
        };
        let key = self
            .current
            .iter()
            .chain(&self.old)
            .find(|k| &k.id == id)
            .ok_or_else(|| CipherError::UnknownKey(id.clone()))?;
        let raw = STANDARD.decode(&sealed.text).map_err(|_| CipherError::Corrupt)?;
        if raw.len() < 12 {
            return Err(CipherError::Corrupt);
        }
        let (nonce, ciphertext) = raw.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| CipherError::Corrupt)?;
        let plain = key
            .aead
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| CipherError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_rotates() {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let old = ContentCipher::new(Some(k1), &[]);
        let sealed = old.seal("secret words", "message:s/m1");
        assert!(!sealed.text.contains("secret"));
        assert_eq!(sealed.key_id.as_deref(), Some(key_id(&k1).as_str()));
        assert_eq!(old.open(&sealed, "message:s/m1").unwrap(), "secret words");

        // After rotation the new key seals and the old one still opens.
        let rotated = ContentCipher::new(Some(k2), &[k1]);
        assert_eq!(rotated.open(&sealed, "message:s/m1").unwrap(), "secret words");
        assert_eq!(
            rotated.seal("x", "c").key_id.as_deref(),
            Some(key_id(&k2).as_str())
        );
        // Without the old key it does not.
        let forgot = ContentCipher::new(Some(k2), &[]);
        assert!(matches!(
            forgot.open(&sealed, "message:s/m1"),
            Err(CipherError::UnknownKey(_))
        ));
    }

    #[test]
    fn sealed_values_are_bound_to_their_record_and_tamper_evident() {
        let c = ContentCipher::new(Some([7u8; 32]), &[]);
        let sealed = c.seal("hello", "message:s/m1");
        assert_eq!(c.open(&sealed, "message:s/m2"), Err(CipherError::Corrupt));
        let mut tampered = sealed.clone();
        tampered
            .text
            .replace_range(20..21, if &tampered.text[20..21] == "A" { "B" } else { "A" });
        assert_eq!(c.open(&tampered, "message:s/m1"), Err(CipherError::Corrupt));
        // Two seals of the same text differ (random nonces).
        assert_ne!(c.seal("hello", "x").text, c.seal("hello", "x").text);
    }

    #[test]
    fn without_a_key_text_passes_through() {
        let c = ContentCipher::plaintext();
        let sealed = c.seal("plain", "x");
        assert_eq!(
            sealed,
            Sealed {
                text: "plain".into(),
                key_id: None
            }
        );
        assert_eq!(c.open(&sealed, "x").unwrap(), "plain");
        assert!(!c.encrypts());
    }
}
