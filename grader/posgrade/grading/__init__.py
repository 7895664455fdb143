"""Grading: running the hidden cases against learner code that runs in another process.

    session.py   GradingSession: the one way check, watch and grade-batch grade (start or reuse a worker,
                 run the cases, collect a RunResult)
    process.py   the worker process seen from the grader: start, requests, time/memory limits, LearnerError
    learner.py   Learner (the learner's module as the cases see it, through the worker) and Reference
    worker.py    the worker process itself (`python -m posgrade.grading.worker`): imports and runs learner code
    plugin.py    the pytest plugin: fixtures (learner, ref, device, gen, seed) and outcomes -> RunResult
    casekit.py   helpers for writing cases (points, randn, expect_error, assert_fast)
    cases/       the hidden cases, test_<exercise>.py

May import: diagnosis, kit, results.
"""
