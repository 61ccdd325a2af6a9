"""`tfadvser prepare` end to end through the command line, and the reader it feeds."""
import shutil
import struct

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from tfadvser.data.audio import read_mono_numpy
from tfadvser.config import FeatureConfig
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.errors import TfadvserError
from tfadvser.data.features import reference_fix_length, reference_log_mel
from tfadvser_cli.main import main

LABELS = ["anger", "disgust", "fear", "guilt", "happiness", "sadness", "surprise"]


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_metadata_describes_a_speaker_independent_split(tiny_data):
    meta = load_data(tiny_data).record
    assert meta["labels"] == LABELS  # DEMoS drops neutral by default
    assert meta["totals"] == {"train": 14, "dev": 7, "test": 7}
    assert all(n == 1 for split in ("dev", "test") for n in meta["counts"][split].values())
    speakers = [set(meta["speakers"][s]) for s in ("train", "dev", "test")]
    assert sum(len(s) for s in speakers) == len(set().union(*speakers)) == 4
    assert meta["feature_config"] == FeatureConfig().to_dict()
    assert meta["skipped"] == [] and meta["truncated"]["count"] == 0
    assert set(meta["versions"]) >= {"tensorflow", "tensorflow_io", "librosa", "numpy", "tfadvser"}
    assert len(meta["fingerprint"]) == 64
    assert meta["shards"]["train"] == ["train-00000-of-00001.tfrecord"]
    assert (tiny_data / "train-00000-of-00001.tfrecord").is_file()


def test_records_hold_the_reference_features(tiny_data, tiny_corpus):
    """Round trip: what the reader returns unstandardised equals the scipy + librosa
    extraction of the same file (resampled files compared loosely: other resampler)."""
    dataset = make_dataset(tiny_data, "test", batch_size=64, standardize=False, include_info=True)
    batch = next(iter(dataset))
    config = FeatureConfig()
    checked = 0
    for log_mel, path, label in zip(batch["log_mel"].numpy(), batch["path"].numpy(),
                                    batch["label"].numpy()):
        path = tiny_corpus / path.decode()
        assert f"_{LABELS[label][:3]}" in path.name
        if soundfile.info(str(path)).samplerate != 16000:
            continue
        reference = reference_fix_length(
            reference_log_mel(read_mono_numpy(path, 16000), config), config)
        np.testing.assert_allclose(log_mel, reference, atol=1e-4)
        checked += 1
    assert checked >= 2


def test_reader_standardises_with_training_statistics(tiny_data):
    meta = load_data(tiny_data).record
    train = np.concatenate([x.numpy() for x, _ in make_dataset(tiny_data, "train", 8)])
    assert train.shape == (14, 373, 64)
    # train statistics applied to train: zero mean, unit std per mel bin, by construction
    np.testing.assert_allclose(train.mean(axis=(0, 1)), 0.0, atol=1e-3)
    np.testing.assert_allclose(train.std(axis=(0, 1)), 1.0, atol=1e-3)
    # ... and the same statistics (not dev's own) applied to dev
    raw_dev = np.concatenate([x.numpy() for x, _ in make_dataset(tiny_data, "dev", 8, standardize=False)])
    dev = np.concatenate([x.numpy() for x, _ in make_dataset(tiny_data, "dev", 8)])
    expected = (raw_dev - np.array(meta["statistics"]["mean"])) / np.array(meta["statistics"]["std"])
    np.testing.assert_allclose(dev, expected, atol=1e-4)


def test_reader_shuffles_deterministically_and_repeats(tiny_data):
    labels = lambda seed: [int(y) for _, ys in make_dataset(tiny_data, "train", 4, shuffle=True, seed=seed)
                           for y in ys]
    assert labels(1) == labels(1)
    assert sorted(labels(1)) == sorted(labels(2))
    repeated = make_dataset(tiny_data, "train", 4, repeat=True, drop_remainder=True)
    assert sum(1 for _ in repeated.take(10)) == 10
    # Without the autotuner: its thread can hold a dropped iterator for seconds (pipeline.py).
    assert repeated.options().autotune.enabled is False


