"""One compiled attacker per set of defences, reused by every task that trains against it.

Tracing a train step through the defences and optimising its graph costs 1-3 s per task on
a CPU: at the `smoke` profile more than training the task itself. Yet most tasks face
defences that an earlier task faced with the same settings: the lambda sweep trains the
same two tasks once per lambda, and transfer, lifelong and single-task revisit the same
defences. Such tasks share one `AdversarialAttacker`; `prepared_attacker` resets what a
task starts from (generator weights, optimizer state, the regulariser's term) and keeps the compiled
step. The result is the same as a new attacker per task: same initial weights, a fresh
optimizer, the same loss.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfadvser.attack.attacker import AdversarialAttacker, generator_for
from tfadvser.attack.losses import FEATURE_LAYERS
from tfadvser.attack.regularisers.base import UNANCHORED, Anchoring
from tfadvser.config import AttackerConfig
from tfadvser.errors import TfadvserError

# Settings the compiled step or the optimizer depend on (the seed and step counts do not).
_GRAPH_SETTINGS = ("width", "cw_weight", "cw_reduction", "lr_schedule", "learning_rate",
                   "decay_every", "decay_rate", "round_trip", "perturbation", "epsilon",
                   "snr_db", "generator", "losses", "kappa", "head", "feature_layer",
                   "diversity", "curriculum")
_KEEP = 16  # attackers kept; a whole `reproduce` uses 9 defence/term combinations

_CACHE: "OrderedDict[tuple, tuple]" = OrderedDict()


def learning_rate(config: AttackerConfig):
    """Adam's step size: `lr_schedule="paper"` decays `learning_rate` by `decay_rate` every
    `decay_every` steps (staircase), as the paper states; "original" is the constant 1e-3
    the authors' code ran (original-code-facts section 7)."""
    if config.lr_schedule == "original":
        return 1e-3  # what the authors' code ran: its x0.9 decay never fires
    return keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, config.decay_every, config.decay_rate, staircase=True)


def prepared_attacker(defences: Sequence[keras.Model], config: AttackerConfig, shape,
                      start_weights: list[np.ndarray], anchoring: Anchoring = UNANCHORED,
                      round_trip=None, data=None) -> AdversarialAttacker:
    """An attacker against `defences` whose generator holds `start_weights` (all its weights,
    BatchNorm statistics included), with a fresh Adam and the regulariser's term of
    `anchoring` (`attack/regularisers/`; by default none: a penalty with no pairs); compiled
    once per strategy, defences, term structure and graph settings. `round_trip`: an
    `attack.round_trip.RoundTrip` when config.round_trip (then compiled without XLA).
    `data`: the DataFolder whose statistics an SNR floor needs."""
    strategy = tf.distribute.get_strategy()
    key = (id(strategy), tuple(id(d) for d in defences), anchoring.structure, tuple(shape),
           tuple(getattr(config, name) for name in _GRAPH_SETTINGS),
           round_trip.key if config.round_trip and round_trip is not None else None,
           data.fingerprint if data is not None else None)
    if key not in _CACHE:
        attacker = AdversarialAttacker(generator_for(config, shape, data), defences,
                                       alpha=config.cw_weight, cw_reduction=config.cw_reduction,
                                       term=anchoring.term.build(
                                           anchoring.state, lambda: generator_for(config, shape, data)),
                                       round_trip=round_trip if config.round_trip else None,
                                       losses=config.losses, kappa=config.kappa,
                                       diversity=config.diversity,
                                       feature_layers=feature_layers(defences, config))
        attacker.compile(optimizer=keras.optimizers.Adam(learning_rate(config)),
                         **({"jit_compile": False} if config.round_trip else {}))
        attacker(np.zeros((1, *shape), np.float32))  # BackupAndRestore restores into built models
        attacker.optimizer.build(attacker.generator.trainable_weights)
        initial = [v.numpy() for v in attacker.optimizer.variables]
        # The entry holds the strategy and defences, so the ids in its key stay theirs.
        _CACHE[key] = (attacker, initial, strategy, list(defences))
        while len(_CACHE) > _KEEP:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    attacker, initial = _CACHE[key][:2]
    attacker.generator.set_weights(start_weights)
    for variable, value in zip(attacker.optimizer.variables, initial, strict=True):
        variable.assign(value)  # a fresh optimizer for every task, as the original
    attacker.term.assign(anchoring.strength, anchoring.state)
    attacker.set_diversity_seed(config.seed)
    # Keras keeps the epoch a BackupAndRestore resumed from on the model, and `fit` would
    # start every later task there.
    attacker._initial_epoch = None
    return attacker


def feature_layers(defences: Sequence[keras.Model], config: AttackerConfig) -> list:
    """The layer a feature loss reads in each defence: `config.feature_layer`, else the
    default for its architecture (`losses.FEATURE_LAYERS`, by model name). Raises
    TfadvserError for a model with neither."""
    if not any(name.startswith("feature") for name in config.losses):
        return [None] * len(defences)
    layers = []
    for defence in defences:
        layer = config.feature_layer or FEATURE_LAYERS.get(defence.name)
        if layer is None:
            raise TfadvserError(f"a feature loss needs --feature-layer for {defence.name!r} (defaults "
                             f"exist for {', '.join(FEATURE_LAYERS)})")
        layers.append(layer)
    return layers


def discard(attacker: AdversarialAttacker) -> None:
    """Forget `attacker` (after its `fit` raised): the next task against its defences
    compiles a new one. An exception while the train step is first traced (or a Ctrl-C in
    a notebook) leaves Keras's train function half-initialised; reused, it fails every later
    task of the process (TensorBoard's graph writer looks for the variable-creation trace
    that never finished)."""
    for key in [key for key, entry in _CACHE.items() if entry[0] is attacker]:
        del _CACHE[key]
