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


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def serialize_example(log_mel: np.ndarray, label: int, speaker: str, path: str,
                      source_frames: int) -> bytes:
    """One clip. `source_frames` is the clip's frame count before tiling or cutting."""
    features = {
        "log_mel": _bytes(np.ascontiguousarray(log_mel, dtype="<f4").tobytes()),
        "label": _int64(label),
        "speaker": _bytes(speaker.encode("utf-8")),
        "path": _bytes(path.encode("utf-8")),
        "source_frames": _int64(source_frames),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


FEATURE_SPEC = {
    "log_mel": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "speaker": tf.io.FixedLenFeature([], tf.string),
    "path": tf.io.FixedLenFeature([], tf.string),
    "source_frames": tf.io.FixedLenFeature([], tf.int64),
}


def parse_example(serialized: tf.Tensor, shape: tuple[int, int]) -> dict[str, tf.Tensor]:
    """Serialized example -> dict with `log_mel` as a [frames, n_mels] float32 tensor."""
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    log_mel = tf.io.decode_raw(parsed["log_mel"], tf.float32, little_endian=True)
    parsed["log_mel"] = tf.reshape(log_mel, shape)
    return parsed


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def shard_paths(data_dir: Path, split: str) -> list[Path]:
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
        if self.count % self.per_shard == 0:
            if self._writer is not None:
                self._writer.close()
            path = self.out_dir / f".{self.split}-{len(self._paths):05d}.partial"
            self._paths.append(path)
            self._writer = tf.io.TFRecordWriter(str(path))
        self._writer.write(serialized)
        self.count += 1

    def close(self) -> list[str]:
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
