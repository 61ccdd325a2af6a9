"""Corpus readers: one small function per layout, each listing (path, label, speaker, gender).

A reader parses names, never audio. Every file it finds is either listed as a clip or
reported as a problem with the reason (a name that breaks the convention, an unknown code,
a field the default selection leaves out); codes are never guessed. Files that are not
audio at all (operating-system artefacts such as `__MACOSX/` or `._*`, `.DS_Store`,
`Thumbs.db`; other extensions) are ignored and counted. `read_corpus` then sets aside
byte-identical copies and, for the named corpora, the same recording in a second format.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Optional

from tfadvser.data.emotions import DEMOS_CODES, DEMOS_LABELS, NEUTRAL
from tfadvser.errors import TfadvserError

# Everything the decoder reads (tfadvser/data/audio.py); matched in any letter case.
AUDIO_SUFFIXES = (".wav", ".wave", ".bwf", ".rf64", ".w64", ".flac", ".ogg", ".oga", ".opus", ".mp3",
                  ".aif", ".aiff", ".aifc", ".caf")
LOSSLESS_SUFFIXES = (".wav", ".wave", ".bwf", ".rf64", ".w64", ".flac", ".aif", ".aiff", ".aifc", ".caf")

# Operating-system artefacts: never audio, whatever their extension (`._x.wav` is an
# AppleDouble resource fork, not a WAV file).
ARTEFACT_FOLDERS = {"__macosx": "macOS archive metadata (__MACOSX/)",
                    ".spotlight-v100": "macOS Spotlight index", ".fseventsd": "macOS file-system events",
                    ".trashes": "macOS trash", ".appledouble": "AppleDouble folder (.AppleDouble/)",
                    "$recycle.bin": "Windows recycle bin", "system volume information": "Windows volume data"}
ARTEFACT_FILES = {".ds_store": "macOS folder settings (.DS_Store)", "thumbs.db": "Windows thumbnails (Thumbs.db)",
                  "ehthumbs.db": "Windows thumbnails (Thumbs.db)", "desktop.ini": "Windows folder settings (desktop.ini)",
                  ".localized": "macOS localisation marker (.localized)", "icon\r": "macOS folder icon (Icon\\r)"}
APPLEDOUBLE = "macOS resource fork (._*)"


@dataclasses.dataclass(frozen=True)
class Clip:
    """One listed audio file with its emotion label, speaker and (if known) gender."""

    path: Path
    label: str
    speaker: str
    gender: Optional[str] = None  # "f", "m" or None when the corpus does not say


@dataclasses.dataclass(frozen=True)
class Problem:
    """A file that will not be prepared, and the reason, as users read it."""

    path: Path
    reason: str


@dataclasses.dataclass
class Listing:
    """What a reader found: usable clips, the corpus's label set, rejected files, and how
    many files of each kind were left out on purpose (not audio, OS artefacts, neutral)."""

    clips: list[Clip]
    labels: tuple[str, ...]
    problems: list[Problem]
    ignored: dict[str, int] = dataclasses.field(default_factory=dict)


def display_name(name) -> str:
    """A file name as printable text. The OS may hold any bytes: those that are not UTF-8
    become \\xNN, control characters their escapes, so a name can always be reported."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def relative_name(path: Path, root: Path) -> str:
    """`path` relative to the corpus folder (or the manifest's folder), for reports."""
    base = root if root.is_dir() else root.parent
    try:
        return display_name(path.relative_to(base))
    except ValueError:
        return display_name(path)


def describe_ignored(ignored: dict[str, int]) -> str:
    """"3 OS artefacts, 1 not audio" from {kind: count}, most frequent first."""
    return ", ".join(f"{count} {kind}" for kind, count in sorted(ignored.items(), key=lambda kv: (-kv[1], kv[0])))


# ---------------------------------------------------------------------------------------
# Finding files


