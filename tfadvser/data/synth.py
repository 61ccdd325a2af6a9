"""The built-in emotional-speech corpus: a source-filter synthesiser written with numpy/scipy.

No emotional-speech corpus can be downloaded on the project's machines (DEMoS is licensed),
so demos and tests use this generator. Each utterance is a glottal pulse train (F0 contour
with jitter and shimmer, breath noise) through a cascade of formant resonators, one vowel
per syllable, with fricative bursts, an amplitude envelope and pauses.

Speakers differ in base F0, vocal-tract length (formant scaling), voice quality and habits.
Emotions differ in the cues the SER literature names (Scherer 2003; Murray & Arnott 1993):
F0 level, range and final contour, speech rate, intensity, spectral tilt (vocal effort),
open quotient (tense vs. breathy voice), jitter/shimmer and pausing. Every cue also varies
per utterance and per speaker, so classes overlap; `difficulty` trades the size of the
emotion effects against that variation.

File names follow DEMoS's convention so the DEMoS reader reads the corpus.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
from pathlib import Path

import numpy as np
import soundfile
from scipy import signal

from tfadvser.config import CorpusConfig
from tfadvser.data.emotions import DEMOS_LABELS, LABEL_TO_DEMOS_CODE, NEUTRAL


@dataclasses.dataclass(frozen=True)
class Cues:
    """Prosodic and voice-quality parameters of one utterance."""

    f0_shift: float  # semitones relative to the speaker's base F0
    f0_range: float  # multiplier on the size of syllable accents
    final_glide: float  # semitones of the phrase-final rise (+) or fall (-)
    rate: float  # syllables per second
    level_db: float  # intensity relative to neutral
    tilt: float  # one-pole low-pass coefficient: higher = steeper tilt, less vocal effort
    open_quotient: float  # glottal open phase: low = tense/pressed, high = breathy/lax
    jitter: float  # relative per-cycle F0 perturbation (sd)
    shimmer: float  # relative per-cycle amplitude perturbation (sd)
    breath: float  # aspiration noise relative to the voiced source
    pause_prob: float  # probability of a pause after a syllable


NEUTRAL_CUES = Cues(0.0, 1.0, -2.0, 4.5, 0.0, 0.55, 0.60, 0.010, 0.04, 0.05, 0.15)

# Emotion targets; the neutral values above are the origin the effects are measured from.
EMOTION_CUES = {
    NEUTRAL: NEUTRAL_CUES,
    "anger": Cues(4.0, 1.6, -5.0, 5.4, 8.0, 0.25, 0.45, 0.015, 0.06, 0.03, 0.10),
    "disgust": Cues(-1.5, 1.2, -4.0, 3.6, 1.0, 0.55, 0.55, 0.025, 0.09, 0.06, 0.25),
    "fear": Cues(6.0, 1.3, 1.0, 5.6, 2.0, 0.45, 0.65, 0.035, 0.07, 0.12, 0.30),
    "guilt": Cues(-2.0, 0.6, -2.0, 3.6, -5.0, 0.70, 0.70, 0.012, 0.05, 0.15, 0.35),
    "happiness": Cues(4.0, 1.8, 2.0, 5.0, 5.0, 0.40, 0.55, 0.010, 0.04, 0.05, 0.12),
    "sadness": Cues(-3.0, 0.5, -3.0, 3.1, -7.0, 0.80, 0.75, 0.015, 0.05, 0.18, 0.40),
    "surprise": Cues(5.0, 2.2, 7.0, 4.5, 4.0, 0.40, 0.55, 0.012, 0.04, 0.06, 0.15),
}

# Per-utterance standard deviation of each cue at difficulty 1 (scaled down below it).
CUE_SPREAD = Cues(2.0, 0.35, 2.5, 0.6, 3.0, 0.12, 0.08, 0.006, 0.02, 0.04, 0.08)

# Formant frequencies (Hz) and bandwidths of five vowels for an adult male vocal tract.
VOWELS = np.array([
    [730, 1090, 2440, 3400],  # a
    [530, 1840, 2480, 3500],  # e
    [270, 2290, 3010, 3700],  # i
    [570, 840, 2410, 3300],  # o
    [300, 870, 2240, 3300],  # u
], dtype=float)
BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0])

SAMPLE_RATES = (16000, 16000, 16000, 22050, 44100)
MIN_SECONDS, MAX_SECONDS = 1.5, 7.0


@dataclasses.dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: gender, mean F0 in Hz, vocal-tract scale and habits."""

    number: int
    gender: str  # "f" or "m"
    base_f0: float
    tract_scale: float  # formant scaling; shorter vocal tracts have higher formants
    habit: Cues  # the speaker's own offsets from every emotion's target


