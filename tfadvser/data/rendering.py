"""Log-Mel perturbations rendered as sound: a gain on the clean clip's STFT, inverted.

An attacker changes the standardised log-Mel x by eta, i.e. the raw log-Mel by
delta = eta * std (natural log of mel magnitude). `render` turns delta into audio:

1. Frames. The clean waveform is cut into the very frames `features.log_mel` uses
   (512-sample symmetric Hamming window, hop 256, no centring): T source frames. The
   373 feature frames map onto them as `features.fix_length` made them
   (`source_delta`): with the "head" policy feature frame i is source frame i, with
   "center" it is source frame i + (T - 373) // 2; source frames outside the 373 get
   delta 0 (unchanged). A short clip was *tiled* into 373 frames; its repeats are the
   same audio, so only the first T feature frames (one copy) can be rendered and the
   perturbation of the repeats is dropped. The audio-domain score therefore includes
   that loss; evaluation also scores the "renderable" spectrogram (the first T frames
   of x' tiled as `fix_length` tiles) to separate it from the STFT round trip.
2. Mel bands -> linear-frequency bins (`gain_map`). The log gain of FFT bin k is the
   average of the bands' log gains weighted by the *shape* of the Slaney filters at k
   (each filter scaled to peak 1, then weights normalised to sum to 1 per bin):
       log g[t, k] = sum_m A[k, m] delta[t, m],  A[k, m] = T[k, m] / sum_j T[k, j].
   Adjacent Slaney triangles cross at their half-heights, so this is linear
   interpolation of the log gain in frequency between band centres; bins no filter
   covers (below fmin, at fmax) take the nearest band's gain. A delta that is constant
   over the bands is reproduced exactly (the gain is then the same scalar everywhere);
   a delta that varies from band to band is reproduced only approximately, since a
   band's mel value mixes several bins.
3. Gain with the clean phase: Y[t, k] = g[t, k] * X[t, k] (complex X of the clean clip).
4. Inverse STFT by weighted overlap-add with the analysis window (Griffin & Lim's
   least-squares inverse): y = sum_t w * irfft(Y_t) / sum_t w^2, shifted by the hop.
   With g = 1 this returns the clean waveform to float round-off. The samples after the
   last frame (fewer than one hop) are copied from the clean clip. A modified STFT is in
   general not the STFT of any signal, so re-extracting the log-Mel of y does not give
   x + delta exactly: that is the round trip the evaluation measures.

Everything is TensorFlow ops (float64 inside, float32 out) and differentiable in delta, so
the same function serves the evaluation, the exported `perturb_waveform` signature and an
attacker trained through the round trip. `render` does not clip: a WAV holds [-1, 1],
`clip_audio` is applied where audio is written or re-extracted.
"""
from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from tfadvser.config import FeatureConfig
from tfadvser.data.audio import load_mono
from tfadvser.data.features import analysis_window, fix_length, log_mel, mel_matrix


def band_weights_to_bins(filters: np.ndarray) -> np.ndarray:
    """The mapping A [n_fft_bins, n_mels] from a filterbank [n_fft_bins, n_mels] (columns
    are filters): each filter scaled to peak 1, each row then normalised to sum 1; a row no
    filter covers copies the nearest covered row (rows below the first covered one take
    its weights, rows above the last covered one the last one's)."""
    filters = np.asarray(filters, np.float64)
    peaks = filters.max(axis=0, keepdims=True)
    shapes = np.divide(filters, peaks, out=np.zeros_like(filters), where=peaks > 0)
    sums = shapes.sum(axis=1, keepdims=True)
    covered = np.flatnonzero(sums[:, 0] > 0)
    if covered.size == 0:
        raise ValueError("the filterbank covers no frequency bin")
    weights = np.divide(shapes, sums, out=np.zeros_like(shapes), where=sums > 0)
    for k in np.flatnonzero(sums[:, 0] == 0):
        weights[k] = weights[covered[np.argmin(np.abs(covered - k))]]
    return weights


@functools.lru_cache(maxsize=8)
def gain_map(config: FeatureConfig) -> np.ndarray:
    """A [n_fft_bins, n_mels] for the features' own Slaney filterbank (see module doc)."""
    return band_weights_to_bins(mel_matrix(config))


