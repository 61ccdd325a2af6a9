"""The perturbation budget: how an attacker's output eta is bounded, by construction.

Two modes (`config.PERTURBATIONS`), both the last layer of the generator, so every saved
attacker, its evaluation and its serving export obey the same bound:

- "paper": eta = sigmoid(z), in (0, 1) and positive: nothing bounds it but the MSE term of
  the loss (paper section 4.2; original-code-facts section 4). Measured on the built-in
  corpus, such attacks sit at -5 to -21 dB SNR: louder than the speech.
- "bounded": eta = epsilon * tanh(z), signed, |eta| <= epsilon element-wise in the
  standardised log-Mel units the defences see; then, with an SNR floor, each clip's eta is
  scaled by the largest s in [0, 1] for which the clip's SNR on linear mel magnitudes
  (`evaluation.metrics.mel_powers`, the measure every report uses) is at least the floor.
  The noise power grows monotonically with s, so a bisection finds s; it runs on the
  feasible side, so the floor holds for any input. The gradient flows through eta with s
  held fixed (a projection, as in projected gradient methods).

The bounded head's first step has three forms (`AttackerConfig.head`, issue 30):
"tanh", epsilon * tanh(z) (smooth, but reaching the bound needs |z| large); "clip",
clip(z, -epsilon, epsilon), the projection of projected gradient methods (the gradient is
zero where z is outside the ball); "scale", GAP's L∞ scaling (Poursaeed et al. 2018):
epsilon * z / max|z| per clip, which always uses the whole L∞ budget.

A budget curriculum (`AttackerConfig.curriculum` = k > 1) loosens the bound by a factor
`loosen` in [1, k] held in a non-trainable weight of the head: epsilon x loosen and an
SNR floor lowered by 20 log10(loosen) dB; `BudgetCurriculum` anneals it geometrically
from k to 1 over the first half of a task's steps, so the saved generator obeys the budget.

Baselines at the same budget (noise, PGD, MI-FGSM: `attack/baselines.py`) go through the
same `project` function, so "the same budget" is one piece of code.
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfadvser.config import HEADS, Budget
from tfadvser.evaluation.metrics import noise_power, relative_magnitudes

# s to 2^-12 of its range: the scaled eta is within 0.025 % of the largest that meets the
# floor, i.e. its SNR within 0.002 dB of it, far below any SNR difference reported. Each
# step costs a pass over the batch in every generator forward (24 steps took a quarter of
# the small attacker's generator step, measured).
BISECTION_STEPS = 12
# The bisection aims this far above the floor: float32 sums over a clip's 23 872 bins are
# off by ~1e-6 dB against the float64 measure the reports use (measured: -4e-7 dB).
MARGIN_DB = 1e-3


def snr_scale(x, eta, mean, std, snr_db: float, steps: int = BISECTION_STEPS) -> tf.Tensor:
    """The largest s in [0, 1] (to 2^-steps) with SNR(x, s * eta) >= snr_db dB, per clip:
    a tensor [B] in x's dtype, 1 where eta already meets the floor. Shapes as `mel_powers`."""
    # `mel_powers`, with the clean magnitudes computed once for every step.
    magnitude = relative_magnitudes(x, mean, std)
    eta = tf.cast(eta, magnitude.dtype)
    signal = tf.reduce_sum(tf.square(magnitude), axis=tf.range(1, tf.rank(magnitude)))
    allowed = signal * tf.cast(10.0 ** (-(snr_db + MARGIN_DB) / 10.0), signal.dtype)
    low = tf.zeros_like(signal)
    high = tf.ones_like(signal)
    fits = noise_power(magnitude, eta, std) <= allowed
    shape = tf.concat([tf.shape(signal), tf.ones([tf.rank(magnitude) - 1], tf.int32)], axis=0)
    for _ in range(steps):
        middle = (low + high) / 2
        ok = noise_power(magnitude, eta * tf.reshape(middle, shape), std) <= allowed
        low = tf.where(ok, middle, low)
        high = tf.where(ok, high, middle)
    return tf.where(fits, tf.ones_like(low), low)


def project(x, eta, budget: Budget, mean, std):
    """eta clipped to [-epsilon, epsilon] and scaled onto the SNR floor (`snr_scale`), per
    clip; unchanged for the unbounded budget. x, eta: [B, frames, n_mels] standardised
    log-Mel; returns eta's shape, in x's dtype."""
    x = tf.convert_to_tensor(x)
    eta = tf.cast(eta, x.dtype)
    if budget.epsilon is not None:
        eta = tf.clip_by_value(eta, -budget.epsilon, budget.epsilon)
    if budget.snr_db is not None:
        scale = tf.stop_gradient(snr_scale(x, eta, mean, std, budget.snr_db))
        eta = eta * tf.reshape(scale, [-1] + [1] * (len(eta.shape) - 1))
    return eta


