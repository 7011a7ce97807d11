//! `buildspec report` and `buildspec path` over a state directory with hundreds of records.

use indexmap::IndexMap;
use runner::events::{Context, Phase, Status};
use runner::store::{BuildRecord, PhaseRecord};

use crate::Sandbox;

/// A record as a build leaves it: `i` decides its project, buildspec, status and start time.
fn record(i: u64) -> BuildRecord {
    let start: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().expect("a time");
    let start = start
        .checked_add(jiff::SignedDuration::from_secs(
            i64::try_from(i).expect("small") * 60,
        ))
        .expect("in range");
    let status = match i % 10 {
        0 => Status::Failed,
        7 => Status::TimedOut,
        _ => Status::Succeeded,
    };
    let phase = |phase, status, context: Option<&str>| PhaseRecord {
        phase,
        status,
        start_time: start,
        end_time: Some(start),
        duration_ms: Some(1500),
        contexts: context
            .map(|m| Context {
                status_code: "COMMAND_EXECUTION_ERROR".to_owned(),
                message: m.to_owned(),
            })
            .into_iter()
            .collect(),
        attempts: 1,
    };
    let mut phases = vec![phase(Phase::Install, Status::Succeeded, None)];
    phases.push(match status {
        Status::Succeeded => phase(Phase::Build, Status::Succeeded, None),
        _ => phase(
            Phase::Build,
            status,
            Some("Error while executing command: make test. Reason: exit status 2"),
        ),
    });
    let uuid = format!("{i:08x}-0000-4000-8000-000000000000");
    BuildRecord {
        id: format!("{}:{uuid}", if i.is_multiple_of(2) { "api" } else { "web" }),
        uuid,
        number: i + 1,
        project: if i.is_multiple_of(2) { "api" } else { "web" }.to_owned(),
        buildspec: format!("ci/spec-{}.yml", i % 3),
        source: "/src".to_owned(),
        status,
        start_time: start,
        end_time: Some(
            start
                .checked_add(jiff::SignedDuration::from_secs(3))
                .expect("in range"),
        ),
        initiator: "tester".to_owned(),
        session: "compat".to_owned(),
        phases,
        artifacts: Vec::new(),
        reports: Vec::new(),
        batch_id: i.is_multiple_of(5).then(|| "batch:b1".to_owned()),
        batch_identifier: i.is_multiple_of(5).then(|| format!("member_{}", i % 4)),
        invocation: None,
        exported_variables: IndexMap::new(),
        log_path: "/dev/null".to_owned(),
        log_incomplete: None,
        log_truncated: None,
        exit_code: Some(if status == Status::Succeeded { 0 } else { 1 }),
        runner_pid: 1,
        runner_start: None,
        runner_boot: None,
        runner_host: None,
        runner_version: "0.1.0".to_owned(),
        placement: None,
        unended_processes: Vec::new(),
    }
}

fn state_with(sb: &Sandbox, n: u64) {
    for i in 0..n {
        let r = record(i);
        let dir = sb.path().join(".state/builds").join(&r.uuid);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("build.json"),
            serde_json::to_vec(&r).expect("json"),
        )
        .expect("write");
    }
}

fn lines(stdout: &str) -> Vec<&str> {
    stdout.lines().collect()
}

#[test]
fn filters_select_what_they_say() {
    let sb = Sandbox::new();
    state_with(&sb, 300);
    let cases: &[(&[&str], usize)] = &[
        (&[], 300),
        (&["--failed"], 60),
        (&["--succeeded"], 240),
        (&["--filter", "status=TIMED_OUT"], 30),
        (&["--filter", "project=api", "--failed"], 30),
        (
            &[
                "--filter",
                "project=web",
                "--filter",
                "status=failed,timed_out",
            ],
            30,
        ),
        (&["--filter", "buildspec=ci/spec-1.yml"], 100),
        (&["--filter", "batch=batch:b1"], 60),
        (&["--since", "2026-11-01T04:00:00Z"], 60),
        (&["--until", "2026-11-01T01:00:00Z"], 60),
        (&["--count", "7"], 7),
        // Three buildspecs alone, and twelve buildspec and identifier pairs in the batch.
        (&["--latest"], 3 + 12),
    ];
    for (args, want) in cases {
        let mut all = vec!["report", "--no-header", "--terse", "--format", "id"];
        all.extend_from_slice(args);
        let run = sb.run(&all);
        run.expect_code(0);
        assert_eq!(lines(&run.stdout).len(), *want, "{args:?}\n{}", run.stdout);
    }
}

