"""The results record (`experiment/results.py`): report.md rendered from a hand-made record,
the record's round trip through its dict layout, and old or foreign results.json files."""
import json

import pytest

from tfadvser.errors import TfadvserError
from tfadvser.experiment.report import render_report, table1_csv, table1_markdown
from tfadvser.experiment.results import (SCHEMA_VERSION, Inputs, LambdaChoice, Results,
                                         TaskScores, Timing)
from tfadvser.experiment.results_file import read_results, results_json, write_results
from tfadvser.experiment.tables import lifelong_grids, table1


def _scores(adv, ci, predictions, rates=(0.5, 0.5, 0.75)):
    success, flip, error = rates
    return {"adversarial_uar": adv, "adversarial_uar_ci": ci, "clean_uar": 0.75,
            "success_rate": success, "flip_rate": flip, "error_rate": error,
            "predictions": predictions}


def hand_made() -> Results:
    """One defence (CNN-4), two classes, 4 test clips; a single-task attacker (task "s0")
    and a 2-task lifelong sequence whose sweep chose lambda 10 (tasks "s0", "l1")."""
    single = {"label": "single-cnn4", "method": "single", "defences": ["cnn4"], "ewc_lambda": 0.0,
              "attacker": {"seed": 0}, "budget": {"epsilon": 0.008, "snr_db": None},
              "tasks": [{"key": "s0", "path": "tasks/s0", "index": 0, "defences": ["cnn4"],
                         "ewc_lambda": 0.0, "steps": 4}]}
    lifelong = {**single, "label": "lifelong-cnn4-vgg16-lambda10", "method": "lifelong",
                "defences": ["cnn4", "vgg16"], "ewc_lambda": 10.0, "sweep": "sweep-a",
                "tasks": single["tasks"] + [{"key": "l1", "path": "tasks/l1", "index": 1,
                                             "defences": ["vgg16"], "ewc_lambda": 10.0, "steps": 4}]}
    test = {"perturbation": {"eta_mean": 0.001, "mse": 0.0001, "l2": 2.5, "linf": 0.008,
                             "snr_db": 31.25},
            "against": {"cnn4": {**_scores(0.25, [0.0, 0.5], [1, 1, 1, 0]),
                                 "matched_noise": _scores(0.75, [0.5, 1.0], [0, 0, 1, 0])}}}
    dev = {"perturbation": test["perturbation"],
           "against": {"cnn4": _scores(0.5, [0.25, 0.75], [1, 0])}}
    return Results(
        inputs=Inputs(run={"fingerprint": "0123456789abcdef0123", "profile": "smoke"},
                      data_dir="tfrecords/tiny", labels=("ang", "hap"), sequences=(single, lifelong),
                      splits={"dev": {"clips": 2, "speakers": 1}, "test": {"clips": 4, "speakers": 2}},
                      truth={"dev": [0, 1], "test": [0, 0, 1, 1]}),
        defences={"cnn4": {"training": {"final_train_metrics": {"uar": 0.9}, "best_epoch": 3,
                                        "seconds": 12.5},
                           "weights_sha256": "abcd",
                           "dev": {"uar": 0.5, "uar_ci": [0.25, 0.75], "recall": {"ang": 1.0, "hap": 0.0},
                                   "predictions": [0, 0]},
                           "test": {"uar": 0.75, "uar_ci": [0.5, 1.0], "recall": {"ang": 1.0, "hap": 0.5},
                                    "predictions": [0, 0, 1, 0]}}},
        tasks={"s0": TaskScores(("cnn4",), "tasks/s0", single["budget"], dev=dev, test=test),
               "l1": TaskScores(("vgg16",), "tasks/l1", single["budget"], dev=dev)},
        missing=("tasks/gone/generator.keras",),
        lambda_choice={"sweep-a": LambdaChoice(10.0, "evaluation (dev)")},
        timing=Timing({"attackers": 1.5}, 42.0, {"tensorflow": "2.16.2"}))


