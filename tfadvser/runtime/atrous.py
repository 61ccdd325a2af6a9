"""The generator's dilated (atrous) convolution, run as one native op where it can be.

Keras's Conv2D hands a dilated convolution to `tf.nn.convolution`, which wraps an undilated
Conv2D in SpaceToBatchND / BatchToSpaceND. At the generator's narrow widths those reshuffles
cost as much as the convolution itself: forward and backward of one dilated layer take
1.4-2x longer than a single Conv2D op with its `dilations` attribute (measured on a 2-core
CPU, batch 16, 373x64). The native op computes the same convolution (same weights, results
equal to float32 rounding); its forward runs on every TensorFlow kernel, but its gradient
needs oneDNN on a CPU (on by default for x86 Linux builds) or a GPU. Where the gradient is
not available the layer falls back to Keras's path, so models train everywhere.
"""
from __future__ import annotations

import functools
import threading

import keras
import tensorflow as tf
from keras import layers


@functools.lru_cache(maxsize=None)
def native_dilated_gradients() -> bool:
    """Whether this process's default device can differentiate a dilated Conv2D op."""
    # Probed in a thread of its own: eager there even when first asked while a function is
    # being traced (where `tf.init_scope` would run eagerly but stop the gradient tape).
    # An error in the probe is raised here, as itself (not as an empty result).
    result = []

    def probe():
        try:
            result.append(_probe())
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            result.append(exc)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _probe() -> bool:
    x = tf.zeros((1, 8, 8, 1))
    kernel = tf.zeros((3, 3, 1, 1))
    try:
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=2)
        gradients = tape.gradient(y, [x, kernel])
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        return False
    return all(g is not None for g in gradients)


@keras.saving.register_keras_serializable(package="tfadvser")
class AtrousConv2D(layers.Conv2D):
    """Conv2D whose dilated convolution is one native op (see the module docstring)."""

    def convolution_op(self, inputs, kernel):
        """One native dilated Conv2D where its gradient exists, else Keras's own path."""
        if (max(self.dilation_rate) == 1 or self.data_format != "channels_last"
                or self.groups != 1 or not native_dilated_gradients()):
            return super().convolution_op(inputs, kernel)
        return tf.nn.conv2d(inputs, kernel, strides=list(self.strides),
                            padding=self.padding.upper(), dilations=list(self.dilation_rate))