def make_speakers(n_speakers: int, rng: np.random.Generator) -> list[Speaker]:
    """`n_speakers` speakers numbered from 1, genders alternating (f first), drawn from `rng`."""
    speakers = []
    for i in range(n_speakers):
        gender = "f" if i % 2 == 0 else "m"
        base_f0 = rng.normal(210.0, 20.0) if gender == "f" else rng.normal(115.0, 12.0)
        tract = rng.normal(1.17, 0.04) if gender == "f" else rng.normal(1.0, 0.04)
        # Speaker habits are half the per-utterance spread: enough that a model must
        # generalise across speakers, which the speaker-independent split then tests.
        habit = Cues(*(0.5 * s * rng.standard_normal() for s in dataclasses.astuple(CUE_SPREAD)))
        speakers.append(Speaker(i + 1, gender, float(base_f0), float(tract), habit))
    return speakers


def utterance_cues(emotion: str, speaker: Speaker, difficulty: float,
                   rng: np.random.Generator) -> Cues:
    """Neutral + a difficulty-scaled emotion effect + speaker habit + per-utterance noise."""
    strength = 1.0 - 0.75 * difficulty
    spread = 0.3 + 1.2 * difficulty
    values = []
    for neutral, target, habit, sd in zip(
        dataclasses.astuple(NEUTRAL_CUES),
        dataclasses.astuple(EMOTION_CUES[emotion]),
        dataclasses.astuple(speaker.habit),
        dataclasses.astuple(CUE_SPREAD),
    ):
        values.append(neutral + strength * (target - neutral) + habit
                      + spread * sd * rng.standard_normal())
    c = Cues(*values)
    return dataclasses.replace(
        c,
        f0_range=max(c.f0_range, 0.1),
        rate=float(np.clip(c.rate, 2.0, 8.0)),
        tilt=float(np.clip(c.tilt, 0.0, 0.95)),
        open_quotient=float(np.clip(c.open_quotient, 0.3, 0.9)),
        jitter=max(c.jitter, 0.0),
        shimmer=max(c.shimmer, 0.0),
        breath=max(c.breath, 0.0),
        pause_prob=float(np.clip(c.pause_prob, 0.0, 0.8)),
    )


def _glottal_flow(phase_frac: np.ndarray, open_quotient: float) -> np.ndarray:
    """Rosenberg glottal pulse over one period, evaluated at the fractional phase."""
    t_open = 0.6 * open_quotient
    t_close = 0.4 * open_quotient
    flow = np.zeros_like(phase_frac)
    rising = phase_frac < t_open
    flow[rising] = 0.5 * (1.0 - np.cos(np.pi * phase_frac[rising] / t_open))
    falling = (phase_frac >= t_open) & (phase_frac < t_open + t_close)
    flow[falling] = np.cos(0.5 * np.pi * (phase_frac[falling] - t_open) / t_close)
    return flow


