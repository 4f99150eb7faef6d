"""Benchmark: `gmv-value` on image folders far larger than memory should need — peak memory and stage times.

    python scripts/make_image_folder.py --size 128 --data ../shared/data/celeba_100ids_64px.npz \
        ../shared/data/cifar10_train_2000pc.npz --sets train=100000 held_out=20000 generated=5000 --out /tmp/gmv_100k_128
    python scripts/bench_folder.py --data /tmp/gmv_100k_128 --name folder_100k_128px   # results/bench/folder_100k_128px.{md,json}

Runs gmv-value (ResNet-20 features; `--index auto` unless told otherwise) under `/usr/bin/time -v` and
scripts/peak_rss.py (main-process RSS; PSS summed over the DataLoader workers), with a cold cache, and
records the command, the peak memory against the images' decoded size, the time per stage and the output.

`--contrast CHECKOUT` (e.g. a checkout of the commit before streaming) runs that checkout's gmv-value with the
same options, stops it as soon as it starts embedding (everything is loaded by then) and records its peak
memory beside ours; `--contrast-only` adds just that to an existing result.
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


def image_shape(folder: Path) -> tuple[int, int, int]:
    """(H, W, C) of the folder's first PNG (make_image_folder.py writes one size)."""
    from PIL import Image

    with Image.open(next(folder.rglob("*.png"))) as im:
        return im.height, im.width, len(im.getbands())


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


def contrast(checkout: Path, value: list[str], work: Path) -> dict:
    """Peak memory of another checkout's gmv-value on the same input, stopped once its embedding starts."""
    import time

    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    argv = list(value)
    for flag in ("--cache-dir", "--out"):  # its own cache (cold) and output folder
        argv[argv.index(flag) + 1] = str(work / flag.lstrip("-"))
    i = argv.index("--num-workers")
    del argv[i:i + 2]  # an option the checkout before streaming does not have
    err = open(work / "stderr", "w+")
    proc = subprocess.Popen(["/usr/bin/time", "-v", sys.executable, str(ROOT / "scripts" / "peak_rss.py"), "--json",
                             str(work / "peak.json"), "--", sys.executable, *argv], cwd=checkout, env=env,
                            stdout=subprocess.DEVNULL, stderr=err)
    while proc.poll() is None and "embed training" not in (work / "stderr").read_text():
        time.sleep(1)
    import psutil

    for child in psutil.Process(proc.pid).children(recursive=True):
        if child.cmdline()[1:3] == ["-m", "gmv.cli.value"]:
            child.terminate()  # the run being measured, once it has loaded everything and begun embedding
    proc.wait()
    text = (work / "stderr").read_text()
    return {"checkout": str(checkout), "peak": json.loads((work / "peak.json").read_text()),
            "time_max_rss_kib": int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/tmp/gmv_100k", help="folder with train/, held_out/, generated/")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--index", default="auto", help="gmv-value's --index (auto: gmv picks, and says what and why)")
    p.add_argument("--rerank", type=int, help="gmv-value's --rerank (exact re-rank depth; default: gmv-value's own)")
    p.add_argument("--work", default="/tmp/gmv_100k_run", help="cache and output folder (emptied first)")
    p.add_argument("--out", default=str(ROOT / "results" / "bench"))
    p.add_argument("--name", default="folder_100k")
    p.add_argument("--contrast", help="another checkout whose gmv-value to measure on the same input (see above), "
                                      "e.g. `git archive 90f0539 | tar -x -C /tmp/base` (this branch's base)")
    p.add_argument("--contrast-only", action="store_true", help="only add --contrast to an existing result")
    p.add_argument("--contrast-label", default="", help="what the contrast checkout is, for the report")
    p.add_argument("--note", help="what else ran on the machine (replaces the sentence read from the load average)")
    p.add_argument("--report", action="store_true", help="only rewrite the .md from the .json (with --note, if given)")
    a = p.parse_args()
    data, work = Path(a.data), Path(a.work)
    out = Path(a.out)
    if a.report or a.contrast_only:  # amend an existing result
        info = json.loads((out / f"{a.name}.json").read_text())
        if a.report:
            info["note"] = a.note or info.get("note")
        else:
            argv = info.get("argv") or ["-m", "gmv.cli.value", *info["command"].split()[1:]]
            info["contrast"] = {**contrast(Path(a.contrast), argv, work / "contrast"), "label": a.contrast_label}
        save(out, a.name, info)
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    counts = {s: count_files(data / s) for s in ("train", "held_out", "generated")}
    value = ["-m", "gmv.cli.value", "--train", str(data / "train"), "--held-out", str(data / "held_out"),
             "--generated", str(data / "generated"), "--embedder", "resnet20_cifar", "--embedder-weights",
             str(SHARED / "cifar10_resnet20-12fca82f.th"), "--k", "10", "--index", a.index,
             *(["--rerank", str(a.rerank)] if a.rerank is not None else []), "--num-workers", str(a.workers),
             "--batch-size", "256", "--cache-dir", str(work / "cache"), "--out", str(work / "out"), "--wandb", "disabled"]
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
    shape = image_shape(data / "train")
    decoded = {s: n * shape[0] * shape[1] * shape[2] for s, n in counts.items()}
    info = {"command": "gmv-value " + " ".join(value[2:]), "argv": value, "data": str(data), "name": a.name,
            "note": a.note, "files": counts, "image_shape": shape, "decoded_bytes": decoded,
            "load_avg_before": load_before, "load_avg_after": os.getloadavg(), "peak": peak,
            "time_max_rss_kib": max_rss_kb, "baseline": floor,
            "seconds": {k: v for k, v in metrics.items() if k.startswith("seconds_")},
            "matcher": metrics["matcher"], "recall_at_k": metrics["recall_at_k"], "stdout": run.stdout}
    if a.contrast:
        info["contrast"] = {**contrast(Path(a.contrast), value, work / "contrast"), "label": a.contrast_label}
    out.mkdir(parents=True, exist_ok=True)
    save(out, a.name, info)


