"""`gmv-report` over seeds: per-setting means, Student-t CIs, "k of n" seeds with p < 0.01, seed-only sweeps."""

import csv
import json
import math

import pytest
from scipy import stats

from gmv.analysis.seeds import aggregate_seeds, group_by_setting, mean_ci, seed_metrics
from gmv.analysis.sweep import write_sweep_report
from gmv.analysis.sweep_jobs import collect_jobs, swept_parameters
from gmv.cli.report import main

# Student-t quantiles in closed form (no scipy): with 2 degrees of freedom t_q = (2q−1)·√(2/(1−(2q−1)²)),
# with 1 (Cauchy) t_q = tan(π(q − ½)); for q = 0.975: 4.3027 and 12.706, as in the tables
T975_2 = 0.95 * math.sqrt(2 / (1 - 0.95**2))
T975_1 = math.tan(math.pi * 0.475)


def make_job(folder, overrides, metrics=None):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def metrics(t, p, auroc, d, **extra):
    return {"t_statistic": t, "p_value": p, "auroc": auroc, "cohens_d": d, "mean_value_v1": 1.0,
            "mean_value_v2": 0.5, "recall_at_k": 1.0, "seconds_match": 0.1, "seconds_total": 1.0} | extra


# (k, seed) → (t, p, auroc, cohens_d); k=10 seed=2 failed
SEED_K = {
    (5, 0): (2.0, 0.001, 0.6, 0.1), (5, 1): (3.0, 0.02, 0.7, 0.2), (5, 2): (4.0, 0.005, 0.8, 0.6),
    (10, 0): (1.0, 0.3, 0.55, 0.5), (10, 1): (2.0, 0.008, 0.65, 0.5),
}


@pytest.fixture
def seed_sweep(tmp_path):
    """seed ∈ {0, 1, 2} × valuation.k ∈ {10, 5} (Hydra's order: seed varies slowest); job (k=10, seed=2) failed."""
    sweep = tmp_path / "seedsweep"
    i = 0
    for seed in (0, 1, 2):
        for k in (10, 5):
            values = SEED_K.get((k, seed))
            make_job(sweep / str(i), [f"seed={seed}", f"valuation.k={k}", "matcher=pq"],
                     None if values is None else metrics(*values, tpr_at_1fpr=0.01 * (i + 1)))
            i += 1
    return sweep


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_mean_ci_is_the_student_t_interval():
    mean, low, high, n = mean_ci([2.0, 3.0, 4.0])  # mean 3, s = 1
    assert (mean, n) == (3.0, 3)
    half = T975_2 * 1.0 / math.sqrt(3)
    assert low == pytest.approx(3.0 - half, rel=1e-12) and high == pytest.approx(3.0 + half, rel=1e-12)
    assert (low, high) == pytest.approx(stats.t.interval(0.95, 2, loc=3.0, scale=1.0 / math.sqrt(3)), rel=1e-12)
    one = mean_ci([7.5])
    assert one[0] == 7.5 and math.isnan(one[1]) and math.isnan(one[2]) and one[3] == 1
    assert mean_ci([None, float("nan"), 2.0, 4.0])[3] == 2  # missing and NaN values do not count
    assert math.isnan(mean_ci([])[0])


def test_jobs_are_grouped_by_the_other_swept_parameters(seed_sweep):
    jobs = collect_jobs(seed_sweep)
    params = swept_parameters(jobs)
    assert params == ["seed", "valuation.k"]
    groups = group_by_setting(jobs, params)
    assert [setting for setting, _ in groups] == [{"valuation.k": 5}, {"valuation.k": 10}]
    assert [[j.overrides["seed"] for j in members] for _, members in groups] == [[0, 1, 2], [0, 1, 2]]
    assert seed_metrics(jobs) == ["t_statistic", "auroc", "cohens_d", "p_value", "tpr_at_1fpr"]


