"""The public Python API: what a notebook does with tfadvser, as `tfadvser.<name>`.

Each function is a thin composition of the library functions the command line calls (the
command in brackets), so a notebook and the CLI give the same numbers:

    synthesize        the built-in corpus                      (`tfadvser synth`)
    prepare           audio -> log-Mel TFRecords               (`tfadvser prepare`)
    train_defences, train_attacker, reproduce                  (`tfadvser train ...`, `reproduce`)
    load_run          a run folder: its data, defences, attackers, clips
    perturb           log-Mels -> adversarial log-Mels          (the exported `serving_default`)
    perturb_waveform  16 kHz audio -> adversarial audio         (the exported `perturb_waveform`)
    score             one model under one attack: UARs, rates, perturbation size
    evaluate          a whole run: results.json and report.md   (`tfadvser evaluate`)

Units: log-Mels handed to and returned by `Run.clips`, `perturb` and `score` are
*standardised* (per mel bin, with the training split's statistics), shape
[clips, 373, 64] float32, as the defences and attackers see them; `perturb_waveform` takes
and returns raw audio and raw (natural-log) log-Mels, as the SavedModel export does.

This module sits above every stage (it imports `experiment/` and `serving/`);
`tfadvser/__init__.py` imports it only when one of its names is first used, so
`import tfadvser` stays instant and loads no TensorFlow.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from tfadvser.attack.tasks import find_task, load_generator, sequences_of
from tfadvser.attack.training import train_attacker as _train_attacker
from tfadvser.config import DEFENCE_NAMES, CorpusConfig, Profile, get_profile
from tfadvser.data.audio import UnreadableAudio, load_mono
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import DataFolder, load_data
from tfadvser.data.prepare import prepare as _prepare
from tfadvser.data.synth import synthesize_corpus
from tfadvser.defence.victims import load_defence, run_defences
from tfadvser.defence.training import train_defences as _train_defences
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.scoring import (EVAL_BATCH, attack_scores, perturb as _perturb,
                                         perturbation_sizes, predictions)
from tfadvser.experiment.outputs import evaluate_and_report
from tfadvser.experiment.reproduce import reproduce as _reproduce
from tfadvser.runs import load_run as _run_record
from tfadvser.serving.export import attacker_endpoints

# A generator (keras.Model: x -> eta), or any function of a standardised batch
# [B, 373, 64] that returns its perturbation eta of the same shape.
Attack = Union[keras.Model, Callable]


@dataclasses.dataclass(frozen=True)
class Run:
    """A run folder (`runs/NAME`, made by `train defence`, `train attacker` or `reproduce`).

    `record` is its `run.json` (data folder, fingerprint, profile name); `data` the prepared
    `DataFolder` it was trained on (labels, feature config, training statistics
    `mean`/`std` [n_mels]); `profile` its `Profile`.
    """

    path: Path
    record: dict
    data: DataFolder
    profile: Profile

    @property
    def defences(self) -> list[str]:
        """The trained defences' names: the paper's (cnn4, vgg16, resnet50), hardened ones
        (`cnn4-adv-<hash>`) and seed controls (`cnn4-seed1`), in that order
        (`defence.victims.run_defences`)."""
        return list(run_defences(self.path))

    @property
    def attackers(self) -> list[str]:
        """The labels of the trained attacker sequences, e.g. `single-cnn4-eps0.008-snr30`
        (the folders under `attackers/`; `attacker()` takes them)."""
        return [seq["label"] for seq in sequences_of(self.path)]

    def defence(self, name: str) -> keras.Model:
        """The trained defence `name`, frozen: standardised log-Mel [B, 373, 64] ->
        log-probabilities [B, classes]. Raises TfadvserError when it is not trained here
        or was trained on other data (`defence.victims.load_defence`)."""
        return load_defence(self.path, name, self.data)

    def attacker(self, spec: str) -> keras.Model:
        """The generator G of a trained attacker: standardised log-Mel [B, 373, 64] ->
        perturbation eta of the same shape (bounded attackers keep |eta| <= epsilon and the
        SNR floor by construction). `spec`: LABEL[:TASK] (a sequence label, see
        `attackers`, and its task index, default the last) or a task key. Raises
        TfadvserError naming the trained sequences when none matches
        (`attack.tasks.find_task`)."""
        return load_generator(self.path, find_task(self.path, spec))

    def clips(self, split: str = "test", n: Optional[int] = None,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(x [N, 373, 64] float32 standardised log-Mels, y [N] int64 labels) of a split
        ("train", "dev" or "test"), through the same tf.data reader as training
        (`data.dataset.make_dataset`); with `n`, a seeded subset of n clips in split order.
        Raises TfadvserError for an unknown split or n < 1."""
        if n is not None and n < 1:
            raise TfadvserError(f"n must be at least 1, got {n}")
        batches = list(make_dataset(self.data, split, EVAL_BATCH).as_numpy_iterator())
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        if n is not None and n < len(x):
            keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
            x, y = x[keep], y[keep]
        return x, y


