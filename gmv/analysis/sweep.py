"""Compare the jobs of a Hydra multirun: one table, one figure per swept parameter.

A multirun such as ``gmv -m valuation.k=1,5,10 matcher=pq matcher.m=8,16`` writes one
folder per job under the sweep folder (``SWEEP/0``, ``SWEEP/1``, … or deeper, e.g.
``SWEEP/<name>/0``), each with ``.hydra/overrides.yaml`` and, when the job finished,
``metrics.json`` and ``values.csv``. A job folder without ``metrics.json`` failed.

The swept parameters are the override keys whose values differ between jobs
(``hydra.*`` keys aside); their values are read back as numbers where they look like
numbers, so ``k=5`` sorts before ``k=10``. :func:`write_sweep_report` writes, into
``SWEEP/report`` by default (all files written atomically):

    report.csv             one row per job: job folder, swept parameters, metrics (full
                           precision; empty = missing), status (ok | failed); p_value_holm next
                           to p_value: the p-values Holm-adjusted over all finished jobs
    report.md              the same table with formatted numbers, one sentence on the Holm
                           correction, the seeds table (below), the failed jobs and the figures
    seeds.csv, seeds.md    only when ``seed`` is swept: per setting of the other swept parameters,
                           the number of seeds, mean and 95 % CI over seeds of t, AUROC, Cohen's d,
                           p, …, the max p and "k of n" seeds with p < 0.01 (:mod:`gmv.analysis.seeds`)
    sweep_<param>.png      t-statistic, AUROC, recall@K vs exact search and wall time against
                           one swept parameter, one line per setting of the other swept parameters
    generators.md          only when the jobs differ in generator: the paper's Table 1 per
                           generator with sample quality (FD, FID) and training time
    generators_values.png  only then: ECDFs of the values of X_v1 and X_v2 per generator
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gmv.errors import GmvError
from gmv.io import save_figure, write_csv, write_text

DEFAULT_METRICS = ["t_statistic", "p_value", "auroc", "mean_value_v1", "mean_value_v2", "recall_at_k",
                   "seconds_match", "seconds_total"]
GENERATOR_METRICS = ["fd_embedding", "fid", "train_seconds", "train_iterations"]  # shown when any job has them

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

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class Job:
    """One job of the sweep: its folder, its Hydra overrides and its metrics (empty when it failed)."""

    dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    failed: bool = False

    def name(self, sweep_dir: Path) -> str:
        """The job folder relative to the sweep folder, e.g. ``3`` or ``name/0``."""
        return self.dir.relative_to(sweep_dir).as_posix() if self.dir != sweep_dir else "."

    def generator(self) -> str | None:
        """The generator this job valued: metrics["generator"], else the ``generator`` override."""
        name = self.metrics.get("generator") or self.overrides.get("generator")
        return None if name is None else str(name)


# ---------------------------------------------------------------- collecting jobs


def parse_value(text: str) -> Any:
    """An override value as written on the command line: an int or float where it looks numeric, else the text."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if _NUMBER.fullmatch(text):
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    return text


def parse_overrides(lines: list) -> dict[str, Any]:
    """``["valuation.k=5", "matcher=pq", "+x=1"]`` → ``{"valuation.k": 5, "matcher": "pq", "x": 1}``."""
    overrides = {}
    for line in lines:
        key, sep, value = str(line).partition("=")
        key = key.lstrip("+~")  # Hydra's append (+, ++) and delete (~) prefixes
        overrides[key] = parse_value(value) if sep else None
    return overrides


def _read_overrides(path: Path) -> dict[str, Any]:
    import yaml

    try:
        lines = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError) as e:
        raise GmvError(f"cannot read {path}: {e}") from e
    if not isinstance(lines, list):
        raise GmvError(f"{path}: expected a YAML list of overrides like 'valuation.k=5', got {type(lines).__name__}")
    return parse_overrides(lines)


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text())  # Python's json reads NaN and Infinity too
    except (OSError, ValueError) as e:
        raise GmvError(f"cannot read {path}: {e}") from e
    if not isinstance(metrics, dict):
        raise GmvError(f"{path}: expected a JSON object of metrics, got {type(metrics).__name__}")
    return metrics


def _overrides_file(job_dir: Path, sweep_dir: Path) -> Path | None:
    """The nearest ``.hydra/overrides.yaml`` in the job folder or a folder above it (below the sweep folder)."""
    for folder in [job_dir, *job_dir.parents]:
        if folder == sweep_dir or sweep_dir not in folder.parents:
            break
        if (folder / ".hydra" / "overrides.yaml").is_file():
            return folder / ".hydra" / "overrides.yaml"
    return None


