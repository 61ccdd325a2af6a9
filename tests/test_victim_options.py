"""--victim / --victims mistakes are usage errors (exit 2, click's usage line, the option
named) found before any data or model is read; and in the library, the same checks."""
import json

import pytest
from click.testing import CliRunner

from tfadvser.config import DEFENCE_NAMES, PROFILES
from tfadvser.attack.training import train_attacker
from tfadvser.defence.external import VictimSpec, check_victims
from tfadvser.errors import TfadvserError
from tfadvser_cli.main import main


@pytest.fixture
def models(tmp_path):
    """Two files standing for models: these checks never open them."""
    for name in ("a.keras", "b.keras"):
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def usage_error(*args) -> str:
    """The `Error: ...` line of a command that must fail as a usage error, and nothing else."""
    result = CliRunner().invoke(main, [str(a) for a in args], prog_name="tfadvser")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("Usage: tfadvser ") and lines[-1].startswith("Error: ")
    return lines[-1]


def attacker(out, *args) -> str:
    return usage_error("train", "attacker", "--data", out / "no-data", "--profile", "smoke",
                       "--method", "single", "--out", out / "run", *args)


def test_train_attacker_refuses_each_kind_of_victim_mistake(models):
    a, b = models / "a.keras", models / "b.keras"
    cases = {
        # given but not trained against (was silently ignored)
        ("--defences", "vgg16", "--victim", f"mine={a}"):
            "Error: Invalid value for '--victim': victim 'mine' is not in --defences (vgg16): "
            "name it there to train against it, or leave it out",
        ("--defences", "cnn4,mine", "--victim", f"mine={a}", "--victim", f"other={b}"):
            "Error: Invalid value for '--victim': victim 'other' is not in --defences "
            "(cnn4,mine): name it there to train against it, or leave it out",
        # a missing file, in or out of --defences
        ("--defences", "vgg16", "--victim", f"mine={models / 'missing.keras'}"):
            f"Error: Invalid value for '--victim': victim 'mine': {models / 'missing.keras'} "
            "does not exist",
        ("--defences", "mine", "--victim", f"mine={models / 'gone'}"):
            f"Error: Invalid value for '--victim': victim 'mine': {models / 'gone'} does not exist",
        # the same name twice, or twice but for letter case
        ("--defences", "mine", "--victim", f"mine={a}", "--victim", f"mine={b}"):
            "Error: Invalid value for '--victim': victim name 'mine' is given twice",
        ("--defences", "mine", "--victim", f"mine={a}", "--victim", f"MINE={b}"):
            "Error: Invalid value for '--victim': victim name 'MINE' is already taken by victim "
            "'mine' (victim names are compared ignoring letter case)",
        # a defence's name, in any letter case
        ("--defences", "vgg16", "--victim", f"cnn4={a}"):
            "Error: Invalid value for '--victim': victim name 'cnn4' is already taken by the "
            "run's defence 'cnn4'",
        ("--defences", "CNN4", "--victim", f"CNN4={a}"):
            "Error: Invalid value for '--victim': victim name 'CNN4' is already taken by the "
            "run's defence 'cnn4' (victim names are compared ignoring letter case)",
        ("--defences", "ResNet50", "--victim", f"ResNet50={a}"):
            "Error: Invalid value for '--victim': victim name 'ResNet50' is already taken by "
            "the run's defence 'resnet50' (victim names are compared ignoring letter case)",
        # a name that cannot become a folder name, and the wrong form
        ("--defences", "a/b", "--victim", f"a/b={a}"):
            "Error: Invalid value for '--victim': victim 'a/b': a training target's name may "
            "hold only letters, digits, '.', '_' and '-', starting with a letter or digit",
        ("--defences", "vgg16", "--victim", "cnn4"):
            "Error: Invalid value for '--victim': --victim 'cnn4': expected NAME=PATH",
    }
    for args, expected in cases.items():
        assert attacker(models, *args) == expected, args
    assert not (models / "run").exists()  # nothing was written


def test_manifest_victims_are_checked_as_option_ones(models):
    manifest = models / "victims.json"
    manifest.write_text(json.dumps([{"name": "Mine", "path": "a.keras"},
                                    {"name": "theirs", "path": "missing.keras"}]))
    assert attacker(models, "--defences", "Mine", "--victims", manifest) == (
        f"Error: Invalid value for '--victims': victim 'theirs': {models / 'missing.keras'} "
        "does not exist")
    assert attacker(models, "--defences", "vgg16", "--victims", manifest, "--victim",
                    f"mine={models / 'b.keras'}") == (
        "Error: Invalid value for '--victim' / '--victims': victim name 'Mine' is already taken "
        "by victim 'mine' (victim names are compared ignoring letter case)")


def test_evaluate_refuses_the_same_victim_mistakes(models):
    (models / "run").mkdir()  # not a run: the victims are refused before it is read

    def evaluate(*args):
        return usage_error("evaluate", models / "run", "--audio-clips", "0", *args)

    assert evaluate("--victim", f"m={models / 'a.keras'}", "--victim", f"m={models / 'b.keras'}") \
        == "Error: Invalid value for '--victim': victim name 'm' is given twice"
    assert evaluate("--victim", f"Vgg16={models / 'a.keras'}") == (
        "Error: Invalid value for '--victim': victim name 'Vgg16' is already taken by the "
        "run's defence 'vgg16' (victim names are compared ignoring letter case)")
    assert evaluate("--victim", f"m={models / 'x.keras'}") == (
        f"Error: Invalid value for '--victim': victim 'm': {models / 'x.keras'} does not exist")


def test_the_library_checks_the_same(models, tmp_path):
    a = models / "a.keras"
    check_victims([VictimSpec("mine", a), VictimSpec("theirs", a)], DEFENCE_NAMES)  # passes
    for specs, expected in (
            ([VictimSpec("mine", a), VictimSpec("mine", a)], "victim name 'mine' is given twice"),
            ([VictimSpec("Cnn4", a)], "victim name 'Cnn4' is already taken by the run's defence "
                                      "'cnn4' (victim names are compared ignoring letter case)"),
            ([VictimSpec("mine", tmp_path / "none.keras")],
             f"victim 'mine': {tmp_path / 'none.keras'} does not exist")):
        with pytest.raises(TfadvserError) as caught:
            check_victims(specs, DEFENCE_NAMES)
        assert str(caught.value) == expected
    with pytest.raises(TfadvserError, match=r"^victim 'mine' is not in --defences \(cnn4\)"):
        train_attacker(tmp_path / "no-data", tmp_path / "run", "single", ["cnn4"], PROFILES["smoke"],
                       victims=[VictimSpec("mine", a)])
    assert not (tmp_path / "run").exists()
