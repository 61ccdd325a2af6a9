"""Bootstrap intervals on UAR, checked against hand computations."""
import math

import numpy as np
import pytest

from tfadvser.evaluation.metrics import confusion_matrix, uar_from_confusion
from tfadvser.evaluation.statistics import resolution, uar_batch, uar_interval


def test_vectorised_uar_equals_the_confusion_matrix_uar():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, size=(4, 60))
    p = rng.integers(0, 5, size=(4, 60))
    expected = [uar_from_confusion(confusion_matrix(y[i], p[i], 5)) for i in range(4)]
    assert uar_batch(y, p, 5) == pytest.approx(expected)


def test_interval_width_matches_the_normal_approximation():
    # Two balanced classes of 200 clips, each recalled half the time: UAR 0.5, and
    # var(UAR) = (2 * 0.25 / 200) / 4, so a 95 % interval is 2 * 1.96 * 0.025 = 0.098 wide.
    y = np.repeat([0, 1], 200)
    p = np.concatenate([np.tile([0, 1], 100), np.tile([1, 0], 100)])
    low, high = uar_interval(y, p, 2)
    assert low < 0.5 < high
    assert high - low == pytest.approx(2 * 1.96 * 0.025, abs=0.008)


def test_interval_is_deterministic_and_degenerate_cases_have_zero_width():
    y = np.repeat(np.arange(3), 10)
    p = np.roll(y, 4)
    assert uar_interval(y, p, 3, seed=1) == uar_interval(y, p, 3, seed=1)
    assert uar_interval(y, y, 3) == (1.0, 1.0)
    assert uar_interval([2], [1], 3) == (0.0, 0.0)


def test_resolution_of_a_run():
    summary = resolution([0.10, 0.12, 0.11, None, float("nan")])
    assert summary["cells"] == 3
    assert summary["typical_width"] == pytest.approx(0.11)
    assert summary["smallest_difference"] == pytest.approx(0.055 * math.sqrt(2))
    assert resolution([]) == {"typical_width": None, "smallest_difference": None, "cells": 0}


def test_paired_difference_point_and_a_hand_computable_bootstrap():
    from tfadvser.evaluation.statistics import paired_difference

    y = np.array([0, 0, 0, 1, 1])
    a = np.array([0, 0, 1, 1, 0])  # right on clips 0, 1, 3
    b = y.copy()                    # right everywhere
    # per-clip b - a: class 0 (0, 0, 1) -> 1/3, class 1 (0, 1) -> 1/2: UAR difference 5/12
    result = paired_difference(y, a, b)
    assert result["difference"] == pytest.approx(5 / 12)
    assert result["ci"][0] <= 5 / 12 <= result["ci"][1]
    # One class of two clips worth 0 and 1: a resample's mean is 0, 0.5 or 1 with
    # probabilities 1/4, 1/2, 1/4, so the 2.5 and 97.5 percentiles are exactly 0 and 1.
    assert paired_difference([0, 0], [1, 0], [0, 0])["ci"] == [0.0, 1.0]
    # The same outcome on every clip of a class: nothing to resample.
    assert paired_difference([0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]) == {"difference": 0.5,
                                                                             "ci": [0.5, 0.5]}


def test_paired_difference_over_defences_and_stratification():
    from tfadvser.evaluation.statistics import paired_difference

    y = np.repeat([0, 1], 200)
    # Against two defences: a is always right on one and always wrong on the other; b is
    # right on both for half of each class's clips and wrong on both for the rest.
    a = np.stack([y, 1 - y])
    half = np.tile([1, 0], 200).astype(bool)
    b = np.stack([np.where(half, y, 1 - y)] * 2)
    result = paired_difference(y, a, b)
    assert result["difference"] == pytest.approx(0.0)
    # per clip +-0.5 with equal odds in each class: sd 0.5/sqrt(200) per class, the mean
    # of two classes 0.5/sqrt(400) = 0.025, so the interval is 2 * 1.96 * 0.025 wide.
    assert result["ci"][1] - result["ci"][0] == pytest.approx(0.098, abs=0.008)


def test_verdicts():
    from tfadvser.evaluation.statistics import verdict

    assert verdict([0.01, 0.2], +1) == "holds"
    assert verdict([-0.2, -0.01], -1) == "holds"
    assert verdict([-0.2, -0.01], +1) == "does not hold"
    assert verdict([-0.01, 0.2], +1) == "undecided"
