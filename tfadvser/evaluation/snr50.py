"""SNR₅₀: how quiet an attack can be and still take a defence halfway to chance.

A budget scan gives, for one attack and one target defence, adversarial UAR at several
perturbation sizes, each measured as SNR in dB (`metrics.mel_snr_db`). SNR₅₀ summarises
that curve in one number: the SNR at which the defence's UAR has fallen halfway from its
clean UAR to chance (1 / classes),

    target = clean - (clean - chance) / 2,

interpolated linearly in dB between the two scan points that bracket the first crossing,
walking from the quietest point to the loudest. Higher is better for the attacker (a
quieter perturbation that works). The field summarises robustness curves the same way
(e.g. the "epsilon at 50 % accuracy" of image robustness benchmarks); the dB axis is audio
work's habit (DESIGN.md, "Measuring attacks honestly").

Censored values: when even the quietest scan point is at or below the target the attack
is "> its SNR" (returned as +inf); when even the loudest is above it, "< its SNR" (-inf).
A defence at or below chance when clean has no halfway point (NaN).

The interval is a bootstrap over clips, stratified by class as every UAR interval of the
project (`statistics`): each resample draws the same clips for the clean predictions and
for every scan point (the points are paired: the same clips perturbed more or less), and
SNR₅₀ is recomputed on the resampled curve; the scan points' SNRs stay at their measured
means. Percentile bounds are taken without interpolation between resamples, so censored
resamples (±inf) give censored bounds rather than NaN.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from tfadvser.evaluation.statistics import CONFIDENCE, RESAMPLES, uar_batch


def halfway_target(clean_uar: float, n_classes: int) -> float:
    """The UAR halfway from `clean_uar` to chance 1 / n_classes (fractions)."""
    chance = 1.0 / n_classes
    return clean_uar - (clean_uar - chance) / 2.0


def snr50(snr_db: Sequence[float], uar: Sequence[float], clean_uar: float, n_classes: int) -> float:
    """SNR₅₀ in dB of one curve: `snr_db` [P] the scan points' SNRs (any order), `uar` [P]
    the adversarial UAR at each (fractions), `clean_uar` the defence's clean UAR on the same
    clips. +inf / -inf when censored above / below the scan, NaN when the clean UAR is at
    or below chance (see the module docstring). Raises ValueError for empty or unequal
    inputs."""
    snr_db, uar = np.asarray(snr_db, float), np.asarray(uar, float)
    if snr_db.shape != uar.shape or snr_db.ndim != 1 or len(snr_db) == 0:
        raise ValueError(f"need equal-length 1-d curves, got {snr_db.shape} and {uar.shape}")
    if clean_uar <= 1.0 / n_classes:
        return math.nan
    target = halfway_target(clean_uar, n_classes)
    order = np.argsort(-snr_db, kind="stable")  # quietest (highest SNR) first
    snr_db, uar = snr_db[order], uar[order]
    if uar[0] <= target:
        return math.inf
    for i in range(1, len(uar)):
        if uar[i] <= target:
            # uar[i - 1] > target >= uar[i]: the bracket of the first crossing.
            fraction = (uar[i - 1] - target) / (uar[i - 1] - uar[i])
            return float(snr_db[i - 1] + fraction * (snr_db[i] - snr_db[i - 1]))
    return -math.inf


def _stratified_indices(y_true: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[resamples, N] clip indices: each class's clips drawn with replacement among
    themselves, so every resample keeps the class counts."""
    drawn = np.empty((resamples, len(y_true)), int)
    column = 0
    for c in np.unique(y_true):
        members = np.flatnonzero(y_true == c)
        drawn[:, column:column + len(members)] = rng.choice(members, size=(resamples, len(members)))
        column += len(members)
    return drawn


