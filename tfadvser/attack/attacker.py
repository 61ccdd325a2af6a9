"""The atrous-CNN attacker and the one training step every learning method shares.

Generator (paper section 4.2, original-code-facts section 4): four 5x5 convolutions with
dilations 1/2/4/8 and 64/128/64/1 channels, "same" size, no bias, BatchNorm after each,
ReLU after the first three and a sigmoid after the last. Its output is the perturbation
eta in (0, 1), added to the standardised log-Mel: x' = x + eta. Nothing bounds eta except
the MSE term, exactly as in the paper; every log reports its size. That is the "paper"
perturbation; the product's default is a bounded one (epsilon * tanh and an SNR floor in
place of the sigmoid, `attack/budget.py`), and a universal generator (one eta for every
clip) can stand in for the atrous one.
"""
from __future__ import annotations

import types
from typing import Optional, Sequence

import keras
import tensorflow as tf
from keras import layers

from tfadvser.runtime import distribute
from tfadvser.runtime.atrous import AtrousConv2D
from tfadvser.defence.models import batch_norm, scaled_channels
from tfadvser.runtime.inference import inference
from tfadvser.attack.budget import BudgetHead, UniversalPerturbation
from tfadvser.data.diversity import Diversity, diversify
from tfadvser.attack.losses import attack_loss
from tfadvser.config import Budget
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.metrics import success_rate

GENERATOR_CHANNELS = (64, 128, 64, 1)
GENERATOR_DILATIONS = (1, 2, 4, 8)


def build_generator(width: float = 1.0, shape=(373, 64), budget: Optional[Budget] = None,
                    mean=None, std=None, kind: str = "atrous", head: str = "tanh",
                    curriculum: bool = False) -> keras.Model:
    """The generator G: log_mel [B, *shape] -> eta [B, *shape], float32.

    kind "atrous": the paper's network, channels scaled by `width` (the output channel stays
    1); at width 1.0, 413 314 trainable parameters (412 800 conv + 514 BN), as the original
    (facts section 4). kind "universal": one trainable map for every clip
    (`budget.UniversalPerturbation`, frames x n_mels parameters; `width` unused).
    The output head (`budget.BudgetHead`): the paper's sigmoid, eta in (0, 1), for no
    `budget` or an unbounded one (`config.Budget()`), or an eta bounded by `budget`
    (epsilon * tanh, then the per-clip SNR floor, which needs the data's `mean` and `std`
    [n_mels]). Raises ValueError for an unknown kind or an SNR floor without statistics.
    """
    inputs = keras.Input(shape=tuple(shape), name="log_mel")
    bounded = budget is not None and budget.bounded
    if kind == "universal":
        z = UniversalPerturbation(name="universal")(inputs)
        if not bounded:
            eta = BudgetHead("paper", name="eta")([inputs, z])
            return keras.Model(inputs, eta, name="universal_generator")
    elif kind == "atrous":
        x = layers.Reshape((*shape, 1))(inputs)
        last = len(GENERATOR_CHANNELS)
        for i, (channels, dilation) in enumerate(zip(GENERATOR_CHANNELS, GENERATOR_DILATIONS), start=1):
            channels = channels if i == last else scaled_channels(channels, width)
            x = AtrousConv2D(channels, 5, dilation_rate=dilation, padding="same", use_bias=False,
                             kernel_initializer="he_uniform", name=f"atrous{i}_conv")(x)
            x = batch_norm(f"atrous{i}_bn")(x)
            if i < last:
                x = layers.Activation("relu", name=f"atrous{i}_act")(x)
            elif not bounded:
                # The output layer stays float32 under mixed precision: x' = x + eta is float32.
                x = layers.Activation("sigmoid", name=f"atrous{i}_act", dtype="float32")(x)
        z = layers.Reshape(tuple(shape), name="eta" if not bounded else "z", dtype="float32")(x)
        if not bounded:
            return keras.Model(inputs, z, name="atrous_generator")
    else:
        raise ValueError(f"unknown generator kind {kind!r}")
    eta = BudgetHead("bounded", budget.epsilon, budget.snr_db, mean, std, head=head,
                     curriculum=curriculum, name="eta")([inputs, z])
    return keras.Model(inputs, eta, name=f"{kind}_generator")


def generator_for(config, shape, data=None) -> keras.Model:
    """`build_generator` as an AttackerConfig asks (`data`: a DataFolder, for the SNR floor's
    statistics)."""
    stats = {"mean": data.mean, "std": data.std} if data is not None else {}
    return build_generator(config.width, shape, config.budget, kind=config.generator,
                           head=config.head, curriculum=config.curriculum > 1.0, **stats)


