"""How big an attack is as sound, and WAV files to listen to it.

Waveform SNR (clean power over the power of adversarial - clean, per clip, in dB), and the
two measures audio attack papers report, from maintained packages: PESQ (ITU-T P.862.2
wide-band, `pesq`, the reference implementation's C code; MOS-LQO from about 1.0 to
4.64) and STOI (`pystoi`, Taal et al. 2011; 0 to 1). Both compare the adversarial clip with
the clean one at 16 kHz.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import soundfile

from tfadvser.runtime.files import write_bytes

# PESQ and STOI need this much audio; shorter clips get None.
MIN_SECONDS = 0.5


def waveform_snr(clean: np.ndarray, adversarial: np.ndarray) -> float:
    """10 log10(sum clean^2 / sum (adversarial - clean)^2) in dB; inf for no change."""
    clean = np.asarray(clean, np.float64)
    noise = np.sum(np.square(np.asarray(adversarial, np.float64) - clean))
    if noise == 0.0:
        return math.inf
    return float(10.0 * np.log10(np.sum(np.square(clean)) / noise))


def pesq_wb(clean: np.ndarray, adversarial: np.ndarray, sample_rate: int = 16000):
    """Wide-band PESQ (MOS-LQO) of `adversarial` against `clean`; None when the package
    cannot score the pair (too short, or no utterance found in the reference)."""
    from pesq import PesqError, pesq

    if len(clean) < MIN_SECONDS * sample_rate:
        return None
    try:
        return float(pesq(sample_rate, np.asarray(clean, np.float64),
                          np.asarray(adversarial, np.float64), "wb",
                          on_error=PesqError.RAISE_EXCEPTION))
    except (PesqError, ValueError):
        return None


def stoi(clean: np.ndarray, adversarial: np.ndarray, sample_rate: int = 16000):
    """Short-time objective intelligibility of `adversarial` against `clean` (0..1)."""
    from pystoi import stoi as pystoi_stoi

    if len(clean) < MIN_SECONDS * sample_rate:
        return None
    return float(pystoi_stoi(np.asarray(clean, np.float64), np.asarray(adversarial, np.float64),
                             sample_rate, extended=False))


def wav_bytes(audio: np.ndarray, sample_rate: int = 16000) -> bytes:
    """A mono 16-bit PCM WAV of `audio` (float, clipped to [-1, 1])."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(np.asarray(audio, np.float64), -1.0, 1.0), sample_rate,
                    format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_wav(path, audio: np.ndarray, sample_rate: int = 16000) -> Path:
    """`wav_bytes` written atomically to `path`; returns the path."""
    write_bytes(Path(path), wav_bytes(audio, sample_rate))
    return Path(path)
