"""Options every tf.data pipeline of the package runs with.

tf.data's autotuner (on by default) keeps a background thread per iterator, and destroying
an iterator mid-stream, as Keras's `fit` does with its repeated training set, can wait for
that thread. Measured here (TF 2.16, 2 cores, a 20-step `fit` against VGG-16): 9 of 15 runs
sat 8-10 s idle after the last step, the CPU doing nothing, each ending 20.48 s
(10 ms x 2^11) after the fit began; with the autotuner off, 0 of 7. Every attacker
task and defence is one `fit`. Our pipelines are short (read, parse, standardise), so the
autotuner has little to tune.
"""
from __future__ import annotations

import tensorflow as tf


def pipeline_options() -> tf.data.Options:
    """tf.data options with the autotuner off (see the module docstring)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options