def test_aggregates_match_hand_computed_means_and_intervals(seed_sweep):
    jobs = collect_jobs(seed_sweep)
    k5, k10 = aggregate_seeds(jobs, swept_parameters(jobs))
    assert (k5.n_seeds, k5.n_failed, k5.seeds) == (3, 0, [0, 1, 2])
    assert (k10.n_seeds, k10.n_failed, k10.seeds) == (2, 1, [0, 1])

    # k=5, t = 2, 3, 4: mean 3, s = 1 → 3 ± 4.3027/√3
    mean, low, high, _ = k5.stats["t_statistic"]
    assert mean == pytest.approx(3.0)
    assert low == pytest.approx(3.0 - T975_2 / math.sqrt(3)) and high == pytest.approx(3.0 + T975_2 / math.sqrt(3))
    # k=5, AUROC 0.6, 0.7, 0.8: mean 0.7, s = 0.1
    assert k5.stats["auroc"][1:3] == pytest.approx((0.7 - T975_2 * 0.1 / math.sqrt(3),
                                                    0.7 + T975_2 * 0.1 / math.sqrt(3)))
    # k=5, d = 0.1, 0.2, 0.6: mean 0.3, s = √((0.04 + 0.01 + 0.09)/2) = √0.07
    assert k5.stats["cohens_d"][0] == pytest.approx(0.3)
    assert k5.stats["cohens_d"][2] - 0.3 == pytest.approx(T975_2 * math.sqrt(0.07 / 3))
    # k=5, p = 0.001, 0.02, 0.005: mean 0.026/3; 2 of 3 below 0.01; max 0.02
    assert k5.stats["p_value"][0] == pytest.approx(0.026 / 3)
    assert (k5.p_below_text(), k5.p_max) == ("2 of 3", 0.02)
    # k=10: two seeds (the third failed), t = 1, 2: mean 1.5, s = 1/√2 → 1.5 ± 12.706·0.5
    assert k10.stats["t_statistic"][:3] == pytest.approx((1.5, 1.5 - T975_1 * 0.5, 1.5 + T975_1 * 0.5))
    assert (k10.p_below_text(), k10.p_max) == ("1 of 2", 0.3)
    # constant Cohen's d over seeds: a zero-width interval
    assert k10.stats["cohens_d"][:3] == pytest.approx((0.5, 0.5, 0.5))
    # tpr_at_1fpr, reported by the jobs, is aggregated too: jobs 1, 3, 5 are k=5 → 0.02, 0.04, 0.06
    assert k5.stats["tpr_at_1fpr"][0] == pytest.approx(0.04)