class AdversarialAttacker(distribute.ReplicaConsistentModel, keras.Model):
    """A generator trained against frozen defences (paper Eqs. 1-3). `call(x)` maps a
    standardised log-Mel batch [B, frames, n_mels] to (x' = x + eta, eta), both of that shape.

    `term`: what a continual-learning regulariser adds to the loss (`attack/regularisers/`,
    e.g. `base.QuadraticPenalty` for EWC), None for none. The attacker knows no method: it
    adds `term.strength * part` to the loss for each part `term(...)` returns and logs the
    part under its name. A term holds its values in variables, so one compiled train step
    serves later tasks with other values (`term.assign`). Raises ValueError without defences.
    """

    def __init__(self, generator: keras.Model, defences: Sequence[keras.Model], alpha: float = 0.02,
                 cw_reduction: str = "sum", term=None,
                 round_trip=None, losses: Sequence[str] = ("cw",),
                 kappa: float = 0.0, diversity: float = 0.0,
                 feature_layers: Optional[Sequence[str]] = None, **kwargs):
        super().__init__(**kwargs)
        if not defences:
            raise ValueError("an attacker needs at least one defence")
        self.generator = generator
        # Held outside Keras's attribute tracking: the defences are not part of the attacker,
        # so its weights (and BackupAndRestore's copy of them every epoch) are the
        # generator's and the optimizer's only, not the three defences' as well.
        self._frozen = types.SimpleNamespace(
            # The term may hold a frozen generator (LwF): not the attacker's weights either.
            defences=list(defences), term=term, round_trip=round_trip,
            # A feature loss reads each defence's mid layer and output in one pass.
            features=([feature_model(d, layer) for d, layer in zip(defences, feature_layers, strict=True)]
                      if any(name.startswith("feature") for name in losses) else None),
            diversity_seed=tf.Variable(0, dtype=tf.int32, trainable=False))
        for defence in self.defences:
            defence.trainable = False
        self.alpha, self.cw_reduction = alpha, cw_reduction
        self.attack_losses, self.kappa = tuple(losses), kappa
        self.diversity = Diversity(probability=diversity) if diversity > 0 else None
        names = ("loss", *self.attack_losses, "mse", *(term.parts if term is not None else ()),
                 "success_rate", "eta_mean", "eta_max")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def defences(self) -> list:
        """The frozen defences this attacker is trained against."""
        return self._frozen.defences

    @property
    def term(self):
        """The regulariser's term of the current task (None: none); `term.assign` sets the
        next task's strength and values, within the structure it was built with."""
        return self._frozen.term

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        if isinstance(x, (tuple, list)):  # (x, waveforms, lengths) of round-trip training
            x = x[0]
        eta = self.generator(x, training=training)
        return x + eta, eta

    def train_step(self, data):
        """One step of paper Eqs. (1)-(3), for every learning method:

        1. eta = G(x): the generator's perturbation of the standardised log-Mel batch x.
        2. x' = x + eta.
        3. Every defence f_k scores x' in inference mode (frozen weights and BN statistics).
        4. loss = alpha/n * sum_k C&W(f_k(x'), y) + (1 - alpha) * MSE(x', x)       Eqs. (1), (2)
                  + strength * term                                                Eq. (3)
           (the regulariser's term: EWC's lambda * sum_i F_i (theta_i - theta*_i)^2; no
           term, or a penalty with no pairs, outside lifelong learning).
        5. One Adam step on the generator's trainable weights.
        6. The loss terms, the fooling rate and eta's size go to one Mean tracker each.

        With input diversity (`data/diversity.py`), step 3 scores a random view of x' (and
        the relativistic and feature losses a view of x through the same draw); the logged
        success rate is then that on the views.
        Trained through the audio round trip (`round_trip`, batches ((x, waveforms,
        lengths), y)), step 3 scores the log-Mel re-extracted from x' rendered as audio
        (`attack/round_trip.py`) instead of x'; the MSE still measures eta.
        """
        x, y, audio = _unpack(data)
        with tf.GradientTape() as tape:
            eta, adv_log_probs, terms = self._objective(x, y, training=True, audio=audio)
        weights = self.generator.trainable_weights
        # Under tf.distribute each replica's loss is its share of the global batch's, and
        # the optimizer sums the replicas' gradients (see `losses` and `runtime.distribute`).
        self.optimizer.apply_gradients(zip(tape.gradient(terms["loss"], weights), weights))
        return self._track(x, y, eta, adv_log_probs, terms)

    def test_step(self, data):
        x, y, audio = _unpack(data)
        eta, adv_log_probs, terms = self._objective(x, y, training=False, audio=audio)
        return self._track(x, y, eta, adv_log_probs, terms)

    def set_diversity_seed(self, seed: int) -> None:
        """The seed of this task's random views (input diversity), with the step count."""
        self._frozen.diversity_seed.assign(seed)

    def _objective(self, x, y, training: bool, audio=None):
        """Steps 1-4 of `train_step`: (eta, the defences' log-probabilities on x', terms)."""
        global_batch = distribute.global_batch_size(tf.shape(x)[0])
        eta = self.generator(x, training=training)
        x_adv = x + eta
        scored, clean = x_adv, x
        if audio is not None and self._frozen.round_trip is not None:
            scored = self._frozen.round_trip(eta, *audio)
        if training and self.diversity is not None:
            # One random view per step of x' and of x alike (the clean reference of the
            # relativistic and feature losses sees what x' is seen through).
            seed = tf.stack([self._frozen.diversity_seed,
                             tf.cast(self.optimizer.iterations, tf.int32)])
            scored = diversify(scored, self.diversity, seed)
            clean = diversify(clean, self.diversity, seed)
        # Defences always run in inference mode: BN uses its moving statistics, which
        # therefore never change, and no defence weight is in the gradient.
        features = None
        if self._frozen.features is not None:
            adv_outputs = [inference(m)(scored) for m in self._frozen.features]
            adv_log_probs = [out[1] for out in adv_outputs]
            features = [(out[0], inference(m)(clean)[0])
                        for out, m in zip(adv_outputs, self._frozen.features)]
        else:
            adv_log_probs = [inference(d)(scored) for d in self.defences]
        clean_log_probs = ([inference(d)(clean) for d in self.defences]
                           if "rce" in self.attack_losses else None)
        terms = attack_loss(adv_log_probs, y, x_adv, x, self.alpha, self.cw_reduction,
                            global_batch, self.attack_losses, self.kappa, clean_log_probs, features)
        term = self._frozen.term
        if term is not None:  # the regulariser's parts, each this replica's share
            for name, value in term(self.generator, x, eta, global_batch).items():
                terms[name] = value
                terms["loss"] = terms["loss"] + term.strength * value
        return eta, adv_log_probs, terms

    def _track(self, x, y, eta, adv_log_probs, terms):
        clean_log_probs = [inference(d)(x) for d in self.defences]
        rates = [success_rate(c, a, _labels_or_clean(y, c))
                 for c, a in zip(clean_log_probs, adv_log_probs)]
        share = _share(x, distribute.global_batch_size(tf.shape(x)[0]))
        # Logged values are those of the global batch, identical on every replica: the
        # trackers then report what one device would.
        values = distribute.sum_over_replicas(
            {**terms, "success_rate": tf.add_n(rates) / len(rates) * share,
             "eta_mean": tf.reduce_mean(eta) * share})
        values["eta_max"] = distribute.max_over_replicas(tf.reduce_max(tf.abs(eta)))
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name])
        return self.step_logs({name: tracker.result() for name, tracker in self.trackers.items()})


