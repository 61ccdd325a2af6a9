"""`tfadvser evaluate` and `tfadvser reproduce`."""
import click

from tfadvser.config import LAMBDA_SEARCHES, ORDERS, REGULARISERS, SCAN_PLANS
from tfadvser_cli.budget import budget_options, resolved_profile
from tfadvser_cli.distribution import strategy_option, strategy_scope
from tfadvser_cli.errors import user_errors
from tfadvser_cli.train import PROFILE_NAMES
from tfadvser_cli.victims import victim_options


def _lambdas(ctx, param, value):
    if value is None:
        return None
    try:
        values = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None
    if not values or any(not v > 0 for v in values):
        raise click.BadParameter("the grid must hold positive values, e.g. 1e4,1e5,1e6,1e7")
    return values


scan_option = click.option("--scan", type=click.Choice(SCAN_PLANS + ("none",)), default="fast",
              show_default=True,
              help="With --baselines, the budget scan on test: every attack (noise, PGD, MI-FGSM, "
                   "DI-FGSM, ensemble MI-FGSM, the learned attackers) from 40 to 0 dB on every "
                   "defence, summarised by SNR₅₀. fast: 5 points on 48 clips, 5 iterations, the "
                   "transfer methods at 20 dB and louder (the main job's); full: 7 points on 96 "
                   "clips, 10 iterations, every method everywhere (~4x the time); none: skip.")


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", "data_dir", default=None, type=click.Path(),
              help="Prepared data; default: the folder recorded in RUN_DIR/run.json.")
@click.option("--audio-clips", default=64, show_default=True, type=click.IntRange(0),
              help="Test clips (seeded subset) each Table 1 attacker is rendered as audio for, "
                   "re-extracted and re-scored; 0 skips the audio round trip.")
@click.option("--listen", default=3, show_default=True, type=click.IntRange(0),
              help="Clips per attacker written as clean / adversarial / perturbation WAVs under "
                   "RUN_DIR/evaluation/audio/<task key>/.")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Score noise, PGD and MI-FGSM at each bounded budget of the run and draw "
                   "its budget curve.")
@scan_option
@victim_options
@user_errors
def evaluate_command(run_dir, data_dir, audio_clips, listen, baselines, scan, victims, trust_model_code):
    """Score every attacker checkpoint of RUN_DIR against every defence (dev and test), then
    the Table 1 attackers again after rendering them as audio, and write Table 1, the
    lifelong grids, the figures, WAVs to listen to, report.md and report.html to
    RUN_DIR/evaluation/. Each --victim / --victims model gets its own columns."""
    from tfadvser.experiment.outputs import evaluate_and_report

    written = evaluate_and_report(
        run_dir, data_dir, progress=lambda i, n: click.echo(f"scored attacker task {i}/{n}", err=True),
        audio_clips=audio_clips, listen=listen, baselines=baselines, victims=victims,
        trust_code=trust_model_code, scan=None if scan == "none" else scan)
    _echo_missing_rows(written["rows"])
    click.echo(f"report: {written['dir']}/report.md (and report.html)")


def _echo_missing_rows(rows: list) -> None:
    """Name Table 1's rows without a trained attacker (on stderr), and how to train them."""
    missing = [r for r in rows if not r["cells"]]
    if missing:
        click.echo("rows without a trained attacker (train them with `tfadvser train attacker`, or "
                   "run `tfadvser reproduce` with this run's --data, --out and --profile and "
                   "--orders both --multi-pairs): "
                   + "; ".join(f"{r['method']} {r['sequence']}" for r in missing), err=True)


def _controls(ctx, param, value):
    """'cnn4:1,vgg16:2' -> (("cnn4", 1), ("vgg16", 2)); 'none' -> (); None: the profile's."""
    from tfadvser.config import DEFENCE_NAMES

    if value is None:
        return None
    if value.strip() == "none":
        return ()
    out = []
    for item in value.split(","):
        model, _, seed = item.strip().partition(":")
        if model not in DEFENCE_NAMES or not seed.lstrip("-").isdigit():
            raise click.BadParameter(f"{item!r}: expected MODEL:SEED with MODEL one of "
                                     f"{', '.join(DEFENCE_NAMES)}, e.g. cnn4:1")
        out.append((model, int(seed)))
    return tuple(out)


@click.command("reproduce")
@click.option("--data", "data_dir", required=True, type=click.Path(),
              help="A folder written by `tfadvser prepare`.")
@click.option("--profile", default="small", show_default=True, type=click.Choice(PROFILE_NAMES))
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder, e.g. runs/NAME.")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1),
              help="Train every attacker with seeds 0..N-1; Table 1 shows mean ± std.")
@click.option("--lambdas", default=None, callback=_lambdas,
              help="EWC grid for the lifelong sequences (default: the profile's; small: 1,1e4; "
                   "paper: the paper's 1e4,1e5,1e6,1e7).")
