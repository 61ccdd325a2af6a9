"""`tfadvser export` (SavedModels for TF Serving) and `tfadvser predict` (its REST client)."""
from pathlib import Path

import click

from tfadvser.config import DEFENCE_NAMES
from tfadvser_cli.errors import user_errors


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--attacker", "attacker", default=None,
              help="LABEL[:TASK] of a trained sequence (default task: its last), e.g. "
                   "lifelong-cnn4-vgg16-resnet50-lambda100000:2, or a task key.")
@click.option("--defence", "defence", default=None, type=click.Choice(DEFENCE_NAMES),
              help="Export a defence (signature `classify`) instead of an attacker.")
@click.option("--name", required=True, help="Model name: saved_models/NAME/<version>/.")
@click.option("--version", type=int, default=None, help="Default: the next free integer.")
@click.option("--out", "out_root", default="saved_models", show_default=True,
              type=click.Path(file_okay=False))
@user_errors
def export_command(run_dir, attacker, defence, name, version, out_root):
    """Export a trained attacker (or defence) of RUN_DIR as a SavedModel for TF Serving,
    with the standardisation statistics and, for attackers, the log-Mel front end inside."""
    from tfadvser.serving.export import export_from_run

    target = export_from_run(run_dir, out_root, name, version, attacker=attacker, defence=defence)
    click.echo(f"exported {target}")


@click.command("predict")
@click.option("--server", required=True, help="TF Serving REST address, e.g. http://localhost:8501.")
@click.option("--model", required=True, help="The served model name (an exported attacker).")
@click.option("--version", type=int, default=None, help="Model version (default: the newest).")
@click.option("--out", "out_dir", default="predictions", show_default=True,
              type=click.Path(file_okay=False), help="Where the .npy results go.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@user_errors
def predict_command(server, model, version, out_dir, files):
    """Send audio FILES to an attacker served by TF Serving; write each file's clean and
    adversarial log-Mel and the perturbation as OUT/<name>.<output>.npy, and the adversarial
    audio (rendered by the server, 16 kHz, 16-bit) as OUT/<name>.adversarial.wav."""
    import numpy as np

    from tfadvser.evaluation.audio_quality import write_wav
    from tfadvser.serving.client import perturb_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for file in files:
        outputs = perturb_file(server, model, Path(file), version=version)
        for key, value in outputs.items():
            if key == "adversarial_waveform":
                write_wav(out / f"{Path(file).stem}.adversarial.wav", value, 16000)
            else:
                np.save(out / f"{Path(file).stem}.{key}.npy", value)
        click.echo(f"{file}: {', '.join(f'{k} {v.shape}' for k, v in sorted(outputs.items()))}")
