"""The cases of the bad-input corpus (see ``test_badinput.py``), by command.

``problem`` and ``fix`` are regular expressions the one error line must match; ``FIX`` is any line that tells the
user what to do (a ``--help`` pointer counts for command-line usage errors). ``setup`` edits the case's copy of
the world before the command runs.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIX = (
    r"(choose|pass|give|use|add|remove|make|check|see|fix|rename|install|copy|put|regenerate|rerun|raise|set|"
    r"name|train|run|audit|compare|replace|--help|must|expected|only|need)"
)


@dataclass(frozen=True)
class Case:
    id: str
    argv: str
    problem: str
    fix: str = FIX
    code: int = 2
    setup: Callable[[Path], None] | None = None
    env: dict[str, str] | None = None


def _write(name: str, text: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)

    return setup


def _write_bytes(name: str, data: bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / name).write_bytes(data)

    return setup


def _manifest(edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    """Rewrite data/manifest.csv line by line (header first)."""

    def setup(root: Path) -> None:
        path = root / "data" / "manifest.csv"
        path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")

    return setup


def _replace(name: str, old: str, new: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        text = (root / name).read_text()
        assert old in text, (name, old)
        (root / name).write_text(text.replace(old, new))

    return setup


def _both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for one in setups:
            one(root)

    return setup


def _json_edit(name: str, edit: Callable[[dict], None], copy_to: str | None = None) -> Callable[[Path], None]:
    """Edit a JSON report (NaN and Infinity allowed, as ``json`` writes them); optionally to another file."""

    def setup(root: Path) -> None:
        document = json.loads((root / name).read_text())
        edit(document)
        (root / (copy_to or name)).write_text(json.dumps(document))

    return setup


def _set(path: str, value: object) -> Callable[[dict], None]:
    """``"attributes.0.rb.value"`` style assignment."""

    def edit(document: dict) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return edit


def _copy(source: str, target: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        shutil.copyfile(root / source, root / target)

    return setup


def _symlink_out(root: Path) -> None:
    """The first clip of the manifest becomes a link to a file outside the data folder."""
    first = (root / "data" / "manifest.csv").read_text().splitlines()[1].split(",")[0]
    outside = root / "secret.flac"
    os.replace(root / "data" / first, outside)
    (root / "data" / first).symlink_to(outside)


def _truncate(name: str, keep: int) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / name).write_bytes((root / name).read_bytes()[:keep])

    return setup


def _data(setting: str) -> Callable[[Path], None]:
    """One more ``[data]`` setting in the world's matrix."""
    return _replace("matrix.toml", 'groups = ["gender"]', f'groups = ["gender"]\n{setting}')


def _many_groups(root: Path) -> None:
    rows = ["label,prediction,id"] + [f"yes,yes,{i}" for i in range(600)]
    (root / "ids.csv").write_text("\n".join(rows) + "\n")


def _sweep_ids(root: Path) -> None:
    """A clip id column among the matrix's groups (24 in the test split), with data.max_groups 10."""
    _manifest(lambda lines: [lines[0] + ",id", *(f"{line},clip{i}" for i, line in enumerate(lines[1:]))])(root)
    _data("max_groups = 10")(root)
    _replace("matrix.toml", 'groups = ["gender"]', 'groups = ["gender", "id"]')(root)


def _sweep_folder(root: Path) -> None:
    (root / "runs" / "old").mkdir(parents=True)
    (root / "runs" / "old" / "sweep.json").write_text('{"status": "finished", "matrix_digest": "x", "cells": []}')


def _big_matrix(root: Path) -> None:
    seeds = ", ".join(str(i) for i in range(300))
    (root / "big.toml").write_text(
        (root / "matrix.toml").read_text().replace('"mfcc"\n', f'"mfcc"\nseed = [{seeds}]\n')
    )


def _gate_fails(id: str, rules: str, where: str, value: float) -> Case:
    """A report holding a non-finite number where a rule looks: the rule fails (exit 1) and says why."""
    setup = _json_edit("report.json", _set(where, value))
    return Case(id, f"gate report.json {rules}", r"FAIL", r"not a finite number", code=1, setup=setup, env=WIDE)


WIDE = {"COLUMNS": "400"}
"""The gate's table unwrapped, so a reason reads as one line."""
P = "score p.csv -g gender --bootstrap 0 --permutations 0"
A = "audit model.tflite --data data/manifest.csv -g gender --bootstrap 0 --permutations 0"
S = "sweep --matrix matrix.toml --out runs/new --cache cache"

