"""Continual-learning regularisers beyond EWC (`attack/regularisers/`): pure functions against hand computations on
one-parameter models, SI's path integral read during a real fit, and every regulariser
through `tfadvser train attacker` and `tfadvser tune` at the smoke profile."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tfadvser import config as config_module
from tfadvser.attack import regularisers
from tfadvser.attack.attacker import AdversarialAttacker
from tfadvser.attack.ewc import ewc_penalty
from tfadvser.attack.regularisers import lwf, mas, online_ewc, si
from tfadvser.attack.regularisers.base import QuadraticPenalty
from tfadvser.config import PROFILES
from tfadvser.errors import TfadvserError
from tfadvser.defence.training import train_defence
from tfadvser.experiment.results import Inputs, Results, TaskScores
from tfadvser_cli.main import main

from test_ewc import ALPHA, X, Y, hand_gradient, tiny_models

SMOKE = PROFILES["smoke"]


def test_online_fisher_decays_the_earlier_tasks():
    fishers = [[np.array([1.0, 2.0])], [np.array([3.0, 4.0])], [np.array([5.0, 6.0])]]
    # 0.5 * (0.5 * [1, 2] + [3, 4]) + [5, 6] = 0.5 * [3.5, 5] + [5, 6]
    np.testing.assert_allclose(online_ewc.online_fisher(fishers, 0.5)[0], [6.75, 8.5])
    np.testing.assert_allclose(online_ewc.online_fisher(fishers, 1.0)[0], [9.0, 12.0])
    with pytest.raises(ValueError):
        online_ewc.online_fisher([], 1.0)


def test_si_path_integral_and_importance_on_one_parameter():
    # loss (theta - 2)^2, gradient 2 (theta - 2); theta 0 -> 0.5 -> 0.8 -> 1.0
    thetas = [0.0, 0.5, 0.8, 1.0]
    omega = [np.zeros(())]
    for before, after in zip(thetas, thetas[1:]):
        omega = si.path_integral_step(omega, [2 * (before - 2)], [np.array(before)], [np.array(after)])
    # -(-4)(0.5) - (-3)(0.3) - (-2.4)(0.2) = 2 + 0.9 + 0.48
    assert float(omega[0]) == pytest.approx(3.38)
    # one task: 3.38 / (1.0^2 + 0.1); a second task with omega 1.2 and Delta -0.5 adds
    # 1.2 / (0.25 + 0.1)
    single = si.si_importance([omega], [[np.array(1.0)]], 0.1)
    assert float(single[0]) == pytest.approx(3.0727273, rel=1e-6)
    both = si.si_importance([omega, [np.array(1.2)]], [[np.array(1.0)], [np.array(-0.5)]], 0.1)
    assert float(both[0]) == pytest.approx(6.5012987, rel=1e-6)
    # SI's penalty is EWC's quadratic form with Omega: 3.0727273 * (1.3 - 1.0)^2 = 0.2765455
    penalty = ewc_penalty([tf.constant(1.3)], [([tf.constant(single[0])], [tf.constant(1.0)])])
    assert float(penalty) == pytest.approx(0.2765455, rel=1e-5)


def test_gradient_recovered_from_adam_and_stripped_of_the_penalty():
    # m_before 0.2, g 1.0, beta_1 0.9: m_after = 0.18 + 0.1 = 0.28
    assert float(si.adam_gradient(0.28, 0.2, 0.9)) == pytest.approx(1.0)
    # total 1.0 at w 1.5, Omega 2, anchor 1.0, lambda 0.25: 1.0 - 0.25 * 2 * 2 * 0.5
    out = si.unregularised_gradient([np.array(1.0)], [np.array(1.5)],
                                           [([np.array(2.0)], [np.array(1.0)])], 0.25)
    assert float(out[0]) == pytest.approx(0.5)


class ScaleShift(keras.layers.Layer):
    """eta = a * x + 1 with one trainable scalar a = -0.3."""

    def build(self, input_shape):
        self.a = self.add_weight(shape=(), initializer=keras.initializers.Constant(-0.3), name="a")

    def call(self, x):
        return self.a * x + 1.0


def test_mas_importance_is_the_mean_absolute_per_clip_gradient():
    inputs = keras.Input((2, 1))
    generator = keras.Model(inputs, ScaleShift()(inputs))
    clips = np.array([[[1.0], [2.0]], [[-1.0], [0.5]]], np.float32)
    # d/da sum_i (a x_i + 1)^2 = sum_i 2 x_i (a x_i + 1):
    #   clip 1: 2*1*0.7 + 2*2*0.4 = 3.0;  clip 2: 2*(-1)*1.3 + 2*0.5*0.85 = -1.75
    importance, n = mas.mas_importance(generator, tf.data.Dataset.from_tensor_slices(clips).batch(2))
    assert n == 2
    assert float(importance[0]) == pytest.approx((3.0 + 1.75) / 2, rel=1e-6)  # not |3.0 - 1.75| / 2


def test_distillation_is_the_mean_squared_distance_per_clip():
    eta = tf.constant([[[1.0, 2.0]], [[0.0, 0.0]]])
    teacher = tf.constant([[[0.0, 0.0]], [[1.0, 1.0]]])
    # clip 1: 1 + 4 = 5; clip 2: 1 + 1 = 2
    assert float(lwf.distillation_loss(eta, teacher)) == pytest.approx(3.5)
    assert float(lwf.distillation_loss(eta, teacher, global_batch=4)) == pytest.approx(1.75)


def test_path_integral_callback_follows_the_fit_with_the_unregularised_gradient(tmp_path):
    """A real fit of a one-parameter attacker carrying an SI term: the callback's omega equals
    sum_t -g(a_t) (a_{t+1} - a_t), with g the hand gradient of the attack loss alone."""
    keras.utils.set_random_seed(0)
    generator, defence = tiny_models()
    lam, importance, anchor = 0.5, 3.0, 0.1
    attacker = AdversarialAttacker(generator, [defence], alpha=ALPHA, term=QuadraticPenalty(
        lam, [([np.float32(importance)], [np.float32(anchor)])]))
    attacker.compile(optimizer=keras.optimizers.Adam(0.05))

    class Trace(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.values = [float(generator.trainable_weights[0].numpy())]

        def on_train_batch_end(self, batch, logs=None):
            self.values.append(float(generator.trainable_weights[0].numpy()))

    trace = Trace()
    data = tf.data.Dataset.from_tensor_slices((X, Y)).batch(4).repeat()
    attacker.fit(data, epochs=2, steps_per_epoch=2, verbose=0,
                 callbacks=[si.PathIntegral(tmp_path, ["a"]), trace])
    a = trace.values
    assert len(a) == 5 and a[0] == pytest.approx(0.3) and a[-1] != a[0]
    expected = sum(-hand_gradient(X, Y, a0) * (a1 - a0) for a0, a1 in zip(a, a[1:]))
    with np.load(tmp_path / si.PATH_FILE) as saved:
        assert float(saved["a_0"]) == pytest.approx(expected, rel=1e-4)
        assert float(saved["b_0"]) == pytest.approx(a[-1] - a[0], rel=1e-6)
    # with the regularised gradient it would differ by sum_t 2 lambda Omega (a_t - anchor) da
    stripped = sum(-2 * lam * importance * (a0 - anchor) * (a1 - a0) for a0, a1 in zip(a, a[1:]))
    assert abs(stripped) > 1e-3 * abs(expected)
    assert not list(tmp_path.glob("si-path-epoch*.npz"))  # partials removed at the end


def test_key_fields_leave_ewc_keys_alone():
    config = SMOKE.attacker
    anchored = {"ewc": {"fisher_mode": "batch", "accumulate": False, "fisher_clips": 32}}
    # EWC: only the anchored-task settings keys always held; a first task: nothing
    assert regularisers.get("ewc").key_fields(config, True) == anchored
    assert regularisers.get("ewc").key_fields(config, False) == {}
    assert regularisers.get("lwf").key_fields(config, False) == {}
    assert regularisers.get("lwf").key_fields(config, True) == {**anchored, "regulariser": {"name": "lwf"}}
    # SI's every task records its path integral, the first included
    assert regularisers.get("si").key_fields(config, False) == {"regulariser": {"name": "si", "damping": 1e-3}}
    assert regularisers.get("online-ewc").key_fields(config, True)["regulariser"]["gamma"] == 1.0
    assert regularisers.get("mas").key_fields(config, True)["regulariser"] == {"name": "mas", "clips": 32}


def test_the_registry_is_the_configs_list_and_holds_the_strengths():
    assert tuple(regularisers.REGISTRY) == config_module.REGULARISERS
    with pytest.raises(TfadvserError, match="unknown regulariser 'l2'; choose one of ewc, online-ewc"):
        regularisers.get("l2")
    config = SMOKE.attacker
    # EWC and online EWC weigh a Fisher: the profile's strengths; the others their own
    for name in ("ewc", "online-ewc"):
        assert regularisers.get(name).default_strength(config) == config.default_lambda == 1e5
        assert regularisers.get(name).strength_grid(config) == (1e4, 1e5, 1e6, 1e7)
    assert regularisers.get("si").default_strength(config) == 0.1
    assert regularisers.get("si").strength_grid(config) == (1e-2, 1e-1, 1.0, 10.0)
    for name in ("mas", "lwf"):
        assert regularisers.get(name).default_strength(config) == 1e-2
        assert regularisers.get(name).strength_grid(config) == (1e-4, 1e-3, 1e-2, 1e-1)


def test_the_attacker_imports_no_regulariser():
    import ast
    import pathlib

    import tfadvser.attack.attacker as attacker_module

    tree = ast.parse(pathlib.Path(attacker_module.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not [m for m in imported if m and ("regularisers" in m or m.endswith(".ewc")
                                              or m.endswith(".continual"))]


@pytest.fixture(scope="module")
def two_defences(tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("continual_run")
    for name in ("cnn4", "vgg16"):
        train_defence(tiny_data, name, SMOKE, run_dir, verbose=0)
    return run_dir


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def sequence(run_dir, label):
    return json.loads((run_dir / "attackers" / label / "sequence.json").read_text())


def task_record(run_dir, task):
    return json.loads((run_dir / task["path"] / "task.json").read_text())


@pytest.mark.parametrize("regulariser", ["online-ewc", "si", "mas", "lwf"])
def test_each_regulariser_trains_through_the_cli(two_defences, tiny_data, regulariser):
    # The paper's unbounded attacker: its MSE term gives every importance a gradient even
    # where the near-chance smoke defences leave the C&W term no margin to push on.
    base = ["train", "attacker", "--data", tiny_data, "--profile", "smoke", "--out", two_defences,
            "--quiet", "--method", "lifelong", "--defences", "cnn4,vgg16", "--perturbation", "paper"]
    result = run(*base)  # EWC, the paper's: label and keys without a regulariser
    assert result.exit_code == 0, result.output
    ewc = sequence(two_defences, "lifelong-cnn4-vgg16-lambda100000")
    assert "regulariser" not in task_record(two_defences, ewc["tasks"][1])
    result = run(*base, "--regulariser", regulariser)
    assert result.exit_code == 0, result.output
    # online EWC takes EWC's default (the smoke profile's, the paper's 1e5), the others theirs
    lam = 1e5 if regulariser == "online-ewc" else {"si": 0.1, "mas": 1e-2, "lwf": 1e-2}[regulariser]
    seq = sequence(two_defences, f"lifelong-{regulariser}-cnn4-vgg16-lambda{lam:g}")
    assert seq["regulariser"] == regulariser and [t["ewc_lambda"] for t in seq["tasks"]] == [0.0, lam]
    first, second = (task_record(two_defences, t) for t in seq["tasks"])
    assert second["regulariser"]["name"] == regulariser
    assert seq["tasks"][1]["key"] != ewc["tasks"][1]["key"]
    assert second["peak_rss_mb"] > 0 and second["peak_rss_scope"] in ("span", "process")
    metrics = second["final_train_metrics"]
    tasks = two_defences / "attackers" / "tasks"
    if regulariser == "si":  # SI trains its own first task, which records its path integral
        assert seq["tasks"][0]["key"] != ewc["tasks"][0]["key"]
        for task in seq["tasks"]:
            assert (tasks / task["key"] / si.PATH_FILE).exists()
    else:  # the others share the first task with EWC (and single-task)
        assert seq["tasks"][0]["key"] == ewc["tasks"][0]["key"]
        assert "regulariser" not in first
    if regulariser == "lwf":
        assert metrics["distillation"] > 0 and "penalty" not in metrics
    else:
        assert metrics["penalty"] > 0 and "distillation" not in metrics
    if regulariser == "mas":
        assert (tasks / seq["tasks"][0]["key"] / "mas-32clips.npz").exists()


def test_tune_sweeps_a_regulariser(two_defences, tiny_data):
    result = run("train", "attacker", "--data", tiny_data, "--profile", "smoke", "--out", two_defences,
                 "--quiet", "--method", "single", "--defences", "cnn4")
    assert result.exit_code == 0, result.output
    result = run("tune", "--data", tiny_data, "--run", two_defences, "--sequence", "cnn4,vgg16",
                 "--profile", "smoke", "--regulariser", "lwf", "--lambdas", "1e-3,1e-1")
    assert result.exit_code == 0, result.output
    best = json.loads((two_defences / "tuning" / "lwf-cnn4-vgg16-eps0.008-snr30" / "best.json").read_text())
    assert best["regulariser"] == "lwf" and [t["lambda"] for t in best["trials"]] == [1e-3, 1e-1]
    assert (two_defences / "attackers" / "lifelong-lwf-cnn4-vgg16-lambda0.1-eps0.008-snr30" / "sequence.json").exists()


def test_a_regulariser_needs_lifelong(two_defences, tiny_data):
    result = run("train", "attacker", "--data", tiny_data, "--profile", "smoke", "--out", two_defences,
                 "--quiet", "--method", "transfer", "--defences", "cnn4,vgg16", "--regulariser", "si")
    assert result.exit_code == 1 and "anchors lifelong tasks" in result.output


def test_continual_metrics_on_a_hand_made_grid():
    from tfadvser.evaluation.continual import continual_metrics

    success = [[0.30, 0.10, 0.05],
               [0.32, 0.40, 0.15],
               [0.25, 0.35, 0.50]]
    m = continual_metrics(success, baseline=[0.02, 0.04, 0.06])
    assert m["average_success"] == pytest.approx(1.10 / 3)  # (0.25 + 0.35 + 0.50) / 3
    assert m["backward_transfer"] == pytest.approx(-0.05)  # ((0.25-0.30) + (0.35-0.40)) / 2
    assert m["forgetting"] == pytest.approx(0.06)  # ((0.32-0.25) + (0.40-0.35)) / 2
    assert m["forward_transfer"] == pytest.approx(0.075)  # ((0.10-0.04) + (0.15-0.06)) / 2
    assert m["peak_success"] == pytest.approx(0.36)  # (max(0.30, 0.32) + 0.40) / 2
    single = continual_metrics([[0.2]])
    assert single["average_success"] == pytest.approx(0.2) and single["forgetting"] is None
    assert single["peak_success"] is None
    assert continual_metrics(success)["forward_transfer"] is None
    with pytest.raises(ValueError):
        continual_metrics([[0.1, 0.2]])


def test_continual_intervals_from_per_clip_predictions():
    from tfadvser.evaluation.continual import continual_intervals

    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    wrong = lambda *clips: np.array([1 - v if i in clips else v for i, v in enumerate(y)])  # noqa: E731
    clean = [y, y]  # UAR 1 on both defences
    adversarial = [[wrong(0, 1), y],  # UAR 0.75, 1.0 -> success 0.25, 0
                   [wrong(0), wrong(4, 5)]]  # UAR 0.875, 0.75 -> success 0.125, 0.25
    baseline = [y, wrong(4)]  # success 0, 0.125
    out = continual_intervals(y, clean, adversarial, 2, baseline, resamples=500)
    assert out["average_success"]["value"] == pytest.approx(0.1875)  # (0.125 + 0.25) / 2
    assert out["backward_transfer"]["value"] == pytest.approx(-0.125)  # 0.125 - 0.25
    assert out["forgetting"]["value"] == pytest.approx(0.125)  # 0.25 - 0.125
    assert out["forward_transfer"]["value"] == pytest.approx(-0.125)  # 0 - 0.125
    assert out["peak_success"]["value"] == pytest.approx(0.25)  # after task 0 on defence 0
    for metric in out.values():
        low, high = metric["ci"]
        assert low <= metric["value"] <= high and high > low
    assert continual_intervals(y, clean, adversarial, 2, baseline, resamples=500) == out


def test_forgetting_difference_is_paired_on_the_same_clips():
    from tfadvser.evaluation.continual import forgetting_difference

    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    wrong = lambda *clips: np.array([1 - v if i in clips else v for i, v in enumerate(y)])  # noqa: E731
    clean = [y, y]  # UAR 1 on both defences
    keeps = [[wrong(0, 4), y], [wrong(0, 4), wrong(5)]]  # d0 success 0.25 after both tasks: F 0
    forgets = [[wrong(0, 4), y], [wrong(0), wrong(5)]]  # d0 success 0.25 -> 0.125: F 0.125
    out = forgetting_difference(y, clean, keeps, forgets, 2, resamples=500)
    assert out["value"] == pytest.approx(0.125)  # F(forgets) - F(keeps) = 0.125 - 0
    low, high = out["ci"]
    assert low <= 0.125 <= high and high > low
    swapped = forgetting_difference(y, clean, forgets, keeps, 2, resamples=500)
    assert swapped["value"] == pytest.approx(-0.125)
    assert forgetting_difference(y, clean, keeps, forgets, 2, resamples=500) == out  # seeded
    with pytest.raises(ValueError):
        forgetting_difference(y, [y], [[y]], [[y]], 2)


def test_least_forgetting_is_decided_by_the_paired_difference_when_clips_are_kept():
    from tfadvser.evaluation.continual import forgetting_difference
    from tfadvser.experiment.continual_report import _least_forgetting

    y = np.array([0, 0, 0, 0, 1, 1, 1, 1] * 4)
    wrong = lambda *clips: np.array([1 - v if i in clips else v for i, v in enumerate(y)])  # noqa: E731
    # "keeps" stays at success 0.25 on CNN-4 after task 1; "forgets" falls to 0.125 (F 0.125)
    grids = {"keep": [[wrong(*range(0, 32, 4)), y], [wrong(*range(0, 32, 4)), y]],
             "forget": [[wrong(*range(0, 32, 4)), y], [wrong(*range(0, 32, 8)), y]]}
    results = Results(
        inputs=Inputs(labels=("a", "b"), truth={"test": y.tolist()}),
        defences={d: {"test": {"predictions": y.tolist()}} for d in ("cnn4", "vgg16")},
        tasks={f"{name}{k}": TaskScores(test={"against": {d: {"predictions": grid[k][j].tolist()}
                                                          for j, d in enumerate(("cnn4", "vgg16"))}})
               for name, grid in grids.items() for k in range(2)})

    def row(method, name, forgetting):
        return {"method": method, "defences": ["cnn4", "vgg16"], "keys": [f"{name}0", f"{name}1"],
                "metrics": {"forgetting": {"value": forgetting, "ci": [forgetting - 0.1, forgetting + 0.1]},
                            "peak_success": {"value": 0.25, "ci": [0.1, 0.4]}}}

    rows = [row("Lifelong (EWC)", "keep", 0.0), row("Transfer", "forget", 0.125)]
    paired = forgetting_difference(y, [y, y], grids["keep"], grids["forget"], 2)
    assert paired["value"] == pytest.approx(0.125) and paired["ci"][0] > 0
    low, high = (f"{100 * v:.1f}" for v in paired["ci"])
    assert _least_forgetting(rows, results) == [
        "- CNN-4 → VGG-16: least forgetting by Lifelong (EWC) (F = 0.0 [-10.0, 10.0]); next Transfer "
        f"(F = 12.5 [2.5, 22.5]): paired difference on the same clips 12.5 [{low}, {high}] points, "
        "decided at 95 %."]
    # without the per-clip predictions: the marginal intervals, which overlap here
    assert _least_forgetting(rows)[0].endswith("the intervals overlap, so the ranking is undecided.")


def test_report_compares_the_methods_with_continual_metrics(two_defences, tiny_data):
    """Runs after the training tests above, in this module's run."""
    for method in ("transfer", "multi"):
        result = run("train", "attacker", "--data", tiny_data, "--profile", "smoke", "--out",
                     two_defences, "--quiet", "--method", method, "--defences", "cnn4,vgg16",
                     "--perturbation", "paper")
        assert result.exit_code == 0, result.output
    result = run("evaluate", two_defences, "--audio-clips", "0")
    assert result.exit_code == 0, result.output
    out = two_defences / "evaluation"
    results = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in json.loads((out / "continual.json").read_text())["rows"]}
    assert set(rows) == {"Multi-task", "Transfer", "Lifelong (EWC)", "Lifelong (online EWC)",
                         "Lifelong (SI)", "Lifelong (MAS)", "Lifelong (LwF)"}
    assert "metrics" not in rows["Multi-task"] and rows["Multi-task"]["peak_rss_mb"] > 0
    si = rows["Lifelong (SI)"]
    seq = sequence(two_defences, si["label"])
    clean = {d: results["defences"][d]["test"]["uar"] for d in ("cnn4", "vgg16")}
    adv = [{d: results["tasks"][t["key"]]["test"]["against"][d]["adversarial_uar"] for d in clean}
           for t in seq["tasks"]]
    # the grid is clean minus adversarial test UAR, after task k (row) on defence j (column)
    np.testing.assert_allclose(si["grid"], [[clean[d] - a[d] for d in ("cnn4", "vgg16")] for a in adv])
    m = si["metrics"]
    assert m["average_success"]["value"] == pytest.approx(np.mean(si["grid"][1]))
    assert m["backward_transfer"]["value"] == pytest.approx(si["grid"][1][0] - si["grid"][0][0])
    assert m["forgetting"]["value"] == pytest.approx(si["grid"][0][0] - si["grid"][1][0])
    # FWT's reference: the untrained generator the first task starts from, scored per clip
    untrained = results["untrained"][f"atrous-width{SMOKE.attacker.width:g}-unbounded-seed0"]["test"]["vgg16"]
    y = np.array(results["truth"]["test"])
    from tfadvser.evaluation.statistics import uar_batch
    baseline = clean["vgg16"] - float(uar_batch(y, np.array(untrained), len(results["labels"])))
    assert m["forward_transfer"]["value"] == pytest.approx(si["grid"][0][1] - baseline)
    for metric in m.values():
        assert metric["ci"][0] <= metric["value"] <= metric["ci"][1]
    assert si["seconds"] > 0
    report = (out / "report.md").read_text()
    assert "## Continual learning: methods compared on attack success" in report
    assert "| Lifelong (SI) | CNN-4 → VGG-16 | 0.1 |" in report
    assert "| ACC | P | F | BWT | FWT |" in report
    assert "least forgetting by" in report or "forgetting is not compared" in report
    # the regularisers' sequences stay out of Table 1 (the paper's EWC only)
    from tfadvser.experiment.results_file import read_results
    from tfadvser.experiment.tables import table1

    # (the run also holds bounded attackers, so the unbounded Table 1 is not the first)
    row = next(r for r in table1(read_results(out / "results.json"), "unbounded")
               if r["method"] == "Lifelong" and r["sequence"] == "CNN-4 + VGG-16")
    assert row["keys"] == [sequence(two_defences, "lifelong-cnn4-vgg16-lambda100000")["tasks"][1]["key"]]


