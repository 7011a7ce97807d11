//! Many builds and queries over their records, measured side by side with what they replace.
//!
//! `cargo bench -p buildspec-cli --bench many` prints, each against a baseline run in the same
//! process:
//!
//! 1. 500 one-command buildspecs run by `buildspec run DIR --jobs 2 --in-place` vs the same 500
//!    commands run by `xargs -P 2 sh -c` (target: within 1.2x). Three floors are printed beside
//!    it, each as a ratio to `xargs`: what no faithful runner can do without, measured the same
//!    way (see `floors`);
//! 2. `buildspec report` over 10,000 records vs `cat` of the same record files (target: under
//!    half a second).
//!
//! Without `--bench` (as under `cargo test --all-targets`) it runs a small smoke version so that
//! the harness itself is tested.
//!
//! Everything it writes, the state directory included, goes to a temporary directory in
//! `BUILDSPEC_BENCH_DIR` when that is set (`/dev/shm`, a mounted image), else in the system's.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;
use common::{ms, timed, verdict as check};

const BIN: &str = env!("CARGO_BIN_EXE_buildspec");

fn many_builds(dir: &Path, n: usize, failures: &mut Vec<String>) {
    println!("\n{n} one-command buildspecs, 2 at a time");
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs).expect("mkdir");
    let mut commands = String::new();
    for i in 0..n {
        let command = format!("echo build {i}");
        std::fs::write(
            specs.join(format!("b{i:04}.yml")),
            format!("version: 0.2\nphases:\n  build:\n    commands:\n      - {command}\n"),
        )
        .expect("write");
        commands.push_str(&command);
        commands.push('\n');
    }
    let list = dir.join("commands.txt");
    std::fs::write(&list, commands).expect("write");
    let xargs = timed(
        Command::new("xargs")
            .args(["-P", "2", "-I", "{}", "sh", "-c", "{}"])
            .stdin(std::fs::File::open(&list).expect("open")),
    );
    let floors = floors(dir, &list, n);
    let runner = timed(
        Command::new(BIN)
            .args(["run", "--jobs", "2", "--in-place", "--state-dir"])
            .arg(dir.join("state"))
            .arg("--source")
            .arg(dir)
            .arg(&specs),
    );
    println!("  xargs -P 2 sh -c                       {}", ms(xargs));
    let ratio_of = |d: Duration| d.as_secs_f64() / xargs.as_secs_f64();
    for (what, took) in &floors {
        println!("  {what:<38} {}  {:.2}x", ms(*took), ratio_of(*took));
    }
    let least = floors[1].1 + floors[2].1;
    println!(
        "  {:<38} {}  {:.2}x",
        "floor: driver shells + records",
        ms(least),
        ratio_of(least)
    );
    println!("  {:<38} {}", "buildspec run --jobs 2", ms(runner));
    let ratio = runner.as_secs_f64() / xargs.as_secs_f64();
    check(
        failures,
        ratio <= 1.2,
        format!("buildspec / xargs = {ratio:.2} (target <= 1.2)"),
    );
}

