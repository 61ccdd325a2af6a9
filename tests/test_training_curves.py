"""Attack success against training steps: what the training monitor logs, read back
(`attack.monitor.training_curves`), and the report's section and figure built from it.
Fast: event files and results written here."""
import tensorflow as tf

from tfadvser.attack.monitor import DEV_TAG, TRAIN_SUCCESS_TAG, training_curves
from tfadvser.evaluation.figures import training_curves_png
from tfadvser.experiment.report import _training_section
from tfadvser.experiment.results import Inputs, Results
from tfadvser.experiment.tables import training_panels


def _log(folder, values):
    with tf.summary.create_file_writer(str(folder)).as_default():
        for tag, step, value in values:
            tf.summary.scalar(tag, value, step=step)
    tf.summary.flush()


def test_curves_are_read_back_sorted_with_a_redone_step_keeping_its_last_value(tmp_path):
    logs = tmp_path / "monitor"
    cnn4, vgg16 = (DEV_TAG.format(defence=d, metric="success_rate") for d in ("cnn4", "vgg16"))
    _log(logs, [(TRAIN_SUCCESS_TAG, 30, 0.125), (cnn4, 30, 0.0), (vgg16, 30, 0.5),
                (TRAIN_SUCCESS_TAG, 60, 0.25), (cnn4, 60, 0.0625),
                (DEV_TAG.format(defence="cnn4", metric="adversarial_uar"), 60, 0.75),
                ("learning_rate", 60, 0.01)])
    # a resumed task: a second event file that redoes step 60 (the later wall time wins,
    # whatever order the files' names sort in) and goes on to 90
    _log(logs, [(TRAIN_SUCCESS_TAG, 90, 0.5), (TRAIN_SUCCESS_TAG, 60, 0.375), (cnn4, 90, 0.25)])
    curves = training_curves(logs)
    assert curves["train"] == [[30, 0.125], [60, 0.375], [90, 0.5]]
    assert curves["dev_subset"] == {"cnn4": [[30, 0.0], [60, 0.0625], [90, 0.25]],
                                    "vgg16": [[30, 0.5]]}


def test_no_logs_give_empty_curves(tmp_path):
    assert training_curves(tmp_path / "absent") == {"train": [], "dev_subset": {}}
    (tmp_path / "empty").mkdir()
    assert training_curves(tmp_path / "empty") == {"train": [], "dev_subset": {}}
    # a task trained before the training-batch rate was logged: dev curves only
    _log(tmp_path / "old", [(DEV_TAG.format(defence="cnn4", metric="success_rate"), 2, 0.5)])
    assert training_curves(tmp_path / "old") == {"train": [], "dev_subset": {"cnn4": [[2, 0.5]]}}


def _results():
    first = {"key": "aaaa1111bbbb2222", "defences": ["cnn4"], "steps": 120}
    multi = {"key": "cccc3333dddd4444", "defences": ["cnn4", "vgg16"], "steps": 120}
    attacker = {"monitor_clips": 48}
    sequences = [
        {"method": "single", "tasks": [first], "attacker": attacker},
        {"method": "transfer", "attacker": attacker,
         "tasks": [first, {"key": "eeee5555ffff6666", "defences": ["vgg16"], "steps": 30}]},
        {"method": "multi", "tasks": [multi], "attacker": attacker}]
    curves = {first["key"]: {"train": [[30, 0.0], [60, 0.03125], [120, 0.0625]],
                             "dev_subset": {"cnn4": [[30, 0.0], [60, 0.0], [120, 0.0]]}},
              multi["key"]: {"train": [], "dev_subset": {"cnn4": [[120, 0.25]], "vgg16": [[120, 0.125]]}}}
    rows = [{"method": "Single-task", "keys": ["aaaa1111bbbb2222"]},
            {"method": "Transfer", "keys": ["eeee5555ffff6666"]},  # shares the single-task first task
            {"method": "Multi-task", "keys": ["cccc3333dddd4444"]},
            {"method": "Lifelong", "cells": {}}]  # no attacker trained
    return Results(inputs=Inputs(sequences=tuple(sequences)), training_curves=curves), rows


def test_report_section_shows_each_first_task_once():
    results, rows = _results()
    panels = training_panels(results, rows)
    assert [p["key"] for p in panels] == ["aaaa1111bbbb2222", "cccc3333dddd4444"]
    assert panels[1]["title"] == "Multi-task CNN-4 + VGG-16, 120 steps (task cccc3333)"
    lines = _training_section(panels, {"training": "figures/training_curves.png"})
    assert "(48 clips)" in lines[2]
    assert lines[6] == "| Single-task CNN-4, 120 steps (task aaaa1111) | 6.2 (6.2) | CNN-4 0.0 (0.0) |"
    assert lines[7] == ("| Multi-task CNN-4 + VGG-16, 120 steps (task cccc3333) | n/a | "
                        "CNN-4 25.0 (25.0); VGG-16 12.5 (12.5) |")
    assert lines[-2] == "![attack success against training steps](figures/training_curves.png)"
    png = training_curves_png(panels, {"cnn4": "CNN-4", "vgg16": "VGG-16"})
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert _training_section([], {}) == []
