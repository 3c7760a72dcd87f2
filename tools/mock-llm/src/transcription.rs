//! OpenAI audio transcription (`POST /v1/audio/transcriptions`): a
//! multipart form with `file` and `model` (and optional `response_format`,
//! `language`); the answer is `{"text"}`, plain text or `verbose_json`.
//! The file must be in a format the endpoint reads, told by its file
//! name's extension (`flac`, `m4a`, `mp3`, `mp4`, `mpeg`, `mpga`, `oga`,
//! `ogg`, `wav`, `webm`), else it is refused with OpenAI's 400.
//! The transcript is the `x-mock-transcript` header, or
//! `transcript of <filename>: <N> bytes`. Uploads are limited to 25 MiB;
//! the failure and latency scripting headers apply.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::openai::error;
use super::stats::Outcome;
use super::{Behaviour, MockState, Tracked, failure_response};

/// The extensions of the file formats the endpoint reads (OpenAI API
/// reference, Audio → Create transcription → `file`: "flac, mp3, mp4,
/// mpeg, mpga, m4a, ogg, wav, or webm"; its 400 answer lists `oga` too).
const FORMATS: [&str; 10] = [
    "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm",
];

/// OpenAI's answer to a file in another format.
fn unsupported_format() -> Response {
    let list = FORMATS.map(|f| format!("'{f}'")).join(", ");
    let body = json!({ "error": {
        "message": format!("Invalid file format. Supported formats: [{list}]"),
        "type": "invalid_request_error",
        "param": null,
        "code": null,
    }});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// Whether the file name's extension is one of [`FORMATS`].
fn readable(file_name: &str) -> bool {
    file_name
        .rsplit_once('.')
        .is_some_and(|(_, ext)| FORMATS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// What the form carried.
#[derive(Default)]
struct Form {
    /// File name, its part's content type, and its size.
    file: Option<(String, String, usize)>,
    model: Option<String>,
    response_format: Option<String>,
    language: Option<String>,
}

fn form_error(e: &MultipartError) -> Response {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return error(status, "file too large: the limit is 25 MiB");
    }
    error(status, &format!("invalid multipart form: {}", e.body_text()))
}

async fn read_form(mut multipart: Multipart) -> Result<Form, Response> {
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| form_error(&e))? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let file_name = field.file_name().unwrap_or("audio").to_owned();
                let content_type = field.content_type().unwrap_or_default().to_owned();
                let bytes = field.bytes().await.map_err(|e| form_error(&e))?;
                form.file = Some((file_name, content_type, bytes.len()));
            }
            "model" | "response_format" | "language" => {
                let text = field.text().await.map_err(|e| form_error(&e))?;
                let slot = match name.as_str() {
                    "model" => &mut form.model,
                    "response_format" => &mut form.response_format,
                    _ => &mut form.language,
                };
                *slot = Some(text.trim().to_owned());
            }
            // prompt, temperature, timestamp_granularities…: accepted, unused.
            _ => {
                field.bytes().await.map_err(|e| form_error(&e))?;
            }
        }
    }
    Ok(form)
}

/// `POST /v1/audio/transcriptions`
pub(crate) async fn transcriptions(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let mut tracked = Tracked::new(&headers);
    let result = handle(&state, &headers, multipart, &mut tracked).await;
    tracked.settle(&state.stats, result)
}

async fn handle(
    state: &Arc<MockState>,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
    tracked: &mut Tracked,
) -> Result<Response, Response> {
    if !state.authorized(headers) {
        return Err(error(StatusCode::UNAUTHORIZED, "invalid API key"));
    }
    let multipart = multipart.map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("expected a multipart form: {}", e.body_text()),
        )
    })?;
    let form = read_form(multipart).await?;
    let (file_name, content_type, size) = form
        .file
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "file: a file is required"))?;
    state.stats.last_transcription(&file_name, &content_type);
    if !readable(&file_name) {
        return Err(unsupported_format());
    }
    if form.model.as_deref().is_none_or(str::is_empty) {
        return Err(error(StatusCode::BAD_REQUEST, "model: a model is required"));
    }
    let format = form.response_format.unwrap_or_else(|| "json".to_owned());
    if !matches!(format.as_str(), "json" | "text" | "verbose_json") {
        return Err(error(
            StatusCode::BAD_REQUEST,
            &format!("response_format must be json, text or verbose_json, not {format:?}"),
        ));
    }
    let (behaviour, _) =
        Behaviour::resolve(&state.defaults, headers, "").map_err(|e| error(StatusCode::BAD_REQUEST, &e))?;
    let seen = tracked.count(&state.stats, &behaviour.key);
    if let Some(failure) = behaviour.failure(seen) {
        return Err(failure_response(&behaviour, failure, error).await);
    }
    if !behaviour.latency.is_zero() {
        tokio::time::sleep(behaviour.latency).await;
    }
    let text = headers
        .get("x-mock-transcript")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("transcript of {file_name}: {size} bytes"));
    state.stats.transcription();
    state.stats.outcome(&behaviour.key, Outcome::Completed);
    Ok(match format.as_str() {
        "text" => {
            let mut response = text.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
        "verbose_json" => axum::Json(json!({
            "task": "transcribe",
            "text": text,
            "language": form.language.filter(|l| !l.is_empty()).unwrap_or_else(|| "en".to_owned()),
            // 16 kHz, 16-bit mono.
            "duration": size as f64 / 32_000.0,
        }))
        .into_response(),
        _ => axum::Json(json!({ "text": text })).into_response(),
    })
}
