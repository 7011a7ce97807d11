//! The format crate's test suite: one binary, a module per concern.

mod corpus;
mod diagnostics;
mod parse;
mod plan;
mod schema;

use std::path::{Path, PathBuf};

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Checks inline YAML.
pub(crate) fn check(yaml: &str) -> buildspec::Checked {
    buildspec::check(
        buildspec::SourceFile::new("buildspec.yml", yaml),
        &buildspec::Options::default(),
    )
}

/// Checks inline YAML that must be valid, and returns its buildspec.
pub(crate) fn valid(yaml: &str) -> buildspec::Buildspec {
    let checked = check(yaml);
    assert!(
        !checked.has_errors(),
        "unexpected errors:\n{}",
        checked.render()
    );
    checked.buildspec.expect("a valid file has a buildspec")
}

/// The codes of a file's diagnostics.
pub(crate) fn codes(yaml: &str) -> Vec<&'static str> {
    check(yaml)
        .diagnostics
        .iter()
        .map(|d| d.code.as_str())
        .collect()
}