SCORE = [
    Case("score-missing-file", "score nope.csv -g gender", r"file not found: nope\.csv", r"check the path"),
    Case("score-folder", "score data -g gender", r"data is a folder", r"give the path of a CSV file"),
    Case("score-empty-file", "score e.csv -g gender", r"e\.csv: the file is empty", setup=_write("e.csv", "")),
    Case("score-header-only", "score e.csv -g g", r"no rows", setup=_write("e.csv", "label,prediction,g\n")),
    Case(
        "score-no-label", "score e.csv -g g", r"missing column label", setup=_write("e.csv", "x,prediction,g\na,a,b\n")
    ),
    Case(
        "score-no-predictions",
        "score e.csv -g g",
        r"no predictions.*add a prediction column",
        setup=_write("e.csv", "label,g\na,b\n"),
    ),
    Case(
        "score-unknown-group",
        f"{P.replace('gender', 'accent')}",
        r"unknown --group accent",
        r"choose from the group columns: gender",
    ),
    Case(
        "score-more-fields",
        "score e.csv -g g",
        r"line 3 has 4 fields where the header has 3",
        setup=_write("e.csv", "label,prediction,g\na,a,x\nb,b,y,z\n"),
    ),
    Case(
        "score-fewer-fields",
        "score e.csv -g g",
        r"line 2 has 2 fields",
        setup=_write("e.csv", "label,prediction,g\na,a\n"),
    ),
    Case(
        "score-unclosed-quote",
        "score e.csv -g g",
        r"line 2: malformed row: a quoted field is never closed",
        setup=_write("e.csv", 'label,prediction,g\n"a,a,x\nb,b,y\n'),
    ),
    Case(
        "score-stray-quote",
        "score e.csv -g g",
        r"line 2: malformed row.*stray quote",
        setup=_write("e.csv", 'label,prediction,g\n"a"x,a,x\n'),
    ),
    Case(
        "score-not-utf8",
        "score e.csv -g g",
        r"line 3: non-UTF-8 text",
        setup=_write_bytes("e.csv", b"label,prediction,g\na,a,x\n\xff\xfe,b,y\n"),
    ),
    Case(
        "score-column-twice",
        "score e.csv -g g",
        r"'g' appear more than once",
        setup=_write("e.csv", "label,prediction,g,g\na,a,x,y\n"),
    ),
    Case(
        "score-numeric-label-spellings",
        "score e.csv -g g",
        r"'1' vs '1.0'",
        r"make them identical",
        setup=_write("e.csv", "label,prediction,g\n1,1.0,x\n0,0,y\n"),
    ),
    Case(
        "score-space-label-spellings",
        "score e.csv -g g",
        r"'yes' vs 'yes '",
        r"make them identical",
        setup=_write("e.csv", "label,prediction,g\nyes ,yes,x\nno,no,y\n"),
    ),
    Case(
        "score-case-label-spellings",
        "score e.csv -g g",
        r"'YES' vs 'yes'",
        r"make them identical",
        setup=_write("e.csv", "label,prediction,g\nYES,yes,x\nno,no,y\n"),
    ),
    Case(
        "score-negative-label-spelling",
        "score e.csv -g g --metric frr",
        r"'_Unknown_' vs '_unknown_'",
        r"make them identical",
        setup=_write("e.csv", "label,prediction,g\nyes,yes,x\n_Unknown_,no,y\n"),
    ),
    Case("score-threshold-nan", f"{P} --threshold nan", r"--threshold.*nan is not a finite number", r"--help"),
    Case("score-threshold-inf", f"{P} --threshold inf", r"--threshold.*inf is not a finite number", r"--help"),
    Case("score-threshold-minus-inf", f"{P} --threshold -inf", r"--threshold.*not a finite number", r"--help"),
    Case("score-confidence-nan", f"{P} --confidence nan", r"--confidence.*not a finite number", r"--help"),
    Case("score-confidence-above-one", f"{P} --confidence 1.5", r"confidence must be between 0 and 1", r"between"),
    Case("score-seed-negative", f"{P} --seed -5", r"--seed.*greater than or equal to 0", r"--help"),
    Case("score-seed-huge", f"{P} --seed 99999999999", r"--seed", r"--help"),
    Case("score-bootstrap-negative", f"{P} --bootstrap -1", r"--bootstrap.*greater than or equal to 0", r"--help"),
    Case(
        "score-bootstrap-too-few",
        "score p.csv -g gender --bootstrap 10",
        r"bootstrap resamples must be 0 \(off\) or at least 100",
    ),
    Case(
        "score-permutations-too-few",
        "score p.csv -g gender --permutations 5",
        r"permutations must be 0 \(off\) or at least 100",
    ),
    Case("score-permutations-text", f"{P} --permutations many", r"--permutations", r"--help"),
    Case("score-unknown-metric", f"{P} --metric f2", r"unknown metric 'f2'", r"choose one of"),
    Case("score-min-group-size-negative", f"{P} --min-group-size -1", r"--min-group-size", r"--help"),
    Case("score-max-groups-one", f"{P} --max-groups 1", r"--max-groups", r"--help"),
    Case("score-unknown-format", f"{P} -f pdf", r"--format", r"--help"),
    Case("score-missing-group-option", "score p.csv", r"Missing option '--group'", r"--help"),
    Case(
        "score-output-is-input", f"{P} -f csv -o p.csv", r"--report-file p\.csv is the predictions file", r"choose another"
    ),
    Case("score-output-is-input-via-dots", f"{P} -o data/../p.csv", r"is the predictions file", r"choose another"),
    Case("score-output-is-folder", f"{P} -o data", r"--report-file data is a folder", r"give a file name"),
    Case(
        "score-output-under-file",
        f"{P} -o p.csv/report.json",
        r"cannot write in .*p\.csv \(it is a file\)",
        r"choose a folder",
    ),
    Case(
        "score-output-in-proc",
        f"{P} -o /proc/ondevice-audit-report.json",
        r"cannot write in /proc",
        r"choose a folder you can write to",
    ),
    Case(
        "score-junit-is-input",
        f"{P} --fail-on-gate --max-rb 1 --junit p.csv",
        r"--junit p\.csv is the predictions",
        r"choose another",
    ),
    Case(
        "score-junit-equals-output",
        f"{P} -o r.json --fail-on-gate --max-rb 1 --junit r.json",
        r"both name r\.json",
        r"give each output its own file",
    ),
    Case(
        "score-gate-markdown-is-baseline",
        f"{P} --fail-on-gate --baseline report.json --max-rb-increase 0.1 --gate-markdown report.json",
        r"is the gate baseline",
        r"choose another",
    ),
    Case(
        "score-too-many-groups",
        "score ids.csv -g id --bootstrap 0 --permutations 0",
        r"id has 600 groups, more than --max-groups 500",
        r"speaker or id column.*--max-groups 600",
        setup=_many_groups,
    ),
    Case(
        "score-label-map-leaves-a-label-unpredicted",
        f"{P} --label-map yes=no",
        r"labels in the data that no model class maps to: yes",
        r"--label-map leads to _unknown_, no",
    ),
    Case(
        "score-label-map-spelling",
        "score m.csv -g g --label-map y=YES,n=no",
        r"'YES' vs 'yes'; make them identical in --label-map and the data's labels",
        setup=_write("m.csv", "label,prediction,g\nyes,y,a\nno,n,b\n"),
    ),
    Case(
        "score-label-map-numeric-spelling",
        "score m.csv -g g --label-map y=1.0,n=0",
        r"'1' vs '1\.0'",
        r"make them identical",
        setup=_write("m.csv", "label,prediction,g\n1,y,a\n0,n,b\n"),
    ),
    Case(
        "score-predictions-name-other-classes",
        "score m.csv -g g",
        r"no prediction in m\.csv is a label of its data \(predicted: n, y; labels: 0, 1\)",
        r"--label-map MODEL=DATA",
        setup=_write("m.csv", "label,prediction,g\n1,y,a\n0,n,b\n1,n,a\n"),
    ),
    Case(
        "score-label-map-chain",
        "score m.csv -g g --label-map y=n,n=no",
        r"labels in the data that no model class maps to: yes",
        r"--label-map leads to n, no",
        setup=_write("m.csv", "label,prediction,g\nyes,y,a\nno,n,b\n"),
    ),
    Case(
        "score-label-map-file-duplicate-class",
        "score m.csv -g g --label-map map.csv",
        r"maps the model class 'y' twice \('yes' and 'no'\)",
        r"name each class once",
        setup=_both(
            _write("m.csv", "label,prediction,g\nyes,y,a\nno,n,b\n"),
            _write_bytes("map.csv", b"\xef\xbb\xbfmodel_class,data_label\r\ny,yes\r\ny,no\r\n"),
        ),
    ),
    Case(
        "score-label-map-file-empty-field",
        "score m.csv -g g --label-map map.csv",
        r"row 3: expected a model class and a data label",
        setup=_both(
            _write("m.csv", "label,prediction,g\nyes,y,a\nno,n,b\n"),
            _write("map.csv", "model_class,data_label\ny,yes\nn,\n"),
        ),
    ),
    Case(
        "score-label-map-formula-prefix",
        f"{P} --label-map =cmd=yes",
        r"'=cmd=yes' is not MODEL=DATA",
        r"for names with '=' or ',' give a CSV file with the header model_class,data_label",
    ),
    Case(
        "score-label-map-with-one-score-column",
        "score s.csv -g g --label-map yes=yes",
        r"a single score_yes column is one detector's score",
        setup=_write("s.csv", "label,score_yes,g\nyes,0.9,a\nno,0.2,b\n"),
    ),
    Case(
        "score-label-map-missing-score-column-class",
        "score s.csv -g g --label-map maybe=yes",
        r"names 'maybe', not a class of the predictions in s\.csv",
        r"its classes: yes, no",
        setup=_write("s.csv", "label,score_yes,score_no,g\nyes,0.9,0.1,a\nno,0.2,0.8,b\n"),
    ),
    Case(
        "score-label-map-negative-label-unmapped",
        "score m.csv -g g --label-map y=1,n=0 --metric frr --negative-labels n",
        r"metric frr needs negative labels .* found none of \['n'\]",
        setup=_write("m.csv", "label,prediction,g\n1,y,a\n0,n,b\n"),
    ),
    Case("score-label-map-malformed", f"{P} --label-map yes", r"neither MODEL=DATA pairs nor a file"),
    Case(
        "score-label-map-detector",
        "score p.csv -g gender --task detect --positive-label yes --label-map no=_unknown_",
        r"--label-map maps a classifier's classes onto data labels; --task detect",
        r"leave one of them out",
    ),
    Case(
        "score-detector-too-many-groups",
        "score ids.csv -g id --task detect --positive-label yes --bootstrap 0 --permutations 0",
        r"id has 600 groups, more than --max-groups 500",
        r"speaker or id column.*--max-groups 600",
        setup=_write("ids.csv", "label,score,id\n" + "".join(f"{'yes' if i % 2 else 'no'},0.{i % 10},{i}\n" for i in range(600))),
    ),
    Case(
        "score-binary-labels-not-binary",
        "score e.csv -g g",
        r"binary score column needs labels 1/0",
        setup=_write("e.csv", "label,score,g\nyes,0.9,x\nmaybe,0.2,y\n"),
    ),
    Case(
        "score-every-label-empty",
        "score e.csv -g g",
        r"no row could be scored",
        setup=_write("e.csv", "label,prediction,g\n,a,x\n,b,y\n"),
    ),
    Case(
        "score-frr-without-negatives",
        "score e.csv -g g --metric frr",
        r"needs negative labels",
        setup=_write("e.csv", "label,prediction,g\nyes,yes,x\nno,no,y\n"),
    ),
    Case("score-gate-config-missing", f"{P} --fail-on-gate --gate-config nope.toml", r"nope\.toml"),
    Case("score-max-rb-not-a-number", f"{P} --fail-on-gate --max-rb abc", r"--max-rb.*abc"),
    Case("score-max-rb-nan", f"{P} --fail-on-gate --max-rb nan", r"--max-rb.*nan"),
    Case("score-min-metric-nan", f"{P} --fail-on-gate --min-metric nan", r"--min-metric.*not a finite", r"--help"),
]

