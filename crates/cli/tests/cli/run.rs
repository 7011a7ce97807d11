//! `buildspec run` and `buildspec inspect`, end to end.

use crate::{Sandbox, wait_for_start, workspace};

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
    run.expect_stdout("tests finished, CODEBUILD_BUILD_SUCCEEDING=0\n");
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
    run.expect_stdout("deployed hello 1.0.");
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
    run.expect_stderr("error[invalid-phase-name]");
    assert!(
        run.stdout
            .contains("Phase complete: DOWNLOAD_SOURCE State: FAILED")
    );
    assert!(run.stdout.contains(
        "Phase context status code: YAML_FILE_ERROR Message: Invalid buildspec phase name: deploy."
    ));
    let inspect = sb.run(&["inspect", "--last"]);
    inspect.expect_code(0);
    inspect.expect_stdout("status     FAILED");
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
    run.expect_stdout("Phase complete: BUILD State: TIMED_OUT");
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
    let other_project = sb.run(&["inspect", &format!("another-project:{uuid}")]);
    other_project.expect_code(2);
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
    run.expect_stderr("`10` is not a duration: write it like 90s, 5m or 1h30m");
}

#[test]
fn a_closed_stdout_does_not_stop_the_build() {
    use std::process::Stdio;
    let sb = Sandbox::new();
    sb.write("buildspec.yml", "version: 0.2\nphases:\n  build:\n    commands:\n      - seq 1 100000\n      - touch finished\n");
    let mut child = sb
        .command(&["run"])
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

/// Starts `buildspec run` and reads its console until a line containing `marker`, so that the
/// test acts when the build is where it wants it, without sleeping.
#[expect(
    clippy::zombie_processes,
    reason = "the child goes back to the caller, which waits for it"
)]
fn start_until(
    sb: &Sandbox,
    args: &[&str],
    marker: &str,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    String,
) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = sb
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 {
            let _ = child.wait();
            panic!("the build ended before {marker:?}:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains(marker) {
            return (child, reader, seen);
        }
    }
}

fn finish(
    mut child: std::process::Child,
    mut reader: std::io::BufReader<std::process::ChildStdout>,
    mut seen: String,
) -> (i32, String) {
    use std::io::Read;
    reader.read_to_string(&mut seen).expect("read the rest");
    let status = child.wait().expect("wait");
    (status.code().unwrap_or(-1), seen)
}

fn signal(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, signal).expect("signal");
}

#[test]
fn sigterm_stops_the_build_and_keeps_the_record() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo started; sleep 60\n  post_build:\n    commands:\n      - echo post_build ran\n",
    );
    let (child, reader, seen) = start_until(&sb, &["run"], "started");
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let (code, log) = finish(child, reader, seen);
    assert_eq!(code, 143, "{log}");
    assert!(log.contains("Build stopped by SIGTERM"), "{log}");
    assert!(
        log.contains("Phase complete: BUILD State: STOPPED"),
        "{log}"
    );
    assert!(!log.contains("post_build ran"));
    assert!(
        log.contains("Entering phase UPLOAD_ARTIFACTS"),
        "the upload is still attempted"
    );
    let record: serde_json::Value =
        serde_json::from_str(&sb.run(&["inspect", "--last", "--json"]).stdout).expect("json");
    assert_eq!(record["status"], "STOPPED");
    assert_eq!(record["exit_code"], 143);
    assert!(record["end_time"].is_string());
}

#[test]
fn a_second_sigint_kills_at_once_and_skips_the_upload() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - trap '' TERM; echo stubborn; while :; do sleep 1; done\n",
    );
    let started = std::time::Instant::now();
    let (child, reader, seen) = start_until(&sb, &["run", "--grace", "5m"], "stubborn");
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let (child, reader, seen) = {
        // Wait until the runner says it is stopping, then ask again.
        use std::io::BufRead;
        let mut reader = reader;
        let mut seen = seen;
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).expect("read") > 0, "{seen}");
            seen.push_str(&line);
            if line.contains("stopping the running command") {
                break;
            }
        }
        (child, reader, seen)
    };
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let (code, log) = finish(child, reader, seen);
    assert_eq!(code, 130, "{log}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the grace period of 5m was cut short"
    );
    assert!(
        log.contains("SIGINT again: killing the build's processes now"),
        "{log}"
    );
    assert!(!log.contains("Entering phase UPLOAD_ARTIFACTS"), "{log}");
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - trap '' TERM; echo $$ > shell.pid; while :; do sleep 1; done\n",
    );
    let run = sb.run(&["run", "--timeout", "1s", "--grace", "1s"]);
    run.expect_code(124);
    assert!(
        !alive(&sb.path().join("shell.pid")),
        "the stubborn command is gone"
    );
}

