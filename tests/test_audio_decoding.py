"""Decoding every container, header variant and sample width people hold, and refusing
what cannot be trusted, the same way in `prepare` and `predict` (tfadvser/data/audio.py).

Every clip is 1.6 s: 25 600 frames at 16 kHz. Readable files must decode to exactly their
frames and give the reference log-Mel (soundfile + scipy/librosa, as test_features.py
defines it); broken ones must be refused with a reason naming what is wrong.
"""
import io
import struct

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from tfadvser.config import FeatureConfig
from tfadvser.data import audio
from tfadvser.data.audio import UnreadableAudio, decode_audio, load_mono, probe, read_mono_numpy
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.data.features import reference_fix_length, reference_log_mel
from tfadvser.data.prepare import prepare
from tfadvser.errors import TfadvserError
from tfadvser.serving.client import perturb_file

CONFIG = FeatureConfig()
SR = 16000
FRAMES = 25600  # 1.6 s at 16 kHz


def voice(rate=SR, seconds=1.6, f0=160.0, seed=0, channels=1):
    """A harmonic 'vowel' with vibrato, a Hann envelope and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.04 * np.sin(2 * np.pi * 5 * t))) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 9))
    x = 0.3 * x / np.max(np.abs(x)) * np.hanning(len(t)) + 0.002 * rng.standard_normal(len(t))
    if channels == 1:
        return x
    return np.stack([x * (1 - 0.3 * c) for c in range(channels)], axis=1)


# --- RIFF building blocks, written by hand so every byte of the header is known -----------

def chunk(cid: bytes, data: bytes, size=None) -> bytes:
    size = len(data) if size is None else size
    return cid + struct.pack("<I", size) + data + (b"\0" if len(data) % 2 else b"")


def riff(chunks, size=None, magic=b"RIFF") -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return magic + struct.pack("<I", len(body) if size is None else size) + body


def fmt_pcm16(rate=SR, channels=1, extensible=False) -> bytes:
    block = 2 * channels
    if not extensible:
        return chunk(b"fmt ", struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, 16))
    guid_pcm = struct.pack("<IHH", 1, 0, 0x10) + bytes([0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71])
    body = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, 16)
    body += struct.pack("<HHI", 22, 16, 0x4 if channels == 1 else 0x3) + guid_pcm
    return chunk(b"fmt ", body)


def pcm16(x) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def sf_bytes(x, rate=SR, **kwargs) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, x, rate, **kwargs)
    return buffer.getvalue()


def streamed_flac(x, subtype) -> bytes:
    """FLAC as written to a pipe: STREAMINFO without total samples and MD5 (both zero)."""
    data = bytearray(sf_bytes(x, format="FLAC", subtype=subtype))
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first
    info = 8  # after 'fLaC' and the metadata block header
    data[info + 13] &= 0xF0
    data[info + 14:info + 18] = bytes(4)
    data[info + 18:info + 34] = bytes(16)
    return bytes(data)


def mp3_without_tag(x) -> bytes:
    """An MP3 stream whose first frame (the Xing/Info 'LAME' frame) is removed."""
    data = sf_bytes(x, format="MP3")
    header = data[:4]
    assert header[0] == 0xFF and (b"Xing" in data[:64] or b"Info" in data[:64])
    bitrates_v2 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]
    length = 72 * bitrates_v2[header[2] >> 4] * 1000 // SR + ((header[2] >> 1) & 1)  # MPEG-2, 16 kHz
    return data[length:]


X = voice(seed=1)
STEREO_48K = voice(rate=48000, seed=2, channels=2)
AXML = b'<?xml version="1.0"?><ebucore><title>take</title></ebucore>'.ljust(495, b" ")
LIST_21 = b"INFO" + b"ISFT" + struct.pack("<I", 9) + b"recorder\0"
LIST_FFMPEG = b"INFO" + b"ISFT" + struct.pack("<I", 14) + b"Lavf58.76.100\0"

# name -> (bytes, frames the file holds at its own rate, its rate)
READABLE = {
    # header variants of 16-bit PCM WAV
    "wav_plain": (riff([fmt_pcm16(), chunk(b"data", pcm16(X))]), FRAMES, SR),
    "wavex_mono": (riff([fmt_pcm16(extensible=True), chunk(b"data", pcm16(X))]), FRAMES, SR),
    "wavex_stereo_48k": (riff([fmt_pcm16(48000, 2, True), chunk(b"data", pcm16(STEREO_48K))]), 76800, 48000),
    "odd_axml_before_data": (riff([fmt_pcm16(), chunk(b"axml", AXML), chunk(b"data", pcm16(X))]), FRAMES, SR),
    "odd_list_before_data": (riff([fmt_pcm16(), chunk(b"LIST", LIST_21), chunk(b"data", pcm16(X))]), FRAMES, SR),
    "odd_list_after_data": (riff([fmt_pcm16(), chunk(b"data", pcm16(X)), chunk(b"LIST", LIST_21)]), FRAMES, SR),
    "bext_before_fmt": (riff([chunk(b"bext", bytes(602)), fmt_pcm16(), chunk(b"data", pcm16(X))]), FRAMES, SR),
    "streamed_ffmpeg_list": (riff([fmt_pcm16(), chunk(b"LIST", LIST_FFMPEG),
                                   chunk(b"data", pcm16(X), size=0xFFFFFFFF)], size=0xFFFFFFFF), FRAMES, SR),
    "streamed_ffmpeg": (riff([fmt_pcm16(), chunk(b"data", pcm16(X), size=0xFFFFFFFF)], size=0xFFFFFFFF),
                        FRAMES, SR),
    "streamed_sox": (riff([fmt_pcm16(), chunk(b"data", pcm16(X), size=0x7FFFF000)], size=0x7FFFF000),
                     FRAMES, SR),
    "riff_size_too_large": (riff([fmt_pcm16(), chunk(b"data", pcm16(X))], size=10 ** 6), FRAMES, SR),
    "rf64": (sf_bytes(X, format="RF64", subtype="PCM_16"), FRAMES, SR),
    # sample widths
    **{f"wav_{s.lower()}": (sf_bytes(X, format="WAV", subtype=s), FRAMES, SR)
       for s in ("PCM_U8", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ALAW", "ULAW")},
    **{f"wavex_{s.lower()}": (sf_bytes(X, format="WAVEX", subtype=s), FRAMES, SR)
       for s in ("PCM_U8", "PCM_24", "PCM_32", "FLOAT")},
    "aiff_16": (sf_bytes(X, format="AIFF", subtype="PCM_16"), FRAMES, SR),
    "aiff_24": (sf_bytes(X, format="AIFF", subtype="PCM_24"), FRAMES, SR),
    "aifc_float": (sf_bytes(X, format="AIFF", subtype="FLOAT"), FRAMES, SR),
    "w64_16": (sf_bytes(X, format="W64", subtype="PCM_16"), FRAMES, SR),
    "caf_16": (sf_bytes(X, format="CAF", subtype="PCM_16"), FRAMES, SR),
    # compressed
    "flac_16": (sf_bytes(X, format="FLAC", subtype="PCM_16"), FRAMES, SR),
    "flac_24": (sf_bytes(X, format="FLAC", subtype="PCM_24"), FRAMES, SR),
    "flac_16_streamed": (streamed_flac(X, "PCM_16"), FRAMES, SR),
    "flac_24_streamed": (streamed_flac(X, "PCM_24"), FRAMES, SR),
    "ogg_vorbis": (sf_bytes(X, format="OGG", subtype="VORBIS"), FRAMES, SR),
    "ogg_opus": (sf_bytes(X, format="OGG", subtype="OPUS"), FRAMES, SR),
    "mp3_tagged": (sf_bytes(X, format="MP3"), FRAMES, SR),
    "mp3_id3_tagged": (b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10) + sf_bytes(X, format="MP3"), FRAMES, SR),
    # Without its length tag, the stream holds the encoder's delay (576 + 529) and padding
    "mp3_untagged": (mp3_without_tag(X), 27072, SR),
}
EXTENSIONS = {"flac": ".flac", "ogg": ".ogg", "mp3": ".mp3", "aiff": ".aiff", "aifc": ".aifc", "w64": ".w64",
              "caf": ".caf"}

# Which decoder `probe` picks: tensorflow-io only for the plain layout it parses correctly
DECODER = {"wav_plain": audio.TFIO_WAV_16, "wavex_mono": audio.TFIO_WAV_16,
           "wavex_stereo_48k": audio.TFIO_WAV_16, "wav_pcm_u8": audio.TFIO_WAV_U8,
           "wav_pcm_24": audio.TFIO_WAV_24, "wav_float": audio.TFIO_WAV_FLOAT,
           "wavex_pcm_u8": audio.TFIO_WAV_U8, "wavex_pcm_24": audio.TFIO_WAV_24,
           "wavex_float": audio.TFIO_WAV_FLOAT, "mp3_untagged": audio.TFIO_MP3}


def write(folder, name, data):
    path = folder / (name + next((e for k, e in EXTENSIONS.items() if name.startswith(k)), ".wav"))
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def readable(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readable")
    return {name: write(folder, name, data) for name, (data, _, _) in READABLE.items()}


def reference_features(path):
    return reference_fix_length(reference_log_mel(read_mono_numpy(path, SR), CONFIG), CONFIG)


def ours_features(waveform):
    return reference_fix_length(reference_log_mel(waveform.astype(np.float64), CONFIG), CONFIG)


@pytest.mark.parametrize("name", sorted(READABLE))
def test_every_readable_variant_decodes_to_all_its_frames(readable, name):
    _, frames, rate = READABLE[name]
    info = probe(readable[name])
    assert (info.frames, info.sample_rate) == ((-1 if name in ("mp3_untagged", "flac_16_streamed",
                                                               "flac_24_streamed") else frames), rate)
    assert info.decoder == DECODER.get(name, audio.LIBSNDFILE)
    waveform, decoded = decode_audio(tf.constant(readable[name].read_bytes()), info.decoder,
                                     info.sample_rate, info.frames, SR)
    assert int(decoded) == frames
    assert len(waveform) == -(-frames * SR // rate)


# Files libsndfile itself reads to the end, so the reference applies unchanged
REFERENCE_READABLE = sorted(set(READABLE) - {"flac_16_streamed", "flac_24_streamed", "mp3_untagged",
                                             "wavex_stereo_48k"})


@pytest.mark.parametrize("name", REFERENCE_READABLE)
def test_log_mel_equals_the_reference_extraction(readable, name):
    ours = load_mono(readable[name])
    reference = read_mono_numpy(readable[name], SR)
    assert len(ours) == len(reference) == FRAMES
    np.testing.assert_allclose(ours_features(ours), reference_features(readable[name]), atol=1e-4)


@pytest.mark.parametrize("name, twin", [("flac_16_streamed", "flac_16"), ("flac_24_streamed", "flac_24")])
def test_streamed_flac_equals_the_same_stream_with_its_length(readable, name, twin):
    # soundfile.read itself fails on these ("array is too big": the length is unknown)
    np.testing.assert_array_equal(load_mono(readable[name]), load_mono(readable[twin]))


def test_untagged_mp3_is_the_tagged_stream_plus_encoder_delay(readable):
    """libsndfile stops an untagged MP3 at mpg123's length estimate (here 15 480 of the
    stream's 27 072 frames), so tensorflow-io's decoder reads these to the end."""
    with soundfile.SoundFile(str(readable["mp3_untagged"])) as sound:
        assert sound.frames == 15480
        assert len(sound.read()) == 15480
    untagged = load_mono(readable["mp3_untagged"])
    tagged = load_mono(readable["mp3_tagged"])
    assert len(untagged) == 27072
    np.testing.assert_allclose(untagged[1105:1105 + FRAMES], tagged, atol=1e-5)


def test_resampled_stereo_wavex_is_close_to_the_reference(readable):
    ours = load_mono(readable["wavex_stereo_48k"])
    reference = read_mono_numpy(readable["wavex_stereo_48k"], SR)
    assert len(ours) == len(reference) == FRAMES
    a, b = ours_features(ours), reference_features(readable["wavex_stereo_48k"])
    loud = b > np.percentile(b, 50)
    assert np.mean(np.abs(a - b)[loud]) < 0.02  # the bound test_features.py uses for resampling


def test_tensorflow_io_is_not_trusted_with_fewer_frames_than_the_header(readable):
    """Forced onto tensorflow-io's WAV parser, the odd-chunk file gives 0 frames; the
    decoder sees the count differ from the header's and lets libsndfile decode it."""
    path = readable["odd_axml_before_data"]
    import tensorflow_io as tfio

    assert tfio.audio.decode_wav(tf.constant(path.read_bytes()), dtype=tf.int16).shape[0] == 0
    waveform, decoded = decode_audio(tf.constant(path.read_bytes()), audio.TFIO_WAV_16, SR, FRAMES, SR)
    assert int(decoded) == FRAMES
    np.testing.assert_allclose(waveform.numpy(), read_mono_numpy(path, SR), atol=1e-6)