def save(out: Path, name: str, info: dict) -> None:
    """The benchmark's record (NAME.json) and its report (NAME.md), each written atomically."""
    from gmv.io import write_json, write_text

    write_json(out / f"{name}.json", info)
    write_text(out / f"{name}.md", markdown(info))


def markdown(info: dict) -> str:
    mib = lambda b: b / 2**20  # noqa: E731
    total = sum(info["decoded_bytes"].values())
    pk = info["peak"]
    h, w, c = info.get("image_shape", (64, 64, 3))  # results written before the shape was recorded: 64 px
    files = info["files"]
    load = info["load_avg_before"][0]  # before the run: other jobs (after it: also the run's own processes)
    lines = [
        f"# gmv-value on image folders of {sum(files.values()):,} PNG files ({files['train']:,} training images)", "",
        f"Made by `python scripts/bench_folder.py --data {info.get('data', 'FOLDER')} --name {info.get('name', 'NAME')}` "
        f"(the folders by scripts/make_image_folder.py: {h}×{w} near-copies of "
        "the CelebA and CIFAR-10 subsets, under /tmp, not committed), cold cache. **Machine load**: 1-min load "
        f"average {info['load_avg_before'][0]:.1f} before, {info['load_avg_after'][0]:.1f} after on 2 cores, "
        + (info.get("note") or ("other jobs running: the times are loaded-machine times." if load > 1.0 else
           "no other job running before it (the load after it is the run's own main process and workers).")), "",
        "```", info["command"], "```", "",
        f"| set | files | decoded size ({h}×{w}×{c} uint8) |", "|---|---:|---:|",
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
        f"{mib(total):,.0f} MiB of decoded pixels, which an in-memory load would have to hold on top of that floor. "
        "Measured against the decoded size itself, the peak is "
        f"{info['time_max_rss_kib'] * 1024 / total:.0%} of it: with this torch build the import floor alone is "
        f"{info['baseline']['max_rss_kib'] * 1024 / total:.0%}, so at {sum(info['files'].values()):,} × {h}×{w} the peak is "
        "bounded by that floor, not by the decoded size. What the data adds scales with the number of images, not their pixels: "
        f"{(info['time_max_rss_kib'] - info['baseline']['max_rss_kib']) / sum(info['files'].values()):.1f} KiB per "
        "image (its embedding and FAISS's copy of it, its id, its values.csv row, …) against "
        f"{total / sum(info['files'].values()) / 1024:.0f} KiB of pixels.", "",
        f"Matcher: `{info['matcher']}`, recall@10 against exact search {info['recall_at_k']:.3f}.", "",
        *contrast_lines(info, total),
        "| stage | seconds |", "|---|---:|",
        *[f"| {k.removeprefix('seconds_').replace('_', ' ')} | {info['seconds'][k]:,.1f} |" for k in
          ("seconds_load_and_check", "seconds_embed", "seconds_match", "seconds_value", "seconds_report",
           "seconds_analysis", "seconds_total") if k in info["seconds"]],
        "", "(analysis — t-SNE, galleries, bootstraps — is part of report; total = valuation + report.)",
        "", "Output:", "", "```", info["stdout"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def contrast_lines(info: dict, total: int) -> list[str]:
    c = info.get("contrast")
    if not c:
        return []
    kib = c["time_max_rss_kib"]
    return [f"**Before streaming** ({c.get('label') or c['checkout']}: every set loaded into memory, then "
            "train ∪ held-out concatenated), the same command, stopped as soon as it started embedding: max RSS "
            f"**{kib / 1024:,.0f} MiB** (`/usr/bin/time -v`; anonymous {c['peak']['main_rss_anon_mib']:,.0f} MiB) — "
            f"{kib * 1024 / total:.0%} of the decoded size, against {info['time_max_rss_kib'] / 1024:,.0f} MiB for "
            "the whole streamed run.", ""]


if __name__ == "__main__":
    main()
