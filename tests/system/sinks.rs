//! Where notifications end up in tests: real servers on loopback that
//! keep what they receive.
//!
//! * [`SmtpSink`] — aiosmtpd, a real SMTP server, storing each message in
//!   a maildir; [`SmtpSink::messages`] reads them back decoded.
//! * [`TwilioRecorder`] — an HTTP server speaking Twilio's Messages API:
//!   it checks the path (with the account SID), Basic auth and the form,
//!   keeps valid requests and answers 201 like Twilio, or 400/401/404 with
//!   Twilio's error JSON.
//! * [`SesRecorder`] — an HTTP server speaking Amazon SES v2 `SendEmail`:
//!   it verifies the SigV4 signature (computed here independently) and
//!   keeps valid requests, or answers 403 with SES's error.
//!
//! Each one is stopped when dropped. aiosmtpd runs on the interpreter in
//! `CHATBOX_TEST_SMTP_PYTHON` (`scripts/test.sh` finds or installs it),
//! else `/usr/bin/python3`.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{free_port, log_dir, unique};

/// One e-mail as the sink received it, headers and body decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The `From` header, like `Chat Support <noreply@example.com>`.
    pub from: String,
    /// The `To` header.
    pub to: String,
    /// The `Subject` header.
    pub subject: String,
    /// The `Reply-To` header, empty if none.
    pub reply_to: String,
    /// The text body.
    pub body: String,
}

/// A real SMTP server (aiosmtpd) on a free port of loopback, keeping every
/// message in a maildir.
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    maildir: PathBuf,
    log: PathBuf,
}

impl SmtpSink {
    /// Starts aiosmtpd and waits until it greets; on a port someone else
    /// took meanwhile, tries another.
    pub fn start() -> SmtpSink {
        let dir = log_dir(&unique("smtp"));
        let python = std::env::var("CHATBOX_TEST_SMTP_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
        for attempt in 0..5 {
            let maildir = dir.join(format!("maildir{attempt}"));
            let log = dir.join(format!("aiosmtpd{attempt}.log"));
            let port = free_port();
            let out = std::fs::File::create(&log).expect("aiosmtpd log");
            let child = Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdin(Stdio::null())
                .stdout(Stdio::from(out.try_clone().expect("log")))
                .stderr(Stdio::from(out))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {python} (set CHATBOX_TEST_SMTP_PYTHON): {e}"));
            let mut sink = SmtpSink {
                port,
                child,
                maildir,
                log,
            };
            if sink.wait_ready(&python) {
                return sink;
            }
        }
        panic!("aiosmtpd found no free port in five tries; see {}", dir.display())
    }

    /// Waits until this aiosmtpd answers with its SMTP greeting (a port
    /// probe of another test may answer a bare connect); `false` if it
    /// exited, as when its port was taken.
    fn wait_ready(&mut self, python: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                assert!(
                    log.to_ascii_lowercase().contains("address already in use"),
                    "aiosmtpd exited; is it installed for {python}? (scripts/test.sh installs python3-aiosmtpd)\n{log}"
                );
                return false;
            }
            if self.maildir.exists() && greets(self.port) {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<(SystemTime, PathBuf)> = entries
            .flatten()
            .map(|e| {
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (modified, e.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read(path).ok())
            .map(|raw| parse_mail(&String::from_utf8_lossy(&raw)))
            .collect()
    }

    /// Waits until at least `n` messages arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        wait_until(n, timeout, || self.messages(), String::new).await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether an SMTP server on `port` sends its `220` greeting.
fn greets(port: u16) -> bool {
    use std::io::{BufRead, BufReader};
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("220")
}

/// Polls `read` until it has at least `n` items; panics after `timeout`
/// with what came and `more`.
async fn wait_until<T: std::fmt::Debug>(
    n: usize,
    timeout: Duration,
    read: impl Fn() -> Vec<T>,
    more: impl Fn() -> String,
) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let items = read();
        if items.len() >= n {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} arrived within {timeout:?}{}: {items:#?}",
            items.len(),
            more()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads a stored message: unfolds and decodes the headers it needs and
/// the body (7bit, quoted-printable or base64).
fn parse_mail(raw: &str) -> ReceivedMail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| decode_words(v))
            .unwrap_or_default()
    };
    let body = match header("content-transfer-encoding").to_ascii_lowercase().as_str() {
        "quoted-printable" => String::from_utf8_lossy(&decode_quoted_printable(body)).into_owned(),
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            String::from_utf8_lossy(&BASE64.decode(compact).unwrap_or_default()).into_owned()
        }
        _ => body.to_owned(),
    };
    ReceivedMail {
        from: header("from"),
        to: header("to"),
        subject: header("subject"),
        reply_to: header("reply-to"),
        body,
    }
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`);
/// white space between two of them goes.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut last_was_word = false;
    for token in value.split_whitespace() {
        let word = token
            .strip_prefix("=?")
            .and_then(|t| t.strip_suffix("?="))
            .and_then(|t| {
                let mut parts = t.splitn(3, '?');
                let (_charset, encoding, text) = (parts.next()?, parts.next()?, parts.next()?);
                let bytes = match encoding.to_ascii_lowercase().as_str() {
                    "b" => BASE64.decode(text).ok()?,
                    "q" => decode_quoted_printable(&text.replace('_', " ")),
                    _ => return None,
                };
                Some(String::from_utf8_lossy(&bytes).into_owned())
            });
        match word {
            Some(text) => {
                if !out.is_empty() && !last_was_word {
                    out.push(' ');
                }
                out.push_str(&text);
                last_was_word = true;
            }
            None => {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(token);
                last_was_word = false;
            }
        }
    }
    out
}

fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let text = text.replace("=\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(byte) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// What an HTTP recorder kept: valid requests, and the refusals it
/// answered.
struct Journal<T> {
    accepted: Mutex<Vec<T>>,
    refused: Mutex<Vec<(u16, String)>>,
}

impl<T: Clone + std::fmt::Debug> Journal<T> {
    fn new() -> Arc<Self> {
        Arc::new(Journal {
            accepted: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
        })
    }

    fn accept(&self, item: T) {
        self.accepted.lock().unwrap().push(item);
    }

    /// Records a refusal and answers it with `body`.
    fn refuse(
        &self,
        status: StatusCode,
        reason: &str,
        headers: &[(&'static str, String)],
        body: Value,
    ) -> Response {
        self.refused
            .lock()
            .unwrap()
            .push((status.as_u16(), reason.to_owned()));
        let mut response = (status, axum::Json(body)).into_response();
        for (name, value) in headers {
            if let Ok(value) = value.parse() {
                response.headers_mut().insert(*name, value);
            }
        }
        response
    }

    fn accepted(&self) -> Vec<T> {
        self.accepted.lock().unwrap().clone()
    }

    fn refused(&self) -> Vec<(u16, String)> {
        self.refused.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<T> {
        wait_until(
            n,
            timeout,
            || self.accepted(),
            || format!("; refused: {:?}", self.refused()),
        )
        .await
    }
}

/// An HTTP server on a free port of loopback that keeps the valid requests
/// it gets (as `T`) and the refusals it answers; stopped when dropped.
/// [`TwilioRecorder`] and [`SesRecorder`] are one each.
pub struct Recorder<T> {
    /// Where it listens, like `http://127.0.0.1:40123`.
    pub base_url: String,
    journal: Arc<Journal<T>>,
    stop: CancellationToken,
}

impl<T: Clone + std::fmt::Debug> Recorder<T> {
    /// Serves `router`, whose handlers write to `journal`.
    async fn serve(router: Router, journal: Arc<Journal<T>>) -> Recorder<T> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        Recorder {
            base_url: format!("http://{addr}"),
            journal,
            stop,
        }
    }

