//! The Slurm dispatcher's own cost, measured side by side with Slurm alone, in one run.
//!
//! `cargo bench -p buildspec-cli --bench slurm` runs a 10-second build (`sleep 10`) on the local
//! cluster (`scripts/slurm up`) two ways, interleaved, three times each:
//!
//! - baseline: `sbatch --wait` of a job script that runs the build's `buildspec run`, as the
//!   dispatcher's own job script does (the baseline). `sbatch --wait` polls at growing
//!   intervals, so it is slow to notice the end: a second baseline submits the same script and
//!   polls `scontrol show job` every 20 ms, which is as soon as Slurm itself can tell;
//! - `buildspec run --executor slurm`: the dispatcher submits the same build, polls it, streams
//!   its log and completes its record.
//!
//! The difference of the medians is the dispatcher's overhead per build (submit, poll, collect);
//! target: under 5% of the 10-second build, against the faster of the two baselines. Without `--bench` (as under `cargo test
//! --all-targets`) it runs a 0-second build once, without a verdict. Where no cluster answers, it
//! says so and measures nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;
use common::{median, ms, timed, verdict};

const BIN: &str = env!("CARGO_BIN_EXE_buildspec");

fn cluster_answers() -> bool {
    Command::new("sinfo")
        .args(["-h", "-N", "-o", "%t"])
        .output()
        .is_ok_and(|o| {
            let state = String::from_utf8_lossy(&o.stdout);
            o.status.success()
                && ["idle", "mix", "alloc"]
                    .iter()
                    .any(|s| state.trim().starts_with(s))
        })
}

/// A job script that runs the build as the dispatcher's job would: `exec buildspec run ...`.
fn job_script(dir: &Path, spec: &Path) -> std::path::PathBuf {
    let script = dir.join("baseline.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec '{BIN}' run '{}' --source '{}' --state-dir '{}'\n",
            spec.display(),
            dir.display(),
            dir.join("state").display()
        ),
    )
    .expect("write the job script");
    script
}

/// Submits the script and asks Slurm for its state every 20 ms until the job is over.
fn submit_and_poll(script: &Path, output: &Path) -> Duration {
    let started = std::time::Instant::now();
    let submitted = Command::new("sbatch")
        .arg("--parsable")
        .arg(format!("--output={}", output.display()))
        .arg(script)
        .output()
        .expect("sbatch");
    assert!(submitted.status.success(), "sbatch failed");
    let id = String::from_utf8_lossy(&submitted.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    loop {
        let shown = Command::new("scontrol")
            .args(["show", "job", "-o", &id])
            .output()
            .expect("scontrol");
        let text = String::from_utf8_lossy(&shown.stdout);
        if ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"]
            .iter()
            .any(|s| text.contains(&format!("JobState={s} ")))
        {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    println!(
        "buildspec Slurm benchmark ({}); numbers are for this machine, ratios are the comparison",
        if full {
            "full"
        } else {
            "smoke run; pass --bench for the real one"
        }
    );
    if !cluster_answers() {
        println!(
            "  skipped: no Slurm cluster answers here (`scripts/slurm up` as root starts one)"
        );
        return;
    }
    let seconds: u64 = if full { 10 } else { 0 };
    let rounds = if full { 3 } else { 1 };
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let spec = dir.join("buildspec.yml");
    std::fs::write(
        &spec,
        format!("version: 0.2\nphases:\n  build:\n    commands:\n      - sleep {seconds}\n"),
    )
    .expect("write");
    let script = job_script(dir, &spec);
    let mut baseline = Vec::new();
    let mut polled = Vec::new();
    let mut dispatched = Vec::new();
    for _ in 0..rounds {
        polled.push(submit_and_poll(&script, &dir.join("polled.out")));
        baseline.push(timed(
            Command::new("sbatch")
                .arg("--wait")
                .arg("--quiet")
                .arg(format!("--output={}", dir.join("baseline.out").display()))
                .arg(&script),
        ));
        dispatched.push(timed(
            Command::new(BIN)
                .args(["run", "--executor", "slurm", "--in-place", "--shared-dir"])
                .arg(dir.join("shared"))
                .arg("--state-dir")
                .arg(dir.join("state"))
                .arg("--source")
                .arg(dir)
                .arg(&spec),
        ));
    }
    let baseline = median(baseline);
    let polled = median(polled);
    let dispatched = median(dispatched);
    // What the build itself took, by its record: the rest is Slurm's and the dispatcher's.
    let record = Command::new(BIN)
        .args(["inspect", "--last", "--json", "--state-dir"])
        .arg(dir.join("state"))
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok());
    let own = record.as_ref().and_then(|r| {
        let span = |key: &str| r[key].as_str()?.parse::<jiff::Timestamp>().ok();
        let took = span("end_time")?.duration_since(span("start_time")?);
        Duration::try_from(took).ok()
    });
    println!("\none {seconds}-second build, median of {rounds}");
    println!("  sbatch --wait             {}", ms(baseline));
    println!("  sbatch + scontrol / 20 ms {}", ms(polled));
    println!("  buildspec --executor slurm{}", ms(dispatched));
    if let Some(own) = own {
        println!(
            "  (the last build's own run {}; submit, queue, poll and collect {})",
            ms(own).trim(),
            ms(dispatched.saturating_sub(own)).trim()
        );
    }
    if full {
        let overhead = dispatched.saturating_sub(baseline.min(polled));
        let share = overhead.as_secs_f64() / Duration::from_secs(seconds).as_secs_f64();
        let mut failures = Vec::new();
        verdict(
            &mut failures,
            share < 0.05,
            format!(
                "dispatcher overhead over the faster baseline {} = {:.1}% of the build (target < 5%)",
                ms(overhead).trim(),
                share * 100.0
            ),
        );
    }
}
