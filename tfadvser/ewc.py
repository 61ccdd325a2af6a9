"""Elastic Weight Consolidation: the diagonal Fisher of the attacker's parameters.

As the original (original-code-facts section 6): after a task, one pass over the whole
*training* split in batches, attacker and defence in inference mode; for each batch the
gradient of the attack loss (Eq. 1, no EWC term) with respect to every trainable attacker
parameter (conv kernels and BN gamma/beta; BN moving statistics are not parameters) is
squared and summed; the sum is divided by the number of clips. That is the square of
*mini-batch* gradients. `mode="example"` squares per-example gradients instead (the
empirical Fisher of the EWC paper). The anchor theta* is the attacker after the task.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfadvser.losses import attack_loss

FISHER_MODES = ("batch", "example")


def estimate_fisher(generator: keras.Model, defences: Sequence[keras.Model],
                    dataset: tf.data.Dataset, alpha: float, cw_reduction: str = "sum",
                    mode: str = "batch", progress=None) -> tuple[list[np.ndarray], int]:
    """Diagonal Fisher over `dataset` of (x, y) batches; returns (Fisher, clips seen)."""
    if mode not in FISHER_MODES:
        raise ValueError(f"Fisher mode must be one of {FISHER_MODES}, got {mode!r}")
    weights = generator.trainable_weights

    @tf.function(reduce_retracing=True)
    def squared_gradients(x, y):
        with tf.GradientTape() as tape:
            eta = generator(x, training=False)
            x_adv = x + eta
            log_probs = [d(x_adv, training=False) for d in defences]
            loss = attack_loss(log_probs, y, x_adv, x, alpha, cw_reduction)["loss"]
        return [tf.square(g) for g in tape.gradient(loss, weights)]

    total = [np.zeros(w.shape, np.float64) for w in weights]
    clips = 0
    for x, y in dataset:
        pieces = [(x, y)] if mode == "batch" else [(x[i:i + 1], y[i:i + 1]) for i in range(len(x))]
        for px, py in pieces:
            for acc, g in zip(total, squared_gradients(px, py)):
                acc += g.numpy()
        clips += int(x.shape[0])
        if progress is not None:
            progress(int(x.shape[0]))
    return [(t / clips).astype(np.float32) for t in total], clips


def save_ewc_term(path: Path, fisher: Sequence[np.ndarray], anchor: Sequence[np.ndarray],
                  names: Sequence[str], clips: int, mode: str) -> None:
    arrays = {f"fisher_{i}": f for i, f in enumerate(fisher)}
    arrays.update({f"anchor_{i}": a for i, a in enumerate(anchor)})
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, names=np.array(list(names)), clips=clips, mode=mode, **arrays)
    tmp.replace(path)


def load_ewc_term(path: Path, names: Sequence[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(Fisher, anchor) saved by `save_ewc_term`, checked against the generator's weights."""
    with np.load(path) as data:
        stored = [str(n) for n in data["names"]]
        if stored != list(names):
            raise ValueError(f"{path}: saved for weights {stored[:3]}..., not {list(names)[:3]}...")
        n = len(stored)
        return ([data[f"fisher_{i}"] for i in range(n)], [data[f"anchor_{i}"] for i in range(n)])
