//! Which files an artifact set (or a report group, or the cache) takes, with CodeBuild's log lines.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::Identity;
use super::pattern::{self, Excludes, FilePattern};

/// What to collect, with variables already expanded.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// The `files` patterns.
    pub files: Vec<String>,
    /// `base-directory`: a directory or a glob of several, relative to the source directory.
    pub base_directory: Option<String>,
    /// Flatten every file into the root.
    pub discard_paths: bool,
    /// Patterns to leave out, relative to the base directory.
    pub exclude: Vec<String>,
    /// Keep symlinks as links instead of following them.
    pub enable_symlinks: bool,
}

/// One collected file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path in the artifact (`/`-separated, relative).
    pub path: String,
    /// Where it is now.
    pub source: PathBuf,
    /// For a symlink kept as a link: its target, as written in the link.
    pub link: Option<PathBuf>,
}

/// The files of a set, and what collecting them logged.
#[derive(Debug, Default)]
pub struct Collection {
    /// The files, in sorted order of their artifact paths' sources.
    pub entries: Vec<Entry>,
    /// CodeBuild's log lines and our warnings, in order.
    pub messages: Vec<String>,
}

/// Why a set could not be collected (CodeBuild's wording, as UPLOAD_ARTIFACTS's context).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollectError {
    /// `base-directory` matches no directory.
    #[error("no matching base directory path found for {0}")]
    NoBaseDirectory(String),
    /// No `files` entry matches a file.
    #[error("no matching artifact paths found")]
    NoMatch,
    /// An `exclude-paths` entry is not a valid glob.
    #[error("invalid exclude-paths entry {0}")]
    BadExclude(String),
    /// The files cannot be read as the build's user.
    #[error("{0}")]
    Identity(String),
}

/// A set that could not be collected, with what collecting it logged up to then (CodeBuild logs
/// its `Expanding …` and `Skipping invalid file path …` lines before it fails).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Failed {
    /// Why.
    pub error: CollectError,
    /// The log lines so far.
    pub messages: Vec<String>,
}

/// Warnings of one kind beyond this many are counted, not listed.
const WARNINGS_SHOWN: usize = 20;

/// Collects a set's files from `source_dir` (`CODEBUILD_SRC_DIR`), never from the current
/// directory. Entries that match nothing are logged and skipped; only a set that matches nothing
/// at all is an error. Nothing outside the base directory is taken, through `..` or a symlink.
/// The walk is `reader`'s: a directory that user cannot list, or a link that leads where it
/// cannot go, yields nothing.
pub fn collect(
    source_dir: &Path,
    rules: &Rules,
    reader: Identity<'_>,
) -> Result<Collection, Failed> {
    reader
        .run(|| collect_files(source_dir, rules))
        .unwrap_or_else(|e| {
            Err(Failed {
                error: CollectError::Identity(e.to_string()),
                messages: Vec::new(),
            })
        })
}

fn collect_files(source_dir: &Path, rules: &Rules) -> Result<Collection, Failed> {
    let mut out = Collection::default();
    let shown_base = rules.base_directory.as_deref().unwrap_or(".");
    out.messages.extend([
        format!("Expanding base directory path: {shown_base}"),
        "Assembling file list".to_owned(),
        format!("Expanding {shown_base}"),
    ]);
    let bases = match &rules.base_directory {
        Some(dir) => pattern::base_directories(&pattern::resolve(source_dir, dir)),
        None => vec![source_dir.to_path_buf()],
    };
    let fail = |error, messages| Failed { error, messages };
    if bases.is_empty() {
        return Err(fail(
            CollectError::NoBaseDirectory(shown_base.to_owned()),
            out.messages,
        ));
    }
    let excludes = match Excludes::new(&rules.exclude) {
        Ok(e) => e,
        Err(pattern) => return Err(fail(CollectError::BadExclude(pattern), out.messages)),
    };
    let mut warnings = Warnings::default();
    let mut found: Vec<(String, Found)> = Vec::new();
    for base in &bases {
        let shown = match base.strip_prefix(source_dir) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => base.display().to_string(),
        };
        out.messages.extend([
            format!("Expanding file paths for base directory {shown}"),
            "Assembling file list".to_owned(),
        ]);
        let Ok(canonical_base) = base.canonicalize() else {
            continue;
        };
        let mut walker = Walker {
            base,
            canonical_base: &canonical_base,
            excludes: &excludes,
            links: rules.enable_symlinks,
            seen: BTreeMap::new(),
            warnings: &mut warnings,
        };
        for text in &rules.files {
            out.messages.push(format!("Expanding {text}"));
            let Some(relative) = pattern::inside(base, text) else {
                out.messages.push(format!(
                    "Skipping invalid file path {text}: it leaves the base directory"
                ));
                continue;
            };
            let compiled = match FilePattern::new(&relative) {
                Ok(p) => p,
                Err(reason) => {
                    out.messages
                        .push(format!("Skipping invalid file path {text}: {reason}"));
                    continue;
                }
            };
            if walker.walk(&compiled) == 0 {
                out.messages
                    .push(format!("Skipping invalid file path {text}"));
            }
        }
        out.messages
            .push(format!("Found {} file(s)", walker.seen.len()));
        found.extend(walker.seen);
    }
    out.messages.extend(warnings.finish());
    if found.is_empty() {
        return Err(fail(CollectError::NoMatch, out.messages));
    }
    // Paths are unique within one base; only flattening or several bases can make two files
    // land on one path.
    if !rules.discard_paths && bases.len() == 1 {
        out.entries = found
            .into_iter()
            .map(|(path, file)| Entry {
                path,
                source: file.source,
                link: file.link,
            })
            .collect();
        return Ok(out);
    }
    // Two files that land on one path: the first in sorted order wins, the others are named.
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    let mut dropped: Vec<String> = Vec::new();
    for (relative, file) in found {
        let path = if rules.discard_paths {
            relative.rsplit('/').next().unwrap_or(&relative).to_owned()
        } else {
            relative.clone()
        };
        if let Some(winner) = taken.get(&path) {
            dropped.push(format!(
                "warning: {relative} is not collected: {winner} already lands on {path}"
            ));
            continue;
        }
        taken.insert(path.clone(), relative);
        out.entries.push(Entry {
            path,
            source: file.source,
            link: file.link,
        });
    }
    let more = dropped.len().saturating_sub(WARNINGS_SHOWN);
    out.messages
        .extend(dropped.into_iter().take(WARNINGS_SHOWN));
    if more > 0 {
        out.messages.push(format!(
            "warning: {more} more file(s) not collected for the same reason"
        ));
    }
    Ok(out)
}

