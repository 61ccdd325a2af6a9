"""Corpus readers: one small function per layout, each listing (path, label, speaker, gender).

A reader only parses names; it never opens audio. Files whose names it cannot parse, or
whose emotion code it does not know, are reported as problems with the reason; codes are
never guessed.
"""
from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path
from typing import Callable, Optional

from tfadvser.data.emotions import DEMOS_CODES, DEMOS_LABELS, NEUTRAL
from tfadvser.errors import TfadvserError

AUDIO_SUFFIXES = (".wav", ".flac")


@dataclasses.dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    speaker: str
    gender: Optional[str] = None  # "f", "m" or None when the corpus does not say


@dataclasses.dataclass(frozen=True)
class Problem:
    path: Path
    reason: str


@dataclasses.dataclass
class Listing:
    """What a reader found: usable clips, the corpus's label set, and rejected files."""

    clips: list[Clip]
    labels: tuple[str, ...]
    problems: list[Problem]


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _by_pattern(root: Path, pattern: re.Pattern, layout: str,
                parse: Callable[[re.Match], tuple[Optional[str], str, Optional[str]]],
                labels: tuple[str, ...], keep: Callable[[str], bool]) -> Listing:
    """Shared loop of the file-name readers: match, map the code, keep or report."""
    clips, problems = [], []
    for path in _audio_files(root):
        match = pattern.fullmatch(path.name)
        if not match:
            problems.append(Problem(path, f"file name does not follow the {layout} convention"))
            continue
        label, speaker, gender = parse(match)
        if label is None:
            problems.append(Problem(path, f"unknown emotion code in {layout} file name"))
        elif keep(label):
            clips.append(Clip(path, label, speaker, gender))
    return Listing(clips, labels, problems)


# DEMoS: NP_m_19_ang08b.wav = prefix, gender, speaker, emotion code, item.
DEMOS_PATTERN = re.compile(r"(?P<prefix>[A-Za-z]+)_(?P<gender>[mf])_(?P<speaker>\d+)_"
                           r"(?P<code>[a-z]{3})(?P<item>[A-Za-z0-9]*)\.(wav|flac)", re.I)


def read_demos(root: Path, keep_neutral: bool = False) -> Listing:
    labels = DEMOS_LABELS + ((NEUTRAL,) if keep_neutral else ())
    return _by_pattern(
        root, DEMOS_PATTERN, "DEMoS",
        lambda m: (DEMOS_CODES.get(m["code"].lower()), m["speaker"], m["gender"].lower()),
        labels, lambda label: label in labels)


# EmoDB: 03a01Fa.wav = speaker, text code, emotion letter (German initials), version.
EMODB_CODES = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness",
               "T": "sadness", "N": NEUTRAL}
EMODB_GENDERS = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m", "12": "m", "13": "f",
                 "14": "f", "15": "m", "16": "f"}
EMODB_PATTERN = re.compile(r"(?P<speaker>\d\d)(?P<text>[a-z]\d\d)(?P<code>[A-Z])(?P<version>[a-z]?)"
                           r"\.(wav|flac)")


def read_emodb(root: Path, keep_neutral: bool = True) -> Listing:
    labels = tuple(sorted(set(EMODB_CODES.values()) - ({NEUTRAL} if not keep_neutral else set())))
    return _by_pattern(
        root, EMODB_PATTERN, "EmoDB",
        lambda m: (EMODB_CODES.get(m["code"]), m["speaker"], EMODB_GENDERS.get(m["speaker"])),
        labels, lambda label: label in labels)


# RAVDESS: 03-01-05-01-02-01-12.wav = modality, channel, emotion, intensity, statement,
# repetition, actor (odd actors are male, even female).
RAVDESS_CODES = {"01": NEUTRAL, "02": "calm", "03": "happiness", "04": "sadness", "05": "anger",
                 "06": "fear", "07": "disgust", "08": "surprise"}
RAVDESS_PATTERN = re.compile(r"(?P<modality>\d\d)-(?P<channel>\d\d)-(?P<code>\d\d)-(?P<intensity>\d\d)-"
                             r"(?P<statement>\d\d)-(?P<repetition>\d\d)-(?P<actor>\d\d)\.(wav|flac)")