def test_table1_and_grids_are_read_off_the_record():
    results = hand_made()
    rows = {(r["method"], r["sequence"]): r for r in table1(results)}
    single = rows[("Single-task", "CNN-4")]
    assert single["budget"] == "eps0.008" and single["keys"] == ["s0"] and single["seeds"] == 1
    assert single["cells"] == {
        "cnn4/dev": {"mean": 0.5, "std": 0.0, "n": 1, "ci": [0.25, 0.75]},
        "cnn4/test": {"mean": 0.25, "std": 0.0, "n": 1, "ci": [0.0, 0.5], "noise": 0.75}}
    assert rows[("Lifelong", "CNN-4 + VGG-16")]["lambda"] == 10.0
    assert rows[("Lifelong", "CNN-4 + VGG-16")]["keys"] == ["l1"]
    assert not rows[("Transfer", "CNN-4 + VGG-16")]["cells"]
    (grid,) = lifelong_grids(results)
    assert grid["after_task"][0]["test"] == {"cnn4": 0.25}
    assert grid["after_task"][1]["test"] == {"cnn4": None}  # l1 was not scored on test
    assert results.adversarial_uar("l1", "cnn4", "dev") == 0.5
    assert results.chosen_lambda(results.sequences[1]) == 10.0
    assert results.budget_label("eps0.008") == "L∞ ≤ 0.008"


def test_table1_holds_the_papers_attackers_only():
    import dataclasses

    results = hand_made()
    single = results.sequences[0]
    # Same method, defences, budget and seed, but another recipe or the attacker's own corpus.
    others = [{**single, "label": "single-cnn4-ce", "attacker": {"seed": 0, "losses": ["ce"]},
               "tasks": [{**single["tasks"][0], "key": "ce0"}]},
              {**single, "label": "single-cnn4-adata0123abcd", "attacker_data": {"fingerprint": "0123abcd"},
               "tasks": [{**single["tasks"][0], "key": "ad0"}]}]
    tasks = {**results.tasks, "ce0": results.tasks["s0"], "ad0": results.tasks["s0"]}
    results = dataclasses.replace(results, inputs=dataclasses.replace(
        results.inputs, sequences=(*results.sequences, *others)), tasks=tasks)
    rows = {(r["method"], r["sequence"]): r for r in table1(results)}
    assert rows[("Single-task", "CNN-4")]["keys"] == ["s0"]


def test_report_from_a_hand_made_record(tmp_path):
    results = hand_made()
    rows = table1(results)
    assert table1_markdown(rows, results).splitlines()[:4] == [
        "| Method | Sequence | λ | CNN-4 dev | CNN-4 test |",
        "|---|---|---|---|---|",
        "| Clean (no attack) | | | 50.0 [25.0, 75.0] | 75.0 [50.0, 100.0] |",
        "| Single-task | CNN-4 |  | 50.0 [25.0, 75.0] | 25.0 [0.0, 50.0] |"]
    assert table1_csv(rows, results).splitlines()[:3] == [
        "method,sequence,lambda,seeds,cnn4_dev_uar,cnn4_test_uar,cnn4_dev_std,cnn4_test_std",
        "clean,,,,0.5,0.75,,", "Single-task,CNN-4,,1,0.5,0.25,0.0,0.0"]
    lines = render_report(results, rows, {}, None, tmp_path / "myrun").splitlines()
    assert lines[0] == "# tfadvser report: myrun"
    assert lines[2] == ("Data: `tfrecords/tiny` (fingerprint `0123456789abcdef`), labels: ang, hap. "
                        "Profile: `smoke`.")
    assert "## Table 1: adversarial UAR [%] (lower = stronger attack), L∞ ≤ 0.008" in lines
    assert "| Lifelong | CNN-4 + VGG-16 | 10 | 50.0 [25.0, 75.0] | n/a |" in lines
    # success / flip / error on test, in %
    assert "| Single-task | CNN-4 | 50.0 / 50.0 / 75.0 |" in lines
    assert "| Single-task | CNN-4 | 0.001 | 0.000 | 2.5 | 0.008 | 31.2 |" in lines
    # the train/dev gap: 90 - 50
    assert "| CNN-4 | 90.0 | 50.0 [25.0, 75.0] | 40.0 | 75.0 [50.0, 100.0] | 3 | `abcd` |" in lines
    assert "| CNN-4 | 100.0 | 50.0 |" in lines  # per-class recall on test
    assert "| none (clean) | 75.0 |" in lines and "| Single-task CNN-4 | 25.0 |" in lines
    grid = lines.index("**lifelong-cnn4-vgg16-lambda10**")
    assert lines[grid + 4:grid + 6] == ["| 0 (CNN-4) | 50.0 / 25.0 |", "| 1 (VGG-16) | 50.0 / n/a |"]
    assert "- `tasks/gone/generator.keras`" in lines
    assert "| defence cnn4 | 12.5 |" in lines and "| evaluation | 42.0 |" in lines
    assert "| attacker task s0 (cnn4, λ 0, 4 steps) | n/a |" in lines  # no task.json here
    assert lines[lines.index("## Versions") + 2:lines.index("## Versions") + 6] == ["```json",
        "{", '  "tensorflow": "2.16.2"', "}"]