#[test]
fn the_default_buildspec_is_at_the_root_of_the_source() {
    let sb = Sandbox::new();
    sb.write(
        "app/buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo in $(basename $PWD)\n",
    );
    let run = sb.run(&["run", "--source", "app"]);
    run.expect_code(0);
    run.expect_stdout("\nin app\n");
    let plan = sb.run(&["plan", "--source", "app", "--clean-env"]);
    plan.expect_code(0);
    assert!(
        plan.stdout.starts_with("Plan for app/buildspec.yml"),
        "{}",
        plan.stdout
    );
}

/// Starts `buildspec run` of the sandbox's buildspec, which writes `started` to `started.fifo`
/// once its command runs, and kills the runner with SIGKILL then.
fn kill_a_runner_mid_build(sb: &Sandbox) {
    let fifo = sb.path().join("started.fifo");
    if !fifo.exists() {
        sb.mkfifo("started.fifo");
    }
    let mut child = sb
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for_start(&fifo);
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

#[test]
fn a_killed_runner_leaves_a_record_the_next_command_completes_and_nothing_running() {
    let sb = Sandbox::new();
    // A daemon of its own session, and the command itself, outlive the killed runner.
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - setsid sleep 600 & echo $! > daemon.pid; echo $$ > sleeper.pid; echo started > started.fifo; exec sleep 60\n",
    );
    // Nothing passes through the runner to say the command started (its console is not read):
    // the command has acted as soon as the FIFO is written, and the runner may be killed
    // before it reads a byte of the command's output. Its record and log must say what ran.
    kill_a_runner_mid_build(&sb);
    let pids: Vec<String> = ["daemon.pid", "sleeper.pid"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(sb.path().join(f))
                .expect("pid")
                .trim()
                .to_owned()
        })
        .collect();
    let record = sb.run(&["inspect", "--last", "--json"]);
    // Should the runner's leftovers survive, the test leaves nothing behind all the same.
    for pid in &pids {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
    }
    record.expect_code(0);
    let json: serde_json::Value =
        serde_json::from_str(&record.stdout).expect("the record is whole JSON");
    let uuid = json["uuid"].as_str().expect("uuid");
    record.expect_stderr(&format!(
        "note: build {} was left IN_PROGRESS by a runner that is gone; its record is completed: FAULT",
        json["id"].as_str().expect("id")
    ));
    assert_eq!(json["status"], "FAULT");
    assert_eq!(json["exit_code"], 3);
    let phases = json["phases"].as_array().expect("phases");
    let build = phases.last().expect("a phase");
    assert_eq!(build["phase"], "BUILD");
    assert_eq!(build["status"], "FAULT");
    assert_eq!(build["contexts"][0]["status_code"], "RUNNER_ERROR");
    let log = std::fs::read_to_string(json["log_path"].as_str().expect("log path")).expect("log");
    assert!(log.contains("exec sleep 60\n"), "{log}");
    assert!(log.contains("RUNNER_ERROR: the runner (pid "), "{log}");
    // What it left is ended: its processes, and its runtime folder.
    for pid in &pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "process {pid} outlived its dead runner's build"
        );
    }
    assert!(!std::path::Path::new(&format!("/dev/shm/buildspec-{uuid}")).exists());
    // Said once: the record is final now.
    let again = sb.run(&["inspect", "--last"]);
    again.expect_code(0).expect_stdout("status     FAULT");
    assert!(!again.stderr.contains("note:"), "{}", again.stderr);
}

#[test]
fn report_and_run_complete_a_dead_runners_record_too() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo started > started.fifo; exec sleep 60\n",
    );
    for command in [&["report"][..], &["run", "other.yml"]] {
        kill_a_runner_mid_build(&sb);
        sb.write("other.yml", crate::VALID);
        let found = sb.run(command);
        found.expect_stderr("was left IN_PROGRESS by a runner that is gone");
    }
    let listed = sb.run(&["report", "--filter", "status=IN_PROGRESS", "--json"]);
    listed.expect_code(0);
    assert_eq!(listed.stdout.trim(), "[]");
}

