"""The paper's protocol in one place: its defences' display names, the two defence orders,
Table 1's rows, the order `reproduce` trains in, and which attacker Fig. 2 shows.

Table 1 (13 rows): each row names a method and a defence sequence, and is read off one
trained task: e.g. "Transfer, CNN-4 + VGG-16" is task 1 of the clockwise transfer sequence.
Single-task CNN-4 is task 0 of any clockwise sequence (the same training), and so on.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping

# Display names of the defences, as the paper prints them.
NAMES = {"cnn4": "CNN-4", "vgg16": "VGG-16", "resnet50": "ResNet-50"}
# The two defence orders of the paper's sequences.
CLOCKWISE = ("cnn4", "vgg16", "resnet50")
COUNTER = ("resnet50", "vgg16", "cnn4")


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of Table 1 and where its attacker is found."""

    method: str  # as printed
    sequence: tuple[str, ...]
    methods: tuple[str, ...]  # sequence records that contain this task
    exact: bool = False  # the sequence must be exactly `sequence` (multi-task)

    @property
    def task_index(self) -> int:
        """Which task of a matching sequence holds this row's attacker."""
        return 0 if self.exact else len(self.sequence) - 1

    @property
    def name(self) -> str:
        """The sequence as printed, e.g. "CNN-4 + VGG-16"."""
        return " + ".join(NAMES[d] for d in self.sequence)


ROWS = (
    Row("Single-task", ("cnn4",), ("single", "transfer", "lifelong")),
    Row("Single-task", ("resnet50",), ("single", "transfer", "lifelong")),
    Row("Multi-task", ("cnn4", "vgg16"), ("multi",), exact=True),
    Row("Multi-task", ("resnet50", "vgg16"), ("multi",), exact=True),
    Row("Multi-task", CLOCKWISE, ("multi",), exact=True),
    Row("Transfer", CLOCKWISE[:2], ("transfer",)),
    Row("Transfer", CLOCKWISE, ("transfer",)),
    Row("Transfer", COUNTER[:2], ("transfer",)),
    Row("Transfer", COUNTER, ("transfer",)),
    Row("Lifelong", CLOCKWISE[:2], ("lifelong",)),
    Row("Lifelong", CLOCKWISE, ("lifelong",)),
    Row("Lifelong", COUNTER[:2], ("lifelong",)),
    Row("Lifelong", COUNTER, ("lifelong",)),
)


# config.ORDERS by name.
ORDER_SEQUENCES = {"clockwise": CLOCKWISE, "counter": COUNTER}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What `reproduce` trains for some defence orders, in its order: the single-task
    attackers (the first tasks of the transfer and lifelong sequences: clockwise starts at
    CNN-4, counter-clockwise at ResNet-50), the transfer sequences, the lifelong sequences
    (each a lambda sweep) and the multi-task attackers (the 3-defence one serves both orders:
    multi-task learning has no order)."""

    first_tasks: tuple
    transfer: tuple
    lifelong: tuple
    multi: tuple


def training_plan(orders, multi_pairs: bool = True) -> Plan:
    """The `Plan` for `orders` (names of config.ORDERS, e.g. ("clockwise",)), with the
    2-defence multi-task attackers of each order when `multi_pairs` (the 3-defence one
    always). Raises ValueError for an unknown or empty list."""
    unknown = [o for o in orders if o not in ORDER_SEQUENCES]
    if unknown or not orders:
        raise ValueError(f"orders must be a non-empty subset of {list(ORDER_SEQUENCES)}, got {list(orders)}")
    sequences = [ORDER_SEQUENCES[o] for o in ORDER_SEQUENCES if o in orders]
    return Plan(first_tasks=tuple(("single", seq[:1]) for seq in sequences),
                transfer=tuple(("transfer", seq) for seq in sequences),
                lifelong=tuple(sequences),
                multi=tuple(("multi", seq[:2]) for seq in sequences if multi_pairs)
                + (("multi", CLOCKWISE),))


# Which attacker Fig. 2 shows: the paper shows its lifelong attacker; fall back in order.
FIGURE2_ROWS = (("Lifelong", "CNN-4 + VGG-16 + ResNet-50"), ("Lifelong", "ResNet-50 + VGG-16 + CNN-4"),
                ("Transfer", "CNN-4 + VGG-16 + ResNet-50"), ("Multi-task", "CNN-4 + VGG-16 + ResNet-50"),
                ("Single-task", "CNN-4"), ("Single-task", "ResNet-50"))


def lambda_objective(dev_uars: Mapping[str, float]) -> float:
    """The one lambda rule's objective: the mean adversarial *dev* UAR, over the sequence's
    defences, of the attacker after the sequence's last task (lower = stronger). The tuner
    minimises it (`tuning.py`, written to best.json) and Table 1's lifelong rows take the
    lambda it chose for their sequence; for a sweep without best.json the report applies
    this same rule to the evaluation's dev results. Both rows of a sequence (its 2- and
    3-defence prefixes) use its one lambda: the paper chooses per row, which picks the
    2-defence row's lambda by how that attacker does against the third defence it was
    never trained on."""
    values = [v for v in dev_uars.values() if v is not None and math.isfinite(v)]
    return float(sum(values) / len(values)) if values else math.inf


def choose_lambda(objectives: Mapping[float, float]) -> float:
    """The lambda with the lowest `lambda_objective` (the smaller lambda on a tie).
    Raises ValueError when there is none."""
    if not objectives:
        raise ValueError("no lambda to choose from")
    return min(sorted(objectives), key=lambda lam: objectives[lam])
