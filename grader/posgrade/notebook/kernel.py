"""Inside a running kernel: the %posgrade magic, check(), and the notebook folder as a package.

The module graded is built from the kernel's own cell history (IPython's raw input history,
In[1], In[2], ...): each cell, IPython lines dropped as kit/notebooks.py drops them, keeps its
top-level imports, defs, classes and constants whose names the kernel still holds (so an import
that failed, or a cell that raised, leaves nothing behind), in the order the kernel ran them: a
name defined twice ends with its latest definition, as in the kernel. Imports of posgrade itself
are left out (learner code may not import the grader).
"""

import argparse
import ast
import html
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from posgrade.kit import catalog, notebooks, state
from posgrade.loop.check import CheckError, exercise

PACKAGE = "posgrade_notebook_folder"  # the notebook's folder as the kernel imports it
FOLDER_KEY = "__posgrade_folder__"  # user_ns: the folder whose other exercises grading uses


# -- the notebook's folder as a package (relative imports in cells) ---------------------------

class _FolderFinder(importlib.abc.MetaPathFinder):
    """PACKAGE.<name> from <name>.py, else from <name>.ipynb (its code cells, as the grader builds
    them), in the notebook's folder."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(PACKAGE + ".") or fullname.count(".") != 1:
            return None
        name = fullname.split(".", 1)[1]
        found = notebooks.exercise_file(self.folder, name)
        if found is None:
            return None
        if found.suffix == ".py":
            return importlib.util.spec_from_file_location(fullname, found)
        return importlib.util.spec_from_loader(fullname, _NotebookLoader(found), origin=str(found))


class _NotebookLoader(importlib.abc.Loader):
    def __init__(self, path):
        self.path = path

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = str(self.path)
        exec(compile(notebooks.module_text(self.path), str(self.path), "exec"), module.__dict__)


def install_package(ipython, folder):
    """Make `from .rope import apply_rope` in a cell import the folder's rope.py or rope.ipynb."""
    import types

    folder = str(Path(folder).resolve())
    for finder in [f for f in sys.meta_path if isinstance(f, _FolderFinder)]:
        sys.meta_path.remove(finder)
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
        del sys.modules[name]  # a reload of the extension picks up edited files
    sys.meta_path.insert(0, _FolderFinder(folder))
    pkg = types.ModuleType(PACKAGE)
    pkg.__path__ = [folder]
    pkg.__spec__ = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
    pkg.__spec__.submodule_search_locations = [folder]
    pkg.__package__ = PACKAGE
    sys.modules[PACKAGE] = pkg
    ipython.user_ns["__package__"] = PACKAGE
    ipython.user_ns[FOLDER_KEY] = folder


# -- the kernel's definitions as a module ------------------------------------------------------

def _bound(alias, from_import):
    if from_import:
        return alias.asname or alias.name
    return alias.asname or alias.name.split(".")[0]


def _kept(node, ns):
    """A top-level statement of a cell that the graded module keeps."""
    if isinstance(node, ast.Import):
        return all(not a.name.startswith("posgrade") and _bound(a, False) in ns for a in node.names)
    if isinstance(node, ast.ImportFrom):
        if node.level == 0 and (node.module or "").startswith("posgrade"):
            return False
        return all(a.name == "*" or _bound(a, True) in ns for a in node.names)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name in ns
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if node.value is None or not all(isinstance(t, ast.Name) and t.id in ns for t in targets):
            return False
        try:
            ast.literal_eval(node.value)
            return True
        except ValueError:
            return all(t.id.isupper() for t in targets)  # a CONSTANT computed from others
    return False


def kernel_source(ipython):
    """(module source, [the In[] numbers it came from]) of the kernel's current definitions."""
    ns = ipython.user_ns
    history = list(ipython.history_manager.input_hist_raw)
    parts, used = [], []
    for number, cell in enumerate(history[1:], 1):
        if not cell.strip() or cell.lstrip().startswith("%%"):
            continue
        code, _ = notebooks.strip_ipython(cell)
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue  # it never defined anything in the kernel either
        lines = code.splitlines()
        keep = []
        for node in tree.body:
            if _kept(node, ns):
                start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                keep.append("\n".join(lines[start - 1 : node.end_lineno]))
        if keep:
            parts.append(f"# %% In[{number}]\n" + "\n".join(keep) + "\n")
            used.append(number)
    return "\n".join(parts), used


# -- grading -------------------------------------------------------------------------------