AUDIT = [
    Case("audit-model-missing", A.replace("model.tflite", "nope.tflite"), r"model not found: nope\.tflite"),
    Case(
        "audit-model-unknown-suffix",
        A.replace("model.tflite", "labels.txt"),
        r"unknown model format",
        r"expected \.tflite",
    ),
    Case("audit-model-truncated", A, r"model\.tflite", setup=_truncate("model.tflite", 1000)),
    Case("audit-model-is-text", A, r"model\.tflite", setup=_write("model.tflite", "not a model\n")),
    Case("audit-manifest-missing", A.replace("data/manifest.csv", "nope.csv"), r"file not found: nope\.csv"),
    Case(
        "audit-manifest-escapes",
        A,
        r"path '\.\./p\.csv' escapes the manifest folder",
        setup=_manifest(lambda lines: [lines[0], "../p.csv,yes,female,x,x,s", *lines[1:]]),
    ),
    Case(
        "audit-manifest-absolute",
        A,
        r"escapes the manifest folder",
        setup=_manifest(lambda lines: [lines[0], "/etc/passwd,yes,female,x,x,s", *lines[1:]]),
    ),
    Case(
        "audit-manifest-symlink-out",
        A,
        r"symlink .* leads out of the manifest folder",
        r"copy the files in",
        setup=_symlink_out,
    ),
    Case(
        "audit-manifest-no-label",
        A,
        r"missing column\(s\) label",
        setup=_manifest(lambda lines: [lines[0].replace("label", "word"), *lines[1:]]),
    ),
    Case(
        "audit-manifest-empty-label",
        A,
        r"line 2 has an empty label",
        setup=_manifest(
            lambda lines: [lines[0], lines[1].replace(",yes,", ",,").replace(",_unknown_,", ",,"), *lines[2:]]
        ),
    ),
    Case(
        "audit-manifest-empty-path",
        A,
        r"line 2 has an empty path",
        setup=_manifest(lambda lines: [lines[0], "," + lines[1].split(",", 1)[1], *lines[2:]]),
    ),
    Case("audit-unknown-group", A.replace("-g gender", "-g age"), r"unknown --group age"),
    Case(
        "audit-unknown-label",
        A,
        r"labels in the data that the model does not know: maybe",
        setup=_manifest(lambda lines: [lines[0], *(line.replace(",yes,", ",maybe,") for line in lines[1:])]),
    ),
    Case(
        "audit-label-spelling",
        A,
        r"'YES' vs 'yes'",
        r"make them identical",
        setup=_manifest(lambda lines: [lines[0], *(line.replace(",yes,", ",YES,") for line in lines[1:])]),
    ),
    Case("audit-split-file-missing", f"{A} --split-file nope.csv", r"file not found: nope\.csv"),
    Case(
        "audit-split-empty",
        f"{A} --split-file data/split.csv --split valid",
        r"no rows in split 'valid'",
        r"splits: test, train",
    ),
    Case("audit-split-no-columns", f"{A} --split-file p.csv", r"missing column\(s\) path, split"),
    Case("audit-output-is-manifest", f"{A} -o data/manifest.csv", r"is the manifest", r"choose another"),
    Case("audit-output-is-model", f"{A} -f json -o model.tflite", r"is the model", r"choose another"),
    Case(
        "audit-output-is-split-file",
        f"{A} --split-file data/split.csv -o data/split.csv",
        r"is the split file",
        r"choose another",
    ),
    Case("audit-output-is-labels", f"{A} --labels labels.txt -o labels.txt", r"is the labels file", r"choose another"),
    Case("audit-output-under-file", f"{A} -o p.csv/x.json", r"\(it is a file\)", r"choose a folder"),
    Case("audit-output-superscript-index", f"{A} --output ²", r"model\.tflite has no output '²'.*index from 0 to 0"),
    Case("audit-runtime-unknown", f"{A} --runtime fastest", r"unknown runtime 'fastest'", r"choose one of"),
    Case("audit-batch-size-zero", f"{A} --batch-size 0", r"--batch-size", r"--help"),
    Case("audit-target-batch-zero", f"{A} --target-batch 0", r"--target-batch", r"--help"),
    Case("audit-max-samples-zero", f"{A} --max-samples-per-group 0", r"--max-samples-per-group", r"--help"),
    Case("audit-labels-missing", f"{A} --labels nope.txt", r"labels file not found: nope\.txt"),
    Case(
        "audit-labels-wrong-count",
        f"{A} --labels long.txt",
        r"11 outputs but 12 label names",
        setup=_write("long.txt", "_unknown_\ndown\ngo\nleft\nno\noff\non\nright\nstop\nup\nyes\nmaybe\n"),
    ),
    Case(
        "audit-labels-empty",
        f"{A} --labels empty.txt",
        r"empty\.txt: no labels",
        r"write one class name per line",
        setup=_write("empty.txt", "\n"),
    ),
    Case("audit-features-mismatch", f"{A} --features logmel", r"front-end makes inputs of shape", r"model takes"),
    Case("audit-board-unknown", f"{A} --board arduino-uno", r"arduino-uno"),
    Case("audit-mcu-ram-text", f"{A} --mcu-ram lots", r"lots"),
    Case("audit-target-unknown", f"{A} --target pi", r"unknown target 'pi'"),
    Case("audit-target-password", f"{A} --target ssh://pi:secret@host", r"passwords are not accepted", r"use a key"),
    Case(
        "audit-ssh-no-host-keys",
        f"{A} --target ssh://pi@host --ssh-option StrictHostKeyChecking=no",
        r"host keys must be checked",
        r"UserKnownHostsFile=FILE",
    ),
    Case(
        "audit-ssh-quoted-no",
        f'{A} --target ssh://pi@host --ssh-option StrictHostKeyChecking=\\"no\\" '
        "--ssh-option UserKnownHostsFile=/dev/null",
        r"host keys must be checked",
        r"UserKnownHostsFile=FILE",
    ),
    Case(
        "audit-ssh-accept-new-dev-null",
        f"{A} --target ssh://pi@host --ssh-option StrictHostKeyChecking=accept-new "
        "--ssh-option UserKnownHostsFile=/dev/null",
        r"every connection is a first one",
        r"UserKnownHostsFile=FILE",
    ),
    Case(
        "audit-ssh-option-malformed", f"{A} --target ssh://pi@host --ssh-option nonsense", r"must look like Key=Value"
    ),
    Case("audit-reference-missing", f"{A} --reference nope.tflite", r"reference model not found: nope\.tflite"),
    Case("audit-confidence-zero", f"{A} --confidence 0", r"confidence must be between 0 and 1"),
]

