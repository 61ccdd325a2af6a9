"""Continual-learning regularisers beyond EWC, for lifelong attackers (`--regulariser`).

EWC (the paper's) lives in `ewc.py`. Four more, each a delta on the same training loop:

    online-ewc  Schwarz et al. 2018 ("Progress & Compress"): one running Fisher,
                F <- gamma * F_prev + F_new, anchored at the previous task.  `online_fisher`
    si          Zenke et al. 2017 (Synaptic Intelligence): per-parameter path integral
                omega = sum over steps of -g * delta_theta, importance
                Omega = sum over tasks of omega / (Delta^2 + xi).            `si_importance`
    mas         Aljundi et al. 2018 (Memory Aware Synapses): importance
                Omega = mean over clips of |d ||G(x)||_2^2 / d theta|, no labels. `mas_importance`
    lwf         Li & Hoiem 2017 (Learning without Forgetting), as a distillation of the
                perturbation: lambda * mean over clips ||G_t(x) - G_{t-1}(x)||_2^2 on the
                current task's batch, the previous attacker frozen.           `distillation_loss`

The three importance methods share EWC's penalty, lambda * sum_i Omega_i (theta_i -
theta*_i)^2 (`ewc.ewc_penalty`, the anchor theta* the attacker after the previous task), so
they enter the compiled step as one (importance, anchor) term of `ewc.EWCTerms`: the step is
EWC's, only the importance differs. Over a sequence the importances accumulate: online EWC
by its decay, SI as Zenke et al. (a sum over finished tasks), MAS as a sum over finished
tasks (Aljundi et al. accumulate too). The distillation needs the previous generator in the
step (`AdversarialAttacker(teacher=...)`).

SI's path integral is taken outside the compiled step, by `PathIntegral` (a callback):
before and after each batch it reads the generator's trainable weights and Adam's first
moments m. Keras's Adam sets m_t = beta_1 m_{t-1} + (1 - beta_1) g_t, so the gradient the
step applied is g_t = (m_t - beta_1 m_{t-1}) / (1 - beta_1) (`adam_gradient`), exact up to
float32 rounding. That is the gradient of the *regularised* loss; as Zenke et al. (whose
omega measures the task's own loss), the SI penalty's gradient 2 lambda Omega (theta -
theta*) at the weights before the step is subtracted (`unregularised_gradient`). With an
optimizer other than Adam the callback refuses to run.
"""
from __future__ import annotations

import weakref
from pathlib import Path
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfadvser.attack.ewc import load_ewc_term, save_ewc_term
from tfadvser.attack.tasks import GENERATOR_FILE
from tfadvser.config import REGULARISER_STRENGTHS, REGULARISERS, AttackerConfig
from tfadvser.errors import TfadvserError
from tfadvser.runtime.files import atomic_path

PATH_FILE = "si-path.npz"


# --- pure functions -------------------------------------------------------------------

def online_fisher(fishers: Sequence[Sequence[np.ndarray]], gamma: float) -> list[np.ndarray]:
    """The running Fisher after the tasks of `fishers` (in training order, each a list of
    per-weight arrays): F_1 = F_new_1, F_k = gamma * F_{k-1} + F_new_k, i.e.
    sum_k gamma^(K-k) F_new_k. Raises ValueError for an empty list."""
    if not fishers:
        raise ValueError("online EWC needs the Fisher of at least one finished task")
    running = [np.asarray(f, np.float64) for f in fishers[0]]
    for new in fishers[1:]:
        running = [gamma * r + np.asarray(f, np.float64) for r, f in zip(running, new, strict=True)]
    return [r.astype(np.float32) for r in running]


def adam_gradient(m_after: np.ndarray, m_before: np.ndarray, beta_1: float) -> np.ndarray:
    """The gradient of one Adam step from its first moment before and after the step:
    g = (m_after - beta_1 * m_before) / (1 - beta_1) (Keras: m += (g - m) (1 - beta_1))."""
    return (np.asarray(m_after, np.float64) - beta_1 * np.asarray(m_before, np.float64)) / (1.0 - beta_1)


