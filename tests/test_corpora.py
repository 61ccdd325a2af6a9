"""Each corpus reader on file names it must parse (readers never open the audio)."""
from pathlib import Path

import pytest

from tfadvser.data.corpora import read_corpus
from tfadvser.errors import TfadvserError


def touch(root: Path, *names: str) -> Path:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root


def by_name(listing):
    return {c.path.name: (c.label, c.speaker, c.gender) for c in listing.clips}


def test_demos_names_codes_and_neutral(tmp_path):
    touch(tmp_path, "NP_m_19_ang08b.wav", "PR_f_03_sur01a.wav", "NP_f_03_neu02.wav",
          "NP_m_19_xyz01a.wav", "notes.wav")
    listing = read_corpus("demos", tmp_path)
    assert by_name(listing) == {"NP_m_19_ang08b.wav": ("anger", "19", "m"),
                                "PR_f_03_sur01a.wav": ("surprise", "03", "f")}
    assert listing.labels == ("anger", "disgust", "fear", "guilt", "happiness", "sadness", "surprise")
    reasons = {p.path.name: p.reason for p in listing.problems}
    assert reasons == {"NP_m_19_xyz01a.wav": "unknown emotion code in DEMoS file name",
                       "notes.wav": "file name does not follow the DEMoS convention"}
    kept = read_corpus("demos", tmp_path, keep_neutral=True)
    assert by_name(kept)["NP_f_03_neu02.wav"] == ("neutral", "03", "f")
    assert kept.labels[-1] == "neutral"


def test_emodb(tmp_path):
    touch(tmp_path, "03a01Fa.wav", "08b02Tc.wav", "16a05N.wav", "03a01Xa.wav")
    listing = read_corpus("emodb", tmp_path)
    assert by_name(listing) == {"03a01Fa.wav": ("happiness", "03", "m"),
                                "08b02Tc.wav": ("sadness", "08", "f"),
                                "16a05N.wav": ("neutral", "16", "f")}
    assert [p.path.name for p in listing.problems] == ["03a01Xa.wav"]
    assert "boredom" in listing.labels


def test_ravdess(tmp_path):
    touch(tmp_path, "Actor_12/03-01-05-01-02-01-12.wav", "Actor_07/03-01-02-02-01-02-07.wav",
          "03-01-09-01-01-01-01.wav")
    listing = read_corpus("ravdess", tmp_path)
    assert by_name(listing) == {"03-01-05-01-02-01-12.wav": ("anger", "12", "f"),
                                "03-01-02-02-01-02-07.wav": ("calm", "07", "m")}
    assert listing.problems[0].reason == "unknown emotion code in RAVDESS file name"


def test_cremad(tmp_path):
    touch(tmp_path, "1001_DFA_ANG_XX.wav", "1091_TSI_SAD_HI.wav", "1001_DFA_BOR_XX.wav")
    listing = read_corpus("cremad", tmp_path)
    assert by_name(listing) == {"1001_DFA_ANG_XX.wav": ("anger", "1001", None),
                                "1091_TSI_SAD_HI.wav": ("sadness", "1091", None)}
    assert len(listing.problems) == 1


def test_csv_manifest(tmp_path):
    touch(tmp_path, "a/1.wav", "b/2.wav")
    (tmp_path / "manifest.csv").write_text("path,label,speaker,gender\na/1.wav,joy,s1,F\n"
                                           "b/2.wav,calm,s2,\nc/3.wav,,s3,m\n")
    listing = read_corpus("csv", tmp_path)
    assert by_name(listing) == {"1.wav": ("joy", "s1", "f"), "2.wav": ("calm", "s2", None)}
    assert listing.labels == ("calm", "joy")
    assert "line 4: empty label or speaker" in listing.problems[0].reason


def test_csv_manifest_missing_column(tmp_path):
    (tmp_path / "manifest.csv").write_text("file,label\nx.wav,joy\n")
    with pytest.raises(TfadvserError, match=r"manifest.csv: missing column\(s\) path, speaker"):
        read_corpus("csv", tmp_path)


def test_folders(tmp_path):
    touch(tmp_path, "angry/spk1/a.wav", "calm/spk2/b.flac", "calm/c.wav", "x/y/z/deep.wav")
    listing = read_corpus("folders", tmp_path)
    assert by_name(listing) == {"a.wav": ("angry", "spk1", None), "b.flac": ("calm", "spk2", None),
                                "c.wav": ("calm", "file:c", None)}
    assert len(listing.problems) == 1


def test_unknown_kind_and_empty_folder(tmp_path):
    with pytest.raises(TfadvserError, match="unknown corpus kind 'timit'"):
        read_corpus("timit", tmp_path)
    with pytest.raises(TfadvserError, match="no usable demos audio files"):
        read_corpus("demos", tmp_path)
    with pytest.raises(TfadvserError, match="no such file or directory"):
        read_corpus("demos", tmp_path / "missing")
