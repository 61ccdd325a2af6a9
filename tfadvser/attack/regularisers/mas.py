"""Memory Aware Synapses (Aljundi et al. 2018) as a plugin: importance
Omega = mean over clips of |d ||G(x)||_2^2 / d theta| (Eq. 4 with the squared L2 norm of
Eq. 10), no labels needed (`mas_importance`).

    term        lambda * sum_i Omega_i (theta_i - theta*_i)^2, Omega summed over the
                finished tasks (Aljundi et al. accumulate too), anchored at the previous
                task (`base.QuadraticPenalty`, one pair)
    stores      `mas[-<N>clips].npz` beside a finished task, estimated when a later task
                first needs it on the clips EWC's Fisher uses (`mas_term`)
    strength    `STRENGTH`: the gradient of ||G(x)||^2 sums over the 373x64 outputs of a
                clip (~2.4e4 terms): 1e-4..1e-1 instead of the literature's 1
    key fields  "regulariser": name and clips
"""
from __future__ import annotations

import weakref
from pathlib import Path
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfadvser.attack.ewc import load_ewc_term, save_ewc_term
from tfadvser.attack.regularisers.base import (Anchoring, QuadraticPenalty, Regulariser,
                                              Strength, anchor_of, anchored_settings)
from tfadvser.attack.tasks import GENERATOR_FILE

STRENGTH = Strength(1e-2, (1e-4, 1e-3, 1e-2, 1e-1))


def mas_importance(generator: keras.Model, dataset: tf.data.Dataset) -> tuple[list[np.ndarray], int]:
    """MAS importance (Aljundi et al. 2018, Eq. 4 with the squared L2 norm of Eq. 10) over
    `dataset` of (x, ...) batches: mean over clips of |d ||G(x)||_2^2 / d theta| per
    trainable weight, G in inference mode (BN moving statistics); returns (Omega, clips).
    Per-clip gradients: the absolute value is taken clip by clip. On one device."""
    weights = generator.trainable_weights
    step = _mas_step(generator)
    total = [np.zeros(w.shape, np.float64) for w in weights]
    clips = 0
    for batch in dataset:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        for acc, value in zip(total, step(x)):
            acc += value.numpy()
        clips += int(x.shape[0])
    if clips == 0:
        raise ValueError("MAS importance needs at least one clip")
    return [(t / clips).astype(np.float32) for t in total], clips


def _mas_step(generator):
    if generator in _MAS_STEPS:
        return _MAS_STEPS[generator]
    model = weakref.ref(generator)
    weights = generator.trainable_weights

    @tf.function(reduce_retracing=True)
    def step(x):
        total = [tf.zeros_like(w) for w in weights]
        for i in tf.range(tf.shape(x)[0]):
            with tf.GradientTape() as tape:
                norm = tf.reduce_sum(tf.square(model()(x[i:i + 1], training=False)))
            total = [t + tf.abs(g) for t, g in zip(total, tape.gradient(norm, weights))]
        return total

    _MAS_STEPS[generator] = step
    return step


_MAS_STEPS: "weakref.WeakKeyDictionary[keras.Model, Callable]" = weakref.WeakKeyDictionary()


def mas_path(task_dir: Path, clips: Optional[int]) -> Path:
    """Where a finished task's MAS importance is kept: `mas[-<N>clips].npz` beside it."""
    return Path(task_dir) / ("mas.npz" if clips is None else f"mas-{clips}clips.npz")


def mas_term(task_dir: Path, names: Sequence[str], importance_data: Callable,
             clips: Optional[int]) -> list[np.ndarray]:
    """A finished task's MAS importance, estimated on first use and kept beside it."""
    path = mas_path(task_dir, clips)
    if not path.exists():
        generator = keras.saving.load_model(Path(task_dir) / GENERATOR_FILE, compile=False)
        importance, seen = mas_importance(generator, importance_data())
        save_ewc_term(path, importance, [w.numpy() for w in generator.trainable_weights],
                      names, seen, "mas")
    return load_ewc_term(path, names)[0]


class MAS(Regulariser):
    name = "mas"
    strength = STRENGTH

    def key_fields(self, config, anchored: bool) -> dict:
        if not anchored:
            return {}
        return {**anchored_settings(config),
                "regulariser": {"name": self.name, "clips": config.fisher_clips}}

    def anchoring(self, context, finished: list, strength: float) -> Anchoring:
        anchor = anchor_of(finished)
        total = None
        for task_dir, _ in finished:
            importance = mas_term(task_dir, context.weight_names(), context.fisher_set,
                                  context.config.fisher_clips)
            total = importance if total is None else [t + i for t, i in zip(total, importance)]
        return Anchoring(QuadraticPenalty, strength, [(total, anchor)])