def test_reader_refuses_other_feature_config_and_missing_data(tiny_data, tmp_path):
    with pytest.raises(TfadvserError, match=r"different feature config: n_mels=64 \(expected 40\)"):
        make_dataset(tiny_data, "train", 4, feature_config=FeatureConfig(n_mels=40))
    with pytest.raises(TfadvserError, match="run `tfadvser prepare` first"):
        make_dataset(tmp_path, "train", 4)
    with pytest.raises(TfadvserError, match="unknown split 'valid'"):
        make_dataset(tiny_data, "valid", 4)


def test_cli_prepare_and_refusal_to_overwrite(tiny_corpus, tmp_path):
    out = tmp_path / "data"
    result = run("prepare", tiny_corpus, "--corpus", "demos", "--out", out, "--keep-neutral", "--quiet")
    assert result.exit_code == 0, result.output
    assert "prepared 32 clips" in result.output
    assert load_data(out).record["labels"][-1] == "neutral"
    again = run("prepare", tiny_corpus, "--corpus", "demos", "--out", out, "--quiet")
    assert again.exit_code == 1
    assert again.output.strip() == f"Error: {out} already exists; pass --overwrite to replace it"
    replaced = run("prepare", tiny_corpus, "--corpus", "demos", "--out", out, "--quiet", "--overwrite")
    assert replaced.exit_code == 0 and len(load_data(out).record["labels"]) == 7
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temporary folder left behind


