"""The planted control of quality-weighted credit: corrupt part of X̂ and see who still hands out credit.

Take a generator's fixed set X̂ and damage a fraction f of it (a seeded choice) with the corruptions of the
data-addition experiments (gmv.data.edit.corrupt: heavy noise, blur and JPEG in turn) — the broken samples a
real generator also makes. Value the pool with GMValuator unweighted (the seed paper) and weighted by the
realism score (gmv/valuation/quality.py). Expected: with `realism` the corrupted samples hand out much less
credit than the intact ones, and RA2 (X_v1 vs X_v2) is at least as strong as unweighted.

    corrupt_samples(samples, fraction, seed)                  → X̂ with round(f·m) samples damaged
    quality_control(v1, v2, samples, fractions, seeds, value_fn) → one row per (f, seed, weighting)
    write_quality_control(rows, out_dir, title)               → quality_control.csv / .md / .png
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from gmv.analysis.tables import markdown_table
from gmv.data.edit import CORRUPTIONS, corrupt
from gmv.data.imageset import ImageSet
from gmv.io import save_figure, write_csv, write_text

COLUMNS = ["fraction", "seed", "n_corrupted", "weighting", "credit_per_corrupted", "credit_per_intact",
           "quality_corrupted", "quality_intact", "t_statistic", "p_value", "auroc", "cohens_d"]


def corrupt_samples(samples: ImageSet, fraction: float, seed: int) -> ImageSet:
    """`samples` with round(fraction·m) of them (a seeded choice) damaged; `extras["corrupted"]` marks them."""
    from gmv.analysis.dose_response import seeded_share

    images, where, rng = seeded_share(samples, fraction, seed, 2, "quality-control")
    m, n = len(images), len(where)
    if n:
        images[where] = corrupt(images[where], (CORRUPTIONS * (n // 3 + 1))[:n], rng)
    mark = np.zeros(m, bool)
    mark[where] = True
    return ImageSet(images, None if samples.labels is None else samples.labels.copy(), class_names=samples.class_names,
                    name=f"{samples.name}_corrupted{fraction:g}", extras={"corrupted": mark})


def quality_control(v1: ImageSet, v2: ImageSet, samples: ImageSet, fractions: Iterable[float], seeds: Iterable[int],
                    value_fn: Callable[[ImageSet], dict], progress: bool = True) -> list[dict]:
    """One row per (fraction, seed, weighting). `value_fn(corrupted)` returns {weighting: MethodResult} for the
    pool X_v1 ∪ X_v2 valued against the corrupted set (results carry `arrays["credit"]`, m×K)."""
    from gmv.analysis.membership import membership_summary
    from gmv.console import progress_bar

    fractions, seeds = [float(f) for f in fractions], [int(s) for s in seeds]
    rows = []
    grid = [(f, s) for f in fractions for s in seeds]
    for f, s in progress_bar(grid, desc="quality control", unit="set", disable=not progress):
        damaged = corrupt_samples(samples, f, s)
        bad = damaged.extras["corrupted"]
        for weighting, result in value_fn(damaged).items():
            handed = result.arrays["credit"].sum(axis=1)
            q = result.arrays.get("quality", np.ones(len(handed)))
            st = membership_summary(result.side("v1"), result.side("v2"), n_boot=200, seed=s)
            rows.append({"fraction": f, "seed": s, "n_corrupted": int(bad.sum()), "weighting": weighting,
                         "credit_per_corrupted": float(handed[bad].mean()) if bad.any() else float("nan"),
                         "credit_per_intact": float(handed[~bad].mean()) if (~bad).any() else float("nan"),
                         "quality_corrupted": float(q[bad].mean()) if bad.any() else float("nan"),
                         "quality_intact": float(q[~bad].mean()) if (~bad).any() else float("nan"),
                         "t_statistic": st["t_statistic"], "p_value": st["p_value"], "auroc": st["auroc"],
                         "cohens_d": st["cohens_d"]})
    return rows


def _mean(v: list[float]) -> float:
    a = np.asarray(v, np.float64)
    return float(a[~np.isnan(a)].mean()) if (~np.isnan(a)).any() else float("nan")


def summarise(rows: list[dict]) -> list[dict]:
    """Mean over seeds per (fraction, weighting)."""
    out = []
    for f, w in dict.fromkeys((r["fraction"], r["weighting"]) for r in rows):
        sel = [r for r in rows if r["fraction"] == f and r["weighting"] == w]
        out.append({"fraction": f, "weighting": w, "n_seeds": len(sel),
                    **{k: _mean([r[k] for r in sel]) for k in COLUMNS[4:]},
                    "auroc_min": float(min(r["auroc"] for r in sel)), "auroc_max": float(max(r["auroc"] for r in sel))})
    return out


def write_quality_control(rows: list[dict], out_dir: str | Path, title: str = "quality control") -> list[dict]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "quality_control.csv", COLUMNS, [[r[c] for c in COLUMNS] for r in rows])
    summary = summarise(rows)
    fmt = lambda v: "–" if v != v else f"{v:.3f}"  # noqa: E731 - NaN (no corrupted sample) as a dash
    header = ["f corrupted", "weighting", "credit / corrupted sample", "credit / intact sample", "mean q corrupted",
              "mean q intact", "RA2 AUROC [min–max]", "t", "p"]
    body = [[f"{r['fraction']:g}", r["weighting"], fmt(r["credit_per_corrupted"]), fmt(r["credit_per_intact"]),
             fmt(r["quality_corrupted"]), fmt(r["quality_intact"]),
             f"{r['auroc']:.3f} [{r['auroc_min']:.3f}–{r['auroc_max']:.3f}]", f"{r['t_statistic']:.2f}",
             f"{r['p_value']:.2g}"] for r in summary]
    lines = [f"# {title}", "", "Mean over seeds. A corrupted sample's credit is what it hands out in all (1 unweighted; "
             "q_j weighted); RA2: X_v1 vs X_v2, one-sided Welch.", "",
             markdown_table(header, body, [True, False] + [True] * 7).rstrip("\n")]
    write_text(out / "quality_control.md", "\n".join(lines) + "\n")
    _figure(summary, out / "quality_control.png", title)
    return summary


def _figure(summary: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for w in dict.fromkeys(r["weighting"] for r in summary):
        sel = [r for r in summary if r["weighting"] == w]
        f = [r["fraction"] for r in sel]
        axes[0].plot(f, [r["credit_per_corrupted"] for r in sel], "o-", label=f"{w}: corrupted samples")
        axes[0].plot(f, [r["credit_per_intact"] for r in sel], "s--", label=f"{w}: intact samples")
        axes[1].plot(f, [r["auroc"] for r in sel], "o-", label=w)
    axes[0].set(xlabel="fraction of X̂ corrupted", ylabel="credit handed out per sample", ylim=(0, 1.05))
    axes[1].set(xlabel="fraction of X̂ corrupted", ylabel="RA2 AUROC (X_v1 vs X_v2)")
    axes[1].axhline(0.5, color="grey", lw=0.8, ls=":")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(path, fig)
    plt.close(fig)
    return path
