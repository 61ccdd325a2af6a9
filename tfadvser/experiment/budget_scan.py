"""The budget scan: every attack at a range of budgets from 40 dB down to 0 dB, scored on
every defence, each attack x defence summarised by its SNR₅₀ (`evaluation/snr50.py`).

Why: at the product's own budget (30 dB) white-box PGD takes the defences to 2-22 % while
nothing transfers between them, not even PGD (issue 30, measured); a transfer attack can
only be compared with another where attacks exist. The scan finds, for each attack and
target, the SNR at which the target is taken halfway from clean to chance.

A scan point is a budget: an SNR floor s dB and the L∞ bound epsilon(s) at which
uniform ±epsilon signs on these clips have a median SNR of s (`epsilon_for_snr`, bisection
on the clips themselves), so every attack at the point is bounded like the product's own
budget (`attack.budget.project`), and sits at or above s dB on every clip. Where the run's
own budget is at one of the scan's SNRs, that point is the run's budget itself.

Attacks, each crafted once per source and scored on every target (one crafting per source
reused for every target):

- "noise": ±epsilon signs onto the floor (`baselines.budget_noise`);
- "PGD from S", "MI-FGSM from S", "DI-FGSM from S": white-box on S (the diagonal), the
  transfer baselines elsewhere (`attack/baselines.py`);
- "ensemble MI-FGSM (all but T)": crafted on every source defence except the target T,
  scored on T only (Dong et al. 2018's ensemble transfer);
- "learned: NAME": a trained attacker's perturbation of these clips, its direction G(x)
  scaled to each point's epsilon (epsilon(s) / its training epsilon, up or down) and then
  projected onto the point's budget: one trained generator, scanned by scaling (it is not
  retrained per budget).

A `ScanPlan` says which points each attack is run at: the main job's `FAST` plan spends
the iterative transfer methods only where transfer can exist (at 10 dB and louder: on the
main job every transfer's SNR₅₀ lay below 10 dB, measured on b9dc326; MI-FGSM, DI-FGSM and
the ensemble at 20 dB cost ~60 s of its 20 minutes and decided no SNR₅₀) and uses fewer
iterations than the matrix at the budget;
`FULL` (`tfadvser evaluate --scan full`) runs everything everywhere.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from tfadvser.attack.baselines import budget_noise, di_fgsm, ensemble, mi_fgsm, pgd
from tfadvser.attack.budget import project
from tfadvser.config import Budget
from tfadvser.evaluation.metrics import mel_snr_db
from tfadvser.evaluation.snr50 import snr50_interval
from tfadvser.runtime.inference import inference

ITERATIVE = {"PGD": pgd, "MI-FGSM": mi_fgsm, "DI-FGSM": di_fgsm}
ENSEMBLE = "ensemble MI-FGSM"


@dataclasses.dataclass(frozen=True)
class ScanPlan:
    """Which budgets the scan visits, on how many clips, with how many iterations.

    snrs: the SNR floors in dB, quietest first; clips: seeded test clips; steps: iterations
    of PGD, MI-FGSM, DI-FGSM and the ensemble; transfer_max_db: MI-FGSM, DI-FGSM and the
    ensemble run only at points at or below this SNR (PGD, noise and learned attackers run
    at every point); di_sources: the sources DI-FGSM is crafted on (None: every source)."""

    name: str
    snrs: tuple[float, ...]
    clips: int
    steps: int
    transfer_max_db: float
    di_sources: Optional[tuple[str, ...]] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The main job's scan: 5 points on 48 clips (UAR intervals ~±14 points per point), 5
# iterations (PGD at 5 steps of epsilon / 4 still reaches the corners of the ball), DI-FGSM
# from CNN-4 only, the learned attackers' source (from VGG-16 and ResNet-50 it cost ~30 s
# of the main job's 20 minutes; `--scan full` crafts it on every source).
FAST = ScanPlan("fast", (40.0, 30.0, 20.0, 10.0, 0.0), clips=48, steps=5, transfer_max_db=10.0,
                di_sources=("cnn4",))
FULL = ScanPlan("full", (40.0, 30.0, 20.0, 15.0, 10.0, 5.0, 0.0), clips=96, steps=10,
                transfer_max_db=40.0)
PLANS = {plan.name: plan for plan in (FAST, FULL)}


def epsilon_for_snr(x, snr_db: float, mean, std, seed: int = 0, iterations: int = 40) -> float:
    """The L∞ bound epsilon at which uniform ±epsilon signs on clips x [N, frames, n_mels]
    (standardised log-Mel) have a median per-clip SNR of `snr_db` dB (`metrics.mel_snr_db`),
    by bisection on log epsilon in [1e-5, 20]. The SNR falls monotonically as epsilon
    grows, so the bisection converges; 40 halvings leave epsilon within 1e-10 of the
    bracket's ratio. Raises ValueError when the bracket does not contain the target."""
    x = np.asarray(x, np.float32)
    signs = np.random.default_rng(seed).choice(np.float32([-1.0, 1.0]), size=x.shape)

    def median_snr(epsilon):
        return float(np.median(mel_snr_db(x, epsilon * signs, mean, std)))

    low, high = np.log(1e-5), np.log(20.0)
    if not median_snr(np.exp(high)) <= snr_db <= median_snr(np.exp(low)):
        raise ValueError(f"no epsilon in [1e-5, 20] gives {snr_db} dB on these clips")
    for _ in range(iterations):
        middle = (low + high) / 2
        if median_snr(np.exp(middle)) > snr_db:
            low = middle
        else:
            high = middle
    return float(np.exp((low + high) / 2))


