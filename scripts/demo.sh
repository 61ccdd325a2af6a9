#!/usr/bin/env bash
# The main job on the built-in corpus: synthesise it, then prepare it into tfrecords/synth.
# Extra arguments go to `tfadvser synth` (e.g. --speakers 16 --difficulty 0.6).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

rm -rf data/synth
tfadvser synth data/synth "$@"
tfadvser prepare data/synth --corpus demos --out tfrecords/synth --overwrite
echo "prepared data: $TFADVSER_ROOT/tfrecords/synth (see metadata.json)"
