"""Child process for the memory benchmark: one attacker task, then its peak RSS in MiB.

    python benchmarks/memory_probe.py setup|multi|lifelong DATA_DIR RUN_DIR PROFILE

setup (not measured): the three defences and the CNN-4 first task. multi: one task against
CNN-4, VGG-16 and ResNet-50 at once. lifelong: the later task of CNN-4 -> VGG-16, i.e. the
new defence, the Fisher estimate and the anchor (plus CNN-4, which the training monitor
keeps loaded to report every defence of the sequence).
"""
import os
import resource
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(mode: str, data: str, run: str, profile_name: str) -> None:
    from tfadvser.attacker_training import train_attacker
    from tfadvser.config import get_profile
    from tfadvser.defence_training import train_defence

    profile = get_profile(profile_name)
    if mode == "setup":
        for name in ("cnn4", "vgg16", "resnet50"):
            train_defence(data, name, profile, run, verbose=0)
        train_attacker(data, run, "single", ["cnn4"], profile, verbose=0)
    elif mode == "multi":
        train_attacker(data, run, "multi", ["cnn4", "vgg16", "resnet50"], profile, verbose=0)
    elif mode == "lifelong":
        train_attacker(data, run, "lifelong", ["cnn4", "vgg16"], profile, ewc_lambda=1e5, verbose=0)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main(*sys.argv[1:])
