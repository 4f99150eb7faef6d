"""Classifier-free guidance diffusion's own behaviour: training, DDIM sampling, guidance, label dropout, EMA
warm-up, presets. What every generator must do: tests/test_generator_contract.py."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from gmv.errors import GmvError
from gmv.generators.cfg_diffusion import PRESETS, CFGDiffusion

# A very small UNet for the tests that only need the training / sampling plumbing.
SMALL = dict(block_out_channels=(8, 16), norm_groups=4, attention_resolutions=(), sampling_steps=2)


def _digits(n: int = 64, labels: bool = True) -> TensorDataset:
    from gmv.data.sources import load_digits

    s = load_digits(image_size=32, limit=n)
    x = torch.from_numpy(s.to_float())
    y = torch.from_numpy(s.labels) if labels else torch.full((len(s),), -1, dtype=torch.long)
    return TensorDataset(x, y)


def _trainer(max_steps: int, **kw) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kw)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    module = CFGDiffusion(n_classes=10, image_size=32, channels=1, preset="tiny", sampling_steps=2)
    init = {k: v.clone() for k, v in module.ema_unet.state_dict().items()}
    trainer = _trainer(3)
    trainer.fit(module, DataLoader(_digits(64), batch_size=8, shuffle=False))
    return module, trainer, init


def test_tiny_trains(trained):
    module, trainer, init = trained
    assert module.iteration == 3
    assert trainer.global_step == 3
    loss = trainer.callback_metrics["loss/diffusion"]
    assert torch.isfinite(loss)
    assert 0.0 < float(loss) < 10.0
    assert "lr" in trainer.callback_metrics
    # the EMA moved away from the initial weights, but lags the live weights
    ema, live = module.ema_unet.state_dict(), module.unet.state_dict()
    assert any(not torch.equal(ema[k], init[k]) for k in ema)
    assert any(not torch.allclose(ema[k], live[k]) for k in ema)


def test_iteration_counts_optimizer_steps_and_labels_are_dropped():
    torch.manual_seed(1)
    module = CFGDiffusion(10, 32, 1, "tiny", p_uncond=1.0, **SMALL)
    seen = []
    module.unet.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["class_labels"].clone()),
                                          with_kwargs=True)
    trainer = _trainer(2, accumulate_grad_batches=2)
    trainer.fit(module, DataLoader(_digits(32), batch_size=8))
    assert len(seen) == 4  # four batches …
    assert module.iteration == 2  # … but two optimiser steps
    assert all(bool((y == 10).all()) for y in seen)  # p_uncond = 1: every label is ∅


def test_label_dropout_rate():
    module = CFGDiffusion(10, 32, 1, "tiny", p_uncond=0.1, **SMALL)
    y = torch.randint(0, 10, (200_000,), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(123)
    out = module.drop_labels(y)
    dropped = out == module.null_label
    rate = dropped.float().mean().item()
    assert abs(rate - 0.1) < 0.004  # ~6 standard deviations
    assert torch.equal(out[~dropped], y[~dropped])
    torch.manual_seed(123)
    assert torch.equal(module.drop_labels(y), out)  # from the global RNG
    assert torch.equal(CFGDiffusion(10, 32, 1, "tiny", p_uncond=0.0, **SMALL).drop_labels(y), y)


def test_gradient_clipping_from_config():
    module = CFGDiffusion(10, 32, 1, "tiny", grad_clip=0.5, **SMALL)
    for p in module.unet.parameters():
        p.grad = torch.full_like(p, 10.0)
    module.configure_gradient_clipping(None, gradient_clip_val=None, gradient_clip_algorithm=None)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in module.unet.parameters()]))
    assert norm.item() == pytest.approx(0.5, rel=1e-4)


def test_generate_uses_guided_sampler_from_ema(trained):
    module = trained[0]
    labels = torch.tensor([2, 8])
    g = module.generate(labels, torch.Generator().manual_seed(9))
    s = module.sample(labels, torch.Generator().manual_seed(9), guidance_w=module.config.guidance_w)
    assert module.config.guidance_w == 0.5
    assert torch.equal(g, s)
    live = module.sample(labels, torch.Generator().manual_seed(9), guidance_w=0.5, use_ema=False)
    assert not torch.allclose(g, live)


def test_guidance_zero_equals_conditional_sampling():
    torch.manual_seed(4)
    module = CFGDiffusion(10, 32, 1, "tiny", **SMALL)
    labels = torch.tensor([0, 4, 7])
    noise = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    plain = module.sample(labels, gen, guidance_w=None, noise=noise, steps=2)  # ε(x, c) only
    cfg0 = module.sample(labels, gen, guidance_w=0.0, noise=noise, steps=2)  # batched (1+0)·ε_c − 0·ε_∅
    assert torch.allclose(plain, cfg0, atol=1e-5)
    cfg = module.sample(labels, gen, guidance_w=2.0, noise=noise, steps=2)
    assert (cfg - plain).abs().max() > 1e-3
    # the guided ε is exactly (1 + w)·ε_c − w·ε_∅
    x, t = noise, torch.full((3,), 500)
    null = torch.full_like(labels, module.null_label)
    with torch.no_grad():
        e_c = module.eps(x, t, labels, None)
        e_u = module.eps(x, t, null, None)
        e_w = module.eps(x, t, labels, 2.0)
    assert torch.allclose(e_w, 3.0 * e_c - 2.0 * e_u, atol=1e-4)


def test_stochastic_sampling_is_seeded():
    module = CFGDiffusion(10, 32, 1, "tiny", **SMALL)
    labels = torch.tensor([1, 2])
    a = module.sample(labels, torch.Generator().manual_seed(3), guidance_w=0.5, eta=1.0)
    b = module.sample(labels, torch.Generator().manual_seed(3), guidance_w=0.5, eta=1.0)
    c = module.sample(labels, torch.Generator().manual_seed(3), guidance_w=0.5, eta=0.0)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_unconditional():
    torch.manual_seed(2)
    module = CFGDiffusion(n_classes=1, image_size=32, channels=1, preset="tiny", **SMALL)
    assert module.unet.class_embedding.num_embeddings == 2
    _trainer(1).fit(module, DataLoader(_digits(16, labels=False), batch_size=8))  # unknown labels (−1) are fine
    assert module.iteration == 1
    out = module.generate(torch.zeros(3, dtype=torch.long), torch.Generator().manual_seed(0))
    assert out.shape == (3, 1, 32, 32) and torch.isfinite(out).all()


def test_cifar10_preset_builds():
    module = CFGDiffusion(n_classes=10, image_size=32, channels=3, preset="cifar10")
    n = sum(p.numel() for p in module.unet.parameters())
    assert 35.5e6 < n < 36.0e6, n  # DDPM reports 35.7M; diffusers gives 35,751,939 with 11 label embeddings
    kinds = [type(b).__name__ for b in module.unet.down_blocks]
    assert kinds == ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"]  # attention at 16×16
    c = module.config
    assert c.block_out_channels == (128, 256, 256, 256) and c.layers_per_block == 2 and c.dropout == 0.1
    assert (c.lr, c.warmup, c.batch_size, c.grad_clip, c.ema_decay) == (2e-4, 5000, 128, 1.0, 0.9999)
    assert module.unet.class_embedding.num_embeddings == 11
    assert set(PRESETS) == {"cifar10", "tiny"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_size=30), "divisible"),
        (dict(p_uncond=1.5), "p_uncond"),
        (dict(p_uncond=-0.1), "p_uncond"),
        (dict(sampling_steps=0), "sampling_steps"),
        (dict(sampling_steps=2000), "cannot exceed num_train_timesteps"),
        (dict(timestep_spacing="log"), "timestep_spacing"),
        (dict(beta_start=0.1, beta_end=0.01), "beta_start < beta_end"),
        (dict(block_out_channels=(12, 24)), "norm_groups"),
        (dict(guidance_w=-1.0), "guidance_w"),
    ],
)
def test_bad_settings(kwargs, match):
    args = dict(n_classes=10, image_size=32, channels=1, preset="tiny") | kwargs
    with pytest.raises(GmvError, match=match):
        CFGDiffusion(**args)


def test_bad_image_size_names_valid_sizes():
    with pytest.raises(GmvError, match=r"4, 8, 12, 16"):
        CFGDiffusion(10, 30, 1, "tiny")


def test_ddim_with_oracle_eps_recovers_point_mass():
    # For data concentrated on one image x0(c) per label, the optimal ε is (x_t − √ᾱ_t·x0)/√(1 − ᾱ_t);
    # deterministic DDIM driven by it must land on x0(c). This checks timesteps, ᾱ and the update.
    module = CFGDiffusion(3, 8, 1, "tiny", **(SMALL | dict(sampling_steps=10)))
    abar = module.noise_scheduler.alphas_cumprod
    level = torch.tensor([-0.6, 0.1, 0.8, 0.0])  # x0 per label; index 3 is ∅

    def oracle(x, t, labels, guidance_w, use_ema=True):
        def e(lab):
            a = abar[t].view(-1, 1, 1, 1)
            return (x - a.sqrt() * level[lab].view(-1, 1, 1, 1)) / (1 - a).sqrt()
        if guidance_w is None:
            return e(labels)
        return (1 + guidance_w) * e(labels) - guidance_w * e(torch.full_like(labels, module.null_label))

    module.eps = oracle
    labels = torch.tensor([0, 1, 2, 2])
    out = module.sample(labels, torch.Generator().manual_seed(0), guidance_w=None)
    assert torch.allclose(out, level[labels].view(-1, 1, 1, 1).expand_as(out), atol=1e-3)
    # guidance pushes away from the unconditional mean 0: x0 + w·(x0 − 0) = 1.5·x0 (clipped to [−1, 1])
    out = module.sample(labels, torch.Generator().manual_seed(0), guidance_w=0.5)
    assert torch.allclose(out, (1.5 * level[labels]).clamp(-1, 1).view(-1, 1, 1, 1).expand_as(out), atol=1e-2)


def test_ema_warmup_schedule():
    module = CFGDiffusion(10, 32, 1, "tiny", ema_decay=0.999, **SMALL)
    assert module.ema_decay_now() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    module._iteration.fill_(100_000)
    assert module.ema_decay_now() == 0.999
    assert CFGDiffusion(10, 32, 1, "tiny", ema_warmup=False, **SMALL).ema_decay_now() == 0.995
