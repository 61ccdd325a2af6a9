"""The Fisher estimate against a closed-form hand computation on a one-parameter attacker."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadvser.attack.ewc import estimate_fisher

ALPHA = 0.02


class Scale(keras.layers.Layer):
    """eta = a * x with one trainable scalar a."""

    def build(self, input_shape):
        self.a = self.add_weight(shape=(), initializer=keras.initializers.Constant(0.3), name="a")

    def call(self, x):
        return self.a * x


W = np.array([[1.0, -1.0, 0.5], [0.2, 0.8, -0.6]], np.float32)  # (2 features, 3 classes)


def tiny_models():
    inputs = keras.Input((2, 1))
    generator = keras.Model(inputs, Scale()(inputs))
    d_in = keras.Input((2, 1))
    logits = keras.layers.Dense(3, use_bias=False, trainable=False)(keras.layers.Flatten()(d_in))
    defence = keras.Model(d_in, keras.layers.Activation("log_softmax")(logits))
    defence.layers[-2].set_weights([W])
    return generator, defence


X = np.array([[[1.0], [2.0]], [[-1.0], [0.5]], [[0.3], [-2.0]], [[2.0], [1.0]]], np.float32)
Y = np.array([0, 1, 2, 1])


def hand_gradient(xs, ys, a=0.3):
    """d/da of alpha * sum_i max(z_y - max_other z, 0) + (1 - alpha) * mean(eta^2), where the
    adversarial logits are z = (1 + a) W^T x, so the margin's slope is (W^T x)_y - (W^T x)_j*."""
    grad = 0.0
    for x, y in zip(xs, ys):
        clean = x.ravel() @ W
        others = [j for j in range(3) if j != y]
        j = max(others, key=lambda k: clean[k])
        if (1 + a) * (clean[y] - clean[j]) > 0:
            grad += ALPHA * (clean[y] - clean[j])
    return grad + (1 - ALPHA) * 2 * a * np.mean(np.square(xs))


def test_batch_fisher_is_squared_minibatch_gradients_over_clips():
    generator, defence = tiny_models()
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(2)
    fisher, clips = estimate_fisher(generator, [defence], dataset, ALPHA)
    expected = (hand_gradient(X[:2], Y[:2]) ** 2 + hand_gradient(X[2:], Y[2:]) ** 2) / 4
    assert clips == 4
    assert float(fisher[0]) == pytest.approx(expected, rel=1e-5)
    # by hand: batch gradients 0.97875 and 1.365230 -> (0.957952 + 1.863853) / 4
    assert float(fisher[0]) == pytest.approx(0.7054512, rel=1e-5)


def test_example_fisher_squares_per_example_gradients():
    generator, defence = tiny_models()
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(2)
    fisher, _ = estimate_fisher(generator, [defence], dataset, ALPHA, mode="example")
    expected = sum(hand_gradient(X[i:i + 1], Y[i:i + 1]) ** 2 for i in range(4)) / 4
    assert float(fisher[0]) == pytest.approx(expected, rel=1e-5)


def test_bad_mode():
    generator, defence = tiny_models()
    with pytest.raises(ValueError, match="Fisher mode"):
        estimate_fisher(generator, [defence], tf.data.Dataset.from_tensor_slices((X, Y)).batch(2),
                        ALPHA, mode="full")
