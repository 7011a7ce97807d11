//! The local build cache (`--cache-dir`): entries of files kept between builds, by key.
//!
//! ```text
//! <cache>/lock                     shared while an entry is restored, exclusive while one is swapped
//! <cache>/entries/<key>/meta.json  the key, when it was saved, by which build
//! <cache>/entries/<key>/src/...    files under the source directory, by their relative path
//! <cache>/entries/<key>/root/...   files given by absolute paths (`/root/.m2/...`), without the `/`
//! ```
//!
//! An entry is staged beside the others and renamed into place, so a reader never sees half of
//! one. A keyed entry is never overwritten (CodeBuild's keyed caches are immutable): the rename
//! fails when it exists, whoever got there first. A build without `cache.key` has one entry per
//! project, replaced by each save.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::outputs::artifacts::pattern::{self, FilePattern};
use crate::outputs::artifacts::{self, Collection, FileRecord};
use crate::platform;

/// What a cache entry says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The key it was saved under.
    pub key: String,
    /// When it was saved.
    pub saved: jiff::Timestamp,
    /// The build that saved it.
    pub build: String,
    /// How many files it holds.
    pub files: usize,
}

/// A problem with the cache directory.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// An I/O error on a path.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing the entry's files failed.
    #[error(transparent)]
    Write(#[from] artifacts::WriteError),
}

fn io_error<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> CacheError + 'p {
    move |source| CacheError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// A key as a file name: characters other than letters, digits, `-`, `_` and `.` are written
/// `%XX`, so that every key has one folder and prefixes still compare as the keys do.
fn encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_".contains(&b) || (b == b'.' && !out.is_empty()) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// What a restore may write: the build's `cache.paths`, relative ones under the source and
/// absolute ones from `/`.
#[derive(Debug, Default)]
pub struct Wanted {
    relative: Vec<FilePattern>,
    absolute: Vec<FilePattern>,
}

impl Wanted {
    /// From `cache.paths` with their variables expanded; a path that cannot be used (one that
    /// climbs above the source, a bad glob) is left out, with a warning.
    pub fn new(paths: &[String]) -> (Wanted, Vec<String>) {
        let mut wanted = Wanted::default();
        let mut warnings = Vec::new();
        for path in paths {
            let (list, base) = if path.starts_with('/') {
                (&mut wanted.absolute, Path::new("/"))
            } else {
                (&mut wanted.relative, Path::new(""))
            };
            let compiled = pattern::inside(base, path)
                .ok_or_else(|| "it leaves the source directory".to_owned())
                .and_then(|relative| FilePattern::new(&relative));
            match compiled {
                Ok(p) => list.push(p),
                Err(why) => {
                    warnings.push(format!("warning: cache path {path} is not restored: {why}"))
                }
            }
        }
        (wanted, warnings)
    }
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct Restored {
    /// Files (and links) restored.
    pub files: usize,
    /// Files of the entry not restored, with why: the first few.
    pub skipped: Vec<String>,
    /// How many were skipped in all.
    pub skipped_count: usize,
}

/// Skipped files named one by one, beyond which they are counted.
const SKIPS_SHOWN: usize = 20;

impl Restored {
    fn skip(&mut self, path: &str, why: &str) {
        self.skipped_count += 1;
        if self.skipped.len() < SKIPS_SHOWN {
            // A name in the entry is anyone's text: no control character reaches the log.
            let path: String = path
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            self.skipped.push(format!("{path}: {why}"));
        }
    }
}

/// Where a restore writes: a directory opened without following links, and the last parent
/// directory made in it (files come sorted, so the next file is usually beside the last).
struct Place<'a> {
    base: platform::NoFollowDir,
    parent: Option<(String, platform::NoFollowDir)>,
    writer: artifacts::Identity<'a>,
}

/// A file that claims this many bytes more than it occupies is not restored: writing it out
/// would take them all (a sparse file of a terabyte is a few blocks in the entry).
const SPARSE_SLACK: u64 = 1024 * 1024;