#[derive(Debug)]
struct Found {
    source: PathBuf,
    link: Option<PathBuf>,
}

/// Warnings about files that are skipped, capped.
#[derive(Debug, Default)]
struct Warnings {
    shown: Vec<String>,
    more: usize,
}

impl Warnings {
    fn push(&mut self, text: String) {
        if self.shown.len() < WARNINGS_SHOWN {
            self.shown.push(text);
        } else {
            self.more += 1;
        }
    }

    fn finish(&mut self) -> Vec<String> {
        let mut all = std::mem::take(&mut self.shown);
        if self.more > 0 {
            all.push(format!("warning: {} more file(s) skipped", self.more));
        }
        all
    }
}

struct Walker<'a> {
    base: &'a Path,
    canonical_base: &'a Path,
    excludes: &'a Excludes,
    links: bool,
    /// Files found so far under this base, by path relative to it.
    seen: BTreeMap<String, Found>,
    warnings: &'a mut Warnings,
}

impl Walker<'_> {
    fn relative<'p>(&self, path: &'p Path) -> Option<&'p str> {
        path.strip_prefix(self.base).ok().and_then(Path::to_str)
    }

    /// Whether a symlink may be followed: its target lies inside the base directory.
    fn stays_inside(&self, path: &Path) -> bool {
        path.canonicalize()
            .is_ok_and(|target| target.starts_with(self.canonical_base))
    }

    /// Adds the files `pattern` matches; returns how many it matched.
    fn walk(&mut self, pattern: &FilePattern) -> usize {
        let root = if pattern.walk_from.is_empty() {
            self.base.to_path_buf()
        } else {
            self.base.join(&pattern.walk_from)
        };
        let Ok(meta) = fs::symlink_metadata(&root) else {
            return 0;
        };
        // The directories on the way to the walk's start must not lead out of the base either.
        if let Some(parent) = root.parent()
            && root != self.base
            && !self.stays_inside(parent)
        {
            self.warnings.push(format!(
                "warning: skipping {}: it lies outside the base directory",
                pattern.text
            ));
            return 0;
        }
        if meta.is_symlink() && !self.links && !self.stays_inside(&root) {
            self.warnings.push(format!(
                "warning: skipping symlink {}: its target is outside the base directory",
                pattern.walk_from
            ));
            return 0;
        }
        let mut matched = 0;
        let mut walk = WalkDir::new(&root)
            .follow_links(!self.links)
            .follow_root_links(!self.links)
            .sort_by_file_name()
            .into_iter();
        while let Some(next) = walk.next() {
            let entry = match next {
                Ok(entry) => entry,
                Err(e) => {
                    let path = e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    self.warnings.push(format!("warning: skipping {path}: {e}"));
                    continue;
                }
            };
            let Some(relative) = self.relative(entry.path()) else {
                self.warnings.push(format!(
                    "warning: skipping {}: the name is not UTF-8",
                    entry.path().display()
                ));
                continue;
            };
            let is_dir = entry.file_type().is_dir();
            if self.excludes.excludes(relative) {
                if is_dir {
                    walk.skip_current_dir();
                }
                continue;
            }
            if entry.path_is_symlink() && !self.links && !self.stays_inside(entry.path()) {
                self.warnings.push(format!(
                    "warning: skipping symlink {relative}: its target is outside the base directory"
                ));
                if is_dir {
                    walk.skip_current_dir();
                }
                continue;
            }
            let keep_link = self.links && entry.path_is_symlink();
            if !(keep_link || entry.file_type().is_file()) {
                continue;
            }
            let wanted = match &pattern.matcher {
                Some(m) => m.is_match(relative),
                None => true,
            };
            if !wanted {
                continue;
            }
            matched += 1;
            let relative = relative.to_owned();
            let link = if keep_link {
                fs::read_link(entry.path()).ok()
            } else {
                None
            };
            self.seen.entry(relative).or_insert_with(|| Found {
                source: entry.into_path(),
                link,
            });
        }
        matched
    }
}