def _artefact(name: str, folder: bool) -> Optional[str]:
    lower = name.lower()
    if folder:
        if lower in ARTEFACT_FOLDERS:
            return ARTEFACT_FOLDERS[lower]
        return f"hidden folder ({display_name(name)}/)" if name.startswith(".") else None
    if name.startswith("._"):
        return APPLEDOUBLE
    return ARTEFACT_FILES.get(lower)


def _artefact_path(path: Path) -> Optional[str]:
    """What kind of artefact a listed path is (by its name or a folder on its way), or None."""
    kinds = [_artefact(path.name, folder=False)] + [ARTEFACT_FOLDERS.get(p.lower()) for p in path.parent.parts]
    return next((kind for kind in kinds if kind), None)


def _count_files(folder: str) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def scan(root: Path) -> tuple[list[Path], Counter]:
    """Audio files under `root` (symbolic links followed, each folder once), and a count of
    the other files by kind."""
    found, ignored, visited = [], Counter(), set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:
            subfolders[:] = []
            continue
        visited.add(real)
        keep = []
        for name in subfolders:
            kind = _artefact(name, folder=True)
            if kind:
                ignored[kind] += _count_files(os.path.join(folder, name))
            else:
                keep.append(name)
        subfolders[:] = sorted(keep)
        for name in files:
            kind = _artefact(name, folder=False)
            suffix = os.path.splitext(name)[1].lower()
            if kind:
                ignored[kind] += 1
            elif suffix in AUDIO_SUFFIXES:
                found.append(Path(folder, name))
            else:
                ignored[f"not audio ({display_name(suffix) if suffix else 'no extension'})"] += 1
    return sorted(found), ignored


# ---------------------------------------------------------------------------------------
# Named corpora


def _by_pattern(root: Path, pattern: re.Pattern, layout: str,
                parse: Callable[[re.Match, Path], tuple[Optional[str], str, Optional[str]]],
                labels: tuple[str, ...], keep: Callable[[str], bool]) -> Listing:
    """Shared loop of the file-name readers: match the name (without its extension), check
    and map its fields, keep or report. `parse` returns (label, speaker, gender) or raises
    _FieldError with the reason."""
    files, ignored = scan(root)
    clips, problems = [], []
    for path in files:
        match = pattern.fullmatch(path.stem)
        if not match:
            problems.append(Problem(path, f"file name does not follow the {layout} convention"))
            continue
        try:
            label, speaker, gender = parse(match, path)
        except _FieldError as exc:
            problems.append(Problem(path, str(exc)))
            continue
        if label is None:
            problems.append(Problem(path, f"unknown emotion code in {layout} file name"))
        elif keep(label):
            clips.append(Clip(path, label, speaker, gender))
        else:
            ignored[f"{label} (left out; --keep-neutral keeps it)"] += 1
    return Listing(clips, labels, problems, dict(ignored))


class _FieldError(Exception):
    """A file-name field outside the corpus's convention; the message is the reason."""


def _check(layout: str, field: str, value: str, allowed, meaning: str = "") -> None:
    if value not in allowed:
        raise _FieldError(f"{layout} {field} {value!r} is not one of the corpus's "
                          f"({', '.join(sorted(allowed))}){meaning}")


# DEMoS: NP_m_19_ang08b.wav = prefix, gender, speaker, emotion code, item.
DEMOS_PATTERN = re.compile(r"(?P<prefix>[A-Za-z]+)_(?P<gender>[mf])_(?P<speaker>\d+)_"
                           r"(?P<code>[a-z]{3})(?P<item>[A-Za-z0-9]*)", re.I)


def read_demos(root: Path, keep_neutral: bool = False) -> Listing:
    """DEMoS names (`NP_m_19_ang08b.wav`): label from the code, speaker and gender from the
    name; neutral dropped unless `keep_neutral`, as in the paper."""
    labels = DEMOS_LABELS + ((NEUTRAL,) if keep_neutral else ())
    return _by_pattern(
        root, DEMOS_PATTERN, "DEMoS",
        lambda m, _: (DEMOS_CODES.get(m["code"].lower()), m["speaker"], m["gender"].lower()),
        labels, lambda label: label in labels)