def test_continual_rows_read_the_grid_in_sequence_order(tmp_path):
    """A hand-made results record: the counter-clockwise order puts VGG-16 first, and the
    lambda with the lower mean adversarial dev UAR is chosen."""
    from tfadvser.experiment.continual_report import continual_rows

    def scored(adv_uar):
        return TaskScores(**{s: {"against": {d: {"adversarial_uar": adv_uar[d]} for d in adv_uar}}
                             for s in ("dev", "test")})

    attacker = {"seed": 0, "width": 0.5}
    sequences = [
        {"label": f"lifelong-mas-vgg16-cnn4-lambda{lam}", "method": "lifelong", "regulariser": "mas",
         "defences": ["vgg16", "cnn4"], "ewc_lambda": lam, "attacker": attacker,
         "tasks": [{"key": "t0", "path": "t0"}, {"key": key, "path": key}]}
        for lam, key in ((0.1, "t1"), (1.0, "t1weak"))]
    results = Results(inputs=Inputs(labels=("a", "b"), sequences=tuple(sequences)),
                      defences={d: {s: {"uar": 1.0} for s in ("dev", "test")} for d in ("cnn4", "vgg16")},
                      tasks={"t0": scored({"vgg16": 0.5, "cnn4": 0.75}),
                             "t1": scored({"vgg16": 0.75, "cnn4": 0.5}),
                             "t1weak": scored({"vgg16": 1.0, "cnn4": 1.0})})
    rows = continual_rows(results, tmp_path)
    assert len(rows) == 1 and rows[0]["lambda"] == 0.1 and rows[0]["method"] == "Lifelong (MAS)"
    # after task 0 (VGG-16): success 0.5 on VGG-16, 0.25 on CNN-4; after task 1: 0.25, 0.5
    assert rows[0]["grid"] == [[0.5, 0.25], [0.25, 0.5]]
    assert rows[0]["success"] == {"cnn4": 0.5, "vgg16": 0.25}
    m = rows[0]["metrics"]
    assert m["average_success"]["value"] == pytest.approx(0.375)
    assert m["forgetting"]["value"] == pytest.approx(0.25)  # 0.5 - 0.25 on VGG-16
    assert m["peak_success"]["value"] == pytest.approx(0.5)  # VGG-16 after task 0
    assert m["backward_transfer"]["value"] == pytest.approx(-0.25)
    assert m["forward_transfer"]["value"] is None and m["forgetting"]["ci"] is None  # no per-clip data
    assert rows[0]["seconds"] is None  # no task.json here


