"""RA2 for every valuation method on the same samples — one membership summary each → methods.md/.csv, the
main method's Table-1 numbers, and the shuffled-split negative control."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gmv.io import write_csv, write_text
from gmv.valuation.api import Valuation


METHOD_COLUMNS = ["Method", "t", "p (one-sided Welch)", "AUROC [95% CI]", "TPR@1%FPR [95% CI]", "Cohen's d"]


#: the main method's RA2 numbers that go into metrics.json under their own names (the paper's Table 1)
TABLE1_KEYS = ("n_v1", "n_v2", "mean_value_v1", "mean_value_v2", "zero_share_v1", "zero_share_v2", "t_statistic",
               "p_value", "alpha", "significant", "auroc", "mannwhitney_u", "mannwhitney_p", "cohens_d", "diff_mean",
               "diff_ci_low", "diff_ci_high")


def membership_views(val: Valuation, out: Path, seed: int = 0,
                     n_boot: int = 1000) -> tuple[dict[str, Any], dict[str, dict]]:
    """RA2 for every method — one membership_summary each (t, p, AUROC and TPR at 1% FPR with bootstrap
    CIs, …) → methods.md/.csv, plus the negative control: the main method's values with the v1/v2 labels
    shuffled (seeded) must show no signal. Returns (metrics, {method: its summary})."""
    from gmv.analysis.membership import auroc, membership_summary
    from gmv.analysis.ra2 import welch_one_sided
    from gmv.analysis.tables import markdown_table

    out_metrics: dict[str, Any] = {}
    rows = []
    summaries: dict[str, dict] = {}
    for name, result in val.methods.items():
        s = summaries[name] = membership_summary(result.side("v1"), result.side("v2"), n_boot=n_boot, seed=seed)
        keys = ("t_statistic", "p_value", "auroc", "auroc_ci_low", "auroc_ci_high", "tpr_at_fpr",
                "tpr_at_fpr_ci_low", "tpr_at_fpr_ci_high", "cohens_d")
        out_metrics.update({f"method/{name}/{k.replace('tpr_at_fpr', 'tpr_at_1fpr')}": s[k] for k in keys})
        if result is val.main:
            out_metrics.update({"auroc_ci_low": s["auroc_ci_low"], "auroc_ci_high": s["auroc_ci_high"],
                                "tpr_at_1fpr": s["tpr_at_fpr"], "tpr_at_1fpr_ci_low": s["tpr_at_fpr_ci_low"],
                                "tpr_at_1fpr_ci_high": s["tpr_at_fpr_ci_high"]})
        if result is val.main and s["ci_method"] != f"percentile bootstrap × {n_boot}":
            out_metrics["ci_method"] = s["ci_method"]  # the large-sample methods (gmv.analysis.membership)
        rows.append([name + (" (main)" if result is val.main else ""), f"{s['t_statistic']:.3f}",
                     f"{s['p_value']:.3g}", f"{s['auroc']:.3f} [{s['auroc_ci_low']:.3f}, {s['auroc_ci_high']:.3f}]",
                     f"{s['tpr_at_fpr']:.3f} [{s['tpr_at_fpr_ci_low']:.3f}, {s['tpr_at_fpr_ci_high']:.3f}]",
                     f"{s['cohens_d']:.3f}"])
    for name, why in val.skipped.items():
        rows.append([name, "–", "–", "–", "–", f"skipped: {why}"])
    write_csv(out / "methods.csv", METHOD_COLUMNS, rows)
    write_text(out / "methods.md", markdown_table(METHOD_COLUMNS, rows, [False] * len(METHOD_COLUMNS)))
    shuffled = np.random.default_rng(seed + 1).permutation(val.split)
    t, p = welch_one_sided(val.values[shuffled == "v1"], val.values[shuffled == "v2"])
    out_metrics.update({"control_shuffled_t": t, "control_shuffled_p_value": p,
                        "control_shuffled_auroc": auroc(val.values[shuffled == "v1"], val.values[shuffled == "v2"])})
    return out_metrics, summaries
