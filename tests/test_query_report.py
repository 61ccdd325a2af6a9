"""The query-based black-box section of the report, from a hand-written record."""
from tfadvser.experiment.query_report import query_section

RECORD = {
    "kind": "query_attacks", "queries": 100, "seed": 0, "clips": [3, 7, 9],
    "budgets": {"eps0.032": {"label": "L∞ ≤ 0.032", "budget": {"epsilon": 0.032, "snr_db": None},
        "victims": {"cnn4": {
            "input": "log_mel_standardised", "source": "run r, defence cnn4", "clips": 3,
            "clean_correct": 2,
            "one_shot": {"transfer: single-vgg16": {"rate": 0.5, "ci": [0.0, 1.0], "queries": 1}},
            "attacks": {
                "square": {"success_at": {"10": {"rate": 0.5, "ci": [0.0, 1.0]},
                                          "100": {"rate": 1.0, "ci": [1.0, 1.0]}},
                           "median_queries": [12.0, 5.0, 30.0], "queries_sent": 44,
                           "wall_seconds": 3.2},
                "square+prior": {"success_at": {"10": {"rate": 1.0, "ci": [1.0, 1.0]},
                                                "100": {"rate": 1.0, "ci": [1.0, 1.0]}},
                                 "median_queries": [2.0, 2.0, 2.0], "queries_sent": 4,
                                 "wall_seconds": 0.4}},
            "paired_prior": {"square": {"difference_at": {"10": {"difference": 0.5, "ci": [0.0, 1.0]}},
                                        "fewer": 2, "more": 0, "same": 0}}}}}}}


def test_the_section_puts_transfer_beside_each_query_budget():
    lines = query_section(RECORD)
    assert lines[0] == "## Query-based black-box attacks"
    table = lines[lines.index("| attack | success at 10 | success at 100 | median queries | "
                              "queries sent | wall s |"):]
    assert table[2:5] == [
        "| transfer: single-vgg16 | 50% [0%, 100%] | 50% [0%, 100%] | — | 1 per clip | — |",
        "| square | 50% [0%, 100%] | 100% [100%, 100%] | 12 [5, 30] | 44 | 3 |",
        "| square+prior | 100% [100%, 100%] | 100% [100%, 100%] | 2 | 4 | 0 |"]
    assert "- square: at 10: +50% [+0%, +100%]; fewer 2, more 0, same 0" in lines
    assert "### cnn4, L∞ ≤ 0.032" in lines


def test_an_empty_record_has_no_section():
    assert query_section({"queries": 10, "budgets": {}}) == []
