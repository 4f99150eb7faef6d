"""The LDS report of a multirun of retrains (``gmv-report SWEEP --base RUN``).

RUN is the base study (trained on the whole X_v1; its X̂ holds the targets); SWEEP's jobs are
`control.kind=model_output` retrains on subsets of the same X_v1 (`data.subset`), each with the outputs of
the first n targets. For every valuation method of the base study, its per-target attributions
(gmv/valuation/run_attributions.py: targets × X_v1), and their
linear datamodeling score against the measured outputs (gmv/analysis/lds.py) is written to lds.md / lds.csv,
beside a control: random attributions (seeded), whose LDS must be near 0; every pair of methods is compared target by
target (lds_pairs.csv and a second table: mean difference, bootstrap CI, Wilcoxon p, Holm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gmv.errors import GmvError

CONTROL = "random (control)"  # seeded random attributions: the LDS every method must beat


def subsets_and_outputs(jobs: list, base_v1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(masks S×N1 over the base X_v1, outputs S×T) from the retrain jobs' split.npz and outputs.npz."""
    masks, outputs = [], []
    for job in jobs:
        if not (job.dir / "outputs.npz").is_file():
            continue
        split = np.load(job.dir / "split.npz")
        if not np.array_equal(np.sort(split["v1"]), np.sort(base_v1)):
            raise GmvError(f"{job.dir} was split differently from the base run (another data or split seed)")
        dropped = split["dropped"] if "dropped" in split.files else np.zeros(0, np.int64)
        masks.append(~np.isin(base_v1, dropped))
        outputs.append(np.load(job.dir / "outputs.npz")["outputs"])
    if len({len(o) for o in outputs}) > 1:
        raise GmvError("the retrains measured different numbers of targets; give every job the same control.n_targets")
    if len(outputs) < 3:
        raise GmvError(f"LDS needs at least 3 finished retrains with outputs.npz, found {len(outputs)}")
    return np.stack(masks), np.stack(outputs)


def write_lds_report(jobs: list, base: str | Path, out: Path, n_boot: int = 2000) -> dict[str, Path]:
    from gmv.analysis.lds import lds, paired_differences
    from gmv.analysis.method_cost import COST_KEYS, cost_cells, cost_quality_figure, method_costs
    from gmv.analysis.tables import markdown_table
    from gmv.io import write_csv, write_text
    from gmv.valuation.run_attributions import run_attributions

    base = Path(base)
    if not (base / "samples.npz").is_file() or not (base / "config.yaml").is_file():
        raise GmvError(f"--base {base} is not a finished study run (needs its config.yaml and samples.npz)")
    base_v1 = np.load(base / "split.npz")["v1"]
    masks, outputs = subsets_and_outputs(jobs, base_v1)
    attributions, _ = run_attributions(base, outputs.shape[1])
    rng = np.random.default_rng(0)
    attributions[CONTROL] = rng.normal(size=(outputs.shape[1], masks.shape[1]))
    rows: list[dict[str, Any]] = []
    per_target: dict[str, np.ndarray] = {}
    for name, a in attributions.items():
        r = lds(a, masks, outputs, n_boot=n_boot)
        if name != CONTROL:
            per_target[name] = r["per_target"]
        rows.append({"method": name, "lds": r["lds"], "lds_ci_low": r["lds_ci_low"], "lds_ci_high": r["lds_ci_high"],
                     "n_targets": r["n_targets"], "n_targets_skipped": r["n_targets_skipped"],
                     "n_subsets": int(len(masks))})
    costs = method_costs(base)
    for r in rows:
        r.update({f"cost_{k}": costs.get(r["method"], {}).get(k, float("nan")) for k in ("total_seconds", *COST_KEYS)})
    out.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0])
    write_csv(out / "lds.csv", cols, [[r[c] for c in cols] for r in rows])
    table = markdown_table(["method", "LDS [95% CI over targets]", "targets (skipped)", "subsets",
                            "scores' seconds (own + shared)", "peak extra MiB"],
                           [[r["method"], f"{r['lds']:.3f} [{r['lds_ci_low']:.3f}, {r['lds_ci_high']:.3f}]",
                             f"{r['n_targets']} ({r['n_targets_skipped']})", str(r["n_subsets"]),
                             *cost_cells(costs, r["method"])] for r in rows],
                           [False, True, True, True, True, True])
    pairs = paired_differences(per_target)
    pair_cols = ["a", "b", "targets", "difference", "ci_low", "ci_high", "p_wilcoxon", "p_holm"]
    if pairs:
        write_csv(out / "lds_pairs.csv", pair_cols, [[p[c] for c in pair_cols] for p in pairs])
    pair_table = markdown_table(
        ["method a", "method b", "targets", "LDS a − LDS b [95% CI]", "Wilcoxon p", "Holm p"],
        [[p["a"], p["b"], str(p["targets"]), f"{p['difference']:+.3f} [{p['ci_low']:+.3f}, {p['ci_high']:+.3f}]",
          f"{p['p_wilcoxon']:.2g}", f"{p['p_holm']:.2g}"] for p in pairs],
        [False, False, True, True, True, True]) if pairs else ""
    write_text(out / "lds.md", "\n".join([
        "# Linear datamodeling score (LDS)", "",
        f"Base run `{base}`; {len(masks)} retrains on subsets of its X_v1 ({int(masks.sum(axis=1)[0])} of "
        f"{masks.shape[1]} images each); model output = −diffusion loss of each of the first {outputs.shape[1]} "
        "generated images at fixed draws; LDS = Spearman between a method's subset-sum prediction and the output, "
        "averaged over targets (dattri.metric.lds per target). A random attribution is the control (≈ 0). "
        "Cost: the seconds and peak extra memory of each method's scores in the base run (its metrics.json; "
        "shared = the embedding and match tables the similarity methods read).", "",
        table, *(["", f"Every pair of methods, target by target (the targets both scored; two-sided Wilcoxon "
                      f"signed-rank test, Holm over the {len(pairs)} pairs):", "", pair_table] if pairs else [])]))
    figure = cost_quality_figure([(r["method"], r["lds"], r["lds_ci_low"], r["lds_ci_high"], r["cost_total_seconds"])
                                  for r in rows], "LDS (95% CI over targets)", out / "lds_cost.png")
    return {"lds.md": out / "lds.md", "lds.csv": out / "lds.csv", "lds_cost.png": figure,
            **({"lds_pairs.csv": out / "lds_pairs.csv"} if pairs else {})}
