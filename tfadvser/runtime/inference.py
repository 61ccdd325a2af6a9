"""Forward passes as graphs, traced once per model and shared by everything that calls them.

Eager calls of a deep defence spend most of their time dispatching ops; evaluation calls
each defence hundreds of times. Called inside another traced function (an attacker's train
step, the Fisher pass), a defence's forward is embedded as one function call: the defence
is traced, and its gradient function built, once per process instead of once per attacker
task (a train step against ResNet-50 at the smoke profile traced in 0.6 s instead of 2.2 s).
"""
from __future__ import annotations

import weakref
from typing import Callable, Optional

import keras
import tensorflow as tf

# Saved generators hold these layers: loading one needs them registered.
from tfadvser.runtime.atrous import AtrousConv2D  # noqa: F401
from tfadvser.runtime.batch_norm import FusedBatchNormalization  # noqa: F401


def inference(model: keras.Model) -> Callable:
    """`model(x, training=False)` as a traced function of a float32 batch of any size."""
    if model not in _FORWARD:
        _FORWARD[model] = _Forward(model)
    return _FORWARD[model]


class _Forward:
    """Traced on the first call for any batch size (a last, smaller batch would otherwise
    trace a second graph). Holds the model weakly: the cache must not keep it alive."""

    def __init__(self, model: keras.Model):
        self.model, self.function = weakref.ref(model), None

    def __call__(self, x):
        if self.function is None:
            model = self.model
            spec = tf.TensorSpec((None, *x.shape[1:]), tf.float32)
            self.function = tf.function(lambda x: model()(x, training=False), input_signature=[spec])
        return self.function(x)


class GeneratorSlot:
    """Attackers loaded one after another into one model, traced once: the attackers of a
    run mostly share an architecture, and a graph per attacker would cost more than it
    saves. A generator whose configuration differs (another budget, a universal one) gets
    a model of its own."""

    def __init__(self):
        self.model: Optional[keras.Model] = None

    def load(self, path) -> keras.Model:
        """The attacker saved at `path`, in the slot's model (whose `inference` is traced once)."""
        loaded = keras.saving.load_model(path, compile=False)
        if self.model is None or self.model.get_config() != loaded.get_config():
            self.model = loaded
        else:
            self.model.set_weights(loaded.get_weights())
        return self.model


_FORWARD: "weakref.WeakKeyDictionary[keras.Model, _Forward]" = weakref.WeakKeyDictionary()
