"""Rendering a log-Mel perturbation as audio (`data/rendering.py`): the mel -> linear gain
mapping on literal numbers, the frame mapping, exactness where it must be exact, and the
round trip (render, re-extract) within a stated tolerance."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfadvser.config import FeatureConfig
from tfadvser.data.audio import read_mono_numpy
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.data.rendering import (band_weights_to_bins, clip_audio, extract, gain_map, render,
                                     round_trip, source_delta, source_frames_of)

CONFIG = FeatureConfig()


def test_band_to_bin_weights_on_a_hand_made_filterbank():
    # 5 FFT bins, 2 filters with different areas; bins 0 and 4 are covered by no filter.
    filters = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 0.5], [0.0, 1.0], [0.0, 0.0]])
    weights = band_weights_to_bins(filters)
    np.testing.assert_allclose(weights, [[1, 0], [1, 0], [0.5, 0.5], [0, 1], [0, 1]])
    # band log gains (0.2, -0.4) -> bin log gains: interpolated between band centres
    np.testing.assert_allclose(weights @ [0.2, -0.4], [0.2, 0.2, -0.1, -0.4, -0.4])


def test_gain_map_of_the_features_filterbank():
    a = gain_map(CONFIG)
    assert a.shape == (257, 64)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-12)
    # 0 Hz is below fmin (20 Hz) and 8000 Hz is fmax: nearest band's gain, alone
    assert a[0, 0] == 1.0 and a[256, 63] == 1.0
    # every bin mixes at most two adjacent bands (triangles that cross)
    assert ((a > 0).sum(axis=1) <= 2).all()
    used = [np.flatnonzero(row) for row in a]
    assert all(len(u) < 2 or u[1] == u[0] + 1 for u in used)


def test_frame_mapping_inverts_fix_length():
    small = dataclasses.replace(CONFIG, n_frames=4, n_mels=1)
    delta = tf.constant([[1.0], [2.0], [3.0], [4.0]])
    # short clip (3 frames, tiled to 4): only one copy of its frames can be rendered
    assert source_delta(delta, 3, small).numpy().ravel().tolist() == [1, 2, 3]
    # long clip, head policy: the first 4 source frames, the rest unchanged
    assert source_delta(delta, 7, small).numpy().ravel().tolist() == [1, 2, 3, 4, 0, 0, 0]
    centre = dataclasses.replace(small, long_clips="center")
    assert source_delta(delta, 7, centre).numpy().ravel().tolist() == [0, 1, 2, 3, 4, 0, 0]
    batch = tf.stack([delta, 2 * delta])
    assert source_delta(batch, 5, small).shape == (2, 5, 1)
    assert source_frames_of(95744, CONFIG) == 373 and source_frames_of(100, CONFIG) == 0


def clip_of(tiny_data, index=0):
    data = load_data(tiny_data)
    batch = next(iter(make_dataset(data, "test", 8, include_info=True, standardize=False)))
    path = Path(data.record["corpus"]["audio_dir"]) / batch["path"][index].numpy().decode()
    return read_mono_numpy(path, 16000), batch["log_mel"][index].numpy(), int(batch["source_frames"][index])


def test_zero_and_constant_perturbations_are_exact(tiny_data):
    wave, _, frames = clip_of(tiny_data)
    zero = render(tf.constant(wave), tf.zeros(CONFIG.shape), CONFIG).numpy()
    np.testing.assert_allclose(zero, wave, atol=1e-7)  # float32 output of a float64 identity
    # the same log gain in every band and frame is the same scalar on every sample
    scaled = render(tf.constant(wave), tf.fill(CONFIG.shape, np.log(0.5)), CONFIG).numpy()
    np.testing.assert_allclose(scaled, 0.5 * wave, atol=1e-7)
    # ... and re-extracts to x + log(0.5) wherever the 1e-8 floor does not matter
    clean = extract(tf.constant(wave), CONFIG).numpy()
    again = extract(tf.constant(scaled), CONFIG).numpy()
    loud = clean > -10
    np.testing.assert_allclose(again[loud], clean[loud] + np.log(0.5), atol=1e-3)
    # a batch renders as its clips one by one
    batch = render(tf.constant(np.stack([wave, wave])),
                   tf.stack([tf.zeros(CONFIG.shape), tf.fill(CONFIG.shape, np.float32(np.log(0.5)))]), CONFIG)
    np.testing.assert_allclose(batch.numpy()[1], scaled, atol=1e-7)
    assert frames < CONFIG.n_frames  # the tiny corpus is all short, tiled clips


# Round-trip tolerance: a perturbation of up to +-0.5 nats (about +-4.3 dB) that varies
# smoothly over time and mel bands, rendered and re-extracted, lands on the intended
# adversarial log-Mel x + delta with a median absolute error below 0.1 nats and a mean below
# 0.25 nats over the frames the clip has (no sample clips); projected on the intended
# change, more than half of it survives. Measured on the tiny corpus: median 0.02-0.03,
# mean 0.11-0.16, kept 0.65-0.74.
ROUND_TRIP_MEDIAN, ROUND_TRIP_MEAN, ROUND_TRIP_KEPT = 0.1, 0.25, 0.5


@pytest.mark.parametrize("index", [0, 1, 2])
def test_round_trip_lands_near_the_intended_log_mel(tiny_data, index):
    wave, x, frames = clip_of(tiny_data, index)
    t, m = np.meshgrid(np.arange(CONFIG.n_frames), np.arange(CONFIG.n_mels), indexing="ij")
    delta = (0.5 * np.sin(t / 15.0 + m / 6.0)).astype(np.float32)
    audio, x_rt = round_trip(tf.constant(wave), tf.constant(delta), CONFIG)
    raw = render(tf.constant(wave), tf.constant(delta), CONFIG).numpy()
    assert np.abs(raw).max() < 1.0 and np.array_equal(audio.numpy(), raw)  # no clipping here
    clean = extract(tf.constant(wave), CONFIG).numpy()
    n = min(frames, CONFIG.n_frames)
    error = np.abs(x_rt.numpy() - (clean + delta))[:n]
    assert np.median(error) < ROUND_TRIP_MEDIAN and error.mean() < ROUND_TRIP_MEAN
    achieved = (x_rt.numpy() - clean)[:n]
    assert (achieved * delta[:n]).sum() / (delta[:n] ** 2).sum() > ROUND_TRIP_KEPT


def test_rendering_is_differentiable(tiny_data):
    wave, _, _ = clip_of(tiny_data)
    delta = tf.Variable(tf.zeros(CONFIG.shape))
    with tf.GradientTape() as tape:
        _, x_rt = round_trip(tf.constant(wave), delta, CONFIG)
        total = tf.reduce_sum(x_rt)
    grad = tape.gradient(total, delta).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_clip_audio():
    assert clip_audio(np.array([-2.0, 0.5, 3.0])).tolist() == [-1.0, 0.5, 1.0]


def test_any_attacks_perturbation_goes_through_the_round_trip(tiny_data):
    """`score_task` with a given eta (a white-box attack's, say) instead of a generator: a
    zero eta renders the clean clips (audio predictions = clean audio predictions), and a
    constant log gain of log(0.5) on the raw log-Mel (eta = log(0.5) / std) is kept whole."""
    from tfadvser.defence.models import build_defence
    from tfadvser.evaluation.round_trip import AudioSubset, clean_scores, score_task

    data = load_data(tiny_data)
    labels = list(data.labels)
    subset = AudioSubset(data, 4, 0)
    models = {"cnn4": build_defence("cnn4", len(labels), width=0.0625)}
    clean = clean_scores(subset, models, labels)
    zero = score_task(None, subset, models, clean, labels, eta=np.zeros_like(subset.x))
    audio = zero["against"]["cnn4"]["audio"]
    assert audio["adversarial_uar"] == audio["clean_uar"] == clean["cnn4"]["audio_scores"]["uar"]
    assert zero["waveform_snr_db"] > 120  # float32 rounding of the clean clip only
    half = score_task(None, subset, models, clean, labels,
                      eta=np.broadcast_to(np.log(0.5) / data.std, subset.x.shape).astype(np.float32))
    assert half["kept"] == pytest.approx(1.0, abs=0.02)
    assert half["waveform_snr_db"] == pytest.approx(-20 * np.log10(0.5), abs=0.01)  # 6.02 dB
