"""Training the defences with compile/fit (loading them, with every other model under
attack, is `victims.py`).

The network is fitted through a thin wrapper whose train step reduces the NLL over the
global batch, so that the same code trains on one device or under a tf.distribute strategy.

Output of one defence, `runs/NAME/defences/<model>/`:
  model.keras    the weights with the best dev UAR, without optimizer state
  config.json    profile, defence config, data fingerprint and labels
  results.json   dev and test UAR, accuracy, per-class recall, confusion matrices, the
                 last epoch's training metrics; written last, so its presence means the
                 defence is complete
  logs/          TensorBoard: loss, accuracy, UAR per epoch (train and validation = dev),
                 the resolved config as text, the dev confusion matrix as an image
  backup/        BackupAndRestore state while training; an interrupted run resumes from it
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfadvser.runtime import distribute
from tfadvser.runtime.backup import EpochBackup, resumed_epoch
from tfadvser.config import DefenceConfig, Profile
from tfadvser.data.dataset import make_dataset
from tfadvser.data.diversity import Diversity, diversify
from tfadvser.data.folder import DataFolder, load_data
from tfadvser.config import DEFENCE_NAMES
from tfadvser.defence.models import build_defence
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.scoring import EVAL_BATCH, classification_scores, labels_of, predictions
from tfadvser.evaluation.figures import confusion_png
from tfadvser.runtime.inference import inference
from tfadvser.evaluation.metrics import UnweightedAverageRecall, confusion_matrix, uar_from_confusion
from tfadvser.runs import bind_run
from tfadvser.runtime.files import atomic_path, read_json, save_model, write_json

MODEL_FILE, CONFIG_FILE, RESULTS_FILE = "model.keras", "config.json", "results.json"


def defence_dir(run_dir, name: str) -> Path:
    """`runs/NAME/defences/<name>/`: where one trained defence lives."""
    return Path(run_dir) / "defences" / name


class _GlobalBatchTrainer(distribute.ReplicaConsistentModel, keras.Model):
    """Fits a defence with the mean NLL of the *global* batch.

    Keras sums the replicas' gradients, so each replica contributes its summed NLL divided
    by the global batch size; on one device this is the plain mean NLL (the original's
    `nll_loss` on its log-softmax output). Logged losses and metrics are global too.
    """

    def __init__(self, net: keras.Model, n_classes: int):
        super().__init__(name=f"{net.name}_trainer")
        self.net = net
        self.trackers = [keras.metrics.Mean(name="loss"), keras.metrics.Mean(name="accuracy"),
                         UnweightedAverageRecall(n_classes)]

    @property
    def metrics(self):
        return self.trackers

    def call(self, x, training=False):
        return self.net(x, training=training)

    def _loss(self, x, y, training: bool):
        log_probs = self(x, training=training)
        global_batch = distribute.global_batch_size(tf.shape(x)[0])
        nll = -tf.gather(log_probs, tf.cast(y, tf.int32), batch_dims=1)
        return log_probs, tf.reduce_sum(nll) / global_batch, global_batch

    def _update(self, y, log_probs, loss, global_batch):
        # Keras 3.5 mirrors metric variables without a cross-replica aggregation: every
        # replica adds the values of the whole global batch, so all copies agree.
        loss_tracker, accuracy, uar = self.trackers
        hits = tf.reduce_sum(tf.cast(tf.argmax(log_probs, axis=-1) == tf.cast(y, tf.int64),
                                     tf.float32))
        loss, hits = distribute.sum_over_replicas((loss, hits))
        loss_tracker.update_state(loss, sample_weight=global_batch)
        accuracy.update_state(hits / global_batch, sample_weight=global_batch)
        uar.update_state(y, log_probs)
        return self.step_logs({m.name: m.result() for m in self.trackers})

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            log_probs, loss, global_batch = self._loss(x, y, training=True)
        weights = self.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return self._update(y, log_probs, loss, global_batch)

    def test_step(self, data):
        x, y = data
        return self._update(y, *self._loss(x, y, training=False))


class _KeepBest(keras.callbacks.Callback):
    """Keep the weights of the epoch with the best dev UAR; survives a resume, because the
    best score so far is stored beside the weights. The weights file is named by its epoch
    and `best.json` names it, each written atomically, so a kill between the two writes
    leaves a consistent pair."""

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = directory
        self.record = directory / "best.json"

    def on_epoch_end(self, epoch, logs=None):
        uar = float(logs["val_uar"])
        best = read_json(self.record)["val_uar"] if self.record.exists() else -1.0
        if uar > best:
            name = f"best-epoch{epoch + 1}.weights.h5"
            with atomic_path(self.directory / name) as tmp:
                self.model.save_weights(str(tmp))
            write_json(self.record, {"epoch": epoch + 1, "val_uar": uar, "weights": name})
            for old in self.directory.glob("best-epoch*.weights.h5"):
                if old.name != name:
                    old.unlink()


class _DevScore(keras.callbacks.Callback):
    """Every epoch: dev loss, accuracy and UAR into the epoch's logs (as `val_*`, for the
    callbacks after this one, TensorBoard's validation curves and the history), and the dev
    confusion matrix as a TensorBoard image.

    This replaces fit's `validation_data`: Keras 3.5 cannot evaluate under a tf.distribute
    strategy when the last dev batch does not split evenly over the replicas (its symbolic
    build averages the first batch across replicas). Dev is small: one inference pass on
    the chief's device is cheap, and the same everywhere.
    """

    def __init__(self, dataset, labels, log_dir: Path):
        super().__init__()
        self.batches, self.labels = list(dataset), labels
        self.y = labels_of(self.batches)
        self.writer = tf.summary.create_file_writer(str(log_dir / "confusion"))

    def on_epoch_end(self, epoch, logs=None):
        forward = inference(self.model)
        log_probs = np.concatenate([forward(x) for x, _ in self.batches])
        predicted = np.argmax(log_probs, axis=-1)
        matrix = confusion_matrix(self.y, predicted, len(self.labels))
        if logs is not None:
            logs.update(val_loss=float(-np.mean(log_probs[np.arange(len(self.y)), self.y])),
                        val_accuracy=float(np.mean(predicted == self.y)),
                        val_uar=uar_from_confusion(matrix))
        png = confusion_png(matrix, self.labels, f"dev, epoch {epoch + 1}")
        with self.writer.as_default():
            tf.summary.image("dev_confusion", tf.image.decode_png(png)[None], step=epoch + 1)
        self.writer.flush()


# A transfer control: the same architecture and schedule trained with another seed, the
# easiest black-box target there is (issue 30). Stored as `<model>-seed<N>`.
CONTROL_MARK = "-seed"


def control_name(name: str, seed: int) -> str:
    """The folder name of `name` trained with `seed`, e.g. `cnn4-seed1`."""
    return f"{name}{CONTROL_MARK}{seed}"


def train_defence(data_dir, name: str, profile: Profile, run_dir, verbose: int = 1,
                  seed: Optional[int] = None) -> dict:
    """Train one defence into `run_dir/defences/<name>` (or reuse a finished one with the
    same config); return its results. Runs under the current tf.distribute strategy.
    `seed`: another seed than the profile's trains a transfer control into
    `defences/<name>-seed<seed>` (`control_name`), a target of every evaluation."""
    if name not in DEFENCE_NAMES:
        raise TfadvserError(f"unknown defence {name!r}; choose one of {', '.join(DEFENCE_NAMES)}")
    run_dir = distribute.worker_run_dir(run_dir)
    data = load_data(data_dir)
    bind_run(run_dir, data, profile)
    config = profile.defence.for_model(name)
    folder = name
    if seed is not None and seed != config.seed:
        config, folder = dataclasses.replace(config, seed=seed), control_name(name, seed)
    out = defence_dir(run_dir, folder)
    record = {"model": name, "profile": profile.name, "defence": config.record(),
              "data_fingerprint": data.fingerprint, "labels": list(data.labels),
              "feature_config": data.feature_config.to_dict()}
    if (out / RESULTS_FILE).exists():
        if read_json(out / CONFIG_FILE) == record:
            return read_json(out / RESULTS_FILE)
        shutil.rmtree(out)  # same run and data (bind_run checked), other settings: redo
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG_FILE, record)

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    labels = list(data.labels)
    shape = data.shape
    # A resumed fit skips the batches its finished epochs consumed (runtime/backup.py).
    train = spec_augmented(make_dataset(data, "train", config.batch_size, shuffle=True,
                                        seed=config.seed, repeat=True), config)
    train = train.skip(resumed_epoch(out / "backup") * config.steps_per_epoch)
    model = _GlobalBatchTrainer(build_defence(name, len(labels), config.width, shape),
                                len(labels))
    schedule = keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, config.decay_every, config.decay_rate, staircase=True)
    model.compile(optimizer=keras.optimizers.Adam(schedule))
    history, best = fit_defence(model, data, out, record, train, config.epochs,
                                config.steps_per_epoch, verbose)
    results = {"model": name, "profile": profile.name, "best_epoch": best["epoch"],
               "final_train_metrics": history,
               "parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
               "seconds": round(time.time() - started, 1),
               **split_scores(model, data, out / "logs", name)}
    # A model without optimizer state: the defences are only ever used for inference.
    clean = build_defence(name, len(labels), config.width, shape)
    clean.set_weights(model.net.get_weights())
    save_model(clean, out / MODEL_FILE)
    write_json(out / RESULTS_FILE, results)
    return results


def spec_augmented(train: tf.data.Dataset, config: DefenceConfig) -> tf.data.Dataset:
    """The training batches, each clip seen through a random SpecAugment view with probability
    `config.spec_augment` (time shift, time and frequency masks: `data/diversity.py`'s
    defaults), batch i's draw seeded by (config.seed, i): a resumed fit sees the same views."""
    if config.spec_augment == 0.0:
        return train
    settings = Diversity(probability=config.spec_augment)
    return train.enumerate().map(
        lambda i, batch: (diversify(batch[0], settings, tf.stack([tf.cast(config.seed, tf.int64), i])),
                          batch[1]),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def fit_defence(model: _GlobalBatchTrainer, data: DataFolder, out: Path, record: dict, train,
                epochs: int, steps_per_epoch: int, verbose: int) -> tuple[dict, dict]:
    """`model.fit` as every defence of a run is fitted (`train_defence`, and hardening in
    `defence/hardening.py`): dev scores every epoch, the best dev UAR's weights kept
    (`best.json` in `out`), TensorBoard under `out/logs` (with `record` as text), and the
    epoch backup in `out/backup` that an interrupted fit resumes from. `train` must already
    skip the batches of the epochs a backup holds (`resumed_epoch`). On return the model
    holds the best epoch's weights. Returns (the last epoch's training metrics, best.json)."""
    model(tf.zeros((1, *data.shape)))  # build it: BackupAndRestore restores into built models
    logs = out / "logs"
    with tf.summary.create_file_writer(str(logs / "config")).as_default():
        tf.summary.text("config", "```\n" + json.dumps(record, indent=2) + "\n```", step=0)
    history = model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=verbose,
                        # The backup comes last: a kill before it redoes the whole epoch.
                        callbacks=[_DevScore(make_dataset(data, "dev", EVAL_BATCH),
                                             list(data.labels), logs),
                                   _KeepBest(out), keras.callbacks.TensorBoard(str(logs)),
                                   EpochBackup(out / "backup")])
    best = read_json(out / "best.json")
    # best.json from before the weights file was named by epoch names none.
    model.load_weights(out / best.get("weights", "best.weights.h5"))
    return {k: float(v[-1]) for k, v in history.history.items() if v}, best