    /// The valid requests so far, in order.
    pub fn requests(&self) -> Vec<T> {
        self.journal.accepted()
    }

    /// The requests it refused: status and the reason it gave.
    pub fn refused(&self) -> Vec<(u16, String)> {
        self.journal.refused()
    }

    /// Waits until at least `n` valid requests arrived; panics after
    /// `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<T> {
        self.journal.wait_for(n, timeout).await
    }
}

impl<T> Drop for Recorder<T> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A valid Messages API request the Twilio recorder kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRequest {
    /// `To`.
    pub to: String,
    /// `From`.
    pub from: String,
    /// `Body`.
    pub body: String,
}

/// An HTTP server speaking Twilio's Messages API for one account; its
/// [`Recorder`] (`base_url`, `requests()`, `wait_for`) through `Deref`.
pub struct TwilioRecorder {
    /// The account SID it serves.
    pub account_sid: String,
    /// The auth token it accepts.
    pub auth_token: String,
    recorder: Recorder<SmsRequest>,
}

struct TwilioAccount {
    sid: String,
    token: String,
    journal: Arc<Journal<SmsRequest>>,
}

impl TwilioRecorder {
    /// Starts a recorder for account `account_sid` with `auth_token`.
    pub async fn start(account_sid: &str, auth_token: &str) -> TwilioRecorder {
        let journal = Journal::new();
        let account = Arc::new(TwilioAccount {
            sid: account_sid.to_owned(),
            token: auth_token.to_owned(),
            journal: Arc::clone(&journal),
        });
        let router = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(twilio_messages))
            .with_state(account);
        TwilioRecorder {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            recorder: Recorder::serve(router, journal).await,
        }
    }
}

