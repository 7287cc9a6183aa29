//! S3-compatible test servers on loopback (moto, SeaweedFS), started and stopped by tests, plus
//! what the upload tests share: a TCP proxy that resets connections mid-request, an HTTP proxy
//! that answers one multipart upload's requests with `500 InternalError`, the uploader
//! as a child process, and readers of the bucket and the upload journals.
//!
//! Servers come from the Python venv that `scripts/install-s3-servers.sh` makes
//! (`$FLEETREC_S3_VENV`, default `target/s3-venv`); if it is missing the first server start runs
//! the script. Every server and process here is killed (SIGKILL) and reaped when its handle is
//! dropped, so a failing test leaves nothing running. Only 127.0.0.1 is ever used.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

static INSTALL: Mutex<()> = Mutex::new(());

/// The venv holding `moto_server` and `weed`, installed by `scripts/install-s3-servers.sh` if
/// missing.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("FLEETREC_S3_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/s3-venv"));
    let _guard = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !venv.join("bin/moto_server").exists() || !venv.join("bin/weed").exists() {
        let status = Command::new("bash")
            .arg(workspace_root().join("scripts/install-s3-servers.sh"))
            .env("FLEETREC_S3_VENV", &venv)
            .status()
            .expect("run scripts/install-s3-servers.sh");
        assert!(status.success(), "scripts/install-s3-servers.sh failed");
    }
    venv
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// A free port `p` whose `p + 10000` is free too (SeaweedFS puts gRPC there).
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        if p < 55000 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair found");
}

/// A syntactically valid but unsigned AWS authorization header. The test servers check no
/// signatures (moto by default, SeaweedFS without identities), but moto treats requests with
/// no `Authorization` at all as anonymous and refuses reading objects to them.
const TEST_AUTHORIZATION: &str =
    "AWS4-HMAC-SHA256 Credential=AKIAFLEETRECTEST0001/20260101/us-east-1/s3/aws4_request, \
                                  SignedHeaders=host, Signature=0000";

/// A minimal HTTP/1.0 client for the test servers. Returns status and body.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {TEST_AUTHORIZATION}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no HTTP header end"))?;
    let status_line = String::from_utf8_lossy(&resp[..split]).lines().next().unwrap_or_default().to_string();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, status_line.clone()))?;
    Ok((status, resp[split + 4..].to_vec()))
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// moto (in memory).
    Moto,
    /// SeaweedFS (on disk; survives restarts).
    SeaweedFs,
}

/// An S3 server child process on 127.0.0.1.
pub struct S3Server {
    kind: ServerKind,
    child: Option<Child>,
    /// The S3 port.
    pub port: u16,
    ports: [u16; 4],
    dir: PathBuf,
    /// The server's log.
    pub log: PathBuf,
}

impl S3Server {
    /// Starts moto on a free port; `dir` receives its log.
    pub fn moto(dir: &Path) -> S3Server {
        Self::moto_on(free_port(), dir)
    }

    /// Starts moto on `port`.
    pub fn moto_on(port: u16, dir: &Path) -> S3Server {
        let mut s = S3Server {
            kind: ServerKind::Moto,
            child: None,
            port,
            ports: [port; 4],
            dir: dir.to_path_buf(),
            log: dir.join(format!("moto-{port}.log")),
        };
        s.spawn();
        s
    }

