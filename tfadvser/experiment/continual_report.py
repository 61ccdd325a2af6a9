"""The report's continual-learning comparison: every multi-task, transfer and lifelong
sequence (each regulariser its own method) with its attack success on every defence, the
continual-learning metrics with 95 % intervals (`evaluation/continual.py`), and the time
and peak memory its tasks took (task.json). Written as `evaluation/continual.json` and a
report.md section.

Attack success = clean UAR - adversarial UAR on the *test* split (fractions; higher is a
stronger attacker). With several lambdas for one method, sequence, seed and budget, the
row takes the lambda the one lambda rule chose (`protocol.lambda_objective`, as Table 1).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Optional

from tfadvser.evaluation.continual import (METRICS, continual_intervals, continual_metrics,
                                            forgetting_difference)
from tfadvser.experiment.protocol import CLOCKWISE, COUNTER, NAMES, lambda_objective
from tfadvser.experiment.results import Results, budget_of
from tfadvser.experiment.tables import compared
from tfadvser.runtime.files import read_json, write_json

SEQUENTIAL = ("transfer", "lifelong")
SPLIT = "test"
# As the literature writes them (config.REGULARISERS).
REGULARISER_NAMES = {"ewc": "EWC", "online-ewc": "online EWC", "si": "SI", "mas": "MAS", "lwf": "LwF"}
# The table's metric columns, in order (P next to F, which is measured from it).
COLUMNS = ("average_success", "peak_success", "forgetting", "backward_transfer", "forward_transfer")


def _success(results: Results, key, defence, split=SPLIT) -> Optional[float]:
    adv = results.adversarial_uar(key, defence, split)
    return None if adv is None else results.clean_uar(defence, split) - adv


def _chosen(results: Results, options: list[dict]) -> dict:
    """The sequence of a group the one lambda rule chose (`evaluate.lambda_choices`, which
    applies `protocol.lambda_objective`); the only one for methods without lambda."""
    for seq in options:
        choice = results.chosen_lambda(seq)
        if choice is not None and float(seq["ewc_lambda"]) == choice:
            return seq
    return min(options, key=lambda seq: lambda_objective(
        {d: results.adversarial_uar(seq["tasks"][-1]["key"], d, "dev") for d in seq["defences"]}))


def _resources(run_dir: Path, seq: dict) -> dict:
    seconds, peaks, scopes = 0.0, [], set()
    for task in seq["tasks"]:
        path = run_dir / task["path"] / "task.json"
        if not path.exists():
            return {"seconds": None, "peak_rss_mb": None}
        record = read_json(path)
        seconds += record.get("seconds", 0.0) + record.get("regulariser_seconds", 0.0)
        if "peak_rss_mb" in record:
            peaks.append(record["peak_rss_mb"])
            scopes.add(record.get("peak_rss_scope"))
    return {"seconds": round(seconds, 1), "peak_rss_mb": max(peaks) if peaks else None,
            "peak_rss_scope": scopes.pop() if len(scopes) == 1 else None}


def method_name(seq: dict) -> str:
    """"Lifelong (SI)" etc.: the method, and the regulariser of a lifelong sequence; a
    universal attacker (one perturbation for every clip) is marked "universal"."""
    universal = ", universal" if seq["attacker"].get("generator", "atrous") == "universal" else ""
    if seq["method"] != "lifelong":
        return {"multi": "Multi-task", "transfer": "Transfer"}[seq["method"]] + universal.replace(", ", " (") + (")" if universal else "")
    return f"Lifelong ({REGULARISER_NAMES[seq.get('regulariser') or 'ewc']}{universal})"


def continual_rows(results: Results, run_dir) -> list[dict]:
    """One row per (method, regulariser, defence order, seed) with its chosen lambda: the
    test success after the last task on every defence, the success grid over its own
    defences, the continual-learning metrics (sequential methods; with intervals when
    results hold per-clip predictions), and seconds and peak RSS over its tasks."""
    run_dir = Path(run_dir)
    groups = defaultdict(list)
    for seq in results.sequences:
        if compared(seq) and all(t["key"] in results.tasks for t in seq["tasks"]):
            groups[(method_name(seq), tuple(seq["defences"]), seq["attacker"]["seed"],
                    budget_of(seq).key)].append(seq)
    rows = []
    for (name, defences, seed, budget), options in groups.items():
        seq = _chosen(results, options)
        row = {"method": name, "label": seq["label"], "defences": list(defences), "seed": seed,
               "budget": budget,
               "lambda": seq["ewc_lambda"] if seq["method"] == "lifelong" else None,
               "success": {d: _success(results, seq["tasks"][-1]["key"], d) for d in results.defences},
               **_resources(run_dir, seq)}
        if seq["method"] in SEQUENTIAL:
            keys = [t["key"] for t in seq["tasks"]]
            grid = [[_success(results, k, d) for d in defences] for k in keys]
            row["keys"] = keys
            row["grid"] = grid
            row["metrics"] = _metrics(results, seq, keys, defences, grid)
        rows.append(row)
    order = {m: i for i, m in enumerate(("Multi-task", "Transfer"))}
    return sorted(rows, key=lambda r: (r["defences"] != list(CLOCKWISE), r["defences"] != list(COUNTER),
                                       r["defences"], order.get(r["method"], 2), r["method"], r["seed"]))


def _adversarial_predictions(results: Results, keys, defences) -> Optional[list[list]]:
    """Per-clip predictions [task][defence] of a sequence's attackers on test, as
    `evaluate_run` keeps them; None where a run kept none."""
    found = [results.adversarial_predictions(k, defences, SPLIT) for k in keys]
    return None if any(f is None for f in found) else found


def _metrics(results: Results, seq, keys, defences, grid) -> dict:
    """The metrics with intervals from the per-clip predictions `evaluate_run` keeps."""
    untrained = results.untrained_predictions(seq["attacker"], SPLIT)
    adversarial = _adversarial_predictions(results, keys, defences)
    if adversarial is None:
        point = continual_metrics(grid)  # no per-clip data: no intervals, no FWT
        return {m: {"value": point[m], "ci": None} for m in METRICS}
    return continual_intervals(
        results.truth(SPLIT), results.clean_predictions(defences, SPLIT), adversarial,
        len(results.labels), None if untrained is None else [untrained[d] for d in defences])


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _with_ci(metric: dict) -> str:
    if metric["value"] is None:
        return "n/a"
    ci = metric["ci"]
    return _pct(metric["value"]) + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")


def markdown(rows: list[dict], results: Results) -> str:
    """The report.md section."""
    names = list(results.defences)
    lines = ["## Continual learning: methods compared on attack success", "",
             "Attack success = clean UAR − adversarial UAR on test [%] (higher = stronger), of "
             "the attacker after the last task, on every defence; then over the sequence's own "
             "defences (`tfadvser/evaluation/continual.py`): ACC, the mean success after the last "
             "task; P, peak success (per earlier defence its best success after being learnt, "
             "averaged: what there was to forget); F, forgetting (per earlier defence the drop "
             "from that best success to the final one, averaged; higher = more forgetting); BWT, backward transfer "
             "(final minus just-learnt success, averaged over earlier defences); FWT, forward "
             "transfer (success on a defence just before training on it, minus that of the "
             "untrained generator). 95 % bootstrap intervals over test clips. Time: seconds of "
             "its tasks (training plus the importance estimates before them); memory: the peak "
             "RSS of the process during its most demanding task.", "",
             "| Method | Sequence | λ | " + " | ".join(f"{NAMES.get(d, d)}" for d in names)
             + " | ACC | P | F | BWT | FWT | time [s] | peak RSS [MiB] |",
             "|---|---|---|" + "---|" * (len(names) + 7)]
    for row in rows:
        metrics = row.get("metrics", {})
        cells = [_with_ci(metrics[m]) if m in metrics else "n/a" for m in COLUMNS]
        lam = "" if row["lambda"] is None else f"{row['lambda']:g}"
        sequence = " → ".join(NAMES.get(d, d) for d in row["defences"])
        sequence += f" (seed {row['seed']})" if row["seed"] else ""
        lines.append(f"| {row['method']} | {sequence} "
                     f"| {lam} | " + " | ".join(_pct(row["success"][d]) for d in names) + " | "
                     + " | ".join(cells) + f" | {row['seconds'] if row['seconds'] is not None else 'n/a'} | "
                     f"{row['peak_rss_mb'] if row.get('peak_rss_mb') is not None else 'n/a'} |")
    lines += [""] + _least_forgetting(rows, results) + [""]
    return "\n".join(lines)


def _learnt_something(row: dict) -> bool:
    """Whether the row's peak success P on its earlier defences is above zero: its 95 %
    interval's lower end when it has one, else the point value, as the table shows it (to
    0.1 points: a lower end of 0.0002 printed as "0.0" is not read as above zero)."""
    peak = row.get("metrics", {}).get("peak_success") or {}
    if peak.get("value") is None:
        return False
    low = peak["ci"][0] if peak.get("ci") else peak["value"]
    return float(_pct(low)) > 0


def _paired_forgetting(results: Optional[Results], best: dict, second: dict) -> Optional[dict]:
    """F(second) - F(best) with a paired bootstrap interval over the test clips
    (`continual.forgetting_difference`), or None without per-clip predictions."""
    if results is None or "keys" not in best or "keys" not in second:
        return None
    ours = _adversarial_predictions(results, best["keys"], best["defences"])
    theirs = _adversarial_predictions(results, second["keys"], second["defences"])
    if ours is None or theirs is None:
        return None
    return forgetting_difference(results.truth(SPLIT), results.clean_predictions(best["defences"], SPLIT),
                                 ours, theirs, len(results.labels))


def _least_forgetting(rows: list[dict], results: Optional[Results] = None) -> list[str]:
    """Per defence order, which sequential method forgets least, and whether it is decided
    against the runner-up: by a paired bootstrap of the difference in F on the same clips
    when `results` holds per-clip predictions, else by whether the two intervals overlap.
    Only methods that learnt something to forget (peak success P above zero at 95 %) are
    ranked: F = 0 of an attacker that never succeeded says nothing about forgetting."""
    out = []
    by_order = defaultdict(list)
    for row in rows:
        if row.get("metrics", {}).get("forgetting", {}).get("value") is not None:
            by_order[tuple(row["defences"])].append(row)
    for order, rows_of_order in by_order.items():
        candidates = [r for r in rows_of_order if _learnt_something(r)]
        left_out = sorted({r["method"] for r in rows_of_order if not _learnt_something(r)})
        sequence = " → ".join(NAMES.get(d, d) for d in order)
        if not candidates:
            out.append(f"- {sequence}: no method's peak success P on the earlier defences is above "
                       f"zero at 95 %, so none had anything to forget: forgetting is not compared.")
            continue
        ranked = sorted(candidates, key=lambda r: r["metrics"]["forgetting"]["value"])
        best = ranked[0]
        text = (f"{sequence}: least forgetting by "
                f"{best['method']} (F = {_with_ci(best['metrics']['forgetting'])})")
        if len(ranked) > 1:
            second = ranked[1]
            text += f"; next {second['method']} (F = {_with_ci(second['metrics']['forgetting'])}): "
            paired = _paired_forgetting(results, best, second)
            if paired is not None and paired["ci"] is not None:
                decided = paired["ci"][0] > 0
                text += (f"paired difference on the same clips {_with_ci(paired)} points, "
                         + ("decided at 95 %." if decided else "so the ranking is undecided at 95 %."))
            else:
                ci, other = best["metrics"]["forgetting"]["ci"], second["metrics"]["forgetting"]["ci"]
                separated = ci is not None and other is not None and ci[1] < other[0]
                text += ("the intervals do not overlap." if separated else
                         "the intervals overlap, so the ranking is undecided.")
        else:
            text += "; the only method with something to forget."
        if left_out:
            text += (f" Not ranked, peak success P not above zero at 95 % (nothing learnt to "
                     f"forget): {', '.join(left_out)}.")
        out.append(f"- {text}")
    return out


def write(out_dir, results: Results, run_dir) -> str:
    """Write `continual.json` under `out_dir` and return the report.md section."""
    rows = continual_rows(results, run_dir)
    write_json(Path(out_dir) / "continual.json", {"split": SPLIT, "rows": rows})
    return markdown(rows, results)
