"""report.html: report.md as one self-contained page to look at and listen to.

The page is rendered from the markdown report itself (`report.py` writes report.md) with
markdown-it-py (CommonMark plus pipe tables), so every section of report.md appears in the
HTML and has one home; nothing here knows what a table holds. On top of the markdown:

- every image (`![..](figures/x.png)`, relative to evaluation/) is embedded as a data: URI;
- columns of numbers are right-aligned;
- audio players for example clips (clean once, then adversarial and perturbation-only per
  attacker row, as in `tables.audio_rows`) close the audio round-trip section; the WAVs
  are embedded too (`HTML_LISTEN` clips, for the page's size).

So the single file can be mailed or opened anywhere, with no network and no script: raw
HTML in the markdown is escaped, not passed through.
"""
from __future__ import annotations

import base64
import mimetypes
import re
from html import escape
from pathlib import Path
from typing import Sequence
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

from tfadvser.errors import TfadvserError

# Example clips with players, embedded: the same clips for every attacker row, the clean
# clip shown once. A 4 s clip (16-bit, 16 kHz; the main job's clips are 1.5-6 s) costs
# 171 KB of page per player. Measured for 13 attacker rows of 4 s clips on a smoke run's
# report.md (0.8 MB with its 7 figures): 5.5 MB with one clip (tests/browser.check_page,
# two headless Chromium loads, 8.5 s on 2 cores), 14.7 MB with three (18 s), 148 MB with
# 32. So one clip is embedded; the others stay WAV files under evaluation/audio/.
HTML_LISTEN = 1

# The `##` heading (its start) of report.md's audio round-trip section, where the players go.
AUDIO_SECTION = "Audio round trip"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; } td.n, th.n { text-align: right; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: 0.5em; overflow-x: auto; font-size: 0.85em; }
.note { font-size: 0.85em; color: #555; max-width: 60em; }
.clips { display: grid; grid-template-columns: repeat(3, minmax(12em, 1fr)); gap: 0.4em 1em; }
.clips div { font-size: 0.8em; } audio { width: 100%; }
"""

# CommonMark with GFM pipe tables; "html": False escapes any raw HTML in the markdown.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")

# A table cell that holds a number ("61.3 [55.8, 66.9]", "-4.2", "7/7", "n/a", "**0.0**").
_NUMBER = re.compile(r"^\s*[*_]*(n/a|[-−+]?\d)")


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _embed_images(tokens: Sequence[Token], out_dir: Path) -> None:
    """Replace every image's src (a path relative to `out_dir`) by a data: URI.

    Raises TfadvserError naming the image when it is not a file under `out_dir` (an
    absolute path, a URL, or missing): the page must not reference anything."""
    root = Path(out_dir).resolve()
    for token in tokens:
        for child in token.children or []:
            if child.type != "image":
                continue
            src = str(child.attrGet("src") or "")
            parts = urlsplit(src)
            path = (root / unquote(parts.path)).resolve()
            if parts.scheme or parts.netloc or not path.is_relative_to(root) or not path.is_file():
                raise TfadvserError(f"{root / 'report.md'}: image '{src}' is not a file under {root}")
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            child.attrSet("src", _data_uri(path, mime))


def _align_numbers(tokens: Sequence[Token]) -> None:
    """Mark with class "n" (right-aligned) the header and cells of every table column whose
    non-empty body cells all hold numbers."""
    columns: dict[int, list[tuple[Token, str]]] = {}
    column = 0
    for index, token in enumerate(tokens):
        if token.type == "table_open":
            columns = {}
        elif token.type == "tr_open":
            column = 0
        elif token.type in ("th_open", "td_open"):
            columns.setdefault(column, []).append((token, tokens[index + 1].content))
            column += 1
        elif token.type == "table_close":
            for cells in columns.values():
                body = [text for cell, text in cells if cell.type == "td_open" and text.strip()]
                if body and all(_NUMBER.match(text) for text in body):
                    for cell, _ in cells:
                        cell.attrJoin("class", "n")


def _section_end(tokens: Sequence[Token], heading: str) -> int:
    """Index of the token that ends the `##` section whose heading starts with `heading`
    (the next `#` or `##` heading, or the end). Raises ValueError when there is none."""
    start = next((i for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"
                  and tokens[i + 1].content.startswith(heading)), None)
    if start is None:
        raise ValueError(f"report.md has no '## {heading}' section for the audio players")
    return next((i for i in range(start + 1, len(tokens))
                 if tokens[i].type == "heading_open" and tokens[i].tag in ("h1", "h2")), len(tokens))


def _player(path: Path, label: str) -> str:
    return (f'<div>{escape(label)}<br><audio controls preload="metadata" '
            f'src="{_data_uri(path, "audio/wav")}" title="{escape(label, quote=True)}"></audio></div>')


def _players(out_dir: Path, audio: list[dict]) -> str:
    """Per example clip: the clean clip once, then per attacker row its adversarial clip
    and the perturbation alone."""
    parts = ["<h3>Listen</h3>",
             '<p class="note">Per attacker: clean clip, adversarial clip (rendered, as scored) '
             "and the perturbation alone (adversarial − clean), at their true levels. More "
             "clips per attacker are WAV files under <code>evaluation/audio/&lt;task key&gt;/</code>.</p>"]
    first = next((item for item in audio if item["listen"]), None)
    if first is None:
        return "\n".join(parts + ['<p class="note">No clips were written (`evaluate --listen 0`).</p>'])
    for index, clip in enumerate(first["listen"][:HTML_LISTEN]):
        parts.append(f"<h4>{escape(clip['clip'])}</h4><div class=\"clips\">"
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
    return "\n".join(parts) + "\n"


def render_html(markdown: str, out_dir: Path, audio: list[dict]) -> str:
    """The page (module doc) for report.md's text `markdown`, whose image paths and the
    WAVs of `audio` (`tables.audio_rows`; empty: no players) are relative to `out_dir`
    (evaluation/). Raises TfadvserError for an image that is not a file under `out_dir`,
    ValueError when there are players but no audio round-trip section."""
    out_dir = Path(out_dir)
    tokens = _MARKDOWN.parse(markdown)
    _embed_images(tokens, out_dir)
    _align_numbers(tokens)
    title = next((tokens[i + 1].content for i, t in enumerate(tokens)
                  if t.type == "heading_open" and t.tag == "h1"), "tfadvser report")
    render = lambda part: _MARKDOWN.renderer.render(part, _MARKDOWN.options, {})
    if audio:
        at = _section_end(tokens, AUDIO_SECTION)
        body = render(tokens[:at]) + _players(out_dir, audio) + render(tokens[at:])
    else:
        body = render(tokens)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><link rel=\"icon\" href=\"data:,\">"
            f"<style>{_STYLE}</style></head>\n<body>\n{body}</body></html>\n")
