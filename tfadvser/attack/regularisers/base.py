"""What every continual-learning regulariser provides, and the two terms they add to a loss.

A regulariser (one module per method in this package, `REGISTRY` in `__init__`) anchors
the later tasks of a lifelong sequence to the attacker of the tasks before them. It says:

    strength     its default weight and the grid `tune` sweeps          `default_strength`,
                                                                         `strength_grid`
    key fields   what a task's weights owe to it, for the task key      `key_fields`
    anchoring    the term of the next task, from the finished ones
                 (and what it stores beside a finished task to get it)  `anchoring`
    callbacks    what runs during a task's fit (SI's path integral)     `callbacks`

The attacker (`attack/attacker.py`) knows none of them: it adds `strength * part` for each
part a term returns to its loss, and logs the part under its name. The terms are held in
variables, so one compiled train step serves every later task with the same structure:

    QuadraticPenalty   sum over (importance, anchor) pairs of
                       sum_i Omega_i (theta_i - theta*_i)^2 (paper Eq. 3 without lambda,
                       `ewc.ewc_penalty`), logged as "penalty": EWC, online EWC, SI, MAS,
                       and (with no pairs) every task that nothing anchors
    lwf.Distillation   mean over clips of ||G(x) - G_prev(x)||^2, G_prev frozen
                       (`lwf.distillation_loss`), logged as "distillation": LwF

A term is any object with `parts` (the names it logs), `strength` (a float32 variable),
`assign(strength, state)`, `__call__(generator, x, eta, global_batch) -> {part: scalar}`
(unweighted, this replica's share) and the class methods `structure(state)` (what the
compiled step depends on) and `build(state, new_generator)`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from tfadvser.attack.ewc import ewc_penalty
from tfadvser.attack.tasks import GENERATOR_FILE
from tfadvser.config import AttackerConfig


@dataclasses.dataclass(frozen=True)
class Strength:
    """A regulariser's default weight and the grid `tune` sweeps.

    The scales follow from this project's loss, not from the literature's benchmarks (whose
    losses are means over a batch, hence their lambda 1-10): the C&W term is *summed* over
    the batch, so squared-gradient importances (EWC, online EWC) are ~batch^2 larger than
    there. Each plugin's docstring says how its own scale follows."""

    default: float
    grid: tuple[float, ...]


class QuadraticPenalty:
    """strength and the (importance, anchor) pairs of the task being trained, in
    non-trainable variables: a compiled train step reads them, so one compiled attacker
    serves later tasks with other values (`assign`). The number of pairs is fixed at
    construction (it is part of the traced graph); no pairs means no penalty (0).

    `state` (of `assign`, `build`): a list of (importance, anchor) pairs, each a list of
    arrays parallel to the generator's trainable weights."""

    parts = ("penalty",)

    def __init__(self, strength: float = 0.0, state=()):
        self.strength = tf.Variable(float(strength), trainable=False, dtype=tf.float32)
        self.pairs = [([tf.Variable(f, trainable=False) for f in importance],
                       [tf.Variable(a, trainable=False) for a in anchor])
                      for importance, anchor in state]

    @staticmethod
    def structure(state) -> tuple:
        """What the compiled step depends on: the number of pairs."""
        return ("penalty", len(state))

    @classmethod
    def build(cls, state, new_generator: Callable[[], keras.Model]) -> "QuadraticPenalty":
        """A term shaped for `state` (its values are set by `assign`)."""
        return cls(0.0, state)

    def __len__(self) -> int:
        return len(self.pairs)

    def assign(self, strength: float, state) -> None:
        """Replace the strength and the pairs' values. Raises ValueError when the number of
        pairs differs from the one these variables were built for."""
        if len(state) != len(self.pairs):
            raise ValueError(f"this attacker was built for {len(self.pairs)} penalty term(s), "
                             f"not {len(state)}")
        self.strength.assign(float(strength))
        for variables, values in zip(self.pairs, state):
            for variable, value in zip([*variables[0], *variables[1]], [*values[0], *values[1]],
                                       strict=True):
                variable.assign(value)

    def values(self) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
        """The held pairs as arrays (what SI's path integral subtracts the gradient of)."""
        return [([f.numpy() for f in importance], [a.numpy() for a in anchor])
                for importance, anchor in self.pairs]

    def __call__(self, generator: keras.Model, x, eta, global_batch) -> dict[str, tf.Tensor]:
        """{"penalty": `ewc_penalty` of the generator's weights against the pairs}, times
        this replica's share of the global batch (the penalty does not depend on the batch:
        under tf.distribute each replica carries its share of it)."""
        penalty = (ewc_penalty(generator.trainable_weights, self.pairs) if self.pairs
                   else tf.constant(0.0))
        return {"penalty": penalty * (tf.cast(tf.shape(x)[0], tf.float32) / global_batch)}


