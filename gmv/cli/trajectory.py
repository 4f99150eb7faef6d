"""`gmv-trajectory`: the membership-signal trajectory of a finished `gmv` study run, from its periodic
checkpoints.

    gmv-trajectory RUN_DIR [--m 200] [--k K] [--tau TAU] [--every-nth 1] [--out DIR]
                   [--cache-dir DIR] [--resume]

RUN_DIR is a study's run folder (config.yaml, manifest.json, split.npz). The data and the split are
rebuilt exactly as the study built them (and checked against split.npz), the generator is built from
the config, and every `iter_XXXXXX.ckpt` in `<cache_dir>/train/<train key>/checkpoints/` (plus
last.ckpt when its iteration is not among them) is probed: m fresh samples, exact K-NN in the
pool X_v1 ∪ X_v2 in the study's embedding, values, RA2 (t, p, AUROC) and FD / floor. Writes
trajectory.csv and trajectory.png into --out (default RUN_DIR) and prints a table.

Defaults follow the run: K, τ and the distance from `valuation`, the sampling seed from `generate`.
A relative cache_dir in the manifest is relative to where the study was started; without
--cache-dir it is looked for under the current directory, then under RUN_DIR's parent folders.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gmv-trajectory", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a finished gmv study run folder")
    p.add_argument("--m", type=int, default=200, help="samples per checkpoint (default 200)")
    p.add_argument("--k", type=int, default=None, help="K nearest neighbours (default: the run's valuation.k)")
    p.add_argument("--tau", default=None, help="temperature τ, a number or 'auto' (default: the run's valuation.tau)")
    p.add_argument("--every-nth", type=int, default=1,
                   help="probe every n-th periodic checkpoint (the newest is always probed; default 1)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR)")
    p.add_argument("--cache-dir", type=Path, default=None, help="the study's cache_dir (overrides the manifest)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: the run's generate.seed)")
    p.add_argument("--batch-size", type=int, default=256, help="sampling batch size (default 256)")
    p.add_argument("--device", default="cpu", help="torch device for sampling (default cpu)")
    p.add_argument("--resume", action="store_true",
                   help="keep rows already in the output CSV and probe only new iterations")
    args = p.parse_args(argv)
    if args.every_nth < 1:
        p.error("--every-nth must be ≥ 1")
    return args


def _tau(value):
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return str(value)


def find_train_dir(run_dir: Path, manifest: dict, cache_dir: Path | None) -> Path:
    from gmv.errors import GmvError

    key = (manifest.get("cache_keys") or {}).get("train")
    if not key:
        raise GmvError(f"{run_dir}/manifest.json names no train cache key (cache_keys.train)")
    if cache_dir is not None:
        candidates = [cache_dir]
    else:
        cache = Path(manifest.get("cache_dir", ".cache/gmv"))
        candidates = [cache] if cache.is_absolute() else \
            [Path.cwd() / cache] + [parent / cache for parent in run_dir.resolve().parents]
    for c in candidates:
        folder = c / "train" / key / "checkpoints"
        if folder.is_dir():
            return folder
    raise GmvError(f"no checkpoints of train key {key} under {', '.join(str(c) for c in candidates[:3])}"
                   f"{' …' if len(candidates) > 3 else ''}; pass --cache-dir (the cache_dir the study used)")


def list_checkpoints(folder: Path, every_nth: int) -> list[Path]:
    """iter_*.ckpt by iteration (every n-th, always the newest), then last.ckpt when it is another iteration."""
    import torch

    from gmv.errors import GmvError
    from gmv.training.train import checkpoint_iteration

    numbered = sorted((int(m.group(1)), p) for p in folder.glob("iter_*.ckpt")
                      if (m := re.fullmatch(r"iter_(\d+)\.ckpt", p.name)))
    chosen = [p for i, (_, p) in enumerate(numbered) if i % every_nth == 0 or i == len(numbered) - 1]
    last = folder / "last.ckpt"
    if last.is_file():
        it = checkpoint_iteration(torch.load(last, map_location="cpu", mmap=True, weights_only=False))
        if it not in {i for i, _ in numbered}:
            chosen.append(last)
    if not chosen:
        raise GmvError(f"no checkpoints in {folder} (train.checkpoint_every = 0 keeps only last.ckpt)")
    return chosen


def main(argv=None) -> int:
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    from gmv.data.split import Split
    from gmv.errors import GmvError
    from gmv.pipeline.sample_stage import sample_class_ids
    from gmv.pipeline.study import PREPARE, Study
    from gmv.pipeline.train_stage import train_key
    from gmv.training.trajectory import MembershipProbe, evaluate_checkpoints, format_table

    args = parse_args(argv)
    run_dir = args.run_dir
    try:
        if not (run_dir / "config.yaml").is_file() or not (run_dir / "manifest.json").is_file():
            raise GmvError(f"{run_dir} is not a gmv run folder (config.yaml and manifest.json expected)")
        cfg = OmegaConf.load(run_dir / "config.yaml")
        manifest = json.loads((run_dir / "manifest.json").read_text())
        if cfg.get("num_threads"):
            torch.set_num_threads(int(cfg.num_threads))
        ckpt_dir = find_train_dir(run_dir, manifest, args.cache_dir)
        checkpoints = list_checkpoints(ckpt_dir, args.every_nth)

        # the study's data, split, datamodule, generator and embedder: its own prepare stage
        study = Study(cfg, run_dir)
        PREPARE.run(study, None)
        v1, v2, dm, embedder = study.v1, study.v2, study.datamodule, study.embedder
        if (run_dir / "split.npz").is_file():
            saved = Split.load(run_dir / "split.npz")
            if not (np.array_equal(saved.v1, study.split.v1) and np.array_equal(saved.v2, study.split.v2)):
                raise GmvError(f"the rebuilt split differs from {run_dir}/split.npz: the data source has changed "
                               "since the run (check data.source)")
        key = manifest["cache_keys"]["train"]
        if train_key(v1, study.module, cfg.train, cfg.seed) != key:
            print(f"[trajectory] warning: the rebuilt train key differs from the manifest's {key} "
                  "(the code's key recipe may have changed); using the manifest's checkpoints", file=sys.stderr)
        module = study.module.to(torch.device(args.device))
        k = int(args.k if args.k is not None else cfg.valuation.k)
        tau = _tau(args.tau) if args.tau is not None else cfg.valuation.tau
        seed = int(args.seed if args.seed is not None else cfg.generate.seed)
        class_ids = sample_class_ids(dm, cfg.generate, args.m)
        print(f"[trajectory] {run_dir}: X_v1 {len(v1)} / X_v2 {len(v2)}, {len(checkpoints)} checkpoint(s) in "
              f"{ckpt_dir}; m = {args.m}, K = {k}, τ = {tau}, distance = {cfg.valuation.distance}, "
              f"embedder {embedder.name}", flush=True)
        probe = MembershipProbe(v1, v2, embedder, class_ids, dm.class_ids, m=args.m, k=k, tau=tau,
                                distance=str(cfg.valuation.distance), seed=seed, batch_size=args.batch_size)
        out = args.out or run_dir
        title = f"{cfg.get('study', run_dir.name)}: {str(cfg.generator._target_).rsplit('.', 1)[-1]} " \
                f"(m = {args.m}, K = {k}, τ = {tau})"
        rows = evaluate_checkpoints(module, checkpoints, probe, out, resume=args.resume, title=title)
    except GmvError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print(f"wrote {out / 'trajectory.csv'} and {out / 'trajectory.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
