"""Figures as PNG bytes (for files and for TensorBoard), drawn with matplotlib's Agg backend."""
from __future__ import annotations

import io
import textwrap
from typing import Sequence

import numpy as np


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def confusion_png(matrix: np.ndarray, labels: Sequence[str], title: str) -> bytes:
    """A confusion matrix [n, n] (rows true, columns predicted) as PNG bytes, each row
    normalised by its support, with the counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    support = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, support, out=np.zeros(matrix.shape, float), where=support > 0)
    figure, axis = plt.subplots(figsize=(1.0 + 0.7 * len(labels), 0.8 + 0.6 * len(labels)))
    axis.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in np.ndenumerate(matrix):
        axis.text(j, i, str(count), ha="center", va="center",
                  color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    return _png(figure)


def spectrograms_png(x: np.ndarray, eta: np.ndarray, x_adv: np.ndarray, title: str) -> bytes:
    """Real (bottom), perturbation (middle) and fake (top) log-Mels, as the paper's Fig. 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 1, figsize=(8, 6), sharex=True)
    panels = (("adversarial x' = x + eta", x_adv), ("perturbation eta", eta), ("real x", x))
    for axis, (name, image) in zip(axes, panels):
        shown = axis.imshow(np.asarray(image).T, origin="lower", aspect="auto", cmap="magma")
        axis.set_ylabel("mel bin")
        axis.set_title(name, fontsize=9)
        figure.colorbar(shown, ax=axis, pad=0.01)
    axes[-1].set_xlabel("frame")
    figure.suptitle(title, fontsize=10)
    return _png(figure)


def spectrogram_strip(x: np.ndarray, eta: np.ndarray, x_adv: np.ndarray) -> np.ndarray:
    """x' (top), eta and x (bottom) as one uint8 RGB image [3 * mels + 4, frames, 3], low
    mel bins at the bottom of each panel; x and x' share a colour scale, eta has its own.

    For TensorBoard during training: a colour lookup, no figure to lay out (a matplotlib
    render costs ~0.8 s, as long as a whole training step of the smallest profile)."""
    from matplotlib import colormaps

    low, high = min(np.min(x), np.min(x_adv)), max(np.max(x), np.max(x_adv))
    panels = [(x_adv, low, high), (eta, np.min(eta), np.max(eta)), (x, low, high)]
    rows = []
    for image, lo, hi in panels:
        scaled = (np.asarray(image, np.float64).T[::-1] - lo) / max(hi - lo, 1e-12)
        rows.append(colormaps["magma"](np.clip(scaled, 0.0, 1.0))[..., :3])
        rows.append(np.ones((2, scaled.shape[1], 3)))  # a white line between panels
    return np.round(np.concatenate(rows[:-1]) * 255).astype(np.uint8)


