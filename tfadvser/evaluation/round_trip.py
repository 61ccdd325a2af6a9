"""Scoring attacks after the round trip through audio, on a fixed subset of test clips.

A spectrogram attack is not yet an audio attack: each clip's perturbation is rendered as a
waveform (`data/rendering.py`: STFT gain with the clean phase, overlap-add inverse),
clipped to [-1, 1] as a WAV holds it, re-extracted with `prepare`'s own features and scored
by every defence again. Three adversarial UARs per defence, all on the same clips:

  spectrogram   x' = x + eta, what the attacker produced (the usual Table 1 number)
  renderable    the part of x' audio can carry: for a short clip, whose 373 frames are its
                own frames tiled, only its first copy of frames can be rendered, so this is
                x' of those frames tiled again (for clips of >= 373 frames it equals x')
  audio         the log-Mel re-extracted from the rendered waveform

and clean UARs on the stored features and on the clean audio re-extracted (they differ
only where the reference decoder differs from `prepare`'s, e.g. resampled files). Sizes:
waveform SNR, PESQ (wide-band) and STOI against the clean clip (`audio_quality.py`), the
share of the intended log-Mel change that survives ("kept": the achieved change projected
on the intended one, over the frames the clip has) and the mean absolute error to the
intended adversarial log-Mel, in nats.

Cost: one render and one extraction per clip, a defence pass over the subset, and PESQ
(~0.2 s per 4 s clip, so on the first `PESQ_CLIPS` clips only) and STOI (~0.04 s): the
subset is capped (`AUDIO_CLIPS`, seeded).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Optional

import keras
import numpy as np
import tensorflow as tf

from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import DataFolder
from tfadvser.data.rendering import clip_audio, corpus_waveform, extract, render
from tfadvser.evaluation.audio_quality import pesq_wb, stoi, waveform_snr, write_wav
from tfadvser.evaluation.scoring import EVAL_BATCH, attack_scores, classification_scores
from tfadvser.runtime.inference import inference

AUDIO_CLIPS = 64  # test clips scored through audio per attacker task
# PESQ costs ~0.2 s per clip, ten times the rest of the round trip: it is computed on the
# first PESQ_CLIPS clips of the subset only (STOI and SNR on all of them).
PESQ_CLIPS = 16
LISTEN_CLIPS = 3  # clips written as WAV per attacker task
SEED = 0


class AudioSubset:
    """A seeded subset of the test split with its clean waveforms: `x` standardised
    log-Mels [n, frames, mels], `raw` raw log-Mels, `y` labels, `paths` corpus-relative,
    `frames` source frame counts, `waves` the decoded clips (float64, 16 kHz), `clean_rt`
    the standardised log-Mels re-extracted from the clean audio."""

    def __init__(self, data: DataFolder, clips: int = AUDIO_CLIPS, seed: int = SEED,
                 split: str = "test"):
        self.data = data
        config = data.feature_config
        rows = [b for b in make_dataset(data, split, EVAL_BATCH, include_info=True,
                                        standardize=False).as_numpy_iterator()]
        raw = np.concatenate([b["log_mel"] for b in rows])
        chosen = np.arange(len(raw))
        if clips < len(raw):
            chosen = np.sort(np.random.default_rng(seed).choice(len(raw), clips, replace=False))
        self.indices = chosen
        self.raw = raw[chosen]
        self.x = self.standardise(self.raw)
        self.y = np.concatenate([b["label"] for b in rows])[chosen]
        self.paths = [p.decode() for p in np.concatenate([b["path"] for b in rows])[chosen]]
        self.frames = np.concatenate([b["source_frames"] for b in rows])[chosen]
        self.waves = [corpus_waveform(data, p) for p in self.paths]
        self.clean_rt = self.standardise(np.stack([extract(tf.constant(w), config).numpy()
                                                   for w in self.waves]))

    def standardise(self, raw: np.ndarray) -> np.ndarray:
        return ((raw - self.data.mean) / self.data.std).astype(np.float32)

    def renderable(self, x_adv: np.ndarray) -> np.ndarray:
        """x' limited to the frames audio can carry (module doc), standardised as given."""
        n = self.data.feature_config.n_frames
        out = np.array(x_adv, copy=True)
        for i, frames in enumerate(self.frames):
            if frames < n:
                out[i] = np.resize(x_adv[i][:frames], (n, x_adv.shape[-1]))  # tile, as fix_length
        return out

    def __len__(self):
        return len(self.y)


