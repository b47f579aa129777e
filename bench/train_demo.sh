#!/usr/bin/env bash
# Reproduce the demo tracker package models/packages/demo from scratch: train siamfc_alexnet on
# synthetic sequences with models/packages/demo/training.json, export the last checkpoint, and evaluate
# it on a held-out synthetic suite next to the same tracker with seeded random weights.
#
#   bash bench/train_demo.sh          # from the repository root, after `make venv`; ~25-30 min on 2 cores
#
# Training data: `synthetic:N` (suite seed 0, 320x240, 40 frames). Evaluation: `--synthetic EVAL_N
# --seed EVAL_SEED` (640x480, 60 frames); sequence seeds are SeedSequence([suite seed, index]), so a
# different suite seed gives held-out sequences. Writes checkpoints and reports under OUT.
set -euo pipefail

cd "$(dirname "$0")/.."
SIAMSTREAM=${SIAMSTREAM:-.venv/bin/siamstream}
PYTHON=${PYTHON:-.venv/bin/python}
PACKAGE=models/packages/demo
OUT=${OUT:-out/train_demo}
TRAIN_SEQUENCES=${TRAIN_SEQUENCES:-300}
EVAL_SEQUENCES=${EVAL_SEQUENCES:-10}
EVAL_SEED=${EVAL_SEED:-7}

rm -rf "$OUT"
mkdir -p "$OUT"
started=$(date +%s)
"$SIAMSTREAM" train --tracker siamfc_alexnet --data "synthetic:$TRAIN_SEQUENCES" \
    --config "$PACKAGE/training.json" --out "$OUT/train" --no-progress
trained=$(date +%s)
echo "training wall time: $((trained - started)) s"

last=$(ls "$OUT"/train/checkpoint_e*.pth | sort | tail -n 1)
"$SIAMSTREAM" export --checkpoint "$last" --out "$PACKAGE"
"$PYTHON" -c "import sys; from pathlib import Path; from services.demo.packages import export_random_package; \
export_random_package('siamfc_alexnet', Path(sys.argv[1]))" "$OUT/random"

"$SIAMSTREAM" eval --package "$PACKAGE" --synthetic "$EVAL_SEQUENCES" --seed "$EVAL_SEED" \
    --out "$OUT/eval/trained"
"$SIAMSTREAM" eval --package "$OUT/random/siamfc_alexnet" --synthetic "$EVAL_SEQUENCES" \
    --seed "$EVAL_SEED" --out "$OUT/eval/random"

# Both reports name the tracker siamfc_alexnet: relabel them and draw them on the same plots.
mkdir -p "$PACKAGE/eval"
"$PYTHON" - "$OUT/eval" "$PACKAGE/eval" <<'PY'
import json
import sys
from pathlib import Path

from siamstream.evaluation.plots import plot_norm_precision, plot_precision, plot_success
from siamstream.evaluation.report import EvaluationReport

source, target = Path(sys.argv[1]), Path(sys.argv[2])
reports = []
for weights in ("trained", "random"):
    document = json.loads((source / weights / "siamfc_alexnet.json").read_text())
    report = EvaluationReport(tracker=f"siamfc_alexnet {weights}", sequences=document["sequences"])
    (target / f"{weights}.json").write_text(report.to_json() + "\n")
    print(report.to_text())
    reports.append(report)
plot_success(reports, target / "success.png")
plot_precision(reports, target / "precision.png")
plot_norm_precision(reports, target / "norm_precision.png")
PY
cp "$OUT/train/metrics.csv" "$OUT/train/loss_curves.png" "$PACKAGE/eval/"
echo "total wall time: $(($(date +%s) - started)) s"
du -sh "$PACKAGE"
