"""The demo: the whole tool on the bundled data and model, offline, in one call.

1. audit the bundled keyword spotter (``models/kws-ds-cnn``) on the speakers it never heard;
2. run the demo design matrix (``examples/matrix-demo.toml``: sample rate x features x pruning sparsity x
   quantization x two seeds) on the bundled synth-kws-neural data (Kokoro voices in noisy rooms);
3. write the audit as JSON, Markdown and HTML, and the sweep's summary, next to each other in ``out``;
4. say in plain words which design choices moved RB beyond seed-to-seed noise (``sweep/finding.py``).

A rerun reuses the sweep's cache, so it takes seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ondevice_audit.audit import ScoreOptions, audit_model
from ondevice_audit.errors import UsageError
from ondevice_audit.progress import NullProgress, Progress
from ondevice_audit.report.document import to_json
from ondevice_audit.report.html import HtmlFormat
from ondevice_audit.report.markdown import MarkdownFormat

__all__ = ["SYNTHETIC_DATA", "DemoPaths", "find_demo_paths", "run_demo_audit"]

SYNTHETIC_DATA = (
    "The speakers are synthetic: Kokoro text-to-speech voices (a model trained on recordings of real people), "
    "mixed into new voices and placed in simulated rooms. Their gender and accent are voice labels, not people: "
    "these numbers show what the tool measures, not how the model would treat real speakers."
)
_MISSING = "cannot find the bundled {what} at {path}; run the demo from a checkout of ondevice-audit (or pass --root)"


@dataclass(frozen=True)
class DemoPaths:
    manifest: Path
    model: Path
    split: Path
    matrix: Path


def find_demo_paths(root: Path) -> DemoPaths:
    """The bundled dataset, model, its split and the demo matrix under ``root`` (a checkout)."""
    paths = DemoPaths(
        manifest=root / "datasets" / "synth-kws-neural" / "manifest.csv",
        model=root / "models" / "kws-ds-cnn" / "model.tflite",
        split=root / "models" / "kws-ds-cnn" / "split.csv",
        matrix=root / "examples" / "matrix-demo.toml",
    )
    for what, path in (("dataset", paths.manifest), ("model", paths.model), ("split", paths.split),
                       ("matrix", paths.matrix)):  # fmt: skip
        if not path.exists():
            raise UsageError(_MISSING.format(what=what, path=path))
    return paths


DEMO_OPTIONS = ScoreOptions(groups=("gender", "accent"))


def run_demo_audit(paths: DemoPaths, out: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Audit the bundled model on its held-out speakers; write audit.json/.md/.html into ``out``."""
    options = dataclasses.replace(DEMO_OPTIONS, split_file=paths.split, split="test")
    report = audit_model(paths.model, paths.manifest, options, progress=progress or NullProgress())
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit.json").write_text(to_json(report))
    (out / "audit.md").write_text(MarkdownFormat().format(report))
    (out / "audit.html").write_text(HtmlFormat().format(report))
    return report
