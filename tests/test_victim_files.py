"""What `defence.external.load_model_file` says about a victim path that is not a model:
missing, not a .keras archive, or a damaged one; a sound file still loads."""
import zipfile

import keras
import pytest

from tfadvser.defence.external import VictimSpec, load_model_file
from tfadvser.errors import TfadvserError


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("victim_files") / "good.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(path)
    return path


def rewritten(good, path, change):
    """A copy of the archive `good` at `path`, each member's bytes through `change(name,
    data)` (None leaves the member out)."""
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w") as target:
        for name in source.namelist():
            data = change(name, source.read(name))
            if data is not None:
                target.writestr(name, data)
    return path


def refusal(path) -> str:
    with pytest.raises(TfadvserError) as caught:
        load_model_file(VictimSpec("mine", path))
    return str(caught.value)


def test_a_sound_keras_file_loads(good):
    model = load_model_file(VictimSpec("mine", good))
    assert isinstance(model, keras.Model) and model.output_shape == (None, 2)


def test_a_missing_path_is_said_not_to_exist(tmp_path):
    for missing in (tmp_path / "x.keras", tmp_path / "saved_model_dir", tmp_path / "no" / "x.keras"):
        assert refusal(missing) == f"victim 'mine': {missing} does not exist"


def test_files_that_are_not_keras_archives(good, tmp_path):
    not_readable = "victim 'mine': {} is not a readable Keras file ({})"

    text = tmp_path / "text.keras"
    text.write_text("a text file renamed\n")
    assert refusal(text) == not_readable.format(
        text, "not a zip archive, or a truncated one: File is not a zip file")

    truncated = tmp_path / "truncated.keras"
    data = good.read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    assert refusal(truncated) == not_readable.format(
        truncated, "not a zip archive, or a truncated one: File is not a zip file")

    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    assert refusal(empty) == not_readable.format(empty, "it is empty")

    no_config = rewritten(good, tmp_path / "no_config.keras",
                          lambda name, data: None if name == "config.json" else data)
    assert refusal(no_config) == not_readable.format(no_config, "no config.json in the archive")

    no_weights = rewritten(good, tmp_path / "no_weights.keras",
                           lambda name, data: None if name.startswith("model.weights") else data)
    assert refusal(no_weights) == not_readable.format(
        no_weights, "no model.weights.h5 or model.weights.npz in the archive")

    bad_config = rewritten(good, tmp_path / "bad_config.keras",
                           lambda name, data: b"{not json" if name == "config.json" else data)
    assert refusal(bad_config) == not_readable.format(
        bad_config, "config.json: Expecting property name enclosed in double quotes: "
                    "line 1 column 2 (char 1)")

    bad_weights = rewritten(good, tmp_path / "bad_weights.keras",
                            lambda name, data: b"garbage" if name == "model.weights.h5" else data)
    assert refusal(bad_weights) == not_readable.format(  # h5py's own words
        bad_weights, "Unable to synchronously open file (file signature not found)")


def test_a_folder_that_is_not_a_saved_model(tmp_path):
    folder = tmp_path / "model.keras"
    folder.mkdir()
    assert refusal(folder) == (f"victim 'mine': {folder} is neither a .keras file nor a "
                               "SavedModel folder (with saved_model.pb)")
