"""``ondevice-audit explain``: which layers make a compressed variant biased, and the smallest fix."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

import ondevice_audit.cli._options as opt
from ondevice_audit.cli._app import app
from ondevice_audit.cli._params import options_from
from ondevice_audit.cli._progress import Quiet, RichProgress, stderr
from ondevice_audit.explain.render import ExplainFormat, render
from ondevice_audit.outputs import check_output, write_text
from ondevice_audit.scoring import ScoreOptions

_EXPLAIN = "Explanation"
_TopLayers = Annotated[
    int, typer.Option(min=1, help="Try undoing the top 1..N ranked layers.", rich_help_panel=_EXPLAIN)
]
_CalibrationData = Annotated[
    Path | None,
    typer.Option(help="Manifest int8 was calibrated on (as export --data); every row of it. Default: as export calibrates, the training split of --data (--split-file, or the split.csv beside the base), else every row of --data.",
                 rich_help_panel=_EXPLAIN),
]  # fmt: skip
_CalibrationSamples = Annotated[
    int, typer.Option(min=1, help="Calibration inputs, as export draws them.", rich_help_panel=_EXPLAIN)
]
_LatencySamples = Annotated[
    int, typer.Option(min=1, help="Single-sample inferences timed per model.", rich_help_panel=_EXPLAIN)
]


@app.command()
@options_from(opt.SCORING_OPTIONS)
@options_from(opt.FRONTEND_OPTIONS)
@options_from(opt.EXPLAIN_TASK_OPTIONS)
def explain(
    variant: Annotated[
        Path,
        typer.Argument(
            help="The compressed model: an int8 .tflite (quantization) or a pruned Keras model, or a sweep "
            "cell folder runs/NAME/cells/ID."
        ),
    ],  # fmt: skip
    base: Annotated[
        Path,
        typer.Option(
            "--base", help="Its float / dense base with the same front-end: Keras, float32 .tflite, or a cell."
        ),
    ],
    data: Annotated[Path, typer.Option("--data", "-d", help="Manifest CSV: path, label, group columns, speaker.")],
    split_file: Annotated[
        Path | None, typer.Option(help="Explain only the rows this file assigns to --split (train writes split.csv).")
    ] = None,
    split: Annotated[str, typer.Option(help="Which split of --split-file to explain.")] = "test",
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the candidate models and explain.json (default: explain-<variant name>)."),
    ] = None,
    top_layers: _TopLayers = 3,
    calibration_data: _CalibrationData = None,
    calibration_samples: _CalibrationSamples = 200,
    calibration_seed: Annotated[int, typer.Option(help="As export --seed.", rich_help_panel=_EXPLAIN)] = 0,
    latency_samples: _LatencySamples = 20,
    labels: opt.Labels = None,
    frontend: opt.FrontendPlugin = None,
    trust_model: opt.TrustModel = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Inference batch size.")] = 64,
    fmt: Annotated[ExplainFormat, typer.Option("--format", "-f", help="Report format.", case_sensitive=False)] = (
        ExplainFormat.table
    ),
    output: opt.Output = None,
    frontend_choice: opt.FrontendChoice = opt.NO_FRONTEND,
    score_options: ScoreOptions = opt.SCORING,
    task_choice: opt.TaskChoice = opt.NO_TASK,
    quiet: Quiet = False,
) -> None:
    """Explain why VARIANT serves a group worse than BASE: per layer and group, the layer's quantization (or
    pruning) error, ranked by how much more it hurts the worse-off group, with speaker-bootstrap intervals.

    Then undo the top-ranked layers one, two, three at a time (int8 with those layers kept in float; pruned with
    those layers restored dense), audit each candidate on the same held-out clips with the paired speaker
    bootstrap, and recommend the smallest whose RB is within the base's interval, with its size and latency.
    The candidates and explain.json are written to --out.

    A detector (--task detect --positive-label WORD, or its metadata) is judged by its metric (default tpr) at
    one threshold for every group (--threshold, or --at-far / --at-fa-per-hour chosen on the population's
    negatives), as audit judges it. Streaming models are refused.
    """
    from ondevice_audit.explain.job import ExplainOptions, explain_variant
    from ondevice_audit.model_io import ModelOptions

    options = dataclasses.replace(score_options, split_file=split_file, split=split if split_file else None)
    model_options = ModelOptions(frontend=frontend_choice.spec(), frontend_plugin=frontend, labels_file=labels,
                                 trust_model=trust_model, batch_size=batch_size, task=task_choice.task,
                                 detector=task_choice.detector)  # fmt: skip
    folder = out or Path(f"explain-{variant.resolve().name.replace('.', '-')}")
    inputs = {"variant": variant, "base": base, "manifest": data, "split file": split_file, "labels file": labels}
    check_output(output, "--report-file", inputs, {"--report-file": output, "explain.json": folder / "explain.json"})
    settings = ExplainOptions(folder, top_layers, calibration_data, calibration_samples, calibration_seed,
                              latency_samples)  # fmt: skip
    document = explain_variant(variant, base, data, options, settings, model_options, RichProgress())
    write_text(folder / "explain.json", json.dumps(document, indent=2) + "\n")
    text = render(document, fmt, color=output is None and sys.stdout.isatty())
    if output is None:
        sys.stdout.write(text)
    else:
        write_text(output, text)
    stderr.print(f"Candidates and explain.json in {folder}", highlight=False)
