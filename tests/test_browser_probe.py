"""The headless-browser check itself (tests/browser.py) finds what it must: a page with a
broken image, an undecodable audio clip and a script error fails on each count."""
import pytest

from browser import check_page, chromium_path, is_blank

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed "
                                "(apt-get install -y chromium; .ci/run installs it)")

BROKEN = """<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>broken</title></head><body><h1>broken page</h1>
<img src="data:image/png;base64,AAAA" alt="not a png">
<audio controls preload="metadata" src="data:audio/wav;base64,AAAA"></audio>
<script>console.error("boom"); undefinedFunction();</script></body></html>"""


def test_the_probe_reports_broken_images_audio_and_errors(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(BROKEN)
    checked = check_page(page, tmp_path / "shot.png")
    assert not checked["images"][0]["ok"]
    assert not checked["audio"][0]["ok"]
    assert any("boom" in e for e in checked["errors"])
    assert any("undefinedFunction" in e for e in checked["errors"])
    assert not is_blank(tmp_path / "shot.png")


def test_a_blank_screenshot_is_recognised(tmp_path):
    page = tmp_path / "blank.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body></body></html>')
    checked = check_page(page, tmp_path / "shot.png")
    assert checked["errors"] == [] and checked["images"] == [] and checked["audio"] == []
    assert is_blank(tmp_path / "shot.png")
