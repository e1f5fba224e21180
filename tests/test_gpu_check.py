"""scripts/gpu_check.sh outside a GPU machine: a clean skip without a GPU, and a clear error
when a GPU is present but torch cannot use it (the GPU path itself runs where a GPU is lent)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
VENV = str(Path(sys.executable).parents[1])


def _run(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OUT=str(tmp_path / "out"), PATH=path)
    return subprocess.run(["bash", str(SCRIPT), VENV], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_skips_cleanly_without_a_gpu(tmp_path: Path) -> None:
    proc = _run(tmp_path, os.environ["PATH"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "gpu_check: skipped: no CUDA GPU on this machine (nvidia-smi finds none)"
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text())["skipped"] is True


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch can use a GPU here")
def test_gpu_without_cuda_torch_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text('#!/bin/sh\n[ "$1" = "-L" ] && echo "GPU 0: Fake" || echo "Fake GPU, 80 GiB, 1.0"\n')
    smi.chmod(0o755)
    proc = _run(tmp_path, f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert proc.returncode == 3
    assert "cannot use it" in proc.stderr and proc.stderr.count("\n") == 1
    summary = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert summary["skipped"] is False and "cannot use the GPU" in summary["error"]
