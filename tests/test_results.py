"""The result model: scores from case points, skipped cases not graded, JSON round trip."""

import json

import pytest

from posgrade.results import SCHEMA, CaseResult, ExerciseResult, RunResult


def case(status, points, score=None):
    return CaseResult(id=f"x::{status}{points}", exercise="x", name="test_x", title="t", params="", device="",
                      points=points, score=points if score is None else score, status=status)


def test_score_is_catalog_points_times_share_of_graded_points():
    ex = ExerciseResult("x", "X", points=10, earned=3, graded=4,
                        cases=[case("passed", 3), case("failed", 1, 0), case("skipped", 5, 0)])
    assert ex.score == 7.5 and not ex.passed and [c.status for c in ex.failures] == ["failed"]
    assert ExerciseResult("y", "Y", 10, 0, 0).score == 0.0


def test_json_round_trip_and_schema_check():
    run = RunResult(workspace="/w", seed=3, devices=["cpu"], notes=["n"],
                    exercises=[ExerciseResult("x", "X", 5, 2, 2, [case("passed", 2)])])
    d = json.loads(json.dumps(run.to_dict()))
    assert d["score"] == 5 and d["max_score"] == 5 and d["passed"] is True and d["schema"] == SCHEMA
    assert RunResult.from_dict(d) == run
    d["schema"] = SCHEMA + 1
    with pytest.raises(ValueError, match="schema"):
        RunResult.from_dict(d)
