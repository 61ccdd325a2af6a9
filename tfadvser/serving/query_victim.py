"""A defence served by TF Serving as a predict-only victim of the query attacks
(`attack/query.py`): standardised log-Mel in, class probabilities out, over REST.

The exported defences' `classify` signature (`serving/export.py`) takes *raw* log-Mels
[B, 373, 64] (natural-log mel magnitudes; the statistics are baked into the graph) and
returns `probabilities` [B, n] and `label` [B]; this victim de-standardises the attack's
inputs (x * std + mean) with the data's training statistics and sends them in batches of
`batch_size` instances through `client.predict` (retries with back-off, a timeout).
`instances_posted` counts every instance put on the wire, retried requests included; the
attack's own count (`CountingVictim.queries`) is of the instances answered.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tfadvser.errors import TfadvserError
from tfadvser.serving.client import predict

SIGNATURE = "classify"
RETRIES = 3  # an unreachable server or a 5xx answer is tried again this often
BACKOFF_SECONDS = 0.5  # the first wait before a retry; doubled for each further one
TIMEOUT_SECONDS = 30.0
BATCH = 32  # instances per request: ~3 MB of JSON at 373 x 64 floats each


class RestVictim:
    """A callable numpy x [n, frames, n_mels] (standardised) -> probabilities [n, classes]
    backed by `server`'s model `model` (`version`: default the newest). Raises
    TfadvserError naming the URL for an unreachable or failing server (after `retries`),
    an answer without `probabilities`, or a class count other than `n_classes`."""

    def __init__(self, server: str, model: str, mean, std, n_classes: int,
                 version: Optional[int] = None, batch_size: int = BATCH,
                 timeout: Optional[float] = None, retries: Optional[int] = None,
                 backoff: Optional[float] = None):
        self.server, self.model, self.version = server, model, version
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.n_classes, self.batch_size = int(n_classes), int(batch_size)
        # None: the module's settings at the time of the call
        self.timeout = TIMEOUT_SECONDS if timeout is None else timeout
        self.retries = RETRIES if retries is None else retries
        self.backoff = BACKOFF_SECONDS if backoff is None else backoff
        self.instances_posted = 0
        self.requests = 0

    @property
    def name(self) -> str:
        version = f"/versions/{self.version}" if self.version is not None else ""
        return f"{self.server.rstrip('/')}/v1/models/{self.model}{version}"

    def __call__(self, x) -> np.ndarray:
        raw = np.asarray(x, np.float32) * self.std + self.mean
        out = []
        for start in range(0, len(raw), self.batch_size):
            part = raw[start:start + self.batch_size]
            instances = [{"log_mel": clip.tolist()} for clip in part]
            self.requests += 1
            self.instances_posted += len(part)
            predictions = predict(self.server, self.model, SIGNATURE, instances, self.version,
                                  timeout=self.timeout, retries=self.retries, backoff=self.backoff)
            out.append(self._probabilities(predictions, len(part)))
        return np.concatenate(out) if out else np.zeros((0, self.n_classes))

    def _probabilities(self, predictions, n: int) -> np.ndarray:
        if len(predictions) != n:
            raise TfadvserError(f"{self.name}: {len(predictions)} predictions for {n} instances")
        try:
            probs = np.array([p["probabilities"] for p in predictions], np.float64)
        except (TypeError, KeyError, ValueError):
            raise TfadvserError(f"{self.name}: the answer has no `probabilities` per instance "
                                f"(signature {SIGNATURE!r} of an exported defence?): "
                                f"{str(predictions[0])[:120]}") from None
        if probs.ndim != 2 or probs.shape[1] != self.n_classes:
            found = probs.shape[1] if probs.ndim == 2 else "irregular"
            raise TfadvserError(f"{self.name}: {found} probabilities per clip; the data has "
                                f"{self.n_classes} classes")
        if not np.all(np.isfinite(probs)):
            raise TfadvserError(f"{self.name}: non-finite probabilities")
        return probs
