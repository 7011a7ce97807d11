//! The paths a buildspec writes in `files`, `base-directory`, `exclude-paths` and `cache.paths`:
//! variables expanded, kept inside their base directory, compiled to globs.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

/// Expands `$NAME` and `${NAME}` from the build's variables; an unset variable is empty, as in the
/// shell. Nothing else is evaluated: a path is not a command.
pub(crate) fn expand_vars(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let starts_well = after
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if starts_well {
                (&after[..end], end)
            } else {
                ("", 0)
            }
        };
        if used == 0 {
            out.push('$');
            rest = after;
        } else {
            out.push_str(vars.get(name).map_or("", String::as_str));
            rest = &after[used..];
        }
    }
    out.push_str(rest);
    out
}

/// Whether a path component holds glob syntax.
pub(crate) fn has_magic(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}

/// `a/./b/../c` → `a/c`, without touching the file system; `None` when the path climbs above
/// its start (`../x`, `a/../../x`).
pub(crate) fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// Joins a path the user wrote to a directory; absolute paths stay as they are.
pub(crate) fn resolve(dir: &Path, path: &str) -> PathBuf {
    if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        dir.join(path)
    }
}

/// `p` made relative to `base` and normalised; `None` when it leaves `base`.
pub(crate) fn inside(base: &Path, path: &str) -> Option<String> {
    if let Some(absolute) = path.strip_prefix('/') {
        let base = base.to_str()?.trim_start_matches('/');
        let normal = normalize(absolute)?;
        if base.is_empty() {
            return Some(normal);
        }
        let base = normalize(base)?;
        if normal == base {
            return Some(String::new());
        }
        return normal
            .strip_prefix(&base)
            .and_then(|r| r.strip_prefix('/'))
            .map(str::to_owned);
    }
    normalize(path)
}