def test_least_forgetting_ranks_only_methods_that_learnt_something():
    """F = 0 of an attacker that never succeeded (peak success P = 0) is not 'least
    forgetting': such rows are named as not ranked; a lone learner is named as such."""
    from tfadvser.experiment.continual_report import _least_forgetting

    def row(method, forgetting, peak, defences=("cnn4", "vgg16")):
        return {"method": method, "defences": list(defences),
                "metrics": {"forgetting": {"value": forgetting[0], "ci": forgetting[1:]},
                            "peak_success": {"value": peak[0], "ci": peak[1:]}}}

    rows = [row("Lifelong (EWC)", (0.02, 0.0, 0.05), (0.10, 0.06, 0.14)),
            row("Transfer", (0.08, 0.06, 0.11), (0.12, 0.08, 0.16)),
            row("Transfer (universal)", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
            row("Lifelong (SI)", (0.0, -0.01, 0.01), (0.01, -0.01, 0.03)),  # P's interval reaches 0
            row("Lifelong (LwF)", (0.0, -0.01, 0.01), (0.009, 0.0002, 0.019)),  # 0.0 [0.0, 1.9] shown
            row("Lifelong (MAS)", (0.05, 0.03, 0.07), (0.2, 0.1, 0.3), ("vgg16", "cnn4")),
            row("Transfer", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), ("vgg16", "cnn4"))]
    rows.append({"method": "Multi-task", "defences": ["cnn4", "vgg16"]})  # not sequential
    assert _least_forgetting(rows) == [
        "- CNN-4 → VGG-16: least forgetting by Lifelong (EWC) (F = 2.0 [0.0, 5.0]); next Transfer "
        "(F = 8.0 [6.0, 11.0]): the intervals do not overlap. Not ranked, peak success P not above "
        "zero at 95 % (nothing learnt to forget): Lifelong (LwF), Lifelong (SI), Transfer (universal).",
        "- VGG-16 → CNN-4: least forgetting by Lifelong (MAS) (F = 5.0 [3.0, 7.0]); the only method "
        "with something to forget. Not ranked, peak success P not above zero at 95 % (nothing "
        "learnt to forget): Transfer."]
    nothing = [row("Transfer", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))]
    assert _least_forgetting(nothing) == [
        "- CNN-4 → VGG-16: no method's peak success P on the earlier defences is above zero at "
        "95 %, so none had anything to forget: forgetting is not compared."]


