//! Every sample of `tests/reports/`, with the summary it must give, and the errors of the
//! malformed ones. `tests/reports/README.md` says which samples real tools wrote.

use std::io::Write as _;
use std::path::Path;

use buildspec::model::ReportFormat;

use super::*;

macro_rules! sample {
    ($path:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/reports/", $path)
    };
}

/// A test report's expected summary; failures are `(suite, name, status, message)`.
fn tests(
    path: &str,
    [total, passed, failed, skipped, errors]: [u64; 5],
    duration_ms: Option<u64>,
    failures: &[(Option<&str>, &str, FailureKind, Option<&str>)],
) -> Summary {
    Summary::Test(TestSummary {
        total,
        passed,
        failed,
        skipped,
        errors,
        duration_ms,
        failures: failures
            .iter()
            .map(|&(suite, name, status, message)| TestFailure {
                suite: suite.map(str::to_owned),
                name: name.to_owned(),
                status,
                message: message.map(str::to_owned),
                file: Some(path.to_owned()),
            })
            .collect(),
    })
}

/// A coverage report's expected summary.
fn coverage(lines: (u64, u64), branches: (u64, u64)) -> Summary {
    Summary::Coverage(CoverageSummary {
        lines_covered: lines.0,
        lines_missed: lines.1,
        branches_covered: branches.0,
        branches_missed: branches.1,
    })
}

use FailureKind::{Error, Failed};

const NEXTEST_FAILURE: &str = "thread 'tests::fails' (6758) panicked at src/lib.rs:16:9:
assertion `left == right` failed: one and two make four?
  left: 3
 right: 4
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";

const JEST_FAILURE: &str = "Error: expect(received).toBe(expected) // Object.is equality

Expected: 4
Received: 3
    at Object.toBe (/tmp/gen/regen/js/src/calc.test.js:13:23)
    at Promise.finally.completed (/tmp/gen/regen/js/node_modules/jest-circus/build/jestAdapterInit.js:1834:28)
    at new Promise (<anonymous>)
    at callAsyncCircusFn (/tmp/gen/regen/js/node_modules/jest-circus/build/jestAdapterInit.js:1774:10)
    at _callCircusTest (/tmp/gen/regen/js/node_modules/jest-circus/build/jestAdapterInit.js:1167:40)
    at _runTestInContext (/tmp/gen/regen/js/node_modules/jest-circus/build/jestAdapterInit.js:1103:3)
    at runTestWithContext (/tmp/gen/regen/js/node_modules/jest-circus/build/jestAdapterInit.js:996:5)
    at _runTestsForDescribeBlockOnce (/tmp/gen/regen/js/node_modules/jest-circus/build/jestAdapterInit.js:1008:11)
    at _runTestsForDescribeBlock (/tmp/gen/regen/js/node_modules/jest-circus/build/jestAdapterInit.js:824:5)
    at _runTestsForDescribeBlockOnce (/tmp/gen/regen/js/node_modules/jest-circus/build/jestAdapterInit.js:1003:11)
    at _runTestsForDescribeBlock (/tmp/gen/regen/js/node_modules/jest-circus/build/jestAdapterInit.js:824:5)
    at run (/tmp/gen/regen/js/node_modules/jest-circus/build/jestAdapterInit.js:789:3)
    at runAndTransformResultsToJestFormat (/tmp/gen/regen/js/node_modules/jest-circus/build/jestAdapterInit.js:2300:21)
    at jestAdapter (/tmp/gen/regen/js/node_modules/jest-circus/build/runner.js:111:19)
    at runTestInternal (/tmp/gen/regen/js/node_modules/jest-runner/build/index.js:247:16)
    at runTest (/tmp/gen/regen/js/node_modules/jest-runner/build/index.js:315:7)";

