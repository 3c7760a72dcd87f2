//! Files and voice messages end to end: a gateway and a worker on Redis,
//! NATS, the MongoDB stand-in and the S3 stand-in (s3s-fs, which checks
//! signatures and expiry), with the mock LLM answering, seeing images and
//! transcribing; then the all-in-one on its local folder. The client
//! uploads straight to the store with the signed URL it was given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

/// Where things run: a gateway and a worker, or the all-in-one.
struct Deployment {
    http: String,
    mock: Proc,
    _procs: Vec<Proc>,
    _ns: Option<TestNamespace>,
    dir: PathBuf,
}

impl Deployment {
    async fn scaled(extra: &[(&str, &str)]) -> Deployment {
        let ns = TestNamespace::new();
        let dir = log_dir(&ns.name);
        let mock = start_mock(&dir, "mock", &[]).await;
        let config = files_config(&dir, &mock.addr);
        let mut env = scaled_env(&ns);
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let worker = start_worker(&dir, &env, "worker", Some(&config)).await;
        let gateway = start_gateway(&dir, &env, "gateway").await;
        Deployment {
            http: format!("http://{}", gateway.addr),
            mock,
            _procs: vec![gateway, worker],
            _ns: Some(ns),
            dir,
        }
    }

    async fn all_in_one(extra: &[(&str, &str)]) -> Deployment {
        let name = unique("files-aio");
        let dir = log_dir(&name);
        let mock = start_mock(&dir, "mock", &[]).await;
        let config = files_config(&dir, &mock.addr);
        let mut env: Vec<(String, String)> = vec![
            ("JWT_SECRET".into(), SECRET.into()),
            ("CHATBOX_CONFIG".into(), config.display().to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let aio = start_all_in_one(&dir, &env, "all-in-one").await;
        Deployment {
            http: format!("http://{}", aio.addr),
            mock,
            _procs: vec![aio],
            _ns: None,
            dir,
        }
    }

    fn ws_addr(&self) -> &str {
        self.http.trim_start_matches("http://")
    }

    /// Connects a user; returns the client and its session id.
    async fn user(&self, name: &str) -> (Client, String) {
        let mut client = Client::connect(self.ws_addr(), &token(name, &[]), None).await;
        let status = client.status().await;
        let sid = status["session_id"].as_str().expect("session id").to_owned();
        (client, sid)
    }
}

/// The mock LLM as a provider that sees images and transcribes.
fn files_config(dir: &Path, mock_addr: &str) -> PathBuf {
    let path = dir.join("files.toml");
    let text = format!(
        "[[chatbox.llm.providers]]\nid = \"mock\"\nname = \"Mock\"\ntype = \"openai\"\n\
         endpoint = \"http://{mock_addr}/v1\"\nmodel = \"mock-model\"\nvision = true\n\
         transcription_model = \"whisper-1\"\n"
    );
    std::fs::write(&path, text).expect("config file");
    path
}

/// Asks for an upload slot over the socket.
async fn slot_ws(client: &mut Client, id: &str, upload: Value) -> Value {
    client
        .send(json!({"type": "request_upload", "id": id, "data": upload}))
        .await;
    client
        .until(WAIT, |f| {
            f["id"] == id && (f["type"] == "upload_slot" || f["type"] == "error")
        })
        .await
}

/// Asks for an upload slot over HTTP.
async fn slot_http(d: &Deployment, user: &str, sid: &str, upload: Value) -> (u16, Value) {
    let response = http()
        .post(format!("{}/chat/uploads?session_id={sid}", d.http))
        .bearer_auth(token(user, &[]))
        .json(&upload)
        .send()
        .await
        .expect("POST /chat/uploads");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// PUTs `bytes` where the slot says, with the headers it names.
async fn upload(slot: &Value, bytes: &[u8]) -> u16 {
    let mut request = http().put(slot["upload_url"].as_str().expect("upload_url"));
    for (name, value) in slot["headers"].as_object().expect("headers") {
        request = request.header(name.as_str(), value.as_str().unwrap_or_default());
    }
    request
        .body(bytes.to_vec())
        .send()
        .await
        .expect("PUT")
        .status()
        .as_u16()
}

/// A session's messages, as the user's HTTP API gives them.
async fn history_of(base: &str, user: &str, sid: &str) -> Value {
    http()
        .get(format!("{base}/chat/sessions/{sid}/messages"))
        .bearer_auth(token(user, &[]))
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("history json")
}

async fn download(url: &str) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
    let response = http().get(url).send().await.expect("GET file");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
        headers,
    )
}

/// A real 2×2 PNG (signature, IHDR, IDAT, IEND with their CRCs).
fn png() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc_input);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &[0, 0, 0, 2, 0, 0, 0, 2, 8, 0, 0, 0, 0]);
    // zlib stream of two rows of (filter 0, two grey pixels), stored.
    let raw = [0u8, 10, 20, 0, 30, 40];
    let mut idat = vec![0x78, 0x01, 0x01, raw.len() as u8, 0, !(raw.len() as u8), 0xff];
    idat.extend_from_slice(&raw);
    idat.extend_from_slice(&adler32(&raw).to_be_bytes());
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
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

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// The start of a Windows program.
fn exe() -> Vec<u8> {
    let mut out = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
    out.resize(0x80, 0);
    out[0x3c] = 0x80;
    out.extend_from_slice(b"PE\0\0\x4c\x01\x03\x00");
    out.resize(1024, 0x90);
    out
}

