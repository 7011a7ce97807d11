//! A build cannot reach past what it was given: each test performs an attack for real, with a
//! `run-as` user made for it, real files and real processes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use runner::events::Status::*;

use crate::run_as::{open_fixture, test_user};
use crate::{Fixture, Ran};

/// Runs the build on a thread of its own, and fails the test if it has not ended in time: an
/// attack that makes the runner wait forever must fail the test, not hang it. The fixture comes
/// back with the outcome, to look at its source.
fn run_within(fixture: Fixture, limit: Duration) -> (Ran, Fixture) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ran = fixture.run();
        let _ = tx.send((ran, fixture));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the build did not end within {limit:?}"))
}

/// A file only root may write, which an attack tries to change.
fn root_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, "original\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

#[test]
fn a_run_as_phase_cannot_replace_what_a_later_root_phase_runs() {
    let Some(user) = test_user() else {
        return;
    };
    let probe = tempfile::tempdir().expect("tempdir");
    let pwned = probe.path().join("pwned");
    // Every runtime folder the user can find: the scripts of later phases replaced, a file
    // planted in each folder it can write.
    let fixture = open_fixture(&format!(
        r#"version: 0.2
phases:
  build:
    run-as: {user}
    commands:
      - |
        for f in /dev/shm/buildspec-*/post_build-*.sh /dev/shm/buildspec-*/*/post_build-*.sh \
                 /tmp/buildspec-*/post_build-*.sh /tmp/buildspec-*/*/post_build-*.sh; do
          rm -f "$f" 2>/dev/null; echo 'id > {pwned}' > "$f" 2>/dev/null
        done
        for d in /dev/shm/buildspec-* /dev/shm/buildspec-*/* /tmp/buildspec-* /tmp/buildspec-*/*; do
          [ -d "$d" ] && touch "$d/planted" 2>/dev/null && echo "planted in $d"
        done
        true
  post_build:
    commands:
      - echo post_build as $(id -un)
"#,
        user = user.name,
        pwned = pwned.display()
    ));
    let ran = fixture.run();
    ran.expect(Succeeded);
    assert!(
        !pwned.exists(),
        "a root phase ran what the run-as phase wrote"
    );
    assert_eq!(ran.said("post_build as "), ["root"]);
    // The user may write only in its own folder.
    let own = format!("/{}", user.uid());
    for dir in ran.said("planted in ") {
        assert!(dir.ends_with(&own), "the run-as user wrote in {dir}");
    }
}

#[test]
fn the_runner_writes_a_run_as_users_files_as_that_user() {
    let Some(user) = test_user() else {
        return;
    };
    let probe = tempfile::tempdir().expect("tempdir");
    let target = root_file(probe.path(), "target");
    std::fs::set_permissions(probe.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // The next command needs an update script, which the runner writes where the link points.
    let fixture = open_fixture(&format!(
        r#"version: 0.2
phases:
  build:
    run-as: {user}
    commands:
      - ln -sf {target} "$__bs_dir/update"; CHANGED=1
      - echo after $CHANGED
"#,
        user = user.name,
        target = target.display()
    ));
    let ran = fixture.run();
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "original\n",
        "the runner wrote through the link"
    );
    assert_ne!(ran.record.status, Succeeded);
}

#[test]
fn a_state_report_that_is_not_a_file_is_refused_without_waiting() {
    let Some(user) = test_user() else {
        return;
    };
    // A FIFO in place of the state report: reading it would wait for a writer forever.
    let fixture = open_fixture(&format!(
        r#"version: 0.2
phases:
  build:
    run-as: {user}
    commands:
      - mkfifo "$__bs_dir/state"; exit 0
      - echo not reached
"#,
        user = user.name
    ));
    let (ran, _) = run_within(fixture, Duration::from_secs(60));
    assert_eq!(ran.record.status, Fault, "{}", ran.events.log);
    assert!(ran.said("not reached").is_empty());
    ran.logged("is refused: it is not a regular file");
}

/// A buildspec of `n` trivial commands in `build`, then `last` in `post_build`.
fn many_commands(n: usize, last: &str) -> String {
    let mut yaml = String::from("version: 0.2\nphases:\n  build:\n    commands:\n");
    for i in 0..n {
        yaml.push_str(&format!("      - X{}=1\n", i % 7));
    }
    yaml.push_str(&format!("  post_build:\n    commands:\n      - {last}\n"));
    yaml
}

#[test]
fn runtime_files_grow_with_the_buildspec_not_its_square() {
    let n = 4000;
    let yaml = many_commands(n, "echo runtime $(cat \"$__bs_dir\"/*.sh | wc -c)");
    let ran = Fixture::new(&yaml).run();
    ran.expect(Succeeded);
    let bytes: usize = ran.said("runtime ")[0].trim().parse().expect("a size");
    // Each script is its command and two short lines; with a blank line per buildspec line
    // before its command, they would take n * n / 2 bytes (8 MB here).
    assert!(
        bytes < yaml.len() + n * 160,
        "{bytes} bytes of scripts for {n} commands"
    );
}

#[test]
fn a_stop_request_is_not_kept_waiting_by_a_long_buildspec() {
    let fixture = Fixture::new(&many_commands(30_000, "echo done"));
    let (read, write) = std::io::pipe().expect("pipe");
    let mut stop = runner::Stop::none();
    stop.add(read.into(), 15).expect("stop");
    // The request is there before the build starts: it must end while the scripts are written.
    std::io::Write::write_all(&mut &write, b"x").expect("request");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut events = crate::Collected::default();
        let started = std::time::Instant::now();
        let outcome = runner::run(&fixture.options, &mut events, &stop).expect("recorded");
        let _ = tx.send((outcome, started.elapsed()));
    });
    let (outcome, took) = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the build ends");
    assert_eq!(outcome.record.status, Stopped);
    assert_eq!(outcome.exit_code, 143);
    let download = &outcome.record.phases[0];
    assert_eq!(download.status, Stopped);
    assert_eq!(download.contexts[0].status_code, "BUILD_STOPPED");
    // Reading a buildspec this long takes a moment in a debug build; writing its scripts out
    // (30,000 files) must not be waited for.
    assert!(took < Duration::from_secs(20), "stopped after {took:?}");
}

#[test]
fn names_and_cache_keys_are_evaluated_as_the_builds_user() {
    let Some(user) = test_user() else {
        return;
    };
    // The build puts its own `date` first on PATH; `name` and `cache.key` call it.
    let fixture = open_fixture(&format!(
        r#"version: 0.2
run-as: {user}
phases:
  install:
    commands:
      - mkdir -p bin && printf '#!/bin/sh\nid -un >> "$CODEBUILD_SRC_DIR/ran-as"\necho 2026\n' > bin/date
      - chmod +x bin/date && echo built > out.txt
      - export PATH="$CODEBUILD_SRC_DIR/bin:$PATH"
artifacts:
  name: app-$(date +%Y)
  files: [out.txt]
cache:
  key: deps-$(date)
  paths: [bin/**/*]
"#,
        user = user.name
    ));
    // A key evaluated before the build's first command: its PATH is not the build's yet, so
    // the restore evaluates the real `date` (as the user), the save the build's.
    let ran = fixture.run();
    ran.expect(Succeeded);
    ran.logged("as app-2026");
    let ran_as =
        std::fs::read_to_string(fixture.source().join("ran-as")).expect("the fake date ran");
    let users: Vec<&str> = ran_as.lines().collect();
    assert!(!users.is_empty());
    assert!(
        users.iter().all(|u| *u == user.name),
        "evaluated as {users:?}, not only as {}",
        user.name
    );
}

