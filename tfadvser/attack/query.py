"""Query-based black-box attacks: the victim answers class probabilities (score-based) or
only its label (decision-based), nothing else, and every query it answers is counted.

Threat model. The paper's "black box" is transfer: the attacker never touches the victim.
A red-teamer of a deployed SER service can usually *query* it. These attacks judge a
victim by success at a query budget, on standardised log-Mel batches x [B, 373, 64] (the
input every defence of a run takes) and at the product's budget: every perturbation is
put through `budget.project` (L∞ clip, then the per-clip SNR floor), the function every
other attack of the product uses.

- A victim is a *predict function*: numpy x [B, frames, n_mels] float32 -> class
  probabilities [B, classes] (`CountingVictim` wraps it; a file, a callable and a TF
  Serving endpoint all reduce to one: `defence/external.py`, `serving/query_victim.py`).
- Success of a clip: the first query whose input is within the budget (its perturbation
  unchanged by `project`, see `within_budget`) and whose answer's arg-max is not the
  clip's label. The clean clip is the first query of every clip (queries count from 1);
  clips the victim already gets wrong are not attacked (success rates are over the clips
  it gets right). Repeated identical inputs of one clip are answered from a cache and not
  counted: the count is what was actually sent.
- `square_attack`: Square Attack, L∞ (Andriushchenko et al., ECCV 2020, Algorithm 1 with
  the paper's p-schedule and vertical-stripe start), score-based on the margin loss
  log p_y - max_{k != y} log p_k. Written here, not ART's `SquareAttack`: ART clips
  candidates to the L∞ ball only (the SNR floor cannot be applied inside its loop), has
  no starting-point argument (the learned prior), and counts iterations over the batch,
  not queries per clip.
- `hop_skip_jump`: HopSkipJump, L∞ (Chen et al., IEEE S&P 2020), decision-based: ART
  1.20.1's `HopSkipJump` through its `BlackBoxClassifier`, one clip at a time. HSJ walks
  from an adversarial point towards the clean clip and its queries are not bounded by the
  budget; a query counts as a success only when it is within the budget, and the point
  HSJ ends at is projected (`project`) and sent once more. Its start is found here
  (seeded; ART draws its own from an unseeded generator): uniform noise over the clip's
  range, or, with a prior, the prior's direction scaled up until the label flips.
- `noise_search`: the same-size random baseline: a fresh draw of `baselines.budget_noise`
  (±ε signs scaled onto the floor) per query.
- The learned attacker as a prior: `prior` (an eta [B, ...], e.g. G(x)) is projected
  onto the budget and is the first perturbation Square Attack queries (then improved)
  and the direction HSJ starts from.

`summarise` turns a `CountingVictim`'s log into success at each query budget, median
queries to success and their bootstrap intervals (`evaluation.statistics`).
"""
from __future__ import annotations

import hashlib
import math
import time
from typing import Callable, Optional, Sequence

import numpy as np

from tfadvser.attack.baselines import art_import, budget_noise
from tfadvser.attack.budget import project
from tfadvser.config import QUERY_ATTACKS, Budget
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.metrics import mel_snr_db
from tfadvser.evaluation.statistics import CONFIDENCE, RESAMPLES, class_balanced_rate

QUERY_BUDGETS = (10, 100, 1000)  # success is reported at each (a curve)
ATTACKS = QUERY_ATTACKS
# Square Attack's initial fraction of the input a square covers: the paper's value for
# L∞ on ImageNet (its Section 4); on a 373 x 64 log-Mel a 35 x 35 square at the start.
SQUARE_P_INIT = 0.05
# A perturbation HSJ found exactly on the SNR floor must not be refused for float
# rounding; `project` aims 1e-3 dB above the floor, so its outputs always pass.
SNR_TOLERANCE_DB = 1e-4
SQUARE_REDRAWS = 10  # squares drawn per candidate before one that changes eta is given up
SQUARE_ITERATION_FACTOR = 2  # iterations at most, per query of the budget
HSJ_INIT_TRIES = 100  # random starts tried before HSJ gives up on a clip (ART's init_size)
HSJ_INIT_EVAL = 100  # HSJ's first gradient estimate's queries (ART's default)
CACHE_SIZE = 64  # identical inputs of one clip answered without a query, per clip


