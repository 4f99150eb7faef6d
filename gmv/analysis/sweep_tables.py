"""The sweep's table: report.csv (full precision) and report.md (formatted), one row per job.

report.csv has the job folder, the swept parameters, the metrics (empty = missing) and the
status (ok | failed); report.md the same table with formatted numbers, then the notes (the
Holm sentence), further sections (the seeds table), the failed jobs and the figures.
"""

from __future__ import annotations

import os
from pathlib import Path

from gmv.analysis.sweep_jobs import Job, setting_label
from gmv.analysis.tables import (
    METRIC_TITLES,
    csv_cell,
    format_value,
    is_missing,
    is_number,
    markdown_table,
    param_cell,
)
from gmv.errors import GmvError
from gmv.io import write_csv, write_text

DEFAULT_METRICS = ["t_statistic", "p_value", "auroc", "mean_value_v1", "mean_value_v2", "recall_at_k",
                   "seconds_match", "seconds_total"]
GENERATOR_METRICS = ["fd_embedding", "fid", "train_seconds", "train_iterations"]  # shown when any job has them


def report_metrics(jobs: list[Job], metrics: list[str] | None = None) -> list[str]:
    """The metric columns: `metrics` if given (each must occur in some job), else the defaults
    plus the generator-comparison columns any job reports."""
    finished = [j for j in jobs if not j.failed]
    if metrics:
        known = sorted({k for j in finished for k in j.metrics})
        unknown = [m for m in metrics if all(m not in j.metrics for j in finished)]
        if unknown:
            raise GmvError(f"metric(s) {', '.join(unknown)} in no job's metrics.json; available: {', '.join(known)}")
        return list(metrics)
    extra = [m for m in GENERATOR_METRICS if any(not is_missing(j.metrics.get(m)) for j in finished)]
    return DEFAULT_METRICS + extra


def table_markdown(jobs: list[Job], params: list[str], metrics: list[str], sweep_dir: Path) -> str:
    """The markdown table of finished jobs: job, swept parameters, formatted metrics."""
    header = ["job", *params, *(METRIC_TITLES.get(m, m) for m in metrics)]
    numeric = [False] + [all(is_number(j.overrides.get(p)) for j in jobs) for p in params] + [True] * len(metrics)
    rows = [[f"`{j.name(sweep_dir)}`", *(param_cell(j.overrides.get(p)) for p in params),
             *(format_value(j.metrics.get(m), m) for m in metrics)] for j in jobs]
    return markdown_table(header, rows, numeric)


def write_report_tables(jobs: list[Job], params: list[str], metrics: list[str], sweep_dir: Path,
                        out_dir: Path, figures: list[Path], notes: list[str] = (),
                        sections: list[str] = ()) -> tuple[Path, Path]:
    """report.csv (full precision) and report.md (formatted; `notes` under the table, then the markdown
    `sections`, the failed jobs and figure links)."""
    header = ["job", *params, *metrics, "status"]
    rows = [[job.name(sweep_dir), *(csv_cell(job.overrides.get(p)) for p in params),
             *(csv_cell(job.metrics.get(m)) for m in metrics), "failed" if job.failed else "ok"]
            for job in jobs]
    csv_path = write_csv(out_dir / "report.csv", header, rows)

    finished = [j for j in jobs if not j.failed]
    failed = [j for j in jobs if j.failed]
    constant = {k: v for k, v in jobs[0].overrides.items()
                if k not in params and not k.startswith("hydra.")}
    where = os.path.relpath(sweep_dir, out_dir.resolve())  # as a reader of report.md finds it, not this machine's path
    lines = [f"# Sweep report: {sweep_dir.name}", "",
             f"{len(jobs)} jobs in `{where}`: {len(finished)} finished, {len(failed)} failed.  ",
             f"Swept: {', '.join(f'`{p}`' for p in params) or 'nothing (all jobs share their overrides)'}."]
    if constant:
        lines[-1] += "  "  # markdown line break
        lines.append(f"Same in every job: {', '.join(f'`{k}={v}`' for k, v in constant.items())}.")
    lines += ["", table_markdown(finished, params, metrics, sweep_dir)]
    lines += [note for n in notes for note in (n, "")]
    lines += list(sections)
    if failed:
        lines += ["## Failed jobs (no metrics.json)", ""]
        lines += [f"- `{j.name(sweep_dir)}`: {setting_label(j, list(j.overrides)) if j.overrides else 'no overrides'}"
                  for j in failed]
        lines.append("")
    if figures:
        lines += ["## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figures] + [""]
    md_path = write_text(out_dir / "report.md", "\n".join(lines))
    return csv_path, md_path