@keras.saving.register_keras_serializable(package="tfadvser")
class BudgetHead(layers.Layer):
    """The generator's output layer: [x, z] -> eta, both [B, frames, n_mels] (see the module
    docstring). `mean`, `std`: the data's per-mel-bin statistics [n_mels] (needed only for
    an SNR floor; saved with the model). Always float32."""

    def __init__(self, perturbation: str = "paper", epsilon=None, snr_db=None, mean=None,
                 std=None, head: str = "tanh", curriculum: bool = False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if perturbation == "bounded" and snr_db is not None and (mean is None or std is None):
            raise ValueError("an SNR floor needs the data's mean and std")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.perturbation, self.epsilon, self.snr_db = perturbation, epsilon, snr_db
        self.head, self.curriculum = head, curriculum
        self.mean = None if mean is None else [float(v) for v in np.ravel(mean)]
        self.std = None if std is None else [float(v) for v in np.ravel(std)]
        # Only a curriculum's head has the weight: generators saved without one still load.
        self.loosen = (self.add_weight(name="loosen", shape=(), initializer="ones", trainable=False)
                       if curriculum else None)

    @property
    def budget(self) -> Budget:
        if self.perturbation == "paper":
            return Budget(None, None)
        return Budget(self.epsilon, self.snr_db)

    def call(self, inputs):
        x, z = inputs
        z = tf.cast(z, tf.float32)
        if self.perturbation == "paper":
            return tf.sigmoid(z)
        # The L-infinity bound; without one, the head still keeps eta within one standard
        # deviation of each mel bin before the SNR floor scales it.
        cap = tf.constant(self.budget.cap, tf.float32)
        snr_db = self.snr_db
        if self.loosen is not None:
            cap = cap * self.loosen
            snr_db = None if snr_db is None else snr_db - 20.0 * tf.math.log(self.loosen) / math.log(10.0)
        eta = bounded_head(z, cap, self.head)
        if snr_db is None:
            return eta
        return project(tf.cast(x, tf.float32), eta, Budget(None, snr_db),
                       tf.constant(self.mean, tf.float32), tf.constant(self.std, tf.float32))

    def get_config(self):
        return {**super().get_config(), "perturbation": self.perturbation, "epsilon": self.epsilon,
                "snr_db": self.snr_db, "mean": self.mean, "std": self.std, "head": self.head,
                "curriculum": self.curriculum}


def bounded_head(z, cap, head: str = "tanh") -> tf.Tensor:
    """eta within [-cap, cap] from the generator's raw output z [B, ...] (module docstring):
    "tanh" cap * tanh(z), "clip" clip(z, -cap, cap), "scale" cap * z / max|z| per clip
    (0 where z is 0 everywhere). Raises ValueError for another head."""
    if head == "tanh":
        return cap * tf.tanh(z)
    if head == "clip":
        return tf.clip_by_value(z, -cap, cap)
    if head == "scale":
        axes = tf.range(1, tf.rank(z))
        peak = tf.reduce_max(tf.abs(z), axis=axes, keepdims=True)
        return cap * tf.math.divide_no_nan(z, peak)
    raise ValueError(f"head must be one of {HEADS}, got {head!r}")


class BudgetCurriculum(keras.callbacks.Callback):
    """Anneals a curriculum head's `loosen` from `start` to 1, geometrically, over the first
    `steps` training batches (a resumed task picks up at `initial_step`): at batch t,
    loosen = start ** (1 - t / steps), then 1."""

    def __init__(self, head: BudgetHead, start: float, steps: int, initial_step: int = 0):
        super().__init__()
        self.head, self.start, self.steps, self.step = head, float(start), max(int(steps), 1), initial_step

    def value(self, step: int) -> float:
        return self.start ** max(0.0, 1.0 - step / self.steps)

    def on_train_batch_begin(self, batch, logs=None):
        self.head.loosen.assign(self.value(self.step))
        self.step += 1

    def on_train_end(self, logs=None):
        self.head.loosen.assign(1.0)


@keras.saving.register_keras_serializable(package="tfadvser")
class UniversalPerturbation(layers.Layer):
    """One trainable map z [frames, n_mels] for every clip: x [B, frames, n_mels] -> z
    broadcast to x's shape (the input only sets the batch size). Starts at zero: eta starts
    at the head's value for z = 0 (0 when bounded, 0.5 for the paper's sigmoid)."""

    def build(self, input_shape):
        self.z = self.add_weight(name="z", shape=tuple(input_shape[1:]), initializer="zeros")

    def call(self, x):
        return tf.zeros_like(x, dtype=self.z.dtype) + self.z
