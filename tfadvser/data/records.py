"""The TFRecord schema: the one place that says what an example holds.

Both the writer (`prepare`) and the reader (`dataset.make_dataset`) go through this module.
Records hold the *raw* log-Mel; standardisation is applied by the reader with statistics
from the training split, so dev/test statistics can never leak into the data.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tensorflow as tf

SPLITS = ("train", "dev", "test")
SHARD_SUFFIX = ".tfrecord"


# The one field table: name -> (feature type, how a Python value is encoded). The writer
# and the parser both go through it, so a field cannot be written and not read or vice versa.
# `log_mel` is stored as little-endian float32 bytes of the [frames, n_mels] array.
FIELDS = {
    "log_mel": (tf.string, lambda a: np.ascontiguousarray(a, dtype="<f4").tobytes()),
    "label": (tf.int64, int),
    "speaker": (tf.string, lambda s: s.encode("utf-8")),
    "path": (tf.string, lambda s: s.encode("utf-8")),
    "source_frames": (tf.int64, int),  # the clip's frame count before tiling or cutting
}
FEATURE_SPEC = {name: tf.io.FixedLenFeature([], dtype) for name, (dtype, _) in FIELDS.items()}


def _feature(dtype: tf.dtypes.DType, value) -> tf.train.Feature:
    if dtype == tf.int64:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def serialize_example(**values) -> bytes:
    """One clip as a serialized tf.train.Example; keyword arguments are exactly the names
    of `FIELDS` (log_mel [frames, n_mels] array, label int, speaker str, path str,
    source_frames int). Raises ValueError for a missing or unknown field."""
    if set(values) != set(FIELDS):
        raise ValueError(f"an example holds exactly the fields {sorted(FIELDS)}, got {sorted(values)}")
    features = {name: _feature(dtype, encode(values[name]))
                for name, (dtype, encode) in FIELDS.items()}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def parse_example(serialized: tf.Tensor, shape: tuple[int, int]) -> dict[str, tf.Tensor]:
    """Serialized example -> dict of `FIELDS`, `log_mel` as a [frames, n_mels] float32 tensor."""
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    log_mel = tf.io.decode_raw(parsed["log_mel"], tf.float32, little_endian=True)
    parsed["log_mel"] = tf.reshape(log_mel, shape)
    return parsed


def shard_name(split: str, index: int, count: int) -> str:
    """`train-00000-of-00003.tfrecord`: the final name of shard `index` of `count`."""
    return f"{split}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def shard_paths(data_dir: Path, split: str) -> list[Path]:
    """The split's shard files under `data_dir`, sorted by name (= by index)."""
    return sorted(Path(data_dir).glob(f"{split}-*-of-*{SHARD_SUFFIX}"))


class ShardedWriter:
    """Writes one split's examples into shards of at most `per_shard` examples.

    Shards are first named by index only and get their final `-of-NNNNN` names in
    `close()`, once the real count is known (files that fail to decode shrink it).
    """

    def __init__(self, out_dir: Path, split: str, per_shard: int):
        self.out_dir, self.split, self.per_shard = Path(out_dir), split, per_shard
        self.count = 0
        self._writer = None
        self._paths: list[Path] = []

    def write(self, serialized: bytes) -> None:
        """Append one serialized example, opening the next shard when this one is full."""
        if self.count % self.per_shard == 0:
            if self._writer is not None:
                self._writer.close()
            path = self.out_dir / f".{self.split}-{len(self._paths):05d}.partial"
            self._paths.append(path)
            self._writer = tf.io.TFRecordWriter(str(path))
        self._writer.write(serialized)
        self.count += 1

    def close(self) -> list[str]:
        """Close the last shard, give every shard its final name; return the names."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        names = [shard_name(self.split, i, len(self._paths)) for i in range(len(self._paths))]
        for path, name in zip(self._paths, names):
            path.rename(self.out_dir / name)
        return names


def examples_per_shard(target_mb: float, shape: tuple[int, int]) -> int:
    """How many examples fit in a shard of about `target_mb` megabytes."""
    bytes_per_example = shape[0] * shape[1] * 4 + 200  # features + labels and strings
    return max(1, math.floor(target_mb * 1e6 / bytes_per_example))
