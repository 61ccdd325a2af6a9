"""Export to SavedModel, reload-and-compare, the CLI listing, and the REST client against a
local stand-in for TF Serving (and the real server when it is installed)."""
import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import keras
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from tfadvser.attack.attacker import build_generator
from tfadvser.data.audio import read_mono_numpy
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.defence.models import build_defence
from tfadvser.errors import TfadvserError
from tfadvser.serving.export import export_attacker, export_defence
from tfadvser.data.features import fix_length, log_mel
from tfadvser.config import FeatureConfig
from tfadvser.serving.client import perturb_file, predict


@pytest.fixture(scope="module")
def exported(tiny_data, tmp_path_factory):
    keras.utils.set_random_seed(0)
    generator = build_generator(0.0625)
    defence = build_defence("cnn4", 7, width=0.0625)
    metadata = load_data(tiny_data)
    root = tmp_path_factory.mktemp("saved_models")
    attacker_dir = export_attacker(generator, metadata, root, "attacker", None, {"test": True})
    defence_dir = export_defence(defence, metadata, root, "defence", None, {"test": True})
    return generator, defence, metadata, root, attacker_dir, defence_dir


def raw_batch(tiny_data):
    return next(iter(make_dataset(tiny_data, "dev", 4, standardize=False)))[0].numpy()


def test_layout_versions_and_assets(exported, tiny_data):
    generator, _, metadata, root, attacker_dir, _ = exported
    assert attacker_dir == root / "attacker" / "1"
    assert (attacker_dir / "saved_model.pb").exists()
    assert (attacker_dir / "assets" / "labels.txt").read_text().split() == list(metadata.labels)
    assert json.loads((attacker_dir / "assets" / "feature_config.json").read_text()) == metadata.feature_config.to_dict()
    second = export_attacker(generator, metadata, root, "attacker", None, {})
    assert second == root / "attacker" / "2"
    with pytest.raises(TfadvserError, match="already exists"):
        export_attacker(generator, metadata, root, "attacker", 1, {})
    assert sorted(p.name for p in (root / "attacker").iterdir()) == ["1", "2"]


def test_attacker_signature_matches_keras(exported, tiny_data):
    generator, _, metadata, _, attacker_dir, _ = exported
    mean, std = metadata.mean, metadata.std
    raw = raw_batch(tiny_data)
    out = tf.saved_model.load(str(attacker_dir)).signatures["serving_default"](log_mel=tf.constant(raw))
    x = (raw - mean) / std
    eta = generator(x, training=False).numpy()
    np.testing.assert_allclose(out["perturbation"].numpy(), eta * std, atol=1e-5)
    np.testing.assert_allclose(out["adversarial_log_mel"].numpy(), (x + eta) * std + mean, atol=1e-5)


def test_waveform_signature_agrees_with_prepare(exported, tiny_corpus, tiny_data):
    _, _, _, _, attacker_dir, _ = exported
    path = next(p for p in sorted(tiny_corpus.glob("*.wav")) if soundfile.info(str(p)).samplerate == 16000)
    wave = read_mono_numpy(path, 16000).astype(np.float32)
    loaded = tf.saved_model.load(str(attacker_dir))
    out = loaded.signatures["perturb_waveform"](waveform=tf.constant(wave[None]))
    config = FeatureConfig()
    expected = fix_length(log_mel(tf.constant(wave), config), config).numpy()
    np.testing.assert_allclose(out["clean_log_mel"].numpy()[0], expected, atol=1e-5)
    from_log_mel = loaded.signatures["serving_default"](log_mel=tf.constant(expected[None]))
    np.testing.assert_allclose(out["adversarial_log_mel"].numpy(), from_log_mel["adversarial_log_mel"].numpy(),
                               atol=1e-5)
    # what prepare stored for the same clip
    for batch in make_dataset(tiny_data, "train", 64, standardize=False, include_info=True).concatenate(
            make_dataset(tiny_data, "dev", 64, standardize=False, include_info=True)).concatenate(
            make_dataset(tiny_data, "test", 64, standardize=False, include_info=True)):
        names = [p.decode() for p in batch["path"].numpy()]
        if path.name in names:
            stored = batch["log_mel"].numpy()[names.index(path.name)]
            np.testing.assert_allclose(out["clean_log_mel"].numpy()[0], stored, atol=1e-4)
            break
    else:
        assert "_neu" in path.name  # neutral clips are not prepared for DEMoS


