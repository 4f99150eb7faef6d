"""RA2: are the values of the trained-on half larger than those of the held-out half?

The generator saw X_v1 and not X_v2, so a valuation that credits training data for
what the generator produces should give X_v1 larger values. The paper tests this
with a one-sided Welch t-test at significance level 0.01 (its Table 1). Beside it
gmv reports effect sizes that do not depend on the sample size (all in one summary,
:func:`gmv.analysis.membership.membership_summary`; the tests and the bootstrap are here):

* AUROC of the value used as a membership score (v1 = positive; 0.5 = no signal);
* Mann–Whitney U (rank-based, robust to the many exact zeros and heavy tails);
* Cohen's d with the pooled standard deviation;
* a seeded bootstrap 95% CI of mean(v1) − mean(v2).

:func:`write_table1` writes the paper's Table 1 (markdown + CSV);
:func:`value_histogram` draws the two value distributions.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

from gmv.analysis.ra1 import COLOURS, LABELS
from gmv.errors import GmvError
from gmv.io import save_figure, write_csv, write_text

_BOOT_BLOCK = 1 << 22  # resampled indices held at once by the bootstrap (~32 MiB)


def _as_values(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size < 2:
        raise GmvError(f"{what}: need at least 2 values for a t-test, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise GmvError(f"{what}: values contain NaN or infinite entries; check the valuation output")
    return a


def welch_one_sided(a, b) -> tuple[float, float]:
    """Welch's t statistic and one-sided p-value for H1: mean(a) > mean(b).

    Unequal variances allowed (Welch–Satterthwaite degrees of freedom). When both
    samples have zero variance the statistic is undefined and both numbers are NaN
    (scipy's convention).
    """
    a = _as_values(a, "first sample")
    b = _as_values(b, "second sample")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: NaN, documented above
        res = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    return float(res.statistic), float(res.pvalue)


def cohens_d(a, b) -> float:
    """(mean(a) − mean(b)) / pooled standard deviation (ddof = 1 on each side).

    With zero pooled spread it is NaN when the means are equal and ±inf otherwise.
    """
    a = _as_values(a, "first sample")
    b = _as_values(b, "second sample")
    n1, n2 = len(a), len(b)
    pooled = math.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    diff = float(a.mean() - b.mean())
    if pooled == 0.0:
        return math.nan if diff == 0.0 else math.copysign(math.inf, diff)
    return diff / pooled


def bootstrap_diff_ci(a, b, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(a) − mean(b), resampling each side independently (seeded;
    scipy.stats.bootstrap).

    Above LARGE_N values in all (gmv.analysis.membership.LARGE_N, 50,000) the bootstrap distribution of a
    difference of means is normal to well within its Monte Carlo error, and resampling every value costs
    O(n) per resample: the CI is then the normal one, diff ± z·√(var_a/n_a + var_b/n_b) (variances with
    ddof 0, the bootstrap's own)."""
    from gmv.analysis.membership import LARGE_N

    a = _as_values(a, "first sample")
    b = _as_values(b, "second sample")
    if n_boot < 1:
        raise GmvError(f"n_boot must be at least 1, got {n_boot}")
    if len(a) + len(b) > LARGE_N:
        z = float(stats.norm.ppf(0.5 + level / 2.0))
        half = z * math.sqrt(a.var() / len(a) + b.var() / len(b))
        diff = float(a.mean() - b.mean())
        return diff - half, diff + half
    block = max(1, _BOOT_BLOCK // max(len(a), len(b)))  # resampled indices held at once
    ci = stats.bootstrap((a, b), _mean_difference, n_resamples=n_boot, batch=block, method="percentile",
                         confidence_level=level, rng=np.random.default_rng(seed)).confidence_interval
    return float(ci.low), float(ci.high)


def bootstrap_mean_ci(x, seed: int = 0, n_boot: int = 2000) -> tuple[float, float, float]:
    """(mean, 95% CI low, high) of one sample — e.g. paired differences — by the seeded percentile bootstrap
    (scipy.stats.bootstrap); NaN bounds with fewer than 2 values."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), float("nan"), float("nan")
    ci = stats.bootstrap((x,), np.mean, n_resamples=n_boot, method="percentile",
                         rng=np.random.default_rng(seed)).confidence_interval
    return float(x.mean()), float(ci.low), float(ci.high)


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return a.mean(axis) - b.mean(axis)


# ---------------------------------------------------------------- Table 1

TABLE1_COLUMNS = [
    "Setting",
    "Average value v1",
    "Average value v2",
    "p-value",
    "t-statistic",
    "Significance level",
    "Result",
    "AUROC",
    "Cohen's d",
    "95% CI of difference",
]


def result_sentence(s: dict) -> str:
    """Table 1's "Result" cell for one stats dict from :func:`gmv.analysis.membership.membership_summary`."""
    alpha = s["alpha"]
    if s["significant"]:
        return f"Reject H0: values of X_v1 exceed X_v2 (p < {alpha:g})"
    if isinstance(s["p_value"], float) and math.isnan(s["p_value"]):
        return f"Cannot reject H0 at {alpha:g} (test undefined: zero variance)"
    return f"Cannot reject H0 at {alpha:g}"


def table1_rows(stats_by_label: dict[str, dict]) -> list[dict]:
    """One row per setting in the paper's Table 1 layout, numbers left unformatted.

    Keys are :data:`TABLE1_COLUMNS`; "95% CI of difference" is a (low, high) tuple.
    """
    if not stats_by_label:
        raise GmvError("no settings to tabulate: pass a dict {label: membership_summary(...)}")
    rows = []
    for label, s in stats_by_label.items():
        rows.append(
            {
                "Setting": str(label),
                "Average value v1": s["mean_value_v1"],
                "Average value v2": s["mean_value_v2"],
                "p-value": s["p_value"],
                "t-statistic": s["t_statistic"],
                "Significance level": s["alpha"],
                "Result": result_sentence(s),
                "AUROC": s["auroc"],
                "Cohen's d": s["cohens_d"],
                "95% CI of difference": (s["diff_ci_low"], s["diff_ci_high"]),
            }
        )
    return rows


def _fmt(x: float, spec: str) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return format(x, spec)


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    if p == 0.0:
        return "< 1e-300"  # below double precision: scipy returns exactly 0
    return f"{p:.2e}"


def format_table1(stats_by_label: dict[str, dict]) -> str:
    """The Table 1 markdown pipe table as a string (means to 4 significant digits, p in scientific notation)."""
    lines = [
        "| " + " | ".join(TABLE1_COLUMNS) + " |",
        "|" + "|".join(["---"] + ["---:"] * 5 + ["---"] + ["---:"] * 3) + "|",
    ]
    for r in table1_rows(stats_by_label):
        low, high = r["95% CI of difference"]
        cells = [
            r["Setting"].replace("|", "\\|"),
            _fmt(r["Average value v1"], ".4g"),
            _fmt(r["Average value v2"], ".4g"),
            _fmt_p(r["p-value"]),
            _fmt(r["t-statistic"], ".2f"),
            _fmt(r["Significance level"], "g"),
            r["Result"],
            _fmt(r["AUROC"], ".3f"),
            _fmt(r["Cohen's d"], ".2f"),
            f"[{_fmt(low, '.3g')}, {_fmt(high, '.3g')}]",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table1(stats_by_label: dict[str, dict], out_dir: str | os.PathLike, stem: str = "ra2_table") -> tuple[Path, Path]:
    """Write Table 1 as ``<stem>.md`` (formatted) and ``<stem>.csv`` (full precision) in `out_dir`.

    The CSV has the Table 1 columns with the CI split into two numeric columns, plus
    the sample sizes and the Mann–Whitney p-value. Returns (md_path, csv_path).
    """
    out = Path(out_dir)
    md = write_text(out / f"{stem}.md", format_table1(stats_by_label))
    header = TABLE1_COLUMNS[:-1] + ["95% CI of difference low", "95% CI of difference high", "n v1", "n v2", "Mann-Whitney p"]
    rows = []
    for r, s in zip(table1_rows(stats_by_label), stats_by_label.values()):
        low, high = r["95% CI of difference"]
        rows.append([r[c] for c in TABLE1_COLUMNS[:-1]] + [low, high, s["n_v1"], s["n_v2"], s["mannwhitney_p"]])
    csv = write_csv(out / f"{stem}.csv", header, rows)
    return md, csv


# ---------------------------------------------------------------- histogram


def value_histogram(values_v1, values_v2, path: str | os.PathLike, title: str | None = None, *, log_y: bool = False) -> Path:
    """Overlaid value distributions of X_v1 and X_v2, as a PNG.

    Left panel: share of each half valued exactly 0 (never among any generated image's
    K nearest neighbours). Right panel (own y scale): the non-zero values in shared
    bins, each bar a share of its half's images, so a half's bars over both panels sum
    to 100%. Dashed lines mark each half's mean over all its values (zeros included).
    `log_y` puts the right panel on a log scale (for heavy tails).
    """
    from matplotlib.figure import Figure

    v1 = _as_values(values_v1, "values of X_v1")
    v2 = _as_values(values_v2, "values of X_v2")
    fig = Figure(figsize=(7.5, 3.8), dpi=150)
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 5], wspace=0.3)
    ax0 = fig.add_subplot(gs[0])
    ax1 = fig.add_subplot(gs[1])  # own y scale: the zero bar often dwarfs every other bin
    series = [("v1", v1), ("v2", v2)]

    # zero share
    for i, (key, v) in enumerate(series):
        z = 100.0 * np.mean(v == 0.0)
        ax0.bar(i, z, width=0.7, color=COLOURS[key], alpha=0.75)
        ax0.annotate(f"{z:.1f}%", (i, z), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=7)
    ax0.set_xticks([0, 1], ["v1", "v2"], fontsize=8)
    ax0.set_xlim(-0.7, 1.7)
    ax0.set_ylim(0, 112)
    ax0.set_title("value = 0", fontsize=9)
    ax0.set_ylabel("% of the half's images", fontsize=9)

    # non-zero values, shared bins
    nonzero = np.concatenate([v[v != 0.0] for _, v in series])
    if nonzero.size:
        edges = np.histogram_bin_edges(nonzero, bins="auto")
        if len(edges) > 61:
            edges = np.linspace(nonzero.min(), nonzero.max(), 61)
        for key, v in series:
            nz = v[v != 0.0]
            ax1.hist(
                nz, bins=edges, weights=np.full(len(nz), 100.0 / len(v)), histtype="stepfilled",
                color=COLOURS[key], alpha=0.4, edgecolor=COLOURS[key], linewidth=0.8,
            )
    else:
        ax1.text(0.5, 0.5, "all values are 0", transform=ax1.transAxes, ha="center", va="center", color="0.4")
    for key, v in series:
        m = float(v.mean())
        ax1.axvline(m, color=COLOURS[key], ls="--", lw=1.2, label=f"{LABELS[key]}: mean {m:.3g} (all n={len(v)}, zeros incl.)")
    ax1.legend(fontsize=7, loc="upper right", frameon=True, framealpha=0.85)
    ax1.set_xlabel("value \u03c6 (non-zero values; bars are % of the half's images)", fontsize=9)
    ax1.set_title("value > 0", fontsize=9)
    for ax in (ax0, ax1):
        ax.tick_params(labelsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    if log_y:
        ax1.set_yscale("log")
    fig.suptitle(title or "Values of the trained-on (v1) and held-out (v2) halves", fontsize=10)
    return save_figure(path, fig)
