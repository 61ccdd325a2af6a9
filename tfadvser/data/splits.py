"""Speaker-independent train/dev/test partitions.

By default speakers (not clips) are shuffled and dealt to test, dev and train, alternating
genders so each split gets a balanced share where gender is known. Alternatively the user
supplies split lists, like the original's fold files. Either way no speaker may sit in two
splits and every class must appear in every split; when one does not, the error says which
class is missing where.
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from tfadvser.config import SplitConfig
from tfadvser.data.corpora import Clip, Problem
from tfadvser.errors import TfadvserError
from tfadvser.data.records import SPLITS

# Reshuffles tried before giving up on a split that has every class everywhere.
MAX_ATTEMPTS = 200


def _deal_speakers(speakers: dict[str, str | None], config: SplitConfig,
                   rng: np.random.Generator) -> dict[str, str]:
    """speaker -> split. Genders alternate in the dealing order, so a prefix is balanced."""
    by_gender = defaultdict(list)
    for speaker, gender in sorted(speakers.items()):
        by_gender[gender or "?"].append(speaker)
    queues = []
    for gender in sorted(by_gender):
        members = list(by_gender[gender])
        rng.shuffle(members)
        queues.append(members)
    order = [s for group in itertools.zip_longest(*queues) for s in group if s is not None]
    n = len(order)
    n_test = max(1, round(config.test_fraction * n))
    n_dev = max(1, round(config.dev_fraction * n))
    assignment = {}
    for i, speaker in enumerate(order):
        assignment[speaker] = "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
    return assignment


def split_by_speaker(clips: Sequence[Clip], labels: Sequence[str],
                     config: SplitConfig) -> dict[str, list[Clip]]:
    """Speaker-independent {"train", "dev", "test"} partition of `clips`: about
    dev_fraction and test_fraction of the speakers each, genders alternated, seeded by
    `config.seed`, retried until every class of `labels` is in every split. Raises
    TfadvserError with fewer than three speakers or when no split holds every class."""
    speakers = {}
    for clip in clips:
        speakers.setdefault(clip.speaker, clip.gender)
    if len(speakers) < 3:
        raise TfadvserError(
            f"the corpus has {len(speakers)} speaker(s); a speaker-independent "
            "train/dev/test split needs at least 3")
    rng = np.random.default_rng(config.seed)
    missing = []
    for _ in range(MAX_ATTEMPTS):
        split_of = _deal_speakers(speakers, config, rng)
        splits = _group(clips, lambda c: split_of[c.speaker])
        missing = missing_classes(splits, labels)
        if not missing:
            return splits
    raise TfadvserError(
        f"no speaker-independent split in {MAX_ATTEMPTS} tries has every class in every "
        f"split; the last one lacked {_describe(missing)}. Add speakers, or give split lists")


def split_from_lists(clips: Sequence[Clip], labels: Sequence[str], lists_dir: Path
                     ) -> tuple[dict[str, list[Clip]], list[Problem]]:
    """Split lists `train.txt`, `dev.txt`, `test.txt` in `lists_dir`: one file name per line
    (first tab-separated column, as in the original fold files). Clips in no list are
    reported as problems."""
    split_of_name = {}
    for split in SPLITS:
        path = Path(lists_dir) / f"{split}.txt"
        if not path.is_file():
            raise TfadvserError(f"{path}: split list not found (need train.txt, dev.txt, test.txt)")
        for line in path.read_text(encoding="utf-8").splitlines():
            name = Path(line.split("\t")[0].strip()).name
            if not name:
                continue
            if split_of_name.setdefault(name, split) != split:
                raise TfadvserError(f"{path}: {name} is listed in both {split_of_name[name]} and {split}")
    kept, problems = [], []
    for clip in clips:
        if clip.path.name in split_of_name:
            kept.append(clip)
        else:
            problems.append(Problem(clip.path, f"not in any split list in {lists_dir}"))
    splits = _group(kept, lambda c: split_of_name[c.path.name])
    seen = defaultdict(set)
    for split, members in splits.items():
        for clip in members:
            seen[clip.speaker].add(split)
    shared = sorted(s for s, where in seen.items() if len(where) > 1)
    if shared:
        raise TfadvserError(f"{lists_dir}: speaker(s) {', '.join(shared[:5])} appear in more than "
                            "one split list; the split would not be speaker-independent")
    check_classes(splits, labels)
    return splits, problems


def missing_classes(splits: dict[str, list[Clip]], labels: Sequence[str]) -> list[tuple[str, str]]:
    """(split, label) pairs of `labels` that have no clip in that split."""
    present = {(split, c.label) for split, members in splits.items() for c in members}
    return [(s, label) for s in SPLITS for label in labels if (s, label) not in present]


def check_classes(splits: dict[str, list[Clip]], labels: Sequence[str]) -> None:
    """Raise if any class is absent from any split (UAR is undefined without it)."""
    missing = missing_classes(splits, labels)
    if missing:
        raise TfadvserError(f"every class must appear in every split, but {_describe(missing)}")


def _group(clips, key) -> dict[str, list[Clip]]:
    groups = {split: [] for split in SPLITS}
    for clip in clips:
        groups[key(clip)].append(clip)
    return groups


def _describe(missing: list[tuple[str, str]]) -> str:
    by_split = defaultdict(list)
    for split, label in missing:
        by_split[split].append(label)
    return "; ".join(f"{split} has no {', '.join(labels)}" for split, labels in by_split.items())