impl std::ops::Deref for TwilioRecorder {
    type Target = Recorder<SmsRequest>;

    fn deref(&self) -> &Recorder<SmsRequest> {
        &self.recorder
    }
}

async fn twilio_messages(
    State(account): State<Arc<TwilioAccount>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refuse = |status: StatusCode, code: u32, message: String| {
        let body = json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        });
        account.journal.refuse(status, &message, &[], body)
    };
    let expected = format!(
        "Basic {}",
        BASE64.encode(format!("{}:{}", account.sid, account.token))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return refuse(StatusCode::UNAUTHORIZED, 20003, "Authenticate".into());
    }
    if sid != account.sid {
        return refuse(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource /2010-04-01/Accounts/{sid}/Messages.json was not found"),
        );
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return refuse(
            StatusCode::BAD_REQUEST,
            20001,
            format!("expected an application/x-www-form-urlencoded body, got {content_type:?}"),
        );
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (Some(to), Some(from), Some(text)) = (field("To"), field("From"), field("Body")) else {
        let (code, message) = match (field("To"), field("From")) {
            (None, _) => (21604, "A 'To' phone number is required."),
            (_, None) => (21603, "A 'From' phone number is required."),
            _ => (21602, "Message body is required."),
        };
        return refuse(StatusCode::BAD_REQUEST, code, message.into());
    };
    let e164 = |n: &str| {
        n.strip_prefix('+')
            .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
    };
    if !e164(&to) {
        return refuse(
            StatusCode::BAD_REQUEST,
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    if text.chars().count() > 1600 {
        return refuse(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.".into(),
        );
    }
    let message_sid = format!("SM{:032x}", rand::random::<u128>());
    account.journal.accept(SmsRequest {
        to: to.clone(),
        from: from.clone(),
        body: text.clone(),
    });
    let answer = json!({
        "sid": message_sid,
        "account_sid": account.sid,
        "to": to,
        "from": from,
        "body": text,
        "status": "queued",
        "num_segments": "1",
        "uri": format!("/2010-04-01/Accounts/{}/Messages/{message_sid}.json", account.sid),
    });
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// A valid `SendEmail` request the SES recorder kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesEmail {
    /// `FromEmailAddress`.
    pub from: String,
    /// `Destination.ToAddresses`.
    pub to: Vec<String>,
    /// `ReplyToAddresses`.
    pub reply_to: Vec<String>,
    /// `Content.Simple.Subject.Data`.
    pub subject: String,
    /// `Content.Simple.Body.Text.Data`.
    pub body: String,
}

/// An HTTP server speaking Amazon SES v2 `SendEmail` for one access key:
/// a [`Recorder`] whose `base_url` is the `endpoint` to configure.
pub type SesRecorder = Recorder<SesEmail>;

struct SesAccount {
    region: String,
    access_key_id: String,
    secret_access_key: String,
    journal: Arc<Journal<SesEmail>>,
}

impl Recorder<SesEmail> {
    /// Starts an SES recorder accepting requests signed for `region` with
    /// this key.
    pub async fn start(region: &str, access_key_id: &str, secret_access_key: &str) -> SesRecorder {
        let journal = Journal::new();
        let account = Arc::new(SesAccount {
            region: region.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            journal: Arc::clone(&journal),
        });
        let router = Router::new()
            .route("/v2/email/outbound-emails", post(ses_send_email))
            .with_state(account);
        Recorder::serve(router, journal).await
    }
}

async fn ses_send_email(State(account): State<Arc<SesAccount>>, headers: HeaderMap, body: Bytes) -> Response {
    let refuse = |status: StatusCode, kind: &str, message: String| {
        account.journal.refuse(
            status,
            &format!("{kind}: {message}"),
            &[(
                "x-amzn-errortype",
                format!("{kind}:http://internal.amazon.com/coral/com.amazonaws.sesv2/"),
            )],
            json!({ "message": message }),
        )
    };
    if let Err((kind, message)) = verify_sigv4(&account, "POST", "/v2/email/outbound-emails", &headers, &body)
    {
        return refuse(StatusCode::FORBIDDEN, kind, message);
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "the body is not JSON".into(),
        );
    };
    let text = |pointer: &str| {
        request
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let list = |pointer: &str| -> Vec<String> {
        request
            .pointer(pointer)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let (Some(from), Some(subject), Some(text_body)) = (
        text("/FromEmailAddress"),
        text("/Content/Simple/Subject/Data"),
        text("/Content/Simple/Body/Text/Data"),
    ) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "FromEmailAddress, Content.Simple.Subject and Content.Simple.Body are required".into(),
        );
    };
    let to = list("/Destination/ToAddresses");
    if to.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "Destination.ToAddresses is required".into(),
        );
    }
    account.journal.accept(SesEmail {
        from,
        to,
        reply_to: list("/ReplyToAddresses"),
        subject,
        body: text_body,
    });
    axum::Json(json!({ "MessageId": format!("{:032x}", rand::random::<u128>()) })).into_response()
}