def lambda_curves_png(curves: dict, names: dict) -> bytes:
    """Fig. 3: one panel per lifelong sequence; adversarial dev UAR per defence against lambda."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(title, data) for title, data in curves.items() if data]
    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for axis, (title, data) in zip(axes[0], panels):
        lambdas = sorted(data)
        for defence in next(iter(data.values())):
            axis.plot(lambdas, [100 * data[lam][defence] for lam in lambdas], marker="o",
                      label=names.get(defence, defence))
        axis.set_xscale("log")
        axis.set_xlabel("λ")
        axis.set_title(title, fontsize=9)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("adversarial dev UAR [%]")
    axes[0][-1].legend(fontsize=8)
    return _png(figure)


def uar_against_snr_png(points: list[dict], names: dict, clean: dict) -> bytes:
    """Adversarial UAR against waveform SNR, one point per attacker and defence: filled
    markers after the audio round trip, hollow ones in the spectrogram domain, joined by a
    thin line; dashed lines are each defence's clean UAR on the re-extracted clean audio.
    `points`: dicts with `snr_db` and per defence {"spectrogram": uar, "audio": uar}
    under `against`; `clean`: defence -> clean audio UAR (fractions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, defence in enumerate(clean):
        colour = colours[i % len(colours)]
        shown = [p for p in points if p.get("snr_db") is not None and defence in p["against"]]
        for p in shown:
            values = p["against"][defence]
            axis.plot([p["snr_db"], p["snr_db"]], [100 * values["spectrogram"], 100 * values["audio"]],
                      color=colour, linewidth=0.6, alpha=0.6)
        axis.scatter([p["snr_db"] for p in shown], [100 * p["against"][defence]["audio"] for p in shown],
                     color=colour, label=f"{names.get(defence, defence)}: audio", zorder=3)
        axis.scatter([p["snr_db"] for p in shown],
                     [100 * p["against"][defence]["spectrogram"] for p in shown],
                     facecolors="none", edgecolors=colour,
                     label=f"{names.get(defence, defence)}: spectrogram", zorder=3)
        axis.axhline(100 * clean[defence], color=colour, linestyle="--", linewidth=0.8)
    axis.set_xlabel("waveform SNR [dB] (higher = quieter perturbation)")
    axis.set_ylabel("adversarial test UAR [%] (lower = stronger)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    return _png(figure)


def budget_curve_png(curve: dict, names: dict, title: str) -> bytes:
    """Adversarial UAR [%] against mean SNR [dB], one panel per defence, one line per
    perturbation kind (`experiment.baseline_scores.budget_curve` output); dashed: clean UAR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    defences = list(curve["clean"])
    figure, axes = plt.subplots(1, len(defences), figsize=(4.2 * len(defences), 3.6), sharey=True,
                                squeeze=False)
    # One colour per line across the panels (a line missing from a panel, e.g. white-box PGD
    # on a defence no attack is crafted on, must not shift the others' colours), and one
    # legend for the figure, below the panels.
    colours = {name: f"C{i % 10}" for i, name in enumerate(curve["curves"])}
    for axis, defence in zip(axes[0], defences):
        for name, lines in curve["curves"].items():
            points = sorted(lines.get(defence, []))
            if points:
                axis.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o",
                          markersize=3, color=colours[name])
        axis.axhline(100 * curve["clean"][defence], color="grey", linestyle="--", linewidth=0.8)
        axis.set_title(names.get(defence, defence), fontsize=10)
        axis.set_xlabel("mean SNR [dB] (higher = quieter)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("adversarial UAR [%]")
    handles = [plt.Line2D([], [], color=colours[name], marker="o", markersize=3) for name in colours]
    figure.legend(handles, list(colours), fontsize=7, loc="upper center",
                  bbox_to_anchor=(0.5, 0.0), ncol=min(3, max(len(colours), 1)), frameon=False)
    figure.suptitle(title, fontsize=10)
    return _png(figure)


def training_curves_png(panels: list[dict], names: dict) -> bytes:
    """Attack success rate [%] against training step, one panel per attacker task (four to a
    row): its training batches (solid) and the monitor's fixed dev subset per defence (dashed).
    `panels`: dicts with "title" and the curves of `attack.monitor.training_curves`
    ("train": [[step, rate], ...], "dev_subset": {defence: [[step, rate], ...]})."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    columns = min(len(panels), 4)
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.8 * columns, 3.4 * rows), sharey=True,
                                squeeze=False, layout="constrained")
    top = max([p[1] for panel in panels for p in panel["train"]]
              + [p[1] for panel in panels for c in panel["dev_subset"].values() for p in c] + [0.0])
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    for axis, panel in zip(axes.flat, panels):
        if panel["train"]:
            axis.plot([p[0] for p in panel["train"]], [100 * p[1] for p in panel["train"]],
                      marker="o", markersize=3, label="training batches")
        for defence, points in panel["dev_subset"].items():
            axis.plot([p[0] for p in points], [100 * p[1] for p in points], marker="s",
                      markersize=3, linestyle="--", label=f"dev subset: {names.get(defence, defence)}")
        axis.set_title("\n".join(textwrap.wrap(panel["title"], 38)), fontsize=9)
        axis.set_xlabel("training step")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        axis.set_ylim(0, max(1.0, 115 * top))  # a rate is never negative; flat zeros show as such
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=7)
    for row in axes:
        row[0].set_ylabel("attack success rate [%]")
    return _png(figure)
