"""Benchmark: gmv's embedders (images/s) against a bare forward pass of the same network.

    python scripts/bench_embedders.py            # writes results/bench/embedders.{md,json}

The bare pass feeds an already-normalised float tensor straight into the network's feature
function under inference_mode; gmv's path starts from uint8 N×H×W×C pixels (as stored) and does
the conversion, normalisation, batching and finiteness check itself. VGG-16 uses random weights
(the ImageNet file is not available offline; speed does not depend on the weight values).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gmv.io import write_json, write_text  # noqa: E402
from gmv.valuation.embedders import ResNet20Embedder, VGG16Embedder  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def timed(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=512, help="images per timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "results" / "bench"))
    a = p.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (a.n, 32, 32, 3), dtype=np.uint8)
    cases = [("vgg16 pool5 @32px (random weights)", VGG16Embedder(layer="pool5", image_size=32, pretrained=False,
                                                                  progress=False), a.n)]
    weights = SHARED / "cifar10_resnet20-12fca82f.th"
    if weights.is_file():
        cases.append(("resnet20_cifar @32px", ResNet20Embedder(weights=str(weights), progress=False), a.n))
    cases.append(("vgg16 fc7 @224px (random weights)", VGG16Embedder(layer="fc7", image_size=224, pretrained=False,
                                                                    progress=False), 32))
    rows = []
    for name, emb, n in cases:
        x = images[:n]
        # The bare pass: the same network on a pre-normalised, pre-resized, channels_last float tensor.
        ready = torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255)
        if emb.image_size and emb.image_size != 32:
            ready = torch.nn.functional.interpolate(ready, size=(emb.image_size,) * 2, mode="bilinear",
                                                    antialias=True, align_corners=False)
        ready = ((ready - emb.mean) / emb.std).contiguous(memory_format=torch.channels_last)

        def bare():
            with torch.inference_mode():
                for s in range(0, n, emb.batch_size):
                    emb._features(ready[s:s + emb.batch_size])

        t_bare = timed(bare, a.repeats)
        t_gmv = timed(lambda: emb(x), a.repeats)
        rows.append({"embedder": name, "n": n, "images_per_s_bare": n / t_bare, "images_per_s_gmv": n / t_gmv,
                     "overhead": t_gmv / t_bare - 1})
        print(f"{name:38s} bare {n / t_bare:8.1f} img/s   gmv {n / t_gmv:8.1f} img/s   "
              f"overhead {100 * (t_gmv / t_bare - 1):+.1f}%", flush=True)
    command = "python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    write_json(Path(a.out) / "embedders.json", {"command": command, "torch_threads": torch.get_num_threads(),
                                                "cpu_count": os.cpu_count(), "rows": rows})
    lines = ["# Embedder benchmark", "",
             f"`{command}` — {os.cpu_count()} CPU cores, torch {torch.__version__} with "
             f"{torch.get_num_threads()} threads. gmv's path includes uint8 → float conversion, ImageNet "
             "normalisation, resizing (224 px row) and the finiteness check; the bare pass gets a ready tensor "
             "(its resize excluded), so the overhead column is an upper bound.", "",
             "| embedder | images | bare forward img/s | gmv img/s | gmv overhead |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['embedder']} | {r['n']} | {r['images_per_s_bare']:.1f} | {r['images_per_s_gmv']:.1f} | "
              f"{100 * r['overhead']:+.1f}% |" for r in rows]
    write_text(Path(a.out) / "embedders.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
