"""Trained attacker tasks and sequences on disk: their keys, labels and look-up.

Each trained task is stored under a key that hashes everything its weights depend on (the
parent task's key, its defences, steps, the attacker settings, lambda, the data and the
defences' model files), so a task that two methods share is trained once: single-task
CNN-4 is task 0 of the clockwise transfer and lifelong sequences, and a 3-defence sequence
contains the 2-defence one.

    runs/NAME/attackers/tasks/<key>/      one trained task
        generator.keras                   the attacker after the task
        task.json                         what it was trained on and with, final metrics
        ewc-<mode>.npz                    Fisher + anchor, computed when a later EWC task needs them
                                          (and the other regularisers' files: `regularisers/`)
        logs/ backup/                     TensorBoard; BackupAndRestore while training
    runs/NAME/attackers/<label>/sequence.json
                                          a method's run: its tasks in order, by key
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional, Sequence

import keras

import tfadvser.attack.budget  # noqa: F401  (registers the layers saved generators hold)

from tfadvser.attack.methods import ANCHORED_METHODS, METHODS, Stage
from tfadvser.config import AttackerConfig, Profile, resolve
from tfadvser.data.folder import load_data
from tfadvser.defence.training import MODEL_FILE, defence_dir
from tfadvser.errors import TfadvserError
from tfadvser.runtime import distribute
from tfadvser.runtime.files import read_json

GENERATOR_FILE, TASK_FILE, SEQUENCE_FILE = "generator.keras", "task.json", "sequence.json"

# Settings that change the trained weights of a task (the others only change logging).
_WEIGHT_SETTINGS = ("width", "batch_size", "cw_reduction", "lr_schedule",
                    "learning_rate", "decay_every", "decay_rate", "seed")


def tasks_dir(run_dir) -> Path:
    """`runs/NAME/attackers/tasks/`: every trained task of a run, by key."""
    return Path(run_dir) / "attackers" / "tasks"


def attacker_suffix(config: AttackerConfig) -> str:
    """What sets a run's attackers apart beyond method and defences, as a name suffix: the
    budget's key for a bounded attacker (none for the paper's), `-universal` for a universal
    one, `-seedN` for seed N>0, `-roundtrip` for one trained through the audio round trip.
    Sequence labels and lambda-sweep folders share it."""
    suffix = f"-{config.budget.key}" if config.perturbation != "paper" else ""
    if config.generator != "atrous":
        suffix += f"-{config.generator}"
    return (suffix + recipe_suffix(config) + (f"-seed{config.seed}" if config.seed else "")
            + ("-roundtrip" if config.round_trip else ""))


def recipe_suffix(config: AttackerConfig) -> str:
    """The recipe fields that differ from the default, as a name part, e.g.
    `-ce+feature-cos-headscale-div0.5-cur4` (empty for the default recipe)."""
    recipe = config.recipe
    parts = ["+".join(recipe["losses"])] if "losses" in recipe else []
    names = {"kappa": "kappa", "head": "head", "feature_layer": "layer", "diversity": "div",
             "curriculum": "cur"}
    parts += [f"{names[k]}{v:g}" if isinstance(v, float) else f"{names[k]}{v}"
              for k, v in recipe.items() if k != "losses"]
    return "".join(f"-{p}" for p in parts)


def sequence_label(method: str, defences: Sequence[str], strength: Optional[float],
                   config: AttackerConfig, regulariser: str = "ewc") -> str:
    """A sequence's folder name, e.g. `lifelong-cnn4-vgg16-lambda100000-eps0.008-snr30`
    (`attacker_suffix` after the method, defences and, for lifelong, the regulariser's
    strength as "lambda"); a regulariser other than EWC follows the method:
    `lifelong-si-cnn4-vgg16-lambda0.1-eps0.008-snr30`."""
    label = f"{method}-{'' if regulariser == 'ewc' else regulariser + '-'}{'-'.join(defences)}"
    if method in ANCHORED_METHODS:
        label += f"-lambda{strength:g}"
    return label + attacker_suffix(config)


def sweep_label(defences: Sequence[str], config: AttackerConfig, regulariser: str = "ewc") -> str:
    """The lifelong sequences that differ only in lambda, e.g. `lifelong-cnn4-vgg16-eps0.008-snr30`
    (`lifelong-si-...` for a regulariser other than EWC): the name of their lambda sweep, and
    what the one lambda rule chooses within."""
    prefix = "" if regulariser == "ewc" else f"{regulariser}-"
    return f"lifelong-{prefix}{'-'.join(defences)}" + attacker_suffix(config)


def defence_hashes(run_dir, names: Sequence[str]) -> dict[str, str]:
    """The first 16 hex digits of the SHA-256 of each defence's model file: a retrained
    defence makes every attacker trained against it stale."""
    hashes = {}
    for name in names:
        path = defence_dir(run_dir, name) / MODEL_FILE
        if not path.exists():
            raise TfadvserError(f"defence {name!r} is not trained in {run_dir} ({path} missing): "
                                f"run `tfadvser train defence --model {name} --out {run_dir} ...` first")
        hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return hashes


def task_key(parent: Optional[str], stage: Stage, strength: float, config: AttackerConfig,
             fingerprint: str, hashes: dict[str, str], fields: dict) -> tuple[str, dict]:
    """(16-hex-digit key, the identity it hashes) of a task: everything its weights depend on.
    `strength`: the regulariser's weight of an anchored stage (held under the identity's
    "ewc_lambda", its name since EWC was the only regulariser: old keys stay valid);
    `fields`: the regulariser's own entries (`Regulariser.key_fields`; {} for a stage that
    nothing anchors and EWC's settings otherwise)."""
    identity = {"parent": parent, "defences": list(stage.defences), "steps": stage.steps,
                "ewc_lambda": strength if stage.anchored else 0.0, "data": fingerprint,
                "defence_models": {d: hashes[d] for d in stage.defences},
                "attacker": {"alpha": config.cw_weight,
                             **{k: getattr(config, k) for k in _WEIGHT_SETTINGS}}}
    # Only when they differ from the paper's attacker: its keys stay as they were.
    if config.perturbation != "paper":
        identity["budget"] = {"perturbation": config.perturbation, **config.budget.to_dict()}
    if config.generator != "atrous":
        identity["generator"] = config.generator
    if config.round_trip:  # only when set: keys of the paper's attackers stay as they were
        identity["round_trip"] = True
    if config.recipe:  # likewise: only the fields that differ from the default recipe
        identity["recipe"] = {k: list(v) if isinstance(v, tuple) else v
                              for k, v in config.recipe.items()}
    identity.update(fields)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return digest, identity


