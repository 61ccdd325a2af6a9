"""Victims from outside the run: a user's own SER model, read safely from its file, checked,
and adapted to what the run's defences are ("standardised log-Mel [B, 373, 64] in, log-probabilities
[B, C] out"), so that the project's scoring applies to it unchanged.

A victim is named on the command line (`--victim NAME=PATH`) or in a manifest, a JSON list
(or {"victims": [...]}) of objects:

    {"name": "my-ser", "path": "models/ser.keras",      (relative to the manifest's folder)
     "input": "log_mel_standardised",                    (or "log_mel_raw", "waveform_16k")
     "output": "log_probs",                              (or "probs", "logits"; omitted:
                                                          inferred from a probe batch)
     "sha256": "0123456789abcdef",                       (`victim_digest`, 16+ hex digits)
     "labels": ["anger", ...],                           (optional: the model's class order)
     "signature": "serving_default", "output_key": "output_0"}   (SavedModels only)

Input kinds: `log_mel_standardised` takes the run's standardised log-Mel as is;
`log_mel_raw` gets it de-standardised with the data's training statistics (x * std + mean,
natural-log mel magnitude as `prepare` writes it); `waveform_16k` takes mono 16 kHz audio
[B, samples]: such a victim never sees a log-Mel, so attacks on it are rendered as audio
first (`data/rendering.py`, `victims.WaveformSplits`).

This module reads and adapts one model file; `victims.py` is the loader that callers use
(`load_outside`, `training_targets`, `victims_for_run`), for outside models as for the
run's own.

Loading is a security boundary. A `.keras` file loads with Keras's safe mode: a model that
carries deserialised Python code (a `Lambda` layer's bytecode) is refused unless the user
passes `trust_code=True` (`--trust-model-code`), which warns. A SavedModel holds TensorFlow
graphs only and runs no Python code of its author when loaded (`tf.saved_model.load`).

Every mismatch is a one-line `TfadvserError` naming the victim: weights that differ from the
pinned hash, an input shape or dtype the data cannot feed, a class count or a declared label
order other than the data's, an output that is not the declared distribution.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import DataFolder
from tfadvser.errors import TfadvserError

INPUT_KINDS = ("log_mel_standardised", "log_mel_raw", "waveform_16k")
OUTPUT_KINDS = ("log_probs", "probs", "logits")
DIGEST_DIGITS = 16  # `victims.weights_digest` is this digest, for the run's models too
_TOLERANCE = 1e-3  # a distribution's sum (or log-sum-exp) may differ from 1 (0) by this
PROBE_CLIPS = 4  # dev clips run through each victim once, to check its output


@dataclasses.dataclass(frozen=True)
class VictimSpec:
    """What the user declared about one victim (see the module doc for the fields)."""

    name: str
    path: Path
    input: str = "log_mel_standardised"
    output: Optional[str] = None
    sha256: Optional[str] = None
    labels: Optional[tuple[str, ...]] = None
    signature: str = "serving_default"
    output_key: Optional[str] = None

    def to_dict(self) -> dict:
        """JSON-ready, for results.json."""
        return {**dataclasses.asdict(self), "path": str(self.path),
                "labels": list(self.labels) if self.labels else None}


def parse_victim_option(text: str) -> VictimSpec:
    """`NAME=PATH` -> VictimSpec with the defaults (standardised log-Mel in, output
    inferred, no pin). Raises TfadvserError for another form."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise TfadvserError(f"--victim {text!r}: expected NAME=PATH")
    return _spec({"name": name.strip(), "path": path.strip()}, Path.cwd(), f"--victim {text}")


