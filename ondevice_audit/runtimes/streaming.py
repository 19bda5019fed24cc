"""Detectors that hear a clip a few frames at a time, as always-on devices run them.

A *streaming* model takes a short window of feature frames per call (``[1, 3, 40]`` for microWakeWord) and
keeps state between calls in resource variables; a *windowed* model is stateless and takes a longer window
(a one-second model run over three seconds of padded audio). Either way a clip's frames are fed in steps:
windows of the model's input length every ``hop`` frames (for a stateful model, the window length: the state
carries the past), each call's probability is smoothed with the mean of the last ``smooth`` calls, as wake-word
engines do, and the clip's score is the highest smoothed probability. A stateful model starts every clip from
a freshly loaded interpreter: LiteRT's ``reset_all_variables`` does not reset resource variables, so state
would leak from one clip into the next.

``DetectorOutput`` says how a model's output is a probability: which column (a two-class softmax's positive
class) and whether it is a logit (``--output-is-logit`` applies a sigmoid).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ondevice_audit.errors import UsageError
from ondevice_audit.runtimes.interface import LoadedModel, Runtime, fixed_shape

__all__ = ["DetectorOutput", "StreamSettings", "StreamingRuntime"]

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


class StreamingRuntime(Runtime):
    """A clip's ``(frames, ...)`` features in, its highest smoothed probability out (one column)."""

    def __init__(self, model_path: Path, make: Callable[[], Runtime], settings: StreamSettings):
        super().__init__(model_path)
        self._make = make
        self._inner = make()
        self.name = self._inner.name  # type: ignore[misc]  # reports name the runtime that ran the model
        self.model_format = self._inner.model_format  # type: ignore[misc]
        self.settings = settings
        window = self._inner.input_shape
        if not window or window[0] is None:
            raise UsageError(f"{model_path.name}: --stream needs a model whose input has a fixed time axis")
        self._window = int(window[0])
        self._hop = self._window if settings.stateful else (settings.hop or self._window)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return (None, *self._inner.input_shape[1:])

    @property
    def max_batch(self) -> int | None:
        return None

    def steps(self, frames: int) -> int:
        """Calls a clip of ``frames`` frames makes."""
        return 0 if frames < self._window else 1 + (frames - self._window) // self._hop

    def run_batch(self, inputs: np.ndarray) -> np.ndarray:
        steps = self.steps(inputs.shape[1])
        if steps < self.settings.smooth:
            raise UsageError(
                f"a clip of {inputs.shape[1]} frames gives {steps} call(s) of {self._window} frames, fewer than "
                f"--smooth {self.settings.smooth}: raise --pad-ms or lower --smooth"
            )
        return np.array([[self._clip(clip)] for clip in inputs], dtype=np.float32)

    def _clip(self, frames: np.ndarray) -> float:
        runtime = self._make() if self.settings.stateful else self._inner
        starts = range(0, frames.shape[0] - self._window + 1, self._hop)
        windows = np.stack([frames[s : s + self._window] for s in starts])
        shape = fixed_shape(self._inner.input_shape)
        if shape is None or windows[0].size != int(np.prod(shape)):
            raise UsageError(f"a window of the clip's features has shape {list(windows.shape[1:])}, the model takes "
                             f"{list(self._inner.input_shape)}: the front-end does not make this model's inputs")  # fmt: skip
        windows = windows.reshape(len(windows), *shape)
        if self.settings.stateful:  # one call at a time: each call's state feeds the next
            scores = runtime.run_calls(windows)
            runtime.close()
        else:
            scores = runtime.run_all(windows, len(windows)).scores
        probability = self.settings.output.probability(np.asarray(scores, np.float32).reshape(len(windows), -1))
        n = self.settings.smooth
        smoothed = np.convolve(probability, np.full(n, 1.0 / n), mode="valid")
        return float(smoothed.max())

    def _facts(self) -> dict[str, object]:
        return {key: value for key, value in dataclasses.asdict(self.describe()).items() if key != "runtime"}

    def describe(self) -> LoadedModel:
        """The inner runtime's facts (its kernels, delegate, threads), with a clip of frames in and one
        probability out."""
        inner = self._inner.describe()
        return dataclasses.replace(inner, input_shape=[1, None, *inner.input_shape[2:]], output_shape=[None, 1],
                                   output_dtype="float32")  # fmt: skip

    def window(self) -> tuple[int, int]:
        """(frames per call, frames between calls)."""
        return self._window, self._hop

    def close(self) -> None:
        self._inner.close()
