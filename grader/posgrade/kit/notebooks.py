"""Notebooks as exercise files: the Python module a notebook stands for.

A workspace may hold <name>.ipynb where <name>.py is missing (`posgrade init DIR --notebook`
writes one notebook per exercise). The grader never executes a notebook: it reads the JSON
with nbformat and builds the module's source from the code cells, in order, as if they had
been pasted one after another into <name>.py:

    * a cell tagged `skip-grading` (cell metadata "tags") is left out;
    * a cell magic (a cell starting with %%) is left out;
    * IPython-only lines (%magic, !shell, `x = !cmd`, `name?` help) become `pass` at the same
      indentation, so an indented block stays valid and the lines of a cell keep their numbers;
    * each cell starts with a `# %% cell N` comment line, so a traceback's line points at a cell.

Every IPython line or cell magic left out is told in Built.notes ("rope.ipynb cell 3, line 2:
IPython line '%timeit f()' left out"), which `posgrade check` adds to the report. The worker's private copy of a workspace gets the built
<name>.py (grading.process.Worker._sync), so a notebook and a .py file grade the same.

nbformat is imported only when a notebook is read (pip install 'posgrade[notebook]').
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

SKIP_TAG = "skip-grading"
INSTALL = "pip install 'posgrade[notebook]'"

_ASSIGNED_MAGIC = re.compile(r"^\s*[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*[!%]")
_HELP = re.compile(r"^\s*(\?{1,2}[\w.]+|[\w.]+\?{1,2})\s*$")


class NotebookError(Exception):
    """A notebook that cannot be read (not JSON, not a notebook, or nbformat missing)."""


@dataclass
class Built:
    source: str
    notes: list = field(default_factory=list)  # each IPython line or cell magic left out
    skipped: list = field(default_factory=list)  # the numbers of the cells tagged skip-grading


def exercise_file(workspace, name):
    """The file that holds exercise `name` in workspace: <name>.py, else <name>.ipynb, else None."""
    for suffix in (".py", ".ipynb"):
        path = Path(workspace) / f"{name}{suffix}"
        if path.exists():
            return path
    return None


def notebook_only(workspace):
    """{stem: path} of the workspace's notebooks that have no .py file beside them."""
    ws = Path(workspace)
    return {p.stem: p for p in sorted(ws.glob("*.ipynb")) if not (ws / f"{p.stem}.py").exists()}


def read(path):
    """The notebook at path (nbformat, version 4); NotebookError when it cannot be read."""
    try:
        import nbformat
    except ImportError:
        raise NotebookError(f"{Path(path).name} is a notebook, and reading notebooks needs nbformat: "
                            f"{INSTALL}") from None
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as err:  # nbformat raises JSON errors, validation errors, KeyErrors...
        raise NotebookError(f"{Path(path).name} could not be read as a notebook: {type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}") from None