fn glob(text: &str) -> Result<Glob, globset::Error> {
    // `*` stays inside one path component and `**` crosses them, as CodeBuild documents.
    GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// One `files` entry, relative to its base directory.
#[derive(Debug)]
pub(crate) struct FilePattern {
    /// The normalised pattern.
    pub(crate) text: String,
    /// The directory to walk: the components before the first glob (empty for the base itself).
    pub(crate) walk_from: String,
    /// `None` for a literal path: a file, or a directory taken whole.
    pub(crate) matcher: Option<GlobMatcher>,
}

impl FilePattern {
    /// Compiles a pattern already made relative to its base (see [`inside`]).
    pub(crate) fn new(relative: &str) -> Result<Self, String> {
        let text = relative.to_owned();
        let components: Vec<&str> = text.split('/').collect();
        let literal = components.iter().take_while(|c| !has_magic(c)).count();
        if literal == components.len() {
            return Ok(FilePattern {
                walk_from: text.clone(),
                text,
                matcher: None,
            });
        }
        let matcher = glob(&text)
            .map_err(|e| e.kind().to_string())?
            .compile_matcher();
        Ok(FilePattern {
            walk_from: components[..literal].join("/"),
            text,
            matcher: Some(matcher),
        })
    }

    /// Whether the pattern names the file at `relative` (to its base): as a glob, or as a
    /// literal path that is the file or a directory above it.
    pub(crate) fn names(&self, relative: &str) -> bool {
        match &self.matcher {
            Some(m) => m.is_match(relative),
            None => {
                self.walk_from.is_empty()
                    || relative == self.walk_from
                    || relative
                        .strip_prefix(self.walk_from.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

/// `exclude-paths`: a file is left out when a pattern matches it or one of its directories.
#[derive(Debug, Default)]
pub(crate) struct Excludes {
    set: Option<GlobSet>,
}

impl Excludes {
    /// Compiles the patterns, each relative to the base directory.
    pub(crate) fn new(patterns: &[String]) -> Result<Self, String> {
        if patterns.is_empty() {
            return Ok(Excludes::default());
        }
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            let pattern = pattern.trim_start_matches("./").trim_end_matches('/');
            builder.add(glob(pattern).map_err(|e| format!("{pattern}: {}", e.kind()))?);
        }
        let set = builder.build().map_err(|e| e.to_string())?;
        Ok(Excludes { set: Some(set) })
    }

    /// Whether `relative` (a file or a directory) is excluded.
    pub(crate) fn excludes(&self, relative: &str) -> bool {
        self.set.as_ref().is_some_and(|s| s.is_match(relative))
    }
}

/// The directories a `base-directory` names: itself, or every directory its glob matches, in
/// sorted order. The path is already expanded and resolved against the source directory.
pub(crate) fn base_directories(path: &Path) -> Vec<PathBuf> {
    let text = path.to_string_lossy();
    if !has_magic(&text) {
        return if path.is_dir() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let mut found = vec![PathBuf::from(if path.is_absolute() { "/" } else { "" })];
    for component in path.components() {
        let part = match component {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => continue,
            Component::ParentDir => {
                found.iter_mut().for_each(|d| d.push(".."));
                continue;
            }
            Component::Normal(part) => part.to_string_lossy(),
        };
        if !has_magic(&part) {
            found.iter_mut().for_each(|d| d.push(part.as_ref()));
            found.retain(|d| d.is_dir());
            continue;
        }
        let Ok(matcher) = glob(&part).map(|g| g.compile_matcher()) else {
            return Vec::new();
        };
        let mut next = Vec::new();
        for dir in &found {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<_> = entries
                .filter_map(Result::ok)
                .filter(|e| matcher.is_match(e.file_name()))
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            names.sort();
            next.extend(names);
        }
        found = next;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_like_the_shell() {
        let vars: BTreeMap<String, String> = [("A", "x"), ("B_2", "y")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for (text, want) in [
            ("$A/b", "x/b"),
            ("${A}b", "xb"),
            ("$B_2-$A", "y-x"),
            ("$UNSET/c", "/c"),
            ("cost$", "cost$"),
            ("$1x", "$1x"),
            ("${A", "${A"),
            ("*.$A", "*.x"),
        ] {
            assert_eq!(expand_vars(text, &vars), want, "{text}");
        }
    }

    #[test]
    fn normalising_refuses_to_climb() {
        for (path, want) in [
            ("a/./b/../c", Some("a/c")),
            ("./a", Some("a")),
            ("a/..", Some("")),
            ("../a", None),
            ("a/../../b", None),
            ("a//b/", Some("a/b")),
        ] {
            assert_eq!(normalize(path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn absolute_paths_are_inside_only_under_their_base() {
        let base = Path::new("/src/app");
        for (path, want) in [
            ("/src/app/out/x", Some("out/x")),
            ("/src/app", Some("")),
            ("/src/apple/x", None),
            ("/etc/passwd", None),
            ("/src/app/../other", None),
            ("out/../x", Some("x")),
        ] {
            assert_eq!(inside(base, path).as_deref(), want, "{path}");
        }
        assert_eq!(
            inside(Path::new("/"), "/root/.m2").as_deref(),
            Some("root/.m2")
        );
    }

    #[test]
    fn globs_start_walking_at_their_literal_directory() {
        for (pattern, walk_from, literal) in [
            ("target/release/app", "target/release/app", true),
            ("dist/**/*", "dist", false),
            ("**/*", "", false),
            ("a/b*/c", "a", false),
            ("*.txt", "", false),
        ] {
            let p = FilePattern::new(pattern).expect("compiles");
            assert_eq!(p.walk_from, walk_from, "{pattern}");
            assert_eq!(p.matcher.is_none(), literal, "{pattern}");
        }
    }

    #[test]
    fn stars_stay_in_one_component_and_double_stars_cross() {
        let cases = [
            ("*", "a.txt", true),
            ("*", "d/a.txt", false),
            ("dir/*", "dir/a", true),
            ("dir/*", "dir/sub/a", false),
            ("**/*", "a", true),
            ("**/*", "d/e/a", true),
            ("dir/**/*", "dir/a", true),
            ("dir/**/*", "dir/x/y/a", true),
            ("dir/**/*", "other/a", false),
            ("*/my-file-3.txt", "my-subdirectory/my-file-3.txt", true),
            ("file[0-9].log", "file7.log", true),
            ("file[0-9].log", "filex.log", false),
            ("*.{js,css}", "app.css", true),
        ];
        for (pattern, path, want) in cases {
            let p = FilePattern::new(pattern).expect("compiles");
            let matched = p.matcher.as_ref().is_some_and(|m| m.is_match(path));
            assert_eq!(matched, want, "{pattern} ~ {path}");
        }
    }

    #[test]
    fn excludes_match_files_and_whole_directories() {
        let ex = Excludes::new(&[
            "*.tmp".to_owned(),
            "node_modules".to_owned(),
            "logs/**".to_owned(),
        ])
        .expect("compiles");
        assert!(ex.excludes("a.tmp"));
        assert!(!ex.excludes("d/a.tmp"));
        assert!(ex.excludes("node_modules"));
        assert!(ex.excludes("logs/x/y.txt"));
        assert!(!ex.excludes("src/main.rs"));
    }
}