def _natural_key(path: Path) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts]


def collect_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job below `sweep_dir`: each folder holding metrics.json, and each ``.hydra`` job without one (failed).

    Jobs come in folder order (``2`` before ``10``). Raises :class:`GmvError` when the
    folder is missing or holds no finished job.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise GmvError(f"sweep folder not found: {sweep_dir}")
    sweep_dir = sweep_dir.resolve()
    finished = sorted({p.parent for p in sweep_dir.rglob("metrics.json") if ".hydra" not in p.parts},
                      key=_natural_key)
    if not finished:
        raise GmvError(f"no job folders with metrics.json found below {sweep_dir} "
                       "(expected the output folder of a Hydra multirun, e.g. multirun/<date>/<time>)")
    jobs = []
    for job_dir in finished:
        overrides_file = _overrides_file(job_dir, sweep_dir)
        jobs.append(Job(dir=job_dir, overrides=_read_overrides(overrides_file) if overrides_file else {},
                        metrics=_read_metrics(job_dir / "metrics.json")))
    for hydra_dir in sweep_dir.rglob(".hydra"):
        job_dir = hydra_dir.parent
        if job_dir == sweep_dir or not (hydra_dir / "overrides.yaml").is_file():
            continue
        if any(job_dir == d or job_dir in d.parents for d in finished):
            continue  # finished, possibly with metrics.json in a subfolder
        jobs.append(Job(dir=job_dir, overrides=_read_overrides(hydra_dir / "overrides.yaml"), failed=True))
    return sorted(jobs, key=lambda j: _natural_key(j.dir))


def swept_parameters(jobs: list[Job]) -> list[str]:
    """The override keys whose values differ between jobs (``hydra.*`` keys ignored), in command-line order."""
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys and not k.startswith("hydra.")]
    return [k for k in keys if len({repr(job.overrides.get(k)) for job in jobs}) > 1]


def _sort_key(value: Any) -> tuple:
    """Numbers first (numerically), then text, then missing."""
    if value is None:
        return (2, 0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))


def sort_jobs(jobs: list[Job], params: list[str]) -> list[Job]:
    """Jobs ordered by the swept parameters, in the order given (stable: folder order breaks ties)."""
    return sorted(jobs, key=lambda j: [_sort_key(j.overrides.get(p)) for p in params])


# ---------------------------------------------------------------- formatting


def _is_missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_value(value: Any, metric: str = "") -> str:
    """A table cell: p-values in scientific notation (4.7e-04), t to 2 decimals, AUROC/recall to 3, else 4 digits."""
    if _is_missing(value):
        return MISSING
    if not _is_number(value):
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


def markdown_table(header: list[str], rows: list[list[str]], numeric: list[bool]) -> str:
    """A pipe table; numeric columns right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _csv_cell(value: Any) -> Any:
    return "" if value is None else value  # floats keep full precision (csv writes repr)


def _param_cell(value: Any) -> str:
    return MISSING if value is None else format_value(value)


def _label(job: Job, params: list[str]) -> str:
    """``k=5, matcher.m=8`` — a job's setting of the given parameters."""
    return ", ".join(f"{p}={_param_cell(job.overrides.get(p))}" for p in params) or "all jobs"


# ---------------------------------------------------------------- the sweep table


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
    extra = [m for m in GENERATOR_METRICS if any(not _is_missing(j.metrics.get(m)) for j in finished)]
    return DEFAULT_METRICS + extra


