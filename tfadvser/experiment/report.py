"""report.md and Table 1 as Markdown and CSV, rendered from the results record.

Reads only the record (`results.py`) and the rows `tables.py` selects from it (Table 1's,
per budget; each cell the adversarial UAR with its 95 % interval for one seed, mean +- std
over seeds for several), plus each attacker task's task.json for the time table. The
sections of findings, robustness and the continual comparison are rendered by their own
modules; `outputs.py` writes the files.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Optional

import numpy as np

from tfadvser.config import DEFENCE_NAMES
from tfadvser.evaluation.statistics import RESAMPLES, resolution
from tfadvser.experiment.query_report import query_section
from tfadvser.experiment.scan_report import scan_section
from tfadvser.experiment.findings import attack_table_head, markdown as findings_markdown
from tfadvser.experiment.protocol import NAMES
from tfadvser.experiment.results import SPLITS, Results
from tfadvser.experiment.robustness_report import robustness_section
from tfadvser.experiment.tables import audio_rows, lifelong_grids, table1, training_panels
from tfadvser.experiment.wording import count, turned_on_by


def _cell(cell: Optional[dict]) -> str:
    if cell is None:
        return "n/a"
    text = f"{100 * cell['mean']:.1f}"
    if cell["n"] > 1:
        return text + f" ± {100 * cell['std']:.1f}"
    if cell.get("ci"):
        return text + f" [{100 * cell['ci'][0]:.1f}, {100 * cell['ci'][1]:.1f}]"
    return text


def _columns(results: Results) -> list[str]:
    """Table 1's defence columns: the paper's in its order, then hardened and external ones."""
    return ([d for d in DEFENCE_NAMES if d in results.defences]
            + [d for d in results.defences if d not in DEFENCE_NAMES])


def table1_markdown(rows: list[dict], results: Results) -> str:
    """Table 1 as a markdown table in percent, the clean UARs (with 95 % intervals) first."""
    names = _columns(results)
    header = "| Method | Sequence | λ | " + " | ".join(
        f"{NAMES.get(d, d)} {s}" for d in names for s in SPLITS) + " |"
    lines = [header, "|" + "---|" * (3 + 2 * len(names))]
    lines.append("| Clean (no attack) | | | " + " | ".join(
        _ci(results.clean(d, s)) for d in names for s in SPLITS) + " |")
    for row in rows:
        if not row["cells"]:
            continue
        lam = f"{row['lambda']:g}" if row["lambda"] is not None else ""
        cells = [_cell(row["cells"].get(f"{d}/{s}")) for d in names for s in SPLITS]
        lines.append(f"| {row['method']} | {row['sequence']} | {lam} | " + " | ".join(cells) + " |")
    missing = [f"{r['method']} {r['sequence']}" for r in rows if not r["cells"]]
    if missing:
        # The small profile trains one defence order and no 2-defence multi-task attacker
        # (config.Profile.orders, .multi_pairs).
        lines += ["", "Rows without a trained attacker in this run: " + "; ".join(missing)
                  + " (`tfadvser reproduce` with this run's --data, --out and --profile and "
                  "`--orders both --multi-pairs` trains them all)."]
    return "\n".join(lines) + "\n"


def table1_csv(rows: list[dict], results: Results) -> str:
    """Table 1 as CSV: fractions, one mean and one std column per defence and split."""
    names = _columns(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "sequence", "lambda", "seeds"] + [f"{d}_{s}_uar" for d in names for s in SPLITS]
                    + [f"{d}_{s}_std" for d in names for s in SPLITS])
    writer.writerow(["clean", "", "", ""] + [results.clean_uar(d, s) for d in names for s in SPLITS]
                    + [""] * (2 * len(names)))
    for row in rows:
        cells = [row["cells"].get(f"{d}/{s}") for d in names for s in SPLITS]
        writer.writerow([row["method"], row["sequence"], row["lambda"] if row["lambda"] is not None else "",
                         row["seeds"]] + [c["mean"] if c else "" for c in cells]
                        + [c["std"] if c else "" for c in cells])
    return buffer.getvalue()


def _training_section(panels: list[dict], figures: dict) -> list[str]:
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


def _audio_section(results: Results, rows: list[dict]) -> list[str]:
    """report.md's audio round-trip table (`tables.audio_rows`)."""
    audio = results.audio
    if not audio:
        return ["## Audio round trip", "", "Not run (audio clips set to 0); "
                + turned_on_by("--audio-clips", "N") + " with N > 0 runs it.", ""]
    names = list(results.defences)
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


