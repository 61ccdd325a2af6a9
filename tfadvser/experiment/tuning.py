"""The EWC lambda sweep of the paper's Fig. 3, through keras-tuner's own extension point.

`LambdaTuner` is a `keras_tuner.Tuner` whose `run_trial` trains one lifelong sequence with
the trial's lambda and reports the objective: the mean adversarial UAR on the *dev* split
over all defences of the sequence, for the attacker after the last task (lower = stronger,
declared as "min"). Trials continue from the shared first-task attacker: tasks are stored
by what they depend on, so the first task is trained once for all trials.

Everything lives under `runs/NAME/tuning/<sequence>/`: keras-tuner's trial records (a rerun
resumes the search), TensorBoard HParams logs, and `best.json` with the chosen lambda and
every trial's per-defence dev UAR. A lambda whose trial failed is tried again by the next
rerun, up to `MAX_ATTEMPTS` failed trials; `best.json` lists it with its error and attempts.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import keras_tuner as kt
import tensorflow as tf

from tfadvser.attack import regularisers
from tfadvser.attack.tasks import attacker_suffix, first_task_trained, generator_path, sweep_label
from tfadvser.attack.training import train_attacker
from tfadvser.config import LAMBDA_SEARCHES, AttackerConfig, Profile, resolve
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.defence.victims import load_defence
from tfadvser.errors import TfadvserError
from tfadvser.experiment.protocol import choose_lambda, lambda_objective
from tfadvser.evaluation.scoring import (EVAL_BATCH, classification_scores, labels_of, perturb,
                                         predictions)
from tfadvser.runtime import distribute
from tfadvser.runtime.files import write_json
from tfadvser.runtime.inference import GeneratorSlot

OBJECTIVE = "mean_dev_adversarial_uar"
_COMPLETED, _FAILED = kt.engine.trial.TrialStatus.COMPLETED, kt.engine.trial.TrialStatus.FAILED
_FINISHED = (_COMPLETED, _FAILED)
MAX_ATTEMPTS = 2  # failed trials of one lambda, over reruns, before it is given up


class LambdaGridOracle(kt.Oracle):
    """The grid search: every requested lambda once, whatever keras-tuner persisted.

    keras-tuner's GridSearchOracle walks its grid through a linked list of trial ids that it
    keeps in memory only: after a process is killed during a trial, the resumed search dies
    with a KeyError, and the run after that stops with part of the grid. Here the next value
    is derived from the trials on disk: the first lambda that has no finished trial, none
    running and none queued for a retry (keras-tuner re-runs a killed trial itself). A rerun
    with another grid runs the values that are new.

    A lambda whose trials all failed is run again by a later `tune` (not by the one that saw
    it fail: the process may be what failed) until it has failed `MAX_ATTEMPTS` times.
    """

    def __init__(self, lambdas: Sequence[float], objective, **kwargs):
        self.lambdas = sorted({float(lam) for lam in lambdas})
        self.failed_here: set[float] = set()  # lambdas whose trial failed in this process
        # Failures are counted per lambda here; keras-tuner's count of consecutive failed
        # trials (which survives reruns) would stop the search with a RuntimeError.
        kwargs.setdefault("max_consecutive_failed_trials", None)
        super().__init__(objective=objective, hyperparameters=self._space(),
                         max_trials=len(self.lambdas), **kwargs)

    def _space(self) -> kt.HyperParameters:
        hp = kt.HyperParameters()
        hp.Choice("lambda", self.lambdas)
        return hp

    def failures(self) -> Counter:
        """lambda -> its failed trials, over every run of this project."""
        return Counter(t.hyperparameters.values.get("lambda") for t in self.trials.values()
                       if t.status == _FAILED)

    def pending(self) -> list[float]:
        waiting = set(self._retry_queue) | {t.trial_id for t in self.ongoing_trials.values()}
        claimed = {trial.hyperparameters.values.get("lambda") for trial in self.trials.values()
                   if trial.status == _COMPLETED or trial.trial_id in waiting}
        claimed |= {lam for lam, n in self.failures().items() if n >= MAX_ATTEMPTS}
        return [lam for lam in self.lambdas if lam not in claimed | self.failed_here]

    def end_trial(self, trial):
        super().end_trial(trial)
        ended = self.trials[trial.trial_id]
        if ended.status == _FAILED:
            self.failed_here.add(ended.hyperparameters.values.get("lambda"))

    def populate_space(self, trial_id):
        pending = self.pending()
        if pending:
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": {"lambda": pending[0]}}
        if self.ongoing_trials:
            return {"status": kt.engine.trial.TrialStatus.IDLE, "values": None}
        return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}

    def create_trial(self, tuner_id):
        # keras-tuner stops at max_trials counted over every trial it ever created, so a
        # trial left "RUNNING" by a killed process that it never retries would use one up.
        self.max_trials = max(len(self.lambdas), len(self.trials) + (1 if self.pending() else 0))
        return super().create_trial(tuner_id)

    def set_state(self, state):
        super().set_state(state)
        self.hyperparameters = self._space()  # this run's grid, not the one persisted

    def reload(self):
        super().reload()
        # keras-tuner saves its state before it lets go of a finished trial, so a process
        # killed before the next save would have that finished trial run again.
        self._retry_queue = [t for t in self._retry_queue if self.trials[t].status not in _FINISHED]


def tuning_dir(run_dir, sequence: Sequence[str], config: AttackerConfig,
               regulariser: str = "ewc") -> Path:
    """`runs/NAME/tuning/[<regulariser>-]<sequence><attacker suffix>/` (e.g.
    `cnn4-vgg16-resnet50-eps0.008-snr30`, `-seedN` for seed N > 0: `tasks.attacker_suffix`;
    the regulariser named when it is not EWC): one lambda sweep's keras-tuner project."""
    prefix = "" if regulariser == "ewc" else f"{regulariser}-"
    return Path(run_dir) / "tuning" / (prefix + "-".join(sequence) + attacker_suffix(config))