def source_frames_of(samples, config: FeatureConfig):
    """Frames `features.log_mel` takes from a clip of `samples` samples (0 if shorter than
    one window); works on ints and on integer tensors."""
    if isinstance(samples, (int, np.integer)):
        return max((int(samples) - config.frame_length) // config.hop_length + 1, 0)
    return tf.maximum((samples - config.frame_length) // config.hop_length + 1, 0)


def source_delta(delta: tf.Tensor, source_frames, config: FeatureConfig) -> tf.Tensor:
    """[..., n_frames, n_mels] feature-frame delta -> [..., source_frames, n_mels]: the
    inverse of `features.fix_length`'s frame choice (module doc, step 1)."""
    delta = tf.convert_to_tensor(delta)
    n = config.n_frames
    source_frames = tf.cast(source_frames, tf.int32)
    start = (source_frames - n) // 2 if config.long_clips == "center" else tf.constant(0)
    start = tf.maximum(start, 0)
    after = tf.maximum(source_frames - n - start, 0)
    rank = delta.shape.rank
    paddings = tf.concat([tf.zeros([rank - 2, 2], tf.int32), [[start, after]], [[0, 0]]], axis=0)
    padded = tf.pad(delta, paddings)
    return padded[..., :source_frames, :]


def render(waveform: tf.Tensor, delta: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """Render a raw log-Mel perturbation as audio.

    waveform [B, samples] (or [samples]) float, the clean clips at config.sample_rate, all
    at least one window long; delta [B, n_frames, n_mels] (or [n_frames, n_mels]) in raw
    log-Mel units (eta * std), for the fixed-size features of those clips. Returns the
    adversarial waveform, same shape as `waveform`, float32, not clipped. Differentiable
    in delta.
    """
    waveform = tf.convert_to_tensor(waveform)
    single = waveform.shape.rank == 1
    if single:
        waveform, delta = waveform[None], tf.convert_to_tensor(delta)[None]
    x = tf.cast(waveform, tf.float64)
    frames = tf.signal.frame(x, config.frame_length, config.hop_length, pad_end=False)
    n_src = tf.shape(frames)[-2]
    window = tf.constant(analysis_window(config), tf.float64)
    spectrum = tf.signal.rfft(frames * window)
    log_gain = tf.tensordot(tf.cast(source_delta(delta, n_src, config), tf.float64),
                            tf.constant(gain_map(config).T), axes=1)
    gain = tf.exp(log_gain)
    gained = spectrum * tf.complex(gain, tf.zeros_like(gain))  # a real gain; no complex cast
    pieces = tf.signal.irfft(gained, fft_length=[config.frame_length])[..., :config.frame_length]
    summed = tf.signal.overlap_and_add(pieces * window, config.hop_length)
    norm = tf.signal.overlap_and_add(tf.tile((window ** 2)[None], [n_src, 1]), config.hop_length)
    covered = tf.shape(summed)[-1]
    out = tf.concat([summed / norm, x[..., covered:]], axis=-1)
    out = tf.cast(tf.ensure_shape(out, x.shape), tf.float32)
    return out[0] if single else out


def clip_audio(waveform):
    """What a WAV file holds: samples limited to [-1, 1] (works on arrays and tensors)."""
    if isinstance(waveform, np.ndarray):
        return np.clip(waveform, -1.0, 1.0)
    return tf.clip_by_value(waveform, -1.0, 1.0)


def extract(waveform: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """[samples] -> [n_frames, n_mels]: the fixed-size log-Mel `prepare` computes."""
    return fix_length(log_mel(waveform, config), config)


def round_trip(waveform: tf.Tensor, delta: tf.Tensor, config: FeatureConfig) -> tuple:
    """(adversarial waveform clipped to [-1, 1] [samples], its re-extracted fixed-size raw
    log-Mel [n_frames, n_mels]) of one clip: render, clip, extract as `prepare` does."""
    audio = clip_audio(render(waveform, delta, config))
    return audio, extract(audio, config)


def corpus_waveform(data, path: str) -> np.ndarray:
    """The clean clip behind an example: `path` (the record's, relative to the corpus) under
    the corpus folder `prepare` read (`data.record["corpus"]["audio_dir"]`), decoded by the
    decoder `prepare` used (`audio.load_mono`, so the clean log-Mel re-extracted from it is
    the stored one) to mono float32 at the features' sample rate. Raises OSError (e.g.
    FileNotFoundError) when the corpus is no longer there, UnreadableAudio when it no longer
    decodes."""
    from pathlib import Path

    full = Path(data.record["corpus"]["audio_dir"]) / path
    if not full.exists():
        raise FileNotFoundError(f"{full}: the clean clip is needed to render audio")
    return load_mono(full, data.feature_config.sample_rate).astype(np.float32)
