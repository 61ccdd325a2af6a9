"""Child process for the memory benchmark: one attacker task, then its peak RSS in MiB.

    python benchmarks/memory_probe.py setup|multi|lifelong DATA_DIR RUN_DIR PROFILE

setup (not measured): the three defences and the CNN-4 first task. multi: one task against
CNN-4, VGG-16 and ResNet-50 at once. lifelong: the later task of CNN-4 -> VGG-16, i.e. the
new defence, the Fisher estimate and the anchor (plus CNN-4, which the training monitor
keeps loaded to report every defence of the sequence).

Memory depends on the widths and the batch size, not on how many steps run, so the probes
keep the profile's networks and batches and cut every schedule to a few steps.

The peak is VmHWM from /proc/self/status: getrusage's ru_maxrss survives exec, so a child
would report its parent's size whenever that is larger.
"""
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(mode: str, data: str, run: str, profile_name: str) -> None:
    from tfadvser.attack.training import train_attacker
    from tfadvser.config import get_profile
    from tfadvser.defence.training import train_defence

    profile = get_profile(profile_name)
    profile = dataclasses.replace(
        profile,
        defence=dataclasses.replace(profile.defence, steps=4, steps_per_epoch=2),
        attacker=dataclasses.replace(profile.attacker, first_steps=4, later_steps=4,
                                     multi_steps=4, monitor_every=4))
    if mode == "setup":
        for name in ("cnn4", "vgg16", "resnet50"):
            train_defence(data, name, profile, run, verbose=0)
        train_attacker(data, run, "single", ["cnn4"], profile, verbose=0)
    elif mode == "multi":
        train_attacker(data, run, "multi", ["cnn4", "vgg16", "resnet50"], profile, verbose=0)
    elif mode == "lifelong":
        train_attacker(data, run, "lifelong", ["cnn4", "vgg16"], profile, strength=1e5, verbose=0)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    status = Path("/proc/self/status").read_text()
    peak_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    print(peak_kib / 1024)


if __name__ == "__main__":
    main(*sys.argv[1:])
