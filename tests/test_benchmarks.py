"""The benchmark command runs end to end at tiny size (no timing is asserted)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_smoke_run(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--tiny", "--out", str(tmp_path)],
                   check=True, cwd=ROOT, timeout=900)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["tiny"] is True
    for key in ("matmul_gflops", "input_pipeline_examples_per_second", "evaluation_clips_per_second"):
        assert results[key] > 0
    assert results["attacker_step"]["float32"]["examples_per_second"] > 0
    assert results["peak_memory_mib"]["multi_task_3_defences"] > 0
    assert "| prepare (tf.data, parallel)" in (tmp_path / "results.md").read_text()
