"""`gmv-report` on hand-made sweep folders: parameters, tables, failed jobs, figures, generator comparison, CLI."""

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from gmv.analysis.sweep import write_sweep_report
from gmv.analysis.sweep_jobs import collect_jobs, parse_overrides, swept_parameters
from gmv.analysis.tables import format_value
from gmv.cli.report import main
from gmv.errors import GmvError


def make_job(folder, overrides, metrics=None, values=None):
    """A Hydra job folder: .hydra/overrides.yaml, and metrics.json / values.csv when given (else: failed)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / ".hydra" / "config.yaml").write_text("{}\n")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if values is not None:
        v1, v2 = values
        lines = ["index,split,label,value,n_matches"]
        lines += [f"{i},v1,0,{float(v)!r},{int(v > 0)}" for i, v in enumerate(v1)]
        lines += [f"{len(v1) + i},v2,0,{float(v)!r},{int(v > 0)}" for i, v in enumerate(v2)]
        (folder / "values.csv").write_text("\n".join(lines) + "\n")


def metrics_for(k, m, seed):
    rng = np.random.default_rng(seed)
    return {"k": k, "n_generated": 100, "n_v1": 50, "n_v2": 50,
            "mean_value_v1": float(rng.uniform(0.5, 1.0)), "mean_value_v2": float(rng.uniform(0.1, 0.5)),
            "t_statistic": float(rng.uniform(1, 10)), "p_value": float(10 ** -rng.uniform(2, 8)),
            "auroc": float(rng.uniform(0.5, 1.0)), "cohens_d": 0.8, "recall_at_k": float(rng.uniform(0.7, 1.0)),
            "matcher": f"PQ{m}x8np", "rerank": 0, "embedder": "pixels",
            "seconds_match": float(rng.uniform(0.1, 3)), "seconds_total": float(rng.uniform(5, 30))}


@pytest.fixture
def k_sweep(tmp_path):
    """valuation.k ∈ {50, 5, 10} × matcher.m ∈ {8, 16} (folders out of order), matcher=pq everywhere;
    job 6 (k=100, m=8) failed; the jobs ran with two different cache folders."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    written = {}
    settings = [(50, 8), (5, 16), (10, 8), (5, 8), (50, 16), (10, 16)]
    for i, (k, m) in enumerate(settings):
        metrics = metrics_for(k, m, seed=i)
        make_job(sweep / str(i), [f"valuation.k={k}", "matcher=pq", f"matcher.m={m}", "hydra.job.chdir=true",
                                  f"cache_dir=/tmp/cache_{i % 2}"], metrics)  # where it ran: not a setting
        written[(k, m)] = metrics
    make_job(sweep / "6", ["valuation.k=100", "matcher=pq", "matcher.m=8", "hydra.job.chdir=true"])
    return sweep, written


@pytest.fixture
def generator_sweep(tmp_path):
    """generator ∈ {biggan, stylegan2, cfg_diffusion}, nested one level deeper (SWEEP/gen/<i>), with values.csv."""
    sweep = tmp_path / "gensweep"
    rng = np.random.default_rng(0)
    for i, (name, fid) in enumerate([("biggan", 31.5), ("stylegan2", None), ("cfg_diffusion", 12.25)]):
        metrics = metrics_for(10, 8, seed=i) | {"generator": name, "generator_preset": "tiny", "fd_embedding": 40.0 + i,
                                                 "fid": fid, "train_seconds": 120.5 * (i + 1),
                                                 "train_iterations": 1000 * (i + 1)}
        v1 = np.where(rng.random(40) < 0.5, 0.0, rng.exponential(2.0, 40))
        v2 = np.where(rng.random(40) < 0.7, 0.0, rng.exponential(1.0, 40))
        make_job(sweep / "gen" / str(i), [f"generator={name}", "valuation.k=10"], metrics, (v1, v2))
    return sweep


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_override_values_are_parsed_back_to_numbers():
    assert parse_overrides(["valuation.k=5", "tau=0.5", "lr=1e-3", "matcher=pq", "+extra='7'", "~gone"]) == {
        "valuation.k": 5, "tau": 0.5, "lr": 0.001, "matcher": "pq", "extra": "7", "gone": None}
    assert isinstance(parse_overrides(["k=10"])["k"], int)


def test_swept_parameters_exclude_constant_and_hydra_keys(k_sweep):
    sweep, _ = k_sweep
    jobs = collect_jobs(sweep)
    assert len(jobs) == 7
    assert swept_parameters(jobs) == ["valuation.k", "matcher.m"]  # matcher=pq, hydra.* and cache_dir are left out
    assert [j.dir.name for j in jobs if j.failed] == ["6"]
    assert all(j.metrics == {} for j in jobs if j.failed)


