//! Rendered diagnostics for the mistakes people make, pinned as snapshots. The inputs live in the
//! workspace's `tests/diagnostics/`, one mistake a file.

use buildspec::{Options, SourceFile};

use crate::workspace;

#[test]
fn every_mistake_renders_as_pinned() {
    let dir = workspace().join("tests/diagnostics");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/diagnostics exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "at least 20 mistakes are pinned, found {}",
        files.len()
    );
    for path in files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("readable");
        let checked = buildspec::check(
            SourceFile::new(format!("{name}.yml"), text),
            &Options::default(),
        );
        assert!(
            !checked.diagnostics.is_empty(),
            "{name}: a mistake must produce at least one diagnostic"
        );
        for d in &checked.diagnostics {
            assert!(
                d.span.is_some(),
                "{name}: every diagnostic of a non-empty file points at a line:\n{}",
                checked.render()
            );
        }
        insta::assert_snapshot!(name, checked.render());
    }
}

#[test]
fn strict_turns_warnings_into_errors() {
    let yaml = "version: 0.2\nphases:\n  build:\n    Commands:\n      - make\n";
    let lenient = buildspec::check(SourceFile::new("b.yml", yaml), &Options::default());
    assert!(!lenient.has_errors());
    assert_eq!(lenient.counts(), (0, 1));
    let strict = buildspec::check(SourceFile::new("b.yml", yaml), &Options { strict: true });
    assert!(strict.has_errors());
    assert!(strict.render().contains("--strict"), "{}", strict.render());
    assert!(strict.plan().is_none());
}

#[test]
fn all_problems_are_reported_at_once() {
    let yaml = "\
version: 0.2
env:
  shell: zsh
phases:
  build:
    on-failure: NOPE
    commands:
      - echo a: b
      - # nothing
  deploy:
    commands: [x]
";
    let codes = crate::codes(yaml);
    assert_eq!(
        codes,
        [
            "invalid-value",
            "invalid-value",
            "command-not-string",
            "null-command",
            "invalid-phase-name"
        ]
    );
}

#[test]
fn json_form_of_a_diagnostic() {
    let checked = crate::check("version: 0.2\nphases:\n  build:\n    comands: [make]\n");
    let json = serde_json::to_value(&checked.diagnostics).expect("serializable");
    assert_eq!(
        json,
        serde_json::json!([{
            "severity": "warning",
            "code": "unknown-key",
            "message": "unknown key `comands` in `phases.build`: CodeBuild ignores it",
            "span": { "line": 4, "column": 5 },
            "notes": ["so this phase runs no commands"],
            "help": "did you mean `commands`?"
        }])
    );
}
