"""A client for TF Serving's REST predict API (`POST /v1/models/NAME[/versions/N]:predict`)."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import numpy as np

from tfadvser.errors import TfadvserError

MAX_BACKOFF_SECONDS = 8.0  # the longest wait between two tries of a request


def predict(server: str, model: str, signature: str, instances: list[dict],
            version: Optional[int] = None, timeout: float = 120.0, retries: int = 0,
            backoff: float = 0.5) -> list[dict]:
    """POST `instances` to TF Serving's REST predict endpoint for `signature`; return its
    `predictions`. An unreachable server, a timeout or an HTTP 5xx answer is tried again
    up to `retries` times, waiting `backoff` seconds, then twice that, and so on (at most
    MAX_BACKOFF_SECONDS). Raises
    TfadvserError naming the URL when the server cannot be reached, answers with an error,
    or answers something that is not JSON with a `predictions` list."""
    url = f"{server.rstrip('/')}/v1/models/{model}"
    url += f"/versions/{version}:predict" if version is not None else ":predict"
    body = json.dumps({"signature_name": signature, "instances": instances}).encode()
    for attempt in range(retries + 1):
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read()
            break
        except urllib.error.HTTPError as exc:
            detail = " ".join(exc.read().decode(errors="replace")[:300].split())
            error = f"{url}: HTTP {exc.code}: {detail}"
            if exc.code < 500:
                raise TfadvserError(error) from None
        except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout
            reason = getattr(exc, "reason", exc)
            error = f"{url}: cannot reach the server ({reason})"
        if attempt < retries:
            time.sleep(min(backoff * 2 ** attempt, MAX_BACKOFF_SECONDS))
    else:
        tries = f" (tried {retries + 1} times)" if retries else ""
        raise TfadvserError(error + tries)
    try:
        answer = json.loads(text)
    except ValueError:
        raise TfadvserError(f"{url}: the answer is not JSON: {text[:100]!r}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
        raise TfadvserError(f"{url}: unexpected answer {' '.join(str(answer)[:300].split())}")
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
