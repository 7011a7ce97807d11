//! Many builds and queries over their records, measured side by side with what they replace.
//!
//! `cargo bench -p buildspec-cli --bench many` prints, each against a baseline run in the same
//! process:
//!
//! 1. 500 one-command buildspecs run by `buildspec run DIR --jobs 2 --in-place` vs the same 500
//!    commands run by `xargs -P 2 sh -c` (target: within 1.2x);
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
    let runner = timed(
        Command::new(BIN)
            .args(["run", "--jobs", "2", "--in-place", "--state-dir"])
            .arg(dir.join("state"))
            .arg("--source")
            .arg(dir)
            .arg(&specs),
    );
    println!("  xargs -P 2 sh -c        {}", ms(xargs));
    println!("  buildspec run --jobs 2  {}", ms(runner));
    let ratio = runner.as_secs_f64() / xargs.as_secs_f64();
    check(
        failures,
        ratio <= 1.2,
        format!("buildspec / xargs = {ratio:.2} (target <= 1.2)"),
    );
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
