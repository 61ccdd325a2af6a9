"""Export trained attackers and defences as SavedModels that TF Serving loads.

Layout: `saved_models/<name>/<version>/` with integer versions, as TF Serving expects.
The standardisation statistics are baked into every signature, so clients send and
receive plain (unstandardised) log-Mels:

  attacker  serving_default   log_mel [B, 373, 64]  -> adversarial_log_mel, perturbation
            perturb_waveform  waveform [B, samples] (16 kHz mono)
                              -> adversarial_log_mel, perturbation, clean_log_mel
  defence   classify          log_mel [B, 373, 64]  -> probabilities [B, n], label [B]

`perturb_waveform` computes the log-Mel with `features.log_mel` / `features.fix_length`,
the same functions `prepare` runs. `perturbation` is x' - x in log-Mel units (eta * std).
Assets: labels.txt, feature_config.json, export.json (which run, data and checkpoint).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import keras
import tensorflow as tf

from tfadvser.config import FeatureConfig
from tfadvser.errors import TfadvserError
from tfadvser.data.features import fix_length, log_mel


def _log_mel_batch(waveform: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    return tf.map_fn(lambda w: fix_length(log_mel(w, config), config), waveform,
                     fn_output_signature=tf.TensorSpec(config.shape, tf.float32))


class AttackerModule(tf.Module):
    def __init__(self, generator: keras.Model, mean, std, config: FeatureConfig):
        super().__init__()
        self.generator = generator
        self.mean = tf.constant(mean, tf.float32)
        self.std = tf.constant(std, tf.float32)
        self.config = config
        shape = [None, *config.shape]
        self.serving_default = tf.function(
            self._perturb, input_signature=[tf.TensorSpec(shape, tf.float32, name="log_mel")])
        self.perturb_waveform = tf.function(
            self._perturb_waveform,
            input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])

    def _perturb(self, log_mel):
        x = (log_mel - self.mean) / self.std
        eta = self.generator(x, training=False)
        return {"adversarial_log_mel": (x + eta) * self.std + self.mean,
                "perturbation": eta * self.std}

    def _perturb_waveform(self, waveform):
        clean = _log_mel_batch(waveform, self.config)
        return {**self._perturb(clean), "clean_log_mel": clean}


class DefenceModule(tf.Module):
    def __init__(self, model: keras.Model, mean, std, labels, config: FeatureConfig):
        super().__init__()
        self.model = model
        self.mean = tf.constant(mean, tf.float32)
        self.std = tf.constant(std, tf.float32)
        self.labels = tf.constant(list(labels))
        self.classify = tf.function(
            self._classify,
            input_signature=[tf.TensorSpec([None, *config.shape], tf.float32, name="log_mel")])

    def _classify(self, log_mel):
        log_probs = self.model((log_mel - self.mean) / self.std, training=False)
        return {"probabilities": tf.exp(log_probs),
                "label": tf.gather(self.labels, tf.argmax(log_probs, axis=-1))}


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def export_module(module: tf.Module, signatures: dict, out_root, name: str,
                  version: Optional[int], assets: dict[str, str]) -> Path:
    """Save into out_root/name/version via a temporary folder; never over an existing version."""
    model_dir = Path(out_root) / name
    version = next_version(model_dir) if version is None else version
    if version < 1:
        raise TfadvserError(f"versions are positive integers, got {version}")
    target = model_dir / str(version)
    if target.exists():
        raise TfadvserError(f"{target} already exists; TF Serving versions are immutable, "
                            "choose another --version or leave it out for the next free one")
    tmp = model_dir / f".{version}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        (tmp / "assets").mkdir(exist_ok=True)
        for filename, text in assets.items():
            (tmp / "assets" / filename).write_text(text, encoding="utf-8")
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _assets(data, origin: dict) -> dict[str, str]:
    return {"labels.txt": "\n".join(data.labels) + "\n",
            "feature_config.json": json.dumps(data.feature_config.to_dict(), indent=2),
            "export.json": json.dumps(origin, indent=2)}


def export_attacker(generator: keras.Model, data, out_root, name: str,
                    version: Optional[int], origin: dict) -> Path:
    mean, std, config = data.mean, data.std, data.feature_config
    module = AttackerModule(generator, mean, std, config)
    return export_module(module, {"serving_default": module.serving_default,
                                  "perturb_waveform": module.perturb_waveform},
                         out_root, name, version, _assets(data, origin))


def export_defence(model: keras.Model, data, out_root, name: str,
                   version: Optional[int], origin: dict) -> Path:
    mean, std, config = data.mean, data.std, data.feature_config
    module = DefenceModule(model, mean, std, list(data.labels), config)
    return export_module(module, {"serving_default": module.classify, "classify": module.classify},
                         out_root, name, version, _assets(data, origin))
