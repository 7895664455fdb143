"""Hidden cases for the exercise rope_scaling (after rope): RoPE frequencies scaled as
transformers' ROPE_INIT_FUNCTIONS compute them, and cos/sin times the attention factor.

Frequencies (inv_freq) are compared with the reference within rtol 1e-5 and atol 1e-8: the
slowest pairs turn at 1e-6 rad per position and less, so only a tight atol sees them; a learner
who computes in float64, or blends in another order, is within a few float32 ulps. The attention
factor is a Python float, compared to 1e-6 relative.

Angles: pos * theta computed in float32 is off by up to about 2 * pos * 2^-24 (theta's own
rounding plus the product's), and cos and sin are then scaled by the attention factor; value
cases widen atol by ANGLE_ATOL * max_position * max(attention_factor, 1). Every mistake in the
catalog moves an angle at the positions used here (hundreds to thousands, past the original
length, where scaling matters) by far more; those cases are where mistakes of the slow pairs
are named, since a frequency of 1e-4 that is 10% off is invisible in inv_freq at a glance.

Shapes are small (d 16 to 128, at most a few hundred positions) except the efficiency case.
The exercise stands alone: it does not import rope (or anything later).
"""

import math

import pytest
import torch

from posgrade.diagnosis.compare import assert_close, check_tensor, fail
from posgrade.grading.casekit import assert_fast, expect_error, points, tensors
from posgrade.grading.learner import LearnerError

EXERCISE = "rope_scaling"
ANGLE_ATOL = 4 * 2.0**-24  # per position, per unit of attention factor
FREQ_RTOL, FREQ_ATOL = 1e-5, 1e-8
KNOWN = ("default", "linear", "dynamic", "yarn", "llama3")

LINEAR = {"rope_type": "linear", "factor": 4.0}
YARN = {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 512}
LLAMA31 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 8192}


def dynamic(factor=2.0, original=64):
    return {"rope_type": "dynamic", "factor": factor, "original_max_position_embeddings": original}


def call(name, head_dim, base, scaling, **kw):
    """How a call reads in a failure message."""
    extra = "".join(f", {k}={v}" for k, v in kw.items() if v is not None)
    return f"{name}({head_dim}, base={base:g}, scaling={scaling}{extra})"


def inv_freq(impl, head_dim, base=10000.0, scaling=None, seq_len=None, **kw):
    """(inv_freq, attention_factor) from impl, checked for form."""
    what = call("rope_inv_freq", head_dim, base, scaling, seq_len=seq_len)
    freq, factor = tensors_and_float(impl.rope_inv_freq(head_dim, base, scaling, seq_len, **kw), what)
    return freq, factor, what


def tensors_and_float(value, what):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        fail(f"{what} returned {type(value).__name__}, expected a tuple (inv_freq, attention_factor)")
    freq, factor = value
    check_tensor(freq, f"inv_freq of {what}")
    if not isinstance(factor, float):
        fail(f"{what} returned an attention_factor of type {type(factor).__name__}, expected a Python "
             f"float (return float(...), as HF does: 1.0 for every type but yarn)")
    return freq, factor


def compare_freq(got, want, what):
    assert_close(got, want, what=f"inv_freq of {what}", rtol=FREQ_RTOL, atol=FREQ_ATOL)


def compare_factor(got, want, what):
    if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
        fail(f"{what} gave attention_factor {got:.7g}, expected {want:.7g}")


def angles(impl, positions, head_dim, base, scaling):
    what = f"scaled_rope_angles(positions {span(positions)}, {head_dim}, base={base:g}, scaling={scaling})"
    return tensors(impl.scaled_rope_angles(positions, head_dim, base, scaling), 2, what), what


def span(positions):
    p = positions.cpu()
    if p.numel() > 1 and torch.equal(p, torch.arange(int(p[0]), int(p[0]) + p.numel())):
        return f"{int(p[0])}..{int(p[-1])}"
    return str(p.tolist()) if p.numel() <= 8 else f"of {p.numel()} values in {int(p.min())}..{int(p.max())}"


def compare_angles(learner, ref, positions, head_dim, base, scaling):
    check_angles(angles(learner, positions, head_dim, base, scaling), ref, positions, head_dim, base, scaling)


def check_angles(got, ref, positions, head_dim, base, scaling):
    """got = angles(learner, ...) against the reference's, within the float32 angle allowance."""
    (cos, sin), what = got
    (want_cos, want_sin), _ = angles(ref, positions, head_dim, base, scaling)
    _, factor = ref.rope_inv_freq(head_dim, base, scaling)
    extra = ANGLE_ATOL * int(positions.abs().max()) * max(factor, 1.0)
    assert_close(cos, want_cos, what=f"cos of {what}", atol_extra=extra)
    assert_close(sin, want_sin, what=f"sin of {what}", atol_extra=extra)


