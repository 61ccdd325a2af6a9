"""A prepared data folder as one typed record, read once per process.

`prepare` writes `metadata.json` beside the shards; everything downstream (the tf.data
reader, training, evaluation, export, run binding) reads it through `load_data`, which
parses and checks the file once and hands out the same `DataFolder` until the file
changes.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tfadvser.config import FeatureConfig
from tfadvser.data.records import SPLITS, shard_paths
from tfadvser.errors import TfadvserError

METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class DataFolder:
    """What a prepared data folder holds.

    `mean` and `std` are the training split's per-mel-bin statistics, float32 arrays of
    shape (n_mels,), in raw log-Mel units (natural log of mel magnitude): the reader
    standardises every split with them. `fingerprint` is a SHA-256 over the input files,
    their labels and speakers and the feature config (see `prepare`); runs and defences are
    bound to it. `record` is the whole parsed metadata.json (counts, speakers, skipped
    files, warnings, versions) for reports.
    """

    path: Path
    labels: tuple[str, ...]
    feature_config: FeatureConfig
    mean: np.ndarray
    std: np.ndarray
    shards: Mapping[str, tuple[str, ...]]
    fingerprint: str
    record: Mapping[str, Any]

    @property
    def n_classes(self) -> int:
        """Number of emotion classes (labels)."""
        return len(self.labels)

    @property
    def labelled(self) -> bool:
        """False for a folder prepared from an unlabelled corpus (`prepare --corpus
        unlabelled`: attacker data, label index -1, every clip in the training split)."""
        return bool(self.record.get("labelled", True))

    @property
    def shape(self) -> tuple[int, int]:
        """(frames, mel bins) of every example, e.g. (373, 64)."""
        return self.feature_config.shape

    def shard_paths(self, split: str) -> list[Path]:
        """The split's shard files. Raises TfadvserError for an unknown split or when the
        folder holds another number of shards than metadata.json lists."""
        if split not in SPLITS:
            raise TfadvserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        paths = shard_paths(self.path, split)
        if len(paths) != len(self.shards[split]):
            raise TfadvserError(f"{self.path}: found {len(paths)} {split} shard(s), metadata "
                                f"lists {len(self.shards[split])}; the folder is incomplete, "
                                "prepare it again")
        return paths

    def check_feature_config(self, expected: FeatureConfig) -> None:
        """Raise TfadvserError naming every field in which the data's config differs."""
        if self.feature_config != expected:
            differences = ", ".join(
                f"{key}={value!r} (expected {getattr(expected, key)!r})"
                for key, value in self.feature_config.to_dict().items()
                if getattr(expected, key) != value)
            raise TfadvserError(f"{self.path} was prepared with a different feature config: "
                                f"{differences}")


def load_data(data) -> DataFolder:
    """The `DataFolder` at path `data` (a `DataFolder` is returned as it is).

    Parsed once per process and file version. Raises TfadvserError when the folder has no
    metadata.json, the file is not valid JSON, or it was written by another data format
    version.
    """
    if isinstance(data, DataFolder):
        return data
    path = Path(data) / METADATA_FILE
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise TfadvserError(f"{path} not found: {data} is not a prepared data folder "
                            "(run `tfadvser prepare` first)") from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _LOADED:
        _LOADED[key] = _parse(Path(data), path)
    return _LOADED[key]


def _parse(folder: Path, path: Path) -> DataFolder:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TfadvserError(f"{path}: not valid JSON ({exc})") from None
    if record.get("format_version") != FORMAT_VERSION:
        raise TfadvserError(f"{path}: data format version {record.get('format_version')!r}, "
                            f"this tfadvser reads version {FORMAT_VERSION}; prepare the data again")
    try:
        stats = record["statistics"]
        return DataFolder(
            path=folder, labels=tuple(record["labels"]),
            feature_config=FeatureConfig.from_dict(record["feature_config"]),
            mean=np.asarray(stats["mean"], np.float32), std=np.asarray(stats["std"], np.float32),
            shards={split: tuple(record["shards"][split]) for split in SPLITS},
            fingerprint=record["fingerprint"], record=record)
    except (KeyError, TypeError, ValueError) as exc:
        raise TfadvserError(f"{path}: incomplete or malformed metadata ({exc!r}); prepare the "
                            "data again") from None


_LOADED: dict[tuple, DataFolder] = {}
