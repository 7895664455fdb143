"""Hidden cases for the rope exercise.

Value cases compare with the reference on the same random inputs; property cases
(lengths kept, scores that depend only on m - n, the permutation between the two layouts,
identity at position 0) catch whole families of mistakes whatever their form.

Tolerance: an angle pos * theta computed in float32 is off by up to about 2 * pos * 2^-24
(the rounding of theta plus that of the product; measured up to 1.9 * pos * 2^-24 when theta
is built as exp(-log(base) * 2i/d) instead of 1 / base^(2i/d)), and a pair of length r then
moves by r times that. Value cases widen atol by ANGLE_ATOL * max_position * r_max (twice
the worst measured error; about 1e-6 * max_position for randn inputs, 4e-3 at position
4095), so a correct learner who computes the angles in float64, or in float32 in any order,
never fails, while every real mistake is off by far more.
"""

import pytest
import torch

from posgrade.grading.casekit import assert_fast, expect_error, points, randn, tensors
from posgrade.diagnosis.compare import assert_close, check_tensor, fail

EXERCISE = "rope"
ANGLE_ATOL = 4 * 2.0**-24  # per position, per unit of pair length


def rope(impl, x, positions=None, what=None, **kw):
    out = impl.apply_rope(x, positions, **kw)
    check_tensor(out, what or "apply_rope")
    if out.shape != x.shape:
        fail(f"{what or 'apply_rope'} has shape {list(out.shape)}, expected x's shape {list(x.shape)}")
    return out


def call(x, positions=None, **kw):
    """How a call reads in a failure message."""
    pos = "" if positions is None else f", positions {_span(positions)}"
    opts = "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}" for k, v in kw.items())
    return f"apply_rope(x {list(x.shape)}{pos}{opts})"


def _span(positions):
    p = positions.cpu()
    if p.numel() > 1 and torch.equal(p, torch.arange(int(p[0]), int(p[0]) + p.numel())):
        return f"{int(p[0])}..{int(p[-1])}"
    return str(p.tolist()) if p.numel() <= 8 else f"of {p.numel()} values in {int(p.min())}..{int(p.max())}"


