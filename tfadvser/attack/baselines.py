"""Baselines an attacker is compared with, at its own budget: random noise and white-box
iterative attacks.

All work on standardised log-Mel batches x [B, frames, n_mels] (float32) and return a
perturbation eta of x's shape that `budget.project` has put within the budget, so a
baseline and a trained attacker "of the same size" are so by the same code.

- Noise matched to an attacker's eta (`matched_noise`): each clip's eta values, moved to
  random positions with random signs: the same per-clip L2 and L-infinity norms (exactly),
  the same distribution of magnitudes, no structure. The trained-attacker-vs-noise
  comparison the issue tracker's measurements asked for.
- Noise at the budget (`budget_noise`): +-epsilon uniform random signs (the largest noise
  in the L-infinity ball), scaled onto the SNR floor.
- PGD (Madry et al. 2018): L-infinity projected gradient ascent on the cross-entropy,
  from a uniform random start; the Adversarial Robustness Toolbox's implementation (pinned
  in setup.py; checked against a hand computation in tests/test_baselines.py).
- MI-FGSM (Dong et al. 2018, "Boosting adversarial attacks with momentum"): momentum mu
  over L1-normalised gradients, step epsilon / steps, the standard transfer baseline. ART
  disables its TensorFlow momentum path (its issue #2439), so it is written here; with
  mu = 0 and no random start it is I-FGSM, which the tests check against ART's PGD.
- DI-FGSM (Xie et al. 2019): MI-FGSM through a random view of the input at every
  iteration (`data/diversity.py`), and the ensemble MI-FGSM (Dong et al. 2018): MI-FGSM
  on the fused log-probabilities of several surrogates (`ensemble`), crafted on every
  defence but the target: the transfer baselines of the budget scan.

`forward` is any function from x to log-probabilities [B, classes] that TensorFlow can
differentiate (e.g. `runtime.inference.inference(defence)`).
"""
from __future__ import annotations

import collections
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfadvser.attack.budget import project
from tfadvser.data.diversity import Diversity, diversify
from tfadvser.config import Budget

PGD_STEPS = 10  # iterations of PGD and MI-FGSM
PGD_STEP_FRACTION = 0.25  # PGD's step size, as a fraction of epsilon (Madry et al. use 2.5/steps)
MI_DECAY = 1.0  # mu of MI-FGSM, the value Dong et al. recommend


def matched_noise(eta, seed: int) -> np.ndarray:
    """Random noise with each clip's own L2 and L-infinity norms: the clip's eta values
    [B, ...] permuted to random positions with random signs. float32, eta's shape."""
    eta = np.asarray(eta, np.float32)
    rng = np.random.default_rng(seed)
    flat = np.abs(eta.reshape(len(eta), -1))
    noise = np.take_along_axis(flat, rng.permuted(np.tile(np.arange(flat.shape[1]), (len(eta), 1)),
                                                  axis=1), axis=1)
    noise *= rng.choice(np.array([-1.0, 1.0], np.float32), size=noise.shape)
    return noise.reshape(eta.shape)


def budget_noise(x, budget: Budget, mean, std, seed: int) -> np.ndarray:
    """+-epsilon random signs on every bin (epsilon 1 when the budget has only an SNR
    floor), then scaled onto the floor (`budget.project`). float32, x's shape. Raises
    ValueError for the unbounded budget (noise of which size?)."""
    if not budget.bounded:
        raise ValueError("noise at the budget needs a bounded budget")
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-budget.cap, budget.cap], np.float32), size=np.shape(x))
    return project(np.asarray(x, np.float32), signs, budget, mean, std).numpy()


def _epsilon(budget: Budget) -> float:
    if not budget.bounded:
        raise ValueError("white-box baselines need a bounded budget")
    return budget.cap