def first_task_trained(data_dir, run_dir, defences: Sequence[str], profile: Profile,
                       seed: int = 0) -> bool:
    """Whether task 0 of a transfer/lifelong sequence over `defences` exists already
    (computed from the data's fingerprint and the defence file's hash; nothing is loaded).
    The attacker is `profile`'s (`config.resolve`) with `seed`."""
    config = resolve(profile, seed=seed)
    run_dir = distribute.worker_run_dir(run_dir)
    stage = METHODS["transfer"](list(defences), config)[0]
    # Task 0 is anchored by nothing: no regulariser fields (SI's own first task aside).
    key, _ = task_key(None, stage, 0.0, config, load_data(data_dir).fingerprint,
                      defence_hashes(run_dir, stage.defences), {})
    return (tasks_dir(run_dir) / key / TASK_FILE).exists()


def recorded_config(attacker: dict) -> AttackerConfig:
    """The AttackerConfig a sequence record's `attacker` settings describe. Records written
    before the budget existed hold no `perturbation`: theirs was the paper's."""
    fields = {k: v for k, v in attacker.items() if k in AttackerConfig.__dataclass_fields__}
    fields.setdefault("perturbation", "paper")
    return AttackerConfig(**fields)


def sequences_of(run_dir) -> list[dict]:
    """Every sequence record of a run (`attackers/<label>/sequence.json`), by label."""
    return [read_json(p) for p in sorted(Path(run_dir).glob(f"attackers/*/{SEQUENCE_FILE}"))]


def generator_path(run_dir, task: dict) -> Path:
    """The generator file of a task record. Raises TfadvserError when it was not finished."""
    path = Path(run_dir) / task["path"] / GENERATOR_FILE
    if not path.exists():
        raise TfadvserError(f"{path} not found: the attacker task was not trained to the end")
    return path


def load_generator(run_dir, task: dict) -> keras.Model:
    """The generator of a task record (see `generator_path`), without optimizer state."""
    return keras.saving.load_model(generator_path(run_dir, task), compile=False)


def find_task(run_dir, spec: str) -> dict:
    """A trained attacker task from `LABEL[:INDEX]` (a sequence and task, default its last)
    or a task key. Raises TfadvserError naming the trained sequences when none matches."""
    run_dir = Path(run_dir)
    label, _, index = spec.partition(":")
    sequence_file = run_dir / "attackers" / label / SEQUENCE_FILE
    if sequence_file.exists():
        tasks = read_json(sequence_file)["tasks"]
        try:
            return tasks[int(index) if index else -1]
        except (ValueError, IndexError):
            raise TfadvserError(f"{spec}: {label} has tasks 0..{len(tasks) - 1}") from None
    task_file = tasks_dir(run_dir) / spec / TASK_FILE
    if task_file.exists():
        task = read_json(task_file)
        return {"key": spec, "defences": task["defences"], "path": str(task_file.parent.relative_to(run_dir))}
    labels = sorted(p.parent.name for p in run_dir.glob(f"attackers/*/{SEQUENCE_FILE}"))
    raise TfadvserError(f"no attacker {spec!r} in {run_dir}; trained sequences: "
                        f"{', '.join(labels) or 'none'} (use LABEL or LABEL:TASK)")
