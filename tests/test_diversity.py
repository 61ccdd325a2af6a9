"""Input diversity (data/diversity.py), DI-FGSM and the ensemble MI-FGSM against hand
computations on linear models."""
import numpy as np
import pytest
import tensorflow as tf

from tfadvser.data import diversity
from tfadvser.attack.baselines import di_fgsm, ensemble, mi_fgsm
from tfadvser.config import Budget

X = np.arange(8, dtype=np.float32).reshape(1, 4, 2)  # [B=1, frames=4, bins=2]


def _draw(**values):
    full = {"shift": [0], "time_start": [0], "time_width": [0], "freq_start": [0],
            "freq_width": [0], "gain_db": [0.0], "apply": [True]}
    full.update(values)
    return diversity.Draw(**{k: tf.constant(v) for k, v in full.items()})


def test_apply_rolls_masks_and_gains_as_written():
    # roll by +1 frame: output frame t is input frame t - 1
    np.testing.assert_array_equal(diversity.apply(X, _draw(shift=[1])).numpy()[0],
                                  [[6, 7], [0, 1], [2, 3], [4, 5]])
    # frames 1-2 and mel bin 1 masked to 0
    np.testing.assert_array_equal(
        diversity.apply(X, _draw(time_start=[1], time_width=[2], freq_start=[1], freq_width=[1])).numpy()[0],
        [[0, 0], [0, 0], [0, 0], [6, 0]])
    # +20 dB on log-magnitudes: ln(10) per bin, divided by std per bin (1 and 2)
    gained = diversity.apply(X, _draw(gain_db=[20.0]), std=np.float32([1.0, 2.0])).numpy()[0]
    np.testing.assert_allclose(gained - X[0], [[np.log(10), np.log(10) / 2]] * 4, rtol=1e-6)
    # not drawn for this clip: unchanged
    np.testing.assert_array_equal(diversity.apply(X, _draw(shift=[1], apply=[False])).numpy(), X)


def test_draws_are_stateless_and_within_range():
    settings = diversity.Diversity(probability=1.0, max_shift=3, max_time_mask=2, max_freq_mask=1)
    first = diversity.draw(settings, 64, 10, 4, tf.constant([5, 0]))
    again = diversity.draw(settings, 64, 10, 4, tf.constant([5, 0]))
    other = diversity.draw(settings, 64, 10, 4, tf.constant([5, 1]))
    np.testing.assert_array_equal(first.shift, again.shift)
    assert not np.array_equal(first.shift, other.shift)
    assert set(first.shift.numpy()) == {-3, -2, -1, 0, 1, 2, 3}
    assert first.time_width.numpy().max() == 2 and first.freq_width.numpy().max() == 1
    assert (first.time_start + first.time_width).numpy().max() <= 10
    assert (first.freq_start + first.freq_width).numpy().max() <= 4
    assert first.apply.numpy().all()
    with pytest.raises(ValueError, match="probability"):
        diversity.Diversity(probability=1.5)


