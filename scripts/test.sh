#!/usr/bin/env bash
# The test suite. Extra arguments go to pytest (e.g. -m slow, -k prepare, -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

python -m pytest "$@"
