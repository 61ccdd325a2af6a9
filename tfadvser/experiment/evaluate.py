"""Evaluate every attacker checkpoint of a run against every defence, on dev and test.

Inference only, in batches of `scoring.EVAL_BATCH`, once per trained task (tasks shared by
several methods are scored once). Writes `runs/NAME/evaluation/results.json`; `report.py`
turns it into Table 1, the figures and report.md (`evaluate_and_report` does both).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from tfadvser.attack.tasks import GENERATOR_FILE, load_generator, sequences_of
from tfadvser.config import DEFENCE_NAMES
from tfadvser.data.dataset import make_dataset
from tfadvser.data.audio import UnreadableAudio
from tfadvser.data.folder import load_data
from tfadvser.defence.external import VictimSpec
from tfadvser.defence.hardening import hardened_defences
from tfadvser.defence.training import RESULTS_FILE, defence_dir, load_defence, weights_digest
from tfadvser.errors import TfadvserError
from tfadvser.evaluation.round_trip import (AUDIO_CLIPS, LISTEN_CLIPS, SEED, AudioSubset,
                                            clean_scores, score_task)
from tfadvser.evaluation.scoring import (EVAL_BATCH, attack_scores, classification_scores,
                                         labels_of, perturb, perturbation_sizes, predictions)
from tfadvser.experiment.protocol import FIGURE2_ROWS, NAMES
from tfadvser.experiment.victims import WaveformSplits, victims_for_run
from tfadvser.runs import load_run
from tfadvser.runtime.files import read_json, write_json
from tfadvser.runtime.inference import GeneratorSlot
from tfadvser.runtime.versions import library_versions

SPLITS = ("dev", "test")


def evaluate_run(run_dir, data_dir: Optional[str] = None, progress=None,
                 audio_clips: int = AUDIO_CLIPS, listen: int = LISTEN_CLIPS,
                 victims: Sequence[VictimSpec] = (), trust_code: bool = False) -> dict:
    """Score all defences clean and all attacker tasks adversarially; return the results.

    The defences are the run's own, its hardened ones (`defence/hardening.py`) and the
    external `victims` (`defence/external.py`; Keras safe mode unless `trust_code`), each a
    column of results["defences"] and of every task's "against" (external ones marked
    "kind": "external"; waveform victims are scored on the perturbation rendered as audio,
    `experiment/victims.py`).

    Then the attackers of Table 1's rows (with the lambda each row chooses) go through the
    audio round trip (`evaluation/round_trip.py`) on `audio_clips` seeded test clips (0:
    skipped), each writing `listen` clips' WAVs under evaluation/audio/<task key>/.
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
    names += hardened_defences(run_dir)
    if not names:
        raise TfadvserError(f"{run_dir} has no trained defences: run `tfadvser train defence "
                            f"--model all --out {run_dir} ...` first")
    sequences = sequences_of(run_dir)
    if not sequences:
        raise TfadvserError(f"{run_dir} has no trained attackers: run `tfadvser train attacker "
                            f"... --out {run_dir}` or `tfadvser reproduce` first")
    defences = {d: load_defence(run_dir, d, data) for d in names}
    external = victims_for_run(victims, data, names, trust_code)
    waveform = {n: v for n, v in external.items() if v.is_waveform}
    defences.update({n: v for n, v in external.items() if not v.is_waveform})
    names = list(defences)
    batches = {s: list(make_dataset(data, s, EVAL_BATCH)) for s in SPLITS}
    truth = {s: labels_of(batches[s]) for s in SPLITS}
    clean = {d: {s: predictions(defences[d], batches[s]) for s in SPLITS} for d in names}
    audio_splits = WaveformSplits(data, SPLITS, truth) if waveform else None
    clean.update({d: {s: audio_splits.predictions(v, s) for s in SPLITS} for d, v in waveform.items()})

    results = {"run": run, "data_dir": str(data_dir), "labels": labels, "defences": {}, "tasks": {},
               "sequences": sequences, "missing": [],
               "splits": {s: {"clips": int(len(truth[s])),
                              "speakers": len(data.record["speakers"][s])} for s in SPLITS}}
    for d in names + list(waveform):
        if d in external:
            results["defences"][d] = {"training": {}, "kind": "external",
                                      "victim": {**external[d].spec.to_dict(),
                                                 "output_used": external[d].output_kind},
                                      "weights_sha256": external[d].digest}
        else:
            results["defences"][d] = {"training": read_json(defence_dir(run_dir, d) / RESULTS_FILE),
                                      "weights_sha256": weights_digest(defences[d])}
            if d not in DEFENCE_NAMES:
                results["defences"][d]["kind"] = "hardened"
        for s in SPLITS:
            results["defences"][d][s] = classification_scores(truth[s], clean[d][s], labels)

    tasks = {t["key"]: t for seq in sequences for t in seq["tasks"]}
    generators = GeneratorSlot()
    for index, (key, task) in enumerate(sorted(tasks.items())):
        path = run_dir / task["path"] / GENERATOR_FILE
        if not path.exists():
            results["missing"].append(str(path))
            continue
        generator = generators.load(path)
        entry = {"defences_trained": task["defences"], "path": task["path"]}
        for s in SPLITS:
            perturbed = perturb(generator, batches[s])
            entry[s] = {"perturbation": perturbation_sizes(perturbed, data.mean, data.std),
                        "against": {d: attack_scores(truth[s], clean[d][s],
                                                     predictions(defences[d], perturbed), labels)
                                    for d in names}}
            eta = np.concatenate([np.asarray(b[2]) for b in perturbed]) if waveform else None
            entry[s]["against"].update({d: attack_scores(truth[s], clean[d][s], audio_splits.predictions(
                v, s, eta), labels) for d, v in waveform.items()})
        results["tasks"][key] = entry
        if progress is not None:
            progress(index + 1, len(tasks))
    if audio_clips > 0:
        _audio_domain(results, run_dir, data, defences, generators, audio_clips, listen)
    results["versions"] = library_versions()
    results["seconds"] = round(time.time() - started, 1)
    write_json(run_dir / "evaluation" / "results.json", results)
    return results


