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