def read_ravdess(root: Path, keep_neutral: bool = True) -> Listing:
    labels = tuple(sorted(set(RAVDESS_CODES.values()) - ({NEUTRAL} if not keep_neutral else set())))
    return _by_pattern(
        root, RAVDESS_PATTERN, "RAVDESS",
        lambda m: (RAVDESS_CODES.get(m["code"]), m["actor"], "m" if int(m["actor"]) % 2 else "f"),
        labels, lambda label: label in labels)


# CREMA-D: 1001_DFA_ANG_XX.wav = actor, sentence, emotion, level. Gender lives in a separate
# demographics table, so it is left unknown here.
CREMAD_CODES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness",
                "NEU": NEUTRAL, "SAD": "sadness"}
CREMAD_PATTERN = re.compile(r"(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<code>[A-Z]{3})_(?P<level>[A-Z]{2})"
                            r"\.(wav|flac)")


def read_cremad(root: Path, keep_neutral: bool = True) -> Listing:
    labels = tuple(sorted(set(CREMAD_CODES.values()) - ({NEUTRAL} if not keep_neutral else set())))
    return _by_pattern(
        root, CREMAD_PATTERN, "CREMA-D",
        lambda m: (CREMAD_CODES.get(m["code"]), m["actor"], None),
        labels, lambda label: label in labels)


def read_manifest(root: Path, keep_neutral: bool = True) -> Listing:
    """A CSV `manifest.csv` in `root` (or `root` is the CSV) with columns path,label,speaker
    and optionally gender. Paths are relative to the CSV's folder."""
    manifest = root if root.is_file() else root / "manifest.csv"
    if not manifest.is_file():
        raise TfadvserError(f"{manifest}: no CSV manifest found (expected columns path,label,speaker)")
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
        fields = set(rows[0]) if rows else set()
    missing = {"path", "label", "speaker"} - fields
    if missing:
        raise TfadvserError(f"{manifest}: missing column(s) {', '.join(sorted(missing))}; "
                            "expected a header path,label,speaker[,gender]")
    clips, problems = [], []
    for line, row in enumerate(rows, start=2):
        path = manifest.parent / row["path"]
        label, speaker = (row["label"] or "").strip(), (row["speaker"] or "").strip()
        gender = (row.get("gender") or "").strip().lower()[:1] or None
        if not label or not speaker:
            problems.append(Problem(path, f"{manifest.name} line {line}: empty label or speaker"))
        elif keep_neutral or label != NEUTRAL:
            clips.append(Clip(path, label, speaker, gender if gender in ("f", "m") else None))
    return Listing(clips, tuple(sorted({c.label for c in clips})), problems)


def read_folders(root: Path, keep_neutral: bool = True) -> Listing:
    """One folder per label: `root/<label>/<speaker>/file.wav`, or `root/<label>/file.wav`
    where each file then counts as its own speaker (the split cannot be speaker-independent
    without speaker information; `prepare` warns about that)."""
    clips, problems = [], []
    for path in _audio_files(root):
        parts = path.relative_to(root).parts
        if len(parts) not in (2, 3):
            problems.append(Problem(path, "expected <label>/<file> or <label>/<speaker>/<file>"))
            continue
        label = parts[0]
        speaker = parts[1] if len(parts) == 3 else f"file:{path.stem}"
        if keep_neutral or label != NEUTRAL:
            clips.append(Clip(path, label, speaker))
    return Listing(clips, tuple(sorted({c.label for c in clips})), problems)


READERS = {
    "demos": read_demos,
    "emodb": read_emodb,
    "ravdess": read_ravdess,
    "cremad": read_cremad,
    "csv": read_manifest,
    "folders": read_folders,
}


def read_corpus(kind: str, root, keep_neutral: Optional[bool] = None) -> Listing:
    """List a corpus. Neutral is dropped by default for DEMoS only, as in the paper."""
    if kind not in READERS:
        raise TfadvserError(f"unknown corpus kind {kind!r}; choose one of {', '.join(READERS)}")
    root = Path(root)
    if not root.exists():
        raise TfadvserError(f"{root}: no such file or directory")
    if keep_neutral is None:
        keep_neutral = kind != "demos"
    listing = READERS[kind](root, keep_neutral=keep_neutral)
    if not listing.clips:
        detail = f" ({len(listing.problems)} file(s) rejected, e.g. {listing.problems[0].path.name}: " \
                 f"{listing.problems[0].reason})" if listing.problems else ""
        raise TfadvserError(f"{root}: no usable {kind} audio files found{detail}")
    return listing
