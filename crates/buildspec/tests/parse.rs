//! How YAML becomes a buildspec: raw scalar text, YAML forms, keys, and hostile input.

use buildspec::PhaseName;
use buildspec::model::{OnFailure, SecretRef};

use crate::{check, codes, valid};

fn variable(yaml_value: &str) -> String {
    let spec = valid(&format!(
        "version: 0.2\nenv:\n  variables:\n    V: {yaml_value}\nphases:\n  build:\n    commands: [true]\n"
    ));
    spec.env.variables["V"].value.0.clone()
}

#[test]
fn scalars_keep_the_text_the_user_wrote() {
    let cases = [
        ("NO", "NO"),
        ("no", "no"),
        ("yes", "yes"),
        ("True", "True"),
        ("0.10", "0.10"),
        ("3.10", "3.10"),
        ("0755", "0755"),
        ("1e3", "1e3"),
        ("0x1F", "0x1F"),
        ("-7", "-7"),
        ("~", ""),
        ("null", ""),
        ("", ""),
        ("\"\"", ""),
        ("'0.10'", "0.10"),
        ("\"a\\tb\"", "a\tb"),
        ("$PATH:/usr/local/bin", "$PATH:/usr/local/bin"),
        (":99", ":99"),
        ("--flag=1", "--flag=1"),
        ("value # a comment", "value"),
    ];
    for (written, expected) in cases {
        assert_eq!(
            variable(written),
            expected,
            "variable written as `{written}`"
        );
    }
}

fn commands(yaml_commands: &str) -> Vec<String> {
    let spec = valid(&format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n{yaml_commands}"
    ));
    spec.phases
        .build
        .expect("build")
        .commands
        .into_iter()
        .map(|c| c.text)
        .collect()
}

#[test]
fn commands_keep_their_text_and_yaml_forms() {
    let cases: &[(&str, &[&str])] = &[
        ("      - false\n", &["false"]),
        (
            "      - true\n      - 1\n      - 0.10\n",
            &["true", "1", "0.10"],
        ),
        ("      - \"echo a: b\"\n", &["echo a: b"]),
        ("      - 'echo a: b'\n", &["echo a: b"]),
        (
            "      - |\n        set -e\n        make\n",
            &["set -e\nmake\n"],
        ),
        (
            "      - >\n        echo a\n        echo b\n",
            &["echo a echo b\n"],
        ),
        (
            "      - >-\n        echo a\n        echo b\n",
            &["echo a echo b"],
        ),
        (
            "      - echo one\n        two\n        three\n",
            &["echo one two three"],
        ),
        ("      - echo a # a comment\n", &["echo a"]),
        ("      - echo a#not-a-comment\n", &["echo a#not-a-comment"]),
        ("    - compact\n    - sequence\n", &["compact", "sequence"]),
        ("      - \"\"\n", &[""]),
    ];
    for (yaml, expected) in cases {
        assert_eq!(commands(yaml), *expected, "commands:\n{yaml}");
    }
}

#[test]
fn commands_know_their_source_line() {
    let spec = valid(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - one\n      - |\n        two\n      - three\n",
    );
    let lines: Vec<u32> = spec
        .phases
        .build
        .expect("build")
        .commands
        .iter()
        .map(|c| c.line)
        .collect();
    assert_eq!(lines[0], 5);
    assert_eq!(lines[2], 8);
    assert!(
        lines[1] == 6 || lines[1] == 7,
        "a block starts at its indicator or its first line"
    );
}

#[test]
fn anchors_aliases_and_merge_keys_work() {
    let spec = valid(
        "\
version: 0.2
x-common: &common
  A: one
  B: two
env:
  variables:
    <<: *common
    B: three
phases:
  install:
    commands: &setup
      - echo setup
  build:
    commands: *setup
",
    );
    let mut vars: Vec<(&str, &str)> = spec
        .env
        .variables
        .iter()
        .map(|(k, v)| (k.as_str(), v.value.0.as_str()))
        .collect();
    vars.sort_unstable();
    assert_eq!(vars, [("A", "one"), ("B", "three")]);
    assert_eq!(
        spec.phases.build.expect("build").commands[0].text,
        "echo setup"
    );
}

#[test]
fn aliased_typed_scalars_keep_their_text() {
    let spec = valid("version: 0.2\nx: &v 0.10\nenv:\n  variables:\n    A: *v\nphases: {}\n");
    assert_eq!(spec.env.variables["A"].value.0, "0.10");
}

#[test]
fn keys_in_another_case_are_read_with_a_warning() {
    let checked = check("version: 0.2\nphases:\n  BUILD:\n    Commands:\n      - make\n");
    assert!(!checked.has_errors());
    assert_eq!(checked.counts(), (0, 2));
    let plan = checked.plan().expect("plan");
    assert_eq!(plan.phase(PhaseName::Build).commands[0].text, "make");
}

#[test]
fn duplicate_keys_keep_the_last_value() {
    let checked = check(
        "version: 0.2\nenv:\n  variables:\n    A: 1\n    A: 2\nphases:\n  build:\n    commands: [a]\n    commands: [b]\n",
    );
    assert_eq!(checked.counts(), (0, 2));
    let spec = checked.buildspec.expect("spec");
    assert_eq!(spec.env.variables["A"].value.0, "2");
    assert_eq!(spec.phases.build.expect("build").commands[0].text, "b");
}

