//! `schema`, `completions`, `--help`.

use crate::{Sandbox, workspace};

#[test]
fn schema_is_the_shipped_file() {
    let run = Sandbox::new().run(&["schema"]);
    run.expect_code(0);
    let shipped = std::fs::read_to_string(workspace().join("docs/buildspec.schema.json"))
        .expect("shipped schema");
    assert_eq!(run.stdout, shipped);
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef buildspec"),
        ("fish", "complete -c buildspec"),
    ] {
        let run = Sandbox::new().run(&["completions", shell]);
        run.expect_code(0);
        assert!(
            run.stdout.contains(marker),
            "{shell}: {}",
            &run.stdout[..run.stdout.len().min(200)]
        );
    }
}

#[test]
fn every_command_has_help_with_examples() {
    for command in ["check", "plan", "schema", "completions"] {
        let run = Sandbox::new().run(&[command, "--help"]);
        run.expect_code(0);
        assert!(
            run.stdout.contains("Examples:"),
            "{command} --help:\n{}",
            run.stdout
        );
    }
    let top = Sandbox::new().run(&["--help"]);
    top.expect_stdout("Exit codes");
}

#[test]
fn usage_errors_exit_2() {
    let run = Sandbox::new().run(&["frobnicate"]);
    run.expect_code(2);
    let run = Sandbox::new().run(&["check", "--format", "xml"]);
    run.expect_code(2);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    use std::process::Stdio;
    // More output than a pipe holds, so that a write must meet the closed pipe.
    let sb = Sandbox::new();
    for i in 0..4000 {
        sb.write(&format!("specs/buildspec-{i:04}.yml"), crate::VALID);
    }
    let mut child = sb
        .command(&["check", "specs"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
