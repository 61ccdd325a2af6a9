"""Evaluate every attacker checkpoint of a run against every defence, on dev and test.

Inference only, in batches of `scoring.EVAL_BATCH`, once per trained task (tasks shared by
several methods are scored once). Fills the results record (`results.py`) in named stages
and writes it once, as `runs/NAME/evaluation/results.json`; `outputs.py` renders it into
Table 1, the figures, report.md and report.html (`outputs.evaluate_and_report` does both).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Optional, Sequence

import keras
import numpy as np

from tfadvser.attack.attacker import generator_for
from tfadvser.attack.tasks import GENERATOR_FILE, recorded_config, sequences_of, sweep_label
from tfadvser.attack.baselines import matched_noise
from tfadvser.attack.monitor import training_curves
from tfadvser.config import DEFENCE_NAMES
from tfadvser.data.dataset import make_dataset
from tfadvser.data.audio import UnreadableAudio
from tfadvser.data.folder import load_data
from tfadvser.defence.training import RESULTS_FILE, defence_dir
from tfadvser.defence.victims import (VictimSpec, WaveformSplits, check_pins, control_defences,
                                      hardened_defences, load_defence, victims_for_run,
                                      weights_digest)
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.round_trip import (AUDIO_CLIPS, LISTEN_CLIPS, SEED, AudioSubset,
                                            clean_scores, score_task)
from tfadvser.evaluation.scoring import (EVAL_BATCH, classification_scores,
                                         labels_of, perturb, perturbation_sizes, predictions)
from tfadvser.experiment.results import (SPLITS, Inputs, LambdaChoice, Results, TaskScores,
                                         Timing, budget_of, untrained_id)
from tfadvser.experiment.query_attack import QUERY_FILE
from tfadvser.experiment.results_file import RESULTS_FILE as RESULTS_JSON, write_results
from tfadvser.experiment.tables import audio_keys, compared, table1
from tfadvser.runs import load_run
from tfadvser.runtime.files import read_json
from tfadvser.experiment.baseline_scores import scores_with_predictions
from tfadvser.runtime.inference import GeneratorSlot, inference
from tfadvser.runtime.versions import library_versions


def lambda_choices(run_dir: Path, sequences: Sequence[dict], dev_uar) -> dict[str, LambdaChoice]:
    """{sweep label: `LambdaChoice`} for every lifelong sweep of the run: the lambda its
    tuner chose (best.json, by `protocol.lambda_objective`), else the same rule applied to
    `dev_uar(task key, defence)` of each lambda's last task ("evaluation (dev)")."""
    from tfadvser.experiment.protocol import choose_lambda, lambda_objective

    chosen = {}
    for best_file in sorted(Path(run_dir).glob("tuning/*/best.json")):
        best = read_json(best_file)
        if "sweep" in best:
            chosen[best["sweep"]] = LambdaChoice(float(best["lambda"]), str(best_file.relative_to(run_dir)))
    options: dict = {}
    for seq in sequences:
        if seq["method"] == "lifelong" and seq.get("sweep") and seq["sweep"] not in chosen:
            last = seq["tasks"][-1]["key"]
            options.setdefault(seq["sweep"], {})[float(seq["ewc_lambda"])] = lambda_objective(
                {d: dev_uar(last, d) for d in seq["defences"]})
    for sweep, objectives in options.items():
        chosen[sweep] = LambdaChoice(choose_lambda(objectives), "evaluation (dev)")
    return chosen


def untrained_predictions(sequences: Sequence[dict], data, defences: dict, batches: dict) -> dict:
    """Per-clip predictions of every defence under the untrained generator of each compared
    sequence (FWT's reference: the seeded initial weights its first task starts from, as
    `attack/training.py` builds them): `results.untrained_id` -> split -> defence -> [N] ints."""
    out = {}
    for seq in sequences:
        ident = untrained_id(seq["attacker"])
        if not compared(seq) or ident in out:
            continue
        keras.utils.set_random_seed(seq["attacker"]["seed"])
        generator = generator_for(recorded_config(seq["attacker"]), data.shape, data)
        out[ident] = {}
        for split, split_batches in batches.items():
            perturbed = perturb(generator, split_batches)
            out[ident][split] = {d: predictions(m, perturbed).tolist() for d, m in defences.items()}
    return out