def test_path_integral_resumes_after_an_interrupted_epoch(tmp_path):
    """Killed after epoch 1 of 2 and resumed (weights and Adam as a backup restores them):
    the same omega and Delta as an uninterrupted fit."""
    def fit(out, interrupt):
        keras.utils.set_random_seed(0)
        generator, defence = tiny_models()
        attacker = AdversarialAttacker(generator, [defence], alpha=ALPHA)
        attacker.compile(optimizer=keras.optimizers.Adam(0.05))
        data = tf.data.Dataset.from_tensor_slices((X, Y)).batch(4).repeat()

        class Kill(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if interrupt and epoch == 1:
                    raise RuntimeError("killed")

        try:
            attacker.fit(data, epochs=2, steps_per_epoch=2, verbose=0,
                         callbacks=[si.PathIntegral(out, ["a"]), Kill()])
        except RuntimeError:
            assert (out / "si-path-epoch1.npz").exists() and not (out / si.PATH_FILE).exists()
            attacker.fit(data, initial_epoch=1, epochs=2, steps_per_epoch=2, verbose=0,
                         callbacks=[si.PathIntegral(out, ["a"], resumed=1)])
        with np.load(out / si.PATH_FILE) as saved:
            return float(saved["a_0"]), float(saved["b_0"])

    (tmp_path / "once").mkdir()
    (tmp_path / "twice").mkdir()
    once, twice = fit(tmp_path / "once", False), fit(tmp_path / "twice", True)
    assert once[1] != 0 and twice == pytest.approx(once, rel=1e-6)
