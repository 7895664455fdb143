"""Hidden cases for the sinusoidal exercise.

Tolerance: an angle pos * w computed in float32 is off by about pos * 2^-24, so a correct
float32 table and a float64 one differ by up to ~1e-7 * max_len; value cases widen atol by
that (POS_ATOL), so no correct learner fails for choosing either precision.
"""

import pytest
import torch

from posgrade.grading.casekit import assert_fast, expect_error, points, randn
from posgrade.diagnosis.compare import assert_close, check_tensor, fail

EXERCISE = "sinusoidal"
POS_ATOL = 1e-7  # per position


def table(impl, max_len, d_model, **kw):
    out = impl.sinusoidal_table(max_len, d_model, **kw)
    check_tensor(out, f"sinusoidal_table({max_len}, {d_model})")
    return out


@points(2)
@pytest.mark.parametrize("max_len,d_model", [(16, 8), (50, 32), (1, 16), (3, 2)])
def test_table_values(learner, ref, max_len, d_model):
    """sinusoidal_table matches the formula"""
    assert_close(table(learner, max_len, d_model), table(ref, max_len, d_model),
                 what=f"sinusoidal_table({max_len}, {d_model})", atol_extra=POS_ATOL * max_len)


@points(2)
def test_row_zero(learner, ref):
    """row 0 is [0, 1, 0, 1, ...], not zeros"""
    got = table(learner, 8, 6)
    assert_close(got[:1], table(ref, 8, 6)[:1], what="row 0 of sinusoidal_table(8, 6)")


@points(2)
def test_even_columns_sin(learner, ref):
    """even columns hold sin, odd columns cos"""
    got, want = table(learner, 20, 8), table(ref, 20, 8)
    assert_close(got[:, 0::2], want[:, 0::2], what="the even columns (sin) of sinusoidal_table(20, 8)")
    assert_close(got[:, 1::2], want[:, 1::2], what="the odd columns (cos) of sinusoidal_table(20, 8)")


def column_frequencies(t):
    """Radians per position of each column, whatever its phase: f(p+1) + f(p-1) = 2 cos(w) f(p)."""
    f = t.double()
    num = (f[1:-1] * (f[2:] + f[:-2])).sum(0)
    cos_w = num / (2 * (f[1:-1] ** 2).sum(0)).clamp_min(1e-30)
    return torch.acos(cos_w.clamp(-1, 1))


@points(2)
def test_frequency_exponent(learner, ref):
    """columns 2i and 2i+1 share the frequency base^(-2i/d_model)"""
    got, want = table(learner, 64, 16), table(ref, 64, 16)
    if got.shape == want.shape:
        # from rows >= 1 only: a learner who zeroed row 0 (as padding) still has its frequencies
        w_got, w_want = column_frequencies(got[1:]), column_frequencies(want[1:])
        off = (w_got - w_want).abs() > 1e-4 * (1 + w_want)
        if off.any():
            j = int(torch.nonzero(off)[0])
            fail(f"column {j} turns at {float(w_got[j]):.4g} rad per position, expected "
                 f"base^(-{2 * (j // 2)}/16) = {float(w_want[j]):.4g}; the exponent is 2i/d_model "
                 f"with i = j // 2 the pair index, so columns 2i and 2i+1 share a frequency")
    assert_close(got, want, what="sinusoidal_table(64, 16)", atol_extra=POS_ATOL * 64)


@points(2)
@pytest.mark.parametrize("d_model", [1, 7, 33])
def test_odd_d_model(learner, ref, d_model):
    """an odd d_model works: the last column is a sine"""
    assert_close(table(learner, 12, d_model), table(ref, 12, d_model), what=f"sinusoidal_table(12, {d_model})")


@points(1)
@pytest.mark.parametrize("base", [100.0, 500000.0])
def test_base(learner, ref, base):
    """the base argument sets the wavelengths"""
    assert_close(table(learner, 40, 16, base=base), table(ref, 40, 16, base=base),
                 what=f"sinusoidal_table(40, 16, base={base:g})", atol_extra=POS_ATOL * 40)


@points(2)
def test_long_table(learner, ref):
    """a long table (4096 positions) stays accurate at the far end"""
    assert_close(table(learner, 4096, 64), table(ref, 4096, 64), what="sinusoidal_table(4096, 64)",
                 atol_extra=POS_ATOL * 4096)


@points(1)
def test_empty_table(learner, ref):
    """max_len = 0 gives an empty [0, d_model] table"""
    assert_close(table(learner, 0, 4), table(ref, 0, 4), what="sinusoidal_table(0, 4)")


