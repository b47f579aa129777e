#!/usr/bin/env bash
# The ResNet-50 seed trackers and their baselines, all trained under ONE short synthetic schedule
# (bench/r50_short_schedule.json laid over each tracker's own labels, losses and objective by
# bench/short_schedule.py), exported, and evaluated together in ONE `siamstream eval` call on a held-out
# synthetic suite.
#
#   bash bench/seed_vs_baseline_r50.sh      # from the repository root, after `make venv`; ~90 min on 2 cores
#
# No pretrained backbone can be fetched here, so every backbone is seeded-random and stays frozen (its
# BatchNorm statistics too): the pairs compare what the seed papers change - correlation (ACM), head and
# attention (SiamCAN, DCFNet's staged fusion), margin supervision (SiamMargin) - on equal random features.
# Training uses synthetic suite seed 0 (320x240, 40 frames); evaluation suite EVAL_SEED (default 1000)
# is 640x480, EVAL_LENGTH frames. TRACKERS overrides the list; SKIP_TRAIN=1 re-exports and re-evaluates;
# DEVICE=cuda trains and evaluates on the GPU.
set -euo pipefail

cd "$(dirname "$0")/.."
SIAMSTREAM=${SIAMSTREAM:-.venv/bin/siamstream}
PYTHON=${PYTHON:-.venv/bin/python}
SCHEDULE=${SCHEDULE:-bench/r50_short_schedule.json}
OUT=${OUT:-out/seed_vs_baseline_r50}
TRAIN_SEQUENCES=${TRAIN_SEQUENCES:-300}
EVAL_SEQUENCES=${EVAL_SEQUENCES:-8}
EVAL_LENGTH=${EVAL_LENGTH:-30}
EVAL_SEED=${EVAL_SEED:-1000}
DEVICE=${DEVICE:-cpu}
# Seeds with the baseline each one is built on and compared with.
TRACKERS=${TRACKERS:-"siamrpnpp_r50 siamrpnpp_acm_r50 siammargin_r50 siamban_r50 siamban_acm_r50 siamcan_r50 siamcar_r50 dcfnet_r50"}

mkdir -p "$OUT"
packages=()
for tracker in $TRACKERS; do
    run="$OUT/$tracker"
    if [ "${SKIP_TRAIN:-0}" != 1 ]; then
        rm -rf "$run"
        mkdir -p "$run"
        "$PYTHON" bench/short_schedule.py --tracker "$tracker" --schedule "$SCHEDULE" >"$run/training.json"
        started=$(date +%s)
        "$SIAMSTREAM" train --tracker "$tracker" --data "synthetic:$TRAIN_SEQUENCES" --config "$run/training.json" \
            --out "$run/train" --device "$DEVICE" --no-progress
        echo "$tracker training wall time: $(($(date +%s) - started)) s"
    fi
    last=$(ls "$run"/train/checkpoint_e*.pth | sort | tail -n 1)
    rm -rf "$run/package"
    "$SIAMSTREAM" export --checkpoint "$last" --out "$run/package"
    packages+=(--package "$run/package")
done
rm -rf "$OUT/eval"
started=$(date +%s)
"$SIAMSTREAM" eval "${packages[@]}" --synthetic "$EVAL_SEQUENCES" --length "$EVAL_LENGTH" --seed "$EVAL_SEED" \
    --device "$DEVICE" --out "$OUT/eval"
echo "evaluation wall time: $(($(date +%s) - started)) s"
