"""`tfadvser train defence` and `tfadvser train attacker`."""
import click

from tfadvser.attack.methods import METHODS
from tfadvser.config import DEFENCE_NAMES, FISHER_MODES, LR_SCHEDULES, PROFILES, REGULARISERS
from tfadvser_cli.budget import budget_options
from tfadvser_cli.recipe import recipe_options
from tfadvser_cli.distribution import strategy_option, strategy_scope
from tfadvser_cli.errors import user_errors
from tfadvser_cli.victims import victim_options, victims_hint

PROFILE_NAMES = tuple(PROFILES)


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
@click.option("--adversarial", is_flag=True, hidden=True,
              help="Deprecated: `tfadvser harden` (same options, --adversarial-ratio as --ratio).")
@click.option("--attacker", default=None, hidden=True)
@click.option("--pgd-epsilon", type=float, default=None, hidden=True)
@click.option("--pgd-steps", type=click.IntRange(1), default=10, hidden=True)
@click.option("--adversarial-ratio", type=click.FloatRange(0.0, 1.0), default=0.5, hidden=True)
@click.option("--steps", type=click.IntRange(1), default=None, hidden=True)
@click.option("--learning-rate", type=float, default=None, hidden=True)
@click.option("--seed", type=int, default=None,
              help="Train a transfer control: MODEL with this seed instead of the profile's "
                   "(same data and schedule), saved as OUT/defences/MODEL-seedN/ and scored "
                   "as a target by every evaluation: the easiest black-box target there is.")
@strategy_option
@user_errors
def train_defence_command(data_dir, model, profile, run_dir, quiet, adversarial, attacker,
                          pgd_epsilon, pgd_steps, adversarial_ratio, steps, learning_rate,
                          seed, strategy):
    """Train CNN-4, VGG-16 and/or ResNet-50 on prepared log-Mel data.

    Keeps the epoch with the best dev UAR, reports dev and test UAR, and resumes an
    interrupted run. A finished defence with the same settings is reused, not retrained.
    (`--adversarial` is the deprecated spelling of `tfadvser harden`.)
    """
    from tfadvser.config import get_profile
    from tfadvser.defence.training import train_defences

    if adversarial:
        click.echo("warning: `train defence --adversarial` is deprecated; use `tfadvser harden` "
                   "(--adversarial-ratio is its --ratio)", err=True)
        if seed is not None:
            raise click.UsageError("--seed trains a new control defence; it does not combine "
                                   "with --adversarial")
        _harden(data_dir, model, profile, run_dir, quiet, attacker, pgd_epsilon, pgd_steps,
                adversarial_ratio, steps, learning_rate, 0)
        return
    if attacker is not None or pgd_epsilon is not None or steps is not None \
            or learning_rate is not None:
        raise click.UsageError("--attacker, --pgd-epsilon, --steps and --learning-rate are "
                               "`tfadvser harden`'s options")
    with strategy_scope(strategy):
        train_defences(data_dir, DEFENCE_NAMES if model == "all" else (model,),
                       get_profile(profile), run_dir, verbose=2 if quiet else 1, log=click.echo,
                       seed=seed)


@click.command("harden")
@click.option("--data", "data_dir", required=True, type=click.Path(),
              help="The prepared data the run's defences were trained on.")
@click.option("--model", "model", required=True, type=click.Choice(DEFENCE_NAMES + ("all",)),
              help="The trained defence of OUT to harden; `all` hardens the three in turn.")
@click.option("--profile", default="small", show_default=True, type=click.Choice(PROFILE_NAMES),
              help="The run's profile: batch size, default steps and learning rate.")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False),
              help="The run folder (runs/NAME); the hardened defence goes to "
                   "OUT/defences/MODEL-adv-<hash>/.")
@click.option("--attacker", default=None, help="Perturb with a trained attacker of OUT, "
              "LABEL[:TASK] (e.g. single-cnn4) or a task key.")
