"""The evaluation's files beside results.json, rendered from the results record: Table 1
as .md and .csv, the figures (Fig. 2 drawn here, the others also as TensorBoard images),
report.md with the continual-learning comparison (and continual.json), and the
self-contained report.html. `evaluate.evaluate_run` writes results.json itself, once;
nothing here writes it. `evaluate_and_report` runs both."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from tfadvser.attack.tasks import load_generator
from tfadvser.data.dataset import make_dataset
from tfadvser.data.folder import load_data
from tfadvser.defence.victims import VictimSpec
from tfadvser.evaluation.round_trip import AUDIO_CLIPS, LISTEN_CLIPS
from tfadvser.evaluation.scoring import EVAL_BATCH
from tfadvser.experiment import continual_report
from tfadvser.experiment.protocol import FIGURE2_ROWS, NAMES
from tfadvser.experiment.report import render_report, table1_csv, table1_markdown
from tfadvser.experiment.results import Results
from tfadvser.experiment.scan_report import defence_name, scan_curves
from tfadvser.experiment.tables import audio_rows, lambda_curves, table1, training_panels
from tfadvser.runtime.files import write_bytes, write_text
from tfadvser.runtime.inference import inference


def write_outputs(run_dir, results: Results, figure2: Optional[dict]) -> dict:
    """table1.md/.csv, figures, report.md and report.html under `run_dir`/evaluation/
    (`figure2`: `figure2`'s drawing, or None). Returns {"dir": that folder,
    "figures": name -> path under it, "rows": Table 1's rows (`tables.table1`)}."""
    from tfadvser.evaluation.figures import (budget_curve_png, confusion_png, lambda_curves_png,
                                             training_curves_png, uar_against_snr_png)
    from tfadvser.experiment.html_report import render_html

    out = Path(run_dir) / "evaluation"
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    rows = table1(results)
    curves = lambda_curves(results)
    write_text(out / "table1.md", table1_markdown(rows, results))
    write_text(out / "table1.csv", table1_csv(rows, results))
    written = {}
    if any(curves.values()):
        write_bytes(figures / "fig3_lambda.png", lambda_curves_png(curves, NAMES))
        written["fig3"] = "figures/fig3_lambda.png"
    if results.scan:
        png = budget_curve_png(scan_curves(results.scan),
                               {d: defence_name(d) for d in results.scan["clean"]},  # seed controls too
                               f"budget scan ({len(results.scan['clips'])} test clips)")
        write_bytes(figures / "budget_scan.png", png)
        written["scan"] = "figures/budget_scan.png"
        _tensorboard_image(Path(run_dir) / "evaluation" / "logs", "budget_scan", png)
    for key, base in (results.baselines or {}).items():
        if "curve" not in base:  # computed only when no scan ran
            continue
        png = budget_curve_png(base["curve"], NAMES, f"budget curve ({base['label']})")
        write_bytes(figures / f"budget_curve_{key}.png", png)
        written[f"budget_curve_{key}"] = f"figures/budget_curve_{key}.png"
        _tensorboard_image(Path(run_dir) / "evaluation" / "logs", f"budget_curve/{key}", png)
    panels = training_panels(results, rows)
    if panels:
        write_bytes(figures / "training_curves.png", training_curves_png(panels, NAMES))
        written["training"] = "figures/training_curves.png"
    if figure2 is not None:
        write_bytes(figures / "fig2_spectrograms.png", figure2["png"])
        written["fig2"] = "figures/fig2_spectrograms.png"
    for name in results.defences:
        clean = results.clean(name, "test")
        if "confusion" in clean:
            png = confusion_png(np.array(clean["confusion"]), results.labels,
                                f"{NAMES.get(name, name)}, clean test")
            write_bytes(figures / f"confusion_{name}_test.png", png)
            written[f"confusion_{name}"] = f"figures/confusion_{name}_test.png"
    audio = audio_rows(results, rows)
    if audio:
        points = [{"snr_db": a["waveform_snr_db"],
                   "against": {d: v for d, v in a["against"].items() if "audio" in v}} for a in audio]
        clean = {d: c["audio"]["uar"] for d, c in results.audio["clean"].items()}
        write_bytes(figures / "uar_vs_snr.png", uar_against_snr_png(points, NAMES, clean))
        written["uar_snr"] = "figures/uar_vs_snr.png"
    report = render_report(results, rows, written, figure2, Path(run_dir))
    report += "\n" + continual_report.write(out, results, run_dir)  # continual-learning comparison
    write_text(out / "report.md", report)
    write_text(out / "report.html", render_html(report, out, audio))  # from report.md
    return {"dir": out, "figures": written, "rows": rows}


def _tensorboard_image(log_dir: Path, tag: str, png: bytes) -> None:
    """A PNG as an image summary under evaluation/logs (TensorBoard's Images tab)."""
    import tensorflow as tf

    with tf.summary.create_file_writer(str(log_dir)).as_default():
        tf.summary.image(tag, tf.image.decode_png(png, channels=4)[None], step=0)


def figure2(run_dir, data_dir, results: Results, rows: list[dict]) -> Optional[dict]:
    """Fig. 2: one test clip every defence gets right clean and wrong under attack (or the
    clip that comes closest, labelled as such): real, perturbation and fake log-Mel.
    The clip is chosen from the per-clip test predictions `evaluate_run` stored (the run's
    own and hardened defences; external victims are not shown); only the chosen clip's
    perturbation is computed again."""
    from tfadvser.evaluation.figures import spectrograms_png

    chosen = next((r for name in FIGURE2_ROWS for r in rows
                   if (r["method"], r["sequence"]) == name and r.get("keys")
                   and results.scored_on(r["keys"][0], "test")), None)
    if chosen is None:
        return None
    key = chosen["keys"][0]
    labels = results.labels
    shown = [d for d in results.defences if results.kind(d) != "external"]
    y = np.asarray(results.truth("test"))
    clean = dict(zip(shown, np.asarray(results.clean_predictions(shown, "test"))))
    adv = dict(zip(shown, np.asarray(results.adversarial_predictions(key, shown, "test"))))
    right = np.sum([clean[d] == y for d in shown], axis=0)
    fooled = np.sum([(clean[d] == y) & (adv[d] != y) for d in shown], axis=0)
    best = int(np.argmax(fooled * 10 + right))
    complete = fooled[best] == len(shown)
    data = load_data(data_dir)
    x = np.concatenate([np.asarray(b[0]) for b in make_dataset(data, "test", EVAL_BATCH)])[best]
    generator = load_generator(Path(run_dir), {"path": results.tasks[key].path})
    eta = np.asarray(inference(generator)(x[None]))[0]
    predicted = ", ".join(f"{NAMES.get(d, d)}: {labels[clean[d][best]]} → {labels[adv[d][best]]}"
                          for d in shown)
    note = ("every defence right on the real clip and wrong on the fake one" if complete else
            f"no test clip fools all defences; this one fools {fooled[best]} of {len(shown)} "
            "(the best available)")
    title = f"{chosen['method']} {chosen['sequence']}: true {labels[y[best]]}; {predicted}"
    return {"png": spectrograms_png(x, eta, x + eta, title),
            "caption": f"Fig. 2: test clip {best} ({note}). {predicted}.",
            "clip": best, "complete": bool(complete)}


def evaluate_and_report(run_dir, data_dir: Optional[str] = None, progress=None,
                        audio_clips: int = AUDIO_CLIPS, listen: int = LISTEN_CLIPS,
                        baselines: bool = True, victims: Sequence[VictimSpec] = (),
                        trust_code: bool = False, scan: Optional[str] = "fast") -> dict:
    """`evaluate.evaluate_run` (which writes results.json; `scan`: its budget-scan plan), Fig. 2 and every output of
    `write_outputs` (Table 1 as .md and .csv, figures, report.md, report.html) under
    `run_dir/evaluation/`; returns what `write_outputs` returns plus `results` (the record).
    Raises what `evaluate_run` raises."""
    from tfadvser.experiment.evaluate import evaluate_run

    results = evaluate_run(run_dir, data_dir, progress=progress, audio_clips=audio_clips,
                           listen=listen, baselines=baselines, victims=victims,
                           trust_code=trust_code, scan=scan)
    data_dir = data_dir or results.inputs.data_dir
    written = write_outputs(run_dir, results, figure2(run_dir, data_dir, results, table1(results)))
    return {**written, "results": results}
