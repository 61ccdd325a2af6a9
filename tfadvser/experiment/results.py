"""The evaluation's results as one typed record: what `evaluate` fills and every report reads.

One spec for writer and reader of `runs/NAME/evaluation/results.json`. `evaluate_run`
fills the record once, stage by stage, and writes it once, atomically
(`results_file.write_results`); `report`, `findings`, `continual_report`,
`robustness_report`, `outputs` and the HTML page only read it, through the accessors below
(row selection, Table 1 and the lifelong grids are in `tables.py`, on top of them). The
file keeps the layout it always had: one top-level key per field of the stages below, plus
`schema` and the views `tables.py` derives for readers of the file (table1,
lifelong_grids, lambda_curves, audio_rows).

Stages, in the order `evaluate_run` fills them:

- `Inputs`: the run, the data, the labels, the sequences scored, the splits' sizes and
  their true labels;
- `defences` (the "clean" stage): every defence's clean scores and provenance;
- `tasks` and `missing` (the "dev" and "test" stages): per task a `TaskScores`, on dev (all
  tasks: the lambda rule reads them) and on test with noise matched to its perturbation;
  the generator files listed but not found;
- `lambda_choice` (the "λ choice" stage): per lifelong sweep a `LambdaChoice`;
- `untrained`, `training_curves`: the continual metrics' reference and the attackers'
  training curves;
- optional, None when not run (and then absent from the file): `baselines` (budget key ->
  noise, PGD, MI-FGSM and, without a scan, the budget curve, `baseline_scores.py`), `audio` (the audio
  round trip's subset and clean scores; per-task results in `TaskScores.audio`), `scan` (a
  budget scan: per attack x source x target a curve of UAR against SNR and an SNR50 with
  its interval) and `query` (query attacks), the last two kept as their stages write them;
- `Timing`: seconds per stage, the total, library versions.

Adding a stage: `scan` and `query` have their field already (an `Optional[Mapping]` under
their own top-level key: fill it with `dataclasses.replace(results, scan=...)` in
`evaluate_run` and it is written, read back and round-tripped). Another stage is one
Optional field of `Results` defaulting to None plus its name in `OPTIONAL_STAGES` (which
`to_dict` and `from_dict` loop over); a stage with structure of its own is a frozen
dataclass with `to_dict()` and a `from_dict(data)` classmethod (as `TaskScores`), its class
named in `OPTIONAL_STAGES`. Readers get accessors here
(e.g. `Results.baseline`), so none indexes the file's dicts. An optional stage needs no
new `SCHEMA_VERSION` (older files simply lack it); bump it only when an existing key
changes meaning, and then teach `from_dict` the older layout or refuse it.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

from tfadvser.config import Budget

# 1: the first typed record (files without `schema` have the same layout and load as 1).
SCHEMA_VERSION = 1
SPLITS = ("dev", "test")


def _take(data: Mapping, keys: Sequence[str], where: str) -> dict:
    missing = [k for k in keys if k not in data]
    if missing:
        raise KeyError(f"{where} has no {', '.join(repr(k) for k in missing)}")
    return {k: data[k] for k in keys}


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What was scored: `run` (run.json), the data folder, class labels (index order), the
    sequence records scored (each with its `budget` dict and, lifelong, its `sweep` label),
    per split {"clips", "speakers"} and the true labels [N] per split."""

    run: Mapping = dataclasses.field(default_factory=dict)
    data_dir: str = ""
    labels: tuple = ()
    sequences: tuple = ()
    splits: Mapping = dataclasses.field(default_factory=dict)
    truth: Mapping = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"run": self.run, "data_dir": self.data_dir, "labels": list(self.labels),
                "sequences": list(self.sequences), "splits": self.splits, "truth": self.truth}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Inputs":
        d = _take(data, ("run", "data_dir", "labels", "sequences", "splits", "truth"), "results")
        return cls(**{**d, "labels": tuple(d["labels"]), "sequences": tuple(d["sequences"])})


