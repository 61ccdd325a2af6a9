# Sourced by the README's commands: create, or reuse when current, the virtualenv that holds
# tfadvser's pinned dependencies, and put it first on PATH.
#
# The venv lives outside the checkout (TFADVSER_VENV, default ~/.cache/tfadvser/venv) so
# that every clone on this machine, CI's included, shares one TensorFlow install. It is
# considered current when the hash of setup.py (which holds every pin) matches the one
# recorded at the last full install. The project itself is re-installed in editable mode
# (--no-deps, seconds) only when the venv's `tfadvser` and `tfadvser_cli` do not already
# point at the checkout that sources this, so the venv always runs this checkout's code.
#
# Sourcing it into an interactive shell changes only PATH, TF_CPP_MIN_LOG_LEVEL,
# TFADVSER_ROOT and TFADVSER_VENV: the work runs in a subshell under `set -euo pipefail`, so
# the caller's shell options and working directory stay as they were (the scripts that
# source it set their own options and `cd` to the checkout themselves). On failure it
# returns 1 with the reason on stderr.

TFADVSER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TFADVSER_VENV="${TFADVSER_VENV:-$HOME/.cache/tfadvser/venv}"

if ! (
    set -euo pipefail
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
    # Where the editable install's import hooks find both packages (no import is run).
    elif ! [ -x "$TFADVSER_VENV/bin/tfadvser" ] || ! "$TFADVSER_VENV/bin/python" -I - "$TFADVSER_ROOT" <<'PY'
import importlib.util, os, sys
root = os.path.realpath(sys.argv[1])
homes = {"tfadvser": "tfadvser", "tfadvser_cli": "cli"}
for package, folder in homes.items():
    spec = importlib.util.find_spec(package)
    found = spec and spec.origin and os.path.realpath(os.path.dirname(spec.origin))
    if found != os.path.join(root, folder):
        sys.exit(1)
PY
    then
        echo "[env] pointing $TFADVSER_VENV's tfadvser at $TFADVSER_ROOT" >&2
        "$TFADVSER_VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$TFADVSER_ROOT"
    fi
); then
    echo "[env] could not set up $TFADVSER_VENV for $TFADVSER_ROOT (see above)" >&2
    return 1 2>/dev/null || exit 1
fi

export PATH="$TFADVSER_VENV/bin:$PATH"
# TensorFlow's C++ start-up chatter hides the tool's own output; errors still show.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