class QueryBudgetExhausted(Exception):
    """Raised inside an attack when a clip has used its query budget (never escapes)."""


def _digest(array: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(array, np.float32).tobytes(), digest_size=16).digest()


class CountingVictim:
    """A predict-only victim, the clips under attack and the log of every query sent.

    predict: numpy float32 [n, frames, n_mels] (standardised log-Mel) -> probabilities
    [n, classes]. x: clean clips [N, frames, n_mels]; y: int labels [N]; budget, mean,
    std: what `project` needs; max_queries: the query budget per clip; batch_size: the
    largest batch one call to `predict` gets (bigger requests are split).

    After the attack: `queries[i]` (sent for clip i), `success_query[i]` (the count at
    the first query within the budget that the victim got wrong; 0 when none),
    `success_eta[i]` (that query's perturbation), `clean_correct[i]`.
    Raises TfadvserError (naming `name`) when the victim answers a shape other than
    [n, n_classes] or non-finite values.
    """

    def __init__(self, predict: Callable, x, y, budget: Budget, mean, std, max_queries: int,
                 n_classes: int, batch_size: int = 64, name: str = "victim"):
        if max_queries < 1:
            raise TfadvserError(f"the query budget must be at least 1, got {max_queries}")
        self.predict_fn, self.name = predict, name
        self.x = np.asarray(x, np.float32)
        self.y = np.asarray(y, int)
        self.budget, self.mean, self.std = budget, mean, std
        self.max_queries, self.n_classes, self.batch_size = int(max_queries), int(n_classes), batch_size
        n = len(self.x)
        self.queries = np.zeros(n, int)
        self.success_query = np.zeros(n, int)
        self.success_eta: list[Optional[np.ndarray]] = [None] * n
        self.clean_correct = np.zeros(n, bool)
        self._cache: list[dict] = [{} for _ in range(n)]
        self._closest: list[Optional[tuple[float, np.ndarray]]] = [None] * n
        self.wall_seconds = 0.0

    # -- the one place queries are sent ----------------------------------------------------

    def _predict(self, batch: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(batch), self.batch_size):
            part = batch[start:start + self.batch_size]
            out = np.asarray(self.predict_fn(part), np.float64)
            if out.shape != (len(part), self.n_classes):
                raise TfadvserError(f"{self.name}: answered shape {list(out.shape)} for a batch of "
                                    f"{len(part)}; expected [{len(part)}, {self.n_classes}] "
                                    "(one probability per class)")
            if not np.all(np.isfinite(out)):
                raise TfadvserError(f"{self.name}: answered non-finite scores")
            outputs.append(out)
        return np.concatenate(outputs)

    def query(self, rows: Sequence[int], inputs, partial: bool = False) -> np.ndarray:
        """Probabilities [len(rows), classes] for inputs [len(rows), frames, n_mels], row k
        a candidate for clip rows[k]. Inputs a clip's budget cannot pay for: with
        `partial`, the rows that fit are sent and QueryBudgetExhausted is raised after
        logging them; without, QueryBudgetExhausted is raised before anything is sent."""
        rows = np.asarray(rows, int)
        inputs = np.asarray(inputs, np.float32)
        answers = np.zeros((len(rows), self.n_classes))
        send, keys = [], []
        left = {int(r): self.max_queries - self.queries[r] for r in np.unique(rows)}
        short = False
        repeats, pending = [], {}
        for k, row in enumerate(rows):
            key = _digest(inputs[k])
            cached = self._cache[row].get(key)
            if cached is not None:
                answers[k] = cached
                continue
            if (row, key) in pending:  # the same input twice in one request: sent once
                repeats.append((k, pending[(row, key)]))
                continue
            if left[row] <= 0:
                short = True
                if not partial:
                    raise QueryBudgetExhausted(int(row))
                continue
            left[row] -= 1
            pending[(row, key)] = k
            send.append(k)
            keys.append(key)
        if send:
            start = time.perf_counter()
            sent = self._predict(inputs[send])
            self.wall_seconds += time.perf_counter() - start
            for k, key, probs in zip(send, keys, sent):
                row = rows[k]
                answers[k] = probs
                self.queries[row] += 1
                cache = self._cache[row]
                if len(cache) >= CACHE_SIZE:
                    cache.pop(next(iter(cache)))
                cache[key] = probs
                self._record(row, inputs[k], probs)
        for k, first in repeats:
            answers[k] = answers[first]
        if short:
            raise QueryBudgetExhausted(int(rows[0]))
        return answers

    def _record(self, row: int, candidate: np.ndarray, probs: np.ndarray) -> None:
        wrong = int(np.argmax(probs)) != self.y[row]
        if self.queries[row] == 1 and np.array_equal(candidate, self.x[row]):
            self.clean_correct[row] = not wrong
            return
        if not wrong or self.success_query[row]:
            return
        eta = candidate - self.x[row]
        distance = float(np.max(np.abs(eta)))
        if self._closest[row] is None or distance < self._closest[row][0]:
            self._closest[row] = (distance, candidate.copy())
        if within_budget(self.x[row:row + 1], eta[None], self.budget, self.mean, self.std)[0]:
            self.success_query[row] = self.queries[row]
            self.success_eta[row] = eta

    # -- helpers for the attacks ----------------------------------------------------------

    def check_clean(self) -> np.ndarray:
        """Query every clean clip once (its query 1); the indices of clips the victim gets
        right, the ones attacked."""
        todo = [i for i in range(len(self.x)) if self.queries[i] == 0]
        if todo:
            self.query(todo, self.x[todo])
        return np.flatnonzero(self.clean_correct)

    def left(self, row: int) -> int:
        return int(self.max_queries - self.queries[row])

    def done(self, row: int) -> bool:
        return bool(self.success_query[row]) or self.left(row) <= 0

    def closest_adversarial(self, row: int) -> Optional[np.ndarray]:
        """The input nearest to clip `row` in L∞ among its queries the victim got wrong."""
        found = self._closest[row]
        return None if found is None else found[1]


