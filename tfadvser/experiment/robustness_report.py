"""report.md's robustness section: every defence's clean UAR and adversarial UAR under the
run's attackers and baselines, and each hardened defence beside the defence it was made
from (before / after adversarial training, `defence/hardening.py`).

Reads only the results record (`results.py`): the Table 1 rows' attackers (their task keys,
mean over seeds), and the baselines of each budget when the record holds them
(`Results.baselines`: budget key -> {"label", "test": {"noise": {defence: scores}, "pgd" /
"mi_fgsm": {source: {defence: scores}}}}, `experiment/baseline_scores.py`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tfadvser.experiment.protocol import NAMES
from tfadvser.experiment.results import Results
from tfadvser.experiment.wording import count


def attack_rows(results: Results, rows: list[dict]) -> list[dict]:
    """One row per attack (Table 1 attackers with a trained task, then baselines): its
    label and, per defence, the adversarial test UAR (mean over seeds) or None."""
    out = []
    for row in rows:
        keys = [k for k in row.get("keys", []) if k in results.tasks]
        if not keys:
            continue
        cells = {}
        for d in results.defences:
            values = [v for v in (results.adversarial_uar(k, d, "test") for k in keys)
                      if v is not None]
            cells[d] = float(np.mean(values)) if values else None
        out.append({"attack": f"{row['method']} {row['sequence']}", "uar": cells})
    for entry in (results.baselines or {}).values():
        test = entry.get("test", {})
        scored = [(f"noise at the budget ({entry['label']})", test.get("noise", {}))]
        for method, title in (("pgd", "PGD"), ("mi_fgsm", "MI-FGSM")):
            scored += [(f"{title} from {NAMES.get(source, source)} ({entry['label']})", targets)
                       for source, targets in test.get(method, {}).items()]
        # The baselines run on a seeded subset of test clips: their clean UAR on it, too.
        clean = {d: s["clean_uar"] for d, s in test.get("noise", {}).items()}
        for label, targets in scored:
            out.append({"attack": label, "uar": {d: targets[d]["adversarial_uar"] if d in targets else None
                                                 for d in results.defences},
                        "subset": {"clips": entry.get("clips"), "label": entry["label"], "clean": clean}})
    return out


def hardening_pairs(results: Results, attacks: list[dict]) -> list[dict]:
    """Per hardened defence: its base, recipe, clean test UAR before and after, and the
    mean adversarial test UAR over the attacks scored against both, before and after."""
    pairs = []
    for name in results.defences:
        if results.kind(name) != "hardened":
            continue
        base = results.training(name).get("base")
        if base not in results.defences:
            continue
        both = [a["uar"] for a in attacks
                if a["uar"].get(base) is not None and a["uar"].get(name) is not None]
        pairs.append({
            "hardened": name, "base": base, "recipe": results.training(name).get("hardening", {}),
            "clean_before": results.clean_uar(base, "test"),
            "clean_after": results.clean_uar(name, "test"), "attacks": len(both),
            "adversarial_before": float(np.mean([u[base] for u in both])) if both else None,
            "adversarial_after": float(np.mean([u[name] for u in both])) if both else None})
    return pairs


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def robustness_section(results: Results, rows: list[dict]) -> list[str]:
    """The section's markdown lines (module doc)."""
    names = list(results.defences)
    attacks = attack_rows(results, rows)
    label = {d: NAMES.get(d, d) + (" (external)" if results.kind(d) == "external" else "")
             for d in names}
    lines = ["## Robustness: clean and adversarial test UAR [%] per defence", "",
             "Every defence of the run, hardened ones (`train defence --adversarial`) and "
             "external victims (`evaluate --victim`) included, under each attack "
             "(Table 1's attackers, mean over seeds"
             + (", then the baselines" if results.baselines else "") + "). Lower "
             "adversarial UAR = less robust.", "",
             "| attack | " + " | ".join(label[d] for d in names) + " |",
             "|---|" + "---|" * len(names),
             "| none (clean) | " + " | ".join(_pct(results.clean_uar(d, "test"))
                                            for d in names) + " |"]
    subsets = set()
    for attack in attacks:
        subset = attack.get("subset")
        if subset and subset["label"] not in subsets:  # before the first baseline of a budget
            subsets.add(subset["label"])
            lines.append(f"| none (clean, on the baselines' {count(subset['clips'], 'clip')}; {subset['label']}) | "
                         + " | ".join(_pct(subset["clean"].get(d)) for d in names) + " |")
        lines.append(f"| {attack['attack']} | " + " | ".join(_pct(attack["uar"].get(d))
                                                           for d in names) + " |")
    pairs = hardening_pairs(results, attacks)
    if pairs:
        lines += ["", "Adversarial training, before → after (test UAR [%]; adversarial: mean over "
                  "the attacks above that were scored against both):", "",
                  "| hardened defence | from | perturbations | ratio | steps | clean | adversarial |",
                  "|---|---|---|---|---|---|---|"]
        for p in pairs:
            recipe = p["recipe"]
            lines.append(f"| {p['hardened']} | {NAMES.get(p['base'], p['base'])} | "
                         f"{_source(recipe.get('source', {}))} | {recipe.get('ratio', 'n/a')} | "
                         f"{recipe.get('steps', 'n/a')} | {_pct(p['clean_before'])} → "
                         f"{_pct(p['clean_after'])} | {_pct(p['adversarial_before'])} → "
                         f"{_pct(p['adversarial_after'])} ({count(p['attacks'], 'attack')}) |")
    return lines + [""]


def _source(source: dict) -> str:
    if "pgd" in source:
        return f"PGD ε {source['pgd']['epsilon']:g}, {count(source['pgd']['steps'], 'step')}"
    if "attacker" in source:
        return f"attacker task {source['attacker'][:8]}"
    return "n/a"
