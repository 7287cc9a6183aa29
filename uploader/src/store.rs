//! The S3 client: object_store's `AmazonS3` driven through its `MultipartStore` API (so the
//! upload id is ours to persist), with object_store's own retries turned off: every failed
//! request comes back to [`crate::segment_upload`], which retries with our backoff, counts it,
//! and classifies it with [`classify`].

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutPayload, RetryConfig,
};
use shared::config::SyncConfig;

use crate::credentials::Credentials;
use crate::error::{Result, UploadError};

/// User metadata key holding the segment's SHA-256 (`x-amz-meta-fleetrec-sha256`).
pub const META_SHA256: &str = "fleetrec-sha256";
/// Connect timeout of every request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of a probe request.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Slowest uplink a part request is given time for: the request timeout is
/// `max(120 s, chunk_size / 64 KiB/s)` (256 s for 16 MiB parts).
pub const SLOWEST_UPLINK_BYTES_PER_S: u64 = 64 * 1024;

/// What to do about a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Network or server trouble (connection refused or reset, timeout, 5xx): retry with backoff,
    /// then wait for connectivity.
    Transient(String),
    /// The server does not know the multipart upload (`NoSuchUpload`): abort and start over.
    UploadGone(String),
    /// Retrying will not help until someone acts (credentials, permissions, missing bucket, a
    /// request the server rejects): wait for the next probe, counted as an error.
    Permanent(String),
}

impl Failure {
    /// The description.
    pub fn message(&self) -> &str {
        match self {
            Failure::Transient(m) | Failure::UploadGone(m) | Failure::Permanent(m) => m,
        }
    }
}

/// Which request failed, for [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// CreateMultipartUpload.
    Create,
    /// UploadPart.
    Part,
    /// CompleteMultipartUpload.
    Complete,
    /// PutObject, HeadObject.
    Other,
}

/// Sorts an object_store error into a [`Failure`].
pub fn classify(e: &object_store::Error, request: Request) -> Failure {
    let text = e.to_string();
    match e {
        object_store::Error::NotFound { .. } if text.contains("NoSuchBucket") => Failure::Permanent(text),
        object_store::Error::NotFound { .. } if matches!(request, Request::Part | Request::Complete) => {
            Failure::UploadGone(text)
        }
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. } => Failure::Transient(text),
        _ => Failure::Permanent(text),
    }
}

/// Result of looking up an object with [`S3Store::head`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Size in bytes.
    pub size: u64,
    /// ETag.
    pub etag: Option<String>,
    /// Our SHA-256 metadata, when the server keeps user metadata.
    pub sha256: Option<String>,
}

/// The configured bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    store: Arc<AmazonS3>,
    probe: Arc<AmazonS3>,
    http: reqwest::Client,
}

/// The parts the server holds for an upload (ListParts): part number and ETag (quotes removed).
pub type ServerParts = Vec<(u32, String)>;

/// An ETag without quotes (and XML entities decoded), for comparisons.
pub fn normalize_etag(etag: &str) -> String {
    xml_unescape(etag).replace('"', "").trim().to_string()
}

