"""Export trained attackers and defences as SavedModels that TF Serving loads.

Layout: `saved_models/<name>/<version>/` with integer versions, as TF Serving expects.
The standardisation statistics are baked into every signature, so clients send and
receive plain (unstandardised) log-Mels:

  attacker  serving_default   log_mel [B, 373, 64]  -> adversarial_log_mel, perturbation
            perturb_waveform  waveform [B, samples] (16 kHz mono)
                              -> adversarial_log_mel, perturbation, clean_log_mel,
                                 adversarial_waveform [B, samples]
  defence   classify          log_mel [B, 373, 64]  -> probabilities [B, n], label [B]
            serving_default   the same function as classify

`perturb_waveform` computes the log-Mel with `features.log_mel` / `features.fix_length`,
the same functions `prepare` runs. `perturbation` is x' - x in log-Mel units (eta * std).
`adversarial_waveform` is that perturbation rendered as audio by `data.rendering.render`
(STFT gain with the clean phase, overlap-add inverse; the function the evaluation scores),
clipped to [-1, 1]; re-extracting its log-Mel gives the audio-domain attack.
Assets: labels.txt, feature_config.json, export.json (which run, data and checkpoint).

The SavedModel is written by Keras's `ExportArchive`, one endpoint per signature with an
explicit input signature. The archive tracks the very `tf.Variable`s the endpoints read,
so the MetaGraph's saver restores the variables the signatures use: the model runs under
TF Serving's session-based loader (restore op, init op, run the signature; also what
`saved_model_cli run` does), not only under `tf.saved_model.load`. (Holding the Keras model
in a `tf.Module` does not do that: each Keras variable is then saved as a *copy* that the
saver restores, while the signatures read the original, which a session never initialises.)
The archive does not `track()` the model: that would store every weight a second time.

Before a version is put in place, every op of its graphs (function library included) is
checked against core TensorFlow: an op a stock TF Serving build lacks (tensorflow-io's
`IO>...` ops, any other custom op library's) fails the export with a `TfadvserError`.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfadvser.config import FeatureConfig
from tfadvser.data.features import fix_length, log_mel
from tfadvser.data.folder import DataFolder, load_data
from tfadvser.data.rendering import clip_audio, render
from tfadvser.errors import TfadvserError
from tfadvser.runs import load_run
from tfadvser.runtime.files import atomic_path

# endpoint name -> (function, input signature: one TensorSpec per positional argument)
Endpoints = Mapping[str, tuple[Callable, Sequence[tf.TensorSpec]]]


def _log_mel_batch(waveform: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    return tf.map_fn(lambda w: fix_length(log_mel(w, config), config), waveform,
                     fn_output_signature=tf.TensorSpec(config.shape, tf.float32))


def attacker_endpoints(generator: keras.Model, mean, std, config: FeatureConfig) -> Endpoints:
    """`serving_default` (log-Mel in) and `perturb_waveform` (waveform in) of a generator.
    mean and std (per mel bin) become constants of the graphs."""
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)

    def perturb(log_mel):
        x = (log_mel - mean) / std
        eta = generator(x, training=False)
        return {"adversarial_log_mel": (x + eta) * std + mean, "perturbation": eta * std}

    def perturb_waveform(waveform):
        clean = _log_mel_batch(waveform, config)
        outputs = perturb(clean)
        audio = clip_audio(render(waveform, outputs["perturbation"], config))
        return {**outputs, "clean_log_mel": clean, "adversarial_waveform": audio}

    return {"serving_default": (perturb, [tf.TensorSpec([None, *config.shape], tf.float32,
                                                        name="log_mel")]),
            "perturb_waveform": (perturb_waveform, [tf.TensorSpec([None, None], tf.float32,
                                                                  name="waveform")])}


def defence_endpoints(model: keras.Model, mean, std, labels: Sequence[str],
                      config: FeatureConfig) -> Endpoints:
    """`classify` of a defence (`write_saved_model` also serves it as `serving_default`)."""
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    labels = [str(label) for label in labels]

    def classify(log_mel):
        log_probs = model((log_mel - mean) / std, training=False)
        return {"probabilities": tf.exp(log_probs),
                "label": tf.gather(tf.constant(labels), tf.argmax(log_probs, axis=-1))}

    return {"classify": (classify, [tf.TensorSpec([None, *config.shape], tf.float32,
                                                  name="log_mel")])}


# ---------------------------------------------------------------------------------------
# Ops a stock TF Serving build has

def _is_core_op(op: str) -> bool:
    """Whether `op` is one of core TensorFlow's ops, the ops every TF Serving build of this
    TensorFlow version has. `tf.raw_ops` is generated from TensorFlow's own op libraries;
    ops that tensorflow-io or another custom op library register at run time are in the
    process's op registry but never there (tensorflow-io's are named `IO>...`, not even an
    identifier). Conservative: a core op without a Python wrapper would count as foreign,
    but none of those appear in a saved graph."""
    return op.isidentifier() and hasattr(tf.raw_ops, op)


def foreign_ops(graph_defs: Iterable[tf.compat.v1.GraphDef]) -> dict[str, list[str]]:
    """Ops not in core TensorFlow -> where they occur ("graph" or a function's name), over
    each graph's nodes and every function of its library. A node whose op is a function of
    the library (a direct function call) is not an op."""
    found: dict[str, list[str]] = {}
    for graph_def in graph_defs:
        functions = {f.signature.name for f in graph_def.library.function}
        places = [("graph", graph_def.node)]
        places += [(f.signature.name, f.node_def) for f in graph_def.library.function]
        for place, nodes in places:
            for node in nodes:
                if node.op not in functions and not _is_core_op(node.op):
                    where = found.setdefault(node.op, [])
                    if place not in where:
                        where.append(place)
    return found


def check_serving_ops(export_dir, name: Optional[str] = None) -> None:
    """Raise a TfadvserError naming every op of the SavedModel at export_dir that a stock
    TF Serving build does not have. `name` (default: export_dir) starts the message."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    found = foreign_ops(meta.graph_def for meta in saved_model.meta_graphs)
    if not found:
        return
    listing = "; ".join(f"{op} (in {', '.join(where[:3])}{', ...' if len(where) > 3 else ''})"
                        for op, where in sorted(found.items()))
    hint = " (`IO>` ops are tensorflow-io's)" if any(op.startswith("IO>") for op in found) else ""
    raise TfadvserError(
        f"{name or export_dir}: not exported: its graph uses ops that are not core TensorFlow "
        f"ops, which a stock TF Serving build does not have{hint}: {listing}. The signatures "
        "must be computed with core TensorFlow ops only.")


# ---------------------------------------------------------------------------------------
# Writing versions

def next_version(model_dir: Path) -> int:
    """One more than the largest integer-named version folder under `model_dir` (1 if none)."""
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


@contextlib.contextmanager
def _quiet_keras():
    """ExportArchive prints every endpoint's signature to stdout; the CLI prints its own line."""
    was = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        yield
    finally:
        if was:
            keras.config.enable_interactive_logging()


def write_saved_model(endpoints: Endpoints, path) -> None:
    """An ExportArchive with one endpoint per signature, written to `path`. Without an
    endpoint named `serving_default`, the first one is also served under that name (one
    function, two signature keys)."""
    archive = keras.export.ExportArchive()
    for name, (fn, input_signature) in endpoints.items():
        archive.add_endpoint(name, fn, input_signature=list(input_signature))
    with _quiet_keras():
        archive.write_out(str(path))


def export_endpoints(endpoints: Endpoints, out_root, name: str, version: Optional[int],
                     assets: Mapping[str, str]) -> Path:
    """Save into out_root/name/version via a temporary folder; never over an existing version,
    and never a model whose graph needs ops TF Serving lacks."""
    model_dir = Path(out_root) / name
    version = next_version(model_dir) if version is None else version
    if version < 1:
        raise TfadvserError(f"versions are positive integers, got {version}")
    target = model_dir / str(version)
    if target.exists():
        raise TfadvserError(f"{target} already exists; TF Serving versions are immutable, "
                            "choose another --version or leave it out for the next free one")
    with atomic_path(target, directory=True) as tmp:
        write_saved_model(endpoints, tmp)
        check_serving_ops(tmp, str(target))
        (tmp / "assets").mkdir(exist_ok=True)
        for filename, text in assets.items():
            (tmp / "assets" / filename).write_text(text, encoding="utf-8")
    return target


def _assets(data: DataFolder, origin: dict) -> dict[str, str]:
    return {"labels.txt": "\n".join(data.labels) + "\n",
            "feature_config.json": json.dumps(data.feature_config.to_dict(), indent=2),
            "export.json": json.dumps(origin, indent=2)}


def export_attacker(generator: keras.Model, data: DataFolder, out_root, name: str,
                    version: Optional[int], origin: dict) -> Path:
    """Export a generator with `data`'s statistics and feature config baked in (signatures
    `serving_default`, `perturb_waveform`) to out_root/name/version; return that folder."""
    endpoints = attacker_endpoints(generator, data.mean, data.std, data.feature_config)
    return export_endpoints(endpoints, out_root, name, version, _assets(data, origin))


def export_defence(model: keras.Model, data: DataFolder, out_root, name: str,
                   version: Optional[int], origin: dict) -> Path:
    """Export a defence with `data`'s statistics and labels baked in (signatures `classify`
    and its alias `serving_default`) to out_root/name/version; return that folder."""
    endpoints = defence_endpoints(model, data.mean, data.std, list(data.labels),
                                  data.feature_config)
    return export_endpoints(endpoints, out_root, name, version, _assets(data, origin))


def export_from_run(run_dir, out_root, name: str, version: Optional[int] = None,
                    attacker: Optional[str] = None, defence: Optional[str] = None) -> Path:
    """Export one trained attacker (`attacker`: LABEL[:TASK] or a task key, see
    `attack.tasks.find_task`) or one defence (`defence`: its name) of a run, with the run's
    data statistics and an export.json naming the run, data and checkpoint. Returns the
    version folder. Raises TfadvserError unless exactly one of the two is given, or when the
    run, the task or the defence is missing."""
    from tfadvser.attack.tasks import find_task, load_generator
    from tfadvser.defence.victims import load_defence

    if (attacker is None) == (defence is None):
        raise TfadvserError("name exactly one of --attacker or --defence")
    run = load_run(run_dir)
    data = load_data(run["data_dir"])
    origin = {"run": str(Path(run_dir).resolve()), "data_fingerprint": run["fingerprint"],
              "profile": run["profile"]}
    if attacker is not None:
        task = find_task(run_dir, attacker)
        return export_attacker(load_generator(run_dir, task), data, out_root, name, version,
                               {**origin, "attacker": attacker, "task": task})
    return export_defence(load_defence(run_dir, defence, data), data, out_root, name, version,
                          {**origin, "defence": defence})
