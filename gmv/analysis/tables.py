"""Table cells and Markdown pipe tables, shared by every report gmv writes.

:func:`format_value` turns a metric into a table cell (p-values in scientific notation, t to two
decimals, AUROC to three, …), :func:`markdown_table` lays rows out as a pipe table, and
:data:`METRIC_TITLES` names the metric columns. CSV files keep full precision: :func:`csv_cell`.
"""

from __future__ import annotations

import math
from typing import Any

METRIC_TITLES = {
    "t_statistic": "t-statistic",
    "p_value": "p-value",
    "p_value_holm": "p-value (Holm)",
    "auroc": "AUROC",
    "cohens_d": "Cohen's d",
    "mean_value_v1": "mean value X_v1",
    "mean_value_v2": "mean value X_v2",
    "recall_at_k": "recall@K vs exact",
    "seconds_match": "matching time (s)",
    "seconds_total": "total time (s)",
    "fd_embedding": "FD (embedding)",
    "fid": "FID",
    "train_seconds": "training time (s)",
    "train_iterations": "training iterations",
}

MISSING = "\u2014"  # em dash: a metric a job did not report, or NaN


def is_missing(value: Any) -> bool:
    """None, an empty cell or NaN."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def is_number(value: Any) -> bool:
    """An int or float (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_value(value: Any, metric: str = "") -> str:
    """A table cell: p-values in scientific notation (4.7e-04), t to 2 decimals, AUROC/recall to 3, else 4 digits."""
    if is_missing(value):
        return MISSING
    if not is_number(value):
        return str(value).replace("|", "\\|")
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if metric.startswith("p_value") or metric.endswith("_p"):
        return "< 1e-300" if value == 0.0 else f"{value:.1e}"
    if metric in ("t_statistic", "cohens_d"):
        return f"{value:.2f}"
    if metric in ("auroc", "recall_at_k") or metric.startswith("share_"):
        return f"{value:.3f}"
    if metric.startswith("seconds") or metric.endswith("_seconds"):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4g}"


def param_cell(value: Any) -> str:
    """A parameter's value as a cell (missing → the em dash)."""
    return MISSING if value is None else format_value(value)


def csv_cell(value: Any) -> Any:
    """A CSV cell: missing → empty; floats keep full precision (csv writes repr)."""
    return "" if value is None else value


def ci_cell(row: dict, key: str, low: str | None = None, high: str | None = None, fmt: str = ".3f") -> str:
    """row[key] with its CI as "x [lo, hi]" (bounds from `low` / `high`, default key_ci_low / key_ci_high);
    the em dash where the row has no finite value."""
    value = row.get(key)
    if not is_number(value) or not math.isfinite(value):
        return MISSING
    lo, hi = row.get(low or f"{key}_ci_low"), row.get(high or f"{key}_ci_high")
    bound = lambda b: format(b, fmt) if is_number(b) and math.isfinite(b) else MISSING  # noqa: E731
    return f"{format(value, fmt)} [{bound(lo)}, {bound(hi)}]"


def markdown_table(header: list[str], rows: list[list[str]], numeric: list[bool]) -> str:
    """A pipe table; numeric columns right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
