"""The README and docs/ against the tree they describe: the layout lists every module, every
link stays inside the repository and finds its file and heading, and the README stays a
first screen (the Python example is run by tests/test_api.py)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def layout_entries(text: str) -> set[str]:
    """The .py paths of the fenced block under `## Layout`: one entry per line, nested by
    two spaces of indentation under the folders (`name/`) above it."""
    section = text.split("\n## Layout\n", 1)[1]
    block = section.split("```\n", 1)[1].split("\n```", 1)[0]
    folders: list[tuple[int, str]] = []
    paths = set()
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        name = line.split()[0]
        folders = [(i, f) for i, f in folders if i < indent]
        if name.endswith("/"):
            folders.append((indent, name))
        elif name.endswith(".py"):
            paths.add("".join(f for _, f in folders) + name)
    return paths


def modules() -> set[str]:
    """Every module of the library and the command line, but empty package markers."""
    return {str(p.relative_to(ROOT)) for folder in ("tfadvser", "cli")
            for p in (ROOT / folder).rglob("*.py") if p.read_text().strip()}


def test_the_layout_lists_every_module_and_no_other():
    listed = layout_entries((ROOT / "docs" / "design.md").read_text(encoding="utf-8"))
    assert sorted(modules() - listed) == [], "add these to docs/design.md's layout"
    assert sorted(p for p in listed if not (ROOT / p).exists()) == [], "listed, not in the tree"


def test_layout_parsing_nests_by_indentation():
    text = "x\n## Layout\n\n```\ntop/   a\n  one.py  b\n  sub/\n    two.py\n  three.py\nfour.py\n```\n"
    assert layout_entries(text) == {"top/one.py", "top/sub/two.py", "top/three.py", "four.py"}


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_slug_is_githubs():
    assert slug("Speed of the attacker's step") == "speed-of-the-attackers-step"
    assert slug("`tfadvser synth OUT_DIR`") == "tfadvser-synth-out_dir"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_stay_in_the_repository_and_resolve(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        assert path.is_relative_to(ROOT), f"{page.name}: {target} is outside the repository"
        assert path.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: no heading #{anchor} in {file}"


def test_the_readme_is_a_first_screen_with_the_two_commands_first():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, re.S)
    language, first = blocks[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines()]
    assert (language, commands) == ("bash", ["bash scripts/demo.sh", "bash scripts/test.sh"])
    assert [language for language, _ in blocks[1:3]] == ["python", "bibtex"]
    # .ci/run calls the test command as the README gives it
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
