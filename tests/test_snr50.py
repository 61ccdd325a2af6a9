"""SNR₅₀: interpolation on literal curves, censoring, and the clip bootstrap."""
import math

import numpy as np
import pytest

from tfadvser.evaluation.snr50 import (format_snr50, format_with_interval, halfway_target, snr50,
                                       snr50_interval)


def test_halfway_target_is_midway_between_clean_and_chance():
    assert halfway_target(0.75, 5) == pytest.approx(0.475)  # chance 0.2
    assert halfway_target(0.6, 4) == pytest.approx(0.425)


def test_snr50_interpolates_the_first_crossing_in_db():
    # clean 0.8, 4 classes: target 0.525. Crossing between 20 dB (0.60) and 10 dB (0.45):
    # 20 + (0.60 - 0.525) / (0.60 - 0.45) * (10 - 20) = 15.0 dB.
    assert snr50([40, 30, 20, 10, 0], [0.80, 0.70, 0.60, 0.45, 0.25], 0.8, 4) == pytest.approx(15.0)
    # Any order of points; a crossing exactly on a point sits on it.
    assert snr50([0, 20, 40, 10], [0.2, 0.525, 0.8, 0.3], 0.8, 4) == pytest.approx(20.0)
    # Non-monotone: the quietest crossing wins (30 -> 20 dB: 30 + 0.5 * -10 = 25).
    assert snr50([40, 30, 20, 10], [0.8, 0.625, 0.425, 0.7], 0.8, 4) == pytest.approx(25.0)


def test_snr50_censored_and_undefined():
    assert snr50([40, 30], [0.5, 0.3], 0.8, 4) == math.inf  # halfway already at 40 dB
    assert snr50([40, 0], [0.8, 0.6], 0.8, 4) == -math.inf  # never halfway
    assert math.isnan(snr50([40, 0], [0.2, 0.1], 0.25, 4))  # clean at chance
    with pytest.raises(ValueError, match="equal-length"):
        snr50([40, 30], [0.5], 0.8, 4)


def test_format_names_the_censored_side_of_the_scan():
    assert format_snr50(15.04) == "15.0"
    assert format_snr50(math.inf, [40, 30, 0]) == "> 40"
    assert format_snr50(-math.inf, [40, 30, 0]) == "< 0"
    assert format_snr50(math.nan) == "n/a"


def _flipped(clean, shares, rng):
    """One prediction row per share: that share of the clips (at random) moved to the next
    of 4 classes."""
    rows = []
    for share in shares:
        p = clean.copy()
        flip = rng.random(len(clean)) < share
        p[flip] = (p[flip] + 1) % 4
        rows.append(p)
    return rows


def test_interval_brackets_the_point_and_is_deterministic():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 25)
    clean = y.copy()
    clean[rng.choice(100, 10, replace=False)] = 0  # ~90 % right
    snrs = [40.0, 30.0, 20.0, 10.0, 0.0]
    # the attack flips more clips as it gets louder
    preds = _flipped(clean, [0.0, 0.1, 0.3, 0.7, 1.0], rng)
    result = snr50_interval(y, clean, preds, snrs, 4, resamples=400, seed=1)
    low, high = result["ci"]
    assert low <= result["snr50"] <= high
    assert 10.0 < result["snr50"] < 30.0 and high - low < 15.0
    assert result == snr50_interval(y, clean, preds, snrs, 4, resamples=400, seed=1)
    assert format_with_interval(result).count("[") == 1


def test_interval_of_a_censored_attack_is_censored():
    y = np.repeat(np.arange(2), 10)
    clean = y.copy()
    all_wrong = 1 - y
    result = snr50_interval(y, clean, [all_wrong, all_wrong], [40.0, 20.0], 2, resamples=100)
    assert result["snr50"] == math.inf and result["ci"] == [math.inf, math.inf]
    assert format_with_interval(result) == "> 40 [> 40, > 40]"
    with pytest.raises(ValueError, match="predictions"):
        snr50_interval(y, clean, [all_wrong], [40.0, 20.0], 2)


def test_paired_difference_of_two_scanned_attacks():
    from tfadvser.evaluation.snr50 import snr50_difference

    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(4), 25)
    clean = y.copy()
    snrs = [40.0, 20.0, 0.0]

    quiet, loud = _flipped(clean, [0.2, 0.9, 1.0], rng), _flipped(clean, [0.0, 0.1, 0.9], rng)
    result = snr50_difference(y, clean, (quiet, snrs), (loud, snrs), 4, resamples=300)
    assert result["difference"] > 0 and result["ci"][0] > 0  # quiet wins, decidedly
    same = snr50_difference(y, clean, (quiet, snrs), (quiet, snrs), 4, resamples=300)
    assert same == {"difference": 0.0, "ci": [0.0, 0.0]}
