"""Query-based black-box attacks on one or more victims, end to end: the victim opened
as a predict-only function (a run's defence, a model file, a TF Serving endpoint), a
seeded subset of test clips, each query attack with and without the learned attacker's
prior, one-shot baselines (transfer, noise, optionally white-box PGD), a JSON record.

The record (`QUERY_FILE` in a run's evaluation folder by default; `query_report.py`
renders it):

    {"kind": "query_attacks", "queries": N, "seed": s, "clips": [test indices],
     "budgets": {budget key: {"label", "budget",
        "victims": {name: {"input", "source", "clips", "clean_correct",
            "one_shot": {row name: {"rate", "ci", "queries": 1 (null: white-box)}},
            "attacks": {"square" | "square+prior" | "hsj" | ...: `query.summarise`},
            "paired_prior": {"square": `query.paired_prior`, ...}}}}}}

Rates are over the clips the victim gets right, class-balanced, with 95 % bootstrap
intervals (`evaluation.statistics`).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from tfadvser.attack.budget import project
from tfadvser.attack.query import CountingVictim, outcome_rate, paired_prior, run_attack
from tfadvser.config import Budget
from tfadvser.data.folder import DataFolder, load_data
from tfadvser.errors import TfadvserError
from tfadvser.runtime.files import write_json

QUERY_FILE = "query_attacks.json"
BATCH = 32  # clips per forward pass of a local victim or the generator
WHITE_BOX_PGD = "white-box PGD (10 steps, gradients)"


@dataclasses.dataclass(frozen=True)
class VictimSource:
    """Where a predict-only victim comes from: exactly one of a run's defence
    (`run_dir` + `defence`), a model file (`path`, with its `input` kind as in
    `defence/external.py`), or a TF Serving endpoint (`server` + `model`, `version`)."""

    run_dir: Optional[str] = None
    defence: Optional[str] = None
    path: Optional[str] = None
    input: str = "log_mel_standardised"
    server: Optional[str] = None
    model: Optional[str] = None
    version: Optional[int] = None

    def check(self) -> None:
        kinds = [self.defence is not None, self.path is not None, self.server is not None]
        if sum(kinds) != 1:
            raise TfadvserError("name exactly one victim: --run with --defence, --victim PATH, "
                                "or --server with --model")
        if self.server is not None and not self.model:
            raise TfadvserError("--server needs --model (the served defence's name)")
        if self.defence is not None and self.run_dir is None:
            raise TfadvserError("--defence needs --run (the run it was trained in)")


def open_victim(source: VictimSource, data: DataFolder, trust_code: bool = False
                ) -> tuple[Callable, str, dict]:
    """(predict: standardised x [n, frames, n_mels] -> probabilities [n, classes], a name,
    a JSON-ready description: what it takes and where it is). Raises TfadvserError for
    a victim that cannot be opened or does not fit the data (`defence/external.py`'s
    checks; waveform victims are refused: these attacks work on the log-Mel)."""
    source.check()
    if source.defence is not None:
        from tfadvser.defence.training import load_defence
        from tfadvser.runtime.inference import inference

        forward = inference(load_defence(source.run_dir, source.defence, data))
        return (_batched(lambda x: np.exp(forward(x).numpy())), source.defence,
                {"source": f"run {source.run_dir}, defence {source.defence}",
                 "input": "log_mel_standardised (a run's defence)"})
    if source.path is not None:
        from tfadvser.defence.external import VictimSpec, load_victim, probe_batch

        if source.input == "waveform_16k":
            raise TfadvserError(f"{source.path}: a waveform victim; the query attacks perturb "
                                "log-Mels, give a log-Mel victim (input log_mel_standardised or "
                                "log_mel_raw)")
        spec = VictimSpec(name=Path(source.path).stem, path=Path(source.path), input=source.input)
        victim = load_victim(spec, data, probe_batch(data)[0], trust_code)
        return (_batched(lambda x: np.exp(victim(x).numpy())), spec.name,
                {"source": str(source.path), "input": source.input, "digest": victim.digest})
    from tfadvser.serving.query_victim import RestVictim

    rest = RestVictim(source.server, source.model, data.mean, data.std, data.n_classes,
                      version=source.version)
    return rest, source.model, {"source": rest.name, "input": "log_mel_raw (TF Serving "
                                "`classify`; the attack's standardised log-Mel de-standardised "
                                "with the data's statistics)", "rest": rest}


def _batched(predict: Callable) -> Callable:
    def run(x):
        x = np.asarray(x, np.float32)
        return np.concatenate([predict(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])
    return run


def test_subset(data: DataFolder, clips: Optional[int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x [n, frames, n_mels] standardised, labels [n], their test-split indices): `clips`
    test clips drawn with `seed` (all of them for None), in split order."""
    from tfadvser.data.dataset import make_dataset

    batches = list(make_dataset(data, "test", 256))
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches]).astype(int)
    if clips is not None and clips < 1:
        raise TfadvserError(f"--clips must be positive, got {clips}")
    order = np.random.default_rng(seed).permutation(len(x))
    index = np.sort(order[:clips]) if clips is not None else np.arange(len(x))
    return x[index], y[index], index


