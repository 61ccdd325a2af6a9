"""`tfadvser`: the click group. Commands live in small modules and import TensorFlow inside
their bodies, so `tfadvser --help` answers instantly."""
import os

import click

# TensorFlow's C++ start-up messages (CUDA probing on a CPU machine) bury the tool's own
# output; Python-level errors still surface. Set TF_CPP_MIN_LOG_LEVEL to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tfadvser import __version__  # noqa: E402
from tfadvser_cli.data import prepare_command, synth_command  # noqa: E402
from tfadvser_cli.evaluate import evaluate_command, reproduce_command, tune_command  # noqa: E402
from tfadvser_cli.export import export_command, predict_command  # noqa: E402
from tfadvser_cli.query import attack_query_command  # noqa: E402
from tfadvser_cli.train import harden_command, train_group  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tfadvser")
def main():
    """Generative black-box adversarial attacks on speech-emotion recognition models.

    Implements Ren et al., "Enhancing Transferability of Black-Box Adversarial Attacks via
    Lifelong Learning for Speech Emotion Recognition Models" (INTERSPEECH 2020).

    Typical flow: `synth` (or your own corpus) -> `prepare` -> train defences -> train
    attackers -> evaluate (`harden` adds adversarially trained defences).
    """


main.add_command(synth_command)
main.add_command(prepare_command)
main.add_command(train_group)
main.add_command(harden_command)
main.add_command(evaluate_command)
main.add_command(reproduce_command)
main.add_command(tune_command)
main.add_command(export_command)
main.add_command(predict_command)
main.add_command(attack_query_command)


if __name__ == "__main__":
    main()
