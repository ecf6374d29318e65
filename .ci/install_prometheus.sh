#!/usr/bin/env bash
# Install Debian's `prometheus` package non-interactively (used by tests/test_metrics_prometheus.py).
#
# Idempotent: does nothing when a `prometheus` binary is already on PATH. The Debian package
# starts a system service on install where an init system runs; the tests never use it (they
# start their own server on a free loopback port), so the service is stopped again if present.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
    echo "prometheus already installed: $(command -v prometheus)"
    prometheus --version 2>&1 | head -n 1
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 keeps dpkg from starting the packaged service in containers.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus

command -v prometheus >/dev/null 2>&1 || { echo "prometheus binary missing after install" >&2; exit 1; }
prometheus --version 2>&1 | head -n 1
