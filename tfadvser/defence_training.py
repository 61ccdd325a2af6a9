"""Training the defences with plain compile/fit, and loading them frozen for the attacks.

Output of one defence, `runs/NAME/defences/<model>/`:
  model.keras    the weights with the best dev UAR, without optimizer state
  config.json    profile, defence config, data fingerprint and labels
  results.json   dev and test UAR, accuracy, per-class recall, confusion matrices; written
                 last, so its presence means the defence is complete
  logs/          TensorBoard: loss, accuracy, UAR per epoch (train and validation = dev),
                 the resolved config as text, the dev confusion matrix as an image
  backup/        BackupAndRestore state while training; an interrupted run resumes from it
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfadvser.config import Profile
from tfadvser.dataset import feature_config_of, load_metadata, make_dataset
from tfadvser.defences import DEFENCES, build_defence
from tfadvser.errors import TfadvserError
from tfadvser.evaluation import labels_of, predictions
from tfadvser.figures import confusion_png
from tfadvser.metrics import (UnweightedAverageRecall, confusion_matrix, recall_by_label,
                              uar_from_confusion)
from tfadvser.runs import bind_run, read_json, write_json

MODEL_FILE, CONFIG_FILE, RESULTS_FILE = "model.keras", "config.json", "results.json"
EVAL_BATCH = 64


def defence_dir(run_dir, name: str) -> Path:
    return Path(run_dir) / "defences" / name


def predict_labels(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, argmax predictions) over a dataset of (x, y) batches, inference mode."""
    batches = list(dataset)
    return labels_of(batches), predictions(model, batches)


def score(y_true: np.ndarray, y_pred: np.ndarray, labels) -> dict:
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    return {"uar": uar_from_confusion(matrix), "accuracy": float(np.mean(y_true == y_pred)),
            "clips": int(len(y_true)),
            "recall": recall_by_label(matrix, labels),
            "confusion": matrix.tolist()}


class _KeepBest(keras.callbacks.Callback):
    """Keep the weights of the epoch with the best dev UAR; survives a resume, because the
    best score so far is stored beside the weights."""

    def __init__(self, directory: Path):
        super().__init__()
        self.weights = directory / "best.weights.h5"
        self.record = directory / "best.json"

    def on_epoch_end(self, epoch, logs=None):
        uar = float(logs["val_uar"])
        best = read_json(self.record)["val_uar"] if self.record.exists() else -1.0
        if uar > best:
            self.model.save_weights(self.weights, overwrite=True)
            write_json(self.record, {"epoch": epoch + 1, "val_uar": uar})


class _ConfusionImage(keras.callbacks.Callback):
    """The dev confusion matrix of every epoch as a TensorBoard image."""

    def __init__(self, dataset, labels, log_dir: Path):
        super().__init__()
        self.dataset, self.labels = dataset, labels
        self.writer = tf.summary.create_file_writer(str(log_dir / "confusion"))

    def on_epoch_end(self, epoch, logs=None):
        matrix = confusion_matrix(*predict_labels(self.model, self.dataset), len(self.labels))
        png = confusion_png(matrix, self.labels, f"dev, epoch {epoch + 1}")
        with self.writer.as_default():
            tf.summary.image("dev_confusion", tf.image.decode_png(png)[None], step=epoch + 1)
        self.writer.flush()


def train_defence(data_dir, name: str, profile: Profile, run_dir, verbose: int = 1) -> dict:
    """Train one defence into `run_dir/defences/<name>` (or reuse a finished one with the
    same config); return its results."""
    if name not in DEFENCES:
        raise TfadvserError(f"unknown defence {name!r}; choose one of {', '.join(DEFENCES)}")
    metadata = load_metadata(data_dir)
    bind_run(run_dir, data_dir, metadata, profile)
    config = profile.defence
    out = defence_dir(run_dir, name)
    record = {"model": name, "profile": profile.name, "defence": dataclasses.asdict(config),
              "data_fingerprint": metadata["fingerprint"], "labels": metadata["labels"],
              "feature_config": metadata["feature_config"]}
    if (out / RESULTS_FILE).exists():
        if read_json(out / CONFIG_FILE) == record:
            return read_json(out / RESULTS_FILE)
        shutil.rmtree(out)  # same run and data (bind_run checked), other settings: redo
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG_FILE, record)

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    labels = metadata["labels"]
    features = feature_config_of(metadata)
    train = make_dataset(data_dir, "train", config.batch_size, shuffle=True, seed=config.seed,
                         repeat=True)
    dev = make_dataset(data_dir, "dev", EVAL_BATCH)
    model = build_defence(name, len(labels), config.width, features.shape)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, config.decay_every, config.decay_rate, staircase=True)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  # the model outputs log-probabilities; softmax(log_softmax(z)) = softmax(z),
                  # so from_logits=True gives exactly the NLL of the original
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                           UnweightedAverageRecall(len(labels))])
    logs = out / "logs"
    with tf.summary.create_file_writer(str(logs / "config")).as_default():
        tf.summary.text("config", "```\n" + json.dumps(record, indent=2) + "\n```", step=0)
    with warnings.catch_warnings():
        # Keras warns "input ran out of data" each time the (finite) dev set is exhausted.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        model.fit(train, validation_data=dev, epochs=config.epochs,
                  steps_per_epoch=config.steps_per_epoch, verbose=verbose,
                  callbacks=[keras.callbacks.BackupAndRestore(str(out / "backup")),
                             _KeepBest(out),
                             keras.callbacks.TensorBoard(str(logs)),
                             _ConfusionImage(dev, labels, logs)])

    model.load_weights(out / "best.weights.h5")
    best = read_json(out / "best.json")
    results = {"model": name, "profile": profile.name, "best_epoch": best["epoch"],
               "parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
               "seconds": round(time.time() - started, 1)}
    for split in ("dev", "test"):
        results[split] = score(*predict_labels(model, make_dataset(data_dir, split, EVAL_BATCH)),
                               labels)
    with tf.summary.create_file_writer(str(logs / "confusion")).as_default():
        for split in ("dev", "test"):
            png = confusion_png(np.array(results[split]["confusion"]), labels,
                                f"{name} best epoch, {split}")
            tf.summary.image(f"best_{split}_confusion", tf.image.decode_png(png)[None], step=0)
    # A model without optimizer state: the defences are only ever used for inference.
    clean = build_defence(name, len(labels), config.width, features.shape)
    clean.set_weights(model.get_weights())
    tmp = out / f".{MODEL_FILE}.tmp.keras"
    clean.save(tmp)
    tmp.replace(out / MODEL_FILE)
    write_json(out / RESULTS_FILE, results)
    return results


def load_defence(run_dir, name: str, metadata: dict | None = None) -> keras.Model:
    """A trained defence, frozen (`trainable=False`): callers run it with training=False.

    With `metadata` (of the data about to be used), refuse a defence trained on other data.
    """
    out = defence_dir(run_dir, name)
    if not (out / RESULTS_FILE).exists():
        raise TfadvserError(f"defence {name!r} is not trained in {run_dir}: run "
                            f"`tfadvser train defence --model {name} --out {run_dir} ...` first")
    if metadata is not None:
        trained_on = read_json(out / CONFIG_FILE)["data_fingerprint"]
        if trained_on != metadata["fingerprint"]:
            raise TfadvserError(f"defence {name!r} in {run_dir} was trained on other data "
                                f"(fingerprint {trained_on[:12]}, this data {metadata['fingerprint'][:12]})")
    model = keras.saving.load_model(out / MODEL_FILE, compile=False)
    model.trainable = False
    return model
