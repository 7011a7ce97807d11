//! UPLOAD_ARTIFACTS: which files each set takes, where they land, and what the record says.

use std::path::{Path, PathBuf};
use std::process::Command;

use runner::build::Packaging;
use runner::events::{Phase, Status};

use crate::{Fixture, Ran};

/// The tree of the reference's examples, plus the buildspec itself.
const TREE: &[&str] = &[
    "my-build-1/my-file-1.txt",
    "my-build-2/my-file-2.txt",
    "my-build-2/my-subdirectory/my-file-3.txt",
];

fn fixture(artifacts: &str, tree: &[&str]) -> Fixture {
    let yaml = format!(
        "version: 0.2\nenv:\n  variables:\n    DIR: my-build-1\nphases:\n  build:\n    commands:\n      - cd /tmp\n{artifacts}"
    );
    let fixture = Fixture::new(&yaml);
    for path in tree {
        let path = fixture.source().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, path.file_name().expect("a name").as_encoded_bytes()).expect("write");
    }
    fixture
}

/// What `unzip FLAG ZIP` prints, which must succeed.
fn unzip(flag: &str, zip: &Path) -> String {
    let out = Command::new("unzip")
        .arg(flag)
        .arg(zip)
        .output()
        .expect("unzip");
    assert!(
        out.status.success(),
        "unzip {flag}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir`, relative, sorted; symlinks shown as `path -> target`.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.expect("walk");
        let relative = entry
            .path()
            .strip_prefix(dir)
            .expect("inside")
            .display()
            .to_string();
        if entry.path_is_symlink() {
            let target = std::fs::read_link(entry.path()).expect("a link");
            out.push(format!("{relative} -> {}", target.display()));
        } else if entry.file_type().is_file() {
            out.push(relative);
        }
    }
    out
}

impl Ran {
    /// The record of a set, which must have been written.
    #[track_caller]
    fn set(&self, id: &str) -> &runner::store::ArtifactRecord {
        self.record
            .artifacts
            .iter()
            .find(|a| a.identifier == id)
            .unwrap_or_else(|| panic!("no artifact set {id}; log:\n{}", self.events.log))
    }

    /// The files the record lists for a set.
    #[track_caller]
    fn set_files(&self, id: &str) -> Vec<String> {
        self.set(id).files.iter().map(|f| f.path.clone()).collect()
    }

    #[track_caller]
    fn location(&self, id: &str) -> PathBuf {
        PathBuf::from(&self.set(id).location)
    }
}

#[test]
fn sets_take_the_files_codebuild_would() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "the reference's first example",
            "  files: ['*/my-file-3.txt']\n  base-directory: my-build-2",
            &["my-subdirectory/my-file-3.txt"],
        ),
        (
            "the reference's second example: a base-directory glob, flattened",
            "  files: ['**/*']\n  base-directory: 'my-build*'\n  discard-paths: yes",
            &["my-file-1.txt", "my-file-2.txt", "my-file-3.txt"],
        ),
        (
            "everything, from the source directory although the build left it",
            "  files: ['**/*']",
            &[
                "buildspec.yml",
                "my-build-1/my-file-1.txt",
                "my-build-2/my-file-2.txt",
                "my-build-2/my-subdirectory/my-file-3.txt",
            ],
        ),
        (
            "a single string",
            "  files: my-build-1/*",
            &["my-build-1/my-file-1.txt"],
        ),
        (
            "one star stays in its directory",
            "  files: ['my-build-2/*']",
            &["my-build-2/my-file-2.txt"],
        ),
        (
            "a directory named alone is taken whole",
            "  files: [my-build-2]",
            &[
                "my-build-2/my-file-2.txt",
                "my-build-2/my-subdirectory/my-file-3.txt",
            ],
        ),
        (
            "character classes and ?",
            "  files: ['my-build-[12]/my-file-?.txt']",
            &["my-build-1/my-file-1.txt", "my-build-2/my-file-2.txt"],
        ),
        (
            "variables in paths",
            "  files: ['$DIR/*', '${DIR}/my-file-1.txt']",
            &["my-build-1/my-file-1.txt"],
        ),
        (
            "exclude-paths, relative to the base directory",
            "  files: ['**/*']\n  base-directory: my-build-2\n  exclude-paths: ['my-subdirectory/**/*']",
            &["my-file-2.txt"],
        ),
        (
            "exclude-paths naming a directory",
            "  files: ['**/*']\n  exclude-paths: [my-build-2, buildspec.yml]",
            &["my-build-1/my-file-1.txt"],
        ),
        (
            "an absolute base directory",
            "  files: ['*.txt']\n  base-directory: $CODEBUILD_SRC_DIR/my-build-1",
            &["my-file-1.txt"],
        ),
        (
            "an entry that matches nothing beside one that does",
            "  files: [missing.txt, my-build-1/my-file-1.txt]",
            &["my-build-1/my-file-1.txt"],
        ),
        (
            "`..` that stays inside the base",
            "  files: ['my-build-2/../my-build-1/*']",
            &["my-build-1/my-file-1.txt"],
        ),
    ];
    for (what, artifacts, want) in cases {
        let fixture = fixture(&format!("artifacts:\n{artifacts}\n"), TREE);
        let ran = fixture.run();
        assert_eq!(
            ran.record.status,
            Status::Succeeded,
            "{what}:\n{}",
            ran.events.log
        );
        assert_eq!(ran.set_files("primary"), *want, "{what}");
        assert_eq!(listing(&ran.location("primary")), *want, "{what}: on disk");
    }
}

