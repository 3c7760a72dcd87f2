//! ZIP archives (and the formats built on them: `.docx`, `.xlsx`, `.odt`…).
//! A sample is a ZIP if it starts with a local header or an end record and
//! shows the end record in its tail; an accepted archive is then read
//! whole by [`check_zip`], which walks the central directory and refuses
//! what could harm whoever extracts it: paths that leave the extraction
//! folder, symbolic links, zip bombs (too many entries, too large, too
//! compressed, or entries sharing their data), local headers whose names
//! differ in safety from the directory's, split archives and ZIP64. The
//! members are not opened.

use super::refusal::incomplete;
use super::scan::{find, le16, le32, len64, to_usize};
use super::{Format, Refusal, View};

/// Most entries a ZIP archive may hold.
const MAX_ZIP_ENTRIES: u64 = 10_000;
/// Most bytes a ZIP archive may expand to.
const MAX_ZIP_EXPANDED: u64 = 1 << 30;
/// Most times a ZIP archive may expand beyond its own size.
const MAX_ZIP_RATIO: u64 = 100;
/// Expanded size under which the ratio is not checked: a few kilobytes of
/// repetitive text compress far beyond 100:1 and harm nobody.
const ZIP_RATIO_FLOOR: u64 = 1 << 20;
pub(super) const ZIP_LOCAL: &[u8] = b"PK\x03\x04";
pub(super) const ZIP_CENTRAL: &[u8] = b"PK\x01\x02";
pub(super) const ZIP_END: &[u8] = b"PK\x05\x06";
/// Fixed part of a ZIP end-of-central-directory record.
const ZIP_END_LEN: usize = 22;
/// Fixed part of a ZIP central directory entry.
const ZIP_CENTRAL_LEN: usize = 46;
/// Fixed part of a ZIP local file header.
const ZIP_LOCAL_LEN: usize = 30;

/// Checks a whole ZIP archive (called when `inspect` found Format::Zip and zip is allowed):
/// central directory parsed from the EOCD; refuse entries with `..` components, absolute paths
/// (leading `/` or `\\` or a drive letter like `C:`), backslash traversal, symlinks (unix mode in external
/// attributes), more than 10_000 entries, total uncompressed size over 1 GiB or ratio over 100:1,
/// and a central directory that does not fit the file.
///
/// Also refused: entries whose data overlap (the non-recursive zip bomb),
/// local headers whose names differ in safety from the central directory's,
/// split archives and ZIP64 (no archive within these limits needs it).
pub(crate) fn check_zip(archive: &[u8]) -> Result<(), Refusal> {
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

/// A sample of a ZIP archive shows the end-of-central-directory record in its tail.
pub(super) fn check_zip_tail(view: &View<'_>) -> Result<(), Refusal> {
    let (format, tail) = (Format::Zip, view.tail);
    if find(tail, ZIP_END).is_some() {
        Ok(())
    } else {
        Err(incomplete(format))
    }
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

fn unsafe_archive(reason: impl Into<String>) -> Refusal {
    Refusal::UnsafeArchive(reason.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uploads::inspect::fixtures::{Entry, entry, safe_zip, zip};

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
}
