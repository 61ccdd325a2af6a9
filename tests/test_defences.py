"""Defence architectures, training through the command line, and the frozen loader."""
import dataclasses
import os
import subprocess
import sys
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tfadvser.runtime.batch_norm import FusedBatchNormalization
from tfadvser.config import PROFILES
from tfadvser.defence.training import _DevScore, train_defence
from tfadvser.defence.victims import load_defence
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.evaluation.scoring import labels_of, predictions
from tfadvser.defence.models import build_defence
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.metrics import confusion_matrix, uar_from_confusion
from tfadvser.runs import bind_run
from tfadvser_cli.main import main


def trainable_parameters(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("name,expected", [("cnn4", 4.31e6), ("vgg16", 14.72e6), ("resnet50", 23.52e6)])
def test_full_width_parameter_counts_match_the_original(name, expected):
    model = build_defence(name, 7, width=1.0)
    assert abs(trainable_parameters(model) - expected) / expected < 0.005


def test_exact_cnn4_count():
    # conv 5x5 without bias 1600 + 204800 + 819200 + 3276800, BN gamma/beta 1920, dense 3591
    assert trainable_parameters(build_defence("cnn4", 7)) == 4_307_911


@pytest.mark.parametrize("name", ["cnn4", "vgg16", "resnet50"])
def test_smoke_models_output_log_probabilities(name):
    model = build_defence(name, 5, width=PROFILES["smoke"].defence.width)
    out = model(np.random.default_rng(0).normal(size=(2, 373, 64)).astype("float32"), training=False)
    assert out.shape == (2, 5)
    np.testing.assert_allclose(np.exp(out.numpy()).sum(axis=1), 1.0, rtol=1e-5)


def test_resnet_feature_map_sizes_follow_pytorch_padding():
    model = build_defence("resnet50", 7, width=0.0625)
    sizes = {name: model.get_layer(name).output.shape[1:3]
             for name in ("stem_relu", "stem_pool", "layer1_2_out", "layer2_3_out", "layer3_5_out", "layer4_2_out")}
    assert sizes == {"stem_relu": (187, 32), "stem_pool": (94, 16), "layer1_2_out": (94, 16),
                     "layer2_3_out": (47, 8), "layer3_5_out": (24, 4), "layer4_2_out": (12, 2)}


def test_cnn4_and_vgg_pooling_shapes():
    cnn = build_defence("cnn4", 7, width=0.0625)
    assert cnn.get_layer("block4_pool").output.shape[1:3] == (23, 4)
    vgg = build_defence("vgg16", 7, width=0.0625)
    assert vgg.get_layer("block5_pool").output.shape[1:3] == (11, 2)


def test_fused_batch_norm_numbers():
    # One channel holding 1, 2, 3, 4: mean 2.5, biased variance 1.25.
    x = tf.reshape(tf.constant([1.0, 2.0, 3.0, 4.0]), (2, 2, 1, 1))
    layer = FusedBatchNormalization(epsilon=1e-5, momentum=0.9)
    y = layer(x, training=True).numpy().ravel()
    np.testing.assert_allclose(y, (np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25 + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(layer.moving_mean.numpy(), [0.25], rtol=1e-6)  # 0.9*0 + 0.1*2.5
    np.testing.assert_allclose(layer.moving_variance.numpy(), [1.025], rtol=1e-6)  # 0.9*1 + 0.1*1.25
    y = layer(x, training=False).numpy().ravel()
    np.testing.assert_allclose(y, (np.array([1, 2, 3, 4]) - 0.25) / np.sqrt(1.025 + 1e-5), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_fused_batch_norm_matches_keras(dtype):
    x = tf.constant((np.random.default_rng(0).normal(size=(4, 7, 5, 3)) * 3 + 1).astype(dtype))
    policy = "mixed_float16" if dtype == "float16" else "float32"  # float16 in, float16 out
    results = []
    for layer in (keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, dtype=policy),
                  FusedBatchNormalization(epsilon=1e-5, momentum=0.9, dtype=policy)):
        layer.build(x.shape)
        layer.gamma.assign([1.5, 0.5, 2.0])
        layer.beta.assign([0.1, -0.2, 0.3])
        values = []
        for training in (True, False):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=training)
                assert y.dtype == dtype
                loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2 * [1.0, 2.0, 3.0])
            values += [y, *tape.gradient(loss, [x, layer.gamma, layer.beta])]
        results.append([np.asarray(v, np.float32) for v in
                        values + [layer.moving_mean, layer.moving_variance]])
    tolerance = 1e-4 if dtype == "float32" else 2e-2
    for keras_value, fused_value in zip(*results):
        np.testing.assert_allclose(fused_value, keras_value, rtol=tolerance, atol=tolerance)


def test_unknown_model_name():
    with pytest.raises(TfadvserError, match="unknown defence 'alexnet'"):
        build_defence("alexnet", 7)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained_run(tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    result = run("train", "defence", "--data", tiny_data, "--model", "cnn4", "--profile", "smoke",
                 "--out", run_dir, "--quiet")
    assert result.exit_code == 0, result.output
    return run_dir


def test_training_writes_model_results_and_logs(trained_run, tiny_data):
    out = trained_run / "defences" / "cnn4"
    results = json.loads((out / "results.json").read_text())
    assert results["dev"]["clips"] == 7 and results["test"]["clips"] == 7
    assert 0.0 <= results["test"]["uar"] <= 1.0
    assert np.array(results["test"]["confusion"]).sum() == 7
    # what the defence trained with: the profile's settings with its exceptions (none at
    # smoke); SpecAugment, off, is not recorded (defences from before it keep their records)
    assert json.loads((out / "config.json").read_text())["defence"] == \
        PROFILES["smoke"].defence.for_model("cnn4").record() == \
        {k: v for k, v in dataclasses.asdict(PROFILES["smoke"].defence).items()
         if k not in ("per_model", "spec_augment")}
    for folder in ("train", "validation", "config", "confusion"):
        assert any((out / "logs" / folder).glob("events.out.tfevents.*")), folder
    assert not (out / "backup").exists()  # removed after a finished fit
    assert (trained_run / "run.json").exists()


def test_saved_model_round_trip_is_frozen_and_is_the_best_epoch(trained_run, tiny_data):
    model = load_defence(trained_run, "cnn4", load_data(tiny_data))
    assert model.trainable is False and not model.trainable_weights
    results = json.loads((trained_run / "defences" / "cnn4" / "results.json").read_text())
    for split in ("dev", "test"):
        batches = list(make_dataset(tiny_data, split, 64))
        y_true, y_pred = labels_of(batches), predictions(model, batches)
        assert uar_from_confusion(confusion_matrix(y_true, y_pred, 7)) == pytest.approx(results[split]["uar"])


def test_finished_defence_is_reused(trained_run, tiny_data):
    before = (trained_run / "defences" / "cnn4" / "results.json").read_text()
    result = run("train", "defence", "--data", tiny_data, "--model", "cnn4", "--profile", "smoke",
                 "--out", trained_run, "--quiet")
    assert result.exit_code == 0
    assert (trained_run / "defences" / "cnn4" / "results.json").read_text() == before


def test_interrupted_training_resumes(tiny_data, tmp_path, monkeypatch):
    profile = dataclasses.replace(PROFILES["smoke"], defence=dataclasses.replace(
        PROFILES["smoke"].defence, steps=6, steps_per_epoch=2))
    epochs_seen, interrupted_once = [], []
    original = _DevScore.on_epoch_end

    def record(self, epoch, logs=None):
        epochs_seen.append(epoch)
        original(self, epoch, logs)

    def interrupt_after_first_epoch(self, epoch, logs=None):  # once epoch 0 is backed up
        if epoch == 1 and not interrupted_once:
            interrupted_once.append(epoch)
            raise KeyboardInterrupt

    monkeypatch.setattr(_DevScore, "on_epoch_end", record)
    monkeypatch.setattr(_DevScore, "on_epoch_begin", interrupt_after_first_epoch, raising=False)
    with pytest.raises(KeyboardInterrupt):
        train_defence(tiny_data, "cnn4", profile, tmp_path, verbose=0)
    assert (tmp_path / "defences" / "cnn4" / "backup").exists()
    assert not (tmp_path / "defences" / "cnn4" / "results.json").exists()
    resumed = train_defence(tiny_data, "cnn4", profile, tmp_path, verbose=0)
    assert epochs_seen == [0, 1, 2]  # the second call started at epoch 1, not 0

    # ... and ended where an uninterrupted run ends: the resumed fit skipped the batches
    # of the finished epoch, and the epoch cut short redid everything it had not saved.
    monkeypatch.setattr(_DevScore, "on_epoch_end", original)
    straight = train_defence(tiny_data, "cnn4", profile, tmp_path / "straight", verbose=0)
    for key in ("best_epoch", "dev", "test"):
        assert resumed[key] == straight[key]
    assert ([w.tolist() for w in load_defence(tmp_path, "cnn4").get_weights()]
            == [w.tolist() for w in load_defence(tmp_path / "straight", "cnn4").get_weights()])


def test_bad_inputs(trained_run, tiny_data, tmp_path):
    result = run("train", "defence", "--data", tmp_path / "nothing", "--model", "cnn4", "--out", tmp_path / "r")
    assert result.exit_code == 1 and "not a prepared data folder" in result.output
    result = run("train", "defence", "--data", tiny_data, "--model", "lenet", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "Invalid value for '--model'" in result.output
    result = run("train", "defence", "--data", tiny_data, "--model", "cnn4", "--profile", "huge",
                 "--out", tmp_path / "r")
    assert result.exit_code == 2 and "Invalid value for '--profile'" in result.output
    result = run("train", "defence", "--data", tiny_data, "--model", "cnn4", "--profile", "small",
                 "--out", trained_run)
    assert result.exit_code == 1 and "was made with profile 'smoke'" in result.output
    with pytest.raises(TfadvserError, match="'vgg16' is not trained"):
        load_defence(trained_run, "vgg16")
    other = dataclasses.replace(load_data(tiny_data), fingerprint="0" * 64)
    with pytest.raises(TfadvserError, match="trained on other data"):
        load_defence(trained_run, "cnn4", other)
    with pytest.raises(TfadvserError, match="was made with other data"):
        bind_run(trained_run, other, PROFILES["smoke"])


def test_every_defence_is_built_with_the_same_weights_in_every_process():
    # A seeded build must not depend on the process: an initializer made at import time
    # once gave ResNet-50 other weights in every run (and so other clean UARs).
    code = ("import keras, numpy as np; from tfadvser.defence.models import DEFENCES, build_defence;"
            "keras.utils.set_random_seed(0);"
            "print([float(np.sum([np.abs(w).sum() for w in build_defence(n, 7, 0.0625).get_weights()]))"
            " for n in DEFENCES])")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout for _ in range(2)]
    assert runs[0] == runs[1] and runs[0].startswith("[")


def test_weights_digest_is_a_hash_of_the_weight_bytes():
    import hashlib

    from tfadvser.defence.victims import weights_digest

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="ones",
                                                   bias_initializer="zeros")(inputs))
    expected = hashlib.sha256(np.ones((2, 1), np.float32).tobytes()
                              + np.zeros(1, np.float32).tobytes()).hexdigest()[:16]
    assert weights_digest(model) == expected
    model.layers[-1].bias.assign([1e-7])
    assert weights_digest(model) != expected


