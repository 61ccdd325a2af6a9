"""The attacker, its training step, the four methods and `tfadvser train attacker`."""
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

import tensorflow as tf

from tfadvser.runtime import atrous
from tfadvser.runtime.atrous import AtrousConv2D
from tfadvser.attack.attacker import AdversarialAttacker, build_generator
from tfadvser.attack.monitor import AttackMonitor
from tfadvser.attack.regularisers.base import QuadraticPenalty
from tfadvser.attack.training import train_attacker
from tfadvser.config import PROFILES
from tfadvser.defence.training import train_defence
from tfadvser.defence.models import build_defence
from tfadvser.errors import TfadvserError
from tfadvser.attack.methods import METHODS, Stage
from tfadvser_cli.main import main

from browser import check_page, chromium_path, html_headings, is_blank, markdown_headings

SMOKE = PROFILES["smoke"]


def test_generator_parameters_and_output_range():
    generator = build_generator(1.0)
    assert sum(int(np.prod(w.shape)) for w in generator.trainable_weights) == 413_314
    eta = build_generator(0.0625)(np.random.default_rng(0).normal(size=(2, 373, 64)).astype("float32"))
    assert eta.shape == (2, 373, 64)
    assert float(np.min(eta)) > 0.0 and float(np.max(eta)) < 1.0  # sigmoid output


def test_atrous_conv_places_taps_dilation_apart_and_matches_keras(tmp_path, monkeypatch):
    impulse = np.zeros((1, 9, 9, 1), np.float32)
    impulse[0, 4, 4, 0] = 1.0
    layer = AtrousConv2D(1, 3, dilation_rate=2, padding="same", use_bias=False,
                         kernel_initializer="ones")
    out = layer(impulse)[0, :, :, 0].numpy()
    expected = np.zeros((9, 9), np.float32)
    expected[2:7:2, 2:7:2] = 1.0  # the 3x3 kernel's taps, two pixels apart
    np.testing.assert_array_equal(out, expected)

    # Same values and gradients as Keras's own path (SpaceToBatch around an undilated
    # convolution), which is also the fallback where the native gradient is missing.
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 37, 16, 3)).astype("float32"))
    kernel = np.random.default_rng(2).normal(size=(5, 5, 3, 4)).astype("float32")
    results = []
    for native in (True, False):
        monkeypatch.setattr(atrous, "native_dilated_gradients", lambda native=native: native)
        conv = AtrousConv2D(4, 5, dilation_rate=4, padding="same", use_bias=False)
        conv.build(x.shape)
        conv.kernel.assign(kernel)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = conv(x)
            loss = tf.reduce_sum(y * y)
        results.append([y.numpy(), *[g.numpy() for g in tape.gradient(loss, [x, conv.kernel])]])
    for native_value, keras_value in zip(*results):
        np.testing.assert_allclose(native_value, keras_value, rtol=1e-4, atol=1e-4)

    generator = build_generator(0.0625, (37, 16))
    generator.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras", compile=False)
    assert isinstance(loaded.get_layer("atrous3_conv"), AtrousConv2D)
    np.testing.assert_array_equal(loaded(x[..., 0]).numpy(), generator(x[..., 0]).numpy())



def test_generator_trains_where_the_native_dilated_gradient_is_missing():
    # Without oneDNN, TensorFlow's CPU kernels cannot differentiate a dilated Conv2D op: the
    # layer must notice (even when first called while a function is traced) and fall back.
    script = """
import tensorflow as tf
from tfadvser.runtime.atrous import native_dilated_gradients
from tfadvser.attack.attacker import build_generator
g = build_generator(0.0625, (37, 16))
@tf.function
def grads(x):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(g(x, training=True))
    return tape.gradient(loss, g.trainable_weights)
ok = all(v is not None for v in grads(tf.ones((2, 37, 16))))
print("native", native_dilated_gradients(), "gradients", ok)
"""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "CUDA_VISIBLE_DEVICES": "",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-4:] == ["native", "False", "gradients", "True"]