#[test]
fn record_file_and_private_state() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - 'false'\n",
    );
    let run = sb.run(&["run", "--record-file", "out/record.json"]);
    run.expect_code(2);
    // The directory of --record-file must exist: that is checked before the build runs.
    assert_eq!(run.stderr, "error: out: no such file or directory\n");
    assert!(!sb.path().join(".state/last").exists(), "no build ran");
    std::fs::create_dir(sb.path().join("out")).expect("mkdir");
    let run = sb.run(&["run", "--record-file", "out/record.json"]);
    run.expect_code(1);
    let copy: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.path().join("out/record.json")).expect("record file"),
    )
    .expect("json");
    assert_eq!(copy["status"], "FAILED");
    assert_eq!(copy["exit_code"], 1);
    let build_dir = std::path::Path::new(copy["log_path"].as_str().expect("log"))
        .parent()
        .expect("dir")
        .to_path_buf();
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&build_dir), 0o700);
    for file in [
        "build.json",
        "build.log",
        "buildspec.yml",
        "scripts.sh",
        "env/start.env",
        "env/end.env",
    ] {
        assert_eq!(mode(&build_dir.join(file)), 0o600, "{file}");
    }
}

#[test]
fn the_runner_reaps_the_orphans_that_end_after_their_parent() {
    // Orphans come back to the runner, as a subreaper or as a container's PID 1 (`unshare
    // --pid` gives it a PID namespace of its own; that needs root), and their zombies are its
    // to collect. `cat` outlives the shell that started it, waiting on a FIFO, and ends only
    // when the next command writes to it: a zombie that only the runner can collect.
    const SPEC: &str = "\
version: 0.2
phases:
  build:
    commands:
      - mkfifo go.fifo
      - sh -c 'cat go.fifo > /dev/null & echo $! > orphan.pid'
      - echo go > go.fifo
      - while grep -q '^State:.[RSD]' /proc/$(cat orphan.pid)/status 2>/dev/null; do :; done
      - grep -q '^State:.Z' /proc/$(cat orphan.pid)/status && echo the orphan is a zombie
  post_build:
    commands:
      - test ! -e /proc/$(cat orphan.pid) && echo the orphan was reaped
";
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must run this test as PID 1"
        );
        eprintln!("as PID 1: skipped, a PID namespace needs root (CI runs it as root)");
    }
    let launchers: &[(&str, &[&str])] = &[
        ("a subreaper", &[]),
        ("PID 1", &["unshare", "--pid", "--fork", "--mount-proc"]),
    ];
    for (as_what, launcher) in launchers {
        if !root && !launcher.is_empty() {
            continue;
        }
        let sb = Sandbox::new();
        sb.write("buildspec.yml", SPEC);
        let binary = env!("CARGO_BIN_EXE_buildspec");
        let mut words: Vec<&str> = launcher.to_vec();
        words.extend([binary, "run", "--state-dir", ".state"]);
        let output = std::process::Command::new(words[0])
            .args(&words[1..])
            .current_dir(sb.path())
            .output()
            .expect("the runner starts");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "as {as_what}:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("the orphan is a zombie\n")
                && stdout.contains("the orphan was reaped\n"),
            "as {as_what}:\n{stdout}"
        );
    }
}

#[test]
fn a_full_disk_still_ends_the_build_with_a_final_record_that_says_the_log_is_incomplete() {
    // The build's output fills the disk that holds the state directory.
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - seq 1 200000\n  post_build:\n    commands:\n      - echo post_build ran\n",
    );
    let script = r#""$0" run --state-dir full/state > console.txt 2>&1
