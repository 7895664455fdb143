"""The HTML report (`posgrade check --html PATH`, posgrade.reporting.html): its PNG heatmaps decoded
back here with zlib and struct, the page rendered from hand-built results (autoescaping, the
named mistake, three heatmaps per figure), the real command in a child process on a workspace
with a wrong sinusoidal.py, and that page rendered by headless Chromium and its screenshot
decoded to prove the heatmaps are drawn."""

import base64
import os
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import WRONG, make_workspace

from posgrade.reporting import formats, html as htmlreport
from posgrade.cli import main
from posgrade.results import CaseResult, ExerciseResult, RunResult

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")


# -- a PNG decoder (8-bit RGB or RGBA, any of the five filter types, several IDAT chunks) --------

def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def decode_png(data):
    """uint8 array [height, width, channels] of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF, f"bad CRC in {tag!r}"
        pos += 12 + length
        if tag == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat += body
        elif tag == b"IEND":
            break
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, f"unsupported PNG {header}"
    bpp = 3 if colour_type == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(idat)
    assert len(raw) == height * (stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int64)
        if kind == 0:  # None
            row = line
        elif kind == 1:  # Sub: a running sum per channel
            row = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            row = (line + prior) % 256
        elif kind in (3, 4):  # Average, Paeth: each byte needs the one just reconstructed
            row, up = [0] * stride, prior.tolist()
            for i, f in enumerate(line.tolist()):
                a = row[i - bpp] if i >= bpp else 0
                pred = (a + up[i]) // 2 if kind == 3 else _paeth(a, up[i], up[i - bpp] if i >= bpp else 0)
                row[i] = (f + pred) & 0xFF
            row = np.array(row, dtype=np.int64)
        else:
            raise AssertionError(f"unknown PNG filter type {kind} in row {y}")
        out[y], prior = row, row
    return out.reshape(height, width, bpp)


class Images(HTMLParser):
    """Every <img>, <script>, <link> and every src/href of a page."""

    def __init__(self, text):
        super().__init__()
        self.imgs, self.scripts, self.links = [], 0, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs)
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            if attrs.get(name) is not None:
                self.links.append(attrs[name])

    def heatmaps(self, case=None):
        return [i for i in self.imgs if "heatmap" in (i.get("class") or "").split()
                and (case is None or i.get("data-case") == case)]


def image_of(img):
    prefix = "data:image/png;base64,"
    assert img["src"].startswith(prefix)
    return decode_png(base64.b64decode(img["src"][len(prefix):]))


def assert_offline(text):
    page = Images(text)
    assert page.scripts == 0, "the report needs no JavaScript"
    assert all(link.startswith(("data:", "#")) for link in page.links), [link[:60] for link in page.links]
    assert "url(" not in text and "@import" not in text
    return page


# -- the PNG encoder and the colour map ---------------------------------------------------------

def test_png_round_trip_and_colours():
    values = np.array([[1.0, -1.0, 0.0], [np.nan, 0.5, -2.0]])
    rgb = htmlreport.colours(values, 1.0)
    pixels = decode_png(htmlreport.png(rgb))
    assert pixels.shape == (2, 3, 3)
    assert tuple(pixels[0, 0]) == (178, 24, 43)  # +scale: red
    assert tuple(pixels[0, 1]) == (33, 102, 172)  # -scale: blue
    assert tuple(pixels[0, 2]) == (255, 255, 255)  # 0: white
    assert tuple(pixels[1, 0]) == htmlreport.NAN_COLOUR == (0, 0, 0)  # NaN: black
    assert tuple(pixels[1, 1]) == (216, 140, 149)  # halfway from white to red
    assert tuple(pixels[1, 2]) == (33, 102, 172)  # past the scale: clipped
    big = decode_png(htmlreport.png(np.full((70, 300, 3), 7, dtype=np.uint8)))
    assert big.shape == (70, 300, 3) and (big == 7).all()
    with pytest.raises(ValueError):
        htmlreport.png(np.zeros((0, 4, 3), dtype=np.uint8))


@pytest.mark.parametrize("rows, cols", [(1, 1), (1, 64), (64, 1), (3, 4), (16, 8), (64, 64), (50, 33)])
def test_heatmap_sizes_are_readable(rows, cols):
    cw, ch = htmlreport._cell_size(rows, cols)
    assert cw >= 4 and ch >= 4
    assert cols * cw <= 320 and rows * cw <= 320  # square cells, at most 320 px a side
    assert rows * ch >= 24  # a single row is still a visible strip


# -- render() on hand-built results --------------------------------------------------------------

FIG = {"what": "sinusoidal_table(2, 3)", "expected": [[0.0, 1.0, 0.5], [-1.0, 0.0, 2.0]],
       "got": [[1.0, 0.0, 0.5], [None, 0.0, -2.0]]}


def run_result():
    wrong = CaseResult(
        id="sinusoidal::test_row_zero[cpu]", exercise="sinusoidal", name="test_row_zero", title="row 0 is [0, 1, ...]",
        params="cpu", device="cpu", points=1, score=0, status="failed", kind="wrong", mistake="sin_cos_swapped",
        message="row 0: values differ <script>alert('x')</script>\nlooks like: sin and cos swapped — even columns "
                "hold cos\nhint: swap them\nyour code printed:\n  <b>debug</b>", figure=FIG)
    raised = CaseResult(id="sinusoidal::test_bad_arguments[-1-4]", exercise="sinusoidal", name="test_bad_arguments",
                        title="bad arguments raise ValueError", params="-1-4", device="", points=1, score=0,
                        status="failed", kind="exception", message="TypeError: a < b & c")
    ok = CaseResult(id="sinusoidal::test_empty_table", exercise="sinusoidal", name="test_empty_table",
                    title="an empty table", params="", device="", points=1, score=1, status="passed")
    skipped = CaseResult(id="sinusoidal::test_forward_values[cuda]", exercise="sinusoidal", name="test_forward_values",
                         title="forward adds the table", params="cuda", device="cuda", points=1, score=0,
                         status="skipped", message="no CUDA device")
    ex = ExerciseResult("sinusoidal", "Sinusoidal <absolute> encoding", 10, 1, 3, [wrong, raised, ok, skipped])
    return RunResult(workspace="/tmp/w<s>", seed=7, devices=["cpu"], exercises=[ex],
                     started="2025-01-02T03:04:05+00:00", seconds=1.5, versions={"posgrade": "9.9.9"},
                     notes=["cuda: skipped, no CUDA device"])


def test_render_escapes_names_the_mistake_and_draws_three_heatmaps():
    html = htmlreport.render(run_result())
    page = assert_offline(html)
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "<script>" not in html and "&lt;script&gt;alert(" in html  # the learner's text, escaped
    assert "<b>debug</b>" not in html and "&lt;b&gt;debug&lt;/b&gt;" in html
    assert "a &lt; b &amp; c" in html and "/tmp/w&lt;s&gt;" in html and "Sinusoidal &lt;absolute&gt;" in html
    assert "sin_cos_swapped" in html and '<mark class="mistake">looks like: sin and cos swapped' in html
    for text in ("posgrade 9.9.9", "seed 7", "cpu", "2025-01-02T03:04:05+00:00", "3.3", "/ 10", "1 / 3"):
        assert text in html, text
    assert "3.33" not in html  # 10 * 1/3 is rounded to one decimal, as the terminal rounds it
    assert "Known mistake: <b>sin and cos swapped</b>" in html  # the mistake's title, not its id
    maps = page.heatmaps("sinusoidal::test_row_zero[cpu]")
    assert [m["data-kind"] for m in maps] == ["expected", "got", "diff"]
    assert page.heatmaps("sinusoidal::test_bad_arguments[-1-4]") == []
    assert len(page.heatmaps()) == 3
    assert "<details>" in html and "an empty table" in html and "no CUDA device" in html

    want, got, diff = (image_of(m) for m in maps)
    assert want.shape == got.shape == diff.shape == (2, 3, 3)
    # expected and yours share the scale 2: a 1 is halfway to red, a 2 full red, -2 full blue
    assert tuple(want[0, 1]) == tuple(got[0, 0]) == (216, 140, 149)
    assert tuple(want[1, 2]) == (178, 24, 43) and tuple(got[1, 2]) == (33, 102, 172)
    assert tuple(got[1, 0]) == (0, 0, 0)  # None (NaN) is black, and so is its difference
    assert tuple(diff[1, 0]) == (0, 0, 0)
    # the difference, yours - expected, on its own scale 4: [[1, -1, 0], [nan, 0, -4]]
    assert tuple(diff[1, 2]) == (33, 102, 172) and tuple(diff[0, 2]) == (255, 255, 255)
    for m in maps:  # drawn pixelated, a cell at least 4 px, at most 320 px wide
        assert int(m["width"]) <= 320 and int(m["width"]) // 3 >= 4 and int(m["height"]) >= 24
    assert "image-rendering: pixelated" in html
    assert "NaN or ±inf: 1 cell" in html and "−4" in html and "+2" in html


def test_render_of_a_grader_error_and_of_a_clean_run():
    error = RunResult(workspace="/w", seed=1, devices=[], error="internal error in the grader: boom\n\nTraceback ...",
                      exercises=[ExerciseResult("sinusoidal", "Sinusoidal", 10, 0, 0)])
    html = htmlreport.render(error)
    assert_offline(html)
    assert "Grading failed" in html and "internal error in the grader: boom" in html and "Traceback" in html
    clean = run_result()
    ex = clean.exercises[0]
    ex.cases = [c for c in ex.cases if c.status != "failed"]
    ex.earned = ex.graded = 1
    html = htmlreport.render(clean)
    assert "Passed" in html and Images(html).heatmaps() == []


def test_html_is_a_file_format():
    assert "html" in formats.FORMATS and formats.DEFAULT_OUTPUTS["html"] == "posgrade-report.html"
    assert formats.render("html", run_result()).startswith("<!doctype html>")
    assert "html" in formats.__doc__


def test_cli_html_path_is_checked_like_json(tmp_path):
    r = CliRunner().invoke(main, ["check", "sinusoidal", "--html", str(tmp_path)], env={"POSGRADE_WORKSPACE": None})
    assert r.exit_code == 2 and f"--html {tmp_path} is a folder" in r.output
    r = CliRunner().invoke(main, ["check", "sinusoidal", "--html", str(tmp_path / "nope" / "r.html")],
                           env={"POSGRADE_WORKSPACE": None})
    assert r.exit_code == 2 and "--html" in r.output and "does not exist" in r.output
    same = str(tmp_path / "r.html")
    r = CliRunner().invoke(main, ["check", "--html", same, "--format", "html", "--output", same])
    assert r.exit_code == 2 and "would both write" in r.output


def test_cli_format_html_writes_an_error_page_for_a_missing_workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["check", "sinusoidal", "--workspace", "missing", "--format", "html"],
                           env={"POSGRADE_WORKSPACE": None})
    assert r.exit_code == 2
    html = (tmp_path / formats.DEFAULT_OUTPUTS["html"]).read_text(encoding="utf-8")
    assert "Grading failed" in html and "posgrade init" in html


# -- the real command, then Chromium --------------------------------------------------------------

@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """`posgrade check sinusoidal --html OUT.html` on a workspace whose sinusoidal.py swaps sin and cos."""
    tmp = tmp_path_factory.mktemp("html")
    ws = make_workspace(tmp / "ws", {"sinusoidal": WRONG / "sinusoidal" / "sin_cos_swapped.py"})
    out = tmp / "OUT.html"
    env = {k: v for k, v in os.environ.items() if k != "POSGRADE_WORKSPACE"}
    p = subprocess.run([sys.executable, "-m", "posgrade", "check", "sinusoidal", "--workspace", str(ws), "--seed", "1",
                        "--html", str(out)], capture_output=True, text=True, env=env, timeout=300)
    return p, out


def test_check_html_end_to_end(report):
    p, out = report
    assert p.returncode == 1, p.stdout + p.stderr
    assert out.is_file()
    html = out.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html
    page = assert_offline(html)
    maps = page.heatmaps()
    assert len(maps) >= 3 and {m["data-kind"] for m in maps} == {"expected", "got", "diff"}
    per_case = {}
    for m in maps:
        per_case.setdefault(m["data-case"], []).append(m["data-kind"])
    assert all(kinds == ["expected", "got", "diff"] for kinds in per_case.values()), per_case
    assert "sinusoidal::test_row_zero" in per_case
    assert "sin_cos_swapped" in html and "seed 1" in html
    for m in maps:
        img = image_of(m)
        assert img.shape[0] * img.shape[1] >= 1 and int(m["width"]) <= 320


def test_check_html_screenshot_in_chromium(request, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing on CI: .ci/run installs Debian's chromium (apt-get install chromium) "
                        "for this screenshot test of the HTML report")
        pytest.skip("no chromium here (/usr/bin/chromium): the HTML report's screenshot test needs it "
                    "(apt-get install chromium)")
    p, out = request.getfixturevalue("report")  # only now: a skip should not grade first
    assert out.is_file(), p.stdout + p.stderr
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600", f"--screenshot={shot}",
           out.resolve().as_uri()]
    c = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert shot.is_file(), f"chromium exited {c.returncode} without a screenshot:\n{c.stderr[-3000:]}"
    pixels = decode_png(shot.read_bytes())[..., :3].astype(int)
    assert pixels.shape[:2] == (1600, 1200)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    red = int(((r > 140) & (g < 90) & (b < 100) & (r - b > 80)).sum())
    blue = int(((b > 130) & (r < 90) & (b - r > 80)).sum())
    # the legends' colour bars hold a few hundred such pixels; the heatmaps of the first cases many thousands
    assert red > 3000 and blue > 3000, (red, blue)
