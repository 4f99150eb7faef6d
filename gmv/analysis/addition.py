"""The data-addition report: what value the images added to X_v1 got (gmv/data/edit.py), per kind.

Read from a multirun's jobs (``gmv-report`` writes it when some job added images): each job's values.csv
(column ``added``), metrics.json, split.npz, samples.npz and match_tables.npz. Per job and kind:

    added vs clean X_v1   mean values, one-sided Welch t (added > clean), AUROC of "added" vs "clean" read as a
                          detector of that kind (95% bootstrap CI), Cohen's d
    added vs X_v2         AUROC and one-sided p (added > X_v2)
    the generator         FD / floor (X̂'s FD to X_v1 over X_v2's) and RA2 on the clean part (clean X_v1 vs X_v2)
    sources               duplicate / near_copy: mean value of the X_v1 images that were copied
    mislabel              share of the added images' credit from samples of their false (given) class, of
                          their true class, and of other classes

Pooled over seeds per kind, the hypothesis each job's config states (``addition_hypotheses``: above | below |
equal, relative to clean X_v1) is checked: above / below — the one-sided p in that direction, Holm-adjusted
over the kinds, below 0.05 and the AUROC's CI on that side of 0.5 (held), the CI on the other side
(contradicted), else not shown; equal — the AUROC's CI contains 0.5 (held: no difference detected, which is
not proof of none), else contradicted.

    addition.csv / addition.md     one row per kind pooled over seeds (+ the reference runs), then per job
    addition_values.png            value distributions per kind beside clean X_v1 and X_v2
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from gmv.analysis.membership import membership_summary
from gmv.analysis.multiplicity import holm
from gmv.analysis.ra2 import welch_one_sided
from gmv.analysis.tables import markdown_table
from gmv.io import save_figure, write_csv, write_text

DIRECTIONS = ("above", "below", "equal")
ALPHA = 0.05


def _read_values(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = {"split": np.array([r["split"] for r in rows]), "value": np.array([float(r["value"]) for r in rows]),
           "added": np.array([r.get("added", "") for r in rows]),
           "added_index": np.array([int(r.get("added_index") or -1) for r in rows])}
    return out


def _hypotheses(job_dir: Path) -> dict[str, str]:
    import yaml

    cfg = yaml.safe_load((job_dir / "config.yaml").read_text()) if (job_dir / "config.yaml").is_file() else {}
    return {k: str(v) for k, v in ((cfg or {}).get("addition_hypotheses") or {}).items()}


def _fd_ratio(metrics: dict) -> float:
    fd, floor = metrics.get("fd_embedding"), metrics.get("fd_embedding_v2_vs_v1")
    return float(fd / floor) if fd is not None and floor else float("nan")


def _mislabel_credit(job_dir: Path, rows: np.ndarray) -> dict[str, float]:
    """Share of the credit of pool `rows` (mislabelled added images) from samples of their given (false)
    class, of their true class, and of other classes."""
    split = np.load(job_dir / "split.npz")
    tables = np.load(job_dir / "match_tables.npz")
    gen_labels = np.load(job_dir / "samples.npz")["labels"]
    n_v1 = len(split["v1"])
    given = dict(zip(range(n_v1, n_v1 + len(split["added_label"])), split["added_label"]))
    true = dict(zip(range(n_v1, n_v1 + len(split["added_true_label"])), split["added_true_label"]))
    idx, credit = tables["indices"], tables["credit"].astype(np.float64)
    shares = {"false_class": 0.0, "true_class": 0.0, "other_class": 0.0}
    for r in rows:
        hit = idx == r
        labels = np.broadcast_to(gen_labels[:, None], idx.shape)[hit]
        c = credit[hit]
        shares["false_class"] += c[labels == given[r]].sum()
        shares["true_class"] += c[labels == true[r]].sum()
        shares["other_class"] += c[(labels != given[r]) & (labels != true[r])].sum()
    total = sum(shares.values())
    return {f"credit_share_{k}": (v / total if total else float("nan")) for k, v in shares.items()}


def job_rows(job) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """([one row per added kind], the job's facts: seed, clean X_v1, X_v2 and each kind's added values, generator)."""
    v = _read_values(job.dir / "values.csv")
    is_v1, is_v2 = v["split"] == "v1", v["split"] == "v2"
    clean = is_v1 & (v["added"] == "")
    seed = job.overrides.get("seed", job.metrics.get("seed"))
    ra2 = membership_summary(v["value"][clean], v["value"][is_v2], n_boot=1000, seed=0)
    facts = {"job": job.dir.name, "seed": seed, "clean_v1": v["value"][clean], "v2": v["value"][is_v2], "added": {},
             "fd_ratio": _fd_ratio(job.metrics), "clean_ra2_auroc": ra2["auroc"], "clean_ra2_p": ra2["p_value"],
             "c1_at_5": job.metrics.get("c1_at_5", float("nan")), "hypotheses": _hypotheses(job.dir)}
    split = np.load(job.dir / "split.npz") if (job.dir / "split.npz").is_file() else None
    rows = []
    for kind in [k for k in dict.fromkeys(v["added"]) if k]:
        added = is_v1 & (v["added"] == kind)
        a = facts["added"][kind] = v["value"][added]
        vs_clean = membership_summary(a, v["value"][clean], n_boot=1000, seed=0)
        vs_v2 = membership_summary(a, v["value"][is_v2], n_boot=1000, seed=0)
        row = {"job": job.dir.name, "kind": kind, "seed": seed, "n_added": int(added.sum()),
               "mean_added": vs_clean["mean_value_v1"], "mean_clean_v1": vs_clean["mean_value_v2"],
               "mean_v2": vs_v2["mean_value_v2"],
               "t_vs_clean": vs_clean["t_statistic"], "p_above_clean": vs_clean["p_value"],
               "p_below_clean": welch_one_sided(v["value"][clean], a)[1],
               "auroc_vs_clean": vs_clean["auroc"], "auroc_vs_clean_ci_low": vs_clean["auroc_ci_low"],
               "auroc_vs_clean_ci_high": vs_clean["auroc_ci_high"], "cohens_d_vs_clean": vs_clean["cohens_d"],
               "auroc_vs_v2": vs_v2["auroc"], "p_above_v2": vs_v2["p_value"],
               "fd_ratio": facts["fd_ratio"], "clean_ra2_auroc": ra2["auroc"], "clean_ra2_p": ra2["p_value"],
               "c1_at_5": facts["c1_at_5"], "share_valued": float((a > 0).mean())}
        if kind in ("duplicate", "near_copy") and split is not None:
            sources = np.isin(split["v1"], v["added_index"][added])  # X_v1 rows (pool order) that were copied
            row["mean_sources"] = float(v["value"][:len(split["v1"])][sources].mean())
        if kind == "mislabel" and split is not None:
            row.update(_mislabel_credit(job.dir, np.flatnonzero(added)))
        rows.append(row)
    return rows, facts


def pooled_rows(per_job: list[dict], values: dict[str, tuple[list, list]], hypotheses: dict[str, str]) -> list[dict]:
    """Per kind over seeds: pooled statistics, the hypothesis, its Holm-adjusted p and whether it held."""
    out = []
    for kind, (added, clean) in values.items():
        a, c = np.concatenate(added), np.concatenate(clean)
        s = membership_summary(a, c, n_boot=2000, seed=0)
        jobs = [r for r in per_job if r["kind"] == kind]
        direction = hypotheses.get(kind, "equal")
        p_above, p_below = s["p_value"], welch_one_sided(c, a)[1]
        p = {"above": p_above, "below": p_below}.get(direction, min(1.0, 2 * min(p_above, p_below)))
        row = {"kind": kind, "seeds": len(jobs), "n_added": int(len(a)), "mean_added": float(a.mean()),
               "mean_clean_v1": float(c.mean()), "auroc_vs_clean": s["auroc"],
               "auroc_vs_clean_ci_low": s["auroc_ci_low"], "auroc_vs_clean_ci_high": s["auroc_ci_high"],
               "cohens_d_vs_clean": s["cohens_d"], "p_above_clean": p_above, "p_below_clean": p_below,
               "hypothesis": direction, "p_hypothesis": p,
               "auroc_vs_v2_mean": float(np.mean([r["auroc_vs_v2"] for r in jobs])),
               "fd_ratio_mean": float(np.mean([r["fd_ratio"] for r in jobs])),
               "clean_ra2_auroc_mean": float(np.mean([r["clean_ra2_auroc"] for r in jobs]))}
        for key in ("mean_sources", "credit_share_false_class", "credit_share_true_class", "credit_share_other_class"):
            if any(key in r for r in jobs):
                row[key] = float(np.mean([r[key] for r in jobs if key in r]))
        out.append(row)
    if out:
        for row, adj in zip(out, holm([r["p_hypothesis"] for r in out])):
            row["p_hypothesis_holm"] = float(adj)
            row["held"] = _held(row)
    return out


def _held(row: dict) -> str:
    """held | not shown (the CI spans 0.5 or p ≥ 0.05) | contradicted (the CI lies on the other side of 0.5)."""
    lo, hi, p = row["auroc_vs_clean_ci_low"], row["auroc_vs_clean_ci_high"], row["p_hypothesis_holm"]
    if row["hypothesis"] == "above":
        return "held" if p < ALPHA and lo > 0.5 else ("contradicted" if hi < 0.5 else "not shown")
    if row["hypothesis"] == "below":
        return "held" if p < ALPHA and hi < 0.5 else ("contradicted" if lo > 0.5 else "not shown")
    return "held (no difference detected)" if lo <= 0.5 <= hi else "contradicted"


POOLED_COLUMNS = [("kind", "kind"), ("seeds", "seeds"), ("n_added", "n added"), ("mean_added", "mean φ added"),
                  ("mean_clean_v1", "mean φ clean X_v1"), ("auroc_vs_clean", "AUROC added vs clean [95% CI]"),
                  ("cohens_d_vs_clean", "Cohen's d"), ("hypothesis", "hypothesis"),
                  ("p_hypothesis_holm", "p (Holm)"), ("held", "held?"), ("auroc_vs_v2_mean", "AUROC added vs X_v2"),
                  ("fd_ratio_mean", "FD / floor"), ("clean_ra2_auroc_mean", "RA2 AUROC clean X_v1 vs X_v2")]


def _cell(row: dict, key: str) -> str:
    v = row.get(key)
    if key == "auroc_vs_clean":
        return f"{v:.3f} [{row['auroc_vs_clean_ci_low']:.3f}, {row['auroc_vs_clean_ci_high']:.3f}]"
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if key.startswith("p_") else f"{v:.3f}"
    return str(v)


def write_addition_report(jobs: list, out: Path) -> dict[str, Path]:
    """addition.csv, addition.md and addition_values.png for the finished `jobs` (module docstring)."""
    per_job, references, hypotheses = [], [], {}
    values: dict[str, tuple[list, list]] = {}
    for job in jobs:
        rows, facts = job_rows(job)
        hypotheses.update(facts["hypotheses"])
        if not rows:
            references.append(facts)
        per_job += rows
        for kind, added in facts["added"].items():  # each kind's added and clean values, read once by job_rows
            values.setdefault(kind, ([], []))
            values[kind][0].append(added)
            values[kind][1].append(facts["clean_v1"])
    pooled = pooled_rows(per_job, values, hypotheses)
    ref_line = ""
    if references:
        ref_line = (f"Reference runs without additions ({len(references)}: seeds "
                    f"{', '.join(str(f['seed']) for f in references)}): FD / floor "
                    f"{np.mean([f['fd_ratio'] for f in references]):.3f}, RA2 AUROC X_v1 vs X_v2 "
                    f"{np.mean([f['clean_ra2_auroc'] for f in references]):.3f} "
                    f"(per seed {', '.join(format(f['clean_ra2_auroc'], '.3f') for f in references)}), "
                    f"C1 top-5 {np.mean([f['c1_at_5'] for f in references]):.3f}.")
    keys = [k for k, _ in POOLED_COLUMNS]
    extra = [k for k in ("mean_sources", "credit_share_false_class", "credit_share_true_class",
                         "credit_share_other_class") if any(k in r for r in pooled)]
    csv_keys = keys + ["auroc_vs_clean_ci_low", "auroc_vs_clean_ci_high", "p_above_clean", "p_below_clean",
                       "p_hypothesis"] + extra
    job_keys = list(dict.fromkeys(k for r in per_job for k in r))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "addition.csv", ["level", *dict.fromkeys(csv_keys + job_keys)],
              [["pooled", *[r.get(k, "") for k in dict.fromkeys(csv_keys + job_keys)]] for r in pooled]
              + [["job", *[r.get(k, "") for k in dict.fromkeys(csv_keys + job_keys)]] for r in per_job])
    md = ["# Data addition: the value of images added to X_v1, per kind", "",
          "Pooled over seeds; AUROC of the added images against the clean X_v1 images of the same runs (0.5: valued "
          "alike; > 0.5: above); p: one-sided Welch in the hypothesis' direction (two-sided for `equal`), "
          f"Holm-adjusted over the {len(pooled)} kinds. FD / floor and RA2 on the clean part are means over the "
          "kind's runs.", "", markdown_table([h for _, h in POOLED_COLUMNS], [[_cell(r, k) for k in keys] for r in pooled],
                                              [False] + [True] * 6 + [False, True, False] + [True] * 3)]
    if ref_line:
        md += [ref_line, ""]
    if extra:
        md += ["Further: " + "; ".join(
            f"{r['kind']}: " + ", ".join(f"{k.replace('_', ' ')} {r[k]:.3f}" for k in extra if k in r)
            for r in pooled if any(k in r for k in extra)) + ".", ""]
    per_cols = ["job", "kind", "seed", "n_added", "mean_added", "mean_clean_v1", "auroc_vs_clean", "p_above_clean",
                "p_below_clean", "auroc_vs_v2", "fd_ratio", "clean_ra2_auroc"]
    md += ["## Per run", "", markdown_table(per_cols, [[_cell(r, k) for k in per_cols] for r in per_job],
                                            [False, False] + [True] * 10), "![](addition_values.png)", ""]
    write_text(out / "addition.md", "\n".join(md))
    figure = _figure(values, references, out / "addition_values.png")
    return {"addition.csv": out / "addition.csv", "addition.md": out / "addition.md", "addition_values.png": figure}


def _figure(values: dict[str, tuple[list, list]], references: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = []
    if references:
        groups += [("X_v2 (reference)", np.concatenate([f["v2"] for f in references])),
                   ("clean X_v1 (reference)", np.concatenate([f["clean_v1"] for f in references]))]
    groups += [(kind, np.concatenate(added)) for kind, (added, _) in values.items()]
    fig, ax = plt.subplots(figsize=(1.1 * len(groups) + 2, 4), dpi=120)
    rng = np.random.default_rng(0)
    for i, (name, v) in enumerate(groups):
        colour = "grey" if "reference" in name else "C0"
        ax.scatter(i + rng.uniform(-0.25, 0.25, len(v)), v, s=6, alpha=0.5, color=colour)
        ax.plot([i - 0.3, i + 0.3], [v.mean()] * 2, color="k", lw=2)
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], rotation=30, ha="right")
    ax.set_ylabel("value φ (symlog; bar = mean)")
    ax.set_title("Value of the images added to X_v1, pooled over seeds")
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)
    return path
