"""The attack objective as pure functions of tensors: paper Eqs. (1)-(3).

    loss     = alpha * loss_cla(f(x')) + (1 - alpha) * loss_MSE(x', x)          (1)
    loss_cla = max(f(x')_l - max(f(x')_other), 0)                               (2)
    loss_ewc = loss + lambda * sum_i F_i (theta_i - theta*_i)^2                 (3)

Eq. (3)'s penalty lives with the rest of EWC in `attack/ewc.py`.

As in the authors' code: f is the defence's log-softmax, the C&W term is summed over the
batch (an option averages it) and the MSE is the mean over every element. With several
defences, the C&W terms are averaged over them.

Under a tf.distribute strategy every replica sees part of the batch. The functions take the
*global* batch size and return this replica's share of each term: sums stay local sums,
means divide the local sum by the global count. Summed over replicas (which is what the
optimizer does with the gradients) the shares give exactly the one-device value.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfadvser.config import CW_REDUCTIONS



def cw_loss(log_probs: tf.Tensor, labels: tf.Tensor, reduction: str = "sum",
            global_batch=None) -> tf.Tensor:
    """Untargeted Carlini-Wagner margin, kappa = 0: true-class score minus the best other
    class, floored at zero. On log-softmax this equals C&W on logits (the log-sum-exp
    cancels in the difference)."""
    n_classes = tf.shape(log_probs)[-1]
    true_mask = tf.one_hot(tf.cast(labels, tf.int32), n_classes, dtype=log_probs.dtype)
    real = tf.reduce_sum(log_probs * true_mask, axis=-1)
    # The true class is pushed far below every other score before taking the maximum.
    other = tf.reduce_max(log_probs - 1e4 * true_mask, axis=-1)
    margins = tf.nn.relu(real - other)
    if reduction == "sum":
        return tf.reduce_sum(margins)
    if reduction == "mean":
        return tf.reduce_sum(margins) / _count(global_batch, margins)
    raise ValueError(f"reduction must be one of {CW_REDUCTIONS}, got {reduction!r}")


def mse_loss(x_adv: tf.Tensor, x: tf.Tensor, global_batch=None) -> tf.Tensor:
    """Mean over all elements of (x' - x)^2, i.e. mean(eta^2)."""
    squares = tf.square(x_adv - x)
    per_clip = tf.cast(tf.reduce_prod(tf.shape(squares)[1:]), squares.dtype)
    return tf.reduce_sum(squares) / (_count(global_batch, squares) * per_clip)


def _count(global_batch, tensor: tf.Tensor) -> tf.Tensor:
    """The global batch size, or this batch's own size (one device)."""
    if global_batch is None:
        return tf.cast(tf.shape(tensor)[0], tensor.dtype)
    return tf.cast(global_batch, tensor.dtype)


def attack_loss(log_probs: Sequence[tf.Tensor], labels: tf.Tensor, x_adv: tf.Tensor,
                x: tf.Tensor, alpha: float, reduction: str = "sum",
                global_batch=None) -> dict[str, tf.Tensor]:
    """Eq. (1) against one or more defences: alpha/n * sum_k C&W_k + (1 - alpha) * MSE."""
    cw = tf.add_n([cw_loss(lp, labels, reduction, global_batch) for lp in log_probs]) / len(log_probs)
    mse = mse_loss(x_adv, x, global_batch)
    return {"loss": alpha * cw + (1.0 - alpha) * mse, "cw": cw, "mse": mse}
