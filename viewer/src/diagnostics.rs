//! System diagnostics of the machine the viewer runs on, through `sysinfo`: CPU and memory use,
//! the filesystem of the recording directory (used and free) and the size of the recording
//! directory itself, and the network latency to the upload endpoint (time to open a TCP
//! connection to `[sync] endpoint`). [`SystemMonitor`] samples on two background threads
//! (`viewer-diagnostics` every [`SAMPLE_EVERY`], `viewer-latency` every [`PROBE_EVERY`]) so
//! neither a slow disk scan nor an unreachable endpoint ever holds up a redraw; the dashboard
//! reads the newest [`SystemSnapshot`] on each tick.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, RefreshKind,
    System,
};

use crate::error::{Result, ViewerError};

/// How often CPU, memory and disk are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// How often the recording directory is measured (it walks the directory).
pub const SCAN_EVERY: Duration = Duration::from_secs(5);
/// How often the upload endpoint is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long one probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The filesystem that holds the recording directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskSnapshot {
    /// Mount point.
    pub mount: String,
    /// Size of the filesystem, bytes.
    pub total_bytes: u64,
    /// Bytes available to the recorder.
    pub available_bytes: u64,
}

impl DiskSnapshot {
    /// Bytes in use.
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }
}

/// Latency to the upload endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySnapshot {
    /// `host:port` probed.
    pub target: String,
    /// Time to open a TCP connection, ms (0.1 ms resolution); `None` when the probe failed.
    pub connect_ms: Option<f64>,
    /// Why the probe failed.
    pub error: Option<String>,
}

/// CPU and memory of one stage process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProcessSnapshot {
    /// Process id.
    pub pid: u32,
    /// CPU use, integer percent of one core (can exceed 100 with several threads).
    pub cpu_percent: u32,
    /// Resident memory, bytes (rounded to MB).
    pub memory_bytes: u64,
}

/// What the diagnostics panel shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SystemSnapshot {
    /// CPU use of the whole machine, percent of all cores (integer percent).
    pub cpu_percent: Option<u32>,
    /// Logical cores.
    pub cpu_cores: usize,
    /// Memory in use, bytes (rounded to MB so small changes cause no redraw).
    pub memory_used_bytes: u64,
    /// Memory in total, bytes.
    pub memory_total_bytes: u64,
    /// Filesystem of the recording directory; `None` if no mounted disk holds it.
    pub disk: Option<DiskSnapshot>,
    /// The recording directory.
    pub recording_dir: String,
    /// Bytes of files in the recording directory (segments, manifests, journals); `None` until
    /// measured or when it cannot be read.
    pub recording_bytes: Option<u64>,
    /// Latency to the upload endpoint; `None` until the first probe, or when the endpoint is not
    /// a `http(s)://host[:port]` URL.
    pub endpoint_latency: Option<LatencySnapshot>,
    /// The stage processes the dashboard asked about ([`SystemMonitor::watch_pids`]) that run
    /// on this machine, with CPU figures once two samples exist.
    pub processes: Vec<ProcessSnapshot>,
}

impl SystemSnapshot {
    /// The sample of process `pid`, if it runs here.
    pub fn process(&self, pid: u32) -> Option<&ProcessSnapshot> {
        self.processes.iter().find(|p| p.pid == pid)
    }
}

/// `host:port` of an `http://` or `https://` endpoint URL (default ports 80 and 443).
pub fn endpoint_target(endpoint: &str) -> Option<String> {
    let (rest, default_port) = if let Some(r) = endpoint.strip_prefix("http://") {
        (r, 80)
    } else if let Some(r) = endpoint.strip_prefix("https://") {
        (r, 443)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if authority.is_empty() {
        return None;
    }
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse::<u16>().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some(format!("[{host}]:{port}"));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => {
            let port = port.parse::<u16>().ok()?;
            (!host.is_empty()).then(|| format!("{host}:{port}"))
        }
        None => Some(format!("{authority}:{default_port}")),
    }
}

/// Opens (and closes) one TCP connection to `target` and returns how long it took.
pub fn probe(target: &str, timeout: Duration) -> LatencySnapshot {
    let failed = |error: String| LatencySnapshot { target: target.to_string(), connect_ms: None, error: Some(error) };
    let addrs: Vec<SocketAddr> = match target.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return failed(format!("resolving: {e}")),
    };
    let Some(addr) = addrs.first() else { return failed("resolves to no address".into()) };
    let start = Instant::now();
    match TcpStream::connect_timeout(addr, timeout) {
        Ok(stream) => {
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            drop(stream);
            LatencySnapshot { target: target.to_string(), connect_ms: Some((ms * 10.0).round() / 10.0), error: None }
        }
        Err(e) => failed(e.to_string()),
    }
}

