"""Resuming an interrupted `fit`: Keras's BackupAndRestore, minus the copy it writes after
the last epoch (deleted again as soon as training ends, and the whole cost of a backup for
a one-epoch task)."""
from __future__ import annotations

import keras


class EpochBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that skips the backup after a fit's last epoch."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.params.get("epochs", epoch + 2):
            super().on_epoch_end(epoch, logs)
