"""The counterfactual report of retrains without some X_v1 images (``gmv-report SWEEP --base RUN[,RUN…]``).

Each job retrained the base study (same data, split and seed) on X_v1 without the images `data.subset` chose —
the top / bottom r of a method's ranking (`column` of the base values.csv; value = the main method), a random r,
or the top r of one generated image's attributions (`target`) — and drew X̂' with the base X̂'s labels and noise,
so x̂_j and x̂'_j are paired. Every job is read in the base run's embedding (gmv/analysis/counterfactual.py):

    shift            per target ‖e(x̂_j) − e(x̂'_j)‖; its mean over all targets
    vs random        the per-target shift minus that of the random removal of the same r on the same seed: does
                     removing what a method ranks highest move the outputs more than removing as many at random?
                     Pooled over seeds: mean difference with a 95% bootstrap CI (scipy.stats.bootstrap), one-sided
                     p (Wilcoxon signed-rank, greater), Holm-adjusted over every (method, rule, r); Cohen's d_z
                     (mean paired difference over its standard deviation) as the standardised effect
    affected         targets whose top-1 attributed image (by the removal's own method; random: the main method)
                     was removed against the rest: AUROC of their shifts and the difference's CI per retrain;
                     pooled over seeds on each retrain's within-retrain shift percentiles, AUROC with a bootstrap CI
    removed images   per removed image the distance to its nearest generated image, in X̂ and in X̂', and how many
                     have a near-copy (closer than the 5% quantile of X̂'s distances to held-out images)
    per target       (`target` jobs) the target's shift as a percentile of all targets' shifts in that retrain
                     (0.5 = moved like any other): mean percentile with a CI, per method

    counterfactual.md             one row per (method, rule, r) pooled over seeds, then the per-target rows
    counterfactual.csv            one row per retrain
    counterfactual_methods.csv    the pooled rows; counterfactual_targets.csv the per-target rows (where run)
    counterfactual_shifts.npz     every retrain's per-target shifts and affected flags: with counterfactual.csv, what
                                  the pooled tables are computed from (read_shifts rebuilds them without the samples)
    counterfactual.png            mean shift against r per method (top solid, bottom dashed, random black)
    contribution.*                with `lds` (the LDS report's folder): each method's LDS and removal effects beside
                                  its cost, one table and one figure (gmv/analysis/contribution.py)

Each retrain's reading is kept in its folder (counterfactual_job.npz, gmv/analysis/counterfactual_read.py), so a
retrain kept without its samples — committed, or finished in an earlier session — is still read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gmv.errors import GmvError


def pooled_affected(shifts: list[np.ndarray], affected: list[np.ndarray]) -> dict[str, float]:
    """Affected against unaffected targets pooled over retrains: each retrain's shifts as percentiles within it
    (so that a retrain that moved everything more does not pass for an effect), then removal_effect's AUROC with
    its bootstrap CI and one-sided p."""
    from scipy.stats import rankdata

    from gmv.analysis.counterfactual import removal_effect

    pct = [rankdata(s[:len(a)]) / len(a) for s, a in zip(shifts, affected)]
    effect = removal_effect(np.concatenate(pct), np.concatenate(affected))
    return {"affected_auroc": effect.get("auroc", float("nan")),
            "affected_auroc_ci_low": effect.get("auroc_ci_low", float("nan")),
            "affected_auroc_ci_high": effect.get("auroc_ci_high", float("nan")),
            "affected_p": effect.get("p_value", float("nan")), "affected_n": effect["n_affected"]}


def pooled_rows(rows: list[dict], shifts: list[np.ndarray], affected: list[np.ndarray | None] | None = None
                ) -> list[dict]:
    """One row per (method, rule, r) of the ranking removals, pooled over seeds, against random at the same r;
    with `affected` (job_row's third output per row), the pooled affected-target AUROC (pooled_affected)."""
    from scipy.stats import wilcoxon

    from gmv.analysis.multiplicity import holm
    from gmv.analysis.ra2 import bootstrap_mean_ci

    random_shift = {(r["seed"], r["r"]): s for r, s in zip(rows, shifts) if r["rule"] == "random"}
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        if r["target"] is None:
            groups.setdefault((r["method"], r["rule"], r["r"]), []).append(i)
    out = []
    for (method, rule, r), idx in sorted(groups.items(), key=lambda kv: (kv[0][0] == "random", kv[0])):
        row = {"method": method, "rule": rule, "r": r, "seeds": len(idx),
               "shift_mean": float(np.mean([rows[i]["shift_mean"] for i in idx])),
               "near_copies_before": int(sum(rows[i]["near_copies_before"] for i in idx)),
               "near_copies_after": int(sum(rows[i]["near_copies_after"] for i in idx)),
               "removed_nn_before": float(np.mean([rows[i]["removed_nn_before"] for i in idx])),
               "removed_nn_after": float(np.mean([rows[i]["removed_nn_after"] for i in idx]))}
        judged = [i for i in idx if affected is not None and affected[i] is not None]
        if judged:
            row.update(pooled_affected([shifts[i] for i in judged], [affected[i] for i in judged]))
        paired = [shifts[i] - random_shift[(rows[i]["seed"], r)] for i in idx
                  if rule != "random" and (rows[i]["seed"], r) in random_shift]
        if paired:
            d = np.concatenate(paired)
            mean, lo, hi = bootstrap_mean_ci(d)
            p = float(wilcoxon(d, alternative="greater").pvalue) if np.any(d != 0) else 1.0
            sd = float(np.std(d, ddof=1)) if len(d) > 1 else 0.0
            row.update({"vs_random_diff": mean, "vs_random_ci_low": lo, "vs_random_ci_high": hi, "vs_random_p": p,
                        "vs_random_dz": mean / sd if sd > 0 else float("nan")})
        out.append(row)
    tested = [i for i, r in enumerate(out) if "vs_random_p" in r]
    for i, q in zip(tested, holm([out[i]["vs_random_p"] for i in tested]) if tested else []):
        out[i]["vs_random_p_holm"] = float(q)
    return out


def target_rows(rows: list[dict]) -> list[dict]:
    """Per method, the per-target removals: the removed-for target's shift percentile, mean with a CI."""
    from gmv.analysis.ra2 import bootstrap_mean_ci

    by: dict[tuple, list[float]] = {}
    for r in rows:
        if r["target"] is not None:
            by.setdefault((r["method"], r["r"]), []).append(r["target_percentile"])
    out = []
    for (method, r), pct in sorted(by.items()):
        mean, lo, hi = bootstrap_mean_ci(np.array(pct))
        out.append({"method": method, "r": r, "targets": len(pct), "percentile_mean": mean, "percentile_ci_low": lo,
                    "percentile_ci_high": hi, "share_top_decile": float(np.mean(np.array(pct) >= 0.9))})
    return out


def save_shifts(path: Path, rows: list[dict], shifts: list[np.ndarray], affected: list[np.ndarray | None]) -> Path:
    """counterfactual_shifts.npz: job (one name per retrain, counterfactual.csv's order), shift (retrains × m) and
    affected (retrains × m: 1 / 0, −1 where the retrain's judge attributed no such target)."""
    from gmv.io import save_npz

    hit = np.full((len(shifts), len(shifts[0])), -1, np.int8)
    for i, a in enumerate(affected):
        if a is not None:
            hit[i, :len(a)] = a
    return save_npz(path, job=np.array([r["job"] for r in rows]), shift=np.stack(shifts), affected=hit)


def read_shifts(report: str | Path) -> tuple[list[dict], list[np.ndarray], list[np.ndarray | None]]:
    """A written report's retrains back as job_row's (rows, shifts, affected), from its counterfactual.csv and
    counterfactual_shifts.npz: pooled_rows and target_rows of them rebuild the report's tables without the samples."""
    import csv

    report = Path(report)
    with open(report / "counterfactual.csv") as f:
        rows = list(csv.DictReader(f))
    with np.load(report / "counterfactual_shifts.npz") as saved:
        jobs, shifts, hit = saved["job"].tolist(), list(saved["shift"]), saved["affected"]
    if [r["job"] for r in rows] != jobs:
        raise GmvError(f"{report}: counterfactual.csv and counterfactual_shifts.npz list other retrains; "
                       "rewrite the report (gmv-report SWEEP --base …)")
    rows = [{**{k: _cell(k, v) for k, v in r.items() if v != "" and k != "target"},
             "target": None if r["target"] == "" else int(r["target"])} for r in rows]
    affected = [a[a >= 0].astype(bool) if (a >= 0).any() else None for a in hit]
    return rows, shifts, affected


def _cell(key: str, text: str) -> Any:
    """counterfactual.csv's cell back as job_row wrote it: counts as int, numbers as float, the rest as text."""
    if key in ("seed", "r", "n_removed", "near_copies_before", "near_copies_after"):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _f(x: Any, fmt: str = ".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, fmt)


def write_counterfactual_report(jobs: list, bases: list[str | Path], out: Path,
                                lds: str | Path | None = None) -> dict[str, Path]:
    from gmv.analysis.counterfactual_read import load_base, read_job, removal_of
    from gmv.io import write_csv, write_text

    by_seed: dict = {}
    for b in bases:
        base = load_base(b)
        by_seed[base.seed] = base
    rows, shifts, affected = [], [], []
    for job in jobs:
        removal = removal_of(job)
        if removal["seed"] not in by_seed:
            raise GmvError(f"{job.dir}: seed {removal['seed']} has no base run among --base ({sorted(by_seed)}); give "
                           "one base run per seed, comma-separated")
        row, shift, hit = read_job(job, by_seed[removal["seed"]], removal)
        rows.append(row)
        shifts.append(shift)
        affected.append(hit)
    if not rows:
        raise GmvError("no finished retrain to read")
    pooled, targets = pooled_rows(rows, shifts, affected), target_rows(rows)
    costs = _mean_costs([b.dir for b in by_seed.values()])
    out.mkdir(parents=True, exist_ok=True)
    cols = sorted(dict.fromkeys(k for r in rows for k in r),  # first seen first: the same order on every run
                  key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
    write_csv(out / "counterfactual.csv", cols, [[r.get(c, "") for c in cols] for r in rows])
    written = {"counterfactual.md": out / "counterfactual.md", "counterfactual.csv": out / "counterfactual.csv"}
    for name, table in (("counterfactual_methods.csv", pooled), ("counterfactual_targets.csv", targets)):
        if table:
            keys = list(dict.fromkeys(k for t in table for k in t))
            written[name] = write_csv(out / name, keys, [[t.get(k, "") for k in keys] for t in table])
    written["counterfactual_shifts.npz"] = save_shifts(out / "counterfactual_shifts.npz", rows, shifts, affected)
    write_text(out / "counterfactual.md", _markdown(by_seed, len(rows), pooled, targets, costs, out))
    if pooled:
        written["counterfactual.png"] = _figure(pooled, out / "counterfactual.png")
    if lds is not None:
        from gmv.analysis.contribution import write_contribution

        written.update(write_contribution(lds, pooled, targets, costs, out))
    return written


def _markdown(by_seed: dict, n_rows: int, pooled: list[dict], targets: list[dict],
              costs: dict[str, dict[str, float]], out: Path) -> str:
    """counterfactual.md: the pooled table, then the per-target one (the bases named relative to it, as its reader
    finds them)."""
    import os

    from gmv.analysis.method_cost import cost_cells
    from gmv.analysis.tables import ci_cell, markdown_table

    lines = ["# Counterfactual removal", "",
             f"Bases: {', '.join(f'seed {s}: `{os.path.relpath(b.dir, out)}`' for s, b in sorted(by_seed.items()))}; "
             f"{n_rows} retrains. "
             "Shift = distance between x̂_j and its paired x̂'_j in the base embedding; vs random = per-target shift "
             "minus that of the random removal of the same r and seed (pooled over seeds, bootstrap CI, Cohen's d_z, "
             "one-sided Wilcoxon p, Holm over rows); near-copies of the removed images in X̂ → X̂'.", ""]
    lines.append(markdown_table(
        ["method", "rule", "r", "seeds", "mean shift", "vs random [95% CI]", "d_z", "p (Holm)", "affected AUROC [95% CI]",
         "removed NN X̂ → X̂'", "near-copies X̂ → X̂'", "scores' seconds (own + shared)"],
        [[p["method"], p["rule"], str(p["r"]), str(p["seeds"]), _f(p["shift_mean"]),
          ci_cell(p, "vs_random_diff", "vs_random_ci_low", "vs_random_ci_high"), _f(p.get("vs_random_dz"), ".2f"),
          f"{_f(p.get('vs_random_p'), '.2g')} ({_f(p.get('vs_random_p_holm'), '.2g')})", ci_cell(p, "affected_auroc"),
          f"{_f(p['removed_nn_before'])} → {_f(p['removed_nn_after'])}",
          f"{p['near_copies_before']} → {p['near_copies_after']}", cost_cells(costs, p["method"])[0]]
         for p in pooled],
        [False, False, True, True, True, True, True, True, True, True, True, True]))
    if targets:
        lines += ["", "## Per target (remove the top r images attributed to one generated image)", "",
                  markdown_table(["method", "r", "targets", "target's shift percentile [95% CI]", "in top 10%"],
                                 [[t["method"], str(t["r"]), str(t["targets"]),
                                   ci_cell(t, "percentile_mean", "percentile_ci_low", "percentile_ci_high"),
                                   _f(t["share_top_decile"], ".2f")]
                                  for t in targets], [False, True, True, True, True])]
    return "\n".join(lines)


def _mean_costs(runs: list[Path]) -> dict[str, dict[str, float]]:
    """Each method's cost averaged over the base runs that measured it."""
    from gmv.analysis.method_cost import method_costs

    per_run = [method_costs(r) for r in runs]
    names = {n for c in per_run for n in c}
    return {n: {k: float(np.mean([c[n][k] for c in per_run if n in c and k in c[n]]))
                for k in {k for c in per_run if n in c for k in c[n]}} for n in names}


def _figure(pooled: list[dict], path: Path) -> Path:
    import matplotlib.pyplot as plt

    from gmv.io import save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in sorted({p["method"] for p in pooled}):
        for rule, style in (("top", "-o"), ("bottom", "--s"), ("random", "-k^")):
            pts = sorted((p["r"], p["shift_mean"]) for p in pooled if p["method"] == method and p["rule"] == rule)
            if pts:
                ax.plot(*zip(*pts), style, label=f"{method} {rule}" if rule != "random" else "random")
    ax.set_xlabel("images removed from X_v1 (r)")
    ax.set_ylabel("mean shift ‖e(x̂) − e(x̂')‖")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)
    return path
