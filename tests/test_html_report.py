"""report.html is report.md rendered (markdown-it-py), self-contained, with audio players in
the audio section. Fast: a hand-written report.md, a PNG and WAVs written here."""
import base64
import re

import matplotlib.image
import numpy as np
import pytest
import soundfile

from browser import check_page, chromium_path, html_headings, is_blank, markdown_headings
from tfadvser.errors import TfadvserError
from tfadvser.experiment.html_report import render_html

REPORT = """# tfadvser report: run

Data: `tfrecords/tiny`. Raw <script>alert(1)</script> stays text.

## Table 1: adversarial UAR [%] (lower = stronger attack), L∞ ≤ 0.008, SNR ≥ 30 dB

| Method | Sequence | λ | CNN-4 dev |
|---|---|---|---|
| Clean (no attack) | | | 61.3 [55.8, 66.9] |
| Lifelong | CNN-4 → VGG-16 | 1e+06 | n/a |
| Multi-task | all three | | **12.5** |

![Fig. 2](figures/fig2.png)

## Audio round trip: the attacks rendered as sound, re-extracted and re-scored

| Method | Sequence | CNN-4 spec. → audio |
|---|---|---|
| Single | CNN-4 | 40.0 → 52.5 |

## Perturbation size on test (the paper reports none)

```json
{"profile": "smoke"}
```
"""


def _png(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, np.random.default_rng(seed).random((8, 12)), format="png")
    return path


def _wav(path, seconds=1.5, frequency=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * frequency * t), 16000, subtype="PCM_16")
    return path


def _audio_rows(out):
    """Two attacker rows as `report.audio_rows` gives them, one example clip each."""
    rows = []
    for n, (method, sequence) in enumerate([("Single", "CNN-4"), ("Lifelong", "CNN-4 → VGG-16")]):
        folder = f"audio/task{n}"
        for kind, f in (("clean", 200.0), ("adv", 300.0), ("eta", 400.0)):
            _wav(out / folder / f"clip_{kind}.wav", frequency=f + n)
        rows.append({"method": method, "sequence": sequence, "listen": [
            {"clip": "PR_f_01_ang01b", "dir": folder, "clean": "clip_clean.wav",
             "adversarial": "clip_adv.wav", "perturbation": "clip_eta.wav", "snr_db": 31.25,
             "clipped_samples": 0}]})
    return rows


def _b64(path):
    return base64.b64encode(path.read_bytes()).decode("ascii")


def test_markdown_tables_and_images_become_self_contained_html(tmp_path):
    png = _png(tmp_path / "figures" / "fig2.png")
    html = render_html(REPORT, tmp_path, [])
    assert "<title>tfadvser report: run</title>" in html
    assert "<h2>Table 1: adversarial UAR [%] (lower = stronger attack), L∞ ≤ 0.008, SNR ≥ 30 dB</h2>" in html
    # a pipe table: text columns left, number columns (header too) right-aligned
    assert "<th>Method</th>\n<th>Sequence</th>\n<th class=\"n\">λ</th>\n<th class=\"n\">CNN-4 dev</th>" in html
    assert "<td>Clean (no attack)</td>\n<td></td>\n<td class=\"n\"></td>\n<td class=\"n\">61.3 [55.8, 66.9]</td>" in html
    assert "<td>Lifelong</td>\n<td>CNN-4 → VGG-16</td>\n<td class=\"n\">1e+06</td>\n<td class=\"n\">n/a</td>" in html
    assert "<td class=\"n\"><strong>12.5</strong></td>" in html
    # the image, embedded byte for byte
    assert f'<img src="data:image/png;base64,{_b64(png)}" alt="Fig. 2" />' in html
    assert "figures/" not in html
    # raw HTML in the markdown is escaped, code blocks kept
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert '<pre><code class="language-json">{&quot;profile&quot;: &quot;smoke&quot;}' in html
    assert "<audio" not in html


def test_players_close_the_audio_section(tmp_path):
    _png(tmp_path / "figures" / "fig2.png")
    audio = _audio_rows(tmp_path)
    html = render_html(REPORT, tmp_path, audio)
    section = html.index("<h2>Audio round trip")
    players = html.index("<h3>Listen</h3>")
    after = html.index("<h2>Perturbation size on test")
    assert section < html.index("40.0 → 52.5") < players < after
    assert [m.start() for m in re.finditer("<audio ", html)] and all(
        players < m.start() < after for m in re.finditer("<audio ", html))
    # the clean clip once, then adversarial and perturbation per attacker row, each embedded
    srcs = re.findall(r'<audio controls preload="metadata" src="data:audio/wav;base64,([^"]+)"', html)
    assert srcs == [_b64(tmp_path / "audio" / name) for name in (
        "task0/clip_clean.wav", "task0/clip_adv.wav", "task0/clip_eta.wav",
        "task1/clip_adv.wav", "task1/clip_eta.wav")]
    assert "<b>Lifelong: CNN-4 → VGG-16</b> (waveform SNR 31.2 dB, 0 clipped samples)" in html


@pytest.mark.parametrize("src", ["../outside.png", "figures/missing.png", "https://example.org/a.png",
                                 "/etc/hostname"])
def test_an_image_that_is_not_a_file_of_the_evaluation_is_refused(tmp_path, src):
    out = tmp_path / "evaluation"
    _png(tmp_path / "outside.png")
    with pytest.raises(TfadvserError, match=re.escape(f"image '{src}' is not a file under {out}")):
        render_html(f"# r\n\n![x]({src})\n", out, [])


def test_players_need_the_audio_section(tmp_path):
    with pytest.raises(ValueError, match="no '## Audio round trip' section"):
        render_html("# r\n\n## Table 1\n", tmp_path, _audio_rows(tmp_path))


def test_heading_helpers():
    assert markdown_headings("# a\n## b `c`\n```\n## not\n```\n### d\n## e\n") == ["b c", "e"]
    assert html_headings("<h2>b <code>c</code> &amp; d</h2><h3>x</h3>\n<h2>e</h2>") == ["b c & d", "e"]


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (apt-get install -y "
                    "chromium; .ci/run installs it)")
def test_rendered_page_in_a_headless_browser(tmp_path):
    _png(tmp_path / "figures" / "fig2.png")
    page = tmp_path / "report.html"
    page.write_text(render_html(REPORT, tmp_path, _audio_rows(tmp_path)), encoding="utf-8")
    html = page.read_text(encoding="utf-8")
    assert html_headings(html) == markdown_headings(REPORT)
    assert not re.search(r'(src|href)="(?!data:)', html)  # references nothing
    checked = check_page(page, tmp_path / "page.png")
    assert checked["errors"] == [] and checked["console"] == []
    assert len(checked["images"]) == 1 and checked["images"][0]["ok"]
    assert len(checked["audio"]) == 5 and all(a["ok"] and abs(a["duration"] - 1.5) < 0.01
                                              for a in checked["audio"])
    assert not is_blank(tmp_path / "page.png")
