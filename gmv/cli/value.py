"""`gmv-value`: value training images against generated images, from the command line.

    gmv-value --train X_v1.npz --generated samples.npz --held-out X_v2.npz --embedder resnet20_cifar \
              --embedder-weights cifar10_resnet20.th --k 10 --index pq --rerank 100 --out results/run

A, B, C are `.npz` files (gmv's format), image folders or dataset names (digits, cifar10, …); npz files
and folders stream (read in batches by --num-workers DataLoader processes, never whole), and their
embeddings are cached in resumable chunks under --cache-dir. Embeddings computed elsewhere (.npy float32
N×D, memory-mapped) replace the images: --train-embeddings, --generated-embeddings, --held-out-embeddings
(optional --*-ids files: one id per line or a .npy; default: the row number), e.g.

    gmv-value --train-embeddings v1.npy --train-ids v1_ids.txt --generated-embeddings gen.npy \
              --held-out-embeddings v2.npy --k 10 --index ivfpq --rerank 100 --out results/run

Bad input exits with status 2 and one line saying what was wrong, before any embedding is computed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gmv.errors import GmvError


#: gmv-value's flag for each matcher setting (gmv.valuation.matchers.MatcherConfig declares them, with their
#: help); the seed is the run's --seed; renamed where a name is taken or was known before
MATCHER_FLAGS = {"kind": "--index", "m": "--pq-m", "nbits": "--nbits", "nlist": "--nlist", "nprobe": "--nprobe",
                 "rerank": "--rerank", "pca": "--pca", "train_size": "--train-size",
                 "recall_queries": "--recall-queries", "memory_gb": "--memory-gb", "target_recall": "--target-recall",
                 "chunk_size": "--search-chunk-size", "threads": "--faiss-threads"}


def add_matcher_options(group) -> None:
    """One option per MatcherConfig setting: its type, default and help from the dataclass."""
    import typing

    from gmv.valuation.matchers import KINDS, SETTINGS, MatcherConfig

    hints = typing.get_type_hints(MatcherConfig)
    missing = set(SETTINGS) - set(MATCHER_FLAGS) - {"seed"}
    if missing:  # a new matcher setting needs its flag here
        raise RuntimeError(f"gmv-value has no flag for matcher setting(s) {sorted(missing)}")
    for name, flag in MATCHER_FLAGS.items():
        f = MatcherConfig.__dataclass_fields__[name]
        kind = next(t for t in typing.get_args(hints[name]) or (hints[name],) if t is not type(None))
        group.add_argument(flag, dest=f"matcher_{name}", metavar=flag[2:].upper().replace("-", "_"), type=kind,
                           default=f.default, choices=KINDS if name == "kind" else None, help=f.metadata["help"])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gmv-value", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train", help="training images X (X_v1): .npz, folder or dataset name")
    p.add_argument("--generated", help="generated images X̂: .npz, folder or dataset name")
    p.add_argument("--held-out", help="held-out images X_v2 (the paper's RA2): valued from the same pool")
    g = p.add_argument_group("precomputed embeddings (instead of images: .npy float32 N×D, memory-mapped)")
    for what in ("train", "generated", "held-out", "reference"):
        g.add_argument(f"--{what}-embeddings", help=f"embeddings of the {what} set (replaces --{what})")
        g.add_argument(f"--{what}-ids", help=f"ids of the {what} embeddings: a text file (one per line) or .npy "
                                             "(default: the row number)")
    p.add_argument("--out", default="gmv-value-out", help="output folder")
    p.add_argument("--label", default=None, help="row label in the RA2 table (default: the --train name)")
    p.add_argument("--image-size", type=int, help="resize every set to this size (needed for mixed sizes)")
    g = p.add_argument_group("embedding")
    g.add_argument("--embedder", default="pixels", help="pixels | vgg16 | resnet20_cifar")
    g.add_argument("--embedder-weights", help="weights file (resnet20_cifar: required; vgg16: default torch cache)")
    g.add_argument("--layer", help="vgg16 layer: fc7 (default), fc6, pool5")
    g.add_argument("--embed-size", type=int, help="resize images to this size for the embedder (vgg16 default 224)")
    g.add_argument("--batch-size", type=int, default=256)
    g.add_argument("--num-workers", type=int, default=0,
                   help="DataLoader processes decoding streamed images (folders, npz files); 0 = in this process")
    g.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="network embedders: bf16 runs the forward pass under CPU autocast (part of the cache key)")
    g.add_argument("--chunk-size", type=int, help="rows per cached embedding chunk (a killed run resumes from the "
                                                  "last finished chunk; default 8192)")
    g.add_argument("--cache-dir", default=".cache/gmv", help="embedding cache ('' disables)")
    g.add_argument("--rerank-embedder", help="perceptual re-rank (ICLR 2025): re-order the matcher's candidates by "
                                             "this embedder's exact distance (pixels | whitened_pixels | vgg16 | "
                                             "resnet20_cifar); off by default")
    g.add_argument("--rerank-candidates", type=int, default=50, help="candidates per generated image to re-rank (≥ K)")
    g.add_argument("--rerank-weights", help="the re-rank embedder's weights file (resnet20_cifar: required)")
    g.add_argument("--rerank-layer", help="the re-rank embedder's layer (resnet20_cifar: pooled | layer1 | layer2 | "
                                          "layer3; vgg16: fc7 | fc6 | pool5)")
    g = p.add_argument_group("matching and value")
    g.add_argument("--k", type=int, default=10, help="K nearest training points per generated point")
    add_matcher_options(g)
    g.add_argument("--tau", default="auto",
                   help="softmax temperature of Eq. 5: a number (the paper: 1) or 'auto' (the nearest match gets "
                        "--target-top-credit of each generated point's credit on average; scale-free)")
    g.add_argument("--target-top-credit", type=float, default=0.9, help="the mean top-match credit of --tau auto")
    g.add_argument("--paper", action="store_true",
                   help="the authors' literal setting: squared L2 (FAISS's raw output) and tau = 1")
    g.add_argument("--baselines", default="auto",
                   help="membership baselines on the same samples, comma-separated ('' = none), from the registered "
                        "methods (gmv.valuation.methods.METHODS: knn_count, gan_leaks, gan_leaks_calibrated — "
                        "that one needs --reference); auto = every default baseline, those needing a reference "
                        "only when --reference is given")
    g.add_argument("--reference", help="real images in neither half (.npz, folder or dataset name), for calibrated "
                                       "GAN-Leaks")
    g.add_argument("--audit-fdr", type=float, default=0.05, help="per-image audit: Benjamini–Hochberg FDR level")
    g.add_argument("--distance", default="l2", choices=["l2", "sqeuclidean"],
                   help="distance in Eq. 5: Euclidean (default) or squared Euclidean (FAISS's raw output)")
    g.add_argument("--quality", default="none", choices=["none", "realism", "file"],
                   help="quality-weighted credit (ICLR 2025): each generated image hands out q_j ∈ [0, 1] instead "
                        "of 1 — realism: the k-NN realism score in the embedding (no weights); file: --quality-file")
    g.add_argument("--quality-file", help="--quality file: CSV with a `quality` column (higher = better), one row "
                                          "per generated image in order; scores are divided by their maximum")
    g = p.add_argument_group("engine (where embedding and matching run)")
    g.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: this process; ray: Ray Data actors embed, Ray tasks search pool shards, exact merge "
                        "(needs pip install 'gmv[distributed]')")
    g.add_argument("--ray-address", help="Ray cluster to join (host:port, ray://host:port or auto; default: "
                                         "RAY_ADDRESS, else a local Ray instance)")
    g.add_argument("--shard-size", type=int, help="pool points per Ray search task (default: pool / CPU slots)")
    g = p.add_argument_group("analysis and logging")
    g.add_argument("--ra3-n", type=int, default=8,
                   help="rows in each RA3 gallery (with attributes: 4 × this many images per side are compared)")
    g.add_argument("--report-class", type=int,
                   help="a class label whose RA2 row (t, p, AUROC, means) also goes into metrics.json as "
                        "class_<c>_…; RA2 per class (ra2_per_class.md) is written whenever the pool has "
                        "several labels and --held-out is given")
    g.add_argument("--tsne-cap", type=int, default=None,
                   help="points per set in the RA1 t-SNE (default 1,500; 1,000 above 50,000 valued images)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--wandb", default="offline", choices=["online", "offline", "disabled"], help="W&B mode")
    g.add_argument("--wandb-project", default="gmv")
    return p


def run(args: argparse.Namespace) -> dict:
    from gmv.analysis.report import summary, write_report
    from gmv.io import staged_folder, write_json
    from gmv.tracking import Tracker
    from gmv.valuation.api import valuate
    from gmv.valuation.matchers import MatcherConfig

    _check_out(args)
    inputs = _inputs(args)
    embedder_options = {k: v for k, v in {"weights": args.embedder_weights, "layer": args.layer,
                                          "image_size": args.embed_size, "precision": args.precision}.items()
                        if v is not None}
    if args.embedder == "pixels":
        if args.precision != "fp32":
            raise GmvError("--precision bf16 applies to network embedders (vgg16, resnet20_cifar), not pixels")
        embedder_options = {}
    embedder_options.update({k: v for k, v in {"batch_size": args.batch_size, "num_workers": args.num_workers,
                                               "chunk_size": args.chunk_size}.items() if v is not None})
    matcher = MatcherConfig(**{name: getattr(args, f"matcher_{name}") for name in MATCHER_FLAGS}, seed=args.seed)
    from gmv.valuation.methods import GMValuator, build_method, default_baselines

    label = args.label or Path(args.train or args.train_embeddings).stem
    if args.paper:
        args.tau, args.distance = 1.0, "sqeuclidean"
    method = GMValuator(k=args.k, tau=args.tau, distance=args.distance, target_top_credit=args.target_top_credit,
                        quality=args.quality, quality_file=args.quality_file)
    names = (default_baselines(bool(args.reference)) if args.baselines == "auto"
             else [n.strip() for n in args.baselines.split(",") if n.strip()])
    baselines = [build_method(n, k=args.k) for n in names]
    for b in baselines:
        if b.needs_reference and not args.reference:
            raise GmvError(f"baseline {b.name} needs --reference (real images in neither half); "
                           "give one or drop it from --baselines")
    if not 0.0 < args.audit_fdr < 1.0:
        raise GmvError(f"--audit-fdr must lie strictly between 0 and 1, got {args.audit_fdr}")
    t0 = time.perf_counter()
    val = valuate(inputs["train"], inputs["generated"], embedder=inputs["embedder"] or args.embedder,
                  matcher=matcher, k=args.k, held_out=inputs["held_out"], cache_dir=args.cache_dir or None,
                  embedder_options=embedder_options, image_size=args.image_size, method=method, baselines=baselines,
                  reference=inputs["reference"], engine=args.engine, ray_address=args.ray_address,
                  shard_size=args.shard_size, rerank_embedder=_rerank_embedder(args),
                  rerank_candidates=args.rerank_candidates)
    out = Path(args.out)
    config = dict(vars(args))
    with staged_folder(out) as staging, Tracker(mode=args.wandb, project=args.wandb_project, dir=staging,
                                                 name=label, config=config, job_type="value") as tracker:
        metrics = write_report(val, staging, label=label, tracker=tracker, ra3_n=args.ra3_n, tsne_cap=args.tsne_cap,
                               audit_fdr=args.audit_fdr, seed=args.seed, report_class=args.report_class)
        metrics["seconds_total"] = round(time.perf_counter() - t0, 3)  # valuation + report, end to end
        metrics["seconds_report"] = round(metrics["seconds_total"] - sum(val.seconds.values()), 3)
        metrics["engine"] = args.engine
        if args.engine == "ray":
            metrics.update({k: val.matches.settings[k] for k in ("n_shards", "shard_size")})
        write_json(staging / "metrics.json", metrics)
        write_json(staging / "command.json", {"argv": ["gmv-value", *sys.argv[1:]], "args": config})
    print(summary(metrics, label))
    print("stages: " + " · ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in
                                  [*val.seconds.items(), ("report", metrics["seconds_report"])]))
    print(f"results in {out}/ (values.csv, metrics.json, ra2_table.md, figures)")
    return metrics


def _rerank_embedder(args: argparse.Namespace) -> dict | None:
    """The re-rank embedder's config from --rerank-embedder/-weights/-layer, or None (no re-rank)."""
    if not args.rerank_embedder:
        if args.rerank_weights or args.rerank_layer:
            raise GmvError("--rerank-weights / --rerank-layer need --rerank-embedder")
        return None
    options = {"weights": args.rerank_weights, "layer": args.rerank_layer}
    return {"name": args.rerank_embedder, **{k: v for k, v in options.items() if v is not None}}


