"""From evaluation results to the paper's Table 1, its Fig. 2 and Fig. 3, and report.md.

Table 1's rows are defined in `protocol.py`; each is read off one trained task, under one
budget (a run can hold the bounded protocol and the paper's unbounded one: each gets its
own Table 1). Lifelong rows use the lambda the one lambda rule chose for their sweep
(`protocol.lambda_objective`, via `evaluate.lambda_choices`). With several seeds a cell is
mean +- std over seeds; with one, the adversarial UAR with its 95 % interval.
"""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from tfadvser.config import DEFENCE_NAMES, Budget
from tfadvser.evaluation.statistics import RESAMPLES, resolution
from tfadvser.experiment.scan_report import scan_section
from tfadvser.experiment.findings import attack_table_head, markdown as findings_markdown
from tfadvser.experiment import continual_report
from tfadvser.experiment.protocol import NAMES, ROWS, Row
from tfadvser.experiment.robustness_report import robustness_section
from tfadvser.runtime.files import write_bytes, write_json, write_text
from tfadvser.experiment.wording import count, turned_on_by

def budgets_in(results: dict) -> list[str]:
    """The budget keys of the run's sequences (`config.Budget.key`): bounded ones first
    (the product's protocol), then "unbounded" (the paper's)."""
    keys = {Budget(**seq.get("budget", {})).key for seq in results["sequences"]}
    return sorted(keys, key=lambda k: (k == "unbounded", k))


def primary_budget(results: dict) -> Optional[str]:
    """The budget whose Table 1 the report leads with: the first of `budgets_in`."""
    budgets = budgets_in(results)
    return budgets[0] if budgets else None


def _candidates(row: Row, sequences: list[dict], budget: str,
                kind: str = "atrous") -> list[tuple[dict, dict]]:
    """(sequence, task) pairs that hold this row's attacker under `budget`, with generator
    `kind` (atrous or universal)."""
    found = []
    for seq in sequences:
        if seq["attacker"].get("round_trip"):  # not the paper's attacker: reported apart
            continue
        if seq["attacker"].get("generator", "atrous") != kind:
            continue
        if seq.get("regulariser") not in (None, "ewc"):  # continual_report.py's, not the paper's
            continue
        if Budget(**seq.get("budget", {})).key != budget:
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


def _scored(results: dict, key: str, defence: str, split: str) -> Optional[dict]:
    task = results["tasks"].get(key)
    if task is None or split not in task or defence not in task[split]["against"]:
        return None
    return task[split]["against"][defence]


def _adv(results: dict, key: str, defence: str, split: str) -> Optional[float]:
    scored = _scored(results, key, defence, split)
    return None if scored is None else scored["adversarial_uar"]


def _by_lambda(row: Row, results: dict, budget: str, kind: str = "atrous") -> dict[float, dict[int, str]]:
    """lambda -> seed -> task key (lambda 0 for rows without EWC)."""
    table = defaultdict(dict)
    for seq, task in _candidates(row, results["sequences"], budget, kind):
        if task["key"] in results["tasks"]:
            table[float(task["ewc_lambda"])][seq["attacker"]["seed"]] = task["key"]
    return table


def _chosen(row: Row, results: dict, budget: str, kind: str = "atrous") -> dict[int, str]:
    """seed -> task key of a row: for lifelong rows, the lambda `protocol.lambda_objective`
    chose for the row's sweep (`evaluate.lambda_choices`)."""
    keys = {}
    for seq, task in _candidates(row, results["sequences"], budget, kind):
        if task["key"] not in results["tasks"]:
            continue
        if row.method == "Lifelong":
            choice = results.get("lambda_choice", {}).get(seq.get("sweep"), {}).get("lambda")
            if choice is None or float(seq["ewc_lambda"]) != choice:
                continue
        keys[seq["attacker"]["seed"]] = task["key"]
    return keys