def evaluate_run(run_dir, data_dir: Optional[str] = None, progress=None,
                 audio_clips: int = AUDIO_CLIPS, listen: int = LISTEN_CLIPS,
                 baselines: bool = True, victims: Sequence[VictimSpec] = (),
                 trust_code: bool = False, scan: Optional[str] = "fast") -> Results:
    """Score all defences clean and the run's attackers adversarially; write the record
    (`results.py`) to evaluation/results.json, once, and return it.

    Stages: clean (every defence on dev and test); dev (every task: the lambda rule reads
    it); the lambda choice of each lifelong sweep (`lambda_choices`); test, there also
    against noise matched to each task's own perturbation (`attack.baselines.matched_noise`;
    the findings' comparison), for every task except the non-chosen lambdas' intermediate
    tasks. Per-clip predictions are kept for paired comparisons. Then the untrained
    generators' predictions (the continual metrics' FWT reference) and the training curves
    of each sequence's first task (`attack.monitor.training_curves`). With `baselines`, each
    bounded budget of the run gets its baselines on test (`baseline_scores.py`) and, with a
    `scan` plan ("fast", "full"), the budget scan: every attack from 40 to 0 dB on every
    defence and its SNR₅₀ (`budget_scan.py`); without one (None), the older and smaller
    budget curve instead. Then the attackers of Table 1's rows go through the audio round
    trip (`evaluation/round_trip.py`) on `audio_clips` seeded test clips (0: skipped), each
    writing `listen` clips' WAVs under evaluation/audio/<task key>/.

    The defences are the run's own, its hardened ones (`defence/hardening.py`), its seed
    controls (`train defence --seed`, kind "control") and the
    external `victims` (`defence/external.py`; Keras safe mode unless `trust_code`), each a
    column of `Results.defences` and of every task's scores (external ones marked
    "kind": "external"; waveform victims are scored on the perturbation rendered as audio,
    `defence/victims.py`). White-box baselines are crafted on the run's own defences and
    scored on all. Raises TfadvserError for data that is not the run's, a run without
    defences or attackers, or a missing corpus for the audio round trip.
    """
    started = time.time()
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    data_dir = data_dir or run["data_dir"]
    data = load_data(data_dir)
    if data.fingerprint != run["fingerprint"]:
        raise TfadvserError(f"{data_dir} is not the data {run_dir} was trained on (fingerprint "
                            f"{data.fingerprint[:12]} vs {run['fingerprint'][:12]})")
    labels = list(data.labels)
    names = [d for d in DEFENCE_NAMES if (defence_dir(run_dir, d) / RESULTS_FILE).exists()]
    own = list(names)  # white-box baselines are crafted on these
    controls = control_defences(run_dir)  # `train defence --seed N`: transfer targets
    names += hardened_defences(run_dir) + controls
    if not names:
        raise TfadvserError(f"{run_dir} has no trained defences: run `tfadvser train defence "
                            f"--model all --out {run_dir} ...` first")
    sequences = sequences_of(run_dir)
    if not sequences:
        raise TfadvserError(f"{run_dir} has no trained attackers: run `tfadvser train attacker "
                            f"... --out {run_dir}` or `tfadvser reproduce` first")
    for seq in sequences:
        config = recorded_config(seq["attacker"])
        seq["budget"] = config.budget.to_dict()
        if seq["method"] == "lifelong":
            seq["sweep"] = sweep_label(seq["defences"], config, seq.get("regulariser") or "ewc")
    defences = {d: load_defence(run_dir, d, data) for d in names}
    external = victims_for_run(victims, data, names, trust_code)
    check_pins(sequences, external)  # a sequence's training target must be the same model
    waveform = {n: v for n, v in external.items() if v.is_waveform}
    defences.update({n: v for n, v in external.items() if not v.is_waveform})
    names = list(defences)
    batches = {s: list(make_dataset(data, s, EVAL_BATCH)) for s in SPLITS}
    truth = {s: labels_of(batches[s]) for s in SPLITS}
    audio_splits = WaveformSplits(data, SPLITS, truth) if waveform else None

    # Stage "clean".
    clean = {d: {s: predictions(defences[d], batches[s]) for s in SPLITS} for d in names}
    clean.update({d: {s: audio_splits.predictions(v, s) for s in SPLITS} for d, v in waveform.items()})
    inputs = Inputs(run=run, data_dir=str(data_dir), labels=tuple(labels), sequences=tuple(sequences),
                    splits={s: {"clips": int(len(truth[s])),
                                "speakers": len(data.record["speakers"][s])} for s in SPLITS},
                    truth={s: truth[s].tolist() for s in SPLITS})
    results = Results(inputs=inputs, defences=_clean_stage(run_dir, names + list(waveform), external,
                                                           defences, clean, truth, labels, controls))

    tasks = {t["key"]: (t, seq) for seq in sequences for t in seq["tasks"]}
    scored: dict[str, TaskScores] = {}
    missing: list[str] = []
    generators = GeneratorSlot()

    def score(key: str, s: str, noise: bool) -> None:
        task, seq = tasks[key]
        path = run_dir / task["path"] / GENERATOR_FILE
        if not path.exists():
            if str(path) not in missing:
                missing.append(str(path))
            return
        generator = generators.load(path)
        entry = scored.setdefault(key, TaskScores(tuple(task["defences"]), task["path"], seq["budget"]))
        perturbed = perturb(generator, batches[s])
        against = {d: scores_with_predictions(truth[s], clean[d][s],
                                              predictions(defences[d], perturbed), labels)
                   for d in names}
        if waveform:
            eta = np.concatenate([np.asarray(batch[2]) for batch in perturbed])
            against.update({d: scores_with_predictions(truth[s], clean[d][s],
                                                       audio_splits.predictions(v, s, eta), labels)
                            for d, v in waveform.items()})
        if noise:
            noisy = [(x_adv - eta + matched_noise(eta, i), y)
                     for i, (x_adv, y, eta) in enumerate(perturbed)]
            for d in names:
                matched = scores_with_predictions(truth[s], clean[d][s],
                                                  predictions(defences[d], noisy), labels)
                against[d]["matched_noise"] = {k: matched[k] for k in (
                    "adversarial_uar", "adversarial_uar_ci", "success_rate", "flip_rate",
                    "error_rate", "predictions")}
        split = {"perturbation": perturbation_sizes(perturbed, data.mean, data.std), "against": against}
        scored[key] = dataclasses.replace(entry, **{s: split})

    # Stage "dev": every task; the lambda rule reads it.
    t = time.time()
    for index, key in enumerate(sorted(tasks)):
        score(key, "dev", noise=False)
        if progress is not None:
            progress(index + 1, 2 * len(tasks))

    # Stage "λ choice" (waveform victims take no part in the rule).
    results = dataclasses.replace(results, tasks=dict(scored))
    own_columns = set(names)
    choice = lambda_choices(run_dir, sequences, lambda key, d: results.adversarial_uar(key, d, "dev")
                            if d in own_columns else None)
    # Stage "test", with matched noise: all but the intermediate tasks of lambdas not chosen
    # (their last tasks stay: the "larger lambda" finding compares lambdas on test).
    results = dataclasses.replace(results, lambda_choice=choice)
    wanted = set()
    for seq in sequences:
        lam = results.chosen_lambda(seq)
        if seq["method"] != "lifelong" or lam is None or float(seq["ewc_lambda"]) == lam:
            wanted |= {t["key"] for t in seq["tasks"]}
        else:
            wanted.add(seq["tasks"][-1]["key"])
    for index, key in enumerate(sorted(wanted)):
        if key in scored:
            score(key, "test", noise=True)
        if progress is not None:
            progress(len(tasks) + index + 1, len(tasks) + len(wanted))
    # The continual-learning metrics' forward-transfer reference (continual_report.py), on
    # the split those metrics use; attack success against training steps of every task
    # trained from a fresh generator (each sequence's first): whether an attacker fits its
    # training clips, unheard speakers, both.
    results = dataclasses.replace(
        results, tasks=dict(scored), missing=tuple(missing),
        untrained=untrained_predictions(sequences, data, defences, {"test": batches["test"]}),
        training_curves={key: training_curves(run_dir / tasks[key][0]["path"] / "logs" / "monitor")
                         for key in dict.fromkeys(seq["tasks"][0]["key"] for seq in sequences)})
    seconds = {"attackers": round(time.time() - t, 1)}

    if baselines:
        t = time.time()
        # The budget curve only without a scan: the scan covers it (noise, PGD white-box and
        # transferred, the learned attackers scaled) at more points and draws it.
        results = dataclasses.replace(results, baselines=_baselines(
            results, data, batches, truth, clean, defences, own, labels, generators, run_dir,
            curve=scan is None))
        seconds["baselines"] = round(time.time() - t, 1)
    if baselines and scan is not None:
        t = time.time()
        results = dataclasses.replace(results, scan=_scan(results, data, batches, truth, defences, own,
                                                          labels, generators, run_dir, scan))
        seconds["scan"] = round(time.time() - t, 1)
    # Stage "query": the query attacks `tfadvser attack-query --run` wrote for this run, if
    # any (they query the victims, which this evaluation does not redo).
    queried = run_dir / "evaluation" / QUERY_FILE
    if queried.exists():
        results = dataclasses.replace(results, query=read_json(queried))
    if audio_clips > 0:
        t = time.time()
        results = _audio_domain(results, run_dir, data, defences, generators, audio_clips, listen)
        seconds["audio"] = round(time.time() - t, 1)
    results = dataclasses.replace(results, timing=Timing(
        seconds, round(time.time() - started, 1), library_versions()))
    write_results(run_dir / "evaluation" / RESULTS_JSON, results)
    return results