/// The head of a WebM recording (EBML header with DocType `webm`, then a
/// segment), as a browser's MediaRecorder writes it.
fn webm() -> Vec<u8> {
    let mut out = vec![
        0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81, 0x01, 0x42, 0xf7, 0x81, 0x01, 0x42, 0xf2, 0x81, 0x04,
        0x42, 0xf3, 0x81, 0x08, 0x42, 0x82, 0x84, b'w', b'e', b'b', b'm', 0x42, 0x87, 0x81, 0x04, 0x42, 0x85,
        0x81, 0x02, 0x18, 0x53, 0x80, 0x67, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    out.resize(2048, 0x11);
    out
}

fn upload_request(name: &str, bytes: &[u8], content_type: &str, purpose: &str) -> Value {
    json!({"name": name, "size": bytes.len(), "content_type": content_type, "purpose": purpose})
}

/// Shares a file through the socket: slot, PUT, `file_upload`.
async fn share(
    client: &mut Client,
    id: &str,
    name: &str,
    bytes: &[u8],
    content_type: &str,
    caption: &str,
) -> Value {
    let slot = slot_ws(
        client,
        &format!("{id}-slot"),
        upload_request(name, bytes, content_type, "file"),
    )
    .await;
    assert_eq!(slot["type"], "upload_slot", "{slot}");
    assert_eq!(upload(&slot["data"], bytes).await, 200, "PUT to the signed URL");
    let file_id = slot["data"]["file_id"].as_str().expect("file id").to_owned();
    client
        .send(json!({"type": "file_upload", "id": id, "file_id": file_id, "content": caption}))
        .await;
    slot
}

/// The files under the S3 stand-in's data folder or the local store's.
fn stored_objects(root: &Path, part: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.retain(|p| p.display().to_string().contains(part));
    out
}

/// The stored files that hold bytes of `file_id`'s upload: what a retired
/// link leaves (an empty S3 object in its way, the local store's mark of a
/// used link) holds none.
fn stored_bytes(root: &Path, file_id: &str) -> Vec<PathBuf> {
    let mut found = stored_objects(root, file_id);
    found.retain(|p| {
        let mark = p.components().any(|c| c.as_os_str() == "used");
        !mark && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
    });
    found
}

fn s3_root() -> PathBuf {
    PathBuf::from(s3_env("CHATBOX_TEST_S3_DIR"))
}

/// PNG in, answered with the image shown to the model, downloadable,
/// in history with a fresh URL after the first one expired.
async fn png_round_trip(d: &Deployment) {
    let (mut client, sid) = d.user("alice").await;
    let picture = png();
    let slot = share(
        &mut client,
        "f1",
        "cat.png",
        &picture,
        "image/png",
        "What is in this picture?",
    )
    .await;
    let echo = client
        .until(WAIT, |f| f["type"] == "file_upload" && f["id"] == "f1")
        .await;
    assert_eq!(echo["file_id"], slot["data"]["file_id"], "{echo}");
    assert_eq!(echo["metadata"]["file_name"], "cat.png");
    assert_eq!(echo["metadata"]["content_type"], "image/png");
    assert_eq!(echo["metadata"]["file_size"], picture.len().to_string());
    assert_eq!(echo["content"], "What is in this picture?");
    let url = echo["file_url"].as_str().expect("file_url").to_owned();
    let answer = client.answer(WAIT).await;
    assert!(
        answer["content"]
            .as_str()
            .unwrap_or_default()
            .contains("What is in this picture?"),
        "{answer}"
    );
    let seen = &mock_stats(&d.mock).await["by_key"][""]["last_request"];
    assert_eq!(
        seen["images"],
        json!(["image/png"]),
        "the model saw the image: {seen}"
    );

    let (status, bytes, headers) = download(&url).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, picture, "the download is the upload");
    assert_eq!(headers["content-type"], "image/png");

    // The echo's URL expires (download_url_ttl = 2s); history signs anew.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let (status, _, _) = download(&url).await;
    assert_eq!(status, 403, "an expired download URL is refused");
    let history = history_of(&d.http, "alice", &sid).await;
    let shared = history["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["type"] == "file_upload"))
        .unwrap_or_else(|| panic!("the file is in history: {history}"));
    let fresh = shared["file_url"].as_str().expect("fresh file_url");
    assert_ne!(fresh, url);
    let (status, bytes, _) = download(fresh).await;
    assert_eq!((status, bytes), (200, picture), "history's URL works");
}

/// Too large or of a type not allowed: refused before anything is
/// uploaded, over HTTP and the socket.
async fn refused_before_upload(d: &Deployment) {
    let (mut client, sid) = d.user("bob").await;
    let big = json!({"name": "huge.png", "size": 30 * 1024 * 1024, "content_type": "image/png"});
    let (status, body) = slot_http(d, "bob", &sid, big.clone()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "FILE_TOO_LARGE", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("20 MB"),
        "{body}"
    );
    let refused = slot_ws(&mut client, "big", big).await;
    assert!(is_error(&refused, "FILE_TOO_LARGE"), "{refused}");
    let exe_type = json!({"name": "setup.exe", "size": 1000, "content_type": "application/x-msdownload"});
    let (status, body) = slot_http(d, "bob", &sid, exe_type).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (415, json!("FILE_TYPE_NOT_ALLOWED")),
        "{body}"
    );
    let (status, body) = slot_http(
        d,
        "mallory",
        &sid,
        upload_request("a.png", &png(), "image/png", "file"),
    )
    .await;
    assert_eq!(status, 404, "another user's session: {body}");
    let (status, body) = slot_http(
        d,
        "bob",
        &sid,
        json!({"name": "", "size": 5, "content_type": "image/png"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("INVALID_FIELD")),
        "{body}"
    );
}

/// An EXE named `.png`: refused after the upload, deleted, and the user
/// told why; nothing joins the conversation.
async fn disguised_program_refused(d: &Deployment, objects: &Path) {
    let (mut client, sid) = d.user("carol").await;
    let slot = share(&mut client, "evil", "holiday.png", &exe(), "image/png", "look").await;
    let file_id = slot["data"]["file_id"].as_str().expect("file id").to_owned();
    let refused = client
        .until(WAIT, |f| f["type"] == "error" && f["id"] == "evil")
        .await;
    assert!(is_error(&refused, "FILE_REJECTED"), "{refused}");
    let reason = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        reason.contains("holiday.png") && reason.contains("Windows"),
        "{reason}"
    );
    assert!(
        stored_bytes(objects, &file_id).is_empty(),
        "the refused upload is deleted: {:?}",
        stored_bytes(objects, &file_id)
    );
    let history = history_of(&d.http, "carol", &sid).await;
    assert_eq!(history["messages"], json!([]), "nothing joined the conversation");
    // Sending it again gives the same answer, not a second check.
    client
        .send(json!({"type": "file_upload", "id": "evil-again", "file_id": file_id}))
        .await;
    let again = client
        .until(WAIT, |f| f["type"] == "error" && f["id"] == "evil-again")
        .await;
    assert!(is_error(&again, "FILE_REJECTED"), "{again}");
}

