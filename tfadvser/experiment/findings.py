"""What a run's numbers can conclude: each attacker against noise of its own size, the
baselines of its budget, and the paper's four findings as paired comparisons.

Every comparison is paired: the two attacks are scored on the same clips, and the
interval is a bootstrap over those clips stratified by class
(`evaluation.statistics.paired_difference`). A finding "holds" when the 95 % interval of
its difference excludes 0 on the side the paper claims, "does not hold" when it excludes 0
on the other side, and is "undecided" otherwise. Comparisons use seed 0's attackers (pairing
needs one attacker per side) on the test split.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tfadvser.evaluation.statistics import paired_difference, verdict
from tfadvser.experiment.protocol import CLOCKWISE, COUNTER, NAMES
from tfadvser.experiment.results import Results, budget_of
from tfadvser.experiment.wording import count

SPLIT = "test"


def _predictions(results: Results, key: Optional[str], defences, split: str = SPLIT):
    """[D, N] adversarial predictions of a task against `defences`, or None."""
    found = results.adversarial_predictions(key, defences, split)
    return None if found is None else np.array(found)


def _row_key(rows: list[dict], method: str, sequence: tuple) -> Optional[str]:
    name = " + ".join(NAMES[d] for d in sequence)
    row = next((r for r in rows if r["method"] == method and r["sequence"] == name and r.get("keys")), None)
    return row["keys"][0] if row else None


def _compare(results: Results, stronger: Optional[str], weaker: Optional[str], defences,
             claim: str) -> dict:
    """The claim "`stronger` leaves the defences less right than `weaker`", as UAR(weaker) -
    UAR(stronger) averaged over `defences` on test, with its interval and verdict."""
    a = _predictions(results, stronger, defences)
    b = _predictions(results, weaker, defences)
    if a is None or b is None:
        return {"claim": claim, "verdict": "not measured", "difference": None, "ci": None}
    result = paired_difference(results.truth(SPLIT), a, b)
    return {"claim": claim, "verdict": verdict(result["ci"], +1), **result,
            "defences": list(defences)}


def _combine(parts: list[dict]) -> str:
    verdicts = [p["verdict"] for p in parts if p["verdict"] != "not measured"]
    if not verdicts:
        return "not measured"
    if "does not hold" in verdicts:
        return "does not hold"
    return "holds" if all(v == "holds" for v in verdicts) and len(verdicts) == len(parts) else "undecided"


def paper_findings(results: Results, rows: list[dict], budget: str) -> list[dict]:
    """The paper's four findings, each per defence order, as paired comparisons on test:

    1. single-task attackers transfer worst: the single-task attacker of the first defence
       against the 3-defence multi-task, transfer and lifelong attackers, on the two
       defences it never saw;
    2. multi-task is best: the 3-defence multi-task attacker against the transfer and
       lifelong ones, over all three defences;
    3. lifelong forgets the first defence less than transfer: on the first defence;
    4. a larger lambda keeps more of the first defence: the largest against the smallest
       lambda of the sweep, on the first defence.
    """
    out = []
    for order in (CLOCKWISE, COUNTER):
        title = " → ".join(NAMES[d] for d in order)
        single = _row_key(rows, "Single-task", order[:1])
        # Multi-task learning trains on all three at once: one attacker for both orders.
        multi = _row_key(rows, "Multi-task", CLOCKWISE)
        transfer = _row_key(rows, "Transfer", order)
        lifelong = _row_key(rows, "Lifelong", order)
        if single is None and transfer is None and lifelong is None:
            continue  # an order the run did not train (`reproduce --orders`)
        unseen = order[1:]
        parts = [_compare(results, other, single, unseen, f"{method} beats single-task on {', '.join(NAMES[d] for d in unseen)}")
                 for method, other in (("multi-task", multi), ("transfer", transfer), ("lifelong", lifelong))]
        out.append({"finding": 1, "order": title, "statement": "single-task attackers transfer worst",
                    "verdict": _combine(parts), "parts": parts})
        parts = [_compare(results, multi, other, order, f"multi-task beats {method} on all three")
                 for method, other in (("transfer", transfer), ("lifelong", lifelong))]
        out.append({"finding": 2, "order": title, "statement": "multi-task learning attacks best",
                    "verdict": _combine(parts), "parts": parts})
        parts = [_compare(results, lifelong, transfer, order[:1],
                          f"lifelong beats transfer on {NAMES[order[0]]} after the last task")]
        out.append({"finding": 3, "order": title,
                    "statement": "lifelong learning forgets the first defence less than transfer",
                    "verdict": _combine(parts), "parts": parts})
        sweep = [seq for seq in results.sequences if seq["method"] == "lifelong"
                 and tuple(seq["defences"]) == order and seq["attacker"]["seed"] == 0
                 and budget_of(seq).key == budget]
        if len(sweep) >= 2:
            sweep.sort(key=lambda seq: seq["ewc_lambda"])
            low, high = sweep[0], sweep[-1]
            parts = [_compare(results, high["tasks"][-1]["key"], low["tasks"][-1]["key"], order[:1],
                              f"λ {high['ewc_lambda']:g} beats λ {low['ewc_lambda']:g} on {NAMES[order[0]]}")]
        else:
            parts = [{"claim": "needs a lambda sweep", "verdict": "not measured", "difference": None, "ci": None}]
        out.append({"finding": 4, "order": title,
                    "statement": "a larger λ keeps more of the first defence",
                    "verdict": _combine(parts), "parts": parts})
    return out


def attack_table_head(names: list[str]) -> list[str]:
    """The head of a markdown table with a row per attacker and a column per defence."""
    return ["| Method | Sequence | " + " | ".join(NAMES.get(d, d) for d in names) + " |",
            "|---|---|" + "---|" * len(names)]


def noise_comparisons(results: Results, rows: list[dict]) -> list[dict]:
    """Per Table 1 row (seed 0) and defence: the attacker's adversarial UAR on test, that of
    noise matched to its perturbation (same per-clip L2 and L-infinity), and the paired
    difference noise - attacker with its interval ("beats noise" when it excludes 0 above)."""
    out = []
    truth = results.truth(SPLIT)
    for row in rows:
        if not row.get("keys") or not results.scored_on(row["keys"][0], SPLIT):
            continue
        item = {"method": row["method"], "sequence": row["sequence"], "against": {}}
        for d, scored in results.against(row["keys"][0], SPLIT).items():
            if "matched_noise" not in scored:
                continue
            diff = paired_difference(truth, scored["predictions"], scored["matched_noise"]["predictions"])
            item["against"][d] = {"attack": scored["adversarial_uar"],
                                  "noise": scored["matched_noise"]["adversarial_uar"],
                                  **diff, "verdict": verdict(diff["ci"], +1)}
        out.append(item)
    return out


def _pct_ci(value, ci) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def markdown(results: Results, rows: list[dict], budget: str, figures: dict) -> list[str]:
    """report.md's sections on the budget: noise comparisons, baselines, findings, curve."""
    names = list(results.defences)
    label = results.budget(budget).label
    lines = [f"## Each attacker against noise of its own size ({label}, test)", "",
             "Noise matched to the attacker: each clip's own perturbation values moved to random "
             "positions with random signs (the same per-clip L2 and L∞, no structure). Cells: "
             "adversarial UAR [%] attacker / noise, then the paired difference noise − attacker "
             "in UAR points with its 95 % interval (bootstrap over clips, stratified by class); "
             "**bold** where the attacker beats its noise.", "", *attack_table_head(names)]
    for item in noise_comparisons(results, rows):
        cells = []
        for d in names:
            c = item["against"].get(d)
            if c is None:
                cells.append("n/a")
                continue
            text = f"{100 * c['attack']:.1f} / {100 * c['noise']:.1f}: {_pct_ci(c['difference'], c['ci'])}"
            cells.append(f"**{text}**" if c["verdict"] == "holds" else text)
        lines.append(f"| {item['method']} | {item['sequence']} | " + " | ".join(cells) + " |")
    lines.append("")
    base = results.baseline(budget)
    if base:
        lines += _baseline_lines(base, names)
    if f"budget_curve_{budget}" in figures:
        curve = base["curve"]
        lines += [f"![budget curve]({figures[f'budget_curve_{budget}']})", "",
                  f"Budget curve on {count(curve['clips'], 'seeded test clip')}: adversarial UAR against the "
                  "perturbation's mean SNR, per defence, for noise at ¼, 1 and 4× the budget's ε, PGD "
                  "(white-box and transferred) at the budget and at 4× its ε "
                  f"and for the trained attacker ({curve['attacker'] or 'none'}) scaled down to "
                  "⅛-1× (it cannot exceed its budget). Dashed: clean UAR.", ""]
    lines += [f"## The paper's findings, tested ({label})", "",
              "Paired comparisons of seed 0's attackers on the same test clips; a difference is "
              "in UAR points, positive when the paper's claim goes the right way. *holds*: the "
              "95 % interval excludes 0 on the claimed side; *does not hold*: it excludes 0 on "
              "the other side; *undecided*: it contains 0.", "",
              "| # | finding | order | verdict | comparisons |", "|---|---|---|---|---|"]
    for f in paper_findings(results, rows, budget):
        parts = "; ".join(f"{p['claim']}: " + (_pct_ci(p["difference"], p["ci"]) + f" ({p['verdict']})"
                                                if p["difference"] is not None else p["verdict"])
                          for p in f["parts"])
        lines.append(f"| {f['finding']} | {f['statement']} | {f['order']} | **{f['verdict']}** | {parts} |")
    return lines + [""]


