//! `buildspec plan`: the dry run.

use crate::Sandbox;

const PIPELINE: &str = "\
version: 0.2
env:
  variables:
    STAGE: dev
    EMPTY:
  parameter-store:
    TOKEN: /ci/token
  exported-variables:
    - IMAGE_TAG
phases:
  install:
    runtime-versions:
      python: 3.12
    commands:
      - touch installed-by-install
  build:
    on-failure: CONTINUE
    commands:
      - touch built > also-a-file
      - |
        echo multi
        echo line
    finally:
      - touch finally-ran
  post_build:
    commands:
      - '[ \"$CODEBUILD_BUILD_SUCCEEDING\" = 1 ] && touch deployed'
artifacts:
  files:
    - dist/**/*
  name: app-$(date +%s)
reports:
  unit:
    files: [reports/*.xml]
cache:
  key: deps-$(cat lockfile)
  paths: [.cache/**/*]
";

#[test]
fn plan_executes_nothing() {
    let sb = Sandbox::new();
    sb.write("buildspec.yml", PIPELINE);
    let before = sb.listing();
    let run = sb.run(&["plan", "--clean-env"]);
    run.expect_code(0);
    assert_eq!(sb.listing(), before, "plan created or removed files");
    // The expressions are shown as written, not evaluated.
    run.expect_stdout("name: app-$(date +%s)");
    run.expect_stdout("key: deps-$(cat lockfile)");
}

#[test]
fn text_plan() {
    let sb = Sandbox::new();
    sb.write("buildspec.yml", PIPELINE);
    sb.write(
        "project.env",
        "# project variables\nSTAGE=staging\nREGION_NOTE=x\n",
    );
    let run = sb.run(&[
        "plan",
        "--clean-env",
        "--project",
        "demo",
        "--env",
        "STAGE=prod",
        "--env-file",
        "project.env",
    ]);
    run.expect_code(0);
    let root = sb.path().display().to_string();
    insta::assert_snapshot!(run.stdout.replace(&root, "[SOURCE]"));
}

#[test]
fn json_plan() {
    let sb = Sandbox::new();
    sb.write("buildspec.yml", PIPELINE);
    let run = sb.run(&[
        "plan",
        "--clean-env",
        "--format",
        "json",
        "--env",
        "STAGE=prod",
    ]);
    run.expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let phases: Vec<&str> = plan["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(phases, ["INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD"]);
    assert_eq!(plan["phases"][1]["present"], false);
    assert_eq!(plan["phases"][2]["on_failure"], "CONTINUE");
    assert_eq!(plan["phases"][2]["next_on_failure"], "POST_BUILD");
    assert_eq!(plan["phases"][0]["next_on_failure"], "FINALIZING");
    assert_eq!(
        plan["phases"][2]["commands"][1]["text"],
        "echo multi\necho line\n"
    );
    assert_eq!(plan["phases"][2]["commands"][0]["line"], 19);
    let env = plan["environment"].as_array().expect("environment");
    let var = |name: &str| {
        env.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(var("STAGE")["value"], "prod");
    assert_eq!(var("STAGE")["source"], "override");
    assert_eq!(var("STAGE")["shadows"], serde_json::json!(["buildspec"]));
    assert_eq!(var("EMPTY")["value"], "");
    assert_eq!(var("TOKEN")["secret"], true);
    assert_eq!(var("TOKEN")["value"], serde_json::Value::Null);
    assert_eq!(var("CODEBUILD_BUILD_SUCCEEDING")["value"], "1");
    assert_eq!(var("CODEBUILD_BUILD_ID")["value"], serde_json::Value::Null);
    assert_eq!(
        plan["artifacts"]["primary"]["files"],
        serde_json::json!(["dist/**/*"])
    );
    assert_eq!(plan["exported_variables"], serde_json::json!(["IMAGE_TAG"]));
}

#[test]
fn inherited_environment_and_its_precedence() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nenv:\n  variables:\n    USER: from-buildspec\nphases: {}\n",
    );
    let run = sb.run(&["plan", "--format", "json"]);
    run.expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let env = plan["environment"].as_array().expect("environment");
    let user = env.iter().find(|v| v["name"] == "USER").expect("USER");
    assert_eq!(user["value"], "from-buildspec");
    assert_eq!(user["shadows"], serde_json::json!(["inherited"]));
    let path = env
        .iter()
        .find(|v| v["name"] == "PATH")
        .expect("PATH is inherited");
    assert_eq!(path["source"], "inherited");
    // --clean-env drops the inherited layer.
    let clean = sb.run(&["plan", "--format", "json", "--clean-env"]);
    assert!(!clean.stdout.contains("\"PATH\""));
}

#[test]
fn batch_plan_lists_the_builds() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nbatch:\n  fast-fail: true\n  build-matrix:\n    dynamic:\n      env:\n        variables:\n          A: [x, y]\n          B: [1, 2, 3]\nphases:\n  build:\n    commands: [echo $A$B]\n",
    );
    let run = sb.run(&["plan", "--clean-env", "--format", "json"]);
    run.expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(plan["batch"]["kind"], "build-matrix");
    assert_eq!(plan["batch"]["fast_fail"], true);
    assert_eq!(plan["batch"]["builds"].as_array().expect("builds").len(), 6);
    let text = sb.run(&["plan", "--clean-env"]);
    text.expect_stdout("Batch (build-matrix, fast-fail yes): 6 builds to start");
    text.expect_stdout("  A_y_B_3  A=y  B=3\n");
}

#[test]
fn an_invalid_buildspec_is_not_planned() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - a: b\n",
    );
    let run = sb.run(&["plan"]);
    run.expect_code(2);
    assert!(run.stdout.is_empty());
    run.expect_stderr("error[command-not-string]");
    assert!(
        run.stderr
            .ends_with("error: buildspec.yml is not a valid buildspec\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_env_arguments_are_usage_errors() {
    let sb = Sandbox::new();
    sb.write("buildspec.yml", crate::VALID);
    let run = sb.run(&["plan", "--env", "NOEQUALS"]);
    run.expect_code(2);
    assert_eq!(
        run.stderr,
        "error: `NOEQUALS` is not NAME=VALUE: there is no `=`\n"
    );
    sb.write("bad.env", "A=1\nexport B=2\n");
    let run = sb.run(&["plan", "--env-file", "bad.env"]);
    run.expect_code(2);
    run.expect_stderr("bad.env:2: `export B=2` is not NAME=VALUE");
    let run = sb.run(&["plan", "--env-file", "missing.env"]);
    run.expect_code(2);
    assert!(
        run.stderr
            .starts_with("error: cannot read env file missing.env"),
        "{}",
        run.stderr
    );
}
