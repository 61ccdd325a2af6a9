"""The one training loop behind all four learning methods.

A method (`methods.py`) turns a defence list into stages; this module trains them in order.
Each trained task is stored under a key that hashes everything its weights depend on (the
parent task's key, its defences, steps, the attacker settings, lambda, the data), so a task
that two methods share is trained once: single-task CNN-4 is task 0 of the clockwise
transfer and lifelong sequences, and a 3-defence sequence contains the 2-defence one.

    runs/NAME/attackers/tasks/<key>/      one trained task
        generator.keras                   the attacker after the task
        task.json                         what it was trained on and with, final metrics
        ewc-<mode>.npz                    Fisher + anchor, computed when a later EWC task needs them
        logs/ backup/                     TensorBoard; BackupAndRestore while training
    runs/NAME/attackers/<label>/sequence.json
                                          a method's run: its tasks in order, by key
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfadvser.runtime import distribute
from tfadvser.attack.attacker import build_generator
from tfadvser.attack.cache import prepared_attacker
from tfadvser.runtime.backup import EpochBackup
from tfadvser.config import AttackerConfig, Profile
from tfadvser.data.dataset import feature_config_of, load_metadata, make_dataset
from tfadvser.defence.training import MODEL_FILE, defence_dir, load_defence
from tfadvser.defence.models import DEFENCES
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.scoring import labels_of, perturb, predictions, scores
from tfadvser.attack.ewc import estimate_fisher, load_ewc_term, save_ewc_term
from tfadvser.evaluation.figures import spectrogram_strip
from tfadvser.attack.methods import EWC_METHODS, METHODS, Stage
from tfadvser.runs import bind_run, write_json

GENERATOR_FILE, TASK_FILE, SEQUENCE_FILE = "generator.keras", "task.json", "sequence.json"

# Settings that change the trained weights of a task (the others only change logging).
_WEIGHT_SETTINGS = ("width", "batch_size", "alpha", "cw_reduction", "lr_schedule",
                    "learning_rate", "decay_every", "decay_rate", "seed")


def sequence_label(method: str, defences: Sequence[str], ewc_lambda: Optional[float],
                   seed: int) -> str:
    label = f"{method}-{'-'.join(defences)}"
    if method in EWC_METHODS:
        label += f"-lambda{ewc_lambda:g}"
    return label + (f"-seed{seed}" if seed else "")


def _task_key(parent: Optional[str], stage: Stage, ewc_lambda: float, config: AttackerConfig,
              fingerprint: str, defence_hashes: dict[str, str]) -> tuple[str, dict]:
    identity = {"parent": parent, "defences": list(stage.defences), "steps": stage.steps,
                "ewc_lambda": ewc_lambda if stage.ewc else 0.0, "data": fingerprint,
                # a retrained defence makes every attacker trained against it stale
                "defence_models": {d: defence_hashes[d] for d in stage.defences},
                "attacker": {k: getattr(config, k) for k in _WEIGHT_SETTINGS}}
    if stage.ewc:
        identity["ewc"] = {"fisher_mode": config.fisher_mode, "accumulate": config.ewc_accumulate}
        if config.fisher_clips is not None:
            identity["ewc"]["fisher_clips"] = config.fisher_clips
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return digest, identity


def _steps_per_epoch(steps: int, every: int) -> int:
    """The largest divisor of `steps` not above `every`: epochs then add up to `steps`."""
    return max(d for d in range(1, min(steps, every) + 1) if steps % d == 0)


class _Monitor(keras.callbacks.Callback):
    """Every epoch (= `monitor_every` steps): adversarial UAR and fooling rate on a fixed dev
    subset for every defence of the sequence, the learning rate, and x / eta / x'."""

    def __init__(self, generator, ctx: "_Context", defences: Sequence[str], log_dir: Path):
        super().__init__()
        self.generator, self.ctx, self.defences = generator, ctx, list(defences)
        self.writer = tf.summary.create_file_writer(str(log_dir / "monitor"))

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        batches = self.ctx.monitor_batches
        # The generator of a compiled attacker (attacker_cache): traced once for all its tasks.
        perturbed = perturb(self.generator, batches)  # once, for every defence
        names = [str(i) for i in range(self.ctx.n_classes)]
        with self.writer.as_default():
            lr = self.model.optimizer.learning_rate
            tf.summary.scalar("learning_rate", float(lr), step=step)
            for name in self.defences:
                result = scores(labels_of(batches), self.ctx.monitor_clean(name),
                                predictions(self.ctx.defences[name], perturbed), names)
                for metric in ("adversarial_uar", "clean_uar", "fooling_rate"):
                    tf.summary.scalar(f"dev_subset/{name}/{metric}", result[metric], step=step)
            x_adv, _, eta = perturbed[0]
            image = spectrogram_strip(np.asarray(batches[0][0][0]), np.asarray(eta[0]),
                                      np.asarray(x_adv[0]))
            tf.summary.image("spectrograms", image[None], step=step,
                             description="x' (top), eta and x (bottom) of the first clip")
        self.writer.flush()


