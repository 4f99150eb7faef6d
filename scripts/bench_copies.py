"""Which embedding sees which copies: the copy-detection map (issue 20).

    python scripts/bench_copies.py --data ../shared/data/cifar10_train_2000pc.npz \
        --weights ../shared/data/cifar10_resnet20-12fca82f.th --out results/copies/cifar10
    python scripts/bench_copies.py --data digits --out results/copies/digits      # no ResNet-20 rows

A seeded draw of `--n` real images (never a study's) is split in halves X_v1 / X_v2; X̂ is a perturbed copy
of `--copies` X_v1 images — one perturbation at one strength per cell of the map. For every embedder and
cell: recall@1 (the share of copies whose nearest pool image, exact search in that embedding, is the image
it was copied from) and the RA2 reading of a GMValuator valuation of the pool against X̂ (K = 10, τ = auto,
exact search): AUROC and TPR@1%FPR of X_v1 against X_v2. With copies of a quarter of the pool, a perfect
valuation reaches AUROC ≈ 0.75 and TPR@1%FPR ≈ 0.5 (the copied half of X_v1 above every X_v2 image, the
other half among them).

With `--weights`, one more column is the ICLR 2025 perceptual re-rank: 50 candidates per copy from PQ on
pixels, re-ordered by the exact distance in ResNet-20 layer-2 features (gmv/valuation/rerank.py).
`--embedders A,B` runs only those columns (a re-rank column computes its two embeddings itself).
`--embedder CONFIG=WEIGHTS` (repeatable) adds a column for an embedder of conf/embedder/ that takes its weights
by path — DINOv2 (`dinov2_vits14`), CLIP (`clip_vitb32`), SSCD (`sscd`), `pip install 'gmv[hub]'` — e.g.
`--embedder sscd=PATH/sscd_disc_mixup.torchscript.pt`; gmv never downloads them.

Writes OUT/copies.csv and copies.json (every cell), copies.md (the tables) and copies.png (heat maps of
TPR@1%FPR and recall@1: perturbations × embedders).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np

from gmv.analysis.membership import membership_summary
from gmv.analysis.tables import markdown_table
from gmv.data import load_images
from gmv.io import save_figure, write_csv, write_text
from gmv.valuation.api import valuate
from gmv.valuation.embedders import build_embedder
from gmv.valuation.precomputed import EmbeddingSet

#: perturbation → strengths (noise σ and colour jitter on 0–255 / relative scales, JPEG quality, shift and
#: blur in pixels, crop as the kept fraction of the side)
GRID = {
    "exact": (0,),  # unperturbed copies: the ceiling a valuation can reach in this setting (a positive control)
    "noise": (2, 4, 8, 16),
    "jpeg": (90, 70, 50, 30),
    "shift": (1, 2, 4, 6),
    "crop": (0.9, 0.8, 0.7),
    "flip": (1,),
    "jitter": (0.1, 0.2, 0.3, 0.4),
    "blur": (0.5, 1.0, 1.5, 2.0),
}


def perturb(images: np.ndarray, kind: str, strength: float, seed: int) -> np.ndarray:
    """uint8 N×H×W×C → the same images perturbed (every image its own seeded random draw)."""
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torchvision.transforms import functional as TF

    rng = np.random.default_rng(seed)
    n, h, w, c = images.shape
    if kind == "exact":
        return images.copy()
    if kind == "noise":
        return np.clip(np.rint(images + rng.normal(0.0, strength, images.shape)), 0, 255).astype(np.uint8)
    if kind == "jpeg":
        out = np.empty_like(images)
        for i, img in enumerate(images):
            buf = io.BytesIO()
            Image.fromarray(img.squeeze(-1) if c == 1 else img).save(buf, format="JPEG", quality=int(strength))
            out[i] = np.asarray(Image.open(buf)).reshape(h, w, c)
        return out
    if kind == "flip":
        return images[:, :, ::-1].copy()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    if kind == "shift":  # by `strength` pixels in one of 8 directions, the border repeated
        d = int(strength)
        pad = F.pad(x, (d, d, d, d), mode="replicate")
        out = torch.empty_like(x)
        for i, (dy, dx) in enumerate(rng.choice([(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b], n)):
            out[i] = pad[i, :, d + dy * d:d + dy * d + h, d + dx * d:d + dx * d + w]
        x = out
    elif kind == "crop":  # keep a random `strength` × side square, resized back
        side = max(2, int(round(strength * h)))
        out = torch.empty_like(x)
        for i in range(n):
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            out[i] = F.interpolate(x[i:i + 1, :, top:top + side, left:left + side], size=(h, w), mode="bilinear",
                                   antialias=True, align_corners=False)[0]
        x = out
    elif kind == "jitter":  # brightness, contrast and saturation each × (1 ± strength), signs drawn per image
        signs = rng.choice([-1.0, 1.0], size=(n, 3))
        out = torch.empty_like(x)
        for i in range(n):
            img = x[i] / 255.0
            img = TF.adjust_brightness(img, 1 + signs[i, 0] * strength)
            img = TF.adjust_contrast(img, 1 + signs[i, 1] * strength) if c == 3 else img
            img = TF.adjust_saturation(img, 1 + signs[i, 2] * strength) if c == 3 else img
            out[i] = img * 255.0
        x = out
    elif kind == "blur":
        size = 2 * int(np.ceil(3 * strength)) + 1
        x = TF.gaussian_blur(x, [size, size], [float(strength)] * 2)
    else:
        raise ValueError(f"unknown perturbation {kind!r}")
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def config_embedder(option: str) -> tuple[str, dict]:
    """`CONFIG=WEIGHTS` → (column name, build_embedder spec): conf/embedder/CONFIG.yaml with its weights set."""
    from omegaconf import OmegaConf

    import gmv

    name, sep, weights = option.partition("=")
    path = Path(gmv.__file__).resolve().parent / "conf" / "embedder" / f"{name}.yaml"
    if not sep or not weights or not path.is_file():
        raise SystemExit(f"bench_copies: --embedder wants CONFIG=WEIGHTS with CONFIG a file of conf/embedder/, got "
                         f"{option!r}")
    if not Path(weights).is_file():
        raise SystemExit(f"bench_copies: --embedder {name}: weights file {weights} not found")
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    return name, {"spec": {**cfg, "weights": weights}}


def embedders(weights: str | None, rgb: bool, extra: list[str] = ()) -> dict[str, dict]:
    out = {"pixels": {"spec": "pixels"}, "whitened pixels (256)": {"spec": "whitened_pixels", "dims": 256}}
    if weights and rgb:
        for name, opts in (("ResNet-20 pooled (64)", {}), ("ResNet-20 layer1 8×8 (1024)", {"layer": "layer1", "grid": 8}),
                           ("ResNet-20 layer2 4×4 (512)", {"layer": "layer2", "grid": 4}),
                           ("ResNet-20 layer3 2×2 (256)", {"layer": "layer3", "grid": 2})):
            out[name] = {"spec": "resnet20_cifar", "weights": weights, **opts}
        out[RERANK] = {"spec": "rerank", "first": "pixels", "second": "ResNet-20 layer2 4×4 (512)", "candidates": 50}
    return out | dict(config_embedder(option) for option in extra)


RERANK = "pixels PQ → layer2 re-rank (R 50)"


def rerank_cell(first, second, v1_n, sources, seed, candidates: int) -> dict:
    """The re-rank column's cell: `first` and `second` are (pool, copies) embeddings of the two embedders."""
    from gmv.valuation.matchers import MatcherConfig, match
    from gmv.valuation.methods import Evidence, GMValuator
    from gmv.valuation.rerank import rerank

    cand = match(first[0], first[1], candidates, MatcherConfig(kind="pq", seed=seed), announce=False)
    tables = rerank(cand, second[0], second[1], 10, "l2", recall_queries=0)
    split = np.array(["v1"] * v1_n + ["v2"] * (len(second[0]) - v1_n))
    r = GMValuator(k=10).value(Evidence(second[0], second[1], split, tables))
    s = membership_summary(r.values[:v1_n], r.values[v1_n:], n_boot=200, seed=seed)
    return {"recall_at_1": float(np.mean(tables.indices[:, 0] == sources)), "auroc": s["auroc"],
            "tpr_at_1fpr": s["tpr_at_fpr"]}


