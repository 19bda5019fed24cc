"""The sweep's executors on one machine: the same matrix on the local process pool and on a local Ray instance.

Half the demo matrix (16 kHz only: MFCC/log-mel x pruning 0/50 % x f32/int8 x 2 seeds = 16 cells on
synth-kws-neural), each
executor from an empty cache with ``jobs`` workers, each run starting its own workers (and Ray its own
instance), as the CLI does; ``repeats`` rounds in alternating order, best of each, so neither side gets the
quieter moments of a shared machine. Ray's start-up (``ray.init`` of a local instance plus the first task's round trip)
is timed on its own. A measurement of overhead, not a target: Ray pays off on more than one machine.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).parents[1]


def _matrix(folder: Path) -> Path:
    text = (_ROOT / "examples" / "matrix-demo.toml").read_text()
    manifest = _ROOT / "datasets" / "synth-kws-neural" / "manifest.csv"
    text = text.replace("sample_rate = [8000, 16000]", "sample_rate = 16000")
    text = text.replace('manifest = "../datasets/synth-kws-neural/manifest.csv"', f'manifest = "{manifest}"')
    path = folder / "matrix.toml"
    path.write_text(text)
    return path


def _ray_startup(jobs: int) -> float:
    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=jobs, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.get(ray.remote(lambda: None).remote())
    seconds = time.perf_counter() - started
    ray.shutdown()
    return seconds


def bench_executors(jobs: int = 2, repeats: int = 2) -> list[tuple[str, float, str]]:
    from ondevice_audit.sweep import load_matrix, run_sweep

    folder = Path(tempfile.mkdtemp(prefix="bench-executors-"))
    try:
        matrix = load_matrix(_matrix(folder))
        seconds: dict[str, float] = {}
        for round_ in range(repeats):
            for executor in ("local", "ray") if round_ % 2 == 0 else ("ray", "local"):
                run = folder / f"{executor}-{round_}"
                started = time.perf_counter()
                result = run_sweep(matrix, run / "out", cache_dir=run / "cache", jobs=jobs, executor=executor)
                elapsed = time.perf_counter() - started
                assert (result.results["status"] == "ok").all(), result.results["error"].tolist()
                print(f"executors, round {round_ + 1}: {executor} {elapsed:.1f} s")
                seconds[executor] = min(elapsed, seconds.get(executor, elapsed))
                shutil.rmtree(run)
        startup = _ray_startup(jobs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ratio = seconds["ray"] / seconds["local"]
    print(f"executors, {len(matrix.cells)} cells, --jobs {jobs}, cold caches, best of {repeats}: local "
          f"{seconds['local']:.1f} s, ray {seconds['ray']:.1f} s (a local Ray instance alone starts in "
          f"{startup:.1f} s)")  # fmt: skip
    return [
        (f"sweep on Ray / local executor, {len(matrix.cells)} cells cold (x)", ratio, "INFO"),
        ("Ray local instance start-up + first task (s)", startup, "INFO"),
    ]
