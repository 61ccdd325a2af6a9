"""What makes defences share adversarial directions (issue 30, item 0).

On the main job's defences nothing transfers, not even PGD, down to ~10 dB: even two CNN-4s
trained alike with two seeds keep their adversarial directions nearly private. This measures
which change to the *source* (the surrogate attacks are crafted on) makes its perturbations
carry to other defences, each change against the same-architecture control (CNN-4 seed 1)
and across architectures (VGG-16, ResNet-50):

- plain: the run's CNN-4 (the main job's recipe);
- lightly adversarial: that CNN-4 fine-tuned 40 steps on half PGD clips (L∞ 0.032, 5 steps),
  `tfadvser harden` (a little robustness, Springer et al. 2021);
- SpecAugment 0.5: CNN-4 trained with SpecAugment views (`DefenceConfig.spec_augment`);
- longer (3x steps) and wider (2x channels) CNN-4.

Every changed recipe also trains its own seed-1 twin: "does the recipe make two models
trained alike share directions" is the twin column; the plain control, VGG-16 and ResNet-50
columns are the transfer a user of that surrogate would get against the plain defences.

Each source is scanned like the report's scan (`experiment/budget_scan.py`: noise, PGD,
MI-FGSM and DI-FGSM at 30, 20, 15, 10, 5, 0 dB, 10 iterations, on 96 seeded test clips) and
summarised by SNR₅₀ with its clip-bootstrap interval (`evaluation/snr50.py`). Learned
attackers: one single-task attacker (⅛ width, L∞ 0.032, 300 steps) per chosen source,
trained on it and scanned by scaling like the report's.

    python benchmarks/transfer_testbed.py --run runs/synth --data tfrecords/synth

writes benchmarks/transfer_testbed.json (as sources finish: a rerun resumes) and .md. The
variants' defences train in --work (reused when finished).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from attack_recipes import work_run  # noqa: E402

# Changed CNN-4 recipes trained in runs of their own: DefenceConfig field changes.
RECIPES = {
    "SpecAugment 0.5": {"spec_augment": 0.5},
    "3x longer (600 steps)": {"steps": 600},
    "2x wider (width 0.5)": {"width": 0.5},
}
HARDENED = "lightly adversarial (40 steps, PGD 0.032)"
PLAIN = "plain"
LEARNED_ON = (PLAIN, HARDENED)
ATTACKER_BUDGET = 0.032
ATTACKER_STEPS = 300


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a main-job run (cnn4, cnn4-seed1, vgg16, resnet50)")
    parser.add_argument("--data", required=True, type=Path, help="its prepared data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/transfer_testbed"))
    parser.add_argument("--out", type=Path, default=HERE / "transfer_testbed.json")
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--sources", default="all", help="comma-separated source names or all")
    args = parser.parse_args(argv)

    from tfadvser.attack.tasks import load_generator
    from tfadvser.attack.training import train_attacker
    from tfadvser.config import Budget, get_profile
    from tfadvser.data.dataset import make_dataset
    from tfadvser.data.folder import load_data
    from tfadvser.defence.external import parse_victim_option
    from tfadvser.defence.training import MODEL_FILE, train_defence
    from tfadvser.defence.victims import load_defence
    from tfadvser.evaluation.scoring import labels_of, perturb, predictions
    from tfadvser.evaluation.statistics import uar_batch
    from tfadvser.experiment.budget_scan import ScanPlan, budget_scan, scan_subset, summarise
    from tfadvser.experiment.hardening import harden

    plan = ScanPlan("testbed", (30.0, 20.0, 15.0, 10.0, 5.0, 0.0), clips=args.clips, steps=10,
                    transfer_max_db=20.0)
    data = load_data(args.data)
    small = get_profile("small")
    results = json.loads(args.out.read_text()) if args.out.exists() else {"sources": {}}

    def save():
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(args.out)
        args.out.with_suffix(".md").write_text(render(results))

    # The defences: the run's, the hardened CNN-4 (in a work run linked to the run's
    # defences) and each recipe's CNN-4 and its seed-1 twin.
    main_work = work_run(args.run, args.work / "main")
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    models, costs, twins = {}, {}, {}
    for name, folder in ((PLAIN, "cnn4"), ("control: cnn4 seed 1", "cnn4-seed1"),
                         ("vgg16", "vgg16"), ("resnet50", "resnet50")):
        models[name] = load_defence(args.run, folder, data)
    hardened = harden(data.path, main_work, "cnn4", small, pgd_epsilon=0.032, pgd_steps=5,
                      steps=40, log=log)
    models[HARDENED] = load_defence(main_work, hardened["model"], data)
    costs[HARDENED] = hardened["seconds"]
    for name, change in RECIPES.items():
        profile = dataclasses.replace(small, defence=dataclasses.replace(small.defence, **change))
        run = args.work / slug(name)
        started = time.time()
        for seed, key in ((None, name), (1, f"{name} seed 1")):
            result = train_defence(data.path, "cnn4", profile, run, verbose=2, seed=seed)
            folder = "cnn4" if seed is None else "cnn4-seed1"
            models[key] = load_defence(run, folder, data)
            log(f"{key}: test UAR {result['test']['uar']:.3f} ({result['seconds']:.0f} s)")
        costs[name] = round((time.time() - started) / 2, 1)
        twins[name] = f"{name} seed 1"
    twins[PLAIN] = "control: cnn4 seed 1"

    batches = list(make_dataset(data, "test", 64))
    x_all = np.concatenate([np.asarray(b[0]) for b in batches])
    y_all = labels_of(batches)
    subset = scan_subset(len(x_all), plan)
    x, y = x_all[subset], y_all[subset]
    clean = {name: float(uar_batch(y_all, predictions(m, batches), data.n_classes))
             for name, m in models.items()}
    results["settings"] = {"plan": plan.to_dict(), "test_clips": int(len(x_all)),
                           "clean_test_uar": clean, "seconds_to_train": costs,
                           "attacker": {"epsilon": ATTACKER_BUDGET, "steps": ATTACKER_STEPS,
                                        "width": small.attacker.width}}
    save()

    sources = [PLAIN, HARDENED, *RECIPES]
    if args.sources != "all":
        sources = [s for s in sources if s in args.sources.split(",")]
    for source in sources:
        if source in results["sources"]:
            continue
        targets = [source, "control: cnn4 seed 1", "vgg16", "resnet50"]
        if source in twins and twins[source] not in targets:
            targets.insert(1, twins[source])
        learned = {}
        if source in LEARNED_ON:
            # The hardened CNN-4 is trained against as the user's own model would be.
            victims = () if source == PLAIN else (parse_victim_option(
                f"hardened={main_work / 'defences' / hardened['model'] / MODEL_FILE}"),)
            started = time.time()
            record = train_attacker(data.path, main_work, "single",
                                    ["cnn4" if source == PLAIN else "hardened"], small, verbose=2,
                                    victims=victims, budget=Budget(ATTACKER_BUDGET),
                                    first_steps=ATTACKER_STEPS)
            generator = load_generator(main_work, record["tasks"][-1])
            eta = np.concatenate([np.asarray(e) for _, _, e in
                                  perturb(generator, [(x[i:i + 32], None) for i in range(0, len(x), 32)])])
            learned[f"single-task attacker on {source}"] = (eta, Budget(ATTACKER_BUDGET))
            log(f"attacker on {source}: {time.time() - started:.0f} s")
        started = time.time()
        scan = budget_scan(x, y, {t: models[t] for t in targets}, [source], data.labels,
                           data.mean, data.std, plan=plan, learned=learned,
                           progress=lambda d, n: log(f"  {source}: {d}/{n}") if d % 10 == 0 else None)
        summary = summarise(scan, y, data.n_classes)
        results["sources"][source] = {
            "targets": targets, "seconds": round(time.time() - started, 1),
            "snr50": summary}
        save()
        log(f"{source}: scanned in {time.time() - started:.0f} s")
    return 0


def render(results: dict) -> str:
    from tfadvser.evaluation.snr50 import format_with_interval

    settings = results.get("settings", {})
    lines = ["# What makes defences share adversarial directions (issue 30, item 0)", "",
             "Written by `benchmarks/transfer_testbed.py` (its docstring says what is measured). "
             "Cells: SNR₅₀ in dB [95 % clip-bootstrap interval], the SNR at which the attack "
             "takes the target halfway from clean UAR to chance; higher is a quieter "
             "successful attack; `< 0` / `> 30`: outside the scan (a censored bound is the point's measured SNR). The diagonal (source = "
             "target) is white-box.", ""]
    if settings:
        plan = settings["plan"]
        lines += [f"Scan: {', '.join(f'{s:g}' for s in plan['snrs'])} dB, {plan['clips']} seeded "
                  f"test clips, {plan['steps']} iterations; MI-/DI-FGSM at ≤ {plan['transfer_max_db']:g} dB.", "",
                  "| defence | clean test UAR (all test clips) | seconds to train |", "|---|---|---|"]
        for name, uar in settings["clean_test_uar"].items():
            cost = settings["seconds_to_train"].get(name, "")
            lines.append(f"| {name} | {100 * uar:.1f} | {cost} |")
        lines.append("")
    for source, entry in results.get("sources", {}).items():
        targets = entry["targets"]
        lines += [f"## Source: {source}", "", "| attack | " + " | ".join(targets) + " |",
                  "|---|" + "---|" * len(targets)]
        for attack, cells in entry["snr50"].items():
            row = ["" if cells.get(t) is None else format_with_interval(cells[t]) for t in targets]
            lines.append(f"| {attack} | " + " | ".join(row) + " |")
        lines += ["", f"({entry['seconds']:.0f} s)", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