GATE = [
    Case("gate-report-missing", "gate nope.json --max-rb 0.1", r"report not found: nope\.json"),
    Case("gate-report-not-json", "gate p.csv --max-rb 0.1", r"p\.csv: not a JSON report", r"report"),
    Case(
        "gate-report-old-schema",
        "gate r.json --max-rb 0.1",
        r"schema version 0\.9 is not one this tool reads",
        setup=_write("r.json", '{"schema_version": "0.9"}'),
    ),
    Case(
        "gate-report-invalid",
        "gate r.json --max-rb 0.1",
        r"invalid report",
        setup=_write("r.json", '{"schema_version": "1.0", "tool": {}}'),
    ),
    Case("gate-report-json-list", "gate r.json --max-rb 0.1", r"schema version \(none\)", setup=_write("r.json", "[]")),
    Case("gate-max-rb-text", "gate report.json --max-rb abc", r"--max-rb.*abc"),
    Case("gate-max-rb-attribute-text", "gate report.json --max-rb gender=abc", r"abc"),
    Case("gate-max-rb-nan", "gate report.json --max-rb nan", r"nan"),
    Case(
        "gate-max-rb-unknown-attribute",
        "gate report.json --max-rb accent=0.1",
        r"names attribute 'accent', which the report does not have \(it has: gender\)",
    ),
    Case("gate-min-metric-inf", "gate report.json --min-metric inf", r"--min-metric.*not a finite", r"--help"),
    Case("gate-max-group-gap-nan", "gate report.json --max-group-gap nan", r"--max-group-gap.*not a finite", r"--help"),
    Case("gate-config-missing", "gate report.json --config nope.toml", r"nope\.toml"),
    Case(
        "gate-config-not-toml", "gate report.json --config bad.toml", r"bad\.toml", setup=_write("bad.toml", "x = [\n")
    ),
    Case(
        "gate-config-unknown-key",
        "gate report.json --config bad.toml",
        r"max_bias",
        setup=_write("bad.toml", "[tool.ondevice-audit.gate]\nmax_bias = 0.1\n"),
    ),
    Case(
        "gate-config-nan",
        "gate report.json --config bad.toml",
        r"max_rb",
        setup=_write("bad.toml", "[tool.ondevice-audit.gate]\nmax_rb = nan\n"),
    ),
    Case(
        "gate-junit-is-report",
        "gate report.json --max-rb 1 --junit report.json",
        r"--junit report\.json is the report",
        r"choose another",
    ),
    Case(
        "gate-markdown-is-config",
        "gate report.json --config gate.toml --markdown gate.toml",
        r"is the gate configuration",
        r"choose another",
    ),
    Case(
        "gate-junit-and-markdown-same",
        "gate report.json --max-rb 1 --junit g.xml --markdown g.xml",
        r"both name g\.xml",
        r"give each output its own file",
    ),
    Case(
        "gate-baseline-missing",
        "gate report.json --baseline nope.json --max-rb-increase 0.1",
        r"report not found: nope\.json",
    ),
    Case(
        "gate-increase-without-baseline",
        "gate report.json --max-rb-increase 0.1",
        r"needs a baseline report",
        r"--baseline",
    ),
    Case(
        "gate-min-metric-on-error-rate",
        "gate report.json --min-metric 0.5",
        r"needs a higher-is-better metric",
        r"max_group_gap",
        setup=_replace("report.json", '"higher_is_better": true', '"higher_is_better": false'),
    ),
    Case("gate-not-a-sweep", "gate data --max-rb 0.1", r"not a finished sweep folder", r"pass a report\.json"),
    _gate_fails("gate-nan-rb-fails", "--max-rb 5 --use-ci-bound", "attributes.0.rb.value", float("nan")),
    _gate_fails("gate-infinite-metric-fails", "--min-metric 0.1", "overall.metrics.mcc", float("inf")),
    _gate_fails(
        "gate-nan-group-metric-fails",
        "--min-group-metric 0.1 --no-use-ci-bound",
        "attributes.0.groups.1.metrics.mcc",
        float("nan"),
    ),
]

