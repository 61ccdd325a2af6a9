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


class AttackMonitor(keras.callbacks.Callback):
    """Every epoch (= `monitor_every` steps): adversarial UAR, clean UAR and fooling rate
    on a fixed dev subset for every defence of the sequence, the learning rate, and an
    image of x' / eta / x of the first clip.

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
            for name in self.names:
                result = attack_scores(labels_of(self.batches), self.clean(name),
                                       predictions(self.defences[name], perturbed), labels)
                for metric in ("adversarial_uar", "clean_uar", "success_rate"):
                    tf.summary.scalar(f"dev_subset/{name}/{metric}", result[metric], step=step)
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
