"""Run by test_distribute.py in a fresh process: the CPU must be split into two logical
devices before TensorFlow starts, which a pytest process that already ran TF cannot do.

    python tests/mirrored_check.py DATA OUT_DIR

Trains, through the library entry points, one epoch of a smoke CNN-4 defence and a
2-task lifelong attacker (4 + 2 steps, with EWC) on one device into OUT_DIR/one, and the
same under MirroredStrategy over two CPU devices into OUT_DIR/two, starting from the same
defences; prints one JSON line with what the test compares.
"""
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TFADVSER_CPU_DEVICES"] = "2"

from tfadvser.runtime.distribute import make_strategy  # noqa: E402

mirrored = make_strategy("mirrored")  # first: splits the CPU before TF sets up devices

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Same inputs, same result on every run: what remains between the two runs is only the
# replicas' other order of summation, not thread-timing noise.
tf.config.experimental.enable_op_determinism()

from tfadvser.attack.training import train_attacker  # noqa: E402
from tfadvser.config import get_profile  # noqa: E402
from tfadvser.defence.training import train_defence  # noqa: E402
from tfadvser.runtime.files import read_json  # noqa: E402

data, out = sys.argv[1], Path(sys.argv[2])
smoke = get_profile("smoke")
# One epoch of two steps at a global batch of 4 (2 per replica).
profile = dataclasses.replace(smoke, defence=dataclasses.replace(smoke.defence, steps=2))


def weights(path):
    return [w.tolist() for w in keras.saving.load_model(path, compile=False).get_weights()]


def run(name, strategy):
    root = out / name
    with strategy.scope():
        train_defence(data, "cnn4", profile, root / "defence", verbose=0)
    if name == "one":
        train_defence(data, "vgg16", profile, root / "defence", verbose=0)
    # The attackers of both runs face the very same defences: those trained on one device.
    shutil.copytree(out / "one" / "defence", root / "attack")
    with strategy.scope():
        # The paper's attacker: its loss terms are far from 0, so relative comparisons of
        # the replicas' sums mean something (the bounded one's eta_mean is ~0).
        record = train_attacker(data, root / "attack", "lifelong", ["cnn4", "vgg16"], profile,
                                strength=1e3, verbose=0, perturbation="paper")
    tasks = [root / "attack" / t["path"] for t in record["tasks"]]
    with np.load(tasks[0] / "ewc-batch-32clips.npz") as fisher:
        fisher = [fisher[f"fisher_{i}"].tolist() for i in range(len(fisher["names"]))]
    return {
        "replicas": strategy.num_replicas_in_sync,
        "defence_metrics": read_json(root / "defence/defences/cnn4/results.json")["final_train_metrics"],
        "defence_weights": weights(root / "defence/defences/cnn4/model.keras"),
        "attacker_metrics": [read_json(t / "task.json")["final_train_metrics"] for t in tasks],
        "attacker_weights": weights(tasks[-1] / "generator.keras"),
        "fisher": fisher,
    }


result = {"one": run("one", tf.distribute.get_strategy()), "two": run("two", mirrored)}
print(json.dumps(result))
