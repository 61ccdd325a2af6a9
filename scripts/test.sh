#!/usr/bin/env bash
# The test suite. Extra arguments go to pytest (e.g. -m slow, -k prepare, -x).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

python -m pytest "$@"
