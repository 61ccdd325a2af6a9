"""The report's "query-based black-box" section, from a query-attack record
(`experiment/query_attack.py`'s JSON, e.g. RUN/evaluation/query_attacks.json): per budget
and victim, the one-shot attacks (transfer, noise, white-box PGD: no search, one query)
beside each query attack's success at each query budget, with 95 % intervals, median
queries to success, queries sent and wall time; then, where the attacks ran from the
learned attacker's prior too, the paired difference the prior makes.

A pure function of the record: no files, no TensorFlow.
"""
from __future__ import annotations

from typing import Optional


def _cell(value: Optional[dict]) -> str:
    if not value or value["rate"] is None:
        return "—"
    low, high = value["ci"]
    return f"{value['rate']:.0%} [{low:.0%}, {high:.0%}]"


def _median(triple) -> str:
    point, low, high = (("> budget" if v is None else f"{v:g}") for v in triple)
    return point if point == low == high else f"{point} [{low}, {high}]"


def _difference(value: Optional[dict]) -> str:
    if not value:
        return "—"
    low, high = value["ci"]
    return f"{value['difference']:+.0%} [{low:+.0%}, {high:+.0%}]"


def query_section(record: dict, heading: str = "##") -> list[str]:
    """Markdown lines of the section for `record` (module doc); [] for a record with no
    budgets. `heading`: the section's Markdown heading level."""
    budgets = record.get("budgets") or {}
    if not budgets:
        return []
    n = record["queries"]
    lines = [f"{heading} Query-based black-box attacks", "",
             f"The victim is reached only through its predictions; each clip gets at most {n:,} "
             "queries (the clean clip is query 1). Success: the share of the clips the victim "
             "gets right that some query within the budget fooled (class-balanced, as UAR; 95 % "
             "bootstrap interval over clips). One-shot rows send one input per clip, without "
             "search: the prior alone, a transfer attack, noise at the budget; white-box PGD "
             "reads the victim's gradients (not black-box; the ceiling). Square Attack is "
             "score-based, HopSkipJump (HSJ) decision-based; \"+prior\": started from the learned attacker's G(x), "
             f"projected onto the budget. {len(record.get('clips', []))} seeded test clips "
             f"(seed {record.get('seed', 0)}).", ""]
    for key, block in budgets.items():
        for name, victim in block["victims"].items():
            steps = sorted({int(s) for attack in victim["attacks"].values()
                            for s in attack["success_at"]})
            lines += [f"{heading}# {name}, {block['label']}", "",
                      f"Input: {victim.get('input', '?')}; source: {victim.get('source', '?')}; "
                      f"{victim['clean_correct']} of {victim['clips']} clips right before the attack.", ""]
            header = ["attack"] + [f"success at {s:,}" for s in steps] + [
                "median queries", "queries sent", "wall s"]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for row, value in victim["one_shot"].items():
                sent = "gradients" if value.get("queries") is None else f"{value['queries']} per clip"
                lines.append("| " + " | ".join([row] + [_cell(value)] * len(steps)
                                              + ["—", sent, "—"]) + " |")
            for label, attack in victim["attacks"].items():
                cells = [_cell(attack["success_at"].get(str(s))) for s in steps]
                lines.append("| " + " | ".join([label] + cells + [
                    _median(attack["median_queries"]), f"{attack['queries_sent']:,}",
                    f"{attack['wall_seconds']:.0f}"]) + " |")
            lines.append("")
            if victim.get("paired_prior"):
                lines += ["Paired, the same clips with and without the prior (success with minus "
                          "without; clips that needed fewer / more / as many queries):", ""]
                for attack, paired in victim["paired_prior"].items():
                    diffs = "; ".join(f"at {int(s):,}: {_difference(v)}"
                                      for s, v in paired["difference_at"].items())
                    lines.append(f"- {attack}: {diffs}; fewer {paired['fewer']}, more "
                                 f"{paired['more']}, same {paired['same']}")
                lines.append("")
            if victim.get("rest"):
                rest = victim["rest"]
                lines += [f"Through REST: {rest['requests']:,} requests, "
                          f"{rest['instances_posted']:,} instances posted (retries included).", ""]
    return lines
