"""The evaluation's files beside results.json, rendered from the results record: Table 1
as .md and .csv, the figures (also as TensorBoard images), report.md with the
continual-learning comparison (and continual.json), and the self-contained report.html.
`evaluate_run` writes results.json itself, once; nothing here writes it."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from tfadvser.experiment import continual_report
from tfadvser.experiment.protocol import NAMES
from tfadvser.experiment.report import render_report, table1_csv, table1_markdown
from tfadvser.experiment.results import Results
from tfadvser.experiment.tables import audio_rows, lambda_curves, table1, training_panels
from tfadvser.runtime.files import write_bytes, write_text


def write_outputs(run_dir, results: Results, figure2: Optional[dict]) -> dict:
    """table1.md/.csv, figures, report.md and report.html under `run_dir`/evaluation/
    (`figure2`: `evaluate.figure2`'s drawing, or None). Returns {"dir": that folder,
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
    for key, base in (results.baselines or {}).items():
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
