"""The attacker's own corpus (`--attacker-data`): synthesising new speakers, preparing
unlabelled audio, the checks that keep the attacker off the defences' speakers, and
training on it through the command line."""
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from conftest import TINY
from tfadvser.attack.attacker import _labels_or_clean
from tfadvser.config import PROFILES, FeatureConfig
from tfadvser.data.attacker_data import AttackerData, attacker_data
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.data.prepare import prepare
from tfadvser.data.synth import synthesize_corpus
from tfadvser.defence.training import train_defence
from tfadvser.errors import TfadvserError
from tfadvser_cli.main import main


@pytest.fixture(scope="module")
def new_speakers(tmp_path_factory):
    """Speakers 5-8 of the tiny corpus's seed: four voices the tiny defences never heard."""
    root = tmp_path_factory.mktemp("attacker_corpus")
    synthesize_corpus(root, **{**TINY, "first_speaker": 5})
    return root


@pytest.fixture(scope="module")
def attacker_folder(new_speakers, tmp_path_factory):
    out = tmp_path_factory.mktemp("attacker_records") / "adata"
    prepare(new_speakers, "demos", out, progress=False)
    return out


def unlabelled_copy(corpus, root, speakers):
    """`root/<speaker>/<file>` copies of the corpus's clips of `speakers` (two digits)."""
    for path in sorted(corpus.glob("*.wav")):
        speaker = path.name.split("_")[2]
        if speaker in speakers:
            (root / speaker).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, root / speaker / path.name)
    return root


def test_first_speaker_continues_the_seeds_population(tiny_corpus, tmp_path):
    # Speakers 3 and 4 of a seed are the same voices whether the corpus starts at 1 or at 3.
    written = synthesize_corpus(tmp_path, **{**TINY, "n_speakers": 2, "first_speaker": 3})
    assert sorted({p.name.split("_")[2] for p in written}) == ["03", "04"]
    for path in written:
        assert path.read_bytes() == (tiny_corpus / path.name).read_bytes(), path.name
    with pytest.raises(ValueError, match="numbered 1-99"):
        synthesize_corpus(tmp_path / "x", n_speakers=3, first_speaker=98)


