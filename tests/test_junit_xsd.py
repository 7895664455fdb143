"""JUnit XML that CI systems accept: every JUnit file written here is validated against Jenkins'
xunit plugin junit-10.xsd (vendored: tests/xsd/junit-10.xsd, source and licence in
tests/xsd/README.md) with a real XSD validator, and read back by junitparser the way a viewer
reads it, whose counts must add up. Learner text with control characters (ESC, NUL, BEL) shows
as visible escapes (`\\x1b`), never U+FFFD.

Also here: result files are written with the process umask (0644 under 022, 0600 under 077)."""

import io
import os
import subprocess
import sys

import pytest
import xmlschema
from conftest import ROOT, grade
from junitparser import Error, Failure, JUnitXml, Skipped
from test_exercism import printing_learned_run
from test_formats import HOSTILE_TEXT, case, exercise, mixed, run

from posgrade.kit import catalog, state
from posgrade.reporting import formats

SCHEMA = xmlschema.XMLSchema(str(ROOT / "tests" / "xsd" / "junit-10.xsd"))
KINDS = ["wrong", "not-implemented", "exception", "import", "timeout", "crash", "memory", "output"]


def assert_valid(xml):
    """Valid against junit-10.xsd (the error names the element and attribute that is not)."""
    SCHEMA.validate(io.BytesIO(xml.encode("utf-8")))


def read_back(xml):
    """junitparser's reading of xml, with every count checked against the elements: each
    suite's tests/failures/errors/skipped against its testcases, the root's against the suites."""
    root = JUnitXml.fromstring(xml.encode("utf-8"))
    suites = list(root)
    for s in suites:
        cases = list(s)
        results = [c.result[0] for c in cases if c.result]
        counted = (len(cases), sum(isinstance(r, Failure) for r in results),
                   sum(isinstance(r, Error) for r in results), sum(isinstance(r, Skipped) for r in results))
        assert (s.tests, s.failures, s.errors, s.skipped) == counted, s.name
    assert (root.tests, root.failures, root.errors) == (sum(s.tests for s in suites),
                                                       sum(s.failures for s in suites),
                                                       sum(s.errors for s in suites))
    return suites


def check(xml):
    assert_valid(xml)
    return read_back(xml)


@pytest.fixture(scope="module")
def solutions_run():
    return grade(state.kit_dir("solutions"), ["sinusoidal", "learned"], seed=7)


@pytest.fixture(scope="module")
def stubs_run():
    return grade(state.kit_dir("exercises"), ["sinusoidal", "learned"], seed=7)


def test_the_vendored_schema_rejects_what_the_old_writer_wrote():
    """The validator is real: `skipped` on <testsuites> (posgrade's old output) is refused."""
    xml = formats.to_junit(mixed())
    assert_valid(xml)
    with pytest.raises(xmlschema.XMLSchemaValidationError, match="skipped"):
        assert_valid(xml.replace('<testsuites name="posgrade"', '<testsuites name="posgrade" skipped="1"', 1))
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        assert_valid(xml.replace('time="3.200"', 'time="3.2s"', 1))


def test_solutions_validate(solutions_run):
    suites = check(formats.to_junit(solutions_run))
    assert [s.name for s in suites] == ["sinusoidal", "learned"]
    assert all(s.failures == s.errors == 0 and s.tests > s.skipped for s in suites)


def test_stubs_validate(stubs_run):
    suites = check(formats.to_junit(stubs_run))
    for s in suites:  # every graded case of a fresh stub is "not implemented yet": a <failure>
        assert s.errors == 0 and s.failures == s.tests - s.skipped > 0, s.name


def test_learner_output_with_control_characters_validates_and_shows_them():
    result = printing_learned_run()
    xml = formats.to_junit(result)
    (suite,) = check(xml)
    assert suite.failures and suite.errors and suite.tests > suite.failures + suite.errors + suite.skipped
    assert "\ufffd" not in xml
    errors = [c for c in suite if c.result and isinstance(c.result[0], Error)]
    assert errors and all("\\x1b[0m\\x00" in c.result[0].text for c in errors)  # the exception's message
    assert all("\\x1b[31mred\\x1b[0m nul:\\x00 bell:\\x07" in c.system_out for c in errors)  # what it printed
    assert all(c.system_out.count("x" * 600) == 1 for c in errors)


def test_every_kind_of_outcome_validates_in_its_element():
    cases = [case("rope", "test_ok"), case("rope", "test_gpu", "skipped", device="cuda", params="cuda",
                                            message="no CUDA device")]
    cases += [case("rope", f"test_{k.replace('-', '_')}", "failed", kind=k,
                   message=f"{k}: {HOSTILE_TEXT}\nyour code printed:\n  {HOSTILE_TEXT}") for k in KINDS]
    (suite,) = check(formats.to_junit(run(exercise("rope", 15, cases, revealed=True))))
    tag = {c.name: type(c.result[0]).__name__ if c.result else "passed" for c in suite}
    assert tag == {"test_ok": "passed", "test_gpu[cuda]": "Skipped", "test_wrong": "Failure",
                   "test_not_implemented": "Failure",
                   **{f"test_{k}": "Error" for k in KINDS if k not in ("wrong", "not-implemented")}}
    for c in suite:
        if c.result and not isinstance(c.result[0], Skipped):
            assert "\\x00\\x1b[31m" in c.result[0].text and "\\x00\\x1b[31m" in c.system_out


def test_a_grader_failure_validates_as_one_error():
    error = "cases could not be collected\x1b[0m\nTraceback (most recent call last):\n  \x00 boom"
    r = run(*[exercise(name, catalog.get(name).points, []) for name in ("rope", "attention")], error=error)
    (suite,) = check(formats.to_junit(r))
    (only,) = list(suite)
    assert isinstance(only.result[0], Error) and only.result[0].message.startswith("grading failed: cases could not")
    assert "\\x1b[0m" in only.result[0].message and "\\x00 boom" in only.result[0].text


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"])
def test_result_files_get_the_umask_mode(tmp_path, umask, mode):
    """A child process with that umask writes a file over an existing one (the atomic replace)."""
    target = tmp_path / "results.json"
    target.write_text("old")
    os.chmod(target, 0o600)
    code = ("import os, sys; os.umask(int(sys.argv[2], 8)); from posgrade.reporting.common import atomic_write; "
            "atomic_write(sys.argv[1], 'new')")
    subprocess.run([sys.executable, "-c", code, str(target), oct(umask)], check=True, timeout=120)
    assert target.read_text() == "new" and oct(os.stat(target).st_mode & 0o777) == oct(mode)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind
