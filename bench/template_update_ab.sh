#!/usr/bin/env bash
# Template update A/B on trained weights: export CHECKPOINT a second time with the online template
# update enabled (`siamstream export --template-update RATE:GATE`), then evaluate the plain and the
# update-capable package together (one `siamstream eval` call per suite, so the median step times are
# measured in the same run) on a held-out synthetic suite with the appearance-change challenge on every
# sequence, and on the same suite without it.
#
#   bash bench/template_update_ab.sh    # from the repository root, after bench/train_demo.sh; ~10 min on 2 cores
#   UPDATE=0.05:0.5 bash bench/template_update_ab.sh
#
# The two packages hold the same weights; the reports are named `<tracker>@plain` and `<tracker>@update`.
# `bench/template_update_cost.py --trackers siamfc_alexnet` adds the worst case (an update every frame),
# plain and updating steps interleaved frame by frame.
set -euo pipefail

cd "$(dirname "$0")/.."
SIAMSTREAM=${SIAMSTREAM:-.venv/bin/siamstream}
CHECKPOINT=${CHECKPOINT:-out/train_demo/train/checkpoint_e005.pth}
UPDATE=${UPDATE:-0.0102:0.9}
OUT=${OUT:-out/template_update_ab/r${UPDATE/:/_g}}
EVAL_SEQUENCES=${EVAL_SEQUENCES:-12}
EVAL_SEED=${EVAL_SEED:-1000}

mkdir -p "$OUT"
"$SIAMSTREAM" export --checkpoint "$CHECKPOINT" --out "$OUT/plain"
"$SIAMSTREAM" export --checkpoint "$CHECKPOINT" --out "$OUT/update" --template-update "$UPDATE"
for suite in appearance_change plain; do
    challenge=()
    [ "$suite" = appearance_change ] && challenge=(--challenge appearance_change)
    rm -rf "$OUT/eval_$suite"
    echo "== suite: $suite (update $UPDATE)"
    "$SIAMSTREAM" eval --package "$OUT/plain" --package "$OUT/update" --synthetic "$EVAL_SEQUENCES" \
        --seed "$EVAL_SEED" "${challenge[@]}" --out "$OUT/eval_$suite"
done
