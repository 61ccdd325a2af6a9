"""Training through the audio round trip (`AttackerConfig.round_trip`).

The defences then score what the perturbation becomes as sound: eta -> raw delta (eta *
std) -> `data.rendering.round_trip` of the clean clip (render, clip to [-1, 1], re-extract
as `prepare` does) -> standardised again. Rendering is differentiable, so the C&W term's
gradient flows through it; the MSE term still measures eta itself (the paper's size
term). Clips differ in length, so each is rendered on its own (`tf.map_fn`), and the step
is compiled without XLA (dynamic shapes). The EWC Fisher of such tasks is computed in the
spectrogram domain, as for every other task.

Batches carry the clean waveforms: `with_waveforms` turns the reader's info batches into
((x, waveforms [B, longest] zero-padded, lengths [B]), y), decoding each clip once per
process with the project's reader (`data.rendering.corpus_waveform`).
"""
from __future__ import annotations

import hashlib

import numpy as np
import tensorflow as tf

from tfadvser.data.folder import DataFolder
from tfadvser.data.rendering import corpus_waveform, round_trip


class RoundTrip:
    """eta [B, frames, mels], waveforms [B, samples], lengths [B] -> the standardised
    log-Mel [B, frames, mels] re-extracted from each rendered clip. `key` identifies the
    statistics and feature config (compiled attackers are cached by it)."""

    def __init__(self, data: DataFolder):
        self.mean = np.asarray(data.mean, np.float32)
        self.std = np.asarray(data.std, np.float32)
        self.config = data.feature_config
        digest = hashlib.sha256(self.mean.tobytes() + self.std.tobytes()
                                + repr(self.config).encode()).hexdigest()[:16]
        self.key = digest

    def __call__(self, eta, waveforms, lengths):
        delta = eta * self.std

        def one(args):
            wave, length, d = args
            _, raw = round_trip(wave[:length], d, self.config)
            return (raw - self.mean) / self.std

        return tf.map_fn(one, (waveforms, lengths, delta),
                         fn_output_signature=tf.TensorSpec(self.config.shape, tf.float32))


def with_waveforms(dataset: tf.data.Dataset, data: DataFolder) -> tf.data.Dataset:
    """Info batches of `make_dataset(..., include_info=True)` -> ((x, waveforms, lengths), y)."""
    cache: dict[bytes, np.ndarray] = {}

    def load(paths):
        waves = []
        for path in paths.numpy():
            if path not in cache:
                cache[path] = corpus_waveform(data, path.decode()).astype(np.float32)
            waves.append(cache[path])
        out = np.zeros((len(waves), max(len(w) for w in waves)), np.float32)
        for i, wave in enumerate(waves):
            out[i, :len(wave)] = wave
        return out, np.array([len(w) for w in waves], np.int32)

    def attach(batch):
        waves, lengths = tf.py_function(load, [batch["path"]], [tf.float32, tf.int32])
        waves.set_shape([None, None])
        lengths.set_shape([None])
        return (batch["log_mel"], waves, lengths), batch["label"]

    return dataset.map(attach)