def test_defence_signature(exported, tiny_data):
    _, defence, metadata, _, _, defence_dir = exported
    mean, std = metadata.mean, metadata.std
    raw = raw_batch(tiny_data)
    out = tf.saved_model.load(str(defence_dir)).signatures["classify"](log_mel=tf.constant(raw))
    log_probs = defence((raw - mean) / std, training=False).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), np.exp(log_probs), atol=1e-5)
    assert [v.decode() for v in out["label"].numpy()] == [metadata.labels[i] for i in log_probs.argmax(1)]


def test_saved_model_cli_lists_signatures(exported):
    _, _, _, _, attacker_dir, _ = exported
    # the saved_model_cli console script, run as its module with this interpreter
    text = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
                           "--dir", str(attacker_dir), "--all"], capture_output=True, text=True,
                          check=True).stdout
    assert "signature_def['serving_default']" in text and "signature_def['perturb_waveform']" in text
    assert "shape: (-1, 373, 64)" in text and "shape: (-1, -1)" in text and "dtype: DT_FLOAT" in text


class _StandIn(BaseHTTPRequestHandler):
    """TF Serving's REST predict protocol for one SavedModel, on loopback."""

    model = None

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        signature = self.model.signatures[request["signature_name"]]
        instances = request["instances"]
        inputs = {k: tf.constant(np.stack([np.asarray(i[k], np.float32) for i in instances]))
                  for k in instances[0]}
        try:
            outputs = signature(**inputs)
        except Exception as exc:  # the real server answers 400 with the error text
            self.send_response(400)
            self.end_headers()
            self.wfile.write(json.dumps({"error": str(exc)[:200]}).encode())
            return
        predictions = [{k: v.numpy()[i].tolist() for k, v in outputs.items()} for i in range(len(instances))]
        body = json.dumps({"predictions": predictions}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_client_against_a_local_rest_stand_in(exported, tiny_corpus):
    _, _, _, _, attacker_dir, _ = exported
    _StandIn.model = tf.saved_model.load(str(attacker_dir))
    server = HTTPServer(("127.0.0.1", 0), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        path = sorted(tiny_corpus.glob("*.wav"))[0]
        outputs = perturb_file(url, "attacker", path)
        assert set(outputs) == {"adversarial_log_mel", "perturbation", "clean_log_mel"}
        assert outputs["adversarial_log_mel"].shape == (373, 64)
        np.testing.assert_allclose(outputs["adversarial_log_mel"] - outputs["clean_log_mel"],
                                   outputs["perturbation"], atol=1e-4)
        with pytest.raises(TfadvserError, match="HTTP 400"):
            predict(url, "attacker", "serving_default", [{"log_mel": [[0.0] * 64] * 5}])
    finally:
        server.shutdown()


def test_client_reports_an_unreachable_server(tiny_corpus):
    with pytest.raises(TfadvserError, match="cannot reach the server"):
        perturb_file("http://127.0.0.1:9", "attacker", sorted(tiny_corpus.glob("*.wav"))[0])


def test_real_tensorflow_model_server(exported, tiny_corpus, tmp_path):
    server = shutil.which("tensorflow_model_server")
    if server is None:
        pytest.skip("tensorflow_model_server is not on the PATH (install it or use the Docker "
                    "image tensorflow/serving to run this test)")
    import socket
    import time

    _, _, _, root, _, _ = exported
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([server, f"--rest_api_port={port}", "--port=0", "--model_name=attacker",
                                f"--model_base_path={root / 'attacker'}"])
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                outputs = perturb_file(f"http://127.0.0.1:{port}", "attacker", sorted(tiny_corpus.glob("*.wav"))[0])
                break
            except TfadvserError:
                time.sleep(1)
        else:
            pytest.fail("tensorflow_model_server did not answer within 60 s")
        assert outputs["adversarial_log_mel"].shape == (373, 64)
    finally:
        process.terminate()
        process.wait(timeout=30)
