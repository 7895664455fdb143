"""The HTML report of `posgrade check --html PATH` (and `--format html`): one self-contained page.

The page needs nothing from the network: its CSS is inline and its pictures are PNG data URIs
that this module encodes itself (zlib + struct, no imaging library). A failed value comparison
that carries a figure (CaseResult.figure, 2-D slices from posgrade.diagnosis.compare.figure_slices) is
drawn as three heatmaps side by side: the expected values, the learner's, and the difference
(yours - expected). All three use a blue-white-red colour map symmetric around 0; expected and
yours share one scale so their colours compare directly, the difference has its own; NaN and
±inf cells (None in the figure) are black. The layout is templates/report.html.j2, autoescaped:
messages and case names can hold anything a learner's code printed.
"""

import base64
import datetime
import struct
import zlib

import numpy as np

# blue-white-red, the end colours of ColorBrewer's RdBu
BLUE = np.array([33, 102, 172], dtype=np.float64)
WHITE = np.array([255, 255, 255], dtype=np.float64)
RED = np.array([178, 24, 43], dtype=np.float64)
NAN_COLOUR = (0, 0, 0)  # black: NaN or ±inf
MAX_PX = 320  # the widest (and tallest) a heatmap is drawn, in CSS pixels
MIN_CELL, MAX_CELL = 4, 32  # CSS pixels a side of one cell
MIN_HEIGHT = 24  # a one-row figure is drawn at least this tall


# -- PNG --------------------------------------------------------------------------------------

def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png(rgb):
    """The bytes of an 8-bit RGB PNG of rgb, a uint8 array [height, width, 3] (one pixel a cell)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"png() wants a non-empty [height, width, 3] array, got shape {rgb.shape}")
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour, no interlace
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + \
        _chunk(b"IEND", b"")


def data_uri(png_bytes):
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


# -- colours ----------------------------------------------------------------------------------

def to_array(rows):
    """A float64 array [rows, columns] from a figure's 2-D list (None -> NaN); None when the rows
    are ragged or empty."""
    try:
        a = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if a.ndim != 2 or a.size == 0:
        return None
    a[~np.isfinite(a)] = np.nan
    return a


def colours(values, scale):
    """uint8 [rows, columns, 3]: blue (-scale) through white (0) to red (+scale), clipped past
    the scale; NaN cells NAN_COLOUR."""
    scale = scale if scale > 0 else 1.0
    t = np.clip(np.nan_to_num(values / scale, nan=0.0), -1.0, 1.0)[..., None]
    rgb = np.where(t >= 0, WHITE + t * (RED - WHITE), WHITE - t * (BLUE - WHITE))
    rgb = np.rint(rgb).astype(np.uint8)
    rgb[np.isnan(values)] = NAN_COLOUR
    return rgb


def _scale(*arrays):
    """The largest magnitude in arrays (NaN left out), 0.0 when there is none."""
    finite = [np.abs(a[~np.isnan(a)]) for a in arrays]
    return max((float(f.max()) for f in finite if f.size), default=0.0)


def _fmt(x):
    return f"{x:.4g}".replace("-", "\u2212") if x is not None else "–"


def _cell_size(rows, cols):
    """(cell width, cell height) in CSS pixels: square cells of 4..32 px, the picture at most
    MAX_PX a side, and a few rows at least MIN_HEIGHT tall."""
    cell = max(MIN_CELL, min(MAX_CELL, MAX_PX // max(rows, cols)))
    return cell, max(cell, -(-MIN_HEIGHT // rows))


_LEGEND = None


def legend_bar():
    """The colour bar of every legend: -1 .. +1 across 65 columns."""
    global _LEGEND
    if _LEGEND is None:
        _LEGEND = data_uri(png(colours(np.linspace(-1.0, 1.0, 65)[None, :], 1.0)))
    return _LEGEND


def _heatmap(kind, caption, values, scale, case_id, shared):
    rows, cols = values.shape
    cw, ch = _cell_size(rows, cols)
    finite = values[~np.isnan(values)]
    nans = int(np.isnan(values).sum())
    return {
        "kind": kind, "caption": caption, "case": case_id, "src": data_uri(png(colours(values, scale))),
        "width": cols * cw, "height": rows * ch, "rows": rows, "cols": cols,
        "scale": _fmt(scale), "min": _fmt(float(finite.min()) if finite.size else None),
        "max": _fmt(float(finite.max()) if finite.size else None), "nans": nans, "shared": shared,
    }


def heatmaps(case):
    """The case's figure as heatmaps: ([expected, yours, difference], note), each a dict the
    template draws; ([], note) when there is no figure or it cannot be drawn."""
    fig = case.figure
    if not fig:
        return [], ""
    want, got = to_array(fig.get("expected") or []), to_array(fig.get("got") or [])
    if want is None or got is None:
        return [], "The values could not be drawn (an empty or ragged slice)."
    shared = _scale(want, got)
    maps = [_heatmap("expected", "expected", want, shared, case.id, True),
            _heatmap("got", "yours", got, shared, case.id, True)]
    if want.shape != got.shape:
        return maps, (f"No difference map: yours is {got.shape[0]}×{got.shape[1]}, "
                      f"expected {want.shape[0]}×{want.shape[1]}.")
    with np.errstate(over="ignore", invalid="ignore"):
        diff = got - want
    diff[~np.isfinite(diff)] = np.nan  # an overflow is drawn as ±inf is: black
    maps.append(_heatmap("diff", "difference (yours − expected)", diff, _scale(diff), case.id, False))
    return maps, ""


# -- the page ---------------------------------------------------------------------------------

def _failure(case):
    from posgrade.reporting.common import split_output

    explanation, printed = split_output(case.message)
    maps, note = heatmaps(case)
    lines = [{"text": ln, "mistake": ln.startswith("looks like:")} for ln in explanation.splitlines()]
    return {"case": case, "lines": lines, "printed": printed, "maps": maps, "note": note,
            "what": (case.figure or {}).get("what", ""), "mistake_title": mistake_title(case)}


def mistake_title(case):
    """The known mistake's title, as a tutor would say it ("sin and cos swapped"), not its id."""
    if not case.mistake:
        return ""
    from posgrade.diagnosis import mistakes

    try:
        return mistakes.get(case.exercise, case.mistake).title
    except (KeyError, ImportError):
        return case.mistake.replace("_", " ")


def _exercise(ex):
    graded = [c for c in ex.cases if c.status != "skipped"]
    return {"ex": ex, "graded": len(graded), "passed": sum(c.status == "passed" for c in graded),
            "skipped": len(ex.cases) - len(graded), "failures": [_failure(c) for c in ex.failures],
            "others": [c for c in ex.cases if c.status != "failed"]}


def render(result):
    """The report page of result, a RunResult, as one self-contained HTML document."""
    from posgrade.reporting import common as formats
    from posgrade.reporting.common import environment

    made = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return environment(autoescape=True, strict=True).get_template("report.html.j2").render(
        r=result, summary=formats.summary(result), reveal_notes=formats.reveal_notes(result),
        exercises=[_exercise(ex) for ex in result.exercises], started=result.started or made,
        legend=legend_bar(), nan_colour="rgb(%d, %d, %d)" % NAN_COLOUR,
        failed=sum(len(ex.failures) for ex in result.exercises))
