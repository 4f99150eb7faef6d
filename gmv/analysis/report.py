"""Write one valuation's results folder: tables, RA1–RA3 figures, metrics.json, and log it to W&B.

Files (all written atomically):
    values.csv          index, split, label, value, n_matches (one row per pool image); with a held-out
                        half also p_value (empirical, against X_v2) and bh_flag (Benjamini–Hochberg), and
                        one score column per baseline method; after a training-set edit also added,
                        added_source, added_index (gmv/data/edit.py)
    match_tables.npz    the paper's m×K `distances` and `indices` tables, and the `credit` (Eq. 5); with a
                        quality weighting also `quality` (q_j per generated image, gmv/valuation/quality.py)
    attributions_<method>.npz  generated × pool attributions of a method that needs the generator (D-TRAK), for
                        the LDS report
    metrics.json        flat keys: k, tau (the τ used), top_credit_mean, effective_neighbours, n_generated,
                        n_v1, n_v2, mean_value_v1/v2, t_statistic, p_value, auroc (+ CI), tpr_at_1fpr (+ CI),
                        cohens_d, recall_at_k, per-method `method/<name>/…`, the shuffled-split control,
                        the audit counts, C1 class agreement, per_class_share_p_below_0.01 and
                        class_{c}_… (RA2 per class), attr_agreement_* (RA3 by attributes), … (see
                        `valuation_metrics` and `write_report`)
    methods.md/.csv     RA2 as membership inference, one row per method (t, p, AUROC, TPR@1%FPR, CIs)
    c1_per_class.csv    C1: share of each generated image's top-k matches that carry its class
    ra1_tsne.png        RA1 t-SNE of X_v1, X_v2 and X̂ (with a held-out set)
    ra2_table.md/.csv   RA2 in the layout of the paper's Table 1 (with a held-out set)
    ra2_per_class.md/.csv  RA2 per class (with a held-out set and more than one label)
    ra2_hist.png        value distributions of X_v1 and X_v2
    ra3_high.png, ra3_low.png   RA3 galleries: highest / lowest-value images and their top-6 matches (the
                        low one drawn at random, seeded, among images tied at the lowest value when more
                        tie than it shows)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from gmv.analysis.per_class import class_agreement_metrics, per_class_report
from gmv.errors import GmvError
from gmv.console import note
from gmv.analysis.methods_table import TABLE1_KEYS, membership_views  # noqa: F401  (membership_views: re-exported)
from gmv.analysis.value_tables import write_value_tables
from gmv.io import write_json
from gmv.valuation.api import Valuation
from gmv.valuation.matchers import MatcherConfig


def valuation_metrics(val: Valuation) -> dict[str, Any]:
    """The flat numbers every valuation reports (RA2 statistics are added where there is a v2)."""
    v1, v2 = val.values[val.side("v1")], val.values[val.side("v2")]
    main = val.main
    return {
        "method": main.name,
        **{k: v for k, v in main.extras.items() if np.isscalar(v)},
        "k": val.k,
        "tau": val.tau,
        "n_generated": val.n_generated,
        "n_v1": len(v1),
        "n_v2": len(v2),
        "mean_value_v1": float(v1.mean()),
        "mean_value_v2": float(v2.mean()) if len(v2) else float("nan"),
        "sum_values": float(val.values.sum()),
        "share_valued_v1": float((v1 > 0).mean()),
        "share_valued_v2": float((v2 > 0).mean()) if len(v2) else float("nan"),
        "recall_at_k": val.matches.recall_at_k,
        "matcher": val.matches.factory,
        "rerank": val.matches.settings["rerank"],
        "distance": val.matches.settings["distance"],
        "embedder": val.embedder["name"],
        "embedding_dim": int(val.pool_emb.shape[1]),
        "mean_match_distance": float(np.nanmean(np.where(np.isfinite(val.matches.distances),
                                                         val.matches.distances, np.nan))),
        **{f"seconds_{k}": round(v, 3) for k, v in val.seconds.items()},
        **{f"method/{name}/{k}": v for name, c in val.costs.items() for k, v in c.items()},  # own seconds, peak MiB
        **{f"method/{name}/{k}": v for name, r in val.methods.items() for k, v in r.extras.items()
           if k.startswith("reverse_")},  # the baselines' reverse searches: matcher, recall@1
    }


def attribute_metrics(val: Valuation, n: int, seed: int = 0) -> dict[str, Any]:
    """RA3 with CelebA's labels (:mod:`gmv.analysis.ra3_attributes`): attribute agreement when the pool has
    attributes, identity agreement when it has identities (`extras["identity"]`), else {}; the faces compared are
    ranked among :func:`ra3_rows`, at most half of them a side."""
    from gmv.analysis.ra3_attributes import attribute_agreement, identity_agreement

    out: dict[str, Any] = {}
    among, n = ra3_rows(val), ra3_group_size(val, n)
    if val.pool.attributes is not None:
        out.update(attribute_agreement(val.values, val.pool.attributes, val.pool_emb, val.gen_emb, n=n, seed=seed,
                                       among=among))
    identities = getattr(val.pool, "extras", {}).get("identity")
    if identities is not None and len(np.unique(identities)) > 1:
        out.update(identity_agreement(val.values, identities, val.pool_emb, val.gen_emb, n=n, seed=seed,
                                      among=among))
    return out


def ra3_rows(val: Valuation) -> np.ndarray | None:
    """The pool images RA3 ranks: the training half X_v1 where a held-out half is valued beside it (the paper's
    RA3 ranks training images; held-out ones are RA2's control), else None (every pool image is training)."""
    return val.side("v1") if len(val.side("v2")) else None


def ra3_group_size(val: Valuation, n: int) -> int:
    """`n`, but at most half the images RA3 ranks (:func:`ra3_rows`): the high and low groups never overlap."""
    among = ra3_rows(val)
    return min(n, len(val.values if among is None else among) // 2 or 1)


def _check_report_class(report_class) -> int | None:
    if report_class is None:
        return None
    try:
        if float(report_class) == int(report_class):
            return int(report_class)
    except (TypeError, ValueError):
        pass
    raise GmvError(f"report_class must be a class label (an integer), got {report_class!r}")


def _held_out_analyses(val: Valuation, out: Path, label: str, seed: int, tsne_cap: int | None,
                       metrics: dict[str, Any], figures: dict[str, Path]) -> dict:
    """RA2 (Table 1, histogram, membership views) and RA1 (NN distances, t-SNE) into `metrics` and
    `figures`; returns the Table-1 statistics."""
    from gmv.analysis import ra1_map, ra2

    i1, i2 = val.side("v1"), val.side("v2")
    views, summaries = membership_views(val, out, seed=seed)
    stats = summaries[val.main.name]
    metrics.update({k: stats[k] for k in TABLE1_KEYS})
    metrics.update(views)
    ra2.write_table1({label: stats}, out)
    figures["ra2_hist"] = ra2.value_histogram(val.values[i1], val.values[i2], out / "ra2_hist.png",
                                              title=f"RA2 — {label}")
    nn_summary, nn_distances = ra1_distances(val)
    metrics.update(nn_summary)
    t0 = time.perf_counter()
    cap = ra1_map.tsne_cap(len(val.values), tsne_cap)
    figures["ra1_tsne"] = ra1_map.tsne_figure(*halves(val), val.gen_emb, out / "ra1_tsne.png", cap=cap, seed=seed,
                                          title=f"RA1 — {label}", nn_distances=nn_distances)
    metrics["ra1_tsne_cap"] = cap
    metrics["seconds_ra1_tsne"] = round(time.perf_counter() - t0, 3)  # a fixed cost: at most `cap` per set
    return stats


def halves(val: Valuation) -> tuple[np.ndarray, np.ndarray]:
    """The X_v1 and X_v2 rows of the pool's embeddings: views (no copy) when the pool is X_v1 then X_v2,
    as `valuate` builds it."""
    i1, i2 = val.side("v1"), val.side("v2")
    if len(i1) == 0 or (i1[-1] == len(i1) - 1 and (len(i2) == 0 or i2[0] == len(i1))):
        return val.pool_emb[:len(i1)], val.pool_emb[len(i1):len(i1) + len(i2)]
    return val.pool_emb[i1], val.pool_emb[i2]


def searches_again(val: Valuation) -> bool:
    """Whether the report may run its own exact searches (RA1 NN distances, C1) or must read the match
    tables instead: exact searches while N·M·D ≤ TRIVIAL_WORK (1e11, about a second; every committed study),
    the tables above (stated in metrics.json as ``nn_dist_method`` / ``c1_method``)."""
    from gmv.valuation.auto_index import exact_is_trivial

    return exact_is_trivial(len(val.pool_emb), val.n_generated, val.pool_emb.shape[1])


def ra1_distances(val: Valuation) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]:
    """RA1's nearest-neighbour distances X̂→X_v1 and X̂→X_v2 — their summary (metrics) and the per-point
    arrays (for the figure): exact search for small valuations, the match tables for large ones
    (see :func:`searches_again`)."""
    from gmv.analysis import ra1
    from gmv.valuation.methods import reverse_matcher

    n1 = len(val.side("v1"))
    if searches_again(val) or not np.all(val.split[:n1] == "v1"):
        v1, v2 = halves(val)
        d1, d2 = ra1.nearest_distances(val.gen_emb, v1, v2)
        return ra1.summarise_nearest(d1, d2, len(v1), len(v2)), (d1, d2)
    d1, d2, searched = ra1.nearest_distances_from_tables(
        val.gen_emb, val.pool_emb, n1, val.matches.indices, val.matches.distances,
        squared=val.matches.settings["distance"] == "sqeuclidean",
        matcher=reverse_matcher(MatcherConfig(**{k: v for k, v in val.matches.settings.items()
                                                 if k in MatcherConfig.__dataclass_fields__}), val.pool_emb.shape[1]))
    out = ra1.summarise_nearest(d1, d2, n1, len(val.pool_emb) - n1) | {"nn_rows_searched": int(searched)}
    out["nn_dist_method"] = (f"match tables ({val.matches.factory}, recall@{val.k} {val.matches.recall_at_k:.3f}); "
                             f"N·M·D above 1e11")
    return out, (d1, d2)


def log_valuation_artifact(tracker, out: Path) -> None:
    """The run's values, metrics and match tables as one W&B artifact (once metrics.json is written)."""
    tracker.log_artifact("valuation", "valuation", [out / "values.csv", out / "metrics.json", out / "match_tables.npz"])


def _log(tracker, metrics: dict, label: str, stats: dict | None, per_class: dict, figures: dict, out: Path,
         artifact: bool) -> None:
    from gmv.analysis import ra2

    tracker.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    if stats is not None:
        tracker.log_table("ra2_table", ra2.table1_rows({label: stats}))
    if per_class:
        tracker.log_table("ra2_per_class", ra2.table1_rows(per_class))
    for name, path in figures.items():
        tracker.log_image(name, path)
    if artifact:
        log_valuation_artifact(tracker, out)


def write_report(val: Valuation, out_dir: str | Path, label: str = "valuation", tracker=None,
                 ra3_n: int = 8, tsne_cap: int | None = None, seed: int = 0, extra_metrics: dict | None = None,
                 audit_fdr: float = 0.05, report_class: int | None = None, class_names: list[str] | None = None,
                 attribute_n: int | None = None, write_metrics: bool = True,
                 pool_columns: dict[str, np.ndarray] | None = None) -> dict:
    """Write every table and figure for `val` into `out_dir`; return metrics (also in metrics.json, unless
    `write_metrics` is False: the study app writes it once, with its stage times, when the run ends).

    With a held-out half and more than one label: RA2 per class (ra2_per_class.md/.csv, rows named by
    `class_names`, default the pool's) and the Table-1 numbers of `report_class` (``class_{c}_…``).
    With attributes: RA3 attribute agreement of the `attribute_n` (default 4 × `ra3_n`) highest- and
    lowest-value images, seeded with `seed`. `extra_metrics` are added last; `pool_columns` are further
    per-pool-image columns of values.csv (a training-set edit's provenance)."""
    from gmv.analysis import ra3
    from gmv.analysis.credit import credit_spread

    report_class = _check_report_class(report_class)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = valuation_metrics(val)
    audit = None
    if len(val.side("v2")) >= 2:
        from gmv.analysis.membership import audit as audit_values

        audit = audit_values(val.values, val.split, fdr=audit_fdr)
        metrics.update({k if k.startswith("audit_") else f"audit_{k}": v for k, v in audit.items() if np.isscalar(v)})
    write_value_tables(val, out, audit, pool_columns)
    metrics.update(credit_spread(val.values, val.split))
    metrics.update(class_agreement_metrics(val, out))
    figures: dict[str, Path] = {}
    stats = None
    t0 = time.perf_counter()
    if len(val.side("v2")):
        stats = _held_out_analyses(val, out, label, seed, tsne_cap, metrics, figures)
    class_metrics, per_class = per_class_report(val, out, class_names, report_class)
    metrics.update(class_metrics)
    if not val.has_pixels:
        note("[gmv] RA3 galleries skipped: only embeddings were given, no pixels to show")
    else:
        r3 = ra3.ra3_report(val.values, val.pool_emb, val.gen_emb, val.pool.images, val.generated.images, out,
                            n=ra3_group_size(val, ra3_n), seed=seed, among=ra3_rows(val))
        metrics.update({k: v for k, v in r3.items() if np.isscalar(v) and not isinstance(v, str)})
        figures["ra3_high"], figures["ra3_low"] = Path(r3["ra3_high_png"]), Path(r3["ra3_low_png"])
        metrics.update(attribute_metrics(val, int(attribute_n) if attribute_n is not None else 4 * ra3_n, seed=seed))
    metrics["seconds_analysis"] = round(time.perf_counter() - t0, 3)
    metrics.update(extra_metrics or {})
    if write_metrics:
        write_json(out / "metrics.json", metrics)
    if tracker is not None:
        _log(tracker, metrics, label, stats, per_class, figures, out, artifact=write_metrics)
    return metrics


def _class_lines(metrics: dict) -> list[str]:
    """The summary's lines on RA2 per class, the report class and the attribute agreement (where present)."""
    lines, c = [], metrics.get("report_class")
    if "per_class_share_p_below_0.01" in metrics:
        lines.append(f"RA2 per class (ra2_per_class.md): {metrics['per_class_share_p_below_0.01']:.0%} of the "
                     "classes at p < 0.01")
    if c is not None and f"class_{c}_t_statistic" in metrics:
        g = lambda key: metrics[f"class_{c}_{key}"]  # noqa: E731
        lines.append(f"class {c}: t {g('t_statistic'):.2f} · p {g('p_value'):.2g} · AUROC {g('auroc'):.3f}")
    elif c is not None:
        lines.append(f"class {c}: no RA2 row (it needs a label with at least 2 images in each half)")
    if "attr_agreement_high" in metrics:
        lines.append(f"attribute agreement with the top matches: high-value {metrics['attr_agreement_high']:.3f} vs "
                     f"low-value {metrics['attr_agreement_low']:.3f} (random pairs "
                     f"{metrics['attr_agreement_random']:.3f}; p = {metrics['attr_agreement_p_value']:.2g})")
    if "id_agreement_high" in metrics:
        m = metrics
        lines.append(f"same person as the top matches' nearest other photo: high-value {m['id_agreement_high']:.3f} "
                     f"vs low-value {m['id_agreement_low']:.3f} (random pairs {m['id_agreement_random']:.3f}; "
                     f"p = {m['id_agreement_p_value']:.2g}; 1-NN identity in this embedding "
                     f"{m['id_nn_accuracy']:.3f}, chance {m['id_nn_chance']:.3f})")
    return lines


def summary(metrics: dict, label: str, after_ra2: str | None = None) -> str:
    """The printed summary: the Table-1 row, AUROC and TPR@1%FPR with CIs (then `after_ra2`, a study's
    sample-quality reading), the baselines, the τ used, the shuffled-split control, the per-image audit,
    RA2 per class, the attribute agreement and C1."""
    from gmv.analysis.ra2 import format_table1

    tau = metrics.get("tau")
    sharp = (f"τ = {tau:.4g}" + (" (auto)" if metrics.get("tau_rule") == "auto" else "")
             + (f", top match {metrics['top_credit_mean']:.2f} of the credit, "
                f"{metrics['effective_neighbours']:.2f} effective neighbours" if "top_credit_mean" in metrics else ""))
    lines = [f"valued {metrics['n_v1'] + metrics['n_v2']} images against {metrics['n_generated']} generated "
             f"(k={metrics['k']}, {metrics['embedder']} {metrics['embedding_dim']}-d, {metrics['matcher']}"
             f"{', re-rank ' + str(metrics['rerank']) if metrics['rerank'] else ''}; "
             f"recall@{metrics['k']} vs exact = {metrics['recall_at_k']:.3f}; {metrics.get('distance')}, {sharp})"]
    if metrics.get("quality_weighting", "none") != "none":
        lines.append(f"quality-weighted credit ({metrics['quality_weighting']}): mean q {metrics['quality_mean']:.3f}, "
                     f"{metrics['quality_share_full']:.1%} of generated images at full credit; values sum to "
                     f"{metrics['sum_values']:.1f} of {metrics['n_generated']}")
    if metrics["n_v2"]:
        lines.append(format_table1({label: metrics}))
        if "auroc_ci_low" in metrics:
            lines.append(f"AUROC {metrics['auroc']:.3f} [{metrics['auroc_ci_low']:.3f}, {metrics['auroc_ci_high']:.3f}] · "
                         f"TPR@1%FPR {metrics['tpr_at_1fpr']:.3f} · Cohen's d {metrics['cohens_d']:.3f} · "
                         f"NN distance X̂→X_v1 {metrics['nn_dist_gen_to_v1']:.3f} vs X̂→X_v2 {metrics['nn_dist_gen_to_v2']:.3f}")
        if after_ra2:
            lines.append(after_ra2)
        names = list(dict.fromkeys(k.split("/")[1] for k in metrics if k.startswith("method/")))  # main first
        if len(names) > 1:
            lines.append("methods on the same samples (t · p · AUROC · TPR@1%FPR):")
            for n in names:
                g = lambda key: metrics[f"method/{n}/{key}"]  # noqa: E731
                lines.append(f"  {n:<22} t {g('t_statistic'):7.2f} · p {g('p_value'):.2g} · AUROC {g('auroc'):.3f} "
                             f"[{g('auroc_ci_low'):.3f}, {g('auroc_ci_high'):.3f}] · {g('tpr_at_1fpr'):.3f}")
        reverse = {k.split("/")[2][:-len("_matcher")]: (v, metrics[k.replace("_matcher", "_recall_at_1")])
                   for k, v in metrics.items() if k.startswith("method/") and k.endswith("_matcher")}
        for target, (factory, recall) in reverse.items():
            if factory != "Flat":  # at scale: say how the baselines' reverse search was made
                lines.append(f"baselines' reverse search (pool → {target[len('reverse_'):]}): {factory}, "
                             f"recall@1 vs exact = {recall:.3f}")
        if "control_shuffled_p_value" in metrics:
            lines.append(f"control, v1/v2 labels shuffled: p = {metrics['control_shuffled_p_value']:.2g}, "
                         f"AUROC {metrics['control_shuffled_auroc']:.3f} (no signal expected)")
        if "audit_sentence" in metrics:
            lines.append("audit: " + metrics["audit_sentence"])
        lines += _class_lines(metrics)
    else:
        lines.append(f"mean value {metrics['mean_value_v1']:.4f}; {metrics['share_valued_v1']:.1%} of images valued > 0")
    if "credit_sentence" in metrics:
        lines.append("credit: " + metrics["credit_sentence"])
    if "c1_at_1" in metrics:
        c1 = " · ".join(f"top-{k} {metrics[f'c1_at_{k}']:.3f}" for k in (1, 5, 10) if f"c1_at_{k}" in metrics)
        lines.append(f"C1 class agreement of matches: {c1} (chance {metrics['c1_chance']:.3f})")
    return "\n".join(lines)
