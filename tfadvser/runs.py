"""A run directory (`runs/NAME`) and the data and profile it is bound to.

The first command that writes into a run records which prepared data (by fingerprint) and
which profile it used in `run.json`; every later command checks that record, so defences
and attackers in one run are never trained on different data or settings.
"""
from __future__ import annotations

from pathlib import Path

from tfadvser.config import Profile
from tfadvser.errors import TfadvserError
from tfadvser.runtime.files import read_json, write_json

RUN_FILE = "run.json"


def bind_run(run_dir, data, profile: Profile, create: bool = True, attacker: bool = False) -> dict:
    """Create `run.json` for `data` (a `DataFolder`) and `profile`, or check that an existing
    run used the same data (by fingerprint) and profile; return the record. Raises
    TfadvserError on a mismatch. With `create` off, a missing `run.json` is not written (a
    command checks an existing run before its other inputs, and writes only once they pass).
    `attacker`: the caller trains attackers only, so a profile whose `attacks_on` names the
    run's profile (`long` on a `small` run: the same defences) may join it."""
    run_dir = Path(run_dir)
    record = {"data_dir": str(Path(data.path).resolve()), "fingerprint": data.fingerprint,
              "labels": list(data.labels), "feature_config": data.feature_config.to_dict(),
              "profile": profile.name}
    path = run_dir / RUN_FILE
    if not path.exists():
        if create:
            write_json(path, record)
        return record
    existing = read_json(path)
    if existing.get("fingerprint") != record["fingerprint"]:
        raise TfadvserError(
            f"{run_dir} was made with other data ({existing.get('data_dir')}, fingerprint "
            f"{str(existing.get('fingerprint'))[:12]}); {data.path} has fingerprint "
            f"{record['fingerprint'][:12]}. Use another --out for this data")
    joins = attacker and profile.attacks_on is not None and existing.get("profile") == profile.attacks_on
    if existing.get("profile") != profile.name and not joins:
        raise TfadvserError(f"{run_dir} was made with profile {existing.get('profile')!r}, not "
                            f"{profile.name!r}; use another --out or the same profile")
    return existing


def load_run(run_dir) -> dict:
    """The `run.json` record of a run folder. Raises TfadvserError when it is not one."""
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        raise TfadvserError(f"{run_dir} is not a run folder ({RUN_FILE} missing): train defences "
                            "into it first, or run `tfadvser reproduce`")
    return read_json(path)
