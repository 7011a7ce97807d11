//! The engine's cost, measured side by side with what it replaces, in one run.
//!
//! `cargo bench -p buildspec-cli --bench engine` prints, each against a baseline run in the same
//! process:
//!
//! 1. 2,000 trivial commands in a compat session vs 2,000 bare `sh -c true` spawns (target: no
//!    more), and in a persistent session vs compat (target: at least 10x faster per command);
//! 2. a buildspec of 200 `echo` commands end to end, in both sessions, vs `task` and `just`
//!    running the same 200 commands (installed with `pip install go-task-bin rust-just`; rows are
//!    skipped with a note when they are absent);
//! 3. 1 GiB of output from one command through the runner (log file plus console) vs the same
//!    command writing to a file, with the runner's peak memory (target: at most 2x the time,
//!    under 50 MB), the same with 10 secrets to mask (target: under 10% more), and one 100 MB
//!    line without a newline (memory under 50 MB).
//!
//! Without `--bench` (as under `cargo test --all-targets`) it runs a small smoke version so that
//! the harness itself is tested. Numbers are for this machine; the ratios are the comparison.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{median, ms, peak_child_rss_kb};

const BIN: &str = env!("CARGO_BIN_EXE_buildspec");

struct Bench {
    dir: tempfile::TempDir,
    full: bool,
    failures: Vec<String>,
}

impl Bench {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write_spec(&self, name: &str, commands: &[String]) -> PathBuf {
        let mut yaml = String::from("version: 0.2\nphases:\n  build:\n    commands:\n");
        for c in commands {
            yaml.push_str(&format!("      - {c}\n"));
        }
        let path = self.path().join(name);
        std::fs::write(&path, yaml).expect("write buildspec");
        path
    }

    /// Runs `buildspec run`, console drained by this process, and returns its wall time.
    fn run_buildspec(&self, spec: &Path, session: &str) -> Duration {
        self.run_buildspec_with(spec, session, &[])
    }

    /// The median wall time of `rounds` runs.
    fn median_run(&self, rounds: usize, spec: &Path, session: &str, extra: &[String]) -> Duration {
        median(
            (0..rounds)
                .map(|_| self.run_buildspec_with(spec, session, extra))
                .collect(),
        )
    }

