"""Comparing a learner's result with the reference, and saying what differs.

`assert_close` checks, in this order: it is a tensor, its shape, dtype, device, NaN/inf,
then values; the first check that fails raises CaseFailure with an explanation a learner
can act on. Tolerances come from TOLERANCES, one table keyed by dtype and device type.
"""

import torch

# (rtol, atol) for outputs of magnitude about 1, keyed by (dtype, device type).
# float32 CPU: torch.testing's defaults. CUDA runs with TF32 off (the grader sets that in
# both processes), so CUDA float32 only differs from the CPU by its sin/exp/reduction order.
# Half precision: the learner may round at other steps than the reference (computing x + pe
# in float32 then casting, say), which moves a result by up to an ulp of the operands
# (2^-8 for bfloat16, 2^-11 for float16) even where the result itself is small.
TOLERANCES = {
    (torch.float64, "cpu"): (1e-7, 1e-9),
    (torch.float64, "cuda"): (1e-7, 1e-9),
    (torch.float32, "cpu"): (1.3e-6, 1e-5),
    (torch.float32, "cuda"): (1e-5, 1e-5),
    (torch.bfloat16, "cpu"): (1.6e-2, 1e-2),
    (torch.bfloat16, "cuda"): (1.6e-2, 1e-2),
    (torch.float16, "cpu"): (1e-3, 1e-3),
    (torch.float16, "cuda"): (1e-3, 1e-3),
}


class CaseFailure(AssertionError):
    """A case failed for a reason the message explains; the report shows only the message.

    A value mismatch also carries `figure` = (what, got, want), the two tensors compared (for
    the HTML report's heatmaps); other failures carry None."""

    figure = None