def test_round_trip_through_the_dict_layout(tmp_path):
    results = hand_made()
    layout = json.loads(json.dumps(results.to_dict()))  # what JSON keeps
    assert layout["schema"] == SCHEMA_VERSION
    assert layout["lambda_choice"] == {"sweep-a": {"lambda": 10.0, "source": "evaluation (dev)"}}
    assert "test" not in layout["tasks"]["l1"] and "audio" not in layout and "scan" not in layout
    assert Results.from_dict(layout) == results
    # through the file, views and all
    path = tmp_path / "run" / "evaluation" / "results.json"
    write_results(path, results)
    written = json.loads(path.read_text())
    assert [r["keys"] for r in written["table1"] if r.get("keys")] == [["s0"], ["l1"]]
    assert read_results(path) == results
    # an optional stage round-trips too, and shows up in the layout
    scanned = Results.from_dict({**layout, "scan": {"pgd": {"snr50_db": 31.0}}})
    assert scanned.scan == {"pgd": {"snr50_db": 31.0}} and scanned.to_dict()["scan"] == scanned.scan


def test_old_files_load_and_foreign_ones_are_refused_in_one_line(tmp_path):
    run = tmp_path / "runs" / "old"
    path = run / "evaluation" / "results.json"
    path.parent.mkdir(parents=True)
    # written before the schema version: the same layout, no "schema"
    old = results_json(hand_made())
    del old["schema"]
    path.write_text(json.dumps(old))
    assert read_results(path) == hand_made()
    # a file without a stage this record needs, one from a newer tfadvser, not an object
    for broken, why in (({k: v for k, v in old.items() if k != "truth"}, "'truth'"),
                        ({**old, "schema": SCHEMA_VERSION + 1}, "newer"), ([1, 2], "not an evaluation")):
        path.write_text(json.dumps(broken))
        with pytest.raises(TfadvserError) as error:
            read_results(path)
        message = str(error.value)
        assert "\n" not in message and message.startswith(str(path)) and why in message
        assert message.endswith(f"run `tfadvser evaluate {run}` again to regenerate it")


def test_the_report_renders_the_scan_and_query_stages_when_present(tmp_path):
    """Both optional stages render from the record only: the SNR50 table first, then the
    query-based section (their own tests pin their lines)."""
    import dataclasses

    from test_query_report import RECORD

    results = hand_made()
    rows = table1(results)
    plain = render_report(results, rows, {}, None, tmp_path / "r")
    assert "## SNR₅₀" not in plain and "## Query-based black-box attacks" not in plain
    cell = {"snr50": 12.0, "ci": [10.0, 14.0], "clean_uar": 0.75, "target_uar": 0.625,
            "uar": [0.75, 0.5], "snr_db": [40.0, 0.0]}
    scan = {"clean": {"cnn4": []}, "clips": [0, 1], "plan": {"name": "fast", "steps": 5,
                                                              "transfer_max_db": 20.0},
            "budgets": [{"epsilon": 0.002, "snr_db": 40.0}, {"epsilon": 0.3, "snr_db": 0.0}],
            "attacks": {"PGD from cnn4": {"source": "cnn4"}},
            "snr50": {"PGD from cnn4": {"cnn4": cell}}, "comparisons": [], "seconds": 1.0}
    text = render_report(dataclasses.replace(results, scan=scan, query=RECORD), rows, {}, None,
                         tmp_path / "r")
    assert text.index("## SNR₅₀") < text.index("## Query-based black-box attacks") < text.index("## Table 1")
    assert "| PGD from CNN-4 | 12.0 [10.0, 14.0] *wb* |" in text
