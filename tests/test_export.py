"""Export to SavedModel, reload-and-compare, the CLI listing, and the REST client against a
local stand-in for TF Serving (and the real server when it is installed).

Every signature of both kinds of export is run the way TF Serving runs it: TF1's session
loader (restore op of the MetaGraph's saver, init op, then the signature's tensors) in a
fresh graph, in process for the models exported here and through `saved_model_cli run` in
a subprocess for an attacker and a defence trained and exported by the command line.
Outputs must equal the Keras model's on the same input within ATOL (log-Mel units for
log-Mels and perturbations, absolute for probabilities); labels exactly."""
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
from tfadvser.serving.export import (check_serving_ops, export_attacker, export_defence,
                                     export_endpoints, foreign_ops)
from tfadvser.data.features import fix_length, log_mel
from tfadvser.config import FeatureConfig
from tfadvser.data.rendering import clip_audio, extract, render
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


# Largest difference allowed between a signature run by TF Serving's loader and the Keras
# model, for outputs in log-Mel units (|values| up to about 20, where float32 steps are
# 2e-6) and for probabilities. Measured: at most a few 1e-6 (graph optimisations in the
# session reorder float32 arithmetic).
ATOL = 1e-5


def waveform_batch(tiny_corpus):
    """Two 16 kHz clips of the tiny corpus, cut to a common length: [2, samples]."""
    paths = [p for p in sorted(tiny_corpus.glob("*.wav")) if soundfile.info(str(p)).samplerate == 16000]
    waves = [read_mono_numpy(p, 16000).astype(np.float32) for p in paths[:2]]
    length = min(len(w) for w in waves)
    return np.stack([w[:length] for w in waves])


def keras_attacker(generator, metadata, log_mel):
    """What the attacker's signatures must return for a batch of raw log-Mels, from Keras."""
    mean, std = metadata.mean, metadata.std
    x = (log_mel - mean) / std
    eta = generator(x, training=False).numpy()
    return {"adversarial_log_mel": (x + eta) * std + mean, "perturbation": eta * std}


def keras_log_mel(waves, config=FeatureConfig()):
    return np.stack([fix_length(log_mel(tf.constant(w), config), config).numpy() for w in waves])


def keras_defence(defence, metadata, log_mel):
    mean, std = metadata.mean, metadata.std
    log_probs = defence((log_mel - mean) / std, training=False).numpy()
    return {"probabilities": np.exp(log_probs),
            "label": np.array([metadata.labels[i] for i in log_probs.argmax(1)])}


def expected_outputs(exported, kind, signature, tiny_data, tiny_corpus):
    """(inputs, expected outputs) of one signature, the expectation computed with Keras."""
    generator, defence, metadata, *_ = exported
    if kind == "defence":
        raw = raw_batch(tiny_data)
        return {"log_mel": raw}, keras_defence(defence, metadata, raw)
    if signature == "serving_default":
        raw = raw_batch(tiny_data)
        return {"log_mel": raw}, keras_attacker(generator, metadata, raw)
    waves = waveform_batch(tiny_corpus)
    clean = keras_log_mel(waves)
    attacked = keras_attacker(generator, metadata, clean)
    audio = clip_audio(render(tf.constant(waves), tf.constant(attacked["perturbation"]), FeatureConfig()))
    return {"waveform": waves}, {**attacked, "clean_log_mel": clean, "adversarial_waveform": audio.numpy()}


