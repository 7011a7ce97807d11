//! Writing a collected set: into a folder or one zip, hashing every file on the way.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Identity;
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
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(digest.len() * 2);
    for b in digest {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
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

/// Opens a file of a set as `reader`.
fn open_source(entry: &Entry, reader: Identity<'_>) -> io::Result<File> {
    reader.run(|| File::open(&entry.source))?
}

/// A copy's permission bits: the source's, without set-user-id, set-group-id or sticky bits (a
/// root runner's copy of a build's set-user-id file would run as root).
fn copy_mode(meta: &fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o777
}

/// Copies the entries into `dest` (which must not exist yet), keeping the permission bits. Each
/// file is opened as `reader`.
pub fn to_folder(
    entries: &[Entry],
    dest: &Path,
    reader: Identity<'_>,
) -> Result<Vec<FileRecord>, WriteError> {
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
                        match copy_one(entry, dest, reader, &mut buf) {
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

fn copy_one(
    entry: &Entry,
    dest: &Path,
    reader: Identity<'_>,
    buf: &mut [u8],
) -> Result<FileRecord, WriteError> {
    let to = dest.join(&entry.path);
    if let Some(target) = &entry.link {
        std::os::unix::fs::symlink(target, &to).map_err(failed("create", &to))?;
        return Ok(link_record(entry, target));
    }
    let mut from = open_source(entry, reader).map_err(failed("read", &entry.source))?;
    let mode = from.metadata().map(|m| copy_mode(&m)).unwrap_or(0o600);
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

/// Files up to this size are compressed by the workers, in memory; larger ones stream through
/// the writer. With [`ZIP_WINDOW`], it bounds the memory that compression ahead can take.
const ZIP_IN_MEMORY: u64 = 256 * 1024;
/// How far ahead of the writer the workers may compress.
const ZIP_WINDOW: usize = 64;
/// `zip -r`'s default level.
const ZIP_LEVEL: u32 = 6;

/// A small file, compressed by a worker.
struct Compressed {
    data: Vec<u8>,
    crc: u32,
    mode: u32,
    modified: Option<rawzip::time::UtcDateTime>,
    record: FileRecord,
}

/// What a worker made of one entry, for the writer.
enum Prepared {
    Done(Compressed),
    /// A symlink, or a file too large to hold in memory: the writer streams it itself.
    Writer,
    Failed(WriteError),
}

/// Entries prepared by the workers, by index, and how far the writer has come.
#[derive(Default)]
struct Handoff {
    ready: std::collections::BTreeMap<usize, Prepared>,
    written: usize,
    stop: bool,
}

fn zip_failed(path: &Path) -> impl FnOnce(rawzip::Error) -> WriteError + '_ {
    move |e| WriteError {
        action: "write",
        path: path.display().to_string(),
        source: io::Error::other(e),
    }
}

fn modified(meta: &fs::Metadata) -> Option<rawzip::time::UtcDateTime> {
    let since = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(rawzip::time::UtcDateTime::from_unix(
        i64::try_from(since.as_secs()).ok()?,
    ))
}

/// One worker's compressor, reused from file to file: setting up deflate's tables costs more
/// than compressing a small file.
struct Deflater {
    compress: flate2::Compress,
    buf: Vec<u8>,
}

impl Deflater {
    fn new() -> Self {
        Deflater {
            compress: flate2::Compress::new(flate2::Compression::new(ZIP_LEVEL), false),
            buf: Vec::with_capacity(ZIP_IN_MEMORY as usize + 1),
        }
    }

    /// Compresses a small file in memory (a worker's part).
    fn prepare(&mut self, entry: &Entry, reader: Identity<'_>) -> Prepared {
        if entry.link.is_some() {
            return Prepared::Writer;
        }
        let read = |e| Prepared::Failed(failed("read", &entry.source)(e));
        let mut from = match open_source(entry, reader) {
            Ok(f) => f,
            Err(e) => return read(e),
        };
        let meta = match from.metadata() {
            Ok(m) => m,
            Err(e) => return read(e),
        };
        if meta.len() > ZIP_IN_MEMORY {
            return Prepared::Writer;
        }
        self.buf.clear();
        // The file may have grown since: read at most one byte more than the limit to know.
        if let Err(e) = (&mut from)
            .take(ZIP_IN_MEMORY + 1)
            .read_to_end(&mut self.buf)
        {
            return read(e);
        }
        if self.buf.len() as u64 > ZIP_IN_MEMORY {
            return Prepared::Writer;
        }
        self.compress.reset();
        // Deflate's worst case is a few bytes per 16 KiB block over the input.
        let mut data = Vec::with_capacity(self.buf.len() + self.buf.len() / 1000 + 64);
        loop {
            let status = self.compress.compress_vec(
                &self.buf[self.compress.total_in() as usize..],
                &mut data,
                flate2::FlushCompress::Finish,
            );
            match status {
                Ok(flate2::Status::StreamEnd) => break,
                Ok(_) => data.reserve(data.capacity().max(64)),
                Err(e) => return read(io::Error::other(e)),
            }
        }
        Prepared::Done(Compressed {
            crc: crc32fast::hash(&self.buf),
            mode: copy_mode(&meta),
            modified: modified(&meta),
            record: FileRecord {
                path: entry.path.clone(),
                size: self.buf.len() as u64,
                sha256: hex(&Sha256::digest(&self.buf)),
                link: None,
            },
            data,
        })
    }
}

/// The regular file type, in a zip entry's Unix mode.
const REGULAR: u32 = 0o100_000;

/// Writes the entries into one zip at `dest`, deflated at `zip -r`'s default level (6),
/// symlinks stored as links, in the entries' order. Workers compress small files side by side
/// while one writer appends them in order; large files stream through the writer. Memory stays
/// bounded whatever the files' sizes and number. Each file is opened as `reader`. The zip is no
/// more readable than what it holds: private (0600), unless every file in it may be read by
/// anyone (0644).
pub fn to_zip(
    entries: &[Entry],
    dest: &Path,
    reader: Identity<'_>,
) -> Result<Vec<FileRecord>, WriteError> {
    use std::sync::Condvar;
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dest)
        .map_err(failed("create", dest))?;
    let public = AtomicBool::new(true);
    let mut zip = rawzip::ZipArchiveWriter::new(io::BufWriter::with_capacity(CHUNK, file));
    let handoff = Mutex::new(Handoff::default());
    let changed = Condvar::new();
    let next = AtomicUsize::new(0);
    let lock = || {
        handoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    std::thread::scope(|scope| {
        for _ in 0..workers(entries.len()) {
            scope.spawn(|| {
                let mut deflater = Deflater::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(i) else { break };
                    {
                        let mut state = lock();
                        while !state.stop && i >= state.written + ZIP_WINDOW {
                            state = changed
                                .wait(state)
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                        }
                        if state.stop {
                            break;
                        }
                    }
                    let prepared = deflater.prepare(entry, reader);
                    match &prepared {
                        Prepared::Done(file) if file.mode & 0o004 == 0 => {
                            public.store(false, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                    lock().ready.insert(i, prepared);
                    changed.notify_all();
                }
            });
        }
        let written = write_in_order(&mut zip, entries, dest, reader, &public, &lock, &changed);
        // Whatever happened, the workers must not wait for a writer that is gone.
        lock().stop = true;
        changed.notify_all();
        let records = written?;
        let mut out = zip.finish().map_err(zip_failed(dest))?;
        out.flush().map_err(failed("write", dest))?;
        if public.load(Ordering::Relaxed) {
            fs::set_permissions(dest, fs::Permissions::from_mode(0o644))
                .map_err(failed("write", dest))?;
        }
        Ok(records)
    })
}

/// The writer's part of [`to_zip`]: appends entry after entry as the workers prepare them.
fn write_in_order<'h, W: Write>(
    zip: &mut rawzip::ZipArchiveWriter<W>,
    entries: &[Entry],
    dest: &Path,
    reader: Identity<'_>,
    public: &AtomicBool,
    lock: &dyn Fn() -> std::sync::MutexGuard<'h, Handoff>,
    changed: &std::sync::Condvar,
) -> Result<Vec<FileRecord>, WriteError> {
    let mut records = Vec::with_capacity(entries.len());
    let mut buf = vec![0u8; CHUNK];
    for (i, entry) in entries.iter().enumerate() {
        let prepared = {
            let mut state = lock();
            loop {
                if let Some(p) = state.ready.remove(&i) {
                    break p;
                }
                state = changed
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        let record = match prepared {
            Prepared::Failed(e) => return Err(e),
            Prepared::Done(file) => {
                let mut builder = zip
                    .new_file(entry.path.as_str())
                    .compression_method(rawzip::CompressionMethod::DEFLATE)
                    .unix_permissions(REGULAR | file.mode);
                if let Some(time) = file.modified {
                    builder = builder.last_modified(time);
                }
                let (mut writer, _) = builder.start().map_err(zip_failed(dest))?;
                writer
                    .write_all(&file.data)
                    .map_err(failed("write", dest))?;
                writer
                    .finish(rawzip::DataDescriptorOutput::new(
                        file.crc,
                        file.record.size,
                    ))
                    .map_err(zip_failed(dest))?;
                file.record
            }
            Prepared::Writer => stream_entry(zip, entry, dest, reader, public, &mut buf)?,
        };
        records.push(record);
        lock().written = i + 1;
        changed.notify_all();
    }
    Ok(records)
}

/// Appends a symlink, or a large file read and compressed in pieces.
fn stream_entry<W: Write>(
    zip: &mut rawzip::ZipArchiveWriter<W>,
    entry: &Entry,
    dest: &Path,
    reader: Identity<'_>,
    public: &AtomicBool,
    buf: &mut [u8],
) -> Result<FileRecord, WriteError> {
    if let Some(target) = &entry.link {
        // A link is its target's text, stored, with the symlink file type in its mode.
        let text = target.to_string_lossy();
        let (mut writer, config) = zip
            .new_file(entry.path.as_str())
            .compression_method(rawzip::CompressionMethod::STORE)
            .unix_permissions(0o120_777)
            .start()
            .map_err(zip_failed(dest))?;
        let mut data = config.wrap(&mut writer);
        data.write_all(text.as_bytes())
            .map_err(failed("write", dest))?;
        let (_, descriptor) = data.finish().map_err(zip_failed(dest))?;
        writer.finish(descriptor).map_err(zip_failed(dest))?;
        return Ok(link_record(entry, target));
    }
    let mut from = open_source(entry, reader).map_err(failed("read", &entry.source))?;
    let meta = from.metadata().map_err(failed("read", &entry.source))?;
    let mode = copy_mode(&meta);
    if mode & 0o004 == 0 {
        public.store(false, Ordering::Relaxed);
    }
    let mut builder = zip
        .new_file(entry.path.as_str())
        .compression_method(rawzip::CompressionMethod::DEFLATE)
        .unix_permissions(REGULAR | mode);
    if let Some(time) = modified(&meta) {
        builder = builder.last_modified(time);
    }
    let (mut writer, config) = builder.start().map_err(zip_failed(dest))?;
    let encoder =
        flate2::write::DeflateEncoder::new(&mut writer, flate2::Compression::new(ZIP_LEVEL));
    let mut data = config.wrap(encoder);
    let (size, sha256) = copy_hashing(&mut from, &mut data, buf).map_err(|e| {
        let side: &Path = if e.raw_os_error() == Some(28) {
            dest
        } else {
            &entry.source
        };
        failed("copy", side)(e)
    })?;
    let (encoder, descriptor) = data.finish().map_err(zip_failed(dest))?;
    encoder.finish().map_err(failed("write", dest))?;
    writer.finish(descriptor).map_err(zip_failed(dest))?;
    Ok(FileRecord {
        path: entry.path.clone(),
        size,
        sha256,
        link: None,
    })
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