def test_methods_are_deltas_on_one_stage_list():
    config = PROFILES["paper"].attacker
    seq = ["cnn4", "vgg16", "resnet50"]
    assert METHODS["single"](["cnn4"], config) == [Stage(("cnn4",), 10000)]
    assert METHODS["multi"](seq, config) == [Stage(tuple(seq), 10000)]
    assert METHODS["transfer"](seq, config) == [
        Stage(("cnn4",), 10000), Stage(("vgg16",), 1000, from_previous=True),
        Stage(("resnet50",), 1000, from_previous=True)]
    assert METHODS["lifelong"](seq, config) == [
        Stage(("cnn4",), 10000), Stage(("vgg16",), 1000, from_previous=True, anchored=True),
        Stage(("resnet50",), 1000, from_previous=True, anchored=True)]
    with pytest.raises(TfadvserError, match="single-task trains against one defence"):
        METHODS["single"](seq, config)
    with pytest.raises(TfadvserError, match="needs at least two defences"):
        METHODS["lifelong"](["cnn4"], config)


def test_training_step_leaves_defences_untouched():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 373, 64)).astype("float32")
    y = rng.integers(0, 7, 8)
    defence = build_defence("cnn4", 7, width=0.0625)
    before = [w.numpy().copy() for w in defence.weights]  # kernels, BN gamma/beta and moving stats
    generator = build_generator(0.0625)
    generator_before = [w.numpy().copy() for w in generator.trainable_weights]
    attacker = AdversarialAttacker(generator, [defence])
    attacker.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = attacker.fit(x, y, batch_size=4, epochs=2, verbose=0)
    for a, b in zip(before, defence.weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(generator_before, generator.trainable_weights))
    # no regulariser's term: nothing but the attack's own parts
    assert set(history.history) == {"loss", "cw", "mse", "success_rate", "eta_mean", "eta_max"}
    # a penalty with no pairs (what every unanchored task of a run trains with) logs 0
    attacker = AdversarialAttacker(generator, [defence], term=QuadraticPenalty())
    attacker.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = attacker.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert history.history["penalty"] == [0.0, 0.0]


def test_penalty_term_enters_the_loss():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 373, 64)).astype("float32")
    y = rng.integers(0, 7, 4)
    generator = build_generator(0.0625)
    anchor = [w.numpy() + 0.1 for w in generator.trainable_weights]  # 0.1 away everywhere
    fisher = [np.ones_like(a) for a in anchor]
    attacker = AdversarialAttacker(generator, [build_defence("cnn4", 7, 0.0625)],
                                   term=QuadraticPenalty(2.0, [(fisher, anchor)]))
    attacker.compile(optimizer=keras.optimizers.SGD(0.0))  # no update: the first step's penalty
    history = attacker.fit(x, y, batch_size=4, epochs=1, verbose=0)
    n = sum(a.size for a in anchor)
    assert history.history["penalty"][0] == pytest.approx(0.01 * n, rel=1e-4)
    plain = history.history["loss"][0] - 2.0 * history.history["penalty"][0]
    assert plain == pytest.approx(0.02 * history.history["cw"][0] + 0.98 * history.history["mse"][0], rel=1e-4)


def test_assign_replaces_the_term_of_a_compiled_attacker():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 373, 64)).astype("float32")
    y = rng.integers(0, 7, 4)
    generator = build_generator(0.0625)
    weights = [w.numpy() for w in generator.trainable_weights]
    ones = [np.ones_like(w) for w in weights]
    attacker = AdversarialAttacker(generator, [build_defence("cnn4", 7, 0.0625)],
                                   term=QuadraticPenalty(2.0, [(ones, [w + 0.1 for w in weights])]))
    attacker.compile(optimizer=keras.optimizers.SGD(0.0))
    attacker.fit(x, y, batch_size=4, epochs=1, verbose=0)  # traced with the first terms
    attacker.term.assign(3.0, [([2.0 * f for f in ones], [w + 0.2 for w in weights])])
    history = attacker.fit(x, y, batch_size=4, epochs=1, verbose=0)
    n = sum(w.size for w in weights)
    assert history.history["penalty"][0] == pytest.approx(2.0 * 0.04 * n, rel=1e-4)
    plain = history.history["loss"][0] - 3.0 * history.history["penalty"][0]
    assert plain == pytest.approx(0.02 * history.history["cw"][0] + 0.98 * history.history["mse"][0], rel=1e-4)
    with pytest.raises(ValueError, match="built for 1 penalty term"):
        attacker.term.assign(1.0, [])


