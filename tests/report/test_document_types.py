"""The report's TypedDicts and its JSON Schema describe the same document, and 1.0 reports still validate."""

from __future__ import annotations

import copy
import typing

import pytest

from ondevice_audit.report import document_types as types
from ondevice_audit.report.document import SCHEMA_VERSION, schema, validate


def _keys(typed: type) -> set[str]:
    return set(typing.get_type_hints(typed))


def _properties(*path: str) -> set[str]:
    node = schema()
    for key in path:
        node = node[key]
    return set(node["properties"])


@pytest.mark.parametrize(
    ("typed", "path"),
    [
        (types.Group, ("$defs", "group")),
        (types.Bias, ("properties", "attributes", "items", "properties", "rb")),
        (types.Gap, ("properties", "attributes", "items", "properties", "gap")),
        (types.Attribute, ("properties", "attributes", "items")),
        (types.Overall, ("properties", "overall")),
        (types.Samples, ("properties", "samples")),
        (types.Report, ()),
    ],
)
def test_typed_dicts_and_schema_name_the_same_keys(typed: type, path: tuple[str, ...]) -> None:
    assert _keys(typed) == _properties(*path)


def test_a_1_0_report_still_validates(tmp_path) -> None:
    """1.1 and 1.2 only added fields: a report without them (as 1.0 wrote them) is still read."""
    from typer.testing import CliRunner

    from ondevice_audit.cli import app

    data = tmp_path / "p.csv"
    data.write_text("label,prediction,g,speaker\n" + "".join(f"a,{'ab'[i % 3 == 0]},{'xy'[i % 2]},s{i % 6}\n"
                                                               for i in range(60)))  # fmt: skip
    result = CliRunner().invoke(app, ["score", str(data), "-g", "g", "-f", "json", "--min-group-size", "1"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)
    assert report["schema_version"] == SCHEMA_VERSION == "1.2"
    validate(report)
    old = copy.deepcopy(report)
    old["schema_version"] = "1.0"
    old["samples"].pop("inputs", None)
    for attribute in old["attributes"]:
        attribute.pop("gap")
        for key in ("groups", "mean", "mean_ci", "permutation_mean"):
            attribute["rb"].pop(key)
        for group in attribute["groups"]:
            group.pop("support")
            group.pop("left_out")
    validate(old)
