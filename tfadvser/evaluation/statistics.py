"""Uncertainty of the numbers the evaluation reports: bootstrap intervals on UAR.

The resampling is SciPy's (`scipy.stats.bootstrap`, percentile method, paired: a resample
draws whole clips, each with its true label and prediction). The unit resampled is the
clip, not the speaker: with 4-5 speakers per split a speaker bootstrap has too few units to
say much. Clips of one speaker are correlated, so these intervals are, if anything, too
narrow for a claim about new speakers; they measure how much the number would move with
other clips like these.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000  # percentile bounds of a 95 % interval move by ~0.3 UAR points at 2000


def uar_batch(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, axis: int = -1) -> np.ndarray:
    """UAR of each row of resampled (y_true, y_pred) int arrays [..., N] (classes absent
    from a row are left out of its mean, as `metrics.uar_from_confusion` does)."""
    recalls = []
    for c in range(n_classes):
        truth = y_true == c
        support = truth.sum(axis=axis)
        hits = (truth & (y_pred == c)).sum(axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(np.where(support > 0, hits / support, np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row with no class at all
        return np.nanmean(np.stack(recalls), axis=0)


def uar_interval(y_true, y_pred, n_classes: int, confidence: float = CONFIDENCE,
                 resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """(low, high) bootstrap percentile interval of the UAR of int arrays [N], as fractions.

    Deterministic for a given seed. A single clip, or predictions that never vary in a way
    resampling can change (e.g. all correct), give a zero-width interval.
    """
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    if len(y_true) < 2:
        value = float(uar_batch(y_true[None], y_pred[None], n_classes)[0])
        return value, value
    result = stats.bootstrap(
        (y_true, y_pred), lambda t, p, axis=-1: uar_batch(t, p, n_classes, axis),
        paired=True, vectorized=True, n_resamples=resamples, confidence_level=confidence,
        method="percentile", random_state=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return float(low), float(high)


def resolution(widths: list[float]) -> dict:
    """What a run can tell apart, from the 95 % interval widths of its UAR cells (fractions):
    the median width ("typical cell"), and the smallest difference between two independent
    cells of that width that is significant at 95 %: half the width times sqrt(2), since
    the standard error of a difference of two independent estimates is sqrt(2) times each
    one's. A paired comparison on the same clips usually resolves smaller differences."""
    widths = [w for w in widths if w is not None and math.isfinite(w)]
    if not widths:
        return {"typical_width": None, "smallest_difference": None, "cells": 0}
    typical = float(np.median(widths))
    return {"typical_width": typical, "smallest_difference": typical / 2 * math.sqrt(2),
            "cells": len(widths)}
