//! An append-only JSON Lines file for [`AuditEvent`]s (feature `audit-log`): one event per
//! line, an fsync policy, size-based rotation, and a reader that skips and reports a torn
//! last line.
//!
//! This is the crate's only I/O, behind a non-default feature: the handshake itself stays
//! Sans-IO and returns events as values; this sink is one way to persist them.
//!
//! # Redaction by construction
//! The sink accepts [`AuditEvent`]s and nothing else: no free text, no `serde_json::Value`.
//! Every field of an event is a validated identifier, a time, a closed enum or a
//! [`SessionRef`](crate::SessionRef) (a hash of a session id), so no secret, token, token
//! hash, MAC or nonce can reach the file.
//!
//! # Crash behaviour
//! Each append is one `write` of whole lines to a file opened in append mode. A crash can
//! leave at most one torn line, at the end: [`read_audit_log`] skips it and reports it in
//! [`AuditLogRead::partial_tail`]. [`AuditLog::open`] truncates such a tail before
//! appending (it is an event whose append never returned), and reports it in
//! [`AuditLog::recovered_tail_bytes`].
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use handoff_core::UnixTime;
//! use handoff_device::audit_log::{AuditLog, AuditLogConfig, FsyncPolicy, read_audit_log};
//! use handoff_device::{AuditEvent, DeviceId, OperatorId};
//!
//! let dir = std::env::temp_dir().join(format!("audit-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("audit.jsonl");
//! let mut log = AuditLog::open(
//!     AuditLogConfig::new(&path).fsync(FsyncPolicy::EveryEvent).rotate_at(1 << 20, 5),
//! )?;
//! log.append(&AuditEvent::Approved {
//!     device_id: DeviceId::new("sensor-42")?,
//!     by: OperatorId::new("alice")?,
//!     at: UnixTime::from_secs(1_700_000_000),
//! })?;
//! let read = read_audit_log(&path)?;
//! assert_eq!(read.events.len(), 1);
//! assert!(read.partial_tail.is_none());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

use core::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::AuditEvent;

/// Longest line the reader accepts, in bytes (an event serializes to well under 1 KiB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Most rotated files kept besides the live one.
pub const MAX_ROTATED_FILES: usize = 100;
/// Smallest rotation size accepted, in bytes.
pub const MIN_ROTATE_BYTES: u64 = 4 * 1024;

/// When the sink asks the operating system to put written lines on disk (`fdatasync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// After every [`AuditLog::append`] and every [`AuditLog::append_batch`] (the safest:
    /// an event whose append returned survives a power loss).
    EveryEvent,
    /// Once per [`AuditLog::append_batch`], and on [`AuditLog::sync`]; single appends are
    /// written but not synced until then.
    EveryBatch,
    /// Never (the OS writes back when it likes; a crash of the process loses nothing, a
    /// power loss may lose the last seconds). [`AuditLog::sync`] still syncs.
    Never,
}

/// Settings of an [`AuditLog`].
#[derive(Debug, Clone)]
pub struct AuditLogConfig {
    path: PathBuf,
    fsync: FsyncPolicy,
    rotate_bytes: u64,
    keep: usize,
}

impl AuditLogConfig {
    /// A log at `path`, synced per event, rotated at 64 MiB, keeping 10 rotated files.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            fsync: FsyncPolicy::EveryEvent,
            rotate_bytes: 64 * 1024 * 1024,
            keep: 10,
        }
    }

    /// The fsync policy (default [`FsyncPolicy::EveryEvent`]).
    #[must_use]
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Rotate when the live file would grow past `max_bytes` (at least 4 KiB); keep `keep`
    /// rotated files (`PATH.1` newest to `PATH.keep` oldest, 1 to 100), deleting older ones.
    #[must_use]
    pub fn rotate_at(mut self, max_bytes: u64, keep: usize) -> Self {
        self.rotate_bytes = max_bytes;
        self.keep = keep;
        self
    }
}

/// What went wrong with the audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditLogError {
    /// The file could not be opened, written, synced or rotated.
    #[error("audit log {path}: {what}: {source}; check the path, permissions and free space")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// The settings are out of bounds.
    #[error("invalid audit log configuration: {0}")]
    Config(&'static str),
    /// A line before the last one is not an audit event (the file was altered or is not
    /// an audit log).
    #[error("audit log {path} line {line}: {reason}; the file was altered or is not an audit log")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
}

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> AuditLogError {
    let path = path.to_path_buf();
    move |source| AuditLogError::Io { path, what, source }
}

