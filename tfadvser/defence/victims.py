"""A model under attack: the one loader for everything an attacker is trained against or
scored on.

Four kinds of victim, one interface:

  kind      what                                          where it comes from
  defence   the run's CNN-4, VGG-16, ResNet-50            runs/NAME/defences/<name>/   (training.py)
  control   the same defence trained with another seed    defences/<name>-seed<N>/     (training.py)
  hardened  a defence adversarially fine-tuned            defences/<name>-adv-<hash>/  (hardening.py)
  external  the user's own model                          --victim NAME=PATH, --victims FILE (external.py)

Each is loaded frozen and adapted to the defences' interface, standardised log-Mel
[B, frames, mels] float32 in, log-probabilities [B, C] out (`load_defence`,
`external.load_victim`; a `waveform_16k` outside model takes 16 kHz audio [B, samples]
instead and is scored on the attack rendered as audio, `WaveformSplits`), and pinned by
its weights (`weights_digest`: 16 hex digits of SHA-256 over the weights' bytes, equal
for equal weights whatever file they come from). It is used in one of two ways:

- as a training target of the attacker (`training_targets`): it must give the C&W term
  a gradient with respect to the log-Mel, and its pin stands in the attacker's task keys
  where a run defence's model-file hash stands (`target_pin`), so a changed model is
  trained against anew, and evaluation refuses to score an attacker against a namesake
  that is not the model it was trained against (`check_pins`);
- as a scorer in an evaluation (`victims_for_run`, `run_defences`).

Every refusal is a one-line TfadvserError naming the victim.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfadvser.config import DEFENCE_NAMES
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import DataFolder
from tfadvser.data.rendering import clip_audio, corpus_waveform, render
from tfadvser.defence.external import (PROBE_CLIPS, ExternalVictim, VictimSpec, check_victims,
                                       load_victim, probe_batch, victim_digest)
from tfadvser.defence.training import (CONFIG_FILE, CONTROL_MARK, MODEL_FILE, RESULTS_FILE,
                                       defence_dir)
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.scoring import EVAL_BATCH
from tfadvser.runtime.files import read_json

__all__ = ["VictimSpec", "ExternalVictim", "KINDS", "HARDENED_MARK", "run_defences",
           "hardened_defences", "control_defences", "load_defence", "weights_digest",
           "load_outside", "training_targets", "check_targets", "target_pin", "check_pins",
           "victims_for_run", "WaveformSplits", "check_victims"]

KINDS = ("defence", "control", "hardened", "external")
HARDENED_MARK = "-adv-"  # `<base>-adv-<hash>`: a hardened defence's folder (hardening.py)

# One pin for every kind: for a Keras model, the digest of `get_weights()` in order.
weights_digest = victim_digest


# ---------------------------------------------------------------------------------------
# The run's own models

def hardened_defences(run_dir) -> list[str]:
    """Names of the finished hardened defences of a run (`tfadvser harden`), sorted."""
    return sorted(p.parent.name for p in
                  Path(run_dir).glob(f"defences/*{HARDENED_MARK}*/{RESULTS_FILE}"))


def control_defences(run_dir) -> list[str]:
    """Names of the finished seed controls of a run (`train defence --seed N`), sorted."""
    return sorted(p.parent.name for p in Path(run_dir).glob(f"defences/*{CONTROL_MARK}*/{RESULTS_FILE}")
                  if p.parent.name.split(CONTROL_MARK)[0] in DEFENCE_NAMES)


def run_defences(run_dir) -> dict[str, str]:
    """{name: kind} of every finished model of a run, in the order evaluations list them:
    the paper's defences (cnn4, vgg16, resnet50), then hardened ones, then seed controls."""
    own = {d: "defence" for d in DEFENCE_NAMES if (defence_dir(run_dir, d) / RESULTS_FILE).exists()}
    return {**own, **{d: "hardened" for d in hardened_defences(run_dir)},
            **{d: "control" for d in control_defences(run_dir)}}