@dataclasses.dataclass(frozen=True)
class TaskScores:
    """One attacker task's scores: the defences it was trained on, its folder, its budget
    (`Budget.to_dict`), and per split {"perturbation": sizes, "against": {defence: scores}}
    (`scoring.attack_scores` plus rates and per-clip predictions; on test also
    "matched_noise"); `audio`: its audio round trip (`round_trip.score_task`), if run."""

    defences_trained: tuple = ()
    path: str = ""
    budget: Mapping = dataclasses.field(default_factory=dict)
    dev: Optional[Mapping] = None
    test: Optional[Mapping] = None
    audio: Optional[Mapping] = None

    def split(self, split: str) -> Optional[Mapping]:
        return {"dev": self.dev, "test": self.test}.get(split)

    def to_dict(self) -> dict:
        out = {"defences_trained": list(self.defences_trained), "path": self.path,
               "budget": self.budget}
        for name in ("dev", "test", "audio"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> "TaskScores":
        return cls(defences_trained=tuple(data.get("defences_trained", ())),
                   path=data.get("path", ""), budget=data.get("budget", {}),
                   dev=data.get("dev"), test=data.get("test"), audio=data.get("audio"))


@dataclasses.dataclass(frozen=True)
class LambdaChoice:
    """The lambda a lifelong sweep uses and where it came from: a tuner's best.json (its
    path under the run) or "evaluation (dev)" (`evaluate.lambda_choices`)."""

    value: float
    source: str

    def to_dict(self) -> dict:
        return {"lambda": self.value, "source": self.source}


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per stage ("attackers", "baselines", "audio"), in all, and library versions."""

    seconds_by_stage: Mapping = dataclasses.field(default_factory=dict)
    seconds: Optional[float] = None
    versions: Mapping = dataclasses.field(default_factory=dict)


# The optional stages: each one top-level key of the file and one field of `Results`, with
# the class that reads it (`from_dict`) or None for a stage kept as the JSON it writes.
OPTIONAL_STAGES = {"baselines": None, "audio": None, "scan": None, "query": None}


@dataclasses.dataclass(frozen=True)
class Results:
    """The record (module doc). `defences`: name -> {"training": its results.json (empty for
    external victims), "weights_sha256", optional "kind" ("hardened" / "external", with
    "victim"), "dev" / "test": clean scores with per-clip "predictions"}, in column order.
    `tasks`: key -> `TaskScores`; `missing`: generator files listed but not found."""

    inputs: Inputs = dataclasses.field(default_factory=Inputs)
    defences: Mapping = dataclasses.field(default_factory=dict)
    tasks: Mapping = dataclasses.field(default_factory=dict)
    missing: tuple = ()
    lambda_choice: Mapping = dataclasses.field(default_factory=dict)
    untrained: Mapping = dataclasses.field(default_factory=dict)
    training_curves: Mapping = dataclasses.field(default_factory=dict)
    baselines: Optional[Mapping] = None
    audio: Optional[Mapping] = None
    scan: Optional[Mapping] = None
    query: Optional[Mapping] = None
    timing: Timing = dataclasses.field(default_factory=Timing)

    # -- the inputs, by name
    @property
    def labels(self) -> tuple:
        return self.inputs.labels

    @property
    def sequences(self) -> tuple:
        return self.inputs.sequences

    @property
    def run(self) -> Mapping:
        return self.inputs.run

    def truth(self, split: str) -> list:
        """True labels [N] of a split (ints)."""
        return self.inputs.truth[split]

    # -- clean scores
    def kind(self, defence: str) -> Optional[str]:
        """"hardened", "external" or None (one of the run's own defences)."""
        return self.defences[defence].get("kind")

    def clean(self, defence: str, split: str) -> Mapping:
        """A defence's clean scores on a split (`scoring.classification_scores` + predictions)."""
        return self.defences[defence][split]

    def clean_uar(self, defence: str, split: str) -> float:
        return self.defences[defence][split]["uar"]

    def clean_predictions(self, defences: Sequence[str], split: str) -> list:
        """[D][N] clean predictions of `defences`."""
        return [self.defences[d][split]["predictions"] for d in defences]

    def training(self, defence: str) -> Mapping:
        """A defence's training results (defences/<name>/results.json; {} for a victim)."""
        return self.defences[defence].get("training", {})

    # -- adversarial scores
    def scores(self, key: Optional[str], defence: str, split: str) -> Optional[Mapping]:
        """The scores of task `key` against `defence` on `split`, or None where not scored."""
        task = self.tasks.get(key) if key else None
        scored = task.split(split) if task is not None else None
        if scored is None:
            return None
        return scored["against"].get(defence)

    def adversarial_uar(self, key: Optional[str], defence: str, split: str) -> Optional[float]:
        """Adversarial UAR of task × defence × split, or None where not scored."""
        scored = self.scores(key, defence, split)
        return None if scored is None else scored["adversarial_uar"]

    def adversarial_predictions(self, key: Optional[str], defences: Sequence[str],
                                split: str) -> Optional[list]:
        """[D][N] per-clip adversarial predictions of a task, or None where any is missing."""
        scored = [self.scores(key, d, split) for d in defences]
        if any(s is None or "predictions" not in s for s in scored):
            return None
        return [s["predictions"] for s in scored]

    def against(self, key: str, split: str) -> Mapping:
        """defence -> scores of a task on a split ({} where not scored)."""
        task = self.tasks.get(key)
        scored = task.split(split) if task is not None else None
        return {} if scored is None else scored["against"]

    def perturbation(self, key: str, split: str) -> Optional[Mapping]:
        """Perturbation sizes of a task on a split (`scoring.perturbation_sizes`), or None."""
        task = self.tasks.get(key)
        scored = task.split(split) if task is not None else None
        return None if scored is None else scored["perturbation"]

    def scored_on(self, key: Optional[str], split: str) -> bool:
        task = self.tasks.get(key) if key else None
        return task is not None and task.split(split) is not None

    def untrained_predictions(self, attacker: Mapping, split: str) -> Optional[Mapping]:
        """defence -> [N] predictions under the untrained generator a sequence with this
        attacker record starts from (`untrained_id`), or None where not computed."""
        found = self.untrained.get(untrained_id(attacker))
        return None if found is None else found[split]

    def task_audio(self, key: str) -> Optional[Mapping]:
        task = self.tasks.get(key)
        return None if task is None else task.audio

    # -- sequences, budgets, lambdas
    def chosen_lambda(self, seq: Mapping) -> Optional[float]:
        """The lambda chosen for a sequence's sweep, or None (no sweep or no choice)."""
        choice = self.lambda_choice.get(seq.get("sweep"))
        return None if choice is None else choice.value

    def sequence_of(self, key: Optional[str]) -> Optional[Mapping]:
        """The first sequence holding task `key`, or None."""
        return next((s for s in self.sequences if any(t["key"] == key for t in s["tasks"])), None)

    def budgets(self) -> list[str]:
        """The budget keys of the run's sequences (`config.Budget.key`): bounded ones first
        (the product's protocol), then "unbounded" (the paper's)."""
        keys = {budget_of(seq).key for seq in self.sequences}
        return sorted(keys, key=lambda k: (k == "unbounded", k))

    def primary_budget(self) -> Optional[str]:
        """The budget whose Table 1 the report leads with: the first of `budgets`."""
        budgets = self.budgets()
        return budgets[0] if budgets else None

    def budget(self, key: str) -> Budget:
        """The `Budget` of key `key` from the first sequence under it (unbounded if none)."""
        seq = next((s for s in self.sequences if budget_of(s).key == key), None)
        return budget_of(seq)

    def budget_label(self, key: str) -> str:
        seq = next((s for s in self.sequences if budget_of(s).key == key), None)
        return budget_of(seq).label if seq else key

    def baseline(self, key: str) -> Optional[Mapping]:
        """The baselines of budget `key` (`baseline_scores.py`), or None."""
        return (self.baselines or {}).get(key)

    # -- the file
    def to_dict(self) -> dict:
        """The record in results.json's layout (`results_file.py` adds the derived views)."""
        out = {**self.inputs.to_dict(), "schema": SCHEMA_VERSION, "defences": self.defences,
               "tasks": {k: t.to_dict() for k, t in self.tasks.items()},
               "missing": list(self.missing),
               "seconds_by_stage": self.timing.seconds_by_stage,
               "lambda_choice": {k: c.to_dict() for k, c in self.lambda_choice.items()},
               "untrained": self.untrained, "training_curves": self.training_curves}
        for name in OPTIONAL_STAGES:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to_dict() if hasattr(value, "to_dict") else value
        out.update(versions=self.timing.versions, seconds=self.timing.seconds)
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> "Results":
        """The record of a results.json layout (derived views are recomputed, not read).
        Raises KeyError naming the first missing key, ValueError for a newer schema."""
        schema = data.get("schema", 1)
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise ValueError(f"schema {schema!r}, newer than this tfadvser's {SCHEMA_VERSION}")
        d = _take(data, ("defences", "tasks", "missing", "lambda_choice", "untrained",
                         "training_curves"), "results")
        return cls(inputs=Inputs.from_dict(data), defences=d["defences"],
                   tasks={k: TaskScores.from_dict(t) for k, t in d["tasks"].items()},
                   missing=tuple(d["missing"]),
                   lambda_choice={k: LambdaChoice(float(c["lambda"]), c["source"])
                                  for k, c in d["lambda_choice"].items()},
                   untrained=d["untrained"], training_curves=d["training_curves"],
                   **{name: None if data.get(name) is None else
                      kind.from_dict(data[name]) if kind else data[name]
                      for name, kind in OPTIONAL_STAGES.items()},
                   timing=Timing(data.get("seconds_by_stage", {}), data.get("seconds"),
                                 data.get("versions", {})))


def budget_of(seq: Optional[Mapping]) -> Budget:
    """A sequence record's `Budget` (its "budget" dict; unbounded without one)."""
    return Budget(**(seq or {}).get("budget", {}))


def untrained_id(attacker: Mapping) -> str:
    """Which untrained generator a sequence starts from (the key of `Results.untrained`):
    its architecture, budget and seed."""
    from tfadvser.attack.tasks import recorded_config

    config = recorded_config(attacker)
    return f"{config.generator}-width{config.width:g}-{config.budget.key}-seed{config.seed}"


