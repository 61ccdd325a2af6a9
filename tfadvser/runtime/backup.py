"""Resuming an interrupted `fit` to the result an uninterrupted one gives.

`EpochBackup` is Keras's BackupAndRestore with three changes:
- the backup (weights with the optimizer's state, and the epoch) is written into a fresh
  folder renamed into place (`files.atomic_path`): a kill at any moment leaves the last
  complete backup, or none, never new weights beside an old epoch or a torn weights file;
- no backup after a fit's last epoch (it was deleted again as soon as training ended);
- `resumed_epoch` tells the caller, before `fit`, how many epochs are done, so that the
  training data can skip the batches they consumed: Keras restores the weights and the
  optimizer, not the position in the input pipeline, and without the skip a resumed run
  would see the first epoch's batches again.
"""
from __future__ import annotations

import json
from pathlib import Path

import keras

from tfadvser.runtime.files import atomic_path

_STATE, _WEIGHTS, _METADATA = "state", "latest.weights.h5", "training_metadata.json"


def resumed_epoch(backup_dir) -> int:
    """Epochs an interrupted fit with this backup folder completed (0 when none)."""
    path = Path(backup_dir) / _STATE / _METADATA
    return int(json.loads(path.read_text())["epoch"]) if path.exists() else 0


class EpochBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose state is written atomically and skipped after the last epoch."""

    def __init__(self, backup_dir):
        super().__init__(str(backup_dir))
        # Where the base class looks for a backup in `on_train_begin`.
        self._weights_path = str(Path(backup_dir) / _STATE / _WEIGHTS)
        self._training_metadata_path = str(Path(backup_dir) / _STATE / _METADATA)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.params.get("epochs", epoch + 2):
            super().on_epoch_end(epoch, logs)

    def _save_model(self):
        with atomic_path(Path(self.backup_dir) / _STATE, directory=True) as tmp:
            self.model.save_weights(str(tmp / _WEIGHTS))
            (tmp / _METADATA).write_text(json.dumps({"epoch": self._current_epoch, "batch": 0}))