    /// Starts SeaweedFS (master, volume, filer, S3) with its data in `dir/weed`.
    pub fn seaweedfs(dir: &Path) -> S3Server {
        let ports = [free_port_pair(), free_port_pair(), free_port_pair(), free_port_pair()];
        let mut s = S3Server {
            kind: ServerKind::SeaweedFs,
            child: None,
            port: ports[3],
            ports,
            dir: dir.to_path_buf(),
            log: dir.join(format!("weed-{}.log", ports[3])),
        };
        s.spawn();
        s
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let venv = venv();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("server log");
        let mut cmd = match self.kind {
            ServerKind::Moto => {
                let mut c = Command::new(venv.join("bin/moto_server"));
                c.args(["-H", "127.0.0.1", "-p", &self.port.to_string()]);
                c
            }
            ServerKind::SeaweedFs => {
                let data = self.dir.join("weed");
                std::fs::create_dir_all(&data).expect("weed dir");
                let [m, v, f, s3] = self.ports;
                let mut c = Command::new(venv.join("bin/weed"));
                c.arg("server")
                    .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
                    .arg(format!("-dir={}", data.display()))
                    .args(["-volume.max=100", "-master.volumeSizeLimitMB=256", "-filer", "-s3"])
                    .arg(format!("-master.port={m}"))
                    .arg(format!("-volume.port={v}"))
                    .arg(format!("-filer.port={f}"))
                    .arg(format!("-s3.port={s3}"))
                    .args(["-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0"])
                    .arg(format!("-filer.localSocket={}", data.join("filer.sock").display()))
                    .arg(format!("-s3.localSocket={}", data.join("s3.sock").display()))
                    .env("TMPDIR", &data);
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn S3 server");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{:?} server exited at start ({status}); log:\n{}", self.kind, self.log_text());
                }
            }
            // A listing of a bucket that does not exist answers 404 once the S3 API is up.
            if let Ok((code, _)) = http(self.port, "GET", "/fleetrec-readiness-check", b"") {
                if code < 500 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{:?} not ready; log:\n{}", self.kind, self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates a bucket (a PUT of the bucket root with an empty body), retrying while the
    /// server finishes starting.
    pub fn create_bucket(&self, bucket: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match http(self.port, "PUT", &format!("/{bucket}"), b"") {
                Ok((200, _)) => return,
                Ok((409, body)) if String::from_utf8_lossy(&body).contains("BucketAlready") => return,
                other => {
                    assert!(Instant::now() < deadline, "cannot create bucket {bucket}: {other:?}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// The object's bytes, or `None` if it does not exist.
    pub fn get_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let (code, body) = http(self.port, "GET", &format!("/{bucket}/{key}"), b"").expect("GET object");
        match code {
            200 => Some(body),
            404 => None,
            other => panic!("GET {bucket}/{key}: HTTP {other}: {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Keys under `prefix` (ListObjects, first 1000).
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (code, body) = http(self.port, "GET", &format!("/{bucket}?prefix={prefix}"), b"").expect("list");
        assert_eq!(code, 200, "list {bucket}: {}", String::from_utf8_lossy(&body));
        xml_values(&String::from_utf8_lossy(&body), "Key")
    }

    /// Upload ids of the multipart uploads in progress (ListMultipartUploads).
    pub fn uploads_in_progress(&self, bucket: &str) -> Vec<String> {
        let (code, body) = http(self.port, "GET", &format!("/{bucket}?uploads"), b"").expect("list uploads");
        assert_eq!(code, 200, "list uploads {bucket}: {}", String::from_utf8_lossy(&body));
        xml_values(&String::from_utf8_lossy(&body), "UploadId")
    }

    /// Aborts a multipart upload behind the uploader's back.
    pub fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) {
        let (code, body) =
            http(self.port, "DELETE", &format!("/{bucket}/{key}?uploadId={upload_id}"), b"").expect("abort");
        assert!(code == 204 || code == 200, "abort: HTTP {code}: {}", String::from_utf8_lossy(&body));
    }

    /// SIGKILLs the server and reaps it (the data directory stays).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if self.kind == ServerKind::SeaweedFs {
                // SeaweedFS makes unix sockets for its local gRPC in /tmp whatever TMPDIR says,
                // and a killed server leaves them behind.
                for service in ["master", "volume", "filer", "s3"] {
                    for p in self.ports {
                        let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{service}-grpc-{}.sock", p + 10000));
                    }
                }
            }
        }
    }

    /// Starts the server again on the same ports with the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of {}:", self.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Values of every `<tag>...</tag>` in an XML text (enough for S3 listings).
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_string());
        rest = &after[j + close.len()..];
    }
    out
}

