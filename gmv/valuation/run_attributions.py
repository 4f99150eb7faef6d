"""Per-target attributions of a finished study run: which X_v1 images each of its generated images draws on,
by every valuation method of the run.

    attributions, v1_indices = run_attributions(RUN, n_targets)    # {method: n_targets × N_v1}, dataset indices

Methods that work from the evidence (embeddings and match tables) are recomputed on the run's X̂ with the run's
config (embeddings come from its cache); methods that needed the generator (D-TRAK) are read from the run's
attributions_<method>.npz. Used by the LDS report (every method's attributions against the retrains) and by
`data.subset` with `target:` (drop the images a method attributes one generated image to).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gmv.errors import GmvError
from gmv.valuation.methods import Evidence


def run_valuation(run: str | Path):
    """(the Valuation of a finished run recomputed with its config, the methods' Evidence, the methods that
    attribute from the evidence, the split) — embeddings come from the run's cache."""
    from omegaconf import OmegaConf

    from gmv.pipeline import stages
    from gmv.valuation.api import valuate
    from gmv.valuation.matchers import MatcherConfig

    run = Path(run)
    if not (run / "config.yaml").is_file() or not (run / "samples.npz").is_file():
        raise GmvError(f"{run} is not a finished study run (needs its config.yaml and samples.npz)")
    cfg = OmegaConf.load(run / "config.yaml")
    data = stages.load_data(cfg.data)
    split, v1, v2 = stages.split_data(data, cfg.data.split)
    main, baselines = stages.valuation_methods(cfg.valuation)
    methods = [m for m in (main, *baselines) if hasattr(m, "attribute") and not getattr(m, "needs_model", False)]
    val = valuate(v1, run / "samples.npz", held_out=v2, embedder=stages.plain(cfg.embedder),
                  matcher=MatcherConfig(**stages.plain(cfg.matcher)), cache_dir=cfg.cache_dir, method=methods[0],
                  baselines=methods[1:], reference=stages.reference_set(data, split, int(cfg.valuation.reference_size),
                                                                        seed=int(cfg.seed)))
    evidence = Evidence(val.pool_emb, val.gen_emb, val.split, val.matches, val.reference_emb)
    return val, evidence, [m for m in methods if m.name in val.methods], split


def scored_attributions(run: str | Path, evidence: Evidence, methods: list, n1: int) -> dict[str, np.ndarray]:
    """{method: targets × X_v1} for the targets each method scored: every generated image for the methods that
    work from the evidence; for a method that needed the generator, the leading rows of its saved
    attributions_<method>.npz that it filled (D-TRAK with `targets: N` saves m rows, the first N scored)."""
    out = {m.name: m.attribute(evidence)[:, :n1] for m in methods}
    for path in sorted(Path(run).glob("attributions_*.npz")):
        a = np.load(path)["attributions"]
        filled = np.flatnonzero(np.abs(a).sum(axis=1) > 0)
        if len(filled):
            out[path.stem[len("attributions_"):]] = a[:filled[-1] + 1, :n1].astype(np.float64)
    return out


def run_attributions(run: str | Path, n_targets: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({method: n_targets × X_v1} for every method that scored the first n_targets, the run's X_v1 indices)."""
    _, evidence, methods, split = run_valuation(run)
    scored = scored_attributions(run, evidence, methods, len(split.v1))
    return {name: a[:n_targets] for name, a in scored.items() if len(a) >= n_targets}, split.v1