@click.option("--pgd-epsilon", type=float, default=None,
              help="Or perturb with L-inf PGD at this budget on the standardised log-Mel "
                   "(e.g. 0.01), against the weights being trained (Madry et al. 2018).")
@click.option("--pgd-steps", type=click.IntRange(1), default=10, show_default=True,
              help="PGD iterations per batch.")
@click.option("--ratio", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Share of each batch that is perturbed.")
@click.option("--steps", type=click.IntRange(1), default=None,
              help="Fine-tuning steps (default: the profile's defence steps per epoch).")
@click.option("--learning-rate", type=float, default=None,
              help="Fine-tuning Adam step size (default: a tenth of the profile's).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the batches' order and of PGD's random starts.")
@click.option("--quiet", is_flag=True, help="One line per epoch instead of progress bars.")
@user_errors
def harden_command(data_dir, model, profile, run_dir, attacker, pgd_epsilon, pgd_steps, ratio,
                   steps, learning_rate, seed, quiet):
    """Adversarial training: fine-tune a trained defence of a run on clean clips mixed with
    clips perturbed by a trained attacker of the run or by PGD.

    Fitted as the defences are (dev UAR per epoch, the best epoch kept, TensorBoard under
    the new defence's logs/, an interrupted hardening resumes); saved as a new defence that
    `evaluate` scores every attacker against. The same recipe again is reused.
    """
    _harden(data_dir, model, profile, run_dir, quiet, attacker, pgd_epsilon, pgd_steps, ratio,
            steps, learning_rate, seed)


def _harden(data_dir, model, profile, run_dir, quiet, attacker, pgd_epsilon, pgd_steps, ratio,
            steps, learning_rate, seed):
    from tfadvser.config import get_profile
    from tfadvser.experiment.hardening import harden

    for name in DEFENCE_NAMES if model == "all" else (model,):
        harden(data_dir, run_dir, name, get_profile(profile), attacker=attacker,
               pgd_epsilon=pgd_epsilon, pgd_steps=pgd_steps, ratio=ratio, steps=steps,
               learning_rate=learning_rate, seed=seed, log=click.echo, verbose=2 if quiet else 1)


def _defence_list(ctx, param, value):
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("name at least one defence, e.g. cnn4,vgg16,resnet50")
    return names


def _check_defences(names, victims):
    """The names after --victim/--victims are known: each is a defence or a victim, and
    each victim is one of them and can be trained against (`victims.check_targets`)."""
    from tfadvser.defence.victims import check_targets
    from tfadvser.errors import TfadvserError

    unknown = [n for n in names if n not in DEFENCE_NAMES and n not in {v.name for v in victims}]
    if unknown:
        raise click.BadParameter(f"unknown defence(s) {', '.join(unknown)}; choose from "
                                 f"{', '.join(DEFENCE_NAMES)} or name your own model with "
                                 "--victim NAME=PATH", param_hint="'--defences'")
    try:
        check_targets(victims, names)
    except TfadvserError as exc:
        given = click.get_current_context().params
        raise click.BadParameter(str(exc), param_hint=victims_hint(
            given.get("victim_options"), given.get("manifest"))) from None


@train_group.command("attacker")
@click.option("--data", "data_dir", required=True, type=click.Path(),
              help="The prepared data the defences were trained on.")
@click.option("--defences", required=True, callback=_defence_list,
              help="Comma-separated, in order, e.g. cnn4,vgg16,resnet50 (clockwise) or "
                   "resnet50,vgg16,cnn4 (counter-clockwise); a --victim NAME trains against "
                   "your own model.")
@click.option("--method", required=True,
              type=click.Choice(tuple(METHODS)),
              help="single: one defence; multi: all at once; transfer: in order, each task "
                   "fine-tuning the last; lifelong: transfer + EWC.")
@click.option("--lambda", "strength", type=float, default=None,
              help="EWC weight (lifelong only), or the --regulariser's strength. Default: the "
                   "profile's for EWC (small: 100; paper: 1e5), the regulariser's own otherwise.")
@click.option("--regulariser", default="ewc", show_default=True, type=click.Choice(REGULARISERS),
              help="What anchors lifelong tasks: ewc (the paper's), online-ewc (running Fisher), "
                   "si (Synaptic Intelligence), mas (Memory Aware Synapses) or lwf (distillation "
                   "of the previous attacker's perturbation).")
@click.option("--profile", default="small", show_default=True, type=click.Choice(PROFILE_NAMES))
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False),
              help="The run folder holding the trained defences (runs/NAME).")
