"""External victims (a user's own SER model) scored by `tfadvser evaluate`, and adversarial
training (`tfadvser harden`), on a smoke run: CNN-4 and one attacker."""
import json
import warnings

# ART configures a logging StreamHandler on sys.stderr when first imported: imported inside
# CliRunner, that handler would keep CliRunner's stream, closed after the command.
import importlib
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from keras import layers

from tfadvser.config import PROFILES
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.defence.external import (ExternalVictim, VictimSpec, infer_output_kind,
                                       load_model_file, to_log_probs, victim_digest)
from tfadvser.defence.hardening import adversarial_count
from tfadvser.defence.training import train_defence
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.scoring import classification_scores
from tfadvser_cli.main import main

importlib.import_module("art")

SMOKE = PROFILES["smoke"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def attacked_run(tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("victim_run")
    train_defence(tiny_data, "cnn4", SMOKE, run_dir, verbose=0)
    result = run("train", "attacker", "--data", tiny_data, "--profile", "smoke", "--out", run_dir,
                 "--quiet", "--method", "single", "--defences", "cnn4")
    assert result.exit_code == 0, result.output
    return run_dir


def conv1d_ser(n_classes, frames=373, mels=64, softmax=True, seed=0):
    """Not one of the project's models: a 1-D convolution over frames, mel bins as channels."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((frames, mels), name="features")
    x = layers.Conv1D(8, 5, strides=4, activation="relu")(inputs)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(n_classes, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, outputs, name="user_ser")


def waveform_ser(n_classes, seed=0):
    """A model on raw 16 kHz audio of any length: strided 1-D convolution, pooled."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None,), name="waveform")
    x = layers.Reshape((-1, 1))(inputs)
    x = layers.Conv1D(4, 400, strides=160, activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(n_classes)(x))


def write_manifest(path, entries):
    path.write_text(json.dumps({"victims": entries}))
    return path


def test_evaluate_scores_the_runs_attacker_against_an_outside_model(attacked_run, tiny_data, tmp_path):
    data = load_data(tiny_data)
    model = conv1d_ser(data.n_classes)
    model.save(tmp_path / "user.keras")
    model.export(str(tmp_path / "user_savedmodel"))  # a SavedModel, serving_default signature
    digest = victim_digest(model)
    manifest = write_manifest(tmp_path / "victims.json", [
        {"name": "user-keras", "path": "user.keras", "output": "probs", "sha256": digest,
         "labels": list(data.labels)},
        {"name": "user-sm", "path": "user_savedmodel", "input": "log_mel_standardised"}])
    result = run("evaluate", attacked_run, "--audio-clips", "0", "--victims", manifest,
                 "--victim", f"user-cli={tmp_path / 'user.keras'}")
    assert result.exit_code == 0, result.output
    results = json.loads((attacked_run / "evaluation" / "results.json").read_text())
    assert list(results["defences"]) == ["cnn4", "user-cli", "user-keras", "user-sm"]

    # The victim's columns are the model's own predictions, scored by the project's code.
    batches = list(make_dataset(data, "dev", 32))
    y = np.concatenate([b[1] for b in batches])
    own = np.concatenate([np.argmax(model(b[0]).numpy(), -1) for b in batches])
    expected = classification_scores(y, own, list(data.labels))["uar"]
    for name in ("user-keras", "user-sm", "user-cli"):
        info = results["defences"][name]
        assert info["kind"] == "external" and info["weights_sha256"] == digest
        assert info["dev"]["uar"] == pytest.approx(expected)
        assert info["victim"]["output_used"] == "probs"  # declared, or inferred from a batch
    (task,) = results["tasks"].values()
    assert set(task["test"]["against"]) == {"cnn4", "user-keras", "user-sm", "user-cli"}
    assert task["test"]["against"]["user-sm"] == task["test"]["against"]["user-keras"]
    # Table 1 gets the columns; the lambda choice still only looks at the run's defences.
    header = (attacked_run / "evaluation" / "table1.md").read_text().splitlines()[0]
    assert "user-keras dev" in header and "user-sm test" in header
    report = (attacked_run / "evaluation" / "report.md").read_text()
    assert "## Robustness" in report and "user-sm (external)" in report


def _error(result):
    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert "\n" not in message and message.startswith("Error: ")  # one line
    return message


def test_mismatched_and_changed_victims_are_refused_with_one_line(attacked_run, tiny_data, tmp_path):
    data = load_data(tiny_data)
    conv1d_ser(data.n_classes, frames=300).save(tmp_path / "short.keras")
    message = _error(run("evaluate", attacked_run, "--audio-clips", "0",
                         "--victim", f"short={tmp_path / 'short.keras'}"))
    assert "victim 'short'" in message and "input shape [B, 300, 64]" in message

    conv1d_ser(data.n_classes + 2).save(tmp_path / "wide.keras")
    message = _error(run("evaluate", attacked_run, "--audio-clips", "0",
                         "--victim", f"wide={tmp_path / 'wide.keras'}"))
    assert f"victim 'wide': {data.n_classes + 2} classes, the data has {data.n_classes}" in message

    model = conv1d_ser(data.n_classes, softmax=False)
    model.save(tmp_path / "m.keras")
    pinned = victim_digest(model)
    message = _error(run("evaluate", attacked_run, "--audio-clips", "0", "--victims", write_manifest(
        tmp_path / "probs.json", [{"name": "m", "path": "m.keras", "output": "probs"}])))
    assert "victim 'm': declared output probs but the outputs are not probabilities" in message
    message = _error(run("evaluate", attacked_run, "--audio-clips", "0", "--victims", write_manifest(
        tmp_path / "labels.json", [{"name": "m", "path": "m.keras",
                                    "labels": list(reversed(data.labels))}])))
    assert "victim 'm': label order" in message

    # The same file retrained (one weight changed): refused against the pinned hash.
    weights = model.get_weights()
    weights[0][0, 0, 0] += 1e-3
    model.set_weights(weights)
    model.save(tmp_path / "m.keras")
    message = _error(run("evaluate", attacked_run, "--audio-clips", "0", "--victims", write_manifest(
        tmp_path / "pinned.json", [{"name": "m", "path": "m.keras", "sha256": pinned}])))
    assert f"victim 'm' ({tmp_path / 'm.keras'}) changed: its weights hash to {victim_digest(model)}, " \
           f"the manifest pins {pinned}" in message

    result = run("evaluate", attacked_run, "--audio-clips", "0", "--victim", f"cnn4={tmp_path / 'm.keras'}")
    assert result.exit_code == 2  # a usage error, before anything is loaded
    assert "Invalid value for '--victim': victim name 'cnn4' is already taken by the run's " \
           "defence 'cnn4'" in result.output


def test_a_model_carrying_python_code_is_refused_unless_trusted(attacked_run, tmp_path):
    inputs = keras.Input((373, 64))
    x = layers.Lambda(lambda t: t * 2.0)(inputs)  # deserialising this runs Python bytecode
    x = layers.GlobalAveragePooling1D()(x)
    keras.Model(inputs, layers.Dense(7)(x)).save(tmp_path / "code.keras")
    message = _error(run("evaluate", attacked_run, "--audio-clips", "0",
                         "--victim", f"code={tmp_path / 'code.keras'}"))
    assert "the model carries Python code (a Lambda layer); refused in safe mode" in message
    assert "--trust-model-code" in message
    spec = VictimSpec("code", tmp_path / "code.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_model_file(spec, trust_code=True)
    assert isinstance(loaded, keras.Model) and "safe mode off" in str(caught[-1].message)


def test_a_waveform_victim_is_scored_on_rendered_audio(attacked_run, tiny_data, tmp_path):
    data = load_data(tiny_data)
    waveform_ser(data.n_classes).save(tmp_path / "wave.keras")
    manifest = write_manifest(tmp_path / "wave.json", [
        {"name": "wave", "path": "wave.keras", "input": "waveform_16k", "output": "logits"}])
    result = run("evaluate", attacked_run, "--audio-clips", "0", "--victims", manifest)
    assert result.exit_code == 0, result.output
    results = json.loads((attacked_run / "evaluation" / "results.json").read_text())
    (task,) = results["tasks"].values()
    scored = task["test"]["against"]["wave"]
    assert scored["clips"] == results["splits"]["test"]["clips"]
    assert scored["clean_uar"] == results["defences"]["wave"]["test"]["uar"]


def test_adapter_and_output_kinds():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert infer_output_kind(probs) == "probs"
    assert infer_output_kind(np.log(probs)) == "log_probs"
    assert infer_output_kind(logits) == "logits"
    for kind, y in (("probs", probs), ("log_probs", np.log(probs)), ("logits", logits)):
        np.testing.assert_allclose(to_log_probs(tf.constant(y), kind).numpy(), np.log(probs),
                                   rtol=1e-5, atol=1e-5)
    # log_mel_raw: the adapter de-standardises with the data's statistics first.
    inputs = keras.Input((2, 3))
    model = keras.Model(inputs, layers.Dense(4)(layers.Flatten()(inputs)))
    mean, std = np.array([1.0, 2.0, 3.0], np.float32), np.array([2.0, 0.5, 1.0], np.float32)
    victim = ExternalVictim(VictimSpec("raw", "x.keras", input="log_mel_raw"), model, mean, std,
                            "logits")
    x = rng.normal(size=(5, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(victim(x).numpy(),
                               tf.nn.log_softmax(model(x * std + mean)).numpy(), rtol=1e-5, atol=1e-5)
    assert [adversarial_count(32, r) for r in (0.0, 0.5, 0.25, 1.0)] == [0, 16, 8, 32]
    assert adversarial_count(5, 0.5) == 3  # 2.5 rounds half up


def test_adversarial_training_adds_a_hardened_defence(attacked_run, tiny_data):
    args = ("harden", "--data", tiny_data, "--model", "cnn4", "--profile", "smoke",
            "--out", attacked_run, "--steps", "2", "--quiet")
    (label,) = [p.name for p in (attacked_run / "attackers").iterdir() if p.name.startswith("single-")]
    result = run(*args, "--attacker", label)
    assert result.exit_code == 0, result.output
    (hardened,) = [p for p in (attacked_run / "defences").iterdir() if p.name.startswith("cnn4-adv-")]
    record = json.loads((hardened / "results.json").read_text())
    base = json.loads((attacked_run / "defences" / "cnn4" / "results.json").read_text())
    assert record["hardening"]["ratio"] == 0.5 and record["hardening"]["steps"] == 2
    assert "attacker" in record["hardening"]["source"] and record["weights_sha256"]
    assert base["test"]["clips"] == record["test"]["clips"]
    # Fitted as a defence is: the best epoch kept, TensorBoard logs, no backup left behind.
    assert record["best_epoch"] == 1 and record["parameters"] == base["parameters"]
    assert (hardened / "logs" / "train").is_dir() and not (hardened / "backup").exists()
    # The one loader lists it among the run's models and opens it like a defence.
    from tfadvser.defence.victims import load_defence, run_defences, weights_digest
    assert run_defences(attacked_run)[hardened.name] == "hardened"
    assert weights_digest(load_defence(attacked_run, hardened.name)) == record["weights_sha256"]
    again = run(*args, "--attacker", label)
    assert "already hardened with this recipe, reused" in again.output
    assert run(*args).exit_code == 1  # neither source
    result = run("evaluate", attacked_run, "--audio-clips", "0")
    assert result.exit_code == 0, result.output
    results = json.loads((attacked_run / "evaluation" / "results.json").read_text())
    assert results["defences"][hardened.name]["kind"] == "hardened"
    (task,) = results["tasks"].values()
    assert hardened.name in task["dev"]["against"]
    report = (attacked_run / "evaluation" / "report.md").read_text()
    assert f"| {hardened.name} | CNN-4 | attacker task" in report
    with pytest.raises(TfadvserError, match="cannot harden 'user'"):
        from tfadvser.defence.hardening import fine_tune
        fine_tune(attacked_run, "user", load_data(tiny_data), None, {"ratio": 0.5})


def test_pgd_hardening_and_white_box_robustness(attacked_run, tiny_data):
    from tfadvser.experiment.hardening import pgd_robustness

    result = run("harden", "--data", tiny_data, "--model", "cnn4", "--profile", "smoke",
                 "--out", attacked_run, "--steps", "2", "--pgd-epsilon", "0.5", "--pgd-steps", "3",
                 "--ratio", "1.0")
    assert result.exit_code == 0, result.output
    (name,) = [line.split(":")[0] for line in result.output.splitlines() if "test UAR" in line]
    record = json.loads((attacked_run / "defences" / name / "results.json").read_text())
    assert record["hardening"]["source"] == {"pgd": {"epsilon": 0.5, "steps": 3}}
    assert record["hardening"]["ratio"] == 1.0
    scores = pgd_robustness(tiny_data, attacked_run, ["cnn4", name], epsilon=1.0, steps=3)
    for defence, expected in (("cnn4", json.loads(
            (attacked_run / "defences" / "cnn4" / "results.json").read_text())), (name, record)):
        assert scores[defence]["clean_uar"] == pytest.approx(expected["test"]["uar"])
        assert scores[defence]["adversarial_uar"] <= scores[defence]["clean_uar"]


def test_the_old_spelling_still_hardens_and_says_it_is_deprecated(attacked_run, tiny_data):
    """`train defence --adversarial` is `harden` (its --adversarial-ratio the --ratio): the
    same recipe, so the same hardened defence, reused."""
    new = run("harden", "--data", tiny_data, "--model", "cnn4", "--profile", "smoke", "--out",
              attacked_run, "--steps", "2", "--pgd-epsilon", "0.25", "--pgd-steps", "2",
              "--ratio", "0.5", "--quiet")
    assert new.exit_code == 0, new.output
    old = run("train", "defence", "--adversarial", "--data", tiny_data, "--model", "cnn4",
              "--profile", "smoke", "--out", attacked_run, "--steps", "2", "--pgd-epsilon",
              "0.25", "--pgd-steps", "2", "--adversarial-ratio", "0.5", "--quiet")
    assert old.exit_code == 0, old.output
    assert "`train defence --adversarial` is deprecated; use `tfadvser harden`" in old.output
    assert "already hardened with this recipe, reused" in old.output
    wrong = run("train", "defence", "--data", tiny_data, "--model", "cnn4", "--profile", "smoke",
                "--out", attacked_run, "--pgd-epsilon", "0.25")
    assert wrong.exit_code == 2 and "`tfadvser harden`'s options" in wrong.output


def test_an_interrupted_hardening_resumes_to_the_uninterrupted_weights(tiny_data, tmp_path,
                                                                       monkeypatch):
    """PGD hardening of 4 steps in 2 epochs (the smoke profile's defence epoch), killed at
    the start of the second: the rerun starts at epoch 2, skips the batches epoch 1 used, and
    PGD's random starts follow the restored step count, so it ends with the weights of a
    hardening that was never interrupted."""
    from tfadvser.defence.training import _DevScore
    from tfadvser.defence.victims import load_defence
    from tfadvser.experiment.hardening import harden

    straight_run, resumed_run = tmp_path / "straight", tmp_path / "resumed"
    train_defence(tiny_data, "cnn4", SMOKE, straight_run, verbose=0)
    shutil.copytree(straight_run, resumed_run)  # the same trained base, and run.json
    recipe = dict(pgd_epsilon=0.5, pgd_steps=2, ratio=0.5, steps=4, log=lambda *_: None)
    straight = harden(tiny_data, straight_run, "cnn4", SMOKE, **recipe)

    epochs_seen, interrupted = [], []
    original = _DevScore.on_epoch_end

    def record(self, epoch, logs=None):
        epochs_seen.append(epoch)
        original(self, epoch, logs)

    def interrupt_second_epoch(self, epoch, logs=None):  # epoch 0 is backed up by now
        if epoch == 1 and not interrupted:
            interrupted.append(epoch)
            raise KeyboardInterrupt

    monkeypatch.setattr(_DevScore, "on_epoch_end", record)
    monkeypatch.setattr(_DevScore, "on_epoch_begin", interrupt_second_epoch, raising=False)
    with pytest.raises(KeyboardInterrupt):
        harden(tiny_data, resumed_run, "cnn4", SMOKE, **recipe)
    folder = resumed_run / "defences" / straight["model"]
    assert (folder / "backup").exists() and not (folder / "results.json").exists()
    resumed = harden(tiny_data, resumed_run, "cnn4", SMOKE, **recipe)
    assert epochs_seen == [0, 1]  # the rerun started at the second epoch

    assert resumed["model"] == straight["model"]
    for key in ("best_epoch", "dev", "test", "weights_sha256", "base", "hardening"):
        assert resumed[key] == straight[key], key
    assert ([w.tolist() for w in load_defence(resumed_run, straight["model"]).get_weights()]
            == [w.tolist() for w in load_defence(straight_run, straight["model"]).get_weights()])