def within_budget(x, eta, budget: Budget, mean, std) -> np.ndarray:
    """Per clip, whether eta [B, ...] is within the budget `project` enforces: |eta| <=
    epsilon (to float32 rounding at x's magnitude) and, with a floor, its SNR (`metrics.mel_snr_db`, the
    reports' float64 measure) at least the floor less SNR_TOLERANCE_DB. bool [B]."""
    eta = np.asarray(eta, np.float32)
    axes = tuple(range(1, eta.ndim))
    fits = np.ones(len(eta), bool)
    if budget.epsilon is not None:
        # The victim saw float32 x + eta; the perturbation read back from it, (x + eta) - x,
        # is off by rounding at x's magnitude (a 0.032 step on a log-Mel of 3 comes back
        # as 0.03200006): a few units in the last place of the largest |x| are allowed.
        slack = 4 * np.finfo(np.float32).eps * (np.max(np.abs(np.asarray(x, np.float32)), axis=axes)
                                                + budget.epsilon)
        fits &= np.max(np.abs(eta), axis=axes) <= budget.epsilon + slack
    if budget.snr_db is not None:
        fits &= mel_snr_db(x, eta, mean, std) >= budget.snr_db - SNR_TOLERANCE_DB
    return fits


def _margin(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log p_y - max_{k != y} log p_k per row: negative when the label is wrong."""
    log_p = np.log(np.maximum(probs, 1e-30))
    true = log_p[np.arange(len(y)), y]
    other = log_p.copy()
    other[np.arange(len(y)), y] = -np.inf
    return true - other.max(axis=1)


def _p_selection(p_init: float, iteration: int, n_iterations: int) -> float:
    """Square Attack's schedule of the square's area fraction (the paper's, halving at
    fixed points of a 10 000-iteration run, rescaled to this run's length)."""
    it = int(iteration / max(n_iterations, 1) * 10000)
    for bound, divisor in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32),
                           (4000, 64), (6000, 128), (8000, 256)):
        if it <= bound:
            return p_init / divisor
    return p_init / 512