def unregularised_gradient(gradient: Sequence[np.ndarray], weights: Sequence[np.ndarray],
                           terms: Sequence[tuple], strength: float) -> list[np.ndarray]:
    """The gradient of the attack loss alone, from that of loss + strength * penalty:
    g - strength * sum over (importance, anchor) terms of 2 * importance * (weights - anchor)
    (the derivative of `ewc.ewc_penalty`). All lists run parallel over the weights."""
    out = [np.asarray(g, np.float64) for g in gradient]
    for importance, anchor in terms:
        for i, (w, f, a) in enumerate(zip(weights, importance, anchor, strict=True)):
            out[i] = out[i] - strength * 2.0 * np.asarray(f, np.float64) * (np.asarray(w, np.float64) - a)
    return out


def path_integral_step(omega: Sequence[np.ndarray], gradient: Sequence[np.ndarray],
                       before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> list[np.ndarray]:
    """One step of SI's path integral (Zenke et al. 2017, Eq. 3 discretised):
    omega + (-gradient * (after - before)), per parameter; `gradient` at `before`."""
    return [np.asarray(o, np.float64) - np.asarray(g, np.float64) * (np.asarray(t1, np.float64) - t0)
            for o, g, t0, t1 in zip(omega, gradient, before, after, strict=True)]


def si_importance(omegas: Sequence[Sequence[np.ndarray]], deltas: Sequence[Sequence[np.ndarray]],
                  damping: float) -> list[np.ndarray]:
    """SI's importance after several tasks (Zenke et al. 2017, Eq. 5, summed over tasks):
    Omega = sum_k omega_k / (Delta_k^2 + xi), with omega_k a task's path integral and Delta_k
    its total weight change (end minus start), xi = `damping` > 0."""
    if not omegas or len(omegas) != len(deltas):
        raise ValueError("SI needs one path integral and one weight change per finished task")
    total = [np.zeros(np.shape(o), np.float64) for o in omegas[0]]
    for omega, delta in zip(omegas, deltas):
        for i, (o, d) in enumerate(zip(omega, delta, strict=True)):
            total[i] += np.asarray(o, np.float64) / (np.square(np.asarray(d, np.float64)) + damping)
    return [t.astype(np.float32) for t in total]


def distillation_loss(eta: tf.Tensor, teacher_eta: tf.Tensor, global_batch=None) -> tf.Tensor:
    """LwF-style distillation of the perturbation: the mean over clips of the squared L2
    distance sum((eta - teacher_eta)^2) over a clip's [frames, mels] elements. Under
    tf.distribute, this replica's share of the global batch's mean (as `losses.py`)."""
    per_clip = tf.reduce_sum(tf.reshape(tf.square(eta - teacher_eta), [tf.shape(eta)[0], -1]), axis=1)
    count = tf.cast(tf.shape(eta)[0] if global_batch is None else global_batch, per_clip.dtype)
    return tf.reduce_sum(per_clip) / count


def mas_importance(generator: keras.Model, dataset: tf.data.Dataset) -> tuple[list[np.ndarray], int]:
    """MAS importance (Aljundi et al. 2018, Eq. 4 with the squared L2 norm of Eq. 10) over
    `dataset` of (x, ...) batches: mean over clips of |d ||G(x)||_2^2 / d theta| per
    trainable weight, G in inference mode (BN moving statistics); returns (Omega, clips).
    Per-clip gradients: the absolute value is taken clip by clip. On one device."""
    weights = generator.trainable_weights
    step = _mas_step(generator)
    total = [np.zeros(w.shape, np.float64) for w in weights]
    clips = 0
    for batch in dataset:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        for acc, value in zip(total, step(x)):
            acc += value.numpy()
        clips += int(x.shape[0])
    if clips == 0:
        raise ValueError("MAS importance needs at least one clip")
    return [(t / clips).astype(np.float32) for t in total], clips


def _mas_step(generator):
    if generator in _MAS_STEPS:
        return _MAS_STEPS[generator]
    model = weakref.ref(generator)
    weights = generator.trainable_weights

    @tf.function(reduce_retracing=True)
    def step(x):
        total = [tf.zeros_like(w) for w in weights]
        for i in tf.range(tf.shape(x)[0]):
            with tf.GradientTape() as tape:
                norm = tf.reduce_sum(tf.square(model()(x[i:i + 1], training=False)))
            total = [t + tf.abs(g) for t, g in zip(total, tape.gradient(norm, weights))]
        return total

    _MAS_STEPS[generator] = step
    return step


_MAS_STEPS: "weakref.WeakKeyDictionary[keras.Model, Callable]" = weakref.WeakKeyDictionary()


# --- SI's path integral during training -----------------------------------------------

class PathIntegral(keras.callbacks.Callback):
    """Accumulates SI's path integral of an `AdversarialAttacker`'s generator over one fit
    (see the module docstring for the gradient used) and writes `si-path.npz` into
    `task_dir` at the end: omega and Delta (end minus start weights) per trainable weight.

    Resumable: after every epoch but the last the running omega and the start weights go
    to `si-path-epoch<N>.npz` (the last two are kept); with `resumed` finished epochs (as
    `runtime.backup.resumed_epoch` counts them) training continues from that file."""

    def __init__(self, task_dir, names: Sequence[str], resumed: int = 0):
        super().__init__()
        self.task_dir, self.names, self.resumed = Path(task_dir), list(names), resumed

    def _weights(self):
        return [w.numpy() for w in self.model.generator.trainable_weights]

    def _moments(self):
        optimizer = self.model.optimizer
        return [optimizer._momentums[optimizer._get_variable_index(w)].numpy()
                for w in self.model.generator.trainable_weights]

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if not isinstance(optimizer, keras.optimizers.Adam):
            raise TfadvserError(f"SI's path integral reads Adam's moments; the attacker "
                                f"trains with {type(optimizer).__name__}")
        self.beta_1 = float(optimizer.beta_1)
        if not optimizer.built:  # its moments exist before the first step
            optimizer.build(self.model.generator.trainable_weights)
        # The task's penalty terms and lambda do not change during its fit.
        ewc = self.model.ewc
        self.terms = [([f.numpy() for f in fisher], [a.numpy() for a in anchor]) for fisher, anchor in ewc.terms]
        self.strength = float(ewc.ewc_lambda.numpy())
        if self.resumed:
            path = self._partial(self.resumed)
            if not path.exists():
                raise TfadvserError(f"{path} missing: SI's path integral of the resumed "
                                    f"epochs is lost; delete {self.task_dir} to retrain the task")
            omega, self.start = _load_pair(path, self.names)
            self.omega = [o.astype(np.float64) for o in omega]
        else:
            self.start = self._weights()
            self.omega = [np.zeros(w.shape, np.float64) for w in self.start]

    def on_train_batch_begin(self, batch, logs=None):
        self.before, self.m_before = self._weights(), self._moments()

    def on_train_batch_end(self, batch, logs=None):
        after = self._weights()
        total = [adam_gradient(m1, m0, self.beta_1) for m1, m0 in zip(self._moments(), self.m_before)]
        gradient = unregularised_gradient(total, self.before, self.terms, self.strength)
        self.omega = path_integral_step(self.omega, gradient, self.before, after)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.params.get("epochs", epoch + 2):
            _save_pair(self._partial(epoch + 1), self.omega, self.start, self.names)
            self._partial(epoch - 1).unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        delta = [w - s for w, s in zip(self._weights(), self.start)]
        _save_pair(self.task_dir / PATH_FILE, self.omega, delta, self.names)
        for path in self.task_dir.glob("si-path-epoch*.npz"):
            path.unlink()

    def _partial(self, epochs: int) -> Path:
        return self.task_dir / f"si-path-epoch{epochs}.npz"


def _save_pair(path: Path, first, second, names) -> None:
    arrays = {f"a_{i}": np.asarray(a, np.float32) for i, a in enumerate(first)}
    arrays.update({f"b_{i}": np.asarray(b, np.float32) for i, b in enumerate(second)})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, names=np.array(list(names)), **arrays)


