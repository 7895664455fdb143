"""The grading session: what `check`, `watch` and `grade-batch` all call to grade a workspace."""

from dataclasses import dataclass, field

from posgrade.grading.process import LearnerError, Limits, start_worker  # noqa: F401  (the session's vocabulary)


@dataclass
class GradeRequest:
    """What to grade and how; plain data so the CLI and tests build it the same way."""

    workspace: str
    exercises: list = field(default_factory=list)
    seed: int = 0
    device: str = "auto"  # cpu | cuda | all | auto
    extra_cases: list = field(default_factory=list)  # more case files to run (instructor cases)
    figures: bool = False  # keep 2-D slices of mismatched outputs (CaseResult.figure) for an HTML report


def grade(request, worker=None):
    """Run the hidden cases of request.exercises against the workspace; return a RunResult."""
    from posgrade.grading import plugin

    own = worker is None
    if own:
        worker = start_worker(request.workspace, device=request.device)
    try:
        return plugin.run_cases(request, worker)
    finally:
        if own:
            worker.close()
