"""The public Python API (`import tfadvser`): instant to import, every name resolves, the
README's Python example runs on a smoke run, and each function gives what the library's
own scoring gives."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tfadvser
from tfadvser.errors import TfadvserError

README = Path(__file__).resolve().parents[1] / "README.md"
ATTACKER = "single-cnn4-eps0.008-snr30"


def test_import_loads_no_tensorflow_and_names_resolve_on_use():
    script = ("import sys, tfadvser\n"
              "heavy = sorted(m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules)\n"
              "print(heavy, tfadvser.__version__, sorted(set(tfadvser.__all__) - set(dir(tfadvser))))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"[] {tfadvser.__version__} []"


def test_every_name_in_all_resolves_with_a_docstring():
    for name in tfadvser.__all__:
        value = getattr(tfadvser, name)
        assert value is not None, name
        if callable(value) and name != "TfadvserError":
            assert value.__doc__ and len(value.__doc__) > 80, name
    with pytest.raises(AttributeError, match="no attribute 'load_runs'"):
        tfadvser.load_runs  # noqa: B018
    with pytest.raises(TfadvserError, match="synthesize: difficulty must be in \\[0, 1\\], got 2"):
        tfadvser.synthesize("unused", difficulty=2.0)


@pytest.fixture(scope="module")
def smoke_run(tiny_data, tmp_path_factory):
    """CNN-4 and the single-task attacker against it, at the smoke profile, through the API."""
    run_dir = tmp_path_factory.mktemp("api_run")
    tfadvser.train_defences(tiny_data, run_dir, ["cnn4"], profile="smoke", verbose=0)
    record = tfadvser.train_attacker(tiny_data, run_dir, "single", ["cnn4"], profile="smoke",
                                     verbose=0)
    assert record["label"] == ATTACKER
    return run_dir


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1, "the README holds one Python example"
    return blocks[0]


def test_the_readme_example_runs_on_a_smoke_run(smoke_run, tiny_corpus, tmp_path, monkeypatch,
                                                capsys):
    """The example's paths are the main job's: here they point at the smoke run and corpus."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "synth").symlink_to(smoke_run)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synth").symlink_to(tiny_corpus)
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), str(README), "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    found = re.search(r"CNN-4 UAR \d+\.\d% -> \d+\.\d% \(95 % CI \d+\.\d%-\d+\.\d%\), "
                      r"L∞ (\d\.\d{3}), SNR (\d+\.\d) dB", printed)
    # the budget: L∞ within 0.008, SNR at or above the 30 dB floor
    assert found and float(found.group(1)) <= 0.008 and float(found.group(2)) >= 30.0, printed
    assert re.search(r"waveform SNR -?\d+\.\d dB", printed), printed


def test_run_lists_what_it_holds_and_refuses_what_it_lacks(smoke_run, tmp_path):
    run = tfadvser.load_run(smoke_run)
    assert run.defences == ["cnn4"] and run.attackers == [ATTACKER]
    assert run.profile.name == "smoke" and run.data.n_classes == 7
    with pytest.raises(TfadvserError, match="is not a run folder"):
        tfadvser.load_run(tmp_path)
    with pytest.raises(TfadvserError, match=f"no attacker 'multi-cnn4' .*trained sequences: {ATTACKER}"):
        run.attacker("multi-cnn4")
    with pytest.raises(TfadvserError, match="'vgg16' is not trained"):
        run.defence("vgg16")
    with pytest.raises(TfadvserError, match="unknown split 'eval'"):
        run.clips("eval")
    x, y = run.clips("test")
    sub_x, sub_y = run.clips("test", 3, seed=1)
    assert x.shape == (7, 373, 64) and sub_x.shape == (3, 373, 64) and y.dtype == np.int64
    rows = [int(np.flatnonzero((x == clip).all(axis=(1, 2)))[0]) for clip in sub_x]
    assert rows == sorted(rows) and list(y[rows]) == list(sub_y)  # a subset, in split order