def art_import(module: str, *names: str) -> tuple:
    """`names` from the Adversarial Robustness Toolbox's `module` (e.g.
    "art.attacks.evasion", "ProjectedGradientDescent"), imported safely. ART's package
    `__init__` runs `logging.config.dictConfig`, which flushes and closes every logging
    handler of the process (pytest's capture, a CLI runner's streams: later log lines then
    fail with "I/O operation on closed file") and hooks a stderr handler to the "tests"
    logger. Imported here with that call suppressed; ART's own logger gets the NullHandler
    it asked for. The one place this project imports ART."""
    import importlib
    import logging
    import logging.config
    import warnings

    configure = logging.config.dictConfig
    logging.config.dictConfig = lambda config: None
    try:
        with warnings.catch_warnings():
            # "PyTorch not found. Not importing DeepZ ...": about ART modules this never uses.
            warnings.filterwarnings("ignore", message="PyTorch not found", category=UserWarning)
            found = importlib.import_module(module)
    finally:
        logging.config.dictConfig = configure
    art_logger = logging.getLogger("art")
    if not art_logger.handlers:
        art_logger.addHandler(logging.NullHandler())
    return tuple(getattr(found, name) for name in names)


def _art():
    """ART's PGD and TF-2 classifier (`art_import`)."""
    (pgd_class,) = art_import("art.attacks.evasion", "ProjectedGradientDescent")
    (classifier,) = art_import("art.estimators.classification", "TensorFlowV2Classifier")
    return pgd_class, classifier


def pgd(forward: Callable, x, y, budget: Budget, mean, std, steps: int = PGD_STEPS,
        step_fraction: float = PGD_STEP_FRACTION, seed: int = 0) -> np.ndarray:
    """L-infinity PGD with a random start (ART's `ProjectedGradientDescent`), then the SNR
    floor: eta [B, ...] float32. y: int labels [B]. Deterministic for a seed."""
    ProjectedGradientDescent, _ = _art()
    x = np.asarray(x, np.float32)
    epsilon = _epsilon(budget)
    attack = ProjectedGradientDescent(
        _classifier(forward, x.shape[1:]),
        norm=np.inf, eps=epsilon, eps_step=epsilon * step_fraction,
        max_iter=steps, num_random_init=1, batch_size=len(x), verbose=False)
    state = np.random.get_state()
    np.random.seed(seed)  # ART draws the random start from NumPy's global generator
    try:
        adversarial = attack.generate(x, y=np.asarray(y, int))
    finally:
        np.random.set_state(state)
    return project(x, adversarial - x, budget, mean, std).numpy()


def mi_fgsm(forward: Callable, x, y, budget: Budget, mean, std, steps: int = PGD_STEPS,
            decay: float = MI_DECAY) -> np.ndarray:
    """MI-FGSM (Dong et al. 2018, Algorithm 1): g <- mu g + grad / ||grad||_1,
    x' <- clip_eps(x' + (eps / steps) sign(g)), on the cross-entropy; then the SNR floor.
    eta [B, ...] float32. y: int labels [B]."""
    return _momentum_attack(forward, x, y, budget, mean, std, steps, decay, None, 0)


def di_fgsm(forward: Callable, x, y, budget: Budget, mean, std, steps: int = PGD_STEPS,
            decay: float = MI_DECAY, diversity: Optional[Diversity] = None,
            seed: int = 0) -> np.ndarray:
    """DI-FGSM (Xie et al. 2019, with momentum: their "M-DI2-FGSM"): MI-FGSM whose gradient
    at iteration t is taken through a random view of x' (`data.diversity`, drawn from
    (seed, t); default `Diversity()`: shift, time and frequency masks, p = 0.5).
    eta [B, ...] float32; deterministic for a seed. With an inactive `Diversity` it is
    MI-FGSM exactly."""
    return _momentum_attack(forward, x, y, budget, mean, std, steps, decay,
                            diversity if diversity is not None else Diversity(), seed)


def ensemble(forwards: Sequence[Callable]) -> Callable:
    """One forward function for several models: the mean of their log-probabilities, the
    logit fusion of Dong et al. 2018 (section 3.2) with equal weights (log-softmax differs
    from the logits by a per-clip constant, which the mean keeps per clip). The ensemble
    MI-FGSM baseline is `mi_fgsm(ensemble([...all but the target...]), ...)`. Built once
    per tuple of functions, so the traced attack is reused. Raises ValueError if empty."""
    forwards = tuple(forwards)
    if not forwards:
        raise ValueError("an ensemble needs at least one model")
    if len(forwards) == 1:
        return forwards[0]
    return _per_forward(forwards[0], ("ensemble", tuple(id(f) for f in forwards[1:])),
                        lambda: _Ensemble(forwards))


