"""What each method's scores cost, read from a study run's metrics.json (measured by gmv/valuation/cost.py while
the run valued them) — the columns beside quality in the LDS and counterfactual reports.

    method_costs(run) → {method: {"seconds": its own, "shared_seconds": the embedding and match tables it reads
                                  (0 for a method that works from the generator), "total_seconds": the two,
                                  "peak_extra_mib": the peak memory it needed beyond what the run held}}
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

COST_KEYS = ("seconds", "shared_seconds", "peak_extra_mib")


def method_costs(run: str | Path) -> dict[str, dict[str, float]]:
    path = Path(run) / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "method" and parts[2] in COST_KEYS and value is not None:
            out.setdefault(parts[1], {})[parts[2]] = float(value)
    for c in out.values():
        c["total_seconds"] = c.get("seconds", float("nan")) + c.get("shared_seconds", 0.0)
    return out


def cost_cells(costs: dict[str, dict[str, float]], method: str) -> list[str]:
    """[total seconds (own + shared), peak extra MiB] as table cells; "not measured" where the run has none."""
    c = costs.get(method)
    if not c or not np.isfinite(c.get("total_seconds", np.nan)):
        return ["not measured", "–"]
    return [f"{c['total_seconds']:.1f} ({c.get('seconds', np.nan):.1f} + {c.get('shared_seconds', 0):.1f})",
            f"{c.get('peak_extra_mib', np.nan):.0f}"]


def cost_quality_axis(ax, points: list[tuple[str, float, float, float, float]], ylabel: str,
                      colors: dict[str, str] | None = None) -> None:
    """Quality against cost on `ax`: (method, quality, CI low, CI high, total seconds) per method, seconds on a log
    axis; a method without a measured cost is left out. `colors` (method → colour) keeps a method's colour across
    panels."""
    shown = [p for p in points if np.isfinite(p[4]) and p[4] > 0]
    spot = {name: round(np.log10(sec) * 20) for name, *_, sec in shown}  # 1/20 decade: costs within ≈ 12% share one
    for name, q, lo, hi, sec in shown:
        group = [n for n, *_ in shown if spot[n] == spot[name]]  # spread sideways, in the order given
        x = sec * 10 ** (0.1 * (group.index(name) - (len(group) - 1) / 2))
        ax.errorbar([x], [q], yerr=[[q - lo], [hi - q]], fmt="o", capsize=3,
                    color=None if colors is None else colors.get(name))
        ax.annotate(name, (x, q), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("seconds for the method's scores (own + shared embedding and matching;\n"
                  "methods of one cost drawn side by side)")
    ax.set_ylabel(ylabel)


def cost_quality_figure(points: list[tuple[str, float, float, float, float]], ylabel: str, path: Path) -> Path:
    """One panel of `cost_quality_axis`, saved to `path`."""
    import matplotlib.pyplot as plt

    from gmv.io import save_figure

    fig, ax = plt.subplots(figsize=(5.5, 4))
    cost_quality_axis(ax, points, ylabel)
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)
    return path
