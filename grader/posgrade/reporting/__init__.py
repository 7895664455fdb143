"""Reporting: one RunResult rendered for people and for the machines of classrooms.

    terminal.py     the terminal report (and check's full text: pass mark, notes)
    html.py         the self-contained HTML page with heatmaps
    json_result.py  posgrade's own JSON (schema 3) and its JSON Schema
    gradescope.py, junit.py, github.py, exercism.py   one module per classroom format
    formats.py      the registry: format name -> renderer, default paths, writing result files
    common.py       what the formats share (weighted scores, summary, escaping, templates' environment)
    templates/      jinja2 templates of every text layout (and of the CI files classroom/ writes)

May import: grading, diagnosis, kit, results (in practice: kit and results).
"""
