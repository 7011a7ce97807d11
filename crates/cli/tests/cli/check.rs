//! `buildspec check`.

use crate::{Sandbox, VALID};

#[test]
fn default_file_is_buildspec_yml() {
    let sb = Sandbox::new();
    sb.run(&["check"]).expect_code(2);
    sb.write("buildspec.yml", VALID);
    let run = sb.run(&["check"]);
    run.expect_code(0);
    assert_eq!(run.stdout, "ok      buildspec.yml\n");
}

#[test]
fn a_missing_file_is_a_usage_error() {
    let sb = Sandbox::new();
    let run = sb.run(&["check", "nope.yml"]);
    run.expect_code(2);
    assert_eq!(run.stderr, "error: nope.yml: no such file or directory\n");
}

#[test]
fn invalid_files_are_rendered_and_exit_2() {
    let sb = Sandbox::new();
    sb.write("good.yml", VALID);
    sb.write(
        "bad.yml",
        "version: 0.2\nphases:\n  build:\n    comands:\n      - make\n    commands:\n      - echo status: ok\n",
    );
    let run = sb.run(&["check", "good.yml", "bad.yml"]);
    run.expect_code(2);
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn warnings_pass_unless_strict() {
    let sb = Sandbox::new();
    sb.write(
        "b.yml",
        "version: 0.2\nphases:\n  Build:\n    commands: [make]\n",
    );
    let lenient = sb.run(&["check", "b.yml"]);
    lenient.expect_code(0);
    assert!(
        lenient.stdout.starts_with("ok      b.yml (1 warning)\n"),
        "{}",
        lenient.stdout
    );
    assert!(lenient.stdout.contains("warning[key-case]"));
    let strict = sb.run(&["check", "--strict", "b.yml"]);
    strict.expect_code(2);
    strict.expect_stdout("error[key-case]");
}

#[test]
fn directories_are_searched_for_buildspecs_only() {
    let sb = Sandbox::new();
    sb.write("buildspec.yml", VALID);
    sb.write(".codebuild/pr.yml", VALID);
    sb.write("ci/deploy.yaml", VALID);
    sb.write(
        "vendor/lib/buildspec.yml",
        "version: 0.2\nphases: [broken\n",
    );
    sb.write(
        "docker-compose.yml",
        "version: '3'\nservices:\n  web:\n    image: nginx\n",
    );
    sb.write(".github/workflows/ci.yml", "name: CI\non: push\n");
    sb.write("notes.txt", "version: 0.2\nphases:\n");
    let run = sb.run(&["check", ".", "--exclude", "vendor"]);
    run.expect_code(0);
    assert_eq!(
        run.stdout,
        "ok      ./.codebuild/pr.yml\nok      ./buildspec.yml\nok      ./ci/deploy.yaml\nchecked 3 files: 3 valid, 0 invalid (0 errors, 0 warnings)\n"
    );
    // Without the exclusion the broken vendored file is found and fails the check.
    sb.run(&["check", "."]).expect_code(2);
}

#[test]
fn gitignored_directories_are_skipped() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.path().join(".git")).expect("mkdir .git");
    sb.write(".gitignore", "node_modules/\n");
    sb.write("buildspec.yml", VALID);
    sb.write("node_modules/pkg/buildspec.yml", "version: 9\nphases: {}\n");
    let run = sb.run(&["check", "."]);
    run.expect_code(0);
    assert_eq!(run.stdout, "ok      ./buildspec.yml\n");
}

#[test]
fn json_output() {
    let sb = Sandbox::new();
    sb.write("a.yml", VALID);
    sb.write(
        "b.yml",
        "version: 0.2\nphases:\n  deploy:\n    commands: [x]\n",
    );
    let run = sb.run(&["check", "--format", "json", "a.yml", "b.yml"]);
    run.expect_code(2);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(json["valid"], false);
    assert_eq!(json["files"][0]["path"], "a.yml");
    assert_eq!(json["files"][0]["valid"], true);
    assert_eq!(json["files"][1]["errors"], 1);
    let d = &json["files"][1]["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["code"], "invalid-phase-name");
    assert_eq!(d["span"], serde_json::json!({"line": 3, "column": 3}));
}

#[test]
fn the_real_corpus_passes_and_the_invalid_one_fails() {
    let corpus = crate::workspace().join("tests/corpus");
    let sb = Sandbox::new();
    let real = corpus.join("real");
    let run = sb.run(&["check", real.to_str().expect("utf-8")]);
    // Directory search finds the .yml files; every one is valid.
    run.expect_code(0);
    let invalid = corpus.join("invalid");
    let files: Vec<String> = std::fs::read_dir(&invalid)
        .expect("dir")
        .map(|e| e.expect("entry").path().display().to_string())
        .collect();
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let run = sb.run(&args);
    run.expect_code(2);
    run.expect_stdout("0 valid, 8 invalid");
}

#[test]
fn unreadable_files_are_reported_not_fatal() {
    let sb = Sandbox::new();
    sb.write("good.yml", VALID);
    std::fs::write(sb.path().join("binary.yml"), [0xff, 0xfe, 0x00]).expect("write");
    let run = sb.run(&["check", "good.yml", "binary.yml"]);
    run.expect_code(2);
    assert!(run.stdout.contains("ok      good.yml"));
    run.expect_stdout("binary.yml:1:1: not UTF-8 text: the byte 0xff begins no character");
}
