"""The attack objective as pure functions of tensors: paper Eqs. (1)-(3).

    loss     = alpha * loss_cla(f(x')) + (1 - alpha) * loss_MSE(x', x)          (1)
    loss_cla = max(f(x')_l - max(f(x')_other), 0)                               (2)
    loss_ewc = loss + lambda * sum_i F_i (theta_i - theta*_i)^2                 (3)

Eq. (3)'s penalty lives with the rest of EWC in `attack/ewc.py`.

loss_cla is the paper's C&W margin by default; the generator recipe (issue 30,
`AttackerConfig.losses`) may put other attack losses in its place, or sum several (each
reduced over the batch as the C&W term is, then averaged over the defences):

- "cw": the C&W margin with confidence kappa (Carlini & Wagner 2017, Eq. for f_6):
  max(f(x')_y - max_{j != y} f(x')_j + kappa, 0);
- "ce": untargeted cross-entropy ascent, written as a loss to minimise: log p_y(x');
- "rce": CDA's relativistic cross-entropy (Naseer et al. 2019, Eq. 3), untargeted:
  log softmax(f(x') - f(x))_y, which rewards moving the true class down *relative to where
  the clean clip had it*;
- "feature-cos", "feature-mse": mid-layer feature disruption (BIA, Zhang et al. 2022;
  LTP, Salzmann et al. 2021): the cosine similarity of the defence's mid-layer activations
  on x' and x (minimised), or minus their mean squared difference. The layer per
  architecture: `FEATURE_LAYERS`.

As in the authors' code: f is the defence's log-softmax, the C&W term is summed over the
batch (an option averages it) and the MSE is the mean over every element. With several
defences, the C&W terms are averaged over them.

Under a tf.distribute strategy every replica sees part of the batch. The functions take the
*global* batch size and return this replica's share of each term: sums stay local sums,
means divide the local sum by the global count. Summed over replicas (which is what the
optimizer does with the gradients) the shares give exactly the one-device value.
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from tfadvser.config import CW_REDUCTIONS



# The defence layer a feature loss reads by default: the middle of each architecture (BIA
# and LTP use a mid-level block; block 2 of 4 for CNN-4, 3 of 5 for VGG-16, the last block of
# ResNet-50's stage 2 of 4).
FEATURE_LAYERS = {"cnn4": "block2_pool", "vgg16": "block3_pool", "resnet50": "layer2_3_out"}


def _reduce(values: tf.Tensor, reduction: str, global_batch=None) -> tf.Tensor:
    """Per-clip values [B] summed, or averaged over the (global) batch."""
    if reduction == "sum":
        return tf.reduce_sum(values)
    if reduction == "mean":
        return tf.reduce_sum(values) / _count(global_batch, values)
    raise ValueError(f"reduction must be one of {CW_REDUCTIONS}, got {reduction!r}")


def _true_class(log_probs: tf.Tensor, labels: tf.Tensor):
    """(one-hot mask of the labels, the true class's score) of [B, classes] scores."""
    mask = tf.one_hot(tf.cast(labels, tf.int32), tf.shape(log_probs)[-1], dtype=log_probs.dtype)
    return mask, tf.reduce_sum(log_probs * mask, axis=-1)


def cw_loss(log_probs: tf.Tensor, labels: tf.Tensor, reduction: str = "sum",
            global_batch=None, kappa: float = 0.0) -> tf.Tensor:
    """Untargeted Carlini-Wagner margin: true-class score minus the best other class plus
    kappa, floored at zero (kappa = 0: the paper's). On log-softmax this equals C&W on
    logits (the log-sum-exp cancels in the difference)."""
    true_mask, real = _true_class(log_probs, labels)
    # The true class is pushed far below every other score before taking the maximum.
    other = tf.reduce_max(log_probs - 1e4 * true_mask, axis=-1)
    return _reduce(tf.nn.relu(real - other + kappa), reduction, global_batch)


def ce_loss(log_probs: tf.Tensor, labels: tf.Tensor, reduction: str = "sum",
            global_batch=None) -> tf.Tensor:
    """Untargeted cross-entropy ascent as a loss: log p_y(x') (<= 0), from log-probabilities
    [B, classes] and int labels [B]."""
    return _reduce(_true_class(log_probs, labels)[1], reduction, global_batch)


def relativistic_ce_loss(adv_log_probs: tf.Tensor, clean_log_probs: tf.Tensor, labels: tf.Tensor,
                         reduction: str = "sum", global_batch=None) -> tf.Tensor:
    """CDA's relativistic cross-entropy, untargeted, as a loss: log softmax(f(x') - f(x))_y.
    Log-probabilities differ from logits by a per-clip constant, which the softmax removes,
    so this is the same on either. The clean scores carry no gradient."""
    relative = tf.nn.log_softmax(adv_log_probs - tf.stop_gradient(clean_log_probs))
    return _reduce(_true_class(relative, labels)[1], reduction, global_batch)


def feature_loss(adv_features: tf.Tensor, clean_features: tf.Tensor, kind: str = "cos",
                 reduction: str = "sum", global_batch=None) -> tf.Tensor:
    """Mid-layer feature disruption, to minimise: per clip, the cosine similarity of the
    flattened activations on x' and on x ("cos", in [-1, 1]), or minus their mean squared
    difference ("mse"). Activations [B, ...]; the clean ones carry no gradient."""
    batch = tf.shape(adv_features)[0]
    adv = tf.reshape(tf.cast(adv_features, tf.float32), [batch, -1])
    clean = tf.stop_gradient(tf.reshape(tf.cast(clean_features, tf.float32), [batch, -1]))
    if kind == "cos":
        values = tf.reduce_sum(tf.math.l2_normalize(adv, axis=1) * tf.math.l2_normalize(clean, axis=1), axis=1)
    elif kind == "mse":
        values = -tf.reduce_mean(tf.square(adv - clean), axis=1)
    else:
        raise ValueError(f"feature loss kind must be 'cos' or 'mse', got {kind!r}")
    return _reduce(values, reduction, global_batch)


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
                global_batch=None, losses: Sequence[str] = ("cw",), kappa: float = 0.0,
                clean_log_probs: Optional[Sequence[tf.Tensor]] = None,
                features: Optional[Sequence[tuple]] = None) -> dict[str, tf.Tensor]:
    """Eq. (1) against one or more defences: alpha/n * sum_k loss_cla_k + (1 - alpha) * MSE,
    loss_cla the sum of the named `losses` (module docstring). "rce" needs each defence's
    `clean_log_probs`, a feature loss each defence's (adv, clean) `features`. Returns
    {"loss", "mse", and one entry per named loss (averaged over the defences)}. Raises
    ValueError for an unknown loss name."""
    n = len(log_probs)
    terms = {}
    for name in losses:
        if name == "cw":
            each = [cw_loss(lp, labels, reduction, global_batch, kappa) for lp in log_probs]
        elif name == "ce":
            each = [ce_loss(lp, labels, reduction, global_batch) for lp in log_probs]
        elif name == "rce":
            each = [relativistic_ce_loss(lp, cp, labels, reduction, global_batch)
                    for lp, cp in zip(log_probs, clean_log_probs, strict=True)]
        elif name in ("feature-cos", "feature-mse"):
            each = [feature_loss(a, c, name.split("-")[1], reduction, global_batch)
                    for a, c in features]
        else:
            raise ValueError(f"unknown attack loss {name!r}")
        terms[name] = tf.add_n(each) / n
    mse = mse_loss(x_adv, x, global_batch)
    classification = tf.add_n(list(terms.values()))
    return {"loss": alpha * classification + (1.0 - alpha) * mse, **terms, "mse": mse}
