"""A command that fails on its inputs leaves a new --out folder without run.json (nothing is
written before the inputs pass); one that succeeds writes it."""
import json

from click.testing import CliRunner

from tfadvser.data.folder import load_data
from tfadvser.runs import RUN_FILE
from tfadvser_cli.main import main
from tests.test_victim_targets import mel_image_ser


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def attack(data, out, *args):
    return run("train", "attacker", "--data", data, "--profile", "smoke", "--out", out,
               "--quiet", *args)


def test_failed_input_checks_write_no_run_json(tiny_data, tmp_path):
    not_keras = tmp_path / "text.keras"
    not_keras.write_text("not a model")
    failures = {
        # a run defence that is not trained in the new folder
        ("--method", "single", "--defences", "cnn4"): "defence 'cnn4' is not trained in",
        # a victim that cannot be loaded (checked after the data is read)
        ("--method", "single", "--defences", "mine", "--victim", f"mine={not_keras}"):
            f"victim 'mine': {not_keras} is not a readable Keras file",
        # both: the victim loads first, the defence then fails
        ("--method", "multi", "--defences", "cnn4,mine", "--victim", f"mine={not_keras}"):
            "is not a readable Keras file",
    }
    for i, (args, expected) in enumerate(failures.items()):
        out = tmp_path / f"new{i}"
        result = attack(tiny_data, out, *args)
        assert result.exit_code == 1 and expected in result.output, result.output
        assert not (out / RUN_FILE).exists(), args
        assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))

    # Hardening needs a trained base defence: refused without creating the run either.
    out = tmp_path / "hardened"
    result = run("harden", "--data", tiny_data, "--profile", "smoke", "--out", out,
                 "--model", "cnn4", "--pgd-epsilon", "0.01")
    assert result.exit_code == 1 and "defence 'cnn4' is not trained in" in result.output, result.output
    assert not (out / RUN_FILE).exists()
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


def test_a_run_of_outside_models_alone_is_created(tiny_data, tmp_path):
    model = tmp_path / "mine.keras"
    mel_image_ser(load_data(tiny_data).n_classes).save(model)
    out = tmp_path / "new"
    result = attack(tiny_data, out, "--method", "single", "--defences", "mine", "--victim", f"mine={model}")
    assert result.exit_code == 0, result.output
    record = json.loads((out / RUN_FILE).read_text())
    assert record["profile"] == "smoke" and record["data_dir"] == str(tiny_data.resolve())
