"""Query-based attacks (attack/query.py) against a tiny Keras model with a hand-made
decision boundary, where the outcome is known before the attack runs.

The victim: log-Mel [373, 64] -> softmax of two logits whose difference is
100 * (x[186, 32] - 0.5). The clean clip is 0 there (class 0, right), so the label
flips exactly when the perturbation of that one bin exceeds 0.5: at L∞ 0.4 no attack
can succeed (every query the budget allows is answered "class 0"), at L∞ 0.6 one can.
"""
import math

import keras
import numpy as np
import pytest

from tfadvser.attack.query import (CountingVictim, QueryBudgetExhausted, _p_selection,
                                   hop_skip_jump, noise_search, paired_prior, run_attack,
                                   square_attack, within_budget)
from tfadvser.config import Budget
from tfadvser.errors import TfadvserError

ROW, COL = 186, 32
MEAN, STD = np.zeros(64, np.float32), np.ones(64, np.float32)


@pytest.fixture(scope="module")
def boundary_model():
    inputs = keras.Input((373, 64))
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    kernel = np.zeros((373 * 64, 2), np.float32)
    kernel[ROW * 64 + COL, 1] = 100.0
    dense.set_weights([kernel, np.array([0.0, -50.0], np.float32)])
    return model


def clips(n=2):
    """n clean clips: 0 at the boundary bin, one bin at -1 and one at +1 (HSJ's range)."""
    x = np.zeros((n, 373, 64), np.float32)
    x[:, 0, 0], x[:, 1, 1] = -1.0, 1.0
    return x, np.zeros(n, int)


def victim(model, epsilon, max_queries, snr_db=None, n=2, batch_size=64):
    x, y = clips(n)
    return CountingVictim(lambda batch: model.predict_on_batch(batch), x, y,
                          Budget(epsilon, snr_db), MEAN, STD, max_queries, n_classes=2,
                          batch_size=batch_size)


@pytest.mark.parametrize("attack", ["square", "hsj", "noise"])
def test_no_attack_succeeds_when_the_boundary_is_beyond_the_budget(boundary_model, attack):
    v = victim(boundary_model, 0.4, 60)
    result = run_attack(attack, v, seed=1)
    assert result["attacked"] == 2 and result["clean_correct"] == [True, True]
    assert result["success_at"] == {"10": {"rate": 0.0, "ci": [0.0, 0.0]},
                                    "60": {"rate": 0.0, "ci": [0.0, 0.0]}}
    assert result["median_queries"] == [None, None, None]
    assert result["queries_to_success"] == [None, None]
    # every query the budget allows was sent and counted (HSJ's last one: its end point,
    # projected onto the budget)
    assert v.queries.tolist() == [60, 60]


@pytest.mark.parametrize("attack", ["square", "hsj", "noise"])
def test_every_attack_succeeds_when_the_budget_reaches_the_boundary(boundary_model, attack):
    v = victim(boundary_model, 0.6, 1000)
    result = run_attack(attack, v, seed=0)
    assert result["success_at"]["1000"]["rate"] == 1.0
    for row in range(2):
        eta = v.success_eta[row]
        # success is measured on an eta within the budget that flips the label
        assert np.max(np.abs(eta)) <= 0.6 + 1e-6 and eta[ROW, COL] > 0.5
        assert 2 <= v.success_query[row] <= v.queries[row] <= 1000
    # an attack stops querying a clip once it is fooled: HSJ after the batch (at most the
    # victim's batch size, 64) that held the success
    extra = v.queries - v.success_query
    assert extra.tolist() == [0, 0] if attack != "hsj" else np.all(extra < 64)


@pytest.mark.parametrize("attack", ["square", "hsj"])
def test_a_prior_pointing_across_the_boundary_succeeds_at_the_second_query(boundary_model, attack):
    v = victim(boundary_model, 0.6, 100)
    prior = np.zeros((2, 373, 64), np.float32)
    prior[:, ROW, COL] = 0.6
    result = run_attack(attack, v, prior=prior, seed=0)
    # query 1 is the clean clip, query 2 the prior projected onto the budget
    assert result["queries_to_success"] == [2, 2]
    assert result["median_queries"] == [2.0, 2.0, 2.0]
    assert result["success_at"]["10"] == {"rate": 1.0, "ci": [1.0, 1.0]}
    assert result["queries_sent"] == 4


def test_the_snr_floor_applies_to_every_candidate(boundary_model):
    # L∞ 0.6 reaches the boundary, but a 60 dB floor scales any eta far below 0.5
    v = victim(boundary_model, 0.6, 40, snr_db=60.0)
    square_attack(v, seed=0)
    assert v.success_query.tolist() == [0, 0] and v.queries.tolist() == [40, 40]


def test_a_prior_in_the_right_direction_beats_none_paired(boundary_model):
    x, y = clips(4)
    prior = np.zeros_like(x)
    prior[:, ROW, COL] = 0.6
    without = run_attack("square", victim(boundary_model, 0.6, 100, n=4), seed=0)
    with_prior = run_attack("square", victim(boundary_model, 0.6, 100, n=4), prior=prior, seed=0)
    paired = paired_prior(without, with_prior, y)
    assert paired["fewer"] + paired["same"] == 4 and paired["more"] == 0
    assert with_prior["queries_to_success"] == [2, 2, 2, 2]


