#!/usr/bin/env bash
# A seed tracker against its baseline, both trained under the same short synthetic schedule: train SEED
# (default siamfc_acm_alexnet) exactly as the demo package's siamfc_alexnet was trained (same
# training.json, same `synthetic:N` data, same seed), export it, and evaluate it next to the baseline
# package in ONE `siamstream eval` call on a held-out synthetic suite.
#
#   bash bench/seed_vs_baseline.sh      # from the repository root, after bench/train_demo.sh; ~25 min on 2 cores
#
# Held out: training uses suite seed 0 (sequence seeds SeedSequence([0, i]), 320x240, 40 frames); the
# evaluation suite EVAL_SEED (default 1000) gives SeedSequence([1000, i]) sequences at 640x480, 60 frames.
# Set SKIP_TRAIN=1 to re-evaluate an existing OUT/train. Writes under OUT; prints the reports.
set -euo pipefail

cd "$(dirname "$0")/.."
SIAMSTREAM=${SIAMSTREAM:-.venv/bin/siamstream}
SEED_TRACKER=${SEED_TRACKER:-siamfc_acm_alexnet}
BASELINE=${BASELINE:-models/packages/demo}
CONFIG=${CONFIG:-models/packages/demo/training.json}
OUT=${OUT:-out/seed_vs_baseline/$SEED_TRACKER}
TRAIN_SEQUENCES=${TRAIN_SEQUENCES:-300}
EVAL_SEQUENCES=${EVAL_SEQUENCES:-12}
EVAL_SEED=${EVAL_SEED:-1000}

mkdir -p "$OUT"
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
    rm -rf "$OUT/train"
    started=$(date +%s)
    "$SIAMSTREAM" train --tracker "$SEED_TRACKER" --data "synthetic:$TRAIN_SEQUENCES" --config "$CONFIG" \
        --out "$OUT/train" --no-progress
    echo "training wall time: $(($(date +%s) - started)) s"
fi
last=$(ls "$OUT"/train/checkpoint_e*.pth | sort | tail -n 1)
"$SIAMSTREAM" export --checkpoint "$last" --out "$OUT/package"
rm -rf "$OUT/eval"
"$SIAMSTREAM" eval --package "$OUT/package" --package "$BASELINE" --synthetic "$EVAL_SEQUENCES" \
    --seed "$EVAL_SEED" --out "$OUT/eval"
