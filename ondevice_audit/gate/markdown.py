"""The gate's verdict as GitHub-flavoured Markdown, for ``--markdown`` and ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from ondevice_audit.gate.interface import GateResult
from ondevice_audit.report.markdown import escape_markdown

__all__ = ["to_markdown"]

_HEADER = ("variant", "rule", "attribute", "value", "limit", "bound", "result", "reason")


def to_markdown(result: GateResult) -> str:
    """A heading with the verdict and one table row per outcome; every data value is escaped."""
    verdict = "passed" if result.passed else f"failed ({len(result.failures)} of {len(result.outcomes)} checks)"
    lines = [f"## ondevice-audit gate: {verdict}", "", "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for o in result.outcomes:
        cells = [
            escape_markdown(o.variant),
            escape_markdown(o.rule.kind.value),
            "(overall)" if o.attribute is None else escape_markdown(o.attribute),
            "undefined" if o.value is None else f"{o.value:.4g}",
            f"{o.limit:.4g}",
            o.bound.value,
            "✅ pass" if o.passed else "❌ **FAIL**",
            escape_markdown(o.reason),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
