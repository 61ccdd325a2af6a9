"""Scoring an attacker against a defence: clean and adversarial UAR, fooling rate, per-class
recall, and the size of the perturbation (which the paper never reports).

Sizes are measured in the standardised log-Mel space the models see (mean eta, MSE, L2 per
clip, L-infinity) and as an SNR in dB on linear mel magnitudes: both spectrograms are
de-standardised with the training statistics and exponentiated, and the SNR is the clean
power over the power of the difference, per clip, averaged over clips.
"""
from __future__ import annotations

from typing import Iterable, Optional

import keras
import numpy as np

from tfadvser.runtime.inference import inference
from tfadvser.evaluation.metrics import (confusion_matrix, mel_snr_db, recall_by_label,
                                         uar_from_confusion)
from tfadvser.evaluation.statistics import uar_interval

# The batch size of every inference pass (defence scoring, attacker evaluation, the lambda
# sweep). At the paper's width a batch of 128 clips needs ~15 GB of activations in the
# generator alone (measured by the benchmark); 32 keeps evaluation within a laptop's memory.
EVAL_BATCH = 32


def perturb(generator: keras.Model, batches: Iterable) -> list[tuple]:
    """(x', y, eta) per (x, y) batch: the generator runs once per batch, whatever is scored."""
    forward = inference(generator)
    out = []
    for x, y in batches:
        eta = forward(x)
        out.append((x + eta, y, eta))
    return out


def predictions(model: keras.Model, batches: Iterable):
    """Argmax predictions over batches whose first two items are (x, y)."""
    forward = inference(model)
    return np.concatenate([np.argmax(forward(b[0]), axis=-1) for b in batches])


def labels_of(batches: Iterable) -> np.ndarray:
    """The true labels [N] of batches whose second item is y."""
    return np.concatenate([np.asarray(b[1]) for b in batches])


def perturbation_sizes(perturbed: Iterable, mean: Optional[np.ndarray] = None,
                       std: Optional[np.ndarray] = None) -> dict:
    """Per-clip sizes of eta over `perturb` output, averaged over clips; SNR only with the
    standardisation statistics."""
    eta_mean, mse, l2, linf, snr = [], [], [], [], []
    for x_adv, _, eta in perturbed:
        eta = np.asarray(eta, np.float64)
        flat = eta.reshape(len(eta), -1)
        eta_mean.append(flat.mean(axis=1))
        mse.append(np.square(flat).mean(axis=1))
        l2.append(np.sqrt(np.square(flat).sum(axis=1)))
        linf.append(np.abs(flat).max(axis=1))
        if mean is not None:
            snr.append(mel_snr_db(np.asarray(x_adv, np.float64) - eta, eta, mean, std))
    sizes = {"eta_mean": eta_mean, "mse": mse, "l2": l2, "linf": linf}
    if snr:
        sizes["snr_db"] = snr
    return {name: float(np.mean(np.concatenate(values))) for name, values in sizes.items()}


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray, labels) -> dict:
    """The one scoring of predictions against the truth: UAR (the paper's metric: recall
    averaged over the classes present, `metrics.uar_from_confusion`) with its 95 %
    bootstrap interval over clips (`statistics.uar_interval`), accuracy, per-class recall by
    label name, the confusion matrix (rows true, columns predicted) and the number of
    clips. `y_true`, `y_pred`: int arrays of shape [N]; UARs are fractions."""
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    return {"uar": uar_from_confusion(matrix),
            "uar_ci": list(uar_interval(y_true, y_pred, len(labels))),
            "accuracy": float(np.mean(y_true == y_pred)),
            "clips": int(len(y_true)), "recall": recall_by_label(matrix, labels),
            "confusion": matrix.tolist()}


def attack_scores(y: np.ndarray, clean: np.ndarray, adv: np.ndarray, labels) -> dict:
    """One defence under one attack, from int arrays [N] of true labels and clean and
    adversarial predictions: clean and adversarial UAR (the latter with its 95 % interval),
    the adversarial per-class recall, and the fooling rate as the share of clean-correct
    clips whose prediction changes (0.0 when no clip is clean-correct)."""
    correct = clean == y
    adversarial = classification_scores(y, adv, labels)
    return {
        "clean_uar": uar_from_confusion(confusion_matrix(y, clean, len(labels))),
        "adversarial_uar": adversarial["uar"],
        "adversarial_uar_ci": adversarial["uar_ci"],
        "success_rate": float(np.mean(adv[correct] != clean[correct])) if correct.any() else 0.0,
        "adversarial_recall": adversarial["recall"],
        "clips": adversarial["clips"],
    }