def cell(pool_emb, v1_n, copies_emb, sources, seed) -> dict:
    """recall@1 of the sources and the RA2 reading of a GMValuator valuation against the copies."""
    ids = np.arange(len(pool_emb))
    val = valuate(EmbeddingSet(pool_emb[:v1_n], ids[:v1_n]), EmbeddingSet(copies_emb, np.arange(len(copies_emb))),
                  held_out=EmbeddingSet(pool_emb[v1_n:], ids[v1_n:]), embedder=None, matcher="flat", k=10,
                  baselines=[])
    nearest = val.matches.indices[:, 0]
    s = membership_summary(val.values[:v1_n], val.values[v1_n:], n_boot=200, seed=seed)
    return {"recall_at_1": float(np.mean(nearest == sources)), "auroc": s["auroc"], "tpr_at_1fpr": s["tpr_at_fpr"]}


def heatmaps(rows: list[dict], names: list[str], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    labels = list(dict.fromkeys(f"{r['perturbation']} {r['strength']:g}" for r in rows))
    fig = Figure(figsize=(4.0 + 1.6 * len(names), 1.2 + 0.28 * len(labels)), dpi=130)
    for j, (key, what) in enumerate((("tpr_at_1fpr", "TPR@1%FPR (the exact-copy row: the ceiling)"), ("recall_at_1", "recall@1 of the source"))):
        ax = fig.add_subplot(1, 2, j + 1)
        grid = np.array([[next(r[key] for r in rows if r["embedder"] == e and f"{r['perturbation']} {r['strength']:g}" == lab)
                          for e in names] for lab in labels])
        im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=0.5 if key == "tpr_at_1fpr" else 1.0, aspect="auto")
        for (a, b), v in np.ndenumerate(grid):
            ax.text(b, a, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.3 else "black")
        ax.set_xticks(range(len(names)), [n.replace(" (", "\n(").replace("ResNet-20 ", "ResNet-20\n") for n in names],
                      fontsize=6)
        ax.set_yticks(range(len(labels)), labels if j == 0 else [], fontsize=7)
        ax.set_title(what, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(path, fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="an image source: .npz, folder or dataset name (digits)")
    p.add_argument("--weights", help="CIFAR-10 ResNet-20 weights (adds its rows; RGB data only)")
    p.add_argument("--n", type=int, default=4000, help="pool images, split in halves (default 4,000)")
    p.add_argument("--copies", type=int, default=1000, help="X_v1 images copied into X̂ (default 1,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--embedders", help="comma-separated column names to run (default: all)")
    p.add_argument("--embedder", action="append", default=[], metavar="CONFIG=WEIGHTS",
                   help="add a column: an embedder of conf/embedder/ with its weights file (repeatable)")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    data = load_images(a.data)
    rng = np.random.default_rng(a.seed)
    pool = data.images[np.sort(rng.choice(len(data), min(a.n, len(data)), replace=False))]
    v1_n = len(pool) // 2
    sources = np.sort(rng.choice(v1_n, min(a.copies, v1_n), replace=False))
    every = embedders(a.weights, pool.shape[-1] == 3, a.embedder)
    wanted = [n.strip() for n in a.embedders.split(",")] if a.embedders else list(every)
    unknown = sorted(set(wanted) - set(every))
    if unknown:
        p.error(f"unknown --embedders {unknown}; choose among {list(every)}")
    names = {n: every[n] for n in wanted}
    needed = list(dict.fromkeys(x for n, spec in names.items()
                                for x in ((spec["first"], spec["second"]) if spec["spec"] == "rerank" else (n,))))
    built, pool_embs = {}, {}
    for name in needed:
        spec = every[name]
        emb = build_embedder(spec["spec"], progress=False, **{k: v for k, v in spec.items() if k != "spec"})
        if emb.needs_fit:
            emb.fit(pool)
        built[name], pool_embs[name] = emb, emb(pool)
    rows = []
    for kind, strengths in GRID.items():
        for strength in strengths:
            copies = perturb(pool[sources], kind, strength, seed=a.seed + 1)
            copies_embs = {name: built[name](copies) for name in needed}
            for name, spec in names.items():
                if spec["spec"] == "rerank":
                    r = rerank_cell((pool_embs[spec["first"]], copies_embs[spec["first"]]),
                                    (pool_embs[spec["second"]], copies_embs[spec["second"]]), v1_n, sources, a.seed,
                                    spec["candidates"])
                else:
                    r = cell(pool_embs[name], v1_n, copies_embs[name], sources, a.seed)
                rows.append({"embedder": name, "perturbation": kind, "strength": float(strength), **r})
                print(f"{name:28s} {kind:7s} {strength:>5g}: recall@1 {r['recall_at_1']:.3f} · AUROC {r['auroc']:.3f} "
                      f"· TPR@1%FPR {r['tpr_at_1fpr']:.3f}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    cols = ["embedder", "perturbation", "strength", "recall_at_1", "auroc", "tpr_at_1fpr"]
    write_csv(a.out / "copies.csv", cols, [[r[c] for c in cols] for r in rows])
    command = "python scripts/bench_copies.py " + " ".join(str(x) for x in (argv or __import__("sys").argv[1:]))
    write_text(a.out / "copies.json", json.dumps({"command": command, "n": len(pool), "copies": len(sources),
                                                 "seconds": round(time.perf_counter() - t0, 1), "rows": rows},
                                                indent=2) + "\n")
    lines = [f"# Copy-detection map: {a.data}", "", f"`{command}` — {len(pool)} images (X_v1 = X_v2 = {v1_n}), "
             f"X̂ = a perturbed copy of {len(sources)} X_v1 images; GMValuator K = 10, τ = auto, exact search. "
             "TPR@1%FPR can reach ≈ 0.5 at most; the `exact 0` row (unperturbed copies) is each embedding's "
             "ceiling here.", ""]
    for key, what in (("tpr_at_1fpr", "TPR@1%FPR"), ("recall_at_1", "recall@1 of the source"), ("auroc", "AUROC")):
        labels = list(dict.fromkeys((r["perturbation"], r["strength"]) for r in rows))
        body = [[f"{k} {s:g}", *[f"{next(r[key] for r in rows if r['embedder'] == e and (r['perturbation'], r['strength']) == (k, s)):.3f}"
                                 for e in names]] for k, s in labels]
        lines += [f"## {what}", "", markdown_table(["perturbation", *names], body, [False] + [True] * len(names)), ""]
    write_text(a.out / "copies.md", "\n".join(lines))
    heatmaps(rows, list(names), a.out / "copies.png", f"Which embedding sees which copies — {Path(a.data).stem}")
    print(f"wrote {a.out}/copies.{{md,csv,json,png}} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
