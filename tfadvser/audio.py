"""Audio decoding inside tf.data with tensorflow-io: bytes -> 16 kHz mono float32.

tensorflow-io's decoders need the sample type fixed when the graph is built and do not
return the sample rate, so each file's header is read first (`probe`, soundfile, header
only) and its rate and sample type travel through the pipeline as tensors; a
`tf.switch_case` picks the decoder.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import soundfile
import tensorflow as tf
import tensorflow_io as tfio

# (container, soundfile subtype) -> (decoder index, scale to [-1, 1], offset)
# tensorflow-io reads 24-bit WAV into the high bytes of int32, and treats every 32-bit WAV
# as float, so 32-bit integer PCM cannot be decoded correctly and is refused.
DECODERS = {
    ("WAV", "PCM_U8"): 0,
    ("WAV", "PCM_16"): 1,
    ("WAV", "PCM_24"): 2,
    ("WAV", "FLOAT"): 3,
    ("FLAC", "PCM_16"): 4,
}


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    decoder: int


class UnreadableAudio(Exception):
    """The file cannot be used; the message is the reason shown to the user."""


def probe(path) -> AudioInfo:
    """Read the header only; raise UnreadableAudio with a reason for anything unusable."""
    try:
        if Path(path).stat().st_size == 0:
            raise UnreadableAudio("empty file (0 bytes)")
        info = soundfile.info(str(path))
    except UnreadableAudio:
        raise
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise UnreadableAudio(f"unreadable or unsupported audio format ({exc})") from None
    except OSError as exc:
        raise UnreadableAudio(f"cannot open file ({exc.strerror})") from None
    key = (info.format, info.subtype)
    if key not in DECODERS:
        supported = ", ".join(f"{fmt} {sub}" for fmt, sub in DECODERS)
        raise UnreadableAudio(f"unsupported sample format {info.format} {info.subtype} "
                              f"(supported: {supported})")
    if info.frames <= 0:
        raise UnreadableAudio("no audio samples")
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), DECODERS[key])


def _decode_branches(contents: tf.Tensor):
    as_float = lambda x, scale, offset=0.0: (tf.cast(x, tf.float32) - offset) / scale
    return [
        lambda: as_float(tfio.audio.decode_wav(contents, dtype=tf.uint8), 128.0, 128.0),
        lambda: as_float(tfio.audio.decode_wav(contents, dtype=tf.int16), 32768.0),
        lambda: as_float(tfio.audio.decode_wav(contents, dtype=tf.int32), 2.0 ** 31),
        lambda: tfio.audio.decode_wav(contents, dtype=tf.float32),
        lambda: as_float(tfio.audio.decode_flac(contents, dtype=tf.int16), 32768.0),
    ]


# tensorflow-io's resampler delays its output by 32 samples at the lower of the two rates
# (measured: 32 output samples when downsampling from 22.05-48 kHz, 64 from 8 kHz, 46 from
# 11.025 kHz). `_resample` removes that delay so frames line up with librosa's.
RESAMPLER_DELAY = 32


def _resample(mono: tf.Tensor, rate: tf.Tensor, target: int) -> tf.Tensor:
    rate = tf.cast(rate, tf.int64)
    delay = (RESAMPLER_DELAY * target) // tf.minimum(rate, target)  # in output samples
    n = tf.size(mono, out_type=tf.int64)
    expected = (n * target + rate - 1) // rate  # ceil(n * target / rate), as librosa
    pad = (delay * rate + target - 1) // target + 1  # input samples that cover the delay
    out = tfio.audio.resample(tf.pad(mono, [[0, pad]]), rate, target)
    return out[delay:delay + expected]


def decode_mono(contents: tf.Tensor, decoder: tf.Tensor, sample_rate: tf.Tensor,
                target_rate: int) -> tf.Tensor:
    """Encoded bytes -> [samples] float32 at `target_rate`, channels averaged.

    Non-finite samples are passed through untouched so the caller can report the file.
    """
    audio = tf.switch_case(tf.cast(decoder, tf.int32), _decode_branches(contents))
    mono = tf.reduce_mean(audio, axis=-1)
    return tf.cond(
        tf.equal(tf.cast(sample_rate, tf.int64), target_rate),
        lambda: mono,
        lambda: _resample(mono, sample_rate, target_rate),
    )


def read_mono_numpy(path: Path, target_rate: int) -> np.ndarray:
    """The reference reader: soundfile + librosa's default resampler, as the original."""
    import librosa

    audio, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != target_rate:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=target_rate)
    return mono