def test_perturb_and_score_agree_with_the_evaluation(smoke_run):
    """`score` on the whole test split gives the numbers `tfadvser evaluate` stores."""
    run = tfadvser.load_run(smoke_run)
    attacker, cnn4 = run.attacker(ATTACKER), run.defence("cnn4")
    x, y = run.clips("test")
    x_adv, eta = tfadvser.perturb(attacker, x)
    assert np.allclose(x_adv - x, eta, atol=1e-6) and np.abs(eta).max() <= 0.008 + 1e-6
    scores = tfadvser.score(cnn4, attacker, x, y, run)
    written = tfadvser.evaluate(smoke_run, audio_clips=0, listen=0, baselines=False)
    results = json.loads((Path(written["dir"]) / "results.json").read_text())
    key = next(s for s in results["sequences"] if s["label"] == ATTACKER)["tasks"][0]["key"]
    stored = results["tasks"][key]["test"]["against"]["cnn4"]
    for field in ("clean_uar", "adversarial_uar", "adversarial_uar_ci", "success_rate"):
        assert scores[field] == pytest.approx(stored[field]), field
    assert scores["perturbation"]["snr_db"] == pytest.approx(
        results["tasks"][key]["test"]["perturbation"]["snr_db"], abs=1e-4)
    clean = tfadvser.score(cnn4, None, x, y, run)
    assert clean["adversarial_uar"] == clean["clean_uar"] == pytest.approx(scores["clean_uar"])
    assert clean["perturbation"]["linf"] == 0.0


def test_score_by_hand_on_a_model_that_reads_one_bin_per_class(tiny_data):
    """Clip i lights bin i, so the model says class i; the attack lights bin 0 by 2.0 in every
    clip, so every clip becomes class 0: recall 1 for class 0, 0 for the other six."""
    import keras

    inputs = keras.Input((373, 64))
    pooled = keras.layers.GlobalAveragePooling1D()(inputs)
    dense = keras.layers.Dense(7, use_bias=False)
    model = keras.Model(inputs, keras.ops.log_softmax(dense(pooled)))
    dense.set_weights([np.eye(64, 7, dtype=np.float32)])
    x = np.zeros((7, 373, 64), np.float32)
    x[np.arange(7), :, np.arange(7)] = 1.0
    y = np.arange(7)

    def light_bin_0(batch):
        eta = np.zeros_like(batch)
        eta[..., 0] = 2.0
        return eta

    scores = tfadvser.score(model, light_bin_0, x, y, tiny_data)
    assert scores["clean_uar"] == 1.0
    assert scores["adversarial_uar"] == pytest.approx(1 / 7)
    assert scores["success_rate"] == pytest.approx(6 / 7)
    assert scores["perturbation"]["linf"] == 2.0
    assert scores["perturbation"]["eta_mean"] == pytest.approx(2.0 / 64)
    assert scores["perturbation"]["l2"] == pytest.approx(2.0 * np.sqrt(373))
    with pytest.raises(TfadvserError, match="shape \\[clips, frames, mel bins\\], got \\(373, 64\\)"):
        tfadvser.score(model, light_bin_0, x[0], y[:1], tiny_data)
    with pytest.raises(TfadvserError, match="7 log-Mels but 6 labels"):
        tfadvser.score(model, light_bin_0, x, y[:6], tiny_data)
    with pytest.raises(TfadvserError, match="perturbation of shape \\(7, 64\\)"):
        tfadvser.perturb(lambda batch: batch[:, 0], x)


def test_perturb_waveform_renders_the_bounded_perturbation(smoke_run, tiny_corpus, tmp_path):
    run = tfadvser.load_run(smoke_run)
    attacker = run.attacker(ATTACKER)
    audio = tfadvser.read_audio(tiny_corpus / "PR_f_01_ang01b.wav")
    assert audio.dtype == np.float32 and audio.ndim == 1 and 1.5 * 16000 <= len(audio) <= 2.0 * 16000 + 1
    heard = tfadvser.perturb_waveform(attacker, audio, run)
    assert heard["adversarial_waveform"].shape == audio.shape
    assert np.abs(heard["adversarial_waveform"]).max() <= 1.0
    assert heard["clean_log_mel"].shape == heard["adversarial_log_mel"].shape == (373, 64)
    assert np.allclose(heard["adversarial_log_mel"] - heard["clean_log_mel"],
                       heard["perturbation"], atol=1e-4)
    # |eta| <= epsilon in standardised units: the raw perturbation is within epsilon * std
    assert (np.abs(heard["perturbation"]) <= 0.008 * run.data.std + 1e-5).all()
    assert np.isfinite(heard["waveform_snr_db"]) and heard["waveform_snr_db"] > 10
    batch = tfadvser.perturb_waveform(attacker, np.stack([audio, audio]), run)
    assert batch["adversarial_waveform"].shape == (2, len(audio))
    assert np.allclose(batch["adversarial_waveform"][1], heard["adversarial_waveform"], atol=1e-5)
    with pytest.raises(TfadvserError, match="at least 512 samples, got shape \\(100,\\)"):
        tfadvser.perturb_waveform(attacker, audio[:100], run)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    with pytest.raises(TfadvserError, match="notes.wav: "):
        tfadvser.read_audio(not_audio)
