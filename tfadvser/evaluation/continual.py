"""Continual-learning metrics on attack success, with bootstrap intervals over clips.

A sequence trains an attacker on defences d_0, d_1, ..., d_{T-1} in order (task k on d_k).
Its grid is the attack success a[k, j] of the attacker after task k on defence d_j:

    a[k, j] = clean UAR of d_j - adversarial UAR of d_j under that attacker   (fractions)

and from it, as Lopez-Paz & Ranzato 2017 (GEM, Sec. 4) with accuracy replaced by success:

    average success  ACC = 1/T sum_j a[T-1, j]                 after the last task
    backward transfer BWT = 1/(T-1) sum_{j<T-1} (a[T-1, j] - a[j, j])
    forward transfer  FWT = 1/(T-1) sum_{j>=1} (a[j-1, j] - b[j])
    forgetting        F   = 1/(T-1) sum_{j<T-1} (max_{j<=k<T-1} a[k, j] - a[T-1, j])
                      (Chaudhry et al. 2018, over the attackers that had learnt d_j)
    peak success      P   = 1/(T-1) sum_{j<T-1} max_{j<=k<T-1} a[k, j]
                      (F's reference: what there was to forget; an attacker with P = 0
                      forgets nothing because it learnt nothing, so F compares methods
                      only where P > 0)

GEM's reference b[j] is the success of a randomly initialised model; here it is the
untrained generator of the sequence (its seeded initial weights, what task 0 starts
from), scored like every attacker. Negative BWT and positive F mean forgetting.

Intervals: percentile bootstrap over clips (`scipy.stats.bootstrap`, as
`statistics.uar_interval`): a resample draws whole clips, with their true label and every
defence's clean and adversarial predictions, so all cells of the grid move together.
Two sequences' forgetting is compared by `forgetting_difference`: the same resamples of
clips for both (paired), so the interval of F(b) - F(a) is narrower than what the two
marginal intervals suggest.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import stats

from tfadvser.evaluation.statistics import CONFIDENCE, RESAMPLES, uar_batch

METRICS = ("average_success", "forgetting", "backward_transfer", "forward_transfer", "peak_success")


def continual_metrics(success, baseline: Optional[Sequence[float]] = None) -> dict:
    """The metrics of the module docstring from a success grid [..., T, T] (leading axes,
    e.g. bootstrap resamples, are kept) and the baseline b [..., T] (None: no FWT).
    Returns metric -> float (or array over the leading axes); BWT, FWT, forgetting and peak
    success are None for T = 1. Raises ValueError for a grid that is not square."""
    a = np.asarray(success, np.float64)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"the success grid must be [..., T, T], got shape {a.shape}")
    t = a.shape[-1]
    final = a[..., -1, :]
    out = {"average_success": final.mean(axis=-1), "forgetting": None,
           "backward_transfer": None, "forward_transfer": None, "peak_success": None}
    if t > 1:
        diagonal = np.diagonal(a, axis1=-2, axis2=-1)
        out["backward_transfer"] = (final[..., :-1] - diagonal[..., :-1]).mean(axis=-1)
        best = np.stack([a[..., j:t - 1, j].max(axis=-1) for j in range(t - 1)], axis=-1)
        out["forgetting"] = (best - final[..., :-1]).mean(axis=-1)
        out["peak_success"] = best.mean(axis=-1)
        if baseline is not None:
            before = np.stack([a[..., j - 1, j] for j in range(1, t)], axis=-1)
            out["forward_transfer"] = (before - np.asarray(baseline, np.float64)[..., 1:]).mean(axis=-1)
    return {k: (float(v) if v is not None and np.ndim(v) == 0 else v) for k, v in out.items()}


def continual_intervals(labels, clean: Sequence, adversarial: Sequence[Sequence], n_classes: int,
                        baseline: Optional[Sequence] = None, confidence: float = CONFIDENCE,
                        resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Metric -> {"value", "ci": [low, high]} (None where undefined) from per-clip int
    predictions [N]: `labels`, `clean[j]` of defence d_j, `adversarial[k][j]` of the attacker
    after task k on d_j, and `baseline[j]` of the untrained generator on d_j (optional).
    Deterministic for a seed; the value is that of all clips."""
    y = np.asarray(labels, int)
    c = np.asarray(clean, int)  # [T, N]
    adv = np.asarray(adversarial, int)  # [T, T, N]
    base = None if baseline is None else np.asarray(baseline, int)  # [T, N]

    def grid(idx):
        clean_uar = _uar_rows(y, c, idx, n_classes)
        b = None if base is None else clean_uar - _uar_rows(y, base, idx, n_classes)
        return _success_grid(clean_uar, y, adv, idx, n_classes), b

    def statistic(idx, axis=-1):
        values = continual_metrics(*grid(idx))
        return np.stack([values[m] if values[m] is not None else np.full(np.shape(values["average_success"]), np.nan)
                         for m in METRICS])

    point = continual_metrics(*grid(np.arange(len(y))))
    out = {m: {"value": point[m], "ci": None} for m in METRICS}
    if len(y) >= 2:
        low, high = _clip_bootstrap(statistic, len(y), confidence, resamples, seed)
        for i, m in enumerate(METRICS):
            if point[m] is not None:
                out[m]["ci"] = [float(low[i]), float(high[i])]
    return out