#[test]
fn codebuild_logs_the_expansion() {
    let ran = fixture("artifacts:\n  files: [my-build-1/*, nothing/*]\n", TREE).run();
    ran.expect(Status::Succeeded)
        .logged("Expanding base directory path: .\n")
        .logged("Expanding file paths for base directory .\n")
        .logged("Expanding my-build-1/*\n")
        .logged("Skipping invalid file path nothing/*\n")
        .logged("Found 1 file(s)\n");
}

#[test]
fn sets_that_match_nothing_fail_the_upload_with_codebuilds_words() {
    let cases = [
        (
            "artifacts:\n  files: [nothing/*]\n",
            "no matching artifact paths found",
        ),
        (
            "artifacts:\n  files: ['**/*']\n  base-directory: missing\n",
            "no matching base directory path found for missing",
        ),
        (
            "artifacts:\n  files: ['**/*']\n  secondary-artifacts:\n    extra:\n      files: [nothing]\n",
            "extra: no matching artifact paths found",
        ),
    ];
    for (artifacts, message) in cases {
        let ran = fixture(artifacts, TREE).run();
        ran.expect(Status::Failed);
        // What was tried is logged before the failure, as CodeBuild logs it.
        ran.logged("Expanding base directory path:");
        let upload = ran.phase(Phase::UploadArtifacts);
        assert_eq!(upload.status, Status::Failed, "{artifacts}");
        assert_eq!(upload.contexts[0].status_code, "CLIENT_ERROR");
        assert_eq!(upload.contexts[0].message, message);
        assert_eq!(ran.exit_code, 1);
    }
}

#[test]
fn nothing_escapes_the_base_directory() {
    let fixture = fixture(
        "artifacts:\n  files: ['**/*', '../secret.txt', '/etc/hostname']\n  base-directory: my-build-1\n",
        TREE,
    );
    let source = fixture.source().to_path_buf();
    let outside = source.parent().expect("a parent").join("secret.txt");
    std::fs::write(&outside, "secret").expect("write");
    std::os::unix::fs::symlink(&outside, source.join("my-build-1/leak.txt")).expect("symlink");
    std::os::unix::fs::symlink("/etc", source.join("my-build-1/etc")).expect("symlink");
    std::os::unix::fs::symlink("my-file-1.txt", source.join("my-build-1/alias.txt"))
        .expect("symlink");
    let ran = fixture.run();
    ran.expect(Status::Succeeded)
        .logged("Skipping invalid file path ../secret.txt: it leaves the base directory")
        .logged("Skipping invalid file path /etc/hostname: it leaves the base directory")
        .logged("warning: skipping symlink leak.txt: its target is outside the base directory")
        .logged("warning: skipping symlink etc: its target is outside the base directory");
    // A link inside the base is followed: its content is collected under its own name.
    assert_eq!(ran.set_files("primary"), ["alias.txt", "my-file-1.txt"]);
    let alias = ran.location("primary").join("alias.txt");
    assert!(!alias.is_symlink());
    assert_eq!(
        std::fs::read_to_string(alias).expect("read"),
        "my-file-1.txt"
    );
}

#[test]
fn enable_symlinks_keeps_links_as_links() {
    let fixture = fixture(
        "artifacts:\n  files: ['**/*']\n  base-directory: my-build-1\n  enable-symlinks: yes\n",
        TREE,
    );
    let source = fixture.source().to_path_buf();
    std::os::unix::fs::symlink("my-file-1.txt", source.join("my-build-1/alias.txt"))
        .expect("symlink");
    std::os::unix::fs::symlink("/etc", source.join("my-build-1/etc")).expect("symlink");
    let ran = fixture.run();
    ran.expect(Status::Succeeded);
    assert_eq!(
        listing(&ran.location("primary")),
        ["alias.txt -> my-file-1.txt", "etc -> /etc", "my-file-1.txt"]
    );
}

#[test]
fn flattened_files_that_collide_keep_the_first_and_name_the_others() {
    let fixture = fixture(
        "artifacts:\n  files: ['**/*.txt']\n  discard-paths: yes\n",
        &["a/x.txt", "b/x.txt", "c/y.txt"],
    );
    let ran = fixture.run();
    ran.expect(Status::Succeeded)
        .logged("warning: b/x.txt is not collected: a/x.txt already lands on x.txt");
    assert_eq!(ran.set_files("primary"), ["x.txt", "y.txt"]);
    let kept = ran.location("primary").join("x.txt");
    assert_eq!(std::fs::read_to_string(kept).expect("read"), "x.txt");
}