def square_attack(victim: CountingVictim, prior=None, p_init: float = SQUARE_P_INIT,
                  seed: int = 0) -> None:
    """Square Attack (L∞; module doc) on every clip the victim gets right, until it is
    fooled within the budget or its queries run out; the outcome is in `victim`'s log.
    prior: None or an eta [N, frames, n_mels] for all of victim.x (projected here), the
    starting perturbation instead of vertical stripes. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    rows = victim.check_clean()
    if not len(rows):
        return
    x, y, budget = victim.x[rows], victim.y[rows], victim.budget
    eps = budget.cap
    _, height, width = x.shape
    if prior is None:
        start = eps * rng.choice(np.array([-1.0, 1.0], np.float32), size=(len(rows), 1, width))
        start = np.broadcast_to(start, x.shape)
    else:
        start = np.asarray(prior, np.float32)[rows]
    eta = project(x, start, budget, victim.mean, victim.std).numpy()
    active = [k for k in range(len(rows)) if not victim.done(rows[k])]
    margin = np.full(len(rows), np.inf)
    if active:
        margin[active] = _margin(victim.query(rows[active], x[active] + eta[active]), y[active])
    # Iterations are counted per query of a clip; the bound stops a clip whose every
    # candidate comes back unchanged (a repeat is answered from the cache, not sent).
    for iteration in range(SQUARE_ITERATION_FACTOR * victim.max_queries):
        active = [k for k in range(len(rows)) if not victim.done(rows[k])]
        if not active:
            break
        p = _p_selection(p_init, int(np.mean(victim.queries[rows[active]])), victim.max_queries)
        side = int(min(max(round(math.sqrt(p * height * width)), 1), height - 1, width - 1))
        candidates = eta[active].copy()
        for j in range(len(active)):
            # as the paper: draw again while the square would leave eta as it is
            for _ in range(SQUARE_REDRAWS):
                top = rng.integers(0, height - side + 1)
                left = rng.integers(0, width - side + 1)
                value = eps * rng.choice([-1.0, 1.0])
                window = candidates[j, top:top + side, left:left + side]
                if np.any(window != value):
                    window[...] = value
                    break
        candidates = project(x[active], candidates, budget, victim.mean, victim.std).numpy()
        new_margin = _margin(victim.query(rows[active], x[active] + candidates), y[active])
        better = new_margin < margin[active]
        for j, k in enumerate(active):
            if better[j]:
                eta[k], margin[k] = candidates[j], new_margin[j]


def _art_hop_skip_jump():
    """ART's HopSkipJump and BlackBoxClassifier (`baselines.art_import`)."""
    (hsj,) = art_import("art.attacks.evasion", "HopSkipJump")
    (classifier,) = art_import("art.estimators.classification", "BlackBoxClassifier")
    return hsj, classifier


def _hsj_start(victim: CountingVictim, row: int, prior, rng, low: float, high: float):
    """An input the victim gets wrong, to start HSJ from (None if none was found): along
    the prior's direction at 1, 2, 4, ... times its size, then uniform noise over the
    clip's range [low, high] (HSJ's own start, seeded)."""
    x = victim.x[row]
    candidates = []
    if prior is not None:
        direction = project(x[None], np.asarray(prior, np.float32)[row][None], victim.budget,
                            victim.mean, victim.std).numpy()[0]
        if np.any(direction):
            candidates += [np.clip(x + 2.0 ** k * direction, low, high) for k in range(12)]
    candidates += [rng.uniform(low, high, size=x.shape).astype(np.float32)
                   for _ in range(HSJ_INIT_TRIES)]
    for candidate in candidates:
        if victim.left(row) <= 1:  # keep one query for the projected end point
            return None
        probs = victim.query([row], candidate[None])
        if int(np.argmax(probs[0])) != victim.y[row]:
            return candidate
    return None


