//! Writing and reading the state directory's files: atomically, privately, and without trusting
//! what someone else may have put in place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use super::error::{StateError, out_of_space};

/// Writes a file by writing a temporary file beside it and renaming it over, so that a reader (or
/// a crashed or killed runner) sees the old content or the new, never half of it. With `sync`,
/// the content is on the disk before the rename, so that it survives a power loss too: that costs
/// a disk flush (milliseconds on a real disk), kept for the final record. On a full disk, the
/// content is written over the file's own blocks when it fits in them
/// ([`overwrite_in_place`]): not atomic, but a record that stayed as it was would be wrong.
pub fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StateError> {
    // Unique per process and per call: threads of one runner may write the same file at once.
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    let result = (|| {
        let mut file = private_file(&tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_data()?;
        }
        fs::rename(&tmp, path)
    })();
    result.or_else(|source| {
        let _ = fs::remove_file(&tmp);
        // A full disk has no room for the new copy; the file's own blocks may hold it.
        if out_of_space(&source) && overwrite_in_place(path, bytes, sync).is_ok() {
            return Ok(());
        }
        Err(StateError::Io {
            action: "cannot write",
            path: path.display().to_string(),
            source,
        })
    })
}

/// Writes `bytes` over an existing file's own blocks: the last resort for a record when the disk
/// has no room for a new copy. Only when they fit in what the file already has (so no block is
/// allocated), and not atomic: a reader at that moment can see part of it.
pub(crate) fn overwrite_in_place(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let file = OpenOptions::new().write(true).open(path)?;
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > file.metadata()?.blocks().saturating_mul(512) {
        return Err(io::ErrorKind::StorageFull.into());
    }
    file.write_all_at(bytes, 0)?;
    file.set_len(len)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

/// Creates a directory (and its parents) that only its owner can read: records and logs may
/// hold what a build printed, and the environment dumps what it was given.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Creates a private directory (0700), if missing, whose subdirectories are unrelated trees (the
/// copies of the source that builds run side by side, in the temporary directory or a shared
/// one, which other users may read): on ext2, ext3 and ext4 they are spread over the disk as the
/// state directory's build folders are ([`StateDir::open`]).
pub fn create_spread_dir(path: &Path) -> io::Result<()> {
    create_private_dir(path)?;
    crate::platform::spread_subdirectories(path);
    Ok(())
}

/// Creates (or truncates) a file only its owner can read or write.
pub fn private_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Writes a file only its owner can read or write.
pub fn write_private(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    private_file(path)?.write_all(bytes.as_ref())
}

/// Reads a file that someone else may have put in place: only a regular file (a link is not
/// followed, a FIFO is not waited on) of at most `limit` bytes; `None` when there is none.
pub(crate) fn read_regular(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    let mut bytes = Vec::new();
    (&file).take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::other(format!("it is larger than {limit} bytes")));
    }
    Ok(Some(bytes))
}