@dataclasses.dataclass
class Anchoring:
    """What a regulariser adds to one task: the term's kind (`QuadraticPenalty` or
    `lwf.Distillation`), its strength and the state its values come from."""

    term: type
    strength: float
    state: Any

    @property
    def structure(self) -> tuple:
        return self.term.structure(self.state)


# A task that nothing anchors: a penalty with no pairs (0, logged as such).
UNANCHORED = Anchoring(QuadraticPenalty, 0.0, [])


class Regulariser:
    """The interface of a continual-learning regulariser (see the module docstring).

    `context` (of `anchoring` and `callbacks`) is what every task of a sequence shares
    (`attack/training.py::_Context`): its `config`, `weight_names()` (the generator's
    trainable weights by path), `fisher_term(task_dir, stage)` (a finished task's EWC
    (Fisher, anchor), cached beside it), `fisher_set()` (the clips importances are
    estimated on). `finished`: the (task dir, stage) pairs trained so far, in order.
    """

    name: str = ""
    # Default strength and grid, unless they are the profile's (`default_lambda`, `lambdas`).
    strength: Optional[Strength] = None

    def default_strength(self, config: AttackerConfig) -> float:
        """The default weight: this regulariser's own, or the profile's `default_lambda`."""
        return self.strength.default if self.strength is not None else config.default_lambda

    def strength_grid(self, config: AttackerConfig) -> tuple[float, ...]:
        """The grid `tune` sweeps: this regulariser's own, or the profile's `lambdas`."""
        return self.strength.grid if self.strength is not None else tuple(config.lambdas)

    def key_fields(self, config: AttackerConfig, anchored: bool) -> dict:
        """What a task's weights (or the files it leaves) owe to the regulariser: entries
        of the identity its key hashes (`tasks.task_key`), empty for a task it leaves alone.
        By default, for an anchored task, `anchored_settings` and {"regulariser": {"name"}}."""
        return {**anchored_settings(config), "regulariser": {"name": self.name}} if anchored else {}

    def anchoring(self, context, finished: list, strength: float) -> Anchoring:
        """The term of the next anchored task, from the finished tasks."""
        raise NotImplementedError

    def callbacks(self, context, task_dir, resumed: int) -> list:
        """Keras callbacks for a task's fit (`resumed`: epochs finished before a restart)."""
        return []


def anchored_settings(config: AttackerConfig) -> dict:
    """The identity entry of every anchored task, whatever anchors it: the Fisher settings,
    under the name "ewc" that task keys have hashed since EWC was the only regulariser (a
    run trained before then finds its tasks again)."""
    settings = {"fisher_mode": config.fisher_mode, "accumulate": config.ewc_accumulate}
    if config.fisher_clips is not None:
        settings["fisher_clips"] = config.fisher_clips
    return {"ewc": settings}


def previous_generator(finished: list) -> keras.Model:
    """The generator after the last finished task (the anchor of the next one)."""
    return keras.saving.load_model(Path(finished[-1][0]) / GENERATOR_FILE, compile=False)


def anchor_of(finished: list) -> list[np.ndarray]:
    """theta*: the trainable weights of the generator after the last finished task."""
    return [w.numpy() for w in previous_generator(finished).trainable_weights]