def test_report_csv_holds_the_metrics_sorted_numerically(k_sweep):
    sweep, written = k_sweep
    paths = write_sweep_report(sweep)
    assert paths["report.csv"] == sweep.resolve() / "report" / "report.csv"
    rows = read_csv(paths["report.csv"])
    assert list(rows[0])[:3] == ["job", "valuation.k", "matcher.m"]
    assert list(rows[0])[-1] == "status"
    # numeric order: 5 < 10 < 50 < 100 (text order would put 10 and 100 before 5), m as a number: 8 < 16
    assert [(r["valuation.k"], r["matcher.m"]) for r in rows] == [
        ("5", "8"), ("5", "16"), ("10", "8"), ("10", "16"), ("50", "8"), ("50", "16"), ("100", "8")]
    for row in rows[:-1]:
        expected = written[(int(row["valuation.k"]), int(row["matcher.m"]))]
        assert row["status"] == "ok"
        for key in ["t_statistic", "p_value", "auroc", "mean_value_v1", "mean_value_v2", "recall_at_k",
                    "seconds_match", "seconds_total"]:
            assert float(row[key]) == expected[key], key  # full precision, no rounding
    failed = rows[-1]
    assert failed["job"] == "6" and failed["status"] == "failed" and failed["t_statistic"] == ""
    assert "fid" not in rows[0] and "train_seconds" not in rows[0]  # no generator metrics in this sweep


def test_report_md_formats_numbers_and_lists_the_failed_job(k_sweep):
    sweep, written = k_sweep
    paths = write_sweep_report(sweep, out_dir=sweep.parent / "out")
    md = paths["report.md"].read_text()
    assert paths["report.md"].parent == sweep.parent / "out"
    table = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(table) == 6  # finished jobs only
    first = written[(5, 8)]
    assert table[0].startswith("| `3` | 5 | 8 |")
    assert f"{first['p_value']:.1e}" in table[0] and f"{first['auroc']:.3f}" in table[0]
    assert "## Failed jobs" in md
    failed_line = next(line for line in md.splitlines() if line.startswith("- `6`"))
    assert "valuation.k=100" in failed_line
    assert "`matcher=pq`" in md  # constant overrides are named once, above the table
    # the sweep folder is named as a reader of report.md finds it (relative to the report), not by this machine's path
    assert f"jobs in `../{sweep.name}`:" in md and str(sweep.parent) not in md


def test_format_value():
    assert format_value(4.7e-4, "p_value") == "4.7e-04"
    assert format_value(0.0, "p_value") == "< 1e-300"
    assert format_value(12.3456, "t_statistic") == "12.35"
    assert format_value(0.91234, "auroc") == "0.912"
    assert format_value(float("nan"), "auroc") == format_value(None, "fid") == "\u2014"
    assert format_value(1234.5, "seconds_total") == "1,234"
    assert format_value(5000) == "5000"


def test_sweep_figures_are_pngs(k_sweep):
    sweep, _ = k_sweep
    paths = write_sweep_report(sweep)
    figures = sorted(name for name in paths if name.endswith(".png"))
    assert figures == ["sweep_matcher_m.png", "sweep_valuation_k.png"]  # dots sanitised
    for name in figures:
        assert paths[name].is_file()
        with Image.open(paths[name]) as img:
            assert img.format == "PNG" and img.width > 400 and img.height > 200
    assert "generators.md" not in paths and not (sweep / "report" / "generators.md").exists()
    assert "![sweep_valuation_k](sweep_valuation_k.png)" in paths["report.md"].read_text()


def test_generator_comparison_when_the_generator_varies(generator_sweep):
    paths = write_sweep_report(generator_sweep)
    assert swept_parameters(collect_jobs(generator_sweep)) == ["generator"]
    rows = read_csv(paths["report.csv"])
    assert [r["generator"] for r in rows] == ["biggan", "cfg_diffusion", "stylegan2"]
    assert [r["job"] for r in rows] == ["gen/0", "gen/2", "gen/1"]
    assert [r["fid"] for r in rows] == ["31.5", "12.25", ""]  # None → empty cell
    assert [float(r["train_seconds"]) for r in rows] == [120.5, 361.5, 241.0]
    assert [r["train_iterations"] for r in rows] == ["1000", "3000", "2000"]

    md = paths["generators.md"].read_text()
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| Generator | Average value X_v1 | Average value X_v2 | t-statistic | p-value | AUROC")
    stylegan = next(line for line in lines if line.startswith("| stylegan2 (tiny)"))
    cells = [c.strip() for c in stylegan.strip("|").split("|")]
    assert cells[6:] == ["41", "\u2014", "241", "2000"]  # FD, FID missing, training seconds, iterations
    with Image.open(paths["generators_values.png"]) as img:
        assert img.format == "PNG"
    assert paths["sweep_generator.png"].is_file()


def test_generator_comparison_from_metrics_alone(tmp_path):
    """Jobs that differ in metrics["generator"] but not in their overrides (e.g. a different trained checkpoint)."""
    sweep = tmp_path / "s"
    for i, name in enumerate(["biggan", "stylegan2"]):
        make_job(sweep / str(i), [f"valuation.checkpoint=ck{i}.pt"], metrics_for(10, 8, i) | {"generator": name})
    paths = write_sweep_report(sweep)
    assert "generators.md" in paths
    assert "generators_values.png" not in paths  # no values.csv to draw from