@pytest.fixture()
def broken_corpus(tiny_corpus, tmp_path):
    """The tiny corpus plus one file for each kind of bad input."""
    root = tmp_path / "broken"
    shutil.copytree(tiny_corpus, root)
    (root / "NP_f_01_ang09a.wav").write_bytes(b"")  # empty
    good = (root / "PR_f_01_ang01b.wav").read_bytes()
    (root / "NP_f_01_dis09a.wav").write_bytes(good[: len(good) // 3])  # truncated data chunk
    (root / "NP_m_02_fea09a.wav").write_bytes(b"this is not audio at all" * 10)  # not audio
    soundfile.write(root / "NP_m_02_gui09a.wav", np.zeros(300), 16000, subtype="PCM_16")  # < 1 window
    nan = np.full(8000, 0.1, np.float32)
    nan[100] = np.nan
    soundfile.write(root / "NP_f_03_hap09a.wav", nan, 16000, subtype="FLOAT")  # NaN samples
    # MPEG audio inside a RIFF/WAVE wrapper (format tag 0x0055): libsndfile does not read it
    fmt = struct.pack("<HHIIHH", 0x55, 1, 16000, 4000, 1, 0)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 400) + bytes(400)
    (root / "NP_f_03_sad09a.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    (root / "NP_m_04_zzz01a.wav").write_bytes(good)  # unknown emotion code
    return root


EXPECTED_REASONS = {
    "NP_f_01_ang09a.wav": "empty file (0 bytes)",
    "NP_f_01_dis09a.wav": "truncated or corrupt audio data",
    "NP_m_02_fea09a.wav": "unreadable or unsupported audio format",
    "NP_m_02_gui09a.wav": "too short: 300 samples at 16000 Hz",
    "NP_f_03_hap09a.wav": "contains NaN or infinite samples",
    "NP_f_03_sad09a.wav": "unreadable or unsupported audio format",
    "NP_m_04_zzz01a.wav": "unknown emotion code in DEMoS file name",
}


def test_bad_inputs_are_skipped_with_reasons(broken_corpus, tmp_path):
    out = tmp_path / "out"
    result = run("prepare", broken_corpus, "--corpus", "demos", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    skipped = {item["path"]: item["reason"] for item in load_data(out).record["skipped"]}
    assert set(skipped) == set(EXPECTED_REASONS)
    for name, reason in EXPECTED_REASONS.items():
        assert skipped[name].startswith(reason), (name, skipped[name])
        assert f"skipped {name}: {reason}" in result.output
    assert load_data(out).record["totals"] == {"train": 14, "dev": 7, "test": 7}


def test_strict_fails_and_writes_nothing(broken_corpus, tmp_path):
    out = tmp_path / "out"
    result = run("prepare", broken_corpus, "--corpus", "demos", "--out", out, "--quiet", "--strict")
    assert result.exit_code == 1
    assert result.output.startswith("Error: --strict: ")
    assert "NP_f_01_ang09a.wav: empty file (0 bytes)" in result.output
    assert list(tmp_path.iterdir()) == [broken_corpus]


def test_strict_catches_failures_found_while_decoding(tiny_corpus, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(tiny_corpus, root)
    soundfile.write(root / "NP_m_02_gui09a.wav", np.zeros(300), 16000, subtype="PCM_16")
    result = run("prepare", root, "--corpus", "demos", "--out", tmp_path / "out", "--quiet", "--strict")
    assert result.exit_code == 1 and "NP_m_02_gui09a.wav: too short" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_long_clips_are_truncated_and_counted(tiny_corpus, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(tiny_corpus, root)
    audio, rate = soundfile.read(root / "PR_f_01_ang01b.wav", always_2d=True)
    soundfile.write(root / "PR_f_01_ang05b.wav", np.tile(audio[:, 0], 5), rate)  # 7.5-10 s
    result = run("prepare", root, "--corpus", "demos", "--out", tmp_path / "head", "--quiet")
    assert result.exit_code == 0, result.output
    assert load_data(tmp_path / "head").record["truncated"] == {
        "policy": "head", "count": 1, "files": ["PR_f_01_ang05b.wav"]}
    result = run("prepare", root, "--corpus", "demos", "--out", tmp_path / "err", "--quiet",
                 "--long-clips", "error")
    assert result.exit_code == 0, result.output
    skipped = load_data(tmp_path / "err").record["skipped"]
    assert [s["path"] for s in skipped] == ["PR_f_01_ang05b.wav"]
    assert skipped[0]["reason"].startswith("too long: ")
    assert load_data(tmp_path / "err").record["truncated"]["count"] == 0


def test_a_class_lost_to_bad_files_is_named(tiny_corpus, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(tiny_corpus, root)
    for path in root.glob("*_sur*.wav"):
        path.write_bytes(b"")
    result = run("prepare", root, "--corpus", "demos", "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 1
    assert "has no surprise" in result.output and not (tmp_path / "out").exists()


def test_too_few_speakers_is_a_clear_error(tiny_corpus, tmp_path):
    root = tmp_path / "two"
    root.mkdir()
    for path in tiny_corpus.glob("*_0[12]_*.wav"):
        shutil.copy(path, root)
    result = run("prepare", root, "--corpus", "demos", "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 1
    assert "Error: the corpus has 2 speaker(s); a speaker-independent train/dev/test split needs at least 3" \
        in result.output


def test_usage_errors_are_one_line(tiny_corpus, tmp_path):
    result = run("prepare", tiny_corpus, "--corpus", "demos", "--out", tmp_path / "o",
                 "--dev-fraction", "0.9")
    assert result.exit_code == 2 and "fractions must be in (0, 1)" in result.output
    result = run("prepare", tiny_corpus, "--corpus", "timit", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "Invalid value for '--corpus'" in result.output


def test_split_lists_from_the_command_line(tiny_corpus, tmp_path):
    names = sorted(p.name for p in tiny_corpus.glob("*.wav") if "_neu" not in p.name)
    lists = tmp_path / "lists"
    lists.mkdir()
    for split, speaker in (("train", "01"), ("dev", "02"), ("test", "03")):
        (lists / f"{split}.txt").write_text("\n".join(n for n in names if f"_{speaker}_" in n))
    out = tmp_path / "out"
    result = run("prepare", tiny_corpus, "--corpus", "demos", "--out", out, "--quiet",
                 "--split-lists", lists)
    assert result.exit_code == 0, result.output
    meta = load_data(out).record
    assert meta["speakers"] == {"train": ["01"], "dev": ["02"], "test": ["03"]}
    assert meta["split"]["method"] == "lists"
    assert sum("not in any split list" in s["reason"] for s in meta["skipped"]) == 7


def test_help_explains_itself():
    result = run("--help")
    assert result.exit_code == 0 and "prepare" in result.output and "synth" in result.output
    assert "373 frames" in run("prepare", "--help").output
