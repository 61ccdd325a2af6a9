"""The four learning methods of the paper (its Fig. 1) as deltas on one list of stages.

A stage is one training task: which defences the attacker is trained against, for how
many steps, whether it starts from the previous stage's attacker, and whether a
continual-learning regulariser (EWC, the paper's; `regularisers/`) anchors it to the
attacker of the stages before. The shared loop in `attacker_training` runs any list of stages.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from tfadvser.config import AttackerConfig
from tfadvser.errors import TfadvserError


@dataclasses.dataclass(frozen=True)
class Stage:
    """One training task: the defences it attacks (C&W averaged over them), its steps,
    whether it starts from the previous stage's attacker, and whether the regulariser
    (EWC by default) anchors it."""

    defences: tuple[str, ...]
    steps: int
    from_previous: bool = False
    anchored: bool = False


def single_task(defences: Sequence[str], config: AttackerConfig) -> list[Stage]:
    """(a) one attacker against one defence."""
    if len(defences) != 1:
        raise TfadvserError(f"single-task trains against one defence, got {len(defences)} "
                            "(use multi, transfer or lifelong for several)")
    return [Stage(tuple(defences), config.first_steps)]


def multi_task(defences: Sequence[str], config: AttackerConfig) -> list[Stage]:
    """(b) one attacker against all defences at once (C&W averaged over them)."""
    _need_several(defences, "multi")
    return [Stage(tuple(defences), config.multi_steps)]


def transfer(defences: Sequence[str], config: AttackerConfig) -> list[Stage]:
    """(c) the defences in order, each task fine-tuning the previous attacker."""
    _need_several(defences, "transfer")
    first, *rest = defences
    return [Stage((first,), config.first_steps)] + [
        Stage((name,), config.later_steps, from_previous=True) for name in rest]


def lifelong(defences: Sequence[str], config: AttackerConfig) -> list[Stage]:
    """(d) transfer learning with EWC (or another regulariser) anchoring every later task to
    the previous attacker."""
    return [dataclasses.replace(stage, anchored=stage.from_previous)
            for stage in transfer(defences, config)]


def _need_several(defences, method):
    if len(defences) < 2:
        raise TfadvserError(f"{method} learning needs at least two defences, got {len(defences)}")


METHODS = {"single": single_task, "multi": multi_task, "transfer": transfer, "lifelong": lifelong}
# The methods whose later tasks a regulariser anchors (`--lambda`, `--regulariser`).
ANCHORED_METHODS = ("lifelong",)