def _time_table(results: Results, run_dir: Path) -> list[str]:
    lines = ["| stage | seconds |", "|---|---|"]
    for d in results.defences:
        if "seconds" in results.training(d):  # external victims were not trained here
            lines.append(f"| defence {d} | {results.training(d)['seconds']} |")
    seen = set()
    for seq in results.sequences:
        for task in seq["tasks"]:
            if task["key"] in seen:
                continue
            seen.add(task["key"])
            path = run_dir / task["path"] / "task.json"
            seconds = json.loads(path.read_text())["seconds"] if path.exists() else "n/a"
            lines.append(f"| attacker task {task['key'][:8]} ({'+'.join(task['defences'])}, "
                         f"λ {task['ewc_lambda']:g}, {count(task['steps'], 'step')}) | {seconds} |")
    lines.append(f"| evaluation | {results.timing.seconds} |")
    if results.audio:
        audio = results.audio
        per_task = [results.task_audio(k)["seconds"] for k in audio["tasks"]
                    if results.task_audio(k) is not None]
        lines.append(f"| of which audio round trip ({count(len(per_task), 'attacker')} × {count(audio['clips'], 'clip')}; "
                     f"{np.mean(per_task) if per_task else 0:.1f} s per attacker) | {audio['seconds']} |")
    return lines


def render_report(results: Results, rows: list[dict], figures: dict, figure2: Optional[dict],
                  run_dir: Path) -> str:
    """report.md: Table 1 (`rows`: the primary budget's, `tables.table1`), perturbation
    sizes, lifelong grids, figures (name -> path under evaluation/, as `outputs.py` wrote
    them), time per stage, configuration and versions. `run_dir` names the report and
    holds the task.json files the time table reads."""
    run = results.run
    lines = [f"# tfadvser report: {run_dir.name or 'run'}", "",
             f"Data: `{results.inputs.data_dir}` (fingerprint `{run['fingerprint'][:16]}`), "
             f"labels: {', '.join(results.labels)}. Profile: `{run['profile']}`.", "",
             _budget_note(results)]
    lines += scan_section(results.scan, figures.get("scan"))  # the first table: where attacks exist
    lines += query_section(results.query) if results.query else []
    for budget in results.budgets():
        shown = rows if budget == results.primary_budget() else table1(results, budget)
        label = results.budget_label(budget)
        lines += [f"## Table 1: adversarial UAR [%] (lower = stronger attack), {label}", "",
                  "Rows follow the paper's Table 1; the first row is each defence's clean UAR. "
                  f"Chance is {100 / len(results.labels):.1f} %. Cells: UAR with its 95 % "
                  "interval (bootstrap over clips, stratified by class) for one seed, mean ± std "
                  "over seeds for several.", "", table1_markdown(shown, results)]
        lines += findings_markdown(results, shown, budget, figures)
    lines += _training_section(training_panels(results, rows), figures)
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
    for grid in lifelong_grids(results):
        names = list(results.defences)
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
    if results.missing:
        lines += ["## Missing", "", "These checkpoints were listed but not found (a partial run): "]
        lines += [f"- `{m}`" for m in results.missing] + [""]
    lines += ["## Time per stage", ""] + _time_table(results, run_dir) + [""]
    lines += ["## Configuration", "", "```json", json.dumps(run, indent=2), "```", "",
              "Attacker settings per sequence are in `attackers/<label>/sequence.json`; defence "
              "settings in `defences/<model>/config.json`.", "",
              "## Versions", "", "```json", json.dumps(results.timing.versions, indent=2), "```", ""]
    return "\n".join(lines)


