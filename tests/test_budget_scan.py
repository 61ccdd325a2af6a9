"""The budget scan on tiny models: calibrated budgets, every attack x target curve, SNR₅₀."""
import dataclasses
import math

import keras
import numpy as np
import pytest

from tfadvser.config import Budget
from tfadvser.evaluation.metrics import mel_snr_db
from tfadvser.experiment.budget_scan import (ENSEMBLE, ScanPlan, budget_scan, epsilon_for_snr,
                                             scan_budgets, summarise)

MEAN, STD = np.full(4, -2.0, np.float32), np.full(4, 1.5, np.float32)


def _clips(n=24, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 8, 4)).astype(np.float32)


@pytest.mark.parametrize("snr", [40.0, 20.0, 0.0])
def test_epsilon_for_snr_puts_the_median_sign_noise_on_the_target(snr):
    x = _clips()
    epsilon = epsilon_for_snr(x, snr, MEAN, STD)
    signs = np.random.default_rng(0).choice(np.float32([-1.0, 1.0]), size=x.shape)
    assert np.median(mel_snr_db(x, epsilon * signs, MEAN, STD)) == pytest.approx(snr, abs=1e-3)


def test_epsilon_for_snr_refuses_an_unreachable_target():
    with pytest.raises(ValueError, match="no epsilon"):
        epsilon_for_snr(_clips(), 400.0, MEAN, STD)


def test_scan_budgets_keep_the_runs_own_budget():
    plan = ScanPlan("t", (40.0, 30.0, 0.0), clips=8, steps=2, transfer_max_db=30.0)
    budgets = scan_budgets(_clips(), plan, MEAN, STD, own=Budget(0.008, 30.0))
    assert budgets[1] == Budget(0.008, 30.0)
    assert [b.snr_db for b in budgets] == [40.0, 30.0, 0.0]
    assert budgets[0].epsilon < budgets[2].epsilon


def _model(seed):
    rng = np.random.default_rng(seed)
    inputs = keras.Input((8, 4))
    logits = keras.layers.Dense(3, kernel_initializer=keras.initializers.Constant(
        rng.normal(size=(32, 3))))(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Activation("log_softmax")(logits))


def test_scan_gives_every_attack_its_points_and_snr50():
    x = _clips(30)
    defences = {"a": _model(1), "b": _model(2), "c": _model(3)}
    y = np.argmax(defences["a"].predict(x, verbose=0), -1)  # a is right on every clip
    plan = ScanPlan("t", (40.0, 20.0, 0.0), clips=30, steps=3, transfer_max_db=20.0)
    learned = {"G": (0.01 * np.sign(_clips(30, seed=5)), Budget(0.01, None))}
    scan = budget_scan(x, y, defences, ["a", "b", "c"], ["x", "y", "z"], MEAN, STD, plan, learned)
    attacks = scan["attacks"]
    assert set(attacks) == {"noise", "learned: G", *(f"{m} from {s}" for m in ("PGD", "MI-FGSM", "DI-FGSM")
                                                     for s in "abc"),
                            *(f"{ENSEMBLE} (all but {t})" for t in "abc")}
    # PGD and noise at all three points; MI-FGSM, DI-FGSM and the ensemble at 20 and 0 dB only
    assert attacks["PGD from a"]["targets"]["b"]["points"] == [0, 1, 2]
    assert attacks["MI-FGSM from b"]["targets"]["a"]["points"] == [1, 2]
    assert list(attacks[f"{ENSEMBLE} (all but a)"]["targets"]) == ["a"]
    assert attacks[f"{ENSEMBLE} (all but a)"]["source"] == "b+c"
    # every point's perturbation sits at or above its floor (mean over clips)
    for point, snr in enumerate(attacks["PGD from a"]["targets"]["a"]["snr_db"]):
        assert snr >= plan.snrs[point] - 1e-6
    summary = summarise(scan, y, 3)
    white = summary["PGD from a"]["a"]
    assert white["clean_uar"] == 1.0 and white["target_uar"] == pytest.approx(2 / 3)
    # white-box PGD on a linear model is at least as quiet a successful attack as noise
    noise = summary["noise"]["a"]["snr50"]
    assert white["snr50"] >= noise or math.isnan(noise)
    assert white["ci"][0] <= white["snr50"] <= white["ci"][1]
    assert scan == budget_scan(x, y, defences, ["a", "b", "c"], ["x", "y", "z"], MEAN, STD, plan,
                               learned) | {"seconds": scan["seconds"]}
    # A plan may craft DI-FGSM on some sources only (the main job's: CNN-4)
    only_b = budget_scan(x, y, defences, ["a", "b", "c"], ["x", "y", "z"], MEAN, STD,
                         dataclasses.replace(plan, di_sources=("b",)))
    assert [a for a in only_b["attacks"] if a.startswith("DI-FGSM")] == ["DI-FGSM from b"]
    assert only_b["attacks"]["DI-FGSM from b"]["targets"]["b"] == attacks["DI-FGSM from b"]["targets"]["b"]