# EmoDB: 03a01Fa.wav = speaker, text code, emotion letter (German initials), version.
EMODB_CODES = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness",
               "T": "sadness", "N": NEUTRAL}
EMODB_GENDERS = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m", "12": "m", "13": "f",
                 "14": "f", "15": "m", "16": "f"}
EMODB_TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
EMODB_PATTERN = re.compile(r"(?P<speaker>\d\d)(?P<text>[a-z]\d\d)(?P<code>[A-Z])(?P<version>[a-z]?)")


def _parse_emodb(m: re.Match, _path: Path):
    _check("EmoDB", "speaker", m["speaker"], EMODB_GENDERS)
    _check("EmoDB", "text code", m["text"], EMODB_TEXTS)
    return EMODB_CODES.get(m["code"]), m["speaker"], EMODB_GENDERS[m["speaker"]]


def read_emodb(root: Path, keep_neutral: bool = True) -> Listing:
    """EmoDB names (`03a01Fa.wav`): speaker, text code and emotion letter; gender from the
    corpus's speaker table."""
    labels = tuple(sorted(set(EMODB_CODES.values()) - ({NEUTRAL} if not keep_neutral else set())))
    return _by_pattern(root, EMODB_PATTERN, "EmoDB", _parse_emodb, labels, lambda label: label in labels)


# RAVDESS: 03-01-05-01-02-01-12.wav = modality (01 full AV, 02 video only, 03 audio only),
# vocal channel (01 speech, 02 song), emotion, intensity (01 normal, 02 strong; neutral has
# no strong), statement (01, 02), repetition (01, 02), actor (01-24; odd male, even female).
RAVDESS_CODES = {"01": NEUTRAL, "02": "calm", "03": "happiness", "04": "sadness", "05": "anger",
                 "06": "fear", "07": "disgust", "08": "surprise"}
RAVDESS_MODALITIES = {"01": "full audio-video", "02": "video-only", "03": "audio-only"}
RAVDESS_CHANNELS = {"01": "speech", "02": "song"}
RAVDESS_ACTORS = tuple(f"{a:02d}" for a in range(1, 25))
RAVDESS_PATTERN = re.compile(r"(?P<modality>\d\d)-(?P<channel>\d\d)-(?P<code>\d\d)-(?P<intensity>\d\d)-"
                             r"(?P<statement>\d\d)-(?P<repetition>\d\d)-(?P<actor>\d\d)")


def _ravdess_parser(song: bool):
    def parse(m: re.Match, path: Path):
        _check("RAVDESS", "modality", m["modality"], RAVDESS_MODALITIES)
        _check("RAVDESS", "vocal channel", m["channel"], RAVDESS_CHANNELS)
        _check("RAVDESS", "intensity", m["intensity"], ("01", "02"))
        _check("RAVDESS", "statement", m["statement"], ("01", "02"))
        _check("RAVDESS", "repetition", m["repetition"], ("01", "02"))
        _check("RAVDESS", "actor", m["actor"], RAVDESS_ACTORS)
        if m["modality"] != "03":
            raise _FieldError(f"RAVDESS modality {m['modality']} ({RAVDESS_MODALITIES[m['modality']]}), "
                              "not 03 (audio-only): the audio-only release is the one read")
        if m["channel"] == "02" and not song:
            raise _FieldError("RAVDESS vocal channel 02 (song): only speech (01) is read by default")
        if m["code"] == "01" and m["intensity"] == "02":
            raise _FieldError("RAVDESS neutral (01) has no strong intensity (02)")
        folder = re.fullmatch(r"Actor_(\d\d)", path.parent.name)
        if folder and folder[1] != m["actor"]:
            raise _FieldError(f"RAVDESS actor {m['actor']} in the name, but in folder {path.parent.name}")
        return RAVDESS_CODES.get(m["code"]), m["actor"], "m" if int(m["actor"]) % 2 else "f"

    return parse