def table1(results: dict, budget: Optional[str] = None) -> list[dict]:
    """Table 1's rows (`protocol.ROWS`) under one budget (default `primary_budget`) from
    `evaluate_run` results: per row the chosen lambda, the seeds and task keys, and per
    "defence/split" cell the adversarial UAR's mean and std over seeds (fractions), with one
    seed also its 95 % interval and the matched-noise UAR; rows without an attacker have no
    cells."""
    budget = budget or primary_budget(results)
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
                (float(t["ewc_lambda"]) for seq in results["sequences"] for t in seq["tasks"]
                 if t["key"] in keys.values()), None)
            entry.update(seeds=len(keys), keys=[keys[s] for s in sorted(keys)],
                         **({"lambda": lam} if row.method == "Lifelong" else {}))
            for d in results["defences"]:
                for split in ("dev", "test"):
                    scored = [_scored(results, k, d, split) for k in entry["keys"]]
                    scored = [v for v in scored if v is not None]
                    if not scored:
                        continue
                    values = [v["adversarial_uar"] for v in scored]
                    cell = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                            "n": len(values)}
                    if len(scored) == 1:
                        cell["ci"] = scored[0]["adversarial_uar_ci"]
                    noise = [v["matched_noise"]["adversarial_uar"] for v in scored if "matched_noise" in v]
                    if noise:
                        cell["noise"] = float(np.mean(noise))
                    entry["cells"][f"{d}/{split}"] = cell
            sizes = [results["tasks"][k]["test"]["perturbation"] for k in entry["keys"]
                     if "test" in results["tasks"][k]]
            if sizes:
                entry["test_perturbation"] = {m: float(np.mean([s[m] for s in sizes])) for m in sizes[0]}
        rows.append(entry)
    return rows


def _cell(cell: Optional[dict]) -> str:
    if cell is None:
        return "n/a"
    text = f"{100 * cell['mean']:.1f}"
    if cell["n"] > 1:
        return text + f" ± {100 * cell['std']:.1f}"
    if cell.get("ci"):
        return text + f" [{100 * cell['ci'][0]:.1f}, {100 * cell['ci'][1]:.1f}]"
    return text


def _columns(results: dict) -> list[str]:
    """Table 1's defence columns: the paper's in its order, then hardened and external ones."""
    return ([d for d in DEFENCE_NAMES if d in results["defences"]]
            + [d for d in results["defences"] if d not in DEFENCE_NAMES])


def table1_markdown(rows: list[dict], results: dict) -> str:
    """Table 1 as a markdown table in percent, the clean UARs (with 95 % intervals) first."""
    names = _columns(results)
    header = "| Method | Sequence | λ | " + " | ".join(
        f"{NAMES.get(d, d)} {s}" for d in names for s in ("dev", "test")) + " |"
    lines = [header, "|" + "---|" * (3 + 2 * len(names))]
    lines.append("| Clean (no attack) | | | " + " | ".join(
        _ci(results['defences'][d][s]) for d in names for s in ("dev", "test")) + " |")
    for row in rows:
        if not row["cells"]:
            continue
        lam = f"{row['lambda']:g}" if row["lambda"] is not None else ""
        cells = [_cell(row["cells"].get(f"{d}/{s}")) for d in names for s in ("dev", "test")]
        lines.append(f"| {row['method']} | {row['sequence']} | {lam} | " + " | ".join(cells) + " |")
    missing = [f"{r['method']} {r['sequence']}" for r in rows if not r["cells"]]
    if missing:
        # The small profile trains one defence order and no 2-defence multi-task attacker
        # (config.Profile.orders, .multi_pairs).
        lines += ["", "Rows without a trained attacker in this run: " + "; ".join(missing)
                  + " (`tfadvser reproduce` with this run's --data, --out and --profile and "
                  "`--orders both --multi-pairs` trains them all)."]
    return "\n".join(lines) + "\n"


