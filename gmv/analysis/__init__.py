"""The paper's three checks of a valuation (heavy libraries are imported only when used).

* RA1 (:mod:`gmv.analysis.ra1`): generated data lie nearer the trained-on half X_v1
  than the held-out half X_v2 — nearest-neighbour distances, and a t-SNE map beside them
  (:mod:`gmv.analysis.ra1_map`).
* RA2 (:mod:`gmv.analysis.ra2`): values of X_v1 exceed those of X_v2 — one-sided
  Welch t-test (the paper's Table 1) with AUROC, Mann–Whitney, Cohen's d, bootstrap CI.
* RA3 (:mod:`gmv.analysis.ra3`): the highest-value training images look like their
  matched generated images, the lowest-value ones do not — galleries and distances;
  with attributes, :mod:`gmv.analysis.ra3_attributes`.

Beside them: the report writer (:mod:`gmv.analysis.report`, per-class views in
:mod:`gmv.analysis.per_class`), membership views and the audit (:mod:`gmv.analysis.membership`),
Holm/BH (:mod:`gmv.analysis.multiplicity`), the dose-response control, and the sweep report
(:mod:`gmv.analysis.sweep`: jobs, tables, figures, generator comparison, seeds; table cells in
:mod:`gmv.analysis.tables`).
"""

from gmv.analysis.ra1 import exact_knn, nearest_distances, nearest_neighbour_distances
from gmv.analysis.ra1_map import TsneMap, plot_tsne, tsne_figure, tsne_map
from gmv.analysis.ra2 import (
    bootstrap_diff_ci,
    cohens_d,
    format_table1,
    table1_rows,
    value_histogram,
    welch_one_sided,
    write_table1,
)
from gmv.analysis.ra3 import extremes, gallery, lowest, nearest_generated, ra3_report

__all__ = [
    "TsneMap",
    "bootstrap_diff_ci",
    "cohens_d",
    "exact_knn",
    "extremes",
    "format_table1",
    "gallery",
    "lowest",
    "nearest_generated",
    "nearest_distances",
    "nearest_neighbour_distances",
    "plot_tsne",
    "ra3_report",
    "table1_rows",
    "tsne_figure",
    "tsne_map",
    "value_histogram",
    "welch_one_sided",
    "write_table1",
]
