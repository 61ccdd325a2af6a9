"""External victims in a run's evaluation: loading them against the run's data, and scoring
the waveform ones, which see attacks only as rendered audio.

Log-Mel victims (`defence/external.py`) are adapted to the defences' interface and scored
by the same code as the run's own defences. A `waveform_16k` victim is scored on every dev
and test clip's clean audio (decoded from the corpus as `prepare` decoded it) and on the
attacker's perturbation rendered into that audio (`data.rendering.render`, clipped to
[-1, 1] as a WAV holds it: the audio round trip of `evaluation/round_trip.py`, without the
re-extraction, since the victim extracts its own features).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import DataFolder
from tfadvser.data.rendering import clip_audio, corpus_waveform, render
from tfadvser.defence.external import PROBE_CLIPS, ExternalVictim, VictimSpec, load_victims, probe_batch
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.scoring import EVAL_BATCH


def victims_for_run(specs: Sequence[VictimSpec], data: DataFolder, reserved: Sequence[str],
                    trust_code: bool = False) -> dict[str, ExternalVictim]:
    """Load and check `specs` against `data` (probed on its first dev clips); names must
    not clash with `reserved` (the run's defences). Raises TfadvserError (one line, naming
    the victim) on any mismatch; see `external.load_victim`."""
    if not specs:
        return {}
    probe = probe_batch(data)[0]
    waves = None
    if any(s.input == "waveform_16k" for s in specs):
        rows = next(iter(make_dataset(data, "dev", PROBE_CLIPS, include_info=True)))
        waves = [_waveform(data, p.decode()) for p in rows["path"].numpy()]
    return load_victims(specs, data, probe, trust_code, reserved, waves)


def _waveform(data: DataFolder, path: str) -> np.ndarray:
    try:
        return corpus_waveform(data, path)
    except OSError as exc:
        raise TfadvserError(f"a waveform victim needs the corpus audio of {data.path}: {exc}") from None


class WaveformSplits:
    """The clean audio of every clip of `splits`, in the order of `make_dataset(data, split,
    EVAL_BATCH)`'s batches (checked on the labels), for waveform victims."""

    def __init__(self, data: DataFolder, splits: Sequence[str], truth: Mapping[str, np.ndarray]):
        self.data, self.waves = data, {}
        for split in splits:
            rows = list(make_dataset(data, split, EVAL_BATCH, include_info=True).as_numpy_iterator())
            labels = np.concatenate([r["label"] for r in rows])
            if not np.array_equal(labels, truth[split]):
                raise TfadvserError(f"{data.path}: the {split} split read twice in other orders")
            self.waves[split] = [_waveform(self.data, p.decode())
                                 for r in rows for p in r["path"]]

    def predictions(self, victim: ExternalVictim, split: str, eta=None) -> np.ndarray:
        """Argmax predictions [N] of `victim` on the split's clean clips, or with `eta`
        (standardised log-Mel perturbations [N, frames, mels]) rendered into them."""
        out = []
        for i, wave in enumerate(self.waves[split]):
            audio = tf.constant(wave[None], tf.float32)
            if eta is not None:
                delta = tf.constant((eta[i] * self.data.std)[None], tf.float32)
                audio = clip_audio(render(audio, delta, self.data.feature_config))
            out.append(int(np.argmax(np.asarray(victim(audio))[0])))
        return np.array(out)