def _budget_note(results: Results) -> str:
    return ("Budgets: a *bounded* attack (the product's protocol) is signed and within an L∞ "
            "bound in standardised log-Mel units and a per-clip SNR floor on linear mel "
            "magnitudes, by construction; the paper's *unbounded* attack adds a positive "
            "sigmoid output that nothing but its MSE term limits (`tfadvser/attack/budget.py`). "
            "Each budget gets its own Table 1, "
            + ("baselines and findings" if results.baselines else "findings") + ".\n")


def _rates_section(results: Results, rows: list[dict]) -> list[str]:
    """The three "fooling rates" of Table 1's attackers on test, defined."""
    names = list(results.defences)
    lines = ["## Attack rates on test [%]", "",
             "The field uses \"fooling rate\" for three different things; here each has its own "
             "name. *success*: of the clips the defence gets right clean, the share it gets "
             "wrong under attack; *flip*: of all clips, the share whose prediction changes; "
             "*error*: of all clips, the share predicted wrong under attack (1 − accuracy). "
             "Cells: success / flip / error.", "", *attack_table_head(names)]
    for row in rows:
        if not row.get("keys"):
            continue
        if not results.scored_on(row["keys"][0], "test"):
            continue
        against = results.against(row["keys"][0], "test")
        cells = [" / ".join(f"{100 * against[d][r]:.1f}"
                            for r in ("success_rate", "flip_rate", "error_rate"))
                 if "flip_rate" in against.get(d, {}) else "n/a" for d in names]
        lines.append(f"| {row['method']} | {row['sequence']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _resolution(results: Results, rows: list[dict]) -> list[str]:
    """What this run can resolve: split sizes, clean UARs with their 95 % intervals, the
    typical interval width of a Table 1 cell and the smallest difference it resolves."""
    lines = ["## Resolution: how precise these numbers are", "",
             "| split | clips | speakers |", "|---|---|---|"]
    for split, size in results.inputs.splits.items():
        lines.append(f"| {split} | {size['clips']} | {size['speakers']} |")
    widths = [high - low for d in results.defences for s in SPLITS
              for low, high in [results.clean(d, s).get("uar_ci", (None, None))] if low is not None]
    for row in rows:
        for key in row.get("keys", []) if row.get("seeds") == 1 else []:
            for split in SPLITS:
                for scored in results.against(key, split).values():
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


def _defences(results: Results, figures: dict) -> list[str]:
    """The defences as a SER researcher checks them: train/dev gap, clean UARs with
    intervals, per-class recall and confusion matrices."""
    labels = results.labels
    lines = ["## Defences: clean performance", "",
             "| defence | train UAR (last epoch) | dev UAR (best epoch) | gap | test UAR | best epoch "
             "| weights (SHA-256, 16 hex) |",
             "|---|---|---|---|---|---|---|"]
    for name, info in results.defences.items():
        train = results.training(name).get("final_train_metrics", {}).get("uar")
        gap = f"{100 * (train - results.clean_uar(name, 'dev')):.1f}" if train is not None else "n/a"
        lines.append(f"| {NAMES.get(name, name)} | {_pct(train)} | {_ci(results.clean(name, 'dev'))} | "
                     f"{gap} | {_ci(results.clean(name, 'test'))} | "
                     f"{results.training(name).get('best_epoch', 'n/a')} | "
                     f"`{info.get('weights_sha256', 'n/a')}` |")
    lines += ["", "UARs in %, with 95 % intervals. Training is seeded and, on a CPU, repeatable: "
              "the same command with the same seed gives the same weights (compare the "
              "hashes across runs) and so the same clean UARs.", "",
              "Per-class recall on test [%]:", "",
              "| defence | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name in results.defences:
        recall = results.clean(name, "test")["recall"]
        lines.append(f"| {NAMES.get(name, name)} | "
                     + " | ".join(_pct(recall.get(label)) for label in labels) + " |")
    lines.append("")
    for name in results.defences:
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
