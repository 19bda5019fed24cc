"""Model classes onto data labels: ``--label-map MODEL=DATA[,MODEL=DATA...]`` or a two-column CSV file.

A model from elsewhere names its classes its own way (``unknown``, ``_background_noise_``) and a dataset its own
(``_unknown_``, ``_silence_``). The map says which data label a clip predicted as each model class counts as;
several classes may share one label (every non-keyword class onto ``_unknown_``), and a class it does not name
keeps its own name. It is applied where a classifier's outputs become predicted labels (``tasks.ClassifierTask``:
the highest-scoring model class, then its label), so every metric, flip and comparison counts in the data's
labels, and the report records it. Anything doubtful is refused in one line rather than guessed: a malformed
entry, a class named twice, a class the model does not have, a data label no class maps to.

The file form is a CSV with the header ``model_class,data_label`` and one class per row (names with commas or
``=`` need it).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ondevice_audit.errors import UsageError

__all__ = ["FILE_HEADER", "LabelMap"]

FILE_HEADER = ("model_class", "data_label")


@dataclass(frozen=True)
class LabelMap:
    pairs: tuple[tuple[str, str], ...]
    """(model class, data label), in the order given."""
    source: str = "--label-map"
    """Where it came from (the file's path), for errors."""

    def __post_init__(self) -> None:
        if not self.pairs:
            raise UsageError(f"{self.source}: no MODEL=DATA pairs")
        seen: dict[str, str] = {}
        for model_class, label in self.pairs:
            if model_class in seen:
                raise UsageError(f"{self.source} maps the model class {model_class!r} twice ({seen[model_class]!r} "
                                 f"and {label!r}); name each class once")  # fmt: skip
            seen[model_class] = label

    @classmethod
    def parse(cls, text: str) -> LabelMap:
        """``MODEL=DATA,...`` pairs, or the path of a ``model_class,data_label`` CSV file."""
        value = text.strip()
        if "=" not in value:
            path = Path(value)
            if not path.is_file():
                raise UsageError(f"--label-map {text!r}: neither MODEL=DATA pairs nor a file; give MODEL=DATA[,...] "
                                 f"or the path of a CSV file with the header {','.join(FILE_HEADER)}")  # fmt: skip
            return cls._read(path)
        pairs = []
        for entry in value.split(","):
            model_class, equals, label = entry.partition("=")
            if not equals or "=" in label or not model_class.strip() or not label.strip():
                raise UsageError(f"--label-map: {entry.strip()!r} is not MODEL=DATA (a model class, '=', a data label); "
                                 f"for names with '=' or ',' give a CSV file with the header {','.join(FILE_HEADER)}")  # fmt: skip
            pairs.append((model_class.strip(), label.strip()))
        return cls(tuple(pairs))

    @classmethod
    def _read(cls, path: Path) -> LabelMap:
        try:
            rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise UsageError(f"--label-map {path}: not a CSV file ({exc})") from None
        rows = [row for row in rows if any(cell.strip() for cell in row)]
        if not rows or tuple(cell.strip() for cell in rows[0]) != FILE_HEADER:
            raise UsageError(f"--label-map {path}: the first row must be the header {','.join(FILE_HEADER)}")
        pairs = []
        for line, row in enumerate(rows[1:], start=2):
            cells = [cell.strip() for cell in row]
            if len(cells) != 2 or not all(cells):
                raise UsageError(f"--label-map {path}, row {line}: expected a model class and a data label, got {row}")
            pairs.append((cells[0], cells[1]))
        return cls(tuple(pairs), source=f"--label-map {path}")

    def as_dict(self) -> dict[str, str]:
        return dict(self.pairs)

    def apply(self, classes: Sequence[str], owner: str = "the model") -> tuple[str, ...]:
        """The data label of each model class, in output order; a class the map names nowhere keeps its name.
        A class ``classes`` lacks is refused, naming their ``owner`` (the model, a predictions file)."""
        unknown = [model_class for model_class, _ in self.pairs if model_class not in classes]
        if unknown:
            raise UsageError(f"{self.source} names {', '.join(map(repr, unknown))}, not a class of {owner}; its "
                             f"classes: {', '.join(classes)}")  # fmt: skip
        mapped = self.as_dict()
        return tuple(mapped.get(model_class, model_class) for model_class in classes)

    def unused(self, data_labels: Sequence[str]) -> list[str]:
        """Labels the map leads to that the data does not have: clips predicted as them are always wrong, which
        is worth saying (a typo maps a class onto nothing)."""
        present = set(data_labels)
        return sorted({label for _, label in self.pairs if label not in present})

    def targets(self, classes: Sequence[str]) -> dict[str, str]:
        """Data label -> the one model class that predicts it, for training on the data; a ``UsageError`` when
        several classes share a label (no single training target for its clips)."""
        by_label: dict[str, list[str]] = {}
        for model_class, label in zip(classes, self.apply(classes), strict=True):
            by_label.setdefault(label, []).append(model_class)
        shared = {label: names for label, names in by_label.items() if len(names) > 1}
        if shared:
            label, names = next(iter(shared.items()))
            raise UsageError(f"{self.source} maps {', '.join(names)} onto {label!r}: its clips have no single class "
                             "to train or fine-tune towards")  # fmt: skip
        return {label: names[0] for label, names in by_label.items()}