REPORT = [
    Case("report-nothing-to-write", "report report.json", r"nothing to write", r"give --html FILE"),
    Case(
        "report-html-is-report",
        "report report.json --html report.json",
        r"--html report\.json is the report",
        r"choose another",
    ),
    Case(
        "report-html-and-markdown-same",
        "report report.json --html r.out --markdown r.out",
        r"both name r\.out",
        r"give each output its own file",
    ),
    Case("report-missing", "report nope.json --html r.html", r"report not found: nope\.json"),
    Case("report-not-json", "report p.csv --html r.html", r"not a JSON report"),
    Case("report-html-is-folder", "report report.json --html data", r"--html data is a folder", r"give a file name"),
    Case("report-html-under-file", "report report.json --html p.csv/r.html", r"\(it is a file\)", r"choose a folder"),
    Case(
        "report-sweep-missing-files",
        "report runs/old --html r.html",
        r"not a finished sweep folder",
        r"pass a report\.json",
        setup=_sweep_folder,
    ),
    Case(
        "report-markdown-in-proc",
        "report report.json --markdown /proc/ondevice-audit.md",
        r"cannot write in /proc",
        r"choose a folder you can write to",
    ),
]

REPORT += [
    Case("report-charts-is-file", "report report.json --charts p.csv", r"--charts p\.csv is a file", r"give a folder"),
    Case(
        "report-charts-is-file-after-html",
        "report report.json --html r.html --charts p.csv",
        r"--charts p\.csv is a file",
        r"give a folder",
    ),
    Case(
        "report-charts-under-report",
        "report report.json --charts report.json/charts",
        r"cannot write in .*report\.json \(it is a file\)",
        r"choose a folder",
    ),
    Case("report-charts-in-proc", "report report.json --charts /proc/charts", r"cannot write in /proc", r"choose"),
    Case(
        "report-charts-over-html",
        "report report.json --charts charts --html charts/gender.png",
        r"--charts and --html both name charts/gender\.png",
        r"give each output its own file",
    ),
    Case(
        "report-charts-folder-is-markdown",
        "report report.json --charts out --markdown out",
        r"--charts and --markdown both name out",
        r"give each output its own file",
    ),
    Case(
        "report-charts-below-markdown",
        "report report.json --charts out/charts --markdown out",
        r"--charts and --markdown both name out",
        r"give each output its own file",
    ),
    Case(
        "report-charts-over-report",
        "report gender.png --charts .",
        r"--charts \. is the report|gender\.png is the report",
        r"choose another",
        setup=_copy("report.json", "gender.png"),
    ),
    Case(
        "report-charts-nothing-to-draw",
        "report empty.json --html r.html --charts charts",
        r"--charts: empty\.json has no chart to draw",
        r"leave --charts out",
        setup=_json_edit("report.json", _set("attributes", []), "empty.json"),
    ),
    Case(
        "report-charts-of-a-sweep",
        "report runs/old --charts charts",
        r"a sweep's chart is its folder's plot",
        r"--charts writes a report's charts",
        setup=_sweep_folder,
    ),
]