/// Bytes of the regular files under `dir` (recursively, symlinks not followed).
pub fn directory_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            // A subdirectory removed while we walk is not an error; the top one missing is.
            Err(e) if d != dir && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// The disk (longest mount point) that holds `path`.
fn disk_of(disks: &Disks, path: &Path) -> Option<DiskSnapshot> {
    disks
        .list()
        .iter()
        .filter(|d| path.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| DiskSnapshot {
            mount: d.mount_point().display().to_string(),
            total_bytes: d.total_space(),
            // Rounded to 10 MB: a recording in progress changes this constantly.
            available_bytes: d.available_space() / 10_000_000 * 10_000_000,
        })
}

/// Where the recording directory is, made absolute (it may not exist yet: then its nearest
/// existing ancestor decides the filesystem).
fn absolute(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|c| c.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    let mut probe = abs.as_path();
    loop {
        if let Ok(c) = probe.canonicalize() {
            return match abs.strip_prefix(probe) {
                Ok(rest) => c.join(rest),
                Err(_) => c,
            };
        }
        match probe.parent() {
            Some(p) => probe = p,
            None => return abs,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    snapshot: Mutex<SystemSnapshot>,
    /// Stage processes to sample.
    pids: Mutex<Vec<u32>>,
    stop: AtomicBool,
    /// Signalled on stop so the threads wake at once.
    wake: Condvar,
    sleeping: Mutex<()>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SystemSnapshot> {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps `d`, or less when stopped. Returns whether to go on.
    fn sleep(&self, d: Duration) -> bool {
        let guard = self.sleeping.lock().unwrap_or_else(PoisonError::into_inner);
        if self.stop.load(Ordering::SeqCst) {
            return false;
        }
        let _unused = self.wake.wait_timeout(guard, d).unwrap_or_else(PoisonError::into_inner);
        !self.stop.load(Ordering::SeqCst)
    }
}

/// Samples the machine in the background; dropping it stops the threads. The sampling thread
/// is joined; the latency thread is not (a probe of an unreachable host may take
/// [`PROBE_TIMEOUT`], a name lookup longer): it ends on its own after the probe in progress, so
/// the viewer never waits for the network to exit.
#[derive(Debug)]
pub struct SystemMonitor {
    shared: Arc<Shared>,
    sampler: Option<JoinHandle<()>>,
}

impl SystemMonitor {
    /// Starts sampling the machine, the filesystem of `recording_dir`, and the latency to
    /// `endpoint` (an `http(s)://` URL; anything else is not probed).
    pub fn start(recording_dir: &Path, endpoint: &str) -> Result<SystemMonitor> {
        let dir = absolute(recording_dir);
        let shared = Arc::new(Shared::default());
        shared.lock().recording_dir = dir.display().to_string();
        let sampler = {
            let s = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("viewer-diagnostics".into())
                .spawn(move || sample_loop(&s, &dir))
                .map_err(|source| ViewerError::Thread { name: "viewer-diagnostics", source })?
        };
        let monitor = SystemMonitor { shared, sampler: Some(sampler) };
        match endpoint_target(endpoint) {
            Some(target) => {
                let s = Arc::clone(&monitor.shared);
                // Detached: see the type's docs. On error `monitor` is dropped, which stops the sampler.
                std::thread::Builder::new()
                    .name("viewer-latency".into())
                    .spawn(move || probe_loop(&s, &target))
                    .map_err(|source| ViewerError::Thread { name: "viewer-latency", source })?;
            }
            None => tracing::info!(%endpoint, "upload endpoint is not an http(s) URL; latency not measured"),
        }
        Ok(monitor)
    }

    /// Sets the processes (the stages' pids) whose CPU and memory are sampled.
    pub fn watch_pids(&self, pids: &[u32]) {
        let mut p = self.shared.pids.lock().unwrap_or_else(PoisonError::into_inner);
        if p.as_slice() != pids {
            *p = pids.to_vec();
        }
    }

    /// The newest sample.
    pub fn snapshot(&self) -> SystemSnapshot {
        self.shared.lock().clone()
    }

    fn stop(&mut self) {
        {
            let _guard = self.shared.sleeping.lock().unwrap_or_else(PoisonError::into_inner);
            self.shared.stop.store(true, Ordering::SeqCst);
            self.shared.wake.notify_all();
        }
        if let Some(t) = self.sampler.take() {
            if t.join().is_err() {
                tracing::error!("the viewer-diagnostics thread panicked");
            }
        }
    }
}

impl Drop for SystemMonitor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sample_loop(shared: &Shared, dir: &Path) {
    let mut system = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let mut disks = Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage());
    let mut last_scan: Option<Instant> = None;
    let mut first = true;
    let mut seen: Vec<Pid> = Vec::new();
    loop {
        // CPU use is a difference between two refreshes: the first sample has none.
        system.refresh_cpu_usage();
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        disks.refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        let disk = disk_of(&disks, dir);
        let pids: Vec<Pid> =
            shared.pids.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|p| Pid::from_u32(*p)).collect();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        // Processes seen for the first time have no CPU figure yet: they are left out until the
        // next sample.
        let processes: Vec<ProcessSnapshot> = pids
            .iter()
            .filter_map(|pid| {
                let p = system.process(*pid)?;
                seen.contains(pid).then(|| ProcessSnapshot {
                    pid: pid.as_u32(),
                    cpu_percent: p.cpu_usage().round().max(0.0) as u32,
                    memory_bytes: p.memory() / 1_000_000 * 1_000_000,
                })
            })
            .collect();
        seen = pids.iter().copied().filter(|pid| system.process(*pid).is_some()).collect();
        // Until the directory exists (the writer creates it), look at every sample.
        let missing = shared.lock().recording_bytes.is_none();
        let scan = if missing || last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY) {
            last_scan = Some(Instant::now());
            match directory_bytes(dir) {
                Ok(b) => Some(Some(b)),
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), %e, "recording directory not measured");
                    Some(None)
                }
            }
        } else {
            None
        };
        {
            let mut s = shared.lock();
            s.cpu_percent = (!first).then(|| system.global_cpu_usage().round().clamp(0.0, 100.0) as u32);
            s.cpu_cores = system.cpus().len();
            s.memory_used_bytes = system.used_memory() / 1_000_000 * 1_000_000;
            s.memory_total_bytes = system.total_memory();
            s.disk = disk;
            s.processes = processes;
            if let Some(b) = scan {
                s.recording_bytes = b;
            }
        }
        // Right after start, sample again soon so the CPU figure appears quickly.
        let pause = if first { sysinfo::MINIMUM_CPU_UPDATE_INTERVAL } else { SAMPLE_EVERY };
        first = false;
        if !shared.sleep(pause) {
            return;
        }
    }
}

