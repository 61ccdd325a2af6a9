"""Corpora as they are distributed and unpacked: extensions in any case, operating-system
artefacts, files that are not audio, copies, a recording in two formats, spreadsheet
manifests, every field of each naming convention, and file names in any bytes. Every file
found is prepared, reported with its reason, or counted as ignored."""
import csv
import io
import os

import numpy as np
import pytest
import soundfile

from tfadvser.data.corpora import display_name, read_corpus
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.data.prepare import prepare
from tfadvser.errors import TfadvserError


def touch(root, *names, data=b""):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def clip(seed, seconds=0.2, rate=16000, fmt="WAV"):
    """A short distinct clip as bytes (every seed gives different bytes)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * (120 + 7 * seed) * t) + 0.01 * rng.standard_normal(len(t))
    buffer = io.BytesIO()
    soundfile.write(buffer, x, rate, format=fmt, **({"subtype": "PCM_16"} if fmt == "WAV" else {}))
    return buffer.getvalue()


def by_name(listing):
    return {c.path.name: (c.label, c.speaker, c.gender) for c in listing.clips}


def reasons(listing):
    return {p.path.name: p.reason for p in listing.problems}


# --- extensions ---------------------------------------------------------------------------

def test_extensions_in_any_case_and_every_decodable_container(tmp_path):
    touch(tmp_path / "c", "1001_DFA_ANG_XX.WAV", "1002_DFA_SAD_XX.Mp3", "1003_IEO_HAP_HI.flac",
          "1004_IEO_NEU_LO.OGG", "1005_TIE_FEA_MD.aiff", "1006_TIE_DIS_XX.opus")
    assert sorted(by_name(read_corpus("cremad", tmp_path / "c"))) == [
        "1001_DFA_ANG_XX.WAV", "1002_DFA_SAD_XX.Mp3", "1003_IEO_HAP_HI.flac", "1004_IEO_NEU_LO.OGG",
        "1005_TIE_FEA_MD.aiff", "1006_TIE_DIS_XX.opus"]
    touch(tmp_path / "e", "03a01Fa.WAV", "08b02Tc.Flac")
    assert set(by_name(read_corpus("emodb", tmp_path / "e"))) == {"03a01Fa.WAV", "08b02Tc.Flac"}
    touch(tmp_path / "r", "Actor_12/03-01-05-01-02-01-12.WAV")
    assert set(by_name(read_corpus("ravdess", tmp_path / "r"))) == {"03-01-05-01-02-01-12.WAV"}
    touch(tmp_path / "d", "NP_m_19_ang08b.MP3", "PR_f_03_sur01a.Wav")
    assert set(by_name(read_corpus("demos", tmp_path / "d"))) == {"NP_m_19_ang08b.MP3", "PR_f_03_sur01a.Wav"}
    touch(tmp_path / "f", "angry/spk1/a.WAV", "calm/spk2/b.MP3")
    assert set(by_name(read_corpus("folders", tmp_path / "f"))) == {"a.WAV", "b.MP3"}


# --- operating-system artefacts and other files ----------------------------------------

ARTEFACTS = ("__MACOSX/anger/._clip01.wav", "__MACOSX/anger/._clip02.wav", "__MACOSX/._anger",
             "anger/._clip01.wav", "anger/.DS_Store", ".DS_Store", "anger/Thumbs.db", "THUMBS.DB",
             "sadness/desktop.ini", ".git/objects/ab/cdef", ".git/HEAD", "README.txt", "sadness/notes",
             "sadness/take.wav.bak")
ARTEFACT_COUNTS = {"macOS archive metadata (__MACOSX/)": 3, "macOS resource fork (._*)": 1,
                   "macOS folder settings (.DS_Store)": 2, "Windows thumbnails (Thumbs.db)": 2,
                   "Windows folder settings (desktop.ini)": 1, "hidden folder (.git/)": 2,
                   "not audio (.txt)": 1, "not audio (no extension)": 1, "not audio (.bak)": 1}


def test_artefacts_and_other_files_are_ignored_and_counted(tmp_path):
    touch(tmp_path, "anger/clip01.wav", "anger/clip02.wav", "sadness/clip03.wav", *ARTEFACTS)
    listing = read_corpus("folders", tmp_path)
    assert sorted(by_name(listing)) == ["clip01.wav", "clip02.wav", "clip03.wav"]
    assert listing.problems == []
    assert listing.ignored == ARTEFACT_COUNTS


def test_artefacts_in_a_named_corpus(tmp_path):
    touch(tmp_path, "AudioWAV/1001_DFA_ANG_XX.wav", "__MACOSX/AudioWAV/._1001_DFA_ANG_XX.wav",
          "AudioWAV/._1001_DFA_ANG_XX.wav", "AudioWAV/.DS_Store", "VideoDemographics.csv",
          "processedResults/summaryTable.csv")
    listing = read_corpus("cremad", tmp_path)
    assert list(by_name(listing)) == ["1001_DFA_ANG_XX.wav"] and listing.problems == []
    assert listing.ignored == {"macOS archive metadata (__MACOSX/)": 1, "macOS resource fork (._*)": 1,
                               "macOS folder settings (.DS_Store)": 1, "not audio (.csv)": 2}


def test_only_artefacts_is_a_clear_error(tmp_path):
    touch(tmp_path, "__MACOSX/anger/._a.wav", "anger/._a.wav")
    with pytest.raises(TfadvserError, match=r"no usable folders audio files found; 2 file\(s\) ignored: "
                                            r"1 macOS archive metadata \(__MACOSX/\), 1 macOS resource fork"):
        read_corpus("folders", tmp_path)


def test_macosx_zip_is_prepared_with_the_artefacts_counted(tmp_path):
    """Field case 13: `<label>/<file>` plus an AppleDouble twin of every clip."""
    root = tmp_path / "c"
    for e, label in enumerate(("anger", "sadness")):
        for i in range(5):
            touch(root, f"{label}/clip{i:02d}.wav", data=clip(10 * e + i))
            touch(root, f"__MACOSX/{label}/._clip{i:02d}.wav", data=b"\x00\x05\x16\x07" + bytes(4092))
    metadata = prepare(root, "folders", tmp_path / "out", progress=False)
    assert sum(metadata["totals"].values()) == 10 and metadata["skipped"] == []
    assert metadata["ignored"] == {"macOS archive metadata (__MACOSX/)": 10}
    assert "ignored 10 file(s): 10 macOS archive metadata (__MACOSX/)" in metadata["warnings"]


def test_links_are_followed_once_and_broken_ones_reported(tmp_path):
    touch(tmp_path, "data/anger/s1/a.wav", "data/anger/s2/b.wav")
    root = tmp_path / "corpus"
    root.mkdir()
    os.symlink(tmp_path / "data" / "anger", root / "anger")
    os.symlink(root, root / "anger" / "loop")  # a cycle: visited once
    os.symlink(tmp_path / "missing.wav", tmp_path / "data" / "anger" / "s1" / "gone.wav")
    listing = read_corpus("folders", root)
    assert sorted(by_name(listing)) == ["a.wav", "b.wav", "gone.wav"]  # gone.wav: its header fails


# --- copies -------------------------------------------------------------------------------

def test_byte_identical_files_are_reported(tmp_path):
    touch(tmp_path, "anger/s1/a.wav", data=clip(1))
    touch(tmp_path, "anger/s1/a copy.wav", "anger/s2/a.wav", data=clip(1))
    touch(tmp_path, "sadness/s3/a.wav", data=clip(1))  # the same bytes with another label
    touch(tmp_path, "sadness/s3/b.wav", data=clip(2))
    touch(tmp_path, "sadness/s3/empty1.wav", "sadness/s3/empty2.wav")  # alike, but reported as empty later
    listing = read_corpus("folders", tmp_path)
    assert sorted(c.path.relative_to(tmp_path).as_posix() for c in listing.clips) == [
        "anger/s1/a copy.wav", "sadness/s3/b.wav", "sadness/s3/empty1.wav", "sadness/s3/empty2.wav"]
    assert {p.path.relative_to(tmp_path).as_posix(): p.reason for p in listing.problems} == {
        "anger/s1/a.wav": "byte-identical to anger/s1/a copy.wav",
        "anger/s2/a.wav": "byte-identical to anger/s1/a copy.wav",
        "sadness/s3/a.wav": "byte-identical to anger/s1/a copy.wav (labelled anger there, sadness here)"}


def test_a_recording_in_two_formats_is_used_once_lossless_first(tmp_path):
    """CREMA-D ships AudioWAV/ and AudioMP3/ with the same clips."""
    for name, seed in (("1001_DFA_ANG_XX", 1), ("1002_IEO_SAD_HI", 2)):
        touch(tmp_path, f"AudioWAV/{name}.wav", data=clip(seed))
        touch(tmp_path, f"AudioMP3/{name}.mp3", data=clip(seed, fmt="MP3"))
    touch(tmp_path, "AudioMP3/1003_TIE_HAP_XX.mp3", data=clip(3, fmt="MP3"))  # only in MP3
    listing = read_corpus("cremad", tmp_path)
    assert sorted(c.path.relative_to(tmp_path).as_posix() for c in listing.clips) == [
        "AudioMP3/1003_TIE_HAP_XX.mp3", "AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_SAD_HI.wav"]
    assert {p.path.relative_to(tmp_path).as_posix(): p.reason for p in listing.problems} == {
        "AudioMP3/1001_DFA_ANG_XX.mp3": "the same recording as AudioWAV/1001_DFA_ANG_XX.wav, which is used",
        "AudioMP3/1002_IEO_SAD_HI.mp3": "the same recording as AudioWAV/1002_IEO_SAD_HI.wav, which is used"}


def test_cremad_mp3_release_with_a_blank_clip_is_prepared(tmp_path):
    """Field case 08: AudioMP3/ only, one clip 0 bytes."""
    root = tmp_path / "AudioMP3"
    for a, actor in enumerate((1001, 1002, 1003, 1004)):
        for e, code in enumerate(("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")):
            touch(root, f"{actor}_IEO_{code}_XX.mp3", data=clip(10 * a + e, fmt="MP3"))
    (root / "1002_IEO_HAP_XX.mp3").write_bytes(b"")
    metadata = prepare(root, "cremad", tmp_path / "out", progress=False)
    assert sum(metadata["totals"].values()) == 23
    assert metadata["skipped"] == [{"path": "1002_IEO_HAP_XX.mp3", "reason": "empty file (0 bytes)"}]


# --- manifests ----------------------------------------------------------------------------

def manifest_corpus(root, rows, encoding="utf-8-sig", newline="\r\n", delimiter=",", header=None):
    """Clips for every row path that does not start with '!' (a missing file)."""
    for i, (path, *_) in enumerate(rows):
        if path.strip() and not path.startswith("!") and not os.path.isabs(path):
            touch(root, path.replace("\\", "/").strip(), data=clip(i))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline, delimiter=delimiter)
    writer.writerow(header or ("path", "label", "speaker", "gender"))
    writer.writerows([(p.lstrip("!"), *rest) for p, *rest in rows])
    (root / "manifest.csv").write_bytes(buffer.getvalue().encode(encoding))
    return root


SPREADSHEET_ROWS = [("clips/spk 1/take 1 angry.wav", "angry", "spk 1", "female"),
                    ("clips/spk 2/take 1, angry.wav", "angry", "spk 2", "Male"),
                    ("clips/spk 3/take 2 \"sad\".wav", "sad", "spk 3", "F")]


@pytest.mark.parametrize("encoding, newline, delimiter", [
    ("utf-8-sig", "\r\n", ","),  # Excel "CSV UTF-8": BOM and CRLF
    ("utf-8", "\n", ","),
    ("utf-16", "\r\n", "\t"),  # Excel "Unicode text"
    ("utf-8-sig", "\r\n", ";"),  # locales with a decimal comma
])
def test_spreadsheet_manifests(tmp_path, encoding, newline, delimiter):
    manifest_corpus(tmp_path, SPREADSHEET_ROWS, encoding, newline, delimiter)
    listing = read_corpus("csv", tmp_path)
    assert by_name(listing) == {"take 1 angry.wav": ("angry", "spk 1", "f"),
                                "take 1, angry.wav": ("angry", "spk 2", "m"),
                                'take 2 "sad".wav': ("sad", "spk 3", "f")}
    assert listing.problems == []


def test_manifest_header_names_paths_and_row_problems(tmp_path):
    outside = tmp_path / "elsewhere" / "x.wav"
    touch(tmp_path / "elsewhere", "x.wav", data=clip(99))
    rows = [("a.wav", "joy", "s1", ""),
            (str(outside), "joy", "s2", ""),  # absolute
            ("sub\\b.wav", "calm", "s3", ""),  # written on Windows
            (" c.wav ", "calm", "s3", ""),  # spaces around the name
            ("!gone.wav", "calm", "s3", ""),
            ("a.wav", "joy", "s1", ""),  # listed twice
            ("", "joy", "s1", ""),
            ("d.wav", "", "s4", ""),
            ("__MACOSX/._a.wav", "joy", "s1", ""),  # a manifest made by listing an unzipped folder
            ("__MACOSX/b.wav", "joy", "s1", ""),
            ("._c.wav", "calm", "s3", "")]
    manifest_corpus(tmp_path / "c", rows, header=(" Path", "LABEL ", "Speaker", "Gender"))
    with open(tmp_path / "c" / "manifest.csv", "ab") as handle:
        handle.write(b"\r\n,,,\r\n")  # blank lines at the end
    listing = read_corpus("csv", tmp_path / "c")
    assert {c.path.relative_to(tmp_path).as_posix(): c.speaker for c in listing.clips} == {
        "c/a.wav": "s1", "elsewhere/x.wav": "s2", "c/sub/b.wav": "s3", "c/c.wav": "s3"}
    assert [(p.path.name, p.reason) for p in listing.problems] == [
        ("gone.wav", "manifest.csv line 6: no such file"),
        ("a.wav", "manifest.csv line 7: listed again (first at line 2)"),
        ("manifest.csv", "manifest.csv line 8: empty path"),
        ("d.wav", "manifest.csv line 9: empty label or speaker"),
        ("._a.wav", "manifest.csv line 10: not audio but an operating-system artefact: "
                    "macOS resource fork (._*)"),
        ("b.wav", "manifest.csv line 11: not audio but an operating-system artefact: "
                  "macOS archive metadata (__MACOSX/)"),
        ("._c.wav", "manifest.csv line 12: not audio but an operating-system artefact: macOS resource fork (._*)")]


def test_manifest_not_utf8_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.csv").write_bytes("path,label,speaker\nZoë.wav,joy,s1\n".encode("cp1252"))
    with pytest.raises(TfadvserError, match=r"manifest.csv: not UTF-8 text \(byte 0xeb at offset 21\); "
                                            r"save it as UTF-8 \(in Excel: 'CSV UTF-8'\)"):
        read_corpus("csv", tmp_path)


def test_bom_manifest_is_prepared_end_to_end(tmp_path):
    """Field case 09: BOM, CRLF, spaces and a quoted comma in names."""
    rows = [(f"clips/spk {s}/take {e + 1}{',' if s == 2 else ''} {label}.wav", label, f"spk {s}", g)
            for s, g in ((1, "female"), (2, "male"), (3, "female")) for e, label in enumerate(("angry", "sad"))]
    manifest_corpus(tmp_path / "c", rows)
    metadata = prepare(tmp_path / "c", "csv", tmp_path / "out", progress=False)
    assert sum(metadata["totals"].values()) == 6 and metadata["skipped"] == []


# --- naming conventions, field by field --------------------------------------------------

def test_ravdess_fields(tmp_path):
    touch(tmp_path, "Actor_12/03-01-05-01-02-01-12.wav",  # audio-only speech: kept
          "Actor_12/03-02-05-01-02-01-12.wav",  # song
          "Actor_12/01-01-05-01-02-01-12.wav",  # full audio-video
          "Actor_12/03-01-01-02-01-01-12.wav",  # neutral, strong intensity
          "Actor_12/03-01-05-01-03-01-12.wav",  # statement 03
          "Actor_25/03-01-05-01-01-01-25.wav",  # actor 25
          "Actor_07/03-01-05-01-01-01-08.wav",  # folder and name disagree
          "Actor_07/03-01-02-02-01-02-07.wav")  # calm, strong: kept
    listing = read_corpus("ravdess", tmp_path)
    assert by_name(listing) == {"03-01-05-01-02-01-12.wav": ("anger", "12", "f"),
                                "03-01-02-02-01-02-07.wav": ("calm", "07", "m")}
    assert reasons(listing) == {
        "03-02-05-01-02-01-12.wav": "RAVDESS vocal channel 02 (song): only speech (01) is read by default",
        "01-01-05-01-02-01-12.wav": "RAVDESS modality 01 (full audio-video), not 03 (audio-only): "
                                    "the audio-only release is the one read",
        "03-01-01-02-01-01-12.wav": "RAVDESS neutral (01) has no strong intensity (02)",
        "03-01-05-01-03-01-12.wav": "RAVDESS statement '03' is not one of the corpus's (01, 02)",
        "03-01-05-01-01-01-25.wav": "RAVDESS actor '25' is not one of the corpus's (01, 02, 03, 04, 05, 06, "
                                    "07, 08, 09, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24)",
        "03-01-05-01-01-01-08.wav": "RAVDESS actor 08 in the name, but in folder Actor_07"}
    with_song = read_corpus("ravdess", tmp_path, song=True)
    assert by_name(with_song)["03-02-05-01-02-01-12.wav"] == ("anger", "12", "f")


def test_emodb_fields(tmp_path):
    touch(tmp_path, "03a01Fa.wav", "17a01Fa.wav", "03a03Fa.wav", "10b09Wb.wav")
    listing = read_corpus("emodb", tmp_path)
    assert by_name(listing) == {"03a01Fa.wav": ("happiness", "03", "m"), "10b09Wb.wav": ("anger", "10", "m")}
    assert reasons(listing) == {
        "17a01Fa.wav": "EmoDB speaker '17' is not one of the corpus's (03, 08, 09, 10, 11, 12, 13, 14, 15, 16)",
        "03a03Fa.wav": "EmoDB text code 'a03' is not one of the corpus's "
                       "(a01, a02, a04, a05, a07, b01, b02, b03, b09, b10)"}


def test_cremad_fields_and_genders_from_its_demographics_table(tmp_path):
    touch(tmp_path, "AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_SAD_HI.wav",
          "AudioWAV/1003_XYZ_SAD_HI.wav", "AudioWAV/1004_IEO_SAD_ZZ.wav", "AudioWAV/1092_IEO_SAD_HI.wav")
    (tmp_path / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
        "1002,21,Female,Caucasian,Not Hispanic\n")
    listing = read_corpus("cremad", tmp_path / "AudioWAV")
    assert by_name(listing) == {"1001_DFA_ANG_XX.wav": ("anger", "1001", "m"),
                                "1002_IEO_SAD_HI.wav": ("sadness", "1002", "f")}
    assert set(reasons(listing).values()) == {
        "CREMA-D sentence 'XYZ' is not one of the corpus's "
        "(DFA, IEO, IOM, ITH, ITS, IWL, IWW, MTI, TAI, TIE, TSI, WSI)",
        "CREMA-D level 'ZZ' is not one of the corpus's (HI, LO, MD, XX)",
        f"CREMA-D actor '1092' is not one of the corpus's ({', '.join(str(a) for a in range(1001, 1092))})"}


def test_neutral_left_out_is_counted(tmp_path):
    touch(tmp_path, "NP_m_19_ang08b.wav", "NP_f_03_neu02.wav", "NP_f_04_neu03.wav")
    listing = read_corpus("demos", tmp_path)
    assert listing.ignored == {"neutral (left out; --keep-neutral keeps it)": 2}


# --- names in any bytes -------------------------------------------------------------------

ODD_NAMES = [b"Zo\xeb K", b"toma 1 \xf1", "Zoë ñ".encode(), b"a#1 100% x:y", b"new\nline", b"tab\there",
             b"-dash", b" lead and trail ", b"\xff\xfe", "日本語 😀".encode()]


def test_any_name_the_os_can_hold_is_prepared_or_reported_by_name(tmp_path):
    """Field case 11: names from a ZIP made on Windows (Latin-1 bytes), control characters,
    characters TensorFlow's file system could take for syntax. Readable files are prepared;
    an unreadable one is reported under a printable form of its name."""
    root = os.fsencode(tmp_path / "c")
    for s, name in enumerate(ODD_NAMES):
        for e, label in enumerate((b"anger", b"sadness")):
            folder = os.path.join(root, label, name)
            os.makedirs(folder)
            with open(os.path.join(folder, name + b".wav"), "wb") as handle:
                handle.write(clip(10 * s + e))
    with open(os.path.join(root, b"anger", b"Zo\xeb K", b"broken \xe9.wav"), "wb") as handle:
        handle.write(b"RIFF")
    metadata = prepare(tmp_path / "c", "folders", tmp_path / "out", progress=False)
    assert sum(metadata["totals"].values()) == 2 * len(ODD_NAMES)
    assert metadata["skipped"] == [{"path": "anger/Zo\\xeb K/broken \\xe9.wav",
                                    "reason": "unreadable or unsupported audio format (Format not recognised.)"}]
    speakers = set().union(*map(set, metadata["speakers"].values()))
    assert speakers == {"Zo\\xeb K", "toma 1 \\xf1", "Zoë ñ", "a#1 100% x:y", "new\\nline", "tab\\there",
                        "-dash", " lead and trail ", "\\xff\\xfe", "日本語 😀"}
    paths = {p.decode() for split in ("train", "dev", "test")
             for batch in make_dataset(tmp_path / "out", split, 64, standardize=False, include_info=True)
             for p in batch["path"].numpy()}
    assert "sadness/Zo\\xeb K/Zo\\xeb K.wav" in paths and "anger/new\\nline/new\\nline.wav" in paths
    assert load_data(tmp_path / "out").record["fingerprint"] == metadata["fingerprint"]


def test_display_name():
    assert display_name(os.fsdecode(b"Zo\xeb K/toma 1 \xf1.wav")) == "Zo\\xeb K/toma 1 \\xf1.wav"
    assert display_name("plain/Zoë.wav") == "plain/Zoë.wav"
    assert display_name("a\nb\tc\x7f") == "a\\nb\\tc\\x7f"
