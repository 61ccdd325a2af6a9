"""`reproduce`: the paper's whole protocol on one corpus, resumable stage by stage.

Defences -> the attackers of Table 1 -> the lambda sweep of the lifelong sequences ->
evaluation and report. Work is shared: single-task CNN-4 is task 0 of the clockwise
sequences and single-task ResNet-50 of the counter-clockwise ones; 2-defence results are
the intermediate checkpoints of the 3-defence sequences; every finished task or defence is
reused when its settings match, so an interrupted reproduce picks up where it stopped.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from tfadvser.attacker_training import train_attacker
from tfadvser.config import Profile
from tfadvser.defence_training import train_defence
from tfadvser.defences import DEFENCES
from tfadvser.errors import TfadvserError
from tfadvser.report import CLOCKWISE, COUNTER, write_outputs
from tfadvser.run_evaluation import evaluate_run, figure2


def attacker_plan(lambdas: Sequence[float]) -> list[tuple[str, tuple[str, ...], Optional[float]]]:
    """(method, defences, lambda) for every sequence Table 1 and Fig. 3 need, cheapest first."""
    plan = [("single", ("cnn4",), None), ("single", ("resnet50",), None),
            ("transfer", CLOCKWISE, None), ("transfer", COUNTER, None)]
    plan += [("lifelong", seq, lam) for seq in (CLOCKWISE, COUNTER) for lam in lambdas]
    plan += [("multi", ("cnn4", "vgg16"), None), ("multi", ("resnet50", "vgg16"), None),
             ("multi", CLOCKWISE, None)]
    return plan


def reproduce(data_dir, run_dir, profile: Profile, seeds: int = 1,
              lambdas: Optional[Sequence[float]] = None, verbose: int = 0,
              log: Callable[[str], None] = print) -> dict:
    if seeds < 1:
        raise TfadvserError(f"--seeds must be at least 1, got {seeds}")
    lambdas = tuple(lambdas or profile.attacker.lambdas)
    if not lambdas or any(not lam > 0 for lam in lambdas):
        raise TfadvserError(f"the lambda grid must hold positive values, got {list(lambdas)}")
    started = time.time()
    for name in DEFENCES:
        t = time.time()
        results = train_defence(data_dir, name, profile, run_dir, verbose=verbose)
        log(f"defence {name}: test UAR {results['test']['uar']:.3f} ({time.time() - t:.0f} s)")
    plan = attacker_plan(lambdas)
    for seed in range(seeds):
        for index, (method, defences, lam) in enumerate(plan, start=1):
            t = time.time()
            record = train_attacker(data_dir, run_dir, method, list(defences), profile,
                                    ewc_lambda=lam, verbose=verbose, seed=seed)
            log(f"attacker {index}/{len(plan)} (seed {seed}) {record['label']} "
                f"({time.time() - t:.0f} s)")
    t = time.time()
    results = evaluate_run(run_dir, data_dir)
    from tfadvser.report import table1

    fig2 = figure2(run_dir, data_dir, results, table1(results))
    written = write_outputs(run_dir, results, fig2)
    log(f"evaluation ({time.time() - t:.0f} s); total {time.time() - started:.0f} s")
    return {"report": Path(written["dir"]) / "report.md", **written}
