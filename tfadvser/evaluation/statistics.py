"""Uncertainty of the numbers the evaluation reports: bootstrap intervals on UAR and on
paired differences of UAR.

The resampling is SciPy's (`scipy.stats.bootstrap`, percentile method), stratified by
class: each class's clips are resampled on their own (SciPy resamples each of several
samples independently), so every resample keeps the split's class counts, as UAR's
definition assumes. UAR is the mean over classes of the share of a class's clips predicted
right, so per clip only "right or wrong" matters, and a paired difference between two
attacks on the same clips is the same statistic over per-clip differences of those
indicators. The unit resampled is the clip, not the speaker: with 6 speakers per split a
speaker bootstrap has too few units to say much. Clips of one speaker are correlated, so
these intervals are, if anything, too narrow for a claim about new speakers; they measure
how much the number would move with other clips like these.
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


def _class_mean_interval(values: np.ndarray, y_true: np.ndarray, confidence: float,
                         resamples: int, seed: int) -> tuple[float, float, float]:
    """(mean over classes of each class's mean value, low, high): a per-clip value [N]
    (1/0 correctness, or a paired difference of it) resampled within each class."""
    samples = [values[y_true == c] for c in np.unique(y_true)]
    point = float(np.mean([sample.mean() for sample in samples]))
    # SciPy needs two clips per sample; a class with one clip contributes its fixed value.
    varying = [sample for sample in samples if len(sample) > 1]
    fixed = sum(float(sample.mean()) for sample in samples if len(sample) == 1)
    if not varying or all(np.all(sample == sample[0]) for sample in varying):
        return point, point, point

    def statistic(*drawn, axis=-1):
        return (np.sum([d.mean(axis=axis) for d in drawn], axis=0) + fixed) / len(samples)

    result = stats.bootstrap(varying, statistic, paired=False, vectorized=True,
                             n_resamples=resamples, confidence_level=confidence,
                             method="percentile", random_state=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return point, float(low), float(high)


def class_balanced_rate(values, y_true, confidence: float = CONFIDENCE,
                        resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """(rate, low, high): the mean over classes of each class's mean of a per-clip value
    [N] (1/0 for "fooled", or a paired difference of two such indicators), with its
    bootstrap percentile interval resampling clips within each class, as `uar_interval`
    does for correctness. Fractions; deterministic for a seed."""
    return _class_mean_interval(np.asarray(values, float), np.asarray(y_true, int), confidence,
                                resamples, seed)


def uar_interval(y_true, y_pred, n_classes: int, confidence: float = CONFIDENCE,
                 resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """(low, high) bootstrap percentile interval of the UAR of int arrays [N], as
    fractions, resampling clips within each class (see the module docstring).

    Deterministic for a given seed. Predictions that never vary in a way resampling can
    change (e.g. all correct, or one clip per class) give a zero-width interval.
    `n_classes` is kept for the callers' symmetry with `uar_batch`; classes absent from
    y_true are left out of the mean, as `metrics.uar_from_confusion` does.
    """
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    _, low, high = _class_mean_interval((y_true == y_pred).astype(float), y_true, confidence,
                                        resamples, seed)
    return low, high


def paired_difference(y_true, predictions_a, predictions_b, confidence: float = CONFIDENCE,
                      resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """UAR(b) - UAR(a) of two attacks on the same clips, with its bootstrap interval.

    y_true: int labels [N]; predictions_a, predictions_b: int arrays [N] or [D, N] (one row
    per defence: the difference is then that of the UARs averaged over the D defences,
    each clip's D outcomes resampled together). Returns {"difference", "ci": [low, high]}
    as fractions: positive when b leaves the defences more right than a, i.e. a is the
    stronger attack.
    """
    y_true = np.asarray(y_true, int)
    a, b = (np.atleast_2d(np.asarray(p, int)) for p in (predictions_a, predictions_b))
    values = ((b == y_true).astype(float) - (a == y_true).astype(float)).mean(axis=0)
    point, low, high = _class_mean_interval(values, y_true, confidence, resamples, seed)
    return {"difference": point, "ci": [low, high]}


def verdict(ci, expected_sign: int) -> str:
    """"holds" when a 95 % interval [low, high] excludes 0 on the expected side (+1: the
    difference should be positive), "does not hold" when it excludes 0 on the other side,
    "undecided" otherwise."""
    low, high = ci
    if (low > 0 and expected_sign > 0) or (high < 0 and expected_sign < 0):
        return "holds"
    if low > 0 or high < 0:
        return "does not hold"
    return "undecided"


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
