"""`make bench`: speed targets, each measured against a baseline in the same run and printed as a ratio.

- score: GroupMetricFrame (1000 speaker-clustered bootstrap resamples + 1000 permutations) on 100k
  predictions, 2 groups, vs Fairlearn's MetricFrame(n_boot=1000) on the same data.
  Targets: <= 2 s, >= 10x faster.
- inference: the audit's runtime loop (LiteRT / ONNX Runtime) over precomputed inputs vs a raw
  interpreter / session loop over the same inputs and batch size. Target: <= 1.25x.
- frontend: MFCC and log-mel of 2000 one-second clips, the batched front-end vs a per-clip librosa loop (target
  >= 3x, values within 1e-4), and vs loading the same features from the sweep's feature cache.
- sweep: the demo matrix (examples/matrix-demo.toml, 32 cells): a warm-cache rerun as a share of the cold
  sweep (target <= 5 %), and the cold sweep against running every cell alone from an empty cache (target
  >= 3x faster). Takes several minutes.
- startup: `ondevice-audit --help` wall time (median of 5 fresh processes; target < 1 s) against `python -c pass`,
  and `score` on a 10k-row predictions CSV (2 groups, 1000 bootstrap resamples) against the same scoring in-process,
  so the ratio is the CLI's start-up overhead.
- memory: peak RSS of `audit` (bundled ds-cnn, .tflite and .onnx) on 20 000 generated one-second clips (target
  < 2 GB, TensorFlow not imported), against the same audit on the first 2 000 clips: a ratio near 1 means memory
  does not grow with the corpus. The clips are cached under --work, so reruns skip writing them.
- ray (benchmarks/executors.py): the same 8-cell sweep on the local executor and on a local Ray instance, cold
  caches each: the overhead ratio Ray / local, and Ray's start-up alone. A measurement, not a target.
- detectors (benchmarks/detectors.py): a streaming int8 detector over 2 000 clips, the audit's streaming runtime
  vs a raw interpreter loop over the same frames (target <= 1.5x); the micro front-end vs calling
  pymicro-features directly (target <= 1.2x).
- sweep-profile (only with --only sweep-profile): where a cold sweep's time goes. The demo matrix's tasks run one
  by one in this process under cProfile (seconds per stage; the top functions per stage go to --work), next to
  what each spawned worker pays before its first task (importing the tool and TensorFlow).
- mitigation (only with --only mitigation): synth-kws with the female training speakers thinned to a 20 %
  share, one small model per mitigation (none, balanced, reweight, reweight-heldout); prints RB(gender) per
  mitigation with its CI and the paired change against none. A measurement, not a target: no verdict.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
_CLI = [sys.executable, "-m", "ondevice_audit"]


def _best_of(function, repeats: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeats):
        started = clock()
        function()
        times.append(clock() - started)
    return min(times)


def _predictions(n: int = 100_000, speakers: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    speaker = rng.integers(0, speakers, n)
    gender = np.where(speaker % 2 == 0, "female", "male")
    labels = np.array(["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_"])
    truth = labels[rng.integers(0, len(labels), n)]
    right = rng.random(n) < np.where(gender == "female", 0.85, 0.9)
    prediction = np.where(right, truth, labels[rng.integers(0, len(labels), n)])
    return pd.DataFrame({"label": truth, "prediction": prediction, "gender": gender, "speaker": speaker})


def bench_score() -> list[tuple[str, float, str]]:
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import matthews_corrcoef

    from ondevice_audit.metrics import GroupMetricFrame

    data = _predictions()

    def ours():
        GroupMetricFrame(y_true=data["label"], y_pred=data["prediction"], sensitive_features=data[["gender"]],
                         speakers=data["speaker"], metric="mcc", negative_labels=["_unknown_"], n_boot=1000,
                         n_perm=1000, seed=0)  # fmt: skip

    def fairlearn():
        MetricFrame(metrics=matthews_corrcoef, y_true=data["label"], y_pred=data["prediction"],
                    sensitive_features=data["gender"], n_boot=1000, ci_quantiles=[0.025, 0.975], random_state=0)  # fmt: skip

    ours_s = _best_of(ours, 3)
    print(f"score, ours: {ours_s:.2f} s (bootstrap 1000 speaker-clustered + 1000 permutations, all 8 metrics)")
    fair_s = _best_of(fairlearn, 1)
    print(f"score, Fairlearn MetricFrame(n_boot=1000), MCC only: {fair_s:.2f} s")
    return [
        ("score 100k predictions, 2 groups (s, target <= 2)", ours_s, "PASS" if ours_s <= 2 else "MISS"),
        ("score speed-up vs Fairlearn (x, target >= 10)", fair_s / ours_s, "PASS" if fair_s / ours_s >= 10 else "MISS"),
    ]


def _tiny_model(folder: Path) -> tuple[Path, Path, tuple[int, ...]]:
    from ondevice_audit import _tensorflow

    tf = _tensorflow.tensorflow()
    keras = _tensorflow.keras()
    import tf2onnx

    shape = (49, 10, 1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.Input(shape), keras.layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same", activation="relu"),
        keras.layers.DepthwiseConv2D((3, 3), padding="same", activation="relu"), keras.layers.Conv2D(64, 1, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(12, activation="softmax"),
    ])  # fmt: skip
    tflite, onnx = folder / "bench.tflite", folder / "bench.onnx"
    tflite.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    signature = (tf.TensorSpec((None, *shape), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=signature, opset=17, output_path=str(onnx))
    return tflite, onnx, shape


def bench_inference(n: int = 4000, batch: int = 64) -> list[tuple[str, float, str]]:
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from ondevice_audit.runtimes import load_runtime

    folder = Path(tempfile.mkdtemp())
    tflite, onnx, shape = _tiny_model(folder)
    inputs = np.random.default_rng(0).standard_normal((n, *shape)).astype(np.float32)

    def raw_litert():
        interpreter = Interpreter(model_path=str(tflite))
        detail = interpreter.get_input_details()[0]
        output = interpreter.get_output_details()[0]
        current = None
        for start in range(0, n, batch):
            chunk = inputs[start : start + batch]
            if current != len(chunk):
                interpreter.resize_tensor_input(detail["index"], [len(chunk), *shape])
                interpreter.allocate_tensors()
                current = len(chunk)
            interpreter.set_tensor(detail["index"], chunk)
            interpreter.invoke()
            interpreter.get_tensor(output["index"])

    def raw_onnx():
        session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for start in range(0, n, batch):
            session.run(None, {name: inputs[start : start + batch]})

    def ours(path):
        return lambda: load_runtime(path).run_all(inputs, batch)

    rows = []
    for label, raw, path in (("LiteRT", raw_litert, tflite), ("ONNX Runtime", raw_onnx, onnx)):
        raw_s = _best_of(raw, 3)
        ours_s = _best_of(ours(path), 3)
        ratio = ours_s / raw_s
        print(f"inference {label}: raw loop {raw_s:.3f} s, audit runtime {ours_s:.3f} s over {n} inputs")
        rows.append(
            (f"audit inference / raw {label} loop (x, target <= 1.25)", ratio, "PASS" if ratio <= 1.25 else "MISS")
        )
    return rows


def bench_sweep() -> list[tuple[str, float, str]]:
    """The demo matrix (32 cells on synth-kws-neural): a cold sweep, a warm rerun on its cache, and every cell run on
    its own from an empty cache (as one sweep per cell: features, training, pruning, export, audit each time)."""
    import dataclasses
    import shutil

    from ondevice_audit.sweep import load_matrix, run_sweep

    matrix = load_matrix(Path(__file__).parents[1] / "examples" / "matrix-demo.toml")
    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        started = time.perf_counter()
        run_sweep(matrix, folder / "cold", cache_dir=folder / "cache")
        cold = time.perf_counter() - started
        started = time.perf_counter()
        run_sweep(matrix, folder / "warm", cache_dir=folder / "cache")
        warm = time.perf_counter() - started
        started = time.perf_counter()
        for cell in matrix.cells:
            single = dataclasses.replace(matrix, cells=(dataclasses.replace(cell, index=0),))
            run_sweep(single, folder / f"alone-{cell.index}", cache_dir=folder / f"cache-{cell.index}")
        alone = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    cells = len(matrix.cells)
    print(f"sweep, {cells} cells: cold {cold:.1f} s, warm rerun {warm:.2f} s, every cell from scratch {alone:.1f} s "
          f"({alone / cells:.1f} s per cell)")  # fmt: skip
    warm_share = 100 * warm / cold
    speedup = alone / cold
    return [
        ("sweep warm rerun / cold run (%, target <= 5)", warm_share, "PASS" if warm_share <= 5 else "MISS"),
        ("sweep shared work vs every cell from scratch (x, target >= 3)", speedup, "PASS" if speedup >= 3 else "MISS"),
    ]


def bench_sweep_profile(work: Path) -> list[tuple[str, float, str]]:
    """The demo matrix cold, every task in this process in plan order, each stage under its own profiler."""
    import cProfile
    import pstats
    import shutil

    from ondevice_audit.sweep import load_matrix
    from ondevice_audit.sweep.cache import Cache
    from ondevice_audit.sweep.stages import build_plan, execute, init_worker, prepare_context

    worker_start = [sys.executable, "-c", "from ondevice_audit.sweep import stages; from ondevice_audit import "
                    "_tensorflow; _tensorflow.keras()"]  # fmt: skip
    start_s = _wall(worker_start, runs=3)
    matrix = load_matrix(ROOT / "examples" / "matrix-demo.toml")
    folder = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    profiles: dict[str, cProfile.Profile] = {}
    try:
        started = time.perf_counter()
        cache = Cache(folder / "cache")
        context = prepare_context(matrix, cache.root)
        plan = build_plan(context, cache)
        seconds["plan (read manifest, hash data, split)"] = time.perf_counter() - started
        init_worker(context)
        for key in sorted(plan.tasks, key=plan.priority().__getitem__):
            task = plan.tasks[key]
            profile = profiles.setdefault(task.stage, cProfile.Profile())
            started = time.perf_counter()
            profile.enable()
            _, error, _ = execute(task)
            profile.disable()
            seconds[task.stage] = seconds.get(task.stage, 0.0) + time.perf_counter() - started
            counts[task.stage] = counts.get(task.stage, 0) + 1
            if error:
                raise RuntimeError(f"{task.stage} task failed: {error}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    with (work / "sweep-profile.txt").open("w") as out:
        for stage, profile in profiles.items():
            out.write(f"\n===== {stage}: {counts[stage]} task(s), {seconds[stage]:.1f} s\n")
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
    total = sum(seconds.values())
    print(
        f"sweep profile, demo matrix cold in one process: {total:.1f} s; a spawned worker's start-up "
        f"(imports + TensorFlow) {start_s:.1f} s; top functions per stage in {work / 'sweep-profile.txt'}"
    )
    for stage, value in seconds.items():
        print(f"  {stage:40} {value:6.1f} s {100 * value / total:5.1f} %  ({counts.get(stage, 1)} task(s))")
    return [(f"sweep profile: {stage} (% of {total:.0f} s)", 100 * value / total, "INFO")
            for stage, value in seconds.items()]  # fmt: skip


def bench_mitigation() -> list[tuple[str, float, str]]:
    """RB(gender) under each mitigation, trained on an imbalanced split of synth-kws (one sweep, 4 cells)."""
    import shutil

    from ondevice_audit.sweep import load_matrix, run_sweep

    manifest = Path(__file__).parents[1] / "datasets" / "synth-kws" / "manifest.csv"
    folder = Path(tempfile.mkdtemp(prefix="bench-mitigation-"))
    matrix_file = folder / "matrix.toml"
    matrix_file.write_text(
        'architecture = "ds-cnn"\nmitigation = ["none", "balanced", "reweight", "reweight-heldout"]\n'
        f'[data]\nmanifest = "{manifest}"\ngroups = ["gender", "accent"]\nmetric = "accuracy"\n'
        'split = [0.7, 0.1, 0.2]\ntrain_imbalance = "gender=female:0.2"\n'
        "[training]\nepochs = 8\nbatch_size = 64\nlearning_rate = 0.003\nlatency_samples = 5\n"
    )
    try:
        started = time.perf_counter()
        result = run_sweep(load_matrix(matrix_file), folder / "run", cache_dir=folder / "cache", jobs=2)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    effects = {effect.level: effect for effect in result.analysis.mitigation}

    def interval(ci: tuple[float, float] | None) -> str:
        return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "[-]"

    print(f"mitigation on synth-kws, female training speakers thinned to 20 %, ds-cnn 8 epochs ({seconds:.0f} s)")
    print(f"{'mitigation':18} {'accuracy':>8} {'RB(gender) [95% CI]':>26} {'RB change vs none [95% CI]':>34}")
    rows = []
    for _, cell in result.results.iterrows():
        level = cell["mitigation"]
        rb = f"{cell['rb']:.3f} [{cell['rb_ci_low']:.3f}, {cell['rb_ci_high']:.3f}]"
        effect = effects.get(level)
        change = f"{effect.rb_change:+.3f} {interval(effect.rb_ci)}" if effect and effect.rb_change is not None else "-"
        print(f"{level:18} {cell['accuracy']:8.3f} {rb:>26} {change:>34}")
        if effect and effect.rb_change is not None:
            rows.append((f"mitigation {level}: RB(gender) change vs none", effect.rb_change, "INFO"))
    return rows


def _wall(command: list[str], runs: int = 5) -> float:
    """Median wall time of ``command`` over fresh processes (the first run warms the OS file cache)."""
    subprocess.run(command, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_startup(work: Path) -> list[tuple[str, float, str]]:
    """`--help` against an empty interpreter; `score` as a command against the same scoring in-process."""
    from ondevice_audit.audit import ScoreOptions, score_predictions

    python_s = _wall([sys.executable, "-c", "pass"])
    help_s = _wall([*_CLI, "--help"])
    score_help_s = _wall([*_CLI, "score", "--help"])
    print(f"startup: python -c pass {python_s:.3f} s, --help {help_s:.3f} s, score --help {score_help_s:.3f} s")
    work.mkdir(parents=True, exist_ok=True)
    predictions = work / "predictions-10k.csv"
    data = _predictions(n=10_000, speakers=200, seed=1)
    data.assign(speaker=data["speaker"].map("s{}".format)).to_csv(predictions, index=False)
    options = ScoreOptions(groups=("gender",), bootstrap=1000, permutations=1000)
    in_process_s = _best_of(lambda: score_predictions(predictions, options), 3)
    command = [*_CLI, "score", str(predictions), "-g", "gender", "--format", "json", "-o", str(work / "score.json")]
    command_s = _wall(command)
    print(f"score 10k predictions: command {command_s:.2f} s, in-process {in_process_s:.2f} s")
    return [
        ("--help wall time (s, target < 1)", help_s, "PASS" if help_s < 1 else "MISS"),
        ("--help / python -c pass (x)", help_s / python_s, "INFO"),
        ("score --help wall time (s, target < 1)", score_help_s, "PASS" if score_help_s < 1 else "MISS"),
        ("score 10k rows: command / in-process scoring (x)", command_s / in_process_s, "INFO"),
    ]


def bench_memory(work: Path, n: int = 20_000, baseline_n: int = 2_000) -> list[tuple[str, float, str]]:
    """Peak RSS of `audit` on n clips vs baseline_n clips, in fresh processes; TensorFlow must stay out."""
    from streaming import clip_corpus, measured_audit

    from ondevice_audit.export.metadata import read_metadata

    model_dir = ROOT / "models" / "kws-ds-cnn"
    labels = list(read_metadata(model_dir / "model.tflite").labels)
    folder = work / "clips-16k"
    started = time.perf_counter()
    manifest = clip_corpus(folder, n, labels)
    baseline = folder / f"manifest-{baseline_n}.csv"
    if not baseline.is_file():
        pd.read_csv(manifest).head(baseline_n).to_csv(baseline, index=False)
    print(f"memory: {n} clips ready in {time.perf_counter() - started:.1f} s ({folder})")
    rows = []
    for name in ("model.tflite", "model.onnx"):
        small = measured_audit(model_dir / name, baseline, work / "audit-small.json")
        large = measured_audit(model_dir / name, manifest, work / "audit-large.json")
        if small["code"] not in (0, None) or large["scored"] != n or small["scored"] != baseline_n:
            raise RuntimeError(f"audit of the generated clips with {name} did not score every clip")
        peak_mib, small_mib = large["peak_kib"] / 1024, small["peak_kib"] / 1024
        print(f"memory {name}: {n} clips peak {peak_mib:.0f} MiB in {large['seconds']:.0f} s, "
              f"{baseline_n} clips peak {small_mib:.0f} MiB in {small['seconds']:.0f} s, "
              f"tensorflow imported: {large['tensorflow'] or small['tensorflow']}")  # fmt: skip
        ok = peak_mib < 2048 and not (large["tensorflow"] or small["tensorflow"])
        rows += [
            (f"audit {name} {n} clips peak RSS (MiB, < 2048, no TF)", peak_mib, "PASS" if ok else "MISS"),
            (f"audit {name} peak RSS {n} / {baseline_n} clips (x)", peak_mib / small_mib, "INFO"),
        ]
    return rows


def bench_frontend(n: int = 2000) -> list[tuple[str, float, str]]:
    """MFCC and log-mel for n one-second clips: the batched front-end vs a per-clip librosa loop, and vs loading
    the same features from the sweep's feature cache (``np.savez`` per front-end, as ``sweep/stages.py`` writes)."""
    import librosa
    import soundfile as sf
    from threadpoolctl import threadpool_limits

    from ondevice_audit.frontend import AudioFrontendSpec, build_frontend
    from ondevice_audit.frontend.audio import decode_clip

    folder = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(folder / f"{i}.wav")
        sf.write(paths[-1], (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    rows = []
    for kind in ("mfcc", "logmel"):
        spec = AudioFrontendSpec(kind=kind)
        frontend = build_frontend(spec)

        def per_clip(chosen=paths, spec=spec, kind=kind):
            # BLAS on one thread, as the front-end runs it: on 2 cores the loop's small products are faster so,
            # and a busy machine does not slow them down with BLAS threads spinning for a core
            rows = []
            with threadpool_limits(1, user_api="blas"):
                for path in chosen:
                    power = librosa.feature.melspectrogram(
                        y=decode_clip(path, spec), sr=spec.sample_rate, n_fft=spec.win_length,
                        hop_length=spec.hop_length, win_length=spec.win_length, window=spec.window, center=False,
                        n_mels=spec.n_mels, fmin=spec.fmin,
                    )  # fmt: skip
                    db = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
                    rows.append((librosa.feature.mfcc(S=db, n_mfcc=spec.n_mfcc) if kind == "mfcc" else db).T[..., None])
            return np.stack(rows)

        frontend.transform(paths[:4])  # first calls build the filterbanks; neither side should pay for it
        per_clip(paths[:4])

        ours = frontend.transform(paths).inputs
        reference = per_clip()
        diff = float(np.abs(reference - ours).max())
        # Alternated, so both sides see the same moments of a shared machine; wall time and CPU seconds (all
        # threads: the work each side does, whatever else the machine is running), the best of 7 each.
        timings = {"ours": [], "loop": []}
        for _ in range(7):
            for side, run in (("ours", lambda frontend=frontend: frontend.transform(paths)), ("loop", per_clip)):
                wall, cpu = time.perf_counter(), time.process_time()
                run()
                timings[side].append((time.perf_counter() - wall, time.process_time() - cpu))
        ours_s, ours_cpu = (min(values) for values in zip(*timings["ours"], strict=True))
        loop_s, loop_cpu = (min(values) for values in zip(*timings["loop"], strict=True))
        cached = folder / f"features-{kind}.npz"
        np.savez(cached, train_x=ours, train_rows=np.arange(n, dtype=np.int64))

        def from_cache(cached=cached):
            with np.load(cached) as stored:
                return {name: stored[name] for name in stored.files}

        cache_s = _best_of(from_cache, 3)
        print(f"front-end {kind}: batched {ours_s:.2f} s ({ours_cpu:.2f} CPU s), per-clip librosa loop {loop_s:.2f} s "
              f"({loop_cpu:.2f} CPU s), max |diff| {diff:.1e}, from the sweep's feature cache {cache_s * 1000:.1f} ms")  # fmt: skip
        verdict = "PASS" if loop_s / ours_s >= 3 and diff <= 1e-4 else "MISS"
        rows.append((f"front-end {kind} {n} clips speed-up vs per-clip (x, >= 3)", loop_s / ours_s, verdict))
        rows.append((f"front-end {kind}: per-clip / batched CPU time (x)", loop_cpu / ours_cpu, "INFO"))
        rows.append((f"front-end {kind}: computing / loading from the cache (x)", ours_s / cache_s, "INFO"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only",
        choices=["score", "inference", "frontend", "startup", "memory", "sweep", "ray", "detectors", "sweep-profile",
                 "mitigation"],
        action="append",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ondevice-audit-bench",
        help="Kept between runs: the generated clip corpus of the memory benchmark.",
    )
    args = parser.parse_args()
    chosen = args.only or ["score", "inference", "frontend", "startup", "memory", "sweep", "ray", "detectors"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")  # fmt: skip
    rows = []
    if "score" in chosen:
        rows += bench_score()
    if "inference" in chosen:
        rows += bench_inference()
    if "frontend" in chosen:
        rows += bench_frontend()
    if "startup" in chosen:
        rows += bench_startup(args.work)
    if "memory" in chosen:
        rows += bench_memory(args.work)
    if "sweep" in chosen:
        rows += bench_sweep()
    if "ray" in chosen:
        from executors import bench_executors

        rows += bench_executors()
    if "detectors" in chosen:
        from detectors import bench_micro_frontend, bench_streaming

        rows += bench_streaming(args.work) + bench_micro_frontend(args.work)
    if "sweep-profile" in chosen:
        rows += bench_sweep_profile(args.work)
    if "mitigation" in chosen:
        rows += bench_mitigation()
    print()
    print(f"{'benchmark':62} {'value':>8}  verdict")
    for name, value, verdict in rows:
        print(f"{name:62} {value:8.2f}  {verdict}")


if __name__ == "__main__":
    main()
