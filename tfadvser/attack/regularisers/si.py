"""Synaptic Intelligence (Zenke et al. 2017) as a plugin: a per-parameter path integral
omega = sum over steps of -g * delta_theta during each task, and the importance
Omega = sum over finished tasks of omega / (Delta^2 + xi) (`si_importance`).

    term        lambda * sum_i Omega_i (theta_i - theta*_i)^2, anchored at the previous
                task (`base.QuadraticPenalty`, one pair)
    callbacks   `PathIntegral` during every task of an SI sequence, the first included
    stores      `si-path.npz` beside every finished task: its omega and Delta
    strength    `STRENGTH`: its importance is a loss decrease per squared drift, linear in
                the loss (not squared as the Fisher): c in 1e-2..10 around the literature's
                0.1-1
    key fields  "regulariser": name and damping xi, on every task (each leaves its path
                integral, so a first task trained by another method does not serve)

The path integral is taken outside the compiled step, by `PathIntegral` (a callback):
before and after each batch it reads the generator's trainable weights and Adam's first
moments m. Keras's Adam sets m_t = beta_1 m_{t-1} + (1 - beta_1) g_t, so the gradient the
step applied is g_t = (m_t - beta_1 m_{t-1}) / (1 - beta_1) (`adam_gradient`), exact up to
float32 rounding. That is the gradient of the *regularised* loss; as Zenke et al. (whose
omega measures the task's own loss), the SI penalty's gradient 2 lambda Omega (theta -
theta*) at the weights before the step is subtracted (`unregularised_gradient`). With an
optimizer other than Adam the callback refuses to run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
import numpy as np

from tfadvser.attack.regularisers.base import (Anchoring, QuadraticPenalty, Regulariser,
                                              Strength, anchor_of, anchored_settings)
from tfadvser.errors import TfadvserError
from tfadvser.runtime.files import atomic_path

PATH_FILE = "si-path.npz"
STRENGTH = Strength(1e-1, (1e-2, 1e-1, 1.0, 10.0))


def adam_gradient(m_after: np.ndarray, m_before: np.ndarray, beta_1: float) -> np.ndarray:
    """The gradient of one Adam step from its first moment before and after the step:
    g = (m_after - beta_1 * m_before) / (1 - beta_1) (Keras: m += (g - m) (1 - beta_1))."""
    return (np.asarray(m_after, np.float64) - beta_1 * np.asarray(m_before, np.float64)) / (1.0 - beta_1)


def unregularised_gradient(gradient: Sequence[np.ndarray], weights: Sequence[np.ndarray],
                           terms: Sequence[tuple], strength: float) -> list[np.ndarray]:
    """The gradient of the attack loss alone, from that of loss + strength * penalty:
    g - strength * sum over (importance, anchor) terms of 2 * importance * (weights - anchor)
    (the derivative of `ewc.ewc_penalty`). All lists run parallel over the weights."""
    out = [np.asarray(g, np.float64) for g in gradient]
    for importance, anchor in terms:
        for i, (w, f, a) in enumerate(zip(weights, importance, anchor, strict=True)):
            out[i] = out[i] - strength * 2.0 * np.asarray(f, np.float64) * (np.asarray(w, np.float64) - a)
    return out


def path_integral_step(omega: Sequence[np.ndarray], gradient: Sequence[np.ndarray],
                       before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> list[np.ndarray]:
    """One step of SI's path integral (Zenke et al. 2017, Eq. 3 discretised):
    omega + (-gradient * (after - before)), per parameter; `gradient` at `before`."""
    return [np.asarray(o, np.float64) - np.asarray(g, np.float64) * (np.asarray(t1, np.float64) - t0)
            for o, g, t0, t1 in zip(omega, gradient, before, after, strict=True)]


def si_importance(omegas: Sequence[Sequence[np.ndarray]], deltas: Sequence[Sequence[np.ndarray]],
                  damping: float) -> list[np.ndarray]:
    """SI's importance after several tasks (Zenke et al. 2017, Eq. 5, summed over tasks):
    Omega = sum_k omega_k / (Delta_k^2 + xi), with omega_k a task's path integral and Delta_k
    its total weight change (end minus start), xi = `damping` > 0."""
    if not omegas or len(omegas) != len(deltas):
        raise ValueError("SI needs one path integral and one weight change per finished task")
    total = [np.zeros(np.shape(o), np.float64) for o in omegas[0]]
    for omega, delta in zip(omegas, deltas):
        for i, (o, d) in enumerate(zip(omega, delta, strict=True)):
            total[i] += np.asarray(o, np.float64) / (np.square(np.asarray(d, np.float64)) + damping)
    return [t.astype(np.float32) for t in total]


# --- the path integral during training ------------------------------------------------

class PathIntegral(keras.callbacks.Callback):
    """Accumulates SI's path integral of an `AdversarialAttacker`'s generator over one fit
    (see the module docstring for the gradient used) and writes `si-path.npz` into
    `task_dir` at the end: omega and Delta (end minus start weights) per trainable weight.

    Resumable: after every epoch but the last the running omega and the start weights go
    to `si-path-epoch<N>.npz` (the last two are kept); with `resumed` finished epochs (as
    `runtime.backup.resumed_epoch` counts them) training continues from that file."""

    def __init__(self, task_dir, names: Sequence[str], resumed: int = 0):
        super().__init__()
        self.task_dir, self.names, self.resumed = Path(task_dir), list(names), resumed

    def _weights(self):
        return [w.numpy() for w in self.model.generator.trainable_weights]

    def _moments(self):
        optimizer = self.model.optimizer
        return [optimizer._momentums[optimizer._get_variable_index(w)].numpy()
                for w in self.model.generator.trainable_weights]

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if not isinstance(optimizer, keras.optimizers.Adam):
            raise TfadvserError(f"SI's path integral reads Adam's moments; the attacker "
                                f"trains with {type(optimizer).__name__}")
        self.beta_1 = float(optimizer.beta_1)
        if not optimizer.built:  # its moments exist before the first step
            optimizer.build(self.model.generator.trainable_weights)
        # The task's penalty pairs and strength do not change during its fit.
        term = self.model.term
        quadratic = isinstance(term, QuadraticPenalty)
        self.terms = term.values() if quadratic else []
        self.strength = float(term.strength.numpy()) if quadratic else 0.0
        if self.resumed:
            path = self._partial(self.resumed)
            if not path.exists():
                raise TfadvserError(f"{path} missing: SI's path integral of the resumed "
                                    f"epochs is lost; delete {self.task_dir} to retrain the task")
            omega, self.start = _load_pair(path, self.names)
            self.omega = [o.astype(np.float64) for o in omega]
        else:
            self.start = self._weights()
            self.omega = [np.zeros(w.shape, np.float64) for w in self.start]

    def on_train_batch_begin(self, batch, logs=None):
        self.before, self.m_before = self._weights(), self._moments()

    def on_train_batch_end(self, batch, logs=None):
        after = self._weights()
        total = [adam_gradient(m1, m0, self.beta_1) for m1, m0 in zip(self._moments(), self.m_before)]
        gradient = unregularised_gradient(total, self.before, self.terms, self.strength)
        self.omega = path_integral_step(self.omega, gradient, self.before, after)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.params.get("epochs", epoch + 2):
            _save_pair(self._partial(epoch + 1), self.omega, self.start, self.names)
            self._partial(epoch - 1).unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        delta = [w - s for w, s in zip(self._weights(), self.start)]
        _save_pair(self.task_dir / PATH_FILE, self.omega, delta, self.names)
        for path in self.task_dir.glob("si-path-epoch*.npz"):
            path.unlink()

    def _partial(self, epochs: int) -> Path:
        return self.task_dir / f"si-path-epoch{epochs}.npz"


def _save_pair(path: Path, first, second, names) -> None:
    arrays = {f"a_{i}": np.asarray(a, np.float32) for i, a in enumerate(first)}
    arrays.update({f"b_{i}": np.asarray(b, np.float32) for i, b in enumerate(second)})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, names=np.array(list(names)), **arrays)


def _load_pair(path: Path, names) -> tuple[list[np.ndarray], list[np.ndarray]]:
    with np.load(path) as data:
        stored = [str(n) for n in data["names"]]
        if stored != list(names):
            raise TfadvserError(f"{path}: saved for weights {stored[:3]}..., not {list(names)[:3]}...")
        return ([data[f"a_{i}"] for i in range(len(stored))], [data[f"b_{i}"] for i in range(len(stored))])


class SI(Regulariser):
    name = "si"
    strength = STRENGTH

    def key_fields(self, config, anchored: bool) -> dict:
        return {**(anchored_settings(config) if anchored else {}),
                "regulariser": {"name": self.name, "damping": config.si_damping}}

    def anchoring(self, context, finished: list, strength: float) -> Anchoring:
        anchor = anchor_of(finished)
        pairs = []
        for task_dir, _ in finished:
            path = Path(task_dir) / PATH_FILE
            if not path.exists():
                raise TfadvserError(f"{path} missing: the task was trained without SI's path integral")
            pairs.append(_load_pair(path, context.weight_names()))
        importance = si_importance([p[0] for p in pairs], [p[1] for p in pairs],
                                   context.config.si_damping)
        return Anchoring(QuadraticPenalty, strength, [(importance, anchor)])

    def callbacks(self, context, task_dir, resumed: int) -> list:
        return [PathIntegral(task_dir, context.weight_names(), resumed)]
