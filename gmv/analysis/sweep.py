"""The report of a Hydra multirun (``gmv-report SWEEP``): compare its jobs in tables and figures.

:func:`write_sweep_report` reads the jobs (:mod:`gmv.analysis.sweep_jobs`) and writes, into
``SWEEP/report`` by default (all files written atomically):

    report.csv             one row per job: job folder, swept parameters, metrics (full
                           precision; empty = missing), status (ok | failed); p_value_holm next
                           to p_value: the p-values Holm-adjusted over all finished jobs
    report.md              the same table with formatted numbers, one sentence on the Holm
                           correction, the seeds table (below), the failed jobs and the figures
                           (:mod:`gmv.analysis.sweep_tables`)
    seeds.csv, seeds.md    only when ``seed`` is swept: per setting of the other swept parameters,
                           the number of seeds, mean and 95 % CI over seeds of t, AUROC, Cohen's d,
                           p, …, the max p and "k of n" seeds with p < 0.01 (:mod:`gmv.analysis.seeds`)
    sweep_<param>.png      t-statistic, AUROC, recall@K vs exact search and wall time against
                           one swept parameter, one line per setting of the other swept parameters
                           (:mod:`gmv.analysis.sweep_figures`)
    generators.md          only when the jobs differ in generator: the paper's Table 1 per
                           generator with sample quality (FD, FID) and training time
    generators_values.png  only then: ECDFs of the values of X_v1 and X_v2 per generator
                           (:mod:`gmv.analysis.compare_generators`)
    addition.md/.csv/.png  only when some job added images to X_v1 (data.addition): the value of each
                           kind against clean X_v1, its hypothesis and whether it held
                           (:mod:`gmv.analysis.addition`)
    lds.md/.csv            only when the jobs are retrains measuring model outputs (control.kind=model_output)
                           and `base` names the base run: every method's linear datamodeling score
                           (:mod:`gmv.analysis.lds_report`)
    counterfactual.md/.csv/.png  only when the jobs are retrains without some X_v1 images (data.subset) that
                           drew their own X̂', and `base` names the base run(s), one per seed: how far the
                           outputs moved (:mod:`gmv.analysis.counterfactual_report`)
"""

from __future__ import annotations

from pathlib import Path

from gmv.analysis import compare_generators, seeds
from gmv.errors import GmvError
from gmv.analysis.sweep_figures import figure_name, sweep_figure
from gmv.analysis.sweep_jobs import Job, collect_jobs, sort_jobs, swept_parameters
from gmv.analysis.sweep_tables import report_metrics, write_report_tables


def _seed_tables(jobs: list[Job], params: list[str], metrics: list[str] | None, out: Path) -> tuple[dict, list]:
    """seeds.csv/.md and the report.md section, when ``seed`` is swept: ({file name: path}, [section])."""
    if seeds.SEED_PARAM not in params:
        return {}, []
    seed_metrics = seeds.seed_metrics(jobs, metrics)
    rows = seeds.aggregate_seeds(jobs, params, seed_metrics)
    csv_path, md_path, section = seeds.write_seeds_tables(rows, seed_metrics, out)
    return {"seeds.csv": csv_path, "seeds.md": md_path}, [section]


def _generator_files(finished: list[Job], params: list[str], out: Path) -> dict[str, Path]:
    """generators.md and generators_values.png (the latter when some job has values.csv)."""
    written = {"generators.md": compare_generators.write_generators_table(finished, params, out / "generators.md")}
    values_png = compare_generators.generator_values_figure(finished, params, out / "generators_values.png")
    if values_png is not None:
        written["generators_values.png"] = values_png
    return written


def _is_retrain(job) -> bool:
    return bool(job.metrics.get("n_removed")) or job.metrics.get("control") == "model_output"


def _parameter_figures(finished: list, params: list[str], out: Path) -> list[Path]:
    """One figure per swept parameter — not for a sweep of retrains, whose own reports (LDS, counterfactual) draw
    what they measure: there each subset or ranking is its own setting and the generic figures say little."""
    if finished and all(_is_retrain(j) for j in finished):
        return []
    return [sweep_figure(finished, param, params, out / figure_name(param)) for param in params
            if len({j.overrides.get(param) for j in finished}) > 1]  # a parameter only failed jobs vary says nothing


def write_sweep_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                       metrics: list[str] | None = None, base: str | Path | None = None,
                       lds: str | Path | None = None) -> dict[str, Path]:
    """Write the sweep's tables and figures into `out_dir` (default ``SWEEP/report``).

    `metrics` replaces the default metric columns of report.csv/.md (the figures always
    show t, AUROC, recall@K and wall time; p_value_holm follows p_value; with ``seed``
    swept, the numeric ones are aggregated over seeds too). Returns {file name: path} of
    every file written. Raises :class:`GmvError` on a missing folder, no finished job or an unknown metric.
    `base` names the run(s) a sweep of retrains came from (LDS, counterfactual reports); `lds` an LDS report's folder
    to join to the counterfactual one (contribution.md).
    """
    if lds is not None:
        from gmv.analysis.contribution import read_lds

        read_lds(lds)  # a wrong folder fails here, before any retrain is read
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    sweep_dir = sweep_dir.resolve()
    out = Path(out_dir) if out_dir is not None else sweep_dir / "report"
    params = swept_parameters(jobs)
    holm_counts = seeds.add_holm(jobs)  # metrics["p_value_holm"] of every finished job
    columns = seeds.with_holm_column(report_metrics(jobs, metrics))
    jobs = sort_jobs(jobs, params)
    finished = [j for j in jobs if not j.failed]

    figures = _parameter_figures(finished, params, out)
    seed_files, sections = _seed_tables(jobs, params, metrics, out)
    csv_path, md_path = write_report_tables(jobs, params, columns, sweep_dir, out, figures,
                                            notes=[seeds.holm_sentence(*holm_counts)], sections=sections)
    written = {"report.csv": csv_path, "report.md": md_path, **seed_files, **{f.name: f for f in figures}}
    if compare_generators.compares_generators(jobs, params):
        written.update(_generator_files(finished, params, out))
    if any(j.metrics.get("n_added") for j in finished):
        from gmv.analysis.addition import write_addition_report

        written.update(write_addition_report(finished, out))
    retrains = [j for j in finished if j.metrics.get("control") == "model_output"]
    if retrains:
        if base is None:
            raise GmvError("these jobs are retrains measuring model outputs: give the base run they were measured "
                           "against (gmv-report SWEEP --base RUN) for the LDS report")
        from gmv.analysis.lds_report import write_lds_report

        written.update(write_lds_report(retrains, base, out))
    removals = [j for j in finished if j.metrics.get("n_removed") and j.metrics.get("control") != "model_output"]
    if removals:
        if base is None:
            raise GmvError("these jobs are retrains without some X_v1 images: give the base run(s) they were "
                           "retrained from, one per seed (gmv-report SWEEP --base RUN[,RUN…]) for the "
                           "counterfactual report")
        from gmv.analysis.counterfactual_report import write_counterfactual_report

        written.update(write_counterfactual_report(removals, [b for b in str(base).split(",") if b], out, lds=lds))
    elif lds is not None:
        raise GmvError("--lds joins an LDS report to a counterfactual one: this sweep holds no retrains without "
                       "some X_v1 images")
    return written