def load_defence(run_dir, name: str, data: DataFolder | None = None) -> keras.Model:
    """A finished model of the run (any of `run_defences`), frozen (`trainable=False`):
    callers run it with training=False. Input log_mel [B, frames, n_mels] standardised,
    output log-probabilities [B, classes].

    With `data` (the `DataFolder` about to be used), refuse a model trained on other data.
    Raises TfadvserError when it is not trained or was trained on other data. Loaded models
    are shared within a process (per file version and strategy): reproduce and the lambda
    sweep open the same three defences dozens of times.
    """
    out = defence_dir(run_dir, name)
    if not (out / RESULTS_FILE).exists():
        raise TfadvserError(f"defence {name!r} is not trained in {run_dir}: run "
                            f"`tfadvser train defence --model {name} --out {run_dir} ...` first")
    if data is not None:
        trained_on = read_json(out / CONFIG_FILE)["data_fingerprint"]
        if trained_on != data.fingerprint:
            raise TfadvserError(f"defence {name!r} in {run_dir} was trained on other data "
                                f"(fingerprint {trained_on[:12]}, this data {data.fingerprint[:12]})")
    path = (out / MODEL_FILE).resolve()
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, id(tf.distribute.get_strategy()))
    if key not in _LOADED:
        model = keras.saving.load_model(path, compile=False)
        model.trainable = False
        _LOADED[key] = model
    return _LOADED[key]


_LOADED: dict[tuple, keras.Model] = {}


# ---------------------------------------------------------------------------------------
# Outside models

def load_outside(specs: Sequence[VictimSpec], data: DataFolder, reserved: Sequence[str] = (),
                 trust_code: bool = False, as_target: bool = False) -> dict[str, ExternalVictim]:
    """Load, pin, check and adapt each of `specs` against `data` (`external.load_victim`,
    probed on the data's first dev clips; waveform victims on those clips' corpus audio),
    by name. Names must not clash with `reserved` (the run's models, `check_victims`).
    `as_target`: also check what a training target needs (`training_targets`).

    Raises TfadvserError (one line, naming the victim) on any mismatch; for a waveform
    victim, also when the corpus audio cannot be read.
    """
    check_victims(specs, reserved)
    if not specs:
        return {}
    x, y = probe_batch(data)
    waves = None
    if not as_target and any(s.input == "waveform_16k" for s in specs):
        rows = next(iter(make_dataset(data, "dev", PROBE_CLIPS, include_info=True)))
        waves = [_waveform(data, p.decode()) for p in rows["path"].numpy()]
    victims = {spec.name: load_victim(spec, data, x, trust_code, waves) for spec in specs}
    if as_target:
        for victim in victims.values():
            _check_gradient(victim, x, y)
    return victims


def victims_for_run(specs: Sequence[VictimSpec], data: DataFolder, reserved: Sequence[str],
                    trust_code: bool = False) -> dict[str, ExternalVictim]:
    """`specs` loaded as scorers of an evaluation (`load_outside`); `reserved`: the run's
    models."""
    return load_outside(specs, data, reserved, trust_code)


def _waveform(data: DataFolder, path: str) -> np.ndarray:
    try:
        return corpus_waveform(data, path)
    except OSError as exc:
        raise TfadvserError(f"a waveform victim needs the corpus audio of {data.path}: {exc}") from None


class WaveformSplits:
    """The clean audio of every clip of `splits`, in the order of `make_dataset(data, split,
    EVAL_BATCH)`'s batches (checked on the labels), for waveform victims: they never see a
    log-Mel, so an attack reaches them rendered into the audio (`data.rendering.render`,
    clipped to [-1, 1] as a WAV holds it: the audio round trip of
    `evaluation/round_trip.py` without the re-extraction, since the victim extracts its own
    features)."""

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