def snr50_interval(y_true, clean_pred, adv_preds, snr_db: Sequence[float], n_classes: int,
                   confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                   seed: int = 0) -> dict:
    """SNR₅₀ of one attack on one defence with its bootstrap interval (module docstring).

    y_true, clean_pred: int arrays [N] (labels, clean predictions); adv_preds: int [P, N],
    the predictions at each of the P scan points, on the same clips; snr_db [P]: each
    point's measured SNR. Returns {"snr50": dB, "ci": [low, high], "clean_uar",
    "target_uar", "uar": [P] fractions, "snr_db": [P]} with ±inf for censored values and
    NaN where undefined. Deterministic for a seed."""
    y_true, clean_pred = np.asarray(y_true, int), np.asarray(clean_pred, int)
    adv_preds = np.atleast_2d(np.asarray(adv_preds, int))
    snr_db = np.asarray(snr_db, float)
    if adv_preds.shape != (len(snr_db), len(y_true)) or clean_pred.shape != y_true.shape:
        raise ValueError(f"need predictions [P={len(snr_db)}, N={len(y_true)}], got "
                         f"{adv_preds.shape} and clean {clean_pred.shape}")
    clean = float(uar_batch(y_true, clean_pred, n_classes))
    curve = [float(uar_batch(y_true, p, n_classes)) for p in adv_preds]
    point = snr50(snr_db, curve, clean, n_classes)
    drawn = _stratified_indices(y_true, resamples, np.random.default_rng(seed))
    truth = y_true[drawn]
    clean_draws = uar_batch(truth, clean_pred[drawn], n_classes)
    curve_draws = np.stack([uar_batch(truth, p[drawn], n_classes) for p in adv_preds], axis=1)
    values = np.array([snr50(snr_db, c, k, n_classes) for c, k in zip(curve_draws, clean_draws)])
    low, high = _censored_percentiles(values, confidence)
    return {"snr50": point, "ci": [low, high], "clean_uar": clean,
            "target_uar": halfway_target(clean, n_classes), "uar": curve,
            "snr_db": snr_db.tolist()}


def _censored_percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile bounds without interpolation (±inf stay ±inf); NaN if most are NaN."""
    finite_or_censored = values[~np.isnan(values)]
    if len(finite_or_censored) < len(values) / 2:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite_or_censored, [tail, 1.0 - tail], method="inverted_cdf")
    return float(low), float(high)


def format_snr50(value: float, scan: Optional[Sequence[float]] = None) -> str:
    """"23.4", "> 40", "< 0" or "n/a" (scan: the scan's SNRs, to name a censored bound)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        if scan is None or len(scan) == 0:
            return "> scan" if value > 0 else "< scan"
        return f"> {max(scan):.0f}" if value > 0 else f"< {min(scan):.0f}"
    return f"{value:.1f}"


def format_with_interval(result: dict) -> str:
    """"23.4 [20.1, 27.0]" from `snr50_interval`'s result, censored parts spelt out."""
    scan = result.get("snr_db")
    low, high = result["ci"]
    return (f"{format_snr50(result['snr50'], scan)} "
            f"[{format_snr50(low, scan)}, {format_snr50(high, scan)}]")


def snr50_difference(y_true, clean_pred, attack_a: tuple, attack_b: tuple, n_classes: int,
                     confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """SNR₅₀(a) - SNR₅₀(b) in dB of two attacks scanned on the same clips, each given as
    (predictions [P, N], snr_db [P]), with a paired bootstrap interval (the same resampled
    clips for both curves and the clean predictions). Positive: a is the quieter successful
    attack. Censored values make the difference ±inf (or NaN when both are censored on the
    same side); percentiles as in `snr50_interval`. Returns {"difference", "ci"}."""
    y_true, clean_pred = np.asarray(y_true, int), np.asarray(clean_pred, int)
    curves = [(np.atleast_2d(np.asarray(p, int)), np.asarray(s, float)) for p, s in (attack_a, attack_b)]
    clean = float(uar_batch(y_true, clean_pred, n_classes))
    with np.errstate(invalid="ignore"):
        point = float(np.float64(snr50(curves[0][1], [uar_batch(y_true, p, n_classes) for p in curves[0][0]],
                                       clean, n_classes))
                      - snr50(curves[1][1], [uar_batch(y_true, p, n_classes) for p in curves[1][0]],
                              clean, n_classes))
    drawn = _stratified_indices(y_true, resamples, np.random.default_rng(seed))
    truth = y_true[drawn]
    clean_draws = uar_batch(truth, clean_pred[drawn], n_classes)
    draws = [np.stack([uar_batch(truth, p[drawn], n_classes) for p in preds], axis=1) for preds, _ in curves]
    with np.errstate(invalid="ignore"):
        values = np.array([np.float64(snr50(curves[0][1], a, k, n_classes)) - snr50(curves[1][1], b, k, n_classes)
                           for a, b, k in zip(draws[0], draws[1], clean_draws)])
    low, high = _censored_percentiles(values, confidence)
    return {"difference": point, "ci": [low, high]}
