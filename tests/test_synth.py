"""The built-in corpus generator."""
import hashlib

import numpy as np
import pytest
import soundfile

from tfadvser.data.corpora import read_corpus
from tfadvser.data.synth import synthesize_corpus
from tests.conftest import TINY


def digest(paths):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_deterministic_for_a_seed(tiny_corpus, tmp_path):
    again = synthesize_corpus(tmp_path, **TINY)
    assert digest(again) == digest(sorted(tiny_corpus.glob("*.wav")))
    other = synthesize_corpus(tmp_path / "other", **{**TINY, "seed": TINY["seed"] + 1})
    assert digest(other) != digest(again)


def test_names_read_by_the_demos_reader(tiny_corpus):
    listing = read_corpus("demos", tiny_corpus, keep_neutral=True)
    assert not listing.problems
    assert len(listing.clips) == 4 * 8
    assert {c.gender for c in listing.clips} == {"f", "m"}
    assert {c.speaker for c in listing.clips} == {"01", "02", "03", "04"}
    assert {c.label for c in listing.clips} == set(listing.labels)


def test_formats_exercise_resampling_and_downmixing(tiny_corpus):
    infos = [soundfile.info(str(p)) for p in sorted(tiny_corpus.glob("*.wav"))]
    assert {i.samplerate for i in infos} == {16000, 22050, 44100}
    assert {i.channels for i in infos} == {1, 2}
    assert {i.subtype for i in infos} == {"PCM_16"}
    assert all(1.5 <= i.duration <= 2.0 + 1e-3 for i in infos)


def test_default_durations_within_range(tmp_path):
    paths = synthesize_corpus(tmp_path, n_speakers=2, utterances=2, difficulty=0.5, seed=0)
    durations = [soundfile.info(str(p)).duration for p in paths]
    assert min(durations) >= 1.5 and max(durations) <= 7.0 + 1e-3
    assert max(durations) - min(durations) > 1.0


def rms_db(path):
    audio, _ = soundfile.read(str(path), always_2d=True)
    return 20 * np.log10(np.sqrt(np.mean(audio[:, 0] ** 2)))


def test_emotions_carry_their_cues(tmp_path):
    """At difficulty 0 the emotion effects are at full strength: anger (+8 dB target) is
    clearly louder than sadness (-7 dB target), despite speaker and utterance variation."""
    paths = synthesize_corpus(tmp_path, n_speakers=4, utterances=2, difficulty=0.0, seed=5,
                              min_seconds=1.5, max_seconds=2.5)
    level = lambda code: np.mean([rms_db(p) for p in paths if f"_{code}" in p.name])
    assert level("ang") - level("sad") > 8.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="difficulty"):
        synthesize_corpus("/nonexistent", difficulty=1.5)
