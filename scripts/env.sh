# Sourced by the README's commands: create, or reuse when current, the virtualenv that holds
# tfadvser's pinned dependencies, and put it first on PATH.
#
# The venv lives outside the checkout (TFADVSER_VENV, default ~/.cache/tfadvser/venv) so
# that every clone on this machine, CI's included, shares one TensorFlow install. It is
# considered current when the hash of setup.py (which holds every pin) matches the one
# recorded at the last full install. The project itself is re-installed in editable mode
# on every call (seconds), so the venv always points at the checkout that sourced this.
set -euo pipefail

TFADVSER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TFADVSER_VENV="${TFADVSER_VENV:-$HOME/.cache/tfadvser/venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

want="$(sha256sum "$TFADVSER_ROOT/setup.py" | cut -d' ' -f1)"
have="$(cat "$TFADVSER_VENV/.tfadvser-setup-hash" 2>/dev/null || true)"

if [ "$want" != "$have" ]; then
    echo "[env] installing pinned dependencies into $TFADVSER_VENV (takes a few minutes once)" >&2
    if [ ! -x "$TFADVSER_VENV/bin/python" ]; then
        "$PYTHON" -m venv "$TFADVSER_VENV"
    fi
    "$TFADVSER_VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
    "$TFADVSER_VENV/bin/python" -m pip install --quiet -e "$TFADVSER_ROOT[test]"
    echo "$want" > "$TFADVSER_VENV/.tfadvser-setup-hash"
else
    "$TFADVSER_VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$TFADVSER_ROOT"
fi

export PATH="$TFADVSER_VENV/bin:$PATH"
# TensorFlow's C++ start-up chatter hides the tool's own output; errors still show.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
cd "$TFADVSER_ROOT"
