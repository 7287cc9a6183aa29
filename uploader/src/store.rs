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
    /// No answer from the server (connection refused or reset, timeout, DNS): retry with
    /// backoff, then wait for connectivity. Never a reason to restart an upload.
    Transient(String),
    /// The server answered with an error of its own (HTTP 5xx, or S3's `InternalError` /
    /// `SlowDown` in a 200 answer): retried like [`Failure::Transient`]; a multipart upload that
    /// keeps getting it round after round is restarted (see [`crate::segment_upload`]).
    ServerError(String),
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
            Failure::Transient(m) | Failure::ServerError(m) | Failure::UploadGone(m) | Failure::Permanent(m) => m,
        }
    }

    /// Whether the request is worth retrying with backoff (the endpoint may recover).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Failure::Transient(_) | Failure::ServerError(_))
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
        object_store::Error::Generic { .. } if server_answered_error(e) => Failure::ServerError(text),
        // Any other 4xx but 408 (timeout) and 429 (throttled): the request itself is refused
        // (a bad request, a policy); retrying it with backoff would only repeat the answer, and
        // calling it "unreachable" would mislead whoever reads the status.
        object_store::Error::Generic { .. }
            if answered_status(e).is_some_and(|c| (400..500).contains(&c) && c != 408 && c != 429) =>
        {
            Failure::Permanent(text)
        }
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. } => Failure::Transient(text),
        _ => Failure::Permanent(text),
    }
}

/// Whether `e` is an error answer of the server (HTTP 5xx, or `InternalError`/`SlowDown` in a
/// 200 answer to CompleteMultipartUpload) rather than a request that got no answer.
///
/// object_store 0.14 keeps the status in a private type (`client::retry::RetryError`), so this
/// reads the error: a transport failure (refused, reset, timeout) carries an
/// [`object_store::client::HttpError`] in its source chain; an answer has none and its text says
/// `Server returned non-2xx status code: <status>` (or `Server returned error response:` for an
/// error in a 200). The unit tests below pin both forms against real sockets.
pub fn server_answered_error(e: &object_store::Error) -> bool {
    if transport_failed(e) {
        return false;
    }
    e.to_string().contains("Server returned error response:")
        || answered_status(e).is_some_and(|code| (500..600).contains(&code))
}

/// The HTTP status of a non-2xx answer `e` reports (`None`: no answer, or no status in it).
fn answered_status(e: &object_store::Error) -> Option<u16> {
    if transport_failed(e) {
        return None;
    }
    const STATUS: &str = "Server returned non-2xx status code: ";
    let text = e.to_string();
    text.find(STATUS).and_then(|i| text[i + STATUS.len()..].get(..3)).and_then(|code| code.parse::<u16>().ok())
}

/// Whether the request got no answer: an [`object_store::client::HttpError`] in the chain.
fn transport_failed(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<object_store::client::HttpError>() {
            return true;
        }
        source = s.source();
    }
    false
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
            s if s >= 500 => Err(Failure::ServerError(format!(
                "ListParts: HTTP {s}: {}",
                body.chars().take(200).collect::<String>()
            ))),
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

    /// A server on 127.0.0.1 that answers each of the next `answers.len()` connections with the
    /// given raw HTTP response after reading the whole request (head and Content-Length body).
    fn canned_server(answers: Vec<String>) -> (u16, std::thread::JoinHandle<()>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            for answer in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                let mut stream = stream;
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        (port, h)
    }

    fn response(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn store_at(port: u16) -> S3Store {
        let sync =
            SyncConfig { endpoint: format!("http://127.0.0.1:{port}"), bucket: "b".into(), ..SyncConfig::default() };
        S3Store::new(&sync, None).unwrap()
    }

    const INTERNAL: &str =
        "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>";

    /// The server's own errors (5xx, InternalError in a 200) are told apart from requests that
    /// got no answer, with object_store's real error values.
    #[tokio::test]
    async fn server_errors_are_not_connection_failures() {
        let path = ObjectPath::from("k/seg.wal");
        let (port, h) = canned_server(vec![
            response("500 Internal Server Error", INTERNAL),
            response("503 Service Unavailable", "<Error><Code>SlowDown</Code></Error>"),
            response("200 OK", INTERNAL),
            response("404 Not Found", "<Error><Code>NoSuchUpload</Code></Error>"),
            response("400 Bad Request", "<Error><Code>InvalidPart</Code></Error>"),
            response("429 Too Many Requests", "<Error><Code>SlowDown</Code></Error>"),
        ]);
        let store = store_at(port);
        let part = |n| store.put_part(&path, "up1", n, PutPayload::from(vec![7u8; 1000]));
        let e = part(1).await.unwrap_err();
        assert!(matches!(classify(&e, Request::Part), Failure::ServerError(_)), "{e}");
        let e = part(2).await.unwrap_err();
        assert!(matches!(classify(&e, Request::Part), Failure::ServerError(_)), "{e}");
        let e = store.complete(&path, "up1", vec!["\"e1\"".into()]).await.unwrap_err();
        assert!(matches!(classify(&e, Request::Complete), Failure::ServerError(_)), "{e}");
        let e = part(3).await.unwrap_err();
        assert!(matches!(classify(&e, Request::Part), Failure::UploadGone(_)), "{e}");
        // A 4xx object_store reports as `Generic` (not 401/403/404/409/412) is a refusal of
        // the request: not retried with backoff, not "unreachable".
        let e = part(4).await.unwrap_err();
        assert!(matches!(classify(&e, Request::Part), Failure::Permanent(_)), "{e}");
        assert!(!server_answered_error(&e), "{e}");
        // Throttling (429) is worth waiting for: retried with backoff.
        let e = part(5).await.unwrap_err();
        assert!(matches!(classify(&e, Request::Part), Failure::Transient(_)), "{e}");
        h.join().unwrap();

        // Connection refused: nothing listens on the port any more.
        let e = store_at(port).put_part(&path, "up1", 1, PutPayload::from(vec![7u8; 10])).await.unwrap_err();
        assert!(matches!(classify(&e, Request::Part), Failure::Transient(_)), "{e}");
        assert!(!server_answered_error(&e), "{e}");

        // Connection closed without an answer after the request was read.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            use std::io::Read;
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
        });
        let e = store_at(port).put_part(&path, "up1", 1, PutPayload::from(vec![7u8; 10])).await.unwrap_err();
        h.join().unwrap();
        assert!(matches!(classify(&e, Request::Part), Failure::Transient(_)), "{e}");
    }
}
