"""The kit checks itself: reference solutions get full marks, fresh stubs get 0, and the two
mirror each other so that the diff of a stub and its solution is exactly the answer; correct code
written independently from the stubs' docstrings (tests/right/) gets full marks too."""

import ast
from pathlib import Path

import pytest
import torch
from conftest import ROOT, grade, make_workspace

from posgrade.kit import catalog, state

CASES = Path(__import__("posgrade.grading.cases", fromlist=["x"]).__file__).parent


@pytest.fixture(scope="module")
def reference_run():
    return grade(state.kit_dir("solutions"), catalog.names(), seed=1234)


@pytest.fixture(scope="module")
def stub_run():
    return grade(state.kit_dir("exercises"), catalog.names(), seed=1234)


def test_solutions_get_full_marks(reference_run):
    for ex in reference_run.exercises:
        bad = [f"{c.id}: {c.message}" for c in ex.cases if c.status == "failed"]
        assert not bad, "\n".join(bad)
        assert ex.graded > 0 and ex.score == ex.points, ex.name
    assert reference_run.passed and reference_run.score == reference_run.max_score


def test_cuda_cases_skip_without_a_gpu(reference_run):
    cuda = [c for e in reference_run.exercises for c in e.cases if c.device == "cuda"]
    assert cuda, "every exercise with a device-dependent case has CUDA variants"
    if torch.cuda.is_available():
        assert all(c.status == "passed" for c in cuda)
    else:
        assert all(c.status == "skipped" and c.message == "no CUDA device" for c in cuda)
        assert any("no CUDA device" in n for n in reference_run.notes)


def test_stubs_score_zero(stub_run):
    for ex in stub_run.exercises:
        assert ex.score == 0 and ex.earned == 0, ex.name
        graded = [c for c in ex.cases if c.status != "skipped"]
        assert graded and all(c.status == "failed" for c in graded)
        assert all(c.kind == "not-implemented" and c.message.startswith("not implemented yet") for c in graded), \
            {c.id: c.message for c in graded if c.kind != "not-implemented"}
    assert not stub_run.passed


def _signature(node):
    return ast.dump(node.args)


def _definitions(tree, prefix=""):
    """Functions and classes by qualified name (Class.method)."""
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[prefix + node.name] = node
            if isinstance(node, ast.ClassDef):
                out.update(_definitions(node, prefix + node.name + "."))
    return out


@pytest.mark.parametrize("name", catalog.names())
def test_stub_mirrors_solution(name):
    stub = ast.parse((state.kit_dir("exercises") / f"{name}.py").read_text())
    sol = ast.parse((state.kit_dir("solutions") / f"{name}.py").read_text())
    assert ast.get_docstring(stub) == ast.get_docstring(sol)
    assert [ast.dump(n) for n in stub.body if isinstance(n, (ast.Import, ast.ImportFrom))] == \
        [ast.dump(n) for n in sol.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    s_defs, r_defs = _definitions(stub), _definitions(sol)
    assert sorted(s_defs) == sorted(r_defs)
    for key, node in s_defs.items():
        ref = r_defs[key]
        if not key.endswith("__init__"):  # the class docstring documents __init__'s arguments
            assert ast.get_docstring(node), f"{name}.{key} needs a docstring: it is the learner's spec"
        assert ast.get_docstring(node) == ast.get_docstring(ref), f"{name}.{key}: docstrings differ"
        if isinstance(node, ast.FunctionDef):
            assert _signature(node) == _signature(ref), f"{name}.{key}: signatures differ"
            body = [ast.unparse(s) for s in node.body[1 if ast.get_docstring(node) else 0:]]
            allowed = [["raise NotImplementedError"], ["super().__init__()", "raise NotImplementedError"]]
            assert body in allowed, f"stub {name}.{key} must only raise NotImplementedError, has {body}"


def test_catalog_files_exist():
    for ex in catalog.EXERCISES:
        assert (state.kit_dir("exercises") / ex.file).is_file()
        assert (state.kit_dir("solutions") / ex.file).is_file()
        assert (CASES / ex.cases).is_file()
        assert ex.hints and ex.points > 0


@pytest.mark.parametrize("name", catalog.names())
def test_every_case_has_points_and_a_title(name):
    tree = ast.parse((CASES / catalog.get(name).cases).read_text())
    cases = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    assert cases
    for case in cases:
        assert ast.get_docstring(case), f"{case.name} needs a one-line title"
        marks = [ast.unparse(d) for d in case.decorator_list]
        assert any(m.startswith("points(") for m in marks), f"{case.name} has no @points(n)"


def test_readme_lists_every_exercise_with_its_points():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for i, ex in enumerate(catalog.EXERCISES):
        row = next((line for line in readme.splitlines() if line.startswith(f"| {i} | `{ex.name}` |")), None)
        assert row, f"README's exercise table has no row for {i} {ex.name}"
        assert row.rstrip().endswith(f"| {ex.points} |"), row


RIGHT = ROOT / "tests" / "right"


@pytest.mark.parametrize("path", sorted(RIGHT.glob("*/*.py")), ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_independent_correct_code_gets_full_marks(tmp_path, path):
    """Correct code in styles unlike the reference's (loops, einsum, complex numbers, float64 on the
    way, views, preallocated caches, other masks) passes every case: the cases ask for the spec,
    not for the reference's way of computing it."""
    name = path.parent.name
    ws = make_workspace(tmp_path / "ws", {name: path})
    (ex,) = grade(ws, [name], seed=5).exercises
    assert not ex.failures, "\n".join(f"{c.id}: {c.message[:300]}" for c in ex.failures)
    assert ex.score == ex.points