def table1_csv(rows: list[dict], results: dict) -> str:
    """Table 1 as CSV: fractions, one mean and one std column per defence and split."""
    names = _columns(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "sequence", "lambda", "seeds"] + [f"{d}_{s}_uar" for d in names for s in ("dev", "test")]
                    + [f"{d}_{s}_std" for d in names for s in ("dev", "test")])
    writer.writerow(["clean", "", "", ""] + [results["defences"][d][s]["uar"] for d in names for s in ("dev", "test")]
                    + [""] * (2 * len(names)))
    for row in rows:
        cells = [row["cells"].get(f"{d}/{s}") for d in names for s in ("dev", "test")]
        writer.writerow([row["method"], row["sequence"], row["lambda"] if row["lambda"] is not None else "",
                         row["seeds"]] + [c["mean"] if c else "" for c in cells]
                        + [c["std"] if c else "" for c in cells])
    return buffer.getvalue()


def training_panels(results: dict, rows: list[dict]) -> list[dict]:
    """The training curves (`results["training_curves"]`) behind Table 1's `rows`: for each
    row with an attacker, the first task of the sequence its first seed's task belongs to
    (the task trained from a fresh generator; transfer and lifelong rows share the
    single-task one), each once, titled by the method of the first row that reads it."""
    curves = results.get("training_curves", {})
    panels, seen = [], set()
    for row in rows:
        key = (row.get("keys") or [None])[0]
        seq = next((s for s in results["sequences"] if any(t["key"] == key for t in s["tasks"])), None)
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


def _training_section(results: dict, panels: list[dict], figures: dict) -> list[str]:
    if not panels:
        return []
    clips = {p["dev_clips"] for p in panels}
    clips = clips.pop() if len(clips) == 1 else None
    lines = ["## Attacker training: attack success against training steps", "",
             "Attack success rate [%] (clean-correct clips made wrong) of each attacker of "
             "Table 1 above (seed 0) trained from a fresh generator: on its training batches "
             "(each epoch's mean, the generator in training mode: its BatchNorm uses the batch's "
             "statistics) and on the fixed dev subset the training monitor scores"
             + (f" ({count(clips, 'clip')})" if clips else "") + " with the generator as it "
             "stands at the end of each epoch (inference mode). A training curve that rises "
             "while the dev curve stays flat points to an attacker fitting its training clips "
             "rather than speakers it has not heard; both flat, to one that does not fit at "
             "this budget.", "",
             "| attacker task | training batches: last (max) | dev subset: last (max) |",
             "|---|---|---|"]
    for panel in panels:
        dev = "; ".join(f"{NAMES.get(d, d)} {_last_and_max(points)}"
                        for d, points in panel["dev_subset"].items()) or "n/a"
        lines.append(f"| {panel['title']} | {_last_and_max(panel['train'])} | {dev} |")
    lines.append("")
    if "training" in figures:
        lines += [f"![attack success against training steps]({figures['training']})", ""]
    return lines


def _last_and_max(points: list) -> str:
    """A curve's last value and its maximum, in %: "6.2 (6.2)"; "n/a" for no points."""
    if not points:
        return "n/a"
    return f"{100 * points[-1][1]:.1f} ({100 * max(p[1] for p in points):.1f})"


def lifelong_grids(results: dict) -> list[dict]:
    """For each lifelong sequence (and seed): adversarial UAR of the attacker after task k
    against defence j, dev and test."""
    grids = []
    for seq in results["sequences"]:
        if seq["method"] != "lifelong":
            continue
        grid = {"label": seq["label"], "lambda": seq["ewc_lambda"], "seed": seq["attacker"]["seed"],
                "after_task": []}
        for task in seq["tasks"]:
            grid["after_task"].append({
                "task": task["index"], "trained_on": task["defences"],
                **{s: {d: _adv(results, task["key"], d, s) for d in results["defences"]}
                   for s in ("dev", "test")}})
        grids.append(grid)
    return grids


