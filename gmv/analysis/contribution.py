"""Does value mean contribution? Each method's two counterfactual yardsticks beside what its scores cost, in one
table and one figure (issue 18, item 5): written by the counterfactual report when given the LDS report's folder
(``gmv-report RETRAINS --base RUN[,RUN…] --lds LDS_REPORT``).

    LDS                    lds.csv of the LDS report: Spearman between the method's subset-sum prediction and the
                           retrained models' outputs, mean over targets with its 95% CI
    removal vs random (r)  the counterfactual report's pooled rows: per-target shift of X̂ when the method's top r
                           X_v1 images are removed, minus the shift when r random ones are, pooled over seeds
                           (mean, 95% CI, Holm-adjusted one-sided p)
    per target             the removed-for target's shift percentile (0.5 = moved like any other target)
    cost                   seconds (own + shared embedding and matching) and peak extra MiB of the method's scores,
                           mean over the counterfactual's base runs (metrics.json)

    contribution.csv / .md     one row per method
    contribution.png           LDS and the removal effect at one r against seconds (log axis), side by side
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from gmv.analysis.lds_report import CONTROL as CONTROL_LDS  # the LDS report's name for its random attribution
from gmv.errors import GmvError


def read_lds(lds_dir: str | Path) -> list[dict[str, Any]]:
    """The LDS report's rows (lds.csv), numbers parsed; a clear error where the folder holds none."""
    path = Path(lds_dir) / "lds.csv"
    if not path.is_file():
        raise GmvError(f"--lds {lds_dir}: no lds.csv there; give the folder an LDS report was written to "
                       "(gmv-report LDS_RETRAINS --base RUN --out DIR)")
    with open(path, newline="") as f:
        return [{k: (v if k == "method" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def contribution_rows(lds_rows: list[dict], pooled: list[dict], targets: list[dict],
                      costs: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One row per method named by either yardstick, in the LDS report's order (then the rest); the random control
    of both is one row, `random`."""
    def name(m: str) -> str:
        return "random" if m == CONTROL_LDS else m

    order = [name(r["method"]) for r in lds_rows]
    order += sorted({p["method"] for p in pooled} - set(order))
    order += sorted({t["method"] for t in targets} - set(order))
    rows = []
    for method in order:
        row: dict[str, Any] = {"method": method}
        lds = next((r for r in lds_rows if name(r["method"]) == method), None)
        if lds is not None:
            row.update({k: lds[k] for k in ("lds", "lds_ci_low", "lds_ci_high")})
        for p in pooled:
            if p["method"] == method and p["rule"] == "top" and "vs_random_diff" in p:
                r = p["r"]
                row.update({f"top{r}_vs_random": p["vs_random_diff"], f"top{r}_ci_low": p["vs_random_ci_low"],
                            f"top{r}_ci_high": p["vs_random_ci_high"], f"top{r}_p_holm": p.get("vs_random_p_holm"),
                            f"top{r}_seeds": p["seeds"]})
        for t in targets:
            if t["method"] == method:
                row.update({"target_percentile": t["percentile_mean"], "target_ci_low": t["percentile_ci_low"],
                            "target_ci_high": t["percentile_ci_high"], "target_r": t["r"], "targets": t["targets"]})
        c = costs.get(method, {})
        row.update({"seconds_total": c.get("total_seconds", float("nan")), "seconds_own": c.get("seconds", float("nan")),
                    "seconds_shared": c.get("shared_seconds", float("nan")),
                    "peak_extra_mib": c.get("peak_extra_mib", float("nan"))})
        rows.append(row)
    return rows


def write_contribution(lds_dir: str | Path, pooled: list[dict], targets: list[dict],
                       costs: dict[str, dict[str, float]], out: Path, figure_r: int = 10) -> dict[str, Path]:
    from gmv.analysis.method_cost import cost_cells, cost_quality_axis
    from gmv.analysis.tables import ci_cell, markdown_table
    from gmv.io import save_figure, write_csv, write_text

    rows = contribution_rows(read_lds(lds_dir), pooled, targets, costs)
    rs = sorted({p["r"] for p in pooled if p["rule"] == "top"})
    cols = list(dict.fromkeys(k for r in rows for k in r))
    write_csv(out / "contribution.csv", cols, [[r.get(c, "") for c in cols] for r in rows])
    header = ["method", "LDS [95% CI]", *(f"top {r} removed − random [95% CI] (Holm p)" for r in rs),
              "target's shift percentile [95% CI]", "scores' seconds (own + shared)", "peak extra MiB"]
    body = []
    for row in rows:
        removal = [ci_cell(row, f"top{r}_vs_random", f"top{r}_ci_low", f"top{r}_ci_high")
                   + (f" ({row[f'top{r}_p_holm']:.2g})" if row.get(f"top{r}_p_holm") is not None else "") for r in rs]
        body.append([row["method"], ci_cell(row, "lds", "lds_ci_low", "lds_ci_high"), *removal,
                     ci_cell(row, "target_percentile", "target_ci_low", "target_ci_high"),
                     *cost_cells(costs, row["method"])])
    write_text(out / "contribution.md", "\n".join([
        "# Contribution and cost, per method", "",
        f"LDS from `{os.path.relpath(lds_dir, out)}` (lds.csv, named relative to this file); removal effects and "
        "per-target percentiles from this counterfactual report (pooled over seeds; random = the control of both: "
        "LDS of a random attribution, and the removal every other removal is compared with); cost = mean over this "
        "report's base runs.", "",
        markdown_table(header, body, [False] + [True] * (len(header) - 1))]))
    written = {"contribution.md": out / "contribution.md", "contribution.csv": out / "contribution.csv"}

    import matplotlib.pyplot as plt

    key = f"top{figure_r}_vs_random"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharex=True)  # one cost axis for both yardsticks
    colors = {r["method"]: f"C{i % 10}" for i, r in enumerate(rows)}  # a method keeps its colour in both panels
    cost_quality_axis(left, [(r["method"], r["lds"], r["lds_ci_low"], r["lds_ci_high"], r["seconds_total"])
                             for r in rows if "lds" in r], "LDS (95% CI over targets)", colors)
    cost_quality_axis(right, [(r["method"], r[key], r[f"top{figure_r}_ci_low"], r[f"top{figure_r}_ci_high"],
                               r["seconds_total"]) for r in rows if key in r],
                      f"shift: top {figure_r} removed − {figure_r} random (95% CI)", colors)
    fig.tight_layout()
    written["contribution.png"] = save_figure(out / "contribution.png", fig)
    plt.close(fig)
    return written