class LambdaTuner(kt.Tuner):
    """keras-tuner's `Tuner` whose trial trains one lifelong sequence at the trial's lambda
    and reports the mean adversarial dev UAR over the sequence's defences (minimised)."""

    def __init__(self, data_dir, run_dir, sequence: Sequence[str], profile: Profile, seed: int,
                 regulariser: str = "ewc", **kwargs):
        super().__init__(**kwargs)
        self.regulariser = regulariser
        self.data_dir, self.run_dir, self.sequence = data_dir, Path(run_dir), list(sequence)
        self.profile, self.seed = profile, seed
        data = load_data(data_dir)
        self.labels = data.labels
        self.dev = list(make_dataset(data, "dev", EVAL_BATCH))
        self.dev_labels = labels_of(self.dev)
        self.defences = {d: load_defence(run_dir, d, data) for d in self.sequence}
        self.generators = GeneratorSlot()

    def run_trial(self, trial, *args, **kwargs):
        lam = float(trial.hyperparameters.get("lambda"))
        record = train_attacker(self.data_dir, self.run_dir, "lifelong", self.sequence, self.profile,
                                strength=lam, verbose=0, seed=self.seed, regulariser=self.regulariser)
        generator = self.generators.load(generator_path(self.run_dir, record["tasks"][-1]))
        perturbed = perturb(generator, self.dev)
        per_defence = {}
        for name, defence in self.defences.items():
            per_defence[f"dev_adversarial_uar_{name}"] = classification_scores(
                self.dev_labels, predictions(defence, perturbed), self.labels)["uar"]
        objective = lambda_objective(per_defence)
        if not math.isfinite(objective):
            raise kt.errors.FailedTrialError(f"lambda {lam:g}: the objective came out {objective}")
        self._log_hparams(trial.trial_id, lam, {OBJECTIVE: objective, **per_defence})
        return {OBJECTIVE: objective, **per_defence}

    def _log_hparams(self, trial_id: str, lam: float, metrics: dict) -> None:
        from tensorboard.plugins.hparams import api as hparams

        log_dir = Path(self.project_dir) / "hparams" / f"trial_{trial_id}"
        with tf.summary.create_file_writer(str(log_dir)).as_default():
            hparams.hparams({"lambda": lam, "sequence": ",".join(self.sequence)}, trial_id=trial_id)
            for name, value in metrics.items():
                tf.summary.scalar(name, value, step=1)

    # Trials train attackers through `train_attacker`, which stores them itself.
    def save_model(self, trial_id, model, step=0):
        pass

    def load_model(self, trial):
        return None


