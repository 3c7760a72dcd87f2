//! Programs and scripts, refused whatever the client declared: native
//! executables (PE, ELF, Mach-O), Java classes, WebAssembly, DEX, Windows
//! shortcuts and OLE compound files (installers and macro-capable Office
//! 97 documents) by their magic bytes; shell scripts, batch files, PHP,
//! HTML and SVG by how their text starts, looking past a BOM, spaces, XML
//! declarations and comments. Any of these could run when opened or
//! served back, so no allow-list can admit them.

use super::View;
use super::scan::find;
use super::text::is_text;

/// The kind of program the file starts as, if it is one.
pub(super) fn executable(view: &View<'_>) -> Option<&'static str> {
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
pub(super) fn script_start(head: &[u8]) -> Option<&'static str> {
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
    use super::super::{Format, Refusal};
    use crate::uploads::inspect::fixtures::{check, exe, ok, pdf};

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
}