@points(1)
@pytest.mark.parametrize("max_len,d_model", [(-1, 4), (4, 0)])
def test_bad_arguments(learner, max_len, d_model):
    """max_len < 0 or d_model < 1 raises ValueError"""
    expect_error(lambda: table(learner, max_len, d_model), "ValueError", f"sinusoidal_table({max_len}, {d_model})")


# -- the module ----------------------------------------------------------------------------

def run_module(impl, device, x, offset=0, max_len=64, grad_output=None, d_model=None):
    return impl.probe("module", cls="SinusoidalPositionalEncoding", args=(d_model or x.shape[-1],),
                      kwargs={"max_len": max_len}, device=device, inputs=(x,),
                      forward_kwargs={"offset": offset}, grad_output=grad_output)


@points(2)
def test_module_has_no_parameters(learner, ref):
    """the module has no parameters; its table is a non-persistent buffer"""
    facts = run_module(learner, "cpu", torch.zeros(1, 2, 8))["facts"]
    if facts["parameters"]:
        fail(f"the module has parameters {sorted(facts['parameters'])}; a sinusoidal encoding is fixed, "
             "so the table belongs in a buffer (register_buffer), not an nn.Parameter")
    buffers = facts["buffers"]
    if not buffers:
        fail("the module registers no buffer: module.to('cuda') would leave a plain tensor attribute behind")
    if facts["state_dict"]:
        fail(f"state_dict() holds {facts['state_dict']}; register the table with persistent=False so "
             "checkpoints do not carry a table that the code can rebuild")


@points(3)
@pytest.mark.parametrize("batch,seq_len,d_model", [(2, 5, 8), (1, 1, 6), (3, 17, 7)])
def test_forward_values(learner, ref, device, gen, batch, seq_len, d_model):
    """forward(x) returns x + table[:L]"""
    x = randn(gen, batch, seq_len, d_model, device=device)
    got = run_module(learner, device, x)["output"]
    assert_close(got, run_module(ref, device, x)["output"], what=f"forward(x) with x {list(x.shape)}")


@points(2)
def test_forward_offset(learner, ref, device, gen):
    """forward(x, offset) adds positions offset .. offset + L - 1 (KV cache)"""
    x = randn(gen, 2, 3, 8, device=device)
    got = run_module(learner, device, x, offset=10)["output"]
    assert_close(got, run_module(ref, device, x, offset=10)["output"], what="forward(x, offset=10)")


@points(2)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64],
                         ids=lambda d: str(d).removeprefix("torch."))
def test_forward_dtype(learner, ref, device, gen, dtype):
    """forward keeps x's dtype (float16, bfloat16, float64)"""
    x = randn(gen, 2, 6, 8, device=device, dtype=dtype)
    got = run_module(learner, device, x)["output"]
    want = run_module(ref, device, x)["output"]
    # the table itself is float32 by the spec, so float64 input is held to float32's tolerance
    rtol, atol = (1.3e-6, 1e-5) if dtype == torch.float64 else (None, None)
    assert_close(got, want, what=f"forward(x) with {str(dtype).removeprefix('torch.')} x", rtol=rtol, atol=atol)


@points(1)
def test_forward_gradient(learner, ref, device, gen):
    """gradients flow through forward to x unchanged"""
    x = randn(gen, 2, 4, 8, device=device)
    g = randn(gen, 2, 4, 8, device=device)
    got = run_module(learner, device, x, grad_output=g)["input_grads"][0]
    if got is None:
        fail("no gradient reached x: is the output detached from x?")
    assert_close(got, run_module(ref, device, x, grad_output=g)["input_grads"][0], what="the gradient of x")


@points(1)
@pytest.mark.parametrize("seq_len,offset", [(9, 0), (4, 6), (2, -1)])
def test_forward_too_long(learner, seq_len, offset):
    """offset < 0 or offset + L > max_len raises ValueError"""
    x = torch.zeros(1, seq_len, 4)
    expect_error(lambda: run_module(learner, "cpu", x, offset=offset, max_len=8), "ValueError",
                 f"forward with L={seq_len}, offset={offset} and max_len=8")


@points(1)
def test_efficiency(learner, ref):
    """runs within 20x of the reference's time on a large table"""
    assert_close(table(learner, 16, 8), table(ref, 16, 8), what="sinusoidal_table(16, 8) (the large input is timed only once a small one is right)")
    assert_fast(learner, "sinusoidal_table(4096, 64)", attr="sinusoidal_table", args=(4096, 64))
