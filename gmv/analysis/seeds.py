"""Read a sweep as evidence: aggregate over seeds, and adjust the jobs' p-values for multiplicity.

Seeds. When ``seed`` is one of the swept parameters (``gmv -m seed=0,1,2 valuation.k=5,10``),
the jobs that share every other swept parameter form one *setting*; its finished jobs are
its seeds. Per setting and metric (t-statistic, AUROC, Cohen's d, p-value, any ``tpr_at_*``
a job reports, and the numeric columns chosen with ``--metrics``) :func:`aggregate_seeds`
gives the mean over seeds and a 95 % Student-t interval on the seed values,

    mean ± t_{0.975, n−1} · s / √n        (s: sample standard deviation over the n seeds),

NaN when only one seed has the metric (the interval is not clipped to the metric's range:
it describes the spread of the seed values, not a test). It also gives the largest
p-value over seeds and how many seeds reach p < 0.01 ("k of n"). A sweep over ``seed``
alone is one setting. :func:`write_seeds_tables` writes seeds.csv (full precision) and
seeds.md (formatted), and returns the markdown section that report.md embeds.

Multiplicity. :func:`add_holm` adds ``p_value_holm`` to every finished job's metrics: the
p-values of all finished jobs of the sweep, Holm-adjusted together
(:func:`gmv.analysis.multiplicity.holm`), so a cell that "reaches p < 0.01" after the
adjustment does so with the family-wise error rate of the whole sweep held at 1 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gmv.analysis.multiplicity import holm
from gmv.analysis.sweep_jobs import Job, sort_jobs
from gmv.analysis.tables import METRIC_TITLES, MISSING, csv_cell, format_value, is_number, markdown_table, param_cell
from gmv.io import write_csv, write_text

SEED_PARAM = "seed"
SEED_METRICS = ["t_statistic", "auroc", "cohens_d", "p_value"]  # always aggregated (NaN where no job has them)
OPTIONAL_PREFIXES = ("tpr_at_",)  # aggregated too when a finished job reports them, e.g. tpr_at_1fpr
P_THRESHOLD = 0.01
LEVEL = 0.95
HOLM_COLUMN = "p_value_holm"
P_BELOW = f"seeds_p_below_{P_THRESHOLD:g}"  # seeds_p_below_0.01


# ---------------------------------------------------------------- multiplicity


def add_holm(jobs: list[Job], p_key: str = "p_value") -> tuple[int, int, int]:
    """Set ``metrics["p_value_holm"]`` of every finished job: its p-value Holm-adjusted over all finished jobs.

    A job without a finite p-value gets NaN and is no test. Returns (tests, jobs with raw
    p < 0.01, jobs with Holm-adjusted p < 0.01).
    """
    finished = [j for j in jobs if not j.failed]
    raw = np.array([float(j.metrics[p_key]) if is_number(j.metrics.get(p_key)) else math.nan for j in finished])
    adjusted = holm(raw)
    for job, p in zip(finished, adjusted):
        job.metrics[HOLM_COLUMN] = float(p)
    ok = np.isfinite(raw)
    return int(ok.sum()), int(np.sum(raw[ok] < P_THRESHOLD)), int(np.sum(adjusted[ok] < P_THRESHOLD))


def with_holm_column(columns: list[str]) -> list[str]:
    """The report's metric columns with ``p_value_holm`` right after ``p_value`` (when p_value is a column)."""
    if "p_value" not in columns or HOLM_COLUMN in columns:
        return list(columns)
    i = columns.index("p_value") + 1
    return [*columns[:i], HOLM_COLUMN, *columns[i:]]


def holm_sentence(tests: int, raw_below: int, holm_below: int) -> str:
    """One sentence for report.md: what the Holm column is and how many jobs reach p < 0.01 before and after."""
    if tests == 0:
        return "No job reports a p-value, so there is nothing to correct for multiple testing."
    return (f"{METRIC_TITLES[HOLM_COLUMN]} is each job's p-value Holm-adjusted over the {tests} jobs with a "
            f"p-value (step-down correction holding the family-wise error rate of the whole sweep, under any "
            f"dependence between jobs): {raw_below} of {tests} jobs reach p < {P_THRESHOLD:g} raw, "
            f"{holm_below} of {tests} after Holm.")


# ---------------------------------------------------------------- seeds


def mean_ci(values, level: float = LEVEL) -> tuple[float, float, float, int]:
    """(mean, CI low, CI high, n) of the finite `values`: a Student-t interval, NaN bounds when n < 2."""
    from scipy import stats

    v = np.asarray([x for x in values if is_number(x) and math.isfinite(x)], dtype=np.float64)
    n = v.size
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, math.nan, 1
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def seed_metrics(jobs: list[Job], chosen: list[str] | None = None) -> list[str]:
    """The metrics to aggregate: :data:`SEED_METRICS`, any ``tpr_at_*`` a finished job reports as a number
    (not its per-run CI bounds),
    and the numeric ones among the user's `chosen` report columns."""
    finished = [j for j in jobs if not j.failed]
    metrics = list(SEED_METRICS)
    reported = sorted({k for j in finished for k, v in j.metrics.items()
                       if k.startswith(OPTIONAL_PREFIXES) and "_ci_" not in k and is_number(v)})
    for m in [*reported, *(chosen or [])]:
        if m not in metrics and m != HOLM_COLUMN and any(is_number(j.metrics.get(m)) for j in finished):
            metrics.append(m)
    return metrics