/// A recorded voice message: transcribed, the transcript shown and
/// answered.
async fn voice_transcribed(d: &Deployment) {
    let (mut client, _) = d.user("dave").await;
    let recording = webm();
    let slot = slot_ws(
        &mut client,
        "v-slot",
        upload_request("memo.webm", &recording, "audio/webm;codecs=opus", "voice"),
    )
    .await;
    assert_eq!(slot["type"], "upload_slot", "{slot}");
    assert_eq!(upload(&slot["data"], &recording).await, 200);
    let before = mock_stats(&d.mock).await["transcriptions"].as_u64().unwrap_or(0);
    client
        .send(json!({"type": "voice_message", "id": "v1", "file_id": slot["data"]["file_id"]}))
        .await;
    let echo = client
        .until(WAIT, |f| f["type"] == "voice_message" && f["id"] == "v1")
        .await;
    let transcript = format!("transcript of voice.webm: {} bytes", recording.len());
    assert_eq!(echo["content"], transcript.as_str(), "{echo}");
    assert_eq!(echo["metadata"]["transcription"], "ok");
    assert_eq!(echo["metadata"]["content_type"], "audio/webm");
    let (status, bytes, _) = download(echo["file_url"].as_str().expect("file_url")).await;
    assert_eq!((status, bytes), (200, recording), "the recording plays back");
    let answer = client.answer(WAIT).await;
    assert!(
        answer["content"]
            .as_str()
            .unwrap_or_default()
            .contains(&transcript),
        "{answer}"
    );
    let after = mock_stats(&d.mock).await["transcriptions"].as_u64().unwrap_or(0);
    assert_eq!(after, before + 1, "transcribed once");
    // A file slot cannot be sent as a voice message, nor the reverse.
    let slot = slot_ws(
        &mut client,
        "p-slot",
        upload_request("a.png", &png(), "image/png", "file"),
    )
    .await;
    client
        .send(json!({"type": "voice_message", "id": "v2", "file_id": slot["data"]["file_id"]}))
        .await;
    let wrong = client
        .until(WAIT, |f| f["type"] == "error" && f["id"] == "v2")
        .await;
    assert!(is_error(&wrong, "INVALID_FIELD"), "{wrong}");
}

