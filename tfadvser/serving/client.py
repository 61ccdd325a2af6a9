"""A client for TF Serving's REST predict API (`POST /v1/models/NAME[/versions/N]:predict`)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import numpy as np

from tfadvser.errors import TfadvserError


def predict(server: str, model: str, signature: str, instances: list[dict],
            version: Optional[int] = None, timeout: float = 120.0) -> list[dict]:
    """POST `instances` to TF Serving's REST predict endpoint for `signature`; return its
    `predictions`. Raises TfadvserError naming the server when it cannot be reached or
    answers with an error."""
    url = f"{server.rstrip('/')}/v1/models/{model}"
    url += f"/versions/{version}:predict" if version is not None else ":predict"
    body = json.dumps({"signature_name": signature, "instances": instances}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise TfadvserError(f"{url}: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise TfadvserError(f"{url}: cannot reach the server ({exc})") from None
    if "predictions" not in answer:
        raise TfadvserError(f"{url}: unexpected answer {str(answer)[:300]}")
    return answer["predictions"]


def perturb_file(server: str, model: str, path: Path, sample_rate: int = 16000,
                 version: Optional[int] = None) -> dict[str, np.ndarray]:
    """Send one audio file (resampled to 16 kHz mono) to an exported attacker's
    `perturb_waveform` signature; return its outputs as arrays (`adversarial_waveform`
    [samples] at `sample_rate`, the log-Mels [373, 64]).

    The file is decoded by `prepare`'s decoder, so the two accept and reject the same files
    for the same reasons."""
    from tfadvser.data.audio import UnreadableAudio, load_mono

    try:
        waveform = load_mono(path, sample_rate).astype(np.float32)
    except UnreadableAudio as exc:
        raise TfadvserError(f"{path}: {exc}") from None
    [outputs] = predict(server, model, "perturb_waveform", [{"waveform": waveform.tolist()}], version)
    return {name: np.asarray(value, np.float32) for name, value in outputs.items()}