/// A TCP proxy on 127.0.0.1 that forwards to `upstream` and resets connections: once a
/// connection has carried `after_bytes` from the client, and while fewer than `max_resets`
/// resets happened, it stops reading and closes the client socket while unread request bytes
/// are in its receive queue, which makes the kernel send a TCP RST (RFC 2525; the same effect
/// as SO_LINGER 0, without unsafe code). A reset is only counted when unread data was seen.
pub struct ResetProxy {
    /// The proxy's port.
    pub port: u16,
    resets: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl ResetProxy {
    /// Starts the proxy.
    pub fn start(upstream_port: u16, after_bytes: u64, max_resets: u32) -> ResetProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let resets = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let upstream: SocketAddr = ([127, 0, 0, 1], upstream_port).into();
        let (r, s, c) = (Arc::clone(&resets), Arc::clone(&stop), Arc::clone(&conns));
        let accept = std::thread::Builder::new()
            .name("reset-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(upstream) else { continue };
                    if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                        c.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend([a, b]);
                    }
                    let r = Arc::clone(&r);
                    let _ = std::thread::Builder::new()
                        .name("reset-proxy-conn".into())
                        .spawn(move || proxy_connection(client, server, after_bytes, max_resets, &r));
                }
            })
            .expect("proxy thread");
        ResetProxy { port, resets, stop, accept: Some(accept), conns }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections reset so far.
    pub fn resets(&self) -> u32 {
        self.resets.load(Ordering::SeqCst)
    }
}

impl Drop for ResetProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for s in self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn proxy_connection(client: TcpStream, server: TcpStream, after_bytes: u64, max_resets: u32, resets: &AtomicU32) {
    let (Ok(client_w), Ok(server_r)) = (client.try_clone(), server.try_clone()) else { return };
    // server -> client
    let back = std::thread::spawn(move || {
        let (mut from, mut to) = (server_r, client_w);
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
    // client -> server, counting
    let (mut from, mut to) = (client, server);
    let mut buf = vec![0u8; 64 * 1024];
    let mut carried = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        carried += n as u64;
        if carried >= after_bytes && resets.load(Ordering::SeqCst) < max_resets {
            // Stop the other direction so its copy of the client socket is closed, then close
            // ours while request bytes wait unread: the kernel answers with RST.
            let _ = to.shutdown(Shutdown::Both);
            let _ = back.join();
            let _ = from.set_nonblocking(true);
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut one = [0u8; 1];
            let unread = loop {
                match from.peek(&mut one) {
                    Ok(n) if n > 0 => break true,
                    Ok(_) => break false,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break false,
                }
            };
            if unread {
                resets.fetch_add(1, Ordering::SeqCst);
            }
            drop(from);
            return;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// An HTTP-aware proxy on 127.0.0.1 in front of an S3 server that makes one multipart upload
/// fail with server errors, the way SeaweedFS once did after a SIGKILL: every `PUT` (UploadPart)
/// and `POST` (CompleteMultipartUpload) whose query has `uploadId=<the first upload id the proxy
/// sees in a query>` is answered `500` with an S3 `InternalError` XML body. Everything else is
/// forwarded, including `GET` (ListParts) and `DELETE` (AbortMultipartUpload) of that upload,
/// so the uploader can abort it.
///
/// To see every request, each connection carries exactly one: the forwarded request and its
/// answer get `Connection: close` (the client opens a new connection for the next request). A
/// request's body is read in full (by `Content-Length`, or chunk by chunk for
/// `Transfer-Encoding: chunked`) before it is answered, so the client sees the 500 and not a
/// broken connection.
pub struct UploadErrorProxy {
    /// The proxy's port.
    pub port: u16,
    state: Arc<UploadErrorState>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct UploadErrorState {
    /// The upload id answered with errors (percent-decoded), once seen.
    poisoned: Mutex<Option<String>>,
    /// 500 answers sent.
    errors: AtomicU32,
    /// Aborts of the poisoned upload forwarded to the server.
    aborts: AtomicU32,
    /// Requests that used `Transfer-Encoding: chunked`.
    chunked: AtomicU32,
}

impl UploadErrorProxy {
    /// Starts the proxy in front of the S3 server on `upstream_port`.
    pub fn start(upstream_port: u16) -> UploadErrorProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(UploadErrorState::default());
        let stop = Arc::new(AtomicBool::new(false));
        let upstream: SocketAddr = ([127, 0, 0, 1], upstream_port).into();
        let (st, s) = (Arc::clone(&state), Arc::clone(&stop));
        let accept = std::thread::Builder::new()
            .name("error-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let st = Arc::clone(&st);
                    let _ = std::thread::Builder::new().name("error-proxy-conn".into()).spawn(move || {
                        if let Err(e) = serve_one_request(client, upstream, &st) {
                            eprintln!("error proxy: {e}");
                        }
                    });
                }
            })
            .expect("proxy thread");
        UploadErrorProxy { port, state, stop, accept: Some(accept) }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The upload id answered with errors, once a request named one.
    pub fn poisoned_upload(&self) -> Option<String> {
        self.state.poisoned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// `500 InternalError` answers sent so far.
    pub fn errors_sent(&self) -> u32 {
        self.state.errors.load(Ordering::SeqCst)
    }

    /// AbortMultipartUpload requests of the poisoned upload forwarded to the server.
    pub fn aborts_forwarded(&self) -> u32 {
        self.state.aborts.load(Ordering::SeqCst)
    }

    /// Requests seen with `Transfer-Encoding: chunked`.
    pub fn chunked_requests(&self) -> u32 {
        self.state.chunked.load(Ordering::SeqCst)
    }
}

impl Drop for UploadErrorProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Reads an HTTP head (request or status line, then headers) up to the empty line. Returns the
/// lines without their CRLF, or `None` at EOF before any byte.
fn read_http_head(r: &mut impl std::io::BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "EOF inside an HTTP head"))
            };
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(line);
    }
}

