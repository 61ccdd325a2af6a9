"""The TF log-Mel against the authors' extractor re-stated with scipy + librosa."""
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from tfadvser.data.audio import decode_mono, probe, read_mono_numpy
from tfadvser.config import FeatureConfig
from tfadvser.data.features import fix_length, log_mel, mel_matrix, reference_fix_length, reference_log_mel
from tfadvser.data.synth import Speaker, NEUTRAL_CUES, synthesize_utterance

CONFIG = FeatureConfig()


def speech(fs, seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    speaker = Speaker(1, "f", 200.0, 1.15, NEUTRAL_CUES.__class__(*([0.0] * 11)))
    return synthesize_utterance(NEUTRAL_CUES, speaker, fs, seconds, rng)


def test_mel_matrix_is_librosa_slaney():
    import librosa

    m = mel_matrix(CONFIG)
    assert m.shape == (257, 64)
    np.testing.assert_allclose(m, librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=20, fmax=8000).T)
    # Slaney area normalisation: each filter's weights sum to 2 / (bandwidth in Hz) * bin width,
    # so the lowest (narrowest) filter has the largest peak; an HTK matrix would not.
    assert m[:, 0].max() > m[:, -1].max()


def test_tf_log_mel_matches_scipy_librosa_reference_at_16k():
    wave = speech(16000, 2.0)
    reference = reference_log_mel(wave, CONFIG)
    ours = log_mel(tf.constant(wave, tf.float32), CONFIG).numpy()
    assert ours.shape == reference.shape == ((len(wave) - 512) // 256 + 1, 64)
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)


def test_scipy_density_scaling_is_the_known_constant():
    # facts section 1: |rfft(frame * w)| / sqrt(sum(w^2)) = 0.07017 x |rfft| for w = hamming(512)
    w = np.hamming(512)
    assert 1 / np.sqrt(np.sum(w ** 2)) == pytest.approx(0.07017, abs=5e-6)


def test_frame_count_and_short_input():
    assert log_mel(tf.zeros([511]), CONFIG).shape == (0, 64)
    assert log_mel(tf.zeros([512]), CONFIG).shape == (1, 64)
    assert log_mel(tf.zeros([512 + 256 * 10 + 255]), CONFIG).shape == (11, 64)
    # silence gives the log of the floor
    np.testing.assert_allclose(log_mel(tf.zeros([512]), CONFIG).numpy(), np.log(1e-8), rtol=1e-6)


@pytest.mark.parametrize("length", [1, 3, 100, 372, 373])
def test_tiling_matches_original_repeat_then_append(length):
    features = np.arange(length * 64, dtype=np.float32).reshape(length, 64)
    ours = fix_length(tf.constant(features), CONFIG).numpy()
    np.testing.assert_array_equal(ours, reference_fix_length(features, CONFIG))


def test_tiling_literal_small_case():
    config = FeatureConfig(n_frames=7, n_mels=1, fmax=8000.0)
    features = np.array([[0.0], [1.0], [2.0]], np.float32)
    assert fix_length(tf.constant(features), config).numpy().ravel().tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_long_clips_head_and_center():
    features = np.arange(10, dtype=np.float32).reshape(10, 1)
    head = FeatureConfig(n_frames=4, n_mels=1, long_clips="head")
    center = FeatureConfig(n_frames=4, n_mels=1, long_clips="center")
    assert fix_length(tf.constant(features), head).numpy().ravel().tolist() == [0, 1, 2, 3]
    assert fix_length(tf.constant(features), center).numpy().ravel().tolist() == [3, 4, 5, 6]


def test_bad_feature_config_is_rejected():
    with pytest.raises(ValueError, match="long_clips"):
        FeatureConfig(long_clips="tail")
    with pytest.raises(ValueError, match="fmax"):
        FeatureConfig(fmax=9000.0)


def _decode_file(path):
    info = probe(path)
    return decode_mono(tf.io.read_file(str(path)), info.decoder, info.sample_rate, 16000).numpy()


def test_tensorflow_io_decoding_matches_soundfile_at_16k(tmp_path):
    wave = speech(16000, 1.0)
    stereo = np.stack([wave, 0.5 * wave], axis=1)
    path = tmp_path / "x.wav"
    soundfile.write(path, stereo, 16000, subtype="PCM_16")
    ours = _decode_file(path)
    np.testing.assert_allclose(ours, read_mono_numpy(path, 16000), atol=1e-6)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_24", "FLOAT"])
def test_other_wav_sample_formats_decode(tmp_path, subtype):
    wave = speech(16000, 0.5)
    path = tmp_path / "x.wav"
    soundfile.write(path, wave, 16000, subtype=subtype)
    tolerance = {"PCM_U8": 1 / 64, "PCM_24": 1e-6, "FLOAT": 1e-7}[subtype]
    np.testing.assert_allclose(_decode_file(path), read_mono_numpy(path, 16000), atol=tolerance)


@pytest.mark.parametrize("rate", [22050, 44100])
def test_resampling_path_is_close_to_librosa(tmp_path, rate):
    """Our FFT resampler and librosa's (soxr) use different filters, so the log-Mel is
    compared loosely: mean absolute difference over the louder half of the bins."""
    path = tmp_path / "x.wav"
    soundfile.write(path, speech(rate, 2.0, seed=1), rate, subtype="PCM_16")
    ours = _decode_file(path)
    reference = read_mono_numpy(path, 16000)
    assert len(ours) == len(reference)  # ceil(n * 16000 / rate), and no resampler delay
    a = reference_log_mel(ours.astype(np.float64), CONFIG)
    b = reference_log_mel(reference, CONFIG)
    loud = b > np.percentile(b, 50)
    # measured: 0.0005 (22.05 kHz) and < 0.0001 (44.1 kHz); tensorflow-io's resampler gave
    # 0.0037 and 0.0020 once its 32-sample delay was removed, 0.14 before
    assert np.mean(np.abs(a - b)[loud]) < 0.02
