"""JUnit XML for CI systems (the Surefire/xunit dialect)."""

import datetime
import re
import xml.etree.ElementTree as ET

from posgrade.reporting.common import reveal_notes_for, split_output

# what XML 1.0 cannot hold (C0 controls but tab/newline/return, surrogates, U+FFFE/U+FFFF), plus
# DEL and the C1 controls, which XML 1.0 only discourages (XML 1.1 needs them escaped)
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _visible(char):
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _xml(text):
    """Text that XML 1.0 can hold and a viewer shows as it was: a control character (NUL, ESC, ...)
    becomes its visible Python escape (ESC -> `\\x1b`), never U+FFFD, which hides what it was."""
    return _XML_BAD.sub(lambda m: _visible(m.group()), str(text))


def to_junit(result):
    """JUnit XML (the common Surefire/xunit dialect): <testsuites> of one <testsuite> per
    exercise, a <testcase> per case; wrong answers are <failure>, learner code that raised,
    crashed, hung or failed to import is <error>, CUDA cases without a GPU are <skipped>.
    Valid against Jenkins' xunit junit-10.xsd (tests/xsd/): in each <testsuite> the <properties>
    come first, then the <testcase>s, then its <system-out>; in a <testcase> the <failure>,
    <error> or <skipped> comes before its <system-out>."""
    stamp = result.started or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    root = ET.Element("testsuites", name="posgrade")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def suite(name, cases_time):
        return ET.SubElement(root, "testsuite", name=name, timestamp=stamp, time=f"{cases_time:.3f}")

    if result.error:
        s = suite("posgrade", result.seconds)
        tc = ET.SubElement(s, "testcase", classname="posgrade", name="grading", time=f"{result.seconds:.3f}")
        reason = result.error.splitlines()[0]
        ET.SubElement(tc, "error", message=_xml(f"grading failed: {reason}"), type="internal").text = _xml(result.error)
        s.set("tests", "1"), s.set("failures", "0"), s.set("errors", "1"), s.set("skipped", "0")
        totals["tests"] += 1
        totals["errors"] += 1
    for ex in result.exercises:
        if result.error and not ex.cases:
            continue
        s = suite(ex.name, sum(c.seconds for c in ex.cases))
        props = ET.SubElement(s, "properties")
        for k, v in (("points", f"{ex.points:g}"), ("score", f"{ex.score:g}"), ("seed", str(result.seed)),
                     ("devices", ",".join(result.devices)),
                     ("revealed_before_pass", "true" if ex.revealed_before_pass else "false")):
            ET.SubElement(props, "property", name=k, value=v)
        for note in result.notes:  # e.g. "learner code was not sandboxed: ...", in every format
            ET.SubElement(props, "property", name="note", value=_xml(note))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for case in ex.cases:
            name = case.id.split("::", 1)[1]
            tc = ET.SubElement(s, "testcase", classname=f"posgrade.{ex.name}", name=_xml(name),
                               time=f"{case.seconds:.3f}")
            counts["tests"] += 1
            if case.status == "skipped":
                ET.SubElement(tc, "skipped", message=_xml(case.message or "skipped"))
                counts["skipped"] += 1
            elif case.status == "failed":
                explanation, printed = split_output(case.message)
                tag = "failure" if case.kind in ("wrong", "not-implemented") else "error"
                first = explanation.splitlines()[0] if explanation else "failed"
                ET.SubElement(tc, tag, message=_xml(f"{case.title}: {first}"),
                              type=case.kind or "failed").text = _xml(explanation)
                if printed:
                    ET.SubElement(tc, "system-out").text = _xml(printed)
                counts["failures" if tag == "failure" else "errors"] += 1
        for k, v in counts.items():
            s.set(k, str(v))
            totals[k] += v
        out = [f"{ex.name}: {ex.score:g} / {ex.points:g}"]
        if ex.revealed_before_pass:
            out.append("NOTE: " + reveal_notes_for(ex))
        ET.SubElement(s, "system-out").text = _xml("\n".join(out))
    # Jenkins' xunit junit-10.xsd allows only name, time, tests, failures and errors here (no skipped:
    # each <testsuite> carries its own)
    for k in ("tests", "failures", "errors"):
        root.set(k, str(totals[k]))
    root.set("time", f"{result.seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


