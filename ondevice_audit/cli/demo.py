"""``ondevice-audit demo``: the whole tool on the bundled data and model, offline (see ``ondevice_audit.demo``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from ondevice_audit._extras import require_extra
from ondevice_audit.cli._app import app
from ondevice_audit.cli._progress import Quiet, RichProgress, stdout
from ondevice_audit.cli.report import write_sweep_reports
from ondevice_audit.cli.sweep import SweepDisplay, print_summary


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the reports and the sweep go.")] = Path("runs/demo"),
    root: Annotated[
        Path, typer.Option(help="The ondevice-audit checkout holding datasets/, models/, examples/.")
    ] = Path("."),
    quiet: Quiet = False,
) -> None:
    """Audit the bundled keyword spotter on held-out speakers, then sweep sample rate x features x pruning x
    quantization on the bundled data and say which choice drives reliability bias.

    Everything runs offline on the bundled synth-kws-neural dataset (Kokoro neural voices in simulated rooms:
    synthetic, not people), and ends with what the sweep found, in plain words. A rerun reuses the sweep's cache.
    """
    require_extra("train", "ondevice-audit demo")
    from ondevice_audit.demo import SYNTHETIC_DATA, find_demo_paths, run_demo_audit
    from ondevice_audit.report.table import TableFormat
    from ondevice_audit.sweep import load_matrix, run_sweep
    from ondevice_audit.sweep.finding import find
    from ondevice_audit.sweep.folder import SweepFolder

    started = time.perf_counter()
    console = stdout()
    paths = find_demo_paths(root)
    console.rule("1. Audit of the bundled model on the speakers it never heard")
    report = run_demo_audit(paths, out, progress=RichProgress())
    console.print(TableFormat().renderable(report))

    console.rule("2. Design-choice sweep (examples/matrix-demo.toml)")
    display = SweepDisplay()
    sweep_out = SweepFolder(out / "sweep")
    matrix = load_matrix(paths.matrix)
    if sweep_out.is_sweep() and sweep_out.read_state().get("matrix_digest") != matrix.digest():
        shutil.rmtree(sweep_out.path)  # the demo's own output from an older matrix; the cache keeps the work
    result = run_sweep(matrix, sweep_out.path, resume=sweep_out.is_sweep(), progress=display,
                       on_status=display.status)  # fmt: skip
    print_summary(console, result, result.seconds)

    console.rule("3. Reports")
    analysis = result.analysis
    chosen = analysis.least_biased_within
    described = "none (no cell finished)"
    if chosen is not None:
        row = result.results.set_index("cell").loc[chosen]
        settings = ", ".join(f"{factor.split('.')[-1]} {row[factor]}" for factor in analysis.varied)
        described = f"{chosen} ({settings}): {analysis.metric} {row[analysis.metric]:.3f}, RB {row['rb']:.3f}"
    console.print(
        f"Recommended variant (least biased within {analysis.within:g} % of the best {analysis.metric}): "
        f"[bold]{described}[/bold]"
    )
    write_sweep_reports(sweep_out.path, out / "sweep.html", None)
    for name in ("audit.html", "audit.md", "audit.json", "sweep.html", "sweep/summary.md", "sweep/results.csv"):
        console.print(f"  {out / name}")

    console.rule("4. What the sweep found")
    for sentence in find(analysis, matrix.data.bias_attribute).sentences():
        console.print(sentence, highlight=False)
    console.print(f"[dim]{SYNTHETIC_DATA}[/dim]", highlight=False)
    console.print(f"Demo finished in {time.perf_counter() - started:.0f} s.")