class Report:
    """A grading's report in a notebook: the HTML page of `--html` (in an iframe, so its styles do
    not leak into the notebook) with the plain-text report as the text fallback."""

    def __init__(self, exercise, text, page=None, result=None, code=2, cells=()):
        self.exercise = exercise
        self.text = text
        self.page = page
        self.result = result  # the RunResult, or None when grading could not start
        self.code = code  # posgrade check's exit code: 0 passed, 1 not, 2 a usage error
        self.cells = list(cells)  # the In[] numbers graded

    @property
    def score(self):
        return self.result.score if self.result else 0.0

    @property
    def max_score(self):
        return self.result.max_score if self.result else catalog.get(self.exercise).points

    @property
    def passed(self):
        return bool(self.result and self.result.passed)

    def _height(self):
        if not self.result:
            return 400
        failures = [c for e in self.result.exercises for c in e.failures][:40]
        return min(6000, 460 + 40 * len(self.result.exercises)
                   + sum(260 + (380 if c.figure else 0) for c in failures))

    def _repr_html_(self):
        if not self.page:
            return f"<pre>{html.escape(self.text)}</pre>"
        return (f'<iframe class="posgrade-report" title="posgrade report: {html.escape(self.exercise)}" '
                f'style="width: 100%; height: {self._height()}px; border: 1px solid #ddd" '
                f'srcdoc="{html.escape(self.page, quote=True)}"></iframe>')

    def __repr__(self):
        return self.text

    def _repr_pretty_(self, p, cycle):
        p.text(self.text)


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = None
    ip = get_ipython() if get_ipython else None
    if ip is None:
        raise RuntimeError("posgrade.notebook.check grades a running IPython kernel's definitions; outside one, "
                           "run `posgrade check NAME --workspace DIR` (it grades .py files and saved notebooks)")
    return ip


def _workspace(folder, ex, source, cells):
    """A temporary workspace: the kernel's module for ex, and the folder's other exercise files
    (the kit's stub where the folder has none)."""
    tmp = tempfile.TemporaryDirectory(prefix="posgrade-kernel-")
    ws = Path(tmp.name) / "workspace"
    ws.mkdir()
    for other in catalog.EXERCISES:
        if other.name == ex.name:
            continue
        have = notebooks.exercise_file(folder, other.name) if folder else None
        src = have or state.kit_dir("exercises") / other.file
        shutil.copyfile(src, ws / src.name)
    head = (f"# built by posgrade from this kernel's cells In[{', '.join(map(str, cells))}]: their imports, "
            f"definitions and constants\n" if cells else "# posgrade found no definitions in this kernel\n")
    (ws / ex.file).write_text(head + source, encoding="utf-8")
    return tmp, ws


def check(name, seed=None, timeout=10.0, device="cpu", display=True, shell=None):
    """Grade the kernel's current definitions for exercise `name` (any case, or its number) in a
    child `posgrade check`; the Report, also displayed when display is true."""
    ip = shell or _shell()
    try:
        ex = exercise(name)
    except CheckError as err:
        report = Report(str(name), f"posgrade: {err}\n")
        return _show(report, display)
    source, cells = kernel_source(ip)
    folder = ip.user_ns.get(FOLDER_KEY) or os.getcwd()
    tmp, ws = _workspace(folder, ex, source, cells)
    with tmp:
        out = Path(tmp.name)
        cmd = [sys.executable, "-m", "posgrade", "check", ex.name, "--workspace", str(ws), "--no-save",
               "--device", device, "--timeout", f"{timeout:g}", "--html", str(out / "report.html"),
               "--json", str(out / "result.json")] + (["--seed", str(seed)] if seed is not None else [])
        env = {k: v for k, v in os.environ.items() if k != "POSGRADE_WORKSPACE"}
        env.update(PYTHONIOENCODING="utf-8")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                encoding="utf-8", errors="replace", start_new_session=True)
        try:
            text, _ = proc.communicate()
        except KeyboardInterrupt:  # the kernel's stop button: end the grading and its worker
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        page = (out / "report.html").read_text(encoding="utf-8") if (out / "report.html").exists() else None
        result = None
        if (out / "result.json").exists():
            from posgrade.results import RunResult

            result = RunResult.from_dict(json.loads((out / "result.json").read_text(encoding="utf-8")))
    where = f"this kernel (In[{', '.join(map(str, cells))}])" if cells else "this kernel (no definitions found)"
    text = text.replace(str(ws), where)
    if result is not None:
        text = "\n".join(f"Reproduce: %posgrade check {ex.name} --seed {result.seed}" if ln.startswith("Reproduce:")
                         else ln for ln in text.splitlines()) + "\n"
        result.workspace = where
    if page:
        page = page.replace(html.escape(str(ws)), html.escape(where))
    return _show(Report(ex.name, text, page, result, proc.returncode, cells), display)


def _show(report, display):
    if display:
        from IPython.display import display as show

        show(report)
    return report


# -- the magic -------------------------------------------------------------------------------

def _parser():
    p = argparse.ArgumentParser(prog="%posgrade", add_help=False, exit_on_error=False)
    p.add_argument("command", choices=["check"])
    p.add_argument("name")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--device", choices=["cpu", "cuda", "auto", "all"], default="cpu")
    return p


USAGE = "usage: %posgrade check NAME [--seed N] [--timeout SECONDS] [--device cpu|cuda|auto|all]"


def magic(line):
    """%posgrade check NAME [--seed N] [--timeout S] [--device D]: grade this kernel's definitions."""
    try:
        args = _parser().parse_args(shlex.split(line))
    except (argparse.ArgumentError, SystemExit, ValueError) as err:
        print(f"posgrade: {err}\n{USAGE}" if str(err) else USAGE)
        return None
    check(args.name, seed=args.seed, timeout=args.timeout, device=args.device)
    return None


def load(ipython):
    """`%load_ext posgrade`: register %posgrade, and make the notebook's folder a package."""
    ipython.register_magic_function(magic, "line", "posgrade")
    install_package(ipython, os.getcwd())
