//! The local cache: restored before INSTALL, saved in UPLOAD_ARTIFACTS, keyed entries immutable.

use std::path::Path;

use runner::events::Status;

use crate::{Fixture, Ran};

/// A build of `phases` with `cache`, on the cache folder `dir`.
fn build(dir: &Path, cache: &str, phases: &str) -> Fixture {
    let mut fixture = Fixture::new(&format!("version: 0.2\nphases:\n{phases}cache:\n{cache}"));
    fixture.options.cache_dir = Some(dir.to_path_buf());
    fixture
}

const MAKE_DEPS: &str =
    "  build:\n    commands:\n      - mkdir -p deps/sub && echo \"$V\" > deps/sub/lib.txt\n";
const READ_DEPS: &str =
    "  install:\n    commands:\n      - echo \"restored=$(cat deps/sub/lib.txt 2>/dev/null)\"\n";

fn with_value(fixture: Fixture, value: &str) -> Fixture {
    let yaml_path = fixture.source().join("buildspec.yml");
    let yaml = std::fs::read_to_string(&yaml_path).expect("read buildspec");
    std::fs::write(
        &yaml_path,
        format!("{yaml}env:\n  variables:\n    V: {value}\n"),
    )
    .expect("write buildspec");
    fixture
}

impl Ran {
    fn restored(&self) -> Vec<&str> {
        self.said("restored=")
    }
}

#[test]
fn a_project_cache_is_restored_before_install_and_replaced_by_each_save() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = "  paths: ['deps/**/*']\n";
    let phases = format!("{READ_DEPS}{MAKE_DEPS}");
    let first = with_value(build(dir.path(), cache, &phases), "one").run();
    first.expect(Status::Succeeded);
    assert_eq!(first.restored(), [""]);
    first.logged("Cache miss: no cache entry for key project/test");
    first.logged("Saved 1 file(s) to the cache");
    let second = with_value(build(dir.path(), cache, &phases), "two").run();
    second.expect(Status::Succeeded);
    assert_eq!(second.restored(), ["one"]);
    let third = build(dir.path(), cache, READ_DEPS).run();
    assert_eq!(third.restored(), ["two"]);
}

#[test]
fn keys_are_evaluated_by_the_shell_fall_back_by_prefix_and_are_never_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyed = "  key: deps-$(echo $LOCK)\n  fallback-keys: [deps-]\n  paths: ['deps/**/*']\n";
    let phases = format!("{READ_DEPS}{MAKE_DEPS}");
    let run = |lock: &str, value: &str| {
        let fixture = with_value(build(dir.path(), keyed, &phases), value);
        let yaml_path = fixture.source().join("buildspec.yml");
        let yaml = std::fs::read_to_string(&yaml_path).expect("read");
        std::fs::write(&yaml_path, format!("{yaml}    LOCK: {lock}\n")).expect("write");
        fixture.run()
    };
    let a = run("a", "first");
    a.expect(Status::Succeeded);
    a.logged("Saving cache under key deps-a");
    // The exact key.
    let again = run("a", "second");
    assert_eq!(again.restored(), ["first"]);
    again.logged("Cache entry deps-a exists: a keyed entry is never overwritten");
    // Another key: the newest entry whose key starts with the fallback prefix.
    let b = run("b", "third");
    assert_eq!(b.restored(), ["first"]);
    let c = run("c", "fourth");
    assert_eq!(c.restored(), ["third"]);
    c.logged("Restoring cache from key deps-b");
    let a_again = run("a", "fifth");
    assert_eq!(a_again.restored(), ["first"]);
}

#[test]
fn actions_limit_the_cache_to_restoring_or_saving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let phases = format!("{READ_DEPS}{MAKE_DEPS}");
    let save_only = "  key: k\n  action: save\n  paths: ['deps/**/*']\n";
    let saved = with_value(build(dir.path(), save_only, &phases), "saved").run();
    saved.logged("Skip cache restore due to: cache action is save");
    saved.logged("Saved 1 file(s) to the cache");
    let restore_only = "  key: k\n  action: restore\n  paths: ['deps/**/*']\n";
    let restored = build(dir.path(), restore_only, &phases).run();
    assert_eq!(restored.restored(), ["saved"]);
    assert!(
        !restored.events.log.contains("Saving cache"),
        "{}",
        restored.events.log
    );
}

#[test]
fn a_failed_build_saves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = "  paths: ['deps/**/*']\n";
    let failing = format!("{MAKE_DEPS}      - exit 3\n");
    let failed = with_value(build(dir.path(), cache, &failing), "broken").run();
    failed.expect(Status::Failed);
    failed.logged("Skip cache save due to: the build failed");
    let next = build(dir.path(), cache, READ_DEPS).run();
    assert_eq!(next.restored(), [""]);
}

#[test]
fn absolute_paths_come_back_where_they_were() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let home = outside.path().join("m2");
    let cache = format!("  paths: ['{}/**/*']\n", home.display());
    let make = format!(
        "  build:\n    commands:\n      - mkdir -p {0}/repo && echo jar > {0}/repo/a.jar\n",
        home.display()
    );
    build(dir.path(), &cache, &make)
        .run()
        .expect(Status::Succeeded);
    std::fs::remove_dir_all(&home).expect("rm");
    let read = format!(
        "  install:\n    commands:\n      - echo \"restored=$(cat {}/repo/a.jar)\"\n",
        home.display()
    );
    let ran = build(dir.path(), &cache, &read).run();
    assert_eq!(ran.restored(), ["jar"]);
}

#[test]
fn builds_saving_one_key_at_once_leave_one_whole_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = "  key: shared\n  paths: ['deps/**/*']\n";
    let many = "  build:\n    commands:\n      - mkdir -p deps && for i in $(seq 1 200); do echo \"$V\" > deps/f$i; done\n";
    let fixtures: Vec<Fixture> = (0..4)
        .map(|i| with_value(build(dir.path(), cache, many), &format!("v{i}")))
        .collect();
    std::thread::scope(|scope| {
        for fixture in &fixtures {
            scope.spawn(|| {
                fixture.run().expect(Status::Succeeded);
            });
        }
    });
    // One save won; every file of the entry comes from that one build.
    let read = "  install:\n    commands:\n      - echo \"restored=$(cat deps/f* | sort -u | tr '\\n' ' ')$(ls deps | wc -l)\"\n";
    let ran = build(dir.path(), cache, read).run();
    let said = ran.restored();
    assert_eq!(said.len(), 1, "{}", ran.events.log);
    let (values, count) = said[0].rsplit_once(' ').expect("values then a count");
    assert_eq!(count.trim(), "200");
    assert_eq!(
        values.split_whitespace().count(),
        1,
        "one build's files: {values}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("entries"))
        .expect("entries")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["shared"], "no staged or half entries are left");
}
