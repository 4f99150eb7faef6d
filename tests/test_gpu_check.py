"""scripts/gpu_check.sh: valid bash everywhere, and its CPU fallback runs every step (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def test_gpu_check_is_valid_bash():
    out = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_gpu_check_refuses_a_machine_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    env = {**os.environ, "GMV_PYTHON": sys.executable}
    out = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "no CUDA device" in out.stderr and "--cpu" in out.stderr


@pytest.mark.slow
def test_gpu_check_cpu_fallback_runs_every_step(tmp_path):
    out_md = tmp_path / "gpu.md"
    env = {**os.environ, "GMV_PYTHON": sys.executable}
    out = subprocess.run(["bash", str(SCRIPT), "--cpu", str(out_md)], capture_output=True, text=True, env=env,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out_md.with_suffix(".json").read_text())
    assert [r["ok"] for r in results["smoke"]] == [True, True, True], results["smoke"]
    assert all("seconds_per_iteration" in r for r in results["preset_iterations"]), results["preset_iterations"]
    assert results["vgg16_fc7"]["dim"] == 4096 and results["faiss_search"]["faiss_cpu_flat_seconds"] > 0
    assert "# GPU check (CPU fallback" in out_md.read_text()


def test_the_gpu_check_and_the_generator_benchmark_read_the_generator_registry(monkeypatch):
    """A generator registered the README's way (one line in GENERATORS) is smoke-checked and timed by the GPU
    check and gets a default benchmark case, with no edit to either script."""
    import importlib.util

    from gmv import generators

    monkeypatch.setitem(generators.GENERATORS, "dummy", "tests.dummy_generator.DummyGenerator")
    mods = {}
    for name in ("gpu_check", "bench_generators"):
        spec = importlib.util.spec_from_file_location(f"_{name}", ROOT / "scripts" / f"{name}.py")
        mods[name] = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, f"_{name}", mods[name])
        spec.loader.exec_module(mods[name])
    presets, toy = mods["gpu_check"].generator_presets()
    assert "dummy" in toy and any(row[0] == "dummy" for row in presets)
    assert {"biggan", "stylegan2", "cfg_diffusion"} <= set(toy)
    cases = mods["bench_generators"].registered_cases(mods["bench_generators"].CASES)
    assert [c.generator for c in cases].count("dummy") == 1
