"""The sweep's figures: sweep_<param>.png, the metrics against one swept parameter.

Four panels — t-statistic, AUROC, recall@K vs exact search and wall time (matching time where
the jobs report it, else total time) — with one line per setting of the other swept parameters.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from gmv.analysis.sweep_jobs import Job, setting_label, sort_jobs, sort_key
from gmv.analysis.tables import METRIC_TITLES, format_value, is_number, param_cell
from gmv.io import save_figure

PANELS = [("t_statistic", "t-statistic (v1 > v2)"), ("auroc", "AUROC"), ("recall_at_k", "recall@K vs exact")]


def _as_float(value: Any) -> float:
    return float(value) if is_number(value) else math.nan


def figure_name(param: str) -> str:
    """``sweep_<param>.png`` with the parameter reduced to safe characters (``valuation.k`` → ``valuation_k``)."""
    return f"sweep_{re.sub(r'[^A-Za-z0-9_-]+', '_', param).strip('_') or 'param'}.png"


def _x_axis(ax, param: str, x_values: list, position: dict, numeric_x: bool) -> None:
    """Ticks at the swept values: a log scale for positive numbers spanning ≥ 10×, categories for text."""
    if numeric_x:
        positive = [float(v) for v in x_values if v > 0]
        if len(positive) == len(x_values) and max(positive) / min(positive) >= 10:
            ax.set_xscale("log")
        ax.set_xticks([position[v] for v in x_values], [format_value(v) for v in x_values])
        ax.minorticks_off()
    else:
        ax.set_xticks(range(len(x_values)), [param_cell(v) for v in x_values], rotation=30, ha="right")
        ax.set_xlim(-0.5, len(x_values) - 0.5)
    ax.set_xlabel(param, fontsize=9)


def sweep_figure(jobs: list[Job], param: str, params: list[str], path: Path) -> Path:
    """Four panels against `param`: t, AUROC, recall@K and wall time; one line per setting of the other params."""
    from matplotlib.figure import Figure

    others = [p for p in params if p != param]
    time_metric = "seconds_match" if any(is_number(j.metrics.get("seconds_match")) for j in jobs) else "seconds_total"
    panels = PANELS + [(time_metric, METRIC_TITLES[time_metric])]

    x_values = sorted({j.overrides.get(param) for j in jobs}, key=sort_key)
    numeric_x = all(is_number(v) for v in x_values)
    position = {v: (float(v) if numeric_x else i) for i, v in enumerate(x_values)}

    groups: dict[str, list[Job]] = {}
    for job in sort_jobs(jobs, others):
        groups.setdefault(setting_label(job, others), []).append(job)

    fig = Figure(figsize=(4.0 * len(panels), 3.6), dpi=120)
    axes = fig.subplots(1, len(panels))
    for ax, (metric, title) in zip(axes, panels):
        for label, members in groups.items():
            members = sorted(members, key=lambda j: sort_key(j.overrides.get(param)))
            xs = [position[j.overrides.get(param)] for j in members]
            ys = [_as_float(j.metrics.get(metric)) for j in members]
            ax.plot(xs, ys, marker="o", ms=4, lw=1.3, ls="-" if numeric_x else ":", label=label)
        if metric == "auroc":
            ax.axhline(0.5, color="0.6", ls=":", lw=1)  # no membership signal
        _x_axis(ax, param, x_values, position, numeric_x)
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    if len(groups) > 1:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(groups), 4), fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, -0.02 - 0.05 * ((len(groups) - 1) // 4)))
    fig.suptitle(f"Sweep over {param}" + (f" (lines: {', '.join(others)})" if others else ""), fontsize=11)
    fig.tight_layout(rect=(0, 0.08 if len(groups) > 1 else 0, 1, 1))
    return save_figure(path, fig)
