"""The result model: what a grading run produced, as plain dataclasses.

Every reporter reads these, and `--json` writes RunResult.to_dict(); RunResult.from_dict()
reads it back (schema version SCHEMA). An exercise's score is its catalog points times the
share of its graded case points that passed; skipped cases (no CUDA device) are not graded.

Schema history: 1 the first; 2 adds CaseResult.private (an instructor's case from
`--cases`), ExerciseResult.revealed_before_pass (from the workspace's progress file) and
RunResult.error plus the derived "status" (a run the grader itself could not finish); 3 adds
CaseResult.mistake (the known mistake the learner's output matched, see posgrade.diagnosis.mistakes)
and CaseResult.figure (2-D slices of the expected and the learner's output for the HTML
report, only when one was asked for). from_dict() reads all three.
posgrade.reporting.formats.RESULT_JSON_SCHEMA is the JSON Schema of schema 3.
"""

from dataclasses import asdict, dataclass, field

SCHEMA = 3
READABLE_SCHEMAS = (1, 2, 3)


@dataclass
class CaseResult:
    id: str  # "sinusoidal::test_row_zero[cpu]": stable across runs, unique in a run
    exercise: str
    name: str  # the case function, e.g. "test_row_zero"; names the mistake it catches
    title: str  # one line for people, from the case's docstring
    params: str  # the parametrisation, e.g. "cpu-50-7"
    device: str  # "cpu", "cuda" or "" where the case does not depend on a device
    points: float
    score: float
    status: str  # passed | failed | skipped
    message: str = ""  # why it failed or was skipped
    kind: str = ""  # for failures: wrong | not-implemented | exception | import | timeout | crash | memory | output | internal
    seconds: float = 0.0
    private: bool = False  # an instructor's case (from `posgrade check --cases DIR`), not shipped with posgrade
    mistake: str = ""  # the name of the known mistake the learner's output matched (posgrade.diagnosis.mistakes)
    # for the HTML report, when asked for: {"what": str, "expected": [[float]], "got": [[float]]}, a 2-D
    # slice (at most FIGURE_CELLS a side) of the first value mismatch; None otherwise
    figure: dict = None


@dataclass
class ExerciseResult:
    name: str
    title: str
    points: float  # catalog weight
    earned: float  # case points passed
    graded: float  # case points not skipped
    cases: list = field(default_factory=list)
    revealed_before_pass: bool = False  # `posgrade reveal` showed the solution before this exercise passed

    @property
    def score(self):
        return round(self.points * self.earned / self.graded, 2) if self.graded else 0.0

    @property
    def passed(self):
        return self.graded > 0 and self.earned == self.graded

    @property
    def failures(self):
        return [c for c in self.cases if c.status == "failed"]

    def to_dict(self):
        d = asdict(self)
        d["score"], d["passed"] = self.score, self.passed
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(d["name"], d["title"], d["points"], d["earned"], d["graded"],
                   [CaseResult(**c) for c in d["cases"]], d.get("revealed_before_pass", False))


@dataclass
class RunResult:
    workspace: str
    seed: int
    devices: list  # the devices graded, e.g. ["cpu"] or ["cpu", "cuda"]
    exercises: list = field(default_factory=list)
    started: str = ""  # ISO 8601, UTC
    seconds: float = 0.0
    versions: dict = field(default_factory=dict)  # posgrade, torch, python
    notes: list = field(default_factory=list)  # e.g. "cuda: skipped, no CUDA device"
    schema: int = SCHEMA
    error: str = ""  # why the grader itself could not finish (first line: the reason); "" when it did

    @property
    def score(self):
        return round(sum(e.score for e in self.exercises), 2)

    @property
    def max_score(self):
        return sum(e.points for e in self.exercises)

    @property
    def passed(self):
        """Every graded case passed (the CLI's exit code 0), and the grader finished."""
        return not self.error and all(c.status != "failed" for e in self.exercises for c in e.cases)

    @property
    def status(self):
        """pass | fail | error (the grader could not finish: see `error`)."""
        return "error" if self.error else ("pass" if self.passed else "fail")

    def to_dict(self):
        d = asdict(self)
        d["exercises"] = [e.to_dict() for e in self.exercises]
        d["score"], d["max_score"], d["passed"] = self.score, self.max_score, self.passed
        d["status"] = self.status
        d["schema"] = SCHEMA  # always written as the current schema
        return d

    @classmethod
    def from_dict(cls, d):
        if d.get("schema") not in READABLE_SCHEMAS:
            raise ValueError(f"result schema {d.get('schema')!r} is not one of {READABLE_SCHEMAS}")
        fields = {k: d[k] for k in ("workspace", "seed", "devices", "started", "seconds", "versions", "notes")}
        return cls(exercises=[ExerciseResult.from_dict(e) for e in d["exercises"]], error=d.get("error", ""),
                   **fields)