class _Ensemble:
    def __init__(self, forwards):
        self.forwards = forwards

    def __call__(self, x):
        return tf.add_n([f(x) for f in self.forwards]) / len(self.forwards)


def _momentum_attack(forward, x, y, budget, mean, std, steps, decay, diversity, seed):
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    y = tf.convert_to_tensor(np.asarray(y, np.int32))
    epsilon = _epsilon(budget)
    use_std = diversity is not None and diversity.max_gain_db > 0
    graph = _mi_fgsm_graph(forward, x.shape[1:], steps, float(decay), diversity,
                           tuple(np.ravel(std).tolist()) if use_std else None)
    eta = graph(x, y, tf.constant(epsilon, tf.float32), tf.constant(seed, tf.int32))
    return project(x, eta, budget, mean, std).numpy()


# What is built once per forward function (ART's classifier, the traced MI-FGSM):
# (id(forward), what, settings...) -> (forward, built), the last _KEEP used.
_PER_FORWARD: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
_KEEP = 16


def _per_forward(forward: Callable, key: tuple, build: Callable):
    """`build()`, once per forward function and `key`; the entry holds `forward`, so the
    id in its key stays that function's."""
    full = (id(forward), *key)
    cached = _PER_FORWARD.get(full)
    if cached is None or cached[0] is not forward:
        cached = _PER_FORWARD[full] = (forward, build())
        while len(_PER_FORWARD) > _KEEP:
            _PER_FORWARD.popitem(last=False)
    _PER_FORWARD.move_to_end(full)
    return cached[1]


def _mi_fgsm_graph(forward: Callable, input_shape, steps: int, decay: float,
                   diversity: Optional[Diversity] = None, std: Optional[tuple] = None):
    """`_mi_fgsm` as one traced function per forward function and settings (any batch size,
    epsilon and seed): run eagerly, a gradient through the traced forward costs ~1.6x the
    traced one (measured on the small profile's defences, 32 clips)."""
    spec = [tf.TensorSpec((None, *input_shape), tf.float32), tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((), tf.float32), tf.TensorSpec((), tf.int32)]
    return _per_forward(forward, ("mi_fgsm", tuple(input_shape), steps, decay, diversity, std),
                        lambda: tf.function(
        lambda x, y, epsilon, seed: _mi_fgsm(forward, x, y, epsilon, steps, decay, diversity,
                                             std, seed), input_signature=spec))


def _mi_fgsm(forward, x, y, epsilon, steps: int, decay: float, diversity=None, std=None, seed=0):
    step = epsilon / steps
    eta = tf.zeros_like(x)
    momentum = tf.zeros_like(x)
    axes = list(range(1, len(x.shape)))
    for t in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(eta)
            log_probs = forward(diversify(x + eta, diversity, tf.stack([seed, t]), std))
            loss = -tf.reduce_sum(tf.gather(log_probs, y, axis=1, batch_dims=1))
        grad = tape.gradient(loss, eta)
        norm = tf.reduce_sum(tf.abs(grad), axis=axes, keepdims=True)
        momentum = decay * momentum + grad / tf.maximum(norm, 1e-12)
        eta = tf.clip_by_value(eta + step * tf.sign(momentum), -epsilon, epsilon)
    return eta


def _classifier(forward: Callable, input_shape):
    """ART's TensorFlow-2 classifier around `forward` (log-probabilities out), built once
    per forward function (a new one per call would retrace ART's graph every batch). The
    loss is cross-entropy: Keras's from-logits categorical cross-entropy on
    log-probabilities is -log p_y (the log-sum-exp of log-probabilities is 0)."""
    return _per_forward(forward, ("art", tuple(input_shape)),
                        lambda: _new_classifier(forward, input_shape))


def _new_classifier(forward: Callable, input_shape):
    import keras

    _, TensorFlowV2Classifier = _art()

    @tf.autograph.experimental.do_not_convert
    def model(x, training=False):
        return forward(x)

    probe = forward(tf.zeros((1, *input_shape), tf.float32))
    return TensorFlowV2Classifier(
        model=model, nb_classes=int(probe.shape[-1]),
        input_shape=tuple(input_shape),
        loss_object=keras.losses.CategoricalCrossentropy(from_logits=True))