impl Place<'_> {
    /// Opens (as the writer) the parent directory of `relative`, made if missing, never
    /// through a link; returns its last component.
    fn parent_of<'r>(&mut self, relative: &'r str) -> Result<&'r str, String> {
        let (dir, name) = relative.rsplit_once('/').unwrap_or(("", relative));
        if self.parent.as_ref().is_none_or(|(d, _)| d != dir) {
            let opened = self.writer.run(|| {
                let mut at: Option<platform::NoFollowDir> = None;
                for component in dir.split('/').filter(|c| !c.is_empty()) {
                    let next = at
                        .as_ref()
                        .unwrap_or(&self.base)
                        .child(std::ffi::OsStr::new(component))?;
                    at = Some(next);
                }
                Ok::<_, io::Error>(at)
            });
            let opened = match opened {
                Ok(Ok(Some(dir))) => dir,
                Ok(Ok(None)) => return Err("it has no directory to be restored in".to_owned()),
                Ok(Err(e)) | Err(e) => return Err(why_not(&e)),
            };
            self.parent = Some((dir.to_owned(), opened));
        }
        Ok(name)
    }

    fn dir(&self) -> &platform::NoFollowDir {
        self.parent.as_ref().map_or(&self.base, |(_, d)| d)
    }

    /// Restores a regular file of the entry: read as the runner (the cache is its), written as
    /// the writer.
    fn copy(&mut self, from: &Path, relative: &str) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let mut input = File::open(from).map_err(|e| e.to_string())?;
        let meta = input.metadata().map_err(|e| e.to_string())?;
        if meta.len()
            > meta
                .blocks()
                .saturating_mul(512)
                .saturating_add(SPARSE_SLACK)
        {
            return Err(format!(
                "it claims {} bytes and holds {}",
                meta.len(),
                meta.blocks() * 512
            ));
        }
        let name = if relative.contains('/') {
            self.parent_of(relative)?
        } else {
            self.parent = None;
            relative
        };
        // Without its set-user-id, set-group-id and sticky bits.
        let mode = meta.mode() & 0o777;
        let written = self.writer.run(|| {
            let mut output = self.dir().create_file(std::ffi::OsStr::new(name), mode)?;
            io::copy(&mut input, &mut output)
        });
        match written {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) | Err(e) => Err(why_not(&e)),
        }
    }

    /// Restores a link of the entry, when it is relative and, read from where it stands, stays
    /// inside `within` (the source, or the literal start of its absolute cache path).
    fn link(&mut self, from: &Path, relative: &str, within: &str) -> Result<(), String> {
        let target = fs::read_link(from).map_err(|e| e.to_string())?;
        let text = target.to_str().ok_or("its target is not UTF-8")?;
        let parent = relative.rsplit_once('/').map_or("", |(d, _)| d);
        let lands = (!text.starts_with('/'))
            .then(|| pattern::normalize(&format!("{parent}/{text}")))
            .flatten();
        let inside = lands.is_some_and(|l| {
            within.is_empty() || l == within || l.starts_with(&format!("{within}/"))
        });
        if !inside {
            return Err(format!("it is a link to {text}, outside what is restored"));
        }
        let name = if relative.contains('/') {
            self.parent_of(relative)?
        } else {
            self.parent = None;
            relative
        };
        let made = self
            .writer
            .run(|| self.dir().symlink(&target, std::ffi::OsStr::new(name)));
        match made {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) | Err(e) => Err(why_not(&e)),
        }
    }
}

/// Why a file could not be written, in words.
fn why_not(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
            "a directory on its way is a link, or not a directory".to_owned()
        }
        Some(libc::EISDIR) => "a directory stands in its place".to_owned(),
        _ => e.to_string(),
    }
}

