"""JUnit XML, the one test-report format every CI shows natively (Jenkins, GitLab, GitHub test reporters).

One ``<testsuite>`` per variant, one ``<testcase>`` per rule outcome, a ``<failure>`` when it failed.
ElementTree escapes markup; characters XML 1.0 cannot hold at all (control characters a group name could
carry) are replaced, so the file always parses.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ondevice_audit.gate.interface import GateResult, RuleOutcome

__all__ = ["SUITE_NAME", "to_junit"]

SUITE_NAME = "ondevice-audit gate"
FAILURE_TYPE = "GateRuleFailed"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def to_junit(result: GateResult) -> str:
    """The result as a JUnit XML document (UTF-8 text with its declaration)."""
    failures = len(result.failures)
    root = ET.Element(
        "testsuites", name=SUITE_NAME, tests=str(len(result.outcomes)), failures=str(failures), errors="0"
    )
    variants = dict.fromkeys(o.variant for o in result.outcomes)
    for variant in variants:
        outcomes = [o for o in result.outcomes if o.variant == variant]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml(variant),
            tests=str(len(outcomes)),
            failures=str(sum(not o.passed for o in outcomes)),
            errors="0",
            skipped="0",
        )
        for outcome in outcomes:
            case = ET.SubElement(suite, "testcase", name=_xml(outcome.name), classname=_xml(variant))
            if outcome.passed:
                ET.SubElement(case, "system-out").text = _xml(_details(outcome))
            else:
                failure = ET.SubElement(case, "failure", message=_xml(outcome.reason), type=FAILURE_TYPE)
                failure.text = _xml(_details(outcome))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _details(outcome: RuleOutcome) -> str:
    value = "undefined" if outcome.value is None else f"{outcome.value:.6g}"
    return (
        f"rule {outcome.rule.label}: value {value} ({outcome.bound.value}), limit {outcome.limit:.6g}\n{outcome.reason}"
    )


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
