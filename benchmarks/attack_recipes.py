"""The generator-recipe ablation (issue 30): which recipe makes the learned attacker attack.

Each recipe trains a single-task attacker on CNN-4 with the same seeds, steps and width, at
two budgets (the product's L∞ 0.008 + SNR >= 30 dB and a loud L∞ 0.032 without a floor),
and is scored on the test split against every defence of the run: adversarial UAR beside
noise matched to its own perturbation (the paired difference with its interval), its
training curves (success on the training batches and on the monitor's dev clips against
steps), seconds per step and peak memory. Per budget, once: the transfer baselines from the
same source (noise at the budget, PGD, MI-FGSM, DI-FGSM crafted on CNN-4) and the ensemble
MI-FGSM crafted on every defence but the target, on a seeded subset of test clips.

Every recipe trains in a work run of its own whose defences are links to the given run's,
so trained tasks are found again: an interrupted ablation resumes where it stopped.

    python benchmarks/attack_recipes.py --run runs/synth --data tfrecords/synth \\
        --steps 200 --seeds 0,1 --width 0.125

writes benchmarks/attack_recipes.json (appended to as cells finish) and attack_recipes.md.
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

RECIPES = {
    "tanh + C&W (today's default)": {},
    "scale + C&W": {"head": "scale"},
    "scale + CE": {"head": "scale", "losses": ("ce",)},
    "scale + RCE + feature-cos": {"head": "scale", "losses": ("rce", "feature-cos")},
    "scale + CE + DI 0.5 + curriculum 4": {"head": "scale", "losses": ("ce",), "diversity": 0.5,
                                           "curriculum": 4.0},
    # Added after the first loud-budget cells showed the scale head below tanh: the field's
    # pieces on the tanh head.
    "tanh + C&W + DI 0.5": {"diversity": 0.5},
    "tanh + C&W + feature-cos": {"losses": ("cw", "feature-cos")},
}
# With --attacker-data DIR: the default recipe trained on that corpus of other speakers
# (`--attacker-data`, `data/attacker_data.py`) instead of the defences' training split.
ATTACKER_CORPUS = "tanh + C&W, attacker corpus of other speakers"
BUDGETS = {"30 dB (L∞ 0.008, SNR ≥ 30)": (0.008, 30.0), "loud (L∞ 0.032)": (0.032, None)}
BASELINE_CLIPS = 128
SOURCE = "cnn4"


def work_run(run_dir: Path, work: Path) -> Path:
    """A run folder sharing `run_dir`'s defences (links) and run.json."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "defences").mkdir(exist_ok=True)
    if not (work / "run.json").exists():
        (work / "run.json").write_text((run_dir / "run.json").read_text())
    for defence in (run_dir / "defences").iterdir():
        link = work / "defences" / defence.name
        if not link.exists():
            link.symlink_to(defence.resolve(), target_is_directory=True)
    return work


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a run with trained defences")
    parser.add_argument("--data", required=True, type=Path, help="its prepared data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/attack_recipes"),
                        help="where the recipes' runs go (resumable)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--recipes", default="all", help="comma-separated recipe numbers (1-based) or all")
    parser.add_argument("--budgets", default="all", help="comma-separated budget numbers or all")
    parser.add_argument("--out", type=Path, default=HERE / "attack_recipes.json")
    parser.add_argument("--attacker-data", type=Path, default=None,
                        help=f"a prepared corpus of other speakers: adds the recipe {ATTACKER_CORPUS!r}")
    args = parser.parse_args(argv)
    if args.attacker_data is not None:
        RECIPES[ATTACKER_CORPUS] = {"attacker_data": str(args.attacker_data)}

    import keras

    from tfadvser.attack.baselines import budget_noise, di_fgsm, ensemble, matched_noise, mi_fgsm, pgd
    from tfadvser.attack.monitor import training_curves
    from tfadvser.attack.tasks import GENERATOR_FILE
    from tfadvser.attack.training import train_attacker
    from tfadvser.config import Budget, get_profile
    from tfadvser.data.dataset import make_dataset
    from tfadvser.data.folder import load_data
    from tfadvser.defence.victims import load_defence
    from tfadvser.evaluation.metrics import mel_snr_db
    from tfadvser.evaluation.statistics import paired_difference, uar_batch, uar_interval
    from tfadvser.runtime.inference import inference

    data = load_data(args.data)
    n_classes = data.n_classes
    profile = get_profile("small")
    defences = {d: load_defence(args.run, d, data) for d in ("cnn4", "vgg16", "resnet50")}
    forwards = {d: inference(m) for d, m in defences.items()}
    batches = list(make_dataset(data, "test", 32))
    x = np.concatenate([np.asarray(b[0]) for b in batches])
    y = np.concatenate([np.asarray(b[1]) for b in batches])

    def predict(d, xs):
        return np.concatenate([np.argmax(forwards[d](xs[i:i + 64]), -1) for i in range(0, len(xs), 64)])

    def uar(pred, truth=y):
        return float(uar_batch(truth, pred, n_classes))

    clean = {d: predict(d, x) for d in defences}
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results.setdefault("settings", {})
    results["settings"].update({"steps": args.steps, "width": args.width, "seeds": args.seeds,
                                "source": SOURCE, "test_clips": int(len(x)),
                                "baseline_clips": BASELINE_CLIPS,
                                "clean_uar": {d: uar(p) for d, p in clean.items()}})
    results.setdefault("baselines", {})
    results.setdefault("cells", {})

    def save():
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(args.out)
        (args.out.with_suffix(".md")).write_text(render(results))

    pick = lambda spec, names: names if spec == "all" else [names[int(i) - 1] for i in spec.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    for budget_name in pick(args.budgets, list(BUDGETS)):
        epsilon, snr = BUDGETS[budget_name]
        budget = Budget(epsilon, snr)
        if budget_name not in results["baselines"]:
            subset = np.sort(np.random.default_rng(0).permutation(len(x))[:BASELINE_CLIPS])
            xs, ys = x[subset], y[subset]
            rows, started = {}, time.time()
            crafted = {"noise at the budget": budget_noise(xs, budget, data.mean, data.std, seed=0)}
            for name, attack in (("PGD", pgd), ("MI-FGSM", mi_fgsm), ("DI-FGSM", di_fgsm)):
                crafted[f"{name} from CNN-4"] = attack(forwards[SOURCE], xs, ys, budget, data.mean, data.std)
            for name, eta in crafted.items():
                rows[name] = {d: _cell(ys, predict(d, xs + eta), n_classes, uar_interval) for d in defences}
                rows[name]["snr_db"] = float(np.mean(mel_snr_db(xs, eta, data.mean, data.std)))
            rows["ensemble MI-FGSM (all but the target)"] = {}
            for target in defences:
                others = [forwards[d] for d in defences if d != target]
                eta = mi_fgsm(ensemble(others), xs, ys, budget, data.mean, data.std)
                rows["ensemble MI-FGSM (all but the target)"][target] = _cell(
                    ys, predict(target, xs + eta), n_classes, uar_interval)
            rows["clean"] = {d: _cell(ys, clean[d][subset], n_classes, uar_interval) for d in defences}
            results["baselines"][budget_name] = {"rows": rows, "seconds": round(time.time() - started, 1)}
            save()
            print(f"[baselines] {budget_name}: {time.time() - started:.0f} s", flush=True)
        for recipe_name in pick(args.recipes, list(RECIPES)):
            for seed in seeds:
                key = f"{budget_name} | {recipe_name} | seed {seed}"
                if key in results["cells"]:
                    continue
                started = time.time()
                work = work_run(args.run, args.work / f"b{list(BUDGETS).index(budget_name)}"
                                f"-r{list(RECIPES).index(recipe_name)}")
                overrides = dict(RECIPES[recipe_name], seed=seed, width=args.width,
                                 first_steps=args.steps, perturbation="bounded", epsilon=epsilon,
                                 snr_db=snr, monitor_every=max(args.steps // 8, 1), monitor_clips=48)
                record = train_attacker(args.data, work, "single", [SOURCE], profile, verbose=0,
                                        **overrides)
                task_dir = work / record["tasks"][0]["path"]
                task = json.loads((task_dir / "task.json").read_text())
                generator = keras.saving.load_model(task_dir / GENERATOR_FILE, compile=False)
                g = inference(generator)
                eta = np.concatenate([np.asarray(g(x[i:i + 32])) for i in range(0, len(x), 32)])
                noise = matched_noise(eta, seed=1)
                cell = {"recipe": recipe_name, "budget": budget_name, "seed": seed,
                        "seconds_per_step": round(task["seconds"] / args.steps, 3),
                        "peak_rss_mb": task.get("peak_rss_mb"),
                        "snr_db": float(np.mean(mel_snr_db(x, eta, data.mean, data.std))),
                        "linf": float(np.abs(eta).max()),
                        "curves": training_curves(task_dir / "logs" / "monitor"),
                        "defences": {}}
                for d in defences:
                    adv, noisy = predict(d, x + eta), predict(d, x + noise)
                    cell["defences"][d] = {
                        "adversarial": _cell(y, adv, n_classes, uar_interval),
                        "matched_noise": _cell(y, noisy, n_classes, uar_interval),
                        # positive: the attacker leaves the defence less right than noise does
                        "noise_minus_attack": paired_difference(y, adv, noisy)}
                cell["seconds"] = round(time.time() - started, 1)
                results["cells"][key] = cell
                save()
                print(f"[cell] {key}: " + ", ".join(
                    f"{d} {100 * c['adversarial']['uar']:.1f} (noise {100 * c['matched_noise']['uar']:.1f})"
                    for d, c in cell["defences"].items()) + f"; {cell['seconds_per_step']} s/step", flush=True)
    save()
    return 0


def _cell(y, pred, n_classes, interval) -> dict:
    from tfadvser.evaluation.statistics import uar_batch

    low, high = interval(y, pred, n_classes)
    return {"uar": float(uar_batch(y, pred, n_classes)), "ci": [low, high]}


def render(results: dict) -> str:
    """The Markdown page of the ablation (UAR in %, 95 % intervals)."""
    s = results.get("settings", {})
    pct = lambda v: f"{100 * v:.1f}"
    ci = lambda c: f"{pct(c['uar'])} [{pct(c['ci'][0])}, {pct(c['ci'][1])}]"
    seeds = ",".join(str(v) for v in sorted({c["seed"] for c in results.get("cells", {}).values()}))
    lines = ["# Generator recipes: the ablation (issue 30)", "",
             f"Single-task attackers on CNN-4, {s.get('steps')} steps at width {s.get('width')}, seeds "
             f"{seeds} (each row says its own), scored on all {s.get('test_clips')} test clips of the built-in corpus. "
             "Adversarial UAR [%] with its 95 % interval, noise matched to the attacker's own "
             "perturbation, and the paired difference noise − attack [points] (positive: the "
             "attacker beats its noise). Baselines on a seeded subset of "
             f"{s.get('baseline_clips')} test clips. Clean test UAR: "
             + ", ".join(f"{d} {pct(v)}" for d, v in s.get("clean_uar", {}).items()) + ".",
             "Produced by `python benchmarks/attack_recipes.py` (its docstring gives the command). "
             "s/step is the task's wall time over its steps, with whatever else ran beside it: the "
             "cells of different sessions are not comparable (the first ran beside other jobs, "
             "at about three times the idle time); `benchmarks/attacker_step.md` times the step "
             "on an idle machine.", ""]
    for budget, base in results.get("baselines", {}).items():
        lines += [f"## {budget}", "", "### Baselines (same budget)", "",
                  "| attack | CNN-4 | VGG-16 | ResNet-50 | SNR [dB] |", "|---|---|---|---|---|"]
        for name, row in base["rows"].items():
            cells = " | ".join(ci(row[d]) if d in row else "" for d in ("cnn4", "vgg16", "resnet50"))
            snr = f"{row['snr_db']:.1f}" if "snr_db" in row else ""
            lines.append(f"| {name} | {cells} | {snr} |")
        lines += ["", "### Learned attackers", "",
                  "| recipe | seed | CNN-4 (own) | noise − attack | VGG-16 | noise − attack | "
                  "ResNet-50 | noise − attack | SNR [dB] | train / dev success, last (max) [%] | s/step | "
                  "peak RSS of the process [MB] |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for cell in results.get("cells", {}).values():
            if cell["budget"] != budget:
                continue
            parts = []
            for d in ("cnn4", "vgg16", "resnet50"):
                c = cell["defences"][d]
                diff = c["noise_minus_attack"]
                parts += [f"{ci(c['adversarial'])} (noise {pct(c['matched_noise']['uar'])})",
                          f"{100 * diff['difference']:+.1f} [{100 * diff['ci'][0]:+.1f}, {100 * diff['ci'][1]:+.1f}]"]
            curves = cell.get("curves", {})
            train = [rate for _, rate in curves.get("train", [])]
            dev = [rate for _, rate in curves.get("dev_subset", {}).get("cnn4", [])]
            fit = f"{_last_max(train)} / {_last_max(dev)}"
            lines.append(f"| {cell['recipe']} | {cell['seed']} | " + " | ".join(parts)
                         + f" | {cell['snr_db']:.1f} | {fit} | {cell['seconds_per_step']} | "
                         f"{cell.get('peak_rss_mb') or '–'} |")
        lines.append("")
    lines += ["The long run of the default recipe (¼ width, 2,000 steps, L∞ 0.032) and its curve "
              "against steps: [long_run.md](long_run.md).", ""]
    return "\n".join(lines) + "\n"


def _last_max(values) -> str:
    if not values:
        return "–"
    return f"{100 * values[-1]:.1f} ({100 * max(values):.1f})"


if __name__ == "__main__":
    sys.exit(main())
