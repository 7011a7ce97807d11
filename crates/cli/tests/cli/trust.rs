//! What a build is given in trust stays out of everything the runner writes and prints.

use std::path::Path;

use crate::Sandbox;

/// Every file under `dir` that holds `secret`, but for the build's own products (artifacts and
/// report files are what the build wrote, not what the runner says).
fn files_holding(dir: &Path, secret: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            let products = ["artifacts", "reports"]
                .iter()
                .any(|p| path.file_name().is_some_and(|n| n == *p) && path.is_dir());
            if path.is_dir() {
                if !products {
                    todo.push(path);
                }
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(secret))
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// A buildspec that prints its secrets, writes one into a failing test's report, and has a
/// warning whose diagnostic quotes a line holding another.
const LEAKY: &str = r#"version: 0.2
env:
  parameter-store:
    DB_PASSWORD: /prod/db
phases:
  build:
    commands:
      - echo "key=$AWS_SECRET_ACCESS_KEY token=$TOKEN db=$DB_PASSWORD"
      - mkdir -p reports
      - printf '<testsuite name="s" tests="1" failures="1"><testcase name="login %s"><failure message="got %s"/></testcase></testsuite>\n' "$DB_PASSWORD" "$DB_PASSWORD" > reports/junit.xml
    comands-with-token-tok-0123456789: [x]
reports:
  unit:
    files: [reports/junit.xml]
"#;

const SECRETS: [&str; 3] = [
    "aws-secret-0123456789",
    "tok-0123456789",
    "db-pass-0123456789",
];

#[test]
fn secrets_stay_out_of_records_queries_and_diagnostics_however_they_were_given() {
    let sb = Sandbox::new();
    sb.write("buildspec.yml", LEAKY);
    sb.write("params.yml", "/prod/db: db-pass-0123456789\n");
    std::fs::create_dir(sb.path().join("out")).expect("mkdir");
    let run = sb.run(&[
        "run",
        "--parameters",
        "params.yml",
        "--env",
        "AWS_SECRET_ACCESS_KEY=aws-secret-0123456789",
        "--env",
        "TOKEN=tok-0123456789",
        "--mask",
        "tok-0123456789",
        "--record-file",
        "out/record.json",
    ]);
    run.expect_code(0)
        .expect_stdout("key=*** token=*** db=***")
        .expect_stderr("comands-with-token-***");
    let mut printed = vec![run.stdout, run.stderr];
    for args in [
        &["inspect", "--last"][..],
        &["inspect", "--last", "--json"],
        &["report"],
        &["report", "--json"],
        &["report", "--junit", "out/builds.xml"],
    ] {
        let query = sb.run(args);
        query.expect_code(0);
        printed.push(query.stdout);
        printed.push(query.stderr);
    }
    for secret in SECRETS {
        for text in &printed {
            assert!(!text.contains(secret), "{secret} printed:\n{text}");
        }
        for dir in [".state", "out"] {
            let found = files_holding(&sb.path().join(dir), secret);
            assert!(found.is_empty(), "{secret} in {found:?}");
        }
    }
    // The failing test is still reported, masked.
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.path().join("out/record.json")).expect("record file"),
    )
    .expect("json");
    let failure = &record["reports"][0]["summary"]["failures"][0];
    assert_eq!(failure["name"], "login ***");
    assert_eq!(failure["message"], "got ***");
    assert_eq!(record["invocation"]["masked"], true);
}

#[test]
fn a_batch_record_holds_no_credential() {
    let sb = Sandbox::new();
    sb.write(
        "buildspec.yml",
        "version: 0.2\nbatch:\n  build-list:\n    - identifier: one\n    - identifier: two\nphases:\n  build:\n    commands:\n      - echo \"$AWS_SESSION_TOKEN\"\n",
    );
    sb.write("masks", "mask-file-value-1\n\nmask-file-value-2\n");
    let run = sb.run(&[
        "batch",
        "--env",
        "AWS_SESSION_TOKEN=session-0123456789",
        "--env",
        "OTHER=mask-file-value-2",
        "--mask-file",
        "masks",
    ]);
    run.expect_code(0);
    for secret in ["session-0123456789", "mask-file-value-2"] {
        assert!(!run.stdout.contains(secret), "{}", run.stdout);
        let found = files_holding(&sb.path().join(".state"), secret);
        assert!(found.is_empty(), "{secret} in {found:?}");
    }
}