def _clean_stage(run_dir: Path, names: list[str], external: dict, defences: dict, clean: dict,
                 truth: dict, labels: list[str], controls: Sequence[str] = ()) -> dict:
    """`Results.defences`: provenance and clean scores (with per-clip predictions) per defence."""
    out = {}
    for d in names:
        if d in external:
            out[d] = {"training": {}, "kind": "external",
                      "victim": {**external[d].spec.to_dict(), "output_used": external[d].output_kind},
                      "weights_sha256": external[d].digest}
        else:
            out[d] = {"training": read_json(defence_dir(run_dir, d) / RESULTS_FILE),
                      "weights_sha256": weights_digest(defences[d])}
            if d not in DEFENCE_NAMES:
                out[d]["kind"] = "control" if d in controls else "hardened"
        for s in SPLITS:
            out[d][s] = {**classification_scores(truth[s], clean[d][s], labels),
                         "predictions": clean[d][s].tolist()}
    return out


def _baselines(results: Results, data, batches, truth, clean, defences, sources, labels,
               generators, run_dir: Path, curve: bool = True) -> dict:
    """`Results.baselines`: budget key -> each bounded budget's noise, PGD and MI-FGSM on
    BASELINE_CLIPS seeded test clips, and (with `curve`) its budget curve on the first
    CURVE_CLIPS of them."""
    from tfadvser.experiment.baseline_scores import (BASELINE_CLIPS, CURVE_CLIPS, budget_curve,
                                                     score_budget)

    out = {}
    budgets = {budget_of(seq) for seq in results.sequences}
    for budget in sorted((b for b in budgets if b.bounded), key=lambda b: b.key):
        # On a seeded subset of test clips: each white-box pass costs a defence's forward and
        # backward 10 times per clip, and through ART's eager loop the three defences' PGD and
        # MI-FGSM on all 378 test clips took ~20 minutes on 2 cores (measured, main job).
        x = np.concatenate([np.asarray(b[0]) for b in batches["test"]])
        order = np.random.default_rng(0).permutation(len(x))
        subset = np.sort(order[:BASELINE_CLIPS])
        sub_batches = [(x[subset[i:i + EVAL_BATCH]], truth["test"][subset[i:i + EVAL_BATCH]])
                       for i in range(0, len(subset), EVAL_BATCH)]
        entry = {"budget": budget.to_dict(), "label": budget.label, "splits": ["test"],
                 "clips": int(len(subset)), "seed": 0}
        crafted: dict = {}
        entry["test"] = score_budget(budget, sub_batches, truth["test"][subset],
                                     {d: clean[d]["test"][subset] for d in defences}, defences,
                                     labels, data.mean, data.std, sources=sources, crafted=crafted)
        out[budget.key] = entry
        if not curve:
            continue
        pick = np.sort(order[:CURVE_CLIPS])  # within the subset
        at_budget = {s: eta[np.searchsorted(subset, pick)] for s, eta in crafted["pgd"].items()}
        rows = [r for r in table1(results, budget.key) if r.get("keys")]
        row = next((r for r in rows if r["method"] == "Lifelong" and len(r["defences"]) == 3), None)
        row = row or (rows[0] if rows else None)
        attacker, name = None, ""
        if row is not None:
            generator = generators.load(run_dir / results.tasks[row["keys"][0]].path / GENERATOR_FILE)
            forward = inference(generator)
            attacker, name = (lambda xs: forward(xs)), f"{row['method']} {row['sequence']}"
        entry["curve"] = budget_curve(budget, x[pick], truth["test"][pick],
                                      {d: defences[d] for d in sources}, labels,
                                      data.mean, data.std, attacker, name, pgd_at_budget=at_budget)
    return out


