"""Detectors that hear a clip a few frames at a time, as always-on devices run them.

A *streaming* model takes a short window of feature frames per call (``[1, 3, 40]`` for microWakeWord) and
keeps state between calls in resource variables; a *windowed* model is stateless and takes a longer window
(a one-second model run over three seconds of padded audio). Either way a clip's frames are fed in steps:
windows of the model's input length every ``hop`` frames (for a stateful model, the window length: the state
carries the past), each call's probability is smoothed with the mean of the last ``smooth`` calls, as wake-word
engines do, and the clip's score is the highest smoothed probability. A stateful model starts every clip from
a freshly loaded interpreter: LiteRT's ``reset_all_variables`` does not reset resource variables, so state
would leak from one clip into the next.

``Stepping`` is the one definition of the windows and of a clip's score; who makes the calls differs. Here,
``StreamingRuntime`` makes them on a runtime of this process. On a target (``targets/remote.py``), the host cuts
the windows and reduces the outputs, and the device runner only makes the calls: a stateful model's clips go in
a ``stream`` request (each clip's calls in order on a fresh interpreter there), a stateless model's windows in
an ordinary batch.

``DetectorOutput`` says how a model's output is a probability: which column (a two-class softmax's positive
class) and whether it is a logit (``--output-is-logit`` applies a sigmoid).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.runtimes.interface import LoadedModel, Runtime, fixed_shape

__all__ = ["DetectorOutput", "StreamSettings", "Stepping", "StreamingRuntime", "streamed_model"]

_TOLERANCE = 1e-4


@dataclass(frozen=True)
class DetectorOutput:
    column: int = 0
    """The column of the chosen output that holds the positive class."""
    logit: bool = False

    def probability(self, scores: np.ndarray) -> np.ndarray:
        """``(n, outputs)`` scores to ``(n,)`` probabilities; a one-line error for values that are not ones."""
        if scores.ndim != 2 or not 0 <= self.column < scores.shape[1]:
            raise UsageError(f"the model's output has {scores.shape[-1]} column(s); column {self.column} is not one")
        values = scores[:, self.column].astype(np.float64)
        if self.logit:
            return 1.0 / (1.0 + np.exp(-values))
        finite = values[np.isfinite(values)]
        if len(finite) and (finite.min() < -_TOLERANCE or finite.max() > 1 + _TOLERANCE):
            raise UsageError(
                f"the model's output is not a probability (values from {finite.min():.4g} to {finite.max():.4g}): "
                "pass --output-is-logit if it is a logit, or choose another --output"
            )
        return np.clip(values, 0.0, 1.0)


@dataclass(frozen=True)
class StreamSettings:
    output: DetectorOutput = DetectorOutput()
    smooth: int = 1
    """Calls averaged before the maximum is taken."""
    hop: int | None = None
    """Frames between windows of a stateless model; None: the window length."""
    stateful: bool = True
    """Start every clip from a fresh interpreter (the model keeps state between calls)."""

    def __post_init__(self) -> None:
        if self.smooth < 1:
            raise UsageError(f"--smooth must be at least 1 call, got {self.smooth}")
        if self.hop is not None and self.hop < 1:
            raise UsageError(f"the hop between windows must be at least one frame, got {self.hop}")


class Stepping:
    """How clips are cut into a model's calls, and how the calls' outputs become a clip's score: the part of
    streaming every runner shares (``StreamingRuntime`` here, the device runner on a target), so the windows,
    the smoothing and the maximum have one definition whichever side runs the calls."""

    def __init__(self, input_shape: Sequence[int | None], settings: StreamSettings, name: str):
        if not input_shape or input_shape[0] is None:
            raise UsageError(f"{name}: --stream needs a model whose input has a fixed time axis")
        self.input_shape = tuple(input_shape)
        self.settings = settings
        self.window = int(input_shape[0])
        self.hop = self.window if settings.stateful else (settings.hop or self.window)

    def steps(self, frames: int) -> int:
        """Calls a clip of ``frames`` frames makes."""
        return 0 if frames < self.window else 1 + (frames - self.window) // self.hop

    def windows(self, clips: np.ndarray) -> np.ndarray:
        """``(n, frames, ...)`` clips to ``(n, calls, *input_shape)``: a window every ``hop`` frames."""
        steps = self.steps(clips.shape[1])
        if steps < self.settings.smooth:
            raise UsageError(
                f"a clip of {clips.shape[1]} frames gives {steps} call(s) of {self.window} frames, fewer than "
                f"--smooth {self.settings.smooth}: raise --pad-ms or lower --smooth"
            )
        windows = np.stack([clips[:, s : s + self.window] for s in range(0, steps * self.hop, self.hop)], axis=1)
        shape = fixed_shape(self.input_shape)
        if shape is None or int(np.prod(windows.shape[2:])) != int(np.prod(shape)):
            raise UsageError(f"a window of the clip's features has shape {list(windows.shape[2:])}, the model takes "
                             f"{list(self.input_shape)}: the front-end does not make this model's inputs")  # fmt: skip
        return windows.reshape(*windows.shape[:2], *shape)

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        """``(n, calls, outputs)`` per-call outputs to ``(n, 1)`` clip scores: each call's probability, the
        mean of the last ``smooth`` calls, the highest of those."""
        n, calls = outputs.shape[:2]
        flat = np.asarray(outputs, np.float32).reshape(n * calls, -1)
        probability = self.settings.output.probability(flat).reshape(n, calls)
        kernel = np.full(self.settings.smooth, 1.0 / self.settings.smooth)
        return np.array([[np.convolve(clip, kernel, mode="valid").max()] for clip in probability], dtype=np.float32)


def streamed_model(model: LoadedModel) -> LoadedModel:
    """What a runtime made of a streaming model (its kernels, delegate, threads), with a clip of frames in and
    one probability out."""
    return dataclasses.replace(model, input_shape=[1, None, *model.input_shape[2:]], output_shape=[None, 1],
                               output_dtype="float32")  # fmt: skip


class StreamingRuntime(Runtime):
    """A clip's ``(frames, ...)`` features in, its highest smoothed probability out (one column)."""

    def __init__(self, model_path: Path, make: Callable[[], Runtime], settings: StreamSettings):
        super().__init__(model_path)
        self._make = make
        self._inner = make()
        self.name = self._inner.name  # type: ignore[misc]  # reports name the runtime that ran the model
        self.model_format = self._inner.model_format  # type: ignore[misc]  # and the format of the file it ran
        self.settings = settings
        self.stepping = Stepping(self._inner.input_shape, settings, model_path.name)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return (None, *self._inner.input_shape[1:])

    @property
    def max_batch(self) -> int | None:
        return None

    def run_batch(self, inputs: np.ndarray) -> np.ndarray:
        windows = self.stepping.windows(inputs)
        return self.stepping.scores(np.stack([self._calls(clip) for clip in windows]))

    def _calls(self, windows: np.ndarray) -> np.ndarray:
        """One clip's windows to their outputs: a stateful model from a fresh interpreter, one call at a time
        (each call's state feeds the next); a stateless one in a batch."""
        if not self.settings.stateful:
            return np.asarray(self._inner.run_all(windows, len(windows)).scores, np.float32)
        runtime = self._make()
        try:
            return np.asarray(runtime.run_calls(windows), np.float32).reshape(len(windows), -1)
        finally:
            runtime.close()

    def _facts(self) -> dict[str, object]:
        return {key: value for key, value in dataclasses.asdict(self.describe()).items() if key != "runtime"}

    def describe(self) -> LoadedModel:
        return streamed_model(self._inner.describe())

    def close(self) -> None:
        self._inner.close()
