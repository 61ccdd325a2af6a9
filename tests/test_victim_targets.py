"""A user's own SER model as a training target of `tfadvser train attacker` (defence/victims.py),
then scored by `tfadvser evaluate --victim`; a smoke run with CNN-4 and one outside model."""
import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from keras import layers

from tfadvser.attack.tasks import load_generator
from tfadvser.attack.training import train_attacker
from tfadvser.config import PROFILES
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.defence.external import parse_victim_option, victim_digest
from tfadvser.defence.training import train_defence
from tfadvser_cli.main import main

SMOKE = PROFILES["smoke"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def attack(tiny_data, run_dir, *args):
    return run("train", "attacker", "--data", tiny_data, "--profile", "smoke", "--out", run_dir,
               "--quiet", *args)


def one_line_error(result):
    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert "\n" not in message and message.startswith("Error: ")
    return message


@pytest.fixture(scope="module")
def defended_run(tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("target_run")
    train_defence(tiny_data, "cnn4", SMOKE, run_dir, verbose=0)
    return run_dir


def mel_image_ser(n_classes, frames=373, mels=64, seed=0, hard=False):
    """Not one of the project's models: the log-Mel as a one-channel image, a strided 2-D
    convolution, max pooling, logits (or, with `hard`, a one-hot argmax: no gradient)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((frames, mels), name="mel")
    x = layers.Reshape((frames, mels, 1))(inputs)
    x = layers.Conv2D(4, 7, strides=4, activation="tanh")(x)
    x = layers.GlobalMaxPooling2D()(x)
    logits = layers.Dense(n_classes)(x)
    if hard:
        logits = keras.ops.one_hot(keras.ops.argmax(logits, axis=-1), n_classes)
    return keras.Model(inputs, logits, name="user_mel_image")


def adversarial_argmax(model, generator, batches):
    """The model's own predictions on x + G(x), outside the project's scoring code."""
    return np.concatenate([np.argmax(model(x + generator(x, training=False)).numpy(), -1)
                           for x, _ in batches])


def test_train_against_an_outside_model_then_evaluate_it(defended_run, tiny_data, tmp_path):
    data = load_data(tiny_data)
    model = mel_image_ser(data.n_classes)
    path = tmp_path / "mine.keras"
    model.save(path)
    digest = victim_digest(model)

    result = attack(tiny_data, defended_run, "--method", "single", "--defences", "mine",
                    "--victim", f"mine={path}")
    assert result.exit_code == 0, result.output
    assert "single-mine" in result.output
    sequence = json.loads((defended_run / "attackers" / "single-mine-eps0.008-snr30"
                           / "sequence.json").read_text())
    pin = {"weights_sha256": digest, "input": "log_mel_standardised", "output": "logits"}
    assert sequence["victims"] == {"mine": {**pin, "path": str(path)}}
    (task,) = sequence["tasks"]
    task_record = json.loads((defended_run / task["path"] / "task.json").read_text())
    assert task_record["defence_models"] == {"mine": pin}
    # The victim was in the loss: the C&W term and the fooling rate were logged against it.
    assert {"cw", "success_rate"} <= set(task_record["final_train_metrics"])

    # The same model again: the finished task is reused (same key, no new task).
    trained = sorted((defended_run / "attackers" / "tasks").iterdir())
    again = attack(tiny_data, defended_run, "--method", "single", "--defences", "mine",
                   "--victim", f"mine={path}")
    assert again.exit_code == 0, again.output
    assert sorted((defended_run / "attackers" / "tasks").iterdir()) == trained

    result = run("evaluate", defended_run, "--audio-clips", "0", "--listen", "0", "--no-baselines",
                 "--victim", f"mine={path}")
    assert result.exit_code == 0, result.output
    results = json.loads((defended_run / "evaluation" / "results.json").read_text())
    assert results["defences"]["mine"]["weights_sha256"] == digest
    scored = results["tasks"][task["key"]]
    assert scored["defences_trained"] == ["mine"]
    generator = load_generator(defended_run, task)
    for split in ("dev", "test"):
        mine = scored[split]["against"]["mine"]
        assert mine["predictions"] == adversarial_argmax(
            model, generator, make_dataset(data, split, 32)).tolist()
        assert "cnn4" in scored[split]["against"]  # and scored on the run's defence as usual

    # One weight changed: evaluating the sequence against it is refused; training anew
    # against it makes a new task, never the old one.
    weights = model.get_weights()
    weights[0][0, 0, 0, 0] += 1e-3
    model.set_weights(weights)
    model.save(path)
    changed = victim_digest(model)
    message = one_line_error(run("evaluate", defended_run, "--audio-clips", "0", "--no-baselines",
                                 "--victim", f"mine={path}"))
    assert (f"victim 'mine' ({path}) is not the model attacker single-mine-eps0.008-snr30 was "
            f"trained against (weights_sha256 {digest} -> {changed})") in message
    result = attack(tiny_data, defended_run, "--method", "single", "--defences", "mine",
                    "--victim", f"mine={path}")
    assert result.exit_code == 0, result.output
    retrained = json.loads((defended_run / "attackers" / "single-mine-eps0.008-snr30"
                            / "sequence.json").read_text())
    assert retrained["victims"]["mine"]["weights_sha256"] == changed
    assert retrained["tasks"][0]["key"] != task["key"]
    assert (defended_run / retrained["tasks"][0]["path"] / "generator.keras").exists()


def test_a_sequence_mixing_a_defence_and_an_outside_model(defended_run, tiny_data, tmp_path):
    """Lifelong CNN-4 then the user's model as a SavedModel: the EWC Fisher of task 0 and
    task 1's loss run through the adapter as through a defence; the run evaluates with the
    victim (its column) and without it (the run's defences only)."""
    data = load_data(tiny_data)
    model = mel_image_ser(data.n_classes, seed=1)
    saved = tmp_path / "theirs_savedmodel"
    model.export(str(saved))

    record = train_attacker(tiny_data, defended_run, "lifelong", ["cnn4", "theirs"], SMOKE,
                            verbose=0, victims=[parse_victim_option(f"theirs={saved}")])
    first, second = record["tasks"]
    assert (first["defences"], second["defences"]) == (["cnn4"], ["theirs"])
    identity = json.loads((defended_run / second["path"] / "task.json").read_text())
    assert identity["defence_models"] == {"theirs": {"weights_sha256": victim_digest(model),
                                                     "input": "log_mel_standardised",
                                                     "output": "logits"}}
    assert identity["parent"] == first["key"] and identity["ewc_lambda"] > 0
    assert identity["final_train_metrics"]["penalty"] > 0.0  # task 0's Fisher was in force
    assert list(record["victims"]) == ["theirs"]

    for victim in ((), ("--victim", f"theirs={saved}")):
        result = run("evaluate", defended_run, "--audio-clips", "0", "--no-baselines", *victim)
        assert result.exit_code == 0, result.output
        results = json.loads((defended_run / "evaluation" / "results.json").read_text())
        against = results["tasks"][second["key"]]["test"]["against"]
        assert set(against) == {"cnn4", *(["theirs"] if victim else [])}
        assert (defended_run / "evaluation" / "report.md").exists()


def test_outside_models_that_cannot_be_training_targets_are_refused(defended_run, tiny_data, tmp_path):
    data = load_data(tiny_data)

    def refused(name, model_or_manifest, *extra):
        option = ("--victims", model_or_manifest) if str(model_or_manifest).endswith(".json") \
            else ("--victim", f"{name}={model_or_manifest}")
        return one_line_error(attack(tiny_data, defended_run, "--method", "single",
                                     "--defences", name, *option, *extra))

    mel_image_ser(data.n_classes, frames=300).save(tmp_path / "short.keras")
    message = refused("short", tmp_path / "short.keras")
    assert "victim 'short': input shape [B, 300, 64], the data gives [B, 373, 64]" in message

    mel_image_ser(data.n_classes + 1).save(tmp_path / "wide.keras")
    message = refused("wide", tmp_path / "wide.keras")
    assert f"victim 'wide': {data.n_classes + 1} classes, the data has {data.n_classes}" in message

    mel_image_ser(data.n_classes, hard=True).save(tmp_path / "hard.keras")
    message = refused("hard", tmp_path / "hard.keras")
    assert "victim 'hard': its output has no gradient with respect to its input" in message

    manifest = tmp_path / "wave.json"
    manifest.write_text(json.dumps([{"name": "wave", "path": "hard.keras", "input": "waveform_16k"}]))
    # What the declaration shows is checked before anything is loaded: usage errors (exit 2),
    # as in tests/test_victim_options.py.
    result = attack(tiny_data, defended_run, "--method", "single", "--defences", "wave",
                    "--victims", manifest)
    assert result.exit_code == 2
    assert "victim 'wave': a waveform_16k model cannot be a training target" in result.output
    result = attack(tiny_data, defended_run, "--method", "single", "--defences", "../up",
                    "--victim", f"../up={tmp_path / 'wide.keras'}")
    assert result.exit_code == 2
    assert "victim '../up': a training target's name may hold only letters" in result.output

    # A name that is neither a defence nor a victim is a usage error.
    result = attack(tiny_data, defended_run, "--method", "single", "--defences", "mine")
    assert result.exit_code == 2 and "unknown defence(s) mine" in result.output
    assert "--victim NAME=PATH" in result.output
