"""Waveform -> log-Mel spectrogram, with TensorFlow ops, exactly as the authors' extractor.

The same functions serve `prepare` (inside a tf.data pipeline) and, later, the exported
serving signature, so the two can never drift apart. The numbers (original-code-facts
section 1): magnitude STFT with a 512-sample *symmetric* Hamming window, hop 256, no
centring; scipy's density scaling 1/sqrt(sum(w^2)); librosa's Slaney mel matrix (64 bins,
20-8000 Hz; `tf.signal.linear_to_mel_weight_matrix` is HTK-scaled and would not match);
natural log with a 1e-8 floor; 373 frames, shorter clips tiled.

`reference_log_mel` is the plain scipy + librosa extraction the TF path is tested against.
"""
from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from tfadvser.config import FeatureConfig


@functools.lru_cache(maxsize=8)
def mel_matrix(config: FeatureConfig) -> np.ndarray:
    """librosa's Slaney-scale, Slaney-area-normalised filterbank, shape (n_fft_bins, n_mels)."""
    import librosa  # imported here: it is slow to import and only needed to build the constant

    return librosa.filters.mel(sr=config.sample_rate, n_fft=config.frame_length,
                               n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
                               htk=False, norm="slaney").T.astype(np.float64)


def analysis_window(config: FeatureConfig) -> np.ndarray:
    """np.hamming is the symmetric window (tf.signal.hamming_window is the periodic one)."""
    return np.hamming(config.frame_length)


def log_mel(waveform: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """[..., samples] float waveform at config.sample_rate -> [..., frames, n_mels] float32.

    frames = floor((samples - frame_length) / hop) + 1; inputs shorter than one window give
    zero frames. The spectrum is computed in float64: with the 1e-8 floor, near-silent bins
    would otherwise carry float32 round-off into the log.
    """
    window = analysis_window(config)
    scale = 1.0 / np.sqrt(np.sum(window ** 2))  # scipy.signal.spectrogram's 'density' scaling
    frames = tf.signal.frame(tf.cast(waveform, tf.float64), config.frame_length,
                             config.hop_length, pad_end=False)
    spectrum = tf.abs(tf.signal.rfft(frames * window)) * scale
    mel = tf.tensordot(spectrum, tf.constant(mel_matrix(config)), axes=1)
    return tf.cast(tf.math.log(mel + config.log_offset), tf.float32)


def fix_length(features: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """[frames, n_mels] -> [n_frames, n_mels]: tile short clips, cut long ones.

    Tiling repeats the whole clip and then appends its first (n mod T) frames, as the
    original does. Long clips keep the first frames ("head") or the middle ones ("center");
    the "error" policy is enforced by the caller, which skips such clips.
    """
    n = config.n_frames
    length = tf.shape(features)[0]
    repeats = (n + length - 1) // tf.maximum(length, 1)
    tiled = tf.tile(features, tf.stack([repeats, 1]))
    start = (length - n) // 2 if config.long_clips == "center" else 0
    start = tf.maximum(start, 0)
    out = tiled[start:start + n]
    return tf.ensure_shape(out, (n, config.n_mels))


def reference_log_mel(waveform: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The authors' extractor re-stated with scipy + librosa, per file, in numpy.

    Used by the parity test and as the sequential baseline in benchmarks. Returns the
    variable-length [frames, n_mels] log-Mel of a 16 kHz mono waveform.
    """
    from scipy import signal

    _, _, spec = signal.spectrogram(waveform, window=np.hamming(config.frame_length),
                                    nperseg=config.frame_length,
                                    noverlap=config.frame_length - config.hop_length,
                                    detrend=False, return_onesided=True, mode="magnitude")
    mel = spec.T @ mel_matrix(config)
    return np.log(mel + config.log_offset).astype(np.float32)


def reference_fix_length(features: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """numpy twin of `fix_length`, written the original's way (repeat, then append)."""
    n, length = config.n_frames, len(features)
    if length >= n:
        start = (length - n) // 2 if config.long_clips == "center" else 0
        return features[start:start + n]
    repeated = np.concatenate([features] * (n // length) + [features[: n % length]], axis=0)
    return repeated
