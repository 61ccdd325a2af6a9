"""Adversarial training: a trained defence fine-tuned on a mix of clean and perturbed clips.

The standard defence against adversarial examples (Goodfellow et al. 2015, "Explaining and
harnessing adversarial examples", eq. 6: a weighted mix of the clean and adversarial loss;
Madry et al. 2018: perturbations from PGD against the model being trained). Each step
takes a training batch, perturbs the first round(ratio * B) clips with the given
perturbation function (called with the model *as it is now*, so PGD attacks the current
weights) and fits the mean NLL of the mixed batch.

What perturbs is the caller's choice (`experiment/hardening.py`: a trained attacker of the
run, or PGD at a budget): this layer does not import the attacks.

The hardened defence is a new defence of the run, `runs/NAME/defences/<base>-adv-<hash>/`,
with the same files as a trained one (model.keras, config.json with the recipe,
results.json with dev and test scores), so `load_defence` opens it and evaluation scores
every attacker against it. `<hash>` is 8 hex digits of the recipe (base weights, source of
the perturbations, ratio, steps, learning rate, seed).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfadvser.config import DEFENCE_NAMES
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import DataFolder
from tfadvser.defence.training import (CONFIG_FILE, MODEL_FILE, RESULTS_FILE, defence_dir,
                                       load_defence, weights_digest)
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.scoring import EVAL_BATCH, classification_scores, labels_of, predictions
from tfadvser.runtime.files import read_json, save_model, write_json

MARK = "-adv-"
# (model being trained, clean x [n, frames, mels], labels y [n]) -> eta [n, frames, mels]
Perturbation = Callable[[keras.Model, tf.Tensor, tf.Tensor], tf.Tensor]


def hardened_name(recipe: dict) -> str:
    """`<base>-adv-<8 hex digits of the recipe>`, e.g. `cnn4-adv-1f3a9c0e`."""
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]
    return f"{recipe['base']}{MARK}{digest}"


def hardened_defences(run_dir) -> list[str]:
    """Names of the finished hardened defences of a run, sorted."""
    return sorted(p.parent.name for p in Path(run_dir).glob(f"defences/*{MARK}*/{RESULTS_FILE}"))


def adversarial_count(batch: int, ratio: float) -> int:
    """Clips of a batch of `batch` that are perturbed at `ratio` (round half up)."""
    return int(np.floor(batch * ratio + 0.5))


def fine_tune(run_dir, base: str, data: DataFolder, perturbation: Perturbation, recipe: dict,
              log=print) -> dict:
    """Fine-tune the run's trained defence `base` (module doc) as `recipe` says and save it
    as a new defence; return its results (reused when that recipe was finished before).

    recipe: {"base", "source" (what perturbs, for the record and the name), "ratio" in
    [0, 1], "steps", "batch_size", "learning_rate", "seed"}; "base_weights" is added here.
    Raises TfadvserError for an unknown or untrained base, or a ratio outside [0, 1].
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
    if (out / RESULTS_FILE).exists() and read_json(out / CONFIG_FILE) == record:
        log(f"{name}: already hardened with this recipe, reused")
        return read_json(out / RESULTS_FILE)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG_FILE, record)

    started = time.time()
    keras.utils.set_random_seed(recipe["seed"])
    model = keras.saving.load_model(defence_dir(run_dir, base) / MODEL_FILE, compile=False)
    model.trainable = True
    optimizer = keras.optimizers.Adam(recipe["learning_rate"])

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            log_probs = model(x, training=True)
            loss = -tf.reduce_mean(tf.gather(log_probs, tf.cast(y, tf.int32), batch_dims=1))
        weights = model.trainable_weights
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return loss

    train = iter(make_dataset(data, "train", recipe["batch_size"], shuffle=True,
                              seed=recipe["seed"], repeat=True))
    losses = []
    for step in range(recipe["steps"]):
        x, y = next(train)
        n = adversarial_count(int(x.shape[0]), recipe["ratio"])
        if n:
            eta = tf.convert_to_tensor(perturbation(model, x[:n], y[:n]), tf.float32)
            x = tf.concat([x[:n] + eta, x[n:]], axis=0)
        losses.append(float(train_step(x, y)))
        if (step + 1) % max(recipe["steps"] // 5, 1) == 0:
            log(f"{name}: step {step + 1}/{recipe['steps']}, mixed-batch NLL "
                f"{np.mean(losses[-max(recipe['steps'] // 5, 1):]):.3f}")

    model.trainable = False
    results = {"model": name, "base": base, "hardening": recipe, "best_epoch": None,
               "final_train_metrics": {"loss": float(np.mean(losses[-10:]))},
               "parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
               "seconds": round(time.time() - started, 1)}
    for split in ("dev", "test"):
        batches = list(make_dataset(data, split, EVAL_BATCH))
        results[split] = classification_scores(labels_of(batches), predictions(model, batches),
                                                list(data.labels))
    save_model(model, out / MODEL_FILE)
    results["weights_sha256"] = weights_digest(model)
    write_json(out / RESULTS_FILE, results)
    return results