def session_run(export_dir, signature, inputs):
    """One signature run as TF Serving runs it: TF1's session loader in a fresh graph."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], str(export_dir))
        signature_def = meta_graph.signature_def[signature]
        feeds = {signature_def.inputs[k].name: v for k, v in inputs.items()}
        fetches = {k: v.name for k, v in signature_def.outputs.items()}
        return session.run(fetches, feeds)


def saved_model_cli_run(export_dir, signature, inputs, tmp_path):
    """`saved_model_cli run` (its module, with this interpreter) on .npy inputs; its outputs."""
    out = tmp_path / f"out-{signature}"
    files = []
    for key, value in inputs.items():
        np.save(tmp_path / f"{key}.npy", value)
        files.append(f"{key}={tmp_path / f'{key}.npy'}")
    result = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "run",
                             "--dir", str(export_dir), "--tag_set", "serve", "--signature_def", signature,
                             "--inputs", ";".join(files), "--outdir", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return {p.stem: np.load(p, allow_pickle=True) for p in out.glob("*.npy")}


def assert_outputs_match(outputs, expected):
    assert set(outputs) == set(expected)
    for key, value in expected.items():
        if key == "label":
            assert [v.decode() if isinstance(v, bytes) else v for v in outputs[key]] == list(value)
        else:
            assert outputs[key].shape == value.shape, key
            np.testing.assert_allclose(outputs[key], value, rtol=0, atol=ATOL, err_msg=key)


SIGNATURES = [("attacker", "serving_default"), ("attacker", "perturb_waveform"),
              ("defence", "classify"), ("defence", "serving_default")]


def export_dir_of(exported, kind):
    return exported[4] if kind == "attacker" else exported[5]


@pytest.mark.parametrize("kind,signature", SIGNATURES)
def test_signature_runs_under_the_session_loader(exported, kind, signature, tiny_data, tiny_corpus):
    inputs, expected = expected_outputs(exported, kind, signature, tiny_data, tiny_corpus)
    outputs = session_run(export_dir_of(exported, kind), signature, inputs)
    assert_outputs_match(outputs, expected)


@pytest.fixture(scope="module")
def cli_exported(tiny_data, tmp_path_factory):
    """A smoke-profile run trained and exported by the command line: a defence and a
    single-task attacker against it, each with the Keras model the CLI exported."""
    from click.testing import CliRunner

    from tfadvser.attack.tasks import find_task, load_generator
    from tfadvser.defence.victims import load_defence
    from tfadvser_cli.main import main

    def cli(*args):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output

    root = tmp_path_factory.mktemp("cli_export")
    run_dir, out = root / "run", root / "saved_models"
    cli("train", "defence", "--data", tiny_data, "--model", "cnn4", "--profile", "smoke",
        "--out", run_dir, "--quiet")
    cli("train", "attacker", "--data", tiny_data, "--defences", "cnn4", "--method", "single",
        "--profile", "smoke", "--out", run_dir, "--quiet")
    assert cli("export", run_dir, "--attacker", "single-cnn4-eps0.008-snr30", "--name", "att", "--out", out
               ).strip() == f"exported {out / 'att' / '1'}"
    cli("export", run_dir, "--defence", "cnn4", "--name", "def", "--out", out)
    metadata = load_data(tiny_data)
    return (load_generator(run_dir, find_task(run_dir, "single-cnn4-eps0.008-snr30")),
            load_defence(run_dir, "cnn4", metadata), metadata, out, out / "att" / "1", out / "def" / "1")


@pytest.mark.parametrize("kind,signature", SIGNATURES)
def test_cli_export_of_a_trained_run_runs_under_saved_model_cli(cli_exported, kind, signature, tiny_data,
                                                                tiny_corpus, tmp_path):
    inputs, expected = expected_outputs(cli_exported, kind, signature, tiny_data, tiny_corpus)
    outputs = saved_model_cli_run(export_dir_of(cli_exported, kind), signature, inputs, tmp_path)
    assert_outputs_match(outputs, expected)


def test_signature_sets(exported):
    *_, attacker_dir, defence_dir = exported
    for path, names in ((attacker_dir, {"serving_default", "perturb_waveform"}),
                        (defence_dir, {"serving_default", "classify"})):
        with tf.Graph().as_default(), tf.compat.v1.Session() as session:
            meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], str(path))
        assert set(meta_graph.signature_def) - {"__saved_model_init_op"} == names


def test_checkpoint_holds_each_weight_once(exported):
    generator, defence, _, _, attacker_dir, defence_dir = exported
    for model, path in ((generator, attacker_dir), (defence, defence_dir)):
        keys = [name for name, _ in tf.train.list_variables(str(path / "variables" / "variables"))
                if name.endswith("VARIABLE_VALUE")]
        assert len(keys) == len(model.weights)


def test_foreign_ops_are_found_in_graphs_and_function_libraries():
    graph = tf.compat.v1.GraphDef()
    graph.node.add(name="x", op="Placeholder")
    graph.node.add(name="call", op="StatefulPartitionedCall")
    graph.node.add(name="direct", op="inner_function")  # a call of a library function
    inner = graph.library.function.add()
    inner.signature.name = "inner_function"
    inner.node_def.add(name="decode", op="IO>AudioDecodeWAV")
    inner.node_def.add(name="fft", op="RFFT")
    other = graph.library.function.add()
    other.signature.name = "other_function"
    other.node_def.add(name="decode", op="IO>AudioDecodeWAV")
    other.node_def.add(name="custom", op="MyCustomOp")
    assert foreign_ops([graph]) == {"IO>AudioDecodeWAV": ["inner_function", "other_function"],
                                    "MyCustomOp": ["other_function"]}


def test_exported_graphs_use_core_ops_only(exported):
    *_, attacker_dir, defence_dir = exported
    check_serving_ops(attacker_dir)
    check_serving_ops(defence_dir)


def test_export_refuses_tensorflow_io_ops(tmp_path):
    tfio = pytest.importorskip("tensorflow_io")

    def decode(contents):
        return {"audio": tf.cast(tfio.audio.decode_wav(contents, dtype=tf.int16), tf.float32)}

    with pytest.raises(TfadvserError, match=r"not exported.*tensorflow-io.*IO>AudioDecodeWAV") as error:
        export_endpoints({"decode": (decode, [tf.TensorSpec([], tf.string, name="contents")])},
                         tmp_path, "io", None, {})
    assert str(tmp_path / "io" / "1") in str(error.value)
    assert list((tmp_path / "io").iterdir()) == []  # neither the version nor the partial folder


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


def test_waveform_signature_returns_audio_that_re_extracts_and_re_scores(exported, tiny_corpus):
    """The adversarial waveform of `perturb_waveform`: the library's rendering of the
    signature's own perturbation; re-extracted, it is close to the adversarial log-Mel the
    signature reports, and the exported defence scores it as the Keras defence does."""
    generator, defence, metadata, _, attacker_dir, defence_dir = exported
    waves = waveform_batch(tiny_corpus)
    out = tf.saved_model.load(str(attacker_dir)).signatures["perturb_waveform"](waveform=tf.constant(waves))
    audio = out["adversarial_waveform"].numpy()
    assert audio.shape == waves.shape and audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    config = FeatureConfig()
    rendered = clip_audio(render(tf.constant(waves), out["perturbation"], config)).numpy()
    np.testing.assert_allclose(audio, rendered, atol=1e-5)
    re_extracted = np.stack([extract(tf.constant(w), config).numpy() for w in audio])
    intended = out["adversarial_log_mel"].numpy()
    frames = (waves.shape[1] - 512) // 256 + 1
    unclipped = [i for i in range(len(waves)) if np.abs(rendered[i]).max() < 1.0]
    for i in unclipped:  # the round trip lands near the intended log-Mel where nothing clips
        assert np.median(np.abs(re_extracted[i] - intended[i])[:frames]) < 0.5
    scores = tf.saved_model.load(str(defence_dir)).signatures["classify"](log_mel=tf.constant(re_extracted))
    log_probs = defence((re_extracted - metadata.mean) / metadata.std, training=False).numpy()
    np.testing.assert_allclose(scores["probabilities"].numpy(), np.exp(log_probs), atol=1e-5)
    # and audio holds what a WAV file can: written by `predict`'s writer, it reads back
    from tfadvser.evaluation.audio_quality import wav_bytes
    import io
    back, rate = soundfile.read(io.BytesIO(wav_bytes(audio[0])), dtype="float32")
    assert rate == 16000 and np.abs(back - audio[0]).max() < 1e-4


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


def test_client_against_a_local_rest_stand_in(exported, tiny_corpus, tmp_path):
    _, _, _, _, attacker_dir, _ = exported
    _StandIn.model = tf.saved_model.load(str(attacker_dir))
    server = HTTPServer(("127.0.0.1", 0), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        path = sorted(tiny_corpus.glob("*.wav"))[0]
        outputs = perturb_file(url, "attacker", path)
        assert set(outputs) == {"adversarial_log_mel", "perturbation", "clean_log_mel",
                                "adversarial_waveform"}
        assert outputs["adversarial_waveform"].shape == (soundfile.info(str(path)).frames,)
        assert outputs["adversarial_log_mel"].shape == (373, 64)
        np.testing.assert_allclose(outputs["adversarial_log_mel"] - outputs["clean_log_mel"],
                                   outputs["perturbation"], atol=1e-4)
        with pytest.raises(TfadvserError, match="HTTP 400"):
            predict(url, "attacker", "serving_default", [{"log_mel": [[0.0] * 64] * 5}])
        # `tfadvser predict` writes the arrays and the adversarial audio as a WAV
        from click.testing import CliRunner

        from tfadvser_cli.main import main

        out = tmp_path / "predictions"
        result = CliRunner().invoke(main, ["predict", "--server", url, "--model", "attacker",
                                           "--out", str(out), str(path)])
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.iterdir()) == sorted(
            f"{path.stem}.{k}" for k in ("adversarial.wav", "adversarial_log_mel.npy",
                                         "clean_log_mel.npy", "perturbation.npy"))
        audio, rate = soundfile.read(str(out / f"{path.stem}.adversarial.wav"))
        assert rate == 16000 and len(audio) == len(outputs["adversarial_waveform"])
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
