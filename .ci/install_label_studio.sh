#!/usr/bin/env bash
# Build Label Studio's own virtual environment for tests/test_label_studio_integration.py.
#
# Label Studio (Django, its own pins) must not share our environment: it lives in
# $MTAL_LABEL_STUDIO_VENV (default ~/.cache/mtal_ray/label-studio-venv), cached between
# runs. Idempotent: does nothing when the pinned version was installed completely (marker).
set -euo pipefail

VERSION="1.23.2"
VENV="${MTAL_LABEL_STUDIO_VENV:-$HOME/.cache/mtal_ray/label-studio-venv}"
PYTHON="${MTAL_LABEL_STUDIO_PYTHON:-python3}"
MARKER="$VENV/.mtal-label-studio-$VERSION"

if [ -e "$MARKER" ] && [ -x "$VENV/bin/label-studio" ]; then
    echo "label-studio $VERSION already in $VENV"
    exit 0
fi
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "label-studio==$VERSION"
touch "$MARKER"
echo "label-studio $VERSION installed in $VENV"