def _load_pair(path: Path, names) -> tuple[list[np.ndarray], list[np.ndarray]]:
    with np.load(path) as data:
        stored = [str(n) for n in data["names"]]
        if stored != list(names):
            raise TfadvserError(f"{path}: saved for weights {stored[:3]}..., not {list(names)[:3]}...")
        return ([data[f"a_{i}"] for i in range(len(stored))], [data[f"b_{i}"] for i in range(len(stored))])


# --- what the training loop asks --------------------------------------------------------

def check(regulariser: str) -> None:
    """Raises TfadvserError for a regulariser name outside config.REGULARISERS."""
    if regulariser not in REGULARISERS:
        raise TfadvserError(f"unknown regulariser {regulariser!r}; choose one of {', '.join(REGULARISERS)}")


# The regularisers weighted on EWC's scale (the same Fisher): the profile's lambdas.
FISHER_SCALED = ("ewc", "online-ewc")


def default_strength(regulariser: str, config: AttackerConfig) -> float:
    """The regulariser's default lambda: EWC's and online EWC's are the profile's
    (`default_lambda`; at `small` under the budget 100, the paper's 1e5 unbounded), the
    others' config.REGULARISER_STRENGTHS."""
    if regulariser in FISHER_SCALED:
        return config.default_lambda
    return REGULARISER_STRENGTHS[regulariser].default


