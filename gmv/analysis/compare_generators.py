"""Compare the generators of a sweep: generators.md (the paper's Table 1 per generator, with sample
quality and training cost) and generators_values.png (ECDFs of the values of X_v1 and X_v2 per
generator). Written by the sweep report when the jobs differ in generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gmv.analysis.sweep_jobs import Job, read_values, setting_label
from gmv.analysis.tables import format_value, markdown_table
from gmv.io import save_figure, write_text

GENERATOR_COLUMNS = [  # (metric, title) of generators.md after the setting column
    ("mean_value_v1", "Average value X_v1"),
    ("mean_value_v2", "Average value X_v2"),
    ("t_statistic", "t-statistic"),
    ("p_value", "p-value"),
    ("auroc", "AUROC"),
    ("fd_embedding", "FD (embedding)"),
    ("fid", "FID"),
    ("train_seconds", "Training time (s)"),
    ("train_iterations", "Training iterations"),
]


def compares_generators(jobs: list[Job], params: list[str]) -> bool:
    """True when `generator` is swept or the finished jobs report different generators."""
    return "generator" in params or len({j.generator() for j in jobs if not j.failed}) > 1


def generator_label(job: Job, params: list[str]) -> str:
    """``biggan (cifar10), valuation.k=5``: the generator, its preset, the other swept parameters."""
    others = [p for p in params if p != "generator"]
    name = job.generator() or "?"
    preset = job.metrics.get("generator_preset")
    if preset and str(preset) != name:
        name += f" ({preset})"
    return name + (f", {setting_label(job, others)}" if others else "")


def write_generators_table(jobs: list[Job], params: list[str], path: Path) -> Path:
    """generators.md: the paper's Table 1 per generator, with sample quality and training cost."""
    rows = [[generator_label(j, params), *(format_value(j.metrics.get(m), m) for m, _ in GENERATOR_COLUMNS)]
            for j in jobs]
    header = ["Generator", *(title for _, title in GENERATOR_COLUMNS)]
    text = ("# Generator comparison\n\n"
            "RA2 per generator (one-sided Welch t-test, H1: values of X_v1 exceed X_v2), sample quality "
            "(Fréchet distance of the samples to X_v1 in the valuation embedding; FID) and training cost.\n\n"
            + markdown_table(header, rows, [False] + [True] * len(GENERATOR_COLUMNS)))
    return write_text(path, text)


def _ecdf(values: np.ndarray, n: int, log_floor: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Step points of the ECDF of sorted `values` (of a half with `n` images). On a log axis (`log_floor`
    given) the curve starts at the share of zeros, drawn at `log_floor`."""
    if log_floor is not None:
        zero_share = float(np.mean(values <= 0))
        v = values[values > 0]
        return (np.concatenate([[log_floor], v]),
                np.concatenate([[zero_share], zero_share + np.arange(1, v.size + 1) / n]))
    return np.concatenate([[values[0]], values]), np.concatenate([[0.0], np.arange(1, values.size + 1) / values.size])


def generator_values_figure(jobs: list[Job], params: list[str], path: Path) -> Path | None:
    """ECDFs of the values of X_v1 (solid) and X_v2 (dashed), one colour per generator job.

    A curve starts at the share of images valued exactly 0 (common: never matched), so
    the zero mass reads straight off the left edge. Jobs without values.csv are left out;
    returns None when no job has one.
    """
    from matplotlib.figure import Figure

    series = [(generator_label(j, params), read_values(j.dir / "values.csv"))
              for j in jobs if (j.dir / "values.csv").is_file()]
    if not series:
        return None
    positive = np.concatenate([v[v > 0] for _, vals in series for v in vals.values()])
    log_x = positive.size > 0 and positive.max() / positive.min() >= 10

    fig = Figure(figsize=(7.5, 4.5), dpi=130)
    ax = fig.subplots()
    for i, (label, vals) in enumerate(series):
        for split, style in (("v1", "-"), ("v2", "--")):
            if vals[split].size == 0:
                continue
            x, y = _ecdf(np.sort(vals[split]), len(vals[split]), positive.min() if log_x else None)
            ax.step(x, y, where="post", color=f"C{i % 10}", ls=style, lw=1.4,
                    label=f"{label}: X_{split} (mean {vals[split].mean():.3g}, {np.mean(vals[split] == 0):.0%} zero)")
    if log_x:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("value \u03c6" + (" (log scale; a curve starts at its share of zeros)" if log_x else ""), fontsize=9)
    ax.set_ylabel("share of the half's images with value \u2264 x", fontsize=9)
    ax.set_title("Values per generator: X_v1 trained on (solid) vs X_v2 held out (dashed)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", framealpha=0.85)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return save_figure(path, fig)
