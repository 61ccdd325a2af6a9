"""report.html: the evaluation as one self-contained page to look at and listen to.

Tables (Table 1 and the audio round trip, with 95 % intervals where the evaluation has
them), every figure and audio players for example clips (clean, adversarial,
perturbation-only) are embedded as data: URIs, so the single file can be mailed or opened
anywhere, with no network and no script. Text is escaped with `html.escape`.
"""
from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Optional

from tfadvser.experiment.protocol import NAMES

# Example clips with players: the same clips for every attacker row, the clean clip shown
# once, so the page stays a few MB (the WAVs on disk under evaluation/audio/ have more).
HTML_LISTEN = 1

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, .note { font-size: 0.85em; color: #555; max-width: 60em; }
.clips { display: grid; grid-template-columns: repeat(3, minmax(12em, 1fr)); gap: 0.4em 1em; }
.clips div { font-size: 0.8em; } audio { width: 100%; }
"""


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _ci(ci) -> str:
    return "" if not ci else f" <small>[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]</small>"


def _table(header: list[str], body: list[list[str]], left: int = 2) -> str:
    """An HTML table; cells are HTML already (escape text before); the first `left`
    columns are left-aligned."""
    cls = lambda i: ' class="l"' if i < left else ""
    head = "".join(f"<th{cls(i)}>{h}</th>" for i, h in enumerate(header))
    rows = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _figure(out_dir: Path, relative: str, caption: str) -> str:
    return (f'<figure><img src="{_data_uri(out_dir / relative, "image/png")}" '
            f'alt="{escape(caption, quote=True)}"><figcaption>{escape(caption)}</figcaption></figure>')


def _table1(results: dict, rows: list[dict]) -> str:
    names = list(results["defences"])
    header = ["Method", "Sequence", "λ"] + [f"{escape(NAMES.get(d, d))} {s}" for d in names
                                           for s in ("dev", "test")]
    body = [["Clean (no attack)", "", ""] + [_pct(results["defences"][d][s]["uar"])
                                             + _ci(results["defences"][d][s].get("uar_ci"))
                                             for d in names for s in ("dev", "test")]]
    for row in rows:
        cells = []
        for d in names:
            for s in ("dev", "test"):
                cell = row["cells"].get(f"{d}/{s}")
                if cell is None:
                    cells.append("n/a")
                elif cell["n"] > 1:
                    cells.append(f"{_pct(cell['mean'])} ± {_pct(cell['std'])}")
                else:
                    scored = results["tasks"][row["keys"][0]][s]["against"][d]
                    cells.append(_pct(cell["mean"]) + _ci(scored.get("adversarial_uar_ci")))
        lam = f"{row['lambda']:g}" if row["lambda"] is not None else ""
        body.append([escape(row["method"]), escape(row["sequence"]), lam] + cells)
    return _table(header, body, left=3)


def _audio_table(results: dict, audio: list[dict]) -> str:
    names = list(results["defences"])
    header = ["Method", "Sequence"] + [f"{escape(NAMES.get(d, d))} spectrogram → audio" for d in names] + [
        "waveform SNR [dB]", "PESQ", "STOI", "kept", "error [nats]", "clipped clips"]
    body = []
    for item in audio:
        cells = []
        for d in names:
            a = item["against"].get(d, {})
            cells.append("n/a" if "audio" not in a else
                         f"{_pct(a['spectrogram'])}{_ci(a.get('spectrogram_ci'))} → "
                         f"<b>{_pct(a['audio'])}</b>{_ci(a.get('audio_ci'))}")
        fmt = lambda v, n: "n/a" if v is None else f"{v:.{n}f}"
        body.append([escape(item["method"]), escape(item["sequence"])] + cells + [
            fmt(item["waveform_snr_db"], 1), fmt(item["pesq_wb"], 2), fmt(item["stoi"], 2),
            fmt(item["kept"], 2), fmt(item["round_trip_error"], 2),
            f"{item['clipped_clips']}/{item['clips'] * item['seeds']}"])
    return _table(header, body)


def _player(path: Path, label: str) -> str:
    return (f'<div>{escape(label)}<br><audio controls preload="metadata" '
            f'src="{_data_uri(path, "audio/wav")}" title="{escape(label, quote=True)}"></audio></div>')


def _players(out_dir: Path, audio: list[dict]) -> str:
    """Per example clip: the clean clip once, then per attacker row its adversarial clip
    and the perturbation alone."""
    parts = []
    first = next((item for item in audio if item["listen"]), None)
    if first is None:
        return '<p class="note">No clips were written (`evaluate --listen 0`).</p>'
    for index, clip in enumerate(first["listen"][:HTML_LISTEN]):
        parts.append(f"<h3>{escape(clip['clip'])}</h3><div class=\"clips\">"
                     + _player(out_dir / clip["dir"] / clip["clean"], "clean") + "</div>")
        for item in audio:
            if len(item["listen"]) <= index:
                continue
            mine = item["listen"][index]
            parts.append(f'<p class="note"><b>{escape(item["method"])}: {escape(item["sequence"])}</b>'
                         f' (waveform SNR {mine["snr_db"]:.1f} dB, {mine["clipped_samples"]} '
                         'clipped samples)</p><div class="clips">'
                         + _player(out_dir / mine["dir"] / mine["adversarial"], "adversarial")
                         + _player(out_dir / mine["dir"] / mine["perturbation"], "perturbation")
                         + "</div>")
    return "\n".join(parts)


def render_html(results: dict, rows: list[dict], audio: list[dict], figures: dict,
                figure2: Optional[dict], out_dir: Path) -> str:
    """The page (module doc). `audio`: `report.audio_rows`; `figures`: name -> path relative
    to `out_dir` (evaluation/) of the PNGs written; WAVs are read from `out_dir` too."""
    run = results["run"]
    title = f"tfadvser report: {Path(out_dir).parent.name or 'run'}"
    parts = [f"<h1>{escape(title)}</h1>",
             f"<p>Data <code>{escape(results['data_dir'])}</code> (fingerprint "
             f"<code>{escape(run['fingerprint'][:16])}</code>), profile <code>{escape(run['profile'])}</code>, "
             f"labels {escape(', '.join(results['labels']))}; chance "
             f"{100 / len(results['labels']):.1f} %.</p>",
             "<h2>Table 1: adversarial UAR [%] (lower = stronger attack)</h2>",
             '<p class="note">Rows follow the paper\'s Table 1; brackets are 95 % bootstrap '
             "intervals over clips (single seed); ± is the std over seeds.</p>",
             _table1(results, rows)]
    if results.get("audio"):
        info = results["audio"]
        parts += ["<h2>Audio round trip</h2>",
                  f'<p class="note">{info["clips"]} seeded test clips per attacker, rendered as '
                  "audio (STFT gain from the mel bands with the clean phase, overlap-add inverse), "
                  "clipped to [-1, 1], re-extracted with the prepare features and scored again. "
                  "Cells: adversarial UAR [%] in the spectrogram domain → after the round trip "
                  "(bold). Clean UAR on the re-extracted clean audio: "
                  + escape(", ".join(f"{NAMES.get(d, d)} {_pct(c['audio']['uar'])}"
                                     for d, c in info["clean"].items())) + ". Short clips are "
                  "tiled to 373 frames, and audio carries only one copy of their frames.</p>",
                  _audio_table(results, audio)]
        if "uar_snr" in figures:
            parts.append(_figure(out_dir, figures["uar_snr"],
                                 "Adversarial test UAR against waveform SNR per attacker and "
                                 "defence: hollow = spectrogram domain, filled = after the audio "
                                 "round trip; dashed = clean UAR on the clean audio."))
        parts += ["<h2>Listen</h2>",
                  '<p class="note">Per attacker: clean clip, adversarial clip (rendered, as scored) '
                  "and the perturbation alone (adversarial − clean), at their true levels.</p>",
                  _players(out_dir, audio)]
    parts.append("<h2>Figures</h2>")
    if "fig2" in figures and figure2 is not None:
        parts.append(_figure(out_dir, figures["fig2"], figure2["caption"]))
    if "fig3" in figures:
        parts.append(_figure(out_dir, figures["fig3"],
                             "Fig. 3: adversarial dev UAR per defence against λ."))
    for name in results["defences"]:
        if f"confusion_{name}" in figures:
            parts.append(_figure(out_dir, figures[f"confusion_{name}"],
                                 f"{NAMES.get(name, name)}: confusion matrix, clean test."))
    parts += ["<h2>Perturbation size on test</h2>",
              _table(["Method", "Sequence", "mean η", "MSE", "L2 per clip", "L∞", "log-Mel SNR [dB]"],
                     [[escape(r["method"]), escape(r["sequence"])]
                      + [f"{r['test_perturbation'].get(m, float('nan')):.3f}"
                         for m in ("eta_mean", "mse", "l2", "linf", "snr_db")]
                      for r in rows if r.get("test_perturbation")]),
              "<h2>Versions</h2>",
              f"<pre>{escape(json.dumps(results.get('versions', {}), indent=2))}</pre>"]
    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><link rel=\"icon\" href=\"data:,\">"
            f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")
