"""The baselines of a run's budgets, scored by the same evaluation as its attackers.

For each bounded budget the run's attackers were trained under, on a seeded subset of the
test split (`BASELINE_CLIPS`):

- noise at the budget (`attack.baselines.budget_noise`) against every defence;
- PGD and MI-FGSM crafted white-box on each defence ("source") and scored on every defence
  ("target"): a source x target matrix whose diagonal is the white-box upper bound and
  whose other cells are the transfer baselines a black-box attacker must beat;

and, on a seeded subset of test clips, the budget curve: adversarial UAR against measured
SNR for the trained attacker (its eta scaled down), PGD (white-box and transferred) and
noise at a range of epsilons.

Each perturbation is drawn with a seed fixed by its batch index, so a rerun gives the same
numbers. Cost (measured on 2 cores at the `small` profile, 378 clips per split): see the
report's time table.
"""
from __future__ import annotations

import time
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from tfadvser.attack.baselines import budget_noise, mi_fgsm, pgd
from tfadvser.config import Budget
from tfadvser.evaluation.metrics import attack_rates, mel_snr_db
from tfadvser.evaluation.scoring import attack_scores, predictions
from tfadvser.evaluation.statistics import uar_interval
from tfadvser.runtime.inference import inference

WHITE_BOX = {"pgd": pgd, "mi_fgsm": mi_fgsm}
# The budget curve: epsilons as multiples of the budget's, and the scales of a trained eta.
CURVE_EPSILONS = (0.25, 1.0, 4.0)  # 42, 30 and 18 dB at the default budget: the range audio work uses
# PGD's points (each costs ten forward and backward passes per clip and source): at 1x the
# baselines' own PGD is reused, 4x shows whether a louder white-box attack transfers.
PGD_CURVE_EPSILONS = (1.0, 4.0)
CURVE_SCALES = (0.125, 0.25, 0.5, 1.0)
CURVE_CLIPS = 64  # a 95 % interval on one point is ~+-12 UAR points: the curve shows trends
# The white-box and noise baselines' seeded subset of test clips (a quarter of the built-in
# corpus's 378; intervals ~+-9 UAR points, against ~+-4 on all of them): PGD and MI-FGSM
# cost ten forward and backward passes per clip on each defence (on 126 clips, 165 s of
# the main job's evaluation, measured).
BASELINE_CLIPS = 96


def scores_with_predictions(y, clean, adv, labels) -> dict:
    """`scoring.attack_scores` plus the three attack rates (`metrics.attack_rates`) and the
    per-clip adversarial predictions (kept for paired comparisons)."""
    return {**attack_scores(y, clean, adv, labels), **attack_rates(y, clean, adv),
            "clean_uar_ci": list(uar_interval(y, clean, len(labels))),
            "predictions": np.asarray(adv).tolist()}


def _sizes(x: np.ndarray, eta: np.ndarray, mean, std) -> dict:
    flat = eta.reshape(len(eta), -1).astype(np.float64)
    snr = mel_snr_db(x, eta, mean, std)
    return {"l2": float(np.mean(np.sqrt(np.square(flat).sum(axis=1)))),
            "linf": float(np.mean(np.abs(flat).max(axis=1))),
            "snr_db": float(np.mean(snr)), "snr_db_min": float(np.min(snr))}


def score_budget(budget: Budget, batches: list, truth: np.ndarray, clean: Mapping[str, np.ndarray],
                 defences: Mapping[str, object], labels, mean, std,
                 methods: Sequence[str] = ("pgd", "mi_fgsm"),
                 sources: Optional[Sequence[str]] = None,
                 crafted: Optional[dict] = None) -> dict:
    """One split's baselines at `budget`: {"noise": {target: scores}, "pgd": {source:
    {target: scores}}, "mi_fgsm": ..., "sizes": {...}, "seconds": ...}. `batches`: (x, y)
    batches of the split; `clean`: each defence's clean predictions [N]; `sources`: the
    defences white-box attacks are crafted on (default: all). `crafted`, if given, receives
    the perturbations: method -> source -> eta [N, ...] (the budget curve reuses PGD's)."""
    started = time.time()
    out: dict = {"sizes": {}, "seconds": {}}
    t = time.time()
    noisy = [(x + budget_noise(x, budget, mean, std, seed=i), y)
             for i, (x, y) in enumerate((np.asarray(x), np.asarray(y)) for x, y in batches)]
    out["noise"] = {d: scores_with_predictions(truth, clean[d], predictions(m, noisy), labels)
                    for d, m in defences.items()}
    out["sizes"]["noise"] = _sizes(np.concatenate([np.asarray(x) for x, _ in batches]),
                                   np.concatenate([np.asarray(n - x) for (n, _), (x, _) in zip(noisy, batches)]),
                                   mean, std)
    out["seconds"]["noise"] = round(time.time() - t, 1)
    for method in methods:
        t = time.time()
        attack = WHITE_BOX[method]
        out[method], out["sizes"][method] = {}, {}
        for source in (sources if sources is not None else list(defences)):
            forward = inference(defences[source])
            etas = [attack(forward, np.asarray(x), np.asarray(y), budget, mean, std)
                    for x, y in batches]
            perturbed = [(np.asarray(x) + eta, y) for eta, (x, y) in zip(etas, batches)]
            out[method][source] = {
                target: scores_with_predictions(truth, clean[target], predictions(m, perturbed), labels)
                for target, m in defences.items()}
            out["sizes"][method][source] = _sizes(
                np.concatenate([np.asarray(x) for x, _ in batches]), np.concatenate(etas), mean, std)
            if crafted is not None:
                crafted.setdefault(method, {})[source] = np.concatenate(etas)
        out["seconds"][method] = round(time.time() - t, 1)
    out["seconds"]["total"] = round(time.time() - started, 1)
    return out