def _audio_domain(results: dict, run_dir: Path, data, defences: dict, generators: GeneratorSlot,
                  clips: int, listen: int) -> None:
    """results["audio"] (the subset, clean scores, cost) and tasks[key]["audio"] for every
    task a Table 1 row reads (see `evaluate_run`)."""
    from tfadvser.experiment.report import round_trip_sequences, table1

    started = time.time()
    keys = {k for row in table1(results) for k in row.get("keys", [])}
    keys |= {seq["tasks"][-1]["key"] for seq in round_trip_sequences(results)}
    keys = sorted(k for k in keys if k in results["tasks"])
    try:
        subset = AudioSubset(data, clips, SEED)
    except (OSError, UnreadableAudio) as exc:
        raise TfadvserError(f"the audio round trip needs the clean clips of {data.path}: {exc} "
                            "(restore the corpus, or pass --audio-clips 0 to skip it)") from None
    clean = clean_scores(subset, defences, list(data.labels))
    results["audio"] = {
        "clips": len(subset), "split": "test", "seed": SEED, "listen": listen, "tasks": keys,
        "clean": {d: {"stored": c["stored_scores"], "audio": c["audio_scores"]} for d, c in clean.items()},
        "setup_seconds": round(time.time() - started, 2)}
    for key in keys:
        task = results["tasks"][key]
        relative = Path("audio") / key
        generator = generators.load(run_dir / task["path"] / GENERATOR_FILE)
        task["audio"] = score_task(generator, subset, defences, clean, list(data.labels),
                                   run_dir / "evaluation" / relative, listen)
        task["audio"]["listen_dir"] = str(relative)
    results["audio"]["seconds"] = round(time.time() - started, 2)


def figure2(run_dir, data_dir, results: dict, rows: list[dict]) -> Optional[dict]:
    """Fig. 2: one test clip every defence gets right clean and wrong under attack (or the
    clip that comes closest, labelled as such): real, perturbation and fake log-Mel."""
    from tfadvser.evaluation.figures import spectrograms_png

    chosen = next((r for name in FIGURE2_ROWS for r in rows
                   if (r["method"], r["sequence"]) == name and r.get("keys")), None)
    if chosen is None:
        return None
    run_dir = Path(run_dir)
    key = chosen["keys"][0]
    generator = load_generator(run_dir, results["tasks"][key])
    data = load_data(data_dir)
    labels = data.labels
    defences = {d: load_defence(run_dir, d, data) for d, v in results["defences"].items()
                if v.get("kind") != "external"}
    batches = list(make_dataset(data, "test", EVAL_BATCH))
    y = labels_of(batches)
    clean = {d: predictions(m, batches) for d, m in defences.items()}
    perturbed = perturb(generator, batches)
    adv = {d: predictions(m, perturbed) for d, m in defences.items()}
    right = np.sum([clean[d] == y for d in defences], axis=0)
    fooled = np.sum([(clean[d] == y) & (adv[d] != y) for d in defences], axis=0)
    best = int(np.argmax(fooled * 10 + right))
    complete = fooled[best] == len(defences)
    x = np.concatenate([np.asarray(b[0]) for b in batches])[best]
    eta = np.concatenate([np.asarray(b[2]) for b in perturbed])[best]
    predicted = ", ".join(f"{NAMES.get(d, d)}: {labels[clean[d][best]]} → {labels[adv[d][best]]}"
                          for d in defences)
    note = ("every defence right on the real clip and wrong on the fake one" if complete else
            f"no test clip fools all defences; this one fools {fooled[best]} of {len(defences)} "
            "(the best available)")
    title = f"{chosen['method']} {chosen['sequence']}: true {labels[y[best]]}; {predicted}"
    return {"png": spectrograms_png(x, eta, x + eta, title),
            "caption": f"Fig. 2: test clip {best} ({note}). {predicted}.",
            "clip": best, "complete": bool(complete)}


def evaluate_and_report(run_dir, data_dir: Optional[str] = None, progress=None,
                        audio_clips: int = AUDIO_CLIPS, listen: int = LISTEN_CLIPS,
                        victims: Sequence[VictimSpec] = (), trust_code: bool = False) -> dict:
    """`evaluate_run`, Fig. 2 and every output of `report.write_outputs` (Table 1 as .md and
    .csv, figures, report.md) under `run_dir/evaluation/`; returns what `write_outputs`
    returns plus `results`."""
    from tfadvser.experiment.report import table1, write_outputs

    results = evaluate_run(run_dir, data_dir, progress=progress, audio_clips=audio_clips,
                           listen=listen, victims=victims, trust_code=trust_code)
    data_dir = data_dir or results["data_dir"]
    written = write_outputs(run_dir, results, figure2(run_dir, data_dir, results, table1(results)))
    return {**written, "results": results}
