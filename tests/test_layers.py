"""The package's architecture, checked: every module's imports (read with ast) point down the
layer order written in posgrade/__init__.py, and no modules import each other in a circle."""

import ast
from pathlib import Path

import posgrade

PACKAGE = Path(posgrade.__file__).resolve().parent


def layers():
    """The layer order from the package docstring's "Layers, top to bottom:" line."""
    line = next(ln for ln in posgrade.__doc__.splitlines() if ln.strip().startswith("Layers, top to bottom:"))
    return [name.strip() for name in line.split(":", 1)[1].split(">")]


def module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def imports(path, name):
    """The posgrade modules a file imports, anywhere in it (functions included), as full names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "posgrade"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join(up[: len(up) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "posgrade":
                continue
            for a in node.names:  # `from posgrade.kit import catalog` imports the module posgrade.kit.catalog
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules() else base)
    return found


def layer_of(name, order):
    parts = name.split(".")
    if len(parts) == 1:
        return None  # the root package: the version, importing nothing
    first = parts[1]
    return first if first in order else None


def test_layers_are_the_subpackages():
    order = layers()
    assert order[-1] == "results" and order[:2] == ["notebook", "cli"]
    for layer in order[:-1]:
        assert (PACKAGE / layer / "__init__.py").is_file(), f"layer {layer} has no subpackage"
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc and "May import" in doc, f"posgrade/{layer}/__init__.py must say what lives there and what it may import"
    assert (PACKAGE / "results.py").is_file()
    stray = [p.name for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__", "results")]
    assert not stray, f"modules outside the layers: {stray}"


def test_imports_point_down_only():
    order = layers()
    rank = {layer: i for i, layer in enumerate(order)}
    upward = []
    for name, path in modules().items():
        mine = layer_of(name, order)
        if mine is None or name.startswith(("posgrade.exercises", "posgrade.solutions")):
            continue
        for target in imports(path, name):
            theirs = layer_of(target, order)
            if theirs is not None and rank[theirs] < rank[mine]:
                upward.append(f"{name} ({mine}) imports {target} ({theirs})")
    assert not upward, "imports that point up the layer order:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = {name: {t for t in imports(path, name) if t in modules() and t != name}
             for name, path in modules().items()}
    # a package's __init__ importing its own submodules is not a cycle with them
    for name in graph:
        graph[name] = {t for t in graph[name] if not (t.startswith(name + ".") and
                                                       modules()[name].name == "__init__.py")}
    cycles, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_a_planted_upward_import(tmp_path):
    """The ast reading finds imports inside functions and relative ones (a check that could fail)."""
    f = tmp_path / "mod.py"
    f.write_text("def later():\n    from posgrade.cli import main\nfrom ..loop import check\n")
    found = imports(f, "posgrade.kit.mod")
    assert "posgrade.cli" in found and "posgrade.loop.check" in found