/// The value of header `name` (case-insensitive) among head lines.
fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads a request body as it came on the wire (a chunked body keeps its chunk framing).
fn read_http_body(r: &mut impl std::io::BufRead, head: &[String]) -> std::io::Result<Vec<u8>> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    if header(head, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        let mut raw = Vec::new();
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            raw.extend_from_slice(size_line.as_bytes());
            let hex = size_line.trim_end().split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(hex, 16).map_err(|e| bad(format!("chunk size `{hex}`: {e}")))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line)? == 0 {
                        return Err(bad("EOF in chunked trailers".into()));
                    }
                    raw.extend_from_slice(line.as_bytes());
                    if line == "\r\n" {
                        return Ok(raw);
                    }
                }
            }
            let start = raw.len();
            raw.resize(start + size + 2, 0);
            r.read_exact(&mut raw[start..])?;
        }
    }
    let length = match header(head, "content-length") {
        Some(v) => v.parse::<usize>().map_err(|e| bad(format!("Content-Length `{v}`: {e}")))?,
        None => 0,
    };
    let mut body = vec![0u8; length];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// The percent-decoded value of query parameter `name` in a request target.
fn query_param(target: &str, name: &str) -> Option<String> {
    let (_, query) = target.split_once('?')?;
    let raw = query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The head lines with every `Connection`/`Keep-Alive` header replaced by `Connection: close`,
/// as bytes ending with the empty line.
fn head_with_close(head: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for (i, l) in head.iter().enumerate() {
        let name = l.split_once(':').map(|(k, _)| k.trim().to_ascii_lowercase());
        if i > 0 && matches!(name.as_deref(), Some("connection" | "keep-alive" | "proxy-connection")) {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Handles the one request of a client connection (see [`UploadErrorProxy`]).
fn serve_one_request(client: TcpStream, upstream: SocketAddr, st: &UploadErrorState) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = std::io::BufReader::new(client.try_clone()?);
    let Some(head) = read_http_head(&mut reader)? else { return Ok(()) };
    let body = read_http_body(&mut reader, &head)?;
    if header(&head, "transfer-encoding").is_some() {
        st.chunked.fetch_add(1, Ordering::SeqCst);
    }
    let mut request_line = head.first().map(String::as_str).unwrap_or_default().split(' ');
    let (method, target) = (request_line.next().unwrap_or_default(), request_line.next().unwrap_or_default());
    let poisoned = match query_param(target, "uploadId") {
        Some(id) => {
            let mut p = st.poisoned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *p.get_or_insert_with(|| id.clone()) == id
        }
        None => false,
    };
    let mut client_w = client;
    if poisoned && matches!(method, "PUT" | "POST") {
        let n = st.errors.fetch_add(1, Ordering::SeqCst) + 1;
        let path = target.split('?').next().unwrap_or_default();
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>\
             <Message>We encountered an internal error. Please try again.</Message>\
             <Resource>{path}</Resource><RequestId>fleetrec-fault-{n}</RequestId></Error>"
        );
        let answer = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
             x-amz-request-id: fleetrec-fault-{n}\r\nConnection: close\r\n\r\n{xml}",
            xml.len()
        );
        client_w.write_all(answer.as_bytes())?;
        client_w.flush()?;
        return client_w.shutdown(Shutdown::Write);
    }
    if poisoned && method == "DELETE" {
        st.aborts.fetch_add(1, Ordering::SeqCst);
    }
    let mut server = TcpStream::connect(upstream)?;
    server.set_read_timeout(Some(Duration::from_secs(120)))?;
    server.write_all(&head_with_close(&head))?;
    server.write_all(&body)?;
    let mut server_r = std::io::BufReader::new(server.try_clone()?);
    let answer_head = read_http_head(&mut server_r)?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "server closed without an answer"))?;
    client_w.write_all(&head_with_close(&answer_head))?;
    // The server was asked to close after its answer: the rest of the stream is the body.
    std::io::copy(&mut server_r, &mut client_w)?;
    client_w.flush()?;
    client_w.shutdown(Shutdown::Write)
}