@click.option("--seed", type=int, default=None, help="Attacker seed (default: the profile's, 0).")
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=None,
              help="paper: Adam 1e-4 x0.9 per 1000 steps (profile default); original: the "
                   "constant 1e-3 the authors' code really ran.")
@click.option("--fisher", "fisher_mode", type=click.Choice(FISHER_MODES), default=None,
              help="Fisher from squared mini-batch gradients (original) or per-example ones.")
@click.option("--accumulate-ewc", is_flag=True, default=None,
              help="Anchor every earlier task, not only the previous one.")
@click.option("--round-trip", is_flag=True, default=None,
              help="Train through the audio round trip: the defences score the perturbation "
                   "rendered as sound and re-extracted (needs the corpus audio where `prepare` "
                   "read it; slower, no XLA). The sequence label gets `-roundtrip`.")
@click.option("--attacker-data", type=click.Path(), default=None,
              help="Train on this prepared folder instead of the defences' training split: "
                   "speech the victims never heard, as a black-box attacker has. Its speakers "
                   "must be in no split of --data (checked) and its labels the same emotions; "
                   "an unlabelled one (`prepare --corpus unlabelled`) trains the label-free "
                   "losses (--loss feature-cos). `synth DIR --first-speaker 31` writes new "
                   "speakers for the built-in corpus. The label gets `-adata` + 8 hex digits.")
@click.option("--quiet", is_flag=True, help="One line per epoch instead of progress bars.")
@budget_options
@recipe_options
@victim_options
@strategy_option
@user_errors
def train_attacker_command(data_dir, defences, method, strength, regulariser, profile, run_dir, seed,
                           lr_schedule, fisher_mode, accumulate_ewc, round_trip, attacker_data,
                           quiet, budget,
                           generator, recipe, victims, trust_model_code, strategy):
    """Train the atrous-CNN attacker against trained defences.

    Writes a checkpoint after every task (the 2-defence results of the paper are the
    intermediate checkpoints of 3-defence sequences), the EWC Fisher and anchor, the
    config and TensorBoard logs under OUT/attackers/. Tasks already trained with the same
    settings, by this or another method, are reused. A --victim named in --defences is
    trained against like a defence, pinned by its weights' hash (a changed model is
    trained against anew); it needs a log-Mel input and gradients. Every victim given must
    be named in --defences.
    """
    from tfadvser.attack.training import train_attacker
    from tfadvser.config import get_profile

    _check_defences(defences, victims)
    # The options given, as AttackerConfig fields (`config.resolve` checks them all).
    overrides = {k: v for k, v in (("seed", seed), ("lr_schedule", lr_schedule),
                                   ("fisher_mode", fisher_mode), ("ewc_accumulate", accumulate_ewc),
                                   ("round_trip", round_trip), ("generator", generator))
                 if v is not None}
    overrides.update(recipe)
    with strategy_scope(strategy):
        record = train_attacker(data_dir, run_dir, method, defences, get_profile(profile),
                                strength=strength, verbose=2 if quiet else 1,
                                regulariser=regulariser, victims=victims,
                                trust_code=trust_model_code, budget=budget,
                                attacker_data=attacker_data, **overrides)
    click.echo(f"{record['label']}: {len(record['tasks'])} task(s) in "
               f"{run_dir}/attackers/{record['label']}/sequence.json")
    for task in record["tasks"]:
        click.echo(f"  task {task['index']} vs {'+'.join(task['defences'])}: {task['path']}")
