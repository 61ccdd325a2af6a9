"""Reading prepared data: metadata checks and the tf.data input pipeline.

The reader standardises every example with the training split's per-mel-bin statistics,
stored in metadata.json by `prepare`, and refuses data written with another feature config.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from tfadvser.runtime import distribute
from tfadvser.config import FeatureConfig
from tfadvser.errors import TfadvserError
from tfadvser.runtime.tfdata import pipeline_options
from tfadvser.data.prepare import FORMAT_VERSION, METADATA_FILE
from tfadvser.data.records import SPLITS, parse_example, shard_paths


def load_metadata(data_dir) -> dict:
    path = Path(data_dir) / METADATA_FILE
    if not path.is_file():
        raise TfadvserError(f"{path} not found: {data_dir} is not a prepared data folder "
                            "(run `tfadvser prepare` first)")
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TfadvserError(f"{path}: not valid JSON ({exc})") from None
    if metadata.get("format_version") != FORMAT_VERSION:
        raise TfadvserError(f"{path}: data format version {metadata.get('format_version')!r}, "
                            f"this tfadvser reads version {FORMAT_VERSION}; prepare the data again")
    return metadata


def feature_config_of(metadata: dict) -> FeatureConfig:
    return FeatureConfig.from_dict(metadata["feature_config"])


def check_feature_config(metadata: dict, expected: FeatureConfig, data_dir) -> None:
    stored = feature_config_of(metadata)
    if stored != expected:
        differences = ", ".join(
            f"{key}={value!r} (expected {getattr(expected, key)!r})"
            for key, value in stored.to_dict().items() if getattr(expected, key) != value)
        raise TfadvserError(f"{data_dir} was prepared with a different feature config: {differences}")


def statistics(metadata: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel-bin mean and std of the training split, float32, shape (n_mels,)."""
    stats = metadata["statistics"]
    return np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)


def make_dataset(data_dir, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 repeat: bool = False, drop_remainder: bool = False,
                 feature_config: Optional[FeatureConfig] = None, standardize: bool = True,
                 include_info: bool = False, shuffle_buffer: int = 2048) -> tf.data.Dataset:
    """Batches of (log_mel [B, frames, n_mels] float32, label [B] int64).

    With `include_info`, batches are dicts that also hold `speaker`, `path` and
    `source_frames`. `feature_config`, when given, must equal the data's own.
    """
    if split not in SPLITS:
        raise TfadvserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if batch_size < 1:
        raise TfadvserError(f"batch size must be positive, got {batch_size}")
    metadata = load_metadata(data_dir)
    config = feature_config_of(metadata)
    if feature_config is not None:
        check_feature_config(metadata, feature_config, data_dir)
    paths = shard_paths(Path(data_dir), split)
    expected = len(metadata["shards"][split])
    if len(paths) != expected:
        raise TfadvserError(f"{data_dir}: found {len(paths)} {split} shard(s), metadata lists "
                            f"{expected}; the folder is incomplete, prepare it again")
    mean, std = statistics(metadata)

    files = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=min(len(paths), 4),
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def decode(serialized):
        example = parse_example(serialized, config.shape)
        if standardize:
            example["log_mel"] = (example["log_mel"] - mean) / std
        if include_info:
            return example
        return example["log_mel"], example["label"]

    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    # Read when a multi-worker strategy distributes the batches (a no-op otherwise).
    options = pipeline_options()
    options.experimental_distribute.auto_shard_policy = distribute.shard_policy(
        len(paths), finite=not repeat)
    return dataset.with_options(options)
