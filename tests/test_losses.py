"""The attack objective, Eqs. (1)-(3), against numbers worked out by hand."""
import numpy as np
import pytest
import tensorflow as tf

from tfadvser.attack.ewc import ewc_penalty
from tfadvser.attack.losses import attack_loss, cw_loss, mse_loss

LOG_PROBS = tf.constant([[-0.1, -2.5, -3.0], [-2.0, -0.2, -1.9]])
LABELS = tf.constant([0, 2])


def test_cw_literal():
    # clip 0: true -0.1, best other -2.5 -> margin 2.4; clip 1: true -1.9, best other -0.2 -> 0
    assert float(cw_loss(LOG_PROBS, LABELS)) == pytest.approx(2.4)
    assert float(cw_loss(LOG_PROBS, LABELS, reduction="mean")) == pytest.approx(1.2)
    with pytest.raises(ValueError, match="reduction"):
        cw_loss(LOG_PROBS, LABELS, reduction="max")


def test_cw_on_log_softmax_equals_cw_on_logits():
    logits = tf.constant(np.random.default_rng(0).normal(scale=3.0, size=(32, 7)), tf.float32)
    labels = tf.constant(np.random.default_rng(1).integers(0, 7, 32))
    a = cw_loss(tf.nn.log_softmax(logits), labels)
    b = cw_loss(logits, labels)
    assert float(a) > 0
    assert float(a) == pytest.approx(float(b), rel=1e-5)


def test_mse_literal():
    x = tf.zeros([1, 2, 2])
    x_adv = tf.constant([[[1.0, 0.0], [0.0, 0.5]]])
    assert float(mse_loss(x_adv, x)) == pytest.approx(0.3125)


def test_attack_loss_literal_and_averaged_over_defences():
    x = tf.zeros([1, 2, 2])
    x_adv = tf.constant([[[1.0, 0.0], [0.0, 0.5]]])
    terms = attack_loss([LOG_PROBS], LABELS, x_adv, x, alpha=0.02)
    assert float(terms["loss"]) == pytest.approx(0.02 * 2.4 + 0.98 * 0.3125)  # 0.35425
    # a second defence with margin 0 everywhere halves the averaged C&W term
    easy = tf.constant([[-3.0, -0.1, -2.5], [-2.0, -0.2, -1.9]])
    two = attack_loss([LOG_PROBS, easy], LABELS, x_adv, x, alpha=0.02)
    assert float(two["cw"]) == pytest.approx(1.2)
    assert float(two["loss"]) == pytest.approx(0.02 * 1.2 + 0.98 * 0.3125)


def test_ewc_penalty_literal_zero_at_anchor_and_growing():
    fisher = [np.array([0.5, 2.0], np.float32)]
    anchor = [np.array([0.0, 1.0], np.float32)]
    assert float(ewc_penalty([tf.constant([1.0, 2.0])], [(fisher, anchor)])) == pytest.approx(2.5)
    assert float(ewc_penalty([tf.constant(anchor[0])], [(fisher, anchor)])) == 0.0
    near = float(ewc_penalty([tf.constant([0.1, 1.1])], [(fisher, anchor)]))
    far = float(ewc_penalty([tf.constant([1.0, 2.0])], [(fisher, anchor)]))
    assert 0 < near < far
    # two accumulated terms add up
    assert float(ewc_penalty([tf.constant([1.0, 2.0])], [(fisher, anchor)] * 2)) == pytest.approx(5.0)