def test_report_writes_seeds_csv_and_md_and_embeds_the_table(seed_sweep):
    paths = write_sweep_report(seed_sweep)
    assert {"seeds.csv", "seeds.md"} <= set(paths)
    rows = read_csv(paths["seeds.csv"])
    assert list(rows[0])[:4] == ["valuation.k", "n_seeds", "seeds", "n_failed"]
    assert [r["valuation.k"] for r in rows] == ["5", "10"]
    k5, k10 = rows
    assert (k5["n_seeds"], k5["seeds"], k5["n_failed"]) == ("3", "0,1,2", "0")
    assert (k10["n_seeds"], k10["n_failed"]) == ("2", "1")
    assert float(k5["t_statistic_mean"]) == pytest.approx(3.0)
    assert float(k5["t_statistic_ci_low"]) == pytest.approx(3.0 - T975_2 / math.sqrt(3))
    assert float(k5["t_statistic_ci_high"]) == pytest.approx(3.0 + T975_2 / math.sqrt(3))
    assert {"auroc_mean", "cohens_d_ci_high", "p_value_ci_low", "tpr_at_1fpr_mean"} <= set(k5)
    assert "mean_value_v1_mean" not in k5  # only the headline metrics by default
    assert (k5["seeds_p_below_0.01"], float(k5["p_value_max"])) == ("2 of 3", 0.02)
    assert (k10["seeds_p_below_0.01"], float(k10["p_value_max"])) == ("1 of 2", 0.3)

    seeds_md = paths["seeds.md"].read_text()
    report_md = paths["report.md"].read_text()
    assert "## Across seeds" in report_md
    table = [line for line in seeds_md.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| valuation.k | seeds | t-statistic mean [95% CI] | AUROC mean [95% CI] | Cohen's d mean [95% CI] |")
    assert table[0].endswith("| max p-value | p < 0.01 |")
    low, high = 3.0 - T975_2 / math.sqrt(3), 3.0 + T975_2 / math.sqrt(3)
    assert table[1].startswith(f"| 5 | 3 | 3.00 [{low:.2f}, {high:.2f}] |")
    assert table[1].endswith("| 2.0e-02 | 2 of 3 |")
    assert table[2].startswith("| 10 | 2 (+1 failed) | 1.50 [")
    for line in table:
        assert line in report_md  # report.md holds the same table


def test_a_single_seed_has_no_interval(tmp_path):
    sweep = tmp_path / "s"
    make_job(sweep / "0", ["seed=0", "valuation.k=5"], metrics(2.0, 0.001, 0.6, 0.1))
    make_job(sweep / "1", ["seed=1", "valuation.k=10"], metrics(3.0, 0.02, 0.7, 0.2))
    paths = write_sweep_report(sweep)
    rows = read_csv(paths["seeds.csv"])
    assert [r["n_seeds"] for r in rows] == ["1", "1"]
    assert rows[0]["t_statistic_mean"] == "2.0" and rows[0]["t_statistic_ci_low"] == "nan"
    assert rows[0]["seeds_p_below_0.01"] == "1 of 1"
    line = next(x for x in paths["seeds.md"].read_text().splitlines() if x.startswith("| 5 |"))
    assert "| 2.00 [\u2014] |" in line


def test_a_seed_only_sweep_is_one_setting(tmp_path, capsys):
    sweep = tmp_path / "seedonly"
    ts, ps = [1.0, 2.5, 4.0], [0.2, 0.004, 0.0001]
    for seed in range(3):
        make_job(sweep / str(seed), [f"seed={seed}", "valuation.k=10"], metrics(ts[seed], ps[seed], 0.6, 0.3))
    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    assert "## Across seeds" in printed
    rows = read_csv(sweep / "report" / "seeds.csv")
    assert len(rows) == 1
    row = rows[0]
    assert list(row)[:3] == ["n_seeds", "seeds", "n_failed"]  # no other swept parameter
    s = math.sqrt(((1.0 - 2.5) ** 2 + 0 + (4.0 - 2.5) ** 2) / 2)  # = 1.5
    assert float(row["t_statistic_mean"]) == pytest.approx(2.5)
    assert float(row["t_statistic_ci_low"]) == pytest.approx(2.5 - T975_2 * s / math.sqrt(3))
    assert float(row["t_statistic_ci_high"]) == pytest.approx(2.5 + T975_2 * s / math.sqrt(3))
    assert row["seeds_p_below_0.01"] == "2 of 3" and float(row["p_value_max"]) == 0.2
    assert float(row["auroc_ci_low"]) == pytest.approx(0.6)  # constant: zero width


def test_no_seeds_table_without_a_seed_sweep(tmp_path):
    sweep = tmp_path / "k"
    for i, k in enumerate([5, 10]):
        make_job(sweep / str(i), ["seed=0", f"valuation.k={k}"], metrics(2.0, 0.01, 0.6, 0.1))
    paths = write_sweep_report(sweep)
    assert "seeds.csv" not in paths and not (sweep / "report" / "seeds.csv").exists()
    assert "Across seeds" not in paths["report.md"].read_text()


def test_chosen_numeric_metrics_are_aggregated_too(seed_sweep):
    paths = write_sweep_report(seed_sweep, metrics=["t_statistic", "mean_value_v1"])
    row = read_csv(paths["seeds.csv"])[0]
    assert float(row["mean_value_v1_mean"]) == 1.0 and float(row["mean_value_v1_ci_high"]) == 1.0
    assert "p_value_mean" in row  # the headline metrics stay
