"""`reproduce`: the paper's whole protocol on one corpus, resumable stage by stage.

Defences -> the attackers of Table 1, with the lambda sweep of the lifelong sequences done
by `tuning.tune` (keras-tuner) -> evaluation and report. Work is shared: single-task CNN-4
is task 0 of the clockwise sequences and single-task ResNet-50 of the counter-clockwise
ones; 2-defence results are the intermediate checkpoints of the 3-defence sequences; every
finished task or defence is reused when its settings match, so an interrupted reproduce
picks up where it stopped.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from tfadvser.attack.training import train_attacker
from tfadvser.config import DEFENCE_NAMES, Profile
from tfadvser.defence.training import train_defence
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.round_trip import AUDIO_CLIPS
from tfadvser.experiment.outputs import evaluate_and_report
from tfadvser.experiment.protocol import training_plan
from tfadvser.experiment.tuning import tune
from tfadvser.runtime import distribute


def reproduce(data_dir, run_dir, profile: Profile, seeds: int = 1,
              lambdas: Optional[Sequence[float]] = None, verbose: int = 0,
              log: Callable[[str], None] = print, baselines: bool = True,
              audio_clips: int = AUDIO_CLIPS, orders: Optional[Sequence[str]] = None,
              multi_pairs: Optional[bool] = None, scan: Optional[str] = "fast",
              controls: Optional[Sequence[tuple]] = None) -> dict:
    """Train and evaluate the whole protocol (`protocol.py`) for `orders` (config.ORDERS;
    default the profile's), with the 2-defence multi-task attackers when `multi_pairs`
    (default the profile's), under the current tf.distribute strategy; log one line per
    stage. `controls`: (model, seed) transfer controls to train (`train_defence`'s seed;
    default the profile's); `scan`: the evaluation's budget scan plan. Returns
    `evaluate_and_report`'s outputs with `report`, the path of report.md.
    Raises TfadvserError for `seeds` < 1, a lambda grid that is empty or holds a
    non-positive value, or an unknown order."""
    if seeds < 1:
        raise TfadvserError(f"--seeds must be at least 1, got {seeds}")
    lambdas = tuple(lambdas or profile.attacker.lambdas)
    if not lambdas or any(not lam > 0 for lam in lambdas):
        raise TfadvserError(f"the lambda grid must hold positive values, got {list(lambdas)}")
    try:
        plan = training_plan(tuple(orders or profile.orders),
                             profile.multi_pairs if multi_pairs is None else multi_pairs)
    except ValueError as exc:
        raise TfadvserError(str(exc)) from None
    started = time.time()
    run_dir = distribute.worker_run_dir(run_dir)
    for name in DEFENCE_NAMES:
        t = time.time()
        results = train_defence(data_dir, name, profile, run_dir, verbose=verbose)
        log(f"defence {name}: test UAR {results['test']['uar']:.3f} ({time.time() - t:.0f} s)")
    for name, seed in (profile.controls if controls is None else controls):
        t = time.time()
        results = train_defence(data_dir, name, profile, run_dir, verbose=verbose, seed=seed)
        log(f"control {name} seed {seed}: test UAR {results['test']['uar']:.3f} ({time.time() - t:.0f} s)")
    for seed in range(seeds):
        for method, defences in plan.first_tasks + plan.transfer:
            _train(data_dir, run_dir, method, defences, profile, seed, verbose, log)
        for sequence in plan.lifelong:
            t = time.time()
            best = tune(data_dir, run_dir, sequence, profile, lambdas=lambdas, seed=seed)
            log(f"lambda sweep (seed {seed}) {'-'.join(sequence)}: best {best['lambda']:g} "
                f"({time.time() - t:.0f} s)")
        for method, defences in plan.multi:
            _train(data_dir, run_dir, method, defences, profile, seed, verbose, log)
    t = time.time()
    written = evaluate_and_report(run_dir, data_dir, baselines=baselines, audio_clips=audio_clips,
                                  scan=scan)
    stages = written["results"].timing.seconds_by_stage
    log(f"evaluation ({time.time() - t:.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in stages.items())
        + f"); total {time.time() - started:.0f} s")
    return {"report": Path(written["dir"]) / "report.md", **written}


def _train(data_dir, run_dir, method, defences, profile, seed, verbose, log) -> None:
    t = time.time()
    record = train_attacker(data_dir, run_dir, method, list(defences), profile, verbose=verbose,
                            seed=seed)
    log(f"attacker (seed {seed}) {record['label']} ({time.time() - t:.0f} s)")
