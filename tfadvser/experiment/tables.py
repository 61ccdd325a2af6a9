"""Which trained task answers which question, read off the results record (`results.py`):
Table 1's rows, the lifelong grids, Fig. 3's lambda curves, the training panels and the
audio round-trip rows. Renderers (`report.py` and the sections it calls) print these.

Table 1's rows are defined in `protocol.py`; each is read off one trained task, under one
budget (a run can hold the bounded protocol and the paper's unbounded one: each gets its
own Table 1). Lifelong rows use the lambda the one lambda rule chose for their sweep
(`protocol.lambda_objective`, via `evaluate.lambda_choices`). With several seeds a cell is
mean +- std over seeds; with one, the adversarial UAR with its 95 % interval.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Optional

import numpy as np

from tfadvser.attack.tasks import recorded_config
from tfadvser.experiment.protocol import NAMES, ROWS, Row
from tfadvser.experiment.results import SPLITS, Results, budget_of
from tfadvser.experiment.wording import count


def compared(seq: dict) -> bool:
    """Whether the continual-learning comparison (`continual_report.py`) reads a sequence:
    multi-task, transfer or lifelong over two defences or more, not trained through audio."""
    return (seq["method"] in ("multi", "transfer", "lifelong") and len(seq["defences"]) >= 2
            and not seq["attacker"].get("round_trip"))


def _candidates(row: Row, results: Results, budget: str,
                kind: str = "atrous") -> list[tuple[dict, dict]]:
    """(sequence, task) pairs that hold this row's attacker under `budget`, with generator
    `kind` (atrous or universal)."""
    found = []
    for seq in results.sequences:
        if seq["attacker"].get("round_trip"):  # not the paper's attacker: reported apart
            continue
        if seq["attacker"].get("generator", "atrous") != kind:
            continue
        if seq.get("regulariser") not in (None, "ewc"):  # continual_report.py's, not the paper's
            continue
        # Another generator recipe or the attacker's own corpus: not the paper's attacker
        # either (and a second candidate for the row's seed); they are in the budget scan.
        if seq.get("attacker_data") or recorded_config(seq["attacker"]).recipe:
            continue
        if budget_of(seq).key != budget:
            continue
        defences = tuple(seq["defences"])
        if seq["method"] not in row.methods:
            continue
        if row.exact and defences != row.sequence:
            continue
        if not row.exact and defences[:len(row.sequence)] != row.sequence:
            continue
        found.append((seq, seq["tasks"][row.task_index]))
    return found


def _by_lambda(row: Row, results: Results, budget: str, kind: str = "atrous") -> dict[float, dict[int, str]]:
    """lambda -> seed -> task key (lambda 0 for rows without EWC)."""
    table = defaultdict(dict)
    for seq, task in _candidates(row, results, budget, kind):
        if task["key"] in results.tasks:
            table[float(task["ewc_lambda"])][seq["attacker"]["seed"]] = task["key"]
    return table


def _chosen(row: Row, results: Results, budget: str, kind: str = "atrous") -> dict[int, str]:
    """seed -> task key of a row: for lifelong rows, the lambda `protocol.lambda_objective`
    chose for the row's sweep (`evaluate.lambda_choices`)."""
    keys = {}
    for seq, task in _candidates(row, results, budget, kind):
        if task["key"] not in results.tasks:
            continue
        if row.method == "Lifelong":
            choice = results.chosen_lambda(seq)
            if choice is None or float(seq["ewc_lambda"]) != choice:
                continue
        keys[seq["attacker"]["seed"]] = task["key"]
    return keys


def _cell(results: Results, keys: list[str], defence: str, split: str) -> Optional[dict]:
    scored = [v for v in (results.scores(k, defence, split) for k in keys) if v is not None]
    if not scored:
        return None
    values = [v["adversarial_uar"] for v in scored]
    cell = {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}
    if len(scored) == 1:
        cell["ci"] = scored[0]["adversarial_uar_ci"]
    noise = [v["matched_noise"]["adversarial_uar"] for v in scored if "matched_noise" in v]
    if noise:
        cell["noise"] = float(np.mean(noise))
    return cell


