//! Artifact collection, measured side by side with the tools it replaces, in one run.
//!
//! `cargo bench -p buildspec-cli --bench artifacts` prints, each against a baseline run in the
//! same process:
//!
//! 1. one 2 GB file collected into a folder and into a zip: the runner's peak memory (target:
//!    bounded, under 50 MB);
//! 2. `**/*` over 50,000 small files collected into a folder vs `cp -r` of the same tree
//!    (target: no slower), and into a zip vs `zip -r -q -6` (target: no slower).
//!
//! Each figure is the whole `buildspec run`, start-up and record included. Without `--bench` (as
//! under `cargo test --all-targets`) it runs a small smoke version so that the harness itself is
//! tested.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
use common::{median, ms, peak_child_rss_kb, timed};

const BIN: &str = env!("CARGO_BIN_EXE_buildspec");

struct Bench {
    dir: tempfile::TempDir,
    full: bool,
    failures: Vec<String>,
    runs: usize,
}

impl Bench {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn check(&mut self, ok: bool, what: String) {
        common::verdict(&mut self.failures, ok, what);
    }

    /// A fresh, empty folder for one run's output.
    fn fresh(&mut self, what: &str) -> PathBuf {
        self.runs += 1;
        let dir = self.path().join(format!("out-{what}-{}", self.runs));
        std::fs::create_dir(&dir).expect("mkdir");
        dir
    }

    /// `buildspec run` of a buildspec that only collects `files` from `source`.
    fn collect(&mut self, source: &Path, files: &str, zip: bool) -> (Duration, PathBuf) {
        let spec = self.path().join("collect.yml");
        std::fs::write(
            &spec,
            format!("version: 0.2\nphases:\n  build:\n    commands:\n      - 'true'\nartifacts:\n  files: ['{files}']\n"),
        )
        .expect("write buildspec");
        let out = self.fresh("runner");
        let took = timed(
            Command::new(BIN)
                .args(["run", "--state-dir"])
                .arg(self.path().join("state"))
                .arg("--artifacts")
                .arg(&out)
                .args(["--packaging", if zip { "zip" } else { "none" }])
                .arg("--source")
                .arg(source)
                .arg(&spec),
        );
        (took, out)
    }

    fn big_file(&mut self) {
        let bytes: u64 = if self.full { 2_000_000_000 } else { 20_000_000 };
        println!("\none {} MB file", bytes / 1_000_000);
        let source = self.path().join("big");
        std::fs::create_dir(&source).expect("mkdir");
        // Random-looking content, so that the zip really compresses: a run of `yes`.
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "yes 'buildspec artifact benchmark 0123456789' | head -c {bytes} > '{}'",
                source.join("big.bin").display()
            ))
            .status()
            .expect("sh");
        assert!(status.success());
        for zip in [false, true] {
            let (took, out) = self.collect(&source, "big.bin", zip);
            let peak = peak_child_rss_kb();
            println!(
                "  into a {}  {}",
                if zip { "zip   " } else { "folder" },
                ms(took)
            );
            self.check(
                peak < 50 * 1024,
                format!(
                    "peak memory of the runner (largest child so far) = {:.1} MB (target < 50 MB)",
                    peak as f64 / 1024.0
                ),
            );
            let _ = std::fs::remove_dir_all(out);
        }
        let _ = std::fs::remove_dir_all(&source);
    }

    fn small_files(&mut self) {
        let (dirs, per_dir) = if self.full { (50, 1000) } else { (5, 100) };
        println!("\n{} small files, `**/*`", dirs * per_dir);
        let source = self.path().join("tree");
        for d in 0..dirs {
            let dir = source.join(format!("pkg-{d:02}/src"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            for f in 0..per_dir {
                let text = format!("// file {d}/{f}\n").repeat(1 + (f % 40));
                std::fs::write(dir.join(format!("module_{f:04}.rs")), text).expect("write");
            }
        }
        // The buildspec lives outside the tree, so that both sides copy the same files.
        let rounds = if self.full { 3 } else { 1 };
        let mut cp = Vec::new();
        let mut runner = Vec::new();
        let mut zip = Vec::new();
        let mut runner_zip = Vec::new();
        for _ in 0..rounds {
            let out = self.fresh("cp");
            cp.push(timed(
                Command::new("cp")
                    .arg("-r")
                    .arg(&source)
                    .arg(out.join("tree")),
            ));
            let _ = std::fs::remove_dir_all(out);
            let (took, out) = self.collect(&source, "**/*", false);
            runner.push(took);
            let _ = std::fs::remove_dir_all(out);

            let out = self.fresh("zip");
            zip.push(timed(
                Command::new("zip")
                    .args(["-r", "-q", "-6"])
                    .arg(out.join("tree.zip"))
                    .arg(".")
                    .current_dir(&source),
            ));
            let _ = std::fs::remove_dir_all(out);
            let (took, out) = self.collect(&source, "**/*", true);
            runner_zip.push(took);
            let _ = std::fs::remove_dir_all(out);
        }
        let (cp, runner, zip, runner_zip) =
            (median(cp), median(runner), median(zip), median(runner_zip));
        println!("  cp -r                   {}", ms(cp));
        println!("  buildspec, folder       {}", ms(runner));
        println!("  zip -r -q -6            {}", ms(zip));
        println!("  buildspec, zip          {}", ms(runner_zip));
        let ratio = runner.as_secs_f64() / cp.as_secs_f64();
        self.check(
            ratio <= 1.0,
            format!("folder / cp -r = {ratio:.2} (target <= 1.0)"),
        );
        let ratio = runner_zip.as_secs_f64() / zip.as_secs_f64();
        self.check(
            ratio <= 1.0,
            format!("zip / zip -r = {ratio:.2} (target <= 1.0)"),
        );
        let _ = std::fs::remove_dir_all(self.path().join("state"));
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mut bench = Bench {
        dir: tempfile::tempdir().expect("tempdir"),
        full,
        failures: Vec::new(),
        runs: 0,
    };
    println!(
        "buildspec artifacts benchmark ({}); numbers are for this machine, ratios are the comparison",
        if full {
            "full"
        } else {
            "smoke run; pass --bench for the real one"
        }
    );
    // Memory is read from the largest child waited for so far: the big file comes first.
    bench.big_file();
    bench.small_files();
    let _ = std::io::stdout().flush();
    if full && !bench.failures.is_empty() {
        println!("\n{} target(s) missed", bench.failures.len());
    }
}
