#!/usr/bin/env bash
# The README's wake-word example, end to end on the bundled data: a "yes" detector trained by the tool on the TFLite
# Micro front-end, then audited at one population-wide threshold (1 % of negatives accepted) on the speakers it
# never heard. Writes runs/yes-detector/ and the DET chart the README shows (docs/images/yes-detector-gender-det.png).
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${CLI:-.venv/bin/ondevice-audit}
OUT=runs/yes-detector
DATA=datasets/synth-kws-neural/manifest.csv

"$CLI" train --data "$DATA" --recipe ds-cnn --task detect --positive-label yes --features micro \
    --epochs 30 --group gender --seed 0 --split 0.5,0.1,0.4 --out "$OUT"
"$CLI" audit "$OUT/model.tflite" --data "$DATA" --split-file "$OUT/split.csv" --split test \
    -g gender -g accent --at-far 0.01 --format json --report-file "$OUT/audit.json"
"$CLI" report "$OUT/audit.json" --html "$OUT/audit.html" --markdown "$OUT/audit.md" --charts "$OUT/charts"
mkdir -p docs/images
cp "$OUT/charts/gender-det.png" docs/images/yes-detector-gender-det.png
"$CLI" audit "$OUT/model.tflite" --data "$DATA" --split-file "$OUT/split.csv" --split test \
    -g gender -g accent --at-far 0.01
