"""Adversarial training: a trained defence fine-tuned on a mix of clean and perturbed clips.

The standard defence against adversarial examples (Goodfellow et al. 2015, "Explaining and
harnessing adversarial examples", eq. 6: a weighted mix of the clean and adversarial loss;
Madry et al. 2018: perturbations from PGD against the model being trained). Each step
takes a training batch, perturbs the first round(ratio * B) clips with the given
perturbation function (called with the model *as it is now*, so PGD attacks the current
weights) and fits the mean NLL of the mixed batch.

The fine-tuning is the defence trainer's own `compile`/`fit` (`training.fit_defence`: dev
UAR every epoch, the best epoch's weights kept, TensorBoard, an epoch backup that an
interrupted hardening resumes from). Why a small `Model` subclass that perturbs inside its
train step rather than a `tf.data` map: PGD must see the weights of this very step, and a
map runs ahead of training in its own prefetching pipeline; so the subclass perturbs the
batch, then hands it to the defence trainer's unchanged step. The perturbation is Python
(ART's PGD, a loaded generator), called through `tf.py_function` with the optimizer's step
count, which a resumed fit restores: the same step gets the same random start.

What perturbs is the caller's choice (`experiment/hardening.py`: a trained attacker of the
run, or PGD at a budget): this layer does not import the attacks.

The hardened defence is a new defence of the run, `runs/NAME/defences/<base>-adv-<hash>/`,
with the same files as a trained one (model.keras, config.json with the recipe,
results.json with dev and test scores, logs/), so the victim loader opens it and evaluation
scores every attacker against it. `<hash>` is 8 hex digits of the recipe (base weights,
source of the perturbations, ratio, steps, batch size, learning rate, seed).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from tfadvser.config import DEFENCE_NAMES
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import DataFolder
from tfadvser.defence.training import (CONFIG_FILE, MODEL_FILE, RESULTS_FILE, _GlobalBatchTrainer,
                                       defence_dir, fit_defence, split_scores)
from tfadvser.defence.victims import HARDENED_MARK, load_defence, weights_digest
from tfadvser.errors import TfadvserError
from tfadvser.runtime.backup import resumed_epoch
from tfadvser.runtime.files import read_json, save_model, write_json

# (model being trained, clean x [n, frames, mels], labels y [n], training step from 0)
#   -> eta [n, frames, mels]; the step lets a random attack draw the same start on a resume.
Perturbation = Callable[[keras.Model, tf.Tensor, tf.Tensor, int], np.ndarray]


def hardened_name(recipe: dict) -> str:
    """`<base>-adv-<8 hex digits of the recipe>`, e.g. `cnn4-adv-1f3a9c0e`."""
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]
    return f"{recipe['base']}{HARDENED_MARK}{digest}"


def adversarial_count(batch: int, ratio: float) -> int:
    """Clips of a batch of `batch` that are perturbed at `ratio` (round half up)."""
    return int(np.floor(batch * ratio + 0.5))


def epoch_steps(steps: int, every: Optional[int]) -> int:
    """Steps per epoch of a hardening of `steps` steps: the largest divisor of `steps` not
    above `every` (the profile's defence epoch), so that epochs add up to `steps`; all of
    them in one epoch when `every` is None."""
    every = steps if every is None else every
    return max(d for d in range(1, min(steps, every) + 1) if steps % d == 0)


class _HardeningTrainer(_GlobalBatchTrainer):
    """The defence trainer whose step first replaces the batch's first
    `adversarial_count(B, ratio)` clips by their perturbed copies (module doc)."""

    def __init__(self, net: keras.Model, n_classes: int, perturbation: Perturbation, ratio: float):
        super().__init__(net, n_classes)
        self.perturbation, self.ratio = perturbation, float(ratio)

    def _perturb(self, x, y, step):
        return tf.convert_to_tensor(self.perturbation(self.net, x, y, int(step)), tf.float32)

    def train_step(self, data):
        x, y = data
        # As `adversarial_count`, in float64 so that the rounding is the same.
        n = tf.cast(tf.floor(tf.cast(tf.shape(x)[0], tf.float64) * self.ratio + 0.5), tf.int32)

        def perturbed():
            eta = tf.py_function(self._perturb, [x[:n], y[:n], self.optimizer.iterations],
                                 tf.float32)
            return tf.concat([x[:n] + tf.reshape(eta, tf.shape(x[:n])), x[n:]], axis=0)

        x = tf.cond(n > 0, perturbed, lambda: x)
        return super().train_step((x, y))


def fine_tune(run_dir, base: str, data: DataFolder, perturbation: Perturbation, recipe: dict,
              log=print, steps_per_epoch: Optional[int] = None, verbose: int = 0) -> dict:
    """Fine-tune the run's trained defence `base` (module doc) as `recipe` says and save it
    as a new defence; return its results (reused when that recipe was finished before, resumed
    from its last complete epoch when it was interrupted).

    recipe: {"base", "source" (what perturbs, for the record and the name), "ratio" in
    [0, 1], "steps", "batch_size", "learning_rate", "seed"}; "base_weights" is added here.
    `steps_per_epoch`: how often the dev UAR is checked (the best epoch is kept) and a
    backup written (`epoch_steps`; default: one epoch). Raises TfadvserError for an
    unknown or untrained base, or a ratio outside [0, 1].
    """
    if base not in DEFENCE_NAMES:
        raise TfadvserError(f"cannot harden {base!r}: choose one of the run's defences "
                            f"{', '.join(DEFENCE_NAMES)}")
    if not 0.0 <= recipe["ratio"] <= 1.0:
        raise TfadvserError(f"adversarial ratio {recipe['ratio']} is not in [0, 1]")
    frozen = load_defence(run_dir, base, data)
    recipe = {**recipe, "base": base, "base_weights": weights_digest(frozen)}
    name = hardened_name(recipe)
    out = defence_dir(run_dir, name)
    record = {"model": base, "hardening": recipe, "data_fingerprint": data.fingerprint,
              "labels": list(data.labels), "feature_config": data.feature_config.to_dict()}
    if (out / CONFIG_FILE).exists() and read_json(out / CONFIG_FILE) != record:
        shutil.rmtree(out)  # not this recipe's: its backup must not be resumed
    if (out / RESULTS_FILE).exists():
        log(f"{name}: already hardened with this recipe, reused")
        return read_json(out / RESULTS_FILE)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG_FILE, record)

    started = time.time()
    keras.utils.set_random_seed(recipe["seed"])
    net = keras.saving.load_model(defence_dir(run_dir, base) / MODEL_FILE, compile=False)
    net.trainable = True
    every = epoch_steps(recipe["steps"], steps_per_epoch)
    model = _HardeningTrainer(net, data.n_classes, perturbation, recipe["ratio"])
    # No XLA: the perturbation is Python (tf.py_function).
    model.compile(optimizer=keras.optimizers.Adam(recipe["learning_rate"]), jit_compile=False)
    train = make_dataset(data, "train", recipe["batch_size"], shuffle=True, seed=recipe["seed"],
                         repeat=True).skip(resumed_epoch(out / "backup") * every)
    history, best = fit_defence(model, data, out, record, train, recipe["steps"] // every, every,
                                verbose)
    parameters = int(sum(np.prod(w.shape) for w in net.trainable_weights))
    net.trainable = False
    results = {"model": name, "base": base, "hardening": recipe, "best_epoch": best["epoch"],
               "final_train_metrics": history, "parameters": parameters,
               "seconds": round(time.time() - started, 1),
               **split_scores(net, data, out / "logs", name)}
    save_model(net, out / MODEL_FILE)
    results["weights_sha256"] = weights_digest(net)
    write_json(out / RESULTS_FILE, results)
    return results
