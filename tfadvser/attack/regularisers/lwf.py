"""Learning without Forgetting (Li & Hoiem 2017) as a plugin, as a distillation of the
perturbation: lambda * mean over clips ||G_t(x) - G_{t-1}(x)||_2^2 on the current task's
batch, the previous attacker frozen (`distillation_loss`).

    term        `Distillation`: the previous generator, frozen, inside the compiled step
    stores      nothing: the previous task's generator.keras is the teacher
    strength    `STRENGTH`: a mean over clips of a squared L2 distance over ~2.4e4 outputs,
                against an attack loss of order 1: 1e-4..1e-1
    key fields  "regulariser": name
"""
from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from tfadvser.attack.regularisers.base import (Anchoring, Regulariser, Strength,
                                              previous_generator)
from tfadvser.runtime.inference import inference

STRENGTH = Strength(1e-2, (1e-4, 1e-3, 1e-2, 1e-1))


def distillation_loss(eta: tf.Tensor, teacher_eta: tf.Tensor, global_batch=None) -> tf.Tensor:
    """LwF-style distillation of the perturbation: the mean over clips of the squared L2
    distance sum((eta - teacher_eta)^2) over a clip's [frames, mels] elements. Under
    tf.distribute, this replica's share of the global batch's mean (as `losses.py`)."""
    per_clip = tf.reduce_sum(tf.reshape(tf.square(eta - teacher_eta), [tf.shape(eta)[0], -1]), axis=1)
    count = tf.cast(tf.shape(eta)[0] if global_batch is None else global_batch, per_clip.dtype)
    return tf.reduce_sum(per_clip) / count


class Distillation:
    """strength and a frozen copy of the previous generator: the term is
    `distillation_loss(G(x), G_prev(x))` on the current task's batch, logged as
    "distillation". `state` (of `assign`): all weights of the previous generator."""

    parts = ("distillation",)

    def __init__(self, teacher: keras.Model, strength: float = 0.0):
        self.teacher = teacher
        self.strength = tf.Variable(float(strength), trainable=False, dtype=tf.float32)

    @staticmethod
    def structure(state) -> tuple:
        """What the compiled step depends on: only that a teacher is in it."""
        return ("distillation",)

    @classmethod
    def build(cls, state, new_generator: Callable[[], keras.Model]) -> "Distillation":
        """A term around a new generator of the attacker's architecture (`assign` sets it)."""
        return cls(new_generator())

    def assign(self, strength: float, state) -> None:
        self.strength.assign(float(strength))
        self.teacher.set_weights(state)

    def __call__(self, generator: keras.Model, x, eta, global_batch) -> dict[str, tf.Tensor]:
        return {"distillation": distillation_loss(eta, inference(self.teacher)(x), global_batch)}


class LwF(Regulariser):
    name = "lwf"
    strength = STRENGTH

    def anchoring(self, context, finished: list, strength: float) -> Anchoring:
        return Anchoring(Distillation, strength, previous_generator(finished).get_weights())
