"""`tfadvser reproduce` end to end at smoke size: about 20 trained tasks, so marked slow
(run with `bash scripts/test.sh -m slow`). The default suite evaluates a smaller run in
test_attacker.py."""
import csv
import json

import pytest
from click.testing import CliRunner

from tfadvser.experiment.protocol import ROWS
from tfadvser_cli.main import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reproduced(tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("repro") / "run"
    result = run("reproduce", "--data", tiny_data, "--profile", "smoke", "--out", run_dir,
                 "--lambdas", "1e4,1e7")
    assert result.exit_code == 0, result.output
    return run_dir, result.output


def test_report_has_a_complete_table_and_both_figures(reproduced):
    run_dir, output = reproduced
    out = run_dir / "evaluation"
    assert output.strip().endswith(f"report: {out / 'report.md'}")
    table = (out / "table1.md").read_text()
    assert len(table.strip().splitlines()) == 2 + 1 + 13  # header, rule, clean row, 13 rows
    assert "n/a" not in table
    rows = list(csv.DictReader((out / "table1.csv").open()))
    assert [r["method"] for r in rows] == ["clean"] + [r.method for r in ROWS]
    assert all(0.0 <= float(r["cnn4_test_uar"]) <= 1.0 for r in rows)
    assert (out / "figures" / "fig2_spectrograms.png").stat().st_size > 1000
    assert (out / "figures" / "fig3_lambda.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    for needle in ("Table 1", "Lifelong grids", "SNR", "Time per stage", "fingerprint", "tensorflow"):
        assert needle in report


def test_results_hold_every_checkpoint_and_the_lambda_choice(reproduced):
    run_dir, _ = reproduced
    results = json.loads((run_dir / "evaluation" / "results.json").read_text())
    keys = {t["key"] for s in results["sequences"] for t in s["tasks"]}
    assert set(results["tasks"]) == keys
    # 2 single (shared with task 0), 2 x 2 transfer, 2 x 2 x 2 lifelong, 3 multi
    assert len(keys) == 2 + 4 + 8 + 3
    lifelong = [r for r in results["table1"] if r["method"] == "Lifelong"]
    assert all(r["lambda"] in (1e4, 1e7) for r in lifelong)
    assert len(results["lifelong_grids"]) == 4
    # (the non-chosen lambdas' intermediate tasks are scored on dev only)
    assert {k for k, t in results["tasks"].items() if "test" not in t} <= keys
    task = next(t for _, t in sorted(results["tasks"].items()) if "test" in t)
    for metric in ("eta_mean", "mse", "l2", "linf", "snr_db"):
        assert metric in task["test"]["perturbation"]
    assert set(task["dev"]["against"]) == {"cnn4", "vgg16", "resnet50"}


def test_rerun_reuses_everything(reproduced, tiny_data):
    run_dir, _ = reproduced
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("attackers/tasks/*/task.json")}
    result = run("evaluate", run_dir)
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in run_dir.glob("attackers/tasks/*/task.json")} == stamps


def test_bad_inputs(tmp_path, tiny_data):
    result = run("evaluate", tmp_path)
    assert result.exit_code == 1 and "is not a run folder" in result.output
    result = run("reproduce", "--data", tiny_data, "--out", tmp_path / "r", "--lambdas", "0,1e5")
    assert result.exit_code == 2 and "positive values" in result.output


def _numbers(run_dir):
    """What a reproduce computes, without timings: clean UARs, Table 1 and every task's scores."""
    results = json.loads((run_dir / "evaluation" / "results.json").read_text())
    clean = {d: [v[s]["uar"] for s in ("dev", "test")] for d, v in results["defences"].items()}
    # By sequence and position, not by key: a key hashes the defences' model files, whose
    # zip timestamps differ between two runs even when the weights are equal.
    where = {t["key"]: (seq["label"], t["index"]) for seq in results["sequences"] for t in seq["tasks"]}
    # (the intermediate tasks of lambdas the rule did not choose are scored on dev only)
    tasks = {where[key]: {s: {d: a["adversarial_uar"] for d, a in t[s]["against"].items()}
                          for s in ("dev", "test") if s in t} for key, t in results["tasks"].items()}
    sizes = {where[key]: t.get("test", t["dev"])["perturbation"] for key, t in results["tasks"].items()}
    table = [(r["method"], r["sequence"], r["lambda"], r["cells"], r["seeds"])
             for r in results["table1"]]
    return clean, tasks, sizes, table


def test_reproduce_killed_at_random_moments_ends_as_an_uninterrupted_run(reproduced, tiny_data,
                                                                         tmp_path):
    """SIGKILL and Ctrl-C (SIGINT) at seeded random moments, then a rerun to the end: the
    results equal the uninterrupted run's (training is deterministic on a CPU)."""
    import random
    import signal
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "tfadvser_cli.main", "reproduce", "--data", str(tiny_data),
               "--profile", "smoke", "--out", str(run_dir), "--lambdas", "1e4,1e7"]
    rng = random.Random(20)
    for kill in (signal.SIGKILL, signal.SIGINT, signal.SIGKILL):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(8.0, 45.0))
        if process.poll() is None:
            process.send_signal(kill)
        process.wait(timeout=300)
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _numbers(run_dir) == _numbers(reproduced[0])