def write_report_tables(jobs: list[Job], params: list[str], metrics: list[str], sweep_dir: Path,
                        out_dir: Path, figures: list[Path], notes: list[str] = (),
                        sections: list[str] = ()) -> tuple[Path, Path]:
    """report.csv (full precision) and report.md (formatted; `notes` under the table, then the markdown
    `sections`, the failed jobs and figure links)."""
    header = ["job", *params, *metrics, "status"]
    rows = [[job.name(sweep_dir), *(_csv_cell(job.overrides.get(p)) for p in params),
             *(_csv_cell(job.metrics.get(m)) for m in metrics), "failed" if job.failed else "ok"]
            for job in jobs]
    csv_path = write_csv(out_dir / "report.csv", header, rows)

    finished = [j for j in jobs if not j.failed]
    failed = [j for j in jobs if j.failed]
    constant = {k: v for k, v in jobs[0].overrides.items()
                if k not in params and not k.startswith("hydra.")}
    lines = [f"# Sweep report: {sweep_dir.name}", "",
             f"{len(jobs)} jobs in `{sweep_dir}`: {len(finished)} finished, {len(failed)} failed.  ",
             f"Swept: {', '.join(f'`{p}`' for p in params) or 'nothing (all jobs share their overrides)'}."]
    if constant:
        lines[-1] += "  "  # markdown line break
        lines.append(f"Same in every job: {', '.join(f'`{k}={v}`' for k, v in constant.items())}.")
    lines += ["", table_markdown(finished, params, metrics, sweep_dir)]
    lines += [note for n in notes for note in (n, "")]
    lines += list(sections)
    if failed:
        lines += ["## Failed jobs (no metrics.json)", ""]
        lines += [f"- `{j.name(sweep_dir)}`: {_label(j, list(j.overrides)) if j.overrides else 'no overrides'}"
                  for j in failed]
        lines.append("")
    if figures:
        lines += ["## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figures] + [""]
    md_path = write_text(out_dir / "report.md", "\n".join(lines))
    return csv_path, md_path


def table_markdown(jobs: list[Job], params: list[str], metrics: list[str], sweep_dir: Path) -> str:
    """The markdown table of finished jobs: job, swept parameters, formatted metrics."""
    header = ["job", *params, *(METRIC_TITLES.get(m, m) for m in metrics)]
    numeric = [False] + [all(_is_number(j.overrides.get(p)) for j in jobs) for p in params] + [True] * len(metrics)
    rows = [[f"`{j.name(sweep_dir)}`", *(_param_cell(j.overrides.get(p)) for p in params),
             *(format_value(j.metrics.get(m), m) for m in metrics)] for j in jobs]
    return markdown_table(header, rows, numeric)


# ---------------------------------------------------------------- figures

PANELS = [("t_statistic", "t-statistic (v1 > v2)"), ("auroc", "AUROC"), ("recall_at_k", "recall@K vs exact")]


def _as_float(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "param"


def sweep_figure(jobs: list[Job], param: str, params: list[str], path: Path) -> Path:
    """Four panels against `param`: t, AUROC, recall@K and wall time; one line per setting of the other params."""
    from matplotlib.figure import Figure

    others = [p for p in params if p != param]
    time_metric = "seconds_match" if any(_is_number(j.metrics.get("seconds_match")) for j in jobs) else "seconds_total"
    panels = PANELS + [(time_metric, METRIC_TITLES[time_metric])]

    x_values = sorted({j.overrides.get(param) for j in jobs}, key=_sort_key)
    numeric_x = all(_is_number(v) for v in x_values)
    position = {v: (float(v) if numeric_x else i) for i, v in enumerate(x_values)}

    groups: dict[str, list[Job]] = {}
    for job in sort_jobs(jobs, others):
        groups.setdefault(_label(job, others), []).append(job)

    fig = Figure(figsize=(4.0 * len(panels), 3.6), dpi=120)
    axes = fig.subplots(1, len(panels))
    for ax, (metric, title) in zip(axes, panels):
        for label, members in groups.items():
            members = sorted(members, key=lambda j: _sort_key(j.overrides.get(param)))
            xs = [position[j.overrides.get(param)] for j in members]
            ys = [_as_float(j.metrics.get(metric)) for j in members]
            ax.plot(xs, ys, marker="o", ms=4, lw=1.3, ls="-" if numeric_x else ":", label=label)
        if metric == "auroc":
            ax.axhline(0.5, color="0.6", ls=":", lw=1)  # no membership signal
        if numeric_x:
            positive = [float(v) for v in x_values if v > 0]
            if len(positive) == len(x_values) and max(positive) / min(positive) >= 10:
                ax.set_xscale("log")
            ax.set_xticks([position[v] for v in x_values], [format_value(v) for v in x_values])
            ax.minorticks_off()
        else:
            ax.set_xticks(range(len(x_values)), [_param_cell(v) for v in x_values], rotation=30, ha="right")
            ax.set_xlim(-0.5, len(x_values) - 0.5)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(param, fontsize=9)
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


# ---------------------------------------------------------------- generator comparison

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


def _generator_label(job: Job, params: list[str]) -> str:
    others = [p for p in params if p != "generator"]
    name = job.generator() or "?"
    preset = job.metrics.get("generator_preset")
    if preset and str(preset) != name:
        name += f" ({preset})"
    return name + (f", {_label(job, others)}" if others else "")


def write_generators_table(jobs: list[Job], params: list[str], path: Path) -> Path:
    """generators.md: the paper's Table 1 per generator, with sample quality and training cost."""
    rows = [[_generator_label(j, params), *(format_value(j.metrics.get(m), m) for m, _ in GENERATOR_COLUMNS)]
            for j in jobs]
    header = ["Generator", *(title for _, title in GENERATOR_COLUMNS)]
    text = ("# Generator comparison\n\n"
            "RA2 per generator (one-sided Welch t-test, H1: values of X_v1 exceed X_v2), sample quality "
            "(Fréchet distance of the samples to X_v1 in the valuation embedding; FID) and training cost.\n\n"
            + markdown_table(header, rows, [False] + [True] * len(GENERATOR_COLUMNS)))
    return write_text(path, text)


def read_values(path: Path) -> dict[str, np.ndarray]:
    """values.csv → {"v1": values, "v2": values}."""
    by_split: dict[str, list[float]] = {"v1": [], "v2": []}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("split") in by_split:
                    by_split[row["split"]].append(float(row["value"]))
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise GmvError(f"cannot read the values in {path} (columns index, split, label, value, n_matches): {e}") from e
    return {split: np.asarray(v, dtype=np.float64) for split, v in by_split.items()}


def generator_values_figure(jobs: list[Job], params: list[str], path: Path) -> Path | None:
    """ECDFs of the values of X_v1 (solid) and X_v2 (dashed), one colour per generator job.

    A curve starts at the share of images valued exactly 0 (common: never matched), so
    the zero mass reads straight off the left edge. Jobs without values.csv are left out;
    returns None when no job has one.
    """
    from matplotlib.figure import Figure

    series = [(_generator_label(j, params), read_values(j.dir / "values.csv"))
              for j in jobs if (j.dir / "values.csv").is_file()]
    if not series:
        return None
    positive = np.concatenate([v[v > 0] for _, vals in series for v in vals.values()])
    log_x = positive.size > 0 and positive.max() / positive.min() >= 10

    fig = Figure(figsize=(7.5, 4.5), dpi=130)
    ax = fig.subplots()
    colours = [f"C{i % 10}" for i in range(len(series))]
    for (label, vals), colour in zip(series, colours):
        for split, style in (("v1", "-"), ("v2", "--")):
            v = np.sort(vals[split])
            if v.size == 0:
                continue
            if log_x:
                zero_share = float(np.mean(v <= 0))
                v = v[v > 0]
                x = np.concatenate([[positive.min()], v])
                y = np.concatenate([[zero_share], zero_share + np.arange(1, v.size + 1) / len(vals[split])])
            else:
                x = np.concatenate([[v[0]], v])
                y = np.concatenate([[0.0], np.arange(1, v.size + 1) / v.size])
            ax.step(x, y, where="post", color=colour, ls=style, lw=1.4,
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


# ---------------------------------------------------------------- everything


def write_sweep_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                       metrics: list[str] | None = None) -> dict[str, Path]:
    """Write the sweep's tables and figures into `out_dir` (default ``SWEEP/report``).

    `metrics` replaces the default metric columns of report.csv/.md (the figures always
    show t, AUROC, recall@K and wall time; p_value_holm follows p_value; with ``seed``
    swept, the numeric ones are aggregated over seeds too). Returns {file name: path} of
    every file written. Raises :class:`GmvError` on a missing folder, no finished job or an unknown metric.
    """
    from gmv.analysis import seeds

    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    sweep_dir = sweep_dir.resolve()
    out = Path(out_dir) if out_dir is not None else sweep_dir / "report"
    params = swept_parameters(jobs)
    holm_counts = seeds.add_holm(jobs)  # metrics["p_value_holm"] of every finished job
    columns = seeds.with_holm_column(report_metrics(jobs, metrics))
    jobs = sort_jobs(jobs, params)
    finished = [j for j in jobs if not j.failed]

    written: dict[str, Path] = {}
    figures = []
    for param in params:
        if len({j.overrides.get(param) for j in finished}) > 1:  # a parameter only failed jobs vary says nothing
            figures.append(sweep_figure(finished, param, params, out / f"sweep_{_safe_name(param)}.png"))
    seed_files, sections = {}, []
    if seeds.SEED_PARAM in params:  # per setting of the other swept parameters, over its seeds
        seed_metrics = seeds.seed_metrics(jobs, metrics)
        rows = seeds.aggregate_seeds(jobs, params, seed_metrics)
        seed_files["seeds.csv"], seed_files["seeds.md"], section = seeds.write_seeds_tables(rows, seed_metrics, out)
        sections.append(section)
    csv_path, md_path = write_report_tables(jobs, params, columns, sweep_dir, out, figures,
                                            notes=[seeds.holm_sentence(*holm_counts)], sections=sections)
    written.update({"report.csv": csv_path, "report.md": md_path, **seed_files})
    written.update({f.name: f for f in figures})
    if compares_generators(jobs, params):
        written["generators.md"] = write_generators_table(finished, params, out / "generators.md")
        values_png = generator_values_figure(finished, params, out / "generators_values.png")
        if values_png is not None:
            written["generators_values.png"] = values_png
    return written
