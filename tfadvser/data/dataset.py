"""The tf.data input pipeline over a prepared data folder.

The reader standardises every example with the training split's per-mel-bin statistics
(stored by `prepare`, read through `folder.load_data`) and refuses data written with
another feature config.
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from tfadvser.config import FeatureConfig
from tfadvser.data.folder import load_data
from tfadvser.data.records import parse_example
from tfadvser.errors import TfadvserError
from tfadvser.runtime import distribute
from tfadvser.runtime.tfdata import pipeline_options


def make_dataset(data, split: str | Sequence[str], batch_size: int, *, shuffle: bool = False,
                 seed: int = 0, repeat: bool = False, drop_remainder: bool = False,
                 feature_config: Optional[FeatureConfig] = None, standardize: bool = True,
                 statistics=None, include_info: bool = False,
                 shuffle_buffer: int = 2048) -> tf.data.Dataset:
    """Batches of (log_mel [B, frames, n_mels] float32, label [B] int64) from `data` (a
    prepared folder's path or its `DataFolder`); `split` is one split or several read as one
    (e.g. all of an attacker corpus, `data/attacker_data.py`).

    log_mel is standardised per mel bin with the training statistics of `statistics` (a
    folder or its path; default `data` itself: another folder's are what its defences were
    trained on) or not at all (`standardize=False`: raw natural-log mel magnitudes). Labels
    are class indices, -1 for a clip of an unlabelled corpus. With `include_info`, batches
    are dicts that also hold `speaker`, `path` and `source_frames`. `feature_config`, when
    given, must equal the data's own. Raises TfadvserError for an unknown split, a
    non-positive batch size, a feature-config mismatch, an incomplete folder or splits that
    hold no shard.
    """
    if batch_size < 1:
        raise TfadvserError(f"batch size must be positive, got {batch_size}")
    folder = load_data(data)
    if feature_config is not None:
        folder.check_feature_config(feature_config)
    splits = (split,) if isinstance(split, str) else tuple(split)
    paths = [p for s in splits for p in folder.shard_paths(s)]
    if not paths:
        raise TfadvserError(f"{folder.path}: no clips in {' or '.join(splits)}")
    source = folder if statistics is None else load_data(statistics)
    shape, mean, std = folder.shape, source.mean, source.std

    files = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=min(len(paths), 4),
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def decode(serialized):
        example = parse_example(serialized, shape)
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
