//! The S3 adapter of the file store: AWS S3 or any S3-compatible store
//! (MinIO, Ceph, R2), for the scaled workers.
//!
//! Clients upload and download with presigned URLs (SigV4 in the query
//! string), so the bytes go straight between the browser and the bucket.
//! URLs are signed for `public_endpoint` when clients reach the store at
//! another address than workers do (the host is part of the signature).
//! Checksums are only computed when an operation requires them: a
//! presigned URL then carries no checksum parameter a browser could not
//! satisfy.
//!
//! A presigned PUT signs `content-length` (the declared size) and
//! `If-None-Match: *` (no object at the key yet): the store refuses
//! another size, and a second write. Every write asks for the configured
//! server-side encryption (`server_side_encryption`: SSE-S3 or SSE-KMS);
//! a presigned PUT signs those headers too, so the client sends them as
//! the slot names them.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{MetadataDirective, ServerSideEncryption as Sse};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use bytes::Bytes;
use chatbox_shared::config::{S3Config, ServerSideEncryption};

use super::{
    BlobError, BlobStore, Download, ObjectInfo, SignedRequest, check_key, check_prefix, content_disposition,
    expiry, observed,
};

const ADAPTER: &str = "s3";

/// Most keys one `ListObjectsV2` page returns.
const PAGE: usize = 1000;

/// A bucket of an S3-compatible store.
pub struct S3BlobStore {
    client: Client,
    /// Signs the URLs given to clients (the public endpoint's host).
    presigner: Client,
    bucket: String,
    /// `s3://bucket`, for logs.
    location: String,
    /// The server-side encryption every write asks for.
    sse: Option<Sse>,
    /// The KMS key of SSE-KMS; `None`: the account's default.
    kms_key_id: Option<String>,
}

