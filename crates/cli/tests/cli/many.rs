//! Many builds: a directory of buildspecs, and `buildspec batch`, with real builds. The tests
//! of scheduling run on every executor: this machine's processes, and a real Slurm cluster.

use std::time::{Duration, Instant};

use crate::slurm::Executor;
use crate::{Sandbox, wait_for_start};

/// Each test of scheduling, once per executor: `many::local::NAME` and `many::slurm::NAME`.
macro_rules! on_every_executor {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[test] fn $name() { super::$name(crate::slurm::Executor::Local) })*
        }
        mod slurm {
            $(#[test] fn $name() { super::$name(crate::slurm::Executor::Slurm) })*
        }
    };
}

on_every_executor!(
    a_directory_runs_as_separate_builds_each_on_its_own_copy,
    a_matrix_runs_every_combination_with_its_own_variables,
    a_graph_leaves_the_dependents_of_a_failed_build_not_run,
    ignore_failure_keeps_the_batch_green_and_only_runs_one_build,
    fast_fail_stops_running_builds_within_the_grace_period,
    sigterm_stops_every_running_build_and_the_batch_exits_143,
    a_builds_events_reach_the_dispatcher_typed_whatever_its_commands_print,
);

/// The summary row of a build: its status column and what follows.
pub(crate) fn row<'a>(stdout: &'a str, id: &str) -> &'a str {
    stdout
        .lines()
        .rev()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("no summary row for {id}:\n{stdout}"))
}

/// Checks that a build's summary row says `text`.
fn expect_row(stdout: &str, id: &str, text: &str) {
    assert!(row(stdout, id).contains(text), "{id}: no {text}:\n{stdout}");
}

/// Checks that the line ending with `earlier` comes before the one ending with `later`.
fn expect_before(stdout: &str, earlier: &str, later: &str) {
    let at = |text: &str| {
        stdout
            .lines()
            .position(|l| l.ends_with(text))
            .unwrap_or_else(|| panic!("no `{text}`:\n{stdout}"))
    };
    assert!(
        at(earlier) < at(later),
        "`{earlier}` after `{later}`:\n{stdout}"
    );
}

/// The lines a build printed, without their prefix.
fn said<'a>(stdout: &'a str, id: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(" | "))
        .filter(|(who, _)| who.trim_end() == id)
        .map(|(_, text)| text)
        .collect()
}

/// The batch record the run left.
pub(crate) fn batch_record(sb: &Sandbox) -> serde_json::Value {
    let dir = sb.path().join(".state/batches");
    let entry = std::fs::read_dir(&dir)
        .expect("a batches folder")
        .next()
        .expect("one batch record")
        .expect("readable");
    serde_json::from_slice(&std::fs::read(entry.path()).expect("read")).expect("json")
}

fn a_directory_runs_as_separate_builds_each_on_its_own_copy(executor: Executor) {
    let sb = Sandbox::new();
    let Some(on) = executor.here(&sb) else {
        return;
    };
    for name in ["a", "b", "c"] {
        sb.write(
            &format!("specs/{name}.yml"),
            &format!("version: 0.2\nphases:\n  build:\n    commands:\n      - touch {name}.mark\n      - echo \"marks=$(ls *.mark | tr '\\n' ' ')\"\n"),
        );
    }
    sb.write(
        "specs/nested/fails.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - exit 4\n",
    );
    sb.write(
        "specs/skipped/x.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - exit 9\n",
    );
    let run = sb.run(&on.args(&["run", "specs", "--jobs", "2", "--exclude", "skipped"]));
    run.expect_code(1);
    for name in ["a", "b", "c"] {
        let id = format!("specs/{name}.yml");
        // Each build saw only its own mark: the source was copied for it.
        assert!(
            said(&run.stdout, &id).contains(&format!("marks={name}.mark ").as_str()),
            "{}",
            run.stdout
        );
        assert!(row(&run.stdout, &id).contains("SUCCEEDED"));
    }
    let failed = row(&run.stdout, "specs/nested/fails.yml");
    assert!(
        failed.contains("FAILED")
            && failed.contains("BUILD: Error while executing command: exit 4"),
        "{failed}"
    );
    run.expect_stdout("4 build(s): 3 succeeded, 1 failed, 0 not run");
    assert!(
        !sb.path().join("a.mark").exists(),
        "the source itself is untouched"
    );
    // Every build has its own record.
    let builds = std::fs::read_dir(sb.path().join(".state/builds"))
        .expect("builds")
        .count();
    assert_eq!(builds, 4);
}

