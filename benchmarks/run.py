"""Measured speed and memory, side by side in one run; writes results.json and results.md.

    python benchmarks/run.py            # full measurements (about 15 minutes on 2 cores)
    python benchmarks/run.py --tiny     # a seconds-long smoke run of the same code (tests use it)

Every figure is the median of several repetitions after a warm-up; ratios are computed
within the run. FLOPs are counted analytically from the convolution shapes
(original-code-facts section 11): 2 x MACs, a training step ~ 3 x forward.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def conv_macs(model) -> int:
    """Multiply-accumulates of every Conv2D and Dense layer of a functional Keras model."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            h, w, c_out = layer.output.shape[1:]
            kh, kw, c_in, _ = layer.kernel.shape
            total += h * w * c_out * c_in * kh * kw
        elif isinstance(layer, keras.layers.Dense):
            total += int(layer.kernel.shape[0] * layer.kernel.shape[1])
    return total


def matmul_gflops(size: int, repeats: int) -> float:
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    step = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    seconds = median_time(lambda: step().numpy(), repeats)
    return 2 * size ** 3 / seconds / 1e9


def attacker_step(width: float, batch: int, steps: int, repeats: int, precision: str) -> dict:
    """Examples/s and achieved GFLOP/s of AdversarialAttacker.train_step against CNN-4."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tfadvser.attack.attacker import AdversarialAttacker, build_generator
    from tfadvser.defence.models import build_defence

    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        generator = build_generator(width)
        defence = build_defence("cnn4", 7, width)
        attacker = AdversarialAttacker(generator, [defence])
        attacker.compile(optimizer=keras.optimizers.Adam(1e-4))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(batch * steps, 373, 64)).astype("float32")
        y = rng.integers(0, 7, batch * steps)
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache().repeat()
        history = {}

        def run():
            history.update(attacker.fit(data, steps_per_epoch=steps, epochs=1, verbose=0).history)

        seconds = median_time(run, repeats) / steps
    finally:
        keras.mixed_precision.set_global_policy("float32")
    flops = 3 * 2 * (conv_macs(generator) + conv_macs(defence)) * batch
    return {"precision": precision, "width": width, "batch": batch, "seconds_per_step": seconds,
            "examples_per_second": batch / seconds, "gflops": flops / seconds / 1e9,
            "loss": float(history["loss"][-1]), "success_rate": float(history["success_rate"][-1])}


def short_run(data_dir: str, width: float, steps: int, precision: str) -> dict:
    """Final loss and fooling rate of a short attacker run on the benchmark's prepared data
    (a CNN-4 defence trained for a few steps first), to compare the two precisions: the
    speed figures above run on random inputs, where nothing is fooled."""
    import keras

    from tfadvser.attack.attacker import AdversarialAttacker, build_generator
    from tfadvser.data.dataset import make_dataset
    from tfadvser.defence.models import build_defence

    train = make_dataset(data_dir, "train", 16, shuffle=True, repeat=True, drop_remainder=True)
    keras.utils.set_random_seed(0)
    defence = build_defence("cnn4", 7, width)  # float32: the same defence for both runs
    defence.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    defence.fit(train, steps_per_epoch=steps, epochs=1, verbose=0)
    defence.trainable = False
    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(1)
        attacker = AdversarialAttacker(build_generator(width), [defence])
        attacker.compile(optimizer=keras.optimizers.Adam(1e-2))
        history = attacker.fit(train, steps_per_epoch=steps, epochs=1, verbose=0).history
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {"precision": precision, "width": width, "steps": steps,
            "loss": float(history["loss"][-1]), "success_rate": float(history["success_rate"][-1])}


def input_pipeline(data_dir: str, batch: int, repeats: int) -> float:
    from tfadvser.data.dataset import make_dataset

    dataset = make_dataset(data_dir, "train", batch, shuffle=True, repeat=True)
    batches = 200

    def run():
        for _ in dataset.take(batches):
            pass

    return batches * batch / median_time(run, repeats)


def prepare_speed(corpus: str, repeats: int) -> dict:
    """Files/s of `prepare` (parallel tf.data) against a plain sequential loop of
    soundfile + librosa + scipy on the same files (the original's extractor)."""
    from tfadvser.data.audio import read_mono_numpy
    from tfadvser.config import FeatureConfig
    from tfadvser.data.features import reference_fix_length, reference_log_mel
    from tfadvser.data.prepare import prepare

    files = sorted(p for p in Path(corpus).glob("*.wav") if "_neu" not in p.name)
    config = FeatureConfig()

    def sequential():
        for path in files:
            reference_fix_length(reference_log_mel(read_mono_numpy(path, 16000), config), config)

    def parallel():
        with tempfile.TemporaryDirectory() as tmp:
            prepare(corpus, "demos", Path(tmp) / "out", progress=False)

    seq = len(files) / median_time(sequential, repeats)
    par = len(files) / median_time(parallel, repeats)
    return {"files": len(files), "sequential_files_per_second": seq,
            "prepare_files_per_second": par, "speedup": par / seq}


def peak_memory(args: list[str]) -> float:
    """Peak resident memory (MiB) of a child process running benchmarks/memory_probe.py."""
    out = subprocess.run([sys.executable, str(HERE / "memory_probe.py"), *args],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def evaluation_speed(width: float, repeats: int) -> float:
    """Clips/s of `tfadvser evaluate`'s inner loop, in its batch size, on 4 batches."""
    import keras
    import numpy as np

    from tfadvser.attack.attacker import build_generator
    from tfadvser.defence.models import build_defence
    from tfadvser.evaluation.scoring import EVAL_BATCH, perturb, predictions

    keras.utils.set_random_seed(0)
    generator, defence = build_generator(width), build_defence("cnn4", 7, width)
    x = np.random.default_rng(0).normal(size=(EVAL_BATCH, 373, 64)).astype("float32")
    batches = [(x, np.zeros(EVAL_BATCH, int))] * 4
    seconds = median_time(lambda: predictions(defence, perturb(generator, batches)), repeats)
    return 4 * EVAL_BATCH / seconds


def machine() -> dict:
    info = {"python": platform.python_version(), "machine": platform.machine(),
            "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags"))
        info["bf16"] = any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))
    except (OSError, StopIteration):
        pass
    import tensorflow as tf

    info["tensorflow"] = tf.__version__
    return info