def strength_grid(regulariser: str, config: AttackerConfig) -> tuple[float, ...]:
    """The lambda grid `tune` sweeps for the regulariser (`default_strength`'s sources)."""
    return config.lambdas if regulariser in FISHER_SCALED else REGULARISER_STRENGTHS[regulariser].grid


def key_fields(regulariser: str, config: AttackerConfig, anchored: bool) -> Optional[dict]:
    """What a task's weights (or the files it leaves) owe to the regulariser, for its key:
    None for EWC (the keys of the paper's attackers stay as they were) and for a task
    without the regulariser, except under SI, whose every task records its path integral
    (a first task trained by another method has none, so SI trains its own)."""
    if regulariser == "ewc" or not (anchored or regulariser == "si"):
        return None
    fields = {"name": regulariser}
    if regulariser == "online-ewc":
        fields.update(gamma=config.online_ewc_gamma, fisher_mode=config.fisher_mode,
                      fisher_clips=config.fisher_clips)
    elif regulariser == "si":
        fields["damping"] = config.si_damping
    elif regulariser == "mas":
        fields["clips"] = config.fisher_clips
    return fields


def mas_path(task_dir: Path, clips: Optional[int]) -> Path:
    """Where a finished task's MAS importance is kept: `mas[-<N>clips].npz` beside it."""
    return Path(task_dir) / ("mas.npz" if clips is None else f"mas-{clips}clips.npz")


def anchored_state(regulariser: str, finished: list, config: AttackerConfig, names: Sequence[str],
                   fisher_term: Callable, importance_data: Callable) -> tuple[list, Optional[list]]:
    """(terms, teacher weights) of the next task under `regulariser` (not "ewc"), from the
    finished (task dir, stage) pairs in order: one (importance, anchor) term anchored at
    the previous task, or for LwF no term and the previous generator's weights.

    `fisher_term(task_dir, stage)` gives a task's (Fisher, anchor) (`ewc.task_term`);
    `importance_data()` the clips MAS is estimated on. Raises TfadvserError when a task
    lacks its SI path integral."""
    previous = keras.saving.load_model(Path(finished[-1][0]) / GENERATOR_FILE, compile=False)
    if regulariser == "lwf":
        return [], previous.get_weights()
    anchor = [w.numpy() for w in previous.trainable_weights]
    if regulariser == "online-ewc":
        fishers = [fisher_term(task_dir, stage)[0] for task_dir, stage in finished]
        return [(online_fisher(fishers, config.online_ewc_gamma), anchor)], None
    if regulariser == "si":
        pairs = []
        for task_dir, _ in finished:
            path = Path(task_dir) / PATH_FILE
            if not path.exists():
                raise TfadvserError(f"{path} missing: the task was trained without SI's path integral")
            pairs.append(_load_pair(path, names))
        return [(si_importance([p[0] for p in pairs], [p[1] for p in pairs], config.si_damping),
                 anchor)], None
    if regulariser == "mas":
        total = None
        for task_dir, _ in finished:
            importance = mas_term(task_dir, names, importance_data, config.fisher_clips)
            total = importance if total is None else [t + i for t, i in zip(total, importance)]
        return [(total, anchor)], None
    raise TfadvserError(f"no anchored state for regulariser {regulariser!r}")


def mas_term(task_dir: Path, names: Sequence[str], importance_data: Callable,
             clips: Optional[int]) -> list[np.ndarray]:
    """A finished task's MAS importance, estimated on first use and kept beside it."""
    path = mas_path(task_dir, clips)
    if not path.exists():
        generator = keras.saving.load_model(Path(task_dir) / GENERATOR_FILE, compile=False)
        importance, seen = mas_importance(generator, importance_data())
        save_ewc_term(path, importance, [w.numpy() for w in generator.trainable_weights],
                      names, seen, "mas")
    return load_ewc_term(path, names)[0]
