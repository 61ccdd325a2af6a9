#!/usr/bin/env bash
# The main job on the built-in corpus: synthesise it, prepare it into tfrecords/synth, and
# run the paper's whole protocol at the CPU-sized `small` profile into runs/synth (three
# defences, the attackers of Table 1, the lambda sweep, evaluation and report).
# Extra arguments go to `tfadvser reproduce` (e.g. --seeds 3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

if [ ! -f tfrecords/synth/metadata.json ]; then
    rm -rf data/synth
    tfadvser synth data/synth
    tfadvser prepare data/synth --corpus demos --out tfrecords/synth
fi
# 24 audio clips per Table 1 attacker (the default is 64): the main job stays within 20 minutes.
tfadvser reproduce --data tfrecords/synth --out runs/synth --audio-clips 24 "$@"
