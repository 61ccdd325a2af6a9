"""`tfadvser harden`: harden a defence of a run with the run's attacks.

The perturbations come from a trained attacker of the run (`--attacker LABEL[:TASK]`, its
generator applied to the clean clips: fixed, it does not adapt to the hardened weights) or
from L-inf PGD at a budget on the standardised log-Mel (`--pgd-epsilon`, the standard
baseline, recomputed against the current weights every step: Madry et al. 2018). The
fine-tuning itself is `defence/hardening.py`.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np

from tfadvser.attack.baselines import pgd
from tfadvser.attack.tasks import find_task, load_generator
from tfadvser.config import Budget, Profile
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.defence.hardening import fine_tune
from tfadvser.defence.victims import load_defence
from tfadvser.evaluation.scoring import EVAL_BATCH, attack_scores, labels_of, predictions
from tfadvser.errors import TfadvserError
from tfadvser.runs import bind_run
from tfadvser.runtime.inference import inference

PGD_STEPS = 10


def harden(data_dir, run_dir, base: str, profile: Profile, attacker: Optional[str] = None,
           pgd_epsilon: Optional[float] = None, pgd_steps: int = PGD_STEPS, ratio: float = 0.5,
           steps: Optional[int] = None, learning_rate: Optional[float] = None, seed: int = 0,
           log=print, verbose: int = 0) -> dict:
    """Fine-tune the run's defence `base` on clean clips mixed at `ratio` with clips
    perturbed by `attacker` (a `find_task` spec) or by PGD at `pgd_epsilon` (exactly one of
    the two); `steps` (default: the profile's defence steps per epoch) at the profile's
    defence batch size and `learning_rate` (default: a tenth of the profile's), in epochs
    of at most the profile's defence steps per epoch (`hardening.epoch_steps`). Returns
    the hardened defence's results, with its name under "model".

    Raises TfadvserError when neither or both sources are given, or for an unknown attacker.
    """
    if (attacker is None) == (pgd_epsilon is None):
        raise TfadvserError("adversarial training needs exactly one source of perturbations: "
                            "--attacker LABEL[:TASK] or --pgd-epsilon EPS")
    data = load_data(data_dir)
    # Checked, never created: hardening needs the run's trained `base`, which wrote run.json.
    bind_run(run_dir, data, profile, create=False)
    config = profile.defence.for_model(base)
    if attacker is not None:
        task = find_task(run_dir, attacker)
        generator = load_generator(run_dir, task)  # held here: `inference` keeps a weak reference
        source = {"attacker": task["key"]}

        def perturbation(model, x, y, step):
            return inference(generator)(x)
    else:
        if not pgd_epsilon > 0:
            raise TfadvserError(f"--pgd-epsilon must be positive, got {pgd_epsilon}")
        source = {"pgd": {"epsilon": pgd_epsilon, "steps": pgd_steps}}
        budget = Budget(epsilon=pgd_epsilon)

        def perturbation(model, x, y, step):
            # A new random start per step, reproducible from the recipe's seed and the step
            # (which a resumed hardening restores).
            return pgd(inference(model), x, y, budget, data.mean, data.std, steps=pgd_steps,
                       seed=seed * 100003 + step)
    recipe = {"source": source, "ratio": ratio, "steps": steps or config.steps_per_epoch,
              "batch_size": config.batch_size,
              "learning_rate": learning_rate or config.learning_rate / 10, "seed": seed}
    log(f"hardening {base} ({source}) at ratio {ratio} for {recipe['steps']} steps")
    results = fine_tune(run_dir, base, data, perturbation, recipe, log=log,
                        steps_per_epoch=config.steps_per_epoch, verbose=verbose)
    log(f"{results['model']}: dev UAR {results['dev']['uar']:.3f}, test UAR "
        f"{results['test']['uar']:.3f}, {results['seconds']:.0f} s")
    return results


def pgd_robustness(data_dir, run_dir, names: Sequence[str], epsilon: float,
                   steps: int = PGD_STEPS, split: str = "test", seed: int = 0) -> dict:
    """White-box L-inf PGD (`attack.baselines.pgd`, budget `epsilon`, `steps` iterations)
    against each of the run's defences `names` on `split`: per defence the
    `scoring.attack_scores` of its own PGD examples and the seconds it took. The number a
    hardened defence is judged by, next to its unhardened base."""
    data = load_data(data_dir)
    batches = list(make_dataset(data, split, EVAL_BATCH))
    y = labels_of(batches)
    budget = Budget(epsilon=epsilon)
    out = {}
    for name in names:
        started = time.time()
        model = load_defence(run_dir, name, data)
        forward = inference(model)
        adversarial = [(np.asarray(x) + pgd(forward, x, labels, budget, data.mean, data.std,
                                            steps=steps, seed=seed + i), labels)
                       for i, (x, labels) in enumerate(batches)]
        out[name] = {**attack_scores(y, predictions(model, batches), predictions(model, adversarial),
                                     list(data.labels)),
                     "epsilon": epsilon, "steps": steps, "split": split,
                     "seconds": round(time.time() - started, 1)}
    return out