def strip_ipython(code):
    """(code with IPython-only lines replaced by `pass`, [(line number, the line)] replaced)."""
    out, dropped = [], []
    for i, line in enumerate(code.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")) or _ASSIGNED_MAGIC.match(line) or _HELP.match(line):
            out.append(line[: len(line) - len(stripped)] + "pass  # posgrade: IPython line left out")
            dropped.append((i, stripped))
        else:
            out.append(line)
    return "\n".join(out), dropped


def build_cells(cells, label="notebook"):
    """Built from [(cell number, code, tags)], in order (see the module docstring)."""
    parts, notes, skipped = [], [], []
    for number, code, tags in cells:
        if SKIP_TAG in (tags or ()):
            skipped.append(number)
            continue
        if code.lstrip().startswith("%%"):
            notes.append(f"{label} cell {number}: cell magic {code.lstrip().splitlines()[0]!r} left out")
            continue
        code, dropped = strip_ipython(code)
        for line_no, line in dropped:
            notes.append(f"{label} cell {number}, line {line_no}: IPython line {line!r} left out")
        parts.append(f"# %% cell {number}\n{code}\n")
    return Built("\n".join(parts), notes, skipped)


def build(path):
    """Built: the module source of the notebook at path. NotebookError when it cannot be read."""
    nb = read(path)
    cells = [(i, cell.source, cell.get("metadata", {}).get("tags", []))
             for i, cell in enumerate(nb.cells, 1) if cell.cell_type == "code"]
    return build_cells(cells, Path(path).name)


def module_text(path):
    """The .py text the grader's worker imports for the notebook at path: the built source, or,
    when the notebook cannot be read, a module that raises ImportError saying why (the learner
    then sees that reason on every case of the exercise, as with any file that fails to import)."""
    try:
        built = build(path)
    except NotebookError as err:
        return f"raise ImportError({str(err)!r})\n"
    head = f"# built by posgrade from {Path(path).name}: its code cells, in order\n"
    return head + "".join(f"# {note}\n" for note in built.notes) + "\n" + built.source


# -- writing: the notebook `posgrade init DIR --notebook` makes for an exercise -----------------

_FUNCTIONS = {"sin": r"\sin", "cos": r"\cos", "exp": r"\exp", "log": r"\log", "softmax": r"\operatorname{softmax}"}


def latex(text):
    """A formula written in a docstring's plain-text notation, as LaTeX (best effort: x^(a/b) is a
    superscript, sqrt(x) a root, a[i, j] a subscript, multi-letter names upright)."""
    s = text.strip()
    s = re.sub(r"(\w+)\[([^\[\]]+)\]", lambda m: f"{m.group(1)}_{{{m.group(2)}}}", s)
    s = re.sub(r"\^\(([^()]*)\)", r"^{\1}", s)
    s = re.sub(r"sqrt\(([^()]*)\)", r"\\sqrt{\1}", s)
    s = re.sub(r"\b(" + "|".join(_FUNCTIONS) + r")\b", lambda m: _FUNCTIONS[m.group(1)], s)
    s = re.sub(r"(?<![\\\w{])([A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+)",
               lambda m: r"\mathrm{" + m.group(1).replace("_", r"\_") + "}", s)
    s = s.replace("ᵀ", r"^\top").replace("·", r" \cdot ").replace("*", r" \cdot ")
    s = re.sub(r"(?<=[A-Za-z,]) (?=[A-Za-z])", r"\\ ", s)  # keep the spaces between words
    return s


def _is_formula(line):
    s = line.strip()
    return (s.count("=") == 1 and "[[" not in s and "  (" not in s
            and any(f in s for f in ("^(", "sqrt(", "softmax(", "sin(", "cos(")))


def spec_markdown(number, exercise, stub_source):
    """The markdown cell of an exercise's notebook: the stub's docstrings, formulas as LaTeX."""
    import ast

    tree = ast.parse(stub_source)
    doc = ast.get_docstring(tree) or ""
    title, _, body = doc.partition("\n")
    out = [f"# {title.strip() or f'Exercise {number}: {exercise.name}'}", ""]
    block = []

    def flush():
        if not block:
            return
        if all(_is_formula(ln) for ln in block if ln.strip()):
            for ln in block:
                if ln.strip():
                    out.extend(["$$", latex(ln), "$$"])
            out.append("")
        else:
            out.extend(["```text", *(ln[4:] if ln.startswith("    ") else ln for ln in block), "```", ""])
        block.clear()

    for line in body.strip("\n").splitlines():
        if line.startswith("    ") or (block and not line.strip()):
            block.append(line)
            continue
        flush()
        out.append(re.sub(r"(\S+\^\([^()\s]*\))", lambda m: f"${latex(m.group(1))}$", line))
    flush()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            kind = "class" if isinstance(node, ast.ClassDef) else "def"
            out += ["", f"### `{kind} {node.name}`", "", "```text", ast.get_docstring(node) or "", "```"]
            for sub in (node.body if kind == "class" else []):
                if isinstance(sub, ast.FunctionDef) and not sub.name.startswith("_") and ast.get_docstring(sub):
                    out += ["", f"#### `{node.name}.{sub.name}`", "", "```text", ast.get_docstring(sub), "```"]
    return "\n".join(out).rstrip() + "\n"


def stub_notebook(number, exercise, stub_source):
    """The notebook of one exercise: its spec (markdown), `%load_ext posgrade` (skip-grading), the
    stub (the cell to complete), and a last cell that grades the notebook's own definitions."""
    try:
        import nbformat
        from nbformat import v4
    except ImportError:
        raise NotebookError(f"writing notebooks needs nbformat: {INSTALL}") from None
    skip = {"tags": [SKIP_TAG]}
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        v4.new_markdown_cell(spec_markdown(number, exercise, stub_source)),
        v4.new_code_cell("# posgrade's %posgrade magic; it also lets `from .rope import ...` below find your own\n"
                         "# earlier exercises (rope.ipynb or rope.py) in this notebook's folder\n"
                         "%load_ext posgrade", metadata=skip),
        v4.new_markdown_cell(f"## Your code\n\nComplete the stub below (replace each `raise NotImplementedError`). "
                             f"Every code cell of this notebook is graded, in order, except those tagged "
                             f"`{SKIP_TAG}`; IPython lines (`%magic`, `!shell`) are left out."),
        v4.new_code_cell(stub_source.rstrip("\n")),
        v4.new_markdown_cell(f"## Grade\n\nRun the next cell after each change: it grades the definitions this "
                             f"kernel holds now, in a separate worker process (a hang or crash there cannot hurt "
                             f"this kernel). From a terminal, `posgrade check {exercise.name} --workspace "
                             f"THIS_FOLDER` grades the saved notebook."),
        v4.new_code_cell(f"%posgrade check {exercise.name}", metadata=skip),
    ]
    nbformat.validate(nb)
    return nbformat.writes(nb)