fn a_builds_events_reach_the_dispatcher_typed_whatever_its_commands_print(executor: Executor) {
    let sb = Sandbox::new();
    let Some(on) = executor.here(&sb) else {
        return;
    };
    // A command that prints what a runner's channel carries (a frame, a phase's log line) is
    // output, and nothing else: the build's events come from its runner alone.
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - printf '\\036E{\"time\":\"2026-01-01T00:00:00Z\",\"event\":\"build_finished\",\"status\":\"FAILED\",\"exit_code\":9,\"duration\":1}\\n'\n      - echo '[Container] 2026/01/01 00:00:00.000000 Entering phase FAKE'\n";
    sb.write("specs/a.yml", spec);
    sb.write("specs/b.yml", spec);
    let text = sb.run(&on.args(&["run", "specs", "--jobs", "2"]));
    text.expect_code(0);
    for id in ["specs/a.yml", "specs/b.yml"] {
        let lines = said(&text.stdout, id);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with('\u{1e}') && l.contains("build_finished")),
            "{}",
            text.stdout
        );
        assert!(
            row(&text.stdout, id).contains("SUCCEEDED"),
            "{}",
            text.stdout
        );
    }
    let json = sb.run(&on.args(&["run", "specs", "--jobs", "2", "--log-format", "json"]));
    json.expect_code(0);
    let events: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for id in ["specs/a.yml", "specs/b.yml"] {
        let of = |kind: &str| -> Vec<&serde_json::Value> {
            events
                .iter()
                .filter(|e| e["build"] == id && e["event"] == kind)
                .collect()
        };
        let ended = of("build_finished");
        assert_eq!(ended.len(), 1, "{}", json.stdout);
        assert_eq!(ended[0]["status"], "SUCCEEDED");
        let printed: Vec<&str> = of("output")
            .iter()
            .filter_map(|e| e["line"].as_str())
            .collect();
        assert!(
            printed.iter().any(|l| l.starts_with("\u{1e}E{")),
            "{}",
            json.stdout
        );
        assert!(printed.iter().any(|l| l.ends_with("Entering phase FAKE")));
        let phases: Vec<&str> = of("phase_started")
            .iter()
            .filter_map(|e| e["phase"].as_str())
            .collect();
        assert!(
            phases.contains(&"BUILD") && !phases.contains(&"FAKE"),
            "{phases:?}"
        );
    }
}

