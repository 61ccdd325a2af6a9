"""The one training loop behind all four learning methods.

A method (`methods.py`) turns a defence list into stages; `train_attacker` trains them in
order, each as one `fit` of the compiled attacker (`cache.py`), and stores every finished
task under its key (`tasks.py`). Anchored (lifelong) stages add the term of a
continual-learning regulariser (`regularisers/`: EWC, the paper's, or another) built from
the tasks before them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfadvser.attack import ewc, regularisers
from tfadvser.attack.attacker import generator_for
from tfadvser.attack.budget import BudgetCurriculum
from tfadvser.attack.cache import discard, prepared_attacker
from tfadvser.attack.methods import ANCHORED_METHODS, METHODS, Stage
from tfadvser.attack.monitor import AttackMonitor
from tfadvser.attack.regularisers.base import UNANCHORED, Anchoring, Regulariser
from tfadvser.attack.round_trip import RoundTrip, with_waveforms
from tfadvser.attack.tasks import (GENERATOR_FILE, SEQUENCE_FILE, TASK_FILE, defence_hashes,
                                   sequence_label, task_key, tasks_dir)
from tfadvser.config import (DEFENCE_NAMES, LABEL_FREE_LOSSES, AttackerConfig, Budget, Profile,
                             resolve)
from tfadvser.data.attacker_data import AttackerData, attacker_data
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.data.rendering import corpus_waveform
from tfadvser.defence.victims import (VictimSpec, check_targets, check_victims, hardened_defences,
                                      load_defence, target_pin, training_targets)
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.scoring import predictions
from tfadvser.runs import bind_run
from tfadvser.runtime import distribute, memory
from tfadvser.runtime.backup import EpochBackup, resumed_epoch
from tfadvser.runtime.files import save_model, write_json


def checked_corpus(path, data_dir, config: AttackerConfig, method: str,
                   regulariser: str) -> AttackerData:
    """The attacker corpus at `path` (`attacker_data.attacker_data`'s checks), and that the
    attacker can train on it: labels for a loss that needs them, no audio round trip."""
    corpus = attacker_data(path, data_dir)
    where = f"--attacker-data {corpus.folder.path}"
    if config.round_trip:
        raise TfadvserError(f"{where}: the audio round trip reads the defences' own audio; train "
                            "it without --attacker-data")
    if not corpus.labelled:
        needing = [name for name in config.losses if name not in LABEL_FREE_LOSSES]
        if needing:
            raise TfadvserError(f"{where} is unlabelled, but the loss {'+'.join(needing)} needs "
                                f"emotion labels; use a label-free one ({', '.join(LABEL_FREE_LOSSES)}, "
                                "--loss feature-cos) or a labelled corpus")
        if method in ANCHORED_METHODS and regulariser in ("ewc", "online-ewc"):
            raise TfadvserError(f"{where} is unlabelled, but {regulariser}'s Fisher is that of the "
                                "C&W margin, which needs labels; use --regulariser mas, si or lwf")
    return corpus


def _steps_per_epoch(steps: int, every: int) -> int:
    """The largest divisor of `steps` not above `every`: epochs then add up to `steps`."""
    return max(d for d in range(1, min(steps, every) + 1) if steps % d == 0)


class _Context:
    """What every task of one sequence shares: data, run, config and loaded defences (the
    run's own and the user's models among `victims` that `names` names, `defence/victims.py`)."""

    def __init__(self, data_dir, run_dir, profile: Profile, config: AttackerConfig,
                 names: Sequence[str], verbose: int, victims: Sequence[VictimSpec] = (),
                 trust_code: bool = False, corpus: Optional[AttackerData] = None):
        self.run_dir, self.config, self.verbose = Path(run_dir), config, verbose
        self.data = load_data(data_dir)
        self.corpus = corpus  # the attacker's own corpus, or None: the defences' training split
        bind_run(run_dir, self.data, profile, create=False, attacker=True)  # an existing run's data and profile
        self.shape = self.data.shape
        own = [name for name in names if name in DEFENCE_NAMES]
        self.targets = training_targets(victims, self.data,
                                        DEFENCE_NAMES + tuple(hardened_defences(run_dir)), trust_code)
        loaded = {name: load_defence(run_dir, name, self.data) for name in own}
        bind_run(run_dir, self.data, profile, attacker=True)  # written once every input has passed
        self.defences = {name: loaded[name] if name in loaded else self.targets[name] for name in names}
        # A target's pin stands where a defence's file hash does: a changed model, new tasks.
        self.defence_hashes = {**defence_hashes(run_dir, own),
                               **{name: target_pin(v) for name, v in self.targets.items()}}
        monitor = make_dataset(self.data, "dev", config.batch_size).unbatch().take(config.monitor_clips)
        self.monitor_batches = list(monitor.batch(config.batch_size))
        self.monitor_clip = _first_clip(self.data)
        self._monitor_clean, self._weight_names = {}, None
        self.tasks_dir = tasks_dir(self.run_dir)
        self.round_trip = RoundTrip(self.data) if config.round_trip else None

    def weight_names(self) -> list[str]:
        """The generator's trainable weights by path: what stored importances are checked
        against."""
        if self._weight_names is None:
            self._weight_names = [w.path for w in
                                  generator_for(self.config, self.shape, self.data).trainable_weights]
        return self._weight_names

    def monitor_clean(self, defence: str) -> np.ndarray:
        """A defence's predictions on the clean monitor clips: the same for every task."""
        if defence not in self._monitor_clean:
            self._monitor_clean[defence] = predictions(self.defences[defence], self.monitor_batches)
        return self._monitor_clean[defence]

    def train_set(self, repeat: bool, audio: bool = False):
        """The seeded training batches; with `audio` (round-trip training) each batch also
        carries its clean waveforms (`round_trip.with_waveforms`). From the attacker's own
        corpus when it has one (`data/attacker_data.py`)."""
        if self.corpus is not None:
            return self.corpus.batches(self.config.batch_size, self.config.seed, repeat=repeat,
                                       drop_remainder=repeat)
        dataset = make_dataset(self.data, "train", self.config.batch_size, shuffle=True,
                               seed=self.config.seed, repeat=repeat, drop_remainder=repeat,
                               include_info=audio)
        return with_waveforms(dataset, self.data) if audio else dataset

    def fisher_set(self):
        """The training split, or its first `fisher_clips` clips (in the seeded order)."""
        # The shuffle's order follows TensorFlow's global seed as well as its own: set it as
        # `_train_task` does, or a process that starts with this Fisher (a rerun after a
        # kill, a lone `tune`) would estimate it on other batches.
        keras.utils.set_random_seed(self.config.seed)
        data = self.train_set(repeat=False)
        if self.config.fisher_clips is None:
            return data
        return data.take(-(-self.config.fisher_clips // self.config.batch_size))

    def fisher_term(self, task_dir: Path, stage: Stage):
        """(Fisher, anchor) of a finished task (`ewc.task_term`)."""
        config = self.config
        defences = [self.defences[d] for d in stage.defences]

        def generator_at_task():
            # The task's weights in the attacker compiled against its defences: the Fisher
            # step is traced once per generator, so once for every task that faces them.
            weights = keras.saving.load_model(task_dir / GENERATOR_FILE, compile=False).get_weights()
            return prepared_attacker(defences, config, self.shape, weights, data=self.data).generator

        return ewc.task_term(task_dir, self.weight_names(), defences, generator_at_task,
                             self.fisher_set, config.cw_weight, config.cw_reduction,
                             config.fisher_mode, config.fisher_clips)


def _first_clip(data) -> Optional[tuple]:
    """(waveform, std, config) of the first monitor clip for the audio dashboard; None when
    its audio is no longer where `prepare` read it."""
    first = next(iter(make_dataset(data, "dev", 1, include_info=True).take(1)))
    try:
        wave = corpus_waveform(data, first["path"].numpy()[0].decode())
    except OSError:
        return None
    return wave.astype(np.float32), data.std, data.feature_config


def _train_task(ctx: _Context, stage: Stage, key: str, identity: dict, parent_dir: Optional[Path],
                anchoring: Anchoring, sequence_defences: Sequence[str],
                regulariser: Regulariser, record: Optional[dict] = None) -> Path:
    task_dir = ctx.tasks_dir / key
    if (task_dir / TASK_FILE).exists():
        return task_dir
    config = ctx.config
    task_dir.mkdir(parents=True, exist_ok=True)
    started, peak_scope = time.time(), memory.reset_peak()
    keras.utils.set_random_seed(config.seed)
    if parent_dir is None:
        start = generator_for(config, ctx.shape, ctx.data).get_weights()
    else:
        start = keras.saving.load_model(parent_dir / GENERATOR_FILE, compile=False).get_weights()
    attacker = prepared_attacker([ctx.defences[d] for d in stage.defences], config, ctx.shape,
                                 start, anchoring, ctx.round_trip, ctx.data)
    generator = attacker.generator
    per_epoch = _steps_per_epoch(stage.steps, config.monitor_every)
    logs = task_dir / "logs"
    with tf.summary.create_file_writer(str(logs / "config")).as_default():
        tf.summary.text("task", "```\n" + json.dumps(identity, indent=2) + "\n```", step=0)
    # The generator of a compiled attacker (attack.cache): traced once for all its tasks.
    monitor = AttackMonitor(generator, ctx.monitor_batches, ctx.defences, ctx.monitor_clean,
                            ctx.data.n_classes, sequence_defences, logs, clip=ctx.monitor_clip)
    # The regulariser's own (SI's path integral, outside the compiled step).
    extra = regulariser.callbacks(ctx, task_dir, resumed_epoch(task_dir / "backup"))
    if config.curriculum > 1.0:  # the budget anneals over the first half (attack/budget.py)
        extra.append(BudgetCurriculum(generator.get_layer("eta"), config.curriculum, stage.steps // 2,
                                      resumed_epoch(task_dir / "backup") * per_epoch))
    try:
        history = attacker.fit(
            # A resumed task skips the batches its finished epochs consumed (runtime/backup.py).
            ctx.train_set(repeat=True, audio=config.round_trip).skip(
                resumed_epoch(task_dir / "backup") * per_epoch),
            epochs=stage.steps // per_epoch, steps_per_epoch=per_epoch,
            verbose=ctx.verbose,
            # The backup comes last: a kill before it redoes the whole epoch.
            callbacks=[keras.callbacks.TensorBoard(str(logs)), monitor, *extra,
                       EpochBackup(task_dir / "backup")])
    except BaseException:
        discard(attacker)  # its compiled step may be half-built: a retry compiles a new one
        raise
    save_model(generator, task_dir / GENERATOR_FILE)
    final = {name: float(values[-1]) for name, values in history.history.items()}
    write_json(task_dir / TASK_FILE, {**identity, "key": key, "final_train_metrics": final,
                                      "seconds": round(time.time() - started, 1),
                                      # runtime/memory.py: "span" = this task's own peak
                                      "peak_rss_mb": memory.peak_rss_mb(), "peak_rss_scope": peak_scope,
                                      **(record or {})})
    return task_dir


def train_attacker(data_dir, run_dir, method: str, defences: Sequence[str], profile: Profile,
                   strength: Optional[float] = None, verbose: int = 1,
                   regulariser: str = "ewc", victims: Sequence[VictimSpec] = (),
                   trust_code: bool = False, budget: Optional[Budget] = None,
                   attacker_data=None, **overrides) -> dict:
    """Train `method` over `defences` in order; return the sequence record (also written to
    `attackers/<label>/sequence.json`).

    `defences` may name the user's own models among `victims` (`defence/external.py`; Keras
    safe mode unless `trust_code`), trained against like the run's defences and pinned in
    the task keys and the record's "victims" (`defence/victims.py`); each of `victims` must
    be named in `defences` (`targets.check_targets`). Nothing is written before the inputs
    are checked and the models loaded.

    The attacker is `config.resolve(profile, budget, **overrides)`: the profile's
    AttackerConfig under `budget` (None: the profile's) with `overrides` (seed,
    lr_schedule, ...) replacing its fields. `regulariser`: what anchors lifelong tasks
    (config.REGULARISERS, `attack/regularisers/`; `ewc`, the paper's), weighted by
    `strength` (the command line's --lambda; default: the regulariser's). The record keeps
    it under "ewc_lambda", its name since EWC was the only regulariser.
    Runs under the current tf.distribute strategy. Finished tasks are reused. Raises
    TfadvserError for an unknown method, regulariser or defence, a repeated defence, a
    strength or regulariser given to a method that anchors no task, a non-positive
    strength, a bad attacker setting or a victim that cannot be a training target
    (`targets.training_targets`).

    `attacker_data`: a prepared folder of other speakers to train on instead of the
    defences' training split (`data/attacker_data.py`, which checks it); its fingerprint
    enters the task keys and `-adata<8 hex digits>` the label. An unlabelled one trains the
    label-free losses only (config.LABEL_FREE_LOSSES), and no EWC (its Fisher is of the C&W
    margin) and no audio round trip; TfadvserError otherwise.
    """
    if method not in METHODS:
        raise TfadvserError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not defences:
        raise TfadvserError("the defence list is empty; name at least one of "
                            f"{', '.join(DEFENCE_NAMES)}")
    unknown = [d for d in defences if d not in DEFENCE_NAMES and d not in {v.name for v in victims}]
    if unknown:
        raise TfadvserError(f"unknown defence(s) {', '.join(unknown)}; choose from {', '.join(DEFENCE_NAMES)} "
                            "or name your own model with --victim NAME=PATH")
    if len(set(defences)) != len(defences):
        raise TfadvserError(f"a defence appears twice in {','.join(defences)}")
    check_victims(victims, DEFENCE_NAMES)
    check_targets(victims, defences)
    plugin = regularisers.get(regulariser)
    if regulariser != "ewc" and method not in ANCHORED_METHODS:
        raise TfadvserError(f"--regulariser {regulariser} anchors lifelong tasks, but {method} "
                            f"learning has none (only {', '.join(ANCHORED_METHODS)} does)")
    if strength is not None and method not in ANCHORED_METHODS:
        raise TfadvserError(f"--lambda is the EWC (or --regulariser's) weight, but {method} learning "
                            f"has no EWC or other regulariser (only {', '.join(ANCHORED_METHODS)} does)")
    try:
        config = resolve(profile, budget, **overrides)
    except ValueError as exc:
        raise TfadvserError(f"bad attacker setting: {exc}") from None
    if method in ANCHORED_METHODS:
        strength = plugin.default_strength(config) if strength is None else strength
        if not strength > 0 or not math.isfinite(strength):
            raise TfadvserError(f"--lambda must be a positive number, got {strength}")
    corpus = None if attacker_data is None else checked_corpus(attacker_data, data_dir, config,
                                                               method, regulariser)
    stages = METHODS[method](list(defences), config)
    run_dir = distribute.worker_run_dir(run_dir)
    ctx = _Context(data_dir, run_dir, profile, config, defences, verbose, victims, trust_code,
                   corpus)
    # Only with an attacker corpus: the keys of the others stay as they were.
    corpus_key = {} if corpus is None else {"attacker_data": corpus.folder.fingerprint}

    tasks, finished = [], []  # finished: (task dir, stage) in order
    parent_key, parent_dir = None, None
    for index, stage in enumerate(stages):
        prepared = time.time()
        anchoring = plugin.anchoring(ctx, finished, strength) if stage.anchored else UNANCHORED
        weight = strength if stage.anchored else 0.0
        key, identity = task_key(parent_key, stage, weight, config, ctx.data.fingerprint,
                                 ctx.defence_hashes,
                                 {**plugin.key_fields(config, stage.anchored), **corpus_key})
        task_dir = _train_task(ctx, stage, key, identity, parent_dir if stage.from_previous else None,
                               anchoring, defences, plugin,
                               # the previous tasks' importances, when not cached already
                               record={"regulariser_seconds": round(time.time() - prepared, 1)})
        finished.append((task_dir, stage))
        tasks.append({"index": index, "defences": list(stage.defences), "key": key,
                      "steps": stage.steps, "ewc_lambda": weight,
                      "path": str(task_dir.relative_to(ctx.run_dir))})
        parent_key, parent_dir = key, task_dir

    label = sequence_label(method, defences, strength, config, regulariser) + (
        corpus.tag if corpus is not None else "")
    record = {"label": label, "method": method, "defences": list(defences),
              "ewc_lambda": strength, "profile": profile.name,
              "regulariser": regulariser if method in ANCHORED_METHODS else None,
              "attacker": dataclasses.asdict(config), "tasks": tasks}
    if corpus is not None:
        record["attacker_data"] = corpus.record()
    if ctx.targets:  # what `targets.check_pins` compares an evaluation's victims with
        record["victims"] = {name: {**target_pin(v), "path": str(v.spec.path)}
                             for name, v in ctx.targets.items()}
    write_json(ctx.run_dir / "attackers" / label / SEQUENCE_FILE, record)
    return record