/// Checks an AWS Signature Version 4 `Authorization` header the way SES
/// does: same key, region and service, a fresh `x-amz-date`, `host` among
/// the signed headers, and the same signature computed from the request as
/// it arrived.
fn verify_sigv4(
    account: &SesAccount,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), (&'static str, String)> {
    let mismatch = |why: &str| {
        (
            "SignatureDoesNotMatchException",
            format!("The request signature we calculated does not match the signature you provided ({why})."),
        )
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let authorization = header("authorization").ok_or_else(|| {
        (
            "MissingAuthenticationTokenException",
            "Missing Authentication Token".to_owned(),
        )
    })?;
    let fields = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| mismatch("not AWS4-HMAC-SHA256"))?;
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .ok_or_else(|| mismatch(&format!("no {name}")))
    };
    let (credential, signed_headers, signature) =
        (field("Credential")?, field("SignedHeaders")?, field("Signature")?);
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(mismatch("malformed credential scope"));
    };
    if key_id != account.access_key_id {
        return Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".to_owned(),
        ));
    }
    if region != account.region || service != "ses" {
        return Err(mismatch(&format!("scope {region}/{service}")));
    }
    let amz_date = header("x-amz-date").ok_or_else(|| mismatch("no x-amz-date"))?;
    if !amz_date.starts_with(date) || !is_fresh(amz_date) {
        return Err(mismatch("x-amz-date is not now"));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err(mismatch("host and x-amz-date must be signed"));
    }
    let mut canonical = format!("{method}\n{path}\n\n");
    for name in &names {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    canonical.push_str(&format!("\n{signed_headers}\n{}", hex(&sha256(body))));
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex(&sha256(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", account.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    if hex(&hmac(&key, to_sign.as_bytes())) == signature {
        Ok(())
    } else {
        Err(mismatch("signature differs"))
    }
}

/// Whether `20240101T120000Z` is within five minutes of now.
fn is_fresh(amz_date: &str) -> bool {
    let Some(rfc3339) = (amz_date.len() == 16).then(|| {
        format!(
            "{}-{}-{}T{}:{}:{}Z",
            &amz_date[0..4],
            &amz_date[4..6],
            &amz_date[6..8],
            &amz_date[9..11],
            &amz_date[11..13],
            &amz_date[13..15]
        )
    }) else {
        return false;
    };
    let Ok(at) = humantime::parse_rfc3339(&rfc3339) else {
        return false;
    };
    let now = SystemTime::now();
    let skew = now
        .duration_since(at)
        .or_else(|_| at.duration_since(now))
        .unwrap_or_default();
    skew < Duration::from_secs(300)
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_mail_is_decoded() {
        let raw = "From: \"Chat Support\" <noreply@example.com>\r\nTo: ops@example.com\r\n\
                   Subject: =?utf-8?b?W2NoYXRib3hdIEjDqWxw?=\r\n =?utf-8?q?_me?=\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                   link: http://x/?session=3Ds1 and a very long line that was =\r\nsoft-broken\r\n";
        let mail = parse_mail(raw);
        assert_eq!(mail.subject, "[chatbox] Hélp me");
        assert_eq!(mail.to, "ops@example.com");
        assert_eq!(
            mail.body,
            "link: http://x/?session=s1 and a very long line that was soft-broken\n"
        );
    }
}

/// A span an OTLP recorder received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// `service.name` of the process that exported it.
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
}

/// An OTLP/HTTP collector (`POST /v1/traces`, protobuf) that keeps every
/// span it is sent.
pub struct OtlpRecorder {
    recorder: Recorder<ReceivedSpan>,
}

impl OtlpRecorder {
    pub async fn start() -> OtlpRecorder {
        let journal = Journal::new();
        let router = Router::new()
            .route("/v1/traces", post(otlp_traces))
            .with_state(Arc::clone(&journal));
        OtlpRecorder {
            recorder: Recorder::serve(router, journal).await,
        }
    }

    /// The endpoint to give as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.recorder.base_url
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.recorder.requests()
    }
}

async fn otlp_traces(State(journal): State<Arc<Journal<ReceivedSpan>>>, body: Bytes) -> Response {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(request) => request,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not an OTLP trace export: {e}")).into_response(),
    };
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(name) => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            journal.accept(ReceivedSpan {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
            });
        }
    }
    StatusCode::OK.into_response()
}