/// Decodes the XML entities of a text value: the five named ones and numeric `&#NN;` /
/// `&#xHH;` (servers differ: S3 writes `&quot;`, SeaweedFS `&#34;`).
pub fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let decoded = after.find(';').filter(|&j| j <= 10).and_then(|j| {
            let name = &after[1..j];
            let c = match name {
                "quot" => Some('"'),
                "apos" => Some('\''),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .map(|h| u32::from_str_radix(h, 16))
                    .or_else(|| name.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, j + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Values of every `<tag>...</tag>` in an XML text (S3 listings are flat enough for this).
fn xml_values<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// Parses a ListParts response body.
pub fn parse_list_parts(xml: &str) -> ServerParts {
    xml_values(xml, "Part")
        .into_iter()
        .filter_map(|part| {
            let number = xml_values(part, "PartNumber").first()?.trim().parse().ok()?;
            let etag = normalize_etag(xml_values(part, "ETag").first()?);
            Some((number, etag))
        })
        .collect()
}

fn build(
    sync: &SyncConfig,
    credentials: Option<&Credentials>,
    timeout: Duration,
) -> Result<AmazonS3, object_store::Error> {
    // `with_client_options` replaces every client option, so it comes before `with_allow_http`.
    let options = ClientOptions::new().with_connect_timeout(CONNECT_TIMEOUT).with_timeout(timeout);
    let retry = RetryConfig { max_retries: 0, retry_timeout: timeout, ..RetryConfig::default() };
    let mut b = AmazonS3Builder::new()
        .with_endpoint(&sync.endpoint)
        .with_bucket_name(&sync.bucket)
        .with_region(&sync.region)
        .with_virtual_hosted_style_request(false)
        .with_client_options(options)
        .with_allow_http(sync.endpoint.starts_with("http://"))
        .with_retry(retry);
    match credentials {
        Some(c) => {
            b = b.with_access_key_id(c.access_key_id.expose()).with_secret_access_key(c.secret_access_key.expose());
            if let Some(t) = &c.session_token {
                b = b.with_token(t.expose());
            }
        }
        None => b = b.with_skip_signature(true),
    }
    b.build()
}

impl S3Store {
    /// A client for `[sync]` with `credentials` (`None`: unsigned requests).
    pub fn new(sync: &SyncConfig, credentials: Option<&Credentials>) -> Result<Self> {
        let err =
            |e: object_store::Error| UploadError::Store { endpoint: sync.endpoint.clone(), reason: e.to_string() };
        let part_timeout = Duration::from_secs((sync.chunk_size / SLOWEST_UPLINK_BYTES_PER_S).max(120));
        let store = build(sync, credentials, part_timeout).map_err(err)?;
        let probe = build(sync, credentials, PROBE_TIMEOUT).map_err(err)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(PROBE_TIMEOUT)
            .build()
            .map_err(|e| UploadError::Store { endpoint: sync.endpoint.clone(), reason: e.to_string() })?;
        Ok(S3Store { store: Arc::new(store), probe: Arc::new(probe), http })
    }

    /// An object path from a key we formed.
    pub fn path(key: &str) -> Result<ObjectPath> {
        ObjectPath::parse(key).map_err(|e| UploadError::BadKey { key: key.to_string(), reason: e.to_string() })
    }

    /// CreateMultipartUpload with the segment's SHA-256 as user metadata.
    pub async fn create_multipart(&self, path: &ObjectPath, sha256: &str) -> Result<String, object_store::Error> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::Metadata(META_SHA256.into()), sha256.to_string().into());
        let opts = PutMultipartOptions { attributes, ..PutMultipartOptions::default() };
        self.store.create_multipart_opts(path, opts).await
    }

    /// UploadPart; `number` is 1-based. Returns the ETag.
    pub async fn put_part(
        &self,
        path: &ObjectPath,
        upload_id: &str,
        number: u32,
        data: PutPayload,
    ) -> Result<String, object_store::Error> {
        let idx = number.saturating_sub(1) as usize;
        let part = self.store.put_part(path, &upload_id.to_string(), idx, data).await?;
        Ok(part.content_id)
    }

    /// CompleteMultipartUpload with the ETags of parts 1..=N in order. Returns the object ETag.
    pub async fn complete(
        &self,
        path: &ObjectPath,
        upload_id: &str,
        etags: Vec<String>,
    ) -> Result<Option<String>, object_store::Error> {
        let parts = etags.into_iter().map(|content_id| PartId { content_id }).collect();
        let r = self.store.complete_multipart(path, &upload_id.to_string(), parts).await?;
        Ok(r.e_tag)
    }

    /// AbortMultipartUpload.
    pub async fn abort(&self, path: &ObjectPath, upload_id: &str) -> Result<(), object_store::Error> {
        self.store.abort_multipart(path, &upload_id.to_string()).await
    }

    /// PutObject of a whole segment (one that fits in one part) with the SHA-256 metadata.
    /// Returns the ETag.
    pub async fn put_segment(
        &self,
        path: &ObjectPath,
        data: PutPayload,
        sha256: &str,
    ) -> Result<Option<String>, object_store::Error> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::Metadata(META_SHA256.into()), sha256.to_string().into());
        let opts = PutOptions { attributes, ..PutOptions::default() };
        Ok(self.store.put_opts(path, data, opts).await?.e_tag)
    }

    /// PutObject (manifests: small, idempotent).
    pub async fn put(&self, path: &ObjectPath, bytes: Vec<u8>) -> Result<(), object_store::Error> {
        self.store.put(path, PutPayload::from(bytes)).await.map(|_| ())
    }

    /// HeadObject with user metadata; `Ok(None)` when there is no such object.
    pub async fn head(&self, path: &ObjectPath) -> Result<Option<Head>, object_store::Error> {
        let opts = GetOptions { head: true, ..GetOptions::default() };
        match self.store.get_opts(path, opts).await {
            Ok(r) => Ok(Some(Head {
                size: r.meta.size,
                etag: r.meta.e_tag.clone(),
                sha256: r.attributes.get(&Attribute::Metadata(META_SHA256.into())).map(|v| v.to_string()),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// ListParts through a presigned URL (object_store has no ListParts): `Ok(Some(parts))` when
    /// the server knows the upload, `Ok(None)` when it answers `NoSuchUpload`. Used before
    /// resuming an upload, so a forgotten upload id is detected whatever status the server
    /// uses for parts of unknown uploads, and parts the server lost are sent again.
    pub async fn list_parts(&self, path: &ObjectPath, upload_id: &str) -> Result<Option<ServerParts>, Failure> {
        let options = SignedUrlOptions::new()
            .with_query([("uploadId", upload_id.to_string()), ("max-parts", "10000".to_string())]);
        let url = self
            .store
            .signed_url_opts(Method::GET, path, Duration::from_secs(300), &options)
            .await
            .map_err(|e| Failure::Permanent(format!("cannot sign ListParts: {e}")))?;
        let resp = self
            .http
            .get(url.as_str())
            .send()
            .await
            .map_err(|e| Failure::Transient(format!("ListParts: {}", e.without_url())))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| Failure::Transient(format!("ListParts body: {}", e.without_url())))?;
        match status.as_u16() {
            200 if body.contains("<IsTruncated>true</IsTruncated>") => {
                Err(Failure::Permanent("ListParts answer is truncated".into()))
            }
            200 => Ok(Some(parse_list_parts(&body))),
            404 if body.contains("NoSuchUpload") => Ok(None),
            s if s >= 500 => Err(Failure::Transient(format!("ListParts: HTTP {s}"))),
            s => {
                Err(Failure::Permanent(format!("ListParts: HTTP {s}: {}", body.chars().take(200).collect::<String>())))
            }
        }
    }

    /// The connectivity probe: one HEAD of a key that does not exist, with a short timeout. Any
    /// answer from the server (404, 403, ...) means the endpoint is reachable; a transport
    /// error or a 5xx means offline.
    pub async fn probe(&self, key: &str) -> Result<(), String> {
        let path = Self::path(key).map_err(|e| e.to_string())?;
        match self.probe.head(&path).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e @ object_store::Error::Generic { .. }) => Err(e.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "the endpoint answers the probe with an error: check credentials and bucket");
                Ok(())
            }
        }
    }

    /// The underlying object_store (tests, tools).
    pub fn object_store(&self) -> Arc<AmazonS3> {
        Arc::clone(&self.store)
    }

    /// GETs a whole object (verification tools and tests).
    pub async fn get_bytes(&self, path: &ObjectPath) -> Result<Vec<u8>, object_store::Error> {
        Ok(self.store.get(path).await?.bytes().await?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parts_xml() {
        let xml = "<ListPartsResult><Bucket>b</Bucket><Part><PartNumber>1</PartNumber><ETag>&quot;abc&quot;</ETag>\
                   <Size>5</Size></Part><Part><PartNumber>3</PartNumber><ETag>\"def\"</ETag></Part>\
                   <IsTruncated>false</IsTruncated></ListPartsResult>";
        assert_eq!(parse_list_parts(xml), vec![(1, "abc".to_string()), (3, "def".to_string())]);
        assert_eq!(normalize_etag("\"x\""), "x");
        assert_eq!(normalize_etag("&#34;abc&#34;"), "abc");
        assert_eq!(normalize_etag("&#x22;abc&quot;"), "abc");
        assert_eq!(xml_unescape("a &amp; b &lt;c&gt; &unknown; &"), "a & b <c> &unknown; &");
    }
}
