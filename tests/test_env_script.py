"""`source scripts/env.sh` in a user's shell: it puts the venv on PATH and leaves the shell's
options and folder alone, also when it fails; it re-installs nothing when the venv already
runs this checkout."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_SH = ROOT / "scripts" / "env.sh"


def shell(script: str, venv, cwd) -> subprocess.CompletedProcess:
    """`script` in a fresh non-interactive bash (as a user's shell) with TFADVSER_VENV=venv."""
    env = {**os.environ, "TFADVSER_VENV": str(venv)}
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_sourcing_keeps_the_callers_options_and_folder(tmp_path):
    venv = sys.prefix  # the venv running these tests, which scripts/test.sh has just set up
    out = shell(f"set -u; source {ENV_SH} >/dev/null 2>&1; echo rc=$?; false; echo still-here; "
                "set -o | grep -E '^(errexit|nounset|pipefail)\\b'; pwd; command -v tfadvser",
                venv, tmp_path)
    lines = [line.split() for line in out.stdout.splitlines()]
    assert lines[0] == ["rc=0"]
    assert lines[1] == ["still-here"]  # errexit would have ended the shell at `false`
    assert lines[2:5] == [["errexit", "off"], ["nounset", "on"], ["pipefail", "off"]]
    assert lines[5] == [str(tmp_path)]  # not moved into the checkout
    assert lines[6] == [str(Path(venv) / "bin" / "tfadvser")]


def test_sourcing_again_reinstalls_nothing(tmp_path):
    out = shell(f"source {ENV_SH} && source {ENV_SH} 2>second.err; cat second.err",
                sys.prefix, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""  # no "[env] ..." line, no setuptools warning box


def test_a_failed_set_up_returns_1_and_leaves_the_shell_running(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for venv in (blocker / "venv", blocker):  # cannot be created / is a file
        out = shell(f"source {ENV_SH}; echo rc=$?; false; echo still-here; "
                    "set -o | grep -E '^errexit\\b'", venv, tmp_path)
        assert out.stdout.split() == ["rc=1", "still-here", "errexit", "off"], out.stderr
        assert f"[env] could not set up {venv} for {ROOT} (see above)" in out.stderr


def test_scripts_that_source_it_set_their_own_options_and_folder():
    sourcing = [p for p in (*ROOT.glob("scripts/*.sh"), ROOT / ".ci" / "run")
                if p != ENV_SH and "env.sh" in p.read_text()]
    assert {p.name for p in sourcing} >= {"demo.sh", "test.sh"}
    for script in sourcing:
        lines = script.read_text().splitlines()
        body = [line for line in lines if line and not line.startswith("#")]
        assert body[0] == "set -euo pipefail", script
        assert body[1] == 'cd "$(dirname "${BASH_SOURCE[0]}")/.."', script