// Recordings as browsers and phones make them (the smallest files upload
// inspection accepts as each format).

fn ogg() -> Vec<u8> {
    let mut page = b"OggS\x00\x02".to_vec();
    page.extend_from_slice(&[0; 8]);
    page.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0, 9, 9, 9, 9, 1, 19]);
    page.extend_from_slice(b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00");
    page
}

fn m4a() -> Vec<u8> {
    let mut file = b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom\x00\x00\x00\x00".to_vec();
    file.extend_from_slice(b"\x00\x00\x00\x18mdat");
    file.extend_from_slice(&[0x21; 16]);
    file
}

fn wav() -> Vec<u8> {
    let mut body =
        b"WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00".to_vec();
    body.extend_from_slice(b"data\x04\x00\x00\x00\x01\x02\x03\x04");
    let mut file = b"RIFF".to_vec();
    file.extend_from_slice(&(body.len() as u32).to_le_bytes());
    file.extend(body);
    file
}

/// Two MPEG-1 layer III frames behind an ID3 tag.
fn mp3() -> Vec<u8> {
    let mut file = b"ID3\x03\x00\x00\x00\x00\x00\x0aTIT2\x00\x00\x00\x00".to_vec();
    file.extend_from_slice(&[0; 6]);
    let mut frame = b"\xff\xfb\x90\x00".to_vec();
    frame.resize(417, 0x55);
    file.extend(frame.repeat(2));
    file
}