def load_run(run_dir) -> Run:
    """The run at `run_dir`, bound to the data and profile recorded in its run.json. Raises
    TfadvserError when it is not a run folder (`runs.load_run`) or its data folder is gone
    or changed (`data.folder.load_data`, fingerprint check)."""
    record = _run_record(run_dir)
    data = load_data(record["data_dir"])
    if data.fingerprint != record["fingerprint"]:
        raise TfadvserError(f"{record['data_dir']} is no longer the data {run_dir} was trained "
                            f"on (fingerprint {data.fingerprint[:12]} vs {record['fingerprint'][:12]})")
    return Run(Path(run_dir), record, data, get_profile(record["profile"]))


def _profile(profile: Union[str, Profile]) -> Profile:
    return profile if isinstance(profile, Profile) else get_profile(profile)


def _folder(data: Union[Run, DataFolder, str, Path]) -> DataFolder:
    return data.data if isinstance(data, Run) else load_data(data)


def synthesize(out_dir, speakers: int = CorpusConfig.speakers,
               utterances: int = CorpusConfig.utterances,
               difficulty: float = CorpusConfig.difficulty, seed: int = CorpusConfig.seed,
               include_neutral: bool = CorpusConfig.include_neutral,
               first_speaker: int = 1) -> list[Path]:
    """Write the built-in emotional-speech corpus (16-bit WAVs named as in DEMoS) to
    `out_dir`; return the files' paths. The defaults are the main job's corpus
    (`config.CorpusConfig`; `data.synth.synthesize_corpus`). Same seed, same bytes;
    `first_speaker=31` gives the default corpus's seed 30 new speakers (attacker data).
    Raises TfadvserError for a difficulty outside [0, 1] or fewer than one speaker or
    utterance."""
    try:
        return synthesize_corpus(out_dir, n_speakers=speakers, utterances=utterances,
                                 difficulty=difficulty, seed=seed,
                                 include_neutral=include_neutral, first_speaker=first_speaker)
    except ValueError as exc:  # the synthesiser's own checks, as a user's error
        raise TfadvserError(f"synthesize: {exc}") from None


def prepare(audio_dir, out_dir, corpus: str = "demos", **options) -> dict:
    """Audio files under `audio_dir` -> 16 kHz mono -> log-Mel [373, 64] -> sharded
    TFRecords and metadata.json in `out_dir`; returns that metadata (counts, speakers,
    skipped files with their reasons). `corpus`: demos, emodb, ravdess, cremad, csv or
    folders. `options` are `data.prepare.prepare`'s (feature_config, split_config,
    keep_neutral, split_lists, strict, overwrite, shard_mb, progress). Raises TfadvserError
    for an existing `out_dir` (without overwrite=True), no readable audio, or a class
    missing from a split."""
    return _prepare(audio_dir, corpus, out_dir, **options)


def train_defences(data, run_dir, models: Sequence[str] = DEFENCE_NAMES,
                   profile: Union[str, Profile] = "small", verbose: int = 2) -> dict:
    """Train the defences `models` (cnn4, vgg16, resnet50) on prepared `data` into
    `run_dir/defences/`, reusing finished ones (`defence.training.train_defences`);
    returns their results by name (dev and test UAR, ...). `profile`: a name (paper,
    small, smoke) or a `config.Profile`. Raises TfadvserError for an unknown profile, data
    that is not a prepared folder, or a run folder bound to other data or another profile
    (`runs.bind_run`)."""
    return _train_defences(data, tuple(models), _profile(profile), run_dir, verbose=verbose)


def train_attacker(data, run_dir, method: str, defences: Sequence[str],
                   profile: Union[str, Profile] = "small", **options) -> dict:
    """Train an attacker sequence (`method`: single, multi, transfer or lifelong) against
    the run's trained `defences`, in order; returns the sequence record (label, tasks).
    `options` are `attack.training.train_attacker`'s (strength, regulariser, budget, verbose,
    seed, ...). Raises TfadvserError as that function does."""
    options.setdefault("verbose", 2)
    return _train_attacker(data, run_dir, method, list(defences), _profile(profile), **options)


def reproduce(data, run_dir, profile: Union[str, Profile] = "small", **options) -> dict:
    """The whole protocol (`tfadvser reproduce`): defences, Table 1's attackers, the lambda
    sweep, evaluation and report; returns `experiment.reproduce.reproduce`'s outputs
    (`report`: the path of report.md). `options` as that function's (seeds, lambdas,
    orders, multi_pairs, baselines, audio_clips, verbose, log). Raises TfadvserError as
    that function and the training functions do."""
    return _reproduce(data, run_dir, _profile(profile), **options)


