"""benchmarks/gpu_check.py (the prepared GPU check): its --help, and without a GPU one line, exit
status 1 and nothing written (benchmarks/gpu.md, its output, stays as it is)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
GPU_MD = ROOT / "benchmarks" / "gpu.md"


def test_help_lists_the_options() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert all(option in result.stdout for option in ("--train", "--dev", "--test", "--steps", "--output"))


def test_without_a_gpu_it_refuses_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    before = GPU_MD.read_bytes()
    run_dir = tmp_path / "run"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU for torch, whatever the machine has
    result = subprocess.run([sys.executable, str(SCRIPT), "--pipeline-dir", str(run_dir)],
                            capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); nothing was run and gpu.md is unchanged."
    ]
    assert result.stdout == ""
    assert GPU_MD.read_bytes() == before and not run_dir.exists()
    assert "Not run yet" in before.decode() or "| HF pipeline" in before.decode()  # the placeholder or a run's table
