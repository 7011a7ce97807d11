//! `check` throughput on real buildspecs, and the cost of rejecting hostile YAML.
//!
//! Run with `cargo bench -p buildspec --bench check -j1`. The targets:
//!
//! - `check` over 1,000 buildspecs of typical size takes under one second on one core;
//! - a 10 MB hostile YAML file is rejected quickly and in bounded memory.
//!
//! The run is single-threaded. Two baselines run beside the measurement in the same process:
//! reading the files (A) and reading them plus a bare serde-saphyr parse into `IgnoredAny` (B), so
//! the ratios say what `check` costs over the parser it is built on. Heap use is measured by a
//! counting global allocator (current and peak bytes).
//!
//! Without `--bench` (as under `cargo test --benches` or `--all-targets`) it does a smoke run of
//! ten files and exits, so CI stays fast.
//!
//! `BUILDSPEC_BENCH_CORPUS=dir[:dir...]` adds directories of buildspecs measured as extra rows.

// The counting allocator needs `unsafe impl GlobalAlloc`; nothing else here is unsafe.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use buildspec::{Checked, Options, ReadError, SourceFile};

// ---------------------------------------------------------------------------------------------
// Counting allocator.

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    CURRENT.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees are ours; the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from this allocator, hence from `System`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; `ptr` came from this allocator, hence from `System`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            grew(new_size);
            shrank(layout.size());
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a heap measurement: the peak from now on, above what is live now.
fn heap_mark() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn heap_peak_since(mark: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(mark)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const MIB: f64 = 1024.0 * 1024.0;
const TARGET_FILES: usize = 1_000;
const TARGET: Duration = Duration::from_secs(1);
const HOSTILE_TIME_LIMIT: Duration = Duration::from_secs(1);
const HOSTILE_HEAP_LIMIT: usize = 64 * 1024 * 1024;
/// Size of the hostile inputs kept under the 4 MiB limit.
const HOSTILE_BYTES: usize = 3_900_000;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Writes `count` files cycling through `sources` into `dir`; returns their paths and total size.
fn write_copies(sources: &[PathBuf], count: usize, dir: &Path) -> (Vec<PathBuf>, usize) {
    let texts: Vec<String> = sources
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let mut paths = Vec::with_capacity(count);
    let mut bytes = 0;
    for i in 0..count {
        let text = &texts[i % texts.len()];
        let path = dir.join(format!("{i:04}-buildspec.yml"));
        std::fs::write(&path, text).unwrap();
        bytes += text.len();
        paths.push(path);
    }
    (paths, bytes)
}

// ---------------------------------------------------------------------------------------------
// Throughput.

struct Pass {
    plans: usize,
    with_errors: usize,
}

fn read_all(paths: &[PathBuf]) -> usize {
    let mut bytes = 0;
    for p in paths {
        bytes += black_box(std::fs::read_to_string(p).unwrap()).len();
    }
    bytes
}

fn read_and_parse(paths: &[PathBuf]) -> usize {
    let mut ok = 0;
    for p in paths {
        let text = std::fs::read_to_string(p).unwrap();
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        if black_box(serde_saphyr::from_str::<serde::de::IgnoredAny>(text)).is_ok() {
            ok += 1;
        }
    }
    ok
}

fn check_all(paths: &[PathBuf], plan: bool) -> Pass {
    let options = Options::default();
    let mut pass = Pass {
        plans: 0,
        with_errors: 0,
    };
    for p in paths {
        let checked = buildspec::check_file(p, &options).unwrap();
        if checked.has_errors() {
            pass.with_errors += 1;
        }
        if plan && black_box(checked.plan()).is_some() {
            pass.plans += 1;
        }
        black_box(&checked);
    }
    pass
}

struct Row {
    name: &'static str,
    median: Duration,
    all: Vec<Duration>,
}

fn time_runs(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect()
}

fn throughput(label: &str, sources: &[PathBuf], count: usize, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (paths, bytes) = write_copies(sources, count, dir.path());
    println!(
        "## check over {count} files: {label}\n\n{} source files cycled, {:.2} MB in all, {:.0} bytes on average; median of {runs} runs after one warm-up, one thread.\n",
        sources.len(),
        bytes as f64 / 1e6,
        bytes as f64 / count as f64,
    );

    // Warm-up: page cache, allocator, regex compilation behind any `OnceLock`.
    read_all(&paths);
    read_and_parse(&paths);
    let first = check_all(&paths, true);

    // Interleave the variants run by run, so that drift in the machine's load hits them alike.
    let mut times: [Vec<Duration>; 4] = Default::default();
    let mut peak_check = 0;
    for _ in 0..runs {
        times[0].extend(time_runs(1, || {
            black_box(read_all(&paths));
        }));
        times[1].extend(time_runs(1, || {
            black_box(read_and_parse(&paths));
        }));
        times[2].extend(time_runs(1, || {
            black_box(check_all(&paths, false).with_errors);
        }));
        let mark = heap_mark();
        times[3].extend(time_runs(1, || {
            black_box(check_all(&paths, true).plans);
        }));
        peak_check = peak_check.max(heap_peak_since(mark));
    }
    let names = [
        "A  read_to_string",
        "B  read + serde-saphyr IgnoredAny",
        "   check_file",
        "M  check_file + plan()",
    ];
    let rows: Vec<Row> = names
        .iter()
        .zip(times)
        .map(|(name, all)| Row {
            name,
            median: median(all.clone()),
            all,
        })
        .collect();
    let a = rows[0].median.as_secs_f64();
    let b = rows[1].median.as_secs_f64();
    println!(
        "| {:<34} | {:>10} | {:>8} | {:>8} | {:>11} | {:<40} |",
        "variant", "median ms", "× A", "× B", "µs / file", "all runs (ms)"
    );
    println!(
        "|{:-<36}|{:->12}|{:->10}|{:->10}|{:->13}|{:-<42}|",
        "", "", "", "", "", ""
    );
    for row in &rows {
        let all = row
            .all
            .iter()
            .map(|d| format!("{:.1}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "| {:<34} | {:>10.1} | {:>8.1} | {:>8.2} | {:>11.1} | {:<40} |",
            row.name,
            ms(row.median),
            row.median.as_secs_f64() / a,
            row.median.as_secs_f64() / b,
            row.median.as_secs_f64() * 1e6 / count as f64,
            all,
        );
    }
    let measured = rows[3].median;
    // Scale to 1,000 files when the smoke run uses fewer.
    let per_thousand = measured.mul_f64(TARGET_FILES as f64 / count as f64);
    println!(
        "\n{} files planned, {} with errors; peak heap during one `check_file + plan()` pass: {:.2} MiB",
        first.plans,
        first.with_errors,
        peak_check as f64 / MIB,
    );
    let verdict = if count < TARGET_FILES || cfg!(debug_assertions) {
        "no verdict (smoke run or unoptimized build)"
    } else if per_thousand < TARGET {
        "PASS"
    } else {
        "FAIL"
    };
    println!(
        "target: 1,000 files under {} ms on one core: {:.1} ms -> {verdict}\n",
        TARGET.as_millis(),
        ms(per_thousand),
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile inputs.

struct Hostile {
    name: &'static str,
    /// Whether the file must be rejected (an error); the extras that are valid YAML and could be a
    /// legitimate (if absurd) buildspec are only held to the time and memory bounds.
    must_reject: bool,
    text: String,
}

fn repeat_to(unit: &str, total: usize) -> String {
    unit.repeat(total / unit.len())
}

fn numbered(prefix: &str, mut line: impl FnMut(usize) -> String, total: usize) -> String {
    let mut s = String::from(prefix);
    let mut i = 0;
    while s.len() < total {
        s.push_str(&line(i));
        i += 1;
    }
    s
}

/// A valid buildspec followed by `count` unknown top-level keys: one warning each.
fn unknown_keys(count: usize) -> String {
    let mut s = String::from("version: 0.2\nphases:\n  build:\n    commands: [make]\n");
    for i in 0..count {
        s.push_str(&format!("k{i}: 1\n"));
    }
    s
}

fn hostile_inputs() -> Vec<Hostile> {
    let n = HOSTILE_BYTES;
    let mut cases = Vec::new();

    let half = n / 2;
    cases.push(Hostile {
        name: "nested flow sequences [[[…]]]",
        must_reject: true,
        text: format!("{}{}", "[".repeat(half), "]".repeat(half)),
    });

    // `a:` nested by one more space per level until the size is reached (depth ≈ 2,800).
    let mut nested = String::new();
    let mut depth = 0;
    while nested.len() + depth + 3 < n {
        nested.push_str(&" ".repeat(depth));
        nested.push_str("a:\n");
        depth += 1;
    }
    cases.push(Hostile {
        name: "nested block mappings (indent +1)",
        must_reject: true,
        text: nested,
    });

    cases.push(Hostile {
        name: "nested block sequences - - - … (extra)",
        must_reject: true,
        text: format!("{}x\n", "- ".repeat(half - 1)),
    });

    // Ten anchors, each a list of ten aliases of the previous one: 10^10 leaves.
    let mut bomb = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let prev = i - 1;
        let refs = vec![format!("*a{prev}"); 10].join(",");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    cases.push(Hostile {
        name: "billion laughs (10 anchors × 10)",
        must_reject: true,
        text: bomb.clone(),
    });
    // The same bomb, aimed where the decoder would walk it.
    cases.push(Hostile {
        name: "billion laughs in commands (extra)",
        must_reject: true,
        text: format!(
            "version: 0.2\nx-defs:\n{}phases:\n  build:\n    commands: *a9\n",
            bomb.lines().map(|l| format!("  {l}\n")).collect::<String>()
        ),
    });
    cases.push(Hostile {
        name: "wide aliases: one anchor, *a ×1M (extra)",
        must_reject: true,
        text: format!("a: &a [x, y, z]\nb: [{}*a]\n", repeat_to("*a, ", n - 30)),
    });

    cases.push(Hostile {
        name: "one huge plain scalar",
        must_reject: true,
        text: format!("{}\n", "x".repeat(n)),
    });
    cases.push(Hostile {
        name: "huge command in a valid spec (extra)",
        must_reject: false,
        text: format!(
            "version: 0.2\nphases:\n  build:\n    commands:\n      - {}\n",
            "x".repeat(n - 60)
        ),
    });
    cases.push(Hostile {
        name: "huge unknown key (extra)",
        must_reject: false,
        text: format!(
            "version: 0.2\nphases:\n  build:\n    commands: [make]\n{}: 1\n",
            "k".repeat(n - 60)
        ),
    });

    let tiny: String = (0..200_000).map(|i| format!("k{i}: 1\n")).collect();
    cases.push(Hostile {
        name: "200k tiny keys",
        must_reject: true,
        text: tiny,
    });
    // Under the node budget, so that the decoder sees every key: one warning each.
    cases.push(Hostile {
        name: "99k unknown top-level keys (extra)",
        must_reject: false,
        text: numbered(
            "version: 0.2\nphases:\n  build:\n    commands: [make]\n",
            |i| format!("k{i}: 1\n"),
            0,
        ) + &(0..99_000)
            .map(|i| format!("k{i}: 1\n"))
            .collect::<String>(),
    });
    cases.push(Hostile {
        name: "99k duplicate env variables (extra)",
        must_reject: false,
        text: format!(
            "version: 0.2\nenv:\n  variables:\n{}phases:\n  build:\n    commands: [make]\n",
            "    A: 1\n".repeat(99_000)
        ),
    });

    cases.push(Hostile {
        name: "huge flow mapping {k0: 1, …}",
        must_reject: true,
        text: {
            let mut s = numbered("{", |i| format!("k{i}: 1, "), n - 10);
            s.push_str("z: 1}\n");
            s
        },
    });
    cases
}

struct Outcome {
    result: String,
    diagnostics: usize,
    check: Duration,
    render: Duration,
    rendered_bytes: usize,
    /// Peak above the mark during check + plan.
    peak_check: usize,
    /// Peak above the mark during check + plan + render (the rendered text included).
    peak: usize,
    rejected: bool,
}

fn summarize(checked: &Checked) -> String {
    match checked.diagnostics.iter().find(|d| d.is_error()) {
        Some(d) => format!("error[{}]", d.code.as_str()),
        None => match checked.diagnostics.first() {
            Some(d) => format!("ok, warning[{}]", d.code.as_str()),
            None => "ok".to_owned(),
        },
    }
}

/// `plan()` and `render()` on a checked file, as the CLI would; `start` is when checking began.
fn finish(checked: &Checked, mark: usize, start: Instant) -> Outcome {
    let plan = checked.plan();
    let check = start.elapsed();
    black_box(&plan);
    drop(plan);
    let peak_check = heap_peak_since(mark);
    let start = Instant::now();
    let rendered = black_box(checked.render());
    let render = start.elapsed();
    Outcome {
        result: summarize(checked),
        diagnostics: checked.diagnostics.len(),
        check,
        render,
        rendered_bytes: rendered.len(),
        peak_check,
        peak: heap_peak_since(mark),
        rejected: checked.has_errors(),
    }
}

/// `check_file` on a path.
fn run_file(path: &Path) -> Outcome {
    let mark = heap_mark();
    let start = Instant::now();
    match buildspec::check_file(path, &Options::default()) {
        Ok(checked) => finish(&checked, mark, start),
        Err(e) => {
            let check = start.elapsed();
            let peak_check = heap_peak_since(mark);
            let start = Instant::now();
            let rendered = black_box(e.to_string());
            let render = start.elapsed();
            let result = match e {
                ReadError::TooLarge { .. } => "read error: too large".to_owned(),
                ReadError::NotUtf8 { .. } => "read error: not UTF-8".to_owned(),
                ReadError::Io { .. } => "read error: I/O".to_owned(),
            };
            Outcome {
                result,
                diagnostics: 0,
                check,
                render,
                rendered_bytes: rendered.len(),
                peak_check,
                peak: heap_peak_since(mark),
                rejected: true,
            }
        }
    }
}

/// `check` on text already in memory (stdin, an editor); the text is allocated before the heap
/// mark, as the caller would have it.
fn run_text(text: String) -> Outcome {
    let source = SourceFile::new("hostile.yml", text);
    let mark = heap_mark();
    let start = Instant::now();
    let checked = buildspec::check(source, &Options::default());
    finish(&checked, mark, start)
}

/// Runs a case up to `runs` times, once only when a run is already far over the time limit.
fn repeat(runs: usize, mut f: impl FnMut() -> Outcome) -> Vec<Outcome> {
    let mut outs = vec![f()];
    while outs.len() < runs && outs[0].check + outs[0].render < 5 * HOSTILE_TIME_LIMIT {
        outs.push(f());
    }
    outs
}

fn table_header(first: &str) {
    println!(
        "| {:<42} | {:>9} | {:<26} | {:>6} | {:>9} | {:>10} | {:>9} | {:>9} | {:>9} | {:<28} |",
        first,
        "bytes",
        "result",
        "diags",
        "check ms",
        "render ms",
        "rendered",
        "peak chk",
        "peak all",
        "verdict"
    );
    println!(
        "|{:-<44}|{:->11}|{:-<28}|{:->8}|{:->11}|{:->12}|{:->11}|{:->11}|{:->11}|{:-<30}|",
        "", "", "", "", "", "", "", "", "", ""
    );
}

fn table_row(name: &str, bytes: usize, must_reject: bool, outs: &[Outcome]) {
    let check = median(outs.iter().map(|o| o.check).collect());
    let render = median(outs.iter().map(|o| o.render).collect());
    let peak_check = outs.iter().map(|o| o.peak_check).max().unwrap_or(0);
    let peak = outs.iter().map(|o| o.peak).max().unwrap_or(0);
    let o = &outs[0];
    let mut verdict = Vec::new();
    if check + render > HOSTILE_TIME_LIMIT {
        verdict.push("FAIL time");
    }
    if peak > HOSTILE_HEAP_LIMIT {
        verdict.push("FAIL heap");
    }
    if must_reject && !o.rejected {
        verdict.push("FAIL accepted");
    }
    let verdict = if verdict.is_empty() {
        "ok".to_owned()
    } else {
        verdict.join(", ")
    };
    let runs = if outs.len() == 1 { " (1 run)" } else { "" };
    println!(
        "| {:<42} | {:>9} | {:<26} | {:>6} | {:>9.1} | {:>10.1} | {:>9} | {:>9.2} | {:>9.2} | {:<28} |",
        name,
        bytes,
        o.result,
        o.diagnostics,
        ms(check),
        ms(render),
        o.rendered_bytes,
        peak_check as f64 / MIB,
        peak as f64 / MIB,
        format!("{verdict}{runs}"),
    );
}

fn hostile(runs: usize, filter: &[String]) {
    println!(
        "## hostile inputs\n\n\"check ms\" is `check_file` + `plan()`, \"render ms\" is `render()` of the diagnostics (\"rendered\" is its length in bytes); median of up to {runs} runs (one when a run takes over 5 s). Peak heap, in MiB, is the most held above what was live before the case (the file's text included), during check + plan (\"peak chk\") and to the end of render (\"peak all\"). FAIL: check + render over {} ms, peak over {} MiB, or a file that must be rejected that is not. \"(extra)\" cases go beyond the issue's list.\n",
        HOSTILE_TIME_LIMIT.as_millis(),
        HOSTILE_HEAP_LIMIT / (1024 * 1024),
    );
    let wanted = |name: &str| selected(filter, "hostile", name);
    let dir = tempfile::tempdir().unwrap();
    table_header("case");

    // (a) 10 MB: refused by size, before reading.
    if wanted("10 MB") {
        let ten = "x: y\n".repeat(10_000_000 / 5);
        let path = dir.path().join("ten-mb.yml");
        std::fs::write(&path, &ten).unwrap();
        let outs = repeat(runs, || run_file(&path));
        table_row("10 MB file via check_file", ten.len(), true, &outs);
        let outs = repeat(runs, || run_text(ten.clone()));
        table_row("10 MB text via check (in memory)", ten.len(), true, &outs);
        std::fs::remove_file(&path).unwrap();
    }

    // (b) just under the limit, each kind.
    for case in hostile_inputs() {
        if !wanted(case.name) {
            continue;
        }
        assert!(
            case.text.len() <= buildspec::MAX_SOURCE_BYTES,
            "{}",
            case.name
        );
        let path = dir.path().join("hostile.yml");
        std::fs::write(&path, &case.text).unwrap();
        let outs = repeat(runs, || run_file(&path));
        table_row(case.name, case.text.len(), case.must_reject, &outs);
    }
    println!();
}

/// How check and render grow with the number of diagnostics: doubling the count should about
/// double the time when both are linear.
fn scaling(filter: &[String]) {
    if !selected(filter, "scaling", "") {
        return;
    }
    println!(
        "## scaling with the number of diagnostics\n\nA valid buildspec plus N unknown top-level keys (one warning each), through `check_file`, `plan()` and `render()`, one run each. Linear code doubles its time when N doubles.\n"
    );
    let dir = tempfile::tempdir().unwrap();
    table_header("unknown keys");
    let mut times: Vec<(Duration, Duration)> = Vec::new();
    for count in [5_000, 10_000, 20_000, 40_000] {
        let text = unknown_keys(count);
        let path = dir.path().join("keys.yml");
        std::fs::write(&path, &text).unwrap();
        let outs = [run_file(&path)];
        table_row(&format!("{count}"), text.len(), false, &outs);
        times.push((outs[0].check, outs[0].render));
    }
    let ratios = |pick: fn(&(Duration, Duration)) -> Duration| {
        times
            .windows(2)
            .map(|w| {
                format!(
                    "{:.1}",
                    pick(&w[1]).as_secs_f64() / pick(&w[0]).as_secs_f64()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "\ntime ratio per doubling of N (2.0 is linear, 4.0 quadratic): check {}; render {}\n",
        ratios(|t| t.0),
        ratios(|t| t.1),
    );
}

// ---------------------------------------------------------------------------------------------

/// Whether a section ("throughput", "hostile", "scaling"), or a case of it, is to run: no filter,
/// or a filter that is the section's name or part of the case's name.
fn selected(filter: &[String], section: &str, case: &str) -> bool {
    filter.is_empty()
        || filter
            .iter()
            .any(|f| f == section || (!case.is_empty() && case.contains(f.as_str())))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    // `cargo bench --bench check -- FILTER`: run only the parts whose name contains FILTER
    // ("throughput", "scaling", or part of a hostile case's name).
    let filter: Vec<String> = args.into_iter().filter(|a| !a.starts_with('-')).collect();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/real");
    let sources = corpus_files(&real);
    assert!(!sources.is_empty(), "no *.yml in {}", real.display());

    if !bench {
        // `cargo test --benches` / `--all-targets`: a smoke run, not a measurement.
        throughput("smoke run (no --bench)", &sources, 10, 1);
        return;
    }

    println!("# buildspec check benchmark\n");
    println!(
        "numbers are for this machine; ratios are the comparison. Profile: {}. Heap counted by a global allocator wrapper (adds a little to every variant alike).\n",
        if cfg!(debug_assertions) {
            "debug (not a measurement)"
        } else {
            "optimized"
        },
    );
    if selected(&filter, "throughput", "") {
        throughput("tests/corpus/real", &sources, TARGET_FILES, 5);
        if let Ok(extra) = std::env::var("BUILDSPEC_BENCH_CORPUS") {
            for dir in std::env::split_paths(&extra) {
                let files = corpus_files(&dir);
                if files.is_empty() {
                    println!("(no *.yml in {}; skipped)\n", dir.display());
                    continue;
                }
                let label = dir.display().to_string();
                throughput(&label, &files, TARGET_FILES, 5);
            }
        }
    }
    hostile(3, &filter);
    scaling(&filter);
}
