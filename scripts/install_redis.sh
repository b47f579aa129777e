#!/usr/bin/env bash
# Install Debian's redis-server for the integration tests (siamstream_services.testing starts its own
# instances on free loopback ports). Idempotent: does nothing when redis-server is already on PATH.
# The package does not start a server by itself where there is no systemd (containers, CI).
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    echo "redis-server already installed: $(redis-server --version)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
else
    sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends redis-server
echo "installed: $(redis-server --version)"
