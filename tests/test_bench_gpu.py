"""benchmarks/bench_gpu.py cannot measure a GPU here; its CPU mode with tiny models keeps every code path
(export with fp16, our runtime, PyTorch generate, interleaved rounds, the report) working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_gpu.py"


def test_cpu_smoke_run_times_ours_and_pytorch_for_both_families(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--provider", "cpu", "--size", "tiny", "--tokens", "3",
                             "--rounds", "1", "--json", "--work", str(tmp_path)], capture_output=True, text=True,
                            timeout=1200, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr[-3000:]
    families = json.loads(result.stdout.strip().splitlines()[-1])
    assert [f["family"] for f in families] == ["smolvlm", "florence2"]
    for family in families:
        assert family["providers"] == {"fp16": "CPUExecutionProvider", "fp32": "CPUExecutionProvider"}
        assert list(family["rows"]) == ["ours fp16", "pytorch fp16", "ours fp32", "pytorch fp32"]
        for row in family["rows"].values():
            assert row["tokens"] == [3]  # exactly the forced count, on both sides
            assert row["ttft_ms"] > 0 and row["ms_per_token"] >= 0
        for precision in ("fp16", "fp32"):
            median, low, high = family["rows"][f"ours {precision}"]["speedup"]
            assert 0 < low <= median <= high


def test_cuda_mode_without_a_gpu_says_so_in_one_sentence(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--work", str(tmp_path)], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("describe-screen: CUDA does not start on this machine")
    assert not any(tmp_path.iterdir())  # nothing was built