def tensors(obj):
    """Every tensor in obj (nested lists, tuples and dicts), in order."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from tensors(o)


def expected_devices(args, kwargs):
    """The device types a call's result belongs on: those of its tensors and of its `device=`
    argument; the CPU when it has neither."""
    found = {t.device.type for t in tensors([args, kwargs])}
    device = kwargs.get("device")
    if device is not None:
        found.add(torch.device(device).type)
    return found or {"cpu"}


def tolerance(dtype, device_type):
    return TOLERANCES.get((dtype, device_type), TOLERANCES[(torch.float32, "cpu")])


def fail(message):
    raise CaseFailure(message)


def _fmt(v):
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v: .6g}"


def _index(flat_idx, shape):
    idx = []
    for s in reversed(shape):
        idx.append(flat_idx % s)
        flat_idx //= s
    return "[" + ", ".join(str(i) for i in reversed(idx)) + "]"


def check_tensor(got, what):
    if not isinstance(got, torch.Tensor):
        fail(f"{what} returned {_describe(got)}, expected a torch.Tensor")


def _describe(obj):
    if obj is None:
        return "None (is a `return` missing?)"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return str(obj) if hasattr(obj, "repr") else f"a {type(obj).__name__}"


def assert_close(got, want, what="the result", rtol=None, atol=None, atol_extra=0.0, check_dtype=True):
    """Raise CaseFailure unless got matches want (a reference tensor) within tolerance.

    atol_extra widens atol, e.g. by 1e-7 * max_position where float32 angles lose precision.
    """
    check_tensor(got, what)
    if got.shape != want.shape:
        msg = f"{what} has shape {list(got.shape)}, expected {list(want.shape)}"
        if got.dim() == want.dim() >= 2 and list(got.shape) == list(want.shape)[::-1]:
            msg += " (the transpose of the expected shape)"
        fail(msg + _beyond(got, want, what, "broadcast to", rtol, atol, atol_extra, check_dtype))
    if check_dtype and got.dtype != want.dtype:
        fail(f"{what} has dtype {got.dtype}, expected {want.dtype}" +
             _beyond(got, want, what, "cast to", rtol, atol, atol_extra, check_dtype))
    if got.device.type != want.device.type:
        fail(f"{what} is on {got.device}, expected it on {want.device}: create tensors on the "
             f"input's device (x.device), not a fixed one" +
             _beyond(got, want, what, "moved to", rtol, atol, atol_extra, check_dtype))
    if got.numel() == 0:
        return
    if got.dtype == torch.bool or not (got.is_floating_point() or got.is_complex()):
        bad = got.cpu() != want.cpu()
        if bad.any():
            _fail_values(got, want, bad, what, "values differ", pattern=describe_index(got.cpu(), want.cpu()))
        return
    g, w = got.detach().cpu().to(torch.complex128 if got.is_complex() else torch.float64), \
        want.detach().cpu().to(torch.complex128 if want.is_complex() else torch.float64)
    g_nonfinite = ~torch.isfinite(g)
    w_nonfinite = ~torch.isfinite(w)
    if (g_nonfinite & ~w_nonfinite).any():
        nan = int(torch.isnan(g).sum())
        inf = int(torch.isinf(g).sum())
        first = _index(int(torch.nonzero((g_nonfinite & ~w_nonfinite).flatten())[0]), g.shape)
        fail(f"{what} contains {nan} NaN and {inf} inf values (first at {first}) where the expected "
             f"values are finite")
    base_rtol, base_atol = tolerance(want.dtype, want.device.type)
    rtol = base_rtol if rtol is None else rtol
    atol = (base_atol if atol is None else atol) + atol_extra
    err = (g - w).abs()
    err = torch.where(g_nonfinite & w_nonfinite & (g == w), torch.zeros_like(err), err)
    bad = err > atol + rtol * w.abs()
    if bad.any():
        pattern = "" if got.is_complex() else describe_difference(g, w, rtol, atol)
        _fail_values(g, w, bad, what, f"values differ (rtol {rtol:.2g}, atol {atol:.2g})", err, pattern)


def coerce(got, want):
    """got cast to want's dtype and broadcast to want's shape, where that is possible (a float mask
    read as bool: nonzero = True); None where it is not. The values behind a dtype or shape failure."""
    if not (isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor)):
        return None
    try:
        if got.dtype != want.dtype:
            if want.dtype == torch.bool:
                got = got != 0
            elif got.is_complex() and not want.is_complex():
                return None
            else:
                got = got.to(want.dtype)
        if got.shape != want.shape:
            if got.dim() > want.dim() or torch.broadcast_shapes(got.shape, want.shape) != want.shape:
                return None
            got = got.expand(want.shape)
        return got.to(want.device)
    except (RuntimeError, TypeError, ValueError):
        return None


def _beyond(got, want, what, how, rtol, atol, atol_extra, check_dtype):
    """Diagnose through a dtype or shape failure: the value check on got cast (or broadcast) to
    what was expected, as a second finding ("" when got cannot be made comparable)."""
    fixed = coerce(got, want)
    if fixed is None or fixed.numel() == 0:
        return ""
    target = {"cast to": str(want.dtype), "moved to": str(want.device)}.get(how, f"shape {list(want.shape)}")
    try:
        assert_close(fixed, want, what, rtol=rtol, atol=atol, atol_extra=atol_extra, check_dtype=check_dtype)
    except CaseFailure as err:
        body = str(err).split(": ", 1)[-1] if str(err).startswith(what) else str(err)
        return f"\nand once {how} {target}, its values are wrong too: {body}"
    wrong = {"cast to": "dtype", "moved to": "device"}.get(how, "shape")
    return f"\n(once {how} {target}, its values are right: only the {wrong} is wrong)"


def describe_index(got, want):
    """For an index matrix [Lq, Lk] that is a function of the distance key - query (want constant
    along its diagonals, as relative_position_index or T5's buckets): where distance 0 sits, the
    sign and the range of yours against the expected one, in words; "" for anything else."""
    if got.dim() != 2 or got.dtype == torch.bool or want.dtype == torch.bool or got.is_floating_point():
        return ""
    len_q, len_k = want.shape
    if len_q < 2 or len_k < 2 or not torch.equal(want[1:, 1:], want[:-1, :-1]):
        return ""
    parts = []
    off = len_k - len_q  # query i sits at position off + i
    if 0 <= off < len_k:
        rows = torch.arange(min(len_q, len_k - off))
        diag, want0 = got[rows, rows + off], int(want[0, off])
        if not bool((diag == want0).all()):
            top_left = got[rows, rows] if off else None
            if top_left is not None and bool((top_left == want0).all()):
                parts.append(f"distance 0 sits at key i for query i (queries placed at 0..Lq-1) instead of "
                             f"at key {off} + i")
            elif bool((diag == diag[0]).all()):
                parts.append(f"distance 0 (query i with key {off} + i) gets index {int(diag[0])} instead of {want0}")
    step_w = int(torch.sign(want[:, 1:] - want[:, :-1]).sum())
    step_g = int(torch.sign(got[:, 1:] - got[:, :-1]).sum())
    if step_w > 0 > step_g:
        parts.append("the sign is mirrored: yours fall as the key moves right, the expected ones rise")
    gmin, gmax, wmin, wmax = int(got.min()), int(got.max()), int(want.min()), int(want.max())
    if (gmin, gmax) != (wmin, wmax):
        parts.append(f"values run {gmin}..{gmax} instead of {wmin}..{wmax}")
    return "; ".join(parts)


def describe_difference(got, want, rtol, atol):
    """What a value mismatch looks like, in general terms, where that is cheap to see; "" if
    no simple pattern fits. got and want are float64 tensors of the same shape."""

    def close(a, b):
        return a.shape == b.shape and a.numel() > 0 and bool(((a - b).abs() <= atol + rtol * b.abs()).all())

    if not torch.isfinite(want).all():
        return ""
    if got.dim() >= 2 and got.shape[-1] == got.shape[-2] > 1 and close(got.transpose(-1, -2), want):
        return "it is the transpose of the expected result (rows and columns swapped)"
    scale = float((got * want).sum() / (want * want).sum()) if (want * want).sum() > 0 else 0.0
    if close(got, scale * want) and abs(scale - 1) > 1e-3 and scale != 0:
        if abs(scale + 1) < 1e-3:
            return "every value has the opposite sign"
        return f"every value is {scale:.4g} times the expected one (a missing or extra factor?)"
    if got.dim() >= 2 and got.shape[-2] > 2:
        if close(got[..., 1:, :], want[..., :-1, :]):
            return "the rows are shifted one position down: row p holds what row p-1 should (off by one?)"
        if close(got[..., :-1, :], want[..., 1:, :]):
            return "the rows are shifted one position up: row p holds what row p+1 should (off by one?)"
    if got.dim() >= 1 and got.shape[-1] >= 2 and got.shape[-1] % 2 == 0:
        if close(got[..., 0::2], want[..., 1::2]) and close(got[..., 1::2], want[..., 0::2]):
            return "the even and odd columns are swapped"
    bad = (got - want).abs() > atol + rtol * want.abs()
    if got.dim() >= 2:
        cols = bad.reshape(-1, got.shape[-1]).any(0)
        if 0 < int(cols.sum()) <= got.shape[-1] // 2:
            idx = torch.nonzero(cols).flatten().tolist()
            return f"only {_some(idx)} of the {got.shape[-1]} columns differ"
        rows = bad.movedim(-2, 0).reshape(got.shape[-2], -1).any(1)
        if 0 < int(rows.sum()) <= got.shape[-2] // 2:
            idx = torch.nonzero(rows).flatten().tolist()
            return f"only row{'s' if len(idx) > 1 else ''} {_some(idx)} of the {got.shape[-2]} differ"
        if got.shape[-2] >= 8:
            per_row = (got - want).abs().movedim(-2, 0).reshape(got.shape[-2], -1).amax(1)
            quarter = got.shape[-2] // 4
            first, last = float(per_row[:quarter].mean()), float(per_row[-quarter:].mean())
            if last > 10 * max(first, atol):
                return ("the error grows with position (last rows off by about "
                        f"{last:.2g}, first rows by {first:.2g}): precision lost in large angles?")
    return ""


def _some(idx):
    text = ", ".join(str(i) for i in idx[:6])
    return text + (", ..." if len(idx) > 6 else "")


def _fail_values(got, want, bad, what, headline, err=None, pattern=""):
    shape = list(got.shape)
    n_bad, n = int(bad.sum()), bad.numel()
    lines = [f"{what}: {headline}; {n_bad} of {n} elements ({100 * n_bad / n:.0f}%) are off"]
    if pattern:
        lines.append(f"looks like: {pattern}")
    flat_g, flat_w = got.flatten(), want.flatten()
    if err is not None:
        worst = int(torch.argmax(torch.nan_to_num(err.flatten(), nan=float("inf"))))
        lines.append(f"max abs error {float(err.flatten()[worst]):.3g} at {_index(worst, shape)}")
        picks = [worst]
    else:
        picks = []
    for i in torch.nonzero(bad.flatten()).flatten()[:3].tolist():
        if i not in picks:
            picks.append(i)
    lines.append("  index              yours       expected")
    for i in sorted(picks):
        gi, wi = flat_g[i].item(), flat_w[i].item()
        lines.append(f"  {_index(i, shape):<16} {_fmt(gi):>10}  {_fmt(wi):>12}")
    failure = CaseFailure("\n".join(lines))
    failure.figure = (what, got, want)
    raise failure


FIGURE_CELLS = 64  # the most rows and columns a figure keeps (every k-th one past that)


def figure_slices(what, got, want, cells=FIGURE_CELLS):
    """{"what", "expected", "got"}: 2-D lists of floats for a heatmap (None for NaN/inf).

    A tensor of 3 or more dims shows its last two at index 0 of the others ([0, 0, :, :]),
    a 1-D one is a single row, a complex one its real part; past `cells` rows or columns
    every k-th is kept. "what" says which slice it is."""

    def plane(t):
        t = t.detach().cpu()
        t = t.real if t.is_complex() else t
        t = t.to(torch.float64)
        if t.dim() == 0:
            t = t.reshape(1, 1)
        elif t.dim() == 1:
            t = t.reshape(1, -1)
        lead = t.dim() - 2
        t = t[(0,) * lead] if lead else t
        r, c = max(1, -(-t.shape[0] // cells)), max(1, -(-t.shape[1] // cells))
        return t[::r, ::c], (r, c)

    g, step = plane(got)
    w, _ = plane(want)
    label = what
    if got.dim() > 2:
        label += f" [{', '.join(['0'] * (got.dim() - 2))}, :, :]"
    sampled = [f"one {name} in {k}" for name, k in zip(("row", "column"), step) if k > 1]
    if sampled:
        label += f" ({', '.join(sampled)})"

    def rows(t):
        return [[float(f"{v:.5g}") if v == v and abs(v) != float("inf") else None for v in row]
                for row in t.tolist()]

    return {"what": label, "expected": rows(w), "got": rows(g)}


def assert_equal(got, want, what):
    """Plain values (ints, tuples, strings) must be equal."""
    if got != want:
        fail(f"{what} is {got!r}, expected {want!r}")
