"""The generator-recipe options of `train attacker` (issue 30): loss, head, input diversity,
budget curriculum, and the schedule settings a longer run changes."""
import functools

import click

from tfadvser.config import ATTACK_LOSSES, HEADS


def _losses(ctx, param, value):
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in ATTACK_LOSSES]
    if not names or unknown:
        raise click.BadParameter(f"{', '.join(unknown) or 'nothing given'}: choose from "
                                 f"{', '.join(ATTACK_LOSSES)} (comma-separated to sum several)")
    return names


def recipe_options(command):
    """--loss, --kappa, --head, --feature-layer, --diversity, --curriculum, --steps, --width
    and --learning-rate, passed on as `recipe` (AttackerConfig field overrides)."""
    @click.option("--loss", "losses", default=None, callback=_losses, metavar="NAME[,NAME...]",
                  help="The attack loss, or several summed: cw (the paper's C&W margin, default), "
                       "ce (cross-entropy ascent), rce (CDA's relativistic cross-entropy), "
                       "feature-cos / feature-mse (disrupt a defence's mid-layer features; "
                       "helps transfer in image attacks, BIA/LTP).")
    @click.option("--kappa", type=click.FloatRange(0.0), default=None,
                  help="C&W confidence: keep pushing until the true class is this far below "
                       "the best other (default 0).")
    @click.option("--head", type=click.Choice(HEADS), default=None,
                  help="How the generator's output is bounded: tanh (epsilon*tanh, default), "
                       "clip (projection onto the L∞ ball), scale (GAP: always the whole budget).")
    @click.option("--feature-layer", default=None,
                  help="The defence layer a feature loss reads (default: the architecture's "
                       "middle block; needed for your own models).")
    @click.option("--diversity", type=click.FloatRange(0.0, 1.0), default=None,
                  help="Probability of a random view (time shift, time/frequency masks) of "
                       "each training clip, so the perturbation must survive it (DI during "
                       "training; default 0, off).")
    @click.option("--curriculum", type=click.FloatRange(1.0), default=None,
                  help="Start with a budget this many times looser and anneal to the budget "
                       "over the first half of each task (default 1, off).")
    @click.option("--steps", type=click.IntRange(1), default=None,
                  help="Steps of the first task (and of multi-task); default: the profile's.")
    @click.option("--width", type=click.FloatRange(0.0, min_open=True), default=None,
                  help="Generator channel multiplier (default: the profile's; small 1/8).")
    @click.option("--learning-rate", type=click.FloatRange(0.0, min_open=True), default=None,
                  help="Adam's initial step size (default: the profile's).")
    @functools.wraps(command)
    def wrapper(*args, losses, kappa, head, feature_layer, diversity, curriculum, steps, width,
                learning_rate, **kwargs):
        given = {"losses": losses, "kappa": kappa, "head": head, "feature_layer": feature_layer,
                 "diversity": diversity, "curriculum": curriculum, "width": width,
                 "learning_rate": learning_rate,
                 "first_steps": steps, "multi_steps": steps}
        return command(*args, recipe={k: v for k, v in given.items() if v is not None}, **kwargs)
    return wrapper
