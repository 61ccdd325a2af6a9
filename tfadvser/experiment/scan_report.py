"""The report's budget-scan section: SNR₅₀ of every attack x defence (`budget_scan.py`),
rendered from `results["scan"]` only."""
from __future__ import annotations

import re
from typing import Optional

import numpy as np

from tfadvser.evaluation.snr50 import format_with_interval
from tfadvser.evaluation.statistics import verdict
from tfadvser.experiment.protocol import NAMES



def defence_name(defence: str) -> str:
    """A defence as the report names it: "CNN-4", "CNN-4 seed 1" (a seed control), or as given."""
    base, _, seed = defence.partition("-seed")
    return f"{NAMES.get(base, base)} seed {seed}" if seed else NAMES.get(defence, defence)


def _attack_name(name: str) -> str:
    """"PGD from CNN-4", "ensemble MI-FGSM (all but CNN-4 seed 1)": defences by their names."""
    name = re.sub(r"\(all but ([^)]+)\)", lambda m: f"(all but {defence_name(m[1])})", name)
    return re.sub(r"from (\S+)$", lambda m: f"from {defence_name(m[1])}", name)


def scan_curves(scan) -> dict:
    """The scan's curves of UAR against measured SNR per defence, in the budget curve's form
    (`figures.budget_curve_png`): {"clean": {defence: uar}, "curves": {line: {defence:
    [[snr_db, uar], ...]}}}. Lines: noise, PGD white-box, PGD and MI-FGSM transferred (at each
    point the mean SNR and UAR over the sources other than the defence), each learned
    attacker."""
    summary = scan["snr50"]
    targets = list(scan["clean"])
    clean = {t: next(cells[t]["clean_uar"] for cells in summary.values() if t in cells)
             for t in targets}
    curves: dict = {}

    def points(cell):
        return [[s, u] for s, u in zip(cell["snr_db"], cell["uar"])]

    for name, cells in summary.items():
        source = scan["attacks"][name].get("source")
        if name == "noise" or name.startswith("learned: "):
            curves[name] = {t: points(cell) for t, cell in cells.items()}
        elif name.startswith("PGD from "):
            for t, cell in cells.items():
                if t == source:
                    curves.setdefault("PGD white-box", {})[t] = points(cell)
    for method in ("PGD", "MI-FGSM"):
        line = {}
        for t in targets:
            cells = [summary[n][t] for n in summary if n.startswith(f"{method} from ")
                     and scan["attacks"][n]["source"] != t and t in summary[n]]
            if cells:
                line[t] = [[float(np.mean(c)), float(np.mean(u))] for c, u in zip(
                    zip(*(c["snr_db"] for c in cells)), zip(*(c["uar"] for c in cells)))]
        if line:
            curves[f"{method} transferred"] = line
    return {"clean": clean, "curves": curves}


def scan_section(scan, figure: Optional[str] = None) -> list[str]:
    """Markdown lines of the SNR₅₀ table, its clean reference, the paired comparisons of the
    learned attackers, and what the scan ran, from a run's scan (`Results.scan`, as
    `budget_scan.scan_stage` wrote it), with the scan's `figure` (a path under evaluation/,
    `scan_curves` drawn) when given; [] when the run has none."""
    if not scan:
        return []
    targets = list(scan["clean"])
    summary = scan["snr50"]
    plan = scan["plan"]
    lines = ["## SNR₅₀: how quiet each attack can be and still work [dB] (higher = quieter successful attack)",
             "",
             "Each cell: the SNR at which the attack takes the column's defence halfway from its clean "
             "UAR to chance, interpolated on the budget scan, with a 95 % bootstrap interval over "
             f"the scan's {len(scan['clips'])} seeded test clips. Censored: '> S' when already "
             "halfway at the quietest point the attack ran at, '< S' when never halfway, S that "
             "point's measured mean SNR (a point sits at or above its floor, so S can exceed the "
             "floor). *wb*: white-box (crafted on that defence); every other cell of a crafted "
             "attack is a transfer.", "",
             "| attack | " + " | ".join(defence_name(t) for t in targets) + " |",
             "|---|" + "---|" * len(targets)]
    for name, cells in sorted(summary.items(), key=lambda item: _row_order(item[0])):
        source = scan["attacks"][name].get("source")
        row = []
        for target in targets:
            cell = cells.get(target)
            if cell is None:
                row.append("")
                continue
            mark = " *wb*" if source == target else ""
            row.append(format_with_interval(cell) + mark)
        lines.append(f"| {_attack_name(name)} | " + " | ".join(row) + " |")
    first = next(iter(summary.values()))
    if figure:
        lines += ["", f"![budget scan]({figure})", "",
                  "The scan's curves: UAR against the perturbation's mean SNR per defence; PGD and "
                  "MI-FGSM transferred are averaged over the other defences as sources. Dashed: "
                  "clean UAR."]
    lines += ["", "Clean UAR on these clips and the halfway target [%]: " + "; ".join(
        f"{defence_name(t)} {100 * first[t]['clean_uar']:.1f} → {100 * first[t]['target_uar']:.1f}"
        for t in targets if t in first) + ".", ""]
    comparisons = scan.get("comparisons") or []
    if comparisons:
        lines += ["### The paper's methods judged on SNR₅₀", "",
                  "Paired on the same clips (the same bootstrap resamples for both curves): "
                  "difference SNR₅₀(a) − SNR₅₀(b) [dB], positive when a is the quieter successful "
                  "attack; 'holds' when the interval excludes 0 on that side.", "",
                  "| a | b | defence | difference [dB] | verdict |", "|---|---|---|---|---|"]
        for c in comparisons:
            low, high = c["ci"]
            judged = verdict(c["ci"], +1) if low == low and high == high else "undecided"
            lines.append(f"| {c['a']} | {c['b']} | {defence_name(c['target'])} | "
                         f"{_signed(c['difference'])} [{_signed(low)}, {_signed(high)}] | {judged} |")
        lines.append("")
    budgets = ", ".join(f"{b['snr_db']:g} dB (L∞ {b['epsilon']:g})" for b in scan["budgets"])
    lines += [f"Scan plan *{plan['name']}*: budgets {budgets}; each point's L∞ bound is the one at "
              "which ±ε noise has that median SNR on these clips, with the SNR as a per-clip floor. "
              f"PGD / MI-FGSM / DI-FGSM take {plan['steps']} iterations"
              + (f" (DI-FGSM crafted on {', '.join(defence_name(d) for d in plan['di_sources'])} only)"
                 if plan.get("di_sources") else "") + "; MI-FGSM, DI-FGSM and the "
              f"ensemble run at {plan['transfer_max_db']:g} dB and louder; PGD, noise and the "
              "learned attackers at every point. A learned attacker's perturbation is its trained "
              "direction scaled to each point's bound, not an attacker retrained per budget. "
              f"`tfadvser evaluate RUN --scan full` scans 7 points on 96 clips. {scan['seconds']:.0f} s.", ""]
    return lines


ORDER = ("noise", "PGD", "MI-FGSM", "DI-FGSM", "ensemble", "learned")


def _row_order(name: str) -> tuple:
    """Noise, then the crafted attacks by method, then the learned attackers; stable within."""
    return (next((i for i, prefix in enumerate(ORDER) if name.startswith(prefix)), len(ORDER)),)


def _signed(value: float) -> str:
    if value != value:
        return "n/a"
    if value in (float("inf"), float("-inf")):
        return "+∞" if value > 0 else "−∞"
    return f"{value:+.1f}"

