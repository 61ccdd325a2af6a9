"""The perturbation-budget options shared by `train attacker`, `tune` and `reproduce`."""
import dataclasses
import functools

import click

from tfadvser.config import GENERATORS, PERTURBATIONS


def budget_options(command):
    """--perturbation, --epsilon, --snr-db and --generator, passed on as `budget`."""
    @click.option("--perturbation", type=click.Choice(PERTURBATIONS), default=None,
                  help="bounded (default): a signed perturbation within --epsilon and --snr-db "
                       "by construction, the product's protocol; paper: the paper's positive, "
                       "unbounded sigmoid output (alpha 0.02, its faithful reproduction).")
    @click.option("--epsilon", type=float, default=None,
                  help="L∞ bound on the perturbation in standardised log-Mel units "
                       "(default 0.008, about 30 dB for ±ε noise on the built-in corpus).")
    @click.option("--snr-db", type=float, default=None,
                  help="Per-clip SNR floor in dB on linear mel magnitudes (default 30). Giving "
                       "only one of --epsilon / --snr-db drops the other bound.")
    @click.option("--generator", "generator_kind", type=click.Choice(GENERATORS), default=None,
                  help="atrous (default): the paper's per-clip atrous CNN; universal: one "
                       "learned perturbation for every clip.")
    @functools.wraps(command)
    def wrapper(*args, perturbation, epsilon, snr_db, generator_kind, **kwargs):
        return command(*args, budget=(perturbation, epsilon, snr_db, generator_kind), **kwargs)
    return wrapper


def with_budget(profile, budget):
    """`profile` with the budget options applied. Raises click.BadParameter for a bound
    given with `--perturbation paper` or a non-positive epsilon."""
    perturbation, epsilon, snr_db, generator = budget
    changes = {}
    if generator is not None:
        changes["generator"] = generator
    if perturbation == "paper":
        if epsilon is not None or snr_db is not None:
            raise click.BadParameter("the paper's perturbation is unbounded: drop --epsilon / "
                                     "--snr-db, or use --perturbation bounded",
                                     param_hint="--perturbation")
        changes["perturbation"] = "paper"
    elif epsilon is not None or snr_db is not None:
        if epsilon is not None and not epsilon > 0:
            raise click.BadParameter(f"must be positive, got {epsilon}", param_hint="--epsilon")
        changes.update(perturbation="bounded", epsilon=epsilon, snr_db=snr_db)
    elif perturbation == "bounded":
        changes["perturbation"] = "bounded"
    if not changes:
        return profile
    try:
        attacker = dataclasses.replace(profile.attacker, **changes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--epsilon / --snr-db") from None
    return dataclasses.replace(profile, attacker=attacker)
