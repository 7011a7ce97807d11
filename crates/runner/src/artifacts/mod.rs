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
