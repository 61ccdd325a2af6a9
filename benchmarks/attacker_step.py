"""Where a learned attacker's training step spends its time (issue 30: steps are the
currency; a 1/4-width generator step against CNN-4 cost ~0.6 s on 2 cores).

Times, as the median of repeated calls after a warm-up, on random standardised log-Mels
(batch 16, 373 x 64; timing does not depend on the weights' values):

- the whole compiled train step of `AdversarialAttacker` for several recipes (budget with
  and without the SNR floor, head, input diversity, a feature loss);
- its parts, each as its own traced function: the generator forward; the generator forward
  and backward; the SNR floor's bisection (`budget.snr_scale`); the defence forward; the
  defence forward and backward to its input.

    python benchmarks/attacker_step.py [--widths 0.25,0.125] [--repeats 10]

writes benchmarks/attacker_step.json and attacker_step.md. Run it on an otherwise idle
machine: the numbers are wall-clock seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import median_time  # noqa: E402  the benchmarks' one timer

SHAPE = (373, 64)
BATCH = 16


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="0.25,0.125",
                        help="generator widths, comma-separated (the long profile's, the small one's)")
    parser.add_argument("--defence-width", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=HERE / "attacker_step.json")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from tfadvser.attack.attacker import AdversarialAttacker, build_generator
    from tfadvser.attack.budget import snr_scale
    from tfadvser.attack.cache import feature_layers, learning_rate
    from tfadvser.config import AttackerConfig, Budget
    from tfadvser.defence.models import build_defence

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH, *SHAPE)).astype(np.float32))
    y = tf.constant(rng.integers(0, 7, BATCH).astype(np.int32))
    mean, std = np.full(64, -4.0, np.float32), np.full(64, 2.0, np.float32)
    defence = build_defence("cnn4", 7, args.defence_width, SHAPE)
    defence.trainable = False

    def measure(width):
        recipes = {
            "tanh head, L∞ 0.008 + SNR ≥ 30 dB (the product's default)": {},
            "tanh head, L∞ 0.032, no SNR floor": {"snr_db": None, "epsilon": 0.032},
            "scale head, L∞ 0.032, no floor": {"snr_db": None, "epsilon": 0.032, "head": "scale"},
            "scale head + input diversity 0.5, L∞ 0.032": {"snr_db": None, "epsilon": 0.032, "head": "scale",
                                                           "diversity": 0.5},
            "scale head + CE + feature-cos, L∞ 0.032": {"snr_db": None, "epsilon": 0.032, "head": "scale",
                                                        "losses": ("ce", "feature-cos")},
        }
        rows = {}
        for name, changes in recipes.items():
            config = AttackerConfig(width=width, **changes)
            generator = build_generator(config.width, SHAPE, config.budget, mean, std, head=config.head)
            attacker = AdversarialAttacker(generator, [defence], alpha=config.cw_weight,
                                           losses=config.losses, diversity=config.diversity,
                                           feature_layers=feature_layers([defence], config))
            attacker.compile(optimizer=keras.optimizers.Adam(learning_rate(config)))
            # The step as `fit` runs it: `train_step` traced once (Keras' `train_on_batch` would
            # retrace its iterator function on every call here and time the tracing).
            step = tf.function(attacker.train_step)
            rows[name] = median_time(lambda: step((x, y)), args.repeats)
            print(f"width {width}, {name}: {rows[name]:.3f} s/step", flush=True)

        plain = build_generator(width, SHAPE, Budget(0.032, None))

        @tf.function
        def generator_forward():
            return plain(x, training=True)

        @tf.function
        def generator_forward_backward():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(plain(x, training=True))
            return tape.gradient(loss, plain.trainable_weights)

        eta = plain(x)

        @tf.function
        def snr_floor():
            return snr_scale(x, eta, mean, std, 30.0)

        @tf.function
        def defence_forward():
            return defence(x, training=False)

        @tf.function
        def defence_forward_backward():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(defence(x, training=False))
            return tape.gradient(loss, x)

        parts = {"generator forward": generator_forward,
                 "generator forward + backward": generator_forward_backward,
                 "SNR floor (12-step bisection)": snr_floor,
                 "CNN-4 forward": defence_forward,
                 "CNN-4 forward + backward to the input": defence_forward_backward}
        part_times = {}
        for name, fn in parts.items():
            part_times[name] = median_time(fn, args.repeats)
            print(f"width {width}, {name}: {part_times[name]:.3f} s", flush=True)
        return rows, part_times

    widths = [float(w) for w in args.widths.split(",")]
    measured = {w: measure(w) for w in widths}

    result = {"widths": widths, "defence_width": args.defence_width, "batch": BATCH,
              "repeats": args.repeats,
              "steps": {str(w): rows for w, (rows, _) in measured.items()},
              "parts": {str(w): parts for w, (_, parts) in measured.items()},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "tensorflow": tf.__version__}}
    args.out.write_text(json.dumps(result, indent=1))
    heads = " | ".join(f"width {w:g}: s/step | steps in 30 min" for w in widths)
    lines = ["# The attacker's training step: where the time goes", "",
             f"Generator widths {', '.join(f'{w:g}' for w in widths)} against a width-{args.defence_width:g} "
             f"CNN-4, batch {BATCH}, random standardised log-Mels, the compiled `train_step`, median "
             f"of {args.repeats} after a warm-up, {os.cpu_count()} cores, otherwise idle "
             "(`python benchmarks/attacker_step.py`).", "",
             f"| train step | {heads} |", "|---|" + "---|---|" * len(widths)]
    for name in measured[widths[0]][0]:
        cells = " | ".join(f"{measured[w][0][name]:.3f} | {int(1800 / measured[w][0][name])}" for w in widths)
        lines.append(f"| {name} | {cells} |")
    lines += ["", "| part (traced alone) | " + " | ".join(f"width {w:g} [s]" for w in widths) + " |",
              "|---|" + "---|" * len(widths)]
    for name in measured[widths[0]][1]:
        lines.append(f"| {name} | " + " | ".join(f"{measured[w][1][name]:.3f}" for w in widths) + " |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