def _resonator(freq: float, bandwidth: float, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """Second-order all-pole resonator with unit gain at DC."""
    r = np.exp(-np.pi * bandwidth / fs)
    theta = 2.0 * np.pi * freq / fs
    a = np.array([1.0, -2.0 * r * np.cos(theta), r * r])
    return np.array([a.sum()]), a


def synthesize_utterance(cues: Cues, speaker: Speaker, fs: int, seconds: float,
                         rng: np.random.Generator) -> np.ndarray:
    """One mono utterance at sample rate `fs`, float64, peak well below 1."""
    n = int(seconds * fs)
    # Segment plan: syllables (consonant + vowel) and pauses, until the duration is filled.
    segments = []  # (start, stop, kind, vowel index, accent)
    pos = int(rng.uniform(0.05, 0.15) * fs)  # leading silence
    while pos < n - int(0.15 * fs):
        syll = int(fs / cues.rate * rng.uniform(0.7, 1.3))
        cons = int(syll * rng.uniform(0.15, 0.35)) if rng.random() < 0.7 else 0
        if cons:
            segments.append((pos, pos + cons, "fricative", 0, 0.0))
        segments.append((pos + cons, min(pos + syll, n), "vowel", int(rng.integers(len(VOWELS))),
                         float(rng.normal(0.0, 1.0))))
        pos += syll
        if rng.random() < cues.pause_prob:
            pos += int(rng.uniform(0.08, 0.45) * fs)
    last_voiced = max((s[1] for s in segments if s[2] == "vowel"), default=n)

    # F0 contour (semitones): emotion level, declination, syllable accents, final glide,
    # slow drift; then per-cycle jitter through the phase increment.
    t = np.arange(n) / fs
    semis = np.full(n, cues.f0_shift) - 1.5 * t / max(seconds, 1e-3)
    for start, stop, kind, _, accent in segments:
        if kind == "vowel":
            bump = np.sin(np.linspace(0.0, np.pi, stop - start))
            semis[start:stop] += 2.0 * cues.f0_range * accent * bump
    glide_len = int(0.4 * fs)
    g0 = max(last_voiced - glide_len, 0)
    semis[g0:last_voiced] += cues.final_glide * np.linspace(0.0, 1.0, last_voiced - g0)
    semis[last_voiced:] += cues.final_glide
    drift = signal.lfilter([0.002], [1.0, -0.998], rng.standard_normal(n))
    f0 = speaker.base_f0 * 2.0 ** ((semis + 3.0 * drift) / 12.0)
    f0 = np.clip(f0, 50.0, 600.0)
    max_cycles = int(np.ceil(seconds * 600.0)) + 2
    cycle_jitter = 1.0 + cues.jitter * rng.standard_normal(max_cycles)
    phase = np.cumsum(f0 / fs)
    cycle = phase.astype(int)
    phase = np.cumsum(f0 * cycle_jitter[np.minimum(cycle, max_cycles - 1)] / fs)
    cycle = np.minimum(phase.astype(int), max_cycles - 1)
    frac = phase - np.floor(phase)

    flow = _glottal_flow(frac, cues.open_quotient)
    shimmer = 1.0 + cues.shimmer * rng.standard_normal(max_cycles)
    source = np.diff(flow, prepend=0.0) * shimmer[cycle] * fs / 200.0
    aspiration = rng.standard_normal(n) * (0.3 + flow)
    source = source + cues.breath * aspiration
    # Vocal effort: a one-pole low-pass whose pole moves towards 1 for lax, soft voices.
    source = signal.lfilter([1.0 - cues.tilt], [1.0, -cues.tilt], source)

    out = np.zeros(n)
    envelope = np.zeros(n)
    states = [np.zeros(2) for _ in BANDWIDTHS]
    for start, stop, kind, vowel, _ in segments:
        length = stop - start
        if length <= 0:
            continue
        ramp = np.sin(np.linspace(0.0, np.pi, length)) ** 0.5
        if kind == "fricative":
            noise = rng.standard_normal(length)
            centre = rng.uniform(2500.0, min(6500.0, 0.45 * fs))
            b, a = signal.butter(2, [centre * 0.7, min(centre * 1.3, 0.49 * fs)],
                                 btype="band", fs=fs)
            out[start:stop] += 0.15 * signal.lfilter(b, a, noise) * ramp
            continue
        seg = source[start:stop]
        formants = VOWELS[vowel] * speaker.tract_scale * rng.uniform(0.95, 1.05, size=4)
        for i, (freq, bw) in enumerate(zip(formants, BANDWIDTHS)):
            b, a = _resonator(min(freq, 0.45 * fs), bw, fs)
            seg, states[i] = signal.lfilter(b, a, seg, zi=states[i])
        out[start:stop] += seg * ramp
        envelope[start:stop] = 1.0
    out += 1e-4 * rng.standard_normal(n)  # room noise floor so silence is not digital zero

    rms = np.sqrt(np.mean(out[envelope > 0] ** 2)) if envelope.any() else 1.0
    gain = 0.05 * 10.0 ** (cues.level_db / 20.0) / max(rms, 1e-9)
    return np.clip(out * gain, -0.99, 0.99)


def synthesize_corpus(out_dir: str | os.PathLike, n_speakers: int = CorpusConfig.speakers,
                      utterances: int = CorpusConfig.utterances,
                      difficulty: float = CorpusConfig.difficulty, seed: int = CorpusConfig.seed,
                      include_neutral: bool = CorpusConfig.include_neutral,
                      min_seconds: float = MIN_SECONDS, max_seconds: float = MAX_SECONDS,
                      first_speaker: int = 1, progress=None) -> list[Path]:
    """Write `n_speakers` x emotions x `utterances` WAV files to `out_dir`; return their paths.

    Speakers are numbered from `first_speaker`: speakers 31-60 of a seed are those a
    60-speaker corpus of that seed has after its first 30, so `first_speaker=31` gives new
    voices for the default 30 (an attacker corpus, `data/attacker_data.py`).
    Deterministic for a given seed. About a fifth of the files are 22.05 kHz, a fifth
    44.1 kHz, and a fifth stereo, so that resampling and down-mixing are exercised.
    `progress`, if given, is called once per written file.
    """
    if n_speakers < 1 or utterances < 1:
        raise ValueError("need at least one speaker and one utterance per emotion")
    if not 1 <= first_speaker <= 99 - n_speakers + 1:
        # DEMoS names give the speaker two digits.
        raise ValueError(f"speakers are numbered 1-99; {n_speakers} from {first_speaker} do not fit")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    if not 0 < min_seconds <= max_seconds:
        raise ValueError("need 0 < min_seconds <= max_seconds")
    rng = np.random.default_rng(seed)
    # Every earlier speaker is drawn too, so speaker k's voice does not depend on where the
    # numbering starts.
    speakers = make_speakers(first_speaker - 1 + n_speakers, rng)[first_speaker - 1:]
    emotions = list(DEMOS_LABELS) + ([NEUTRAL] if include_neutral else [])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out, seed, speaker, emotions, emotion, item, difficulty, min_seconds, max_seconds)
            for speaker in speakers for emotion in emotions for item in range(1, utterances + 1)]
    written = []
    # Files are independent (each has its own generator), so a large corpus is written by a
    # pool of processes, one per core; the bytes do not depend on the pool. "spawn", not
    # fork: the caller may hold TensorFlow's thread pools, which a fork would copy mid-use.
    workers = min(os.cpu_count() or 1, len(jobs) // 32)
    if workers > 1:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            for path in pool.map(_write_utterance, jobs, chunksize=8):
                written.append(path)
                if progress is not None:
                    progress(path)
    else:
        for job in jobs:
            written.append(_write_utterance(job))
            if progress is not None:
                progress(written[-1])
    return written


def _write_utterance(job) -> Path:
    """Synthesise and write one file of `synthesize_corpus` (a pool worker's unit)."""
    out, seed, speaker, emotions, emotion, item, difficulty, min_seconds, max_seconds = job
    # One child generator per file: a file's content does not depend on the order of
    # generation or on how many other files are asked for.
    file_rng = np.random.default_rng([seed, speaker.number, emotions.index(emotion), item])
    cues = utterance_cues(emotion, speaker, difficulty, file_rng)
    fs = int(file_rng.choice(SAMPLE_RATES))
    stereo = file_rng.random() < 0.2
    # Slow speech runs longer: duration follows the speech rate.
    seconds = float(np.clip(file_rng.uniform(2.0, 6.0) * 4.5 / cues.rate, min_seconds, max_seconds))
    wave = synthesize_utterance(cues, speaker, fs, seconds, file_rng)
    if stereo:
        wave = np.stack([wave, wave * file_rng.uniform(0.6, 0.9)], axis=1)
    prefix = "PR" if item % 2 else "NP"
    name = (f"{prefix}_{speaker.gender}_{speaker.number:02d}_"
            f"{LABEL_TO_DEMOS_CODE[emotion]}{item:02d}{'ab'[item % 2]}.wav")
    path = out / name
    soundfile.write(path, wave, fs, subtype="PCM_16")
    return path