#[test]
fn every_sample_gives_its_summary() {
    let cases: Vec<(&str, ReportFormat, Summary)> = vec![
        // cargo-nextest leaves ignored tests out of its JUnit report.
        (
            sample!("junitxml/nextest.xml"),
            ReportFormat::Junitxml,
            tests(
                sample!("junitxml/nextest.xml"),
                [2, 1, 1, 0, 0],
                Some(14),
                &[(
                    Some("nextest-demo"),
                    "tests::fails",
                    Failed,
                    Some(NEXTEST_FAILURE),
                )],
            ),
        ),
        // The flaky test passed on its retry; the failing one failed both times and counts once.
        (
            sample!("junitxml/nextest-retries.xml"),
            ReportFormat::Junitxml,
            tests(
                sample!("junitxml/nextest-retries.xml"),
                [3, 2, 1, 0, 0],
                Some(32),
                &[(
                    Some("nextest-demo"),
                    "tests::fails",
                    Failed,
                    Some(&NEXTEST_FAILURE.replace("6758", "6799")),
                )],
            ),
        ),
        // An xfail is skipped; a broken fixture is an error.
        (
            sample!("junitxml/pytest.xml"),
            ReportFormat::Junitxml,
            tests(
                sample!("junitxml/pytest.xml"),
                [7, 3, 1, 2, 1],
                Some(136),
                &[
                    (
                        Some("test_calc"),
                        "test_fails",
                        Failed,
                        Some("assert 3 == 4\n +  where 3 = add(1, 2)"),
                    ),
                    (
                        Some("test_calc"),
                        "test_errors",
                        Error,
                        Some("failed on setup with \"RuntimeError: fixture exploded\""),
                    ),
                ],
            ),
        ),
        // jest-junit's class name repeats the test's name: the suite is the describe block.
        (
            sample!("junitxml/jest-junit.xml"),
            ReportFormat::Junitxml,
            tests(
                sample!("junitxml/jest-junit.xml"),
                [4, 2, 1, 1, 0],
                Some(597),
                &[(Some("calc"), "calc fails", Failed, Some(JEST_FAILURE))],
            ),
        ),
        // Surefire's time above a thousand seconds has a thousands separator; a flaky test
        // passed.
        (
            sample!("junitxml/surefire.xml"),
            ReportFormat::Junitxml,
            tests(
                sample!("junitxml/surefire.xml"),
                [5, 2, 1, 1, 1],
                Some(1_234_567),
                &[
                    (
                        Some("com.example.CalcTest"),
                        "fails",
                        Failed,
                        Some("one and two make four? ==> expected: <4> but was: <3>"),
                    ),
                    (
                        Some("com.example.CalcTest"),
                        "errors",
                        Error,
                        Some("division by zero"),
                    ),
                ],
            ),
        ),
        // go-junit-report's message is "Failed": the body says what failed.
        (
            sample!("junitxml/go-junit-report.xml"),
            ReportFormat::Junitxml,
            tests(
                sample!("junitxml/go-junit-report.xml"),
                [6, 2, 2, 1, 1],
                Some(14),
                &[
                    (
                        Some("example.com/calc"),
                        "TestDiv",
                        Failed,
                        Some(
                            "calc_test.go:21: Div(1, 0) = 0, want an error\n    \
                             calc_test.go:22: see the issue #42",
                        ),
                    ),
                    (
                        Some("example.com/calc/parse"),
                        "TestParse",
                        Failed,
                        Some("parse_test.go:12: Parse(\"1+\") = nil, want an error"),
                    ),
                    (
                        Some("example.com/calc/broken"),
                        "[build failed]",
                        Error,
                        Some("broken/broken.go:5:2: undefined: Missing"),
                    ),
                ],
            ),
        ),
        // Suites in suites (PHPUnit's data providers).
        (
            sample!("junitxml/phpunit-nested.xml"),
            ReportFormat::Junitxml,
            tests(
                sample!("junitxml/phpunit-nested.xml"),
                [5, 3, 1, 1, 0],
                Some(21),
                &[(
                    Some("App.Tests.CalcTest"),
                    "testFails",
                    Failed,
                    Some(
                        "App\\Tests\\CalcTest::testFails\nFailed asserting that 3 is identical \
                         to 4.\n\n/app/tests/CalcTest.php:19",
                    ),
                )],
            ),
        ),
        // Without test cases, the suite's attributes are all there is.
        (
            sample!("junitxml/summary-only.xml"),
            ReportFormat::Junitxml,
            tests(
                sample!("junitxml/summary-only.xml"),
                [10, 4, 2, 3, 1],
                Some(4500),
                &[],
            ),
        ),
        // NUnit 2: the fixture's own failure is not a test; a test without arguments cannot
        // run, which is an error; results may be given by `success` alone.
        (
            sample!("nunitxml/nunit-2.6.xml"),
            ReportFormat::Nunitxml,
            tests(
                sample!("nunitxml/nunit-2.6.xml"),
                [7, 3, 1, 1, 2],
                Some(142),
                &[
                    (
                        Some("CalcTests"),
                        "Calc.Tests.CalcTests.Fails",
                        Failed,
                        Some("one and two make four?\n  Expected: 4\n  But was:  3"),
                    ),
                    (
                        Some("CalcTests"),
                        "Calc.Tests.CalcTests.Errors",
                        Error,
                        Some("System.DivideByZeroException : Attempted to divide by zero."),
                    ),
                    (
                        Some("CalcTests"),
                        "Calc.Tests.CalcTests.NeedsArguments",
                        Error,
                        Some("No arguments were provided"),
                    ),
                ],
            ),
        ),
        // NUnit 3: an error is a failure labelled Error; inconclusive is skipped.
        (
            sample!("nunit3xml/nunit-3.xml"),
            ReportFormat::Nunit3xml,
            tests(
                sample!("nunit3xml/nunit-3.xml"),
                [7, 2, 2, 2, 1],
                Some(654),
                &[
                    (
                        Some("Calc.Tests.CalcTests"),
                        "Fails",
                        Failed,
                        Some("one and two make four?\n  Expected: 4\n  But was:  3"),
                    ),
                    (
                        Some("Calc.Tests.CalcTests"),
                        "Errors",
                        Error,
                        Some("System.DivideByZeroException : Attempted to divide by zero."),
                    ),
                    (
                        Some("Calc.Tests.CalcTests"),
                        "AddsMany(2,2,5)",
                        Failed,
                        Some("Expected: 5\n  But was:  4"),
                    ),
                ],
            ),
        ),
        // TestNG: configuration methods do not count, even when they fail; an exception without
        // a message is named by its class.
        (
            sample!("testngxml/testng-results.xml"),
            ReportFormat::Testngxml,
            tests(
                sample!("testngxml/testng-results.xml"),
                [6, 2, 3, 1, 0],
                Some(387),
                &[
                    (
                        Some("com.example.CalcTest"),
                        "fails",
                        Failed,
                        Some("one and two make four? expected [4] but found [3]"),
                    ),
                    (
                        Some("com.example.CalcTest"),
                        "errors",
                        Failed,
                        Some("division by zero"),
                    ),
                    (
                        Some("com.example.CalcTest"),
                        "dereferences",
                        Failed,
                        Some("java.lang.NullPointerException"),
                    ),
                ],
            ),
        ),
        // cucumber-js writes the background's steps into each scenario; pending and undefined
        // steps skip theirs.
        (
            sample!("cucumberjson/cucumber-js.json"),
            ReportFormat::Cucumberjson,
            tests(
                sample!("cucumberjson/cucumber-js.json"),
                [4, 1, 1, 2, 0],
                Some(7),
                &[(
                    Some("Calculator"),
                    "Adding wrongly",
                    Failed,
                    Some(
                        "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:\n\n\
                         3 !== 4\n\n    + expected - actual\n\n    -3\n    +4\n\n    at \
                         World.<anonymous> (/tmp/gen/regen/js/features/step_definitions/steps.js:\
                         14:10)",
                    ),
                )],
            ),
        ),
        // cucumber-jvm writes backgrounds apart: a failed one fails the next scenario, as does a
        // failed hook.
        (
            sample!("cucumberjson/cucumber-jvm.json"),
            ReportFormat::Cucumberjson,
            tests(
                sample!("cucumberjson/cucumber-jvm.json"),
                [7, 3, 3, 1, 0],
                Some(18),
                &[
                    (
                        Some("Calculator"),
                        "Adding wrongly",
                        Failed,
                        Some(
                            "java.lang.AssertionError: expected:<4> but was:<3>\n\tat \
                             org.junit.Assert.fail(Assert.java:89)\n\tat \
                             com.example.steps.CalcSteps.theResultIs(CalcSteps.java:27)\n\tat \
                             ✽.the result is 4(classpath:features/calc.feature:12)",
                        ),
                    ),
                    (
                        Some("Calculator"),
                        "Dividing",
                        Failed,
                        Some(
                            "java.lang.IllegalStateException: the calculator is out of \
                             batteries\n\tat \
                             com.example.steps.CalcSteps.aCalculator(CalcSteps.java:15)",
                        ),
                    ),
                    (
                        Some("Calculator"),
                        "Subtracting",
                        Failed,
                        Some(
                            "java.lang.RuntimeException: the database is down\n\tat \
                             com.example.steps.Hooks.connect(Hooks.java:20)",
                        ),
                    ),
                ],
            ),
        ),
        // TRX: classes come from the definitions after the results; entities are unescaped.
        (
            sample!("visualstudiotrx/dotnet-xunit.trx"),
            ReportFormat::Visualstudiotrx,
            tests(
                sample!("visualstudiotrx/dotnet-xunit.trx"),
                [4, 1, 2, 1, 0],
                Some(1250),
                &[
                    (
                        Some("Calc.Tests.CalcTests"),
                        "Calc.Tests.CalcTests.Fails",
                        Failed,
                        Some("Assert.Equal() Failure: Values differ\nExpected: 4\nActual:   3"),
                    ),
                    (
                        Some("Calc.Tests.CalcTests"),
                        "Calc.Tests.CalcTests.Compares(a: \"x<y\")",
                        Failed,
                        Some(
                            "Assert.True() Failure\nExpected: True\nActual:   False & that is <wrong>",
                        ),
                    ),
                ],
            ),
        ),
        // MSTest's data rows count, not the result that holds them; a timeout is an error.
        (
            sample!("visualstudiotrx/mstest-datarow.trx"),
            ReportFormat::Visualstudiotrx,
            tests(
                sample!("visualstudiotrx/mstest-datarow.trx"),
                [4, 2, 1, 0, 1],
                Some(2025),
                &[
                    (
                        Some("Calc.Tests.CalcTests"),
                        "AddsMany (2,2,5)",
                        Failed,
                        Some("Assert.AreEqual failed. Expected:<5>. Actual:<4>."),
                    ),
                    (
                        Some("Calc.Tests.SlowTests"),
                        "Slow",
                        Error,
                        Some("Test 'Slow' exceeded execution timeout period."),
                    ),
                ],
            ),
        ),
        (
            sample!("cloverxml/istanbul.xml"),
            ReportFormat::Cloverxml,
            coverage((4, 4), (1, 3)),
        ),
        // PHPUnit writes the project's metrics after its files.
        (
            sample!("cloverxml/phpunit.xml"),
            ReportFormat::Cloverxml,
            coverage((6, 3), (2, 2)),
        ),
        (
            sample!("coberturaxml/coverage-py.xml"),
            ReportFormat::Coberturaxml,
            coverage((6, 4), (1, 3)),
        ),
        (
            sample!("coberturaxml/istanbul.xml"),
            ReportFormat::Coberturaxml,
            coverage((4, 4), (1, 3)),
        ),
        // The same report without its totals: the class lines give the same numbers (and the
        // methods' lines are not counted twice).
        (
            sample!("coberturaxml/counted.xml"),
            ReportFormat::Coberturaxml,
            coverage((4, 4), (1, 3)),
        ),
        (
            sample!("jacocoxml/jacoco.xml"),
            ReportFormat::Jacocoxml,
            coverage((6, 4), (2, 4)),
        ),
        // report-aggregate: groups have counters too; the report's are the totals.
        (
            sample!("jacocoxml/aggregate.xml"),
            ReportFormat::Jacocoxml,
            coverage((46, 14), (15, 9)),
        ),
        // Two commands cover the same file: a line (or branch) covered by either is covered.
        (
            sample!("simplecov/resultset-two-commands.json"),
            ReportFormat::Simplecov,
            coverage((10, 2), (2, 0)),
        ),
        (
            sample!("simplecov/resultset-legacy.json"),
            ReportFormat::Simplecov,
            coverage((3, 2), (0, 0)),
        ),
        // "ignored" lines and branches do not count.
        (
            sample!("simplecov/coverage-json-formatter.json"),
            ReportFormat::Simplecov,
            coverage((9, 1), (1, 1)),
        ),
        (
            sample!("simplecov/simplecov-json-metrics.json"),
            ReportFormat::Simplecov,
            coverage((5, 2), (0, 0)),
        ),
        (
            sample!("lcovinfo/coverage-py.info"),
            ReportFormat::Lcovinfo,
            coverage((6, 4), (1, 3)),
        ),
        (
            sample!("lcovinfo/istanbul.info"),
            ReportFormat::Lcovinfo,
            coverage((4, 4), (1, 3)),
        ),
        // One record counted from DA/BRDA, one with totals and no end_of_record.
        (
            sample!("lcovinfo/no-totals.info"),
            ReportFormat::Lcovinfo,
            coverage((4, 3), (1, 3)),
        ),
    ];
    for (path, format, expected) in cases {
        let summary = parse_file(format, Path::new(path));
        match summary {
            Ok(summary) => assert_eq!(summary, expected, "{path}"),
            Err(e) => panic!("{path}: {e}"),
        }
    }
}

