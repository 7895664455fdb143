"""`posgrade grade-batch`: grade a whole class, one submission folder at a time, in parallel.

`--jobs N` grader processes (`python -m posgrade.classroom.batch`, which import torch, pytest and the
cases once) take submissions from a shared queue; each submission is graded exactly as
`posgrade check --allow-missing --no-save` grades it, with the learner's code in a fresh worker
process of its own. So a submission that crashes, hangs or fails to import costs only its own
row, and a grader that outlives a submission's wall-clock limit is stopped (SIGTERM, so it still
writes that result; SIGKILL if it does not answer) and replaced. Nothing is written into the
submissions.

Outputs, in the --out folder: class.csv and class.json (a row per student: per-exercise
score, total, status, errors), class.html (score distribution, per-exercise statistics, the
most common mistakes), results/<student>.json (each child's full RunResult) and
reports/<student>.txt (each child's terminal report, to hand back to the student).
"""

import csv
import datetime
import io
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from posgrade.kit import catalog
from posgrade.reporting.common import LEARNER_ERRORS, split_output
from posgrade.results import RunResult

SEARCH_DEPTH = 3  # how deep under a submission folder its exercise files may sit
STARTUP_SECONDS = 300.0  # how long a grader process may take to import torch and the grader


@dataclass
class Submission:
    student: str
    folder: Path
    workspace: Path  # the folder that holds the exercise files (the submission itself, or below it)
    files: int  # how many of the exercise files it holds


@dataclass
class Row:
    student: str
    workspace: str
    status: str  # pass | fail | error
    scores: dict = field(default_factory=dict)  # exercise -> score
    total: float = 0.0
    max_score: float = 0.0
    errors: list = field(default_factory=list)
    revealed_before_pass: list = field(default_factory=list)
    failed_cases: list = field(default_factory=list)  # "exercise::function" failed with a wrong answer, once each
    not_started: list = field(default_factory=list)  # exercises still raising NotImplementedError
    seconds: float = 0.0


def locate_workspace(folder):
    """(the folder under `folder` holding the most exercise files, how many): the submission
    itself when it holds any, else the shallowest best folder at most SEARCH_DEPTH below."""
    wanted = {e.file for e in catalog.EXERCISES}
    best, best_n = Path(folder), 0
    root_depth = len(Path(folder).parts)
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
        if len(Path(dirpath).parts) - root_depth >= SEARCH_DEPTH:
            dirnames[:] = []
        n = len(wanted & set(filenames))
        if n > best_n:
            best, best_n = Path(dirpath), n
    return best, best_n


def find_submissions(root, skip=()):
    """Every submission folder directly under root (hidden folders and `skip` left out)."""
    root = Path(root)
    skip = {Path(s).resolve() for s in skip}
    subs = []
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.startswith((".", "__")) or d.resolve() in skip:
            continue
        ws, n = locate_workspace(d)
        subs.append(Submission(d.name, d, ws, n))
    return subs


def _first_line(text):
    return (text.strip().splitlines() or [""])[0]


def row_from_result(student, workspace, result, seconds):
    row = Row(student=student, workspace=str(workspace), status=result.status, total=result.score,
              max_score=result.max_score, seconds=round(seconds, 2))
    if result.error:
        row.errors.append(f"grading failed: {_first_line(result.error)}")
        row.total = 0.0
    for ex in result.exercises:
        row.scores[ex.name] = 0.0 if result.error else ex.score
        if ex.revealed_before_pass:
            row.revealed_before_pass.append(ex.name)
        kinds = {}
        for case in ex.failures:
            if case.kind in LEARNER_ERRORS and case.kind not in kinds:
                kinds[case.kind] = _first_line(split_output(case.message)[0])
            key = f"{ex.name}::{case.name}"
            if case.kind == "wrong" and key not in row.failed_cases:
                row.failed_cases.append(key)
        if ex.failures and all(c.kind == "not-implemented" for c in ex.failures) and ex.earned == 0:
            row.not_started.append(ex.name)
        row.errors += [f"{ex.name}: {kind}: {line}" for kind, line in kinds.items()]
    return row


