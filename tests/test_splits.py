"""Speaker-independent splitting."""
from pathlib import Path

import pytest

from tfadvser.config import SplitConfig
from tfadvser.data.corpora import Clip
from tfadvser.errors import TfadvserError
from tfadvser.data.splits import split_by_speaker, split_from_lists

LABELS = ("anger", "sadness", "fear")


def corpus(n_speakers, labels=LABELS, per_label=2):
    return [Clip(Path(f"s{s:02d}_{label}_{i}.wav"), label, f"s{s:02d}", "f" if s % 2 else "m")
            for s in range(n_speakers) for label in labels for i in range(per_label)]


def test_no_speaker_in_two_splits_and_every_class_everywhere():
    clips = corpus(10)
    splits = split_by_speaker(clips, LABELS, SplitConfig(seed=7))
    speakers = {name: {c.speaker for c in members} for name, members in splits.items()}
    assert not (speakers["train"] & speakers["dev"] or speakers["train"] & speakers["test"]
                or speakers["dev"] & speakers["test"])
    assert [len(speakers[s]) for s in ("train", "dev", "test")] == [6, 2, 2]
    for members in splits.values():
        assert {c.label for c in members} == set(LABELS)
    assert sum(len(m) for m in splits.values()) == len(clips)


def test_genders_balanced_in_dev_and_test():
    splits = split_by_speaker(corpus(12), LABELS, SplitConfig(seed=1))
    for name in ("dev", "test"):
        genders = sorted({(c.speaker, c.gender) for c in splits[name]}, key=str)
        assert [g for _, g in genders].count("f") == [g for _, g in genders].count("m")


def test_deterministic_for_a_seed():
    a = split_by_speaker(corpus(10), LABELS, SplitConfig(seed=3))
    b = split_by_speaker(corpus(10), LABELS, SplitConfig(seed=3))
    assert a == b


def test_too_few_speakers():
    with pytest.raises(TfadvserError, match="has 2 speaker"):
        split_by_speaker(corpus(2), LABELS, SplitConfig())


def test_missing_class_is_named():
    clips = corpus(6, labels=("anger", "sadness"))
    clips.append(Clip(Path("only.wav"), "fear", "s00", "m"))  # fear: one speaker only
    with pytest.raises(TfadvserError, match=r"(train|dev|test) has no fear"):
        split_by_speaker(clips, LABELS, SplitConfig())


def test_bad_fractions():
    with pytest.raises(ValueError, match="fractions"):
        SplitConfig(dev_fraction=0.5, test_fraction=0.5)


def write_lists(root, **lists):
    for split, names in lists.items():
        (root / f"{split}.txt").write_text("".join(f"{n}\tlabel\n" for n in names))


def test_split_lists(tmp_path):
    clips = corpus(3, labels=("anger",), per_label=1) + [Clip(Path("extra.wav"), "anger", "s09")]
    write_lists(tmp_path, train=["s00_anger_0.wav"], dev=["s01_anger_0.wav"], test=["s02_anger_0.wav"])
    splits, problems = split_from_lists(clips, ("anger",), tmp_path)
    assert {k: [c.speaker for c in v] for k, v in splits.items()} == {
        "train": ["s00"], "dev": ["s01"], "test": ["s02"]}
    assert [p.path.name for p in problems] == ["extra.wav"]


def test_split_lists_sharing_a_speaker_are_refused(tmp_path):
    clips = corpus(3, labels=("anger",), per_label=2)
    write_lists(tmp_path, train=["s00_anger_0.wav"], dev=["s00_anger_1.wav"],
                test=["s02_anger_0.wav"])
    with pytest.raises(TfadvserError, match="s00 appear in more than one split"):
        split_from_lists(clips, ("anger",), tmp_path)


def test_split_lists_missing_file(tmp_path):
    write_lists(tmp_path, train=[], dev=[])
    with pytest.raises(TfadvserError, match="test.txt: split list not found"):
        split_from_lists(corpus(3), LABELS, tmp_path)