def read_manifest(path) -> list[VictimSpec]:
    """The victims of a manifest file (module doc); paths relative to its folder. Raises
    TfadvserError naming the file and entry for anything malformed."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TfadvserError(f"{path} not found") from None
    except json.JSONDecodeError as exc:
        raise TfadvserError(f"{path}: not valid JSON ({exc})") from None
    entries = record.get("victims") if isinstance(record, dict) else record
    if not isinstance(entries, list) or not entries:
        raise TfadvserError(f"{path}: expected a non-empty list of victims (or {{\"victims\": [...]}})")
    return [_spec(entry, path.parent, f"{path} entry {i}") for i, entry in enumerate(entries)]


_FIELDS = {f.name for f in dataclasses.fields(VictimSpec)}


def _spec(entry, base: Path, where: str) -> VictimSpec:
    if not isinstance(entry, dict) or "name" not in entry or "path" not in entry:
        raise TfadvserError(f"{where}: each victim needs at least a name and a path")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise TfadvserError(f"{where}: unknown field(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(_FIELDS))}")
    spec = VictimSpec(**{**entry, "path": base / Path(entry["path"]).expanduser(),
                         "labels": tuple(entry["labels"]) if entry.get("labels") else None})
    if spec.input not in INPUT_KINDS:
        raise TfadvserError(f"victim {spec.name!r}: input {spec.input!r}; choose one of "
                            f"{', '.join(INPUT_KINDS)}")
    if spec.output is not None and spec.output not in OUTPUT_KINDS:
        raise TfadvserError(f"victim {spec.name!r}: output {spec.output!r}; choose one of "
                            f"{', '.join(OUTPUT_KINDS)}")
    if spec.sha256 is not None and (len(spec.sha256) < DIGEST_DIGITS
                                    or any(c not in "0123456789abcdef" for c in spec.sha256.lower())):
        raise TfadvserError(f"victim {spec.name!r}: sha256 must be at least {DIGEST_DIGITS} hex "
                            "digits (as `tfadvser evaluate` prints it)")
    return spec


# ---------------------------------------------------------------------------------------
# Loading

def _is_saved_model(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").exists()


def load_model_file(spec: VictimSpec, trust_code: bool = False):
    """The raw model behind a spec: a `keras.Model` (`.keras`, safe mode unless
    `trust_code`) or a SavedModel's signature function. Raises TfadvserError naming the
    victim when the path does not exist, is neither, is not a readable Keras file (not a
    zip archive, truncated, missing or damaged members), or the model carries code and
    `trust_code` is off."""
    path = spec.path
    if not path.exists():
        raise TfadvserError(f"victim {spec.name!r}: {path} does not exist")
    if _is_saved_model(path):
        loaded = tf.saved_model.load(str(path))
        if spec.signature not in loaded.signatures:
            raise TfadvserError(f"victim {spec.name!r} ({path}): no signature {spec.signature!r}; "
                                f"it has {', '.join(loaded.signatures) or 'none'}")
        return loaded
    if not (path.is_file() and path.suffix == ".keras"):
        raise TfadvserError(f"victim {spec.name!r}: {path} is neither a .keras file nor a "
                            "SavedModel folder (with saved_model.pb)")
    _check_keras_archive(spec)
    if trust_code:
        warnings.warn(f"victim {spec.name!r}: loading {path} with Keras safe mode off; any "
                      "Python code it carries will run (--trust-model-code)", stacklevel=2)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not trust_code)
    except (OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # a damaged member
        raise TfadvserError(f"victim {spec.name!r}: {path} is not a readable Keras file "
                            f"({_first_line(exc)})") from None
    except ValueError as exc:
        if "unsafe" in str(exc) or "lambda" in str(exc).lower():
            raise TfadvserError(
                f"victim {spec.name!r} ({path}): the model carries Python code (a Lambda layer); "
                "refused in safe mode. Load it only if you trust its author, with "
                "--trust-model-code") from None
        raise TfadvserError(f"victim {spec.name!r} ({path}): Keras cannot load it: "
                            f"{_first_line(exc)}") from None
    except TypeError as exc:
        raise TfadvserError(f"victim {spec.name!r} ({path}): Keras cannot load it: "
                            f"{_first_line(exc)}") from None


_KERAS_CONFIG, _KERAS_WEIGHTS = "config.json", ("model.weights.h5", "model.weights.npz")


def _check_keras_archive(spec: VictimSpec) -> None:
    """Refuse a `.keras` path that is not what Keras 3 writes: a zip archive holding a JSON
    `config.json` and the weights (`model.weights.h5`, or `.npz`). Keras itself reports
    most of these as "File not found"; raises TfadvserError naming the path instead."""
    refused = f"victim {spec.name!r}: {spec.path} is not a readable Keras file"
    if spec.path.stat().st_size == 0:
        raise TfadvserError(f"{refused} (it is empty)")
    try:
        with zipfile.ZipFile(spec.path) as archive:
            names = set(archive.namelist())
            config = archive.read(_KERAS_CONFIG) if _KERAS_CONFIG in names else None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise TfadvserError(f"{refused} (not a zip archive, or a truncated one: "
                            f"{_first_line(exc)})") from None
    if config is None:
        raise TfadvserError(f"{refused} (no {_KERAS_CONFIG} in the archive)")
    if not names.intersection(_KERAS_WEIGHTS):
        raise TfadvserError(f"{refused} (no {' or '.join(_KERAS_WEIGHTS)} in the archive)")
    try:
        json.loads(config)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TfadvserError(f"{refused} ({_KERAS_CONFIG}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def victim_digest(raw) -> str:
    """The first 16 hex digits of a SHA-256 over the victim's weights' bytes, in the model's
    own order: `keras.Model.get_weights()` (`victims.weights_digest`, the pin of the
    run's defences too), or a SavedModel's `variables` (order of its object graph). Equal for
    equal weights whatever file or process they come from."""
    digest = hashlib.sha256()
    arrays = raw.get_weights() if isinstance(raw, keras.Model) else [v.numpy() for v in raw.variables]
    for weight in arrays:
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:DIGEST_DIGITS]


# ---------------------------------------------------------------------------------------
# The adapter

class ExternalVictim(keras.Model):
    """A user's model as a defence of the run: standardised log-Mel [B, frames, mels] ->
    log-probabilities [B, C], float32 (for `waveform_16k` victims: waveform [B, samples] ->
    log-probabilities; see `is_waveform`). Frozen; differentiable when the wrapped model is.

    `spec` is what was declared, `output_kind` the output kind used (declared or inferred),
    `digest` the weights' `victim_digest`.
    """

    def __init__(self, spec: VictimSpec, raw, mean, std, output_kind: str, input_key=None,
                 output_key=None, **kwargs):
        super().__init__(name="victim_" + re.sub(r"[^A-Za-z0-9_]", "_", spec.name), **kwargs)
        self.spec, self.output_kind, self.digest = spec, output_kind, victim_digest(raw)
        self._raw = raw
        self._keras = isinstance(raw, keras.Model)
        self._function = None if self._keras else raw.signatures[spec.signature]
        self._input_key, self._output_key = input_key, output_key
        self._mean = tf.constant(np.asarray(mean, np.float32))
        self._std = tf.constant(np.asarray(std, np.float32))
        self.trainable = False

    @property
    def is_waveform(self) -> bool:
        """Whether the victim takes audio rather than a log-Mel."""
        return self.spec.input == "waveform_16k"

    def native(self, x):
        """The wrapped model's own output for its own input `x`."""
        if self._keras:
            return self._raw(x, training=False)
        return self._function(**{self._input_key: x})[self._output_key]

    def call(self, x, training=False):
        x = tf.cast(x, tf.float32)
        if self.spec.input == "log_mel_raw":
            x = x * self._std + self._mean
        return to_log_probs(tf.cast(self.native(x), tf.float32), self.output_kind)


def to_log_probs(y: tf.Tensor, kind: str) -> tf.Tensor:
    """[B, C] log-probabilities from log-probabilities (unchanged), probabilities (log,
    floored at 1e-12) or logits (log-softmax)."""
    if kind == "log_probs":
        return y
    if kind == "probs":
        return tf.math.log(tf.maximum(y, 1e-12))
    return tf.nn.log_softmax(y, axis=-1)


def infer_output_kind(y: np.ndarray) -> str:
    """The kind of a [B, C] output batch: rows of values in [0, 1] summing to 1 are
    probabilities, rows of values <= 0 whose exponentials sum to 1 log-probabilities,
    anything else logits."""
    y = np.asarray(y, np.float64)
    if np.all(y >= -_TOLERANCE) and np.all(y <= 1 + _TOLERANCE) and np.allclose(y.sum(-1), 1, atol=_TOLERANCE):
        return "probs"
    if np.all(y <= _TOLERANCE) and np.allclose(np.exp(y).sum(-1), 1, atol=_TOLERANCE):
        return "log_probs"
    return "logits"


def probe_batch(data: DataFolder) -> tuple[np.ndarray, np.ndarray]:
    """(standardised log-Mels [n, frames, mels], labels [n]) of the data's first
    `PROBE_CLIPS` dev clips: what every victim is checked on."""
    x, y = next(iter(make_dataset(data, "dev", PROBE_CLIPS)))
    return x.numpy(), y.numpy()


def _expected_input(spec: VictimSpec, data: DataFolder) -> tuple:
    return (None, None) if spec.input == "waveform_16k" else (None, *data.shape)


def _shape_fits(declared, wanted) -> bool:
    declared = tuple(declared)
    if len(declared) != len(wanted):
        return False
    return all(d is None or w is None or d == w for d, w in zip(declared, wanted))


def _signature_io(spec: VictimSpec, raw) -> tuple[str, tf.TensorSpec, str]:
    function = raw.signatures[spec.signature]
    _, inputs = function.structured_input_signature
    if len(inputs) != 1:
        raise TfadvserError(f"victim {spec.name!r}: signature {spec.signature!r} takes "
                            f"{len(inputs)} inputs ({', '.join(inputs)}); expected one")
    (input_key, input_spec), = inputs.items()
    outputs = function.structured_outputs
    if spec.output_key is not None:
        if spec.output_key not in outputs:
            raise TfadvserError(f"victim {spec.name!r}: signature {spec.signature!r} has no "
                                f"output {spec.output_key!r} (it has {', '.join(outputs)})")
        output_key = spec.output_key
    elif len(outputs) == 1:
        output_key = next(iter(outputs))
    else:
        raise TfadvserError(f"victim {spec.name!r}: signature {spec.signature!r} has outputs "
                            f"{', '.join(outputs)}; name one as output_key in the manifest")
    return input_key, input_spec, output_key


def load_victim(spec: VictimSpec, data: DataFolder, probe: np.ndarray,
                trust_code: bool = False, probe_waves: Optional[Sequence[np.ndarray]] = None
                ) -> ExternalVictim:
    """Load, pin, check and adapt one victim (module doc).

    `probe`: a few standardised log-Mels [n, frames, mels] of the data (for `waveform_16k`
    victims, `probe_waves`: a few 16 kHz clips), run once to check the output's shape and,
    when declared, its kind (or to infer it). Raises TfadvserError naming the victim for a
    changed weight file, an input the data cannot feed, a class count or label order other
    than the data's, or an output that is not the declared distribution.
    """
    raw = load_model_file(spec, trust_code)
    digest = victim_digest(raw)
    if spec.sha256 is not None and not digest.startswith(spec.sha256.lower()[:DIGEST_DIGITS]):
        raise TfadvserError(f"victim {spec.name!r} ({spec.path}) changed: its weights hash to "
                            f"{digest}, the manifest pins {spec.sha256}")
    if spec.labels is not None and tuple(spec.labels) != tuple(data.labels):
        raise TfadvserError(f"victim {spec.name!r}: label order {', '.join(spec.labels)} differs "
                            f"from the data's {', '.join(data.labels)}")
    input_key = output_key = None
    if isinstance(raw, keras.Model):
        if len(raw.inputs) != 1:
            raise TfadvserError(f"victim {spec.name!r}: the model takes {len(raw.inputs)} "
                                "inputs; expected one")
        shape, dtype = tuple(raw.inputs[0].shape), raw.inputs[0].dtype
    else:
        input_key, input_spec, output_key = _signature_io(spec, raw)
        shape, dtype = tuple(input_spec.shape), input_spec.dtype
    wanted = _expected_input(spec, data)
    if not _shape_fits(shape, wanted):
        raise TfadvserError(f"victim {spec.name!r}: input shape {_show(shape)}, the data gives "
                            f"{_show(wanted)} ({spec.input})")
    if dtype is not None and tf.as_dtype(dtype) != tf.float32:
        raise TfadvserError(f"victim {spec.name!r}: input dtype {tf.as_dtype(dtype).name}, "
                            "expected float32")

    victim = ExternalVictim(spec, raw, data.mean, data.std, spec.output or "logits",
                            input_key=input_key, output_key=output_key)
    if victim.is_waveform:
        if not probe_waves:
            raise TfadvserError(f"victim {spec.name!r}: a waveform victim needs clean clips to probe")
        outputs = [np.asarray(victim.native(tf.constant(w[None], tf.float32))) for w in probe_waves]
        out = np.concatenate(outputs) if all(o.ndim == 2 for o in outputs) else outputs[0]
        batch = len(probe_waves)
    else:
        x = probe if spec.input == "log_mel_standardised" else probe * data.std + data.mean
        out = np.asarray(victim.native(tf.constant(x, tf.float32)))
        batch = len(probe)
    if out.ndim != 2 or out.shape[0] != batch:
        raise TfadvserError(f"victim {spec.name!r}: output shape {_show(out.shape)} for a batch "
                            f"of {batch}; expected [{batch}, {data.n_classes}] (one score per class)")
    if out.shape[1] != data.n_classes:
        raise TfadvserError(f"victim {spec.name!r}: {out.shape[1]} classes, the data has "
                            f"{data.n_classes} ({', '.join(data.labels)})")
    if not np.all(np.isfinite(out)):
        raise TfadvserError(f"victim {spec.name!r}: non-finite outputs on clean clips")
    found = infer_output_kind(out)
    if spec.output is None:
        kind = found
    elif spec.output != "logits" and found != spec.output:
        what = "probabilities (values in [0, 1] summing to 1)" if spec.output == "probs" \
            else "log-probabilities (exp sums to 1)"
        raise TfadvserError(f"victim {spec.name!r}: declared output {spec.output} but the "
                            f"outputs are not {what}")
    else:
        kind = spec.output
    victim.output_kind = kind
    return victim


def _show(shape) -> str:
    return "[" + ", ".join("B" if i == 0 and d is None else ("?" if d is None else str(d))
                           for i, d in enumerate(shape)) + "]"


def check_victims(specs: Sequence[VictimSpec], reserved: Sequence[str] = ()) -> None:
    """What can be checked of `specs` before any model is loaded. Raises TfadvserError (one
    line, naming the victim) for a name given twice, a name equal, ignoring letter case, to
    another victim's or to one of `reserved` (the run's defences: names become folder and
    column names, and `CNN4` beside `cnn4` would be one folder on a case-insensitive file
    system and a trap in a table), or a path that does not exist."""
    taken = {name.lower(): (name, f"the run's defence {name!r}") for name in reserved}
    for spec in specs:
        first, owner = taken.get(spec.name.lower(), (None, None))
        if first == spec.name and owner.startswith("victim"):
            raise TfadvserError(f"victim name {spec.name!r} is given twice")
        if first is not None:
            note = " (victim names are compared ignoring letter case)" if first != spec.name else ""
            raise TfadvserError(f"victim name {spec.name!r} is already taken by {owner}{note}")
        taken[spec.name.lower()] = (spec.name, f"victim {spec.name!r}")
    for spec in specs:
        if not spec.path.exists():
            raise TfadvserError(f"victim {spec.name!r}: {spec.path} does not exist")