COMPARE = [
    Case(
        "compare-different-data",
        "compare report.json other.json",
        r"scored on different data \(240 vs 1536 clips",
        r"--allow-different-data",
        setup=_json_edit("report.json", _set("overall.n", 1536), "other.json"),
    ),
    Case(
        "compare-different-groups",
        "compare report.json other.json",
        r"gender groups differ",
        r"--allow-different-data",
        setup=_json_edit("report.json", _set("attributes.0.groups.0.name", "woman"), "other.json"),
    ),
    Case(
        "compare-different-manifests",
        "compare a.json b.json",
        r"different manifests",
        r"--allow-different-data",
        setup=_both(
            _json_edit(
                "report.json", _set("inputs.0", {"role": "manifest", "path": "m", "sha256": "a" * 64}), "a.json"
            ),
            _json_edit(
                "report.json", _set("inputs.0", {"role": "manifest", "path": "m", "sha256": "b" * 64}), "b.json"
            ),
        ),
    ),
    Case(
        "compare-different-metrics",
        "compare report.json other.json",
        r"different metrics",
        r"compare like with like",
        setup=_json_edit("report.json", _set("metric.name", "accuracy"), "other.json"),
    ),
    Case(
        "compare-output-is-a",
        "compare report.json report.json -o report.json",
        r"--output report\.json is the A",
        r"choose another",
    ),
    Case("compare-missing-b", "compare report.json nope.json", r"report not found: nope\.json"),
    Case("compare-b-not-json", "compare report.json p.csv", r"not a JSON report"),
    Case("compare-folders-not-sweeps", "compare data data", r"not a finished sweep folder|not a sweep"),
]

DATASETS = [
    Case("inspect-missing", "datasets inspect nope.csv", r"nope\.csv"),
    Case("inspect-folder", "datasets inspect data", r"not a file", r"reads a CSV"),
    Case("inspect-binary", "datasets inspect model.tflite", r"model\.tflite"),
    Case("inspect-no-path-column", "datasets inspect p.csv", r"missing column\(s\) path"),
    Case("inspect-unknown-group", "datasets inspect data/manifest.csv -g age", r"unknown --group age"),
    Case(
        "inspect-min-group-size",
        "datasets inspect data/manifest.csv --min-group-size -1",
        r"--min-group-size",
        r"--help",
    ),
    Case(
        "inspect-nothing-usable",
        "datasets inspect e.csv",
        r"nothing usable to import",
        setup=_write("e.csv", "path,label\nnope.wav,yes\ngone.wav,no\n"),
    ),
    Case("inspect-format", "datasets inspect data/manifest.csv -f xml", r"--format", r"--help"),
    Case("import-unknown-format", "datasets import librispeech data", r"librispeech"),
    Case("import-root-missing", "datasets import folder nope", r"nope: not found"),
    Case(
        "import-out-is-input",
        "datasets import manifest data/manifest.csv --out data/manifest.csv",
        r"is the input itself|already exists",
        r"choose another|--overwrite",
    ),
    Case(
        "import-out-outside-root",
        "datasets import manifest data/manifest.csv --out elsewhere/m.csv",
        r"is not in data or a folder containing it",
        r"must sit beside or above",
    ),
    Case(
        "import-out-exists",
        "datasets import manifest data/manifest.csv --out data/split.csv",
        r"already exists",
        r"--overwrite",
    ),
    Case(
        "import-out-is-folder",
        "datasets import manifest data/manifest.csv --out data",
        r"is a folder",
        r"give the manifest's file name",
    ),
    Case("import-option-not-taken", "datasets import manifest data/manifest.csv --top 5", r"does not take --top"),
    Case("import-manifest-folder", "datasets import manifest data", r"is not a file", r"reads a CSV"),
    Case("import-seed-negative", "datasets import folder data --seed -1", r"--seed", r"--help"),
    Case("synth-kws-seed-negative", "datasets synth-kws --out synth --seed -1", r"--seed", r"--help"),
    Case(
        "synth-kws-no-speakers", "datasets synth-kws --out synth --prosody-variants 0", r"--prosody-variants", r"--help"
    ),
    Case("synth-shapes-tiny", "datasets synth-shapes --out shapes --size 2", r"--size", r"--help"),
]

