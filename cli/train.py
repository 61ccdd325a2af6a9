"""`tfadvser train ...`: defence classifiers (attackers come next)."""
import click

from tfadvser_cli.errors import user_errors

PROFILE_NAMES = ("paper", "small", "smoke")
DEFENCE_NAMES = ("cnn4", "vgg16", "resnet50")


@click.group("train")
def train_group():
    """Train defence classifiers or adversarial attackers."""


@train_group.command("defence")
@click.option("--data", "data_dir", required=True, type=click.Path(),
              help="A folder written by `tfadvser prepare`, e.g. tfrecords/synth.")
@click.option("--model", "model", required=True, type=click.Choice(DEFENCE_NAMES + ("all",)),
              help="Which defence to train; `all` trains the three in turn.")
@click.option("--profile", default="small", show_default=True, type=click.Choice(PROFILE_NAMES),
              help="paper = full width, paper schedule (GPU); small = CPU default; smoke = tests.")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder, e.g. runs/NAME; the model goes to OUT/defences/<model>/.")
@click.option("--quiet", is_flag=True, help="One line per epoch instead of progress bars.")
@user_errors
def train_defence_command(data_dir, model, profile, run_dir, quiet):
    """Train CNN-4, VGG-16 and/or ResNet-50 on prepared log-Mel data.

    Keeps the epoch with the best dev UAR, reports dev and test UAR, and resumes an
    interrupted run. A finished defence with the same settings is reused, not retrained.
    """
    from tfadvser.config import get_profile
    from tfadvser.defence_training import train_defence

    names = DEFENCE_NAMES if model == "all" else (model,)
    for name in names:
        click.echo(f"training {name} ({profile} profile) into {run_dir}/defences/{name}")
        results = train_defence(data_dir, name, get_profile(profile), run_dir,
                                verbose=2 if quiet else 1)
        click.echo(f"{name}: dev UAR {results['dev']['uar']:.3f}, test UAR "
                   f"{results['test']['uar']:.3f} (chance {1 / len(results['dev']['recall']):.3f}), "
                   f"best epoch {results['best_epoch']}, {results['seconds']:.0f} s")
