"""A user's own SER model as a training target of the attacker.

`tfadvser train attacker --victim mine=model.keras --defences mine` (or mixed with the run's
defences, `--defences cnn4,mine`) trains the generator against the model exactly as against
a defence of the run: `defence/external.py` loads, checks and adapts it to a defence's
interface (standardised log-Mel [B, frames, mels] in, log-probabilities [B, C] out, which
is what the C&W term of `attack/losses.py` takes), and the one training loop
(`attack/training.py`) uses it where it would use a defence.

What a training target needs beyond an evaluation-only victim:

- Gradients from its output to the log-Mel. A `waveform_16k` victim reads audio; the
  project computes log-Mels from audio and does not invert them, so there is no gradient
  from such a victim to the generator's output: refused as a training target (it can still
  be evaluated on the rendered attack, `experiment/victims.py`). A log-Mel model whose
  true-class log-probability has no gradient, or a zero or non-finite one, on the probe
  clips (a hard argmax output, a constant model) is refused too: the C&W term would give
  the generator nothing to learn from.
- A pin. Where a run defence's task key holds its model file's hash, a target's holds
  `target_pin`: its weights' digest (`external.victim_digest`) with the input and output
  kinds that define the function attacked. A changed model therefore gets new task keys and
  is trained against, never matched to the old tasks; the sequence record keeps the pins,
  and `check_pins` refuses to evaluate a sequence against a victim of the same name that is
  not the model it was trained against.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfadvser.data.folder import DataFolder
from tfadvser.defence.external import ExternalVictim, VictimSpec, load_victims, probe_batch
from tfadvser.errors import TfadvserError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def training_targets(specs: Sequence[VictimSpec], data: DataFolder, reserved: Sequence[str],
                     trust_code: bool = False) -> dict[str, ExternalVictim]:
    """Load and check each of `specs` as a training target against `data`, by name.

    Names must not be one of `reserved` (the run's defence names) and, as they become part
    of sequence labels (folder names), must be letters, digits, '.', '_' and '-'. Raises
    TfadvserError naming the victim for another name, a waveform input, a model without a
    usable input gradient on the first dev clips (module doc), and everything
    `external.load_victim` refuses (changed weights, input shape or dtype, class count,
    label order, output kind).
    """
    check_targets(specs, [spec.name for spec in specs])
    if not specs:
        return {}
    x, y = probe_batch(data)
    victims = load_victims(specs, data, x, trust_code, reserved)
    for victim in victims.values():
        _check_gradient(victim, x, y)
    return victims


def check_targets(specs: Sequence[VictimSpec], names: Sequence[str]) -> None:
    """What can be checked of training targets before loading anything: raises
    TfadvserError naming the victim when one of `specs` is not among `names` (the sequence's
    defences: a model given but not trained against is most likely a typo in them), has a
    name other than letters, digits, '.', '_' and '-', or takes a waveform (module doc)."""
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
    `victim_digest` and the input and output kinds its adapter used."""
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