impl S3BlobStore {
    /// Builds the clients for `config`'s bucket. Nothing is sent yet: call
    /// [`BlobStore::check`] to see the bucket answer.
    pub async fn connect(config: &S3Config) -> Result<Self, BlobError> {
        if config.bucket.trim().is_empty() {
            return Err(BlobError::Other(
                "no S3 bucket is configured (chatbox.blob.s3.bucket)".into(),
            ));
        }
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http.clone());
        if !config.region.trim().is_empty() {
            loader = loader.region(Region::new(config.region.trim().to_owned()));
        }
        if !config.access_key_id.is_empty() {
            loader = loader.credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                config.access_key_id.expose(),
                config.secret_access_key.expose(),
                None,
                None,
                "chatbox-config",
            )));
        }
        let shared = loader.load().await;
        let client_for = |endpoint: &str| {
            let mut builder = aws_sdk_s3::config::Builder::from(&shared)
                .http_client(http.clone())
                .force_path_style(config.path_style)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
            if !endpoint.is_empty() {
                builder = builder.endpoint_url(endpoint.trim_end_matches('/'));
            }
            Client::from_conf(builder.build())
        };
        let client = client_for(&config.endpoint);
        let presigner = if config.public_endpoint.is_empty() {
            client.clone()
        } else {
            client_for(&config.public_endpoint)
        };
        Ok(S3BlobStore {
            client,
            presigner,
            bucket: config.bucket.clone(),
            location: format!("s3://{}", config.bucket),
            sse: match config.server_side_encryption {
                ServerSideEncryption::None => None,
                ServerSideEncryption::SseS3 => Some(Sse::Aes256),
                ServerSideEncryption::SseKms => Some(Sse::AwsKms),
            },
            kms_key_id: (!config.kms_key_id.trim().is_empty()).then(|| config.kms_key_id.trim().to_owned()),
        })
    }

    fn object(&self, key: &str) -> String {
        format!("{key:?} in bucket {:?}", self.bucket)
    }

    /// Maps an SDK error about `what` to the port's error.
    fn error<E>(&self, what: &str, err: SdkError<E>) -> BlobError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.as_service_error().and_then(|e| e.code()).unwrap_or_default();
        match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => BlobError::Unavailable(format!(
                "the S3 store did not answer about {what}: {}",
                DisplayErrorContext(&err)
            )),
            _ if code == "NoSuchBucket" => BlobError::Other(format!(
                "S3 bucket {:?} does not exist (chatbox.blob.s3.bucket)",
                self.bucket
            )),
            _ if code == "NoSuchKey" || code == "NotFound" || status == Some(404) => {
                BlobError::NotFound(format!("no file {what}"))
            }
            _ if matches!(status, Some(500..=599)) || code == "SlowDown" => BlobError::Unavailable(format!(
                "the S3 store failed on {what}: {}",
                DisplayErrorContext(&err)
            )),
            _ => BlobError::Other(format!(
                "the S3 store refused {what}: {}",
                DisplayErrorContext(&err)
            )),
        }
    }

    fn presigning(&self, ttl: Duration) -> Result<PresigningConfig, BlobError> {
        PresigningConfig::expires_in(ttl)
            .map_err(|e| BlobError::Other(format!("cannot sign an S3 URL valid for {ttl:?}: {e}")))
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn adapter(&self) -> &'static str {
        ADAPTER
    }

    async fn check(&self) -> Result<(), BlobError> {
        observed(ADAPTER, "check", &self.location, "", async {
            self.client
                .head_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| match self.error(&format!("bucket {:?}", self.bucket), e) {
                    // HEAD has no body to name the error: a 404 is the bucket.
                    BlobError::NotFound(_) => BlobError::Other(format!(
                        "S3 bucket {:?} does not exist (chatbox.blob.s3.bucket)",
                        self.bucket
                    )),
                    other => other,
                })
        })
        .await
    }

    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), BlobError> {
        observed(ADAPTER, "put", &self.location, key, async {
            check_key(key)?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(content_type)
                .set_server_side_encryption(self.sse.clone())
                .set_ssekms_key_id(self.kms_key_id.clone())
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| self.error(&self.object(key), e))?;
            Ok(())
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, BlobError> {
        observed(ADAPTER, "head", &self.location, key, async {
            check_key(key)?;
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(out) => Ok(Some(ObjectInfo {
                    size: out
                        .content_length()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                    content_type: out.content_type().map(str::to_owned),
                })),
                Err(e) => match self.error(&self.object(key), e) {
                    BlobError::NotFound(_) => Ok(None),
                    other => Err(other),
                },
            }
        })
        .await
    }

    async fn read_range(&self, key: &str, start: u64, end: u64) -> Result<Bytes, BlobError> {
        observed(ADAPTER, "read_range", &self.location, key, async {
            check_key(key)?;
            if end <= start {
                // Nothing to read, but a missing object is still an error.
                return match self.head(key).await? {
                    Some(_) => Ok(Bytes::new()),
                    None => Err(BlobError::NotFound(format!("no file {}", self.object(key)))),
                };
            }
            // Stores parse the range as a signed 64-bit number: "to the end"
            // beyond that.
            let range = match end - 1 {
                last if last > i64::MAX as u64 => format!("bytes={start}-"),
                last => format!("bytes={start}-{last}"),
            };
            let got = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .range(range)
                .send()
                .await;
            let out = match got {
                Ok(out) => out,
                // The range starts at or past the end: the object is there.
                Err(e) if e.as_service_error().and_then(|e| e.code()) == Some("InvalidRange") => {
                    return Ok(Bytes::new());
                }
                Err(e) => return Err(self.error(&self.object(key), e)),
            };
            let body = out.body.collect().await.map_err(|e| {
                BlobError::Unavailable(format!("reading {} broke off: {e}", self.object(key)))
            })?;
            let mut bytes = body.into_bytes();
            // A store that ignores Range sends the whole object.
            if bytes.len() as u64 > end - start {
                bytes.truncate(usize::try_from(end - start).unwrap_or(usize::MAX));
            }
            Ok(bytes)
        })
        .await
    }

    async fn copy(&self, from: &str, to: &str, content_type: &str) -> Result<(), BlobError> {
        observed(ADAPTER, "copy", &self.location, from, async {
            check_key(from)?;
            check_key(to)?;
            self.client
                .copy_object()
                .bucket(&self.bucket)
                // Keys are [A-Za-z0-9._/-]: nothing to percent-encode.
                .copy_source(format!("{}/{from}", self.bucket))
                .key(to)
                .content_type(content_type)
                .metadata_directive(MetadataDirective::Replace)
                .set_server_side_encryption(self.sse.clone())
                .set_ssekms_key_id(self.kms_key_id.clone())
                .send()
                .await
                .map_err(|e| self.error(&format!("{} (copying to {to:?})", self.object(from)), e))?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        observed(ADAPTER, "delete", &self.location, key, async {
            check_key(key)?;
            match self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => match self.error(&self.object(key), e) {
                    BlobError::NotFound(_) => Ok(()),
                    other => Err(other),
                },
            }
        })
        .await
    }

    async fn retire(&self, key: &str) -> Result<(), BlobError> {
        // An empty object in the way: the link's If-None-Match refuses.
        self.put(key, Bytes::new(), "application/octet-stream").await
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, BlobError> {
        observed(ADAPTER, "list", &self.location, prefix, async {
            check_prefix(prefix)?;
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            while keys.len() < limit {
                let page = (limit - keys.len()).min(PAGE);
                let out = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .max_keys(i32::try_from(page).unwrap_or(1000))
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| self.error(&format!("under {prefix:?} in bucket {:?}", self.bucket), e))?;
                keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
                match out.next_continuation_token() {
                    Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
                    _ => break,
                }
            }
            keys.sort();
            keys.truncate(limit);
            Ok(keys)
        })
        .await
    }

    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> Result<SignedRequest, BlobError> {
        observed(ADAPTER, "presign_put", &self.location, key, async {
            check_key(key)?;
            let expires_at = expiry(ttl);
            let length = i64::try_from(size)
                .map_err(|_| BlobError::Other(format!("cannot sign an upload of {size} bytes")))?;
            let signed = self
                .presigner
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(content_type)
                .content_length(length)
                .if_none_match("*")
                .set_server_side_encryption(self.sse.clone())
                .set_ssekms_key_id(self.kms_key_id.clone())
                .presigned(self.presigning(ttl)?)
                .await
                .map_err(|e| self.error(&self.object(key), e))?;
            Ok(SignedRequest {
                url: signed.uri().to_owned(),
                method: "PUT",
                // The body's length is sent by every client itself (browsers
                // refuse to set it); signed, it must be the declared size.
                headers: signed
                    .headers()
                    .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
                    .filter(|(name, _)| name != "content-length")
                    .collect(),
                expires_at,
            })
        })
        .await
    }

    async fn presign_get(
        &self,
        key: &str,
        download: &Download<'_>,
        ttl: Duration,
    ) -> Result<String, BlobError> {
        observed(ADAPTER, "presign_get", &self.location, key, async {
            check_key(key)?;
            let signed = self
                .presigner
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .response_content_type(download.content_type)
                .response_content_disposition(content_disposition(download))
                .presigned(self.presigning(ttl)?)
                .await
                .map_err(|e| self.error(&self.object(key), e))?;
            Ok(signed.uri().to_owned())
        })
        .await
    }
}