# ---------------------------------------------------------------------------------------
# Outside models as training targets

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def training_targets(specs: Sequence[VictimSpec], data: DataFolder, reserved: Sequence[str],
                     trust_code: bool = False) -> dict[str, ExternalVictim]:
    """Load and check each of `specs` as a training target against `data`, by name.

    What a target needs beyond a scorer: gradients from its output to the log-Mel. A
    `waveform_16k` victim reads audio, and the project computes log-Mels from audio without
    inverting them, so there is no gradient to the generator's output: refused (it can still
    be scored on the rendered attack). A log-Mel model whose true-class log-probability has
    no gradient, or a zero or non-finite one, on the probe clips (a hard argmax output, a
    constant model) is refused too: the C&W term would give the generator nothing to learn.

    Names must not be one of `reserved` (the run's defence names) and, as they become part
    of sequence labels (folder names), must be letters, digits, '.', '_' and '-'. Raises
    TfadvserError naming the victim for all of these, and everything `external.load_victim`
    refuses (changed weights, input shape or dtype, class count, label order, output kind).
    """
    check_targets(specs, [spec.name for spec in specs])
    return load_outside(specs, data, reserved, trust_code, as_target=True)


def check_targets(specs: Sequence[VictimSpec], names: Sequence[str]) -> None:
    """What can be checked of training targets before loading anything: raises
    TfadvserError naming the victim when one of `specs` is not among `names` (the sequence's
    defences: a model given but not trained against is most likely a typo in them), has a
    name other than letters, digits, '.', '_' and '-', or takes a waveform."""
    for spec in specs:
        if spec.name not in names:
            raise TfadvserError(f"victim {spec.name!r} is not in --defences ({','.join(names)}): "
                                "name it there to train against it, or leave it out")
        if not _NAME.fullmatch(spec.name):  # it becomes part of the sequence's folder name
            raise TfadvserError(f"victim {spec.name!r}: a training target's name may hold only "
                                "letters, digits, '.', '_' and '-', starting with a letter or digit")
        if spec.input == "waveform_16k":
            raise TfadvserError(
                f"victim {spec.name!r}: a waveform_16k model cannot be a training target (no "
                "gradient from its audio input back to the log-Mel); evaluate it with "
                "`tfadvser evaluate --victims`, or give it a log-Mel input")


def _check_gradient(victim: ExternalVictim, x: np.ndarray, y: np.ndarray) -> None:
    """Refuse `victim` unless d log p(true class) / d x is finite and not zero everywhere."""
    x = tf.constant(x, tf.float32)
    try:
        with tf.GradientTape() as tape:
            tape.watch(x)
            log_probs = victim(x)
            true = tf.reduce_sum(log_probs * tf.one_hot(y, log_probs.shape[-1]), axis=-1)
        grad = tape.gradient(true, x)
    except LookupError as exc:  # an op without a registered gradient
        grad, why = None, f" ({str(exc).splitlines()[0]})"
    else:
        why = ""
    name = f"victim {victim.spec.name!r}"
    if grad is None:
        raise TfadvserError(f"{name}: its output has no gradient with respect to its input"
                            f"{why}; it can be evaluated (`tfadvser evaluate --victim`) but "
                            "not trained against")
    grad = grad.numpy()
    if not np.all(np.isfinite(grad)):
        raise TfadvserError(f"{name}: non-finite input gradients on clean clips; it cannot be "
                            "trained against")
    if not np.any(grad):
        raise TfadvserError(f"{name}: zero input gradient on all {len(grad)} probe clips (a "
                            "hard or constant output?); it cannot be trained against")


def target_pin(victim: ExternalVictim) -> dict:
    """What identifies a training target in task keys and sequence records: its weights'
    `weights_digest` and the input and output kinds its adapter used."""
    return {"weights_sha256": victim.digest, "input": victim.spec.input,
            "output": victim.output_kind}


def check_pins(sequences: Sequence[dict], victims: Mapping[str, ExternalVictim]) -> None:
    """Raise TfadvserError (one line, naming the victim and the sequence) when one of
    `victims` has the name of a training target of one of `sequences` (their records'
    "victims") but is not the same model (`target_pin`)."""
    for seq in sequences:
        for name, pinned in (seq.get("victims") or {}).items():
            if name not in victims:
                continue
            now = target_pin(victims[name])
            changed = [f"{k} {pinned.get(k)} -> {v}" for k, v in now.items() if pinned.get(k) != v]
            if changed:
                raise TfadvserError(
                    f"victim {name!r} ({victims[name].spec.path}) is not the model attacker "
                    f"{seq['label']} was trained against ({'; '.join(changed)}): retrain it with "
                    f"this model, or name the victim otherwise")