/// What to save, and how.
#[derive(Debug, Clone, Copy)]
pub struct Save<'a> {
    /// The entry's key.
    pub key: &'a str,
    /// Replace an entry that exists (the project's unkeyed entry) instead of keeping it.
    pub replace: bool,
    /// Files under the source directory.
    pub relative: Option<&'a Collection>,
    /// Files given by absolute paths.
    pub absolute: Option<&'a Collection>,
    /// The build that saves them.
    pub build: &'a str,
    /// Whose permissions the files are read with.
    pub reader: artifacts::Identity<'a>,
}

/// How a save ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    /// A new entry with this many files.
    Saved(usize),
    /// The keyed entry already exists: it is kept as it is.
    Exists,
}

impl Cache {
    /// The cache in `dir`, created if needed.
    pub fn open(dir: &Path) -> Result<Cache, CacheError> {
        fs::create_dir_all(dir.join("entries")).map_err(io_error("create", dir))?;
        Ok(Cache {
            dir: dir.to_path_buf(),
        })
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.dir.join("entries").join(encode(key))
    }

    fn lock(&self, exclusive: bool) -> Result<File, CacheError> {
        let path = self.dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        }
        .map_err(io_error("lock", &path))?;
        Ok(file)
    }

    /// An entry's `meta.json`: read as untrusted input (a regular file, of bounded size).
    fn meta(entry: &Path) -> Option<Meta> {
        let text = crate::store::read_regular(&entry.join("meta.json"), 64 * 1024).ok()??;
        serde_json::from_slice(&text).ok()
    }

    /// The entry to restore: `key` itself, else for each fallback prefix in order, the newest
    /// entry whose key starts with it.
    pub fn find(&self, key: &str, fallbacks: &[String]) -> Option<Meta> {
        if let Some(meta) = Self::meta(&self.entry(key)) {
            return Some(meta);
        }
        let all: Vec<Meta> = fs::read_dir(self.dir.join("entries"))
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| Self::meta(&e.path()))
            .collect();
        fallbacks.iter().find_map(|prefix| {
            all.iter()
                .filter(|m| m.key.starts_with(prefix.as_str()))
                .max_by_key(|m| m.saved)
                .cloned()
        })
    }

    /// Copies an entry's files back, as `writer`: those of `src/` under `source`, those of
    /// `root/` to their absolute paths, each only when `wanted` names it. Files that exist are
    /// replaced.
    ///
    /// An entry is untrusted input: a cache may be shared by builds of different trust (a pull
    /// request's among them), and its folder may be changed by hand. A file is restored only
    /// where the build's own `cache.paths` says, never through a link (one the entry holds, one
    /// in the source, or one on an absolute path), never above the source for a relative path;
    /// a link is restored only when it is relative and stays inside what it is restored in;
    /// anything else (a device, a FIFO, a file that claims far more bytes than it holds) is
    /// skipped, and each skip is said.
    pub fn restore(
        &self,
        key: &str,
        source: &Path,
        wanted: &Wanted,
        writer: artifacts::Identity<'_>,
    ) -> Result<Restored, CacheError> {
        let _shared = self.lock(false)?;
        let entry = self.entry(key);
        let mut restored = Restored::default();
        for (part, into, patterns) in [
            ("src", source, &wanted.relative),
            ("root", Path::new("/"), &wanted.absolute),
        ] {
            let from = entry.join(part);
            if !fs::symlink_metadata(&from).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let base = writer
                .run(|| platform::NoFollowDir::open(into))
                .and_then(|opened| opened)
                .map_err(io_error("open", into))?;
            let mut place = Place {
                base,
                parent: None,
                writer,
            };
            for file in walkdir::WalkDir::new(&from)
                .min_depth(1)
                .sort_by_file_name()
            {
                let file = match file {
                    Ok(file) => file,
                    Err(e) => {
                        restored.skip(
                            &e.path().unwrap_or(&from).display().to_string(),
                            &e.to_string(),
                        );
                        continue;
                    }
                };
                if file.file_type().is_dir() {
                    continue;
                }
                let Some(relative) = file.path().strip_prefix(&from).ok().and_then(Path::to_str)
                else {
                    restored.skip(&file.path().display().to_string(), "its name is not UTF-8");
                    continue;
                };
                let shown = if part == "root" {
                    format!("/{relative}")
                } else {
                    relative.to_owned()
                };
                let Some(pattern) = patterns.iter().find(|p| p.names(relative)) else {
                    restored.skip(&shown, "cache.paths does not name it");
                    continue;
                };
                let outcome = if file.file_type().is_symlink() {
                    place.link(file.path(), relative, &pattern.walk_from)
                } else if file.file_type().is_file() {
                    place.copy(file.path(), relative)
                } else {
                    Err("it is not a file, a directory or a link".to_owned())
                };
                match outcome {
                    Ok(()) => restored.files += 1,
                    Err(why) => restored.skip(&shown, &why),
                }
            }
        }
        Ok(restored)
    }

    /// A new, unused name beside the entries, for one that is being made or thrown away.
    fn scratch(&self, what: &str) -> PathBuf {
        self.dir
            .join("entries")
            .join(format!(".{what}-{}", uuid::Uuid::new_v4()))
    }

    /// Saves the collected files under the key. A keyed entry that exists is kept; `replace`
    /// (the project's unkeyed entry) swaps it for the new one.
    pub fn save(&self, save: &Save<'_>) -> Result<Saved, CacheError> {
        let entry = self.entry(save.key);
        if !save.replace && entry.exists() {
            return Ok(Saved::Exists);
        }
        let staged = self.scratch("staged");
        let result = self.stage_and_swap(&staged, &entry, save);
        if result.is_err() || staged.exists() {
            let _ = fs::remove_dir_all(&staged);
        }
        result
    }

    fn stage_and_swap(
        &self,
        staged: &Path,
        entry: &Path,
        save: &Save<'_>,
    ) -> Result<Saved, CacheError> {
        let Save {
            key,
            replace,
            relative,
            absolute,
            build,
            reader,
        } = *save;
        fs::create_dir_all(staged).map_err(io_error("create", staged))?;
        let mut files: Vec<FileRecord> = Vec::new();
        for (part, collection) in [("src", relative), ("root", absolute)] {
            if let Some(c) = collection {
                files.extend(artifacts::to_folder(
                    &c.entries,
                    &staged.join(part),
                    reader,
                )?);
            }
        }
        let meta = Meta {
            key: key.to_owned(),
            saved: jiff::Timestamp::now(),
            build: build.to_owned(),
            files: files.len(),
        };
        let json = serde_json::to_vec_pretty(&meta).unwrap_or_default();
        let meta_path = staged.join("meta.json");
        fs::write(&meta_path, json).map_err(io_error("write", &meta_path))?;
        let _exclusive = self.lock(true)?;
        if !replace {
            // Renaming onto a directory that has files fails: the first save of a key wins.
            return match fs::rename(staged, entry) {
                Ok(()) => Ok(Saved::Saved(files.len())),
                Err(_) if entry.exists() => Ok(Saved::Exists),
                Err(e) => Err(io_error("save", entry)(e)),
            };
        }
        let trash = self.scratch("old");
        let had_old = fs::rename(entry, &trash).is_ok();
        fs::rename(staged, entry).map_err(io_error("save", entry))?;
        drop(_exclusive);
        if had_old {
            let _ = fs::remove_dir_all(&trash);
        }
        Ok(Saved::Saved(files.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_file_names_that_keep_their_prefixes() {
        for (key, name) in [
            ("npm-key-abc123", "npm-key-abc123"),
            ("a/b c", "a%2Fb%20c"),
            ("..", "%2E."),
            (".hidden", "%2Ehidden"),
            ("v1.2", "v1.2"),
        ] {
            assert_eq!(encode(key), name, "{key}");
        }
        assert!(encode("npm-key-abc").starts_with(&encode("npm-key-")));
    }
}
