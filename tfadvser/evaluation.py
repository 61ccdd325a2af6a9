"""Scoring an attacker against a defence: clean and adversarial UAR, fooling rate, and the
size of the perturbation (which the paper never reports)."""
from __future__ import annotations

from typing import Iterable

import keras
import numpy as np

from tfadvser.metrics import confusion_matrix, uar_from_confusion


def attack_scores(generator: keras.Model, defence: keras.Model, batches: Iterable,
                  n_classes: int) -> dict:
    """Inference-mode scores over (x, y) batches of standardised log-Mels."""
    truths, clean, adv, eta_sum, eta_sq, eta_max, count = [], [], [], 0.0, 0.0, 0.0, 0
    for x, y in batches:
        eta = generator(x, training=False)
        clean.append(np.argmax(defence(x, training=False), axis=-1))
        adv.append(np.argmax(defence(x + eta, training=False), axis=-1))
        truths.append(np.asarray(y))
        eta = np.asarray(eta, np.float64)
        eta_sum, eta_sq = eta_sum + eta.sum(), eta_sq + np.square(eta).sum()
        eta_max, count = max(eta_max, float(np.abs(eta).max())), count + eta.size
    y, clean, adv = np.concatenate(truths), np.concatenate(clean), np.concatenate(adv)
    correct = clean == y
    return {
        "clean_uar": uar_from_confusion(confusion_matrix(y, clean, n_classes)),
        "adversarial_uar": uar_from_confusion(confusion_matrix(y, adv, n_classes)),
        "fooling_rate": float(np.mean(adv[correct] != clean[correct])) if correct.any() else 0.0,
        "eta_mean": eta_sum / count, "mse": eta_sq / count, "eta_linf": eta_max,
        "clips": int(len(y)),
    }