#[test]
fn the_record_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sb.write("buildspec.yml", crate::VALID);
    sb.run(&["run", "--record-file", "record.json"]);
    let mode = std::fs::metadata(sb.path().join("record.json"))
        .expect("record file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn values_too_short_to_mask_are_refused() {
    let sb = Sandbox::new();
    sb.write("buildspec.yml", crate::VALID);
    let run = sb.run(&["run", "--mask", "e"]);
    run.expect_code(2)
        .expect_stderr("a value to mask must have at least 4 characters (this one has 1)");
    sb.write("masks", "long-enough\nabc\n");
    let run = sb.run(&["run", "--mask-file", "masks"]);
    run.expect_code(2)
        .expect_stderr("masks:2: a value to mask must have at least 4 characters");
    assert!(!sb.path().join(".state/last").exists(), "no build ran");
}

/// The live processes whose environment holds `NAME=value`.
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(") ")
                    .is_some_and(|(_, r)| !r.starts_with('Z'))
            })
        })
        .collect()
}

#[test]
fn a_daemon_that_respawns_does_not_outlive_its_build() {
    // It ignores SIGTERM and starts a new session every 10 ms: a sweep that kills what it
    // found once, then only waits, leaves the one started in between.
    let sb = Sandbox::new();
    for run in 0..4 {
        let mark = format!("RESPAWN_MARK=run-{run}-{}", std::process::id());
        sb.write(
            "buildspec.yml",
            &format!(
                "version: 0.2\nphases:\n  build:\n    commands:\n      - export {mark}\n      - setsid sh -c 'trap \"\" TERM; while :; do setsid sleep 1000 & sleep 0.01; done' > /dev/null 2>&1 &\n      - sleep 0.2\n"
            ),
        );
        let started = std::time::Instant::now();
        let ran = sb.run(&["run", "--grace", "2s"]);
        ran.expect_code(0);
        let left = processes_with(&mark);
        for pid in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(*pid).expect("pid")),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert!(
            left.is_empty(),
            "run {run}: {left:?} outlived the build:\n{}",
            ran.stdout
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "took {:?}",
            started.elapsed()
        );
    }
}

/// Whether a process is gone (or only a zombie, which its parent has yet to collect).
fn gone(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z'))
    })
}

#[test]
fn a_killed_worker_leaves_nothing_running_and_a_record_that_says_how_it_died() {
    let sb = Sandbox::new();
    sb.write(
        "specs/a.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - setsid sleep 600 & echo $! > daemon.pid; echo $$ > driver.pid; echo started > started.fifo; exec sleep 600\n",
    );
    sb.write("specs/b.yml", crate::VALID.replace("make", "true").as_str());
    sb.write("specs/c.yml", crate::VALID.replace("make", "true").as_str());
    let fifo = sb.mkfifo("started.fifo");
    let dispatcher = sb
        .command(&["run", "specs", "--jobs", "3", "--in-place"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    crate::wait_for_start(&fifo);
    let read = |name: &str| {
        std::fs::read_to_string(sb.path().join(name))
            .expect("pid file")
            .trim()
            .to_owned()
    };
    let (daemon, driver) = (read("daemon.pid"), read("driver.pid"));
    // The driver shell's parent is the worker that runs the build.
    let stat = std::fs::read_to_string(format!("/proc/{driver}/stat")).expect("driver");
    let worker: i32 = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(1))
        .and_then(|p| p.parse().ok())
        .expect("the driver's parent");
    let cmdline = std::fs::read(format!("/proc/{worker}/cmdline")).expect("worker");
    assert!(
        String::from_utf8_lossy(&cmdline).contains("__worker"),
        "{worker} is not a worker"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let ran = crate::Run::from(dispatcher.wait_with_output().expect("dispatcher"));
    let sleeper = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(") ")
                    .is_some_and(|(_, r)| r.split(' ').nth(1) == Some(driver.as_str()))
            })
        })
        .collect::<Vec<_>>();
    for pid in [&daemon, &driver].into_iter().chain(&sleeper) {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
    }
    ran.expect_code(1);
    assert!(gone(&daemon), "the daemon outlived its dead worker's build");
    assert!(gone(&driver), "the driver outlived its dead worker's build");
    let record = sb.run(&["report", "--filter", "buildspec=specs/a.yml", "--json"]);
    let records: serde_json::Value = serde_json::from_str(&record.stdout).expect("json");
    let a = &records[0];
    assert_eq!(a["status"], "STOPPED", "{a}");
    assert_eq!(a["exit_code"], 137, "{a}");
    let uuid = a["uuid"].as_str().expect("uuid");
    assert!(!std::path::Path::new(&format!("/dev/shm/buildspec-{uuid}")).exists());
}

