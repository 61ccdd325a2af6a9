"""A run directory (`runs/NAME`) and the data and profile it is bound to.

The first command that writes into a run records which prepared data (by fingerprint) and
which profile it used in `run.json`; every later command checks that record, so defences
and attackers in one run are never trained on different data or settings.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tfadvser.config import Profile
from tfadvser.errors import TfadvserError

RUN_FILE = "run.json"


def write_json(path: Path, value) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(value, handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TfadvserError(f"{path} not found") from None
    except json.JSONDecodeError as exc:
        raise TfadvserError(f"{path}: not valid JSON ({exc})") from None


def bind_run(run_dir, data_dir, metadata: dict, profile: Profile) -> dict:
    """Create `run.json`, or check that an existing run used the same data and profile."""
    run_dir = Path(run_dir)
    record = {"data_dir": str(Path(data_dir).resolve()), "fingerprint": metadata["fingerprint"],
              "labels": metadata["labels"], "feature_config": metadata["feature_config"],
              "profile": profile.name}
    path = run_dir / RUN_FILE
    if not path.exists():
        write_json(path, record)
        return record
    existing = read_json(path)
    if existing.get("fingerprint") != record["fingerprint"]:
        raise TfadvserError(
            f"{run_dir} was made with other data ({existing.get('data_dir')}, fingerprint "
            f"{str(existing.get('fingerprint'))[:12]}); {data_dir} has fingerprint "
            f"{record['fingerprint'][:12]}. Use another --out for this data")
    if existing.get("profile") != profile.name:
        raise TfadvserError(f"{run_dir} was made with profile {existing.get('profile')!r}, not "
                            f"{profile.name!r}; use another --out or the same profile")
    return existing