/// Counters of what the sink did (for monitoring, and for tests of the fsync policy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditLogStats {
    /// Events written.
    pub events: u64,
    /// `write` calls issued (one per append or batch).
    pub writes: u64,
    /// `fdatasync` calls issued.
    pub syncs: u64,
    /// Rotations performed.
    pub rotations: u64,
}

/// An append-only JSON Lines audit log. See the [module docs](self).
pub struct AuditLog {
    config: AuditLogConfig,
    file: File,
    size: u64,
    recovered_tail: u64,
    stats: AuditLogStats,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.config.path)
            .field("fsync", &self.config.fsync)
            .field("size", &self.size)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn open_append(path: &Path) -> Result<File, AuditLogError> {
    let mut opts = OpenOptions::new();
    opts.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(io_err(path, "cannot open"))
}

/// Length of the file up to and including its last newline.
fn complete_len(file: &mut File, len: u64) -> io::Result<u64> {
    let mut pos = len;
    let mut buf = [0u8; 4096];
    while pos > 0 {
        let n = usize::try_from(pos.min(buf.len() as u64)).unwrap_or(buf.len());
        pos -= n as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(pos + i as u64 + 1);
        }
    }
    Ok(0)
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the live file for appending. A torn last line left by
    /// a crash is cut off first (see [`Self::recovered_tail_bytes`]).
    ///
    /// # Errors
    /// [`AuditLogError::Config`] for out-of-range settings, [`AuditLogError::Io`] when the
    /// file cannot be opened or repaired.
    pub fn open(config: AuditLogConfig) -> Result<Self, AuditLogError> {
        if config.rotate_bytes < MIN_ROTATE_BYTES {
            return Err(AuditLogError::Config(
                "rotation size under 4 KiB; rotate at a few MiB or more",
            ));
        }
        if config.keep == 0 || config.keep > MAX_ROTATED_FILES {
            return Err(AuditLogError::Config("keep 1 to 100 rotated files"));
        }
        let path = config.path.clone();
        let mut file = open_append(&path)?;
        let len = file.metadata().map_err(io_err(&path, "cannot stat"))?.len();
        let complete = complete_len(&mut file, len).map_err(io_err(&path, "cannot read"))?;
        if complete < len {
            file.set_len(complete)
                .and_then(|()| file.sync_data())
                .map_err(io_err(&path, "cannot cut the torn last line"))?;
        }
        Ok(Self {
            config,
            file,
            size: complete,
            recovered_tail: len - complete,
            stats: AuditLogStats::default(),
        })
    }

    /// Bytes of a torn last line cut off by [`Self::open`] (0 when the file was clean).
    #[must_use]
    pub fn recovered_tail_bytes(&self) -> u64 {
        self.recovered_tail
    }

    /// What the sink did so far.
    #[must_use]
    pub fn stats(&self) -> AuditLogStats {
        self.stats
    }

    /// The live file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Appends one event as one line, synced when the policy is
    /// [`FsyncPolicy::EveryEvent`].
    ///
    /// # Errors
    /// [`AuditLogError::Io`] when writing, syncing or rotating fails.
    pub fn append(&mut self, event: &AuditEvent) -> Result<(), AuditLogError> {
        let buf = encode(core::iter::once(event));
        self.write_lines(&buf, 1, self.config.fsync == FsyncPolicy::EveryEvent)
    }

    /// Appends events as consecutive lines in one write, synced unless the policy is
    /// [`FsyncPolicy::Never`].
    ///
    /// # Errors
    /// As [`Self::append`].
    pub fn append_batch<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a AuditEvent>,
    ) -> Result<(), AuditLogError> {
        let events: Vec<&AuditEvent> = events.into_iter().collect();
        if events.is_empty() {
            return Ok(());
        }
        let buf = encode(events.iter().copied());
        self.write_lines(
            &buf,
            events.len() as u64,
            self.config.fsync != FsyncPolicy::Never,
        )
    }

    /// Syncs the live file now, whatever the policy.
    ///
    /// # Errors
    /// [`AuditLogError::Io`] when the sync fails.
    pub fn sync(&mut self) -> Result<(), AuditLogError> {
        self.file
            .sync_data()
            .map_err(io_err(&self.config.path, "cannot sync"))?;
        self.stats.syncs += 1;
        Ok(())
    }

    fn write_lines(&mut self, buf: &[u8], events: u64, sync: bool) -> Result<(), AuditLogError> {
        let len = buf.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.config.rotate_bytes {
            self.rotate()?;
        }
        self.file
            .write_all(buf)
            .map_err(io_err(&self.config.path, "cannot write"))?;
        self.size += len;
        self.stats.writes += 1;
        self.stats.events += events;
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    /// `PATH.(k-1)` -> `PATH.k` ... `PATH` -> `PATH.1`, dropping the oldest, then a fresh
    /// live file. The live file is synced first, whatever the policy.
    fn rotate(&mut self) -> Result<(), AuditLogError> {
        self.sync()?;
        let path = self.config.path.clone();
        let rotated = |i: usize| rotated_path(&path, i);
        let oldest = rotated(self.config.keep);
        if oldest.exists() {
            fs::remove_file(&oldest).map_err(io_err(&oldest, "cannot delete"))?;
        }
        for i in (1..self.config.keep).rev() {
            let from = rotated(i);
            if from.exists() {
                fs::rename(&from, rotated(i + 1)).map_err(io_err(&from, "cannot rotate"))?;
            }
        }
        fs::rename(&path, rotated(1)).map_err(io_err(&path, "cannot rotate"))?;
        self.file = open_append(&path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the renames durable (best effort: not every platform can open a directory).
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.size = 0;
        self.stats.rotations += 1;
        Ok(())
    }
}

/// `PATH.i`, the i-th rotated file (1 is the newest).
#[must_use]
pub fn rotated_path(path: &Path, i: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

fn encode<'a>(events: impl Iterator<Item = &'a AuditEvent>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    for e in events {
        // An `AuditEvent` holds only strings, integers and enums: serializing cannot fail.
        if serde_json::to_writer(&mut buf, e).is_ok() {
            buf.push(b'\n');
        }
    }
    buf
}

/// What [`read_audit_log`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct AuditLogRead {
    /// Every complete event, in file order.
    pub events: Vec<AuditEvent>,
    /// A torn last line (no newline, left by a crash), skipped: its length in bytes.
    pub partial_tail: Option<usize>,
}

