//! Random keys kept in a file readable by this user only: made on first
//! use, read back on every start. The all-in-one keeps its generated JWT
//! secret this way, and the local file store its URL-signing key, so
//! tokens and links survive a restart.

use std::io::{self, ErrorKind, Write};
use std::path::Path;

/// Reads the 32-byte key kept at `path`, or makes one (mode 0600). Two
/// processes making it at once end up with the same key.
pub fn kept_key(path: &Path) -> io::Result<[u8; 32]> {
    let read = || -> io::Result<[u8; 32]> {
        let bytes = std::fs::read(path)?;
        bytes.try_into().map_err(|_| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("{} is not 32 bytes: delete it to make a new key", path.display()),
            )
        })
    };
    if path.exists() {
        return read();
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let key: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(&key)?;
            file.sync_all()?;
            Ok(key)
        }
        // Made by another opener in the meantime.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read(),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("chatbox-keyfile-{}", uuid::Uuid::new_v4()));
        let path = dir.join("nested/key");
        let first = kept_key(&path).unwrap();
        assert_eq!(kept_key(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        let err = kept_key(&path).unwrap_err();
        assert!(err.to_string().contains("not 32 bytes"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