def parse_prior(text: str) -> tuple[str, str]:
    """`RUN:ATTACKER` (ATTACKER: LABEL[:TASK] or a task key, `attack.tasks.find_task`) ->
    (run, attacker). Raises TfadvserError for another form."""
    run, sep, attacker = text.partition(":")
    if not sep or not run or not attacker:
        raise TfadvserError(f"--prior {text!r}: expected RUN:ATTACKER, e.g. "
                            "runs/synth:single-cnn4-eps0.008-snr30")
    return run, attacker


def generator_eta(run_dir, attacker: str, x: np.ndarray) -> np.ndarray:
    """G(x) of a run's trained attacker (`find_task` spec) for standardised x [n, ...]: its
    perturbation at its own budget, float32 [n, ...]."""
    from tfadvser.attack.tasks import find_task, load_generator
    from tfadvser.runtime.inference import inference

    forward = inference(load_generator(run_dir, find_task(run_dir, attacker)))
    return np.concatenate([forward(x[i:i + BATCH]).numpy() for i in range(0, len(x), BATCH)])


def attack_victim(predict: Callable, name: str, x: np.ndarray, y: np.ndarray, data: DataFolder,
                  budget: Budget, attacks: Sequence[str], queries: int, seed: int = 0,
                  prior: Optional[np.ndarray] = None, prior_name: str = "prior",
                  one_shot: Optional[dict] = None, white_box: Sequence[str] = (),
                  progress: Callable = lambda line: None) -> dict:
    """One victim at one budget: each attack of `attacks` ("square", "hsj", "noise") with
    `queries` per clip, and again from `prior` (eta [n, ...], projected here) when given,
    paired; `one_shot` {row name: eta [n, ...]} scored with one query each (transfer,
    noise, white-box PGD; those named in `white_box` used gradients: no query count), the
    prior's own projection among them as "the prior alone: <name>".
    Returns the victim's entry of the record (module doc)."""
    if not budget.bounded:
        raise TfadvserError("query attacks need a bounded budget (--epsilon and/or --snr-db)")
    clean = np.argmax(predict(x), axis=1)
    right = clean == y
    entry = {"clips": int(len(x)), "clean_correct": int(right.sum()), "one_shot": {},
             "attacks": {}, "paired_prior": {}}
    shots = dict(one_shot or {})
    if prior is not None:
        shots = {f"the prior alone: {prior_name}": prior, **shots}
    for row, eta in shots.items():
        eta = project(x, eta, budget, data.mean, data.std).numpy()
        fooled = np.argmax(predict(x + eta), axis=1) != y
        # a white-box row read gradients, not only answers: no query count applies
        entry["one_shot"][row] = {**outcome_rate(fooled[right], y[right]),
                                  "queries": None if row in white_box else 1}
    for attack in attacks:
        runs = [(attack, None)] + ([(f"{attack}+prior", prior)]
                                   if prior is not None and attack != "noise" else [])
        for label, start in runs:
            started = time.perf_counter()
            victim = CountingVictim(predict, x, y, budget, data.mean, data.std, queries,
                                    data.n_classes, name=f"victim {name!r}")
            entry["attacks"][label] = run_attack(attack, victim, prior=start, seed=seed)
            summary = entry["attacks"][label]
            rates = ", ".join(f"{n}: {v['rate']:.0%}" for n, v in summary["success_at"].items())
            progress(f"{name} {budget.key} {label}: success at {rates}; "
                     f"{summary['queries_sent']} queries, {time.perf_counter() - started:.0f} s")
        if prior is not None and attack != "noise":
            entry["paired_prior"][attack] = paired_prior(entry["attacks"][attack],
                                                         entry["attacks"][f"{attack}+prior"], y)
    return entry