def error_row(student, workspace, exercises, reason, seconds):
    return Row(student=student, workspace=str(workspace), status="error",
               scores={n: 0.0 for n in exercises}, max_score=sum(catalog.get(n).points for n in exercises),
               errors=[reason], seconds=round(seconds, 2))


@dataclass
class BatchOptions:
    exercises: list
    seed: int
    timeout: float = 10.0  # per call of learner code
    device: str = "cpu"
    jobs: int = 1
    cases: str = ""  # an instructor's private case folder
    limit: float = 600.0  # wall-clock seconds one submission may take in all
    recycle: int = 50  # a grader process is replaced after this many submissions


class GraderProcess:
    """A long-lived `python -m posgrade.classroom.batch` process that grades one submission at a time:
    torch, pytest and the cases are imported once, not once per student. Each submission's
    code still runs in a fresh worker process of its own (runner.Worker). A grader that dies,
    hangs or overruns is replaced; only the submission it was grading is affected."""

    def __init__(self, env, cwd, log):
        self.log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "posgrade.classroom.batch"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=str(cwd),
                                     start_new_session=True)
        self.done = 0
        self._buf = b""
        # wait until torch, pytest and the cases are imported, so that start-up never counts
        # against the first submission's wall-clock limit
        self.ready = (self._read(time.monotonic() + STARTUP_SECONDS) or {}).get("ready", False)

    def alive(self):
        return self.proc.poll() is None

    def ask(self, job, limit):
        """(reply dict or None, how it ended: "ok" | "overran" | "died")."""
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            return None, "died"
        reply = self._read(time.monotonic() + limit)
        if reply is not None:
            self.done += 1
            return reply, "ok"
        if not self.alive():
            return None, "died"
        try:  # overran: SIGTERM makes the grader end this run as an error result and answer
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return None, "died"
        reply = self._read(time.monotonic() + 15)
        return reply, "overran"

    def _read(self, deadline):
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                if not self.alive():
                    return None
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:
            return None

    def close(self, kill=False):
        """End the grader: it ends by itself when its input closes; with kill, SIGTERM first (a
        grader in the middle of a submission stops that worker and writes its result), then
        SIGKILL if it is still there after a few seconds."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                if kill:
                    os.kill(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5 if kill else 30)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait()
        self.log.close()


class Batch:
    def __init__(self, submissions, out, options, progress=None):
        self.submissions = submissions
        self.out = Path(out).resolve()  # the grader processes run there: every path they get is absolute
        self.opt = options
        self.progress = progress or (lambda line: None)
        self._graders = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._started = 0

    def _env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("POSGRADE_", "GITHUB_")) or k == "POSGRADE_SANDBOX"}  # grading/sandbox.py
        if self.opt.jobs > 1:  # parallel graders share the cores: fewer math threads each
            threads = str(max(1, (os.cpu_count() or 1) // self.opt.jobs))
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env.setdefault(k, threads)
        env["PYTHONIOENCODING"] = "utf-8"
        return env

    def _new_grader(self):
        with self._lock:
            self._started += 1
            n = self._started
        g = GraderProcess(self._env(), self.out, self.out / "logs" / f"grader-{n}.log")
        with self._lock:
            self._graders.add(g)
        return g

    def _retire(self, g, kill=False):
        g.close(kill=kill)
        with self._lock:
            self._graders.discard(g)

    def job(self, sub):
        return {"workspace": str(Path(sub.workspace).resolve()), "names": list(self.opt.exercises),
                "seed": self.opt.seed,
                "timeout": self.opt.timeout, "device": self.opt.device, "cases": self.opt.cases,
                "result": str(self.out / "results" / f"{sub.student}.json"),
                "report": str(self.out / "reports" / f"{sub.student}.txt")}

    def grade_one(self, sub, grader):
        """(row, grader to use next: the same one, or None when it had to go)."""
        t0 = time.monotonic()
        job = self.job(sub)
        Path(job["result"]).unlink(missing_ok=True)
        reply, how = grader.ask(job, self.opt.limit)
        seconds = time.monotonic() - t0
        keep = grader if how == "ok" and grader.done < self.opt.recycle else None
        if keep is None:
            self._retire(grader, kill=how != "ok")
        try:
            result = RunResult.from_dict(json.loads(Path(job["result"]).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            why = {"ok": "no result file", "overran": f"stopped after {self.opt.limit:g} s",
                   "died": f"the grader process ended (exit code {grader.proc.poll()})"}[how]
            return error_row(sub.student, sub.workspace, self.opt.exercises, f"grading failed: {why}", seconds), keep
        row = row_from_result(sub.student, sub.workspace, result, seconds)
        if how == "overran":
            row.status = "error"
            row.errors.insert(0, f"grading took longer than {self.opt.limit:g} s and was stopped")
        elif reply and reply.get("usage_error"):
            row.status = "error"
        return row, keep

    def _slot(self, queue, results, total, counter):
        grader = None
        while not self._stopping:
            with self._lock:
                if not queue:
                    break
                sub = queue.pop(0)
            try:
                if grader is None or not grader.alive():
                    grader = self._new_grader()
                    if not grader.ready:
                        self._retire(grader, kill=True)
                        grader = None
                        raise RuntimeError("the grader process did not start (see logs/ in --out)")
                row, grader = self.grade_one(sub, grader)
            except Exception as err:  # one broken submission never stops the others
                row = error_row(sub.student, sub.workspace, self.opt.exercises,
                                f"grading failed: {type(err).__name__}: {err}", 0)
                if grader is not None:
                    self._retire(grader, kill=True)
                    grader = None
            with self._lock:
                results[sub.student] = row
                counter[0] += 1
                done = counter[0]
            self.progress(progress_line(done, total, row))
        if grader is not None:
            self._retire(grader)

    def stop_all(self):
        self._stopping = True
        with self._lock:
            graders = list(self._graders)
        for g in graders:
            g.close(kill=True)

    def run(self):
        for sub in ("results", "reports", "logs"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        queue, results, counter = list(self.submissions), {}, [0]
        threads = [threading.Thread(target=self._slot, args=(queue, results, len(self.submissions), counter),
                                    daemon=True) for _ in range(min(self.opt.jobs, len(self.submissions)))]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            self.stop_all()
            raise
        return [results.get(s.student) or error_row(s.student, s.workspace, self.opt.exercises, "not graded", 0)
                for s in self.submissions]


# -- the grader process (python -m posgrade.classroom.batch) --------------------------------------------

_SESSIONS = {}  # (timeout, device) -> this grader process's GradingSession, its next worker started ahead
_ZYGOTE = []  # this grader process's fork server for CPU workers, ready before the first submission


def _grade_job(job):
    from posgrade.classroom import instructor
    from posgrade.grading.session import GradingSession, Limits
    from posgrade.loop import check
    from posgrade.reporting import formats, terminal

    reply = {"ok": True}
    opts = check.CheckOptions(names=list(job["names"]), device=job["device"], seed=job["seed"],
                              timeout=job["timeout"], workspace=job["workspace"], cases_path=job["cases"] or "",
                              allow_missing=True, save=False, stop_signals=True)
    rerun = "posgrade check " + " ".join(job["names"])
    try:
        opts.case_files = instructor.load_case_files(job["cases"]) if job["cases"] else []
        key = (job["timeout"], job["device"])
        if key not in _SESSIONS:
            _SESSIONS[key] = GradingSession(job["workspace"], Limits(seconds=job["timeout"]), job["device"],
                                            fork_server=_ZYGOTE[0] if _ZYGOTE else False)
        result, rerun = check.grade(opts, session=_SESSIONS[key])
    except (check.CheckError, instructor.InstructorError) as err:
        result, reply["usage_error"] = check.error_result(str(err), job["names"], job["workspace"], job["seed"]), True
    except KeyboardInterrupt:
        result = check.error_result("grading was stopped", job["names"], job["workspace"], job["seed"])
    except Exception as err:  # the grader's own failure: this submission's row says so
        import traceback

        result = check.error_result(f"internal error in the grader: {type(err).__name__}: {err}\n\n"
                                    f"{traceback.format_exc()}", job["names"], job["workspace"], job["seed"])
    formats.write("json", Path(job["result"]), result)
    text, _ = terminal.check_text(result, rerun, verbose=True)
    Path(job["report"]).write_text(text, encoding="utf-8")
    reply["status"] = result.status
    return reply


def serve():
    """Grade the jobs that arrive on stdin, one JSON line each, answering one line each on the
    real stdout; anything else that would print (pytest, warnings) goes to stderr instead."""
    answer = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    import posgrade.grading.plugin  # noqa: F401  torch, pytest and the grader, once
    import posgrade.loop.check  # noqa: F401
    from posgrade.grading.session import new_zygote

    zygote = new_zygote()  # torch imported before "ready": no submission's time limit pays for it
    if zygote.wait_ready():
        _ZYGOTE.append(zygote)
    answer.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = _grade_job(json.loads(line))
        except Exception as err:  # a result file could not be written: say so, keep serving
            reply = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        answer.write(json.dumps(reply) + "\n")
    for session in _SESSIONS.values():  # the standby workers go with the grader
        session.close()
    for zygote in _ZYGOTE:
        zygote.close()


def progress_line(done, total, row):
    mark = {"pass": "ok", "fail": "--", "error": "!!"}[row.status]
    extra = f"  {row.errors[0]}" if row.errors else ""
    if len(row.errors) > 1:
        extra += f" (+{len(row.errors) - 1} more)"
    return (f"[{done:>{len(str(total))}}/{total}] {mark} {row.student:<24} {row.total:6.2f} / {row.max_score:g}"
            f"  {row.seconds:5.1f} s{extra}")


# -- class reports ----------------------------------------------------------------------------

def _cell(text):
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    text = str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def class_csv(rows, exercises):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student", *exercises, "total", "max_score", "status", "errors", "revealed_before_pass", "seconds"])
    for r in rows:
        w.writerow([_cell(r.student), *[f"{r.scores.get(n, 0.0):g}" for n in exercises], f"{r.total:g}",
                    f"{r.max_score:g}", r.status, _cell("; ".join(r.errors)), " ".join(r.revealed_before_pass),
                    f"{r.seconds:g}"])
    return buf.getvalue()


def statistics(rows, exercises, top=10):
    n = len(rows)
    max_score = sum(catalog.get(e).points for e in exercises)
    totals = sorted(r.total for r in rows)
    bins = [0] * 10
    for t in totals:
        bins[min(9, int(10 * t / max_score)) if max_score else 0] += 1
    per_exercise = []
    for e in exercises:
        pts = catalog.get(e).points
        scores = [r.scores.get(e, 0.0) for r in rows]
        per_exercise.append({
            "name": e, "points": pts, "mean": round(sum(scores) / n, 2) if n else 0.0,
            "full_marks": sum(s >= pts for s in scores),
            "not_started": sum(e in r.not_started for r in rows),
            "errors": sum(any(err.startswith(f"{e}: ") for err in r.errors) for r in rows),
            "revealed": sum(e in r.revealed_before_pass for r in rows),
        })
    counts = Counter(k for r in rows for k in r.failed_cases)
    mistakes = [{"case": k, "exercise": k.split("::")[0], "students": c, "share": round(c / n, 3) if n else 0}
                for k, c in counts.most_common(top)]
    return {
        "submissions": n, "max_score": max_score,
        "mean": round(sum(totals) / n, 2) if n else 0.0,
        "median": (totals[n // 2] if n % 2 else (totals[n // 2 - 1] + totals[n // 2]) / 2) if n else 0.0,
        "min": totals[0] if n else 0.0, "max": totals[-1] if n else 0.0,
        "passed": sum(r.status == "pass" for r in rows), "errors": sum(r.status == "error" for r in rows),
        "distribution": [{"from": round(i * max_score / 10, 2), "to": round((i + 1) * max_score / 10, 2),
                          "count": c} for i, c in enumerate(bins)],
        "exercises": per_exercise, "common_mistakes": mistakes,
    }


def describe_mistakes(stats, results_dir):
    """Give each common mistake its case title and the most frequent first line of its message."""
    titles, lines = {}, {}
    wanted = {m["case"] for m in stats["common_mistakes"]}
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            result = RunResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for ex in result.exercises:
            for c in ex.failures:
                key = f"{ex.name}::{c.name}"
                if key in wanted and c.kind == "wrong":
                    titles.setdefault(key, c.title)
                    lines.setdefault(key, Counter())[_first_line(split_output(c.message)[0])] += 1
    for m in stats["common_mistakes"]:
        m["title"] = titles.get(m["case"], m["case"])
        m["example"] = lines[m["case"]].most_common(1)[0][0] if m["case"] in lines else ""


def class_html(rows, exercises, stats, meta):
    from posgrade.reporting.common import environment

    return environment(autoescape=True).get_template("class.html.j2").render(
        rows=rows, exercises=exercises, stats=stats, meta=meta,
        peak=max([b["count"] for b in stats["distribution"]] + [1]))


def write_reports(rows, exercises, out, meta):
    out = Path(out)
    stats = statistics(rows, exercises)
    describe_mistakes(stats, out / "results")
    (out / "class.csv").write_text(class_csv(rows, exercises), encoding="utf-8")
    doc = {"posgrade": meta["posgrade"], "seed": meta["seed"], "exercises": exercises,
           "started": meta["started"], "seconds": meta["seconds"], "jobs": meta["jobs"],
           "statistics": stats, "submissions": [asdict(r) for r in rows]}
    (out / "class.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (out / "class.html").write_text(class_html(rows, exercises, stats, meta), encoding="utf-8")
    return stats


def grade_class(directory, exercises, jobs, timeout, seed, device, cases_path, out_dir, limit, echo):
    """`posgrade grade-batch`: grade every submission under directory and write the class reports;
    echo(line, err) prints. CheckError for a usage problem."""
    from posgrade.loop.check import CheckError, exercise

    import posgrade

    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise CheckError(f"{directory} is not a folder of submissions")
    if any((root / e.file).is_file() for e in catalog.EXERCISES):
        raise CheckError(f"{directory} holds exercise files itself: it is one workspace (grade it with "
                         "`posgrade check --workspace`); grade-batch wants a folder of submission folders")
    for name in exercises:
        exercise(name)
    names = [n for n in catalog.names() if n in exercises] if exercises else catalog.names()
    if cases_path:
        from posgrade.classroom import instructor

        try:
            instructor.load_case_files(cases_path)
        except instructor.InstructorError as err:
            raise CheckError(str(err)) from None
        cases_path = str(Path(cases_path).expanduser().resolve())
    out = Path(out_dir).expanduser().resolve() if out_dir else root.parent / f"{root.name}-grades"
    if out.exists() and not out.is_dir():
        raise CheckError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    subs = find_submissions(root, skip=[out])
    if not subs:
        raise CheckError(f"{directory} has no submission folders")
    if seed is None:
        import secrets

        seed = secrets.randbelow(100000)
    if device in ("cuda", "all"):
        from posgrade.grading.plugin import resolve_devices

        try:
            resolve_devices(device)
        except ValueError as err:
            raise CheckError(str(err)) from None
    opts = BatchOptions(exercises=names, seed=seed, timeout=timeout, device=device, jobs=jobs,
                        cases=cases_path or "", limit=limit)
    echo(f"Grading {len(subs)} submissions from {root} ({', '.join(names)}; seed {seed}; "
         f"{jobs} job{'s' * (jobs > 1)}) into {out}", True)
    started, t0 = now(), time.monotonic()
    rows = Batch(subs, out, opts, progress=lambda line: echo(line, True)).run()
    seconds = time.monotonic() - t0
    stats = write_reports(rows, names, out, {"posgrade": posgrade.__version__, "seed": seed, "jobs": jobs,
                                             "started": started, "seconds": round(seconds, 1)})
    echo(f"Graded {len(rows)} submissions in {seconds:.1f} s: mean {stats['mean']:g} / {stats['max_score']:g}, "
         f"{stats['passed']} passed every case, {stats['errors']} with errors", False)
    echo(f"Wrote {out / 'class.csv'}, {out / 'class.json'} and {out / 'class.html'}", False)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


if __name__ == "__main__":
    serve()
