"""The comparison helper explains each kind of mismatch, in the documented order."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from posgrade.diagnosis.compare import TOLERANCES, CaseFailure, assert_close
from posgrade.kit.wire import Opaque, encode, decode


def explain(got, want, **kw):
    with pytest.raises(CaseFailure) as info:
        assert_close(got, want, what="out", **kw)
    return str(info.value)


def test_not_a_tensor():
    assert "returned None (is a `return` missing?)" in explain(None, torch.zeros(2))
    assert "returned a tuple of 2 items" in explain((1, 2), torch.zeros(2))
    got = decode(encode(Opaque("numpy.ndarray", "shape (2,), dtype float64")))
    assert "numpy.ndarray" in explain(got, torch.zeros(2))


def test_shape_then_transpose():
    msg = explain(torch.zeros(3, 2), torch.zeros(2, 3))
    assert "shape [3, 2], expected [2, 3]" in msg and "transpose" in msg


def test_dtype_before_values():
    assert "dtype torch.float64, expected torch.float32" in explain(torch.ones(2, dtype=torch.float64), torch.zeros(2))


def test_nan_named_before_values():
    got = torch.tensor([0.0, float("nan"), 1.0])
    msg = explain(got, torch.zeros(3))
    assert "1 NaN and 0 inf" in msg and "first at [1]" in msg


def test_values_report_worst_element_and_share():
    want = torch.zeros(4, 5)
    got = want.clone()
    got[2, 3] = 0.5
    got[0, 1] = 0.1
    msg = explain(got, want)
    assert "max abs error 0.5 at [2, 3]" in msg
    assert "2 of 20 elements (10%)" in msg
    assert re.search(r"\[2, 3\]\s+0\.5\s+0", msg)


def test_tolerance_and_position_allowance():
    want = torch.zeros(3)
    assert_close(want + 9e-6, want)  # inside float32 atol 1e-5
    explain(want + 2e-5, want)
    assert_close(want + 2e-5, want, atol_extra=1e-7 * 4096)


def test_integers_compare_exactly():
    msg = explain(torch.tensor([1, 2, 4]), torch.tensor([1, 2, 3]))
    assert "1 of 3 elements" in msg


def test_readme_documents_the_tolerance_table():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for (dtype, device), (rtol, atol) in TOLERANCES.items():
        name = str(dtype).removeprefix("torch.")
        rows = [line for line in readme.splitlines() if line.startswith(f"| {name} |") and device in line]
        assert rows, f"README has no tolerance row for {name} on {device}"
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert (float(cells[2]), float(cells[3])) == (rtol, atol), rows[0]


def test_numpy_results_cross_as_opaque():
    value = decode(encode(np.zeros((2, 3))))
    assert isinstance(value, Opaque) and "shape (2, 3)" in value.repr


def _table(rows=12, cols=8):
    pos = torch.arange(rows, dtype=torch.float64)[:, None]
    return torch.sin(pos * torch.linspace(0.1, 1.0, cols, dtype=torch.float64)[None, :] + 0.3).float()


@pytest.mark.parametrize("make,words", [
    (lambda w: w.T.contiguous(), "transpose"),
    (lambda w: 2.0 * w, "2 times the expected"),
    (lambda w: -w, "opposite sign"),
    (lambda w: torch.cat([torch.zeros_like(w[:1]), w[:-1]]), "shifted one position down"),
    (lambda w: torch.cat([w[1:], torch.zeros_like(w[:1])]), "shifted one position up"),
    (lambda w: w.view(*w.shape[:-1], -1, 2).flip(-1).flatten(-2), "even and odd columns are swapped"),
    (lambda w: torch.cat([w[:, :-1], w[:, -1:] + 1], 1), "only 7 of the 8 columns differ"),
    (lambda w: torch.cat([torch.zeros_like(w[:1]), w[1:]]), "only row 0 of the"),
    (lambda w: w + 1e-3 * torch.arange(w.shape[0], dtype=w.dtype)[:, None] ** 2, "error grows with position"),
])
def test_mismatch_patterns_are_described(make, words):
    want = _table(8, 8) if "transpose" in words else _table(32, 8)
    assert words in explain(make(want), want)


def test_unrelated_output_names_no_pattern():
    want = _table(32, 8)
    noise = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))
    assert "looks like" not in explain(noise, want)