def test_a_defence_trains_with_its_own_exceptions_to_the_profile():
    small = PROFILES["small"].defence
    assert small.for_model("resnet50").learning_rate == 3e-3
    assert small.for_model("cnn4").learning_rate == 1e-3 == small.for_model("vgg16").learning_rate
    assert small.for_model("resnet50").steps == 160 == small.for_model("vgg16").steps
    assert small.for_model("cnn4").steps == 200
    record = small.for_model("resnet50").record()
    assert "per_model" not in record and record["learning_rate"] == 3e-3


def test_a_seed_control_is_its_own_defence(tiny_data, tmp_path):
    """`train defence --seed 1`: the same architecture and schedule with another seed, saved
    beside the profile's as cnn4-seed1, listed as a control, with other weights."""
    from click.testing import CliRunner

    from tfadvser.defence.victims import control_defences, run_defences, weights_digest
    from tfadvser_cli.main import main

    run_dir = tmp_path / "run"
    args = ["train", "defence", "--data", str(tiny_data), "--model", "cnn4", "--profile", "smoke",
            "--out", str(run_dir), "--quiet"]
    assert CliRunner().invoke(main, args).exit_code == 0
    result = CliRunner().invoke(main, args + ["--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "defences/cnn4-seed1" in result.output
    assert control_defences(run_dir) == ["cnn4-seed1"]
    assert run_defences(run_dir) == {"cnn4": "defence", "cnn4-seed1": "control"}
    assert weights_digest(load_defence(run_dir, "cnn4")) != weights_digest(load_defence(run_dir, "cnn4-seed1"))
    # the profile's own seed is the defence itself, not a control
    assert CliRunner().invoke(main, args + ["--seed", "0"]).exit_code == 0
    assert control_defences(run_dir) == ["cnn4-seed1"]
    bad = CliRunner().invoke(main, args + ["--seed", "1", "--adversarial", "--pgd-epsilon", "0.01"])
    assert bad.exit_code == 2 and "does not combine with --adversarial" in bad.output
