"""A positive control with a dose: how much copying of X_v1 can a valuation method detect?

Take a generator's fixed set X̂ and replace a fraction f of it (chosen at random, seeded) with
near-copies of random X_v1 images (gmv.data.augment.near_copies: crop, flip where the data has that
symmetry, brightness/contrast and colour jitter, pixel noise). Value every planted set with every
method on the same pool and read RA2 as membership inference: Welch t and p, AUROC, TPR at 1% FPR.
At f = 0 the curve starts from what the generator itself carries; it must rise with f.

    plant(samples, v1, fraction, seed, flip)       → X̂ with round(f·m) images replaced
    dose_response(v1, v2, samples, fractions, seeds, value_fn, flip)   → one row per (f, seed, method)
    summarise(rows)                                → mean / min / max over seeds per (f, method)
    write_dose_response(rows, out_dir, title)      → dose_response.csv / .md / .png
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from gmv.data.augment import near_copies
from gmv.data.imageset import ImageSet
from gmv.data.pixels import as_pixels
from gmv.errors import GmvError
from gmv.analysis.tables import markdown_table
from gmv.io import save_figure, write_csv, write_text

COLUMNS = ["fraction", "seed", "n_planted", "method", "t_statistic", "p_value", "auroc", "tpr_at_1fpr", "cohens_d"]
METRICS = ["auroc", "tpr_at_1fpr", "t_statistic", "p_value"]


def seeded_share(samples, fraction: float, seed: int, stream: int, what: str):
    """(a copy of X̂'s pixels in memory — also of a streamed X̂ —, the sorted indices of a seeded choice of
    round(fraction·m) of them, the generator that drew them: `stream` keeps controls' draws apart)."""
    if not 0.0 <= fraction <= 1.0:
        raise GmvError(f"{what} fractions must lie in [0, 1], got {fraction}")
    m = len(samples)
    n = int(round(fraction * m))
    rng = np.random.default_rng([seed, stream])
    where = np.sort(rng.choice(m, n, replace=False)) if n else np.zeros(0, np.int64)
    return np.array(as_pixels(samples).read_range(0, m)), where, rng


def plant(samples: ImageSet, v1: ImageSet, fraction: float, seed: int, flip: bool = True) -> ImageSet:
    """`samples` with round(fraction·m) of its images (a seeded choice) replaced by near-copies of
    random X_v1 images; `extras["planted"]` marks them and `extras["source_index"]` names their source."""
    images, where, _ = seeded_share(samples, fraction, seed, 0, "dose-response")
    m, n = len(images), len(where)
    labels = None if samples.labels is None else samples.labels.copy()
    source = np.full(m, -1, np.int64)
    if n:
        copies = near_copies(v1, n, seed=seed, flip=flip)
        images[where] = copies.images
        if labels is not None and copies.labels is not None:
            labels[where] = copies.labels
        source[where] = copies.extras["source_index"]
    planted = np.zeros(m, bool)
    planted[where] = True
    return ImageSet(images, labels, class_names=samples.class_names, name=f"{samples.name}_planted{fraction:g}",
                    extras={"planted": planted, "source_index": source})


def dose_response(v1: ImageSet, v2: ImageSet, samples: ImageSet, fractions: Iterable[float], seeds: Iterable[int],
                  value_fn: Callable[[ImageSet], dict[str, tuple[np.ndarray, np.ndarray]]], flip: bool = True,
                  progress: bool = True) -> list[dict]:
    """One row per (fraction, seed, method). `value_fn(planted_samples)` values the pool X_v1 ∪ X_v2
    against the planted set and returns {method: (scores of X_v1, scores of X_v2)}."""
    from gmv.console import progress_bar

    from gmv.analysis.membership import membership_summary

    fractions, seeds = [float(f) for f in fractions], [int(s) for s in seeds]
    if not fractions or not seeds:
        raise GmvError("the dose-response control needs at least one fraction and one seed")
    rows = []
    grid = [(f, s) for f in fractions for s in seeds]
    for f, s in progress_bar(grid, desc="dose-response", unit="set", disable=not progress):
        planted = plant(samples, v1, f, s, flip=flip)
        for method, (a, b) in value_fn(planted).items():
            st = membership_summary(a, b, n_boot=200, seed=s)
            rows.append({"fraction": f, "seed": s, "n_planted": int(planted.extras["planted"].sum()), "method": method,
                         "t_statistic": st["t_statistic"], "p_value": st["p_value"], "auroc": st["auroc"],
                         "tpr_at_1fpr": st["tpr_at_fpr"], "cohens_d": st["cohens_d"]})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean, min and max over seeds of each metric per (fraction, method), and how many seeds reach p < 0.01."""
    out = []
    keys = sorted({(r["fraction"], r["method"]) for r in rows}, key=lambda k: (k[1], k[0]))
    for f, method in keys:
        sel = [r for r in rows if r["fraction"] == f and r["method"] == method]
        row = {"fraction": f, "method": method, "n_seeds": len(sel),
               "seeds_p_below_0.01": int(sum(r["p_value"] < 0.01 for r in sel))}
        for m in METRICS:
            v = np.array([r[m] for r in sel], np.float64)
            row.update({f"{m}_mean": float(np.nanmean(v)), f"{m}_min": float(np.nanmin(v)),
                        f"{m}_max": float(np.nanmax(v))})
        out.append(row)
    return out


def detection_threshold(summary: list[dict]) -> dict[str, float | None]:
    """Per method: the smallest planted fraction at which every seed reaches p < 0.01 (None: none does)."""
    out: dict[str, float | None] = {}
    for method in dict.fromkeys(r["method"] for r in summary):
        ok = [r["fraction"] for r in summary if r["method"] == method and r["seeds_p_below_0.01"] == r["n_seeds"]]
        out[method] = min(ok) if ok else None
    return out


def write_dose_response(rows: list[dict], out_dir: str | Path, title: str = "dose-response") -> dict:
    """dose_response.csv (every row), dose_response.md (mean over seeds) and dose_response.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "dose_response.csv", COLUMNS, [[r[c] for c in COLUMNS] for r in rows])
    summary = summarise(rows)
    threshold = detection_threshold(summary)
    header = ["method", "f", "AUROC", "TPR@1%FPR", "t", "p", "p<0.01"]
    body = [[r["method"], f"{r['fraction']:g}", f"{r['auroc_mean']:.3f} [{r['auroc_min']:.3f}–{r['auroc_max']:.3f}]",
             f"{r['tpr_at_1fpr_mean']:.3f}", f"{r['t_statistic_mean']:.2f}", f"{r['p_value_mean']:.2g}",
             f"{r['seeds_p_below_0.01']}/{r['n_seeds']}"] for r in summary]
    lines = [f"# {title}", "",
             "Mean over seeds (min–max in brackets); 'p<0.01' counts the seeds that reach it.", "",
             markdown_table(header, body, [False] + [True] * 6).rstrip("\n")]
    lines += ["", "Smallest planted fraction at which every seed reaches p < 0.01:", ""]
    lines += [f"- {m}: {'not reached' if f is None else f'{f:g}'}" for m, f in threshold.items()]
    write_text(out / "dose_response.md", "\n".join(lines) + "\n")
    _figure(summary, out / "dose_response.png", title)
    return {"summary": summary, "threshold": threshold}


def _figure(summary: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 4), constrained_layout=True)
    labels = {"auroc": "AUROC (0.5 = no signal)", "tpr_at_1fpr": "TPR at 1% FPR", "t_statistic": "Welch t",
              "p_value": "p (one-sided Welch)"}
    for ax, m in zip(axes, METRICS):
        for method in dict.fromkeys(r["method"] for r in summary):
            sel = [r for r in summary if r["method"] == method]
            f = np.array([r["fraction"] for r in sel])
            mean = np.array([r[f"{m}_mean"] for r in sel])
            lo, hi = np.array([r[f"{m}_min"] for r in sel]), np.array([r[f"{m}_max"] for r in sel])
            line, = ax.plot(f, mean, marker="o", ms=3, label=method)
            ax.fill_between(f, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlabel("planted fraction f of X̂ (near-copies of X_v1)")
        ax.set_title(labels[m])
        if m == "p_value":
            ax.set_yscale("log")
            ax.axhline(0.01, color="grey", ls="--", lw=1)
        if m == "auroc":
            ax.axhline(0.5, color="grey", ls="--", lw=1)
    axes[0].legend(fontsize=8)
    fig.suptitle(title + " — mean over seeds, band = min–max")
    save_figure(path, fig)
    plt.close(fig)
    return path