def _check_out(args: argparse.Namespace) -> None:
    """--out is replaced as a whole when the run ends (never a mix of old and new files), so nothing the
    run reads or keeps may live inside it."""
    out = Path(args.out).resolve()
    keep = {"--cache-dir": args.cache_dir or None,
            **{f"--{w.replace('_', '-')}{s}": getattr(args, f"{w}{s.replace('-', '_')}")
               for w in ("train", "generated", "held_out", "reference") for s in ("", "-embeddings", "-ids")}}
    for flag, path in keep.items():
        if path and (Path(path).resolve() == out or out in Path(path).resolve().parents):
            raise GmvError(f"{flag} {path} lies inside --out {args.out}, which is replaced as a whole when the "
                           "run ends; put it elsewhere or choose another --out")


def _inputs(args: argparse.Namespace) -> dict:
    """train / generated / held_out / reference from the image or the embedding options (not both)."""
    from gmv.valuation.precomputed import load_embeddings

    out: dict = {"embedder": None}
    for what in ("train", "generated", "held_out", "reference"):
        flag = what.replace("_", "-")
        images, emb, ids = (getattr(args, what), getattr(args, f"{what}_embeddings"), getattr(args, f"{what}_ids"))
        if images and emb:
            raise GmvError(f"give --{flag} (images) or --{flag}-embeddings, not both")
        if ids and not emb:
            raise GmvError(f"--{flag}-ids names the rows of --{flag}-embeddings; give that file too")
        if what in ("train", "generated") and not (images or emb):
            raise GmvError(f"--{flag} (images) or --{flag}-embeddings is required")
        out[what] = load_embeddings(emb, ids=ids, name=Path(emb).stem) if emb else images
    given = [getattr(args, f"{w}_embeddings") is not None for w in ("train", "generated", "held_out", "reference")
             if getattr(args, w) or getattr(args, f"{w}_embeddings")]
    if any(given) and not all(given):
        raise GmvError("give embeddings for every set (--train-embeddings, --generated-embeddings, …) or images for "
                       "every set; the two cannot be mixed")
    if any(given):
        out["embedder"] = "precomputed"
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from gmv.console import quiet_third_party

    quiet_third_party()
    try:
        run(args)
    except GmvError as e:
        print(f"gmv-value: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
