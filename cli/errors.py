"""Turn the library's user-facing errors into one-line messages and a non-zero exit."""
import functools

import click


def user_errors(command):
    """Show TfadvserError as `Error: ...` and exit 1, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from tfadvser.errors import TfadvserError

        try:
            return command(*args, **kwargs)
        except TfadvserError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def build_config(cls, **values):
    """Build a frozen config, reporting a rejected value as a usage error."""
    try:
        return cls(**values)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