class _Context:
    """What every task of one sequence shares: data, run, config and loaded defences."""

    def __init__(self, data_dir, run_dir, profile: Profile, config: AttackerConfig,
                 names: Sequence[str], verbose: int):
        self.data_dir, self.run_dir, self.config, self.verbose = data_dir, Path(run_dir), config, verbose
        self.metadata = load_metadata(data_dir)
        bind_run(run_dir, data_dir, self.metadata, profile)
        self.shape = feature_config_of(self.metadata).shape
        self.n_classes = len(self.metadata["labels"])
        self.defences = {name: load_defence(run_dir, name, self.metadata) for name in names}
        self.defence_hashes = {name: hashlib.sha256(
            (defence_dir(run_dir, name) / MODEL_FILE).read_bytes()).hexdigest()[:16] for name in names}
        monitor = make_dataset(data_dir, "dev", config.batch_size).unbatch().take(config.monitor_clips)
        self.monitor_batches = list(monitor.batch(config.batch_size))
        self._monitor_clean, self._weight_names = {}, None
        self.tasks_dir = self.run_dir / "attackers" / "tasks"

    def weight_names(self) -> list[str]:
        """The generator's trainable weights by path: what EWC terms are checked against."""
        if self._weight_names is None:
            self._weight_names = [w.path for w in
                                  build_generator(self.config.width, self.shape).trainable_weights]
        return self._weight_names

    def monitor_clean(self, defence: str) -> np.ndarray:
        """A defence's predictions on the clean monitor clips: the same for every task."""
        if defence not in self._monitor_clean:
            self._monitor_clean[defence] = predictions(self.defences[defence], self.monitor_batches)
        return self._monitor_clean[defence]

    def train_set(self, repeat: bool):
        return make_dataset(self.data_dir, "train", self.config.batch_size, shuffle=True,
                            seed=self.config.seed, repeat=repeat, drop_remainder=repeat)

    def fisher_set(self):
        """The training split, or its first `fisher_clips` clips (in the seeded order)."""
        data = self.train_set(repeat=False)
        if self.config.fisher_clips is None:
            return data
        return data.take(-(-self.config.fisher_clips // self.config.batch_size))


def _ewc_term(ctx: _Context, task_dir: Path, stage: Stage):
    """(Fisher, anchor) of a finished task, estimated on first use and cached beside it."""
    config = ctx.config
    limit = config.fisher_clips
    path = task_dir / (f"ewc-{config.fisher_mode}.npz" if limit is None
                       else f"ewc-{config.fisher_mode}-{limit}clips.npz")
    if not path.exists():
        defences = [ctx.defences[d] for d in stage.defences]
        weights = keras.saving.load_model(task_dir / GENERATOR_FILE, compile=False).get_weights()
        # The task's weights in the attacker compiled against its defences: the Fisher step
        # is traced once per generator, so once for every task that faces them.
        generator = prepared_attacker(defences, config, ctx.shape, weights, 0.0, []).generator
        fisher, clips = estimate_fisher(generator, defences, ctx.fisher_set(), config.alpha,
                                        config.cw_reduction, config.fisher_mode)
        anchor = [w.numpy() for w in generator.trainable_weights]
        save_ewc_term(path, fisher, anchor, ctx.weight_names(), clips, config.fisher_mode)
    return load_ewc_term(path, ctx.weight_names())


def _train_task(ctx: _Context, stage: Stage, key: str, identity: dict, parent_dir: Optional[Path],
                ewc_lambda: float, ewc_terms: list, sequence_defences: Sequence[str]) -> Path:
    task_dir = ctx.tasks_dir / key
    if (task_dir / TASK_FILE).exists():
        return task_dir
    config = ctx.config
    task_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    if parent_dir is None:
        start = build_generator(config.width, ctx.shape).get_weights()
    else:
        start = keras.saving.load_model(parent_dir / GENERATOR_FILE, compile=False).get_weights()
    attacker = prepared_attacker([ctx.defences[d] for d in stage.defences], config, ctx.shape,
                                 start, ewc_lambda, ewc_terms)
    generator = attacker.generator
    per_epoch = _steps_per_epoch(stage.steps, config.monitor_every)
    logs = task_dir / "logs"
    with tf.summary.create_file_writer(str(logs / "config")).as_default():
        tf.summary.text("task", "```\n" + json.dumps(identity, indent=2) + "\n```", step=0)
    monitor = _Monitor(generator, ctx, sequence_defences, logs)
    history = attacker.fit(
        ctx.train_set(repeat=True), epochs=stage.steps // per_epoch, steps_per_epoch=per_epoch,
        verbose=ctx.verbose,
        callbacks=[EpochBackup(str(task_dir / "backup")),
                   keras.callbacks.TensorBoard(str(logs)), monitor])
    tmp = task_dir / f".{GENERATOR_FILE}.tmp.keras"
    generator.save(tmp)
    tmp.replace(task_dir / GENERATOR_FILE)
    final = {name: float(values[-1]) for name, values in history.history.items()}
    write_json(task_dir / TASK_FILE, {**identity, "key": key, "final_train_metrics": final,
                                      "seconds": round(time.time() - started, 1)})
    return task_dir


def train_attacker(data_dir, run_dir, method: str, defences: Sequence[str], profile: Profile,
                   ewc_lambda: Optional[float] = None, verbose: int = 1,
                   **overrides) -> dict:
    """Train `method` over `defences` in order; return the sequence record.

    `overrides` replace fields of the profile's AttackerConfig (seed, lr_schedule, ...).
    Runs under the current tf.distribute strategy.
    """
    if method not in METHODS:
        raise TfadvserError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not defences:
        raise TfadvserError("the defence list is empty; name at least one of "
                            f"{', '.join(DEFENCES)}")
    unknown = [d for d in defences if d not in DEFENCES]
    if unknown:
        raise TfadvserError(f"unknown defence(s) {', '.join(unknown)}; choose from {', '.join(DEFENCES)}")
    if len(set(defences)) != len(defences):
        raise TfadvserError(f"a defence appears twice in {','.join(defences)}")
    if ewc_lambda is not None and method not in EWC_METHODS:
        raise TfadvserError(f"--lambda is the EWC weight, but {method} learning has no EWC "
                            f"(only {', '.join(EWC_METHODS)} does)")
    try:
        config = dataclasses.replace(profile.attacker, **overrides)
    except (TypeError, ValueError) as exc:
        raise TfadvserError(f"bad attacker setting: {exc}") from None
    if method in EWC_METHODS:
        ewc_lambda = config.default_lambda if ewc_lambda is None else ewc_lambda
        if not ewc_lambda > 0 or not math.isfinite(ewc_lambda):
            raise TfadvserError(f"--lambda must be a positive number, got {ewc_lambda}")
    stages = METHODS[method](list(defences), config)
    run_dir = distribute.worker_run_dir(run_dir)
    ctx = _Context(data_dir, run_dir, profile, config, defences, verbose)

    tasks, finished = [], []  # finished: (task dir, stage) in order
    parent_key, parent_dir = None, None
    for index, stage in enumerate(stages):
        terms = []
        if stage.ewc:
            sources = finished if config.ewc_accumulate else finished[-1:]
            terms = [_ewc_term(ctx, d, s) for d, s in sources]
        lam = ewc_lambda if stage.ewc else 0.0
        key, identity = _task_key(parent_key, stage, lam, config, ctx.metadata["fingerprint"],
                                  ctx.defence_hashes)
        task_dir = _train_task(ctx, stage, key, identity, parent_dir if stage.from_previous else None,
                               lam, terms, defences)
        finished.append((task_dir, stage))
        tasks.append({"index": index, "defences": list(stage.defences), "key": key,
                      "steps": stage.steps, "ewc_lambda": lam,
                      "path": str(task_dir.relative_to(ctx.run_dir))})
        parent_key, parent_dir = key, task_dir

    label = sequence_label(method, defences, ewc_lambda, config.seed)
    record = {"label": label, "method": method, "defences": list(defences),
              "ewc_lambda": ewc_lambda, "profile": profile.name,
              "attacker": dataclasses.asdict(config), "tasks": tasks}
    write_json(ctx.run_dir / "attackers" / label / SEQUENCE_FILE, record)
    return record


def generator_path(run_dir, task: dict) -> Path:
    path = Path(run_dir) / task["path"] / GENERATOR_FILE
    if not path.exists():
        raise TfadvserError(f"{path} not found: the attacker task was not trained to the end")
    return path


def load_generator(run_dir, task: dict) -> keras.Model:
    return keras.saving.load_model(generator_path(run_dir, task), compile=False)


def find_task(run_dir, spec: str) -> dict:
    """A trained attacker task from `LABEL[:INDEX]` (a sequence and task, default its last)
    or a task key."""
    run_dir = Path(run_dir)
    label, _, index = spec.partition(":")
    sequence_file = run_dir / "attackers" / label / SEQUENCE_FILE
    if sequence_file.exists():
        tasks = json.loads(sequence_file.read_text(encoding="utf-8"))["tasks"]
        try:
            return tasks[int(index) if index else -1]
        except (ValueError, IndexError):
            raise TfadvserError(f"{spec}: {label} has tasks 0..{len(tasks) - 1}") from None
    task_file = run_dir / "attackers" / "tasks" / spec / TASK_FILE
    if task_file.exists():
        task = json.loads(task_file.read_text(encoding="utf-8"))
        return {"key": spec, "defences": task["defences"], "path": str(task_file.parent.relative_to(run_dir))}
    labels = sorted(p.parent.name for p in run_dir.glob(f"attackers/*/{SEQUENCE_FILE}"))
    raise TfadvserError(f"no attacker {spec!r} in {run_dir}; trained sequences: "
                        f"{', '.join(labels) or 'none'} (use LABEL or LABEL:TASK)")


def first_task_trained(data_dir, run_dir, defences: Sequence[str], profile: Profile,
                       seed: int = 0) -> bool:
    """Whether task 0 of a transfer/lifelong sequence over `defences` exists already."""
    config = dataclasses.replace(profile.attacker, seed=seed)
    run_dir = distribute.worker_run_dir(run_dir)
    ctx = _Context(data_dir, run_dir, profile, config, list(defences[:1]), verbose=0)
    stage = METHODS["transfer"](list(defences), config)[0]
    key, _ = _task_key(None, stage, 0.0, config, ctx.metadata["fingerprint"], ctx.defence_hashes)
    return (ctx.tasks_dir / key / TASK_FILE).exists()