TRAIN = [
    Case(
        "train-out-is-file",
        "train --data data/manifest.csv --recipe ds-cnn --out p.csv",
        r"--out p\.csv is a file",
        r"give a folder",
    ),
    Case(
        "train-out-holds-input",
        "train --data data/split.csv --recipe ds-cnn --out data",
        r"is the manifest",
        r"choose another",
    ),
    Case("train-unknown-recipe", "train --data data/manifest.csv --recipe transformer --out m", r"transformer"),
    Case(
        "train-split-two-numbers",
        "train --data data/manifest.csv --recipe ds-cnn --out m --split 0.5,0.5",
        r"--split '0\.5,0\.5' must be three numbers",
    ),
    Case(
        "train-split-nan", "train --data data/manifest.csv --recipe ds-cnn --out m --split nan,0.1,0.1", r"split.*nan"
    ),
    Case(
        "train-image-features",
        "train --data data/manifest.csv --recipe ds-cnn --out m --features image",
        r"train takes --features mfcc, logmel, micro",
    ),
    Case(
        "train-epochs-zero", "train --data data/manifest.csv --recipe ds-cnn --out m --epochs 0", r"--epochs", r"--help"
    ),
    Case(
        "train-seed-negative", "train --data data/manifest.csv --recipe ds-cnn --out m --seed -1", r"--seed", r"--help"
    ),
    Case(
        "train-learning-rate-nan",
        "train --data data/manifest.csv --recipe ds-cnn --out m --learning-rate nan",
        r"--learning-rate",
        r"--help",
    ),
    Case(
        "train-mitigation-without-group",
        "train --data data/manifest.csv --recipe ds-cnn --out m --mitigation balanced",
        r"act on a group column",
        r"pass --group",
    ),
    Case("train-data-missing", "train --data nope.csv --recipe ds-cnn --out m", r"nope\.csv"),
    Case(
        "train-out-in-proc",
        "train --data data/manifest.csv --recipe ds-cnn --out /proc/ondevice-audit-model",
        r"/proc",
        r"choose a folder you can write to",
    ),
]

EXPORT = [
    Case("export-model-missing", "export nope.keras --out e", r"model not found: nope\.keras"),
    Case("export-model-not-keras", "export model.tflite --out e", r"export starts from a Keras model"),
    Case("export-unknown-format", "export model.keras --out e --to coreml", r"--to 'coreml'", r"choose from"),
    Case("export-unknown-quantization", "export model.keras --out e --quantize int4", r"int4"),
    Case("export-int8-without-data", "export model.keras --out e --quantize int8", r"--data is needed"),
    Case("export-out-is-file", "export model.keras --out p.csv", r"--out p\.csv is a file", r"give a folder"),
    Case("export-prune-above-one", "export model.keras --out e --prune 2", r"--prune", r"--help"),
    Case("export-seed-negative", "export model.keras --out e --seed -1", r"--seed", r"--help"),
    Case(
        "export-keras-without-metadata",
        "export plain.keras --out e",
        r"plain\.keras",
        setup=_write("plain.keras", "not a keras file\n"),
    ),
    Case(
        "export-split-file-missing",
        "export model.keras --out e --data data/manifest.csv --split-file nope.csv",
        r"nope\.csv",
        setup=_copy("model.tflite", "model.keras"),
    ),
    Case(
        "export-data-missing",
        "export model.keras --out e --quantize int8 --data nope.csv",
        r"nope\.csv",
        setup=_copy("model.tflite", "model.keras"),
    ),
]