#[test]
fn latest_comes_before_the_other_filters() {
    let sb = Sandbox::new();
    // Builds 8 (spec-1) and 18 (spec-2) timed out, but later builds of their buildspecs
    // succeeded: they are not the latest. Builds 1, 11 and 21 are the only builds of their
    // batch identifiers, and 28 the latest of spec-0.
    state_with(&sb, 30);
    let run = sb.run(&[
        "report",
        "--latest",
        "--failed",
        "--terse",
        "--no-header",
        "--format",
        "number,buildspec,status",
    ]);
    run.expect_code(0);
    assert_eq!(
        lines(&run.stdout),
        [
            "1|ci/spec-0.yml|FAILED",
            "11|ci/spec-1.yml|FAILED",
            "21|ci/spec-2.yml|FAILED",
            "28|ci/spec-0.yml|TIMED_OUT"
        ]
    );
    let without_latest = sb.run(&[
        "report",
        "--failed",
        "--terse",
        "--no-header",
        "--format",
        "number",
    ]);
    assert_eq!(
        lines(&without_latest.stdout),
        ["1", "8", "11", "18", "21", "28"]
    );
}

#[test]
fn the_table_columns_and_json_are_as_asked() {
    let sb = Sandbox::new();
    state_with(&sb, 300);
    let run = sb.run(&["report", "--failed", "--count", "3"]);
    run.expect_code(0);
    insta::assert_snapshot!(run.stdout);
    let terse = sb.run(&[
        "report",
        "--count",
        "2",
        "--format",
        "number,project,status,failed_phase",
        "--terse",
    ]);
    insta::assert_snapshot!(terse.stdout);
    let json = sb.run(&["report", "--json", "--count", "5"]);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(parsed.as_array().map(Vec::len), Some(5));
    let bad = sb.run(&["report", "--format", "id,colour"]);
    bad.expect_code(2);
    bad.expect_stderr("unknown field `colour`");
    let bad = sb.run(&["report", "--since", "last tuesday"]);
    bad.expect_code(2);
}

#[test]
fn junit_lists_a_suite_per_build_and_a_case_per_phase() {
    let sb = Sandbox::new();
    state_with(&sb, 20);
    let run = sb.run(&[
        "report",
        "--filter",
        "number=10,11",
        "--junit",
        "builds.xml",
    ]);
    run.expect_code(0);
    let xml = std::fs::read_to_string(sb.path().join("builds.xml")).expect("written");
    insta::assert_snapshot!(xml);
}

#[test]
fn path_points_at_a_builds_files() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo hi\n",
    );
    sb.run(&["run"]).expect_code(0);
    let log = sb.run(&["path", "--last", "--log"]);
    log.expect_code(0);
    let text = std::fs::read_to_string(log.stdout.trim()).expect("the log");
    assert!(text.contains("Running command echo hi"), "{text}");
    let record = sb.run(&["path", "--last", "--record"]);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record.stdout.trim()).expect("the record"))
            .expect("json");
    assert_eq!(json["status"], "SUCCEEDED");
    let scripts = sb.run(&["path", "--last", "--scripts"]);
    assert!(std::path::Path::new(scripts.stdout.trim()).is_file());
    let two = sb.run(&["path", "--last", "--log", "--record"]);
    two.expect_code(2);
}
