"""Open an HTML page in headless Debian chromium and report what a reader would meet: console
errors, images that did not decode, audio elements whose media did not load, and a
screenshot. Used by the report test; `chromium_path()` is None when no browser is installed
(install it with `apt-get install -y chromium`; `.ci/run` does)."""
from __future__ import annotations

import json
import re
from html import unescape
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

# Injected at the top of <head> of a *copy* of the page: records errors (script errors,
# resources that fail to load, console.error calls), then waits for every <audio> to load
# its metadata (or fail) and writes what it found into the DOM, which --dump-dom prints.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t !== window ? 'resource ' + t.tagName + ' failed' : String(e.message));
}, true);
(function () { var orig = console.error; console.error = function () {
  window.__errors.push('console.error ' + Array.prototype.join.call(arguments, ' '));
  orig.apply(console, arguments); }; })();
window.addEventListener('load', function () {
  var media = Array.prototype.slice.call(document.querySelectorAll('audio'));
  var waits = media.map(function (a) {
    return a.readyState >= 1 ? Promise.resolve() : new Promise(function (done) {
      a.addEventListener('loadedmetadata', done); a.addEventListener('error', done);
      setTimeout(done, 15000); a.load(); });
  });
  Promise.all(waits).then(function () {
    var out = document.createElement('pre'); out.id = '__browser_check';
    out.textContent = JSON.stringify({
      errors: window.__errors,
      images: Array.prototype.map.call(document.images, function (i) {
        return {ok: i.complete && i.naturalWidth > 0, width: i.naturalWidth}; }),
      audio: media.map(function (a) {
        return {ok: a.readyState >= 1 && !a.error && a.duration > 0, duration: a.duration,
                error: a.error ? a.error.code : null}; })
    });
    document.body.appendChild(out);
  });
});
</script>"""


def chromium_path() -> Optional[str]:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}",
                               "--enable-logging=stderr", "--v=0", *args],
                              capture_output=True, text=True, timeout=timeout)


def check_page(page: Path, screenshot: Path, timeout: float = 120.0) -> dict:
    """{"errors": [...], "console": [console lines of the browser log], "images": [...],
    "audio": [...], "screenshot": path} for `page` (see PROBE)."""
    browser = chromium_path()
    if browser is None:
        raise RuntimeError("chromium is not installed")
    page = Path(page).resolve()
    html = page.read_text(encoding="utf-8")
    probed = page.with_name(f".probe-{page.name}")
    probed.write_text(html.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    try:
        dom = _run(browser, ["--virtual-time-budget=30000", "--dump-dom", probed.as_uri()], timeout)
    finally:
        probed.unlink(missing_ok=True)
    found = re.search(r'<pre id="__browser_check">(.*?)</pre>', dom.stdout, re.S)
    if not found:
        raise AssertionError(f"the probe did not report; chromium said: {dom.stderr[-2000:]}")
    import html as html_module

    result = json.loads(html_module.unescape(found.group(1)))
    result["console"] = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    shot = _run(browser, ["--window-size=1280,1600", f"--screenshot={Path(screenshot).resolve()}",
                          page.as_uri()], timeout)
    if not Path(screenshot).exists():
        raise AssertionError(f"no screenshot; chromium said: {shot.stderr[-2000:]}")
    result["screenshot"] = str(screenshot)
    return result


def is_blank(png: Path) -> bool:
    """Whether a screenshot holds a single colour (an empty or failed page)."""
    import matplotlib.image

    pixels = matplotlib.image.imread(str(png))
    return pixels.reshape(-1, pixels.shape[-1]).std(axis=0).max() < 1e-3


def markdown_headings(markdown: str) -> list[str]:
    """The text of report.md's `##` headings (outside code fences), inline code unquoted."""
    headings, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            headings.append(line[3:].strip().replace("`", ""))
    return headings


def html_headings(html: str) -> list[str]:
    """The text of the page's <h2> headings, tags dropped and entities decoded."""
    return [unescape(re.sub(r"<[^>]+>", "", h)).strip() for h in re.findall(r"<h2>(.*?)</h2>", html, re.S)]