def _clip_bootstrap(statistic, n: int, confidence: float, resamples: int, seed: int):
    """(low, high) percentile bootstrap bounds of `statistic(idx, axis)` over resamples of
    whole clips (index arrays into n >= 2 clips), as SciPy computes them."""
    result = stats.bootstrap((np.arange(n),), statistic, vectorized=True, n_resamples=resamples,
                             confidence_level=confidence, method="percentile",
                             random_state=np.random.default_rng(seed))
    return result.confidence_interval


def _uar_rows(y, predictions, idx, n_classes: int):
    """UAR [..., T] of each row of int predictions [T, N] on the clips `idx` (int index
    array [..., n]): each defence's clean UAR, or one attacker's UAR on each defence."""
    return np.stack([uar_batch(y[idx], row[idx], n_classes) for row in predictions], axis=-1)


def _success_grid(clean_uar, y, adversarial, idx, n_classes: int):
    """The success grid a[..., k, j] (clean minus adversarial UAR) on the clips `idx`, from
    the defences' clean UAR [..., T] on those clips (`_uar_rows`)."""
    adv_uar = np.stack([_uar_rows(y, after_task, idx, n_classes) for after_task in adversarial], axis=-2)
    return clean_uar[..., None, :] - adv_uar


def forgetting_difference(labels, clean: Sequence, adversarial_a: Sequence[Sequence],
                          adversarial_b: Sequence[Sequence], n_classes: int,
                          confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                          seed: int = 0) -> dict:
    """F(b) - F(a) of two sequences over the same defences in the same order, scored on the
    same clips, with a paired percentile bootstrap interval: each resample draws whole clips
    with every prediction of both sequences, so what the two share (the clips' difficulty,
    the clean predictions, often the first task itself) cancels. Positive: a forgets less.

    Arguments as `continual_intervals` (`adversarial_a[k][j]`, `adversarial_b[k][j]`: int
    predictions [N] after task k on defence j; at least two tasks). Returns {"value",
    "ci": [low, high]} as fractions ("ci" None for fewer than two clips). Raises ValueError
    for one task (no forgetting)."""
    y = np.asarray(labels, int)
    c = np.asarray(clean, int)
    a, b = np.asarray(adversarial_a, int), np.asarray(adversarial_b, int)
    if c.shape[0] < 2:
        raise ValueError("forgetting needs at least two tasks")

    def statistic(idx, axis=-1):
        clean_uar = _uar_rows(y, c, idx, n_classes)  # shared by both sequences
        return (continual_metrics(_success_grid(clean_uar, y, b, idx, n_classes))["forgetting"]
                - continual_metrics(_success_grid(clean_uar, y, a, idx, n_classes))["forgetting"])

    value = float(statistic(np.arange(len(y))))
    if len(y) < 2:
        return {"value": value, "ci": None}
    low, high = _clip_bootstrap(statistic, len(y), confidence, resamples, seed)
    return {"value": value, "ci": [float(low), float(high)]}
