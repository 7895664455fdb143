"""The worker: the only process that imports and runs learner code.

Started by the grader as `python -m posgrade.grading.worker IN_FD OUT_FD WORKSPACE LIMITS`. It imports
torch at once (overlapping the grader's own torch import), says "ready", then answers
requests one at a time:

    {"op": "call",  "module": "rope", "attr": "apply_rope", "args": [...], "kwargs": {...}}
    {"op": "probe", "module": "learned", "probe": "module", "kwargs": {...}}

with {"ok": True, "value": ..., "stdout": "..."} or {"ok": False, "error": {...}}.
The workspace is loaded as a package (`posgrade_workspace`), so a learner file may import
its siblings with `from .rope import apply_rope`. The grader enforces time and memory
limits from outside; this side only caps what learner code prints and writes.
"""

import faulthandler
import importlib
import importlib.machinery
import io
import os
import sys
import time
import traceback
import types

PACKAGE = "posgrade_workspace"
OUTPUT_CAP = 4000  # characters of learner prints kept per request


class CappedText(io.TextIOBase):
    """A stdout stand-in that keeps the first OUTPUT_CAP characters and counts the rest."""

    def __init__(self):
        self.parts, self.kept, self.dropped = [], 0, 0

    def writable(self):
        return True

    def write(self, s):
        s = str(s)
        room = OUTPUT_CAP - self.kept
        if room > 0:
            self.parts.append(s[:room])
            self.kept += min(room, len(s))
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def text(self):
        out = "".join(self.parts)
        if self.dropped:
            out += f"\n... ({self.dropped} more characters not shown)"
        return out


def _read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _set_limits(limits):
    """Limits this process applies to itself: file size, and address space where that is safe."""
    try:
        import resource
        import signal
    except ImportError:  # not POSIX: the grader's own watchdog still applies
        return
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG instead of killing us
    cap = limits["file_bytes"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
    if limits.get("address_space_bytes"):
        # only on CPU-only runs: CUDA reserves far more virtual memory than it uses
        cap = limits["address_space_bytes"] + _vm_size()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or cap < hard:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _vm_size():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class _NoReference:
    """A meta-path finder that refuses posgrade's own modules to learner code: the reference
    solutions stay out of reach of `import`, and the grader's modules too (they do not decide
    anything here, but a learner file has no reason to load them)."""

    def find_spec(self, name, path=None, target=None):
        if name == "posgrade" or name.startswith("posgrade."):
            raise ImportError(f"learner code may not import {name}: write your own implementation")
        return None


def _workspace_package(workspace):
    pkg = types.ModuleType(PACKAGE)
    pkg.__path__ = [workspace]
    pkg.__spec__ = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
    pkg.__spec__.submodule_search_locations = [workspace]
    pkg.__package__ = PACKAGE
    sys.modules[PACKAGE] = pkg


def _error(exc, where, workspace):
    """An exception as plain text, with only the frames of learner files in the traceback."""
    every = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in every if f.filename.startswith(workspace)]
    lines = []
    for f in frames[-6:]:
        lines.append(f'  {os.path.relpath(f.filename, workspace)}, line {f.lineno}, in {f.name}')
        if f.line:
            lines.append(f"    {f.line}")
    if isinstance(exc, SyntaxError) and exc.filename:
        lines.append(f"  {os.path.basename(exc.filename)}, line {exc.lineno}")
        if exc.text:
            lines.append(f"    {exc.text.rstrip()}")
    try:
        message = str(exc)
    except Exception:
        message = "<str() of the exception failed>"
    return {
        "where": where,
        "file": os.path.basename(frames[-1].filename) if frames else "",  # the learner file that raised
        "function": frames[-1].name if frames else "",
        # raised by a `raise` statement of the learner's own (a stub), not by torch or another library
        "own": bool(every) and every[-1].filename.startswith(workspace)
        and (every[-1].line or "").lstrip().startswith("raise"),
        "type": type(exc).__name__,
        "message": message[:2000],
        "traceback": "\n".join(lines),
    }


def _inputs_changed(before):
    """Names (keyword) or indices (positional) of tensor arguments modified in place."""
    import torch

    return [name for name, (orig, arg) in before.items()
            if arg.shape != orig.shape or not torch.equal(arg.detach(), orig)]