@dataclass
class SeedRow:
    """One setting of the swept parameters other than the seed, aggregated over its seeds."""

    setting: dict[str, Any]
    seeds: list[Any]                       # seed values of the finished jobs, in order
    n_failed: int = 0                      # jobs of this setting without metrics.json
    stats: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)  # metric → mean_ci
    p_max: float = math.nan
    p_below: int = 0                       # seeds with p < 0.01
    p_count: int = 0                       # seeds with a p-value

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def p_below_text(self) -> str:
        return f"{self.p_below} of {self.p_count}"


def group_by_setting(jobs: list[Job], params: list[str], seed_param: str = SEED_PARAM) -> list[tuple[dict, list[Job]]]:
    """[(setting of the non-seed swept params, its jobs ordered by seed)], settings in sweep order."""
    others = [p for p in params if p != seed_param]
    groups: dict[tuple, tuple[dict, list[Job]]] = {}
    for job in sort_jobs(jobs, [*others, seed_param]):
        setting = {p: job.overrides.get(p) for p in others}
        key = tuple(repr(v) for v in setting.values())
        groups.setdefault(key, (setting, []))[1].append(job)
    return list(groups.values())


def aggregate_seeds(jobs: list[Job], params: list[str], metrics: list[str] | None = None,
                    seed_param: str = SEED_PARAM) -> list[SeedRow]:
    """One :class:`SeedRow` per setting: number of seeds, mean and 95 % CI of each metric, max p and "k of n"."""
    metrics = seed_metrics(jobs) if metrics is None else metrics
    rows = []
    for setting, members in group_by_setting(jobs, params, seed_param):
        finished = [j for j in members if not j.failed]
        row = SeedRow(setting=setting, seeds=[j.overrides.get(seed_param) for j in finished],
                      n_failed=len(members) - len(finished))
        row.stats = {m: mean_ci([j.metrics.get(m) for j in finished]) for m in metrics}
        p = [float(j.metrics["p_value"]) for j in finished
             if is_number(j.metrics.get("p_value")) and math.isfinite(j.metrics["p_value"])]
        row.p_count = len(p)
        row.p_below = sum(x < P_THRESHOLD for x in p)
        row.p_max = max(p) if p else math.nan
        rows.append(row)
    return rows


def _seeds_text(row: SeedRow) -> str:
    text = str(row.n_seeds)
    return text + (f" (+{row.n_failed} failed)" if row.n_failed else "")


def _ci_cell(stat: tuple[float, float, float, int], metric: str) -> str:
    mean, low, high, _ = stat
    if math.isnan(low):
        return f"{format_value(mean, metric)} [{MISSING}]"
    return f"{format_value(mean, metric)} [{format_value(low, metric)}, {format_value(high, metric)}]"


def seeds_markdown(rows: list[SeedRow], metrics: list[str]) -> str:
    """The seeds table: setting, seeds, ``mean [95% CI]`` per metric, max p, seeds with p < 0.01."""
    others = list(rows[0].setting) if rows else []
    header = [*others, "seeds", *(f"{METRIC_TITLES.get(m, m)} mean [95% CI]" for m in metrics),
              "max p-value", f"p < {P_THRESHOLD:g}"]
    numeric = ([all(is_number(r.setting[p]) for r in rows) for p in others] + [True]
               + [True] * len(metrics) + [True, True])
    body = [[*(param_cell(r.setting[p]) for p in others), _seeds_text(r),
             *(_ci_cell(r.stats[m], m) for m in metrics), format_value(r.p_max, "p_value"), r.p_below_text()]
            for r in rows]
    return markdown_table(header, body, numeric)


def seeds_explanation(seed_param: str = SEED_PARAM) -> str:
    return (f"Each row is one setting of the swept parameters other than `{seed_param}`, aggregated over its "
            f"finished seeds: the mean and a {LEVEL:.0%} Student-t interval on the seed values "
            f"(mean ± t·s/√n; {MISSING} with one seed), the largest p-value over the seeds, and how many "
            f"seeds reach p < {P_THRESHOLD:g}.")


def write_seeds_tables(rows: list[SeedRow], metrics: list[str], out_dir: Path,
                       seed_param: str = SEED_PARAM) -> tuple[Path, Path, str]:
    """seeds.csv (full precision; NaN where undefined) and seeds.md; returns both and report.md's section."""
    others = list(rows[0].setting) if rows else []
    header = [*others, "n_seeds", "seeds", "n_failed"]
    for m in metrics:
        header += [f"{m}_mean", f"{m}_ci_low", f"{m}_ci_high"]
    header += ["p_value_max", P_BELOW]
    body = []
    for r in rows:
        cells = [*(csv_cell(r.setting[p]) for p in others), r.n_seeds,
                 ",".join(str(s) for s in r.seeds), r.n_failed]
        for m in metrics:
            cells += list(r.stats[m][:3])
        body.append([*cells, r.p_max, r.p_below_text()])
    csv_path = write_csv(out_dir / "seeds.csv", header, body)
    table = seeds_markdown(rows, metrics)
    section = f"## Across seeds\n\n{seeds_explanation(seed_param)}\n\n{table}"
    md_path = write_text(out_dir / "seeds.md", f"# Across seeds\n\n{seeds_explanation(seed_param)}\n\n{table}")
    return csv_path, md_path, section