fn flac() -> Vec<u8> {
    let mut file = b"fLaC\x80\x00\x00\x22".to_vec();
    file.extend_from_slice(&[0x10; 34]);
    file.extend_from_slice(b"\xff\xf8\x69\x08\x00\x00");
    file
}

/// Raw AAC: ADTS frames, no container.
fn adts() -> Vec<u8> {
    let len = 27usize;
    let mut frame = vec![
        0xff,
        0xf1,
        0x50,
        0x80,
        (len >> 3) as u8,
        ((len & 7) << 5) as u8 | 0x1f,
        0xfc,
    ];
    frame.resize(len, 0x33);
    frame.repeat(3)
}

/// Sends `bytes` as a voice message declared `declared`; the frame that
/// answers it (its echo, or an error).
async fn send_voice(client: &mut Client, id: &str, name: &str, bytes: &[u8], declared: &str) -> Value {
    let slot = slot_ws(
        client,
        &format!("{id}-slot"),
        upload_request(name, bytes, declared, "voice"),
    )
    .await;
    assert_eq!(slot["type"], "upload_slot", "{declared}: {slot}");
    assert_eq!(upload(&slot["data"], bytes).await, 200, "{declared}");
    client
        .send(json!({"type": "voice_message", "id": id, "file_id": slot["data"]["file_id"]}))
        .await;
    client
        .until(WAIT, |f| {
            f["id"] == id && (f["type"] == "voice_message" || f["type"] == "error")
        })
        .await
}

#[tokio::test]
async fn voice_messages_reach_transcription_in_every_format_it_reads_and_raw_aac_is_refused() {
    let d = Deployment::all_in_one(&[]).await;
    let (mut client, _) = d.user("vera").await;
    // What the chat page records (Chromium: WebM/Opus, Firefox: Ogg/Opus,
    // Safari: MP4/AAC, sometimes declared audio/aac) and what people send.
    let cases: [(&str, Vec<u8>, &str, &str, &str); 8] = [
        (
            "memo.webm",
            webm(),
            "audio/webm;codecs=opus",
            "voice.webm",
            "audio/webm",
        ),
        (
            "memo.ogg",
            ogg(),
            "audio/ogg;codecs=opus",
            "voice.ogg",
            "audio/ogg",
        ),
        ("memo.m4a", m4a(), "audio/mp4", "voice.m4a", "audio/mp4"),
        ("memo.aac", m4a(), "audio/aac", "voice.m4a", "audio/mp4"),
        ("memo.m4a", m4a(), "audio/x-m4a", "voice.m4a", "audio/mp4"),
        ("memo.mp3", mp3(), "audio/mpeg", "voice.mp3", "audio/mpeg"),
        ("memo.wav", wav(), "audio/wav", "voice.wav", "audio/wav"),
        ("memo.flac", flac(), "audio/flac", "voice.flac", "audio/flac"),
    ];
    for (i, (name, bytes, declared, sent_as, sent_type)) in cases.into_iter().enumerate() {
        let id = format!("v{i}");
        let echo = send_voice(&mut client, &id, name, &bytes, declared).await;
        assert_eq!(echo["type"], "voice_message", "{declared}: {echo}");
        assert_eq!(echo["metadata"]["transcription"], "ok", "{declared}: {echo}");
        assert_eq!(
            echo["content"],
            format!("transcript of {sent_as}: {} bytes", bytes.len()).as_str(),
            "{declared}"
        );
        assert_eq!(
            mock_stats(&d.mock).await["last_transcription"],
            json!({ "file_name": sent_as, "content_type": sent_type }),
            "{declared}"
        );
        client.answer(WAIT).await;
    }

    // Raw AAC has no container the endpoint reads: refused at intake, with
    // the formats that are accepted.
    let refused = send_voice(&mut client, "raw", "memo.aac", &adts(), "audio/aac").await;
    assert!(is_error(&refused, "FILE_TYPE_NOT_ALLOWED"), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("raw AAC"), "{message}");
    assert!(
        ["WebM", "Ogg", "MP4", "MP3", "WAV", "FLAC"]
            .iter()
            .all(|f| message.contains(f)),
        "{message}"
    );
    let before = mock_stats(&d.mock).await["transcriptions"].clone();
    assert_eq!(before, 8, "the raw AAC never went to transcription");
}

