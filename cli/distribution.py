"""`--strategy` for the training commands: pick a tf.distribute strategy and run the
command inside its scope."""
import contextlib

import click

from tfadvser.config import STRATEGIES

strategy_option = click.option(
    "--strategy", default="default", show_default=True, type=click.Choice(STRATEGIES),
    help="default: one device. mirrored: every GPU of this machine (or, without GPUs, "
         "TFADVSER_CPU_DEVICES logical CPU devices). multiworker: the machines listed in "
         "TF_CONFIG; start the same command on each. See the README.")


@contextlib.contextmanager
def strategy_scope(name: str):
    """Create the strategy before anything else touches TensorFlow, then enter its scope:
    every model, optimizer and metric the command builds is then distributed."""
    from tfadvser.runtime.distribute import make_strategy

    strategy = make_strategy(name)
    if name != "default":
        click.echo(f"strategy {name}: {strategy.num_replicas_in_sync} replica(s) in sync", err=True)
    with strategy.scope():
        yield strategy
