"""The bundled model and data: the audit in the model card (models/kws-ds-cnn/audit.json) is reproducible."""

import json
from pathlib import Path

import pytest

from ondevice_audit.demo import find_demo_paths, run_demo_audit

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_audit_reproduces_the_model_card(tmp_path):
    paths = find_demo_paths(ROOT)
    report = run_demo_audit(paths, tmp_path)
    card = json.loads((ROOT / "models" / "kws-ds-cnn" / "audit.json").read_text())
    assert report["overall"] == card["overall"]
    assert report["attributes"] == card["attributes"]
    assert report["model"]["sha256"] == card["model"]["sha256"]
    assert report["overall"]["n"] == 456 and report["overall"]["n_speakers"] == 38
    for name in ("audit.json", "audit.md", "audit.html"):
        assert (tmp_path / name).stat().st_size > 0


def test_demo_paths_are_checked(tmp_path):
    with pytest.raises(Exception, match="cannot find the bundled dataset"):
        find_demo_paths(tmp_path)
