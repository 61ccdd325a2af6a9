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

from tfadvser.metrics import confusion_matrix, recall_by_label, uar_from_confusion


def predictions(model: keras.Model, batches: Iterable, generator: Optional[keras.Model] = None):
    """Argmax predictions over (x, y) batches; on x + G(x) when a generator is given."""
    out = []
    for x, _ in batches:
        if generator is not None:
            x = x + generator(x, training=False)
        out.append(np.argmax(model(x, training=False), axis=-1))
    return np.concatenate(out)


def labels_of(batches: Iterable) -> np.ndarray:
    return np.concatenate([np.asarray(y) for _, y in batches])


def perturbation_sizes(generator: keras.Model, batches: Iterable,
                       mean: Optional[np.ndarray] = None, std: Optional[np.ndarray] = None) -> dict:
    """Per-clip sizes of eta, averaged over clips; SNR only with the standardisation stats."""
    eta_mean, mse, l2, linf, snr = [], [], [], [], []
    for x, _ in batches:
        eta = np.asarray(generator(x, training=False), np.float64)
        flat = eta.reshape(len(eta), -1)
        eta_mean.append(flat.mean(axis=1))
        mse.append(np.square(flat).mean(axis=1))
        l2.append(np.sqrt(np.square(flat).sum(axis=1)))
        linf.append(np.abs(flat).max(axis=1))
        if mean is not None:
            clean = np.exp(np.asarray(x, np.float64) * std + mean)
            noisy = np.exp((np.asarray(x, np.float64) + eta) * std + mean)
            signal = np.square(clean).reshape(len(eta), -1).sum(axis=1)
            noise = np.square(noisy - clean).reshape(len(eta), -1).sum(axis=1)
            snr.append(10.0 * np.log10(signal / np.maximum(noise, 1e-300)))
    sizes = {"eta_mean": eta_mean, "mse": mse, "l2": l2, "linf": linf}
    if snr:
        sizes["snr_db"] = snr
    return {name: float(np.mean(np.concatenate(values))) for name, values in sizes.items()}


def scores(y: np.ndarray, clean: np.ndarray, adv: np.ndarray, labels) -> dict:
    n = len(labels)
    correct = clean == y
    adv_matrix = confusion_matrix(y, adv, n)
    return {
        "clean_uar": uar_from_confusion(confusion_matrix(y, clean, n)),
        "adversarial_uar": uar_from_confusion(adv_matrix),
        "fooling_rate": float(np.mean(adv[correct] != clean[correct])) if correct.any() else 0.0,
        "adversarial_recall": recall_by_label(adv_matrix, labels),
        "clips": int(len(y)),
    }


def attack_scores(generator: keras.Model, defence: keras.Model, batches: Iterable,
                  n_classes: int) -> dict:
    """The headline numbers, for monitoring during training."""
    batches = list(batches)
    y = labels_of(batches)
    result = scores(y, predictions(defence, batches), predictions(defence, batches, generator),
                    [str(i) for i in range(n_classes)])
    result.pop("adversarial_recall")
    return {**result, **perturbation_sizes(generator, batches)}
