"""Write one valuation's results folder: tables, RA1–RA3 figures, metrics.json, and log it to W&B.

Files (all written atomically):
    values.csv          index, split, label, value, n_matches (one row per pool image)
    match_tables.npz    the paper's m×K `distances` and `indices` tables, and the `credit` (Eq. 5)
    metrics.json        flat keys: k, n_generated, n_v1, n_v2, mean_value_v1/v2, t_statistic,
                        p_value, auroc, cohens_d, recall_at_k, … (see `valuation_metrics`)
    ra1_tsne.png        RA1 t-SNE of X_v1, X_v2 and X̂ (with a held-out set)
    ra2_table.md/.csv   RA2 in the layout of the paper's Table 1 (with a held-out set)
    ra2_hist.png        value distributions of X_v1 and X_v2
    ra3_high.png, ra3_low.png   RA3 galleries: highest / lowest-value images and their top-6 matches
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from gmv.io import save_npz, write_csv, write_json
from gmv.valuation.api import Valuation


def valuation_metrics(val: Valuation) -> dict[str, Any]:
    """The flat numbers every valuation reports (RA2 statistics are added where there is a v2)."""
    v1, v2 = val.values[val.side("v1")], val.values[val.side("v2")]
    return {
        "k": val.k,
        "tau": val.tau,
        "n_generated": val.n_generated,
        "n_v1": len(v1),
        "n_v2": len(v2),
        "mean_value_v1": float(v1.mean()),
        "mean_value_v2": float(v2.mean()) if len(v2) else float("nan"),
        "sum_values": float(val.values.sum()),
        "share_valued_v1": float((v1 > 0).mean()),
        "share_valued_v2": float((v2 > 0).mean()) if len(v2) else float("nan"),
        "recall_at_k": val.matches.recall_at_k,
        "matcher": val.matches.factory,
        "rerank": val.matches.settings["rerank"],
        "distance": val.matches.settings["distance"],
        "embedder": val.embedder["name"],
        "embedding_dim": int(val.pool_emb.shape[1]),
        "mean_match_distance": float(np.nanmean(np.where(np.isfinite(val.matches.distances),
                                                         val.matches.distances, np.nan))),
        **{f"seconds_{k}": round(v, 3) for k, v in val.seconds.items()},
    }


def write_value_tables(val: Valuation, out_dir: Path) -> None:
    rows = [(i, s, int(lab), f"{v:.10g}", int(c))
            for i, (s, lab, v, c) in enumerate(zip(val.split, val.pool.labels, val.values, val.n_matches))]
    write_csv(out_dir / "values.csv", ["index", "split", "label", "value", "n_matches"], rows)
    save_npz(out_dir / "match_tables.npz", distances=val.matches.distances, indices=val.matches.indices,
             credit=val.credit.astype(np.float32))


def write_report(val: Valuation, out_dir: str | Path, label: str = "valuation", tracker=None,
                 ra3_n: int = 8, tsne_cap: int = 1500, seed: int = 0, extra_metrics: dict | None = None) -> dict:
    """Write every table and figure for `val` into `out_dir`; return metrics (also in metrics.json)."""
    from gmv.analysis import ra1, ra2, ra3

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = valuation_metrics(val)
    write_value_tables(val, out)
    figures: dict[str, Path] = {}
    t0 = time.perf_counter()
    i1, i2 = val.side("v1"), val.side("v2")
    if len(i2):
        stats = ra2.membership_stats(val.values[i1], val.values[i2], seed=seed)
        metrics.update({k: v for k, v in stats.items() if k not in metrics or k.startswith("mean_value")})
        ra2.write_table1({label: stats}, out)
        figures["ra2_hist"] = ra2.value_histogram(val.values[i1], val.values[i2], out / "ra2_hist.png",
                                                  title=f"RA2 — {label}")
        metrics.update(ra1.nearest_neighbour_distances(val.gen_emb, val.pool_emb[i1], val.pool_emb[i2]))
        figures["ra1_tsne"] = ra1.tsne_figure(val.pool_emb[i1], val.pool_emb[i2], val.gen_emb, out / "ra1_tsne.png",
                                              cap=tsne_cap, seed=seed, title=f"RA1 — {label}")
    r3 = ra3.ra3_report(val.values, val.pool_emb, val.gen_emb, val.pool.images, val.generated.images, out,
                        n=min(ra3_n, len(val.values) // 2 or 1))
    metrics.update({k: v for k, v in r3.items() if np.isscalar(v) and not isinstance(v, str)})
    figures["ra3_high"], figures["ra3_low"] = Path(r3["ra3_high_png"]), Path(r3["ra3_low_png"])
    metrics["seconds_analysis"] = round(time.perf_counter() - t0, 3)
    metrics.update(extra_metrics or {})
    write_json(out / "metrics.json", metrics)
    if tracker is not None:
        tracker.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        if len(i2):
            tracker.log_table("ra2_table", ra2.table1_rows({label: stats}))
        for name, path in figures.items():
            tracker.log_image(name, path)
        tracker.log_artifact("valuation", "valuation", [out / "values.csv", out / "metrics.json",
                                                        out / "match_tables.npz"])
    return metrics


def summary(metrics: dict, label: str) -> str:
    """A few printed lines: the Table-1 row (if any) and the matcher's recall."""
    from gmv.analysis.ra2 import format_table1

    lines = [f"valued {metrics['n_v1'] + metrics['n_v2']} images against {metrics['n_generated']} generated "
             f"(k={metrics['k']}, {metrics['embedder']} {metrics['embedding_dim']}-d, {metrics['matcher']}"
             f"{', re-rank ' + str(metrics['rerank']) if metrics['rerank'] else ''}; "
             f"recall@{metrics['k']} vs exact = {metrics['recall_at_k']:.3f})"]
    if metrics["n_v2"]:
        lines.append(format_table1({label: metrics}))
        lines.append(f"AUROC {metrics['auroc']:.3f} · Cohen's d {metrics['cohens_d']:.3f} · "
                     f"NN distance X̂→X_v1 {metrics['nn_dist_gen_to_v1']:.3f} vs X̂→X_v2 {metrics['nn_dist_gen_to_v2']:.3f}")
    else:
        lines.append(f"mean value {metrics['mean_value_v1']:.4f}; {metrics['share_valued_v1']:.1%} of images valued > 0")
    return "\n".join(lines)