def _predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    forward = inference(model)
    return np.concatenate([np.argmax(forward(x[i:i + EVAL_BATCH]), axis=-1)
                           for i in range(0, len(x), EVAL_BATCH)])


def clean_scores(subset: AudioSubset, defences: Mapping[str, keras.Model], labels) -> dict:
    """Per defence: predictions and scores on the stored and on the re-extracted clean clips."""
    out = {}
    for name, model in defences.items():
        stored, audio = _predict(model, subset.x), _predict(model, subset.clean_rt)
        out[name] = {"stored": stored, "audio": audio,
                     "stored_scores": classification_scores(subset.y, stored, labels),
                     "audio_scores": classification_scores(subset.y, audio, labels)}
    return out


def score_task(generator: Optional[keras.Model], subset: AudioSubset, defences: Mapping[str, keras.Model],
               clean: dict, labels, listen_dir: Optional[Path] = None,
               listen: int = LISTEN_CLIPS, eta: Optional[np.ndarray] = None) -> dict:
    """One attack through the round trip on `subset` (module doc): a trained attacker's
    `generator`, or any attack's perturbations `eta` [len(subset), frames, n_mels] of
    `subset.x` (e.g. white-box PGD; then `generator` is None). Writes `listen` clips'
    clean, adversarial and perturbation-only WAVs under `listen_dir`."""
    started = time.time()
    config, std = subset.data.feature_config, subset.data.std
    if eta is None:
        eta = np.concatenate([np.asarray(inference(generator)(subset.x[i:i + EVAL_BATCH]))
                              for i in range(0, len(subset), EVAL_BATCH)])
    x_adv = subset.x + eta
    x_rt, snr, pesq_values, stoi_values, kept, error, clipped, listened = [], [], [], [], [], [], [], []
    for i, wave in enumerate(subset.waves):
        delta = (eta[i] * std).astype(np.float32)
        rendered = render(tf.constant(wave), tf.constant(delta), config).numpy().astype(np.float64)
        over = int(np.sum(np.abs(rendered) > 1.0))
        audio = clip_audio(rendered)
        raw_rt = extract(tf.constant(audio), config).numpy()
        x_rt.append(subset.standardise(raw_rt))
        n = min(int(subset.frames[i]), config.n_frames)
        clean_raw = subset.clean_rt[i] * std + subset.data.mean
        achieved, intended = (raw_rt - clean_raw)[:n], delta[:n]
        kept.append(float(np.sum(achieved * intended) / max(np.sum(intended ** 2), 1e-12)))
        error.append(float(np.mean(np.abs(achieved - intended))))
        clipped.append(over)
        snr.append(waveform_snr(wave, audio))
        pesq_values.append(pesq_wb(wave, audio, config.sample_rate) if i < PESQ_CLIPS else None)
        stoi_values.append(stoi(wave, audio, config.sample_rate))
        if listen_dir is not None and i < listen:
            stem = f"{i:02d}-{Path(subset.paths[i]).stem}"
            files = {kind: write_wav(Path(listen_dir) / f"{stem}-{kind}.wav", signal, config.sample_rate)
                     for kind, signal in (("clean", wave), ("adversarial", audio),
                                          ("perturbation", audio - wave))}
            listened.append({"clip": subset.paths[i], "snr_db": snr[-1], "clipped_samples": over,
                             **{kind: path.name for kind, path in files.items()}})
    x_rt = np.stack(x_rt)
    renderable = subset.renderable(x_adv)
    against = {}
    for name, model in defences.items():
        base = clean[name]["stored"]
        against[name] = {
            "spectrogram": attack_scores(subset.y, base, _predict(model, x_adv), labels),
            "renderable": attack_scores(subset.y, base, _predict(model, renderable), labels),
            "audio": attack_scores(subset.y, clean[name]["audio"], _predict(model, x_rt), labels)}
    finite = [s for s in snr if np.isfinite(s)]
    return {"clips": len(subset), "split": "test", "against": against,
            "pesq_clips": int(sum(v is not None for v in pesq_values)),
            "waveform_snr_db": _mean(finite), "pesq_wb": _mean(pesq_values), "stoi": _mean(stoi_values),
            "kept": _mean(kept), "round_trip_error": _mean(error),
            "clipped_clips": int(sum(c > 0 for c in clipped)), "clipped_samples": int(sum(clipped)),
            "per_clip": {"snr_db": snr, "pesq_wb": pesq_values, "stoi": stoi_values,
                         "kept": kept, "round_trip_error": error, "clipped_samples": clipped},
            "listen": listened, "seconds": round(time.time() - started, 2)}


def _mean(values) -> Optional[float]:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None