def _scan(results: Results, data, batches, truth, defences, sources, labels, generators,
          run_dir: Path, plan_name: str) -> dict:
    """`Results.scan`: the budget scan of the run's test clips (`budget_scan.scan_stage`)."""
    from tfadvser.experiment.budget_scan import PLANS, scan_stage

    def load(key):
        task = results.tasks.get(key)
        if task is None or not (run_dir / task.path / GENERATOR_FILE).exists():
            return None
        forward = inference(generators.load(run_dir / task.path / GENERATOR_FILE))
        return lambda xs: np.concatenate([np.asarray(forward(xs[i:i + EVAL_BATCH]))
                                          for i in range(0, len(xs), EVAL_BATCH)])

    x = np.concatenate([np.asarray(b[0]) for b in batches["test"]])
    return scan_stage(results.sequences, results.chosen_lambda, x, truth["test"], defences, sources,
                      labels, data.mean, data.std, load, PLANS[plan_name])


def _audio_domain(results: Results, run_dir: Path, data, defences: dict, generators: GeneratorSlot,
                  clips: int, listen: int) -> Results:
    """`results` with `audio` (the subset, clean scores, cost) and `TaskScores.audio` for
    every task a Table 1 row reads (`tables.audio_keys`; see `evaluate_run`)."""
    started = time.time()
    keys = audio_keys(results)
    try:
        subset = AudioSubset(data, clips, SEED)
    except (OSError, UnreadableAudio) as exc:
        raise TfadvserError(f"the audio round trip needs the clean clips of {data.path}: {exc} "
                            "(restore the corpus, or pass --audio-clips 0 to skip it)") from None
    clean = clean_scores(subset, defences, list(data.labels))
    audio = {
        "clips": len(subset), "split": "test", "seed": SEED, "listen": listen, "tasks": keys,
        "clean": {d: {"stored": c["stored_scores"], "audio": c["audio_scores"]} for d, c in clean.items()},
        "setup_seconds": round(time.time() - started, 2)}
    tasks = dict(results.tasks)
    for key in keys:
        relative = Path("audio") / key
        generator = generators.load(run_dir / tasks[key].path / GENERATOR_FILE)
        scored = score_task(generator, subset, defences, clean, list(data.labels),
                            run_dir / "evaluation" / relative, listen)
        tasks[key] = dataclasses.replace(tasks[key], audio={**scored, "listen_dir": str(relative)})
    audio["seconds"] = round(time.time() - started, 2)
    return dataclasses.replace(results, audio=audio, tasks=tasks)
