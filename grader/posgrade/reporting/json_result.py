"""posgrade's own result file: RunResult.to_dict() plus the summary, and its JSON Schema (schema 3)."""

import json

from posgrade.reporting.common import summary

def to_json(result):
    d = result.to_dict()
    d["summary"] = summary(result)
    return json.dumps(d, indent=2) + "\n"


_GRID = {"type": "array", "items": {"type": "array", "items": {"type": ["number", "null"]}}}  # rows of cells

_CASE_SCHEMA = {
    "type": "object",
    "required": ["id", "exercise", "name", "title", "params", "device", "points", "score", "status", "message",
                 "kind", "seconds", "private", "mistake"],
    "properties": {
        "id": {"type": "string", "description": "exercise::function[params], unique in a run"},
        "exercise": {"type": "string"},
        "name": {"type": "string", "description": "the case function; names the mistake it catches"},
        "title": {"type": "string"},
        "params": {"type": "string"},
        "device": {"enum": ["cpu", "cuda", ""]},
        "points": {"type": "number", "minimum": 0},
        "score": {"type": "number", "minimum": 0},
        "status": {"enum": ["passed", "failed", "skipped"]},
        "message": {"type": "string"},
        "kind": {"enum": ["", "wrong", "not-implemented", "exception", "import", "timeout", "crash", "memory",
                          "output", "internal"]},
        "seconds": {"type": "number", "minimum": 0},
        "private": {"type": "boolean", "description": "an instructor's case from --cases"},
        "mistake": {"type": "string", "description": "the known mistake the output matched; empty if none"},
        "figure": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["what", "expected", "got"],
            "properties": {"what": {"type": "string"},
                           "expected": _GRID, "got": _GRID},
        }], "description": "2-D slices of the expected and the learner's output (with --html only)"},
    },
}

RESULT_JSON_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "posgrade result, schema 3 (posgrade check --format json)",
    "type": "object",
    "required": ["schema", "workspace", "seed", "devices", "exercises", "started", "seconds", "versions", "notes",
                 "error", "score", "max_score", "passed", "status"],
    "properties": {
        "schema": {"const": 3},
        "workspace": {"type": "string"},
        "seed": {"type": "integer", "minimum": 0},
        "devices": {"type": "array", "items": {"enum": ["cpu", "cuda"]}},
        "started": {"type": "string", "description": "ISO 8601, UTC"},
        "seconds": {"type": "number", "minimum": 0},
        "versions": {"type": "object", "additionalProperties": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}},
        "error": {"type": "string", "description": "why the grader could not finish; empty when it did"},
        "score": {"type": "number", "minimum": 0},
        "max_score": {"type": "number", "minimum": 0},
        "passed": {"type": "boolean"},
        "status": {"enum": ["pass", "fail", "error"]},
        "summary": {"type": "string"},
        "exercises": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "title", "points", "earned", "graded", "cases", "score", "passed",
                         "revealed_before_pass"],
            "properties": {
                "name": {"type": "string"},
                "title": {"type": "string"},
                "points": {"type": "number", "minimum": 0},
                "earned": {"type": "number", "minimum": 0},
                "graded": {"type": "number", "minimum": 0},
                "score": {"type": "number", "minimum": 0},
                "passed": {"type": "boolean"},
                "revealed_before_pass": {"type": "boolean"},
                "cases": {"type": "array", "items": _CASE_SCHEMA},
            },
        }},
    },
}


