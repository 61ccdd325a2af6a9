"""results.json: the results record (`results.py`) plus the views `tables.py` derives from
it for readers of the file (table1, lifelong_grids, lambda_curves and, when any, audio_rows).

`evaluate_run` writes it once per evaluation, atomically; `read_results` loads it back into
the record (the views are recomputed from the record, not read). Files written before the
record had a schema version have the same layout and load as version 1.
"""
from __future__ import annotations

from pathlib import Path

from tfadvser.errors import TfadvserError
from tfadvser.experiment.results import Results
from tfadvser.experiment.tables import derived_views
from tfadvser.runtime.files import read_json, write_json

RESULTS_FILE = "results.json"


def results_json(results: Results) -> dict:
    """The JSON value of results.json: the record's layout and the derived views."""
    return {**results.to_dict(), **derived_views(results)}


def write_results(path, results: Results) -> None:
    """Write results.json atomically (`runtime.files.write_json`): a reader sees the old
    file or the new one."""
    write_json(path, results_json(results))


def _regenerate(path, why: str) -> TfadvserError:
    run = Path(path).parent.parent
    return TfadvserError(f"{path}: {why}; run `tfadvser evaluate {run}` again to regenerate it")


def read_results(path) -> Results:
    """The record in a results.json. Files from before the schema version have the same
    layout and load; anything else (not an object, a key missing, a newer schema) raises
    TfadvserError in one line naming the file and saying to run `tfadvser evaluate RUN`
    again. A missing file or invalid JSON raises `runtime.files.read_json`'s TfadvserError."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise _regenerate(path, "not an evaluation's results")
    try:
        return Results.from_dict(data)
    except (KeyError, ValueError) as exc:
        raise _regenerate(path, f"not this tfadvser's results layout ({exc.args[0]})") from None
    except (TypeError, AttributeError) as exc:
        raise _regenerate(path, f"not this tfadvser's results layout ({exc})") from None