def test_the_plans_are_the_configs():
    from tfadvser.config import SCAN_PLANS
    from tfadvser.experiment.budget_scan import PLANS

    assert tuple(PLANS) == SCAN_PLANS


def test_scan_section_renders_a_hand_made_scan():
    from tfadvser.experiment.scan_report import scan_section

    cell = {"snr50": 23.44, "ci": [20.0, 27.06], "clean_uar": 0.75, "target_uar": 0.4464,
            "uar": [0.7, 0.3], "snr_db": [40.0, 20.0]}
    censored = {**cell, "snr50": math.inf, "ci": [math.inf, math.inf]}
    scan = {
        "clean": {"cnn4": [], "cnn4-seed1": []}, "clips": list(range(48)),
        "plan": {"name": "fast", "steps": 5, "transfer_max_db": 20.0},
        "budgets": [{"epsilon": 0.002, "snr_db": 40.0}, {"epsilon": 0.03, "snr_db": 20.0}],
        "attacks": {"PGD from cnn4": {"source": "cnn4"}, "noise": {"source": None}},
        "snr50": {"PGD from cnn4": {"cnn4": censored, "cnn4-seed1": cell},
                  "noise": {"cnn4": {**cell, "snr50": -math.inf, "ci": [-math.inf, -math.inf]}}},
        "comparisons": [{"a": "learned: x", "b": "learned: y", "target": "cnn4", "difference": 2.0,
                         "ci": [0.5, 3.5]}],
        "seconds": 12.0}
    lines = scan_section(scan)
    assert lines[0].startswith("## SNR₅₀")
    assert "| attack | CNN-4 | CNN-4 seed 1 |" in lines
    assert "| PGD from CNN-4 | > 40 [> 40, > 40] *wb* | 23.4 [20.0, 27.1] |" in lines
    assert "| noise | < 20 [< 20, < 20] |  |" in lines
    assert "| learned: x | learned: y | CNN-4 | +2.0 [+0.5, +3.5] | holds |" in lines
    assert scan_section(None) == []


def test_scan_curves_draws_white_box_and_averages_the_transfers():
    from tfadvser.experiment.scan_report import scan_curves

    def cell(snr, uar, clean=0.8):
        return {"snr_db": snr, "uar": uar, "clean_uar": clean}

    scan = {"clean": {"a": [], "b": []},
            "attacks": {"noise": {"source": None}, "PGD from a": {"source": "a"},
                        "PGD from b": {"source": "b"}, "MI-FGSM from a": {"source": "a"},
                        "learned: x": {"source": None}},
            "snr50": {"noise": {"a": cell([40, 0], [0.8, 0.7]), "b": cell([40, 0], [0.6, 0.5], 0.6)},
                      "PGD from a": {"a": cell([40, 0], [0.5, 0.1]), "b": cell([41, 1], [0.6, 0.4], 0.6)},
                      "PGD from b": {"a": cell([39, 1], [0.8, 0.6]), "b": cell([40, 0], [0.3, 0.0], 0.6)},
                      "MI-FGSM from a": {"b": cell([1], [0.2], 0.6)},
                      "learned: x": {"a": cell([40], [0.75])}}}
    curves = scan_curves(scan)
    assert curves["clean"] == {"a": 0.8, "b": 0.6}
    assert curves["curves"]["PGD white-box"] == {"a": [[40, 0.5], [0, 0.1]], "b": [[40, 0.3], [0, 0.0]]}
    # one other source per defence here: the transfer line is that source's curve
    assert curves["curves"]["PGD transferred"] == {"a": [[39.0, 0.8], [1.0, 0.6]],
                                                   "b": [[41.0, 0.6], [1.0, 0.4]]}
    assert curves["curves"]["MI-FGSM transferred"] == {"b": [[1.0, 0.2]]}
    assert curves["curves"]["learned: x"] == {"a": [[40, 0.75]]}
    assert curves["curves"]["noise"]["b"] == [[40, 0.6], [0, 0.5]]


@pytest.mark.parametrize("raw, shown", [
    ("PGD from cnn4", "PGD from CNN-4"), ("DI-FGSM from resnet50", "DI-FGSM from ResNet-50"),
    ("ensemble MI-FGSM (all but vgg16)", "ensemble MI-FGSM (all but VGG-16)"),
    ("ensemble MI-FGSM (all but cnn4-seed1)", "ensemble MI-FGSM (all but CNN-4 seed 1)"),
    ("PGD from mine", "PGD from mine"), ("learned: single-cnn4-eps0.008-snr30", "learned: single-cnn4-eps0.008-snr30")])
def test_scan_rows_name_the_defences(raw, shown):
    from tfadvser.experiment.scan_report import _attack_name

    assert _attack_name(raw) == shown
