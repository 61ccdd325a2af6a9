"""tf.distribute: global-batch loss shares, MirroredStrategy against one device, a
two-process MultiWorkerMirroredStrategy run, and the bad inputs."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tfadvser.config import PROFILES
from tfadvser.runtime.distribute import make_strategy, parse_tf_config
from tfadvser.errors import TfadvserError
from tfadvser.attack.losses import attack_loss
from tfadvser_cli.main import main

HERE = Path(__file__).resolve().parent


def test_loss_shares_of_two_replicas_add_up_to_the_one_device_loss():
    # 4 clips, 2 classes, 1x2 "spectrograms"; replica A holds clips 0-1, replica B 2-3.
    log_probs = tf.math.log(tf.constant([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]))
    labels = tf.constant([0, 0, 1, 1])
    x = tf.zeros((4, 1, 2))
    x_adv = tf.constant([[[1.0, 0.0]], [[0.0, 2.0]], [[1.0, 1.0]], [[0.0, 0.0]]])
    for reduction in ("sum", "mean"):
        whole = attack_loss([log_probs], labels, x_adv, x, 0.5, reduction)
        a = attack_loss([log_probs[:2]], labels[:2], x_adv[:2], x[:2], 0.5, reduction, 4)
        b = attack_loss([log_probs[2:]], labels[2:], x_adv[2:], x[2:], 0.5, reduction, 4)
        for term in ("loss", "cw", "mse"):
            assert float(a[term] + b[term]) == pytest.approx(float(whole[term]), rel=1e-6)
    # mse = mean of eta^2 = (1 + 4 + 1 + 1) / 8; C&W margins ln 9, 0, 0, ln 7/3 (summed)
    whole = attack_loss([log_probs], labels, x_adv, x, 0.5, "sum")
    assert float(whole["mse"]) == pytest.approx(7 / 8)
    assert float(whole["cw"]) == pytest.approx(np.log(21.0), rel=1e-6)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"task": {"type": "worker", "index": 0}}', "no 'cluster'"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "knows only"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}}', "no 'task'"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "chief", "index": 0}}',
     "not a job"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "out of range"),
])
def test_malformed_tf_config_is_named(text, message):
    with pytest.raises(TfadvserError, match=message):
        parse_tf_config(text)


def test_a_good_tf_config_passes():
    config = parse_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, '
                             '"task": {"type": "worker", "index": 1}}')
    assert config["task"]["index"] == 1



def test_unknown_strategy_and_missing_tf_config_are_clear_errors(tiny_data, tmp_path, monkeypatch):
    with pytest.raises(TfadvserError, match="unknown strategy 'ring'"):
        make_strategy("ring")
    runner = CliRunner()
    args = ["train", "defence", "--data", str(tiny_data), "--model", "cnn4", "--profile", "smoke",
            "--out", str(tmp_path / "run")]
    result = runner.invoke(main, args + ["--strategy", "ring"])
    assert result.exit_code == 2 and "'ring' is not one of" in result.output
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker"}}')
    result = runner.invoke(main, args + ["--strategy", "multiworker"])
    assert result.exit_code == 1
    assert "Error: TF_CONFIG task index None is out of range" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    return env


def test_mirrored_on_two_cpu_devices_matches_one_device(tiny_data, tmp_path):
    """One epoch of CNN-4 training and a 2-task lifelong attacker (with its Fisher) under
    MirroredStrategy over two logical CPUs give the one-device losses and weights.

    Weights are compared the way Adam allows: its update has about the size of the learning
    rate whatever the gradient's size, so when a gradient is near zero, rounding from the
    replicas' other summation order can flip the sign of that weight's update. A weight may
    then differ by up to 2 x lr x steps; nearly all must agree far more closely.
    """
    done = subprocess.run([sys.executable, str(HERE / "mirrored_check.py"), str(tiny_data),
                           str(tmp_path)], capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    one, two = result["one"], result["two"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    for key in ("loss", "accuracy", "uar", "val_loss"):
        assert two["defence_metrics"][key] == pytest.approx(one["defence_metrics"][key], rel=1e-3)
    for task_one, task_two in zip(one["attacker_metrics"], two["attacker_metrics"], strict=True):
        for key in ("loss", "mse", "eta_mean"):
            assert task_two[key] == pytest.approx(task_one[key], rel=1e-4)
        assert task_two["cw"] == pytest.approx(task_one["cw"], rel=1e-3, abs=1e-4)
        assert task_two["penalty"] == pytest.approx(task_one["penalty"], rel=1e-3)
    assert one["attacker_metrics"][1]["penalty"] > 0  # the EWC task really had a penalty
    smoke = PROFILES["smoke"]
    adam_bound = {"defence_weights": 2 * smoke.defence.learning_rate * 2,  # 2 steps
                  "attacker_weights": 2 * smoke.attacker.learning_rate * 6}  # 4 + 2 steps
    for key, bound in adam_bound.items():
        diffs = np.concatenate([np.abs(np.array(a) - np.array(b)).ravel()
                                for a, b in zip(one[key], two[key], strict=True)])
        assert diffs.max() <= bound, key
        assert np.mean(diffs <= 1e-4) >= 0.95, key  # measured: 99.97 % and 98.8 %
    for a, b in zip(one["fisher"], two["fisher"], strict=True):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-3, atol=1e-6)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _two_workers(args, run):
    hosts = [f"localhost:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(_env(), TF_CONFIG=json.dumps(
            {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tfadvser_cli.main", *args, "--out", str(run),
             "--strategy", "multiworker", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    return outputs


def _weights(path):
    return keras.saving.load_model(path, compile=False).get_weights()


def test_two_workers_on_localhost_train_and_agree(tiny_data, tmp_path):
    run = tmp_path / "run"
    common = ["--data", str(tiny_data), "--profile", "smoke"]
    outputs = _two_workers(["train", "defence", "--model", "cnn4", *common], run)
    assert "2 replica(s) in sync" in outputs[0][1]
    worker = run / "workers" / "worker-1"
    chief_model, worker_model = (d / "defences/cnn4/model.keras" for d in (run, worker))
    for a, b in zip(_weights(chief_model), _weights(worker_model), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    # The chief alone wrote the run folder; the other worker kept its own copy.
    assert not (run / "defences" / "cnn4" / "workers").exists()
    assert json.loads((run / "defences/cnn4/results.json").read_text())["final_train_metrics"]

    _two_workers(["train", "attacker", "--method", "single", "--defences", "cnn4", *common], run)
    chief_gen, worker_gen = (
        d / json.loads((d / "attackers/single-cnn4-eps0.008-snr30/sequence.json").read_text())["tasks"][0]["path"]
        / "generator.keras" for d in (run, worker))
    for a, b in zip(_weights(chief_gen), _weights(worker_gen), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
