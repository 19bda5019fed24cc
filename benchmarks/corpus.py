"""A corpus of real size (~100 000 one-second clips, Speech Commands' order) assembled from the bundled clips, and
`train` and `audit` on it in fresh processes: peak memory and wall time, against the same on its first 10 000;
`train` once more with the features streamed from disk (`--feature-memory 64MiB`), as a corpus whose features do
not fit in memory would be.

The 1 536 bundled synth-kws clips (espeak-ng voices) are decoded once; variant k of every clip is that clip
through a seeded gain (-12 to +6 dB), a circular time shift of up to 100 ms, and white or pink noise at 5-30 dB
SNR, written as 16-bit 16 kHz WAV. Variants k, k + 20, k + 40, ... of a voice are the pseudo-speaker
``{speaker}~{k % 20}``: 2 560 speakers of ~39 clips each, as in Speech Commands v2 (105 829 clips, 2 618 speakers).
The 10 000-clip baseline is a seeded random tenth of the rows, as a 10 % subset of such a corpus would be: nearly
every speaker, with a tenth of their clips. Written once under --work (the manifest last, so an interrupted run
starts over): ~3.2 GB, about three minutes.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "datasets" / "synth-kws" / "manifest.csv"
_RATE = 16000
_SPEAKERS_PER_VOICE = 20


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f noise: white noise shaped in the frequency domain, unit variance."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    noise = np.fft.irfft(spectrum, n)
    return noise / noise.std()


def _variant(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gain = 10 ** (rng.uniform(-12, 6) / 20)
    shifted = np.roll(clip, int(rng.integers(-1600, 1601)))
    noise = _pink(rng, len(clip)) if rng.random() < 0.5 else rng.standard_normal(len(clip))
    power = max(float(np.mean(shifted**2)), 1e-8)
    noise *= np.sqrt(power / 10 ** (rng.uniform(5, 30) / 10))
    return np.clip((shifted + noise) * gain, -1, 1).astype(np.float32)


def real_size_corpus(folder: Path, n: int = 100_000, seed: int = 0) -> Path:
    """The manifest of ``n`` clips under ``folder`` (see the module docstring), written once."""
    import soundfile as sf

    manifest = folder / f"manifest-{n}.csv"
    if manifest.is_file():
        return manifest
    source = pd.read_csv(SOURCE)
    clips = [sf.read(SOURCE.parent / path, dtype="float32")[0] for path in source["path"]]
    rows = [(k, i) for k in range(-(-n // len(source))) for i in range(len(source))][:n]

    def write(start: int) -> list[dict[str, str]]:
        written = []
        for k, i in rows[start : start + 1000]:
            rng = np.random.default_rng([seed, k, i])
            relative = f"clips/{k:03d}/{i:04d}.wav"
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            sf.write(folder / relative, _variant(clips[i], rng), _RATE, subtype="PCM_16")
            original = source.iloc[i]
            written.append({"path": relative, "label": original["label"], "gender": original["gender"],
                            "accent": original["accent"],
                            "speaker": f"{original['speaker']}~{k % _SPEAKERS_PER_VOICE}"})  # fmt: skip
        return written

    with ThreadPoolExecutor(2) as pool:  # libsndfile and numpy release the GIL
        parts = list(pool.map(write, range(0, len(rows), 1000)))
    pd.DataFrame([row for part in parts for row in part]).to_csv(manifest, index=False)
    return manifest


def bench_corpus(
    work: Path, n: int = 100_000, baseline_n: int = 10_000, epochs: int = 3
) -> list[tuple[str, float, str]]:
    """`audit` of the bundled model and `train` (ds-cnn, a few epochs) on n clips and on the first baseline_n, each in
    a fresh process: peak RSS (VmHWM) and wall time. Target: audit peak RSS n / baseline_n <= 1.2."""
    from streaming import measured_audit, measured_command

    started = time.perf_counter()
    folder = work / "corpus"
    manifest = real_size_corpus(folder, n)
    small = folder / f"manifest-{n}-sample-{baseline_n}.csv"
    if not small.is_file():
        pd.read_csv(manifest).sample(baseline_n, random_state=0).sort_index().to_csv(small, index=False)
    print(f"corpus: {n} clips ready in {time.perf_counter() - started:.0f} s ({folder})")
    model = ROOT / "models" / "kws-ds-cnn" / "model.tflite"
    audits = {size: measured_audit(model, path, work / f"corpus-audit-{size}.json", "-g", "accent")
              for size, path in ((baseline_n, small), (n, manifest))}  # fmt: skip
    for size, audit in audits.items():
        assert audit["scored"] == size, f"the audit of {size} clips scored {audit['scored']}"
        print(f"audit {size} clips: peak RSS {audit['peak_kib'] / 1024:.0f} MiB, {audit['seconds']:.0f} s, "
              f"TensorFlow imported: {audit['tensorflow']}")  # fmt: skip
    trains = {}
    for name, path, limit in ((f"{baseline_n}", small, "4GiB"), (f"{n}", manifest, "4GiB"),
                              (f"{n} streamed", manifest, "64MiB")):  # fmt: skip
        out = work / f"corpus-train-{name.replace(' ', '-')}"
        shutil.rmtree(out, ignore_errors=True)
        trains[name] = measured_command("train", "--data", str(path), "--recipe", "ds-cnn", "--out", str(out),
                                        "--epochs", str(epochs), "--group", "gender", "--feature-memory", limit,
                                        "-q")  # fmt: skip
        summary = pd.read_json(out / "train_summary.json", typ="series")
        print(f"train {name} clips ({summary['split']['train']['files']} trained on, {epochs} epochs, features "
              f"{'streamed from disk' if summary['features_streamed_from_disk'] else 'in memory'}): peak RSS "
              f"{trains[name]['peak_kib'] / 1024:.0f} MiB, {trains[name]['seconds']:.0f} s (training itself "
              f"{summary['training_seconds']:.0f} s), final val accuracy {summary['final'].get('val_accuracy', 0):.3f}")  # fmt: skip
    ratio = audits[n]["peak_kib"] / audits[baseline_n]["peak_kib"]
    return [
        (f"audit peak RSS {n} / {baseline_n} clips (x, <= 1.2)", ratio, "PASS" if ratio <= 1.2 else "MISS"),
        (f"audit {n} clips peak RSS (MiB)", audits[n]["peak_kib"] / 1024, "INFO"),
        (f"audit {n} clips wall time (s)", audits[n]["seconds"], "INFO"),
        (f"audit {n} / {baseline_n} clips wall time (x)", audits[n]["seconds"] / audits[baseline_n]["seconds"], "INFO"),
        *((f"train {name} clips peak RSS (MiB)", train["peak_kib"] / 1024, "INFO") for name, train in trains.items()),
        *((f"train {name} clips wall time (s)", train["seconds"], "INFO") for name, train in trains.items()),
    ]
