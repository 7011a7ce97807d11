//! `--executor slurm` against a real single-node Slurm cluster (`scripts/slurm up` starts one;
//! `.ci/run` does, so that these tests always run in CI). Where no cluster answers, each test
//! says so on stderr and passes without running; under CI it fails instead.

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{Sandbox, wait_for_start};

/// Where a test's builds run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Executor {
    /// Child processes of the dispatcher.
    Local,
    /// Jobs on the Slurm cluster of this machine.
    Slurm,
}

/// The arguments that send a command's builds to an executor.
#[derive(Debug)]
pub(crate) struct On {
    extra: Vec<String>,
}

impl On {
    /// `base` with the executor's arguments.
    pub(crate) fn args<'a>(&'a self, base: &[&'a str]) -> Vec<&'a str> {
        base.iter()
            .copied()
            .chain(self.extra.iter().map(String::as_str))
            .collect()
    }
}

impl Executor {
    /// The executor's arguments for builds of `sb`, or `None` (said on stderr) when it cannot
    /// run here.
    pub(crate) fn here(self, sb: &Sandbox) -> Option<On> {
        match self {
            Executor::Local => Some(On { extra: Vec::new() }),
            Executor::Slurm => {
                if let Err(why) = cluster() {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "Slurm must be up under CI (scripts/test starts it): {why}"
                    );
                    eprintln!("skipped: {why}; `scripts/slurm up` (as root) starts a cluster");
                    return None;
                }
                let shared = sb.path().join(".shared");
                Some(On {
                    extra: vec![
                        "--executor".to_owned(),
                        "slurm".to_owned(),
                        "--shared-dir".to_owned(),
                        shared.display().to_string(),
                    ],
                })
            }
        }
    }
}