def table1(results: Results, budget: Optional[str] = None) -> list[dict]:
    """Table 1's rows (`protocol.ROWS`) under one budget (default the primary one): per row
    the chosen lambda, the seeds and task keys, and per "defence/split" cell the adversarial
    UAR's mean and std over seeds (fractions), with one seed also its 95 % interval and the
    matched-noise UAR; rows without an attacker have no cells."""
    budget = budget or results.primary_budget()
    rows = []
    # The paper's rows, then those of universal attackers (the paper's future work) where
    # the run trained any, marked "(universal)".
    universal = [(row, "universal") for row in ROWS if _chosen(row, results, budget, "universal")]
    for row, kind in [(row, "atrous") for row in ROWS] + universal:
        keys = _chosen(row, results, budget, kind)
        entry = {"method": row.method + (" (universal)" if kind == "universal" else ""),
                 "sequence": row.name, "defences": list(row.sequence),
                 "lambda": None, "seeds": 0, "cells": {}, "budget": budget}
        if keys:
            lam = next(
                (float(t["ewc_lambda"]) for seq in results.sequences for t in seq["tasks"]
                 if t["key"] in keys.values()), None)
            entry.update(seeds=len(keys), keys=[keys[s] for s in sorted(keys)],
                         **({"lambda": lam} if row.method == "Lifelong" else {}))
            for d in results.defences:
                for split in SPLITS:
                    cell = _cell(results, entry["keys"], d, split)
                    if cell is not None:
                        entry["cells"][f"{d}/{split}"] = cell
            sizes = [results.perturbation(k, "test") for k in entry["keys"]
                     if results.scored_on(k, "test")]
            if sizes:
                entry["test_perturbation"] = {m: float(np.mean([s[m] for s in sizes])) for m in sizes[0]}
        rows.append(entry)
    return rows


def lifelong_grids(results: Results) -> list[dict]:
    """For each lifelong sequence (and seed): adversarial UAR of the attacker after task k
    against defence j, dev and test."""
    grids = []
    for seq in results.sequences:
        if seq["method"] != "lifelong":
            continue
        grid = {"label": seq["label"], "lambda": seq["ewc_lambda"], "seed": seq["attacker"]["seed"],
                "after_task": []}
        for task in seq["tasks"]:
            grid["after_task"].append({
                "task": task["index"], "trained_on": task["defences"],
                **{s: {d: results.adversarial_uar(task["key"], d, s) for d in results.defences}
                   for s in SPLITS}})
        grids.append(grid)
    return grids


def lambda_curves(results: Results) -> dict[str, dict]:
    """Fig. 3 data: per lifelong row, lambda -> dev adversarial UAR per defence (mean over seeds)."""
    curves = {}
    for row in ROWS:
        if row.method != "Lifelong":
            continue
        options = _by_lambda(row, results, results.primary_budget())
        curves[row.name] = {
            lam: {d: float(np.mean([v for v in (results.adversarial_uar(k, d, "dev") for k in keys.values())
                                    if v is not None] or [np.nan]))
                  for d in results.defences}
            for lam, keys in sorted(options.items())}
    return curves


def round_trip_sequences(results: Results) -> list[dict]:
    """Sequences trained through the audio round trip (`--round-trip`); not Table 1's."""
    return [seq for seq in results.sequences if seq["attacker"].get("round_trip")]


