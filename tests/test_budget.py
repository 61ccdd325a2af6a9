"""The perturbation budget and the baselines of the same size: bounds that hold for any
input, hand-computed projections, noise norms, PGD and MI-FGSM on a hand-computable model."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfadvser.attack.attacker import build_generator
from tfadvser.attack.baselines import budget_noise, matched_noise, mi_fgsm, pgd
from tfadvser.attack.budget import project, snr_scale
from tfadvser.config import AttackerConfig, Budget
from tfadvser.evaluation.metrics import attack_rates, mel_snr_db
from tfadvser.experiment.results import Inputs, Results, TaskScores


def test_snr_scale_matches_a_hand_computation():
    # One bin, M = exp(0 * 1 + 0) = 1, eta = 0.5: noise = expm1(s * 0.5)^2 <= 10^-2 at 20 dB,
    # so s * 0.5 <= ln(1.1): s = 2 ln(1.1) = 0.190620; the 1e-3 dB margin (budget.MARGIN_DB)
    # makes it 2 ln(1 + 10^(-20.001/20)) = 0.190599.
    x, eta = np.zeros((1, 1, 1), np.float32), np.full((1, 1, 1), 0.5, np.float32)
    s = float(snr_scale(x, eta, np.zeros(1), np.ones(1), 20.0, steps=24)[0])
    assert s == pytest.approx(0.190599, abs=2e-6)
    assert s <= 2 * math.log(1.1)
    # The default 12 steps: the largest multiple of 2^-12 below it, floor(0.190599 * 4096) = 780.
    assert float(snr_scale(x, eta, np.zeros(1), np.ones(1), 20.0)[0]) == 780 / 4096
    # Already quieter than the floor: untouched.
    assert float(snr_scale(x, eta * 1e-3, np.zeros(1), np.ones(1), 20.0)[0]) == 1.0


@pytest.mark.parametrize("kind", ["atrous", "universal"])
@pytest.mark.parametrize("scale", [0.0, 1.0, 30.0])
def test_a_bounded_generator_stays_within_its_budget_for_any_input(kind, scale):
    rng = np.random.default_rng(int(scale) + 7)
    mean, std = rng.uniform(-13, -8, 16), rng.uniform(1.4, 4.1, 16)
    generator = build_generator(0.0625, (37, 16), Budget(0.05, 30.0), mean, std, kind=kind)
    if kind == "universal":  # a saturated universal map: tanh at +-1 everywhere
        generator.get_layer("universal").z.assign(rng.normal(size=(37, 16)).astype("float32") * 50)
    x = (rng.normal(size=(5, 37, 16)) * scale).astype("float32")
    x[0] = 0.0
    eta = generator(x).numpy()
    assert np.abs(eta).max() <= 0.05 + 1e-7
    assert mel_snr_db(x, eta, mean, std).min() >= 30.0


def test_project_clips_to_epsilon_and_leaves_the_unbounded_budget_alone():
    eta = np.array([[[0.3, -0.02, -1.0]]], np.float32)
    x = np.zeros_like(eta)
    np.testing.assert_allclose(project(x, eta, Budget(0.1, None), None, None).numpy(),
                               [[[0.1, -0.02, -0.1]]])
    np.testing.assert_array_equal(project(x, eta, Budget(None, None), None, None).numpy(), eta)


def test_config_budget_and_alpha_follow_the_perturbation():
    assert AttackerConfig().budget == Budget(0.008, 30.0)
    assert AttackerConfig().cw_weight == 1.0
    paper = AttackerConfig(perturbation="paper")
    assert paper.budget == Budget(None, None) and paper.cw_weight == 0.02
    assert Budget(0.008, 30.0).label == "L∞ ≤ 0.008, SNR ≥ 30 dB"
    assert Budget(0.008, 30.0).key == "eps0.008-snr30"
    with pytest.raises(ValueError, match="needs an epsilon"):
        AttackerConfig(epsilon=None, snr_db=None)


def test_matched_noise_keeps_each_clips_l2_and_linf():
    eta = np.array([[[0.0, 0.5], [-2.0, 1.0]], [[0.1, 0.1], [0.1, -0.3]]], np.float32)
    noise = matched_noise(eta, seed=3)
    np.testing.assert_allclose(np.linalg.norm(noise.reshape(2, -1), axis=1),
                               [math.sqrt(5.25), math.sqrt(0.12)], rtol=1e-6)
    np.testing.assert_array_equal(np.abs(noise).max(axis=(1, 2)), np.float32([2.0, 0.3]))
    np.testing.assert_array_equal(np.sort(np.abs(noise[0]).ravel()), [0.0, 0.5, 1.0, 2.0])
    assert not np.array_equal(noise, eta)  # moved and re-signed (seed 3)


def test_noise_at_the_budget_fills_the_ball_down_to_the_snr_floor():
    rng = np.random.default_rng(0)
    mean, std = rng.uniform(-13, -8, 16), rng.uniform(1.4, 4.1, 16)
    x = rng.normal(size=(4, 37, 16)).astype("float32")
    loose = budget_noise(x, Budget(0.01, None), mean, std, seed=0)
    np.testing.assert_array_equal(np.abs(loose), 0.01)  # every bin at +-epsilon
    tight = budget_noise(x, Budget(0.01, 40.0), mean, std, seed=0)
    np.testing.assert_allclose(mel_snr_db(x, tight, mean, std), 40.0, atol=0.01)


def _linear():
    # logits = W^T vec(x): class 0 reads bins 0 and 3 (weight 1 and 0.5), class 1 bin 1,
    # class 2 bin 2 with weight -1; bins 4 and 5 are read by nobody.
    w = np.zeros((6, 3), np.float32)
    w[0, 0], w[3, 0], w[1, 1], w[2, 2] = 1.0, 0.5, 1.0, -1.0
    return lambda x: tf.nn.log_softmax(tf.reshape(x, (-1, 6)) @ w)


# Cross-entropy ascent on that model: push the true class's bins down and the others' up.
_HAND = np.array([[[-0.1, 0.1, -0.1], [-0.1, 0.0, 0.0]],    # true class 0
                  [[0.1, -0.1, -0.1], [0.1, 0.0, 0.0]]])   # true class 1


def test_pgd_and_mi_fgsm_match_a_hand_computation():
    x, y = np.zeros((2, 2, 3), np.float32), np.array([0, 1])
    budget = Budget(0.1, None)
    eta = pgd(_linear(), x, y, budget, None, None, seed=0)
    read = np.array([[1, 1, 1], [1, 0, 0]], bool)  # bins with a gradient
    np.testing.assert_allclose(eta[:, read], _HAND[:, read], atol=1e-6)
    assert np.abs(eta).max() <= 0.1 + 1e-7  # the random start stays in the ball
    for decay in (0.0, 1.0):
        np.testing.assert_allclose(mi_fgsm(_linear(), x, y, budget, None, None, decay=decay),
                                   _HAND, atol=1e-6)


def test_attack_rates_name_three_different_things():
    y = np.array([0, 0, 1, 1, 2])
    clean = np.array([0, 0, 1, 0, 2])  # 4 right, clip 3 wrong
    adv = np.array([1, 0, 1, 2, 1])    # clips 0, 4 made wrong; clip 3 changes but stays wrong
    assert attack_rates(y, clean, adv) == {"success_rate": 0.5, "flip_rate": 0.6, "error_rate": 0.6}


def test_the_one_lambda_rule():
    from tfadvser.experiment.protocol import choose_lambda, lambda_objective

    # mean adversarial dev UAR over the sequence's defences (None left out)
    assert lambda_objective({"cnn4": 0.25, "vgg16": 0.5, "resnet50": None}) == 0.375
    assert lambda_objective({}) == math.inf
    # the lowest objective wins; on a tie the smaller lambda
    assert choose_lambda({1.0: 0.40, 1e4: 0.35, 1e2: 0.35}) == 1e2
    with pytest.raises(ValueError):
        choose_lambda({})


def test_findings_are_judged_on_paired_differences():
    """A hand-made run: 40 test clips of 2 classes; the single-task attacker fools nothing
    on the unseen defences, the 3-defence attackers fool clips 0-19 there."""
    from tfadvser.experiment.findings import paper_findings

    y = [0, 1] * 20
    wrong = [1 - c for c in y]
    half = wrong[:20] + y[20:]  # clips 0-19 wrong

    def task(predictions):
        return TaskScores(test={"against": {d: {"predictions": p} for d, p in predictions.items()}})

    results = Results(inputs=Inputs(truth={"test": y}), tasks={
        "single": task({"cnn4": wrong, "vgg16": y, "resnet50": y}),
        "multi": task({"cnn4": half, "vgg16": half, "resnet50": half}),
        "transfer": task({"cnn4": y, "vgg16": half, "resnet50": half}),
        "lifelong": task({"cnn4": half, "vgg16": half, "resnet50": half})})
    rows = [{"method": "Single-task", "sequence": "CNN-4", "keys": ["single"]},
            {"method": "Multi-task", "sequence": "CNN-4 + VGG-16 + ResNet-50", "keys": ["multi"]},
            {"method": "Transfer", "sequence": "CNN-4 + VGG-16 + ResNet-50", "keys": ["transfer"]},
            {"method": "Lifelong", "sequence": "CNN-4 + VGG-16 + ResNet-50", "keys": ["lifelong"]}]
    found = {(f["finding"], f["order"]): f for f in paper_findings(results, rows, "unbounded")}
    clockwise = "CNN-4 → VGG-16 → ResNet-50"
    one = found[(1, clockwise)]
    assert one["verdict"] == "holds"
    # UAR on VGG-16 and ResNet-50: single-task 1.0, the others 0.5: a difference of 0.5
    assert [p["difference"] for p in one["parts"]] == [0.5, 0.5, 0.5]
    assert found[(2, clockwise)]["verdict"] == "undecided"  # multi ties lifelong exactly
    # lifelong leaves CNN-4 at 0.5, transfer at 1.0 (it forgot CNN-4)
    three = found[(3, clockwise)]
    assert three["verdict"] == "holds" and three["parts"][0]["difference"] == 0.5
    assert found[(4, clockwise)]["verdict"] == "not measured"  # no lambda sweep here
    # the counter-clockwise order was not trained: no findings for it (not "undecided")
    assert {order for _, order in found} == {clockwise}


def test_the_training_plan_of_each_choice_of_orders():
    from tfadvser.experiment.protocol import training_plan

    one = training_plan(("clockwise",))
    assert one.first_tasks == (("single", ("cnn4",)),)
    assert one.transfer == (("transfer", ("cnn4", "vgg16", "resnet50")),)
    assert one.lifelong == (("cnn4", "vgg16", "resnet50"),)
    assert one.multi == (("multi", ("cnn4", "vgg16")), ("multi", ("cnn4", "vgg16", "resnet50")))
    both = training_plan(("counter", "clockwise"))  # the paper's order whatever the order given
    assert both.first_tasks == (("single", ("cnn4",)), ("single", ("resnet50",)))
    assert both.lifelong == (("cnn4", "vgg16", "resnet50"), ("resnet50", "vgg16", "cnn4"))
    assert both.multi == (("multi", ("cnn4", "vgg16")), ("multi", ("resnet50", "vgg16")),
                          ("multi", ("cnn4", "vgg16", "resnet50")))
    # without the 2-defence multi-task attackers (the small profile's default): the 3-defence one only
    assert training_plan(("clockwise",), multi_pairs=False).multi == (("multi", ("cnn4", "vgg16", "resnet50")),)
    assert training_plan(("clockwise", "counter"), False).multi == (("multi", ("cnn4", "vgg16", "resnet50")),)
    assert training_plan(("clockwise", "counter"), False).transfer == both.transfer
    for bad in ((), ("sideways",)):
        with pytest.raises(ValueError):
            training_plan(bad)


def test_robustness_section_shows_the_baselines_clean_uar_on_their_own_clips():
    from tfadvser.experiment.robustness_report import robustness_section

    def scored(adv, clean):
        return {"adversarial_uar": adv, "clean_uar": clean}

    results = Results(defences={"cnn4": {"test": {"uar": 0.765}}},
                      tasks={"k": TaskScores(test={"against": {"cnn4": {"adversarial_uar": 0.759}}})},
                      baselines={"eps0.008-snr30": {"label": "L∞ ≤ 0.008", "clips": 96, "test": {
                          "noise": {"cnn4": scored(0.755, 0.745)},
                          "pgd": {"cnn4": {"cnn4": scored(0.133, 0.745)}}}}})
    rows = [{"method": "Single-task", "sequence": "CNN-4", "keys": ["k"]}]
    table = [line for line in robustness_section(results, rows) if line.startswith("| ")][1:]
    assert table == ["| none (clean) | 76.5 |", "| Single-task CNN-4 | 75.9 |",
                     "| none (clean, on the baselines' 96 clips; L∞ ≤ 0.008) | 74.5 |",
                     "| noise at the budget (L∞ ≤ 0.008) | 75.5 |",
                     "| PGD from CNN-4 (L∞ ≤ 0.008) | 13.3 |"]


def test_mi_fgsm_is_traced_once_per_forward_function():
    from tfadvser.attack import baselines

    def forward(x):
        return tf.nn.log_softmax(tf.reduce_sum(x, axis=[1, 2])[:, None] * tf.constant([[1.0, -1.0]]))

    x, y = np.ones((2, 3, 4), np.float32), np.array([0, 1])
    budget = Budget(0.5, None)
    first = baselines.mi_fgsm(forward, x, y, budget, None, None)
    traced = baselines._mi_fgsm_graph(forward, (3, 4), baselines.PGD_STEPS, baselines.MI_DECAY)
    np.testing.assert_array_equal(baselines.mi_fgsm(forward, x[:1], y[:1], budget, None, None), first[:1])
    assert baselines._mi_fgsm_graph(forward, (3, 4), baselines.PGD_STEPS, baselines.MI_DECAY) is traced
    assert traced.experimental_get_tracing_count() == 1  # one graph for both batch sizes
    # x sums to 12 per clip: clip 0 (label 0) is pushed down (-eps), clip 1 (label 1) up
    np.testing.assert_allclose(first, np.stack([-0.5 * np.ones((3, 4)), 0.5 * np.ones((3, 4))]), atol=1e-6)


def test_multi_pairs_reach_the_training_plan(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import tfadvser.experiment.reproduce as reproduce_module
    from tfadvser.config import get_profile
    from tfadvser_cli.main import main

    assert get_profile("small").multi_pairs is False and get_profile("paper").multi_pairs is True
    reproduce = reproduce_module.reproduce
    seen = []
    rows = [{"method": "Multi-task", "sequence": "CNN-4 + VGG-16", "cells": {}},
            {"method": "Single-task", "sequence": "CNN-4", "cells": {"cnn4/test": {}}}]
    monkeypatch.setattr(reproduce_module, "reproduce", lambda *args, **kwargs: seen.append(
        kwargs["multi_pairs"]) or {"report": "r.md", "rows": rows})
    for flag, expected in (([], None), (["--multi-pairs"], True), (["--no-multi-pairs"], False)):
        result = CliRunner().invoke(main, ["reproduce", "--data", str(tmp_path), "--out",
                                           str(tmp_path / "run"), *flag])
        assert result.exit_code == 0, result.output
        assert seen[-1] is expected
        # reproduce names the rows it left untrained, as evaluate does
        assert result.output.endswith("--orders both --multi-pairs): Multi-task CNN-4 + VGG-16\nreport: r.md\n")
    # reproduce itself: None means the profile's
    plans = []
    monkeypatch.setattr(reproduce_module, "training_plan",
                        lambda orders, multi_pairs: plans.append(multi_pairs) or 1 / 0)
    for given, profile, expected in ((None, "small", False), (None, "smoke", True), (True, "small", True)):
        with pytest.raises(ZeroDivisionError):
            reproduce(tmp_path, tmp_path / "run", get_profile(profile), multi_pairs=given)
        assert plans[-1] is expected