def feature_model(defence: keras.Model, layer: str) -> keras.Model:
    """defence's input -> (the activations of `layer`, its log-probabilities), for the feature
    losses. Raises TfadvserError naming the layer and the model when it has no such layer."""
    try:
        inner = defence.get_layer(layer).output
    except (ValueError, AttributeError):
        names = ", ".join(l.name for l in getattr(defence, "layers", [])[:40])
        raise TfadvserError(f"{getattr(defence, 'name', 'the model')} has no layer {layer!r} for a "
                         f"feature loss (its layers: {names})") from None
    return keras.Model(defence.inputs, [inner, defence.outputs[0]],
                       name=f"{defence.name}_features_{layer}")


def _unpack(data):
    """(x, y, (waveforms, lengths) or None) of a plain or a round-trip batch; a third entry
    (the sample weight Keras' `train_on_batch` adds) is ignored."""
    inputs, y = data[0], data[1]
    if isinstance(inputs, (tuple, list)):
        return inputs[0], y, tuple(inputs[1:])
    return inputs, y, None


def _labels_or_clean(y, clean_log_probs) -> tf.Tensor:
    """The labels, with the defence's clean prediction for an unlabelled clip (label -1, an
    unlabelled attacker corpus): its logged success is then the flip rate."""
    clean = tf.argmax(clean_log_probs, axis=-1, output_type=tf.int32)
    y = tf.cast(y, tf.int32)
    return tf.where(y >= 0, y, clean)


def _share(x, global_batch) -> tf.Tensor:
    """This replica's share of the global batch (1.0 on one device)."""
    return tf.cast(tf.shape(x)[0], tf.float32) / global_batch