#[test]
fn shapes_that_real_buildspecs_use() {
    // `files` as one string; an empty command list; a phase with only `finally`; a phase with
    // only runtime-versions; `discard-paths: true`; null cache paths (every entry commented out).
    let spec = valid(
        "\
version: 0.2
phases:
  install:
    runtime-versions:
      java: corretto17
  build:
    commands:
  post_build:
    finally:
      - echo done
artifacts:
  files: '**/*'
  discard-paths: true
cache:
  paths:
    # - node_modules/**/*
",
    );
    let artifacts = spec.artifacts.expect("artifacts");
    assert_eq!(artifacts.files.0.len(), 1);
    assert_eq!(artifacts.files.0[0].value, "**/*");
    assert!(spec.cache.expect("cache").paths.0.is_empty());
    assert_eq!(
        spec.phases.post_build.expect("post_build").finally[0].text,
        "echo done"
    );
}

#[test]
fn on_failure_forms() {
    let cases: &[(&str, Option<OnFailure>)] = &[
        ("ABORT", Some(OnFailure::Abort)),
        ("CONTINUE", Some(OnFailure::Continue)),
        (
            "RETRY",
            Some(OnFailure::Retry {
                count: 3,
                pattern: None,
            }),
        ),
        (
            "RETRY-5",
            Some(OnFailure::Retry {
                count: 5,
                pattern: None,
            }),
        ),
        (
            "RETRY-0",
            Some(OnFailure::Retry {
                count: 0,
                pattern: None,
            }),
        ),
        (
            "RETRY-timed out",
            Some(OnFailure::Retry {
                count: 3,
                pattern: Some("timed out".into()),
            }),
        ),
        (
            "RETRY-2-exit status [0-9]+",
            Some(OnFailure::Retry {
                count: 2,
                pattern: Some("exit status [0-9]+".into()),
            }),
        ),
        (
            "RETRY-3x",
            Some(OnFailure::Retry {
                count: 3,
                pattern: Some("3x".into()),
            }),
        ),
        ("RETRY-", None),
        ("abort", None),
        ("STOP", None),
    ];
    for (text, expected) in cases {
        assert_eq!(&OnFailure::parse(text), expected, "on-failure: {text}");
    }
    assert_eq!(
        codes("version: 0.2\nphases:\n  build:\n    on-failure: RETRY-101\n    commands: [x]\n"),
        ["invalid-value"]
    );
    assert!(
        codes("version: 0.2\nphases:\n  build:\n    on-failure: RETRY-100\n    commands: [x]\n")
            .is_empty()
    );
}

#[test]
fn secret_references() {
    let cases = [
        ("prod/db", ("prod/db", None, None, None)),
        (
            "prod/db:password",
            ("prod/db", Some("password"), None, None),
        ),
        (
            "prod/db:password:AWSPREVIOUS",
            ("prod/db", Some("password"), Some("AWSPREVIOUS"), None),
        ),
        (
            "prod/db:password::v1",
            ("prod/db", Some("password"), None, Some("v1")),
        ),
        (
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-a1b2:password",
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-a1b2",
                Some("password"),
                None,
                None,
            ),
        ),
    ];
    for (text, (id, key, stage, version)) in cases {
        let r = SecretRef::parse(text);
        assert_eq!(
            (
                r.secret_id.as_str(),
                r.json_key.as_deref(),
                r.version_stage.as_deref(),
                r.version_id.as_deref()
            ),
            (id, key, stage, version),
            "{text}"
        );
    }
}

#[test]
fn file_level_shapes_are_errors() {
    let cases: &[(&str, &[&str])] = &[
        ("", &["not-a-buildspec"]),
        ("- a\n- b\n", &["not-a-buildspec"]),
        ("just text\n", &["not-a-buildspec"]),
        ("version: 0.2\n", &["missing-phases"]),
        ("version: 0.2\nphases: [build]\n", &["wrong-type"]),
        ("version: 0.3\nphases: {}\n", &["invalid-version"]),
        ("version: '0.2'\nphases: {}\n", &[]),
        ("version: 0.1\nphases: {}\n", &[]),
        (
            "version: 0.2\nbatch:\n  build-fanout:\n    parallelism: 2\n",
            &[],
        ),
        ("version: 0.2\nbatch:\n  fast-fail: true\n", &["batch-kind"]),
        (
            "version: 0.2\nbatch:\n  build-fanout:\n    parallelism: 0\n",
            &["invalid-value"],
        ),
        ("version: 0.2\n---\nversion: 0.2\n", &["yaml-syntax"]),
    ];
    for (yaml, expected) in cases {
        let got = codes(yaml);
        assert_eq!(&got, expected, "{yaml:?}");
    }
}

#[test]
fn hostile_yaml_is_rejected_quickly_and_within_budget() {
    // A billion laughs: 10^9 strings from a few hundred bytes.
    let mut bomb = String::from("version: 0.2\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let prev = format!("*a{}", i - 1);
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            [prev.as_str(); 10].join(", ")
        ));
    }
    bomb.push_str("phases: {}\n");
    assert_eq!(codes(&bomb), ["yaml-budget"]);

    let deep = format!(
        "version: 0.2\nx: {}{}\nphases: {{}}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let got = codes(&deep);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0] == "yaml-budget" || got[0] == "yaml-syntax",
        "{got:?}"
    );

    let huge = "x".repeat(buildspec::MAX_SOURCE_BYTES + 1);
    assert_eq!(codes(&huge), ["yaml-budget"]);
}

#[test]
fn looks_like_a_buildspec() {
    assert!(buildspec::looks_like_buildspec(
        "version: 0.2\nphases:\n  build: {}\n"
    ));
    assert!(buildspec::looks_like_buildspec(
        "version: 0.2\nbatch:\n  build-list: []\n"
    ));
    assert!(!buildspec::looks_like_buildspec(
        "version: '3'\nservices:\n  web: {}\n"
    ));
    assert!(!buildspec::looks_like_buildspec(
        "name: CI\non: push\njobs: {}\n"
    ));
}
