"""Unweighted average recall (UAR), the paper's metric: the mean of per-class recalls.

UAR ignores class frequencies, so a classifier that always answers the majority class
scores 1/n_classes. The streaming Keras metric accumulates a confusion matrix across
batches, so a class absent from one batch is still counted from the others. A class absent
from the whole evaluation has no recall; it is left out of the mean (the original code
returns NaN then; prepare guarantees every class in every split).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfadvser.runtime import distribute


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts [true class, predicted class] from integer labels."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return matrix


def recall_per_class(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN for a class with no examples."""
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def uar_from_confusion(matrix: np.ndarray) -> float:
    """Unweighted average recall: the mean of the per-class recalls of a confusion matrix
    [n, n] (rows true), over the classes that occur; the paper's metric."""
    return float(np.nanmean(recall_per_class(matrix)))


@keras.saving.register_keras_serializable(package="tfadvser")
class UnweightedAverageRecall(keras.metrics.Metric):
    """Streaming UAR over argmax predictions of (log-)probabilities or logits."""

    def __init__(self, n_classes: int, name: str = "uar", **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_classes = n_classes
        self.confusion = self.add_variable(shape=(n_classes, n_classes), initializer="zeros",
                                           dtype="float32", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        predictions = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
        local = tf.math.confusion_matrix(labels, predictions, num_classes=self.n_classes,
                                         weights=sample_weight, dtype=tf.float32)
        # Keras 3.5 mirrors metric variables without a cross-replica aggregation, so every
        # replica adds the confusion of the whole global batch and all copies agree.
        self.confusion.assign_add(distribute.sum_over_replicas(local))

    def result(self):
        support = tf.reduce_sum(self.confusion, axis=1)
        present = tf.cast(support > 0, tf.float32)
        recall = tf.math.divide_no_nan(tf.linalg.diag_part(self.confusion), support)
        return tf.math.divide_no_nan(tf.reduce_sum(recall * present), tf.reduce_sum(present))

    def reset_state(self):
        self.confusion.assign(tf.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "n_classes": self.n_classes}


def success_rate(clean_log_probs, adv_log_probs, labels) -> tf.Tensor:
    """The attack success rate: the share of the clips the defence gets right on x that it
    gets wrong on x' (0 when it gets none right). One of the three "fooling rates" in use;
    `attack_rates` gives all three under their own names."""
    clean = tf.argmax(clean_log_probs, axis=-1, output_type=tf.int32)
    adv = tf.argmax(adv_log_probs, axis=-1, output_type=tf.int32)
    correct = tf.equal(clean, tf.cast(labels, tf.int32))
    fooled = tf.logical_and(correct, tf.not_equal(adv, clean))
    return tf.math.divide_no_nan(tf.reduce_sum(tf.cast(fooled, tf.float32)),
                                 tf.reduce_sum(tf.cast(correct, tf.float32)))


def recall_by_label(matrix: np.ndarray, labels) -> dict:
    """{label: recall}, None for a class with no examples (JSON has no NaN)."""
    return {label: (None if np.isnan(r) else float(r))
            for label, r in zip(labels, recall_per_class(matrix))}


def mel_powers(x, eta, mean, std):
    """(signal, noise) power of each clip on linear mel magnitudes, tensors [B].

    x, eta: standardised log-Mel batches [B, frames, n_mels] (clean input and perturbation);
    mean, std: the per-mel-bin standardisation statistics [n_mels] of the training split.
    Both spectrograms are de-standardised and exponentiated (the features are the natural
    log of mel magnitudes plus 1e-8, which is left in: it is below any signal): with
    M = exp(x * std + mean), signal = sum M^2 and noise = sum (M * (exp(eta * std) - 1))^2,
    with `expm1` so that a 40 dB perturbation is not lost to rounding. Both powers are
    relative to the clip's loudest bin (its log-magnitude is subtracted before the
    exponential, which leaves their ratio as it is and keeps any input from overflowing).
    Works in x's dtype.
    """
    x = tf.convert_to_tensor(x)
    magnitude = relative_magnitudes(x, mean, std)
    signal = tf.reduce_sum(tf.square(magnitude), axis=tf.range(1, tf.rank(x)))
    return signal, noise_power(magnitude, eta, std)


def relative_magnitudes(x, mean, std):
    """`mel_powers`' clean mel magnitudes M of x [B, frames, n_mels], relative to each
    clip's loudest bin; in x's dtype."""
    x = tf.convert_to_tensor(x)
    axes = tf.range(1, tf.rank(x))
    log_magnitude = x * tf.cast(std, x.dtype) + tf.cast(mean, x.dtype)
    return tf.exp(log_magnitude - tf.reduce_max(log_magnitude, axis=axes, keepdims=True))


def noise_power(magnitude, eta, std):
    """`mel_powers`' noise power [B] of perturbation eta on clips of `relative_magnitudes`
    `magnitude`: sum (M * expm1(eta * std))^2; in magnitude's dtype."""
    eta = tf.cast(eta, magnitude.dtype) * tf.cast(std, magnitude.dtype)
    return tf.reduce_sum(tf.square(magnitude * tf.math.expm1(eta)), axis=tf.range(1, tf.rank(magnitude)))


def mel_snr_db(x, eta, mean, std) -> np.ndarray:
    """Per-clip SNR in dB of perturbation eta on clean x, on linear mel magnitudes
    (`mel_powers`), as float64 numpy [B]; +inf for eta = 0. The measure of every SNR the
    project reports and of the SNR floor of a bounded attacker."""
    signal, noise = mel_powers(np.asarray(x, np.float64), np.asarray(eta, np.float64),
                               np.asarray(mean, np.float64), np.asarray(std, np.float64))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(signal.numpy() / noise.numpy())


def attack_rates(y, clean, adv) -> dict:
    """The three rates the field calls "fooling rate", under unambiguous names, from int
    arrays [N] of true labels and clean and adversarial predictions (fractions):

    - success_rate: of the clips the defence gets right clean, the share it gets wrong under
      attack (0.0 when it gets none right): what the attack changed, on clips it could;
    - flip_rate: of all clips, the share whose prediction changes (right or wrong before);
    - error_rate: of all clips, the share predicted wrong under attack (1 - accuracy).
    """
    y, clean, adv = (np.asarray(a, int) for a in (y, clean, adv))
    correct = clean == y
    return {"success_rate": float(np.mean(adv[correct] != y[correct])) if correct.any() else 0.0,
            "flip_rate": float(np.mean(adv != clean)),
            "error_rate": float(np.mean(adv != y))}
