"""Benchmark: `gmv-value --engine ray` against the single-process run of the same command.

    python scripts/make_planted_sets.py --data ../shared/data/cifar10_train_2000pc.npz --m 5000 --out /tmp/raybench
    python scripts/bench_ray.py --data /tmp/raybench --weights ../shared/data/cifar10_resnet20-12fca82f.th

Runs the two commands one after the other (embedding cache off, so both embed), times them, and
compares their outputs: max |Δφ| for every method's values, whether the m×K tables are equal, and
max |Δ| of the distances. Records the machine's load (it is shared) before and after each run.
Writes results/bench/ray.{md,json}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from gmv.io import write_json, write_text


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{p} {version(p)}" for p in ("ray", "torch", "faiss-cpu", "numpy"))


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def command(a, engine: str) -> list[str]:
    cmd = ["gmv-value", "--train", f"{a.data}/v1.npz", "--held-out", f"{a.data}/v2.npz",
           "--generated", f"{a.data}/generated.npz", "--embedder", "resnet20_cifar", "--embedder-weights", a.weights,
           "--k", str(a.k), "--cache-dir", "", "--wandb", "disabled", "--out", f"{a.out}/{engine}"]
    return cmd + (["--engine", "ray"] + (["--shard-size", str(a.shard_size)] if a.shard_size else [])
                  if engine == "ray" else [])


def run(cmd: list[str]) -> dict:
    before = loadavg()
    t0 = time.perf_counter()
    exe = [sys.executable, "-m", "gmv.cli.value", *cmd[1:]]
    proc = subprocess.run(exe, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{shlex.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": round(wall, 1), "load_before": before, "load_after": loadavg(),
            "stderr_lines": [ln for ln in proc.stderr.splitlines() if ln.strip() and "\r" not in ln][-20:]}


def columns(path: Path) -> dict[str, np.ndarray]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    skip = {"index", "split", "label", "p_value", "bh_flag"}
    return {c: np.array([float(r[c]) for r in rows]) for c in rows[0] if c not in skip}


def compare(out: Path) -> dict:
    a, b = columns(out / "local" / "values.csv"), columns(out / "ray" / "values.csv")
    ta, tb = np.load(out / "local" / "match_tables.npz"), np.load(out / "ray" / "match_tables.npz")
    ma = json.loads((out / "local" / "metrics.json").read_text())
    mb = json.loads((out / "ray" / "metrics.json").read_text())
    return {"max_abs_diff": {c: float(np.abs(a[c] - b[c]).max()) for c in a},
            "tables_equal": bool(np.array_equal(ta["indices"], tb["indices"])),
            "rows_differing": int((ta["indices"] != tb["indices"]).any(axis=1).sum()),
            "max_abs_diff_distances": float(np.abs(ta["distances"] - tb["distances"]).max()),
            "p_value": [ma["p_value"], mb["p_value"]], "auroc": [ma["auroc"], mb["auroc"]],
            "seconds": {e: {k: v for k, v in m.items() if k.startswith("seconds_")}
                        for e, m in (("local", ma), ("ray", mb))},
            "n_shards": mb.get("n_shards"), "shard_size": mb.get("shard_size")}


def markdown(res: dict) -> str:
    c, r = res["comparison"], res["runs"]
    lines = ["# Ray engine benchmark", "",
             f"`{res['bench_command']}` on {res['machine']}. **The machine is shared**: other jobs ran during the "
             "runs (load averages below, 1/5/15 min, on 2 cores), so the times are informational.", "",
             "Inputs (`scripts/make_planted_sets.py`, seed 0): X_v1 = 10,000 and X_v2 = 10,000 CIFAR-10 images "
             "(a stratified half each of ../shared/data/cifar10_train_2000pc.npz), X̂ = 5,000 augmented copies of "
             "X_v1 images; pool 20,000, m = 5,000, ResNet-20 (64-d), exact search, K = 10.", "",
             f"    {res['prepare_command']}", "", "| engine | command | wall s | load before → after |",
             "|---|---|---:|---|"]
    for e in ("local", "ray"):
        lines.append(f"| {e} | `{res['commands'][e]}` | {r[e]['wall_s']} | "
                     f"{' / '.join(map(str, r[e]['load_before']))} → {' / '.join(map(str, r[e]['load_after']))} |")
    lines += ["", "Per stage (s, from each run's metrics.json):", "", "| stage | local | ray |", "|---|---:|---:|"]
    for k in sorted(set(c["seconds"]["local"]) | set(c["seconds"]["ray"])):
        lines.append(f"| {k[8:]} | {c['seconds']['local'].get(k, '')} | {c['seconds']['ray'].get(k, '')} |")
    lines += ["", f"Ray: a local Ray instance on the {res['cpus']} CPU cores; {c['n_shards']} pool shards of "
              f"{c['shard_size']} points (one search task each) and {res['cpus']} embedding actors (one per CPU slot).",
              f"Versions: {res['versions']}.", "",
              "**Equality** (Ray vs single process):", "",
              f"- m×K index tables equal: **{c['tables_equal']}** (rows differing: {c['rows_differing']}); "
              f"max |Δ distance| = {c['max_abs_diff_distances']:.3g}",
              *[f"- max |Δ| {name}: **{v:.3g}**" for name, v in c["max_abs_diff"].items()],
              f"- RA2 p-value: {c['p_value'][0]:.6g} (local) vs {c['p_value'][1]:.6g} (ray); "
              f"AUROC {c['auroc'][0]:.6g} vs {c['auroc'][1]:.6g}", ""]
    if res.get("note"):
        lines += [res["note"], ""]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder with v1.npz, v2.npz, generated.npz")
    p.add_argument("--weights", required=True, help="cifar10_resnet20 weights")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--shard-size", type=int, help="pool points per Ray search task (default: gmv's)")
    p.add_argument("--out", default="/tmp/gmv-bench-ray")
    p.add_argument("--note", default="", help="a line added to the report")
    a = p.parse_args()
    cmds = {e: command(a, e) for e in ("local", "ray")}
    runs = {e: run(cmds[e]) for e in ("local", "ray")}
    res = {"bench_command": shlex.join(["python", "scripts/bench_ray.py", *sys.argv[1:]]),
           "prepare_command": f"python scripts/make_planted_sets.py --data ../shared/data/cifar10_train_2000pc.npz "
                              f"--m 5000 --out {a.data}",
           "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
           "cpus": os.cpu_count(), "versions": versions(),
           "commands": {e: shlex.join(c) for e, c in cmds.items()}, "runs": runs,
           "comparison": compare(Path(a.out)), "note": a.note}
    out = ROOT / "results" / "bench"
    write_json(out / "ray.json", res)
    write_text(out / "ray.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
