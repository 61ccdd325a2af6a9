"""Shared fixtures: a tiny built-in corpus and its prepared TFRecords, made once per session."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from tfadvser.data.synth import synthesize_corpus  # noqa: E402

# Four speakers (2 f, 2 m) x 8 emotions x 1 utterance of 1.5-2 s: enough for a
# speaker-independent split with every class everywhere, small enough for seconds.
TINY = dict(n_speakers=4, utterances=1, difficulty=0.5, seed=3, min_seconds=1.5, max_seconds=2.0)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(root, **TINY)
    return root


@pytest.fixture(scope="session")
def tiny_data(tiny_corpus, tmp_path_factory):
    """tiny_corpus prepared with default features, through the library entry point."""
    from tfadvser.data.prepare import prepare

    out = tmp_path_factory.mktemp("records") / "tiny"
    prepare(tiny_corpus, "demos", out, progress=False)
    return out
