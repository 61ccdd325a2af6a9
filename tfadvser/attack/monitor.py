"""What TensorBoard shows while an attacker trains, beyond the loss terms Keras logs."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfadvser.data.rendering import clip_audio, render
from tfadvser.evaluation.figures import spectrogram_strip
from tfadvser.evaluation.scoring import attack_scores, labels_of, perturb, predictions


TRAIN_SUCCESS_TAG = "train_batches/success_rate"
DEV_TAG = "dev_subset/{defence}/{metric}"


class AttackMonitor(keras.callbacks.Callback):
    """Every epoch (= `monitor_every` steps): adversarial UAR, clean UAR and attack success
    rate on a fixed dev subset for every defence of the sequence, the success rate on the
    epoch's training batches (both at the optimizer's step: `training_curves` reads them
    back), the learning rate, and an image of x' / eta / x of the first clip.

    `batches`: the fixed (x, y) dev batches; `clean(name)`: that defence's predictions on
    them (the same for every task, so computed once by the caller); `generator`: the
    generator being trained. `clip`: optional (clean waveform of the first clip, std per
    mel bin, FeatureConfig): then the audio dashboard gets that clip clean, adversarial
    (the perturbation rendered as sound, `data.rendering.render`, clipped to [-1, 1]) and
    the perturbation alone, every epoch.
    """

    def __init__(self, generator: keras.Model, batches: list, defences: Mapping[str, keras.Model],
                 clean: Callable[[str], np.ndarray], n_classes: int, names: Sequence[str],
                 log_dir: Path, clip: Optional[tuple] = None):
        super().__init__()
        self.clip = clip
        self.generator, self.batches, self.defences = generator, batches, defences
        self.clean, self.n_classes, self.names = clean, n_classes, list(names)
        self.writer = tf.summary.create_file_writer(str(log_dir / "monitor"))

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        perturbed = perturb(self.generator, self.batches)  # once, for every defence
        labels = [str(i) for i in range(self.n_classes)]
        with self.writer.as_default():
            tf.summary.scalar("learning_rate", float(self.model.optimizer.learning_rate), step=step)
            if logs and "success_rate" in logs:  # the epoch's mean over its training batches
                tf.summary.scalar(TRAIN_SUCCESS_TAG, float(logs["success_rate"]), step=step)
            for name in self.names:
                result = attack_scores(labels_of(self.batches), self.clean(name),
                                       predictions(self.defences[name], perturbed), labels)
                for metric in ("adversarial_uar", "clean_uar", "success_rate"):
                    tf.summary.scalar(DEV_TAG.format(defence=name, metric=metric), result[metric],
                                      step=step)
            x_adv, _, eta = perturbed[0]
            image = spectrogram_strip(np.asarray(self.batches[0][0][0]), np.asarray(eta[0]),
                                      np.asarray(x_adv[0]))
            tf.summary.image("spectrograms", image[None], step=step,
                             description="x' (top), eta and x (bottom) of the first clip")
            if self.clip is not None:
                wave, std, config = self.clip
                adversarial = clip_audio(render(tf.constant(wave, tf.float32),
                                                tf.constant(np.asarray(eta[0]) * std), config))
                sounds = tf.stack([tf.constant(wave, tf.float32), adversarial,
                                   adversarial - wave])[..., None]
                tf.summary.audio("audio", sounds, config.sample_rate, step=step, max_outputs=3,
                                 description="the first clip: clean, adversarial (rendered), "
                                             "perturbation only")
        self.writer.flush()


def training_curves(log_dir: Path) -> dict:
    """Attack success against training steps, read back from what `AttackMonitor` wrote under
    `log_dir` (a task's logs/monitor folder): {"train": [[step, rate], ...], "dev_subset":
    {defence: [[step, rate], ...]}}, rates as fractions (`metrics.success_rate`), steps the
    optimizer's iterations, sorted; a step logged twice (a resumed task redoing an epoch,
    in another event file) keeps its latest value by wall time. "train" is empty for tasks
    trained before it was logged; both are empty when `log_dir` holds no event file.
    Reads every event file with TensorBoard's EventFileLoader, keeping only these tags (the
    monitor's images and audio would otherwise be held in memory: ~1 MB per epoch)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    out: dict = {"train": [], "dev_subset": {}}
    files = sorted(Path(log_dir).glob("events.out.tfevents.*")) if Path(log_dir).is_dir() else []
    prefix, suffix = DEV_TAG.split("{defence}")
    suffix = suffix.format(metric="success_rate")
    latest: dict = {}  # (curve, step) -> (wall time, value)
    for path in files:
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == TRAIN_SUCCESS_TAG:
                    curve = None
                elif value.tag.startswith(prefix) and value.tag.endswith(suffix):
                    curve = value.tag[len(prefix):-len(suffix)]
                else:
                    continue
                point = (event.wall_time, float(tf.make_ndarray(value.tensor)))
                if point[0] >= latest.get((curve, int(event.step)), (-1.0,))[0]:
                    latest[(curve, int(event.step))] = point
    for (curve, step), (_, rate) in sorted(latest.items(), key=lambda item: item[0][1]):
        target = out["train"] if curve is None else out["dev_subset"].setdefault(curve, [])
        target.append([step, rate])
    return out
