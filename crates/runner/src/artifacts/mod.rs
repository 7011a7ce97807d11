//! What a build leaves behind: the files its artifact sets, report groups and cache take, and
//! where they go.

mod collect;
pub(crate) mod pattern;
mod write;

pub use collect::{CollectError, Collection, Entry, Failed, Rules, collect};
pub use write::{FileRecord, WriteError, replace, to_folder, to_zip};