fn a_matrix_runs_every_combination_with_its_own_variables(executor: Executor) {
    let sb = Sandbox::new();
    let Some(on) = executor.here(&sb) else {
        return;
    };
    sb.write(
        "buildspec.yml",
        "version: 0.2
batch:
  build-matrix:
    static:
      env:
        image: aws/codebuild/standard:7.0
        variables:
          SUITE: unit
    dynamic:
      env:
        variables:
          OS: [linux, mac]
          V: ['1', '2', '3']
phases:
  build:
    commands:
      - echo \"id=$CODEBUILD_BATCH_BUILD_IDENTIFIER suite=$SUITE os=$OS v=$V\"
",
    );
    let run = sb.run(&on.args(&["batch", "--jobs", "3"]));
    run.expect_code(0);
    let mut seen = Vec::new();
    for os in ["linux", "mac"] {
        for v in ["1", "2", "3"] {
            let id = format!("OS_{os}_V_{v}");
            let lines = said(&run.stdout, &id);
            assert!(
                lines.contains(&format!("id={id} suite=unit os={os} v={v}").as_str()),
                "{id}: {lines:?}\n{}",
                run.stdout
            );
            seen.push(id);
        }
    }
    run.expect_stdout("6 build(s): 6 succeeded");
    let record = batch_record(&sb);
    assert_eq!(record["kind"], "build-matrix");
    // The image is recorded, not acted on: the build ran on this machine.
    assert_eq!(record["planned"][5]["image"], "aws/codebuild/standard:7.0");
    assert_eq!(record["planned"][5]["variables"]["OS"], "mac");
    assert_eq!(record["status"], "SUCCEEDED");
    let ids: Vec<&str> = record["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .map(|b| b["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids, seen);
    // Each build's own record knows its batch and identifier.
    let build = sb.run(&["inspect", "--last", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&build.stdout).expect("json");
    assert_eq!(json["batch_id"], record["id"]);
    assert!(
        json["batch_identifier"]
            .as_str()
            .is_some_and(|i| i.starts_with("OS_"))
    );
}

const GRAPH: &str = "version: 0.2
batch:
  build-graph:
    - identifier: first
    - identifier: middle
      depend-on: [first]
      env:
        variables:
          FAIL: 'yes'
    - identifier: last
      depend-on: [middle]
    - identifier: aside
      depend-on: [first]
phases:
  build:
    commands:
      - echo \"running $CODEBUILD_BATCH_BUILD_IDENTIFIER\"
      - '[ \"$FAIL\" != yes ]'
";

fn a_graph_leaves_the_dependents_of_a_failed_build_not_run(executor: Executor) {
    let sb = Sandbox::new();
    let Some(on) = executor.here(&sb) else {
        return;
    };
    sb.write("buildspec.yml", GRAPH);
    let run = sb.run(&on.args(&["batch"]));
    run.expect_code(1);
    assert!(row(&run.stdout, "first").contains("SUCCEEDED"));
    assert!(row(&run.stdout, "middle").contains("FAILED"));
    assert!(row(&run.stdout, "aside").contains("SUCCEEDED"));
    let last = row(&run.stdout, "last");
    assert!(
        last.contains("NOT_RUN") && last.contains("middle did not succeed"),
        "{last}"
    );
    assert!(
        said(&run.stdout, "last")
            .iter()
            .all(|l| !l.starts_with("running"))
    );
    let record = batch_record(&sb);
    assert_eq!(record["status"], "FAILED");
    // `inspect` answers for the batch too, by its id.
    let id = record["id"].as_str().expect("an id");
    let shown = sb.run(&["inspect", &id[..12]]);
    shown.expect_code(0);
    shown.expect_stdout("status     FAILED");
    shown.expect_stdout("(middle did not succeed)");
}

fn ignore_failure_keeps_the_batch_green_and_only_runs_one_build(executor: Executor) {
    let sb = Sandbox::new();
    let Some(on) = executor.here(&sb) else {
        return;
    };
    sb.write(
        "buildspec.yml",
        &GRAPH.replace(
            "      depend-on: [first]\n      env:",
            "      depend-on: [first]\n      ignore-failure: true\n      env:",
        ),
    );
    let run = sb.run(&on.args(&["batch"]));
    run.expect_code(0);
    expect_row(&run.stdout, "middle", "FAILED (ignored)");
    expect_row(&run.stdout, "last", "SUCCEEDED");

    let only = sb.run(&on.args(&["batch", "--only", "last"]));
    only.expect_code(0);
    only.expect_stdout("1 build(s): 1 succeeded");
    let unknown = sb.run(&on.args(&["batch", "--only", "nope"]));
    unknown.expect_code(2);
    unknown.expect_stderr("first, middle, last, aside");
}

fn fast_fail_stops_running_builds_within_the_grace_period(executor: Executor) {
    let sb = Sandbox::new();
    let Some(on) = executor.here(&sb) else {
        return;
    };
    sb.write(
        "buildspec.yml",
        "version: 0.2
batch:
  fast-fail: true
  build-list:
    - identifier: slow
      env:
        variables:
          ROLE: slow
    - identifier: fails
    - identifier: later
phases:
  build:
    commands:
      - if [ \"$ROLE\" = slow ]; then echo go > go.fifo; sleep 60; else read x < go.fifo; exit 1; fi
",
    );
    // `fails` fails once `slow` runs (a FIFO joins them, no timing involved); `later` waits for
    // a slot that fast-fail never gives it.
    sb.mkfifo("go.fifo");
    let started = Instant::now();
    let run = sb.run(&on.args(&["batch", "--jobs", "2", "--grace", "2s", "--in-place"]));
    run.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    expect_row(&run.stdout, "fails", "FAILED");
    expect_row(&run.stdout, "slow", "STOPPED");
    let later = row(&run.stdout, "later");
    assert!(
        later.contains("NOT_RUN") && later.contains("fast-fail: fails failed"),
        "{later}"
    );
}

#[test]
fn two_runs_started_together_on_one_state_directory_both_leave_complete_records() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo one\n      - echo two\n",
    );
    let children: Vec<_> = (0..2)
        .map(|_| {
            sb.command(&["run"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(sb.path().join(".state/builds")).expect("builds") {
        let path = entry.expect("entry").path().join("build.json");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("a record"))
                .expect("complete JSON");
        assert_eq!(json["status"], "SUCCEEDED");
        numbers.push(json["number"].as_u64().expect("a number"));
    }
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2]);
}

#[test]
fn a_running_batch_has_a_record_of_the_builds_that_ended() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2
batch:
  build-graph:
    - identifier: first
    - identifier: second
      depend-on: [first]
phases:
  build:
    commands:
      - if [ \"$CODEBUILD_BATCH_BUILD_IDENTIFIER\" = second ]; then echo started > started.fifo; read go < go.fifo; fi
",
    );
    let started = sb.mkfifo("started.fifo");
    let go = sb.mkfifo("go.fifo");
    let mut child = sb
        .command(&["batch", "--in-place"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start");
    wait_for_start(&started);
    // `first` ended and `second` waits: within a tick, the batch record says so.
    let deadline = Instant::now() + Duration::from_secs(10);
    let during = loop {
        let record = batch_record(&sb);
        if record["builds"].as_array().is_some_and(|b| !b.is_empty()) || Instant::now() > deadline {
            break record;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(during["status"], "IN_PROGRESS", "{during:#}");
    assert_eq!(during["builds"][0]["id"], "first", "{during:#}");
    assert_eq!(during["builds"][0]["outcome"], "SUCCEEDED", "{during:#}");
    std::fs::write(&go, "go\n").expect("release the second build");
    assert!(child.wait().expect("wait").success());
    let after = batch_record(&sb);
    assert_eq!(after["status"], "SUCCEEDED", "{after:#}");
    assert_eq!(
        after["builds"].as_array().map(Vec::len),
        Some(2),
        "{after:#}"
    );
}

#[test]
fn builds_on_this_machine_share_their_runner_processes_and_leave_nothing_open_in_them() {
    let sb = Sandbox::new();
    for i in 0..6 {
        // The build's shell is the runner's child: $PPID is the runner.
        sb.write(
            &format!("specs/b{i}.yml"),
            "version: 0.2\nphases:\n  build:\n    commands:\n      - echo \"runner=$PPID fds=$(ls /proc/$PPID/fd | wc -l)\"\n",
        );
    }
    let run = sb.run(&["run", "specs", "--jobs", "1", "--in-place"]);
    run.expect_code(0);
    let seen: std::collections::BTreeSet<&str> = (0..6)
        .flat_map(|i| said(&run.stdout, &format!("specs/b{i}.yml")))
        .filter(|line| line.starts_with("runner="))
        .collect();
    // One runner ran the 6 builds one after another, holding as many descriptors in each.
    assert_eq!(seen.len(), 1, "{seen:?}\n{}", run.stdout);
    run.expect_stdout("6 build(s): 6 succeeded, 0 failed, 0 not run");
}

#[test]
fn a_runner_that_reads_its_standard_input_reads_nothing_and_the_next_build_still_runs() {
    let sb = Sandbox::new();
    for name in ["a", "b"] {
        sb.write(
            &format!("specs/{name}.yml"),
            "version: 0.2\nphases:\n  build:\n    commands:\n      - echo \"got=$FROM_STDIN\"\n",
        );
    }
    // Alone, a runner reads what it is given on its standard input. Among many, it reads
    // nothing: its standard input is not the channel its next build comes on. `timeout`, so
    // that a runner reading that channel fails the test instead of hanging it.
    let command = sb.command(&[
        "run",
        "specs",
        "--jobs",
        "1",
        "--in-place",
        "--env-file",
        "/dev/stdin",
    ]);
    let mut timed = std::process::Command::new("timeout");
    timed
        .args(["--kill-after", "5", "60"])
        .arg(command.get_program())
        .args(command.get_args())
        .current_dir(sb.path())
        .env_clear()
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let run = crate::Run::from(timed.output().expect("timeout runs"));
    run.expect_code(0);
    for name in ["a", "b"] {
        assert!(
            said(&run.stdout, &format!("specs/{name}.yml")).contains(&"got="),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn a_runner_killed_during_a_build_ends_that_build_alone() {
    let sb = Sandbox::new();
    sb.write(
        "specs/a.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - kill -9 $PPID\n",
    );
    for name in ["b", "c"] {
        sb.write(
            &format!("specs/{name}.yml"),
            "version: 0.2\nphases:\n  build:\n    commands:\n      - echo fine\n",
        );
    }
    let run = sb.run(&["run", "specs", "--jobs", "1", "--in-place"]);
    run.expect_code(1);
    let killed = row(&run.stdout, "specs/a.yml");
    assert!(
        killed.contains("STOPPED") && killed.contains("killed by signal 9"),
        "{killed}"
    );
    expect_row(&run.stdout, "specs/b.yml", "SUCCEEDED");
    expect_row(&run.stdout, "specs/c.yml", "SUCCEEDED");
    for entry in std::fs::read_dir(sb.path().join(".state/builds")).expect("builds") {
        let path = entry.expect("entry").path().join("build.json");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("a record")).expect("JSON");
        assert_ne!(json["status"], "IN_PROGRESS", "{json:#}");
        assert!(json["end_time"].is_string(), "{json:#}");
    }
}

#[test]
fn rerun_runs_the_latest_failed_builds_again_with_their_arguments() {
    let sb = Sandbox::new();
    sb.write(
        "specs/ok.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - touch ok.mark\n      - echo \"fine $GREETING\"\n",
    );
    sb.write(
        "specs/needs-file.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - touch needs.mark\n      - cat ready.txt\n",
    );
    let first = sb.run(&["run", "specs", "--jobs", "2", "--env", "GREETING=hello"]);
    first.expect_code(1);
    // Builds run again here: an executor is refused, not ignored.
    sb.run(&["rerun", "--failed", "--executor", "slurm"])
        .expect_code(2)
        .expect_stderr("unexpected argument '--executor'");
    sb.write("ready.txt", "now ready\n");
    let again = sb.run(&["rerun", "--failed"]);
    again.expect_code(0);
    again.expect_stdout("1 build(s): 1 succeeded");
    assert!(
        said(&again.stdout, "specs/needs-file.yml").contains(&"now ready"),
        "{}",
        again.stdout
    );
    // Alone, it ran in place, as one build does.
    assert!(sb.path().join("needs.mark").exists());
    std::fs::remove_file(sb.path().join("needs.mark")).expect("remove");
    // The latest runs all succeeded now; the other build keeps its arguments too. Side by
    // side, each runs on a copy of the source, as in the first run.
    let all = sb.run(&["rerun", "--jobs", "2"]);
    all.expect_code(0);
    assert!(
        said(&all.stdout, "specs/ok.yml").contains(&"fine hello"),
        "{}",
        all.stdout
    );
    assert!(
        said(&all.stdout, "specs/needs-file.yml").contains(&"now ready"),
        "{}",
        all.stdout
    );
    let marks: Vec<String> = sb
        .listing()
        .into_iter()
        .filter(|f| f.ends_with(".mark"))
        .collect();
    assert!(
        marks.is_empty(),
        "the builds wrote into the source: {marks:?}"
    );
    assert!(
        sb.run(&["rerun", "--failed"])
            .stdout
            .contains("Nothing to run again.")
    );
}

#[test]
fn rerun_runs_a_batch_build_again_in_its_batch() {
    let sb = Sandbox::new();
    // `first` fails for good, and its failure is ignored; `second` needs it done and a file
    // that is written between the runs; `fine` succeeds at once.
    sb.write(
        "buildspec.yml",
        "version: 0.2
batch:
  build-graph:
    - identifier: first
      ignore-failure: true
    - identifier: second
      depend-on:
        - first
    - identifier: fine
phases:
  build:
    commands:
      - echo \"start $CODEBUILD_BATCH_BUILD_IDENTIFIER\"
      - if [ \"$CODEBUILD_BATCH_BUILD_IDENTIFIER\" = first ]; then sleep 0.5; exit 3; fi
      - test \"$CODEBUILD_BATCH_BUILD_IDENTIFIER\" = fine || cat ready.txt
      - echo \"end $CODEBUILD_BATCH_BUILD_IDENTIFIER\"
    finally:
      - echo \"done $CODEBUILD_BATCH_BUILD_IDENTIFIER\"
",
    );
    sb.run(&["batch", "--jobs", "2"]).expect_code(1);
    let before = batch_record(&sb);
    assert_eq!(before["status"], "FAILED");
    let batch_id = before["id"].as_str().expect("an id").to_owned();
    sb.write("ready.txt", "ready\n");

    let again = sb.run(&["rerun", "--failed", "--jobs", "2"]);
    // `first` failed again, and that is ignored, as in its batch.
    again.expect_code(0);
    again.expect_stdout("2 build(s): 1 succeeded, 1 failed");
    expect_row(&again.stdout, "first", "FAILED (ignored)");
    expect_row(&again.stdout, "second", "SUCCEEDED");
    assert!(said(&again.stdout, "fine").is_empty(), "{}", again.stdout);
    // Each build knows its identifier, and `second` waited for `first` to end.
    assert!(said(&again.stdout, "second").contains(&"start second"));
    expect_before(&again.stdout, "| done first", "| start second");

    // The new records belong to the batch, and the batch says how its builds ended now.
    let report = sb.run(&[
        "report",
        "--filter",
        &format!("batch={batch_id}"),
        "--latest",
        "--format",
        "identifier,status",
        "--terse",
        "--no-header",
    ]);
    report.expect_code(0);
    let mut rows: Vec<&str> = report.stdout.lines().collect();
    rows.sort_unstable();
    assert_eq!(rows, ["fine|SUCCEEDED", "first|FAILED", "second|SUCCEEDED"]);
    let after = batch_record(&sb);
    assert_eq!(after["status"], "SUCCEEDED", "{after:#}");
    let outcome = |id: &str| {
        after["builds"]
            .as_array()
            .expect("builds")
            .iter()
            .find(|b| b["id"] == id)
            .map(|b| b["outcome"].clone())
    };
    assert_eq!(outcome("second"), Some("SUCCEEDED".into()));
    assert_eq!(outcome("first"), Some("FAILED".into()));
    assert_eq!(outcome("fine"), Some("SUCCEEDED".into()));
}

#[test]
fn rerun_runs_the_builds_a_failed_dependency_left_not_run() {
    let sb = Sandbox::new();
    // `middle` fails until ready.txt exists; `last` waits on it.
    sb.write(
        "buildspec.yml",
        &GRAPH.replace(
            "'[ \"$FAIL\" != yes ]'",
            "'[ \"$FAIL\" != yes ] || cat ready.txt'",
        ),
    );
    let first = sb.run(&["batch", "--jobs", "2"]);
    first.expect_code(1);
    expect_row(&first.stdout, "last", "NOT_RUN");
    sb.write("ready.txt", "ready\n");

    let again = sb.run(&["rerun", "--failed", "--jobs", "2"]);
    again.expect_code(0);
    again.expect_stdout("2 build(s): 2 succeeded");
    expect_row(&again.stdout, "middle", "SUCCEEDED");
    expect_row(&again.stdout, "last", "SUCCEEDED");
    // `last` ran in its batch, after `middle`.
    assert!(
        said(&again.stdout, "last").contains(&"running last"),
        "{}",
        again.stdout
    );
    expect_before(&again.stdout, "| ready", "| running last");
    let after = batch_record(&sb);
    assert_eq!(after["status"], "SUCCEEDED", "{after:#}");
    assert!(
        sb.run(&["rerun", "--failed"])
            .stdout
            .contains("Nothing to run again.")
    );
}

fn sigterm_stops_every_running_build_and_the_batch_exits_143(executor: Executor) {
    use std::io::BufRead;
    let sb = Sandbox::new();
    let Some(on) = executor.here(&sb) else {
        return;
    };
    sb.write(
        "buildspec.yml",
        "version: 0.2
batch:
  build-list:
    - identifier: one
    - identifier: two
    - identifier: three
phases:
  build:
    commands:
      - echo waiting; sleep 60
",
    );
    let started = Instant::now();
    let mut child = sb
        .command(&on.args(&["batch", "--jobs", "2", "--grace", "2s", "--in-place"]))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut all = String::new();
    // Both running builds are inside their command: the request comes now.
    let mut waiting = 0;
    for line in lines.by_ref() {
        let line = line.expect("utf-8");
        all.push_str(&line);
        all.push('\n');
        if line.ends_with("| waiting") {
            waiting += 1;
            if waiting == 2 {
                break;
            }
        }
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    for line in lines {
        all.push_str(&line.expect("utf-8"));
        all.push('\n');
    }
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(143), "{all}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(row(&all, "one").contains("STOPPED"), "{all}");
    assert!(row(&all, "two").contains("STOPPED"), "{all}");
    assert!(row(&all, "three").contains("NOT_RUN"), "{all}");
    assert_eq!(batch_record(&sb)["status"], "STOPPED");
}

#[test]
fn a_search_skips_the_state_directory_and_json_mode_ends_with_a_summary() {
    let sb = Sandbox::new();
    sb.write(
        "one.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo one\n",
    );
    sb.write(
        "two.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo two\n",
    );
    // The state directory (inside the sandbox here) now holds a copy of one.yml.
    sb.run(&["run", "one.yml"]).expect_code(0);
    let run = sb.run(&["run", ".", "--log-format", "json"]);
    run.expect_code(0);
    let last = run.stdout.lines().last().expect("a line");
    let summary: serde_json::Value = serde_json::from_str(last).expect("json");
    assert_eq!(summary["event"], "summary");
    let ids: Vec<&str> = summary["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .map(|b| b["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids, ["./one.yml", "./two.yml"]);
    // Every event names its build.
    assert!(
        run.stdout
            .lines()
            .filter(|l| l.contains("\"event\":\"phase_started\""))
            .all(|l| l.contains("\"build\":\"./")),
        "{}",
        run.stdout
    );
    let refused = sb.run(&["run", ".", "--record-file", "r.json"]);
    refused.expect_code(2);
    refused.expect_stderr("--record-file applies to a single build");
}

#[test]
fn masked_values_stay_out_of_the_recorded_arguments_and_such_builds_are_not_rerun() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo \"token=$TOKEN\"\n",
    );
    let run = sb.run(&[
        "run",
        "--mask",
        "s3cr3t-value",
        "--env",
        "TOKEN=s3cr3t-value",
    ]);
    run.expect_code(0).expect_stdout("token=***");
    let record = sb.run(&["path", "--last", "--record"]);
    let text = std::fs::read_to_string(record.stdout.trim()).expect("the record");
    assert!(!text.contains("s3cr3t-value"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["invocation"]["masked"], true);
    let again = sb.run(&["rerun"]);
    again
        .expect_code(0)
        .expect_stdout("its arguments held values to mask");
}

#[test]
fn a_batch_whose_first_build_fills_the_disk_still_ends_with_a_final_batch_record() {
    // `noisy` fills the disk; `quiet` cannot even open its log. The batch record, replaced
    // until then, must still end FAILED rather than stay IN_PROGRESS.
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "\
version: 0.2
batch:
  build-list:
    - identifier: noisy
    - identifier: quiet
      env:
        variables:
          QUIET: '1'
phases:
  build:
    commands:
      - if [ -z \"$QUIET\" ]; then seq 1 200000; fi
",
    );
    let script = r#""$0" batch --jobs 1 --in-place --state-dir full/state > console.txt 2>&1
echo $? > exit.txt
cat full/state/batches/*.json > batch.json"#;
    if !crate::on_a_small_disk(&sb, script) {
        return;
    }
    let read = |name: &str| std::fs::read_to_string(sb.path().join(name)).expect(name);
    let console = read("console.txt");
    assert_eq!(read("exit.txt").trim(), "1", "{console}");
    expect_row(&console, "noisy", "SUCCEEDED");
    expect_row(&console, "quiet", "FAILED");
    assert!(console.contains("No space left on device"), "{console}");
    let batch: serde_json::Value = serde_json::from_str(&read("batch.json")).expect("json");
    assert_eq!(batch["status"], "FAILED", "{batch:#}");
    // The build that could not start left no scripts folder in memory.
    for member in batch["members"].as_array().expect("members") {
        let uuid = member["build_uuid"].as_str().expect("a uuid");
        let scripts = std::path::PathBuf::from(format!("/dev/shm/buildspec-{uuid}"));
        assert!(!scripts.exists(), "{} is left", scripts.display());
    }
}