def make_data(root: Path, speakers: int, utterances: int) -> tuple[str, str]:
    from tfadvser.data.prepare import prepare
    from tfadvser.data.synth import synthesize_corpus

    corpus, data = root / "corpus", root / "data"
    synthesize_corpus(corpus, n_speakers=speakers, utterances=utterances, difficulty=0.5, seed=0)
    prepare(corpus, "demos", data, progress=False)
    return str(corpus), str(data)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--out", default=str(HERE), help="where results.json/.md go")
    args = parser.parse_args(argv)
    tiny = args.tiny
    width = 0.0625 if tiny else 1.0
    repeats = 1 if tiny else 3
    started = time.time()
    results = {"machine": machine(), "tiny": tiny}
    with tempfile.TemporaryDirectory() as tmp:
        corpus, data = make_data(Path(tmp), 3 if tiny else 6, 1 if tiny else 4)
        results["matmul_gflops"] = matmul_gflops(512 if tiny else 4096, repeats)
        fp32 = attacker_step(width, 16, 2 if tiny else 3, repeats, "float32")
        results["attacker_step"] = {"float32": fp32}
        if results["machine"].get("bf16") or tiny:
            results["attacker_step"]["mixed_bfloat16"] = attacker_step(width, 16, 2 if tiny else 3,
                                                                        repeats, "mixed_bfloat16")
            results["short_run"] = {p: short_run(data, 0.125, 4 if tiny else 60, p)
                                    for p in ("float32", "mixed_bfloat16")}
        results["input_pipeline_examples_per_second"] = input_pipeline(data, 16, repeats)
        results["prepare"] = prepare_speed(corpus, repeats)
        profile = "smoke" if tiny else "small"
        run = str(Path(tmp) / "run")
        peak_memory(["setup", data, run, profile])
        results["peak_memory_mib"] = {
            "profile": profile,
            "multi_task_3_defences": peak_memory(["multi", data, run, profile]),
            "lifelong_later_task": peak_memory(["lifelong", data, run, profile])}
        results["evaluation_clips_per_second"] = evaluation_speed(width, repeats)
    results["seconds"] = round(time.time() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(render(results))
    print(render(results))
    return results


def render(r: dict) -> str:
    fp32 = r["attacker_step"]["float32"]
    bf16 = r["attacker_step"].get("mixed_bfloat16")
    consumption = fp32["examples_per_second"]
    rows = [
        ("attacker step (width %g, batch 16, vs CNN-4), float32" % fp32["width"],
         f"{fp32['examples_per_second']:.2f} ex/s, {fp32['gflops']:.1f} GFLOP/s",
         "≥ 80 % of matmul", _met(fp32["gflops"] >= 0.8 * r["matmul_gflops"]),
         f"{100 * fp32['gflops'] / r['matmul_gflops']:.0f} % of {r['matmul_gflops']:.1f} GFLOP/s")]
    if bf16:
        short = r["short_run"]
        a, b = short["float32"], short["mixed_bfloat16"]
        rows.append(("attacker step, mixed_bfloat16", f"{bf16['examples_per_second']:.2f} ex/s",
                     "≥ 1.5 × float32", _met(bf16["examples_per_second"] >= 1.5 * consumption),
                     f"{bf16['examples_per_second'] / consumption:.2f} ×; short run ({a['steps']} "
                     f"steps, width {a['width']:g}, real data): loss {b['loss']:.3f} vs "
                     f"{a['loss']:.3f}, fooling rate {b['success_rate']:.2f} vs {a['success_rate']:.2f}"))
    pipe = r["input_pipeline_examples_per_second"]
    rows.append(("input pipeline (read, parse, standardise, batch)", f"{pipe:.0f} ex/s",
                 "≥ 10 × training consumption", _met(pipe >= 10 * consumption),
                 f"{pipe / consumption:.0f} × the float32 step"))
    p = r["prepare"]
    rows.append(("prepare (tf.data, parallel) vs sequential scipy + librosa",
                 f"{p['prepare_files_per_second']:.1f} vs {p['sequential_files_per_second']:.1f} files/s",
                 "≥ 1.8 ×", _met(p["speedup"] >= 1.8), f"{p['speedup']:.2f} × on {p['files']} files"))
    m = r["peak_memory_mib"]
    rows.append(("peak RSS: multi-task (3 defences) vs lifelong later task",
                 f"{m['multi_task_3_defences']:.0f} vs {m['lifelong_later_task']:.0f} MiB",
                 "lifelong < multi-task (paper's claim)",
                 _met(m["lifelong_later_task"] < m["multi_task_3_defences"]), ""))
    rows.append(("evaluation (attacker + CNN-4, inference)", f"{r['evaluation_clips_per_second']:.1f} clips/s",
                 "", "", ""))
    lines = ["# Benchmarks", "", f"Machine: {json.dumps(r['machine'])}", "",
             f"Large float32 matmul: {r['matmul_gflops']:.1f} GFLOP/s." + (" (tiny smoke run: numbers mean nothing)" if r["tiny"] else ""),
             "", "| what | measured | target | met | detail |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    lines += ["", f"Total benchmark time: {r['seconds']} s.", ""]
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


if __name__ == "__main__":
    main()