/// `fleetrec-uploader --config <config> [args]` as a child process with a controlled
/// environment; SIGKILLed and reaped on drop, after which dead iceoryx2 nodes are cleaned.
pub struct UploaderProcess {
    child: Option<Child>,
    /// Where stderr goes.
    pub log: PathBuf,
}

/// Credentials the tests give the uploader by default (moto accepts any).
pub const TEST_ACCESS_KEY: &str = "AKIAFLEETRECTEST0001";
/// The matching secret.
pub const TEST_SECRET_KEY: &str = "fleetrec-test-secret-do-not-log";

static LOGS: AtomicU64 = AtomicU64::new(0);

impl UploaderProcess {
    /// Starts the uploader with the default test credentials in the environment.
    pub fn start(config: &Path, dir: &Path) -> UploaderProcess {
        Self::start_with(
            config,
            dir,
            &[],
            &[("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)],
            "info",
        )
    }

    /// Starts the uploader with exactly `env` as its AWS environment (every other `AWS_*`
    /// variable removed) and `RUST_LOG=rust_log`.
    pub fn start_with(
        config: &Path,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        rust_log: &str,
    ) -> UploaderProcess {
        let log = dir.join(format!("uploader-{}.log", LOGS.fetch_add(1, Ordering::SeqCst)));
        let mut cmd = Command::new(crate::bin("uploader"));
        cmd.arg("--config").arg(config).args(args);
        for (k, _) in std::env::vars_os().filter_map(|(k, v)| k.into_string().ok().map(|k| (k, v))) {
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied()).env("RUST_LOG", rust_log);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("uploader log"))
            .spawn()
            .expect("spawn fleetrec-uploader");
        UploaderProcess { child: Some(child), log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, reap, clean its shared memory.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            shared::plane::clean_dead_nodes();
        }
    }

    /// SIGTERM and wait (SIGKILL after `timeout`). Returns the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        self.wait_child(child_wait(&mut child, timeout), &mut child)
    }

