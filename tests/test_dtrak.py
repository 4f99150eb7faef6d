"""The gradient-based baselines (gmv/valuation/dtrak.py: TRAK and D-TRAK through dattri) as Valuators on a tiny
diffusion model: TRAK's formula against hand-computed values and against dattri's own TRAKAttributor, shapes, the
value as the sum of its attributions, determinism, the study's binding, and gmv-value skipping it with a reason."""

import numpy as np
import pytest

from gmv.errors import GmvError
from gmv.valuation.dtrak import DTRAK


@pytest.fixture(scope="module")
def tiny_model():
    import torch

    from gmv.generators.cfg_diffusion import CFGDiffusion

    torch.manual_seed(0)
    return CFGDiffusion(n_classes=2, image_size=8, channels=1, preset="tiny")


def images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8), rng.integers(0, 2, n)


def test_dtrak_scores_every_pair_and_values_are_their_sums(tiny_model):
    from gmv.valuation.methods import Evidence, MatchResult

    pool, pool_ids = images(6, 0)
    gen, gen_ids = images(3, 1)
    method = DTRAK(timesteps=1, proj_dim=16, batch_size=3)
    with pytest.raises(GmvError, match="needs the trained generator"):
        method.attribute()
    method.bind(tiny_model, pool, pool_ids, gen, gen_ids)
    a = method.attribute()
    assert a.shape == (3, 6) and np.isfinite(a).all() and np.abs(a).sum() > 0
    tables = MatchResult(np.zeros((3, 1), np.float32), np.zeros((3, 1), np.int64), 1.0, {}, "none")
    ev = Evidence(np.zeros((6, 2), np.float32), np.zeros((3, 2), np.float32), np.array(["v1"] * 3 + ["v2"] * 3), tables)
    r = method.value(ev)
    assert r.values == pytest.approx(a.sum(axis=0)) and r.extras["timesteps"] == 1
    again = DTRAK(timesteps=1, proj_dim=16, batch_size=3)
    again.bind(tiny_model, pool, pool_ids, gen, gen_ids)
    assert again.attribute() == pytest.approx(a)  # seeded draws and projection: the same scores
    with pytest.raises(GmvError, match="no denoiser"):
        DTRAK().bind(object(), pool, pool_ids, gen, gen_ids)
    with pytest.raises(GmvError, match="timesteps must be an integer"):
        DTRAK(timesteps=0)


def test_a_study_values_d_trak_beside_the_others(tmp_path):
    from tests.test_pipeline import TINY, cfg_of
    from gmv.pipeline import run_study

    cfg = cfg_of(*TINY, "generator=cfg_diffusion", "generator.batch_size=8", "generate.m=6", "data.split.per_class_limit=2",
                 "data.image_size=8", "valuation.k=2",
                 "+valuation.baselines.d_trak={_target_: gmv.valuation.dtrak.DTRAK, timesteps: 1, proj_dim: 16}",
                 f"cache_dir={tmp_path / 'c'}")
    metrics = run_study(cfg, tmp_path / "run")
    assert "method/d_trak/auroc" in metrics and np.isfinite(metrics["method/d_trak/auroc"])
    header = (tmp_path / "run" / "values.csv").read_text().splitlines()[0]
    assert "d_trak" in header.split(",")
    saved = np.load(tmp_path / "run" / "attributions_d_trak.npz")["attributions"]
    assert saved.shape == (6, 20)  # generated × pool, for the LDS report


def test_without_a_generator_it_is_skipped_with_a_reason():
    from gmv.valuation.api import valuate

    pool, _ = images(20, 2)
    gen, _ = images(10, 3)
    val = valuate(pool[:10], gen, held_out=pool[10:], k=2, baselines=["d_trak"])
    assert "needs the trained generator" in val.skipped["d_trak"] and "d_trak" not in val.methods


