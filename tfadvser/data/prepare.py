"""`prepare`: an audio corpus -> log-Mel features in sharded TFRecords + metadata.json.

Stages: list the corpus (a reader per layout) -> read every header (reject what cannot be
decoded, with the reason) -> speaker-independent split -> decode, resample and extract in
a parallel tf.data pipeline -> write shards, accumulating the per-mel-bin statistics of the
training split -> metadata.json. Everything is written into a temporary folder beside the
output and renamed into place only when complete.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from tfadvser.data.audio import UnreadableAudio, check_decoded, decode_audio, decode_error_reason, probe
from tfadvser.config import FeatureConfig, SplitConfig
from tfadvser.data.corpora import UNLABELLED, Clip, Problem, describe_ignored, read_corpus, relative_name
from tfadvser.errors import TfadvserError
from tfadvser.data.features import fix_length, log_mel
from tfadvser.data.folder import FORMAT_VERSION, METADATA_FILE
from tfadvser.runtime.files import atomic_path, write_json
from tfadvser.runtime.tfdata import pipeline_options
from tfadvser.runtime.versions import library_versions
from tfadvser.data.records import SPLITS, ShardedWriter, examples_per_shard, serialize_example
from tfadvser.data.splits import check_classes, split_by_speaker, split_from_lists

def _extractor(config: FeatureConfig):
    """The per-file graph: bytes -> (fixed-size log-Mel, source frame count, finite?, samples,
    frames decoded)."""

    def extract(index, path, decoder, sample_rate, frames):
        waveform, decoded = decode_audio(tf.io.read_file(path), decoder, sample_rate, frames,
                                         config.sample_rate)
        finite = tf.reduce_all(tf.math.is_finite(waveform))
        waveform = tf.where(tf.math.is_finite(waveform), waveform, 0.0)
        samples = tf.shape(waveform)[0]
        # Pad to one window so that too-short clips still give a tensor of the right shape;
        # they are rejected by the caller from `samples`.
        padded = tf.pad(waveform, [[0, tf.maximum(config.frame_length - samples, 0)]])
        features = log_mel(padded, config)
        source_frames = tf.maximum((samples - config.frame_length) // config.hop_length + 1, 0)
        return index, fix_length(features, config), source_frames, finite, samples, decoded

    return extract


def _rejection(config: FeatureConfig, promised: int, decoded: int, finite: bool, samples: int,
               source_frames: int) -> Optional[str]:
    # The decoding checks are `predict`'s too; only the long-clip policy is prepare's own.
    reason = check_decoded(promised, decoded, finite, samples, config.sample_rate, config.frame_length)
    if reason:
        return reason
    if source_frames > config.n_frames and config.long_clips == "error":
        return f"too long: {source_frames} frames > {config.n_frames} (long-clip policy 'error')"
    return None


def _fingerprint(clips: list[Clip], root: Path, config: FeatureConfig) -> str:
    """Content hash of the inputs (every file's bytes, label and speaker) and the feature config."""
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    for clip in sorted(clips, key=lambda c: str(c.path)):
        digest.update(f"{_relative(clip.path, root)}|{clip.label}|{clip.speaker}\n".encode())
        digest.update(hashlib.sha256(clip.path.read_bytes()).digest())
    return digest.hexdigest()


def _relative(path: Path, root: Path) -> str:
    # Printable whatever bytes the name holds (records, metadata and messages are text).
    return relative_name(path, root)


def _progress(total: int, description: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="file", disable=not enabled,
                file=sys.stderr, dynamic_ncols=True)


def _strict_failure(problems: list[Problem], root: Path) -> TfadvserError:
    shown = "; ".join(f"{_relative(p.path, root)}: {p.reason}" for p in problems[:10])
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return TfadvserError(f"--strict: {len(problems)} file(s) rejected: {shown}{more}")


def prepare(audio_dir, corpus: str, out_dir, feature_config: FeatureConfig = FeatureConfig(),
            split_config: SplitConfig = SplitConfig(), keep_neutral: Optional[bool] = None,
            split_lists=None, strict: bool = False, overwrite: bool = False,
            shard_mb: float = 64.0, progress: bool = True) -> dict:
    """Prepare `audio_dir` into `out_dir`; return the metadata that was written."""
    started = time.time()
    root, out = Path(audio_dir), Path(out_dir)
    if out.exists() and not overwrite:
        raise TfadvserError(f"{out} already exists; pass --overwrite to replace it")
    listing = read_corpus(corpus, root, keep_neutral)
    problems = list(listing.problems)
    warnings = []
    if listing.ignored:
        warnings.append(f"ignored {sum(listing.ignored.values())} file(s): {describe_ignored(listing.ignored)}")

    infos, readable = {}, []
    for clip in listing.clips:
        try:
            infos[clip.path] = probe(clip.path)
            readable.append(clip)
        except UnreadableAudio as exc:
            problems.append(Problem(clip.path, str(exc)))
    if strict and problems:
        raise _strict_failure(problems, root)
    if not readable:
        raise TfadvserError(f"{root}: none of the {len(listing.clips)} listed file(s) is readable "
                            f"audio (e.g. {_relative(problems[0].path, root)}: {problems[0].reason})")

    labelled = corpus != "unlabelled"
    if not labelled and split_lists is not None:
        raise TfadvserError("--split-lists: an unlabelled corpus is attacker data and is not "
                            "split; every clip goes to the training split")
    try:
        if not labelled:
            # Attacker data only: nothing is evaluated on it, so everything trains.
            splits = {"train": readable, "dev": [], "test": []}
            split_method = {"method": "unlabelled", "note": "every clip in the training split"}
        elif split_lists is not None:
            splits, unlisted = split_from_lists(readable, listing.labels, Path(split_lists))
            problems.extend(unlisted)
            split_method = {"method": "lists", "lists": str(Path(split_lists).resolve())}
        else:
            splits = split_by_speaker(readable, listing.labels, split_config)
            split_method = {"method": "speakers", **dataclasses.asdict(split_config)}
    except TfadvserError as exc:
        if not problems:
            raise
        # The split may lack a class because files were rejected: say which.
        shown = "; ".join(f"{_relative(p.path, root)}: {p.reason}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise TfadvserError(f"{exc}. {len(problems)} file(s) were rejected: {shown}{more}") from None
    if any(c.speaker.startswith("file:") for c in readable):
        warnings.append("no speaker information (files directly in <label>/ folders): every file "
                        "counts as its own speaker, so the split is NOT speaker-independent")

    # Clips are written in a seeded random order so every shard mixes speakers and classes.
    rng = np.random.default_rng(split_config.seed)
    order = [(split, clip) for split in SPLITS
             for clip in (splits[split][i] for i in rng.permutation(len(splits[split])))]
    label_index = {label: i for i, label in enumerate(listing.labels)}
    label_index[UNLABELLED] = -1  # a clip of an unlabelled corpus

    with atomic_path(out, directory=True) as tmp:
        metadata = _write(tmp, root, order, infos, label_index, listing.labels, feature_config,
                          shard_mb, problems, strict, progress)
        metadata.update({
            "format_version": FORMAT_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "labelled": labelled,
            "corpus": {"kind": corpus, "audio_dir": str(root.resolve()),
                       "keep_neutral": keep_neutral if keep_neutral is not None else corpus != "demos"},
            "split": split_method,
            "fingerprint": _fingerprint([c for _, c in order], root, feature_config),
            "warnings": warnings,
            "skipped": [{"path": _relative(p.path, root), "reason": p.reason} for p in problems],
            "ignored": listing.ignored,
            "seconds": round(time.time() - started, 2),
        })
        write_json(tmp / METADATA_FILE, metadata)
    return metadata


def _write(tmp: Path, root: Path, order: list[tuple[str, Clip]], infos: dict, label_index: dict,
           labels: tuple[str, ...], config: FeatureConfig, shard_mb: float,
           problems: list[Problem], strict: bool, progress: bool) -> dict:
    per_shard = examples_per_shard(shard_mb, config.shape)
    writers = {split: ShardedWriter(tmp, split, per_shard) for split in SPLITS}
    written = {split: [] for split in SPLITS}
    truncated = []
    bin_sum = np.zeros(config.n_mels)
    bin_sq = np.zeros(config.n_mels)
    train_frames = 0

    extract = _extractor(config)
    columns = (
        np.arange(len(order), dtype=np.int64),
        # Bytes, as the OS holds them: a name need not be valid UTF-8.
        np.array([os.fsencode(c.path) for _, c in order], dtype=object),
        np.array([infos[c.path].decoder for _, c in order], dtype=np.int32),
        np.array([infos[c.path].sample_rate for _, c in order], dtype=np.int64),
        np.array([infos[c.path].frames for _, c in order], dtype=np.int64),
    )
    dataset = (tf.data.Dataset.from_tensor_slices(columns)
               .map(extract, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               # A file that fails to decode drops out here; it is found below, by index,
               # and decoded once more on its own to report the reason.
               .ignore_errors()
               .prefetch(tf.data.AUTOTUNE)
               .with_options(pipeline_options()))
    seen = set()
    with _progress(len(order), "extracting log-Mel", progress) as bar:
        for index, features, source_frames, finite, samples, decoded in dataset.as_numpy_iterator():
            index = int(index)
            seen.add(index)
            bar.update(1)
            split, clip = order[index]
            reason = _rejection(config, infos[clip.path].frames, int(decoded), bool(finite),
                                int(samples), int(source_frames))
            if reason:
                problems.append(Problem(clip.path, reason))
                continue
            relative = _relative(clip.path, root)
            if source_frames > config.n_frames:
                truncated.append(relative)
            writers[split].write(serialize_example(
                log_mel=features, label=label_index[clip.label], speaker=clip.speaker,
                path=relative, source_frames=int(source_frames)))
            written[split].append(clip)
            if split == "train":
                bin_sum += features.sum(axis=0, dtype=np.float64)
                bin_sq += np.square(features, dtype=np.float64).sum(axis=0)
                train_frames += features.shape[0]
        bar.update(len(order) - len(seen))
    for index in sorted(set(range(len(order))) - seen):
        problems.append(Problem(order[index][1].path, _decode_error(extract, index, order, columns)))

    if strict and problems:
        raise _strict_failure(problems, root)
    check_classes(written, labels)
    shards = {split: writer.close() for split, writer in writers.items()}

    # Per-mel-bin statistics over every frame of the training split, tiled frames included
    # (as the original computes them). A constant bin would divide by zero: floor the std.
    mean = bin_sum / train_frames
    std = np.sqrt(np.maximum(bin_sq / train_frames - mean ** 2, 0.0))
    std = np.maximum(std, 1e-6)
    return {
        "feature_config": config.to_dict(),
        "labels": list(labels),
        "counts": {s: {label: sum(c.label == label for c in written[s]) for label in labels}
                   for s in SPLITS},
        "totals": {s: len(written[s]) for s in SPLITS},
        "speakers": {s: sorted({c.speaker for c in written[s]}) for s in SPLITS},
        "shards": shards,
        "statistics": {"split": "train", "frames": int(train_frames),
                       "mean": mean.tolist(), "std": std.tolist()},
        "truncated": {"policy": config.long_clips, "count": len(truncated), "files": truncated},
    }


def _decode_error(extract, index: int, order, columns) -> str:
    """Run one file's extraction eagerly to recover the error tf.data swallowed."""
    try:
        extract(*(tf.constant(column[index]) for column in columns))
    except tf.errors.OpError as exc:
        return decode_error_reason(exc)
    return "could not be decoded (the pipeline dropped it; decoding it alone succeeded)"