def _batches(x, y=None) -> list[tuple]:
    x = np.asarray(x, np.float32)
    if x.ndim != 3:
        raise TfadvserError(f"expected log-Mels of shape [clips, frames, mel bins], got {x.shape}")
    y = np.zeros(len(x), np.int64) if y is None else np.asarray(y)
    if len(y) != len(x):
        raise TfadvserError(f"{len(x)} log-Mels but {len(y)} labels")
    return [(x[i:i + EVAL_BATCH], y[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)]


def _perturbed(attack: Attack, batches: list[tuple]) -> list[tuple]:
    """(x', y, eta) per batch, as `evaluation.scoring.perturb` gives for a generator."""
    if isinstance(attack, keras.Model):
        return _perturb(attack, batches)
    out = []
    for x, y in batches:
        eta = np.asarray(attack(x), np.float32)
        if eta.shape != x.shape:
            raise TfadvserError(f"the attack returned a perturbation of shape {eta.shape} for "
                                f"log-Mels of shape {x.shape}")
        out.append((x + eta, y, eta))
    return out


def perturb(attacker: Attack, log_mel) -> tuple[np.ndarray, np.ndarray]:
    """(x' = x + eta, eta) for standardised log-Mels x [N, 373, 64] (numpy, float32), run in
    batches of 32. `attacker`: a generator (`Run.attacker`) or a function x -> eta.
    Raises TfadvserError for input that is not [N, frames, mel bins]."""
    perturbed = _perturbed(attacker, _batches(log_mel))
    return (np.concatenate([np.asarray(b[0]) for b in perturbed]),
            np.concatenate([np.asarray(b[2]) for b in perturbed]))


def read_audio(path, sample_rate: int = 16000) -> np.ndarray:
    """One audio file as mono float32 [samples] at `sample_rate`, decoded and checked
    exactly as `prepare` does (`data.audio.load_mono`). Raises TfadvserError naming the
    file and the reason when it cannot be read."""
    try:
        return load_mono(path, sample_rate).astype(np.float32)
    except UnreadableAudio as exc:
        raise TfadvserError(f"{path}: {exc}") from None


def perturb_waveform(attacker: keras.Model, waveform, data) -> dict:
    """An attacker applied to audio, as the exported `perturb_waveform` signature does
    (`serving.export.attacker_endpoints`): waveform [samples] or [B, samples], 16 kHz mono
    float in [-1, 1] -> numpy arrays `adversarial_waveform` (same shape; the perturbation
    rendered as an STFT gain with the clean phase, clipped to [-1, 1]), `clean_log_mel`
    and `adversarial_log_mel` ([B, 373, 64] raw natural-log mel), `perturbation` (their
    difference) and `waveform_snr_db` ([B], clean against adversarial audio).
    `data`: the run (or data folder) whose statistics and features the attacker was
    trained with."""
    folder = _folder(data)
    audio = np.asarray(waveform, np.float32)
    single = audio.ndim == 1
    if audio.ndim not in (1, 2) or audio.shape[-1] < folder.feature_config.frame_length:
        raise TfadvserError(f"expected a waveform [samples] or [clips, samples] of at least "
                            f"{folder.feature_config.frame_length} samples, got shape {audio.shape}")
    batch = audio[None] if single else audio
    endpoint, _ = attacker_endpoints(attacker, folder.mean, folder.std,
                                     folder.feature_config)["perturb_waveform"]
    out = {k: v.numpy() for k, v in endpoint(tf.constant(batch)).items()}
    noise = np.sum(np.square(out["adversarial_waveform"] - batch), axis=-1)
    out["waveform_snr_db"] = 10 * np.log10(np.sum(np.square(batch), axis=-1) / np.maximum(noise, 1e-30))
    return {k: v[0] for k, v in out.items()} if single else out


def score(model: keras.Model, attack: Optional[Attack], x, y, data) -> dict:
    """One model under one attack on clips x [N, 373, 64] (standardised), labels y [N]:
    `clean_uar` and `adversarial_uar` (fractions; the latter with its 95 % bootstrap
    interval `adversarial_uar_ci`), `success_rate` (share of clean-correct clips made
    wrong), `adversarial_recall` per class, `clips`, and `perturbation`: eta's mean, MSE,
    L2 and L∞ in standardised units and `snr_db` on linear mel magnitudes, per clip
    averaged (`evaluation.scoring`, the functions `evaluate` uses). `model`: a defence
    (`Run.defence`) or any Keras model of the same input and class count; `attack`: a
    generator, a function x -> eta, or None (no perturbation). `data`: the run or data
    folder (labels, statistics)."""
    folder = _folder(data)
    batches = _batches(x, y)
    perturbed = _perturbed(attack or (lambda xs: np.zeros_like(xs)), batches)
    truth = np.concatenate([np.asarray(b[1]) for b in batches])
    scores = attack_scores(truth, predictions(model, batches), predictions(model, perturbed),
                           list(folder.labels))
    return {**scores, "perturbation": perturbation_sizes(perturbed, folder.mean, folder.std)}


def evaluate(run_dir, **options) -> dict:
    """Score every attacker of a run against every defence and write
    `run_dir/evaluation/` (results.json, table1.md/.csv, figures, report.md, report.html),
    as `tfadvser evaluate` does (`experiment.evaluate.evaluate_and_report`); returns its
    outputs, `dir` and `results` among them. `options`: data_dir, audio_clips (default 64;
    0 skips the audio round trip), listen, baselines (False skips noise/PGD/MI-FGSM),
    victims, trust_code, progress. Raises TfadvserError for a folder that is not a run or
    holds no defences or attackers."""
    return evaluate_and_report(run_dir, **options)