def lambda_curves(results: dict) -> dict[str, dict]:
    """Fig. 3 data: per lifelong row, lambda -> dev adversarial UAR per defence (mean over seeds)."""
    curves = {}
    for row in ROWS:
        if row.method != "Lifelong":
            continue
        options = _by_lambda(row, results, primary_budget(results))
        curves[row.name] = {
            lam: {d: float(np.mean([v for v in (_adv(results, k, d, "dev") for k in keys.values())
                                    if v is not None] or [np.nan]))
                  for d in results["defences"]}
            for lam, keys in sorted(options.items())}
    return curves


def round_trip_sequences(results: dict) -> list[dict]:
    """Sequences trained through the audio round trip (`--round-trip`); not Table 1's."""
    return [seq for seq in results["sequences"] if seq["attacker"].get("round_trip")]


def audio_rows(results: dict, rows: list[dict]) -> list[dict]:
    """Per Table 1 row whose attacker went through the audio round trip: the row's
    method, sequence and task keys, per defence the spectrogram-domain, renderable and
    audio-domain adversarial UAR on the audio subset (mean over seeds; with one seed also
    the 95 % intervals), and the mean waveform SNR, PESQ, STOI, kept share, round-trip error
    and clipped clips. Rows without audio results are left out."""
    out = []
    extra = [{"method": f"{seq['method']}, trained through audio", "sequence": seq["label"],
              "keys": [seq["tasks"][-1]["key"]]} for seq in round_trip_sequences(results)]
    for row in rows + extra:
        entries = [results["tasks"][k]["audio"] for k in row.get("keys", [])
                   if "audio" in results["tasks"].get(k, {})]
        if not entries:
            continue
        item = {"method": row["method"], "sequence": row["sequence"], "keys": row["keys"],
                "seeds": len(entries), "against": {}}
        for d in results["defences"]:
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


def _audio_section(results: dict, rows: list[dict]) -> list[str]:
    """report.md's audio round-trip table (`audio_rows`)."""
    audio = results.get("audio")
    if not audio:
        return ["## Audio round trip", "", "Not run (audio clips set to 0); "
                + turned_on_by("--audio-clips", "N") + " with N > 0 runs it.", ""]
    names = list(results["defences"])
    lines = ["## Audio round trip: the attacks rendered as sound, re-extracted and re-scored", "",
             f"{count(audio['clips'], 'test clip')} (seeded subset, seed {audio['seed']}; the same clips for "
             "every attacker) per Table 1 attacker. Each perturbation is rendered as a waveform "
             "(STFT gain from the mel bands, clean phase, overlap-add inverse; "
             "`tfadvser/data/rendering.py`), clipped to [-1, 1], re-extracted with `prepare`'s "
             "features and scored again. Cells: adversarial UAR [%] in the spectrogram domain → "
             "after the round trip (95 % interval of the latter with one seed). Clean UAR on the "
             "re-extracted clean audio: " + ", ".join(
                 f"{NAMES.get(d, d)} {_ci(audio['clean'][d]['audio'])}" for d in names
                 if d in audio["clean"]) + ".", "",
             "| Method | Sequence | " + " | ".join(f"{NAMES.get(d, d)} spec. → audio" for d in names)
             + " | waveform SNR [dB] | PESQ | STOI | kept | error [nats] | clipped |",
             "|---|---|" + "---|" * (len(names) + 6)]
    for item in audio_rows(results, rows):
        cells = []
        for d in names:
            a = item["against"].get(d, {})
            if "audio" not in a:
                cells.append("n/a")
                continue
            ci = a.get("audio_ci")
            cells.append(f"{100 * a['spectrogram']:.1f} → {100 * a['audio']:.1f}"
                         + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else ""))
        lines.append(f"| {item['method']} | {item['sequence']} | " + " | ".join(cells)
                     + f" | {_num(item['waveform_snr_db'], 1)} | {_num(item['pesq_wb'], 2)} | "
                     f"{_num(item['stoi'], 2)} | {_num(item['kept'], 2)} | "
                     f"{_num(item['round_trip_error'], 2)} | {item['clipped_clips']}/{item['clips'] * item['seeds']} |")
    lines += ["", "*kept*: the share of the intended log-Mel change the re-extracted audio shows "
              "(achieved change projected on the intended one); *error*: mean absolute difference "
              "to the intended adversarial log-Mel in nats (natural-log units), over the frames "
              "the clip has; *clipped*: clips with samples beyond ±1. Short clips are tiled into "
              "373 frames by `prepare`; audio can carry only one copy of their frames, so the "
              "perturbation of the repeats is lost (results.json also holds the *renderable* "
              "spectrogram UAR that isolates this). PESQ is wide-band P.862.2 (`pesq`), STOI "
              "is `pystoi`'s. Listen: `evaluation/audio/<task key>/`, and `report.html`.",
              "", f"Cost: {audio.get('seconds', 0):.0f} s in all ({audio['setup_seconds']:.0f} s "
              "to decode the subset and score it clean).", ""]
    return lines