#[test]
fn names_are_evaluated_by_the_shell_and_secondary_sets_land_apart() {
    let fixture = fixture(
        "artifacts:
  files: [my-build-1/*]
  name: app-$(echo 4$((1+1)))-$DIR
  secondary-artifacts:
    second:
      files: ['**/*']
      base-directory: my-build-2
    third:
      files: [my-build-1/my-file-1.txt]
      name: builds/$CODEBUILD_BUILD_NUMBER/third
",
        TREE,
    );
    let ran = fixture.run();
    ran.expect(Status::Succeeded);
    let root = ran
        .location("primary")
        .parent()
        .expect("a parent")
        .to_path_buf();
    assert_eq!(ran.location("primary"), root.join("app-42-my-build-1"));
    assert_eq!(ran.location("second"), root.join("second"));
    assert_eq!(ran.location("third"), root.join("builds/1/third"));
    assert_eq!(
        listing(&root),
        [
            "app-42-my-build-1/my-build-1/my-file-1.txt",
            "builds/1/third/my-build-1/my-file-1.txt",
            "second/my-file-2.txt",
            "second/my-subdirectory/my-file-3.txt",
        ]
    );
}

#[test]
fn a_name_that_leaves_the_destination_is_refused() {
    let ran = fixture(
        "artifacts:\n  files: ['**/*']\n  name: ../../elsewhere\n",
        TREE,
    )
    .run();
    ran.expect(Status::Failed);
    let context = &ran.phase(Phase::UploadArtifacts).contexts[0];
    assert!(
        context
            .message
            .contains("is not a relative path inside the destination"),
        "{}",
        context.message
    );
}

#[test]
fn artifacts_are_uploaded_after_a_failed_build() {
    let fixture = Fixture::new(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo out > out.txt\n      - false\nartifacts:\n  files: [out.txt]\n",
    );
    let ran = fixture.run();
    ran.expect(Status::Failed);
    assert_eq!(ran.phase(Phase::UploadArtifacts).status, Status::Succeeded);
    assert_eq!(ran.set_files("primary"), ["out.txt"]);
}

#[test]
fn the_record_has_each_files_size_and_digest() {
    let fixture = fixture("artifacts:\n  files: [my-build-2/**/*]\n", TREE);
    let ran = fixture.run();
    ran.expect(Status::Succeeded);
    let set = &ran.record.artifacts[0];
    assert_eq!(set.packaging, "none");
    for file in &set.files {
        let on_disk = ran.location("primary").join(&file.path);
        let sum = Command::new("sha256sum")
            .arg(&on_disk)
            .output()
            .expect("sha256sum");
        let sum = String::from_utf8_lossy(&sum.stdout);
        assert_eq!(
            sum.split(' ').next(),
            Some(file.sha256.as_str()),
            "{}",
            file.path
        );
        assert_eq!(std::fs::metadata(&on_disk).expect("stat").len(), file.size);
    }
}

#[test]
fn zips_hold_exactly_the_sets_files() {
    let mut fixture = fixture(
        "artifacts:\n  files: ['**/*']\n  base-directory: my-build-2\n  secondary-artifacts:\n    named:\n      files: [my-build-1/*]\n      name: one.zip\n",
        TREE,
    );
    fixture.options.packaging = Packaging::Zip;
    let ran = fixture.run();
    ran.expect(Status::Succeeded);
    let zip = ran.location("primary");
    assert_eq!(zip.extension().and_then(|e| e.to_str()), Some("zip"));
    assert_eq!(
        ran.location("named").file_name().and_then(|n| n.to_str()),
        Some("one.zip")
    );
    assert_eq!(
        unzip("-Z1", &zip).lines().collect::<Vec<_>>(),
        ["my-file-2.txt", "my-subdirectory/my-file-3.txt"]
    );
    // Every entry's CRC checks out.
    unzip("-tq", &zip);
    assert_eq!(ran.record.artifacts[0].packaging, "zip");
}

#[test]
fn a_second_build_replaces_the_set_instead_of_mixing_with_it() {
    let mut fixture = fixture("artifacts:\n  files: ['my-build-*/*']\n", TREE);
    let dest = fixture.source().parent().expect("a parent").join("out");
    fixture.options.artifacts = runner::build::Destination::Dir(dest.clone());
    fixture.run().expect(Status::Succeeded);
    std::fs::remove_file(fixture.source().join("my-build-1/my-file-1.txt")).expect("rm");
    fixture.run().expect(Status::Succeeded);
    assert_eq!(listing(&dest), ["primary/my-build-2/my-file-2.txt"]);
}