def hop_skip_jump(victim: CountingVictim, prior=None, seed: int = 0) -> None:
    """HopSkipJump (L∞, ART's; module doc) on every clip the victim gets right, within
    its query budget less one query, which sends the projected end point. prior: None or
    an eta [N, frames, n_mels] (its direction starts the walk). Deterministic for a seed
    (ART's gradient estimate draws from NumPy's global generator, seeded here and
    restored)."""
    HopSkipJump, BlackBoxClassifier = _art_hop_skip_jump()
    rows = victim.check_clean()
    rng = np.random.default_rng(seed)
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        for row in rows:
            row = int(row)
            if victim.done(row):
                continue
            x = victim.x[row]
            low, high = float(x.min()), float(x.max())
            start = _hsj_start(victim, row, prior, rng, low, high)
            if start is None or victim.done(row):
                continue

            def predict(batch, row=row):
                # one query fewer than the budget: the last one sends the projected end point;
                # a clip fooled within the budget is done (ART would walk on)
                if victim.left(row) <= 1 or victim.done(row):
                    raise QueryBudgetExhausted(row)
                fits = max(victim.left(row) - 1, 0)
                probs = victim.query([row] * min(len(batch), fits), batch[:fits])
                if len(batch) > fits:
                    raise QueryBudgetExhausted(row)
                return probs

            classifier = BlackBoxClassifier(predict, x.shape, victim.n_classes,
                                            clip_values=(low, high))
            attack = HopSkipJump(classifier, batch_size=victim.batch_size, norm=np.inf,
                                 max_iter=10 ** 6, max_eval=10 ** 4, init_eval=HSJ_INIT_EVAL,
                                 init_size=HSJ_INIT_TRIES, verbose=False)
            try:
                end = attack.generate(x[None], x_adv_init=start[None].copy())[0]
            except QueryBudgetExhausted:
                end = victim.closest_adversarial(row)
            if victim.done(row) or end is None:
                continue
            eta = project(x[None], (end - x)[None], victim.budget, victim.mean, victim.std).numpy()
            try:
                victim.query([row], x[None] + eta)
            except QueryBudgetExhausted:
                pass
    finally:
        np.random.set_state(state)


def noise_search(victim: CountingVictim, seed: int = 0) -> None:
    """Random search at the budget: each query a fresh `baselines.budget_noise` draw
    (±ε signs scaled onto the SNR floor), until the clip is fooled or its queries run out."""
    rows = victim.check_clean()
    for step in range(victim.max_queries):
        active = [int(r) for r in rows if not victim.done(r)]
        if not active:
            break
        noise = budget_noise(victim.x[active], victim.budget, victim.mean, victim.std,
                             seed=seed * 1_000_003 + step)
        victim.query(active, victim.x[active] + noise)


ATTACK_FUNCTIONS = {"square": square_attack, "hsj": hop_skip_jump}


