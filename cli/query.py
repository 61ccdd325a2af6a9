"""`tfadvser attack-query`: attack a victim through its predictions only."""
from pathlib import Path

import click

from tfadvser.config import QUERY_ATTACKS, QUERY_VICTIM_INPUTS
from tfadvser_cli.budget import budget_options
from tfadvser_cli.errors import user_errors


@click.command("attack-query")
@click.option("--run", "run_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="A run: its data (unless --data) and, with --defence, the victim.")
@click.option("--defence", default=None, help="Attack this defence of --run (through predict only).")
@click.option("--victim", "victim_path", default=None, type=click.Path(exists=True),
              help="Attack a .keras file or SavedModel folder (used through predict only).")
@click.option("--victim-input", type=click.Choice(QUERY_VICTIM_INPUTS), default=QUERY_VICTIM_INPUTS[0],
              show_default=True, help="What --victim takes: the standardised log-Mel, or the "
                                      "raw one (natural-log mel magnitudes).")
@click.option("--trust-model-code", is_flag=True,
              help="Load --victim with Keras safe mode off (Lambda layers' code runs).")
@click.option("--server", default=None, help="Attack a defence served by TF Serving: its REST "
                                             "address, e.g. http://localhost:8501.")
@click.option("--model", default=None, help="With --server: the served defence's name "
                                            "(exported with `tfadvser export --defence`).")
@click.option("--version", type=int, default=None, help="With --server: the model version.")
@click.option("--data", "data_dir", default=None, type=click.Path(),
              help="Prepared data (test clips, statistics); default: --run's.")
@click.option("--attack", "attacks", multiple=True, default=("square",), show_default=True,
              type=click.Choice(QUERY_ATTACKS),
              help="square: Square Attack (score-based); hsj: HopSkipJump (decision-based); "
                   "noise: random noise at the budget, one draw per query. Repeatable.")
@click.option("--queries", default=1000, show_default=True, type=click.IntRange(1),
              help="Query budget per clip (the clean clip is query 1).")
@click.option("--clips", default=32, show_default=True, type=click.IntRange(1),
              help="Test clips attacked (a seeded subset).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--prior", default=None, metavar="RUN:ATTACKER",
              help="Also run each attack from a trained attacker's G(x) (projected onto the "
                   "budget), on the same clips: ATTACKER is LABEL[:TASK] or a task key.")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="The JSON record; default RUN/evaluation/query_attacks.json with --run, "
                   "else ./query_attacks.json.")
@budget_options
@user_errors
def attack_query_command(run_dir, defence, victim_path, victim_input, trust_model_code, server,
                         model, version, data_dir, attacks, queries, clips, seed, prior,
                         out_path, budget, generator):
    """Attack a victim you can only query, at the product's budget (L∞ and SNR floor, the
    same projection as every other attack): success at 10 / 100 / 1,000 queries, median
    queries, wall time, beside noise and, with --prior, the learned attacker's transfer."""
    from tfadvser.config import get_profile
    from tfadvser.errors import TfadvserError
    from tfadvser.experiment.query_attack import QUERY_FILE, VictimSource, run_query_attacks
    from tfadvser.experiment.query_report import query_section
    from tfadvser.runs import load_run

    if (budget is not None and not budget.bounded) or generator is not None:
        raise click.BadParameter("query attacks take a bounded budget only (--epsilon, --snr-db)",
                                 param_hint="--perturbation / --generator")
    bounded = budget if budget is not None else get_profile("small").attacker.budget
    if data_dir is None:
        if run_dir is None:
            raise click.UsageError("give --data, or --run to use the run's data")
        data_dir = load_run(run_dir)["data_dir"]
    if out_path is None:
        out_path = Path(run_dir) / "evaluation" / QUERY_FILE if run_dir else Path(QUERY_FILE)
    source = VictimSource(run_dir=run_dir, defence=defence, path=victim_path, input=victim_input,
                          server=server, model=model, version=version)
    try:
        source.check()
    except TfadvserError as exc:
        raise click.UsageError(str(exc)) from None
    record = run_query_attacks(data_dir, source, Path(out_path), bounded, list(dict.fromkeys(attacks)),
                               queries, clips, seed, prior, trust_model_code,
                               progress=lambda line: click.echo(line, err=True))
    click.echo("\n".join(query_section(record, heading="#")))
    click.echo(f"written {out_path}")