/// Whether the cluster answers with a usable node, asked once per test run.
fn cluster() -> Result<(), String> {
    static UP: OnceLock<Result<(), String>> = OnceLock::new();
    UP.get_or_init(|| {
        let out = std::process::Command::new("sinfo")
            .args(["-h", "-N", "-o", "%t"])
            .output()
            .map_err(|e| format!("no Slurm here (sinfo: {e})"))?;
        let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let usable = ["idle", "mix", "alloc", "comp"]
            .iter()
            .any(|s| state.starts_with(s));
        if out.status.success() && usable {
            Ok(())
        } else {
            Err(format!(
                "the Slurm cluster has no usable node (sinfo: {:?} {})",
                state,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    })
    .clone()
}

/// A batch of one build, `identifier`, that runs one command.
fn one_build(identifier: &str, command: &str) -> String {
    format!(
        "version: 0.2\nbatch:\n  build-list:\n    - identifier: {identifier}\nphases:\n  build:\n    commands:\n      - {command}\n"
    )
}

/// A build that tells the test, through a FIFO, that its command runs, then waits.
const WAITS: &str = "echo started > started.fifo; sleep 60";

/// The uuid of the record of the batch's first build, as the batch record names it.
fn first_uuid(sb: &Sandbox) -> String {
    journal(sb)["members"][0]["build_uuid"]
        .as_str()
        .expect("a uuid")
        .to_owned()
}

/// A build's log.
fn log_of(record: &serde_json::Value) -> String {
    std::fs::read_to_string(record["log_path"].as_str().expect("a log path")).expect("the log")
}

/// The one batch record of the sandbox, as it is now.
fn journal(sb: &Sandbox) -> serde_json::Value {
    crate::many::batch_record(sb)
}

fn record(sb: &Sandbox, uuid: &str) -> serde_json::Value {
    let path = sb
        .path()
        .join(".state/builds")
        .join(uuid)
        .join("build.json");
    serde_json::from_slice(&std::fs::read(&path).expect("a record")).expect("json")
}

/// Starts `buildspec batch` on the cluster with the sandbox as source, its stdout kept.
fn dispatch(sb: &Sandbox, on: &On, more: &[&str]) -> std::process::Child {
    let mut args = on.args(&["batch", "--in-place", "--grace", "2s"]);
    args.extend_from_slice(more);
    sb.command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the dispatcher")
}

fn finish(child: std::process::Child) -> crate::Run {
    crate::Run::from(child.wait_with_output().expect("the dispatcher ends"))
}

fn scancel(job: &str) {
    let done = std::process::Command::new("scancel")
        .arg(job)
        .status()
        .expect("scancel");
    assert!(done.success());
}

#[test]
fn a_job_cancelled_on_the_cluster_ends_its_build_stopped_with_a_record_of_where_it_ran() {
    let sb = Sandbox::new();
    let Some(on) = Executor::Slurm.here(&sb) else {
        return;
    };
    sb.write("buildspec.yml", &one_build("victim", WAITS));
    let fifo = sb.mkfifo("started.fifo");
    let started = Instant::now();
    let child = dispatch(&sb, &on, &[]);
    wait_for_start(&fifo);
    let member = &journal(&sb)["members"][0];
    let job = member["handle"].as_str().expect("a job id").to_owned();
    scancel(&job);
    let run = finish(child);
    run.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(40));
    run.expect_stdout(&format!("Slurm job {job} ended CANCELLED"));
    let built = record(&sb, member["build_uuid"].as_str().expect("a uuid"));
    assert_eq!(built["status"], "STOPPED", "{built:#}");
    let placement = &built["placement"];
    assert_eq!(placement["executor"], "slurm");
    assert_eq!(placement["job_id"], job.as_str());
    assert_eq!(placement["state"], "CANCELLED");
    assert_eq!(placement["partition"], "debug");
    assert!(placement["node"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(placement["queue_wait_ms"].is_u64(), "{placement}");
    // `inspect` says where it ran.
    let shown = sb.run(&["inspect", built["uuid"].as_str().expect("a uuid")]);
    shown.expect_stdout(&format!("ran as     slurm job {job} on "));
}

#[test]
fn a_runner_killed_on_the_node_ends_its_build_failed_and_its_record_completed() {
    let sb = Sandbox::new();
    let Some(on) = Executor::Slurm.here(&sb) else {
        return;
    };
    sb.write("buildspec.yml", &one_build("victim", WAITS));
    let fifo = sb.mkfifo("started.fifo");
    let child = dispatch(&sb, &on, &[]);
    wait_for_start(&fifo);
    let uuid = first_uuid(&sb);
    // The runner's own record, IN_PROGRESS while its command runs, names its process.
    let running = record(&sb, &uuid);
    assert_eq!(running["status"], "IN_PROGRESS");
    let pid = running["runner_pid"].as_i64().expect("a pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the runner");
    let run = finish(child);
    run.expect_code(1);
    // What the killed runner could not remove is removed here (the node is this machine): the
    // test leaves nothing behind.
    let _ = std::fs::remove_dir_all(format!("/dev/shm/buildspec-{uuid}"));
    let built = record(&sb, &uuid);
    assert_eq!(built["status"], "FAILED", "{built:#}");
    assert_eq!(built["placement"]["state"], "FAILED");
    assert_eq!(built["placement"]["exit_code"], "0:9");
    let build = built["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["phase"] == "BUILD")
        .expect("the BUILD phase");
    assert_eq!(build["status"], "FAILED");
    let context = &build["contexts"][0];
    assert_eq!(context["status_code"], "SLURM_JOB_FAILED");
    assert!(
        context["message"]
            .as_str()
            .is_some_and(|m| m.contains("ended FAILED (signal 9")),
        "{context}"
    );
    let log = log_of(&built);
    assert!(
        log.lines()
            .last()
            .is_some_and(|l| l.contains("SLURM_JOB_FAILED: Slurm job")),
        "{log}"
    );
}

#[test]
fn a_job_pending_past_max_pending_is_cancelled_and_its_build_recorded_stopped() {
    let sb = Sandbox::new();
    let Some(on) = Executor::Slurm.here(&sb) else {
        return;
    };
    sb.write("buildspec.yml", &one_build("held", "echo never"));
    // A held job stays pending whatever the cluster's load.
    let child = dispatch(&sb, &on, &["--slurm-arg=--hold", "--max-pending", "1s"]);
    let run = finish(child);
    run.expect_code(1);
    run.expect_stdout("still pending after 1s (--max-pending): cancelling it");
    assert!(
        super::many::row(&run.stdout, "held").contains("STOPPED"),
        "{}",
        run.stdout
    );
    let uuid = first_uuid(&sb);
    let built = record(&sb, &uuid);
    assert_eq!(built["status"], "STOPPED");
    assert_eq!(built["batch_identifier"], "held");
    assert_eq!(built["phases"][0]["phase"], "QUEUED");
    assert_eq!(
        built["phases"][0]["contexts"][0]["status_code"],
        "BUILD_STOPPED"
    );
    let log = log_of(&built);
    assert!(
        log.contains("was still pending after --max-pending 1s"),
        "{log}"
    );
}

#[test]
fn a_killed_dispatcher_is_resumed_without_submitting_its_jobs_again() {
    let sb = Sandbox::new();
    let Some(on) = Executor::Slurm.here(&sb) else {
        return;
    };
    sb.write(
        "buildspec.yml",
        "version: 0.2
batch:
  build-graph:
    - identifier: quick
    - identifier: slow
      depend-on: [quick]
phases:
  build:
    commands:
      - if [ \"$CODEBUILD_BATCH_BUILD_IDENTIFIER\" = slow ]; then echo started > started.fifo; sleep 2; fi
      - echo \"done $CODEBUILD_BATCH_BUILD_IDENTIFIER\"
",
    );
    let fifo = sb.mkfifo("started.fifo");
    let mut child = dispatch(&sb, &on, &[]);
    wait_for_start(&fifo);
    // `quick` ended and `slow` runs: the dispatcher dies without a word.
    child.kill().expect("kill the dispatcher");
    let _ = child.wait();
    let before = journal(&sb);
    assert_eq!(before["status"], "IN_PROGRESS");
    let slow_job = before["members"][1]["handle"]
        .as_str()
        .expect("slow's job")
        .to_owned();
    let resumed = sb.run(&on.args(&["batch", "--in-place", "--resume"]));
    resumed.expect_code(0);
    resumed.expect_stdout(&format!("Slurm job {slow_job} taken up"));
    assert!(
        !resumed.stdout.contains("submitted"),
        "nothing is submitted again:\n{}",
        resumed.stdout
    );
    resumed.expect_stdout("2 build(s): 2 succeeded");
    let after = journal(&sb);
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["status"], "SUCCEEDED");
    let slow = record(
        &sb,
        after["members"][1]["build_uuid"].as_str().expect("a uuid"),
    );
    assert_eq!(slow["status"], "SUCCEEDED");
    assert_eq!(slow["placement"]["job_id"], slow_job.as_str());
    // Nothing is left to resume.
    let again = sb.run(&on.args(&["batch", "--resume"]));
    again
        .expect_code(2)
        .expect_stderr("no interrupted Slurm batch");
}

#[test]
fn the_slurm_executor_needs_a_shared_directory_and_resume_needs_a_scheduler() {
    let sb = Sandbox::new();
    sb.write("buildspec.yml", crate::VALID);
    let run = sb.run(&["run", "--executor", "slurm"]);
    run.expect_code(2)
        .expect_stderr("--executor slurm needs --shared-dir DIR");
    sb.write(
        "batch.yml",
        "version: 0.2\nbatch:\n  build-list:\n    - identifier: a\nphases:\n  build:\n    commands:\n      - 'true'\n",
    );
    let resume = sb.run(&["batch", "batch.yml", "--resume"]);
    resume
        .expect_code(2)
        .expect_stderr("--resume takes up the jobs of a scheduler");
}

#[test]
fn a_job_slurm_refuses_fails_its_build_with_a_record_that_says_why() {
    let sb = Sandbox::new();
    let Some(on) = Executor::Slurm.here(&sb) else {
        return;
    };
    sb.write("buildspec.yml", &one_build("nowhere", "echo never"));
    let run = finish(dispatch(
        &sb,
        &on,
        &["--slurm-partition", "no-such-partition"],
    ));
    run.expect_code(1);
    let row = super::many::row(&run.stdout, "nowhere");
    assert!(
        row.contains("FAULT") && row.contains("cannot start: `sbatch` failed"),
        "{row}"
    );
    let uuid = first_uuid(&sb);
    let built = record(&sb, &uuid);
    assert_eq!(built["status"], "FAULT");
    assert_eq!(built["phases"][0]["phase"], "QUEUED");
    let context = &built["phases"][0]["contexts"][0];
    assert_eq!(context["status_code"], "CLIENT_ERROR");
    assert!(
        context["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid partition")),
        "{context}"
    );
}

#[test]
fn a_job_past_its_slurm_time_limit_ends_its_build_timed_out() {
    let sb = Sandbox::new();
    let Some(on) = Executor::Slurm.here(&sb) else {
        return;
    };
    sb.write("buildspec.yml", &one_build("long", "sleep 600"));
    // Slurm's shortest limit is a minute, and it looks for jobs past theirs every 30 seconds
    // or so: this test takes that long.
    let run = finish(dispatch(&sb, &on, &["--timeout", "0", "--slurm-time", "1"]));
    run.expect_code(1);
    run.expect_stdout("ended TIMEOUT");
    assert!(
        super::many::row(&run.stdout, "long").contains("TIMED_OUT"),
        "{}",
        run.stdout
    );
    let uuid = first_uuid(&sb);
    let built = record(&sb, &uuid);
    // The runner saw a SIGTERM and stopped; Slurm says why, and has the last word.
    assert_eq!(built["status"], "TIMED_OUT", "{built:#}");
    assert_eq!(built["placement"]["state"], "TIMEOUT");
    let contexts: Vec<&str> = built["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .flat_map(|p| p["contexts"].as_array().into_iter().flatten())
        .filter_map(|c| c["status_code"].as_str())
        .collect();
    assert!(contexts.contains(&"BUILD_TIMED_OUT"), "{contexts:?}");
}

#[test]
fn rerun_runs_a_build_that_ran_on_the_cluster_on_this_machine_and_says_so() {
    let sb = Sandbox::new();
    let Some(on) = Executor::Slurm.here(&sb) else {
        return;
    };
    sb.write("buildspec.yml", &one_build("checks", "test -f fixed"));
    let run = finish(dispatch(&sb, &on, &[]));
    run.expect_code(1);
    let job = record(&sb, &first_uuid(&sb))["placement"]["job_id"]
        .as_str()
        .expect("a job id")
        .to_owned();
    sb.write("fixed", "");
    let again = sb.run(&["rerun", "--failed"]);
    again.expect_code(0);
    again.expect_stdout(&format!("ran as slurm job {job}; `rerun` runs builds here"));
    assert!(
        super::many::row(&again.stdout, "checks").contains("SUCCEEDED"),
        "{}",
        again.stdout
    );
    let last: serde_json::Value =
        serde_json::from_str(&sb.run(&["inspect", "--last", "--json"]).stdout).expect("json");
    assert_eq!(last["status"], "SUCCEEDED", "{last:#}");
    assert_eq!(last["batch_identifier"], "checks", "{last:#}");
    assert!(last["placement"].is_null(), "{last:#}");
}

/// Every process's command line that holds `text`.
fn command_lines_holding(text: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .filter(|line| line.contains(text))
        .collect()
}

#[test]
fn a_jobs_secrets_stay_off_the_nodes_command_lines_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let Some(on) = Executor::Slurm.here(&sb) else {
        return;
    };
    sb.write("buildspec.yml", &one_build("quiet", WAITS));
    sb.write("masks", "mask-file-value-0123\n");
    let fifo = sb.mkfifo("started.fifo");
    let child = dispatch(
        &sb,
        &on,
        &[
            "--env",
            "TOKEN=env-value-0123456789",
            "--mask-file",
            "masks",
        ],
    );
    wait_for_start(&fifo);
    // The runner runs on the node: nothing given in trust is on its command line.
    let seen: Vec<String> = ["env-value-0123456789", "mask-file-value-0123"]
        .iter()
        .flat_map(|secret| command_lines_holding(secret))
        .filter(|line| !line.contains("batch --in-place"))
        .collect();
    let job = journal(&sb)["members"][0]["handle"]
        .as_str()
        .expect("a job id")
        .to_owned();
    scancel(&job);
    finish(child);
    assert!(
        seen.is_empty(),
        "visible to every user of the node: {seen:?}"
    );
    // What the dispatcher leaves in the shared directory is the user's alone.
    let shared = sb.path().join(".shared");
    for dir in ["runs", "bin"] {
        let mode = std::fs::metadata(shared.join(dir))
            .expect(dir)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{dir}");
    }
    let mut todo = vec![shared.join("runs")];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "sh" || e == "out") {
                let mode = std::fs::metadata(&path).expect("file").permissions().mode();
                assert_eq!(mode & 0o077, 0, "{} is readable by others", path.display());
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                assert!(!text.contains("env-value-0123456789"), "{}", path.display());
            }
        }
    }
}
