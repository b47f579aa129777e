# Quick start: `make demo` and `make test` on a fresh Debian/Ubuntu machine with Python 3.11.
# Every install step lives here or in scripts/; nothing depends on what was installed by hand.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test-servers test test-fast demo lint protos clean

venv: $(STAMP)

# torch is installed first and held by constraints.txt, so nothing can pull a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,service,train,triton]'
	touch $@

# Real servers and checkers for the tests: Debian redis-server, Triton from PyPI nvidia-pytriton in its
# own environment (it needs numpy<2; see deploy/triton/requirements.txt), the GStreamer RTSP test
# server, promtool and kubectl.
test-servers:
	bash scripts/install_redis.sh
	bash scripts/install_triton.sh
	bash scripts/install_rtsp.sh
	bash scripts/install_deploy_tools.sh

test: venv test-servers
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

# The suite without the tests marked slow (full sequences, servers), for quick runs while working. It
# installs no server: a test whose server or tool is missing skips, also where the shell has CI=true,
# under which tests/conftest.py fails such skips (that strictness is for `make test`, which installs them).
test-fast: venv
	env -u CI $(BIN)/pytest -m "not slow"

demo: venv
	$(BIN)/siamstream demo --out out/demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

protos: venv
	$(BIN)/python scripts/generate_protos.py

clean:
	rm -rf $(VENV) .triton-venv out .pytest_cache .ruff_cache .mypy_cache
