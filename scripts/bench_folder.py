"""Benchmark: `gmv-value` on image folders far larger than memory should need — peak memory and stage times.

    python scripts/make_image_folder.py --size 64 --data ../shared/data/celeba_100ids_64px.npz \
        ../shared/data/cifar10_train_2000pc.npz --sets train=100000 held_out=20000 generated=5000 --out /tmp/gmv_100k
    python scripts/bench_folder.py --data /tmp/gmv_100k            # writes results/bench/folder_100k.{md,json}

Runs gmv-value (ResNet-20 features, IVF-PQ with exact re-rank) under `/usr/bin/time -v` and
scripts/peak_rss.py (main-process RSS; PSS summed over the DataLoader workers), with a cold cache, and
records the command, the peak memory against the images' decoded size, the time per stage and the output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GMV_SHARED_DATA") or ROOT.parent / "shared" / "data")


def count_files(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.png"))


BASELINE = """
import resource, sys
import numpy as np, torch, torchvision, faiss, sklearn.manifold, matplotlib.pyplot, scipy.stats
import gmv.cli.value, gmv.analysis.report, gmv.tracking
from gmv.valuation.embedders import ResNet20Embedder
e = ResNet20Embedder(weights=sys.argv[1], progress=False)
e.embed_batch(np.zeros((256, 64, 64, 3), np.uint8))
anon = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon:"))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, anon)
"""


def baseline(env) -> dict:
    """Peak RSS of a process that only imports what gmv-value imports and embeds one batch: the floor."""
    out = subprocess.run([sys.executable, "-c", BASELINE, str(SHARED / "cifar10_resnet20-12fca82f.th")], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return {"max_rss_kib": int(out[0]), "rss_anon_kib": int(out[1])}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/tmp/gmv_100k", help="folder with train/, held_out/, generated/")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", default="/tmp/gmv_100k_run", help="cache and output folder (emptied first)")
    p.add_argument("--out", default=str(ROOT / "results" / "bench"))
    p.add_argument("--name", default="folder_100k")
    a = p.parse_args()
    data, work = Path(a.data), Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    counts = {s: count_files(data / s) for s in ("train", "held_out", "generated")}
    value = ["-m", "gmv.cli.value", "--train", str(data / "train"), "--held-out", str(data / "held_out"),
             "--generated", str(data / "generated"), "--embedder", "resnet20_cifar", "--embedder-weights",
             str(SHARED / "cifar10_resnet20-12fca82f.th"), "--k", "10", "--index", "ivfpq", "--rerank", "100",
             "--num-workers", str(a.workers), "--batch-size", "256", "--cache-dir", str(work / "cache"),
             "--out", str(work / "out"), "--wandb", "disabled"]
    cmd = ["/usr/bin/time", "-v", sys.executable, str(ROOT / "scripts" / "peak_rss.py"), "--json",
           str(work / "peak.json"), "--", sys.executable, *value]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    floor = baseline(env)
    load_before = os.getloadavg()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    print(run.stdout)
    print(run.stderr[-3000:], file=sys.stderr)
    if run.returncode != 0:
        sys.exit(run.returncode)
    peak = json.loads((work / "peak.json").read_text())
    max_rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    metrics = json.loads((work / "out" / "metrics.json").read_text())
    decoded = {s: n * 64 * 64 * 3 for s, n in counts.items()}
    info = {"command": "gmv-value " + " ".join(value[2:]), "files": counts, "decoded_bytes": decoded,
            "load_avg_before": load_before, "load_avg_after": os.getloadavg(), "peak": peak,
            "time_max_rss_kib": max_rss_kb, "baseline": floor,
            "seconds": {k: v for k, v in metrics.items() if k.startswith("seconds_")},
            "matcher": metrics["matcher"], "recall_at_k": metrics["recall_at_k"], "stdout": run.stdout}
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / f"{a.name}.json").write_text(json.dumps(info, indent=2) + "\n")
    (Path(a.out) / f"{a.name}.md").write_text(markdown(info))


def markdown(info: dict) -> str:
    mib = lambda b: b / 2**20  # noqa: E731
    total = sum(info["decoded_bytes"].values())
    pk = info["peak"]
    lines = [
        "# gmv-value on image folders of 125,000 PNG files (100,000 training images)", "",
        "Made by `python scripts/bench_folder.py` (the folders by scripts/make_image_folder.py: 64×64 near-copies of "
        "the CelebA and CIFAR-10 subsets, under /tmp, not committed), cold cache. **Machine load**: 1-min load "
        f"average {info['load_avg_before'][0]:.1f} before, {info['load_avg_after'][0]:.1f} after (2 shared cores, "
        "other jobs running): the times are loaded-machine times.", "",
        "```", info["command"], "```", "",
        "| set | files | decoded size (64×64×3 uint8) |", "|---|---:|---:|",
        *[f"| {s} | {n:,} | {mib(info['decoded_bytes'][s]):,.0f} MiB |" for s, n in info["files"].items()],
        f"| all | {sum(info['files'].values()):,} | {mib(total):,.0f} MiB |", "",
        "| peak memory | MiB | share of the decoded size |", "|---|---:|---:|",
        f"| main process, max RSS (`/usr/bin/time -v`: largest single process) | {info['time_max_rss_kib'] / 1024:,.0f} | "
        f"{info['time_max_rss_kib'] * 1024 / total:.0%} |",
        f"| main process, max RSS (psutil, sampled) | {pk['main_rss_mib']:,.0f} | {pk['main_rss'] / total:.0%} |",
        f"| whole tree incl. {pk['max_processes'] - 1} DataLoader workers, max PSS sum | {pk['tree_pss_sum_mib']:,.0f} | "
        f"{pk['tree_pss_sum'] / total:.0%} |",
        f"| whole tree, max RSS sum (counts shared pages once per process) | {pk['tree_rss_sum_mib']:,.0f} | "
        f"{pk['tree_rss_sum'] / total:.0%} |",
        f"| main process, max anonymous memory (RssAnon: heap and arrays, no library pages) | "
        f"{pk['main_rss_anon_mib']:,.0f} | {pk['main_rss_anon'] / total:.0%} |",
        f"| *floor*: a process that only imports gmv-value's libraries and embeds one batch, max RSS | "
        f"{info['baseline']['max_rss_kib'] / 1024:,.0f} | {info['baseline']['max_rss_kib'] * 1024 / total:.0%} |",
        f"| *floor*, anonymous memory | {info['baseline']['rss_anon_kib'] / 1024:,.0f} | "
        f"{info['baseline']['rss_anon_kib'] * 1024 / total:.0%} |", "",
        f"So the run holds **{(info['time_max_rss_kib'] - info['baseline']['max_rss_kib']) / 1024:,.0f} MiB** above the "
        "floor of its imports (torch here is a CUDA build: its libraries alone map ~0.7 GB), against "
        f"{mib(total):,.0f} MiB of decoded pixels, which an in-memory load would have to hold on top of that floor.", "",
        f"Matcher: `{info['matcher']}`, recall@10 against exact search {info['recall_at_k']:.3f}.", "",
        "| stage | seconds |", "|---|---:|",
        *[f"| {k.removeprefix('seconds_').replace('_', ' ')} | {v:,.1f} |" for k, v in info["seconds"].items()],
        "", "Output:", "", "```", info["stdout"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
