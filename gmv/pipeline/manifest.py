"""What a run records about itself: the git state it started with, package versions, seeds, cache keys,
per-stage times (manifest.json, stages.json, metrics.json's timing keys)."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gmv.io import write_json

PACKAGES = ("gmv", "torch", "torchvision", "lightning", "hydra-core", "omegaconf", "faiss-cpu", "numpy", "scipy",
            "scikit-learn", "diffusers", "wandb", "torchmetrics", "ray")


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """The code a run starts with: HEAD and whether tracked files differ from it."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(status) if status is not None else None}


def manifest(cfg, clock, keys: dict[str, str], git: dict[str, Any]) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "command": " ".join(["gmv", *sys.argv[1:]]),
        **git,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "seeds": {"seed": cfg.seed, "split": cfg.data.split.seed, "generate": cfg.generate.seed,
                  "matcher": cfg.matcher.seed},
        "cache_dir": str(cfg.cache_dir),
        "cache_keys": keys,
        "stages": clock.stages,
    }


def write_run_files(run_dir: Path, metrics: dict[str, Any], clock, manifest_: dict[str, Any],
                    t_total: float) -> None:
    """metrics.json (with the per-stage and total seconds), stages.json and manifest.json."""
    metrics.update(clock.metrics())
    metrics["seconds_total"] = round(time.perf_counter() - t_total, 3)
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "stages.json", clock.stages)
    write_json(run_dir / "manifest.json", manifest_)


class StageClock:
    """Per-stage wall times and whether each stage was reused from the cache."""

    def __init__(self):
        self.stages: dict[str, dict[str, Any]] = {}
        self._t0: float | None = None

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self, name: str, reused: bool | None = None, key: str | None = None) -> float:
        seconds = round(time.perf_counter() - (self._t0 or time.perf_counter()), 3)
        self.stages[name] = {"seconds": seconds, "reused": reused, "key": key}
        self._t0 = time.perf_counter()
        return seconds

    def metrics(self) -> dict[str, Any]:
        return {f"seconds_stage_{name}": s["seconds"] for name, s in self.stages.items()}

    def table(self) -> str:
        lines = []
        for name, s in self.stages.items():
            state = {True: "reused", False: "computed", None: ""}[s["reused"]]
            lines.append(f"  {name:<10} {s['seconds']:>8.1f} s  {state}")
        return "\n".join(lines)
