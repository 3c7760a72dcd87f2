//! Files that come with an answer (properties 24 and 26: docs/PROPERTIES.md#p24). Spoken audio the
//! provider returns is stored in the blob store as a generated file and
//! sent with a download URL. Files the provider offers at a URL (Dify's
//! `message_file`) and links to files in the answer text are linked, not
//! fetched: fetching URLs a model wrote would let anyone who steers the
//! model make the worker request internal addresses.

use bytes::Bytes;
use chatbox_shared::ids::new_file_id;
use chatbox_shared::protocol::Timestamp;
use serde::Serialize;
use tracing::{info, warn};

use super::intake::permanent_key;
use crate::metrics;
use crate::state::WorkerState;
use crate::store::{FileKind, FileRecord, FileStatus};

/// A file that came with an answer, as listed in its `files` metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Linked {
    /// Where it is (a provider's or the answer's own URL).
    pub url: String,
    /// Its name, from the URL.
    pub name: String,
    /// `provider` or `answer`.
    pub source: &'static str,
}

/// Most links listed per answer.
const MAX_LINKS: usize = 10;

/// File extensions that make a link in an answer a file to offer.
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "svg", "pdf", "csv", "txt", "md", "json", "xlsx", "xls", "docx",
    "doc", "pptx", "zip", "mp3", "wav", "ogg", "m4a", "mp4", "webm",
];

/// Stores an answer's spoken audio as a generated file of the session.
pub(crate) async fn keep_audio(
    state: &WorkerState,
    session_id: &str,
    user_id: &str,
    data: Vec<u8>,
    format: &str,
) -> Option<FileRecord> {
    let (extension, media_type) = match format {
        "mp3" => ("mp3", "audio/mpeg"),
        "flac" => ("flac", "audio/flac"),
        "opus" => ("ogg", "audio/ogg"),
        "pcm16" => ("pcm", "audio/L16"),
        _ => ("wav", "audio/wav"),
    };
    let now = Timestamp::now();
    let mut file = FileRecord {
        id: new_file_id(),
        user_id: user_id.to_owned(),
        session_id: session_id.to_owned(),
        kind: FileKind::Generated,
        status: FileStatus::Ready,
        name: String::new(),
        declared_type: media_type.to_owned(),
        media_type: Some(media_type.to_owned()),
        declared_size: data.len() as u64,
        size: Some(data.len() as u64),
        key: String::new(),
        created_at: now,
        expires_at: now,
        reason: None,
        transcript: None,
        sha256: None,
    };
    file.name = format!("answer-{}.{extension}", &file.id[..8.min(file.id.len())]);
    file.key = permanent_key(&state.config.chatbox.uploads.prefix, &file);
    if let Err(e) = state.blob.put(&file.key, Bytes::from(data), media_type).await {
        warn!(
            session_id,
            "cannot store the answer's audio; the text is sent alone: {e}"
        );
        return None;
    }
    if let Err(e) = state.store.create_file(&file).await {
        warn!(
            session_id,
            "cannot record the answer's audio; the text is sent alone: {e}"
        );
        if let Err(e) = state.blob.delete(&file.key).await {
            warn!(session_id, "cannot delete the audio nobody will link: {e}");
        }
        return None;
    }
    metrics::generated_file("audio");
    info!(file_id = %file.id, size = file.declared_size, media_type, "answer audio stored");
    Some(file)
}

/// The files to list with an answer: what the provider offered, then
/// links to files in the text; each once, at most ten.
pub(crate) fn linked(provider_files: &[(String, Option<String>)], text: &str) -> Vec<Linked> {
    let mut out: Vec<Linked> = Vec::new();
    let offered = provider_files.iter().map(|(url, _)| (url.as_str(), "provider"));
    let written = urls_in(text)
        .into_iter()
        .filter(|u| is_file_url(u))
        .map(|u| (u, "answer"));
    for (url, source) in offered.chain(written) {
        if out.len() == MAX_LINKS || out.iter().any(|l| l.url == url) {
            continue;
        }
        metrics::generated_file(source);
        out.push(Linked {
            url: url.to_owned(),
            name: name_of(url),
            source,
        });
    }
    out
}

/// `http(s)://` URLs in text, without the punctuation that ends a
/// sentence or a markdown link around them.
fn urls_in(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("http") {
        let candidate = &rest[at..];
        if candidate.starts_with("https://") || candidate.starts_with("http://") {
            let end = candidate
                .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '`' | ')' | ']'))
                .unwrap_or(candidate.len());
            let url = candidate[..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
            found.push(url);
            rest = &candidate[end..];
        } else {
            rest = &candidate[4..];
        }
    }
    found
}

fn is_file_url(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let Some((host_and_path, ext)) = path.rsplit_once('.') else {
        return false;
    };
    host_and_path.matches('/').count() >= 3 && FILE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())
}

fn name_of(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    chatbox_shared::protocol::uploads::clean_file_name(last).unwrap_or_else(|| "file".into())
}

/// The `files` metadata value of an answer: its linked files. (Stored
/// audio is the answer's own `file_id`, signed afresh on every read.)
pub(crate) fn files_metadata(links: &[Linked]) -> Option<String> {
    if links.is_empty() {
        return None;
    }
    serde_json::to_string(links).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_files_are_found_in_answers() {
        let text = "Here is the chart: [chart](https://files.example.com/out/chart.png). \
                    See https://example.com/docs and https://cdn.example.com/r/report.PDF?sig=1, \
                    or (https://files.example.com/out/chart.png) again.";
        let found = linked(&[("https://dify.example/files/a.png".into(), None)], text);
        let urls: Vec<&str> = found.iter().map(|l| l.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://dify.example/files/a.png",
                "https://files.example.com/out/chart.png",
                "https://cdn.example.com/r/report.PDF?sig=1",
            ]
        );
        assert_eq!(found[0].source, "provider");
        assert_eq!(found[1].source, "answer");
        assert_eq!(found[2].name, "report.PDF");
        assert!(linked(&[], "no links, just http talk and https://example.com").is_empty());
    }
}
