"""`gmv-report`: compare the jobs of a Hydra multirun in one table and a few figures.

    gmv -m valuation.k=1,5,10 matcher=pq matcher.m=8,16
    gmv-report multirun/2024-06-01/12-00-00 [--out DIR] [--metrics t_statistic,auroc,p_value]

    gmv -m seed=0,1,2 valuation.k=5,10      # → also seeds.csv / seeds.md

Writes report.csv, report.md and sweep_<param>.png (plus generators.md and
generators_values.png when the jobs differ in generator, and seeds.csv / seeds.md when
`seed` is swept: mean and 95% CI over seeds per setting of the other parameters) into
SWEEP/report, prints the report, and exits with status 2 and one line when the folder
holds no finished job. The table's p_value_holm column holds the p-values Holm-adjusted
over all jobs of the sweep.
"""

from __future__ import annotations

import argparse
import sys

from gmv.errors import GmvError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gmv-report", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("sweep", help="sweep folder of a Hydra multirun (job folders with metrics.json below it)")
    p.add_argument("--out", help="output folder (default: SWEEP/report)")
    p.add_argument("--base", help="the base run of a sweep of retrains: with control.kind=model_output writes lds.md; "
                                  "retrains that drew their own X̂' write counterfactual.md (one base per seed, "
                                  "comma-separated)")
    p.add_argument("--lds", help="with a counterfactual sweep: the folder of the LDS report (its lds.csv) — adds "
                                 "contribution.md/.csv/.png, each method's LDS and removal effects beside its cost")
    p.add_argument("--metrics", help="comma-separated metric columns of the table, replacing the defaults "
                                     "(t_statistic,p_value,auroc,mean_value_v1,mean_value_v2,recall_at_k,"
                                     "seconds_match,seconds_total + generator metrics when present; p_value_holm "
                                     "follows p_value; with seed swept, their numeric ones are also "
                                     "aggregated over seeds)")
    return p


def main(argv: list[str] | None = None) -> int:
    from gmv.analysis.sweep import write_sweep_report

    args = parser().parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    try:
        written = write_sweep_report(args.sweep, out_dir=args.out, metrics=metrics, base=args.base,
                                     lds=args.lds)
    except GmvError as e:
        print(f"gmv-report: error: {e}", file=sys.stderr)
        return 2
    print(written["report.md"].read_text())
    for name in ("generators.md", "addition.md", "lds.md", "counterfactual.md",
                 "contribution.md"):
        if name in written:
            print(written[name].read_text())
    out_dir = written["report.md"].parent
    print(f"report in {out_dir}/ ({', '.join(written)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
