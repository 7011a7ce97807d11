//! Report groups: collected in UPLOAD_ARTIFACTS, copied, parsed and summarised; never a reason
//! for the build to fail.

use runner::events::{Phase, Status};
use runner::outputs::reports::Summary;
use runner::store::ReportRecord;

use crate::{Fixture, Ran};

/// A sample report of the shared test data (real tool output where it says so).
fn sample(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/reports")
        .join(path)
}

/// A build whose source holds the given samples at the given paths.
fn fixture(reports: &str, files: &[(&str, &str)]) -> Fixture {
    let fixture = Fixture::new(&format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - 'true'\nreports:\n{reports}"
    ));
    for (sample_path, at) in files {
        let to = fixture.source().join(at);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(sample(sample_path), to).expect("copy the sample");
    }
    fixture
}

impl Ran {
    fn report(&self, name: &str) -> &ReportRecord {
        self.record
            .reports
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no report group {name}; log:\n{}", self.events.log))
    }
}

#[test]
fn report_groups_are_parsed_merged_and_summarised() {
    let fixture = fixture(
        "  unit:\n    files: ['**/*.xml']\n    base-directory: test-results\n  coverage:\n    files: [coverage.xml]\n    file-format: CoberturaXml\n",
        &[
            ("junitxml/pytest.xml", "test-results/python/pytest.xml"),
            ("junitxml/nextest.xml", "test-results/rust/nextest.xml"),
            ("coberturaxml/coverage-py.xml", "coverage.xml"),
        ],
    );
    let ran = fixture.run();
    // Failing tests make their report FAILED, not the build.
    ran.expect(Status::Succeeded);
    assert_eq!(ran.phase(Phase::UploadArtifacts).status, Status::Succeeded);
    let unit = ran.report("unit");
    assert_eq!(unit.status, "FAILED");
    assert_eq!(unit.format, "JUNITXML");
    assert_eq!(unit.files, ["python/pytest.xml", "rust/nextest.xml"]);
    let Some(Summary::Test(tests)) = &unit.summary else {
        panic!("a test summary: {unit:?}");
    };
    // pytest: 7 tests (3 passed, 1 failed, 2 skipped, 1 error); nextest: 2 (1 passed, 1 failed).
    assert_eq!(
        (
            tests.total,
            tests.passed,
            tests.failed,
            tests.skipped,
            tests.errors
        ),
        (9, 4, 2, 2, 1)
    );
    let location = std::path::Path::new(unit.location.as_deref().expect("copied"));
    assert!(location.join("rust/nextest.xml").is_file());

    let coverage = ran.report("coverage");
    assert_eq!(coverage.status, "SUCCEEDED");
    let Some(Summary::Coverage(c)) = &coverage.summary else {
        panic!("a coverage summary: {coverage:?}");
    };
    assert_eq!((c.lines_covered, c.lines_missed), (6, 4));

    // The console's table, each group's outcome and then what failed and where.
    let table = runner::build::summary_table(&ran.record.reports)
        .replace(&fixture.source().display().to_string(), "<src>");
    insta::assert_snapshot!(table);
    ran.logged("Reports:\n");
}

#[test]
fn a_group_that_matches_nothing_warns_and_one_that_cannot_be_read_fails_alone() {
    let fixture = fixture(
        "  missing:\n    files: ['reports/*.xml']\n  broken:\n    files: [page.xml]\n",
        &[("malformed/html.xml", "page.xml")],
    );
    let ran = fixture.run();
    ran.expect(Status::Succeeded);
    let missing = ran.report("missing");
    assert_eq!(missing.status, "INCOMPLETE");
    assert_eq!(
        missing.error.as_deref(),
        Some("no matching artifact paths found")
    );
    ran.logged("warning: report group missing: no matching artifact paths found");
    let broken = ran.report("broken");
    assert_eq!(broken.status, "FAILED");
    let error = broken.error.as_deref().expect("a reason");
    assert!(
        error.contains("page.xml") && error.contains("not a JUnit report"),
        "{error}"
    );
}