def run_query_attacks(data_dir, source: VictimSource, out: Path, budget: Budget,
                      attacks: Sequence[str], queries: int, clips: Optional[int], seed: int = 0,
                      prior: Optional[str] = None, trust_code: bool = False,
                      progress: Callable = lambda line: None) -> dict:
    """`tfadvser attack-query`: open the victim (`open_victim`), draw `clips` seeded test
    clips of `data_dir`, run `attacks` with `queries` per clip at `budget` (and from the
    prior `RUN:ATTACKER` when given, paired), add one-shot noise at the budget, and write
    the record (module doc) to `out` atomically, only when everything has run. Returns
    the record."""
    from tfadvser.attack.baselines import budget_noise
    from tfadvser.runtime.versions import library_versions

    if queries < 1:
        raise TfadvserError(f"--queries must be at least 1, got {queries}")
    data = load_data(data_dir)
    started = time.time()
    predict, name, info = open_victim(source, data, trust_code)
    rest = info.pop("rest", None)
    x, y, index = test_subset(data, clips, seed)
    eta_prior = generator_eta(*parse_prior(prior), x) if prior else None
    shots = {"noise at the budget": budget_noise(x, budget, data.mean, data.std, seed)}
    entry = attack_victim(predict, name, x, y, data, budget, attacks, queries, seed,
                          prior=eta_prior, prior_name=prior.partition(":")[2] if prior else "",
                          one_shot=shots, progress=progress)
    entry.update(info)
    if rest is not None:
        entry["rest"] = {"requests": rest.requests, "instances_posted": rest.instances_posted}
    record = {"kind": "query_attacks", "queries": int(queries), "seed": int(seed),
              "clips": [int(i) for i in index], "data": str(Path(data.path).resolve()),
              "prior": prior, "seconds": round(time.time() - started, 1),
              "versions": library_versions(),
              "budgets": {budget.key: {"label": budget.label, "budget": budget.to_dict(),
                                       "victims": {name: entry}}}}
    write_json(out, record)
    return record


def measure_run(run_dir, victims: Sequence[str], budgets: Sequence[Budget], attacks: Sequence[str],
                queries: int, clips: int, out: Path, prior: Optional[str] = None,
                transfer: Optional[dict] = None, pgd: bool = True, seed: int = 0,
                progress: Callable = lambda line: None) -> dict:
    """The closing table's measurement on a run: each of the run's defences in `victims`,
    through predict only, at each budget: `attacks` with and without the prior (`prior`:
    an attacker of this run, `find_task` spec), one-shot rows for each transfer attacker
    (`transfer` {row name: `find_task` spec}; one whose name is the victim's own defence is
    skipped), noise at the budget and white-box PGD on the victim (`baselines.pgd`,
    gradients: the one row that is not black-box). `clips` seeded test clips, the same
    for every cell. Writes the record (module doc) to `out` atomically; returns it."""
    from tfadvser.attack.baselines import budget_noise
    from tfadvser.attack.baselines import pgd as white_box_pgd
    from tfadvser.defence.training import load_defence
    from tfadvser.runtime.inference import inference
    from tfadvser.runtime.versions import library_versions
    from tfadvser.runs import load_run

    data = load_data(load_run(run_dir)["data_dir"])
    started = time.time()
    x, y, index = test_subset(data, clips, seed)
    eta_prior = generator_eta(run_dir, prior, x) if prior else None
    from tfadvser.attack.tasks import find_task

    transfer_eta = {name: generator_eta(run_dir, spec, x) for name, spec in (transfer or {}).items()}
    # which defences each transfer attacker was trained against (its last task's)
    against = {name: set(find_task(run_dir, spec)["defences"]) for name, spec in (transfer or {}).items()}
    record = {"kind": "query_attacks", "queries": int(queries), "seed": int(seed),
              "clips": [int(i) for i in index], "data": str(Path(data.path).resolve()),
              "run": str(Path(run_dir).resolve()), "prior": prior, "transfer": transfer,
              "budgets": {}}
    for budget in budgets:
        block = record["budgets"][budget.key] = {"label": budget.label,
                                                 "budget": budget.to_dict(), "victims": {}}
        for name in victims:
            predict, _, info = open_victim(VictimSource(run_dir=str(run_dir), defence=name), data)
            shots = {f"transfer: {row}": eta for row, eta in transfer_eta.items()
                     if name not in against[row]}
            shots["noise at the budget"] = budget_noise(x, budget, data.mean, data.std, seed)
            if pgd:
                forward = inference(load_defence(run_dir, name, data))
                shots[WHITE_BOX_PGD] = white_box_pgd(forward, x, y, budget,
                                                                   data.mean, data.std, seed=seed)
            entry = attack_victim(predict, name, x, y, data, budget, attacks, queries, seed,
                                  prior=eta_prior, prior_name=str(prior), one_shot=shots,
                                  white_box=(WHITE_BOX_PGD,), progress=progress)
            entry.update(info)
            block["victims"][name] = entry
            # after each victim: a long measurement leaves what it has (marked incomplete)
            write_json(out, {**record, "complete": False, "seconds": round(time.time() - started, 1)})
    record.update(complete=True, seconds=round(time.time() - started, 1), versions=library_versions())
    write_json(out, record)
    return record