def test_queries_are_counted_per_clip_and_repeats_come_from_the_cache(boundary_model):
    calls = []

    def predict(batch):
        calls.append(len(batch))
        return boundary_model.predict_on_batch(batch)

    x, y = clips(3)
    v = CountingVictim(predict, x, y, Budget(0.6, None), MEAN, STD, 5, n_classes=2, batch_size=2)
    v.query([0, 1, 2, 0], np.stack([x[0], x[1], x[2], x[0]]))
    assert v.queries.tolist() == [1, 1, 1] and calls == [2, 1]  # x[0] twice: one query
    v.query([0, 0], np.stack([x[0] + 0.1, x[0] + 0.1]))
    assert v.queries.tolist() == [2, 1, 1]
    for k in range(3):
        v.query([0], x[None, 0] + 0.01 * (k + 2))
    with pytest.raises(QueryBudgetExhausted):
        v.query([0], x[None, 0] + 0.5)
    assert v.queries.tolist() == [5, 1, 1]  # nothing sent past the budget


def test_a_victim_with_the_wrong_class_count_is_one_clear_error():
    x, y = clips(2)
    v = CountingVictim(lambda batch: np.full((len(batch), 3), 1 / 3), x, y, Budget(0.1, None),
                       MEAN, STD, 10, n_classes=2, name="victim 'three'")
    with pytest.raises(TfadvserError, match=r"^victim 'three': answered shape \[2, 3\] for a "
                                            r"batch of 2; expected \[2, 2\]"):
        square_attack(v)


def test_within_budget_and_the_p_schedule_by_hand():
    x = np.zeros((3, 373, 64), np.float32)
    eta = np.zeros_like(x)
    eta[0, 0, 0] = 0.1      # at the bound
    eta[1, 0, 0] = 0.1001   # above it: project clips it
    eta[2, 0, 0] = -0.05
    assert within_budget(x, eta, Budget(0.1, None), MEAN, STD).tolist() == [True, False, True]
    # every bin at 0 (magnitude 1, signal 23 872): one bin of eta e is noise (e^e - 1)^2,
    # 63.341 dB for 0.1, 63.332 dB for 0.1001, 70.016 dB for -0.05
    assert within_budget(x, eta, Budget(None, 63.3), MEAN, STD).tolist() == [True, True, True]
    assert within_budget(x, eta, Budget(None, 63.336), MEAN, STD).tolist() == [True, False, True]
    assert within_budget(x, eta, Budget(None, 63.35), MEAN, STD).tolist() == [False, False, True]
    assert [_p_selection(0.05, i, 1000) for i in (0, 1, 5, 20, 100, 999)] == \
        [0.05, 0.05, 0.025, 0.0125, 0.003125, 0.05 / 512]


def test_hsj_and_noise_are_deterministic_for_a_seed(boundary_model):
    outcomes = []
    for _ in range(2):
        v = victim(boundary_model, 0.6, 300)
        hop_skip_jump(v, seed=3)
        w = victim(boundary_model, 0.6, 300)
        noise_search(w, seed=3)
        outcomes.append((v.queries.tolist(), v.success_query.tolist(), w.success_query.tolist()))
    assert outcomes[0] == outcomes[1]
    assert not math.isnan(sum(outcomes[0][0]))


def test_a_step_at_the_bound_read_back_from_the_input_is_within_it():
    # what the victim saw is float32 x + eta; (x + eta) - x is not eta exactly
    x = np.full((2, 373, 64), 3.3, np.float32)
    x[1] = -7.9
    eta = np.full_like(x, 0.032)
    read_back = (x + eta) - x
    assert not np.all(read_back <= np.float32(0.032))  # rounding exceeds the bound...
    assert within_budget(x, read_back, Budget(0.032, None), MEAN, STD).tolist() == [True, True]
    # ...but not by a step the attack could use
    assert within_budget(x, eta * 1.001, Budget(0.032, None), MEAN, STD).tolist() == [False, False]


def test_square_attack_records_a_success_on_realistic_inputs(boundary_model):
    # the boundary test at a log-Mel-like level (3.3) and a small budget: the victim sees
    # (input - 3.3) * 25, so the label flips 0.02 above the clean bin and L∞ 0.032 reaches
    # it; a success read back as (x + eta) - x must still count
    x, y = clips(2)
    x += 3.3
    v = CountingVictim(lambda batch: boundary_model.predict_on_batch((batch - 3.3) * 25), x, y,
                       Budget(0.032, None), MEAN, STD, 1000, n_classes=2)
    result = run_attack("square", v, seed=0)
    assert result["success_at"]["1000"]["rate"] == 1.0
    assert all(np.max(np.abs(eta)) > 0.032 for eta in v.success_eta)  # read back, rounded
