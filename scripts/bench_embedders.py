"""Benchmark: gmv's streamed, chunked embedding stage against a bare torchvision pipeline, same settings.

    python scripts/make_image_folder.py --data ../shared/data/cifar10_train_2000pc.npz --out /tmp/gmv_png20k
    python scripts/bench_embedders.py --folder /tmp/gmv_png20k     # writes results/bench/embedders.{md,json}

gmv: `embed_source(embedder, open_folder(folder), cache_dir)` into a fresh cache dir — listing, header
check, fingerprint, DataLoader decode with `--workers` processes, uint8 → float, ImageNet normalisation,
the forward pass, finiteness check, chunk files written atomically, concatenation and sha256 at the end.
bare: `torchvision.datasets.ImageFolder` (ToTensor + Normalize) in a `DataLoader` with the same batch size
and workers, the same network's forward under inference_mode (channels_last), features kept in memory.
The "array" rows do the same from pixels already in memory (no decode): gmv's store against a bare loop
over a ready float tensor. Runs alternate gmv / bare (order flipped each repeat) and the median of
`--repeats` is reported, so machine load affects both alike; the load average is recorded with each row.

`--precision-check` adds the bf16 row: the change in embeddings and in φ against fp32 on a real case
(the pretrained CIFAR-10 ResNet-20; planted X̂ = augmented copies of X_v1, cat class of the CIFAR subset).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from gmv.data.stream import open_folder
from gmv.io import write_json, write_text
from gmv.valuation.embed import embed_source
from gmv.valuation.embedders import ResNet20Embedder, VGG16Embedder

SHARED = Path(os.environ.get("GMV_SHARED_DATA") or ROOT.parent / "shared" / "data")  # GMV_SHARED_DATA: elsewhere


def bare_folder(emb, root: Path, n: int, workers: int) -> np.ndarray:
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    ds = datasets.ImageFolder(str(root), transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(emb.mean.flatten().tolist(), emb.std.flatten().tolist())]))
    loader = DataLoader(Subset(ds, range(n)), batch_size=emb.batch_size, num_workers=workers)
    return bare_forward(emb, (x for x, _ in loader))


def bare_forward(emb, batches) -> np.ndarray:
    out = []
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if emb.precision == "bf16" else contextlib.nullcontext()
    with torch.inference_mode(), cast:
        for x in batches:
            if emb.image_size and tuple(x.shape[-2:]) != (emb.image_size,) * 2:
                x = torch.nn.functional.interpolate(x, size=(emb.image_size,) * 2, mode="bilinear", antialias=True,
                                                    align_corners=False)
            out.append(emb._features(x.contiguous(memory_format=torch.channels_last)).flatten(1).float().numpy())
    return np.concatenate(out)


def gmv_run(emb, source) -> np.ndarray:
    cache = tempfile.mkdtemp(prefix="gmv-bench-")
    try:
        feats, _ = embed_source(emb, source, cache)
        return np.array(feats)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def interleaved(gmv_fn, bare_fn, repeats: int) -> dict:
    times = {"gmv": [], "bare": []}
    loads = []
    feats = {}
    for r in range(repeats):
        for side in (("gmv", "bare") if r % 2 == 0 else ("bare", "gmv")):
            t = time.perf_counter()
            feats[side] = (gmv_fn if side == "gmv" else bare_fn)()
            times[side].append(time.perf_counter() - t)
            loads.append(os.getloadavg()[0])
    diff = float(np.abs(feats["gmv"] - feats["bare"]).max())
    return {"seconds_gmv": times["gmv"], "seconds_bare": times["bare"], "median_gmv": statistics.median(times["gmv"]),
            "median_bare": statistics.median(times["bare"]), "load_avg_1min": [round(x, 2) for x in loads],
            "max_abs_feature_diff": diff}


def precision_check(weights: Path) -> dict:
    from gmv.data.augment import augmented_copies
    from gmv.data.sources import load_npz
    from gmv.valuation.api import valuate

    data = load_npz(SHARED / "cifar10_train_2000pc.npz")
    cat = np.flatnonzero(data.labels == 3)
    v1, v2 = data.subset(cat[:1000]), data.subset(cat[1000:2000])
    gen = augmented_copies(v1, 1000, seed=0)
    vals, times = {}, {}
    for prec in ("fp32", "bf16"):
        t = time.perf_counter()
        vals[prec] = valuate(v1, gen, held_out=v2, embedder=ResNet20Embedder(weights=str(weights), precision=prec,
                                                                             progress=False), matcher="flat", k=10)
        times[prec] = time.perf_counter() - t
    a, b = vals["fp32"], vals["bf16"]
    rel = lambda x, y: np.linalg.norm(y - x, axis=1) / np.maximum(np.linalg.norm(x, axis=1), 1e-12)  # noqa: E731
    e_rel = np.concatenate([rel(a.pool_emb, b.pool_emb), rel(a.gen_emb, b.gen_emb)])
    dphi = np.abs(b.values - a.values)
    from scipy.stats import spearmanr
    from gmv.analysis.ra2 import welch_one_sided
    from gmv.analysis.membership import auroc

    stats = {}
    for prec, v in vals.items():
        i1, i2 = v.side("v1"), v.side("v2")
        stats[prec] = {"t": welch_one_sided(v.values[i1], v.values[i2])[0], "auroc": auroc(v.values[i1], v.values[i2]),
                       "tau": v.tau, "seconds": times[prec]}
    return {"embedding_rel_diff_max": float(e_rel.max()), "embedding_rel_diff_mean": float(e_rel.mean()),
            "phi_abs_diff_max": float(dphi.max()), "phi_abs_diff_mean": float(dphi.mean()),
            "phi_max": float(a.values.max()), "phi_mean": float(a.values.mean()),
            "phi_rel_diff_mean": float(dphi.mean() / a.values.mean()),
            "phi_changed_share": float((dphi > 1e-9).mean()),
            "phi_spearman": float(spearmanr(a.values, b.values).statistic),
            "top1_match_agreement": float((a.matches.indices[:, 0] == b.matches.indices[:, 0]).mean()), **{
                f"{p}_{k}": v for p, s in stats.items() for k, v in s.items()}}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--folder", default="/tmp/gmv_png20k", help="PNG folder (scripts/make_image_folder.py)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes, both sides")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n-resnet", type=int, default=20000, help="images decoded per ResNet-20 run")
    p.add_argument("--n-vgg", type=int, default=4096, help="images decoded per VGG-16 run (≈ 100 img/s here)")
    p.add_argument("--n-array", type=int, default=8192, help="at most this many images per in-memory run")
    p.add_argument("--precision-check", action="store_true", help="add the bf16-vs-fp32 section")
    p.add_argument("--precision-only", action="store_true",
                   help="run only the bf16 section, keeping the throughput rows of an existing embedders.json")
    p.add_argument("--out", default=str(ROOT / "results" / "bench"))
    a = p.parse_args()
    weights = SHARED / "cifar10_resnet20-12fca82f.th"
    if a.precision_only:
        import json

        info = json.loads((Path(a.out) / "embedders.json").read_text())
        info["bf16"] = {**precision_check(weights), "load_avg_1min": os.getloadavg()[0]}
        write_json(Path(a.out) / "embedders.json", info)
        write_text(Path(a.out) / "embedders.md", markdown(info))
        return
    folder = Path(a.folder)
    n_files = len(open_folder(folder).images)
    kw = {"batch_size": a.batch_size, "num_workers": a.workers, "progress": False}
    cases = [("resnet20_cifar @32px", lambda: ResNet20Embedder(weights=str(weights), **kw), a.n_resnet),
             ("vgg16 pool5 @32px (random weights)",
              lambda: VGG16Embedder(layer="pool5", image_size=32, pretrained=False, **kw), a.n_vgg)]
    rows = []
    load_start = os.getloadavg()
    for name, make, n in cases:
        emb = make()
        n_mem = min(n, a.n_array)
        pixels = np.asarray(open_folder(folder, limit=n_mem).images)
        ready = ((torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - emb.mean) / emb.std)
        for kind, count, g, b in (
                ("folder (PNG decode)", n, lambda: gmv_run(emb, open_folder(folder, limit=n)),
                 lambda: bare_folder(emb, folder, n, a.workers)),
                ("array in memory", n_mem, lambda: gmv_run(emb, pixels),
                 lambda: bare_forward(emb, (ready[s:s + emb.batch_size] for s in range(0, n_mem, emb.batch_size))))):
            r = {"embedder": name, "source": kind, "n": count, **interleaved(g, b, a.repeats)}
            r["overhead"] = r["median_gmv"] / r["median_bare"] - 1
            rows.append(r)
            print(f"{name:36s} {kind:20s} n={count:6d}  bare {count / r['median_bare']:7.1f} img/s  gmv "
                  f"{count / r['median_gmv']:7.1f} img/s  overhead {100 * r['overhead']:+.1f}%  load {r['load_avg_1min']}",
                  flush=True)
    check = {**precision_check(weights), "load_avg_1min": os.getloadavg()[0]} if a.precision_check else None
    command = "python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    info = {"command": command, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "folder_files": n_files, "workers": a.workers, "batch_size": a.batch_size, "repeats": a.repeats,
            "load_avg_at_start": load_start, "load_avg_at_end": os.getloadavg(), "rows": rows, "bf16": check}
    write_json(Path(a.out) / "embedders.json", info)
    write_text(Path(a.out) / "embedders.md", markdown(info))


def markdown(info: dict) -> str:
    lines = ["# Embedding-stage benchmark", "",
             f"`{info['command']}` — {info['cpu_count']} CPU cores, torch {torch.__version__} with "
             f"{info['torch_threads']} threads, batch {info['batch_size']}, {info['workers']} DataLoader workers on "
             f"both sides, folder of {info['folder_files']} PNG files (CIFAR-10 subset, 32×32). **Machine load**: "
             f"1-min load average {info['load_avg_at_start'][0]:.1f} at the start, {info['load_avg_at_end'][0]:.1f} at "
             "the end (other jobs were running; each row lists the load after each of its runs). gmv and bare runs "
             f"alternate (order flipped each repeat); medians of {info['repeats']}.", "",
             "gmv = `embed_source(embedder, open_folder(…), cache_dir)`: listing, header check, fingerprint, "
             "DataLoader decode, normalisation, forward, chunk files written atomically, concatenation + sha256. "
             "bare = torchvision `ImageFolder` + `DataLoader` + the same forward, features kept in memory "
             "(array rows: a loop over a ready, normalised float tensor).", "",
             "| embedder | source | images | bare img/s | gmv img/s | gmv overhead | max |Δ feature| | load (1-min avg) |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in info["rows"]:
        lines.append(f"| {r['embedder']} | {r['source']} | {r['n']} | {r['n'] / r['median_bare']:.1f} | "
                     f"{r['n'] / r['median_gmv']:.1f} | {100 * r['overhead']:+.1f}% | {r['max_abs_feature_diff']:.2g} | "
                     f"{', '.join(f'{x:.1f}' for x in r['load_avg_1min'])} |")
    c = info.get("bf16")
    if c:
        lines += ["", "## bf16 autocast against fp32 (CPU), a real case", "",
                  "Pretrained CIFAR-10 ResNet-20, X_v1 = 1,000 cats, X_v2 = 1,000 other cats, X̂ = 1,000 augmented "
                  f"copies of X_v1; flat search, K = 10, τ = auto (1-min load average {c['load_avg_1min']:.1f}).", "",
                  "| quantity | value |", "|---|---:|",
                  f"| embedding ‖Δ‖/‖e‖ per image, max | {c['embedding_rel_diff_max']:.4g} |",
                  f"| embedding ‖Δ‖/‖e‖ per image, mean | {c['embedding_rel_diff_mean']:.4g} |",
                  f"| φ: max abs difference (max φ = {c['phi_max']:.3g}) | {c['phi_abs_diff_max']:.4g} |",
                  f"| φ: mean abs difference / mean φ | {c['phi_rel_diff_mean']:.4g} |",
                  f"| φ: share of images whose value changed | {c['phi_changed_share']:.3f} |",
                  f"| φ: Spearman rank correlation bf16 vs fp32 | {c['phi_spearman']:.4f} |",
                  f"| top-1 match unchanged | {c['top1_match_agreement']:.3f} |",
                  f"| Welch t fp32 → bf16 | {c['fp32_t']:.3f} → {c['bf16_t']:.3f} |",
                  f"| AUROC fp32 → bf16 | {c['fp32_auroc']:.4f} → {c['bf16_auroc']:.4f} |",
                  f"| τ (auto) fp32 → bf16 | {c['fp32_tau']:.4g} → {c['bf16_tau']:.4g} |",
                  f"| valuate() seconds fp32 → bf16 | {c['fp32_seconds']:.1f} → {c['bf16_seconds']:.1f} |"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