#[test]
fn malformed_and_foreign_files_give_errors_that_name_them() {
    let cases: &[(&str, ReportFormat, &str)] = &[
        (
            sample!("malformed/truncated.xml"),
            ReportFormat::Junitxml,
            ":6:118: malformed XML: tag not closed: `>` not found before end of input",
        ),
        (
            sample!("malformed/mismatched.xml"),
            ReportFormat::Junitxml,
            ":5:3: malformed XML: expected `</testcase>`, but `</testsuite>` was found",
        ),
        (
            sample!("malformed/unclosed-cdata.xml"),
            ReportFormat::Junitxml,
            ":4:29: malformed XML: the file ends inside a CDATA section",
        ),
        (
            sample!("malformed/text-after-root.xml"),
            ReportFormat::Junitxml,
            ":2:1: malformed XML: text after the root element: `garbage`",
        ),
        (
            sample!("malformed/utf16.xml"),
            ReportFormat::Nunit3xml,
            ":1:1: malformed XML: the file is UTF-16; only UTF-8 reports are read",
        ),
        (
            sample!("malformed/html.xml"),
            ReportFormat::Junitxml,
            ": not a JUnit report: the root element is <html>",
        ),
        (
            sample!("malformed/empty.xml"),
            ReportFormat::Junitxml,
            ": the file is empty",
        ),
        (
            sample!("malformed/blank.xml"),
            ReportFormat::Cloverxml,
            ": the file is empty",
        ),
        (
            sample!("malformed/bad-count.xml"),
            ReportFormat::Junitxml,
            ":2:1: invalid JUnit report: <testsuite> has tests=\"many\", not a count",
        ),
        (
            sample!("malformed/bad-counter.xml"),
            ReportFormat::Jacocoxml,
            ":3:3: invalid JaCoCo report: <counter> has covered=\"six\", not a count",
        ),
        (
            sample!("lcovinfo/istanbul.info"),
            ReportFormat::Junitxml,
            ":1:1: malformed XML: expected an XML element, found `TN:`",
        ),
        (
            sample!("nunit3xml/nunit-3.xml"),
            ReportFormat::Junitxml,
            ": not a JUnit report: the root element is <test-run> (as in NUNIT3XML reports)",
        ),
        (
            sample!("nunit3xml/nunit-3.xml"),
            ReportFormat::Nunitxml,
            ": not an NUnit 2 report: the root element is <test-run> (as in NUNIT3XML reports)",
        ),
        (
            sample!("junitxml/pytest.xml"),
            ReportFormat::Testngxml,
            ": not a TestNG report: the root element is <testsuites> (as in JUNITXML reports)",
        ),
        (
            sample!("junitxml/surefire.xml"),
            ReportFormat::Visualstudiotrx,
            ": not a Visual Studio TRX report: the root element is <testsuite> (as in JUNITXML \
             reports)",
        ),
        (
            sample!("cloverxml/istanbul.xml"),
            ReportFormat::Coberturaxml,
            ": not a Cobertura report: the root <coverage> is Clover's (it has a clover attribute)",
        ),
        (
            sample!("coberturaxml/coverage-py.xml"),
            ReportFormat::Cloverxml,
            ": not a Clover report: <coverage> has no <project> (Cobertura's <coverage> has \
             <packages> instead)",
        ),
        (
            sample!("jacocoxml/jacoco.xml"),
            ReportFormat::Coberturaxml,
            ": not a Cobertura report: the root element is <report> (as in JACOCOXML reports)",
        ),
        (
            sample!("malformed/invalid.json"),
            ReportFormat::Cucumberjson,
            ":5:67: malformed JSON: trailing comma",
        ),
        (
            sample!("malformed/truncated.json"),
            ReportFormat::Simplecov,
            ":6:1: malformed JSON: EOF while parsing a value",
        ),
        (
            sample!("malformed/wrong-type.json"),
            ReportFormat::Simplecov,
            ":4:47: invalid SimpleCov report: invalid type: boolean `true`, expected a hit count, \
             null or \"ignored\"",
        ),
        (
            sample!("malformed/empty.json"),
            ReportFormat::Cucumberjson,
            ": the file is empty",
        ),
        (
            sample!("simplecov/resultset-legacy.json"),
            ReportFormat::Cucumberjson,
            ": not a Cucumber JSON report: the document is an object, not an array of features",
        ),
        (
            sample!("cucumberjson/cucumber-js.json"),
            ReportFormat::Simplecov,
            ": not a SimpleCov report: the document is an array, not an object",
        ),
        (
            sample!("junitxml/pytest.xml"),
            ReportFormat::Cucumberjson,
            ":1:1: malformed JSON: expected value",
        ),
        (
            sample!("malformed/bad-hits.info"),
            ReportFormat::Lcovinfo,
            ":4: invalid LCOV report: DA:2,lots: no hit count",
        ),
        (
            sample!("malformed/empty.info"),
            ReportFormat::Lcovinfo,
            ": the file is empty",
        ),
        (
            sample!("coberturaxml/istanbul.xml"),
            ReportFormat::Lcovinfo,
            ": not an LCOV report: line 1 is not an LCOV entry: `<?xml version=\"1.0\" ?>`",
        ),
    ];
    for &(path, format, expected) in cases {
        match parse_file(format, Path::new(path)) {
            Ok(summary) => panic!("{path} as {format:?} gave {summary:?}"),
            Err(e) => {
                assert_eq!(e.path(), Path::new(path));
                assert_eq!(e.to_string(), format!("{path}{expected}"), "{format:?}");
            }
        }
    }
}