def _baseline_lines(base: dict, names: list[str]) -> list[str]:
    lines = [f"## Baselines at the same budget ({base['label']}, test)", "",
             "Adversarial UAR [%] with 95 % intervals on "
             f"{count(base['clips'], 'seeded test clip') if 'clips' in base else 'all test clips'} "
             "(the clean row: on the same clips). *Noise at the budget*: ±ε "
             "random signs on every bin, scaled onto the SNR floor. *PGD* (ART 1.20.1, "
             "L∞, random start, 10 steps of ε/4) and *MI-FGSM* (μ = 1, 10 steps of ε/10) "
             "crafted white-box on the row's defence and scored on each column's: the diagonal "
             "is the white-box upper bound, the rest are the transfer baselines a black-box "
             "attacker must beat.", "",
             "| perturbation | " + " | ".join(NAMES.get(d, d) for d in names) + " | mean SNR [dB] |",
             "|---|" + "---|" * (len(names) + 1)]
    test = base["test"]

    def cell(scored):
        if scored is None:
            return "n/a"
        low, high = scored["adversarial_uar_ci"]
        return f"{100 * scored['adversarial_uar']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"

    lines.append("| clean | " + " | ".join(cell(_clean_on(test, d)) for d in names) + " | |")
    lines.append("| noise at the budget | " + " | ".join(cell(test["noise"].get(d)) for d in names)
                 + f" | {test['sizes']['noise']['snr_db']:.1f} |")
    for method, title in (("pgd", "PGD"), ("mi_fgsm", "MI-FGSM")):
        for source, targets in test.get(method, {}).items():
            lines.append(f"| {title} from {NAMES.get(source, source)} | "
                         + " | ".join(cell(targets.get(d)) for d in names)
                         + f" | {test['sizes'][method][source]['snr_db']:.1f} |")
    lines += ["", "Cost: " + ", ".join(f"{k} {v:.0f} s" for k, v in test["seconds"].items()) + ".", ""]
    return lines


def _clean_on(test: dict, defence: str) -> Optional[dict]:
    """A defence's clean UAR and interval on the baselines' clips (as a scores dict)."""
    noise = test["noise"].get(defence)
    if noise is None:
        return None
    return {"adversarial_uar": noise["clean_uar"], "adversarial_uar_ci": noise["clean_uar_ci"]}
