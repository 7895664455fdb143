"""Saying what is wrong: comparing a learner's result with the reference, and naming the mistake.

    compare.py   tolerances, assert_close and friends (CaseFailure), and the "looks like" patterns
                 (transpose, factor, sign, shifted rows, swapped columns...) of a value mismatch
    mistakes/    per exercise, the catalog of known mistakes (mistakes/<exercise>.py) and diagnose(),
                 which replays a failed case's calls on mutants of the reference

May import: kit, results.
"""