def test_unlabelled_corpus_prepares_into_the_training_split(tiny_corpus, tmp_path):
    root = unlabelled_copy(tiny_corpus, tmp_path / "audio", {"01", "02"})
    (root / "stray.wav").write_bytes((root / "01" / next((root / "01").iterdir()).name).read_bytes())
    metadata = prepare(root, "unlabelled", tmp_path / "records", progress=False)
    assert metadata["labelled"] is False and metadata["labels"] == []
    assert metadata["totals"] == {"train": 16, "dev": 0, "test": 0}
    assert metadata["speakers"]["train"] == ["01", "02"]
    assert [s["reason"] for s in metadata["skipped"]] == ["expected <speaker>/<file> (unlabelled layout)"]
    labels = np.concatenate([y.numpy() for _, y in make_dataset(tmp_path / "records", "train", 8)])
    assert labels.tolist() == [-1] * 16
    with pytest.raises(TfadvserError, match="not split"):
        prepare(root, "unlabelled", tmp_path / "other", split_lists=tmp_path, progress=False)
    result = CliRunner().invoke(main, ["prepare", str(root), "--corpus", "unlabelled", "--out",
                                       str(tmp_path / "cli"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "train 16 (2 speakers), dev 0 (0 speakers)" in result.output
    assert "labels: none (unlabelled" in result.output


def test_a_disjoint_corpus_is_accepted_and_read_with_the_defences_statistics(
        attacker_folder, tiny_data):
    corpus = attacker_data(attacker_folder, tiny_data)
    assert corpus.speaker_check == "names compared: disjoint"
    assert corpus.speakers == 4 and corpus.splits == ("train", "dev", "test") and corpus.labelled
    assert corpus.clips == 28 and corpus.tag == "-adata" + load_data(attacker_folder).fingerprint[:8]
    # Every clip of every split, standardised with the defences' (not its own) statistics.
    raw = make_dataset(attacker_folder, ("train", "dev", "test"), 64, standardize=False)
    raw = np.concatenate([x.numpy() for x, _ in raw])
    seen = np.concatenate([x.numpy() for x, _ in corpus.batches(64, seed=0, repeat=False,
                                                                 drop_remainder=False)])
    data = load_data(tiny_data)
    assert seen.shape == (28, 373, 64)
    expected = np.sort(((raw - data.mean) / data.std).sum(axis=(1, 2)))
    np.testing.assert_allclose(np.sort(seen.sum(axis=(1, 2))), expected, rtol=1e-4)


def test_the_checks_name_the_folder_and_the_problem(tiny_corpus, new_speakers, tiny_data, tmp_path):
    with pytest.raises(TfadvserError, match="the defences' own data"):
        attacker_data(tiny_data, tiny_data)
    # Unlabelled copies of speakers 04 and 05: 04 is one of the defences' speakers.
    both = unlabelled_copy(tiny_corpus, tmp_path / "mixed", {"04"})
    unlabelled_copy(new_speakers, both, {"05"})
    prepare(both, "unlabelled", tmp_path / "mixed_records", progress=False)
    with pytest.raises(TfadvserError, match=r"mixed_records: 1 speaker\(s\) also in .*: 04 \("):
        attacker_data(tmp_path / "mixed_records", tiny_data)
    prepare(new_speakers, "demos", tmp_path / "neutral", keep_neutral=True, progress=False)
    with pytest.raises(TfadvserError, match="labels .*neutral.* are not the defences'"):
        attacker_data(tmp_path / "neutral", tiny_data)
    prepare(new_speakers, "demos", tmp_path / "mels32", feature_config=FeatureConfig(n_mels=32),
            progress=False)
    with pytest.raises(TfadvserError, match="mels32: .*n_mels=32"):
        attacker_data(tmp_path / "mels32", tiny_data)
    with pytest.raises(TfadvserError, match="not a prepared data folder"):
        attacker_data(tmp_path / "missing", tiny_data)


def test_unlabelled_clips_count_as_flipped_against_the_clean_prediction():
    clean = tf.math.log(tf.constant([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1]]))
    assert _labels_or_clean(tf.constant([-1, 2]), clean).numpy().tolist() == [1, 2]


@pytest.fixture(scope="module")
def defended(tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("adata_run")
    train_defence(tiny_data, "cnn4", PROFILES["smoke"], run_dir, verbose=0)
    return run_dir


def attack(data, run_dir, *args):
    return CliRunner().invoke(main, ["train", "attacker", "--data", str(data), "--profile", "smoke",
                                     "--out", str(run_dir), "--quiet", "--defences", "cnn4",
                                     *[str(a) for a in args]])


def test_train_attacker_on_its_own_corpus(defended, tiny_data, attacker_folder, new_speakers,
                                          tmp_path, monkeypatch):
    read = []
    batches = AttackerData.batches
    monkeypatch.setattr(AttackerData, "batches",
                        lambda self, *a, **k: read.append(self.folder.path) or batches(self, *a, **k))
    result = attack(tiny_data, defended, "--method", "single", "--attacker-data", attacker_folder)
    assert result.exit_code == 0, result.output
    assert read and set(read) == {attacker_folder}
    tag = "-adata" + load_data(attacker_folder).fingerprint[:8]
    label = f"single-cnn4-eps0.008-snr30{tag}"
    record = json.loads((defended / "attackers" / label / "sequence.json").read_text())
    assert record["attacker_data"]["clips"] == 28 and record["attacker_data"]["labelled"] is True
    assert attack(tiny_data, defended, "--method", "single").exit_code == 0
    plain = json.loads((defended / "attackers" / "single-cnn4-eps0.008-snr30" / "sequence.json").read_text())
    assert plain["tasks"][0]["key"] != record["tasks"][0]["key"]

    # Unlabelled: the label-free losses only, and no EWC.
    prepare(unlabelled_copy(new_speakers, tmp_path / "u", {"05", "06", "07"}), "unlabelled",
            tmp_path / "unlabelled", progress=False)
    result = attack(tiny_data, defended, "--method", "single", "--attacker-data", tmp_path / "unlabelled")
    assert result.exit_code == 1 and "is unlabelled, but the loss cw needs emotion labels" in result.output
    result = attack(tiny_data, defended, "--method", "single", "--loss", "feature-cos",
                    "--attacker-data", tmp_path / "unlabelled")
    assert result.exit_code == 0, result.output
    task = next((defended / "attackers" / "tasks").glob("*/task.json"), None)
    metrics = [json.loads(p.read_text())["final_train_metrics"]
               for p in (defended / "attackers" / "tasks").glob("*/task.json")]
    assert task is not None and all(0.0 <= m["success_rate"] <= 1.0 for m in metrics)
    result = attack(tiny_data, defended, "--method", "single", "--attacker-data", tmp_path / "nowhere")
    assert result.exit_code == 1 and "nowhere/metadata.json not found" in result.output
