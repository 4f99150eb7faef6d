"""RA3 with CelebA's labels: do high-value faces share more attributes (:func:`attribute_agreement`) and more
often the person (:func:`identity_agreement`) with their matched generated faces than low-value faces do?"""

from __future__ import annotations

import numpy as np

from gmv.analysis.ra1 import exact_knn
from gmv.analysis.ra2 import welch_one_sided
from gmv.analysis.ra3 import extremes, nearest_generated
from gmv.errors import GmvError


def attribute_agreement(values, attributes, pool_emb, gen_emb, n: int = 32, top: int = 6, seed: int = 0,
                        among=None) -> dict:
    """RA3 with attributes (CelebA's 40): do high-value faces share more attributes with their top-6
    matched generated faces than low-value faces do?

    Generated faces carry no attributes, so a linear probe predicts them: one ridge regression per
    attribute (targets ±1, a single multi-output solve) on the standardised pool embeddings. Its
    accuracy is measured by fitting on the second half of the pool and scoring the first
    (`attr_probe_accuracy`; majority-class accuracy beside it), then it is refitted on the whole pool.
    For each of the `n` highest- and `n` lowest-value pool faces, the agreement is the share of the
    40 attributes on which the face's true value equals the predicted value of a matched generated
    face, averaged over its `top` nearest generated faces; `random` pairs each face with random
    generated faces instead. A one-sided Welch test asks whether high > low. `among` (pool indices) ranks
    only those faces (the training half), as :func:`gmv.analysis.ra3.extremes` does; the probe uses the pool.
    """
    from sklearn.linear_model import Ridge

    a = np.asarray(attributes)
    if a.ndim != 2 or len(a) != len(values):
        raise GmvError(f"attributes must be N×A for the {len(values)} pool images, got {a.shape}")
    a = (a > 0).astype(np.int8)
    x = np.asarray(pool_emb, np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-8
    z, zg = (x - mu) / sd, (np.asarray(gen_emb, np.float64) - mu) / sd
    y = 2.0 * a - 1.0
    half = len(z) // 2
    probe = Ridge(alpha=float(z.shape[1])).fit(z[half:], y[half:])
    held = (probe.predict(z[:half]) > 0).astype(np.int8)
    accuracy = float((held == a[:half]).mean())
    majority = float(np.maximum(a[:half].mean(0), 1 - a[:half].mean(0)).mean())
    probe = Ridge(alpha=float(z.shape[1])).fit(z, y)
    gen_attr = (probe.predict(zg) > 0).astype(np.int8)

    def agreement(rows: np.ndarray, matched: np.ndarray) -> np.ndarray:
        return (a[rows][:, None, :] == gen_attr[matched]).mean(axis=(1, 2))

    return {**high_low_agreement("attr", agreement, values, x, gen_emb, n, top, seed, among),
            "attr_probe_accuracy": accuracy, "attr_probe_majority": majority}


def high_low_agreement(prefix: str, agreement, values, pool_emb, gen_emb, n: int, top: int, seed: int,
                       among=None) -> dict:
    """The RA3 comparison both agreements share: `agreement(rows, matched)` (one number per row, `matched` the
    rows' R×top generated indices) for the `n` highest- and `n` lowest-value pool images with their `top` nearest
    generated images (ranked `among` those pool indices, default all), and for random pairs; a one-sided Welch
    test high > low. Keys `<prefix>_agreement_high`, `_low`, `_random`, `_t`, `_p_value` and `<prefix>_n` (the
    size of each group)."""
    hi, lo = extremes(values, n, among)
    top = min(top, len(gen_emb))
    rng = np.random.default_rng(seed)
    ag_hi, ag_lo = (agreement(rows, nearest_generated(pool_emb[rows], np.asarray(gen_emb), top)[1])
                    for rows in (hi, lo))
    both = np.concatenate([hi, lo])
    ag_rand = agreement(both, rng.integers(0, len(gen_emb), size=(len(both), top)))
    t_stat, p_value = welch_one_sided(ag_hi, ag_lo)
    name = f"{prefix}_agreement"
    return {f"{name}_high": float(ag_hi.mean()), f"{name}_low": float(ag_lo.mean()),
            f"{name}_random": float(ag_rand.mean()), f"{name}_t": float(t_stat), f"{name}_p_value": float(p_value),
            f"{prefix}_n": int(len(hi))}


def identity_agreement(values, identities, pool_emb, gen_emb, n: int = 32, top: int = 6, seed: int = 0,
                       among=None) -> dict:
    """RA3 by identity: are the generated faces matched to high-value faces more often *the same person* than
    those matched to low-value faces?

    A generated face has no identity, so it gets the identity of its nearest pool face — but never of the face
    being asked about (its own match is that face by construction): for pool face i and a matched generated
    face g, g's identity is that of g's nearest pool face other than i. So agreement means the generated face
    lies nearest to *another photo of i's person*. How well nearest-neighbour identity works in this embedding
    is measured on the pool itself (`id_nn_accuracy`: each face's nearest other face shares its identity;
    `id_nn_chance`: the share of same-identity faces among the others, averaged). For each of the `n` highest-
    and `n` lowest-value faces the agreement is averaged over its `top` nearest generated faces; `random`
    pairs faces with random generated faces. One-sided Welch test high > low. `among` ranks only those pool
    faces (the training half); identities of generated faces still come from the whole pool.
    """
    ids = np.asarray(identities).ravel()
    x, g = np.asarray(pool_emb, np.float64), np.asarray(gen_emb, np.float64)
    if len(ids) != len(values) or len(x) != len(values):
        raise GmvError(f"identities ({len(ids)}) and pool embeddings ({len(x)}) must describe the "
                       f"{len(values)} valued pool images")
    if len(x) < 3:
        raise GmvError("identity agreement needs at least 3 pool images")
    _, pool_nn = exact_knn(x, x, 2)  # column 0 is (nearly always) the face itself
    other = np.where(pool_nn[:, 0] == np.arange(len(x)), pool_nn[:, 1], pool_nn[:, 0])
    same = ids[:, None] == ids[None, :]
    chance = (same.sum(1) - 1) / (len(ids) - 1)
    _, gen_nn = exact_knn(g, x, 2)  # each generated face's two nearest pool faces

    def agreement(rows: np.ndarray, matched: np.ndarray) -> np.ndarray:
        first, second = gen_nn[matched, 0], gen_nn[matched, 1]
        nearest_other = np.where(first == rows[:, None], second, first)
        return (ids[nearest_other] == ids[rows][:, None]).mean(axis=1)

    return {**high_low_agreement("id", agreement, values, x, g, n, top, seed, among),
            "id_nn_accuracy": float((ids[other] == ids).mean()), "id_nn_chance": float(chance.mean())}