def serve(fd_in, fd_out, workspace, limits):
    import torch

    from posgrade.grading import sandbox

    from posgrade.kit import catalog, probes, wire

    # the reference, for speed requests only: kept here, and out of sys.modules below, so
    # learner code cannot import it
    references = {name: importlib.import_module(f"posgrade.solutions.{name}") for name in catalog.names()}

    # one thread: the grader and this worker take turns, and OpenMP threads that spin-wait
    # after each op in one process steal the cores the other needs (10x slower on 2 cores)
    torch.set_num_threads(1)
    # TF32 would make float32 matmuls on Ampere+ differ from the reference by ~1e-3
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    _workspace_package(workspace)
    for name in [m for m in sys.modules if m == "posgrade" or m.startswith("posgrade.")]:
        if name not in ("posgrade.kit.wire", "posgrade.kit.probes"):
            del sys.modules[name]  # what this worker needed is bound already
    sys.meta_path.insert(0, _NoReference())
    _set_limits(limits)
    config = limits.get("sandbox", {"off": "no sandbox planned"})
    pid = config.get("pid") or os.getpid()  # as the grader sees it (enter_namespaces)
    if config.get("cuda") and "off" not in config:
        try:  # the driver opens its files now, before the sandbox closes the rest (device nodes stay open to it)
            if torch.cuda.is_available():
                torch.cuda.init()
        except Exception:
            pass  # the learner's first CUDA call reports it
    # from here on, this process reaches only its scratch folder, Python and torch (sandbox.py)
    try:
        status = sandbox.restrict(config)
    except Exception as err:  # reported in every result ("not sandboxed"), never a silent pass
        status = {"landlock": 0, "reason": f"the sandbox could not be set up: {type(err).__name__}: {err}"}
    _write_all(fd_out, wire.dumps({"ready": True, "pid": pid, "sandbox": status}))

    real_stdout, real_stderr = sys.stdout, sys.stderr
    learner_ran = False  # whether any learner file was imported: what could have changed torch since
    while True:
        try:
            (size,) = wire.HEADER.unpack(_read_exact(fd_in, wire.HEADER.size))
            body = _read_exact(fd_in, size)
        except EOFError:
            return
        try:
            request = wire.loads(body)
        except Exception as exc:  # the frame was read whole: answer, and wait for the next request
            error = _error(exc, "request", workspace) | {"learner_ran": learner_ran}
            _write_all(fd_out, wire.dumps({"ok": False, "error": error, "stdout": ""}))
            continue
        if request.get("op") == "exit":
            return
        out = CappedText()
        sys.stdout = sys.stderr = out
        start = time.perf_counter()
        reply = {"ok": True}
        where = "import"
        try:
            learner_ran = True
            module = importlib.import_module(f"{PACKAGE}.{request['module']}")
            where = "call"
            args = wire.decode(request.get("args", []))
            kwargs = wire.decode(request.get("kwargs", {}))
            if request["op"] == "import":
                reply["value"] = None
            elif request["op"] == "call":
                named = list(enumerate(args)) + list(kwargs.items())
                before = {k: (a.detach().clone(), a) for k, a in named if isinstance(a, torch.Tensor)}
                value = getattr(module, request["attr"])(*args, **kwargs)
                reply["value"] = wire.encode(value)
                reply["mutated"] = _inputs_changed(before)
            elif request["op"] == "probe":
                reply["value"] = wire.encode(probes.run(request["probe"], module, **kwargs))
            elif request["op"] == "speed":
                # the grader times this request from outside: only the wall time it sees counts
                side = module if request["which"] == "learner" else references[request["module"]]
                run = probes.timed_target(side, **kwargs)
                for _ in range(int(request.get("repeat", 1))):
                    run()
                if torch.cuda.is_available() and torch.cuda.is_initialized():
                    torch.cuda.synchronize()
                reply["value"] = None
            else:
                raise ValueError(f"unknown op {request['op']!r}")
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from learner code too
            reply = {"ok": False, "error": _error(exc, where, workspace)}
        finally:
            sys.stdout, sys.stderr = real_stdout, real_stderr
        reply["stdout"] = out.text()
        reply["seconds"] = time.perf_counter() - start
        try:
            payload = wire.dumps(reply)
        except Exception as exc:  # e.g. a tensor on a device that cannot be saved
            payload = wire.dumps({"ok": False, "error": _error(exc, "reply", workspace), "stdout": out.text()})
        _write_all(fd_out, payload)


def main(argv):
    fd_in, fd_out, workspace, limits_text = int(argv[1]), int(argv[2]), argv[3], argv[4]
    import json

    from posgrade.grading import sandbox

    sandbox.die_with_parent()
    limits = json.loads(limits_text)
    config = limits.setdefault("sandbox", {"off": "no sandbox planned"})
    # before torch: a cheap fork; only the worker itself returns, as pid 2 of a new pid namespace
    config["pidns"] = sandbox.enter_namespaces(config, close_fds=(fd_in, fd_out)) or "yes"
    faulthandler.enable()  # a segfault in learner code leaves a traceback on stderr for the grader
    serve(fd_in, fd_out, os.path.abspath(workspace) + os.sep, limits)


if __name__ == "__main__":
    main(sys.argv)
