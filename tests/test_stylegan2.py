"""StyleGAN2's own behaviour (fast, CPU): building blocks, lazy R1 / path length, style mixing, presets, the
noise inputs, StyleGAN2-only settings. What every generator must do: tests/test_generator_contract.py."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from gmv.data.sources import load_digits
from gmv.errors import GmvError
from gmv.generators.stylegan2 import PRESETS, StyleGAN2
from gmv.models.stylegan2_discriminator import MinibatchStdLayer
from gmv.models.stylegan2_layers import downsample2d, fir_filter, modulated_conv2d, upsample2d


def _trainer(**kw) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kw)


# ── building blocks ──────────────────────────────────────────────────────────────────────────────


def test_modulated_conv_grouped_matches_per_sample_loop():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, 8)
    weight = torch.randn(7, 5, 3, 3)
    styles = torch.rand(3, 5) * 2 + 0.1
    for demod in (True, False):
        got = modulated_conv2d(x, weight, styles, demodulate=demod, padding=1)
        ref = []
        for n in range(3):
            w = weight * styles[n][None, :, None, None]  # O×I×3×3
            if demod:
                w = w / torch.sqrt(w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
            ref.append(F.conv2d(x[n:n + 1], w, padding=1))
        torch.testing.assert_close(got, torch.cat(ref), rtol=1e-4, atol=1e-5)
        unfused = modulated_conv2d(x, weight, styles, demodulate=demod, padding=1, fused=False)
        torch.testing.assert_close(unfused, got, rtol=1e-4, atol=1e-5)


def test_demodulation_gives_unit_variance_per_output_channel():
    torch.manual_seed(1)
    x = torch.randn(4, 64, 32, 32)
    weight = torch.randn(16, 64, 3, 3) * 5.0  # arbitrary scale: demodulation removes it
    styles = torch.rand(4, 64) * 3 + 0.2
    y = modulated_conv2d(x, weight, styles, demodulate=True, padding=1)[:, :, 1:-1, 1:-1]
    std = y.std(dim=[2, 3])  # N×O, per sample and output channel
    assert std.min() > 0.85 and std.max() < 1.15, (std.min(), std.max())


def test_fir_resampling_is_bilinear_inside_and_keeps_dc():
    f = fir_filter()
    torch.manual_seed(2)
    x = torch.randn(2, 3, 8, 8)
    up = upsample2d(x, f)
    assert up.shape == (2, 3, 16, 16) and downsample2d(x, f).shape == (2, 3, 4, 4)
    # the [1, 3, 3, 1] ×2 upsampler is bilinear interpolation away from the (zero-padded) border
    bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up[:, :, 1:-1, 1:-1], bilinear[:, :, 1:-1, 1:-1])
    ones = torch.ones(1, 1, 8, 8)
    torch.testing.assert_close(downsample2d(ones, f)[:, :, 1:-1, 1:-1], torch.ones(1, 1, 2, 2))


def test_minibatch_std_appends_one_channel():
    x = torch.randn(6, 5, 4, 4)  # 6 not divisible by 4 → group of 3
    y = MinibatchStdLayer(4)(x)
    assert y.shape == (6, 6, 4, 4)
    torch.testing.assert_close(y[:, :5], x)


# ── training ─────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    digits = load_digits(image_size=32, limit=64)
    x = torch.from_numpy(digits.to_float())
    y = torch.from_numpy(digits.labels)
    assert x.shape == (64, 1, 32, 32) and int(y.max()) <= 9
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    module = StyleGAN2(n_classes=10, image_size=32, channels=1, preset="tiny", r1_interval=2)
    before = {k: v.clone() for k, v in module.G.state_dict().items()}

    r1_calls: list[tuple[int, float]] = []
    original = module._r1_loss

    def spy(xb, yb):
        loss = original(xb, yb)
        r1_calls.append((module.iteration, float(loss.detach())))
        return loss

    module._r1_loss = spy
    trainer = _trainer(max_epochs=1, limit_train_batches=3)
    trainer.fit(module, loader)
    del module._r1_loss
    return module, trainer, before, r1_calls


def test_tiny_trains_three_iterations(trained):
    module, trainer, before, r1_calls = trained
    assert module.iteration == 3
    metrics = trainer.callback_metrics
    for key in ("loss/d", "loss/g", "loss/r1"):
        assert key in metrics and torch.isfinite(metrics[key]), key
    for name, p in list(module.G.named_parameters()) + list(module.D.named_parameters()):
        assert torch.isfinite(p).all(), name
    changed = [k for k, v in module.G.state_dict().items() if not torch.equal(v, before[k])]
    assert any("synthesis" in k for k in changed) and any("mapping" in k for k in changed)
    # lazy R1 with r1_interval=2 on iterations 0 and 2, and a real (positive, finite) penalty
    assert [it for it, _ in r1_calls] == [0, 2]
    assert all(math.isfinite(v) and v > 0 for _, v in r1_calls)
    # lazy-regularisation Adam adjustment on D: lr·2/3, β2^(2/3)
    opt_g, opt_d = [o.optimizer if hasattr(o, "optimizer") else o for o in trainer.optimizers]
    assert opt_d.param_groups[0]["lr"] == pytest.approx(0.0025 * 2 / 3)
    assert opt_d.param_groups[0]["betas"][1] == pytest.approx(0.99 ** (2 / 3))
    assert opt_g.param_groups[0]["lr"] == pytest.approx(0.0025)  # pl_weight 0: no adjustment


def test_noise_maps_come_from_the_callers_generator(trained):
    module = trained[0]
    for layer_name, p in module.G_ema.named_parameters():  # make the noise inputs matter
        if layer_name.endswith("noise_strength"):
            p.data.fill_(0.5)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    a = module.generate(labels, torch.Generator().manual_seed(7))
    torch.manual_seed(12345)  # global RNG must not matter
    assert torch.equal(module.generate(labels, torch.Generator().manual_seed(7)), a)
    # the same z with other noise maps gives other images: the noise draws come after z
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(6, module.config.z_dim, generator=gen)
    with torch.no_grad():
        other_noise = module.G_ema(z, labels, generator=torch.Generator().manual_seed(99))
    assert not torch.allclose(a, other_noise.clamp(-1, 1))


def test_unconditional_with_style_mixing_and_path_length():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    y = torch.zeros(8, dtype=torch.long)
    module = StyleGAN2(n_classes=1, image_size=16, channels=3, preset="tiny",
                       style_mixing_prob=1.0, pl_weight=2.0, pl_interval=1, r1_interval=1)
    trainer = _trainer(max_epochs=1, limit_train_batches=2)
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=4))
    assert module.iteration == 2
    assert torch.isfinite(trainer.callback_metrics["loss/pl"]) and module.pl_mean > 0
    out = module.generate(torch.zeros(3, dtype=torch.long), torch.Generator().manual_seed(0))
    assert out.shape == (3, 3, 16, 16) and torch.isfinite(out).all()


# ── presets and errors ───────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("preset,size,n_classes", [("cifar10", 32, 10), ("celeba64", 64, 1)])
def test_full_presets_build_and_run(preset, size, n_classes):
    torch.manual_seed(0)
    module = StyleGAN2(n_classes=n_classes, image_size=size, channels=3, preset=preset)
    counts = module.parameter_counts()
    print(f"{preset}: G {counts['G']:,} D {counts['D']:,} parameters")
    assert 15e6 < counts["G"] < 30e6
    labels = torch.arange(2) % n_classes
    with torch.no_grad():
        img = module.G(torch.randn(2, module.config.z_dim), labels)
        logits = module.D(img, labels)
    assert img.shape == (2, 3, size, size) and logits.shape == (2,)
    assert torch.isfinite(logits).all()


def test_presets_exist():
    assert set(PRESETS) >= {"cifar10", "celeba64", "tiny"}
    c = PRESETS["cifar10"]
    assert (c.lr, c.betas, c.r1_gamma, c.batch_size, c.mapping_layers) == (0.0025, (0.0, 0.99), 0.01, 64, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=48), "power-of-two"), (dict(image_size=4), "power-of-two"), (dict(image_size=0), "power-of-two"),
    (dict(d_architecture="skip"), "d_architecture"), (dict(r1_interval=0), "r1_interval"),
    (dict(style_mixing_prob=1.5), "style_mixing_prob"), (dict(betas=(0.0, 1.5)), "betas"),
    (dict(ema_rampup=0.0), "ema_rampup"), (dict(truncation_psi=-1.0), "truncation_psi"),
    (dict(diffaug="flip"), "DiffAugment"),
])
def test_bad_settings_raise(kwargs, match):
    args = dict(n_classes=10, image_size=32, channels=3, preset="tiny") | kwargs
    with pytest.raises(GmvError, match=match):
        StyleGAN2(**args)


def test_bad_image_size_message_names_valid_sizes():
    with pytest.raises(GmvError, match="power-of-two.*32"):
        StyleGAN2(n_classes=1, image_size=48, channels=3)


def test_diffaugment_is_applied_to_every_image_d_sees():
    """diffaug="cutout": D's inputs — fakes, reals, the reals of R1, the fakes of G's step — each carry a
    cut-out square of zeros; without it the reals reach D unchanged."""
    digits = load_digits(image_size=32, limit=8)
    x, y = torch.from_numpy(digits.to_float()), torch.from_numpy(digits.labels)

    def d_inputs(policy: str) -> list[torch.Tensor]:
        torch.manual_seed(0)
        module = StyleGAN2(n_classes=10, image_size=32, channels=1, preset="tiny", r1_interval=1, diffaug=policy)
        seen, forward = [], module.D.forward
        module.D.forward = lambda img, c: (seen.append(img.detach().clone()), forward(img, c))[1]
        _trainer(max_epochs=1, limit_train_batches=1).fit(module, DataLoader(TensorDataset(x, y), batch_size=8))
        return seen

    plain = d_inputs("")
    assert len(plain) == 4 and torch.equal(plain[1], x) and torch.equal(plain[2], x)  # D(fake), D(x), R1, G
    seen = d_inputs("cutout")
    assert len(seen) == 4
    for img in seen:
        cut = (img == 0) & (x != 0)  # zeros the cut-out made (digits' background is −1)
        assert cut.flatten(1).sum(1).min() >= 16  # every image lost at least a 4 × 4 patch to the cut-out
    assert not torch.equal(seen[1], x) and not torch.equal(seen[1], seen[2])  # R1 draws its own augmentation
