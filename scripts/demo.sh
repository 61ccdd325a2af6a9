#!/usr/bin/env bash
# The main job on the built-in corpus: synthesise it, prepare it into tfrecords/synth, and
# train the three defences at the CPU-sized `small` profile into runs/synth.
# Extra arguments go to `tfadvser synth` (e.g. --speakers 16 --difficulty 0.6).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

rm -rf data/synth
tfadvser synth data/synth "$@"
tfadvser prepare data/synth --corpus demos --out tfrecords/synth --overwrite
tfadvser train defence --data tfrecords/synth --model all --profile small --out runs/synth
echo "prepared data: $TFADVSER_ROOT/tfrecords/synth; defences: $TFADVSER_ROOT/runs/synth/defences"