def test_model_outputs_are_deterministic_and_follow_the_fit(tiny_model):
    """diffusion_outputs: the same draws give the same outputs; an image the denoiser was trained on (a few
    steps on it alone) gets a higher output (lower loss) than before."""
    import copy

    import torch

    from gmv.analysis.model_output import diffusion_outputs, example_loss, fixed_draws, pixels_to_model

    imgs, ids = images(4, 5)
    a = diffusion_outputs(tiny_model, imgs, ids, timesteps=3, seed=1)
    assert a.shape == (4,) and np.array_equal(a, diffusion_outputs(tiny_model, imgs, ids, timesteps=3, seed=1))
    model = copy.deepcopy(tiny_model)
    net, sched = model.ema_unet.train().requires_grad_(True), model.noise_scheduler
    x, y = pixels_to_model(imgs[:1]), torch.as_tensor(ids[:1])
    t, noise = fixed_draws(1, 3, sched.config.num_train_timesteps, tuple(x.shape[1:]), seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(30):
        opt.zero_grad()
        example_loss(net, sched, x[0], y[0], t[0], noise[0]).backward()
        opt.step()
    after = diffusion_outputs(model, imgs, ids, timesteps=3, seed=1)
    assert after[0] > a[0]


def test_only_the_first_targets_are_attributed(tiny_model):
    pool, pool_ids = images(5, 0)
    gen, gen_ids = images(4, 1)
    method = DTRAK(timesteps=1, proj_dim=8, batch_size=4, targets=2)
    method.bind(tiny_model, pool, pool_ids, gen, gen_ids)
    a = method.attribute()
    assert a.shape == (4, 5) and np.abs(a[:2]).sum() > 0 and not a[2:].any()


def test_trak_scores_match_a_hand_computed_case():
    """Φ = [[1, 0], [0, 2]] (two training images, k = 2): ΦᵀΦ = diag(1, 4), λ = ridge · 5 / 2; a target φ = [1, 1]
    scores [1/(1+λ), 2/(4+λ), 1/(1+λ) + 1/(4+λ)] against the pool [Φ; [1, 1]]."""
    import torch

    from gmv.valuation.dtrak import trak_scores

    train = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    pool = torch.cat([train, torch.tensor([[1.0, 1.0]], dtype=torch.float64)])
    lam = 0.2 * 5 / 2
    got = trak_scores(torch.tensor([[1.0, 1.0]], dtype=torch.float64), train, pool, ridge=0.2)
    assert got.numpy() == pytest.approx(np.array([[1 / (1 + lam), 2 / (4 + lam), 1 / (1 + lam) + 1 / (4 + lam)]]))


def test_with_more_dimensions_than_training_images_a_training_image_attributes_to_itself():
    """k > n makes ΦᵀΦ singular (the case λ is for); as λ → 0 the scores of the training images' own features are
    the identity — each is explained by itself alone."""
    import torch

    from gmv.valuation.dtrak import trak_scores

    phi = torch.randn(5, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = trak_scores(phi, phi, phi, ridge=1e-9).numpy()
    assert got == pytest.approx(np.eye(5), abs=1e-5)


@pytest.mark.parametrize("output", ["square", "loss"])
def test_training_scores_equal_dattris_trak(tiny_model, output):
    """For the images the kernel comes from, gmv's scores are dattri's TRAKAttributor's with the same λ (its own
    gradients, projector and solve, in float32) — the held-out images, which dattri cannot score against another
    set's kernel, get the same formula."""
    import torch
    from dattri.algorithm.trak import TRAKAttributor

    from gmv.valuation.dtrak import trak_scores

    pool, pool_ids = images(6, 0)
    gen, gen_ids = images(3, 1)
    method = DTRAK(timesteps=2, proj_dim=16, batch_size=3, output=output)
    method.bind(tiny_model, pool, pool_ids, gen, gen_ids, n_train=4)
    a = method.attribute()
    task = method.task()
    phi_pool = method.features(task, pool, pool_ids, method.seed, "pool")
    kernel = phi_pool[:4].T @ phi_pool[:4]
    lam = method.ridge * float(torch.trace(kernel)) / 4
    reference = TRAKAttributor(task, lambda params, example: torch.zeros(()), device="cpu", regularization=lam,
                               projector_kwargs={"proj_dim": 16, "proj_seed": method.seed, "device": "cpu"})
    pool_examples = method._loader(pool, pool_ids, method.seed).dataset  # the pool's draws: the first 4 rows' own
    reference.cache(torch.utils.data.DataLoader(torch.utils.data.Subset(pool_examples, range(4)), batch_size=3))
    theirs = reference.attribute(method._loader(gen, gen_ids, method.seed + 1)).detach().double().numpy().T
    assert a[:, :4] == pytest.approx(theirs, rel=1e-3, abs=1e-4 * np.abs(theirs).max())
    assert np.abs(a[:, 4:]).sum() > 0 and a == pytest.approx(
        trak_scores(method.features(task, gen, gen_ids, method.seed + 1, "gen"), phi_pool[:4], phi_pool,
                    method.ridge).numpy())


def test_trak_and_d_trak_differ_only_in_the_function_they_differentiate(tiny_model):
    from gmv.valuation.methods import build_method

    pool, pool_ids = images(5, 0)
    gen, gen_ids = images(2, 1)
    d, t = build_method("d_trak", timesteps=1, proj_dim=8), build_method("trak", timesteps=1, proj_dim=8)
    assert (d.name, d.output, t.name, t.output) == ("d_trak", "square", "trak", "loss")
    for m in (d, t):
        m.bind(tiny_model, pool, pool_ids, gen, gen_ids)
    assert not np.allclose(d.attribute(), t.attribute())
    with pytest.raises(GmvError, match="n_train must be"):
        d.bind(tiny_model, pool, pool_ids, gen, gen_ids, n_train=6)
    with pytest.raises(GmvError, match="output must be one of"):
        DTRAK(output="l1")
    with pytest.raises(GmvError, match="ridge must be"):
        DTRAK(ridge=0)