def _num(value: Optional[float], digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def write_outputs(run_dir, results: dict, figure2: Optional[dict]) -> dict:
    """results.json (with the table), table1.md/.csv, figures, report.md and the
    self-contained report.html under evaluation/."""
    from tfadvser.evaluation.figures import (budget_curve_png, confusion_png, lambda_curves_png,
                                             training_curves_png, uar_against_snr_png)
    from tfadvser.experiment.html_report import render_html

    out = Path(run_dir) / "evaluation"
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    rows = table1(results)
    curves = lambda_curves(results)
    results = {**results, "table1": rows, "lifelong_grids": lifelong_grids(results),
               "lambda_curves": {name: {f"{lam:g}": v for lam, v in c.items()} for name, c in curves.items()}}
    write_json(out / "results.json", results)
    write_text(out / "table1.md", table1_markdown(rows, results))
    write_text(out / "table1.csv", table1_csv(rows, results))
    written = {}
    if any(curves.values()):
        write_bytes(figures / "fig3_lambda.png", lambda_curves_png(curves, NAMES))
        written["fig3"] = "figures/fig3_lambda.png"
    for key, base in results.get("baselines", {}).items():
        png = budget_curve_png(base["curve"], NAMES, f"budget curve ({base['label']})")
        write_bytes(figures / f"budget_curve_{key}.png", png)
        written[f"budget_curve_{key}"] = f"figures/budget_curve_{key}.png"
        _tensorboard_image(Path(run_dir) / "evaluation" / "logs", f"budget_curve/{key}", png)
    panels = training_panels(results, rows)
    if panels:
        write_bytes(figures / "training_curves.png", training_curves_png(panels, NAMES))
        written["training"] = "figures/training_curves.png"
    if figure2 is not None:
        write_bytes(figures / "fig2_spectrograms.png", figure2["png"])
        written["fig2"] = "figures/fig2_spectrograms.png"
    for name, info in results["defences"].items():
        if "confusion" in info["test"]:
            png = confusion_png(np.array(info["test"]["confusion"]), results["labels"],
                                f"{NAMES.get(name, name)}, clean test")
            write_bytes(figures / f"confusion_{name}_test.png", png)
            written[f"confusion_{name}"] = f"figures/confusion_{name}_test.png"
    audio = audio_rows(results, rows)
    if audio:
        results = {**results, "audio_rows": audio}
        write_json(out / "results.json", results)
        points = [{"snr_db": a["waveform_snr_db"],
                   "against": {d: v for d, v in a["against"].items() if "audio" in v}} for a in audio]
        clean = {d: c["audio"]["uar"] for d, c in results["audio"]["clean"].items()}
        write_bytes(figures / "uar_vs_snr.png", uar_against_snr_png(points, NAMES, clean))
        written["uar_snr"] = "figures/uar_vs_snr.png"
    report = render_report(results, rows, written, figure2, Path(run_dir))
    report += "\n" + continual_report.write(out, results, run_dir)  # continual-learning comparison
    write_text(out / "report.md", report)
    write_text(out / "report.html", render_html(report, out, audio))  # from report.md
    return {"dir": out, "figures": written, "rows": rows}


def _tensorboard_image(log_dir: Path, tag: str, png: bytes) -> None:
    """A PNG as an image summary under evaluation/logs (TensorBoard's Images tab)."""
    import tensorflow as tf

    with tf.summary.create_file_writer(str(log_dir)).as_default():
        tf.summary.image(tag, tf.image.decode_png(png, channels=4)[None], step=0)


def _time_table(results: dict, run_dir: Path) -> list[str]:
    lines = ["| stage | seconds |", "|---|---|"]
    for d, info in results["defences"].items():
        if "seconds" in info["training"]:  # external victims were not trained here
            lines.append(f"| defence {d} | {info['training']['seconds']} |")
    seen = set()
    for seq in results["sequences"]:
        for task in seq["tasks"]:
            if task["key"] in seen:
                continue
            seen.add(task["key"])
            path = run_dir / task["path"] / "task.json"
            seconds = json.loads(path.read_text())["seconds"] if path.exists() else "n/a"
            lines.append(f"| attacker task {task['key'][:8]} ({'+'.join(task['defences'])}, "
                         f"λ {task['ewc_lambda']:g}, {count(task['steps'], 'step')}) | {seconds} |")
    lines.append(f"| evaluation | {results['seconds']} |")
    if results.get("audio"):
        audio = results["audio"]
        per_task = [results["tasks"][k]["audio"]["seconds"] for k in audio["tasks"]
                    if "audio" in results["tasks"].get(k, {})]
        lines.append(f"| of which audio round trip ({count(len(per_task), 'attacker')} × {count(audio['clips'], 'clip')}; "
                     f"{np.mean(per_task) if per_task else 0:.1f} s per attacker) | {audio['seconds']} |")
    return lines


def render_report(results: dict, rows: list[dict], figures: dict, figure2: Optional[dict],
                  run_dir: Path) -> str:
    """report.md: Table 1, perturbation sizes, lifelong grids, figures, time per stage,
    configuration and versions."""
    run = results["run"]
    lines = [f"# tfadvser report: {run_dir.name or 'run'}", "",
             f"Data: `{results['data_dir']}` (fingerprint `{run['fingerprint'][:16]}`), "
             f"labels: {', '.join(results['labels'])}. Profile: `{run['profile']}`.", "",
             _budget_note(results)]
    lines += scan_section(results)  # the first table: where attacks exist (SNR₅₀)
    for budget in budgets_in(results):
        shown = rows if budget == primary_budget(results) else table1(results, budget)
        label = _budget_label(results, budget)
        lines += [f"## Table 1: adversarial UAR [%] (lower = stronger attack), {label}", "",
                  "Rows follow the paper's Table 1; the first row is each defence's clean UAR. "
                  f"Chance is {100 / len(results['labels']):.1f} %. Cells: UAR with its 95 % "
                  "interval (bootstrap over clips, stratified by class) for one seed, mean ± std "
                  "over seeds for several.", "", table1_markdown(shown, results)]
        lines += findings_markdown(results, shown, budget, figures)
    lines += _training_section(results, training_panels(results, rows), figures)
    lines += _rates_section(results, rows)
    lines += _resolution(results, rows) + _defences(results, figures)
    lines += _audio_section(results, rows)
    lines += robustness_section(results, rows)
    if "uar_snr" in figures:
        lines += [f"![adversarial UAR against waveform SNR]({figures['uar_snr']})", "",
                  "Adversarial test UAR against waveform SNR, per Table 1 attacker and defence: "
                  "hollow markers in the spectrogram domain, filled after the audio round trip; "
                  "dashed lines are the clean UARs on the re-extracted clean audio.", ""]
    lines += ["## Perturbation size on test (the paper reports none)", "",
              "| Method | Sequence | mean η | MSE | L2 per clip | L∞ | SNR [dB] |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        p = row.get("test_perturbation")
        if p:
            lines.append(f"| {row['method']} | {row['sequence']} | {p['eta_mean']:.3f} | {p['mse']:.3f} | "
                         f"{p['l2']:.1f} | {p['linf']:.3f} | {p.get('snr_db', float('nan')):.1f} |")
    lines += ["", "## Lifelong grids: adversarial dev / test UAR [%] after task k against each defence", ""]
    for grid in results["lifelong_grids"]:
        names = list(results["defences"])
        lines += [f"**{grid['label']}**", "", "| after task | " + " | ".join(NAMES.get(d, d) for d in names) + " |",
                  "|---|" + "---|" * len(names)]
        for step in grid["after_task"]:
            cells = [f"{_pct(step['dev'][d])} / {_pct(step['test'][d])}" for d in names]
            lines.append(f"| {step['task']} ({'+'.join(NAMES.get(d, d) for d in step['trained_on'])}) | "
                         + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Figures", ""]
    if "fig2" in figures:
        lines += [f"![Fig. 2]({figures['fig2']})", "", figure2["caption"], ""]
    else:
        lines += ["Fig. 2 was not drawn: no lifelong or transfer attacker to show.", ""]
    if "fig3" in figures:
        lines += [f"![Fig. 3]({figures['fig3']})", "",
                  "Fig. 3: adversarial dev UAR per defence against λ, for the four lifelong sequences.", ""]
    else:
        lines += ["Fig. 3 was not drawn: no lifelong attackers in this run.", ""]
    if results["missing"]:
        lines += ["## Missing", "", "These checkpoints were listed but not found (a partial run): "]
        lines += [f"- `{m}`" for m in results["missing"]] + [""]
    lines += ["## Time per stage", ""] + _time_table(results, run_dir) + [""]
    lines += ["## Configuration", "", "```json", json.dumps(run, indent=2), "```", "",
              "Attacker settings per sequence are in `attackers/<label>/sequence.json`; defence "
              "settings in `defences/<model>/config.json`.", "",
              "## Versions", "", "```json", json.dumps(results["versions"], indent=2), "```", ""]
    return "\n".join(lines)


def _budget_label(results: dict, budget: str) -> str:
    seq = next((s for s in results["sequences"] if Budget(**s.get("budget", {})).key == budget), None)
    return Budget(**seq["budget"]).label if seq else budget


def _budget_note(results: dict) -> str:
    return ("Budgets: a *bounded* attack (the product's protocol) is signed and within an L∞ "
            "bound in standardised log-Mel units and a per-clip SNR floor on linear mel "
            "magnitudes, by construction; the paper's *unbounded* attack adds a positive "
            "sigmoid output that nothing but its MSE term limits (`tfadvser/attack/budget.py`). "
            "Each budget gets its own Table 1, "
            + ("baselines and findings" if results.get("baselines") else "findings") + ".\n")


def _rates_section(results: dict, rows: list[dict]) -> list[str]:
    """The three "fooling rates" of Table 1's attackers on test, defined."""
    names = list(results["defences"])
    lines = ["## Attack rates on test [%]", "",
             "The field uses \"fooling rate\" for three different things; here each has its own "
             "name. *success*: of the clips the defence gets right clean, the share it gets "
             "wrong under attack; *flip*: of all clips, the share whose prediction changes; "
             "*error*: of all clips, the share predicted wrong under attack (1 − accuracy). "
             "Cells: success / flip / error.", "", *attack_table_head(names)]
    for row in rows:
        if not row.get("keys"):
            continue
        task = results["tasks"].get(row["keys"][0], {})
        if "test" not in task:
            continue
        cells = [" / ".join(f"{100 * task['test']['against'][d][r]:.1f}"
                            for r in ("success_rate", "flip_rate", "error_rate"))
                 if "flip_rate" in task["test"]["against"].get(d, {}) else "n/a" for d in names]
        lines.append(f"| {row['method']} | {row['sequence']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _resolution(results: dict, rows: list[dict]) -> list[str]:
    """What this run can resolve: split sizes, clean UARs with their 95 % intervals, the
    typical interval width of a Table 1 cell and the smallest difference it resolves."""
    lines = ["## Resolution: how precise these numbers are", "",
             "| split | clips | speakers |", "|---|---|---|"]
    for split, size in results.get("splits", {}).items():
        lines.append(f"| {split} | {size['clips']} | {size['speakers']} |")
    widths = [high - low for d in results["defences"].values() for s in ("dev", "test")
              for low, high in [d[s].get("uar_ci", (None, None))] if low is not None]
    for row in rows:
        for key in row.get("keys", []) if row.get("seeds") == 1 else []:
            for split in ("dev", "test"):
                for scored in results["tasks"][key][split]["against"].values():
                    low, high = scored.get("adversarial_uar_ci", (None, None))
                    if low is not None:
                        widths.append(high - low)
    summary = resolution(widths)
    lines += ["", "Every UAR carries a 95 % bootstrap interval over clips, stratified by class (percentile method, "
              f"{RESAMPLES} resamples, `evaluation/statistics.py`); clips of one speaker are "
              "correlated, so for new speakers the intervals are if anything too narrow."]
    if summary["typical_width"] is not None:
        lines.append(f"Over {count(summary['cells'], 'cell')} (clean UARs and single-seed Table 1 cells) "
                     f"the typical interval is {100 * summary['typical_width']:.1f} points wide "
                     f"(±{50 * summary['typical_width']:.1f}): two independent cells must differ "
                     f"by about {100 * summary['smallest_difference']:.1f} points before the "
                     "difference is significant at 95 %.")
    return lines + [""]


def _defences(results: dict, figures: dict) -> list[str]:
    """The defences as a SER researcher checks them: train/dev gap, clean UARs with
    intervals, per-class recall and confusion matrices."""
    labels = results["labels"]
    lines = ["## Defences: clean performance", "",
             "| defence | train UAR (last epoch) | dev UAR (best epoch) | gap | test UAR | best epoch "
             "| weights (SHA-256, 16 hex) |",
             "|---|---|---|---|---|---|---|"]
    for name, info in results["defences"].items():
        train = info["training"].get("final_train_metrics", {}).get("uar")
        gap = f"{100 * (train - info['dev']['uar']):.1f}" if train is not None else "n/a"
        lines.append(f"| {NAMES.get(name, name)} | {_pct(train)} | {_ci(info['dev'])} | {gap} | "
                     f"{_ci(info['test'])} | {info['training'].get('best_epoch', 'n/a')} | "
                     f"`{info.get('weights_sha256', 'n/a')}` |")
    lines += ["", "UARs in %, with 95 % intervals. Training is seeded and, on a CPU, repeatable: "
              "the same command with the same seed gives the same weights (compare the "
              "hashes across runs) and so the same clean UARs.", "",
              "Per-class recall on test [%]:", "",
              "| defence | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name, info in results["defences"].items():
        recall = info["test"]["recall"]
        lines.append(f"| {NAMES.get(name, name)} | "
                     + " | ".join(_pct(recall.get(label)) for label in labels) + " |")
    lines.append("")
    for name in results["defences"]:
        if f"confusion_{name}" in figures:
            lines += [f"![{NAMES.get(name, name)} test confusion]({figures[f'confusion_{name}']})", ""]
    return lines


def _ci(scored: dict) -> str:
    """"61.3 [55.8, 66.9]" from a scores dict with `uar` and `uar_ci` (percent)."""
    low, high = scored.get("uar_ci", (None, None))
    text = f"{100 * scored['uar']:.1f}"
    return text if low is None else f"{text} [{100 * low:.1f}, {100 * high:.1f}]"


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"
