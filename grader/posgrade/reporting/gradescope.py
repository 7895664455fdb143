"""Gradescope's results.json (their specs.md), with the instructor's case visibility."""

import re
from dataclasses import dataclass, field

from posgrade.reporting.common import _exact_sum, _units, reveal_notes, reveal_notes_for, summary, test_name, weighted

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
DEFAULT_PRIVATE_VISIBILITY = "after_due_date"


def _pattern(text):
    """A rule pattern: `*` any text, `?` one character, everything else literal (brackets too)."""
    return re.compile("".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text) + r"\Z")


@dataclass
class Visibility:
    """Which Gradescope visibility each case gets; see README, "Case visibility on Gradescope"."""

    default: str = "visible"
    private: str = DEFAULT_PRIVATE_VISIBILITY
    results: str = ""  # Gradescope's top-level `visibility`; "" leaves it to Gradescope
    stdout: str = ""  # Gradescope's `stdout_visibility`
    rules: list = field(default_factory=list)  # (pattern text, compiled, visibility), in file order
    source: str = ""

    def of(self, case):
        seen = self.private if case.private else self.default
        keys = (case.id, case.id.split("[", 1)[0], case.exercise)
        for _, rx, vis in self.rules:
            if any(rx.match(k) for k in keys):
                seen = vis  # the last matching rule wins
        return seen

    def unused_rules(self, result):
        cases = [c for e in result.exercises for c in e.cases]
        return [text for text, rx, _ in self.rules
                if not any(rx.match(k) for c in cases for k in (c.id, c.id.split("[", 1)[0], c.exercise))]


def to_gradescope(result, visibility=None):
    """Gradescope's results.json (their specs.md): a test per graded case with its weighted
    score and the visibility the instructor's file gives it; the top-level output is a summary
    that counts only what a learner can see."""
    vis = visibility or Visibility()
    out = {
        "score": 0.0 if result.error else result.score,
        "execution_time": max(0, round(result.seconds)),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "tests": [],
        "extra_data": {"posgrade": result.versions.get("posgrade", ""), "seed": result.seed,
                       "devices": result.devices, "status": result.status,
                       "revealed_before_pass": [e.name for e in result.exercises if e.revealed_before_pass]},
    }
    if vis.results:
        out["visibility"] = vis.results
    if vis.stdout:
        out["stdout_visibility"] = vis.stdout
    if result.error:
        reason, _, detail = result.error.partition("\n")
        out["output"] = f"Grading failed, so this submission has 0 points for now: {reason}"
        out["tests"] = [
            {"name": "posgrade: grading failed", "score": 0.0, "max_score": result.max_score, "status": "failed",
             "output": reason, "visibility": "visible"},
            {"name": "posgrade: grading failed (details for the instructor)", "status": "failed",
             "output": result.error, "visibility": "hidden"},
        ]
        return out
    hidden = set()
    for number, ex in enumerate(result.exercises, 1):
        if ex.revealed_before_pass:
            out["tests"].append({
                "name": f"{ex.name}: reference solution revealed before passing", "status": "failed",
                "output": reveal_notes_for(ex), "visibility": "visible", "tags": [ex.name, "revealed-before-pass"],
                "number": f"{number}.0"})
        for i, (case, score, max_score) in enumerate(weighted(ex), 1):
            seen = vis.of(case)
            if seen != "visible":
                hidden.add(case.id)
            test = {"name": test_name(case), "number": f"{number}.{i}", "score": score, "max_score": max_score,
                    "status": "passed" if case.status == "passed" else "failed", "visibility": seen,
                    "tags": [case.exercise] + (["private"] if case.private else []),
                    "extra_data": {"id": case.id, "kind": case.kind, "private": case.private}}
            if case.message:
                test["output"] = case.message
            out["tests"].append(test)
    # the top-level score is the sum of the tests' scores, rounded the same way, so the two agree exactly
    scored = [t for t in out["tests"] if "score" in t]
    out["score"] = sum(_units(t["score"]) for t in scored) / 10 ** 4
    _exact_sum(scored, out["score"])
    lines = [summary(result, hidden=frozenset(hidden))] + result.notes + reveal_notes(result)
    out["output"] = "\n".join(lines)
    return out