/// Reads one audit log file (the live file or a rotated one).
///
/// Every complete line must be an [`AuditEvent`]. The last line, when it lacks its
/// newline, is a write cut short by a crash: it is skipped and reported in
/// [`AuditLogRead::partial_tail`], never parsed. Lines are bounded by [`MAX_LINE_BYTES`].
///
/// # Errors
/// [`AuditLogError::Io`] when the file cannot be read; [`AuditLogError::Corrupt`] for a
/// complete line that is not an audit event, or over the size bound.
pub fn read_audit_log(path: &Path) -> Result<AuditLogRead, AuditLogError> {
    let file = File::open(path).map_err(io_err(path, "cannot open"))?;
    read_audit_lines(BufReader::new(file), path)
}

/// [`read_audit_log`] over any reader (`path` only names it in errors).
///
/// # Errors
/// As [`read_audit_log`].
pub fn read_audit_lines<R: BufRead>(
    mut reader: R,
    path: &Path,
) -> Result<AuditLogRead, AuditLogError> {
    let mut events = Vec::new();
    let mut line = Vec::with_capacity(512);
    let mut n = 0u64;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(io_err(path, "cannot read"))?;
        if read == 0 {
            return Ok(AuditLogRead {
                events,
                partial_tail: None,
            });
        }
        n += 1;
        let corrupt = |reason: String| AuditLogError::Corrupt {
            path: path.to_path_buf(),
            line: n,
            reason,
        };
        if line.last() != Some(&b'\n') {
            if line.len() > MAX_LINE_BYTES {
                return Err(corrupt(format!("longer than {MAX_LINE_BYTES} bytes")));
            }
            // No newline: the end of the file, mid-line. Skipped, reported.
            return Ok(AuditLogRead {
                events,
                partial_tail: Some(line.len()),
            });
        }
        let event = serde_json::from_slice::<AuditEvent>(&line[..line.len() - 1])
            .map_err(|e| corrupt(format!("not an audit event: {e}")))?;
        events.push(event);
    }
}

/// Fuzzing entry point: reads arbitrary bytes as an audit log file; what reads is written
/// again and must read back to the same events. Never panics.
#[doc(hidden)]
pub fn fuzz_read(data: &[u8]) {
    let path = Path::new("fuzz.log");
    if let Ok(read) = read_audit_lines(data, path) {
        let again = read_audit_lines(&encode(read.events.iter())[..], path);
        debug_assert!(
            again
                .as_ref()
                .is_ok_and(|a| a.events == read.events && a.partial_tail.is_none()),
            "events that read must write and read back the same"
        );
    }
}