def tune(data_dir, run_dir, sequence: Sequence[str], profile: Profile,
         lambdas: Optional[Sequence[float]] = None, search: str = "grid",
         max_trials: Optional[int] = None, seed: int = 0, regulariser: str = "ewc") -> dict:
    """Sweep lambda (the `regulariser`'s strength, config.REGULARISERS) for one lifelong
    sequence; write and return `best.json`.

    Raises TfadvserError for a bad grid or search, an untrained first task, a grid the
    search stopped short of, or when no trial completed (naming each lambda's error)."""
    if search not in LAMBDA_SEARCHES:
        raise TfadvserError(f"unknown search {search!r}; choose one of {', '.join(LAMBDA_SEARCHES)}")
    plugin = regularisers.get(regulariser)
    lambdas = list(lambdas if lambdas is not None else plugin.strength_grid(profile.attacker))
    if not lambdas or any(not (lam > 0 and math.isfinite(lam)) for lam in lambdas):
        raise TfadvserError(f"the lambda grid must hold positive numbers, got {lambdas}")
    if len(sequence) < 2:
        raise TfadvserError("a lifelong sequence needs at least two defences")
    run_dir = distribute.worker_run_dir(run_dir)
    if not first_task_trained(data_dir, run_dir, sequence, profile, seed):
        raise TfadvserError(
            f"the first-task attacker of {','.join(sequence)} (seed {seed}) is not trained yet: run "
            f"`tfadvser train attacker --method single --defences {sequence[0]} --out {run_dir} ...` first")
    objective = kt.Objective(OBJECTIVE, direction="min")
    if search == "grid":
        oracle = LambdaGridOracle(lambdas, objective)
    else:
        hp = kt.HyperParameters()
        hp.Float("lambda", min(lambdas), max(lambdas), sampling="log")
        oracle = kt.oracles.RandomSearchOracle(objective=objective, hyperparameters=hp,
                                               max_trials=max_trials or len(lambdas), seed=seed)
    config = resolve(profile, seed=seed)
    out = tuning_dir(run_dir, sequence, config, regulariser)
    tuner = LambdaTuner(data_dir, run_dir, sequence, profile, seed, regulariser, oracle=oracle,
                        directory=str(out.parent), project_name=out.name, overwrite=False)
    tuner.search()
    trials = []
    for trial in tuner.oracle.trials.values():
        metrics = {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics}
        trials.append({"trial": trial.trial_id, "lambda": trial.hyperparameters.values.get("lambda"),
                       "status": trial.status, "metrics": metrics})
        if trial.status == _FAILED:
            trials[-1]["error"] = _last_line(trial.message)
    if search == "grid":
        trials = _one_per_lambda(trials, oracle.lambdas)
        missing = [lam for lam in oracle.lambdas if lam not in {t["lambda"] for t in trials}]
        if missing:
            raise TfadvserError(f"the search stopped without lambda {', '.join(f'{m:g}' for m in missing)}; "
                                f"rerun to resume it ({out})")
        for trial in trials:
            if trial["status"] == _FAILED:
                trial["attempts"] = oracle.failures()[trial["lambda"]]
    done = [t for t in trials if t["metrics"].get(OBJECTIVE) is not None]
    if not done:
        failed = "; ".join(f"lambda {t['lambda']:g}: {t.get('error', 'no result')}"
                           + (f" ({t['attempts']} of {MAX_ATTEMPTS} attempts)" if "attempts" in t else "")
                           for t in sorted(trials, key=lambda t: t["lambda"]))
        retry = (search == "grid" and any(t.get("attempts", MAX_ATTEMPTS) < MAX_ATTEMPTS for t in trials))
        raise TfadvserError(f"every trial of {out} failed ({failed}); "
                            + ("rerun to retry" if retry else "see the trial folders there"))
    chosen = choose_lambda({t["lambda"]: t["metrics"][OBJECTIVE] for t in done})
    best = next(t for t in done if t["lambda"] == chosen)
    result = {"sequence": list(sequence), "seed": seed, "regulariser": regulariser,
              "sweep": sweep_label(sequence, config, regulariser),
              "objective": OBJECTIVE, "direction": "min", "rule": "protocol.lambda_objective",
              "lambda": best["lambda"], "best_objective": best["metrics"][OBJECTIVE],
              "trials": sorted(trials, key=lambda t: t["lambda"])}
    write_json(out / "best.json", result)
    return result


def _last_line(message) -> str:
    """The last line of a failed trial's message (keras-tuner stores the traceback)."""
    lines = [line for line in str(message or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def _one_per_lambda(trials: list[dict], lambdas: Sequence[float]) -> list[dict]:
    """The finished trial of each requested lambda (a completed one over a failed one, the
    latest of equals); trials of values outside the grid and unfinished ones are left out."""
    rank = {kt.engine.trial.TrialStatus.COMPLETED: 1, kt.engine.trial.TrialStatus.FAILED: 0}
    chosen = {}
    for trial in sorted(trials, key=lambda t: int(t["trial"])):
        if trial["lambda"] not in lambdas or trial["status"] not in rank:
            continue
        best = chosen.get(trial["lambda"])
        if best is None or rank[trial["status"]] >= rank[best["status"]]:
            chosen[trial["lambda"]] = trial
    return list(chosen.values())

