"""How well the named mistakes hold up: grade every file of tests/wrong/<exercise>/ and count the
failed cases that name the mistake the file makes (issue 14).

    python bench/diagnosis.py [--exercises sinusoidal,rope,...] [--json out.json]

A file's expected names are its stem, or the names on its docstring's "Names: a, b" line (real
code and combinations of mistakes). A failed case is right when it names mistakes and all of them
are expected; wrong when it names one that is not; unnamed otherwise. A file is "diagnosed as a
combination" when some failed case names two or more mistakes at once ("a+b").
"""

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXISTING = ["batches", "sinusoidal", "learned", "relative", "rope", "attention", "alibi"]


def expected_names(path):
    m = re.search(r"^Names: (.+)$", path.read_text(), re.M)
    if m:
        return {n.strip() for n in re.split(r"[,+]", m.group(1)) if n.strip()}
    return {path.stem}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--exercises", default=",".join(EXISTING))
    parser.add_argument("--json")
    parser.add_argument("--only", default="", help="a substring of the file names to grade")
    opts = parser.parse_args()

    from posgrade.kit import catalog, state
    from posgrade.grading import session as runner

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with runner.GradingSession(Path(tmp), runner.Limits(), device="auto") as grading:
            for name in opts.exercises.split(","):
                for path in sorted((ROOT / "tests" / "wrong" / name).glob("*.py")):
                    if opts.only and opts.only not in path.name:
                        continue
                    ws = Path(tempfile.mkdtemp(dir=tmp))  # a fresh workspace each: the standby worker is per folder
                    for ex in catalog.EXERCISES:
                        shutil.copyfile(state.kit_dir("solutions") / ex.file, ws / ex.file)
                    shutil.copyfile(path, ws / f"{name}.py")
                    t0 = time.perf_counter()
                    result = grading.grade(runner.GradeRequest(str(ws), [name], 7, "auto"), standby=True)
                    want = expected_names(path)
                    for case in result.exercises[0].failures:
                        got = set(case.mistake.split("+")) if case.mistake else set()
                        verdict = "right" if got and got <= want else "wrong" if got else "unnamed"
                        rows.append({"file": f"{name}/{path.stem}", "case": case.id, "kind": case.kind,
                                     "mistake": case.mistake, "verdict": verdict, "expected": sorted(want),
                                     "message": case.message})
                    print(f"{name}/{path.stem}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    failed = len(rows)
    right = sum(r["verdict"] == "right" for r in rows)
    wrong = [r for r in rows if r["verdict"] == "wrong"]
    files = {r["file"] for r in rows}
    combos = {r["file"] for r in rows if "+" in r["mistake"]}
    by_file = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)
    never = sorted(f for f, rs in by_file.items() if not any(r["verdict"] == "right" for r in rs))
    print(f"failed cases: {failed}; naming the right mistake: {right} ({100 * right / max(failed, 1):.1f}%); "
          f"naming a wrong one: {len(wrong)}; unnamed: {failed - right - len(wrong)}")
    print(f"wrong files: {len(files)}; diagnosed as combinations: {len(combos)} {sorted(combos)}")
    print(f"files never named right: {len(never)} {never}")
    from posgrade.diagnosis import mistakes

    known = {f"{e}/{m.name}" for e in opts.exercises.split(",") for m in mistakes.of(e)}
    catalog_rows = [r for r in rows if r["file"] in known or r["file"].split("/")[1].startswith("real_")]
    catalog_right = sum(r["verdict"] == "right" for r in catalog_rows)
    print(f"over files named after a known mistake or real code: {catalog_right} of {len(catalog_rows)} "
          f"({100 * catalog_right / max(len(catalog_rows), 1):.1f}%)")
    for r in wrong:
        print(f"  WRONG NAME {r['case']}: {r['mistake']} (expected {r['expected']})")
    if opts.json:
        Path(opts.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