# -- rope_inv_freq: every type against the reference ----------------------------------------------

INV_FREQ = {
    "default": (64, 10000.0, None, None),
    "default-dict": (128, 500000.0, {"rope_type": "default"}, None),
    "linear": (64, 10000.0, LINEAR, None),
    "dynamic": (16, 10000.0, dynamic(2.0, 256), 1000),
    "yarn": (64, 10000.0, YARN, None),
    "yarn-no-truncate": (64, 150000.0, {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096,
                                        "truncate": False}, None),
    "yarn-betas": (32, 10000.0, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024,
                                 "beta_fast": 16, "beta_slow": 2}, None),
    "llama3": (128, 500000.0, LLAMA31, None),
    "llama3-small": (32, 10000.0, {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 2.0,
                                   "high_freq_factor": 8.0, "original_max_position_embeddings": 256}, None),
}


@points(2)
@pytest.mark.parametrize("kind", list(INV_FREQ))
def test_inv_freq(learner, ref, kind):
    """rope_inv_freq gives HF's inv_freq (float32 [d/2]) and attention factor for every rope_type"""
    head_dim, base, scaling, seq_len = INV_FREQ[kind]
    got, got_factor, what = inv_freq(learner, head_dim, base, scaling, seq_len)
    want, want_factor, _ = inv_freq(ref, head_dim, base, scaling, seq_len)
    compare_freq(got, want, what)
    compare_factor(got_factor, want_factor, what)


# -- scaled_rope_angles: every type, past the original length ------------------------------------

ANGLES = {
    "default": (32, 10000.0, None, [(0, 300)]),
    "linear": (32, 10000.0, LINEAR, [(0, 600)]),
    # above the original length (64), from an offset: seq_len is max(positions) + 1, not L
    "dynamic": (16, 10000.0, dynamic(2.0, 64), [(192, 232), (64, 192)]),
    "yarn": (64, 10000.0, {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 256},
             [(1000, 1100)]),
    "yarn-mscale": (64, 150000.0, {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 1024,
                                   "truncate": False, "mscale": 1.0, "mscale_all_dim": 0.5}, [(3000, 3100)]),
    "llama3": (64, 500000.0, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 1024}, [(4000, 4100)]),
}


@points(2)
@pytest.mark.parametrize("kind", list(ANGLES))
def test_scaled_angles(learner, ref, device, kind):
    """scaled_rope_angles gives cos and sin of positions * inv_freq, times the attention factor"""
    head_dim, base, scaling, windows = ANGLES[kind]
    windows = [torch.arange(start, stop, device=device) for start, stop in windows]
    got = [angles(learner, positions, head_dim, base, scaling) for positions in windows]  # all calls first
    for positions, result in zip(windows, got):
        check_angles(result, ref, positions, head_dim, base, scaling)


# -- dynamic NTK: below and above the original length ---------------------------------------------

@points(3)
@pytest.mark.parametrize("seq_len", [100, 192, 256, 257, 1024])
def test_dynamic_below_and_above(learner, ref, seq_len):
    """dynamic keeps the default frequencies up to the original length (256) and enlarges the base past it"""
    scaling = dynamic(2.0, 256)
    got, got_factor, what = inv_freq(learner, 32, 10000.0, scaling, seq_len)
    want, want_factor, _ = inv_freq(ref, 32, 10000.0, scaling, seq_len)
    default, _ = ref.rope_inv_freq(32, 10000.0)
    if seq_len <= 256 and got.shape == default.shape and got.dtype == default.dtype:
        off = (got.double() - default.double()).abs() > FREQ_ATOL + FREQ_RTOL * default.double().abs()
        if off.any():
            fail(f"{what} changed {int(off.sum())} of {off.numel()} frequencies at seq_len {seq_len}, which "
                 f"is not past the original length 256: up to there dynamic must give the default "
                 f"frequencies (use seq_len = max(seq_len, original_max_position_embeddings))")
    compare_freq(got, want, what)
    compare_factor(got_factor, want_factor, what)
    positions = torch.arange(0, seq_len)  # the same through the angles (seq_len = max + 1 = L)
    compare_angles(learner, ref, positions, 32, 10000.0, scaling)


# -- yarn: the ramp's edges and the attention factor ----------------------------------------------

