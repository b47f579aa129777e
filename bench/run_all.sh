#!/usr/bin/env bash
# Run every benchmark once and print its figures (one JSON object per benchmark, preceded by a title).
# Figures are measured side by side within each run; they are not pass/fail. See bench/README.md.
#
#   bash bench/run_all.sh                 # from the repository root, after `make venv` (and
#                                         # `make test-servers` for the Triton variant)
#   TRACKER=siamrpn_alex FRAMES=30 STREAMS=1,4,16 bash bench/run_all.sh
set -euo pipefail

cd "$(dirname "$0")/.."
SIAMSTREAM=${SIAMSTREAM:-.venv/bin/siamstream}
TRACKER=${TRACKER:-siamrpn_alex}
FRAMES=${FRAMES:-30}
STREAMS=${STREAMS:-1,4,16}
TRITON_VENV=${TRITON_VENV:-.triton-venv}

echo "== tracker: per-stage step timings and batching (${TRACKER}, in process)"
"$SIAMSTREAM" bench tracker --tracker "$TRACKER" --frames "$FRAMES" --json

echo "== service, embedded backend (${TRACKER}, streams ${STREAMS})"
"$SIAMSTREAM" bench service --tracker "$TRACKER" --backend embedded --streams "$STREAMS" \
    --frames "$FRAMES" --json

echo "== service, Triton backend (${TRACKER}, streams ${STREAMS})"
if [ -d "$TRITON_VENV" ]; then
    "$SIAMSTREAM" bench service --tracker "$TRACKER" --backend triton --triton-venv "$TRITON_VENV" \
        --streams "$STREAMS" --frames "$FRAMES" --json
else
    echo "skipped: no Triton server in $TRITON_VENV (run scripts/install_triton.sh)"
fi