@click.option("--verbose", is_flag=True, help="Keras progress lines for every epoch.")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Score noise, PGD and MI-FGSM at the attackers' budget and draw the budget curve.")
@scan_option
@click.option("--control", "controls", default=None, metavar="MODEL:SEED[,...]",
              callback=_controls,
              help="Transfer controls to train and score: MODEL trained again with SEED (e.g. "
                   "cnn4:1), the easiest black-box target. Default: the profile's (small: "
                   "cnn4:1); 'none' trains none.")
@click.option("--audio-clips", default=64, show_default=True, type=click.IntRange(0),
              help="Test clips the Table 1 attackers are rendered as audio for; 0 skips it.")
@click.option("--orders", type=click.Choice(ORDERS + ("both",)), default=None,
              help="The defence orders of the sequences: clockwise (CNN-4 → VGG-16 → ResNet-50), "
                   "counter (ResNet-50 → VGG-16 → CNN-4) or both, as the paper. Default: the "
                   "profile's (small: clockwise, to keep the main job short; paper and smoke: both).")
@click.option("--multi-pairs/--no-multi-pairs", default=None,
              help="Also train the 2-defence multi-task attackers (Table 1's Multi-task "
                   "CNN-4 + VGG-16 and ResNet-50 + VGG-16 rows; no finding reads them). Default: "
                   "the profile's (small: no, to keep the main job short; paper and smoke: yes).")
@budget_options
@strategy_option
@user_errors
def reproduce_command(data_dir, profile, run_dir, seeds, lambdas, verbose, baselines, scan, controls,
                      audio_clips, orders, multi_pairs, budget, generator, strategy):
    """Run the protocol: three defences, the attackers of Table 1, the λ sweep, then evaluate
    with baselines of the same budget and the paper's findings tested. By default the
    attackers are bounded (L∞ 0.008, SNR ≥ 30 dB); `--perturbation paper` runs the paper's
    unbounded protocol. Finished stages are reused, so an interrupted run resumes."""
    from tfadvser.config import get_profile
    from tfadvser.experiment.reproduce import reproduce

    resolved = resolved_profile(get_profile(profile), budget, generator=generator)
    with strategy_scope(strategy):
        out = reproduce(data_dir, run_dir, resolved, seeds=seeds,
                        lambdas=lambdas, verbose=2 if verbose else 0, log=click.echo,
                        baselines=baselines, audio_clips=audio_clips,
                        orders=None if orders is None else ORDERS if orders == "both" else (orders,),
                        multi_pairs=multi_pairs, scan=None if scan == "none" else scan,
                        controls=controls)
    _echo_missing_rows(out["rows"])
    click.echo(f"report: {out['report']}")


@click.command("tune")
@click.option("--data", "data_dir", required=True, type=click.Path())
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The run folder with the defences and the sequence's first-task attacker.")
@click.option("--sequence", required=True,
              help="The lifelong defence order, e.g. cnn4,vgg16,resnet50.")
@click.option("--profile", default="small", show_default=True, type=click.Choice(PROFILE_NAMES))
@click.option("--lambdas", default=None, callback=_lambdas,
              help="The grid (default: the profile's for EWC, small 1,1e4 and paper the paper's "
                   "1e4,1e5,1e6,1e7; the regulariser's own otherwise); with --search log-uniform, its smallest and largest values "
                   "bound the range.")
@click.option("--regulariser", default="ewc", show_default=True, type=click.Choice(REGULARISERS),
              help="Whose strength to sweep: ewc (the paper's) or one of online-ewc, si, mas, lwf.")
@click.option("--search", default="grid", show_default=True, type=click.Choice(LAMBDA_SEARCHES))
@click.option("--max-trials", type=click.IntRange(1), default=None,
              help="Trials of a log-uniform search (default: as many as grid values).")
@click.option("--seed", default=0, show_default=True, type=int)
@budget_options
@strategy_option
@user_errors
def tune_command(data_dir, run_dir, sequence, profile, lambdas, regulariser, search, max_trials,
                 seed, budget, generator, strategy):
    """Sweep the EWC λ (or another --regulariser's strength) of one lifelong sequence with
    keras-tuner; the objective is the mean adversarial dev UAR over the sequence's defences
    (lower is better; `protocol.lambda_objective`, the rule Table 1 uses too). Results,
    HParams logs and best.json go to RUN/tuning/<sequence><budget>/ (RUN/tuning/<regulariser>-
    <sequence><budget>/ for one other than EWC); a rerun resumes."""
    from tfadvser.config import get_profile
    from tfadvser.experiment.tuning import tune

    names = [s.strip() for s in sequence.split(",") if s.strip()]
    resolved = resolved_profile(get_profile(profile), budget, generator=generator)
    with strategy_scope(strategy):
        best = tune(data_dir, run_dir, names, resolved, lambdas=lambdas,
                    search=search, max_trials=max_trials, seed=seed, regulariser=regulariser)
    for trial in best["trials"]:
        value = trial["metrics"].get("mean_dev_adversarial_uar")
        click.echo(f"  λ {trial['lambda']:g}: " + (f"mean dev adversarial UAR {value:.3f}"
                                                   if value is not None else trial["status"]))
    click.echo(f"best λ {best['lambda']:g} (mean dev adversarial UAR {best['best_objective']:.3f})")