# --- files that must be refused, with what is wrong --------------------------------------

def _cut(data, keep):
    return data[:keep]


PLAIN = riff([fmt_pcm16(), chunk(b"data", pcm16(X))])
REFUSED = {
    "empty": (b"", "empty file (0 bytes)"),
    "not_audio": (b"this is not audio at all" * 10,
                  "unreadable or unsupported audio format (Format not recognised.)"),
    "truncated_wav": (PLAIN[:44 + 2 * 8518],
                      "truncated or corrupt audio data: the header promises 25600 frames, the file holds 8518"),
    "truncated_wav_half_sample": (PLAIN[:-1],
                                  "truncated or corrupt audio data: the header promises 25600 frames, "
                                  "the file holds 25599"),
    "truncated_wavex_stereo": (riff([fmt_pcm16(48000, 2, True), chunk(b"data", pcm16(STEREO_48K))])[:68 + 4 * 1000],
                               "truncated or corrupt audio data: the header promises 76800 frames, "
                               "the file holds 1000"),
    "aiff_truncated": (READABLE["aiff_16"][0][:54 + 2 * 1000],
                       "truncated or corrupt audio data: the header promises 25600 frames, the file holds 1000"),
    "aifc_ulaw_truncated": (sf_bytes(X, format="AIFF", subtype="ULAW")[:4000],
                            "truncated or corrupt audio data: the header promises 25600 frames, the file holds "),
    "w64_truncated": (READABLE["w64_16"][0][:-2 * 600],
                      "truncated or corrupt audio data: the header promises 25600 frames, the file holds 25000"),
    "unfinished_header": (riff([fmt_pcm16(), chunk(b"data", pcm16(X), size=0)], size=0),
                          "WAV header never finished: RIFF and 'data' sizes are 0 but 51200 bytes follow"),
    "header_only": (riff([fmt_pcm16(), chunk(b"data", b"")]), "no audio samples (the header says 0 frames)"),
    "flac_truncated": (_cut(READABLE["flac_16"][0], len(READABLE["flac_16"][0]) // 2),
                       "truncated or corrupt audio data: decoded 12288 of the 25600 frames its header promises"),
    "mp3_truncated": (_cut(READABLE["mp3_tagged"][0], len(READABLE["mp3_tagged"][0]) // 2),
                      "truncated or corrupt audio data: decoded 10991 of the 25600 frames its header promises"),
    "too_short": (sf_bytes(np.zeros(300), subtype="PCM_16", format="WAV"),
                  "too short: 300 samples at 16000 Hz, less than one 512-sample analysis window"),
    "too_short_44k": (sf_bytes(np.zeros(1000), 44100, subtype="PCM_16", format="WAV"),
                      "too short: 363 samples at 16000 Hz, less than one 512-sample analysis window"),
    "nan": (sf_bytes(np.where(np.arange(8000) == 100, np.nan, 0.1), subtype="FLOAT", format="WAV"),
            "contains NaN or infinite samples"),
}


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refused")
    return {name: write(folder, name, data) for name, (data, _) in REFUSED.items()}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_untrustworthy_files_are_refused_with_their_reason(refused, name):
    with pytest.raises(UnreadableAudio) as caught:
        load_mono(refused[name])
    assert str(caught.value).startswith(REFUSED[name][1])


@pytest.mark.parametrize("name", ["not_audio", "truncated_wav", "flac_truncated", "nan"])
def test_predict_refuses_them_before_contacting_the_server(refused, name):
    with pytest.raises(TfadvserError) as caught:
        perturb_file("http://127.0.0.1:9", "m", refused[name])
    assert str(caught.value).startswith(f"{refused[name]}: {REFUSED[name][1]}")


def test_predict_decodes_what_prepare_decodes(readable):
    """A readable file gets past decoding and fails only at the (absent) server."""
    with pytest.raises(TfadvserError, match="cannot reach the server"):
        perturb_file("http://127.0.0.1:9", "m", readable["odd_list_before_data"])


# --- prepare and predict: the same files, the same reasons --------------------------------

DEMOS_EMOTIONS = ("ang", "dis", "fea", "gui", "hap", "sad", "sur")


def test_prepare_and_predict_accept_and_refuse_the_same_files(tmp_path):
    """A DEMoS-named corpus holding every variant above: what `prepare` writes equals the
    features of what `load_mono` (predict's decoder) returns, and what it skips has the
    reason `load_mono` raises."""
    root = tmp_path / "corpus"
    root.mkdir()
    for s, (gender, speaker) in enumerate((("f", "01"), ("m", "02"), ("f", "03"))):
        for e, code in enumerate(DEMOS_EMOTIONS):
            (root / f"PR_{gender}_{speaker}_{code}01a.wav").write_bytes(
                sf_bytes(voice(seed=10 * s + e, f0=120 + 40 * s + 10 * e), subtype="PCM_16", format="WAV"))
    names = {}
    for i, (name, data) in enumerate([(n, d) for n, (d, *_) in READABLE.items()]
                                     + [(n, d) for n, (d, _) in REFUSED.items()]):
        path = write(root, f"NP_m_02_{DEMOS_EMOTIONS[i % 7]}9{i:02d}", data)
        names[path.name] = name
    out = tmp_path / "out"
    metadata = prepare(root, "demos", out, progress=False)
    skipped = {item["path"]: item["reason"] for item in metadata["skipped"]}
    assert {names[p] for p in skipped} == set(REFUSED)
    for path_name, reason in skipped.items():
        with pytest.raises(UnreadableAudio) as caught:
            load_mono(root / path_name)
        assert str(caught.value) == reason
    written = 0
    for split in ("train", "dev", "test"):
        for batch in make_dataset(out, split, 64, standardize=False, include_info=True):
            for features, path in zip(batch["log_mel"].numpy(), batch["path"].numpy()):
                path = root / path.decode()
                np.testing.assert_allclose(features, ours_features(load_mono(path)), atol=1e-4)
                written += 1
    assert written == sum(load_data(out).record["totals"].values()) == 21 + len(READABLE)