def training_panels(results: Results, rows: list[dict]) -> list[dict]:
    """The training curves (`Results.training_curves`) behind Table 1's `rows`: for each
    row with an attacker, the first task of the sequence its first seed's task belongs to
    (the task trained from a fresh generator; transfer and lifelong rows share the
    single-task one), each once, titled by the method of the first row that reads it."""
    curves = results.training_curves
    panels, seen = [], set()
    for row in rows:
        seq = results.sequence_of((row.get("keys") or [None])[0])
        first = seq["tasks"][0] if seq else None
        if first is None or first["key"] in seen or first["key"] not in curves:
            continue
        seen.add(first["key"])
        trained_on = " + ".join(NAMES.get(d, d) for d in first["defences"])
        panels.append({"key": first["key"], "steps": first["steps"],
                       "dev_clips": seq.get("attacker", {}).get("monitor_clips"),
                       "title": f"{row['method']} {trained_on}, {count(first['steps'], 'step')} "
                                f"(task {first['key'][:8]})",
                       **curves[first["key"]]})
    return panels


def audio_rows(results: Results, rows: list[dict]) -> list[dict]:
    """Per Table 1 row whose attacker went through the audio round trip: the row's
    method, sequence and task keys, per defence the spectrogram-domain, renderable and
    audio-domain adversarial UAR on the audio subset (mean over seeds; with one seed also
    the 95 % intervals), and the mean waveform SNR, PESQ, STOI, kept share, round-trip error
    and clipped clips. Rows without audio results are left out."""
    out = []
    extra = [{"method": f"{seq['method']}, trained through audio", "sequence": seq["label"],
              "keys": [seq["tasks"][-1]["key"]]} for seq in round_trip_sequences(results)]
    for row in rows + extra:
        entries = [a for a in (results.task_audio(k) for k in row.get("keys", [])) if a is not None]
        if not entries:
            continue
        item = {"method": row["method"], "sequence": row["sequence"], "keys": row["keys"],
                "seeds": len(entries), "against": {}}
        for d in results.defences:
            item["against"][d] = {}
            for domain in ("spectrogram", "renderable", "audio"):
                scores = [e["against"][d][domain] for e in entries if d in e["against"]]
                if not scores:
                    continue
                item["against"][d][domain] = float(np.mean([s["adversarial_uar"] for s in scores]))
                if len(scores) == 1:
                    item["against"][d][f"{domain}_ci"] = scores[0]["adversarial_uar_ci"]
        for metric in ("waveform_snr_db", "pesq_wb", "stoi", "kept", "round_trip_error", "seconds"):
            values = [e[metric] for e in entries if e.get(metric) is not None]
            item[metric] = float(np.mean(values)) if values else None
        unclipped = [err for e in entries for err, c in zip(e["per_clip"]["round_trip_error"],
                                                            e["per_clip"]["clipped_samples"]) if c == 0]
        item["round_trip_error_unclipped"] = float(np.median(unclipped)) if unclipped else None
        item["clipped_clips"] = int(sum(e["clipped_clips"] for e in entries))
        item["clips"] = entries[0]["clips"]
        item["listen"] = [dict(clip, dir=entries[0]["listen_dir"]) for clip in entries[0]["listen"]]
        out.append(item)
    return out


def audio_keys(results: Results) -> list[str]:
    """The scored tasks the audio round trip renders: every Table 1 row's (all budgets'
    primary table) and the last task of each sequence trained through audio."""
    keys = {k for row in table1(results) for k in row.get("keys", [])}
    keys |= {seq["tasks"][-1]["key"] for seq in round_trip_sequences(results)}
    return sorted(k for k in keys if k in results.tasks)


def derived_views(results: Results) -> dict:
    """The views results.json carries for readers of the file: Table 1 (primary budget),
    the lifelong grids, Fig. 3's curves (lambda as "%g") and, when any, the audio rows."""
    rows = table1(results)
    views = {"table1": rows, "lifelong_grids": lifelong_grids(results),
             "lambda_curves": {name: {f"{lam:g}": v for lam, v in c.items()}
                               for name, c in lambda_curves(results).items()}}
    audio = audio_rows(results, rows)
    return {**views, **({"audio_rows": audio} if audio else {})}