def scan_budgets(x, plan: ScanPlan, mean, std, own: Optional[Budget] = None) -> list[Budget]:
    """One Budget per plan SNR: `own` where its SNR floor is that SNR, else
    Budget(epsilon_for_snr(s), s)."""
    out = []
    for snr in plan.snrs:
        if own is not None and own.snr_db == snr and own.epsilon is not None:
            out.append(own)
        else:
            out.append(Budget(round(epsilon_for_snr(x, snr, mean, std), 6), snr))
    return out


def budget_scan(x, y, defences: Mapping[str, object], sources: Sequence[str], labels, mean, std,
                plan: ScanPlan = FAST, learned: Optional[Mapping[str, tuple]] = None,
                own: Optional[Budget] = None, progress: Optional[Callable] = None) -> dict:
    """The scan of clips x [N, frames, n_mels] with labels y [N] (module docstring).

    defences: name -> model, every target; sources: the defences white-box attacks are
    crafted on; learned: name -> (eta [N, ...] the trained attacker's perturbation of x at
    its training budget, that Budget). Returns {"plan", "budgets": [{epsilon, snr_db}],
    "clean": {target: predictions}, "attacks": {name: {"kind", "source", "targets":
    {target: {"snr_db": [P'], "predictions": [P'][N], "points": [indices]}}}},
    "seconds"}, P' the points the attack ran at. Deterministic: every draw has a seed."""
    started = time.time()
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
    budgets = scan_budgets(x, plan, mean, std, own)
    forwards = {d: inference(m) for d, m in defences.items()}

    def predict(target, perturbed):
        return np.argmax(forwards[target](perturbed), axis=-1)

    out = {"plan": plan.to_dict(), "budgets": [b.to_dict() for b in budgets],
           "clean": {d: predict(d, x).tolist() for d in defences}, "attacks": {}}

    def record(name, kind, source, point, eta, targets):
        entry = out["attacks"].setdefault(name, {"kind": kind, "source": source, "targets": {}})
        snr = float(np.mean(mel_snr_db(x, eta, mean, std)))
        for target in targets:
            cell = entry["targets"].setdefault(target, {"snr_db": [], "predictions": [], "points": []})
            cell["snr_db"].append(snr)
            cell["predictions"].append(predict(target, x + eta).tolist())
            cell["points"].append(point)

    work = _work_items(plan, budgets, sources, learned or {}, list(defences))
    for done, (point, name, kind, source, make, targets) in enumerate(work, start=1):
        record(name, kind, source, point, make(x, y, budgets[point], mean, std, forwards), targets)
        if progress is not None:
            progress(done, len(work))
    out["seconds"] = round(time.time() - started, 1)
    return out


def _work_items(plan, budgets, sources, learned, targets):
    """(point, attack name, kind, source, eta maker, targets) for every crafting."""
    items = []
    for point, budget in enumerate(budgets):
        loud_enough = budget.snr_db <= plan.transfer_max_db
        items.append((point, "noise", "noise", None, _noise(seed=point), targets))
        for method, attack in ITERATIVE.items():
            if method != "PGD" and not loud_enough:
                continue
            for source in sources:
                if method == "DI-FGSM" and plan.di_sources is not None and source not in plan.di_sources:
                    continue
                items.append((point, f"{method} from {source}", "white-box/transfer", source,
                              _iterative(attack, source, plan.steps), targets))
        if loud_enough:
            for target in targets:
                others = [s for s in sources if s != target]
                if len(others) >= 2:  # with one, it is that source's MI-FGSM
                    items.append((point, f"{ENSEMBLE} (all but {target})", "transfer",
                                  "+".join(others), _ensemble(others, plan.steps), [target]))
        for name, (eta, trained) in learned.items():
            items.append((point, f"learned: {name}", "learned", None, _scaled(eta, trained), targets))
    return items


def _noise(seed):
    def make(x, y, budget, mean, std, forwards):
        return budget_noise(x, budget, mean, std, seed)
    return make


def _iterative(attack, source, steps):
    def make(x, y, budget, mean, std, forwards):
        return attack(forwards[source], x, y, budget, mean, std, steps=steps)
    return make


def _ensemble(others, steps):
    def make(x, y, budget, mean, std, forwards):
        return mi_fgsm(ensemble([forwards[s] for s in others]), x, y, budget, mean, std, steps=steps)
    return make


