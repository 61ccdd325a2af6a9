"""The generator recipe: each loss and head on a hand-computable case, the curriculum's
schedule, and a smoke attacker trained with a non-default recipe through the CLI."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tfadvser.attack.attacker import build_generator
from tfadvser.attack.budget import BudgetCurriculum, bounded_head
from tfadvser.attack.losses import (attack_loss, ce_loss, cw_loss, feature_loss,
                                    relativistic_ce_loss)
from tfadvser.config import AttackerConfig, Budget
from tfadvser_cli.main import main

LOG_PROBS = tf.constant([[-0.1, -2.5, -3.0], [-2.0, -0.2, -1.9]])
LABELS = tf.constant([0, 2])


def test_cw_with_kappa_literal():
    # clip 0: -0.1 - (-2.5) + 1 = 3.4; clip 1: -1.9 - (-0.2) + 1 = -0.7 -> 0
    assert float(cw_loss(LOG_PROBS, LABELS, kappa=1.0)) == pytest.approx(3.4)
    # kappa 2: clip 1 gives 0.3 too
    assert float(cw_loss(LOG_PROBS, LABELS, kappa=2.0)) == pytest.approx(4.4 + 0.3)


def test_ce_and_relativistic_ce_literal():
    assert float(ce_loss(LOG_PROBS, LABELS)) == pytest.approx(-0.1 - 1.9)
    assert float(ce_loss(LOG_PROBS, LABELS, reduction="mean")) == pytest.approx(-1.0)
    # relative scores d = adv - clean; log softmax(d)_y = d_y - logsumexp(d)
    clean = tf.constant([[-0.1, -2.5, -3.0], [-1.0, -1.0, -1.0]])
    d1 = np.array([-1.0, 0.8, -0.9])  # clip 1: adv - clean
    expected = (0.0 - np.log(3.0)) + (d1[2] - np.log(np.exp(d1).sum()))  # clip 0: d = 0
    assert float(relativistic_ce_loss(LOG_PROBS, clean, LABELS)) == pytest.approx(expected, rel=1e-6)


def test_feature_losses_literal():
    adv = tf.constant([[[1.0, 0.0]], [[3.0, 4.0]]])
    clean = tf.constant([[[0.0, 1.0]], [[3.0, 4.0]]])
    # cosine: clip 0 orthogonal (0), clip 1 identical (1)
    assert float(feature_loss(adv, clean, "cos")) == pytest.approx(1.0)
    # minus mean squared difference: clip 0 -(1 + 1) / 2 = -1, clip 1 0
    assert float(feature_loss(adv, clean, "mse")) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="kind"):
        feature_loss(adv, clean, "l1")


def test_attack_loss_sums_the_named_losses():
    x = tf.zeros([2, 1, 2])
    features = [(tf.constant([[[1.0, 0.0]], [[3.0, 4.0]]]), tf.constant([[[0.0, 1.0]], [[3.0, 4.0]]]))]
    terms = attack_loss([LOG_PROBS], LABELS, x, x, alpha=1.0, losses=("cw", "ce", "feature-cos"),
                        features=features)
    assert float(terms["loss"]) == pytest.approx(2.4 - 2.0 + 1.0)
    assert set(terms) == {"loss", "cw", "ce", "feature-cos", "mse"}
    with pytest.raises(ValueError, match="unknown attack loss"):
        attack_loss([LOG_PROBS], LABELS, x, x, alpha=1.0, losses=("hinge",))


def test_heads_literal():
    z = tf.constant([[[0.5, -2.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    np.testing.assert_allclose(bounded_head(z, 0.1, "tanh").numpy()[0],
                               0.1 * np.tanh([[0.5, -2.0], [0.0, 1.0]]), rtol=1e-6)
    np.testing.assert_allclose(bounded_head(z, 0.1, "clip").numpy()[0], [[0.1, -0.1], [0.0, 0.1]])
    # scale: z / max|z| = z / 2 per clip; an all-zero clip stays zero
    np.testing.assert_allclose(bounded_head(z, 0.1, "scale").numpy(),
                               [[[0.025, -0.1], [0.0, 0.05]], [[0, 0], [0, 0]]], rtol=1e-6)
    with pytest.raises(ValueError, match="head"):
        bounded_head(z, 0.1, "sigmoid")


def test_curriculum_anneals_geometrically_and_ends_at_the_budget():
    generator = build_generator(0.0625, (37, 16), Budget(0.05), head="scale", curriculum=True)
    head = generator.get_layer("eta")
    schedule = BudgetCurriculum(head, 4.0, steps=2)
    assert [schedule.value(t) for t in (0, 1, 2, 3)] == [4.0, 2.0, 1.0, 1.0]
    x = np.random.default_rng(0).normal(size=(2, 37, 16)).astype(np.float32)
    schedule.on_train_batch_begin(0)
    assert np.abs(generator(x).numpy()).max() == pytest.approx(0.2, rel=1e-6)  # 4 x epsilon
    schedule.on_train_end()
    assert np.abs(generator(x).numpy()).max() == pytest.approx(0.05, rel=1e-6)
    assert float(head.loosen.numpy()) == 1.0


@pytest.mark.parametrize("field, value, message", [
    ("losses", ("cw", "cw"), "distinct"), ("losses", ("hinge",), "losses must be"),
    ("losses", (), "losses must be"), ("kappa", -1.0, "kappa"), ("head", "sigmoid", "head"),
    ("diversity", 1.5, "diversity"), ("curriculum", 0.5, "curriculum")])
def test_recipe_settings_are_checked(field, value, message):
    with pytest.raises(ValueError, match=message):
        AttackerConfig(**{field: value})


def test_recipe_fields_only_when_not_default():
    assert AttackerConfig().recipe == {}
    assert AttackerConfig(losses=["ce", "rce"], head="scale").recipe == {
        "losses": ("ce", "rce"), "head": "scale"}


def test_a_recipe_trains_end_to_end_from_the_cli(tiny_data, tmp_path):
    from tfadvser.attack.tasks import GENERATOR_FILE
    from tfadvser.config import get_profile
    from tfadvser.defence.training import train_defence
    import keras

    run_dir = tmp_path / "run"
    train_defence(tiny_data, "cnn4", get_profile("smoke"), run_dir, verbose=0)
    base = ["train", "attacker", "--data", str(tiny_data), "--profile", "smoke", "--out",
            str(run_dir), "--quiet", "--defences", "cnn4", "--method", "single",
            "--epsilon", "0.05", "--snr-db", "20"]
    result = CliRunner().invoke(main, base + ["--loss", "ce,feature-cos", "--head", "scale",
                                              "--diversity", "0.5", "--curriculum", "4"])
    assert result.exit_code == 0, result.output
    label = "single-cnn4-eps0.05-snr20-ce+feature-cos-headscale-div0.5-cur4"
    assert label in result.output
    record = json.loads((run_dir / "attackers" / label / "sequence.json").read_text())
    assert record["attacker"]["losses"] == ["ce", "feature-cos"]
    task_dir = run_dir / record["tasks"][0]["path"]
    generator = keras.saving.load_model(task_dir / GENERATOR_FILE, compile=False)
    assert float(generator.get_layer("eta").loosen.numpy()) == 1.0  # annealed to the budget
    x = np.random.default_rng(1).normal(size=(2, 373, 64)).astype(np.float32)
    assert np.abs(generator(x).numpy()).max() <= 0.05 + 1e-7
    metrics = json.loads((task_dir / "task.json").read_text())["final_train_metrics"]
    assert {"ce", "feature-cos"} <= set(metrics) and all(math.isfinite(v) for v in metrics.values())
    # the default recipe keeps its old label, and a bad loss name is one clear line
    bad = CliRunner().invoke(main, base + ["--loss", "hinge"])
    assert bad.exit_code == 2 and "hinge: choose from cw, ce, rce" in bad.output
    missing = CliRunner().invoke(main, base + ["--loss", "feature-mse", "--feature-layer", "nope"])
    assert missing.exit_code == 1 and "cnn4 has no layer 'nope' for a feature loss" in missing.output
    assert "Traceback" not in missing.output