def read_ravdess(root: Path, keep_neutral: bool = True, song: bool = False) -> Listing:
    """Audio-only speech by default; `song=True` adds the sung clips (vocal channel 02)."""
    labels = tuple(sorted(set(RAVDESS_CODES.values()) - ({NEUTRAL} if not keep_neutral else set())))
    return _by_pattern(root, RAVDESS_PATTERN, "RAVDESS", _ravdess_parser(song), labels,
                       lambda label: label in labels)


# CREMA-D: 1001_DFA_ANG_XX.wav = actor (1001-1091), sentence, emotion, level. Gender lives
# in the corpus's VideoDemographics.csv (used when found next to the audio folder).
CREMAD_CODES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness",
                "NEU": NEUTRAL, "SAD": "sadness"}
CREMAD_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
CREMAD_LEVELS = ("LO", "MD", "HI", "XX")
CREMAD_ACTORS = tuple(str(a) for a in range(1001, 1092))
CREMAD_PATTERN = re.compile(r"(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<code>[A-Z]{3})_(?P<level>[A-Z]{2})")
CREMAD_DEMOGRAPHICS = "VideoDemographics.csv"


def _cremad_genders(root: Path) -> dict[str, str]:
    """ActorID -> "f"/"m" from VideoDemographics.csv in the folder or up to two above it."""
    for folder in (root, root.parent, root.parent.parent):
        table = folder / CREMAD_DEMOGRAPHICS
        if table.is_file():
            try:
                rows = list(csv.DictReader(io.StringIO(table.read_bytes().decode("utf-8-sig"))))
            except (OSError, UnicodeDecodeError, csv.Error):
                return {}
            return {row["ActorID"].strip(): row["Sex"].strip().lower()[:1]
                    for row in rows if row.get("ActorID") and (row.get("Sex") or "").strip()}
    return {}


def read_cremad(root: Path, keep_neutral: bool = True) -> Listing:
    """CREMA-D names (`1001_DFA_ANG_XX.wav`): actor, sentence, emotion and level; genders
    from `VideoDemographics.csv` when found."""
    labels = tuple(sorted(set(CREMAD_CODES.values()) - ({NEUTRAL} if not keep_neutral else set())))
    genders = _cremad_genders(root)

    def parse(m: re.Match, _path: Path):
        _check("CREMA-D", "actor", m["actor"], CREMAD_ACTORS)
        _check("CREMA-D", "sentence", m["sentence"], CREMAD_SENTENCES)
        _check("CREMA-D", "level", m["level"], CREMAD_LEVELS)
        gender = genders.get(m["actor"])
        return CREMAD_CODES.get(m["code"]), m["actor"], gender if gender in ("f", "m") else None

    return _by_pattern(root, CREMAD_PATTERN, "CREMA-D", parse, labels, lambda label: label in labels)


# ---------------------------------------------------------------------------------------
# Manifest and folders


MANIFEST_COLUMNS = ("path", "label", "speaker")


def _manifest_text(manifest: Path) -> str:
    data = manifest.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # "Unicode text" from a spreadsheet: UTF-16
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")  # with or without the byte-order mark Excel writes
    except UnicodeDecodeError as exc:
        raise TfadvserError(
            f"{manifest}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8 (in Excel: 'CSV UTF-8')") from None


