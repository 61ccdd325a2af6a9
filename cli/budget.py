"""The perturbation-budget options shared by `train attacker`, `tune` and `reproduce`."""
import dataclasses
import functools

import click

from tfadvser.config import GENERATORS, PERTURBATIONS, Budget, resolve


def budget_options(command):
    """--perturbation, --epsilon, --snr-db and --generator, passed on as `budget` (a
    `config.Budget`, None for the profile's: `budget_of`) and `generator` (None for the
    profile's)."""
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
        return command(*args, budget=budget_of(perturbation, epsilon, snr_db),
                       generator=generator_kind, **kwargs)
    return wrapper


def budget_of(perturbation, epsilon, snr_db):
    """The `config.Budget` the options ask for, None for the profile's: `--perturbation
    paper` is the unbounded `Budget()`; --epsilon / --snr-db bound it (the one not given
    dropped); `--perturbation bounded` alone is the product's default budget. Raises
    click.BadParameter for a bound given with `--perturbation paper` or a bad bound."""
    if perturbation == "paper":
        if epsilon is not None or snr_db is not None:
            raise click.BadParameter("the paper's perturbation is unbounded: drop --epsilon / "
                                     "--snr-db, or use --perturbation bounded",
                                     param_hint="--perturbation")
        return Budget()
    if epsilon is not None or snr_db is not None:
        try:
            return Budget(epsilon, snr_db)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--epsilon / --snr-db") from None
    return Budget.default() if perturbation == "bounded" else None


def resolved_profile(profile, budget=None, **overrides):
    """`profile` with its attacker resolved (`config.resolve`), for the library functions
    that take a whole profile (`reproduce`, `tune`); an override of None is an option not
    given. Raises click.BadParameter with resolve's message."""
    try:
        attacker = resolve(profile, budget, **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--epsilon / --snr-db / --generator") from None
    return dataclasses.replace(profile, attacker=attacker)
