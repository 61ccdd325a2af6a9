"""Attacker data: a corpus of the attacker's own to train the generator on (`--attacker-data`).

By default a generator trains on its defences' training split, as in the paper. A black-box
attacker is more honestly trained on speech its victims never heard: another prepared
folder whose speakers appear in no split of the defences' data. That is checked here: a
voice in both the attacker's corpus and the evaluation's test split would let the attacker
learn the test speakers. The folder's clips are standardised with the defences' training
statistics (what the defences were trained to see), and every split of it is read, since
nothing is evaluated on it.

A labelled folder must hold the defences' emotions in the same order (a class index means
the same emotion to both); an unlabelled one (`prepare --corpus unlabelled`, label -1)
serves the label-free losses only (`config.LABEL_FREE_LOSSES`). `synth
--first-speaker 31` writes a built-in corpus of new speakers for the main job's 30.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfadvser.data.corpora import NAMED
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import DataFolder, load_data
from tfadvser.data.records import SPLITS
from tfadvser.errors import TfadvserError


@dataclasses.dataclass(frozen=True)
class AttackerData:
    """A checked attacker corpus (`attacker_data`) for the defences' data `data`.

    `splits`: the folder's splits that hold clips (all are read); `speakers`: how many
    speakers it has; `speaker_check`: how disjointness from the defences' speakers was
    established ("names compared", or why names cannot be compared)."""

    folder: DataFolder
    data: DataFolder
    splits: tuple[str, ...]
    speakers: int
    speaker_check: str

    @property
    def labelled(self) -> bool:
        return self.folder.labelled

    @property
    def clips(self) -> int:
        return sum(self.folder.record["totals"][s] for s in self.splits)

    def batches(self, batch_size: int, seed: int, repeat: bool,
                drop_remainder: bool) -> tf.data.Dataset:
        """Seeded, shuffled batches of (log_mel [B, frames, n_mels], label [B]) over every
        split of the folder, standardised with the defences' statistics; label -1 when
        unlabelled."""
        return make_dataset(self.folder, self.splits, batch_size, shuffle=True, seed=seed,
                            repeat=repeat, drop_remainder=drop_remainder, statistics=self.data)

    def record(self) -> dict:
        """What a sequence record keeps of it (and what its task keys hash: the fingerprint)."""
        return {"path": str(self.folder.path), "fingerprint": self.folder.fingerprint,
                "clips": self.clips, "speakers": self.speakers, "labelled": self.labelled,
                "speaker_check": self.speaker_check}

    @property
    def tag(self) -> str:
        """A name part that sets its attackers apart: `-adata` and 8 hex digits of the
        fingerprint."""
        return f"-adata{self.folder.fingerprint[:8]}"


def attacker_data(path, data) -> AttackerData:
    """The prepared folder at `path` as attacker data for the defences' data `data` (a folder,
    its path or `DataFolder`).

    Raises TfadvserError, naming the folder and the problem, when it is not a prepared folder,
    is the defences' own data, was prepared with another feature config, holds other labels
    than the defences' (when labelled), holds no clips, or shares a speaker with any split of
    the defences' data. Speaker names are compared unless the two folders come from two
    different named corpora (e.g. EmoDB and DEMoS both number speakers from 01 or 03: the
    numbers name different people)."""
    data = load_data(data)
    folder = load_data(path)
    where = f"--attacker-data {folder.path}"
    if folder.fingerprint == data.fingerprint:
        raise TfadvserError(f"{where}: this is the defences' own data ({data.path}); give a folder "
                            "prepared from other speakers (e.g. `tfadvser synth DIR --first-speaker 31`)")
    try:
        folder.check_feature_config(data.feature_config)
    except TfadvserError as exc:
        raise TfadvserError(f"{where}: {exc}; prepare it with the defences' features") from None
    if folder.labelled and folder.labels != data.labels:
        raise TfadvserError(f"{where}: its labels ({', '.join(folder.labels)}) are not the defences' "
                            f"({', '.join(data.labels)}) in the same order; prepare it with the same "
                            "emotions, or as unlabelled (`prepare --corpus unlabelled`) for the "
                            "label-free losses")
    splits = tuple(s for s in SPLITS if folder.record["totals"][s] > 0)
    if not splits:
        raise TfadvserError(f"{where}: the folder holds no clips")
    own = {s for split in SPLITS for s in folder.record["speakers"][split]}
    check = _speaker_check(folder, data, own)
    return AttackerData(folder, data, splits, len(own), check)


def _speaker_check(folder: DataFolder, data: DataFolder, own: set[str]) -> str:
    kinds = (folder.record["corpus"]["kind"], data.record["corpus"]["kind"])
    if kinds[0] != kinds[1] and all(k in NAMED for k in kinds):
        return f"different corpora ({kinds[0]}, {kinds[1]}): speaker names not comparable"
    shared: dict[str, list[str]] = {}
    for split in SPLITS:
        for speaker in sorted(own & set(data.record["speakers"][split])):
            shared.setdefault(speaker, []).append(split)
    if shared:
        shown = ", ".join(f"{s} ({'/'.join(splits)})" for s, splits in list(shared.items())[:8])
        more = f" and {len(shared) - 8} more" if len(shared) > 8 else ""
        raise TfadvserError(f"--attacker-data {folder.path}: {len(shared)} speaker(s) also in the "
                            f"defences' data {data.path}: {shown}{more}. The attacker's corpus must "
                            "hold other speakers (the defences are evaluated on theirs)")
    return "names compared: disjoint"