SWEEP = [
    Case("sweep-matrix-missing", "sweep --matrix nope.toml --out runs/new", r"matrix not found: nope\.toml"),
    Case(
        "sweep-matrix-not-toml",
        "sweep --matrix bad.toml --out runs/new",
        r"not valid TOML",
        setup=_write("bad.toml", "sample_rate = [\n"),
    ),
    Case(
        "sweep-unknown-key",
        S,
        r"unknown key\(s\) sample_rates",
        r"known keys",
        setup=_replace("matrix.toml", "sample_rate =", "sample_rates ="),
    ),
    Case(
        "sweep-no-data-table",
        "sweep --matrix m.toml --out runs/new",
        r"a \[data\] table .* is required",
        setup=_write("m.toml", 'features = "mfcc"\n'),
    ),
    Case(
        "sweep-empty-factor",
        S,
        r"sample_rate is an empty list",
        r"give at least one value",
        setup=_replace("matrix.toml", "sample_rate = 16000", "sample_rate = []"),
    ),
    Case(
        "sweep-bad-level",
        S,
        r"sample_rate = -8000 is not valid",
        r"expected a positive",
        setup=_replace("matrix.toml", "sample_rate = 16000", "sample_rate = -8000"),
    ),
    Case(
        "sweep-confidence-nan",
        S,
        r"data\.confidence = nan must be a number",
        setup=_data("confidence = nan"),
    ),
    Case(
        "sweep-resampling-seed-negative",
        S,
        r"data\.resampling_seed must be 0 or more",
        setup=_data("resampling_seed = -1"),
    ),
    Case("sweep-max-groups-one", S, r"data\.max_groups must be at least 2, got 1", setup=_data("max_groups = 1")),
    Case(
        "sweep-max-groups-text",
        S,
        r"data\.max_groups = 'many' must be an integer",
        setup=_data('max_groups = "many"'),
    ),
    Case("sweep-max-groups-float", S, r"data\.max_groups = 2\.5 must be an integer", setup=_data("max_groups = 2.5")),
    Case(
        "sweep-too-many-groups",
        S,
        r"id has 24 groups, more than data\.max_groups 10: .*id column given as a group \(data\.groups of matrix\.toml\)",
        r"set data\.max_groups = 24 in matrix\.toml",
        setup=_sweep_ids,
    ),
    Case(
        "sweep-max-cells-zero",
        S,
        r"max_cells = 0 must be a positive integer",
        setup=_replace("matrix.toml", "sample_rate", "max_cells = 0\nsample_rate"),
    ),
    Case(
        "sweep-too-many-cells",
        "sweep --matrix big.toml --out runs/new --cache cache",
        r"300 cells: .* tasks",
        r"pass --yes.*max_cells = 300",
        setup=_big_matrix,
    ),
    Case(
        "sweep-out-is-file",
        "sweep --matrix matrix.toml --out p.csv --cache cache",
        r"--out p\.csv is a file",
        r"give a folder",
    ),
    Case(
        "sweep-out-not-a-sweep",
        "sweep --matrix matrix.toml --out data --cache cache",
        r"data exists and is not a sweep folder",
        r"choose another --out",
    ),
    Case(
        "sweep-existing-without-resume",
        "sweep --matrix matrix.toml --out runs/old --cache cache",
        r"already holds a sweep",
        r"pass --resume",
        setup=_sweep_folder,
    ),
    Case(
        "sweep-resume-other-matrix",
        "sweep --matrix matrix.toml --out runs/old --cache cache --resume",
        r"holds a sweep of a different matrix",
        r"--resume needs the same one",
        setup=_sweep_folder,
    ),
    Case("sweep-jobs-zero", f"{S} --jobs 0", r"--jobs", r"--help"),
    Case("sweep-within-nan", f"{S} --within nan", r"--within", r"--help"),
    Case("sweep-within-inf", f"{S} --within inf", r"--within.*not a finite", r"--help"),
    Case("sweep-unknown-executor", f"{S} --executor slurm", r"slurm"),
    Case("sweep-model-missing", f"{S} --model nope.keras", r"nope\.keras"),
    Case(
        "sweep-manifest-missing", S, r"nope\.csv", setup=_replace("matrix.toml", "data/manifest.csv", "data/nope.csv")
    ),
    Case(
        "sweep-label-spelling",
        S,
        r"'YES' vs 'yes'",
        r"make them identical",
        setup=_manifest(
            lambda lines: [lines[0], lines[1].replace(",_unknown_,", ",YES,").replace(",yes,", ",YES,"), *lines[2:]]
        ),
    ),
    Case(
        "sweep-unknown-metric",
        S,
        r"data\.metric = 'f2' is not valid",
        r"choose from",
        setup=_data('metric = "f2"'),
    ),
    Case(
        "sweep-output-superscript-index",
        f"{S} --model model.tflite --output ²",
        r"model\.tflite has no output '²'; its outputs: .* \(or an index from 0 to 0\)",
    ),
    Case(
        "sweep-output-negative-index",
        f"{S} --model model.tflite --output -1",
        r"has no output '-1'.*or an index from 0 to 0",
    ),
    Case("sweep-output-past-the-end", f"{S} --model model.tflite --output 1", r"has no output '1'"),
    Case("sweep-output-empty", f"{S} --model model.tflite --output ''", r"has no output ''"),
    Case("sweep-output-with-recipe", f"{S} --output 0", r"describe your own model", r"--model"),
    Case("sweep-labels-without-model", f"{S} --labels labels.txt", r"describe your own model", r"--model"),
    Case(
        "sweep-gate-junit-is-matrix",
        f"{S} --fail-on-gate --max-rb 1 --junit matrix.toml",
        r"is the matrix",
        r"choose another",
    ),
]

TARGETS = [
    Case("targets-unknown", "targets check pi", r"unknown target 'pi'"),
    Case("targets-password", "targets check ssh://pi:secret@host", r"passwords are not accepted", r"use a key"),
    Case("targets-option-injection", "targets check ssh://-oProxyCommand=x", r"is not a host name"),
    Case("targets-port-text", "targets check ssh://pi@host:ssh", r"port must be a number"),
    Case(
        "targets-ssh-off",
        "targets check ssh://pi@host --ssh-option stricthostkeychecking=NO",
        r"host keys must be checked",
        r"UserKnownHostsFile=FILE",
    ),
    Case(
        "targets-ssh-false",
        "targets check ssh://pi@host --ssh-option StrictHostKeyChecking=false",
        r"host keys must be checked",
        r"UserKnownHostsFile=FILE",
    ),
    Case(
        "targets-ssh-option-unknown",
        "targets check ssh://pi@host --ssh-option StrictHostKeyChecking=maybe",
        r"ssh does not accept the --ssh-option values",
    ),
    Case("targets-model-missing", "targets check subprocess --model nope.tflite", r"model not found: nope\.tflite"),
    Case("top-unknown-command", "bias report.json", r"No such command 'bias'", r"--help"),
]

CASES = [*SCORE, *AUDIT, *GATE, *REPORT, *COMPARE, *DATASETS, *TRAIN, *EXPORT, *SWEEP, *TARGETS]