    fn run_buildspec_with(&self, spec: &Path, session: &str, extra: &[String]) -> Duration {
        let started = Instant::now();
        let mut child = Command::new(BIN)
            .args(["run", "--session", session, "--state-dir"])
            .arg(self.path().join("state"))
            .args(extra)
            .arg("--source")
            .arg(self.path())
            .arg(spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn buildspec");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut sink = vec![0u8; 1 << 16];
        while stdout.read(&mut sink).map(|n| n > 0).unwrap_or(false) {}
        let status = child.wait().expect("wait");
        let elapsed = started.elapsed();
        assert!(status.success(), "buildspec run {} failed", spec.display());
        elapsed
    }

    fn check(&mut self, ok: bool, what: String) {
        common::verdict(&mut self.failures, ok, what);
    }

    fn trivial_commands(&mut self) {
        let n = if self.full { 2000 } else { 50 };
        println!("\n{n} trivial commands");
        let spec = self.write_spec("trivial.yml", &vec!["true".to_owned(); n]);
        let rounds = if self.full { 5 } else { 1 };
        let bare = median(
            (0..rounds)
                .map(|_| {
                    let t = Instant::now();
                    for _ in 0..n {
                        let s = Command::new("sh")
                            .args(["-c", "true"])
                            .status()
                            .expect("sh");
                        assert!(s.success());
                    }
                    t.elapsed()
                })
                .collect(),
        );
        let compat = self.median_run(rounds, &spec, "compat", &[]);
        let persistent = self.median_run(rounds, &spec, "persistent", &[]);
        let per = |d: Duration| format!("{:7.1} us/command", d.as_secs_f64() * 1e6 / n as f64);
        println!("  bare `sh -c true` x{n}   {}  {}", ms(bare), per(bare));
        println!("  compat session          {}  {}", ms(compat), per(compat));
        println!(
            "  persistent session      {}  {}",
            ms(persistent),
            per(persistent)
        );
        let ratio = compat.as_secs_f64() / bare.as_secs_f64();
        self.check(
            ratio <= 1.0,
            format!("compat / bare spawns = {ratio:.2} (target <= 1.0)"),
        );
        let speedup = compat.as_secs_f64() / persistent.as_secs_f64();
        self.check(
            speedup >= 10.0,
            format!("compat / persistent = {speedup:.1}x (target >= 10x)"),
        );
    }

    fn echo_commands(&mut self) {
        let n = 200;
        println!("\n{n} echo commands, end to end");
        let commands: Vec<String> = (0..n).map(|i| format!("echo line {i}")).collect();
        let spec = self.write_spec("echo.yml", &commands);
        let mut justfile = String::from("all:\n");
        let mut taskfile = String::from("version: '3'\ntasks:\n  default:\n    cmds:\n");
        for c in &commands {
            justfile.push_str(&format!("    {c}\n"));
            taskfile.push_str(&format!("      - {c}\n"));
        }
        std::fs::write(self.path().join("justfile"), justfile).expect("justfile");
        std::fs::write(self.path().join("Taskfile.yml"), taskfile).expect("taskfile");
        let rounds = if self.full { 7 } else { 1 };
        let time = |cmd: &mut Command| -> Option<Duration> {
            let mut samples = Vec::new();
            for _ in 0..rounds {
                let t = Instant::now();
                let out = cmd
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .ok()?;
                if !out.success() {
                    return None;
                }
                samples.push(t.elapsed());
            }
            Some(median(samples))
        };
        let compat = self.median_run(rounds, &spec, "compat", &[]);
        let persistent = self.median_run(rounds, &spec, "persistent", &[]);
        let just = time(Command::new(tool("just")).current_dir(self.path()));
        let task = time(Command::new(tool("task")).current_dir(self.path()));
        println!("  buildspec compat        {}", ms(compat));
        println!("  buildspec persistent    {}", ms(persistent));
        for (name, t) in [("just", just), ("task", task)] {
            match t {
                Some(t) => {
                    println!("  {name:<24}{}", ms(t));
                    for (session, ours) in [("compat", compat), ("persistent", persistent)] {
                        let ratio = ours.as_secs_f64() / t.as_secs_f64();
                        self.check(
                            ratio < 1.0,
                            format!("{session} / {name} = {ratio:.2} (target < 1.0)"),
                        );
                    }
                }
                None => println!("  {name:<24}not installed (pip install go-task-bin rust-just)"),
            }
        }
    }

    fn output_volume(&mut self) {
        let bytes: u64 = if self.full { 1 << 30 } else { 1 << 20 };
        println!("\n{} MiB of output from one command", bytes >> 20);
        let line = "the quick brown fox jumps over the lazy dog 0123456789 0123456789 0123456789";
        let command = format!("yes '{line}' | head -c {bytes}");
        let spec = self.write_spec("volume.yml", &[format!("\"{command}\"")]);
        let rounds = if self.full { 5 } else { 1 };
        let file = self.path().join("direct.out");
        let direct = median(
            (0..rounds)
                .map(|_| {
                    let t = Instant::now();
                    let s = Command::new("sh")
                        .arg("-c")
                        .arg(format!("{command} > '{}'", file.display()))
                        .status()
                        .expect("sh");
                    assert!(s.success());
                    t.elapsed()
                })
                .collect(),
        );
        let _ = std::fs::remove_file(&file);
        // Ten secrets to mask, none in the output (the usual case); then one that is on every
        // line (the worst case, shown for information).
        let mut masks: Vec<String> = (0..10)
            .flat_map(|i| {
                [
                    "--mask".to_owned(),
                    format!("secret-value-{i}-not-in-the-output"),
                ]
            })
            .collect();
        // Runs with and without masking take turns, each after the last one's 1 GiB log is
        // gone: the disk's writeback of one run's log must not fall on the next one only.
        let before = peak_child_rss_kb();
        let (mut plain, mut with_masks) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            plain.push(self.run_buildspec_with(&spec, "compat", &[]));
            let _ = std::fs::remove_dir_all(self.path().join("state"));
            with_masks.push(self.run_buildspec_with(&spec, "compat", &masks));
            let _ = std::fs::remove_dir_all(self.path().join("state"));
        }
        let peak = peak_child_rss_kb().max(before);
        let (runner, masked) = (median(plain), median(with_masks));
        masks.truncate(18);
        masks.extend(["--mask".to_owned(), "lazy dog".to_owned()]);
        let every_line = self.median_run(rounds, &spec, "compat", &masks);
        println!("  command > file          {}", ms(direct));
        println!("  through buildspec       {}", ms(runner));
        println!("  ... masking 10 secrets  {}", ms(masked));
        println!(
            "  ... one on every line   {}  (worst case, for information)",
            ms(every_line)
        );
        let ratio = runner.as_secs_f64() / direct.as_secs_f64();
        self.check(
            ratio <= 2.0,
            format!("runner / direct = {ratio:.2} (target <= 2.0)"),
        );
        let cost = masked.as_secs_f64() / runner.as_secs_f64() - 1.0;
        self.check(
            cost < 0.10,
            format!(
                "masking 10 secrets costs {:.1}% of streaming time (target < 10%)",
                cost * 100.0
            ),
        );
        self.check(
            peak < 50 * 1024,
            format!(
                "peak memory of the runner (largest child so far) = {:.1} MB (target < 50 MB)",
                peak as f64 / 1024.0
            ),
        );

        let long: u64 = if self.full { 100_000_000 } else { 1_000_000 };
        println!("\none {} MB line without a newline", long / 1_000_000);
        let spec = self.write_spec(
            "long.yml",
            &[format!("\"head -c {long} /dev/zero | tr '\\\\0' x\"")],
        );
        let t = self.run_buildspec(&spec, "compat");
        let peak = peak_child_rss_kb();
        println!("  through buildspec       {}", ms(t));
        self.check(
            peak < 50 * 1024,
            format!(
                "peak memory of the runner (largest child so far) = {:.1} MB (target < 50 MB)",
                peak as f64 / 1024.0
            ),
        );
        // Clear the state directory: the logs of these runs are large.
        let _ = std::fs::remove_dir_all(self.path().join("state"));
    }
}

/// A tool installed from PyPI: the executable in Python's scripts directory, so that a version
/// manager's shim (a shell script) does not add its own start-up to the measurement; else the
/// name, found on PATH.
fn tool(name: &str) -> PathBuf {
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    scripts
        .map(|dir| dir.join(name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mut bench = Bench {
        dir: tempfile::tempdir().expect("tempdir"),
        full,
        failures: Vec::new(),
    };
    println!(
        "buildspec engine benchmark ({}); numbers are for this machine, ratios are the comparison",
        if full {
            "full"
        } else {
            "smoke run; pass --bench for the real one"
        }
    );
    // `cargo bench --bench engine -- trivial` runs only the sections whose names hold one of
    // the words given (as cargo's own test filters do): `output`, `trivial`, `echo`.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    // Memory is read from the largest child waited for so far, so the output runs come first,
    // before any other tool has run.
    if wanted("output") {
        bench.output_volume();
    }
    if wanted("trivial") {
        bench.trivial_commands();
    }
    if wanted("echo") {
        bench.echo_commands();
    }
    let _ = std::io::stdout().flush();
    if full && !bench.failures.is_empty() {
        println!("\n{} target(s) missed", bench.failures.len());
    }
}