    /// Waits for exit at most `timeout` (then SIGKILL). Returns the exit status.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        self.wait_child(child_wait(&mut child, timeout), &mut child)
    }

    fn wait_child(&self, status: Option<ExitStatus>, child: &mut Child) -> Option<ExitStatus> {
        match status {
            Some(s) => Some(s),
            None => {
                let _ = child.kill();
                let s = child.wait().ok();
                shared::plane::clean_dead_nodes();
                s
            }
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn child_wait(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for UploaderProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `[sync]` section of an upload test: 5 MiB parts, fast probes and rescans, short backoff.
/// `extra` adds or overrides keys (later keys win is not TOML: pass only keys not set here).
pub fn sync_section(endpoint: &str, bucket: &str, extra: &str) -> String {
    format!(
        "\n[sync]\nendpoint = \"{endpoint}\"\nbucket = \"{bucket}\"\nprefix = \"fleet\"\nchunk_size = 5242880\n\
         probe_interval_s = 1\nrescan_interval_s = 1\nretry_base_ms = 100\nretry_cap_ms = 1000\n{extra}\n"
    )
}

/// Journals of a state directory, by segment name.
pub fn journals(state_dir: &Path) -> std::collections::BTreeMap<String, uploader::journal::UploadJournal> {
    let (all, errors) = uploader::journal::load_all(state_dir);
    assert!(errors.is_empty(), "unreadable journals: {errors:?}");
    all.into_iter().map(|j| (j.segment.clone(), j)).collect()
}

/// Polls the journals until `names` are all uploaded and verified (panics after `timeout`,
/// printing `log`).
pub fn wait_uploaded(state_dir: &Path, names: &[String], timeout: Duration, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + timeout;
    loop {
        let j = journals(state_dir);
        if names.iter().all(|n| j.get(n).is_some_and(|j| j.is_done())) {
            return;
        }
        assert!(Instant::now() < deadline, "segments not uploaded in time; journals: {j:#?}\nlog:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SHA-256 hex of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    uploader::digest::sha256_hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_proxy_reads_whole_requests() {
        let wire = b"PUT /b/k?partNumber=2&uploadId=a%2Bb%3D HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
                     Connection: keep-alive\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let mut r = std::io::BufReader::new(&wire[..]);
        let head = read_http_head(&mut r).unwrap().unwrap();
        assert_eq!(head[0], "PUT /b/k?partNumber=2&uploadId=a%2Bb%3D HTTP/1.1");
        let body = read_http_body(&mut r, &head).unwrap();
        assert!(body.starts_with(b"5\r\nhello\r\n") && body.ends_with(b"0\r\nX-Trailer: 1\r\n\r\n"));
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT", "the body must be consumed exactly");
        assert_eq!(query_param("/b/k?partNumber=2&uploadId=a%2Bb%3D", "uploadId").as_deref(), Some("a+b="));
        assert_eq!(query_param("/b/k?uploads=", "uploadId"), None);
        let rewritten = String::from_utf8(head_with_close(&head)).unwrap();
        assert!(rewritten.ends_with("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"), "{rewritten}");
        assert!(!rewritten.contains("keep-alive"), "{rewritten}");

        let wire = b"POST /b/k?uploadId=u HTTP/1.1\r\ncontent-length: 3\r\n\r\nabcdef";
        let mut r = std::io::BufReader::new(&wire[..]);
        let head = read_http_head(&mut r).unwrap().unwrap();
        assert_eq!(read_http_body(&mut r, &head).unwrap(), b"abc");
    }
}
