"""Which classes each counterfactual removal took, and which classes of X̂ moved: for every kept ranked retrain
(results/counterfactual/retrains/ranked_S/*), the labels of the X_v1 images it removed, the per-class mean of the
per-target shift minus the random removal's (same seed and r), and the median of that difference over all targets;
for the per-target retrains, which images each removed and how many removed the very same ones.
Also the scope check of D-TRAK's ranking: D-TRAK values X_v1 by its attributions summed over the first `targets`
generated images only (the bases value 200, and X̂'s labels are sorted, so those are the generated 0s and 1s);
GMValuator's value summed over the same targets (Eq. 6 on the base's match tables, rows < targets) is ranked the
same way, and its top r is compared with the images D-TRAK's retrain removed.

With --rankings it writes that ranking instead, RES/scope/rankings/base_S.csv (column value_targets200), for the
like-for-like removals of hypothesis 5b (`bash scripts/counterfactual_study.sh scope`); once those are kept in
RES/scope/, RES/scope_comparison.csv compares them with D-TRAK's removals on the 200 targets.

    python scripts/counterfactual_by_class.py [--res results/counterfactual] [--base0 results/lds/digits_base] \
        [--targets 200] [--rankings]
        → RES/by_class.csv, RES/dtrak_scope.csv, RES/target_removals.csv, RES/scope_comparison.csv
"""

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from gmv.valuation.run_attributions import scored_attributions
from gmv.valuation.value import values_from_credit

ROOT = Path(__file__).resolve().parent.parent


def seed_and_number(job: Path, sep: str) -> tuple[int, int]:
    """retrains/<kind>_S/<name><sep>N → (S, N): the seed of its folder, and r (sep "_r") or the target (sep "_t")."""
    return int(job.parent.name.split("_")[1]), int(job.name.rsplit(sep, 1)[1])


def credit_over_x_v1(tables, rows: slice, n1: int) -> np.ndarray:
    """Eq. 6 over the generated images `rows` of a base's match tables: each X_v1 image's credit from them (the pool
    is X_v1 then X_v2)."""
    value, _ = values_from_credit(tables["indices"][rows], tables["credit"][rows], 2 * n1)
    return value[:n1]


def base_of(res: Path, seed: int, base0: Path) -> Path:
    """Seed 0's base is the LDS study's; seeds 1, 2 have theirs beside the retrains (counterfactual_study.sh)."""
    return base0 if seed == 0 else res / f"base_{seed}"