def test_nan_metric_shows_a_dash_and_an_unknown_metric_is_refused(k_sweep):
    sweep, _ = k_sweep
    metrics_file = sweep / "3" / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) | {"auroc": math.nan}
    metrics_file.write_text(json.dumps(metrics))  # json writes NaN, as Python's json.dump does
    paths = write_sweep_report(sweep, metrics=["auroc", "matcher"])
    rows = read_csv(paths["report.csv"])
    assert list(rows[0]) == ["job", "valuation.k", "matcher.m", "auroc", "matcher", "status"]
    assert rows[0]["matcher"] == "PQ8x8np"
    first_row = next(line for line in paths["report.md"].read_text().splitlines() if line.startswith("| `3`"))
    assert first_row == "| `3` | 5 | 8 | \u2014 | PQ8x8np |"
    with pytest.raises(GmvError, match="aurocc"):
        write_sweep_report(sweep, metrics=["aurocc"])


def test_cli_refuses_an_empty_or_missing_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "0" / ".hydra").mkdir(parents=True)  # a job that failed, and nothing else
    (empty / "0" / ".hydra" / "overrides.yaml").write_text("- valuation.k=5\n")
    assert main([str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gmv-report: error: no job folders with metrics.json") and "\n" not in err
    assert main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("gmv-report: error: sweep folder not found")
    assert not (empty / "report").exists()


def test_cli_prints_the_table(k_sweep, capsys):
    sweep, written = k_sweep
    out = sweep.parent / "cli-out"
    assert main([str(sweep), "--out", str(out), "--metrics", "t_statistic,p_value"]) == 0
    printed = capsys.readouterr().out
    assert "| job | valuation.k | matcher.m | t-statistic | p-value |" in printed
    assert f"| `3` | 5 | 8 | {written[(5, 8)]['t_statistic']:.2f} | {written[(5, 8)]['p_value']:.1e} |" in printed
    assert f"report in {out}/" in printed
    assert {p.name for p in out.iterdir()} == {"report.csv", "report.md", "sweep_valuation_k.png",
                                               "sweep_matcher_m.png"}


@pytest.fixture
def p_sweep(tmp_path):
    """valuation.k ∈ {1, 5, 10, 50, 100} with chosen p-values (k=100 has none: NaN), and a failed job k=200."""
    sweep = tmp_path / "psweep"
    for i, (k, p) in enumerate([(1, 0.03), (5, 0.001), (10, 0.004), (50, 0.2), (100, math.nan)]):
        make_job(sweep / str(i), [f"valuation.k={k}"], metrics_for(k, 8, i) | {"p_value": p})
    make_job(sweep / "5", ["valuation.k=200"])
    return sweep


def test_holm_column_follows_p_value(p_sweep):
    paths = write_sweep_report(p_sweep)
    rows = read_csv(paths["report.csv"])
    header = list(rows[0])
    assert header[header.index("p_value") + 1] == "p_value_holm"
    # 4 tests, sorted p 0.001, 0.004, 0.03, 0.2 → 4·0.001, 3·0.004, 2·0.03, 1·0.2 (already monotone)
    holm = {r["valuation.k"]: r["p_value_holm"] for r in rows}
    assert float(holm["1"]) == pytest.approx(0.06)
    assert float(holm["5"]) == pytest.approx(0.004)
    assert float(holm["10"]) == pytest.approx(0.012)
    assert float(holm["50"]) == pytest.approx(0.2)
    assert holm["100"] == "nan"  # no p-value, no test
    assert holm["200"] == ""  # failed job
    md = paths["report.md"].read_text()
    assert "| p-value | p-value (Holm) |" in md
    row = next(line for line in md.splitlines() if line.startswith("| `2` |"))
    assert "| 4.0e-03 | 1.2e-02 |" in row
    assert "Holm-adjusted over the 4 jobs with a p-value" in md
    assert "2 of 4 jobs reach p < 0.01 raw, 1 of 4 after Holm." in md


def test_holm_is_monotone_and_capped(tmp_path):
    sweep = tmp_path / "s"
    # sorted 0.01, 0.011, 0.5: 3·0.01 = 0.03, 2·0.011 = 0.022 → 0.03 (monotone), 0.5 → 0.5
    for i, p in enumerate([0.5, 0.011, 0.01]):
        make_job(sweep / str(i), [f"valuation.k={i}"], metrics_for(1, 8, i) | {"p_value": p})
    rows = read_csv(write_sweep_report(sweep, metrics=["p_value"])["report.csv"])
    assert list(rows[0]) == ["job", "valuation.k", "p_value", "p_value_holm", "status"]
    assert [float(r["p_value_holm"]) for r in rows] == pytest.approx([0.5, 0.03, 0.03])