fn probe_loop(shared: &Shared, target: &str) {
    loop {
        let latency = probe(target, PROBE_TIMEOUT);
        shared.lock().endpoint_latency = Some(latency);
        if !shared.sleep(PROBE_EVERY) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_targets() {
        assert_eq!(endpoint_target("http://127.0.0.1:9000").as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(endpoint_target("https://s3.example.com").as_deref(), Some("s3.example.com:443"));
        assert_eq!(endpoint_target("http://minio/bucket?x=1").as_deref(), Some("minio:80"));
        assert_eq!(endpoint_target("http://[::1]:9000/").as_deref(), Some("[::1]:9000"));
        assert_eq!(endpoint_target("http://user@host:81").as_deref(), Some("host:81"));
        assert_eq!(endpoint_target("s3://bucket"), None);
        assert_eq!(endpoint_target("http://host:notaport"), None);
        assert_eq!(endpoint_target("http://"), None);
    }

    #[test]
    fn probe_measures_a_listening_port_and_reports_a_closed_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let ok = probe(&addr, PROBE_TIMEOUT);
        assert!(ok.connect_ms.is_some_and(|ms| ms >= 0.0), "{ok:?}");
        assert_eq!(ok.error, None);
        drop(listener);
        let refused = probe(&addr, PROBE_TIMEOUT);
        assert_eq!(refused.connect_ms, None);
        assert!(refused.error.is_some(), "{refused:?}");
    }

    #[test]
    fn directory_bytes_counts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 23]).unwrap();
        assert_eq!(directory_bytes(dir.path()).unwrap(), 123);
        assert!(directory_bytes(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn monitor_samples_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seg"), [0u8; 10]).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let monitor = SystemMonitor::start(dir.path(), &endpoint).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let s = loop {
            let s = monitor.snapshot();
            if s.cpu_percent.is_some() && s.recording_bytes.is_some() && s.endpoint_latency.is_some() {
                break s;
            }
            assert!(Instant::now() < deadline, "no complete sample: {s:?}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(s.cpu_cores >= 1);
        assert!(s.memory_total_bytes > 0 && s.memory_used_bytes <= s.memory_total_bytes, "{s:?}");
        assert_eq!(s.recording_bytes, Some(10));
        assert!(s.endpoint_latency.as_ref().is_some_and(|l| l.connect_ms.is_some()), "{s:?}");
        // This process, once watched, is sampled (from its second sample on).
        let me = std::process::id();
        monitor.watch_pids(&[me, u32::MAX - 1]);
        let deadline = Instant::now() + Duration::from_secs(20);
        let p = loop {
            if let Some(p) = monitor.snapshot().process(me).copied() {
                break p;
            }
            assert!(Instant::now() < deadline, "this process was never sampled");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(p.memory_bytes > 0, "{p:?}");
        assert!(monitor.snapshot().process(u32::MAX - 1).is_none());
        if let Some(d) = &s.disk {
            assert!(d.available_bytes <= d.total_bytes, "{d:?}");
        }
        drop(monitor);
    }
}