#[test]
fn artifacts_take_nothing_the_builds_user_cannot_read() {
    let Some(user) = test_user() else {
        return;
    };
    for packaging in [
        runner::build::Packaging::None,
        runner::build::Packaging::Zip,
    ] {
        let mut fixture = open_fixture(&format!(
            r#"version: 0.2
run-as: {user}
phases:
  build:
    commands:
      - ln -s /etc dist
artifacts:
  base-directory: dist
  files: [shadow, hostname]
"#,
            user = user.name
        ));
        fixture.options.packaging = packaging;
        let ran = fixture.run();
        // /etc/shadow is root's: the set cannot be written, and nothing of it is kept.
        ran.expect(Failed);
        let upload = ran.phase(runner::Phase::UploadArtifacts);
        let message = &upload.contexts[0].message;
        assert!(
            message.contains("shadow") && message.contains("Permission denied"),
            "{message}"
        );
        assert!(ran.record.artifacts.is_empty());
        let written = ran.record_path.parent().expect("dir").join("artifacts");
        let found: Vec<_> = walk(&written);
        assert!(found.is_empty(), "{packaging:?}: left {found:?}");
    }
}

/// Every file under `dir` (none when it does not exist).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

#[test]
fn artifacts_are_no_more_readable_than_their_sources() {
    let fixture = |files: &str| {
        let mut f = Fixture::new(&format!(
            "version: 0.2\nphases:\n  build:\n    commands:\n      - echo s > private && chmod 600 private\n      - echo p > public && chmod 644 public\n      - echo x > tool && chmod 4755 tool\nartifacts:\n  files: [{files}]\n"
        ));
        f.options.packaging = runner::build::Packaging::Zip;
        f
    };
    let mode = |ran: &Ran| {
        let zip = Path::new(&ran.record.artifacts[0].location);
        std::fs::metadata(zip).expect("zip").permissions().mode() & 0o777
    };
    let private = fixture("public, private");
    let ran = private.run();
    ran.expect(Succeeded);
    assert_eq!(mode(&ran), 0o600, "a zip with a private file");
    let public = fixture("public, tool");
    let ran = public.run();
    ran.expect(Succeeded);
    assert_eq!(mode(&ran), 0o644, "a zip of files anyone may read");
    // No set-user-id bit survives into the zip, nor into a folder.
    let zip = std::path::PathBuf::from(&ran.record.artifacts[0].location);
    let listing = std::process::Command::new("zipinfo")
        .arg(&zip)
        .output()
        .expect("zipinfo");
    let listing = String::from_utf8_lossy(&listing.stdout);
    let tool = listing
        .lines()
        .find(|l| l.ends_with(" tool"))
        .expect("tool listed");
    assert!(tool.starts_with("-rwxr-xr-x"), "{tool}");
    let mut folder = fixture("tool");
    folder.options.packaging = runner::build::Packaging::None;
    let ran = folder.run();
    let copy = Path::new(&ran.record.artifacts[0].location).join("tool");
    let bits = std::fs::metadata(copy).expect("copy").permissions().mode() & 0o7777;
    assert_eq!(bits, 0o755);
}

