"""JUnit XML of a check report: one testcase per rule, a failure naming the failing ids. CI
systems (GitLab, Jenkins, GitHub test reporters) read this format."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .check import CheckReport, RuleOutcome, show_value

SUITE = "ffattr check"


def failure_text(outcome: RuleOutcome) -> str:
    """Every failing id with its value, one per line."""
    lines = [outcome.reason]
    lines += [f"{item_id}: {show_value(outcome.rule, v)}" for item_id, v in outcome.failing]
    return "\n".join(lines)


def junit_xml(report: CheckReport) -> str:
    """The report as a JUnit XML document (UTF-8 text)."""
    failures = sum(not o.passed for o in report.outcomes)
    suites = ET.Element("testsuites", name=SUITE, tests=str(len(report.outcomes)), failures=str(failures))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"{SUITE} {report.source}".strip(),
        tests=str(len(report.outcomes)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (("file", report.source), ("items", report.n_rows), ("ok", report.n_ok)):
        ET.SubElement(props, "property", name=name, value=str(value))
    for outcome in report.outcomes:
        case = ET.SubElement(suite, "testcase", classname="ffattr.check", name=outcome.rule.text)
        if not outcome.passed:
            ids = ", ".join(i for i, _ in outcome.failing[:20])
            more = f" (+{len(outcome.failing) - 20} more)" if len(outcome.failing) > 20 else ""
            message = f"{outcome.reason}" + (f"; failing ids: {ids}{more}" if ids else "")
            failure = ET.SubElement(case, "failure", message=message, type="RuleFailed")
            failure.text = failure_text(outcome)
        else:
            ET.SubElement(case, "system-out").text = outcome.reason
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


__all__ = ["junit_xml"]
