"""EWC, the paper's regulariser (Kirkpatrick et al. 2017; paper Eq. 3), as a plugin.

    term        lambda * sum_i F_i (theta_i - theta*_i)^2, one (Fisher, anchor) pair per
                anchoring task (`base.QuadraticPenalty`)
    stores      `ewc-<mode>[-<N>clips].npz` beside a finished task: its Fisher and anchor,
                estimated when a later task first needs them (`attack.ewc.task_term`)
    anchors     the previous task (the original) or, with `ewc_accumulate`, every earlier
                one (`attack.ewc.anchored_tasks`)
    strength    the profile's: `default_lambda` (small: 100 under the budget; paper: the
                paper's 1e5) and the grid `lambdas`
    key fields  only the anchored-task settings keys have always held: the paper's
                attackers keep their keys

The maths (Fisher, penalty, the cache of a task's term) is `attack/ewc.py`.
"""
from __future__ import annotations

from tfadvser.attack.ewc import anchored_tasks
from tfadvser.attack.regularisers.base import (Anchoring, QuadraticPenalty, Regulariser,
                                              anchored_settings)


class EWC(Regulariser):
    name = "ewc"

    def key_fields(self, config, anchored: bool) -> dict:
        return anchored_settings(config) if anchored else {}

    def anchoring(self, context, finished: list, strength: float) -> Anchoring:
        pairs = [context.fisher_term(task_dir, stage)
                 for task_dir, stage in anchored_tasks(finished, context.config.ewc_accumulate)]
        return Anchoring(QuadraticPenalty, strength, pairs)
