"""Online EWC (Schwarz et al. 2018, "Progress & Compress") as a plugin: one running Fisher,
F <- gamma * F_prev + F_new, anchored at the previous task.

    term        lambda * sum_i F_i (theta_i - theta*_i)^2 with the running F
                (`base.QuadraticPenalty`, one pair)
    stores      each finished task's own Fisher, as EWC does (`attack.ewc.task_term`);
                the running one is recomputed from them (`online_fisher`)
    strength    the profile's (`default_lambda`, `lambdas`): its importance is EWC's
                (decayed) Fisher, on the same scale
    key fields  "regulariser": name, gamma, fisher_mode, fisher_clips
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tfadvser.attack.regularisers.base import (Anchoring, QuadraticPenalty, Regulariser,
                                              anchor_of, anchored_settings)


def online_fisher(fishers: Sequence[Sequence[np.ndarray]], gamma: float) -> list[np.ndarray]:
    """The running Fisher after the tasks of `fishers` (in training order, each a list of
    per-weight arrays): F_1 = F_new_1, F_k = gamma * F_{k-1} + F_new_k, i.e.
    sum_k gamma^(K-k) F_new_k. Raises ValueError for an empty list."""
    if not fishers:
        raise ValueError("online EWC needs the Fisher of at least one finished task")
    running = [np.asarray(f, np.float64) for f in fishers[0]]
    for new in fishers[1:]:
        running = [gamma * r + np.asarray(f, np.float64) for r, f in zip(running, new, strict=True)]
    return [r.astype(np.float32) for r in running]


class OnlineEWC(Regulariser):
    name = "online-ewc"

    def key_fields(self, config, anchored: bool) -> dict:
        if not anchored:
            return {}
        return {**anchored_settings(config),
                "regulariser": {"name": self.name, "gamma": config.online_ewc_gamma,
                                "fisher_mode": config.fisher_mode,
                                "fisher_clips": config.fisher_clips}}

    def anchoring(self, context, finished: list, strength: float) -> Anchoring:
        anchor = anchor_of(finished)
        fishers = [context.fisher_term(task_dir, stage)[0] for task_dir, stage in finished]
        return Anchoring(QuadraticPenalty, strength,
                         [(online_fisher(fishers, context.config.online_ewc_gamma), anchor)])