def _scaled(eta, trained: Budget):
    def make(x, y, budget, mean, std, forwards):
        return project(x, np.asarray(eta, np.float32) * (budget.cap / trained.cap), budget,
                       mean, std).numpy()
    return make


def summarise(scan: dict, y, n_classes: int, seed: int = 0) -> dict:
    """SNR₅₀ with its interval (`snr50.snr50_interval`) of every attack x target of a scan:
    {attack: {target: {"snr50", "ci", "clean_uar", "target_uar", "uar", "snr_db"}}}."""
    out = {}
    for name, entry in scan["attacks"].items():
        out[name] = {t: snr50_interval(y, scan["clean"][t], cell["predictions"], cell["snr_db"],
                                       n_classes, seed=seed)
                     for t, cell in entry["targets"].items()}
    return out


def learned_attackers(sequences: Sequence[dict], chosen_lambda: Callable) -> dict:
    """{sequence label: its last task's key} for every sequence a scan should show: all but
    the lifelong sequences of a λ the sweep did not choose (`chosen_lambda(sequence)`: the
    sweep's λ or None, `Results.chosen_lambda`)."""
    out = {}
    for seq in sequences:
        if seq["method"] == "lifelong":
            chosen = chosen_lambda(seq)
            if chosen is not None and float(seq["ewc_lambda"]) != chosen:
                continue
        out[seq["label"]] = seq["tasks"][-1]["key"]
    return out


def scan_subset(n_clips: int, plan: ScanPlan) -> np.ndarray:
    """The scan's clips: the first `plan.clips` of the seeded order the baselines draw their
    subset from (seed 0), sorted, so the scan's clips are among the baselines' clips."""
    order = np.random.default_rng(0).permutation(n_clips)
    return np.sort(order[:min(plan.clips, n_clips)])


def snr50_differences(scan: dict, y, n_classes: int, pairs: Sequence[tuple], seed: int = 0) -> list:
    """Paired SNR₅₀ differences (`snr50.snr50_difference`) of attack pairs (a, b) on every
    target both reach: [{"a", "b", "target", "difference", "ci"}]; positive when a is the
    quieter successful attack."""
    from tfadvser.evaluation.snr50 import snr50_difference

    out = []
    for a, b in pairs:
        cells_a, cells_b = scan["attacks"][a]["targets"], scan["attacks"][b]["targets"]
        for target in [t for t in cells_a if t in cells_b]:
            result = snr50_difference(y, scan["clean"][target],
                                      (cells_a[target]["predictions"], cells_a[target]["snr_db"]),
                                      (cells_b[target]["predictions"], cells_b[target]["snr_db"]),
                                      n_classes, seed=seed)
            out.append({"a": a, "b": b, "target": target, **result})
    return out


def scan_stage(sequences: Sequence[dict], chosen_lambda: Callable, x_test, y_test,
               defences: Mapping[str, object], sources: Sequence[str], labels, mean, std,
               load_generator: Callable, plan: ScanPlan = FAST,
               progress: Optional[Callable] = None) -> dict:
    """The evaluation's scan (`Results.scan`): `budget_scan` on `scan_subset` of the test
    clips x_test [N, ...], y_test [N], of the run's `sequences` (records with their
    "budget"), with every learned attacker of `learned_attackers`
    (loaded by `load_generator(task key)` -> a function x -> eta), its SNR₅₀ summary and
    the paired SNR₅₀ comparisons of the paper's methods (lifelong vs transfer, lifelong vs
    single-task, multi-task vs single-task) where both were trained."""
    subset = scan_subset(len(x_test), plan)
    x, y = np.asarray(x_test)[subset], np.asarray(y_test)[subset]
    budgets = [Budget(**seq["budget"]) for seq in sequences if seq.get("budget")]
    bounded = [b for b in budgets if b.bounded]
    own = bounded[0] if bounded else None
    learned = {}
    for label, key in learned_attackers(sequences, chosen_lambda).items():
        seq = next(s for s in sequences if s["label"] == label)
        trained = Budget(**seq["budget"])
        if not trained.bounded:
            continue  # the paper's unbounded attacker has no budget to scale
        forward = load_generator(key)
        if forward is not None:
            learned[label] = (np.asarray(forward(x)), trained)
    scan = budget_scan(x, y, defences, sources, labels, mean, std, plan, learned, own, progress)
    scan["clips"] = subset.tolist()
    scan["truth"] = y.tolist()
    scan["snr50"] = summarise(scan, y, len(labels))
    methods = {seq["label"]: seq["method"] for seq in sequences}
    by_method = {}
    for label in learned:
        by_method.setdefault(methods[label], f"learned: {label}")
    pairs = [(by_method[a], by_method[b]) for a, b in (("lifelong", "transfer"), ("lifelong", "single"),
                                                       ("multi", "single"))
             if a in by_method and b in by_method]
    scan["comparisons"] = snr50_differences(scan, y, len(labels), pairs)
    return scan
