"""Audio-domain sizes against known cases: waveform SNR on literal numbers, PESQ and STOI
(maintained packages) at their documented end points and ordered by degradation."""
import io

import numpy as np
import soundfile

from tfadvser.evaluation.audio_quality import pesq_wb, stoi, waveform_snr, wav_bytes


def speech_like(seconds=3.0, fs=16000, seed=0):
    """A voiced, amplitude-modulated harmonic signal with pauses: PESQ's voice activity
    detector needs speech-like energy."""
    t = np.arange(int(seconds * fs)) / fs
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / fs
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = np.clip(np.sin(2 * np.pi * 2.0 * t), 0, None) ** 0.5
    return 0.2 * voiced * envelope + 1e-3 * np.random.default_rng(seed).standard_normal(len(t))


def test_waveform_snr_literal():
    clean = np.array([1.0, -1.0, 1.0, -1.0])
    assert abs(waveform_snr(clean, 1.1 * clean) - 20.0) < 1e-9  # noise = 0.1 x clean
    assert abs(waveform_snr(clean, clean + np.array([0.5, 0.5, 0.5, 0.5])) - 10 * np.log10(4 / 1.0)) < 1e-9
    assert waveform_snr(clean, clean) == float("inf")


def test_pesq_and_stoi_known_cases():
    clean = speech_like()
    # identical signals: wide-band PESQ's ceiling (P.862.2 mapping: 4.644) and STOI 1
    assert abs(pesq_wb(clean, clean) - 4.644) < 1e-3
    assert abs(stoi(clean, clean) - 1.0) < 1e-6
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(len(clean))
    noise *= np.sqrt(np.mean(clean ** 2) / np.mean(noise ** 2))
    scores = [(pesq_wb(clean, clean + noise * 10 ** (-snr / 20)), stoi(clean, clean + noise * 10 ** (-snr / 20)))
              for snr in (30, 10, -5)]
    pesq_values, stoi_values = zip(*scores)
    assert pesq_values[0] > pesq_values[1] > pesq_values[2] >= 1.0
    assert stoi_values[0] > stoi_values[1] > stoi_values[2]
    assert stoi(clean, noise) < 0.3  # noise alone is not intelligible
    assert pesq_wb(clean[:4000], clean[:4000]) is None  # under 0.5 s: not scored


def test_wav_bytes_are_16_bit_pcm_and_clipped():
    data, rate = soundfile.read(io.BytesIO(wav_bytes(np.array([0.0, 0.5, 2.0, -3.0]))))
    assert rate == 16000 and soundfile.info(io.BytesIO(wav_bytes(np.zeros(4)))).subtype == "PCM_16"
    np.testing.assert_allclose(data, [0.0, 0.5, 1.0, -1.0], atol=1e-4)