echo $? > exit.txt
"$0" inspect --last --json --state-dir full/state > record.json
"$0" inspect --last --state-dir full/state > inspect.txt"#;
    if !crate::on_a_small_disk(&sb, script) {
        return;
    }
    let read = |name: &str| std::fs::read_to_string(sb.path().join(name)).expect(name);
    let console = read("console.txt");
    assert_eq!(read("exit.txt").trim(), "0", "{console}");
    assert!(console.contains("\npost_build ran\n"), "{console}");
    assert!(
        console.contains("warning: cannot write the log ")
            && console.contains("No space left on device"),
        "{console}"
    );
    let record: serde_json::Value = serde_json::from_str(&read("record.json")).expect("json");
    assert_eq!(record["status"], "SUCCEEDED", "{record:#}");
    assert_eq!(record["exit_code"], 0);
    let phases = record["phases"].as_array().expect("phases");
    assert_eq!(phases.last().expect("a phase")["phase"], "FINALIZING");
    assert!(
        record["log_incomplete"]
            .as_str()
            .is_some_and(|why| why.contains("No space left on device")),
        "{record:#}"
    );
    let shown = read("inspect.txt");
    assert!(
        shown.contains("\n           incomplete: No space left on device"),
        "{shown}"
    );
    // The environment at the end is written whole or not at all, and the console says so: an
    // empty file would say the build ended without variables.
    let uuid = record["uuid"].as_str().expect("uuid");
    let end = sb
        .path()
        .join("full/state/builds")
        .join(uuid)
        .join("env/end.env");
    assert!(
        std::fs::metadata(&end).map_or(true, |m| m.len() > 0),
        "an empty end.env"
    );
    if !end.exists() {
        assert!(
            console.contains("warning: cannot write env/end.env"),
            "{console}"
        );
    }
}

#[test]
fn a_build_whose_record_cannot_be_written_starts_nothing() {
    // The disk is full after a first build: the second one's counter is written over its old
    // block, its folder and empty log take no block, and its record finds no room.
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo ran >> ran.txt\n",
    );
    let script = r#""$0" run --state-dir full/state > first.txt 2>&1 || exit 98
cat /dev/zero > full/filler 2> /dev/null
"$0" run --state-dir full/state > console.txt 2>&1
echo $? > exit.txt
"$0" inspect --last --json --state-dir full/state > last.json
for d in full/state/builds/*; do echo "${d##*/}" $(ls "$d"); done > builds.txt
ls /dev/shm > shm.txt"#;
    if !crate::on_a_small_disk(&sb, script) {
        return;
    }
    let read = |name: &str| std::fs::read_to_string(sb.path().join(name)).expect(name);
    let console = read("console.txt");
    assert_eq!(read("exit.txt").trim(), "3", "{console}");
    assert!(
        console.contains("cannot write") && console.contains("No space left on device"),
        "{console}"
    );
    assert_eq!(
        read("ran.txt"),
        "ran\n",
        "only the first build ran its command"
    );
    // `last` still names the first build, whose record is whole.
    let last: serde_json::Value = serde_json::from_str(&read("last.json")).expect("json");
    assert_eq!(last["status"], "SUCCEEDED", "{last:#}");
    assert_eq!(last["number"], 1, "{last:#}");
    // The second build's folder has its log but no record, and its scripts went with it.
    let first = last["uuid"].as_str().expect("uuid");
    let folders = read("builds.txt");
    let second: Vec<&str> = folders.lines().filter(|l| !l.starts_with(first)).collect();
    assert_eq!(second.len(), 1, "{folders}");
    let (uuid, files) = second[0].split_once(' ').expect("a uuid and its files");
    let files: Vec<&str> = files.split(' ').collect();
    assert!(
        files.contains(&"build.log") && !files.contains(&"build.json"),
        "{folders}"
    );
    assert!(
        !read("shm.txt").contains(uuid),
        "its scripts are left in /dev/shm"
    );
}

#[test]
fn a_process_that_cleared_its_environment_still_ends_with_the_build() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "\
version: 0.2
phases:
  build:
    commands:
      - setsid env -i /bin/sh -c 'echo $$ > orphan.pid; exec sleep 600' > /dev/null 2>&1 &
      - while [ ! -s orphan.pid ]; do :; done
",
    );
    let run = sb.run(&["run", "--grace", "2s"]);
    run.expect_code(0);
    assert!(
        !alive(&sb.path().join("orphan.pid")),
        "the process without the build's id survived it:\n{}",
        run.stdout
    );
}

