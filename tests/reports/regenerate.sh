#!/usr/bin/env bash
# Re-creates the report samples that real tools write (CI does not run this).
#
#   tests/reports/regenerate.sh [tool...]     tools: nextest pytest jest cucumber (default: all)
#
# Each tool runs a tiny project built here, in a scratch directory, with one passing, one
# failing and one skipped test (and a few more where the tool has more outcomes), and its
# report is copied into tests/reports/<format>/. Needs: cargo-nextest; python3 (a venv with
# pytest and coverage is made); node and npm (jest, jest-junit and @cucumber/cucumber are
# installed in the scratch directory).
#
# Times, process ids and timestamps change from run to run, so the expectations in
# crates/runner/src/reports/tests.rs (durations, some messages) must be updated after a run.
#
# The other samples are written by hand after each tool's documented output (Maven Surefire,
# go-junit-report, NUnit 2 and 3, TestNG, TRX, JaCoCo, SimpleCov, cucumber-jvm); see README.md.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
work="${WORK:-/tmp/buildspec-report-samples}"
mkdir -p "$work"

nextest() {
    local dir="$work/nextest-demo"
    rm -rf "$dir"
    mkdir -p "$dir/src" "$dir/.config"
    cat >"$dir/Cargo.toml" <<'EOF'
[package]
name = "nextest-demo"
version = "0.1.0"
edition = "2024"

[workspace]
EOF
    cat >"$dir/.config/nextest.toml" <<'EOF'
[profile.default.junit]
path = "junit.xml"
EOF
    cat >"$dir/src/lib.rs" <<'EOF'
pub fn add(a: i32, b: i32) -> i32 {
    a + b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds() {
        assert_eq!(add(1, 2), 3);
    }

    #[test]
    fn fails() {
        assert_eq!(add(1, 2), 4, "one and two make four?");
    }

    #[test]
    #[ignore = "not today"]
    fn ignored() {
        assert_eq!(add(0, 0), 0);
    }
}

#[cfg(test)]
mod flaky {
    /// Fails on its first attempt and passes on the retry: a marker file remembers.
    #[test]
    fn passes_on_retry() {
        let marker = std::env::temp_dir().join("nextest-demo-flaky-marker");
        if std::fs::remove_file(&marker).is_err() {
            std::fs::write(&marker, b"seen").expect("the marker is written");
            panic!("first attempt fails");
        }
    }
}
EOF
    (
        cd "$dir"
        export RUST_BACKTRACE=0 CARGO_TARGET_DIR="$dir/target"
        # Without retries: one pass, one failure, the flaky test failing; the ignored test is
        # not in nextest's JUnit at all.
        rm -f "${TMPDIR:-/tmp}/nextest-demo-flaky-marker"
        cargo nextest run --no-fail-fast -E 'not test(passes_on_retry)' || true
        cp target/nextest/default/junit.xml "$here/junitxml/nextest.xml"
        # With a retry: <flakyFailure> for the test that passed the second time,
        # <rerunFailure> for the one that failed both times.
        rm -f "${TMPDIR:-/tmp}/nextest-demo-flaky-marker"
        cargo nextest run --no-fail-fast --retries 1 || true
        cp target/nextest/default/junit.xml "$here/junitxml/nextest-retries.xml"
    )
}

pytest() {
    local dir="$work/py"
    rm -rf "$dir"
    mkdir -p "$dir"
    python3 -m venv "$work/pyenv"
    "$work/pyenv/bin/pip" install --quiet pytest coverage
    cat >"$dir/calc.py" <<'EOF'
def add(a, b):
    return a + b


def sign(a):
    if a > 0:
        return "positive"
    elif a < 0:
        return "negative"
    return "zero"


def unused(a):
    return a * 2
EOF
    cat >"$dir/test_calc.py" <<'EOF'
import pytest

from calc import add, sign


@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")


def test_adds():
    assert add(1, 2) == 3


def test_sign():
    assert sign(5) == "positive"


def test_fails():
    assert add(1, 2) == 4


@pytest.mark.skip(reason="not today")
def test_skipped():
    assert add(0, 0) == 0


def test_errors(broken):
    assert broken


class TestClass:
    def test_in_class(self):
        assert add(2, 2) == 4

    @pytest.mark.xfail(reason="known bug")
    def test_xfail(self):
        assert add(2, 2) == 5
EOF
    (
        cd "$dir"
        "$work/pyenv/bin/python" -m coverage run --branch -m pytest -q -p no:cacheprovider \
            --junitxml=pytest.xml || true
        "$work/pyenv/bin/python" -m coverage xml -o coverage.xml --include=calc.py
        "$work/pyenv/bin/python" -m coverage lcov -o coverage.lcov --include=calc.py
        cp pytest.xml "$here/junitxml/pytest.xml"
        cp coverage.xml "$here/coberturaxml/coverage-py.xml"
        cp coverage.lcov "$here/lcovinfo/coverage-py.info"
    )
}

