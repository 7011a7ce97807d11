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

use crate::artifacts::{self, Collection, FileRecord};

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
    pub reader: artifacts::ReadAs<'a>,
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

    fn meta(entry: &Path) -> Option<Meta> {
        let text = fs::read(entry.join("meta.json")).ok()?;
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

    /// Copies an entry's files back: those of `src/` under `source`, those of `root/` to their
    /// absolute paths. Files that exist are replaced. Returns how many files were restored.
    pub fn restore(&self, key: &str, source: &Path) -> Result<usize, CacheError> {
        let _shared = self.lock(false)?;
        let entry = self.entry(key);
        let mut restored = 0;
        for (part, into) in [("src", source), ("root", Path::new("/"))] {
            let from = entry.join(part);
            if !from.is_dir() {
                continue;
            }
            for file in walkdir::WalkDir::new(&from).min_depth(1) {
                let file = file.map_err(|e| CacheError::Io {
                    action: "read",
                    path: from.display().to_string(),
                    source: e.into(),
                })?;
                let Ok(relative) = file.path().strip_prefix(&from) else {
                    continue;
                };
                let to = into.join(relative);
                if file.file_type().is_dir() {
                    fs::create_dir_all(&to).map_err(io_error("create", &to))?;
                } else if file.path_is_symlink() {
                    let target =
                        fs::read_link(file.path()).map_err(io_error("read", file.path()))?;
                    let _ = fs::remove_file(&to);
                    std::os::unix::fs::symlink(target, &to).map_err(io_error("create", &to))?;
                    restored += 1;
                } else {
                    // A file in place may be read-only or a link: it goes first.
                    let _ = fs::remove_file(&to);
                    fs::copy(file.path(), &to).map_err(io_error("restore", &to))?;
                    restored += 1;
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
