//! `buildspec run` and `buildspec inspect`, end to end.

use crate::{Sandbox, workspace};

fn deploy_example(sb: &Sandbox) {
    let example = std::fs::read_to_string(workspace().join("buildspecs/deploy-after-tests.yml"))
        .expect("example");
    sb.write("buildspec.yml", &example);
}

#[test]
fn the_readme_example_skips_the_deploy_when_tests_fail() {
    let sb = Sandbox::new();
    deploy_example(&sb);
    let run = sb.run_with(&["run"], &[("TESTS_SHOULD_FAIL", "1")]);
    run.expect_code(1);
    assert!(
        run.stdout
            .contains("tests finished, CODEBUILD_BUILD_SUCCEEDING=0\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Entering phase POST_BUILD"));
    assert!(run.stdout.contains("tests failed: skipping deploy\n"));
    assert!(!run.stdout.contains("deployed hello"));
    assert!(!sb.path().join("dist").exists(), "nothing was deployed");
    let record = sb.run(&["inspect", "--last", "--json"]);
    record.expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&record.stdout).expect("json");
    assert_eq!(json["status"], "FAILED");
    assert_eq!(json["exported_variables"]["DEPLOYED"], "no");
}

#[test]
fn the_readme_example_deploys_when_tests_pass() {
    let sb = Sandbox::new();
    deploy_example(&sb);
    let run = sb.run(&["run"]);
    run.expect_code(0);
    assert!(run.stdout.contains("deployed hello 1.0."), "{}", run.stdout);
    assert!(sb.path().join("dist/app.txt").exists());
    let record = sb.run(&["inspect", "--last", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&record.stdout).expect("json");
    assert_eq!(json["status"], "SUCCEEDED");
    assert_eq!(json["exported_variables"]["DEPLOYED"], "yes");
    let phases: Vec<&str> = json["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["phase"].as_str().expect("name"))
        .collect();
    assert_eq!(
        phases,
        [
            "DOWNLOAD_SOURCE",
            "INSTALL",
            "PRE_BUILD",
            "BUILD",
            "POST_BUILD",
            "UPLOAD_ARTIFACTS",
            "FINALIZING"
        ]
    );
}

#[test]
fn json_log_format() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo hello\n      - 'false'\n",
    );
    let run = sb.run(&["run", "--log-format", "json"]);
    run.expect_code(1);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    for event in &events {
        assert!(
            event["event"].is_string() && event["time"].is_string(),
            "{event}"
        );
    }
    let find = |kind: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        events
            .iter()
            .find(|e| e["event"] == kind && pred(e))
            .unwrap_or_else(|| panic!("no {kind} event"))
    };
    assert!(
        find("build_started", &|_| true)["id"]
            .as_str()
            .expect("id")
            .starts_with(&format!(
                "{}:",
                sb.path().file_name().expect("name").to_string_lossy()
            ))
    );
    find("phase_started", &|e| e["phase"] == "BUILD");
    find("command_started", &|e| e["command"] == "echo hello");
    find("output", &|e| e["line"] == "hello");
    find("command_finished", &|e| {
        e["command"] == "false" && e["exit_code"] == 1
    });
    find("phase_finished", &|e| {
        e["phase"] == "BUILD"
            && e["status"] == "FAILED"
            && e["context"]["status_code"] == "COMMAND_EXECUTION_ERROR"
    });
    let last = events.last().expect("events");
    assert_eq!(last["event"], "build_finished");
    assert_eq!(last["status"], "FAILED");
    assert_eq!(last["exit_code"], 1);
}

#[test]
fn an_invalid_buildspec_exits_2_and_is_recorded() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  deploy:\n    commands: [x]\n",
    );
    let run = sb.run(&["run"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("error[invalid-phase-name]"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout
            .contains("Phase complete: DOWNLOAD_SOURCE State: FAILED")
    );
    assert!(run.stdout.contains(
        "Phase context status code: YAML_FILE_ERROR Message: Invalid buildspec phase name: deploy."
    ));
    let inspect = sb.run(&["inspect", "--last"]);
    inspect.expect_code(0);
    assert!(
        inspect.stdout.contains("status     FAILED"),
        "{}",
        inspect.stdout
    );
    assert!(
        inspect
            .stdout
            .contains("YAML_FILE_ERROR: Invalid buildspec phase name: deploy.")
    );
}

#[test]
fn timeout_exits_124() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 60\n",
    );
    let run = sb.run(&["run", "--timeout", "1s", "--grace", "1s"]);
    run.expect_code(124);
    assert!(
        run.stdout
            .contains("Phase complete: BUILD State: TIMED_OUT"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Entering phase UPLOAD_ARTIFACTS"));
}

#[test]
fn inspect_by_prefix_and_errors() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        crate::VALID.replace("make", "true").as_str(),
    );
    sb.run(&["run", "--log-format", "json"]).expect_code(0);
    let last = sb.run(&["inspect", "--last", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&last.stdout).expect("json");
    let uuid = json["uuid"].as_str().expect("uuid");
    let by_prefix = sb.run(&["inspect", &uuid[..6]]);
    by_prefix.expect_code(0);
    assert!(by_prefix.stdout.contains(uuid));
    let by_id = sb.run(&["inspect", json["id"].as_str().expect("id"), "--json"]);
    by_id.expect_code(0);
    let missing = sb.run(&["inspect", "zzzz"]);
    missing.expect_code(2);
    assert_eq!(missing.stderr, "error: no build matches `zzzz`\n");
    sb.run(&["inspect"]).expect_code(2);
}

#[test]
fn bad_durations_are_usage_errors() {
    let sb = Sandbox::new();
    let run = sb.run(&["run", "--timeout", "10"]);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("`10` is not a duration: write it like 90s, 5m or 1h30m"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_closed_stdout_does_not_stop_the_build() {
    use std::process::{Command, Stdio};
    let sb = Sandbox::new();
    sb.write("buildspec.yml", "version: 0.2\nphases:\n  build:\n    commands:\n      - seq 1 100000\n      - touch finished\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_buildspec"))
        .args(["run", "--state-dir", ".state"])
        .current_dir(sb.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(
        sb.path().join("finished").exists(),
        "the build ran to its end"
    );
}