#[test]
fn a_stubborn_daemon_and_its_children_end_with_the_build() {
    // The runner, as its subreaper, finds the build's processes by walking its descendants: a
    // daemon that ignores SIGTERM gets SIGKILL after the grace period, and its child (which
    // ignores it too, inherited) is found below it rather than only once it is orphaned.
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "\
version: 0.2
phases:
  build:
    commands:
      - setsid sh -c 'trap \"\" TERM; sleep 600 & echo $! > child.pid; echo $$ > parent.pid; wait' > /dev/null 2>&1 &
      - while [ ! -s parent.pid ] || [ ! -s child.pid ]; do :; done
",
    );
    let started = std::time::Instant::now();
    let run = sb.run(&["run", "--grace", "1s"]);
    run.expect_code(0);
    assert!(
        run.stdout
            .contains("Ending 2 process(es) the build left outside its process group"),
        "{}",
        run.stdout
    );
    for name in ["parent.pid", "child.pid"] {
        assert!(
            !alive(&sb.path().join(name)),
            "{name} survived the build:\n{}",
            run.stdout
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn both_region_variables_follow_the_one_given() {
    let sb = Sandbox::new();
    sb.write("buildspec.yml", "version: 0.2\nphases:\n  build:\n    commands:\n      - echo region=$AWS_REGION default=$AWS_DEFAULT_REGION\n");
    let run = sb.run(&["run", "--env", "AWS_DEFAULT_REGION=us-west-1"]);
    run.expect_code(0);
    run.expect_stdout("\nregion=us-west-1 default=us-west-1\n");
}

#[test]
fn artifacts_land_where_asked_and_exported_variables_are_written_as_dotenv() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nenv:\n  exported-variables: [PLAIN, QUOTED]\nphases:\n  build:\n    commands:\n      - mkdir -p out && echo hi > out/app.txt\n      - export PLAIN=v1.2 QUOTED=\"it's a \\$value\"\nartifacts:\n  files: ['out/*']\n",
    );
    let run = sb.run(&[
        "run",
        "--artifacts",
        "dist",
        "--packaging",
        "zip",
        "--exported-variables",
        "vars.env",
    ]);
    run.expect_code(0);
    assert!(
        sb.path().join("dist/primary.zip").is_file(),
        "{}",
        run.stdout
    );
    let dotenv = std::fs::read_to_string(sb.path().join("vars.env")).expect("dotenv");
    assert_eq!(dotenv, "PLAIN=v1.2\nQUOTED='it'\\''s a $value'\n");
    // The file reads back through a shell as it was written.
    let echoed = std::process::Command::new("sh")
        .arg("-c")
        .arg("set -a; . ./vars.env; printf '%s' \"$QUOTED\"")
        .current_dir(sb.path())
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "it's a $value");
}

#[test]
fn an_s3_destination_without_credentials_is_refused_before_the_build() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - touch ran\nartifacts:\n  files: [ran]\n",
    );
    let run = sb.run(&["run", "--artifacts", "s3://bucket/prefix"]);
    run.expect_code(2);
    run.expect_stderr("AWS_ACCESS_KEY_ID");
    assert!(!sb.path().join("ran").exists(), "no build ran");
    let run = sb.run(&["run", "--artifacts", "s3://"]);
    run.expect_code(2);
    run.expect_stderr("--artifacts");
}

/// Whether the process whose id a build wrote to `pid_file` is still alive.
fn alive(pid_file: &std::path::Path) -> bool {
    let pid = std::fs::read_to_string(pid_file).expect("pid file");
    std::process::Command::new("kill")
        .args(["-0", pid.trim()])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("kill")
        .success()
}

#[test]
fn build_folders_are_spread_over_an_ext4_disk() {
    // ext2, ext3 and ext4's T attribute (chattr +T) on `builds/`: the Orlov allocator then puts
    // each build's folder in a block group of its own choosing instead of beside its parent.
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo hi\n",
    );
    sb.run(&["run"]).expect_code(0);
    let output = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .current_dir(sb.path())
            .output()
            .expect("runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let kind = output("stat", &["-f", "-c", "%T", ".state/builds"]);
    if kind.trim() != "ext2/ext3" {
        eprintln!(
            "skipped: the sandbox is on {}, not ext2, ext3 or ext4",
            kind.trim()
        );
        return;
    }
    let attributes = output("lsattr", &["-d", ".state/builds"]);
    let flags = attributes.split_whitespace().next().unwrap_or_default();
    assert!(flags.contains('T'), "{attributes}");
}