def split_scores(model: keras.Model, data: DataFolder, log_dir: Path, title: str) -> dict:
    """{"dev": ..., "test": ...}: `classification_scores` of `model` on the two splits, with
    their confusion matrices as TensorBoard images under `log_dir/confusion`."""
    labels, out = list(data.labels), {}
    for split in ("dev", "test"):
        batches = list(make_dataset(data, split, EVAL_BATCH))
        out[split] = classification_scores(labels_of(batches), predictions(model, batches), labels)
    with tf.summary.create_file_writer(str(log_dir / "confusion")).as_default():
        for split in ("dev", "test"):
            png = confusion_png(np.array(out[split]["confusion"]), labels,
                                f"{title} best epoch, {split}")
            tf.summary.image(f"best_{split}_confusion", tf.image.decode_png(png)[None], step=0)
    return out


def train_defences(data_dir, names, profile: Profile, run_dir, verbose: int = 1,
                   log=print, seed: Optional[int] = None) -> dict:
    """`train_defence` for each of `names` in turn, logging a line before and after each;
    returns {name: results}."""
    out = {}
    for name in names:
        folder = name if seed is None or seed == profile.defence.for_model(name).seed else control_name(name, seed)
        log(f"training {name} ({profile.name} profile) into {defence_dir(run_dir, folder)}")
        results = out[name] = train_defence(data_dir, name, profile, run_dir, verbose=verbose, seed=seed)
        log(f"{name}: dev UAR {results['dev']['uar']:.3f}, test UAR {results['test']['uar']:.3f} "
            f"(chance {1 / len(results['dev']['recall']):.3f}), best epoch "
            f"{results['best_epoch']}, {results['seconds']:.0f} s")
    return out