/// What a build cannot do without, each timed like `xargs` over the same `n` commands:
///
/// 1. CodeBuild's own way (reference §4.1): each command in a fresh `sh` running a wrapper that
///    restores the directory and variables, runs the command and saves `$?`, `export -p` and
///    `pwd`. Only builtins, so no more processes than `xargs` starts.
/// 2. Ours (`compat`): a driver shell per build, the command in a subshell of it, the same
///    wrapper inside, the status reported by the driver.
/// 3. The least a build's record needs, written by two threads with nothing else running: its
///    folder (spread over the disk as `builds/` is), the log, and the record written at the start
///    (so that a build killed at once still leaves one) and renamed over at the end. What
///    `buildspec` keeps beyond that (the environment dumps, the scripts, the buildspec's copy)
///    is its own cost, not the floor's.
fn floors(dir: &Path, list: &Path, n: usize) -> [(&'static str, Duration); 3] {
    let floor = dir.join("floor");
    std::fs::create_dir_all(&floor).expect("mkdir");
    std::fs::write(
        floor.join("env.sh"),
        "export CODEBUILD_BUILD_SUCCEEDING='1'\n",
    )
    .expect("write");
    let wrapper = "cd \"$0\"; set -a; . ./env.sh; {}\nCODEBUILD_LAST_EXIT=$?; \
                   export -p > ./state; pwd >> ./state; exit $CODEBUILD_LAST_EXIT";
    let shell = |script: String| {
        timed(
            Command::new("xargs")
                .args(["-P", "2", "-I", "{}", "sh", "-c", &script])
                .arg(&floor)
                .stdin(std::fs::File::open(list).expect("open")),
        )
    };
    let fresh = shell(wrapper.to_owned());
    let driver = shell(format!(
        "( {wrapper} ) 3>&- 4<&-; printf 'status=%d\\n' \"$?\" > /dev/null"
    ));
    let builds = floor.join("builds");
    // Spread over the disk as the state directory's are: see docs/record.md.
    runner::store::create_spread_dir(&builds).expect("mkdir");
    // The sizes of a one-command build's.
    let record = vec![b'x'; 2700];
    let log = vec![b'x'; 2500];
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for half in 0..2 {
            let (builds, record, log) = (&builds, &record, &log);
            scope.spawn(move || {
                for i in (half..n).step_by(2) {
                    let build = builds.join(format!("{i:08}"));
                    std::fs::create_dir(&build).expect("mkdir");
                    std::fs::write(build.join("build.log"), &log[..]).expect("write");
                    for _ in 0..2 {
                        std::fs::write(build.join("build.tmp"), record).expect("write");
                        std::fs::rename(build.join("build.tmp"), build.join("build.json"))
                            .expect("rename");
                    }
                }
            });
        }
    });
    let files = started.elapsed();
    [
        ("floor: a fresh sh per command", fresh),
        ("floor: a driver shell and subshell", driver),
        ("floor: a folder, a log, a record", files),
    ]
}

fn report(dir: &Path, n: usize, failures: &mut Vec<String>) {
    println!("\n`report` over {n} records");
    let state = dir.join("report-state");
    // One real record, copied with new ids: the files are what builds leave.
    let spec = dir.join("one.yml");
    std::fs::write(
        &spec,
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo hi\n",
    )
    .expect("write");
    timed(
        Command::new(BIN)
            .args(["run", "--state-dir"])
            .arg(&state)
            .arg("--source")
            .arg(dir)
            .arg(&spec),
    );
    let builds = state.join("builds");
    let first = std::fs::read_dir(&builds)
        .expect("builds")
        .next()
        .expect("one build")
        .expect("entry")
        .path();
    let record = std::fs::read_to_string(first.join("build.json")).expect("record");
    let uuid = first
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    for i in 1..n {
        let new = format!("{i:08x}{}", &uuid[8..]);
        let dir = builds.join(&new);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("build.json"), record.replace(&uuid, &new)).expect("write");
    }
    let cat = timed(
        Command::new("sh")
            .arg("-c")
            .arg("cat */build.json > /dev/null")
            .current_dir(&builds),
    );
    let rounds = 3;
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            timed(
                Command::new(BIN)
                    .args(["report", "--failed", "--state-dir"])
                    .arg(&state),
            )
        })
        .collect();
    times.sort();
    let answer = times[rounds / 2];
    println!("  cat of every record     {}", ms(cat));
    println!("  buildspec report        {}", ms(answer));
    check(
        failures,
        answer < Duration::from_millis(500),
        format!(
            "report over {n} records: {} (target < 500 ms)",
            ms(answer).trim()
        ),
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    println!(
        "buildspec many-builds benchmark ({}); numbers are for this machine, ratios are the comparison",
        if full {
            "full"
        } else {
            "smoke run; pass --bench for the real one"
        }
    );
    let dir = match std::env::var_os("BUILDSPEC_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let mut failures = Vec::new();
    many_builds(dir.path(), if full { 500 } else { 10 }, &mut failures);
    report(dir.path(), if full { 10_000 } else { 100 }, &mut failures);
    let _ = std::io::stdout().flush();
    if full && !failures.is_empty() {
        println!("\n{} target(s) missed", failures.len());
    }
}