@pytest.fixture(scope="module")
def defended_run(tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("attack_run")
    for name in ("cnn4", "vgg16", "resnet50"):
        train_defence(tiny_data, name, SMOKE, run_dir, verbose=0)
    return run_dir


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def attack(data, run_dir, *args):
    return run("train", "attacker", "--data", data, "--profile", "smoke", "--out", run_dir,
               "--quiet", *args)


def sequence(run_dir, label):
    return json.loads((run_dir / "attackers" / label / "sequence.json").read_text())


def test_each_method_trains_and_shares_tasks(defended_run, tiny_data):
    for args in (["--method", "single", "--defences", "cnn4"],
                 ["--method", "multi", "--defences", "cnn4,vgg16,resnet50"],
                 ["--method", "transfer", "--defences", "cnn4,vgg16,resnet50"],
                 ["--method", "lifelong", "--defences", "cnn4,vgg16,resnet50", "--lambda", "1e6"],
                 ["--method", "single", "--defences", "cnn4", "--round-trip"],
                 ["--method", "single", "--defences", "cnn4", "--perturbation", "paper"]):
        result = attack(tiny_data, defended_run, *args)
        assert result.exit_code == 0, result.output
    # the paper's unbounded attacker: the label and key it always had, apart from the bounded one
    paper = sequence(defended_run, "single-cnn4")
    assert paper["attacker"]["perturbation"] == "paper"
    assert paper["tasks"][0]["key"] != sequence(defended_run, "single-cnn4-eps0.008-snr30")["tasks"][0]["key"]
    # trained through the audio round trip: its own task and label, the paper's keys unchanged
    through_audio = sequence(defended_run, "single-cnn4-eps0.008-snr30-roundtrip")
    assert through_audio["attacker"]["round_trip"] is True
    assert through_audio["tasks"][0]["key"] != sequence(defended_run, "single-cnn4-eps0.008-snr30")["tasks"][0]["key"]
    single = sequence(defended_run, "single-cnn4-eps0.008-snr30")
    transfer = sequence(defended_run, "transfer-cnn4-vgg16-resnet50-eps0.008-snr30")
    lifelong = sequence(defended_run, "lifelong-cnn4-vgg16-resnet50-lambda1e+06-eps0.008-snr30")
    multi = sequence(defended_run, "multi-cnn4-vgg16-resnet50-eps0.008-snr30")
    # task 0 is one and the same training for single, transfer and lifelong
    assert single["tasks"][0]["key"] == transfer["tasks"][0]["key"] == lifelong["tasks"][0]["key"]
    assert transfer["tasks"][1]["key"] != lifelong["tasks"][1]["key"]
    assert [t["ewc_lambda"] for t in lifelong["tasks"]] == [0.0, 1e6, 1e6]
    assert multi["tasks"][0]["defences"] == ["cnn4", "vgg16", "resnet50"]
    tasks = defended_run / "attackers" / "tasks"
    # the original anchors only the previous task: Fisher of tasks 0 and 1, not of task 2
    assert (tasks / lifelong["tasks"][0]["key"] / "ewc-batch-32clips.npz").exists()
    assert (tasks / lifelong["tasks"][1]["key"] / "ewc-batch-32clips.npz").exists()
    assert not (tasks / lifelong["tasks"][2]["key"] / "ewc-batch-32clips.npz").exists()
    with np.load(tasks / lifelong["tasks"][0]["key"] / "ewc-batch-32clips.npz") as ewc:
        assert int(ewc["clips"]) == 14
        assert sum(float(ewc[f"fisher_{i}"].sum()) for i in range(len(ewc["names"]))) > 0
    task = json.loads((tasks / lifelong["tasks"][1]["key"] / "task.json").read_text())
    assert task["final_train_metrics"]["penalty"] >= 0.0 and task["ewc_lambda"] == 1e6
    logs = tasks / lifelong["tasks"][1]["key"] / "logs"
    for folder in ("train", "monitor", "config"):
        assert any((logs / folder).glob("events.out.tfevents.*")), folder
    # the audio dashboard: clean, adversarial and perturbation of the first monitor clip
    audio = [v for f in (logs / "monitor").glob("events.out.tfevents.*")
             for e in tf.compat.v1.train.summary_iterator(str(f)) for v in e.summary.value
             if v.metadata.plugin_data.plugin_name == "audio"]
    assert audio and all(v.tag == "audio" for v in audio)
    assert tf.make_ndarray(audio[0].tensor).shape == (3, 2)  # 3 WAV-encoded clips + labels


def test_evaluate_scores_the_trained_methods(defended_run, tiny_data):
    """Runs after test_each_method_trains_and_shares_tasks in this module's run."""
    result = run("evaluate", defended_run)
    assert result.exit_code == 0, result.output
    out = defended_run / "evaluation"
    results = json.loads((out / "results.json").read_text())
    filled = {(r["method"], r["sequence"]) for r in results["table1"] if r["cells"]}
    assert filled == {("Single-task", "CNN-4"), ("Multi-task", "CNN-4 + VGG-16 + ResNet-50"),
                      ("Transfer", "CNN-4 + VGG-16"), ("Transfer", "CNN-4 + VGG-16 + ResNet-50"),
                      ("Lifelong", "CNN-4 + VGG-16"), ("Lifelong", "CNN-4 + VGG-16 + ResNet-50")}
    assert "rows without a trained attacker" in result.output and "Single-task ResNet-50" in result.output
    row = next(r for r in results["table1"] if r["method"] == "Lifelong" and r["sequence"] == "CNN-4 + VGG-16")
    assert row["lambda"] == 1e6 and row["seeds"] == 1
    key = row["keys"][0]
    cell = results["tasks"][key]["dev"]["against"]["cnn4"]
    assert row["cells"]["cnn4/dev"]["mean"] == cell["adversarial_uar"]
    assert cell["clean_uar"] == results["defences"]["cnn4"]["dev"]["uar"]
    assert (out / "figures" / "fig2_spectrograms.png").exists()
    assert (out / "figures" / "fig3_lambda.png").exists()
    assert "| Lifelong | CNN-4 + VGG-16 | 1e+06 |" in (out / "table1.md").read_text()
    # attack success against training steps, for each sequence's first task (smoke: 4 steps,
    # the monitor every 2): the single-task one (shared by transfer and lifelong) and multi-task
    single = next(r for r in results["table1"] if r["method"] == "Single-task" and r["cells"])
    transfer = next(s for s in results["sequences"] if s["method"] == "transfer")
    assert transfer["tasks"][0]["key"] == single["keys"][0]
    assert transfer["tasks"][1]["key"] not in results["training_curves"]  # not trained from scratch
    curves = results["training_curves"][single["keys"][0]]
    assert [step for step, _ in curves["train"]] == [2, 4]
    assert list(curves["dev_subset"]) == ["cnn4"] and [s for s, _ in curves["dev_subset"]["cnn4"]] == [2, 4]
    multi = next(r for r in results["table1"] if r["method"] == "Multi-task" and r["cells"])
    assert sorted(results["training_curves"][multi["keys"][0]]["dev_subset"]) == ["cnn4", "resnet50", "vgg16"]
    assert "## Attacker training: attack success against training steps" in (out / "report.md").read_text()
    assert (out / "figures" / "training_curves.png").stat().st_size > 5000
    # the lambda came from the one rule: the evaluation's dev results (no sweep was tuned)
    assert results["lambda_choice"] == {"lifelong-cnn4-vgg16-resnet50-eps0.008-snr30": {
        "lambda": 1e6, "source": "evaluation (dev)"}}
    # matched noise and per-clip predictions beside every Table 1 cell
    test = results["tasks"][key]["test"]["against"]["vgg16"]
    assert len(test["predictions"]) == len(results["truth"]["test"]) == 7
    assert set(test["matched_noise"]) >= {"adversarial_uar", "adversarial_uar_ci", "predictions"}
    assert {"success_rate", "flip_rate", "error_rate"} <= set(test)
    # baselines at the run's budget: noise, and PGD / MI-FGSM from every defence to every defence
    base = results["baselines"]["eps0.008-snr30"]
    assert base["label"] == "L∞ ≤ 0.008, SNR ≥ 30 dB"
    for split in ("test",):
        for method in ("pgd", "mi_fgsm"):
            assert set(base[split][method]) == {"cnn4", "vgg16", "resnet50"}
            assert all(set(row) == {"cnn4", "vgg16", "resnet50"} for row in base[split][method].values())
            assert base[split]["sizes"][method]["cnn4"]["snr_db_min"] >= 30.0
            assert base[split]["sizes"][method]["cnn4"]["linf"] <= 0.008 + 1e-6
    assert "curve" not in base  # the scan supersedes the budget curve, and draws its curves
    assert (out / "figures" / "budget_scan.png").stat().st_size > 1000
    assert not (out / "figures" / "budget_curve_eps0.008-snr30.png").exists()
    # the budget scan: 5 points from 40 to 0 dB, the run's own budget among them, every
    # crafted attack on every defence, the learned attackers, SNR50 with intervals
    scan = results["scan"]
    assert [b["snr_db"] for b in scan["budgets"]] == [40.0, 30.0, 20.0, 10.0, 0.0]
    assert scan["budgets"][1] == {"epsilon": 0.008, "snr_db": 30.0}
    assert set(scan["snr50"]["PGD from cnn4"]) == {"cnn4", "vgg16", "resnet50"}
    assert set(scan["snr50"]["ensemble MI-FGSM (all but vgg16)"]) == {"vgg16"}
    learned = [k for k in scan["snr50"] if k.startswith("learned: ")]
    assert "learned: single-cnn4-eps0.008-snr30" in learned
    assert all(len(cell["ci"]) == 2 for cell in scan["snr50"]["noise"].values())
    report = (out / "report.md").read_text()
    assert report.index("## SNR₅₀") < report.index("## Table 1")  # the report's first table
    assert report.index("![budget scan](figures/budget_scan.png)") < report.index("## Table 1")
    for needle in ("## Table 1: adversarial UAR [%] (lower = stronger attack), L∞ ≤ 0.008, SNR ≥ 30 dB",
                   "## Table 1: adversarial UAR [%] (lower = stronger attack), unbounded",
                   "Each attacker against noise of its own size", "Baselines at the same budget",
                   "| MI-FGSM from CNN-4 |", "The paper's findings, tested", "Attack rates on test",
                   "single-task attackers transfer worst"):
        assert needle in report, needle


def test_evaluate_scores_the_table1_attackers_after_the_audio_round_trip(defended_run):
    """Runs after test_evaluate_scores_the_trained_methods (which evaluated the run)."""
    out = defended_run / "evaluation"
    results = json.loads((out / "results.json").read_text())
    audio = results["audio"]
    assert audio["clips"] == 7 and audio["split"] == "test"  # the whole tiny test split
    keys = {k for r in results["table1"] for k in r.get("keys", [])}
    through_audio = sequence(defended_run, "single-cnn4-eps0.008-snr30-roundtrip")["tasks"][0]["key"]
    assert through_audio not in keys  # not one of Table 1's attackers, but scored through audio
    assert set(audio["tasks"]) == keys | {through_audio}
    entry = results["tasks"][sorted(keys)[0]]["audio"]
    for d in ("cnn4", "vgg16", "resnet50"):
        for domain in ("spectrogram", "renderable", "audio"):
            assert 0.0 <= entry["against"][d][domain]["adversarial_uar"] <= 1.0
        low, high = entry["against"][d]["audio"]["adversarial_uar_ci"]
        assert low <= entry["against"][d]["audio"]["adversarial_uar"] <= high
    assert np.isfinite(entry["waveform_snr_db"]) and 1.0 <= entry["pesq_wb"] <= 4.65
    assert 0.0 <= entry["stoi"] <= 1.0 and entry["seconds"] > 0
    assert len(entry["listen"]) == 3
    for clip in entry["listen"]:
        for kind in ("clean", "adversarial", "perturbation"):
            wav = out / entry["listen_dir"] / clip[kind]
            info = soundfile.info(str(wav))
            assert info.samplerate == 16000 and info.channels == 1 and info.frames > 16000
    report = (out / "report.md").read_text()
    for needle in ("Audio round trip", "waveform SNR [dB]", "PESQ", "STOI", "spec. → audio",
                   "| single, trained through audio | single-cnn4-eps0.008-snr30-roundtrip |",
                   "figures/uar_vs_snr.png", "of which audio round trip"):
        assert needle in report
    assert (out / "figures" / "uar_vs_snr.png").stat().st_size > 1000
    assert (out / "report.html").exists()


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (apt-get install -y "
                    "chromium; .ci/run installs it): the HTML report is not checked in a browser")
def test_html_report_in_a_headless_browser(defended_run, tmp_path):
    """report.html in real headless chromium: no console errors, every image decodes, every
    audio player loads its clip, and the screenshot is not blank."""
    page = defended_run / "evaluation" / "report.html"
    html = page.read_text()
    assert "<audio" in html and "http:" not in html and "https:" not in html  # self-contained
    assert not re.search(r'(src|href)="(?!data:)', html)
    # rendered from report.md: every section of it, in its order
    headings = markdown_headings((defended_run / "evaluation" / "report.md").read_text())
    assert len(headings) >= 10 and html_headings(html) == headings
    checked = check_page(page, tmp_path / "report.png")
    assert checked["errors"] == [] and checked["console"] == []
    assert len(checked["images"]) >= 5 and all(i["ok"] for i in checked["images"])
    rows = json.loads((defended_run / "evaluation" / "results.json").read_text())["table1"]
    # one example clip: clean once, adversarial and perturbation per attacker row (+ round trip)
    assert len(checked["audio"]) == 1 + 2 * (sum(1 for r in rows if r.get("keys")) + 1)
    assert all(a["ok"] and a["duration"] > 1.0 for a in checked["audio"])
    assert not is_blank(tmp_path / "report.png")


def test_export_from_a_run(defended_run, tiny_data, tmp_path):
    label = "lifelong-cnn4-vgg16-resnet50-lambda1e+06-eps0.008-snr30"
    result = run("export", defended_run, "--attacker", f"{label}:1", "--name", "att", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    origin = json.loads((tmp_path / "att" / "1" / "assets" / "export.json").read_text())
    assert origin["task"]["key"] == sequence(defended_run, label)["tasks"][1]["key"]
    assert run("export", defended_run, "--defence", "vgg16", "--name", "def", "--out", tmp_path).exit_code == 0
    assert (tmp_path / "def" / "1" / "saved_model.pb").exists()
    result = run("export", defended_run, "--attacker", "single-vgg99", "--name", "x", "--out", tmp_path)
    assert result.exit_code == 1 and "no attacker 'single-vgg99'" in result.output
    result = run("export", defended_run, "--attacker", f"{label}:7", "--name", "x", "--out", tmp_path)
    assert result.exit_code == 1 and "has tasks 0..2" in result.output
    result = run("export", defended_run, "--attacker", label, "--name", "att", "--version", "1", "--out", tmp_path)
    assert result.exit_code == 1 and "already exists" in result.output


def test_tune_sweeps_lambda_and_resumes(defended_run, tiny_data):
    args = ["tune", "--data", tiny_data, "--run", defended_run, "--sequence", "cnn4,vgg16",
            "--profile", "smoke", "--lambdas", "1e4,1e7"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    best = json.loads((defended_run / "tuning" / "cnn4-vgg16-eps0.008-snr30" / "best.json").read_text())
    assert [t["lambda"] for t in best["trials"]] == [1e4, 1e7]
    assert best["direction"] == "min" and best["lambda"] in (1e4, 1e7)
    for trial in best["trials"]:
        metrics = trial["metrics"]
        assert metrics["mean_dev_adversarial_uar"] == pytest.approx(
            (metrics["dev_adversarial_uar_cnn4"] + metrics["dev_adversarial_uar_vgg16"]) / 2)
    assert min(t["metrics"]["mean_dev_adversarial_uar"] for t in best["trials"]) == best["best_objective"]
    # trials trained real lifelong sequences that share task 0 with single-task CNN-4
    seq = sequence(defended_run, "lifelong-cnn4-vgg16-lambda10000-eps0.008-snr30")
    assert seq["tasks"][0]["key"] == sequence(defended_run, "single-cnn4-eps0.008-snr30")["tasks"][0]["key"]
    assert list((defended_run / "tuning" / "cnn4-vgg16-eps0.008-snr30" / "hparams").glob("trial_*/events.out.tfevents.*"))
    stamp = (defended_run / seq["tasks"][1]["path"] / "task.json").stat().st_mtime_ns
    again = run(*args)
    assert again.exit_code == 0, again.output
    assert (defended_run / seq["tasks"][1]["path"] / "task.json").stat().st_mtime_ns == stamp
    assert len(json.loads((defended_run / "tuning" / "cnn4-vgg16-eps0.008-snr30" / "best.json").read_text())["trials"]) == 2


def test_tune_bad_inputs(defended_run, tiny_data):
    base = ["tune", "--data", tiny_data, "--run", defended_run, "--profile", "smoke"]
    result = run(*base, "--sequence", "vgg16,cnn4")
    assert result.exit_code == 1 and "first-task attacker of vgg16,cnn4 (seed 0) is not trained" in result.output
    result = run(*base, "--sequence", "cnn4,vgg16", "--lambdas", "0,-1")
    assert result.exit_code == 2 and "positive values" in result.output


def test_an_existing_task_is_reused(defended_run, tiny_data):
    result = attack(tiny_data, defended_run, "--method", "single", "--defences", "cnn4")
    assert result.exit_code == 0
    task_dir = defended_run / sequence(defended_run, "single-cnn4-eps0.008-snr30")["tasks"][0]["path"]
    stamp = (task_dir / "task.json").stat().st_mtime_ns
    assert attack(tiny_data, defended_run, "--method", "single", "--defences", "cnn4").exit_code == 0
    assert (task_dir / "task.json").stat().st_mtime_ns == stamp
    other_seed = attack(tiny_data, defended_run, "--method", "single", "--defences", "cnn4", "--seed", "1")
    assert other_seed.exit_code == 0
    assert sequence(defended_run, "single-cnn4-eps0.008-snr30-seed1")["tasks"][0]["key"] != \
        sequence(defended_run, "single-cnn4-eps0.008-snr30")["tasks"][0]["key"]


def test_interrupted_task_resumes(defended_run, tiny_data, monkeypatch):
    profile = dataclasses.replace(SMOKE, attacker=dataclasses.replace(
        SMOKE.attacker, first_steps=6, monitor_every=2))
    steps_seen, interrupted_once = [], []
    original = AttackMonitor.on_epoch_end

    def record(self, epoch, logs=None):
        steps_seen.append(int(self.model.optimizer.iterations.numpy()))
        original(self, epoch, logs)

    def interrupt_once(self, epoch, logs=None):  # Ctrl-C once the first epoch is backed up
        if epoch == 1 and not interrupted_once:
            interrupted_once.append(epoch)
            raise KeyboardInterrupt

    monkeypatch.setattr(AttackMonitor, "on_epoch_end", record)
    monkeypatch.setattr(AttackMonitor, "on_epoch_begin", interrupt_once, raising=False)
    with pytest.raises(KeyboardInterrupt):
        train_attacker(tiny_data, defended_run, "single", ["vgg16"], profile, verbose=0)
    resumed = train_attacker(tiny_data, defended_run, "single", ["vgg16"], profile, verbose=0)
    assert steps_seen == [2, 4, 6]  # resumed after step 2 with the optimizer state restored

    # The resumed task ends where an uninterrupted one does: same weights, because the
    # resumed fit skipped the batches of the finished epoch instead of seeing them again.
    monkeypatch.setattr(AttackMonitor, "on_epoch_end", original)
    task_dir = defended_run / resumed["tasks"][0]["path"]
    interrupted = keras.saving.load_model(task_dir / "generator.keras", compile=False).get_weights()
    shutil.rmtree(task_dir)
    train_attacker(tiny_data, defended_run, "single", ["vgg16"], profile, verbose=0)
    straight = keras.saving.load_model(task_dir / "generator.keras", compile=False).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(interrupted, straight, strict=True))


def test_a_reused_attacker_trains_like_a_new_one(defended_run, tiny_data):
    """Tasks facing the same defences share one compiled attacker (attacker_cache). Trained
    again with every attacker left in the state of the last task, a sequence must come out
    as it did from new attackers: same start weights, fresh optimizer, its own EWC terms."""
    from tfadvser.attack import cache as attacker_cache

    def train_and_collect():
        # The paper's attacker: its MSE term gives the tiny run's Fisher a gradient even
        # where the near-chance smoke defences leave no C&W margin to push on.
        record = train_attacker(tiny_data, defended_run, "lifelong", ["cnn4", "vgg16"], SMOKE,
                                strength=1e6, verbose=0, seed=7, perturbation="paper")
        dirs = [defended_run / task["path"] for task in record["tasks"]]
        weights = [keras.saving.load_model(d / "generator.keras", compile=False).get_weights()
                   for d in dirs]
        with np.load(dirs[0] / "ewc-batch-32clips.npz") as ewc:
            fisher = [ewc[f"fisher_{i}"] for i in range(len(ewc["names"]))]
        metrics = [json.loads((d / "task.json").read_text())["final_train_metrics"] for d in dirs]
        return dirs, weights, fisher, metrics

    attacker_cache._CACHE.clear()
    dirs, weights, fisher, metrics = train_and_collect()
    assert len(attacker_cache._CACHE) == 2  # cnn4 without EWC, vgg16 with one EWC term
    for d in dirs:
        shutil.rmtree(d)
    again = train_and_collect()
    assert len(attacker_cache._CACHE) == 2  # nothing compiled anew
    for first, second in zip(weights, again[1]):
        for a, b in zip(first, second, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    for a, b in zip(fisher, again[2], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-12)
    for first, second in zip(metrics, again[3]):
        assert second == pytest.approx(first, rel=1e-5)
    assert metrics[1]["penalty"] > 0.0  # the second task's own EWC penalty was in force


def test_bad_inputs(defended_run, tiny_data, tmp_path):
    result = attack(tiny_data, defended_run, "--method", "transfer", "--defences", "cnn4,vgg16", "--lambda", "1e5")
    assert result.exit_code == 1 and "transfer learning has no EWC" in result.output
    result = attack(tiny_data, defended_run, "--method", "lifelong", "--defences", "cnn4,vgg16", "--lambda", "-1")
    assert result.exit_code == 1 and "--lambda must be a positive number" in result.output
    result = attack(tiny_data, defended_run, "--method", "multi", "--defences", ",")
    assert result.exit_code == 2 and "name at least one defence" in result.output
    result = attack(tiny_data, defended_run, "--method", "multi", "--defences", "cnn4,alexnet")
    assert result.exit_code == 2 and "unknown defence(s) alexnet" in result.output
    result = attack(tiny_data, tmp_path / "empty_run", "--method", "single", "--defences", "cnn4")
    assert result.exit_code == 1 and "defence 'cnn4' is not trained" in result.output
    result = attack(tiny_data, defended_run, "--method", "single", "--defences", "cnn4,vgg16")
    assert result.exit_code == 1 and "single-task trains against one defence" in result.output