def run_attack(attack: str, victim: CountingVictim, prior=None, seed: int = 0) -> dict:
    """Run `attack` ("square", "hsj" or "noise"; noise takes no prior) on `victim` and
    return `summarise` of its log, with the wall time of the whole attack."""
    if attack not in ATTACKS:
        raise TfadvserError(f"unknown query attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    start = time.perf_counter()
    if attack == "noise":
        if prior is not None:
            raise TfadvserError("noise search takes no prior")
        noise_search(victim, seed)
    else:
        ATTACK_FUNCTIONS[attack](victim, prior=prior, seed=seed)
    return summarise(victim, time.perf_counter() - start)


def _queries_to_success(victim: CountingVictim, rows) -> np.ndarray:
    """Per attacked clip, the query count at its first success; inf where none."""
    found = victim.success_query[rows].astype(float)
    return np.where(found > 0, found, np.inf)


def median_interval(values, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                    seed: int = 0) -> tuple[float, float, float]:
    """(median, low, high) of values [N] (inf allowed: a clip never fooled), the interval a
    percentile bootstrap over clips (scipy.stats.bootstrap)."""
    from scipy import stats

    values = np.asarray(values, float)
    point = float(np.median(values))
    if len(values) < 2 or np.all(values == values[0]):
        return point, point, point
    # inf is not a number SciPy resamples; a value above every finite one stands for it
    big = (np.max(values[np.isfinite(values)], initial=0.0) + 1) * 10
    finite = np.where(np.isfinite(values), values, big)
    result = stats.bootstrap((finite,), np.median, n_resamples=resamples,
                             confidence_level=confidence, method="percentile",
                             random_state=np.random.default_rng(seed))
    low, high = (float(v) if v < big else math.inf for v in result.confidence_interval)
    return point, low, high


def summarise(victim: CountingVictim, wall_seconds: float,
              budgets: Sequence[int] = QUERY_BUDGETS) -> dict:
    """The outcome of an attack, JSON-ready: over the clips the victim got right,
    `success_at` {N: {"rate", "ci"}} (class-balanced: the mean over classes of each
    class's share of clips fooled within N queries, as UAR weighs classes) for each N of
    `budgets` up to the query budget, `median_queries` [point, low, high] (null = more than
    the budget), `queries_to_success` per clip (null = not fooled), `queries_sent`,
    `clean_correct`, `wall_seconds` (all) and `victim_seconds` (inside the predict
    function)."""
    rows = np.flatnonzero(victim.clean_correct)
    needed = _queries_to_success(victim, rows)
    success = {}
    for n in sorted(set(b for b in budgets if b <= victim.max_queries) | {victim.max_queries}):
        if len(rows):
            rate, low, high = class_balanced_rate((needed <= n).astype(float), victim.y[rows])
            success[str(n)] = {"rate": rate, "ci": [low, high]}
    median = median_interval(needed) if len(rows) else (math.inf,) * 3
    return {"clips": int(len(victim.x)), "attacked": int(len(rows)),
            "clean_correct": [bool(v) for v in victim.clean_correct],
            "max_queries": victim.max_queries, "success_at": success,
            "median_queries": [None if math.isinf(v) else v for v in median],
            "queries_to_success": [None if math.isinf(v) else int(v) for v in needed],
            "attacked_clips": [int(r) for r in rows],
            "queries_sent": int(victim.queries.sum()),
            "wall_seconds": float(wall_seconds), "victim_seconds": float(victim.wall_seconds)}


def paired_prior(without: dict, with_prior: dict, y, budgets: Sequence[int] = QUERY_BUDGETS) -> dict:
    """With vs without the prior on the same clips (two `summarise` results of the same
    victim, clips and budget): per N, the class-balanced success difference (with minus
    without) and its interval, resampling the clips' paired outcomes together; and how
    many clips needed fewer / more / as many queries with the prior."""
    if without["attacked_clips"] != with_prior["attacked_clips"]:
        raise TfadvserError("paired comparison needs the same attacked clips")
    y = np.asarray(y, int)[without["attacked_clips"]]
    a = np.array([math.inf if q is None else q for q in without["queries_to_success"]])
    b = np.array([math.inf if q is None else q for q in with_prior["queries_to_success"]])
    out = {"difference_at": {}, "fewer": int(np.sum(b < a)), "more": int(np.sum(b > a)),
           "same": int(np.sum(a == b))}
    for n in budgets:
        if str(n) in without["success_at"] and len(y):
            diff, low, high = class_balanced_rate((b <= n).astype(float) - (a <= n).astype(float), y)
            out["difference_at"][str(n)] = {"difference": diff, "ci": [low, high]}
    return out


def outcome_rate(fooled, y) -> dict:
    """{"rate", "ci"} for a one-shot attack (transfer, noise, PGD: 0 queries), fooled [N]
    bool over the clips the victim gets right, y their labels: the same class-balanced
    rate and interval as `summarise`'s (None for no clips)."""
    if not len(fooled):  # the victim got no clip right: nothing to fool
        return {"rate": None, "ci": [None, None]}
    rate, low, high = class_balanced_rate(np.asarray(fooled, float), np.asarray(y, int))
    return {"rate": rate, "ci": [low, high]}
