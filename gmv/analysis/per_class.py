"""Per-class views of a valuation: RA2 per class (the paper's Table 1 is per CIFAR-10 class) and C1.

* :func:`per_class_report` — the one-sided Welch test X_v1 > X_v2 within each class
  (ra2_per_class.md/.csv; metrics ``per_class_share_p_below_0.01`` and ``class_{c}_…`` for a chosen class),
  rows keyed by class id (:func:`per_class_stats`), named by :func:`class_row_label`.
* :func:`class_agreement_metrics` — C1 of the ICLR 2025 GMValuator paper: the share of each generated
  image's top-k matched training images that carry its class (c1_per_class.csv).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gmv.io import write_csv
from gmv.valuation.api import Valuation

CLASS_KEYS = ("t_statistic", "p_value", "auroc", "mean_value_v1", "mean_value_v2")  # metrics of the report class


def per_class_stats(val: Valuation, n_boot: int = 500) -> dict[int, dict]:
    """RA2 per class (the paper's Table 1 is per CIFAR-10 class): {class id: membership_summary of that class's
    X_v1 vs X_v2 values}, for every class with at least 2 images in each half."""
    from gmv.analysis.membership import membership_summary

    labels, v1, v2 = val.pool.labels, val.side("v1"), val.side("v2")
    rows = {}
    for c in np.unique(labels).tolist():
        i1, i2 = v1[labels[v1] == c], v2[labels[v2] == c]
        if len(i1) >= 2 and len(i2) >= 2:
            rows[int(c)] = membership_summary(val.values[i1], val.values[i2], n_boot=n_boot, n_boot_diff=n_boot)
    return rows


def class_row_label(c: int, class_names: list[str] | None) -> str:
    """The per-class table's row label: ``class 3 (cat)``, or ``class 3`` where the name is the number or unknown."""
    name = class_names[c] if class_names and 0 <= c < len(class_names) else str(c)
    return f"class {c} ({name})" if name != str(c) else f"class {c}"


def per_class_report(val: Valuation, out: Path, class_names: list[str] | None = None,
                     report_class: int | None = None) -> tuple[dict[str, Any], dict[str, dict]]:
    """ra2_per_class.md/.csv when the pool has more than one label and a held-out half: (metrics, table rows).

    Metrics: ``per_class_share_p_below_0.01`` and, for `report_class` when it has a row,
    ``class_{c}_t_statistic``, ``…_p_value``, ``…_auroc``, ``…_mean_value_v1``, ``…_mean_value_v2``.
    `class_names` (default: the pool's) name the rows."""
    from gmv.analysis import ra2

    metrics: dict[str, Any] = {} if report_class is None else {"report_class": report_class}
    if not len(val.side("v2")):
        return metrics, {}
    stats = per_class_stats(val)
    if report_class in stats:
        metrics.update({f"class_{report_class}_{k}": stats[report_class][k] for k in CLASS_KEYS})
    if not stats or len(np.unique(val.pool.labels)) < 2:
        return metrics, {}  # no row, or one label: its row is the study's RA2 row, no table of its own
    names = class_names if class_names is not None else val.pool.class_names
    rows = {class_row_label(c, names): s for c, s in stats.items()}
    ra2.write_table1(rows, out, stem="ra2_per_class")
    metrics["per_class_share_p_below_0.01"] = float(np.mean([s["p_value"] < 0.01 for s in stats.values()]))
    return metrics, rows


def class_agreement_metrics(val: Valuation, out: Path, ks=(1, 5, 10)) -> dict[str, Any]:
    """C1 of the ICLR 2025 GMValuator paper, for class-conditional generated sets with several classes:
    the share of each generated image's top-k matched training images (exact search in the valuation
    embedding) that carry its class → metrics c1_at_k and c1_per_class.csv."""
    from gmv.analysis.membership import class_agreement
    from gmv.valuation.matchers import exact_search

    gen_labels, pool_labels = val.generated.labels, val.pool.labels
    if gen_labels is None or pool_labels is None or len(np.unique(pool_labels)) < 2:
        return {}
    if np.all(np.asarray(gen_labels) < 0):  # an unconditional generator's samples carry no class (−1)
        return {}
    from gmv.analysis.report import searches_again

    k = min(max(ks), len(val.pool_emb))
    from_tables = not searches_again(val) and val.matches.indices.shape[1] >= k
    if from_tables:  # large valuations: the match tables hold each generated image's top-k already
        idx = np.asarray(val.matches.indices[:, :k])
    else:
        _, idx = exact_search(np.ascontiguousarray(val.pool_emb, np.float32),
                              np.ascontiguousarray(val.gen_emb, np.float32), k)
    c1 = class_agreement(gen_labels, pool_labels, idx, ks=[x for x in ks if x <= k])
    used = c1["ks"]
    rows = [[c, *[f"{c1['c1_per_class'][c][x]:.4f}" for x in used]] for c in sorted(c1["c1_per_class"])]
    rows.append(["all", *[f"{c1[f'c1_at_{x}']:.4f}" for x in used]])
    write_csv(out / "c1_per_class.csv", ["class", *[f"c1_at_{x}" for x in used]], rows)
    method = {"c1_method": f"match tables ({val.matches.factory}); N·M·D above 1e11"} if from_tables else {}
    return {**{f"c1_at_{x}": c1[f"c1_at_{x}"] for x in used}, "c1_chance": c1["c1_chance"], **method}
