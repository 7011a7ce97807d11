//! What a build leaves behind: the files its artifact sets, report groups and cache take, and
//! where they go.

mod collect;
pub(crate) mod pattern;
mod write;

pub use collect::{CollectError, Collection, Entry, Failed, Rules, collect};
/// `text` as one folder name: characters other than letters, digits, `-`, `_` and `.` become
/// `_`; a name that would be empty, `.` or `..` becomes `fallback`.
pub fn folder_name(text: &str, fallback: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match clean.as_str() {
        "" | "." | ".." => fallback.to_owned(),
        _ => clean,
    }
}

pub use write::{FileRecord, WriteError, replace, to_folder, to_zip};

/// Whose permissions a build's files are read (or, for the cache's restore, written) with: the
/// build's user, for a root runner whose phases run as another user (`run-as`), so that a set
/// takes nothing that user could not read, and a restore writes nowhere it could not write,
/// whatever links are on the way; the runner's own otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity<'a> {
    user: Option<&'a crate::platform::RunAs>,
}

impl<'a> Identity<'a> {
    /// Files read or written as `user` (`None`: as the runner).
    pub(crate) fn user(user: Option<&'a crate::platform::RunAs>) -> Identity<'a> {
        Identity { user }
    }

    /// Runs `f` as this identity.
    pub(crate) fn run<T>(self, f: impl FnOnce() -> T) -> std::io::Result<T> {
        crate::platform::as_user(self.user, f)
    }
}