def pairs(x, interleaved):
    """(a, b): the two coordinates of every pair, in the given layout."""
    d = x.shape[-1]
    return (x[..., 0::2], x[..., 1::2]) if interleaved else (x[..., : d // 2], x[..., d // 2 :])


def pair_length(x, interleaved=True):
    a, b = pairs(x.double(), interleaved)
    return float((a**2 + b**2).sqrt().max()) if x.numel() else 0.0


def angle_atol(x, positions, interleaved=True):
    """How far float32 angle rounding may move a correct output (see the module docstring)."""
    max_pos = int(positions.abs().max()) if positions is not None and positions.numel() else x.shape[-2]
    return ANGLE_ATOL * max_pos * max(pair_length(x, interleaved), 1.0)


def perm(d):
    """The fixed permutation between the layouts: interleaved(x)[perm] == half_split(x[perm])."""
    return torch.cat((torch.arange(0, d, 2), torch.arange(1, d, 2)))


def angles(impl, positions, head_dim, **kw):
    return tensors(impl.rope_angles(positions, head_dim, **kw), 2, f"rope_angles(positions, {head_dim})")


# -- rope_angles and precompute_freqs_cis -----------------------------------------------------

@points(2)
@pytest.mark.parametrize("head_dim,seq_len,offset,base", [(2, 1, 0, 10000.0), (64, 7, 1000, 10000.0),
                                                           (128, 33, 0, 500000.0)])
def test_rope_angles(learner, ref, device, head_dim, seq_len, offset, base):
    """rope_angles gives cos and sin of position * base^(-2i/d), float32 [L, d/2]"""
    positions = torch.arange(offset, offset + seq_len, device=device)
    got = angles(learner, positions, head_dim, base=base)
    want = angles(ref, positions, head_dim, base=base)
    extra = ANGLE_ATOL * (offset + seq_len)
    what = f"rope_angles(positions {_span(positions)}, {head_dim}, base={base:g})"
    assert_close(got[0], want[0], what=f"cos of {what}", atol_extra=extra)
    assert_close(got[1], want[1], what=f"sin of {what}", atol_extra=extra)


@points(3)
@pytest.mark.parametrize("base", [10000.0, 500000.0])
def test_frequency_exponent(learner, ref, base):
    """pair i turns by theta_i = base^(-2i/d) per position: exponent 2i/d, decreasing with i"""
    d = 16
    cos, sin = angles(learner, torch.tensor([1]), d, base=base)
    want_cos, want_sin = angles(ref, torch.tensor([1]), d, base=base)
    if cos.shape == want_cos.shape and sin.shape == want_sin.shape:
        theta = torch.atan2(sin.double(), cos.double())[0]  # the angle at position 1
        want = torch.atan2(want_sin.double(), want_cos.double())[0]
        off = (theta - want).abs() > 1e-5 * (1 + want)
        if off.any():
            i = int(torch.nonzero(off)[0])

            def turns_by(thetas):  # does the learner's angle at position 1 equal these?
                return torch.allclose(cos.double()[0], thetas.cos(), atol=1e-3) and \
                    torch.allclose(sin.double()[0], thetas.sin(), atol=1e-3)

            pair = torch.arange(d // 2, dtype=torch.float64)
            if turns_by(torch.zeros(d // 2, dtype=torch.float64)):
                # evidence first: zero angles at position 1 are also what arange(L) in place of the
                # positions argument gives; positions [3, 1] tell the two apart
                other = angles(learner, torch.tensor([3, 1]), d, base=base)
                if all(isinstance(t, torch.Tensor) and t.shape == w.shape and torch.allclose(t.double(), w.double(), atol=1e-5)
                       for t, w in zip(other, angles(ref, torch.arange(2), d, base=base))):
                    hint = ("; given positions [3, 1] your angles are those of positions [0, 1]: "
                            "rope_angles ignores its positions argument and uses arange(L)")
                else:
                    hint = "; every angle is 0 at position 1: is the position multiplied in?"
            elif turns_by(torch.pow(base, -pair / d)):
                hint = ("; that is base^(-i/d): the exponent is 2i/d with i the pair index "
                        "(arange(0, d, 2) / d), so that the slowest pair turns about base times slower "
                        "than the fastest, not about sqrt(base) times")
            elif turns_by(torch.pow(base, 2 * pair / d)):
                hint = "; your frequencies grow with i: theta_i = 1 / base^(2i/d), not base^(2i/d)"
            else:
                hint = ""
            fail(f"at position 1, pair {i} turns by {float(theta[i]):.6g} rad, expected "
                 f"theta_{i} = {base:g}^(-{2 * i}/{d}) = {float(want[i]):.6g}{hint}")
    assert_close(cos, want_cos, what=f"cos of rope_angles([1], {d}, base={base:g})")
    assert_close(sin, want_sin, what=f"sin of rope_angles([1], {d}, base={base:g})")


@points(2)
@pytest.mark.parametrize("head_dim,max_len,base", [(2, 1, 10000.0), (64, 100, 10000.0), (128, 50, 500000.0)])
def test_precompute_freqs_cis(learner, ref, device, head_dim, max_len, base):
    """precompute_freqs_cis gives e^(i m theta_j), complex64 [max_len, d/2] (Meta LLaMA)"""
    got = learner.precompute_freqs_cis(head_dim, max_len, base, device=device)
    want = ref.precompute_freqs_cis(head_dim, max_len, base, device=device)
    assert_close(got, want, what=f"precompute_freqs_cis({head_dim}, {max_len}, base={base:g})",
                 atol_extra=ANGLE_ATOL * max_len)


# -- apply_rope: values -----------------------------------------------------------------------

@points(4)
@pytest.mark.parametrize("head_dim,seq_len,interleaved", [
    (2, 1, True), (64, 7, True), (128, 33, True), (2, 1, False), (64, 7, False), (128, 33, False)])
def test_apply_rope_values(learner, ref, device, gen, head_dim, seq_len, interleaved):
    """apply_rope(x) rotates every pair of q/k [B, H, L, d] by position * theta_i"""
    x = randn(gen, 2, 3, seq_len, head_dim, device=device)
    got = rope(learner, x, interleaved=interleaved, what=call(x, interleaved=interleaved))
    want = ref.apply_rope(x, interleaved=interleaved)
    assert_close(got, want, what=call(x, interleaved=interleaved), atol_extra=angle_atol(x, None, interleaved))


@points(4)
def test_long_sequence(learner, ref, device, gen):
    """4096 positions: the far end is still rotated by the right angle"""
    x = randn(gen, 1, 1, 4096, 64, device=device)
    got = rope(learner, x, what=call(x))
    assert_close(got, ref.apply_rope(x), what=call(x), atol_extra=angle_atol(x, None))


@points(3)
@pytest.mark.parametrize("past_length", [5, 1000])
def test_positions_offset(learner, ref, device, gen, past_length):
    """positions past_length + arange(L) rotate new tokens as with a KV cache"""
    x = randn(gen, 2, 2, 6, 32, device=device)
    positions = torch.arange(past_length, past_length + 6, device=device)
    what = call(x, positions)
    got = rope(learner, x, positions, what=what)
    want = ref.apply_rope(x, positions)
    if past_length and got.shape == want.shape and got.dtype == want.dtype:
        at_zero = ref.apply_rope(x)
        if torch.allclose(got.cpu(), at_zero.cpu(), atol=1e-5) and not torch.allclose(want.cpu(), at_zero.cpu()):
            fail(f"{what} rotated the tokens as if they sat at positions 0..5: use the positions "
                 f"you are given (a KV cache puts new tokens at past_length = {past_length} onwards)")
    assert_close(got, want, what=what, atol_extra=angle_atol(x, positions))


@points(2)
@pytest.mark.parametrize("interleaved", [True, False])
def test_scattered_positions(learner, ref, device, gen, interleaved):
    """positions need not be consecutive: each row turns by its own position"""
    x = randn(gen, 3, 9, 16, device=device)  # [B, L, d]: any leading dims
    positions = torch.randperm(3000, generator=gen)[:9].to(device)
    what = call(x, positions, interleaved=interleaved)
    got = rope(learner, x, positions, what=what, interleaved=interleaved)
    want = ref.apply_rope(x, positions, interleaved=interleaved)
    assert_close(got, want, what=what, atol_extra=angle_atol(x, positions, interleaved))


@points(2)
@pytest.mark.parametrize("interleaved", [True, False])
def test_base(learner, ref, device, gen, interleaved):
    """the base argument sets the frequencies (500000 in LLaMA 3)"""
    x = randn(gen, 1, 2, 12, 64, device=device)
    positions = torch.arange(100, 112, device=device)
    what = call(x, positions, base=500000.0, interleaved=interleaved)
    got = rope(learner, x, positions, what=what, base=500000.0, interleaved=interleaved)
    want = ref.apply_rope(x, positions, base=500000.0, interleaved=interleaved)
    assert_close(got, want, what=what, atol_extra=angle_atol(x, positions, interleaved))


@points(3)
@pytest.mark.parametrize("interleaved", [True, False])
def test_pair_layout(learner, ref, device, gen, interleaved):
    """interleaved=True rotates pairs (2i, 2i+1), interleaved=False pairs (i, i + d/2)"""
    x = randn(gen, 2, 5, 8, device=device)
    positions = torch.arange(1, 6, device=device)
    what = call(x, positions, interleaved=interleaved)
    got = rope(learner, x, positions, what=what, interleaved=interleaved)
    want = ref.apply_rope(x, positions, interleaved=interleaved)
    other = ref.apply_rope(x, positions, interleaved=not interleaved)
    if got.dtype == want.dtype and torch.allclose(got.cpu(), other.cpu(), atol=1e-5) \
            and not torch.allclose(want.cpu(), other.cpu(), atol=1e-5):
        mine, theirs = ("(2i, 2i+1)", "(i, i + d/2)") if interleaved else ("(i, i + d/2)", "(2i, 2i+1)")
        fail(f"{what} rotated the pairs {theirs}; interleaved={interleaved} asks for pairs {mine}. "
             "The two layouts give different results on the same x (the weights decide which one a "
             "model needs), so follow the flag")
    assert_close(got, want, what=what)


@points(2)
@pytest.mark.parametrize("interleaved", [True, False])
def test_rotation_direction(learner, ref, device, gen, interleaved):
    """a pair (a, b) turns to (a cos - b sin, a sin + b cos): counter-clockwise, not backwards"""
    x = randn(gen, 4, 8, device=device)
    positions = torch.arange(1, 5, device=device)
    what = call(x, positions, interleaved=interleaved)
    got = rope(learner, x, positions, what=what, interleaved=interleaved)
    want = ref.apply_rope(x, positions, interleaved=interleaved)
    backwards = ref.apply_rope(x, -positions, interleaved=interleaved)
    if got.dtype == want.dtype and torch.allclose(got.cpu(), backwards.cpu(), atol=1e-5):
        fail(f"{what} turned every pair by -position * theta: the sin terms have the wrong signs. "
             "A pair (a, b) becomes (a cos - b sin, a sin + b cos)")
    assert_close(got, want, what=what)


# -- apply_rope: properties -------------------------------------------------------------------

@points(2)
@pytest.mark.parametrize("interleaved", [True, False])
def test_keeps_norm(learner, device, gen, interleaved):
    """RoPE only rotates: every vector keeps its length"""
    x = randn(gen, 2, 3, 9, 32, device=device)
    positions = torch.randperm(500, generator=gen)[:9].to(device)
    what = call(x, positions, interleaved=interleaved)
    got = rope(learner, x, positions, what=what, interleaved=interleaved)
    length, want = got.double().norm(dim=-1), x.double().norm(dim=-1)
    off = (length - want).abs() > 1e-5 * want + 1e-5
    if off.any():
        where = [int(i) for i in torch.nonzero(off)[0]]
        fail(f"{what} changed the length of {int(off.sum())} of {off.numel()} vectors (first at "
             f"{where}: {float(length[tuple(where)]):.5g}, x's is {float(want[tuple(where)]):.5g}). "
             "A rotation keeps lengths: both coordinates of a pair must turn by the same angle, "
             "(a cos - b sin, a sin + b cos), with cos and sin of that one angle")


@points(3)
@pytest.mark.parametrize("interleaved", [True, False])
def test_relative_scores(learner, device, gen, interleaved):
    """q·k after RoPE depends only on m - n: shifting every position by t changes no score"""
    q, k = randn(gen, 1, 2, 6, 16, device=device), randn(gen, 1, 2, 6, 16, device=device)
    m = torch.randperm(200, generator=gen)[:6].to(device)
    n = torch.randperm(200, generator=gen)[:6].to(device)
    t = int(torch.randint(1, 300, (1,), generator=gen))
    kw = {"interleaved": interleaved}
    scores = []
    for shift in (0, t):
        rq = rope(learner, q, m + shift, what=call(q, m + shift, **kw), **kw).double()
        rk = rope(learner, k, n + shift, what=call(k, n + shift, **kw), **kw).double()
        scores.append(rq @ rk.transpose(-2, -1))
    max_pos = int(max(m.max(), n.max())) + t
    norms = float(q.double().norm(dim=-1).max() * k.double().norm(dim=-1).max())
    atol = (4 * ANGLE_ATOL * max_pos + 64 * 2.0**-24) * norms
    err = (scores[1] - scores[0]).abs()
    if err.max() > atol:
        where = [int(i) for i in torch.nonzero(err == err.max())[0]]
        fail(f"rotating q by positions m and k by n, then both by m + {t} and n + {t}, changes the score "
             f"q·k at {where} from {float(scores[0][tuple(where)]):.5g} to {float(scores[1][tuple(where)]):.5g}; "
             "with RoPE a score depends only on m - n. Turn each pair by the angle position * theta_i "
             "and nothing else: the same angle for both coordinates of a pair, and no other use of "
             "the position")


@points(2)
def test_layouts_related_by_permutation(learner, device, gen):
    """interleaved and half-split agree up to the fixed permutation cat(arange(0,d,2), arange(1,d,2))"""
    d = 16
    x = randn(gen, 2, 2, 7, d, device=device)
    positions = torch.randperm(1000, generator=gen)[:7].to(device)
    p = perm(d).to(device)
    a = rope(learner, x, positions, what=call(x, positions, interleaved=True), interleaved=True)
    b = rope(learner, x[..., p], positions, what=call(x, positions, interleaved=False), interleaved=False)
    if a.dtype != x.dtype or b.dtype != x.dtype:
        fail(f"apply_rope returned {a.dtype} / {b.dtype} for {x.dtype} input")
    assert_close(b, a[..., p], what="apply_rope(x[..., perm], interleaved=False) compared with "
                 "apply_rope(x, interleaved=True)[..., perm] (perm = cat(arange(0, d, 2), arange(1, d, 2)); "
                 "the two layouts must be the same rotation with the coordinates reordered)",
                 atol_extra=2 * angle_atol(x, positions))


@points(2)
@pytest.mark.parametrize("interleaved", [True, False])
def test_position_zero_identity(learner, device, gen, interleaved):
    """at position 0 nothing moves: RoPE is the identity there"""
    x = randn(gen, 2, 3, 5, 8, device=device)
    positions = torch.zeros(5, dtype=torch.long, device=device)
    what = call(x, positions, interleaved=interleaved)
    got = rope(learner, x, positions, what=what, interleaved=interleaved)
    if got.dtype == x.dtype and got.device == x.device:
        a, b = pairs(got, interleaved)
        xa, xb = pairs(x, interleaved)
        if torch.allclose(a, -xb, atol=1e-6) and torch.allclose(b, xa, atol=1e-6):
            fail(f"{what} turned every pair by 90 degrees at position 0: cos and sin are swapped "
                 "(angle 0 must give cos = 1, sin = 0, and leave x unchanged)")
    assert_close(got, x, what=f"{what} (position 0 must leave x unchanged)")


# -- dtypes and devices -----------------------------------------------------------------------

DTYPES = [torch.float16, torch.bfloat16, torch.float64]


@points(1)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_keeps_dtype(learner, ref, device, gen, dtype):
    """apply_rope returns x's dtype (float16, bfloat16, float64)"""
    x = randn(gen, 2, 2, 6, 16, device=device, dtype=dtype)
    what = call(x)
    got = rope(learner, x, what=what)
    name = str(dtype).removeprefix("torch.")
    if got.dtype != dtype:
        fail(f"{what} with {name} x returned {str(got.dtype).removeprefix('torch.')}; compute in float32 "
             f"if you like (the angles must be), but cast the result back with .to(x.dtype)")
    want = ref.apply_rope(x)
    # float64 is held to float32's tolerance: the contract does not ask for more
    rtol, atol = (1.3e-6, 1e-5) if dtype == torch.float64 else (None, None)
    extra = angle_atol(x, None) + (torch.finfo(dtype).eps * float(x.abs().max()) if x.element_size() == 2 else 0)
    assert_close(got, want, what=f"{what} with {name} x", rtol=rtol, atol=atol, atol_extra=extra)


@points(2)
@pytest.mark.parametrize("dtype", DTYPES[:2], ids=lambda d: str(d).removeprefix("torch."))
def test_half_precision_angles(learner, ref, device, gen, dtype):
    """half-precision q/k at positions near 1000 are rotated with float32 angles"""
    x = randn(gen, 2, 2, 8, 64, device=device, dtype=dtype)
    positions = torch.arange(1000, 1008, device=device)
    name = str(dtype).removeprefix("torch.")
    what = f"{call(x, positions)} with {name} x"
    got = rope(learner, x, positions, what=what)
    want = ref.apply_rope(x, positions)  # computed in float32, rounded once to the input's dtype
    if got.dtype == want.dtype and got.device == want.device:
        err = (got.double() - want.double()).abs().max()
        if err > 0.1:
            fail(f"{what} is off by up to {float(err):.3g}: near position 1000 a {name} angle is only "
                 f"accurate to about {1000 * torch.finfo(dtype).eps:.3g} rad. Build positions, angles, cos "
                 "and sin in float32 (x.float()), rotate, and cast back to x's dtype once at the end")
    # the learner may round at other steps than the reference (HF's native path rounds cos, sin
    # and each product): allow one ulp of the input's largest value on top of the dtype's tolerance
    assert_close(got, want, what=what,
                 atol_extra=torch.finfo(dtype).eps * float(x.abs().max()) + angle_atol(x, positions))


@points(1)
def test_keeps_input_device(learner, ref, device, gen):
    """apply_rope works on x's device, with no hard-coded .cuda() or device="cuda\""""
    x = randn(gen, 1, 2, 5, 8, device=device)
    got = rope(learner, x, what=call(x))  # default positions: made by your code, on x's device
    assert_close(got, ref.apply_rope(x), what=call(x), atol_extra=angle_atol(x, None))
    positions = torch.arange(3, 8, device=device)
    got = rope(learner, x, positions, what=call(x, positions))
    assert_close(got, ref.apply_rope(x, positions), what=call(x, positions), atol_extra=angle_atol(x, positions))


# -- bad arguments ----------------------------------------------------------------------------

BAD = {
    "odd-d": ("apply_rope(x [1, 2, 4, 5])", lambda m: m.apply_rope(torch.zeros(1, 2, 4, 5))),
    "odd-head-dim": ("rope_angles(arange(4), 7)", lambda m: m.rope_angles(torch.arange(4), 7)),
    "positions-too-long": ("apply_rope(x [2, 4, 8], positions of length 5)",
                           lambda m: m.apply_rope(torch.zeros(2, 4, 8), torch.arange(5))),
    "positions-too-short": ("apply_rope(x [2, 4, 8], positions of length 3)",
                            lambda m: m.apply_rope(torch.zeros(2, 4, 8), torch.arange(3))),
}


@points(1)
@pytest.mark.parametrize("bad", list(BAD))
def test_bad_arguments(learner, bad):
    """an odd head width, or positions not of length L, raise ValueError"""
    what, make = BAD[bad]
    expect_error(lambda: make(learner), "ValueError", what)


@points(1)
def test_efficiency(learner, ref, gen):
    """runs within 20x of the reference's time on a long sequence"""
    small = torch.randn(1, 2, 5, 8, generator=gen)
    assert_close(learner.apply_rope(small), ref.apply_rope(small), what="apply_rope(x [1, 2, 5, 8]) (the large input is timed only once a small one is right)")
    x = torch.randn(1, 1, 4096, 32, generator=gen)
    assert_fast(learner, "apply_rope(x [1, 1, 4096, 32])", attr="apply_rope", args=(x,))