@points(3)
@pytest.mark.parametrize("truncate", [True, False])
def test_yarn_ramp_edges(learner, ref, truncate):
    """yarn keeps theta_i for the fast pairs, divides the slow ones by factor, and ramps in between"""
    scaling = dict(YARN, truncate=truncate)
    got, _, what = inv_freq(learner, 64, 10000.0, scaling)
    want, _, _ = inv_freq(ref, 64, 10000.0, scaling)
    default, _ = ref.rope_inv_freq(64, 10000.0)
    if got.shape == want.shape:
        ratio = got.double().cpu() / default.double()  # 1 where a pair keeps theta_i, 1/8 where divided
        if abs(ratio[0] - 1 / 8) < 1e-3 and abs(ratio[-1] - 1) < 1e-3:
            fail(f"{what}: the fastest pair was divided by factor 8 and the slowest kept; the ramp runs "
                 f"the other way (fast pairs, i below low, keep theta_i; slow pairs, i above high, "
                 f"take theta_i / factor)")
        if abs(ratio[0] - 1) > 1e-5 or abs(ratio[-1] - 1 / 8) > 1e-5:
            fail(f"{what}: pair 0 is scaled by {float(ratio[0]):.6g} (expected 1: it turns far more than "
                 f"beta_fast times over the original length) and pair 31 by {float(ratio[-1]):.6g} "
                 f"(expected 1/8: it turns less than beta_slow times)")
    compare_freq(got, want, what)


YARN_FACTORS = {
    "from-factor": {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 1024},
    "factor-1": {"rope_type": "yarn", "factor": 1.0, "original_max_position_embeddings": 1024},
    "given": {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 1024,
              "attention_factor": 0.75},
    "mscale-pair": {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 1024,
                    "mscale": 0.707, "mscale_all_dim": 0.5},
    "mscale-alone": {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 1024,
                     "mscale": 0.707},
}


@points(2)
@pytest.mark.parametrize("kind", list(YARN_FACTORS))
def test_yarn_attention_factor(learner, ref, kind):
    """yarn's attention factor: the given one, else the mscale ratio, else 0.1 ln(factor) + 1"""
    scaling = YARN_FACTORS[kind]
    got, got_factor, what = inv_freq(learner, 16, 10000.0, scaling)
    want, want_factor, _ = inv_freq(ref, 16, 10000.0, scaling)
    compare_factor(got_factor, want_factor, what)
    compare_freq(got, want, what)


# -- llama3: the three wavelength bands ------------------------------------------------------------

@points(3)
@pytest.mark.parametrize("head_dim,base,original", [(128, 500000.0, 8192), (64, 500000.0, 1024)])
def test_llama3_bands(learner, ref, head_dim, base, original):
    """llama3 keeps short wavelengths, divides long ones by factor, and blends the band between"""
    scaling = dict(LLAMA31, original_max_position_embeddings=original)
    got, _, what = inv_freq(learner, head_dim, base, scaling)
    want, _, _ = inv_freq(ref, head_dim, base, scaling)
    default, _ = ref.rope_inv_freq(head_dim, base)
    if got.shape == want.shape:
        wavelen = 2 * math.pi / default.double()
        ratio = got.double().cpu() / default.double()
        bands = [("wavelength < original / high_freq_factor", wavelen < original / 4, 1.0),
                 ("wavelength > original / low_freq_factor", wavelen > original / 1, 1 / 8)]
        for name, band, scale in bands:
            off = band & ((ratio - scale).abs() > 1e-5)
            if off.any():
                i = int(torch.nonzero(off)[0])
                fail(f"{what}: pair {i} (wavelength {float(wavelen[i]):.1f}, so {name}) is scaled by "
                     f"{float(ratio[i]):.6g}, expected {scale:g}; wavelength = 2 pi / theta_i")
    compare_freq(got, want, what)


# -- properties ------------------------------------------------------------------------------------

IDENTITY = {
    "none": None, "empty": {}, "default": {"rope_type": "default"},
    "linear-1": {"rope_type": "linear", "factor": 1.0},
    "dynamic-1-below": dynamic(1.0, 512),
    "yarn-1": {"rope_type": "yarn", "factor": 1.0, "original_max_position_embeddings": 512},
    "llama3-1": dict(LLAMA31, factor=1.0, original_max_position_embeddings=512),
}


@points(2)
def test_factor_one_is_identity(learner, ref):
    """with factor 1 (and no rope_type at all) every type gives the default RoPE and attention factor 1"""
    default, _ = ref.rope_inv_freq(32, 10000.0)
    for name, scaling in IDENTITY.items():
        got, got_factor, what = inv_freq(learner, 32, 10000.0, scaling, 300)
        compare_freq(got, default, f"{what} (factor 1 must change nothing)")
        compare_factor(got_factor, 1.0, what)