# Linear logits z_c = sum_{t,b} W[c, t, b] v[t, b]: on x = 0 both classes have p = 0.5, so
# the gradient of the cross-entropy of label 0 with respect to v is 0.5 (W[1] - W[0]).
W = np.array([[[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, -1.0]],
              [[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]], np.float32)


def _linear(weights):
    w = tf.constant(weights)

    def forward(v):
        return tf.nn.log_softmax(tf.einsum("btf,ctf->bc", v, w))
    return forward


def test_di_fgsm_one_step_matches_a_hand_computation():
    x, y, budget = np.zeros((1, 4, 2), np.float32), np.array([0]), Budget(0.1, None)
    settings = diversity.Diversity(probability=1.0, max_shift=1, max_time_mask=0, max_freq_mask=0)
    shift = int(diversity.draw(settings, 1, 4, 2, tf.constant([7, 0])).shift[0])
    # One step: eta = eps sign(grad). The model reads v rolled by s, so the gradient with
    # respect to eta at frame t is that of the model's input at frame t + s.
    grad_view = 0.5 * (W[1] - W[0])
    expected = 0.1 * np.sign(np.roll(grad_view, -shift, axis=0))
    eta = di_fgsm(_linear(W), x, y, budget, None, None, steps=1, diversity=settings, seed=7)
    np.testing.assert_allclose(eta[0], expected, atol=1e-7)
    # shift 0 (checked by hand): [[-1, 0], [2, 0], [0, 1], [0, 1]] / 2 -> signs
    if shift == 0:
        np.testing.assert_allclose(expected, 0.1 * np.array([[-1, 0], [1, 0], [0, 1], [0, 1]]))
    # an inactive diversity is MI-FGSM exactly
    off = diversity.Diversity(probability=0.0)
    np.testing.assert_array_equal(
        di_fgsm(_linear(W), x, y, budget, None, None, diversity=off),
        mi_fgsm(_linear(W), x, y, budget, None, None))


def test_di_fgsm_masks_hide_the_gradient():
    x, y, budget = np.zeros((1, 4, 2), np.float32), np.array([0]), Budget(0.1, None)
    settings = diversity.Diversity(probability=1.0, max_shift=0, max_time_mask=4, max_freq_mask=0)
    choice = diversity.draw(settings, 1, 4, 2, tf.constant([3, 0]))
    start, width = int(choice.time_start[0]), int(choice.time_width[0])
    expected = 0.1 * np.sign(0.5 * (W[1] - W[0]))
    expected[start:start + width] = 0.0  # masked frames get no gradient: sign(0) = 0
    eta = di_fgsm(_linear(W), x, y, budget, None, None, steps=1, diversity=settings, seed=3)
    np.testing.assert_allclose(eta[0], expected, atol=1e-7)


def test_ensemble_mi_fgsm_follows_the_fused_gradient():
    # Model a reads bin 0 of frame 0 only, weakly; model b reads it the other way, strongly:
    # the fused gradient there has b's sign; elsewhere only a or only b speaks.
    a = np.zeros_like(W)
    a[1, 0, 0] = 1.0   # a: class 1 likes frame 0 bin 0
    a[1, 1, 1] = 1.0
    b = np.zeros_like(W)
    b[0, 0, 0] = 3.0   # b: class 0 likes it, three times as much
    b[1, 2, 1] = 1.0
    x, y, budget = np.zeros((1, 4, 2), np.float32), np.array([0]), Budget(0.2, None)
    eta = mi_fgsm(ensemble([_linear(a), _linear(b)]), x, y, budget, None, None, steps=1)
    # 0.5 * mean over models of (W[1] - W[0]): bin (0,0): (1 - 3) / 2 < 0; (1,1): +; (2,1): +
    expected = np.zeros((4, 2), np.float32)
    expected[0, 0], expected[1, 1], expected[2, 1] = -0.2, 0.2, 0.2
    np.testing.assert_allclose(eta[0], expected, atol=1e-7)
    single = _linear(a)
    assert ensemble([single]) is single
    other = _linear(b)
    assert ensemble([single, other]) is ensemble([single, other])  # built once per tuple
    with pytest.raises(ValueError, match="at least one"):
        ensemble([])


def test_spec_augment_views_a_defences_training_batches():
    from tfadvser.config import DefenceConfig
    from tfadvser.defence.training import spec_augmented

    x = tf.reshape(tf.range(2 * 373 * 64, dtype=tf.float32), (2, 373, 64)) + 1.0
    y = tf.constant([3, 5], tf.int64)
    batches = tf.data.Dataset.from_tensors((x, y)).repeat(2)
    assert spec_augmented(batches, DefenceConfig()) is batches  # off by default
    seen = list(spec_augmented(batches, DefenceConfig(spec_augment=1.0, seed=7)))
    # Batch i is viewed through the draw of seed (config.seed, i): batch 0 here, then anew.
    expected = diversity.apply(x, diversity.draw(diversity.Diversity(probability=1.0), 2, 373, 64,
                                                tf.constant([7, 0], tf.int64)))
    np.testing.assert_array_equal(seen[0][0].numpy(), expected.numpy())
    assert not np.array_equal(seen[0][0].numpy(), x.numpy())
    assert not np.array_equal(seen[0][0].numpy(), seen[1][0].numpy())
    assert [b[1].numpy().tolist() for b in seen] == [[3, 5], [3, 5]]
    # Recorded with a defence only when on: older defences keep their records.
    assert "spec_augment" not in DefenceConfig().record()
    assert DefenceConfig(spec_augment=0.5).record()["spec_augment"] == 0.5
    with pytest.raises(ValueError, match="spec_augment must be a probability"):
        DefenceConfig(spec_augment=1.5)