#[test]
fn a_missing_file_is_an_io_error() {
    let path = Path::new(sample!("malformed/no-such-file.xml"));
    let error = parse_file(ReportFormat::Junitxml, path).expect_err("no file");
    assert!(matches!(error, ReportError::Io { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot read {}: ", path.display()))
    );
}

/// Writes a report into a temporary file.
fn temp_report(content: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(content).expect("written");
    file
}

#[test]
fn a_huge_junit_report_is_streamed_and_its_failures_are_capped() {
    const CASES: usize = 200_000;
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    {
        let mut out = std::io::BufWriter::new(file.as_file_mut());
        writeln!(out, "<?xml version=\"1.0\"?>\n<testsuites time=\"12.5\">").expect("w");
        writeln!(out, "<testsuite name=\"huge\">").expect("w");
        // A system-out larger than the reader's buffer, which must be skipped, not held.
        write!(out, "<system-out><![CDATA[").expect("w");
        for _ in 0..(4 << 20) / 64 {
            out.write_all(&[b'x'; 64]).expect("w");
        }
        writeln!(out, "]]]]><![CDATA[>]]></system-out>").expect("w");
        let long = "é".repeat(3000);
        for i in 0..CASES {
            match i % 1000 {
                0 => writeln!(
                    out,
                    "<testcase name=\"t{i}\" classname=\"c\"><failure>{long} &amp; \
                     more</failure></testcase>"
                ),
                1 => writeln!(
                    out,
                    "<testcase name=\"t{i}\" classname=\"c\"><error message=\"e{i}\"/></testcase>"
                ),
                2 => writeln!(
                    out,
                    "<testcase name=\"t{i}\" classname=\"c\"><skipped/></testcase>"
                ),
                _ => writeln!(
                    out,
                    "<testcase name=\"t{i}\" classname=\"c\" time=\"0.001\"/>"
                ),
            }
            .expect("w");
        }
        writeln!(out, "</testsuite>\n</testsuites>").expect("w");
    }
    let Summary::Test(summary) =
        parse_file(ReportFormat::Junitxml, file.path()).expect("the report parses")
    else {
        panic!("a test summary");
    };
    assert_eq!(summary.total, CASES as u64);
    assert_eq!(summary.failed, 200);
    assert_eq!(summary.errors, 200);
    assert_eq!(summary.skipped, 200);
    assert_eq!(summary.passed, CASES as u64 - 600);
    assert_eq!(summary.duration_ms, Some(12_500));
    assert_eq!(summary.failures.len(), MAX_FAILURES);
    let first = &summary.failures[0];
    assert_eq!(first.name, "t0");
    assert_eq!(first.status, FailureKind::Failed);
    let message = first.message.as_deref().expect("a message");
    assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
    assert!(message.ends_with("é…"), "{message}");
    assert_eq!(summary.failures[1].message.as_deref(), Some("e1"));
}

#[test]
fn a_byte_order_mark_is_skipped_and_positions_count_characters() {
    let good = temp_report(
        b"\xEF\xBB\xBF<testsuite><testcase name=\"a\"><failure message=\"\xC3\xA9\"/></testcase></testsuite>",
    );
    let Summary::Test(summary) = parse_file(ReportFormat::Junitxml, good.path()).expect("parses")
    else {
        panic!("a test summary");
    };
    assert_eq!((summary.total, summary.failed), (1, 1));
    assert_eq!(summary.failures[0].message.as_deref(), Some("é"));

    // The é before the error is one column, though two bytes.
    let bad = temp_report("\u{feff}<testsuite>\n  <é></x></testsuite>".as_bytes());
    let error = parse_file(ReportFormat::Junitxml, bad.path()).expect_err("mismatched");
    assert_eq!(
        error.to_string(),
        format!(
            "{}:2:6: malformed XML: expected `</é>`, but `</x>` was found",
            bad.path().display()
        )
    );
}

#[test]
fn text_and_cdata_of_a_message_are_joined_and_unescaped() {
    let report = temp_report(
        b"<testsuite><testcase name=\"a\"><failure>one &lt;two&gt; <![CDATA[<three>]]> \
          &#x2603;</failure></testcase></testsuite>",
    );
    let Summary::Test(summary) = parse_file(ReportFormat::Junitxml, report.path()).expect("ok")
    else {
        panic!("a test summary");
    };
    assert_eq!(
        summary.failures[0].message.as_deref(),
        Some("one <two> <three> ☃")
    );
}

#[test]
fn messages_are_cut_on_a_character_boundary() {
    let text = "ab".to_owned() + &"€".repeat(1000);
    let cut = clean_message(&text, false).expect("a message");
    assert!(cut.len() <= MAX_MESSAGE_BYTES);
    assert!(cut.starts_with("ab€"));
    assert!(cut.ends_with('…'));
    assert_eq!(
        clean_message("  short\r\ntext \n", false).as_deref(),
        Some("short\ntext")
    );
    assert_eq!(clean_message("short", true).as_deref(), Some("short…"));
    assert_eq!(clean_message(" \n ", false), None);
}

#[test]
fn seconds_become_milliseconds() {
    assert_eq!(seconds_to_ms("0.012"), Some(12));
    assert_eq!(seconds_to_ms(" 12 "), Some(12_000));
    assert_eq!(seconds_to_ms("1,234.5"), Some(1_234_500));
    assert_eq!(seconds_to_ms("0.0005"), Some(1));
    assert_eq!(seconds_to_ms("-1"), None);
    assert_eq!(seconds_to_ms("NaN"), None);
    assert_eq!(seconds_to_ms("inf"), None);
    assert_eq!(seconds_to_ms("12:00:01"), None);
}

#[test]
fn summaries_merge() {
    let failure = |name: &str| TestFailure {
        suite: None,
        name: name.to_owned(),
        status: FailureKind::Failed,
        message: None,
        file: Some("a.xml".to_owned()),
    };
    let mut a = TestSummary {
        total: 40,
        passed: 0,
        failed: 40,
        skipped: 0,
        errors: 0,
        duration_ms: None,
        failures: (0..40).map(|i| failure(&format!("a{i}"))).collect(),
    };
    let b = TestSummary {
        total: 22,
        passed: 1,
        failed: 20,
        skipped: 1,
        errors: 0,
        duration_ms: Some(5),
        failures: (0..20).map(|i| failure(&format!("b{i}"))).collect(),
    };
    a.merge(b);
    assert_eq!((a.total, a.passed, a.failed, a.skipped), (62, 1, 60, 1));
    assert_eq!(a.duration_ms, Some(5));
    assert_eq!(a.failures.len(), MAX_FAILURES);
    assert_eq!(a.failures[40].name, "b0");
    assert_eq!(a.failures[49].name, "b9");

    let mut c = CoverageSummary::from_totals((6, 10), (1, 4));
    assert_eq!(c.line_percent(), Some(60.0));
    assert_eq!(c.branch_percent(), Some(25.0));
    c.merge(CoverageSummary::from_totals((4, 10), (0, 0)));
    assert_eq!(c.line_percent(), Some(50.0));
    assert_eq!(c.branch_percent(), Some(25.0));
    assert_eq!(CoverageSummary::default().line_percent(), None);
    assert_eq!(CoverageSummary::default().branch_percent(), None);
}

#[test]
fn summaries_serialize_with_their_kind() {
    let summary = parse_file(
        ReportFormat::Junitxml,
        Path::new(sample!("junitxml/surefire.xml")),
    )
    .expect("parses");
    let json = serde_json::to_value(&summary).expect("serializes");
    assert_eq!(json["kind"], "test");
    assert_eq!(json["failures"][1]["status"], "ERROR");
    let back: Summary = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, summary);

    let coverage = Summary::Coverage(CoverageSummary::from_totals((1, 2), (0, 0)));
    let json = serde_json::to_value(&coverage).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "kind": "coverage",
            "lines_covered": 1,
            "lines_missed": 1,
            "branches_covered": 0,
            "branches_missed": 0,
        })
    );
}
