//! Writing a collected set: into a folder or one zip, hashing every file on the way.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::collect::Entry;

/// One file of a written set, as the record lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Its path in the set.
    pub path: String,
    /// Its size in bytes (of the link text, for a symlink).
    pub size: u64,
    /// The SHA-256 of its content (of the link text, for a symlink), in hex.
    pub sha256: String,
    /// For a symlink kept as a link: its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// A file that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct WriteError {
    /// What was being done.
    pub action: &'static str,
    /// The file.
    pub path: String,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

fn failed<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> WriteError + 'p {
    move |source| WriteError {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// Read and write in pieces this large: a 2 GB file costs no more memory than a small one.
const CHUNK: usize = 256 * 1024;

fn hex(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Streams `from` into `to`, hashing it; returns the size and the digest.
fn copy_hashing(
    from: &mut impl Read,
    to: &mut impl Write,
    buf: &mut [u8],
) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = match from.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

fn link_record(entry: &Entry, target: &Path) -> FileRecord {
    let text = target.to_string_lossy().into_owned();
    FileRecord {
        path: entry.path.clone(),
        size: text.len() as u64,
        sha256: hex(&Sha256::digest(text.as_bytes())),
        link: Some(text),
    }
}

/// How many files are copied at once: small files cost system calls more than bandwidth, and a
/// few threads hide each other's latency.
fn workers(files: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    (cores * 2).clamp(1, 8).min(files.max(1))
}

/// Copies the entries into `dest` (which must not exist yet), keeping the executable bits.
pub fn to_folder(entries: &[Entry], dest: &Path) -> Result<Vec<FileRecord>, WriteError> {
    fs::create_dir_all(dest).map_err(failed("create", dest))?;
    // Directories first, once each, so that the copies need no checks.
    let mut last_parent: Option<&str> = None;
    for entry in entries {
        let parent = entry.path.rsplit_once('/').map(|(p, _)| p);
        if let Some(parent) = parent
            && last_parent != Some(parent)
        {
            let dir = dest.join(parent);
            fs::create_dir_all(&dir).map_err(failed("create", &dir))?;
            last_parent = Some(parent);
        }
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let error: Mutex<Option<WriteError>> = Mutex::new(None);
    let done: Vec<Vec<(usize, FileRecord)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers(entries.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut buf = vec![0u8; CHUNK];
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(entry) = entries.get(i) else { break };
                        match copy_one(entry, dest, &mut buf) {
                            Ok(record) => mine.push((i, record)),
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                if let Ok(mut first) = error.lock() {
                                    first.get_or_insert(e);
                                }
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    if let Some(e) = error.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut records: Vec<(usize, FileRecord)> = done.into_iter().flatten().collect();
    records.sort_unstable_by_key(|(i, _)| *i);
    Ok(records.into_iter().map(|(_, r)| r).collect())
}

fn copy_one(entry: &Entry, dest: &Path, buf: &mut [u8]) -> Result<FileRecord, WriteError> {
    let to = dest.join(&entry.path);
    if let Some(target) = &entry.link {
        std::os::unix::fs::symlink(target, &to).map_err(failed("create", &to))?;
        return Ok(link_record(entry, target));
    }
    let mut from = File::open(&entry.source).map_err(failed("read", &entry.source))?;
    let mode = from
        .metadata()
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644);
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&to)
        .map_err(failed("create", &to))?;
    let (size, sha256) = copy_hashing(&mut from, &mut out, buf).map_err(|e| {
        // Which side failed: a full disk names the destination, a vanished file the source.
        let side = if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
            &to
        } else {
            &entry.source
        };
        failed("copy", side)(e)
    })?;
    Ok(FileRecord {
        path: entry.path.clone(),
        size,
        sha256,
        link: None,
    })
}

/// Writes the entries into one zip at `dest`, deflated at zip's default level (6), symlinks
/// stored as links. The archive streams: memory stays bounded whatever the files' sizes.
pub fn to_zip(entries: &[Entry], dest: &Path) -> Result<Vec<FileRecord>, WriteError> {
    use zip::write::SimpleFileOptions;
    let file = File::create(dest).map_err(failed("create", dest))?;
    let mut zip = zip::ZipWriter::new(io::BufWriter::with_capacity(CHUNK, file));
    let zip_error = |e: zip::result::ZipError| WriteError {
        action: "write",
        path: dest.display().to_string(),
        source: io::Error::other(e),
    };
    let mut records = Vec::with_capacity(entries.len());
    let mut buf = vec![0u8; CHUNK];
    for entry in entries {
        if let Some(target) = &entry.link {
            zip.add_symlink(
                entry.path.as_str(),
                target.to_string_lossy(),
                SimpleFileOptions::default(),
            )
            .map_err(zip_error)?;
            records.push(link_record(entry, target));
            continue;
        }
        let mut from = File::open(&entry.source).map_err(failed("read", &entry.source))?;
        let meta = from.metadata().map_err(failed("read", &entry.source))?;
        let mut options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(6))
            .unix_permissions(meta.permissions().mode() & 0o777)
            .large_file(meta.len() >= u64::from(u32::MAX));
        if let Some(time) = meta.modified().ok().and_then(zip_time) {
            options = options.last_modified_time(time);
        }
        zip.start_file(entry.path.as_str(), options)
            .map_err(zip_error)?;
        let (size, sha256) = copy_hashing(&mut from, &mut zip, &mut buf).map_err(|e| {
            let side: &Path = if e.raw_os_error() == Some(28) {
                dest
            } else {
                &entry.source
            };
            failed("copy", side)(e)
        })?;
        records.push(FileRecord {
            path: entry.path.clone(),
            size,
            sha256,
            link: None,
        });
    }
    let mut out = zip.finish().map_err(zip_error)?;
    out.flush().map_err(failed("write", dest))?;
    Ok(records)
}

/// A file's modification time as a zip timestamp (local civil time, as `zip -r` writes it).
fn zip_time(modified: std::time::SystemTime) -> Option<zip::DateTime> {
    let ts = jiff::Timestamp::try_from(modified).ok()?;
    let civil = ts.to_zoned(jiff::tz::TimeZone::system()).datetime();
    zip::DateTime::try_from(civil).ok()
}

/// Replaces `dest` with `staged` (a sibling) as one step, so that a reader never sees half of
/// a set, and files of an earlier build never mix with this one's.
pub fn replace(staged: &Path, dest: &Path) -> Result<(), WriteError> {
    if fs::symlink_metadata(dest).is_ok() {
        let old: PathBuf = dest.with_file_name(format!(
            ".{}.old-{}",
            dest.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        fs::rename(dest, &old).map_err(failed("replace", dest))?;
        fs::rename(staged, dest).map_err(failed("replace", dest))?;
        let _ = if old.is_dir() {
            fs::remove_dir_all(&old)
        } else {
            fs::remove_file(&old)
        };
        return Ok(());
    }
    fs::rename(staged, dest).map_err(failed("create", dest))
}
