"""Notebooks as workspaces: <name>.ipynb graded like <name>.py, `posgrade init --notebook`, and the
%posgrade magic in a real Jupyter kernel (nbclient), with its report rendered by nbconvert and
screenshot in headless Chromium."""

import ast
import json
import os
import shutil
import subprocess
import sys

import nbformat
import pytest
from click.testing import CliRunner
from conftest import ROOT, WRONG, make_workspace
from nbformat import v4

from posgrade.cli import main
from posgrade.kit import catalog, notebooks, state

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SKIP = {"tags": ["skip-grading"]}


def posgrade(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "POSGRADE_WORKSPACE"}
    return subprocess.run([sys.executable, "-m", "posgrade", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def notebook_of(*cells):
    """A notebook of code cells: each a source string, or (source, metadata)."""
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell(c) if isinstance(c, str) else v4.new_code_cell(c[0], metadata=c[1]) for c in cells]
    return nb


def write(nb, path):
    nbformat.write(nb, str(path))
    return path


# -- building a module from a notebook (the grader never runs it) ----------------------------------

def test_build_drops_ipython_lines_and_skip_tagged_cells(tmp_path):
    nb = notebook_of(
        "import math\n%matplotlib inline\n!pip install nothing",
        ("raise RuntimeError('a scratch cell tagged skip-grading')", SKIP),
        "%%timeit\nthis is not python at all",
        "def f(n):\n    for i in range(n):\n        %time i\n    files = !ls\n    return math.sqrt(n)\nf?",
    )
    built = notebooks.build(write(nb, tmp_path / "f.ipynb"))
    namespace = {}
    exec(compile(built.source, "f.py", "exec"), namespace)  # valid Python, and nothing raised
    assert namespace["f"](9) == 3.0
    assert "RuntimeError" not in built.source and "not python" not in built.source
    assert built.skipped == [2]
    said = "\n".join(built.notes)
    for line in ("%matplotlib inline", "!pip install nothing", "%%timeit", "%time i", "files = !ls", "f?"):
        assert line in said, (line, said)
    assert "f.ipynb cell 4, line 3" in said  # where: the cell and the line in it


def test_an_unreadable_notebook_explains_itself(tmp_path):
    (tmp_path / "rope.ipynb").write_text("{ this is not json")
    text = notebooks.module_text(tmp_path / "rope.ipynb")
    with pytest.raises(ImportError, match="rope.ipynb could not be read as a notebook"):
        exec(compile(text, "rope.py", "exec"), {})


# -- posgrade init --notebook ---------------------------------------------------------------

def test_init_notebook_writes_one_notebook_per_exercise(tmp_path):
    ws = tmp_path / "nb"
    r = CliRunner().invoke(main, ["init", str(ws), "--notebook"], env={"POSGRADE_WORKSPACE": None})
    assert r.exit_code == 0, r.output
    assert "%posgrade check batches" in r.output
    for ex in catalog.EXERCISES:
        assert not (ws / ex.file).exists()
        nb = nbformat.read(str(ws / f"{ex.name}.ipynb"), as_version=4)
        nbformat.validate(nb)
        spec, code = nb.cells[0], [c for c in nb.cells if c.cell_type == "code"]
        stub = (state.kit_dir("exercises") / ex.file).read_text()
        doc = ast.get_docstring(ast.parse(stub))
        assert doc, f"{ex.file} has no module docstring"
        assert spec.cell_type == "markdown" and spec.source.startswith(f"# {doc.splitlines()[0]}\n")
        graded = [c for c in code if "skip-grading" not in c.metadata.get("tags", [])]
        assert [c.source for c in graded] == [stub.rstrip("\n")]  # the stub is the cell to complete
        assert code[0].source.endswith("%load_ext posgrade") and code[-1].source == f"%posgrade check {ex.name}"
        assert "skip-grading" in code[0].metadata["tags"] and "skip-grading" in code[-1].metadata["tags"]
    spec = nbformat.read(str(ws / "sinusoidal.ipynb"), as_version=4).cells[0].source
    assert "$$\nPE_{pos, 2i} = \\sin(pos / base^{2i / \\mathrm{d\\_model}})\n$$" in spec.replace("     ", " ")
    assert "### `def sinusoidal_table`" in spec and "ValueError: if max_len < 0" in spec
    again = CliRunner().invoke(main, ["init", str(ws)], env={"POSGRADE_WORKSPACE": None})
    assert again.exit_code == 2 and "nothing was copied" in again.output  # a notebook counts as the file


def test_reset_of_a_notebook_gives_a_fresh_notebook(tmp_path):
    ws = tmp_path / "nb"
    assert CliRunner().invoke(main, ["init", str(ws), "--notebook"]).exit_code == 0
    r = CliRunner().invoke(main, ["reset", "rope", "--workspace", str(ws)])
    assert r.exit_code == 0 and "fresh stub already" in r.output  # the same cells, other cell ids
    nb = nbformat.read(str(ws / "rope.ipynb"), as_version=4)
    nb.cells[3].source = "def apply_rope(x, positions):\n    return x\n"
    write(nb, ws / "rope.ipynb")
    r = CliRunner().invoke(main, ["reset", "rope", "--workspace", str(ws)])
    assert r.exit_code == 0 and "Backed up your rope.ipynb" in r.output
    (backup,) = (ws / ".posgrade" / "backups").glob("rope-*.ipynb")
    assert "return x" in nbformat.read(str(backup), as_version=4).cells[3].source
    assert "raise NotImplementedError" in nbformat.read(str(ws / "rope.ipynb"), as_version=4).cells[3].source
    assert not (ws / "rope.py").exists()


def test_saved_notebook_grades_like_the_py_file(tmp_path):
    """The same wrong code as a .py file and as notebook cells (with magics around it): the same cases
    fail, the same mistake is named, the same score; the notebook's IPython lines are told in a note."""
    wrong = (WRONG / "sinusoidal" / "sin_cos_swapped.py").read_text()
    py_ws = make_workspace(tmp_path / "py", {"sinusoidal": WRONG / "sinusoidal" / "sin_cos_swapped.py"})
    nb_ws = make_workspace(tmp_path / "nb")
    (nb_ws / "sinusoidal.py").unlink()
    head, _, rest = wrong.partition("\nclass ")
    write(notebook_of(("%load_ext posgrade", SKIP), head + "\n%timeit sinusoidal_table(4, 6)", "class " + rest,
                      "!echo done", ("%posgrade check sinusoidal", SKIP)), nb_ws / "sinusoidal.ipynb")
    results = {}
    for label, ws in (("py", py_ws), ("nb", nb_ws)):
        p = posgrade("check", "sinusoidal", "--workspace", str(ws), "--seed", "5", "--device", "cpu",
                     "--json", str(tmp_path / f"{label}.json"))
        assert p.returncode == 1, p.stdout + p.stderr
        results[label] = (json.loads((tmp_path / f"{label}.json").read_text()), p.stdout)
    (py, _), (nb, text) = results["py"], results["nb"]
    assert nb["score"] == py["score"] < 10
    verdicts = {c["id"]: (c["status"], c["mistake"]) for e in py["exercises"] for c in e["cases"]}
    assert {c["id"]: (c["status"], c["mistake"]) for e in nb["exercises"] for c in e["cases"]} == verdicts
    assert "sin_cos_swapped" in {m for _, m in verdicts.values()}
    assert "looks like: sin and cos swapped" in text
    assert "sinusoidal.ipynb: graded its code cells in order except 2 tagged skip-grading" in text
    assert "IPython line '%timeit sinusoidal_table(4, 6)' left out" in text and "'!echo done'" in text
    assert sorted(p.name for p in nb_ws.iterdir() if p.is_file()) == sorted(
        [e.file for e in catalog.EXERCISES if e.name != "sinusoidal"] + ["sinusoidal.ipynb"])  # nothing written


# -- the magic in a real kernel ----------------------------------------------------------------

def run_notebook(nb, folder, timeout=300):
    """Execute nb in a real IPython kernel (nbclient) with folder as its working directory."""
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def outputs(cell, mime="text/plain"):
    """Everything a cell showed as mime (streams count as text/plain)."""
    parts = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream" and mime == "text/plain":
            parts.append(o.text)
        elif o.output_type in ("display_data", "execute_result"):
            parts.append(o.data.get(mime, ""))
        elif o.output_type == "error":
            parts.append(f"{o.ename}: {o.evalue}")
    return "".join(parts)


def _init_notebook_folder(path):
    r = CliRunner().invoke(main, ["init", str(path), "--notebook"], env={"POSGRADE_WORKSPACE": None})
    assert r.exit_code == 0, r.output
    return path


@pytest.fixture
def folder(tmp_path):
    """A notebook's folder made by `posgrade init --notebook`."""
    return _init_notebook_folder(tmp_path / "nb")


@pytest.fixture(scope="module")
def mistake_run(tmp_path_factory):
    """mistake_notebook() executed once in a real kernel, for the tests that read its outputs (a
    kernel start imports torch: seconds each)."""
    return run_notebook(mistake_notebook(), _init_notebook_folder(tmp_path_factory.mktemp("mistake") / "nb"))


def test_magic_grades_the_kernels_definitions_full_marks(folder):
    solution = (ROOT / "solutions" / "sinusoidal.py").read_text()
    nb = run_notebook(notebook_of(
        "%load_ext posgrade",
        "import torch\nprint('scratch'); 1 / 0",  # a cell that raised: left out of what is graded
        solution,
        "%posgrade check sinusoidal --seed 1",
        "import posgrade.notebook\nreport = posgrade.notebook.check('Sinusoidal', seed=2, display=False)\n"
        "print('function:', report.score, report.max_score, report.passed)",
        "from .rope import apply_rope\nprint('relative import from', apply_rope.__module__)",
    ), folder)
    magic = nb.cells[3]
    text, page = outputs(magic), outputs(magic, "text/html")
    assert "10.0 / 10" in text and "all graded cases passed" in text, text
    assert "this kernel (In[2, 3])" in text, text  # In[2] kept only its `import torch`
    assert page.startswith("<iframe") and "srcdoc=" in page and "posgrade report" in page
    assert "function: 10.0 10 True" in outputs(nb.cells[4])
    assert "relative import from posgrade_notebook_folder.rope" in outputs(nb.cells[5])  # rope.ipynb, beside it


def mistake_notebook():
    return notebook_of("%load_ext posgrade", (WRONG / "sinusoidal" / "sin_cos_swapped.py").read_text(),
                       "%posgrade check sinusoidal --seed 1")


def test_magic_names_a_known_mistake(mistake_run):
    nb = mistake_run
    text, page = outputs(nb.cells[2]), outputs(nb.cells[2], "text/html")
    assert "looks like: sin and cos swapped" in text and "Reproduce: %posgrade check sinusoidal --seed 1" in text
    assert "Known mistake: &lt;b&gt;sin and cos swapped" in page  # the page, escaped into srcdoc
    assert "data:image/png;base64," in page  # the heatmaps travel inside the page


def test_magic_survives_an_infinite_loop(folder):
    loop = "def sinusoidal_table(max_len, d_model, base=10000.0):\n    while True:\n        pass\n"
    nb = run_notebook(notebook_of("%load_ext posgrade", loop, "%posgrade check sinusoidal --timeout 1",
                                  "print('the kernel is alive', 6 * 7)"), folder, timeout=240)
    text = outputs(nb.cells[2])
    assert "took longer than 1 s" in text and "0.0 / 10" in text, text
    assert "the kernel is alive 42" in outputs(nb.cells[3])


def test_notebook_report_screenshot_in_chromium(mistake_run, tmp_path):
    """The executed notebook rendered by nbconvert to HTML, shown by headless Chromium: the report's
    heatmaps (red and blue cells) are on screen, inside the notebook page."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing on CI: .ci/run installs Debian's chromium for the screenshot tests")
        pytest.skip("no chromium here (apt-get install chromium): the notebook report's screenshot test needs it")
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(exclude_input=True).from_notebook_node(mistake_run)
    page = tmp_path / "notebook.html"
    page.write_text(body, encoding="utf-8")
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600", "--virtual-time-budget=5000",
           f"--screenshot={shot}", page.resolve().as_uri()]
    c = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert shot.is_file(), f"chromium exited {c.returncode} without a screenshot:\n{c.stderr[-3000:]}"
    from test_html import decode_png

    pixels = decode_png(shot.read_bytes())[..., :3].astype(int)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    red = int(((r > 140) & (g < 90) & (b < 100) & (r - b > 80)).sum())
    blue = int(((b > 130) & (r < 90) & (b - r > 80)).sum())
    assert red > 3000 and blue > 3000, (red, blue)