js_project() {
    local dir="$work/js"
    if [ ! -d "$dir/node_modules/jest-junit" ] || [ ! -d "$dir/node_modules/@cucumber/cucumber" ]; then
        mkdir -p "$dir"
        (cd "$dir" && npm init -y >/dev/null &&
            npm install --no-audit --no-fund jest jest-junit @cucumber/cucumber)
    fi
    mkdir -p "$dir/src" "$dir/features/step_definitions"
    cat >"$dir/src/calc.js" <<'EOF'
function add(a, b) {
  return a + b;
}

function sign(a) {
  if (a > 0) {
    return 'positive';
  } else if (a < 0) {
    return 'negative';
  }
  return 'zero';
}

function unused(a) {
  return a * 2;
}

module.exports = { add, sign, unused };
EOF
}

jest() {
    js_project
    local dir="$work/js"
    cat >"$dir/src/calc.test.js" <<'EOF'
const { add, sign } = require('./calc');

describe('calc', () => {
  test('adds', () => {
    expect(add(1, 2)).toBe(3);
  });

  test('knows positive numbers', () => {
    expect(sign(5)).toBe('positive');
  });

  test('fails', () => {
    expect(add(1, 2)).toBe(4);
  });

  test.skip('skipped', () => {
    expect(add(0, 0)).toBe(0);
  });
});
EOF
    (
        cd "$dir"
        rm -rf coverage junit.xml
        npx jest --ci --reporters=default --reporters=jest-junit --coverage \
            --coverageReporters=clover --coverageReporters=cobertura --coverageReporters=lcovonly \
            --collectCoverageFrom=src/calc.js src/calc.test.js || true
        cp junit.xml "$here/junitxml/jest-junit.xml"
        cp coverage/clover.xml "$here/cloverxml/istanbul.xml"
        cp coverage/cobertura-coverage.xml "$here/coberturaxml/istanbul.xml"
        cp coverage/lcov.info "$here/lcovinfo/istanbul.info"
    )
}

cucumber() {
    js_project
    local dir="$work/js"
    cat >"$dir/features/calc.feature" <<'EOF'
Feature: Calculator

  Background:
    Given a calculator

  Scenario: Adding
    When I add 1 and 2
    Then the result is 3

  Scenario: Adding wrongly
    When I add 1 and 2
    Then the result is 4

  Scenario: Dividing
    When I divide 1 by 0
    Then the result is infinite

  Scenario: Subtracting
    When I subtract 1 from 2
    Then the result is 1
EOF
    cat >"$dir/features/step_definitions/steps.js" <<'EOF'
const assert = require('assert');
const { Given, When, Then } = require('@cucumber/cucumber');
const { add } = require('../../src/calc');

Given('a calculator', function () {
  this.result = 0;
});

When('I add {int} and {int}', function (a, b) {
  this.result = add(a, b);
});

Then('the result is {int}', function (expected) {
  assert.strictEqual(this.result, expected);
});

When('I divide {int} by {int}', function (a, b) {
  return 'pending';
});
EOF
    (
        cd "$dir"
        npx cucumber-js --format json:cucumber.json || true
        cp cucumber.json "$here/cucumberjson/cucumber-js.json"
    )
}

tools=("$@")
if [ ${#tools[@]} -eq 0 ]; then
    tools=(nextest pytest jest cucumber)
fi
for tool in "${tools[@]}"; do
    "$tool"
done