def load_base(base: Path) -> dict:
    """The base's X_v1 (dataset indices, labels, value column), X̂'s labels, its match tables and the attributions
    it saved (D-TRAK's; read as data.subset reads them, run_attributions.scored_attributions with no method to
    recompute)."""
    with open(base / "values.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "v1"]
    v1 = np.load(base / "split.npz")["v1"]
    tables = np.load(base / "match_tables.npz")
    if not np.allclose(credit_over_x_v1(tables, slice(None), len(v1)), [float(r["value"]) for r in rows], atol=1e-5):
        raise SystemExit(f"{base}: Eq. 6 on match_tables.npz does not give values.csv's value column; pool order?")
    return {"v1": v1, "label": np.array([int(r["label"]) for r in rows]), "tables": tables,
            "gen_label": np.load(base / "samples.npz")["labels"], "saved": scored_attributions(base, None, [], len(v1))}


def shifts(job: Path) -> np.ndarray:
    return np.load(job / "counterfactual_job.npz")["shift"]


def by_class(res: Path, bases: dict) -> list[dict]:
    out = []
    for job in sorted(res.glob("retrains/ranked_*/*")):
        seed, r = seed_and_number(job, "_r")
        b = bases[seed]
        dropped = np.load(job / "split.npz")["dropped"]
        classes = int(max(b["label"].max(), b["gen_label"].max())) + 1
        removed = np.bincount(b["label"][np.isin(b["v1"], dropped)], minlength=classes)
        diff = shifts(job) - shifts(res / f"retrains/random_{seed}/random_r{r}")
        per_class = [float(diff[b["gen_label"] == c].mean()) for c in range(classes)]
        out.append({"job": f"{job.parent.name}/{job.name}", "seed": seed, "r": r,
                    "removed_per_class": " ".join(map(str, removed)), "median_diff": round(float(np.median(diff)), 4),
                    "mean_diff": round(float(diff.mean()), 4),
                    **{f"diff_class_{c}": round(v, 4) for c, v in enumerate(per_class)}})
    return out


def target_scores(b: dict, column: str, t: int) -> np.ndarray:
    """Generated image t's attributions over X_v1 by `column`: GMValuator's Eq. 5 credits (zero outside its K
    matches, and for matches in X_v2), or D-TRAK's saved scores."""
    if column == "value":
        return credit_over_x_v1(b["tables"], slice(t, t + 1), len(b["v1"]))
    return b["saved"][column][t]


def target_removals(res: Path, bases: dict) -> list[dict]:
    """The per-target retrains (retrains/target_S/<column>_t<t>): the images each removed, their classes, how many
    of them the target's attributions score above zero (the rest were ties at zero, taken in X_v1's order), and how
    many retrains of the same column removed the very same images (their models are one model, trained once); with
    the report's counterfactual.csv beside them, the target's shift percentile it measured."""
    def column(job: Path) -> str:
        return job.name.rsplit("_t", 1)[0]

    rows = []
    for job in sorted(res.glob("retrains/target_*/*"), key=lambda p: (column(p), *seed_and_number(p, "_t"))):
        (seed, t), column_name = seed_and_number(job, "_t"), column(job)
        b, dropped = bases[seed], np.sort(np.load(job / "split.npz")["dropped"])
        removed = np.isin(b["v1"], dropped)
        rows.append({"job": f"{job.parent.name}/{job.name}", "column": column_name, "target": t,
                     "target_class": int(b["gen_label"][t]), "dropped": " ".join(map(str, dropped)),
                     "dropped_classes": " ".join(map(str, b["label"][removed])),
                     "dropped_scored_above_zero": int((target_scores(b, column_name, t)[removed] > 0).sum())})
    report = res / "counterfactual.csv"  # the report's reading of each retrain, where it has been written
    percentile = {}
    if report.is_file():
        with open(report, newline="") as f:
            percentile = {r["job"]: r.get("target_percentile", "") for r in csv.DictReader(f)}
    for row in rows:
        row["same_removal_jobs"] = sum(o["column"] == row["column"] and o["dropped"] == row["dropped"] for o in rows)
        row["target_percentile"] = percentile.get(row["job"], "")
    return rows


def value_on_targets(b: dict, targets: int) -> np.ndarray:
    """GMValuator's value of each X_v1 image from the first `targets` generated images only (Eq. 6 on those rows)."""
    return credit_over_x_v1(b["tables"], slice(0, targets), len(b["v1"]))


def write_rankings(res: Path, bases: dict, targets: int) -> None:
    """RES/scope/rankings/base_S.csv: X_v1's rows with value_on_targets, a ranking `data.subset` reads."""
    out = res / "scope" / "rankings"
    out.mkdir(parents=True, exist_ok=True)
    for seed, b in sorted(bases.items()):
        value = value_on_targets(b, targets)
        write([{"index": i, "split": "v1", "label": int(lab), f"value_targets{targets}": float(v)}
               for i, (lab, v) in enumerate(zip(b["label"], value))], out / f"base_{seed}.csv", show=False)


def dtrak_scope(res: Path, bases: dict, targets: int) -> list[dict]:
    out = []
    for seed, b in sorted(bases.items()):
        value = value_on_targets(b, targets)
        for job in sorted(res.glob(f"retrains/ranked_{seed}/d_trak_top_r*"), key=lambda p: seed_and_number(p, "_r")):
            r = seed_and_number(job, "_r")[1]
            top = set(b["v1"][np.argsort(-value, kind="stable")[:r]].tolist())
            dtrak = np.load(job / "split.npz")["dropped"]
            out.append({"seed": seed, "r": r, "targets": targets, "gen_classes_of_targets":
                        " ".join(map(str, np.unique(b["gen_label"][:targets]))),
                        "x_v1_credited_by_targets": int((value > 0).sum()),
                        "gmvaluator_on_targets_top_r_in_dtrak_top_r": len(top & set(dtrak.tolist()))})
    return out


def scope_comparison(res: Path, targets: int) -> list[dict]:
    """Per r, pooled over seeds: on the first `targets` targets, the shift under GMValuator's removal ranked on those
    targets (RES/scope/scope_S/value_targets<n>_top_r<r>) minus that under D-TRAK's top r — mean, bootstrap CI,
    one-sided Wilcoxon p — and each removal's mean shift there minus the random removal's."""
    from scipy.stats import wilcoxon

    from gmv.analysis.ra2 import bootstrap_mean_ci

    by_r: dict[int, list] = {}
    for job in sorted(res.glob(f"scope/scope_*/value_targets{targets}_top_r*")):
        seed, r = seed_and_number(job, "_r")
        dtrak, rand = (shifts(res / f"retrains/{k}") for k in (f"ranked_{seed}/d_trak_top_r{r}",
                                                                f"random_{seed}/random_r{r}"))
        by_r.setdefault(r, []).append((shifts(job)[:targets], dtrak[:targets], rand[:targets]))
    out = []
    for r, parts in sorted(by_r.items()):
        gm, dt, rd = (np.concatenate([p[i] for p in parts]) for i in range(3))
        mean, lo, hi = bootstrap_mean_ci(gm - dt)
        p = float(wilcoxon(gm - dt, alternative="greater").pvalue) if np.any(gm != dt) else 1.0
        out.append({"r": r, "seeds": len(parts), "targets": targets, "gmvaluator_minus_dtrak": round(mean, 4),
                    "ci_low": round(lo, 4), "ci_high": round(hi, 4), "wilcoxon_p": p,
                    "gmvaluator_vs_random": round(float((gm - rd).mean()), 4),
                    "dtrak_vs_random": round(float((dt - rd).mean()), 4)})
    return out


def write(rows: list[dict], path: Path, show: bool) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{path}: {len(rows)} rows")
    for row in rows if show else []:
        print("  " + ", ".join(f"{k} {v}" for k, v in row.items()))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--res", type=Path, default=ROOT / "results/counterfactual")
    ap.add_argument("--base0", type=Path, default=ROOT / "results/lds/digits_base", help="seed 0's base run")
    ap.add_argument("--targets", type=int, default=200)
    ap.add_argument("--rankings", action="store_true", help="write the rankings of the scope removals, nothing else")
    a = ap.parse_args(argv)
    seeds = sorted({int(p.name.split("_")[1]) for p in a.res.glob("retrains/ranked_*")})
    bases = {s: load_base(base_of(a.res, s, a.base0)) for s in seeds}
    if a.rankings:
        write_rankings(a.res, bases, a.targets)
        return 0
    write(by_class(a.res, bases), a.res / "by_class.csv", show=False)
    write(dtrak_scope(a.res, bases, a.targets), a.res / "dtrak_scope.csv", show=True)
    targets = target_removals(a.res, bases)
    if targets:
        write(targets, a.res / "target_removals.csv", show=False)
    scope = scope_comparison(a.res, a.targets)
    if scope:
        write(scope, a.res / "scope_comparison.csv", show=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
