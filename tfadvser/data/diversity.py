"""Input diversity: random, differentiable transforms of a log-Mel batch, applied before the
defences score it, so that a perturbation must work on more than one view of the clip (the
attacker's recipe and DI-FGSM, `attack/`), and, as SpecAugment, to a defence's training
clips (`DefenceConfig.spec_augment`, `defence/training.py`).

Xie et al. 2019 ("Improving transferability of adversarial examples with input diversity",
DI-FGSM) resize and pad images at random at every attack iteration, with probability p
(0.5 in the paper); generator attacks use the same idea during training (e.g. LTP, BIA).
For spectrograms the views a defence should be indifferent to are shifts in time, missing
bands of time or frequency (SpecAugment, Park et al. 2019) and a change of loudness, so:

- time shift: each clip rolled by s frames, s uniform in [-max_shift, max_shift];
- time mask: frames [t0, t0 + w) set to 0 (the training mean in standardised units), w
  uniform in [0, max_time_mask];
- frequency mask: mel bins [f0, f0 + w) set to 0, w uniform in [0, max_freq_mask];
- gain: g dB uniform in [-max_gain_db, max_gain_db] added to every bin's log-magnitude,
  i.e. ln(10) g / 20 / std[bin] in standardised units (needs the data's std);

each clip transformed with probability `probability`, else left as it is. Every transform
is a gather, a multiplication by a 0/1 mask or an addition, so gradients flow to the input
(a roll's gradient is the opposite roll, a mask's is the mask).

Draws are stateless (`tf.random.stateless_uniform` on a (seed, step) pair): the same seed
and step give the same views, in graph and eager mode alike.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Diversity:
    """How far each transform may go (0 turns it off), and how often a clip is transformed.
    Frames and mel bins for the shift and masks, dB for the gain."""

    probability: float = 0.5  # Xie et al.'s p
    max_shift: int = 32  # ~0.5 s of the 373 frames at 16 ms
    max_time_mask: int = 40  # SpecAugment's T for LibriSpeech-like settings
    max_freq_mask: int = 8  # an eighth of the 64 mel bins (SpecAugment's F = 27 of 80)
    max_gain_db: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {self.probability}")
        if min(self.max_shift, self.max_time_mask, self.max_freq_mask, self.max_gain_db) < 0:
            raise ValueError("diversity ranges must be >= 0")

    @property
    def active(self) -> bool:
        return self.probability > 0 and (self.max_shift > 0 or self.max_time_mask > 0
                                         or self.max_freq_mask > 0 or self.max_gain_db > 0)


@dataclasses.dataclass(frozen=True)
class Draw:
    """One batch's random choices, tensors [B]: shift (frames), time mask start and width,
    frequency mask start and width, gain (dB) and whether the clip is transformed."""

    shift: tf.Tensor
    time_start: tf.Tensor
    time_width: tf.Tensor
    freq_start: tf.Tensor
    freq_width: tf.Tensor
    gain_db: tf.Tensor
    apply: tf.Tensor


def draw(settings: Diversity, batch, frames: int, bins: int, seed) -> Draw:
    """`settings`' random choices for a batch of `batch` clips of [frames, bins], from the
    stateless seed pair `seed` (int32 [2])."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=7)

    def integer(i, low, high):  # uniform in [low, high]
        return tf.random.stateless_uniform([batch], seeds[i], low, high + 1, dtype=tf.int32)

    time_width = integer(1, 0, min(settings.max_time_mask, frames))
    freq_width = integer(3, 0, min(settings.max_freq_mask, bins))
    return Draw(
        shift=integer(0, -settings.max_shift, settings.max_shift),
        time_width=time_width,
        time_start=_start(seeds[2], frames, time_width),
        freq_width=freq_width,
        freq_start=_start(seeds[4], bins, freq_width),
        gain_db=tf.random.stateless_uniform([batch], seeds[5], -settings.max_gain_db,
                                            settings.max_gain_db + 1e-12),
        apply=tf.random.stateless_uniform([batch], seeds[6]) < settings.probability)


def _start(seed, size: int, width: tf.Tensor) -> tf.Tensor:
    """A start in [0, size - width] for each width."""
    u = tf.random.stateless_uniform(tf.shape(width), seed)
    return tf.cast(tf.floor(u * tf.cast(size - width + 1, tf.float32)), tf.int32)


def apply(x, choices: Draw, std=None) -> tf.Tensor:
    """x [B, frames, bins] (standardised log-Mel) seen through `choices` (module docstring);
    `std` [bins] is needed only for a non-zero gain. Returns x's shape and dtype."""
    x = tf.convert_to_tensor(x)
    frames, bins = x.shape[1], x.shape[2]
    # Rolled by s: output frame t is input frame (t - s) mod frames.
    index = tf.math.floormod(tf.range(frames)[None, :] - choices.shift[:, None], frames)
    viewed = tf.gather(x, index, axis=1, batch_dims=1)
    viewed = viewed * tf.cast(_band(frames, choices.time_start, choices.time_width), x.dtype)[:, :, None]
    viewed = viewed * tf.cast(_band(bins, choices.freq_start, choices.freq_width), x.dtype)[:, None, :]
    if std is not None:
        shift = (math.log(10.0) / 20.0) * tf.cast(choices.gain_db, x.dtype)[:, None, None]
        viewed = viewed + shift / tf.cast(std, x.dtype)[None, None, :]
    return tf.where(choices.apply[:, None, None], viewed, x)


def _band(size: int, start: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """[B, size] with 0 on [start, start + width) and 1 elsewhere."""
    position = tf.range(size)[None, :]
    inside = (position >= start[:, None]) & (position < (start + width)[:, None])
    return 1 - tf.cast(inside, tf.int32)


def diversify(x, settings: Optional[Diversity], seed, std=None) -> tf.Tensor:
    """x through one random draw of `settings` (unchanged when None or inactive)."""
    if settings is None or not settings.active:
        return x
    shape = tf.shape(x)
    return apply(x, draw(settings, shape[0], x.shape[1], x.shape[2], seed), std)