/// A cache folder with one entry, `deps`, saved by a real build of `paths`.
fn cache_with_entry(paths: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = Fixture::new(&format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - mkdir -p deps && echo lib > deps/lib.txt\ncache:\n  key: deps\n  paths: [{paths}]\n"
    ));
    first.options.cache_dir = Some(dir.path().to_path_buf());
    first
        .run()
        .expect(Succeeded)
        .logged("Saved 1 file(s) to the cache");
    let entry = dir.path().join("entries").join("deps");
    assert!(entry.join("src/deps/lib.txt").is_file());
    (dir, entry)
}

/// A build that restores the entry `deps` of `cache`, `before` running in its source first;
/// the fixture is returned to keep its source.
fn restoring(cache: &Path, paths: &str, before: impl FnOnce(&Path)) -> (Ran, Fixture) {
    let mut fixture = Fixture::new(&format!(
        "version: 0.2\nphases:\n  install:\n    commands:\n      - echo restored=$(cat deps/lib.txt)\ncache:\n  key: deps\n  paths: [{paths}]\n"
    ));
    fixture.options.cache_dir = Some(cache.to_path_buf());
    before(fixture.source());
    // A FIFO in an entry would keep a restore that reads it waiting for ever.
    run_within(fixture, Duration::from_secs(60))
}