#[test]
fn commands_start_with_default_signals_whatever_the_runner_inherited() {
    // A runner started as a background job of a script, or under `nohup`, has SIGINT, SIGQUIT
    // or SIGHUP ignored; a build's commands, on CodeBuild, never do.
    let sb = Sandbox::new();
    let spec =
        "version: 0.2\nphases:\n  build:\n    commands:\n      - grep SigIgn /proc/self/status\n";
    sb.write("buildspec.yml", spec);
    sb.write("specs/a.yml", spec);
    sb.write("specs/b.yml", spec);
    for args in [&["run"][..], &["run", "specs", "--jobs", "2"]] {
        let ran = std::process::Command::new("sh")
            .arg("-c")
            .arg("trap '' INT QUIT HUP; exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_buildspec"))
            .args(args)
            .current_dir(sb.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BUILDSPEC_STATE_DIR", sb.path().join(".state"))
            .output()
            .expect("runs");
        let ran = crate::Run::from(ran);
        ran.expect_code(0);
        let masks: Vec<&str> = ran
            .stdout
            .lines()
            .filter_map(|l| l.split("SigIgn:\t").nth(1))
            .collect();
        assert!(!masks.is_empty(), "{}", ran.stdout);
        assert!(
            masks.iter().all(|m| *m == "0000000000000000"),
            "{args:?}: {masks:?}"
        );
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let sb = Sandbox::new();
    sb.write("ok.yml", crate::VALID);
    std::fs::create_dir(sb.path().join("empty")).expect("mkdir");
    // A directory without buildspecs is a mistake: nothing runs, the others neither.
    let run = sb.run(&["run", "empty", "ok.yml"]);
    run.expect_code(2)
        .expect_stderr("empty holds no buildspec: nothing runs");
    assert!(!sb.path().join(".state/last").exists(), "a build ran");
    let run = sb.run(&["run", ".", "--jobs", "0"]);
    run.expect_code(2).expect_stderr("--jobs");
    let run = sb.run(&["run", "--log-limit", "10Q"]);
    run.expect_code(2).expect_stderr("`10Q` is not a size");
    // Commands that only read create no state directory.
    for args in [&["inspect", "--last"][..], &["report"], &["path", "--last"]] {
        sb.run(args);
        assert!(!sb.path().join(".state").exists(), "{args:?} created it");
    }
    // A `last` that does not hold a uuid names no build, whatever path it spells.
    std::fs::create_dir_all(sb.path().join(".state/builds/x")).expect("mkdir");
    std::fs::write(sb.path().join(".state/builds/x/build.json"), "{}").expect("write");
    std::fs::write(sb.path().join(".state/last"), "x\n").expect("write");
    let run = sb.run(&["inspect", "--last"]);
    run.expect_code(2)
        .expect_stderr("no build matches `--last`");
}

#[test]
fn a_buildspec_that_is_not_text_is_shown_safely_and_located() {
    let sb = Sandbox::new();
    sb.write_bytes(
        "nul.yml",
        b"version: 0.2\nphases:\n  build:\n    commands:\n      - echo a\x00\x1b[2Jb\n",
    );
    let run = sb.run(&["check", "nul.yml"]);
    run.expect_code(2);
    assert!(
        !run.stdout.contains('\0') && !run.stdout.contains('\x1b'),
        "{:?}",
        run.stdout
    );
    run.expect_stdout("echo a\u{2400}");
    sb.write_bytes(
        "latin1.yml",
        b"version: 0.2\nphases:\n  build:\n    commands:\n      - echo caf\xe9\n",
    );
    let run = sb.run(&["check", "latin1.yml"]);
    run.expect_code(2)
        .expect_stdout("latin1.yml:5:17: not UTF-8 text: the byte 0xe9 begins no character");
}
