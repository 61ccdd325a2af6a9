"""Victims reachable only through predictions: a TF Serving REST endpoint (a local server
in the test speaking TF Serving's REST predict protocol for an exported defence), a model
file, and `tfadvser attack-query` end to end; a server that cannot be reached, answers
500, answers garbage or the wrong class count: one clear line each, nothing written."""
import json
import re
import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tfadvser.attack.query import CountingVictim, run_attack
from tfadvser.config import Budget
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.defence.models import build_defence
from tfadvser.serving import query_victim
from tfadvser.serving.export import export_defence
from tfadvser.serving.query_victim import RestVictim
from tfadvser_cli.main import main


class _Serving(BaseHTTPRequestHandler):
    """TF Serving's REST predict protocol for one SavedModel on loopback; `mode` makes it
    fail: "500", "garbage" (not JSON), "three" (3 probabilities per clip)."""

    model, mode, requests = None, "ok", 0

    def do_POST(self):
        type(self).requests += 1
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.mode == "500":
            return self._answer(500, b'{"error": "Internal: the model crashed"}')
        if self.mode == "garbage":
            return self._answer(200, b"<html>proxy error</html>")
        signature = self.model.signatures[request["signature_name"]]
        log_mel = tf.constant(np.asarray([i["log_mel"] for i in request["instances"]], np.float32))
        outputs = {k: v.numpy() for k, v in signature(log_mel=log_mel).items()}
        if self.mode == "three":
            outputs["probabilities"] = outputs["probabilities"][:, :3]
        predictions = [{"probabilities": p.tolist(), "label": l.decode()}
                       for p, l in zip(outputs["probabilities"], outputs["label"])]
        self._answer(200, json.dumps({"predictions": predictions}).encode())

    def _answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def exported(tiny_data, tmp_path_factory):
    keras.utils.set_random_seed(0)
    data = load_data(tiny_data)
    defence = build_defence("cnn4", data.n_classes, width=0.0625)
    root = tmp_path_factory.mktemp("saved_models")
    folder = export_defence(defence, data, root, "defence", None, {"test": True})
    return root, folder, defence, data


@pytest.fixture(scope="module")
def served(exported):
    _, folder, defence, data = exported
    _Serving.model = tf.saved_model.load(str(folder))
    server = HTTPServer(("127.0.0.1", 0), _Serving)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", defence, data
    server.shutdown()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(query_victim, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(query_victim, "TIMEOUT_SECONDS", 5.0)
    _Serving.mode, _Serving.requests = "ok", 0


def _clips(data, n=4):
    x, y = next(iter(make_dataset(data, "test", n)))
    return x.numpy(), y.numpy().astype(int)


def test_the_rest_victim_answers_what_the_defence_does_and_counts_what_it_sent(served):
    url, defence, data = served
    x, y = _clips(data)
    rest = RestVictim(url, "defence", data.mean, data.std, data.n_classes, batch_size=3)
    probs = rest(x)
    np.testing.assert_allclose(probs, np.exp(defence(x, training=False).numpy()), atol=1e-5)
    assert rest.requests == 2 and rest.instances_posted == 4  # batches of 3 + 1
    victim = CountingVictim(rest, x, y, Budget(0.032, None), data.mean, data.std, 12,
                            data.n_classes)
    result = run_attack("square", victim, seed=0)
    # every instance posted was a query of the attack (no retries here), and no more than
    # the budget per clip
    assert rest.instances_posted == 4 + result["queries_sent"]
    assert np.all(victim.queries <= 12) and result["max_queries"] == 12


@pytest.mark.parametrize("mode, message", [
    ("500", r"HTTP 500: \{\"error\": \"Internal: the model crashed\"\} \(tried 4 times\)$"),
    ("garbage", r"the answer is not JSON: b'<html>proxy error</html>'$"),
    ("three", r"3 probabilities per clip; the data has 7 classes$"),
])
def test_a_failing_server_is_one_line_and_nothing_is_written(served, tmp_path, mode, message):
    url, _, data = served
    _Serving.mode = mode
    out = tmp_path / "q.json"
    result = CliRunner().invoke(main, ["attack-query", "--server", url, "--model", "defence",
                                       "--data", str(data.path), "--queries", "5", "--clips", "2",
                                       "--out", str(out)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {url}/v1/models/defence")
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in result.output and not out.exists()
    assert list(tmp_path.iterdir()) == []
    if mode == "500":
        assert _Serving.requests == 4  # one try and 3 retries with back-off


def test_an_unreachable_server_is_one_line(tiny_data, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "q.json"
    result = CliRunner().invoke(main, ["attack-query", "--server", f"http://127.0.0.1:{port}",
                                       "--model", "defence", "--data", str(tiny_data),
                                       "--clips", "2", "--queries", "5", "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: http://127.0.0.1:{port}/v1/models/defence:predict: cannot reach the server "
        "([Errno 111] Connection refused) (tried 4 times)"]
    assert not out.exists()


def test_attack_query_end_to_end_through_rest_with_the_report(served, tmp_path):
    url, _, data = served
    out = tmp_path / "q.json"
    result = CliRunner().invoke(main, ["attack-query", "--server", url, "--model", "defence",
                                       "--data", str(data.path), "--attack", "square",
                                       "--attack", "hsj", "--queries", "20", "--clips", "4",
                                       "--epsilon", "0.032", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    entry = record["budgets"]["eps0.032"]["victims"]["defence"]
    assert set(entry["attacks"]) == {"square", "hsj"} and entry["clips"] == 4
    assert entry["clean_correct"] >= 1, "no clip to attack: pick other clips"
    assert entry["input"].startswith("log_mel_raw")
    sent = sum(a["queries_sent"] for a in entry["attacks"].values())
    # the attacks' queries, the clean pass and the one-shot noise pass, all through REST
    assert entry["rest"]["instances_posted"] == sent + 4 + 4
    assert "| square |" in result.output and "success at 10" in result.output
    assert "| noise at the budget |" in result.output


def test_attack_query_on_a_model_file(served, tmp_path):
    _, defence, data = served
    path = tmp_path / "victim.keras"
    defence.save(path)
    out = tmp_path / "q.json"
    result = CliRunner().invoke(main, ["attack-query", "--victim", str(path), "--data",
                                       str(data.path), "--attack", "noise", "--queries", "3",
                                       "--clips", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    entry = json.loads(out.read_text())["budgets"]["eps0.008-snr30"]["victims"]["victim"]
    assert entry["input"] == "log_mel_standardised" and entry["attacks"]["noise"]["max_queries"] == 3


def test_attack_query_needs_exactly_one_victim(tiny_data):
    result = CliRunner().invoke(main, ["attack-query", "--data", str(tiny_data)])
    assert result.exit_code == 2 and "name exactly one victim" in result.output


def test_against_a_real_tensorflow_model_server(exported):
    binary = shutil.which("tensorflow_model_server")
    if binary is None:
        pytest.skip("tensorflow_model_server is not on the PATH (install it or use the Docker "
                    "image tensorflow/serving to run this test)")
    root, _, defence, data = exported
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([binary, f"--rest_api_port={port}", "--port=0",
                                "--model_name=defence", f"--model_base_path={root / 'defence'}"])
    try:
        x, _ = _clips(data)
        rest = RestVictim(f"http://127.0.0.1:{port}", "defence", data.mean, data.std,
                          data.n_classes, retries=10, backoff=0.5)  # ~50 s to start
        np.testing.assert_allclose(rest(x), np.exp(defence(x, training=False).numpy()), atol=1e-5)
    finally:
        process.terminate()
        process.wait(timeout=30)
