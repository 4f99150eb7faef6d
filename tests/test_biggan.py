"""BigGAN's own behaviour: networks, DiffAugment, presets, the n_dis and EMA schedules, BigGAN-only settings
(fast, CPU). What every generator must do is tested once, in tests/test_generator_contract.py."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from gmv.data.sources import load_digits
from gmv.errors import GmvError
from gmv.generators.biggan import PRESETS, BigGAN
from gmv.models.biggan import Discriminator, Generator
from gmv.models.diffaugment import diff_augment, rand_cutout, rand_translation

BATCH = 8
TINY = dict(batch_size=BATCH, diffaug="color,translation,cutout")  # small standing-stats batches


def _trainer(max_steps: int) -> L.Trainer:
    return L.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


def _digits_loader(n_classes: int = 10) -> DataLoader:
    s = load_digits(image_size=32, channels=1, limit=64)
    x = torch.from_numpy(s.to_float())  # 64×1×32×32 in [−1, 1]
    y = torch.from_numpy(s.labels) if n_classes > 1 else torch.zeros(len(s), dtype=torch.long)
    return DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, drop_last=True)


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def trained():
    """Tiny BigGAN, 3 generator iterations (n_dis = 2: 6 D steps + 3 G steps = 9 optimiser steps)."""
    torch.manual_seed(0)
    module = BigGAN(n_classes=10, image_size=32, channels=1, preset="tiny", **TINY)
    trainer = _trainer(max_steps=9)
    trainer.fit(module, _digits_loader())
    return module, trainer


# --- training --------------------------------------------------------------------------------


def test_tiny_trains_three_iterations(trained):
    module, trainer = trained
    assert module.config.n_dis == 2
    assert module.iteration == 3
    assert int(module._d_updates) == 6
    assert trainer.global_step == 9
    metrics = trainer.callback_metrics
    for key in ("loss/d", "loss/g", "score/real", "score/fake", "lr/g", "lr/d"):
        assert key in metrics and torch.isfinite(metrics[key]), key
    for name, p in module.named_parameters():
        assert torch.isfinite(p).all(), name
    # ema_start = 0: the EMA generator has been averaging, so it lags behind G
    g = dict(module.G.named_parameters())
    ema = dict(module.G_ema.named_parameters())
    assert g.keys() == ema.keys()
    assert any(not torch.equal(g[k], ema[k]) for k in g)
    assert not any(p.requires_grad for p in module.G_ema.parameters())


def test_unconditional_and_ema_before_start():
    torch.manual_seed(0)
    module = BigGAN(n_classes=1, image_size=32, channels=1, preset="tiny", n_dis=1, ema_start=100,
                    batch_size=BATCH, standing_stats=0, diffaug="")
    _trainer(max_steps=2).fit(module, _digits_loader(n_classes=1))
    assert module.iteration == 1
    # before ema_start the EMA generator is an exact copy of G, buffers included
    for a, b in zip(module.G.state_dict().values(), module.G_ema.state_dict().values()):
        assert torch.equal(a, b)
    x = module.generate(torch.zeros(3, dtype=torch.long), torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 32, 32) and torch.isfinite(x).all()


# --- presets and settings --------------------------------------------------------------------


def test_cifar10_preset_parameter_counts():
    module = BigGAN(n_classes=10, image_size=32, channels=3, preset="cifar10")
    cfg = module.config
    assert (cfg.g_width, cfg.d_width, cfg.z_dim, cfg.shared_dim) == (96, 96, 80, 128)
    assert (cfg.g_attn_block, cfg.d_attn_block, cfg.batch_size, cfg.n_dis) == (2, 1, 64, 5)
    assert (cfg.lr_g, cfg.lr_d, cfg.betas, cfg.ema_decay, cfg.ema_start) == (2e-4, 2e-4, (0.5, 0.999), 0.9999, 1000)
    assert module.z_chunk == 20 and len(module.G.blocks) == 3 and len(module.D.blocks) == 4
    n_g, n_d = _params(module.G), _params(module.D)
    assert abs(n_g - 9.4e6) <= 0.94e6, n_g
    assert abs(n_d - 2.5e6) <= 0.25e6, n_d


def test_presets_exist():
    assert set(PRESETS) == {"cifar10", "tiny"}
    tiny = PRESETS["tiny"]
    assert tiny.n_dis == 2 and tiny.ema_start == 0 and tiny.batch_size == 32


@pytest.mark.parametrize("size, blocks", [(16, 2), (64, 4)])
def test_other_image_sizes(size, blocks):
    module = BigGAN(n_classes=3, image_size=size, channels=3, preset="tiny", g_width=4, d_width=8)
    assert len(module.G.blocks) == blocks
    z, y = torch.randn(2, module.z_dim), torch.tensor([0, 2])
    x = module.G(z, y)
    assert x.shape == (2, 3, size, size)
    assert module.D(x, y).shape == (2,)


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=48), "16, 32, 64"),
    (dict(image_size=28), "valid image sizes"),
    (dict(n_dis=0), "n_dis"),
    (dict(z_dim=81), "z_dim 81 must split evenly into 4 chunks .* e.g. z_dim=80"),
    (dict(g_attn_block=4), "g_attn_block"),
    (dict(diffaug="flip"), "DiffAugment"),
    (dict(ema_decay=1.0), "ema_decay"),
    (dict(betas=(0.5, 1.0)), "betas must lie in"),
    (dict(g_width=1, g_attn_block=1), "too narrow for self-attention"),
])
def test_bad_settings_raise(kwargs, match):
    args = dict(n_classes=10, image_size=32, channels=3, preset="tiny") | kwargs
    with pytest.raises(GmvError, match=match):
        BigGAN(**args)


# --- building blocks ---------------------------------------------------------------------------


def test_spectral_norm_bounds_weights_and_attention_starts_as_identity():
    g = Generator(n_classes=10, image_size=32, channels=3, width=8, z_dim=40, shared_dim=16, attn_block=2)
    d = Discriminator(n_classes=10, image_size=32, channels=3, width=8, attn_block=1)
    conv = d.blocks[1].conv1
    w = conv.weight.detach().flatten(1)  # spectrally normalised view
    assert torch.linalg.matrix_norm(w, ord=2) == pytest.approx(1.0, abs=0.05)
    x = torch.randn(2, g.attention.channels, 16, 16)
    assert torch.equal(g.attention(x), x)  # σ = 0 at init


def test_diffaugment_policies():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 32, 32, requires_grad=True)
    y = diff_augment(x, "color,translation,cutout")
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    ones = torch.ones(16, 1, 32, 32)
    cut = rand_cutout(ones)
    assert ((cut == 0).float().mean(dim=(1, 2, 3)) <= 0.25 + 1e-6).all()  # a 16×16 square, maybe clipped
    assert (cut == 0).any()
    shifted = rand_translation(ones)
    assert set(shifted.unique().tolist()) <= {0.0, 1.0}
    assert ((shifted == 0).float().mean(dim=(1, 2, 3)) <= 1 - (28 / 32) ** 2 + 1e-6).all()  # ≤ 4 px shifts
    assert torch.equal(diff_augment(x, ""), x)
    with pytest.raises(GmvError, match="DiffAugment"):
        diff_augment(x, "color,rotate")