const SHORT_LINKS: [(&str, &str); 1] = [("CHATBOX_UPLOADS_DOWNLOAD_URL_TTL", "2s")];

#[tokio::test(flavor = "multi_thread")]
async fn files_and_voice_through_s3() {
    let d = Deployment::scaled(&SHORT_LINKS).await;
    png_round_trip(&d).await;
    refused_before_upload(&d).await;
    disguised_program_refused(&d, &s3_root()).await;
    voice_transcribed(&d).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn files_and_voice_in_the_all_in_one_on_local_disk() {
    let d = Deployment::all_in_one(&SHORT_LINKS).await;
    png_round_trip(&d).await;
    refused_before_upload(&d).await;
    let objects = d.dir.join("data").join("files");
    disguised_program_refused(&d, &objects).await;
    voice_transcribed(&d).await;
    let accepted = stored_objects(&objects.join("objects"), "chat-files");
    assert_eq!(
        accepted.len(),
        2,
        "the PNG and the recording are kept: {accepted:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unused_upload_slots_are_cleaned_up() {
    let d = Deployment::scaled(&[
        ("CHATBOX_UPLOADS_UPLOAD_URL_TTL", "1s"),
        ("CHATBOX_UPLOADS_CLEANUP_INTERVAL", "300ms"),
    ])
    .await;
    let (mut client, _) = d.user("erin").await;
    let picture = png();
    let slot = slot_ws(
        &mut client,
        "s",
        upload_request("late.png", &picture, "image/png", "file"),
    )
    .await;
    assert_eq!(upload(&slot["data"], &picture).await, 200);
    let file_id = slot["data"]["file_id"].as_str().expect("file id").to_owned();
    assert_eq!(
        stored_objects(&s3_root(), &file_id).len(),
        1,
        "uploaded to quarantine"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while !stored_objects(&s3_root(), &file_id).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unused upload was not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client
        .send(json!({"type": "file_upload", "id": "late", "file_id": file_id}))
        .await;
    let refused = client
        .until(WAIT, |f| f["type"] == "error" && f["id"] == "late")
        .await;
    assert!(is_error(&refused, "FILE_NOT_FOUND"), "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{refused}"
    );
    // The slot's URL no longer takes uploads either.
    assert_eq!(upload(&slot["data"], &picture).await, 403);
}

/// Answers that bring files: a spoken answer (OpenAI audio output) stored
/// and sent with a URL that plays, signed afresh in history; a Dify
/// `message_file` and a link in the text listed, not fetched.
#[tokio::test(flavor = "multi_thread")]
async fn spoken_answers_are_stored_and_offered_files_linked() {
    let name = unique("files-out");
    let dir = log_dir(&name);
    let mock = start_mock(&dir, "mock", &[]).await;
    let config = dir.join("speaking.toml");
    let text = format!(
        "[[chatbox.llm.providers]]\nid = \"speaker\"\ntype = \"openai\"\nendpoint = \"http://{0}/v1\"\n\
         audio_output = {{ voice = \"alloy\", format = \"wav\" }}\n\n\
         [[chatbox.llm.providers]]\nid = \"dify\"\ntype = \"dify\"\nendpoint = \"http://{0}/v1\"\napiKey = \"app-key\"\n",
        mock.addr
    );
    std::fs::write(&config, text).expect("config file");
    let env = vec![
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("CHATBOX_CONFIG".to_owned(), config.display().to_string()),
    ];
    let aio = start_all_in_one(&dir, &env, "all-in-one").await;
    let mut client = Client::connect(&aio.addr, &token("frank", &[]), None).await;
    let sid = client.status().await["session_id"]
        .as_str()
        .expect("sid")
        .to_owned();

    client.say("s1", "Say hello").await;
    let spoken = client.answer(WAIT).await;
    assert!(
        spoken["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Say hello"),
        "{spoken}"
    );
    assert!(
        spoken["file_id"].is_string(),
        "the audio is a stored file: {spoken}"
    );
    let (status, audio, headers) = download(spoken["file_url"].as_str().expect("file_url")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "audio/wav");
    assert!(
        audio.starts_with(b"RIFF") && audio[8..12] == *b"WAVE",
        "a WAV file"
    );

    client
        .send(json!({"type": "model_select", "id": "m", "model_id": "dify"}))
        .await;
    client.until(WAIT, |f| f["id"] == "m").await;
    client
        .say(
            "s2",
            "[[mock file-url=https://files.example.com/out/chart.png]] see https://example.com/report.pdf",
        )
        .await;
    let offered = client.answer(WAIT).await;
    let files: Value = serde_json::from_str(offered["metadata"]["files"].as_str().expect("files metadata"))
        .expect("files json");
    assert_eq!(
        files,
        json!([
            {"url": "https://files.example.com/out/chart.png", "name": "chart.png", "source": "provider"},
            {"url": "https://example.com/report.pdf", "name": "report.pdf", "source": "answer"},
        ]),
        "{offered}"
    );
    assert_eq!(offered["file_url"], "https://files.example.com/out/chart.png");

    let history = history_of(&format!("http://{}", aio.addr), "frank", &sid).await;
    let stored = history["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["file_id"] == spoken["file_id"]))
        .unwrap_or_else(|| panic!("the spoken answer is in history: {history}"));
    let (status, again, _) = download(stored["file_url"].as_str().expect("fresh file_url")).await;
    assert_eq!(
        (status, again),
        (200, audio),
        "history's URL plays the same audio"
    );
}

/// PUTs `bytes` to the slot's link with `content-type` only, as a client
/// that ignores the other signed headers would; the status, or 0 when the
/// store cut the request off.
async fn put_raw(slot: &Value, bytes: Vec<u8>) -> u16 {
    let mut request = http().put(slot["upload_url"].as_str().expect("upload_url"));
    for (name, value) in slot["headers"].as_object().expect("headers") {
        request = request.header(name.as_str(), value.as_str().unwrap_or_default());
    }
    request
        .body(bytes)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Issue 23, item 4: a link takes one body of the declared size; a second
/// write, racing the check or after the file was taken in or refused, is
/// refused; the file kept is the bytes checked; the quarantine is emptied
/// once the links expire.
async fn upload_links_write_once(d: &Deployment, root: &Path) {
    let (mut client, sid) = d.user("mallory").await;
    let picture = png();
    let slot = slot_ws(
        &mut client,
        "s1",
        upload_request("cat.png", &picture, "image/png", "file"),
    )
    .await;
    let slot = &slot["data"];
    let file_id = slot["file_id"].as_str().expect("file id").to_owned();
    for wrong in [vec![0x11; 1024 * 1024], picture[..picture.len() - 1].to_vec()] {
        let status = put_raw(slot, wrong.clone()).await;
        assert!(
            status == 0 || (400..500).contains(&status),
            "{} bytes on a link for {}: {status}",
            wrong.len(),
            picture.len()
        );
    }
    assert!(stored_bytes(root, &file_id).is_empty(), "nothing stored");
    assert_eq!(upload(slot, &picture).await, 200);
    // Four writers race the check with other bytes: all refused.
    client
        .send(json!({"type": "file_upload", "id": "f", "file_id": file_id, "content": "look"}))
        .await;
    let mut other = picture.clone();
    let last = other.len() - 20;
    other[last] ^= 0xff;
    let writers: Vec<_> = (0..4).map(|_| put_raw(slot, other.clone())).collect();
    for status in futures_util::future::join_all(writers).await {
        assert!((400..500).contains(&status), "a second write: {status}");
    }
    let echo = client
        .until(WAIT, |f| {
            f["id"] == "f" && (f["type"] == "file_upload" || f["type"] == "error")
        })
        .await;
    assert_eq!(echo["type"], "file_upload", "{echo}");
    let (status, bytes, _) = download(echo["file_url"].as_str().expect("file_url")).await;
    assert_eq!(
        (status, bytes == picture),
        (200, true),
        "the bytes kept are the bytes checked"
    );
    assert!(
        (400..500).contains(&upload(slot, &other).await),
        "a write after the file was taken in"
    );
    client.answer(WAIT).await;

    // Refused: the link stays shut too.
    let evil = slot_ws(
        &mut client,
        "s2",
        upload_request("holiday.png", &exe(), "image/png", "file"),
    )
    .await;
    let evil = &evil["data"];
    let evil_id = evil["file_id"].as_str().expect("file id").to_owned();
    assert_eq!(upload(evil, &exe()).await, 200);
    client
        .send(json!({"type": "file_upload", "id": "e", "file_id": evil_id}))
        .await;
    let refused = client
        .until(WAIT, |f| f["id"] == "e" && f["type"] == "error")
        .await;
    assert!(is_error(&refused, "FILE_REJECTED"), "{refused}");
    assert!(
        (400..500).contains(&upload(evil, &exe()).await),
        "a write after the file was refused"
    );
    assert!(stored_bytes(root, &evil_id).is_empty());

    // Once the links expire, nothing of either is left in quarantine.
    let deadline = tokio::time::Instant::now() + WAIT;
    let quarantined = || {
        let mut left = stored_objects(root, &format!("quarantine/{file_id}"));
        left.extend(stored_objects(root, &format!("quarantine/{evil_id}")));
        left.retain(|p| !p.components().any(|c| c.as_os_str() == "used"));
        left
    };
    while !quarantined().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the quarantine keeps {:?}",
            quarantined()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let history = history_of(&d.http, "mallory", &sid).await;
    assert_eq!(
        history["messages"].as_array().map(Vec::len),
        Some(2),
        "the picture and its answer: {history}"
    );
}

const SHORT_UPLOAD_LINKS: [(&str, &str); 2] = [
    ("CHATBOX_UPLOADS_UPLOAD_URL_TTL", "3s"),
    ("CHATBOX_UPLOADS_CLEANUP_INTERVAL", "300ms"),
];

#[tokio::test(flavor = "multi_thread")]
async fn upload_links_write_once_within_the_declared_size_through_s3() {
    let d = Deployment::scaled(&SHORT_UPLOAD_LINKS).await;
    upload_links_write_once(&d, &s3_root()).await;
}

/// Issue 23, items 4 and 5 on local disk: the same links, and files at
/// rest readable by the server's user only, encrypted with `ENCRYPTION_KEY`.
#[tokio::test(flavor = "multi_thread")]
async fn upload_links_write_once_and_files_are_private_on_local_disk() {
    let mut env = SHORT_UPLOAD_LINKS.to_vec();
    env.push(("ENCRYPTION_KEY", ENCRYPTION_KEY));
    let d = Deployment::all_in_one(&env).await;
    let data = d.dir.join("data");
    upload_links_write_once(&d, &data.join("files")).await;
    let kept = stored_objects(&data.join("files").join("objects"), "chat-files");
    assert_eq!(kept.len(), 1, "the picture: {kept:?}");
    let on_disk = std::fs::read(&kept[0]).expect("the stored picture");
    assert!(
        !on_disk.windows(4).any(|w| w == b"IHDR") && on_disk.len() > png().len(),
        "the picture is encrypted at rest (and served decrypted, above)"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&data.join("chatbox.db")), 0o600, "the database");
        let mut pending = vec![data.join("files")];
        let mut files = 0;
        while let Some(folder) = pending.pop() {
            assert_eq!(mode(&folder), 0o700, "{}", folder.display());
            for entry in std::fs::read_dir(&folder).expect("read folder").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    assert_eq!(mode(&path), 0o600, "{}", path.display());
                    files += 1;
                }
            }
        }
        assert!(files >= 2, "the picture and its type at least: {files}");
    }
}