def budget_curve(budget: Budget, x: np.ndarray, y: np.ndarray, defences: Mapping[str, object],
                 labels, mean, std, attacker: Optional[Callable] = None,
                 attacker_name: str = "", pgd_at_budget: Optional[Mapping[str, np.ndarray]] = None) -> dict:
    """Adversarial UAR [fraction] against mean SNR [dB] on clips x [N, frames, n_mels] with
    labels y [N], per target defence: {"clean": {d: uar}, "curves": {name: {d: [[snr, uar],
    ...]}}}. Curves: noise at epsilon k * budget.epsilon (k in CURVE_EPSILONS, no SNR floor:
    the curve crosses it), PGD white-box (source = target) and transferred (the mean over the
    other sources) at k in PGD_CURVE_EPSILONS, and the trained `attacker` (x -> eta) scaled by
    CURVE_SCALES (it cannot go past its own budget). `pgd_at_budget`: each source's PGD
    perturbations of x at the budget itself (`score_budget`'s), used for the 1x point
    instead of crafting PGD again at epsilon alone (the point sits at its measured SNR)."""
    from tfadvser.evaluation.metrics import confusion_matrix, uar_from_confusion

    def uar(model, xs):
        return uar_from_confusion(confusion_matrix(y, np.argmax(inference(model)(xs), -1), len(labels)))

    epsilon = budget.epsilon if budget.epsilon is not None else 0.01
    out = {"clean": {d: uar(m, x) for d, m in defences.items()}, "curves": {},
           "attacker": attacker_name, "clips": int(len(x))}
    noise_curve, white, transfer = {d: [] for d in defences}, {d: [] for d in defences}, {d: [] for d in defences}
    for k in CURVE_EPSILONS:
        level = Budget(k * epsilon, None)
        noise = budget_noise(x, level, mean, std, seed=0)
        snr = float(np.mean(mel_snr_db(x, noise, mean, std)))
        for d, m in defences.items():
            noise_curve[d].append([snr, uar(m, x + noise)])
        if k not in PGD_CURVE_EPSILONS:
            continue
        if k == 1.0 and pgd_at_budget is not None:
            crafted = {s: pgd_at_budget[s] for s in defences}
        else:
            crafted = {s: pgd(inference(m), x, y, level, mean, std, seed=0) for s, m in defences.items()}
        for d, m in defences.items():
            white[d].append([float(np.mean(mel_snr_db(x, crafted[d], mean, std))), uar(m, x + crafted[d])])
            others = [s for s in defences if s != d]
            if others:
                transfer[d].append([float(np.mean([np.mean(mel_snr_db(x, crafted[s], mean, std)) for s in others])),
                                    float(np.mean([uar(m, x + crafted[s]) for s in others]))])
    out["curves"] = {"noise at the budget": noise_curve, "PGD white-box": white}
    if any(transfer.values()):
        out["curves"]["PGD transferred"] = transfer
    if attacker is not None:
        eta = np.asarray(attacker(x))
        trained = {d: [] for d in defences}
        for scale in CURVE_SCALES:
            snr = float(np.mean(mel_snr_db(x, scale * eta, mean, std)))
            for d, m in defences.items():
                trained[d].append([snr, uar(m, x + scale * eta)])
        out["curves"][f"trained: {attacker_name}"] = trained
    return out
