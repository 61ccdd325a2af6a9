"""Elastic Weight Consolidation: everything EWC, in one module.

    penalty      paper Eq. (3): lambda * sum_i F_i (theta_i - theta*_i)^2     `ewc_penalty`
    Fisher       the diagonal Fisher of a finished task                       `estimate_fisher`
    which tasks  the previous one (the original) or every earlier one         `anchored_tasks`
    cache        a finished task's term, estimated once and kept beside it    `task_term`

The plugin that puts these to work in lifelong training is `regularisers/ewc.py`; the
penalty enters the compiled step as `regularisers.base.QuadraticPenalty`, which online EWC,
SI and MAS share with other importances in place of the Fisher.

The Fisher:

As the original (original-code-facts section 6): after a task, one pass over the whole
*training* split in batches, attacker and defence in inference mode; for each batch the
gradient of the attack loss (Eq. 1, no EWC term) with respect to every trainable attacker
parameter (conv kernels and BN gamma/beta; BN moving statistics are not parameters) is
squared and summed; the sum is divided by the number of clips. That is the square of
*mini-batch* gradients. `mode="example"` squares per-example gradients instead (the
empirical Fisher of the EWC paper). The anchor theta* is the attacker after the task.
"""
from __future__ import annotations

import weakref
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfadvser.attack.losses import attack_loss
from tfadvser.config import FISHER_MODES
from tfadvser.runtime import distribute
from tfadvser.runtime.files import atomic_path
from tfadvser.runtime.inference import inference


def estimate_fisher(generator: keras.Model, defences: Sequence[keras.Model],
                    dataset: tf.data.Dataset, alpha: float, cw_reduction: str = "sum",
                    mode: str = "batch", progress=None) -> tuple[list[np.ndarray], int]:
    """Diagonal Fisher over `dataset` of (x, y) batches; returns (Fisher, clips seen).

    Under a tf.distribute strategy each replica takes part of every batch: in "batch" mode
    the replicas' gradient shares are summed into the batch gradient *before* squaring, in
    "example" mode the squared per-example gradients are summed; either way the result is
    the one-device Fisher."""
    if mode not in FISHER_MODES:
        raise ValueError(f"Fisher mode must be one of {FISHER_MODES}, got {mode!r}")
    strategy = tf.distribute.get_strategy()
    weights = generator.trainable_weights
    step = _fisher_step(generator, defences, alpha, cw_reduction, mode, strategy)
    total = [np.zeros(w.shape, np.float64) for w in weights]
    clips = 0
    for x, y in strategy.experimental_distribute_dataset(dataset):
        values, count = step(x, y)
        for acc, value in zip(total, values):
            acc += value.numpy()
        clips += int(count)
        if progress is not None:
            progress(int(count))
    return [(t / clips).astype(np.float32) for t in total], clips


def _fisher_step(generator, defences, alpha, cw_reduction, mode, strategy):
    """The traced step of one Fisher batch, kept per generator model: a generator that
    serves many tasks (attacker_cache) traces it once, not once per task."""
    key = (tuple(id(d) for d in defences), alpha, cw_reduction, mode, id(strategy))
    steps = _STEPS.setdefault(generator, {})
    if key in steps:
        return steps[key][0]
    model = weakref.ref(generator)  # the cache must not keep its key alive
    weights = generator.trainable_weights

    def loss_of(x, y, global_batch):
        eta = model()(x, training=False)
        x_adv = x + eta
        log_probs = [inference(d)(x_adv) for d in defences]
        return attack_loss(log_probs, y, x_adv, x, alpha, cw_reduction, global_batch)["loss"]

    def gradients(x, y):
        with tf.GradientTape() as tape:
            loss = loss_of(x, y, distribute.global_batch_size(tf.shape(x)[0]))
        return tape.gradient(loss, weights)

    def squared_example_gradients(x, y):
        total = [tf.zeros_like(w) for w in weights]
        for i in tf.range(tf.shape(x)[0]):
            with tf.GradientTape() as tape:
                loss = loss_of(x[i:i + 1], y[i:i + 1], None)  # one clip is its own batch
            total = [t + tf.square(g) for t, g in zip(total, tape.gradient(loss, weights))]
        return total

    @tf.function(reduce_retracing=True)
    def step(x, y):
        local = gradients if mode == "batch" else squared_example_gradients
        per_replica = strategy.run(lambda x, y: (local(x, y), tf.shape(x)[0]), args=(x, y))
        values, count = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        if mode == "batch":
            values = [tf.square(g) for g in values]
        return values, count

    # The entry holds the defences and strategy, so the ids in its key stay theirs.
    steps[key] = (step, list(defences), strategy)
    return step