@points(1)
@pytest.mark.parametrize("kind", ["linear", "dynamic", "yarn", "llama3"])
def test_monotone_frequencies(learner, kind):
    """scaled frequencies stay positive, decrease with the pair index, and never exceed the default"""
    head_dim, base, scaling, seq_len = INV_FREQ[kind]
    got, _, what = inv_freq(learner, head_dim, base, scaling, seq_len)
    got = got.double().cpu()
    if got.shape != (head_dim // 2,):
        fail(f"{what} has shape {list(got.shape)}, expected [{head_dim // 2}]")
    if not (got > 0).all() or not (got[1:] < got[:-1]).all():
        i = int(torch.nonzero(~(got[1:] < got[:-1]))[0]) if not (got[1:] < got[:-1]).all() else 0
        fail(f"{what} is not positive and strictly decreasing (pair {i}: {float(got[i]):.6g}, pair {i + 1}: "
             f"{float(got[i + 1]):.6g}); scaling slows pairs down by at most factor, never reorders them")
    default = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    faster = got > default * (1 + 1e-5)
    if faster.any():
        i = int(torch.nonzero(faster)[0])
        fail(f"{what}: pair {i} turns at {float(got[i]):.6g}, faster than the default {float(default[i]):.6g}; "
             "scaling to a longer context only slows pairs down")


# -- errors ------------------------------------------------------------------------------------------

BAD = {
    "linear-without-factor": (dict(rope_type="linear"), "factor"),
    "yarn-without-original": (dict(rope_type="yarn", factor=4.0), "original_max_position_embeddings"),
    "dynamic-without-original": (dict(rope_type="dynamic", factor=4.0), "original_max_position_embeddings"),
    "llama3-without-low": ({k: v for k, v in LLAMA31.items() if k != "low_freq_factor"}, "low_freq_factor"),
    "factor-below-1": (dict(LINEAR, factor=0.5), "factor"),
    "unknown-type": (dict(rope_type="longrope", factor=4.0), None),
}


@points(1)
@pytest.mark.parametrize("bad", list(BAD))
def test_bad_scaling(learner, bad):
    """a missing or invalid key, or an unknown rope_type, raise ValueError that names it"""
    scaling, key = BAD[bad]
    what = call("rope_inv_freq", 32, 10000.0, scaling)
    try:
        value = learner.rope_inv_freq(32, 10000.0, scaling)
    except LearnerError as err:
        if err.kind != "exception":
            raise
        if err.exc_type != "ValueError":
            fail(f"{what} raised {err.exc_type}, expected ValueError: {err.summary}")
        message = err.summary.split(": ", 1)[-1]
        if key is not None and key not in message:
            fail(f"{what} raised ValueError({message!r}); the message should name the key {key!r}")
        if key is None and not all(k in message for k in KNOWN):
            fail(f"{what} raised ValueError({message!r}); the message should list the known rope_types "
                 f"({', '.join(KNOWN)})")
        return
    fail(f"{what} returned {type(value).__name__} instead of raising ValueError")


BAD_SHAPES = {
    "odd-head-dim": ("rope_inv_freq(7)", lambda m: m.rope_inv_freq(7)),
    "positions-2d": ("scaled_rope_angles(positions [2, 4], 8)",
                     lambda m: m.scaled_rope_angles(torch.zeros(2, 4, dtype=torch.long), 8)),
}


@points(1)
@pytest.mark.parametrize("bad", list(BAD_SHAPES))
def test_bad_arguments(learner, bad):
    """an odd head width, or positions that are not 1-D, raise ValueError"""
    what, make = BAD_SHAPES[bad]
    expect_error(lambda: make(learner), "ValueError", what)


# -- devices and speed -------------------------------------------------------------------------------

@points(1)
@pytest.mark.parametrize("kind", ["yarn", "dynamic"])
def test_keeps_device(learner, ref, device, kind):
    """rope_inv_freq(device=...) and scaled_rope_angles work on the given device, with no fixed one"""
    head_dim, base, scaling, seq_len = INV_FREQ[kind]
    got, got_factor, what = inv_freq(learner, head_dim, base, scaling, seq_len, device=device)
    want, want_factor, _ = inv_freq(ref, head_dim, base, scaling, seq_len, device=device)
    compare_freq(got, want, f"{what} with device={device}")
    compare_factor(got_factor, want_factor, what)
    positions = torch.arange(0, 1000, device=device)
    compare_angles(learner, ref, positions, head_dim, base, scaling)


@points(1)
def test_efficiency(learner, ref):
    """runs within 20x of the reference's time on many positions"""
    small = torch.arange(5, 10)
    compare_angles(learner, ref, small, 16, 10000.0, LINEAR)
    positions = torch.arange(4096)
    scaling = dict(LLAMA31, original_max_position_embeddings=1024)
    assert_fast(learner, f"scaled_rope_angles(arange(4096), 64, scaling={scaling})", attr="scaled_rope_angles",
                args=(positions, 64, 500000.0, scaling))
