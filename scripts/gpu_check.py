"""The steps of scripts/gpu_check.sh (run that: it picks the Python and the time limit).

    python scripts/gpu_check.py --mode gpu|cpu --out results/bench/gpu.md

gpu: smoke studies on cuda, published-preset training iterations, VGG-16 fc7 at 224 px, FAISS search at
N = 100k × M = 10k × D = 4096. cpu: the same code paths at toy sizes (the fallback the slow test runs).
Writes OUT (.md) and OUT with .json; every step's failure is recorded, not fatal.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path


#: what is known of a registered generator's published schedule: (config name, published preset, iterations of
#: it, a reference time where one is known). Every generator of gmv.generators.GENERATORS is checked; one
#: missing here is timed at its first preset with no reference.
PUBLISHED = [("biggan", "cifar10", 100_000, "StudioGAN: 100k BigGAN CIFAR-10 steps in 12.8 GPU-hours"),
             ("stylegan2", "cifar10", None, None),
             ("cfg_diffusion", "cifar10", 800_000, None)]


def generator_presets() -> tuple[list[tuple], dict[str, str]]:
    """(PRESETS: one row per registered generator, TOY: its CPU-sized preset) from the generator registry."""
    from hydra.utils import get_class

    from gmv.generators import GENERATORS

    known = {row[0]: row for row in PUBLISHED}
    presets, toy = [], {}
    for name, target in GENERATORS.items():
        names = list(get_class(target).presets)
        toy[name] = "tiny" if "tiny" in names else names[0]
        presets.append(known.get(name, (name, names[-1], None, None)))
    return presets, toy


PRESETS, TOY = generator_presets()


def smoke(generator: str, mode: str, work: Path) -> dict:
    """One generator's smoke study through the `gmv` app, on cuda (gpu) or the CPU (toy sizes)."""
    run = work / f"smoke_{generator}"
    args = ["experiment=smoke", f"generator={generator}", "logger.mode=disabled", f"cache_dir={work / 'cache'}",
            f"hydra.run.dir={run}", "trainer=gpu" if mode == "gpu" else "trainer=cpu"]
    if mode == "cpu":
        args += ["train.max_iterations=2", "generate.m=16", "data.split.per_class_limit=4", "generator.batch_size=4",
                 "valuation.k=2", "valuation.tsne_cap=40", "valuation.ra3_n=2", "valuation.reference_size=0",
                 "num_threads=2"]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gmv.cli.main", *args], capture_output=True, text=True, timeout=400)
    row = {"generator": generator, "seconds": round(time.perf_counter() - t0, 1), "ok": out.returncode == 0}
    if out.returncode == 0:
        m = json.loads((run / "metrics.json").read_text())
        row.update(p_value=m.get("p_value"), auroc=m.get("auroc"), train_seconds=m.get("train_seconds"))
    else:
        row["error"] = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"
    return row


def preset_iterations(generator: str, preset: str, mode: str, work: Path, n: int) -> dict:
    """Seconds per generator iteration of a preset through the harness: warm up, then time `n` more
    iterations of the resumed run (start-up and compilation excluded)."""
    import numpy as np

    from gmv.data.imageset import ImageSet
    from gmv.generators import GENERATORS
    from gmv.pipeline.stages import build_generator
    from gmv.training.datamodule import ImageSetDataModule
    from gmv.training.train import train_generator

    module = build_generator({"_target_": GENERATORS[generator], "preset": preset}, 10, 32, 3, seed=0)
    batch = int(module.batch_size)
    images = np.random.default_rng(0).integers(0, 256, (batch * 4, 32, 32, 3), dtype=np.uint8)
    data = ImageSet(images, np.arange(len(images)) % 10, name="random")
    dm = ImageSetDataModule(data, batch_size=batch, seed=0)
    trainer = {"accelerator": "gpu" if mode == "gpu" else "cpu", "devices": 1, "precision": "32-true",
               "enable_model_summary": False}
    folder = work / f"preset_{generator}_{preset}"
    warm = train_generator(module, dm, 2, folder, trainer_cfg=trainer, checkpoint_every=0, sample_every=0)
    timed = train_generator(module, dm, 2 + n, folder, trainer_cfg=trainer, checkpoint_every=0, sample_every=0)
    per_it = timed["train_time_s"] / max(1, timed["iterations_run"])
    return {"generator": generator, "preset": preset, "parameters": module.parameter_counts()["total"],
            "batch_size": batch, "seconds_per_iteration": round(per_it, 4), "warmup_seconds": round(
                warm["wall_time_s"], 1), "images_per_s": round(timed["images_per_s"], 1)}