#[test]
fn a_tampered_cache_entry_restores_only_what_cache_paths_names() {
    let (cache, entry) = cache_with_entry("'deps/**/*'");
    let outside = tempfile::tempdir().expect("tempdir");
    let planted = outside.path().join("planted");
    // Files added to the entry: one at an absolute path, one elsewhere in the source, a link
    // that leads out, and a FIFO.
    let absolute = entry
        .join("root")
        .join(planted.strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(absolute.parent().expect("parent")).expect("mkdir");
    std::fs::write(&absolute, "planted\n").expect("write");
    std::fs::create_dir_all(entry.join("src/other")).expect("mkdir");
    std::fs::write(entry.join("src/other/evil"), "evil\n").expect("write");
    std::os::unix::fs::symlink("../../../../..", entry.join("src/deps/up")).expect("link");
    std::os::unix::fs::symlink("lib.txt", entry.join("src/deps/same")).expect("link");
    let fifo = entry.join("src/deps/fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let (ran, fixture) = restoring(cache.path(), "'deps/**/*'", |_| {});
    ran.expect(Succeeded);
    assert_eq!(ran.said("restored="), ["lib"]);
    let source = fixture.source();
    assert!(
        !planted.exists(),
        "restored to an absolute path cache.paths does not name"
    );
    assert!(
        !source.join("other/evil").exists(),
        "restored outside cache.paths"
    );
    assert!(
        std::fs::symlink_metadata(source.join("deps/up")).is_err(),
        "a link that leads out"
    );
    assert_eq!(
        std::fs::read_link(source.join("deps/same")).expect("a link inside is kept"),
        Path::new("lib.txt")
    );
    assert!(std::fs::symlink_metadata(source.join("deps/fifo")).is_err());
    ran.logged("Restored 2 file(s) from the cache")
        .logged("file(s) of the cache entry were not restored")
        .logged(&format!(
            "{}: cache.paths does not name it",
            planted.display()
        ))
        .logged("other/evil: cache.paths does not name it")
        .logged("deps/up: it is a link to ../../../../.., outside what is restored")
        .logged("deps/fifo: it is not a file, a directory or a link");
}

#[test]
fn a_cache_is_never_restored_through_a_link_in_the_source() {
    let (cache, _entry) = cache_with_entry("'deps/**/*'");
    let outside = tempfile::tempdir().expect("tempdir");
    // The source holds `deps -> elsewhere` (a checkout may): the entry's deps/lib.txt must not
    // land there.
    let (ran, _fixture) = restoring(cache.path(), "'deps/**/*'", |source| {
        std::os::unix::fs::symlink(outside.path(), source.join("deps")).expect("link");
    });
    assert!(
        !outside.path().join("lib.txt").exists(),
        "the restore wrote through the link"
    );
    ran.logged("deps/lib.txt: a directory on its way is a link, or not a directory");
    // A link in place of the file itself is replaced, not written through.
    let target = outside.path().join("target");
    std::fs::write(&target, "original\n").expect("write");
    let (ran, _fixture) = restoring(cache.path(), "'deps/**/*'", |source| {
        std::fs::create_dir(source.join("deps")).expect("mkdir");
        std::os::unix::fs::symlink(&target, source.join("deps/lib.txt")).expect("link");
    });
    ran.expect(Succeeded);
    assert_eq!(ran.said("restored="), ["lib"]);
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "original\n"
    );
}

#[test]
fn a_cache_is_restored_as_the_first_phases_user() {
    let Some(user) = test_user() else {
        return;
    };
    let (cache, entry) = cache_with_entry("'deps/**/*'");
    // A tampered entry names an absolute path the user cannot write: it stays untouched.
    let guarded = tempfile::tempdir().expect("tempdir");
    let target = root_file(guarded.path(), "guarded");
    std::fs::set_permissions(guarded.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let stored = entry
        .join("root")
        .join(target.strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(stored.parent().expect("parent")).expect("mkdir");
    std::fs::write(&stored, "tampered\n").expect("write");
    let mut fixture = open_fixture(&format!(
        "version: 0.2\nrun-as: {}\nphases:\n  install:\n    commands:\n      - echo restored=$(cat deps/lib.txt)\ncache:\n  key: deps\n  paths: ['deps/**/*', '{}']\n",
        user.name,
        target.display()
    ));
    fixture.options.cache_dir = Some(cache.path().to_path_buf());
    let ran = fixture.run();
    ran.expect(Succeeded);
    assert_eq!(ran.said("restored="), ["lib"]);
    use std::os::unix::fs::MetadataExt;
    let restored = std::fs::metadata(fixture.source().join("deps/lib.txt")).expect("restored");
    assert_eq!(restored.uid(), user.uid(), "restored as the build's user");
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "original\n"
    );
    ran.logged("guarded: Permission denied");
}

#[test]
fn output_past_the_log_limit_is_counted_not_kept() {
    // 20,000 lines of 10 bytes, against a limit of 64 KiB; the RETRY tail still sees the end.
    let mut fixture = Fixture::new(
        "version: 0.2\nphases:\n  build:\n    on-failure: RETRY-1-last-line-19999\n    commands:\n      - i=0; while [ $i -lt 20000 ]; do printf 'line-%05d\\n' $i; i=$((i+1)); done; [ -f again ] || { touch again; echo last-line-19999; exit 1; }\n      - echo after\n",
    );
    fixture.options.log_limit = Some(64 * 1024);
    let ran = fixture.run();
    ran.expect(Succeeded);
    ran.logged("warning: the build's output reached the log limit of 64 KiB (--log-limit): what it prints from now on is counted, not kept");
    let kept: usize = ran.events.output.iter().map(|l| l.len() + 1).sum();
    assert!(kept <= 64 * 1024, "{kept} bytes kept");
    // The retry happened: the regex matched output past the limit.
    assert_eq!(ran.phase(runner::Phase::Build).attempts, 2);
    let truncated = ran
        .record
        .log_truncated
        .as_ref()
        .expect("said in the record");
    assert_eq!(truncated.limit, 64 * 1024);
    assert!(truncated.lines > 30_000, "{truncated:?}");
    let log = std::fs::read_to_string(&ran.record.log_path).expect("log");
    assert!(log.len() < 80 * 1024, "{} bytes of log", log.len());
    assert!(log.contains("line(s),"), "the end says what was dropped");
    assert!(log.contains("Build complete: SUCCEEDED"));
}

#[test]
fn a_secret_printed_across_two_commands_is_masked_in_either_session() {
    for persistent in [false, true] {
        let mut fixture = Fixture::new(
            "version: 0.2\nphases:\n  build:\n    commands:\n      - printf 'before tok-12'\n      - printf '34-abcd\\n'\n      - printf 'tok-99 tok-1'\n      - echo 'x, not the secret'\n",
        );
        if persistent {
            fixture = fixture.persistent();
        }
        fixture.options.mask = vec!["tok-1234-abcd".to_owned()];
        let ran = fixture.run();
        ran.expect(Succeeded);
        // The commands' own text holds the pieces; their output must not.
        for line in &ran.events.output {
            assert!(
                !line.contains("tok-12") && !line.starts_with("34-abcd"),
                "persistent={persistent}: {line}"
            );
        }
        // What cannot begin the secret is not held back; what could is, until it is settled.
        assert!(
            ran.events.output.iter().any(|l| l == "before "),
            "{:?}",
            ran.events.output
        );
        assert!(
            ran.events.output.iter().any(|l| l == "***"),
            "{:?}",
            ran.events.output
        );
        assert!(
            ran.events.output.iter().any(|l| l == "tok-99 "),
            "{:?}",
            ran.events.output
        );
        assert!(
            ran.events
                .output
                .iter()
                .any(|l| l == "tok-1x, not the secret"),
            "{:?}",
            ran.events.output
        );
    }
}

#[test]
fn every_artifact_set_that_fails_is_reported() {
    let ran = crate::run(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo ok > ok.txt\nartifacts:\n  files: [missing-one]\n  secondary-artifacts:\n    fine:\n      files: [ok.txt]\n    docs:\n      files: [missing-two]\n",
    );
    ran.expect(Failed);
    let message = &ran.phase(runner::Phase::UploadArtifacts).contexts[0].message;
    assert_eq!(
        message,
        "no matching artifact paths found; docs: no matching artifact paths found"
    );
    ran.logged("Artifact set failed: no matching artifact paths found")
        .logged("Artifact set failed: docs: no matching artifact paths found");
    assert_eq!(
        ran.record.artifacts.len(),
        1,
        "the set that could be written is"
    );
}

#[test]
fn a_checkout_cannot_make_the_runner_read_files_outside_it() {
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "top-secret-line\nversion: 0.2\n").expect("write");
    // A buildspec that is a link out of the source: read, its lines would be quoted in the log.
    let fixture = Fixture::new("version: 0.2\n");
    let spec = fixture.source().join("buildspec.yml");
    std::fs::remove_file(&spec).expect("rm");
    std::os::unix::fs::symlink(&secret, &spec).expect("link");
    let ran = fixture.run();
    ran.expect(Failed);
    assert!(
        !ran.events.log.contains("top-secret-line"),
        "{}",
        ran.events.log
    );
    assert_eq!(
        ran.record.phases[0].contexts[0].status_code,
        "YAML_FILE_ERROR"
    );
    ran.logged("is a link out of the source directory");
    // A `.git/HEAD` whose reference climbs out: its target's text must not become a variable.
    let fixture = Fixture::new(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo \"version=$CODEBUILD_RESOLVED_SOURCE_VERSION\"\n",
    );
    let git = fixture.source().join(".git");
    std::fs::create_dir(&git).expect("mkdir");
    let climb = format!("ref: ../../../../../../../..{}\n", secret.display());
    std::fs::write(git.join("HEAD"), climb).expect("write");
    let ran = fixture.run();
    ran.expect(Succeeded);
    assert_eq!(ran.said("version="), [""]);
    // A real checkout's commit is still read.
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(git.join("refs/heads")).expect("mkdir");
    std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").expect("write");
    std::fs::write(git.join("refs/heads/main"), format!("{commit}\n")).expect("write");
    let ran = fixture.run();
    assert_eq!(ran.said("version="), [commit]);
}