def _delimiter(header_line: str) -> str:
    """',' as CSV says; ';' or a tab when the header uses that instead (spreadsheets in
    locales with a decimal comma save ';')."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: (counts[d], d == ","))


def _manifest_path(value: str, folder: Path) -> Path:
    """The file a manifest cell names: relative to the manifest's folder or absolute;
    surrounding spaces and Windows separators tolerated when the literal name is absent."""
    candidates = [value, value.strip()]
    if "\\" in value:
        candidates.append(value.strip().replace("\\", "/"))
    for candidate in candidates:
        path = folder / candidate
        if os.path.lexists(path):
            return path
    return folder / value.strip()


def read_manifest(root: Path, keep_neutral: bool = True) -> Listing:
    """A CSV `manifest.csv` in `root` (or `root` is the CSV) with columns path,label,speaker
    and optionally gender (header names in any case). Paths are relative to the CSV's
    folder, or absolute. UTF-8 with or without a byte-order mark, or UTF-16; CRLF or LF;
    quoted fields; ',' or ';' or tab between fields."""
    manifest = root if root.is_file() else root / "manifest.csv"
    if not manifest.is_file():
        raise TfadvserError(f"{manifest}: no CSV manifest found (expected columns path,label,speaker)")
    text = _manifest_text(manifest)
    first = text.splitlines()[0] if text.strip() else ""
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first)))
    except csv.Error as exc:
        raise TfadvserError(f"{manifest}: not a readable CSV file ({exc})") from None
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise TfadvserError(f"{manifest}: missing column(s) {', '.join(sorted(missing))}; "
                            "expected a header path,label,speaker[,gender]")
    column = {name: header.index(name) for name in (*MANIFEST_COLUMNS, "gender") if name in header}
    cell = lambda row, name: row[column[name]] if name in column and column[name] < len(row) else ""
    clips, problems, first_line, ignored = [], [], {}, Counter()
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if not cell(row, "path").strip():
            problems.append(Problem(manifest, f"{manifest.name} line {line}: empty path"))
            continue
        path = _manifest_path(cell(row, "path"), manifest.parent)
        label, speaker = cell(row, "label").strip(), cell(row, "speaker").strip()
        gender = cell(row, "gender").strip().lower()[:1] or None
        if path in first_line:
            problems.append(Problem(path, f"{manifest.name} line {line}: listed again "
                                          f"(first at line {first_line[path]})"))
        elif not label or not speaker:
            first_line[path] = line
            problems.append(Problem(path, f"{manifest.name} line {line}: empty label or speaker"))
        elif not os.path.lexists(path):
            first_line[path] = line
            problems.append(Problem(path, f"{manifest.name} line {line}: no such file"))
        elif _artefact_path(path):
            first_line[path] = line
            problems.append(Problem(path, f"{manifest.name} line {line}: not audio but an "
                                          f"operating-system artefact: {_artefact_path(path)}"))
        else:
            first_line[path] = line
            if keep_neutral or label != NEUTRAL:
                clips.append(Clip(path, label, speaker, gender if gender in ("f", "m") else None))
            else:
                ignored[f"{label} (left out; --keep-neutral keeps it)"] += 1
    return Listing(clips, tuple(sorted({c.label for c in clips})), problems, dict(ignored))


def read_folders(root: Path, keep_neutral: bool = True) -> Listing:
    """One folder per label: `root/<label>/<speaker>/file.wav`, or `root/<label>/file.wav`
    where each file then counts as its own speaker (the split cannot be speaker-independent
    without speaker information; `prepare` warns about that)."""
    files, ignored = scan(root)
    clips, problems = [], []
    for path in files:
        parts = path.relative_to(root).parts
        if len(parts) not in (2, 3):
            problems.append(Problem(path, "expected <label>/<file> or <label>/<speaker>/<file>"))
            continue
        label = display_name(parts[0])
        speaker = display_name(parts[1]) if len(parts) == 3 else f"file:{display_name(path.stem)}"
        if keep_neutral or label != NEUTRAL:
            clips.append(Clip(path, label, speaker))
        else:
            ignored[f"{label} (left out; --keep-neutral keeps it)"] += 1
    return Listing(clips, tuple(sorted({c.label for c in clips})), problems, dict(ignored))


# The label of a clip from an unlabelled corpus (stored as label index -1): such a folder is
# attacker data for the label-free losses only (`data/attacker_data.py`).
UNLABELLED = ""


def read_unlabelled(root: Path, keep_neutral: bool = True) -> Listing:
    """Unlabelled audio, one folder per speaker: `root/<speaker>/file.wav`. Every clip gets
    the label `UNLABELLED`; `prepare` puts them all in the training split. For attacker
    data (`train attacker --attacker-data`) with label-free losses, not for defences."""
    files, ignored = scan(root)
    clips, problems = [], []
    for path in files:
        parts = path.relative_to(root).parts
        if len(parts) != 2:
            problems.append(Problem(path, "expected <speaker>/<file> (unlabelled layout)"))
            continue
        clips.append(Clip(path, UNLABELLED, display_name(parts[0])))
    return Listing(clips, (), problems, dict(ignored))


READERS = {
    "demos": read_demos,
    "emodb": read_emodb,
    "ravdess": read_ravdess,
    "cremad": read_cremad,
    "csv": read_manifest,
    "folders": read_folders,
    "unlabelled": read_unlabelled,
}
# Layouts whose file names identify a recording: the same name in two formats is one clip.
NAMED = ("demos", "emodb", "ravdess", "cremad")


# ---------------------------------------------------------------------------------------
# Duplicates


def _digest(path: Path) -> Optional[bytes]:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None  # reported when its header is read
    return digest.digest()


def _set_aside_duplicates(listing: Listing, root: Path, named: bool) -> None:
    """Keep one clip of each group of byte-identical files (by path order) and, in the named
    corpora, one clip per recording name (a lossless format first); report the others."""
    by_size = defaultdict(list)
    for clip in listing.clips:
        try:
            size = clip.path.stat().st_size
        except OSError:
            continue
        if size > 0:  # empty files are all alike; they are reported as empty
            by_size[size].append(clip)
    duplicate_of = {}
    for group in by_size.values():
        if len(group) < 2:
            continue
        first_with = {}
        for clip in sorted(group, key=lambda c: str(c.path)):
            digest = _digest(clip.path)
            if digest is None:
                continue
            if digest in first_with:
                kept = first_with[digest]
                labels = f" (labelled {kept.label} there, {clip.label} here)" if kept.label != clip.label else ""
                duplicate_of[clip.path] = f"byte-identical to {relative_name(kept.path, root)}{labels}"
            else:
                first_with[digest] = clip
    if named:
        by_name = defaultdict(list)
        for clip in listing.clips:
            if clip.path not in duplicate_of:
                by_name[clip.path.stem.lower()].append(clip)
        for group in by_name.values():
            if len(group) < 2:
                continue
            group.sort(key=lambda c: (c.path.suffix.lower() not in LOSSLESS_SUFFIXES, str(c.path)))
            kept = group[0]
            for clip in group[1:]:
                duplicate_of[clip.path] = (f"the same recording as {relative_name(kept.path, root)}, "
                                           "which is used")
    if duplicate_of:
        listing.problems.extend(Problem(c.path, duplicate_of[c.path]) for c in listing.clips
                                if c.path in duplicate_of)
        listing.clips = [c for c in listing.clips if c.path not in duplicate_of]


def read_corpus(kind: str, root, keep_neutral: Optional[bool] = None, **options) -> Listing:
    """List a corpus. Neutral is dropped by default for DEMoS only, as in the paper.
    `options` go to the reader (e.g. `song=True` for RAVDESS)."""
    if kind not in READERS:
        raise TfadvserError(f"unknown corpus kind {kind!r}; choose one of {', '.join(READERS)}")
    root = Path(root)
    if not root.exists():
        raise TfadvserError(f"{root}: no such file or directory")
    if keep_neutral is None:
        keep_neutral = kind != "demos"
    listing = READERS[kind](root, keep_neutral=keep_neutral, **options)
    _set_aside_duplicates(listing, root, kind in NAMED)
    if not listing.clips:
        detail = f" ({len(listing.problems)} file(s) rejected, e.g. {display_name(listing.problems[0].path.name)}: " \
                 f"{listing.problems[0].reason})" if listing.problems else ""
        ignored = sum(listing.ignored.values())
        detail += f"; {ignored} file(s) ignored: {describe_ignored(listing.ignored)}" if ignored else ""
        raise TfadvserError(f"{root}: no usable {kind} audio files found{detail}")
    return listing
