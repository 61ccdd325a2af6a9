"""The options naming the user's own models, shared by `train attacker` and `evaluate`."""
import functools

import click


def victim_options(command):
    """--victim, --victims and --trust-model-code, passed on as `victims` (VictimSpecs)
    and `trust_model_code`."""
    @click.option("--victim", "victim_options", multiple=True, metavar="NAME=PATH",
                  help="Your own model as NAME (repeatable): a .keras file or a SavedModel "
                       "taking the standardised log-Mel [B, 373, 64]; for other inputs, outputs "
                       "and a pinned weights hash use --victims. Names are case-sensitive, but "
                       "one that differs from another victim's or a defence's only in letter "
                       "case (CNN4) is refused.")
    @click.option("--victims", "manifest", default=None, type=click.Path(dir_okay=False),
                  help="A victim manifest (JSON: name, path, input, output, sha256, labels; see "
                       "tfadvser/defence/external.py).")
    @click.option("--trust-model-code", is_flag=True,
                  help="Load victims' .keras files with Keras safe mode off: Python code they "
                       "carry (Lambda layers) will run. Only for models you trust.")
    @functools.wraps(command)
    def wrapper(*args, victim_options, manifest, trust_model_code, **kwargs):
        from tfadvser.config import DEFENCE_NAMES
        from tfadvser.defence.external import check_victims, parse_victim_option, read_manifest
        from tfadvser.errors import TfadvserError

        try:
            victims = [parse_victim_option(v) for v in victim_options]
            victims += read_manifest(manifest) if manifest else []
            check_victims(victims, DEFENCE_NAMES)
        except TfadvserError as exc:  # a usage error (exit 2), as --defences' are
            raise click.BadParameter(str(exc), param_hint=victims_hint(victim_options, manifest)) from None
        if trust_model_code:
            click.echo("warning: --trust-model-code: victims' .keras files may run Python code",
                       err=True)
        return command(*args, victims=victims, trust_model_code=trust_model_code, **kwargs)
    return wrapper


def victims_hint(victim_options, manifest) -> str:
    """The option(s) a victim error is reported against: '--victim', '--victims' or both."""
    given = [name for name, value in (("--victim", victim_options), ("--victims", manifest)) if value]
    return " / ".join(f"'{name}'" for name in given) or "'--victim'"
