#!/usr/bin/env bash
# Create or complete the model-server venv (.triton-venv) with nvidia-pytriton's tritonserver.
#
# Idempotent: a venv that already has the pinned versions and the server binary is left alone.
# torch is installed FIRST, pinned by a constraints file, so that nvidia-pytriton's dependencies can
# never pull a CUDA torch or numpy >= 2 (pip's configured indexes provide the CPU build of torch 2.13).
#
# Environment: TRITON_VENV (default: <repo>/.triton-venv), PYTHON (default: python3.11).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${TRITON_VENV:-$repo_root/.triton-venv}
python=${PYTHON:-python3.11}
requirements=$repo_root/deploy/triton/requirements.txt

# The requirements file is also the constraints file: every later install sees the same pins.
installed() {
    [ -x "$venv/bin/python" ] || return 1
    "$venv/bin/python" - "$requirements" <<'PY'
import importlib.metadata as metadata, pathlib, sys
pins = [l.split("#")[0].strip() for l in pathlib.Path(sys.argv[1]).read_text().splitlines()]
for name, version in (pin.split("==") for pin in pins if pin):
    try:
        if metadata.version(name).split("+")[0] != version:
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
import pytriton, pathlib as p
sys.exit(0 if (p.Path(pytriton.__file__).parent / "tritonserver/bin/tritonserver").is_file() else 1)
PY
}

if installed; then
    echo "install_triton: $venv is complete"
    exit 0
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install --constraint "$requirements" "$(grep '^torch==' "$requirements")"
"$venv/bin/pip" install --constraint "$requirements" --requirement "$requirements"
installed || { echo "install_triton: $venv is still incomplete" >&2; exit 1; }
echo "install_triton: $venv ready"
