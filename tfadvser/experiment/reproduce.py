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

from tfadvser.runtime import distribute
from tfadvser.attack.training import train_attacker
from tfadvser.config import Profile
from tfadvser.defence.training import train_defence
from tfadvser.defence.models import DEFENCES
from tfadvser.errors import TfadvserError
from tfadvser.experiment.report import CLOCKWISE, COUNTER, table1, write_outputs
from tfadvser.experiment.evaluate import evaluate_run, figure2
from tfadvser.experiment.tuning import tune


# The single-task attackers are the first tasks of the transfer and lifelong sequences
# (clockwise starts at CNN-4, counter-clockwise at ResNet-50), so they are trained first.
FIRST_TASKS = (("single", ("cnn4",)), ("single", ("resnet50",)))
OTHER_SEQUENCES = (("transfer", CLOCKWISE), ("transfer", COUNTER), ("multi", ("cnn4", "vgg16")),
                   ("multi", ("resnet50", "vgg16")), ("multi", CLOCKWISE))


def reproduce(data_dir, run_dir, profile: Profile, seeds: int = 1,
              lambdas: Optional[Sequence[float]] = None, verbose: int = 0,
              log: Callable[[str], None] = print) -> dict:
    if seeds < 1:
        raise TfadvserError(f"--seeds must be at least 1, got {seeds}")
    lambdas = tuple(lambdas or profile.attacker.lambdas)
    if not lambdas or any(not lam > 0 for lam in lambdas):
        raise TfadvserError(f"the lambda grid must hold positive values, got {list(lambdas)}")
    started = time.time()
    run_dir = distribute.worker_run_dir(run_dir)
    for name in DEFENCES:
        t = time.time()
        results = train_defence(data_dir, name, profile, run_dir, verbose=verbose)
        log(f"defence {name}: test UAR {results['test']['uar']:.3f} ({time.time() - t:.0f} s)")
    for seed in range(seeds):
        for method, defences in FIRST_TASKS + OTHER_SEQUENCES[:2]:
            _train(data_dir, run_dir, method, defences, profile, seed, verbose, log)
        for sequence in (CLOCKWISE, COUNTER):
            t = time.time()
            best = tune(data_dir, run_dir, sequence, profile, lambdas=lambdas, seed=seed)
            log(f"lambda sweep (seed {seed}) {'-'.join(sequence)}: best {best['lambda']:g} "
                f"({time.time() - t:.0f} s)")
        for method, defences in OTHER_SEQUENCES[2:]:
            _train(data_dir, run_dir, method, defences, profile, seed, verbose, log)
    t = time.time()
    results = evaluate_run(run_dir, data_dir)
    fig2 = figure2(run_dir, data_dir, results, table1(results))
    written = write_outputs(run_dir, results, fig2)
    log(f"evaluation ({time.time() - t:.0f} s); total {time.time() - started:.0f} s")
    return {"report": Path(written["dir"]) / "report.md", **written}


def _train(data_dir, run_dir, method, defences, profile, seed, verbose, log) -> None:
    t = time.time()
    record = train_attacker(data_dir, run_dir, method, list(defences), profile, verbose=verbose,
                            seed=seed)
    log(f"attacker (seed {seed}) {record['label']} ({time.time() - t:.0f} s)")