def vgg_embedding(mode: str, n: int) -> dict:
    import numpy as np
    import torch

    from gmv.valuation.embedders import VGG16Embedder

    device = "cuda" if mode == "gpu" else "cpu"
    size = 224 if mode == "gpu" else 32
    emb = VGG16Embedder(layer="fc7", image_size=size, pretrained=False, batch_size=128 if mode == "gpu" else 16,
                        progress=False, device=device)
    images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    emb(images[: min(n, 64)])  # warm-up (cuDNN autotuning, allocator)
    if mode == "gpu":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    feats = emb(images)
    seconds = time.perf_counter() - t0
    return {"layer": "fc7", "image_size": size, "device": device, "images": n, "dim": int(feats.shape[1]),
            "images_per_s": round(n / seconds, 1)}


def search(mode: str) -> dict:
    import numpy as np
    import torch

    from gmv.valuation.matchers import exact_search

    n, m, d, k = (100_000, 10_000, 4096, 10) if mode == "gpu" else (2_000, 200, 64, 10)
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((n, d), dtype=np.float32)
    queries = rng.standard_normal((m, d), dtype=np.float32)
    t0 = time.perf_counter()
    _, idx = exact_search(pool, queries, k)
    faiss_s = time.perf_counter() - t0
    row = {"n": n, "m": m, "d": d, "k": k, "faiss_cpu_flat_seconds": round(faiss_s, 3)}
    if mode == "gpu":  # the same exact top-k as one matrix product on the GPU, for scale
        p, q = torch.from_numpy(pool).cuda(), torch.from_numpy(queries).cuda()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        dist = (q * q).sum(1, keepdim=True) - 2 * q @ p.T + (p * p).sum(1)
        top = dist.topk(k, largest=False).indices.cpu().numpy()
        row["torch_cuda_exact_seconds"] = round(time.perf_counter() - t0, 3)
        row["agreement_top1"] = float((top[:, 0] == idx[:, 0]).mean())
    return row


def _step(name: str, results: dict, fn, *args) -> None:
    t0 = time.perf_counter()
    try:
        results[name] = fn(*args)
    except Exception as e:  # noqa: BLE001 - a failed step is a finding, the others still run
        results[name] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)}
    print(f"[gpu_check] {name}: {time.perf_counter() - t0:.1f} s", flush=True)


def render(results: dict, mode: str) -> str:
    lines = [f"# GPU check ({'CUDA' if mode == 'gpu' else 'CPU fallback, toy sizes'})", "",
             f"Command: `bash scripts/gpu_check.sh{'' if mode == 'gpu' else ' --cpu'}`; machine: {results['machine']}.",
             ""]
    for name, value in results.items():
        if name == "machine":
            continue
        lines.append(f"## {name}")
        rows = value if isinstance(value, list) else [value]
        for row in rows:
            lines.append("- " + ", ".join(f"{k} = {v}" for k, v in row.items() if k != "trace"))
        lines.append("")
    for row in results.get("preset_iterations", []):
        if "seconds_per_iteration" in row:
            total = dict((g, n) for g, _, n, _ in PRESETS).get(row["generator"])
            if total:
                lines.append(f"- {row['generator']} `{row['preset']}`: {total:,} iterations ≈ "
                             f"{row['seconds_per_iteration'] * total / 3600:.1f} hours at this rate")
    lines += ["", "Reference: " + "; ".join(r for *_, r in PRESETS if r)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["gpu", "cpu"], required=True)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    import torch

    gpu = torch.cuda.get_device_name(0) if a.mode == "gpu" else "none"
    results: dict = {"machine": f"{platform.machine()}, torch {torch.__version__}, GPU {gpu}"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results["smoke"] = []
        for g in TOY:
            _step(f"smoke {g}", results, smoke, g, a.mode, work)
            results["smoke"].append(results.pop(f"smoke {g}"))
        results["preset_iterations"] = []
        for g, preset, _, _ in PRESETS:
            chosen = preset if a.mode == "gpu" else TOY[g]
            _step(f"preset {g}", results, preset_iterations, g, chosen, a.mode, work, 20 if a.mode == "gpu" else 2)
            results["preset_iterations"].append(results.pop(f"preset {g}"))
        _step("vgg16_fc7", results, vgg_embedding, a.mode, 2048 if a.mode == "gpu" else 32)
        _step("faiss_search", results, search, a.mode)
    from gmv.io import write_json, write_text

    write_json(a.out.with_suffix(".json"), results)
    write_text(a.out, render(results, a.mode))
    print(f"[gpu_check] wrote {a.out} and {a.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