_STEPS: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


def ewc_penalty(weights: Sequence[tf.Tensor], terms: Sequence[tuple[Sequence, Sequence]]) -> tf.Tensor:
    """Paper Eq. (3) without lambda: sum over (Fisher, anchor) terms of
    sum_i F_i (theta_i - theta*_i)^2, a float32 scalar. No 1/2 factor, as the original.

    One term anchors the previous task (the original); several accumulate earlier tasks.
    `weights`, each Fisher and each anchor are parallel lists of same-shaped tensors.
    """
    total = tf.constant(0.0)
    for fisher, anchor in terms:
        for w, f, a in zip(weights, fisher, anchor, strict=True):
            total += tf.reduce_sum(f * tf.square(w - a))
    return total


def anchored_tasks(finished: list, accumulate: bool) -> list:
    """Which finished tasks (in training order) anchor the next EWC task: the previous one,
    as the original code does, or with `accumulate` every earlier one."""
    return list(finished) if accumulate else list(finished[-1:])


def term_path(task_dir: Path, fisher_mode: str, fisher_clips=None) -> Path:
    """Where a finished task's EWC term is kept: `ewc-<mode>[-<N>clips].npz` beside it."""
    suffix = "" if fisher_clips is None else f"-{fisher_clips}clips"
    return Path(task_dir) / f"ewc-{fisher_mode}{suffix}.npz"


def task_term(task_dir: Path, names: Sequence[str], defences: Sequence[keras.Model],
              generator_at_task: Callable[[], keras.Model], fisher_data: Callable[[], tf.data.Dataset],
              alpha: float, cw_reduction: str, mode: str, fisher_clips=None):
    """(Fisher, anchor) of a finished task, estimated on first use and cached beside it.

    `generator_at_task()` returns a generator holding the task's weights (only called when
    the term is not cached); `fisher_data()` the (x, y) batches the Fisher is estimated on;
    `names` are the generator's trainable weight paths the stored term is checked against.
    """
    path = term_path(task_dir, mode, fisher_clips)
    if not path.exists():
        generator = generator_at_task()
        fisher, clips = estimate_fisher(generator, defences, fisher_data(), alpha, cw_reduction, mode)
        anchor = [w.numpy() for w in generator.trainable_weights]
        save_ewc_term(path, fisher, anchor, names, clips, mode)
    return load_ewc_term(path, names)


def save_ewc_term(path: Path, fisher: Sequence[np.ndarray], anchor: Sequence[np.ndarray],
                  names: Sequence[str], clips: int, mode: str) -> None:
    """Write a term as one .npz (atomically): weight names, clip count, mode, and the
    Fisher and anchor arrays in weight order."""
    arrays = {f"fisher_{i}": f for i, f in enumerate(fisher)}
    arrays.update({f"anchor_{i}": a for i, a in enumerate(anchor)})
    with atomic_path(path) as tmp:
        np.savez(tmp, names=np.array(list(names)), clips=clips, mode=mode, **arrays)


def load_ewc_term(path: Path, names: Sequence[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(Fisher, anchor) saved by `save_ewc_term`, checked against the generator's weights.
    Raises ValueError when the stored weight names differ from `names`."""
    with np.load(path) as data:
        stored = [str(n) for n in data["names"]]
        if stored != list(names):
            raise ValueError(f"{path}: saved for weights {stored[:3]}..., not {list(names)[:3]}...")
        n = len(stored)
        return ([data[f"fisher_{i}"] for i in range(n)], [data[f"anchor_{i}"] for i in range(n)])
