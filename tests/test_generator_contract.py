"""The generator contract (gmv/generators/base.py), once for every generator: BigGAN, StyleGAN2, CFG
diffusion and the dummy generator of tests/dummy_generator.py (the "Adding a generator" recipe).

Each generator trains 4 iterations on 16×16 grey digits (3 classes) through the training harness, with
tiny networks; the tests check shapes, ranges, determinism, labels, iteration counting, checkpoints,
bit-identical resume, sampling-only settings, parameter counts, early errors and the typed Hydra config.
The last test runs a whole study on the dummy generator through the unchanged pipeline.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from dummy_generator import DummyGenerator
from gmv.data.sources import load_digits
from gmv.data.split import split_imageset, stratified_split
from gmv.errors import GmvError
from gmv.generators import register_generator
from gmv.generators.base import GeneratorModule, coerce_settings
from gmv.generators.biggan import BigGAN, BigGANConfig
from gmv.generators.cfg_diffusion import CFGDiffusion
from gmv.generators.stylegan2 import StyleGAN2
from gmv.training.datamodule import ImageSetDataModule
from gmv.training.train import train_generator

CONF = Path(__file__).resolve().parents[1] / "conf"
#: the smallest whole study (as in tests/test_pipeline.py)
TINY = ["experiment=smoke", "logger.mode=disabled", "train.max_iterations=3", "generate.m=40",
        "data.split.per_class_limit=12", "valuation.tsne_cap=60", "valuation.ra3_n=2", "valuation.k=3"]
ITERS = 4
TRAINER = {"accelerator": "cpu", "devices": 1, "enable_model_summary": False}


@dataclass(frozen=True)
class Spec:
    name: str  # its `generator=` option
    cls: type
    settings: dict  # tiny networks for 16×16 grey images
    sampling: dict  # a change of sampling-only settings that changes the samples


SPECS = [
    Spec("biggan", BigGAN, dict(g_width=4, d_width=8, batch_size=8, standing_stats=2, diffaug="translation,cutout"),
         dict(standing_stats=1)),
    Spec("stylegan2", StyleGAN2, dict(batch_size=8, channel_base=256, channel_max=32, r1_interval=2,
                                      diffaug="color,translation,cutout"),
         dict(truncation_psi=0.5)),
    Spec("cfg_diffusion", CFGDiffusion, dict(block_out_channels=(8, 16), norm_groups=4, attention_resolutions=(8,),
                                             sampling_steps=2, batch_size=8), dict(guidance_w=2.0)),
    Spec("dummy", DummyGenerator, dict(batch_size=8), dict(temperature=0.5)),
]


@pytest.fixture(scope="module", autouse=True)
def dummy_registered():
    register_generator("dummy", DummyGenerator)  # its one line of config


def halves():
    data = load_digits(image_size=16, channels=1)
    split = stratified_split(data.labels, ratio=0.5, classes=[0, 1, 2], seed=0, per_class_limit=16)
    return split_imageset(data, split)


def build(spec: Spec, n_classes: int = 3, seed: int = 0, **more) -> GeneratorModule:
    torch.manual_seed(seed)
    return spec.cls(n_classes=n_classes, image_size=16, channels=1, preset="tiny", **(spec.settings | more))


def fit(module, out_dir, iterations: int = ITERS, conditional: bool = True, **kw):
    dm = ImageSetDataModule(halves()[0], batch_size=module.batch_size, seed=1, conditional=conditional)
    kw = {"checkpoint_every": 2, "sample_every": 0} | kw
    return train_generator(module, dm, iterations, out_dir, trainer_cfg=TRAINER, seed=5, **kw), dm


@pytest.fixture(scope="module", params=SPECS, ids=[s.name for s in SPECS])
def trained(request, tmp_path_factory):
    spec = request.param
    out = tmp_path_factory.mktemp(spec.name)
    module = build(spec)
    result, dm = fit(module, out)
    return spec, module, result, out


def sample(module, labels, seed: int) -> torch.Tensor:
    return module.generate(torch.as_tensor(labels), torch.Generator().manual_seed(seed))


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- training


def test_trains_counting_generator_iterations(trained):
    spec, module, result, out = trained
    assert module.iteration == result["iterations"] == ITERS
    # every iteration consumes real_batches_per_iteration real batches (BigGAN: n_dis)
    assert result["images"] == ITERS * module.real_batches_per_iteration * module.batch_size
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "checkpoints" / "iter_000002.ckpt").is_file()
    for name, p in module.named_parameters():
        assert torch.isfinite(p).all(), name


def test_resume_is_bit_identical(trained, tmp_path):
    spec, module, _, out = trained
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(out / "checkpoints" / "iter_000002.ckpt", tmp_path / "checkpoints" / "last.ckpt")
    resumed = build(spec, seed=123)  # different initial weights: everything must come from the checkpoint
    result, _ = fit(resumed, tmp_path)
    assert result["start_iteration"] == 2 and resumed.iteration == ITERS
    assert same_state(resumed.state_dict(), module.state_dict())


def test_a_longer_run_continues_a_finished_shorter_one(trained, tmp_path):
    """No schedule may depend on the training length: a run stopped at 2 iterations, continued to 4 from its
    last checkpoint, ends where a 4-iteration run ends (what the train stage's continuation relies on)."""
    spec, module, _, _ = trained
    fit(build(spec), tmp_path / "short", iterations=2)
    (tmp_path / "long" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "short" / "checkpoints" / "last.ckpt", tmp_path / "long" / "checkpoints" / "last.ckpt")
    longer = build(spec, seed=123)
    result, _ = fit(longer, tmp_path / "long")
    assert result["start_iteration"] == 2 and longer.iteration == ITERS
    assert same_state(longer.state_dict(), module.state_dict())


def test_unconditional(tmp_path):
    for spec in SPECS:
        module = build(spec, n_classes=1)
        fit(module, tmp_path / spec.name, iterations=1, conditional=False, checkpoint_every=0)
        x = sample(module, [0, 0, 0], seed=0)
        assert x.shape == (3, 1, 16, 16) and torch.isfinite(x).all(), spec.name
        with pytest.raises(GmvError, match="class ids"):
            sample(module, [1], seed=0)


# --------------------------------------------------------------------------- sampling


def test_generate_shape_range_and_dtype(trained):
    module = trained[1]
    x = sample(module, [0, 1, 2, 2, 1], seed=1)
    assert x.shape == (5, 1, 16, 16) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= -1.0 and x.max() <= 1.0
    assert sample(module, torch.zeros(0, dtype=torch.long), seed=1).shape[0] == 0


def test_generate_is_a_function_of_the_generator_state(trained):
    module = trained[1]
    labels = [0, 1, 2, 0]
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = sample(module, labels, seed=7)
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is neither used nor moved
    torch.manual_seed(12345)
    assert torch.equal(sample(module, labels, seed=7), a)
    assert not torch.equal(sample(module, labels, seed=8), a)


def test_labels_condition_the_samples_and_are_checked(trained):
    module = trained[1]
    zeros, twos = sample(module, [0, 0, 0], seed=3), sample(module, [2, 2, 2], seed=3)
    assert (zeros - twos).abs().mean() > 1e-4
    for bad in ([3], [-1], [0, 5]):
        with pytest.raises(GmvError, match=r"class ids must lie in \[0, 3\)"):
            sample(module, bad, seed=0)
    with pytest.raises(GmvError, match="class ids"):
        module.batch_labels(torch.tensor([0, 3]))


def test_generate_uses_the_ema_weights(trained):
    module = trained[1]
    labels = [0, 1, 2]
    expected = sample(module, labels, seed=4)
    live = [p for net in module.networks().values() for p in net.parameters()]
    saved = [p.detach().clone() for p in live]
    with torch.no_grad():
        for p in live:
            p.add_(1.0)
    try:
        assert torch.equal(sample(module, labels, seed=4), expected)
    finally:
        with torch.no_grad():
            for p, s in zip(live, saved):
                p.copy_(s)


def test_checkpoint_round_trip(trained):
    spec, module, _, out = trained
    loaded = spec.cls.load_from_checkpoint(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert loaded.config == module.config and loaded.preset == "tiny" and loaded.iteration == ITERS
    assert torch.equal(sample(loaded, [0, 1, 2], seed=9), sample(module, [0, 1, 2], seed=9))
    # plain hyper-parameters: hparams.yaml and torch.load(weights_only=True) can read them
    scalar = (int, float, str, bool)
    for k, v in module.hparams.items():
        assert type(v) in scalar or (type(v) is list and all(type(x) in scalar for x in v)), (k, v)


def test_sampling_fields_change_the_samples_not_the_training(trained, tmp_path):
    spec, module, _, out = trained
    other = build(spec, **spec.sampling)
    fit(other, tmp_path)
    # the weights as trained, before any test sampled from them (BigGAN's generate rewrites EMA BatchNorm buffers)
    as_trained = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert same_state(other.state_dict(), as_trained)
    assert other.training_settings() == module.training_settings()
    assert other.sampling_settings() != module.sampling_settings()
    assert not torch.equal(sample(other, [0, 1, 2], seed=2), sample(module, [0, 1, 2], seed=2))


# --------------------------------------------------------------------------- settings


def test_settings_batch_size_and_parameter_counts(trained):
    spec, module, _, _ = trained
    assert spec.cls.resolve_settings(16, "tiny", **spec.settings) == module.config  # without building networks
    settings = module.settings()
    assert set(spec.cls.sampling_fields) <= set(settings)
    assert module.training_settings() | module.sampling_settings() == settings
    assert not set(module.training_settings()) & set(module.sampling_settings())
    assert json.loads(json.dumps(settings)) == settings  # plain values (tuples are lists)
    for k, v in spec.settings.items():
        assert settings[k] == (list(v) if isinstance(v, tuple) else v)
    assert module.batch_size == module.config.batch_size == spec.settings["batch_size"]
    counts = module.parameter_counts()
    assert set(counts) == set(module.networks()) | {"total"}
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total") > 0
    assert counts["total"] < sum(p.numel() for p in module.parameters())  # the EMA copies are not counted


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
@pytest.mark.parametrize("change, message", [
    (dict(preset="no_such"), "unknown .* preset 'no_such'"),
    (dict(no_such_setting=1), r"unknown .* setting\(s\) \['no_such_setting'\]"),
    (dict(batch_size="abc"), "batch_size: Value 'abc' of type 'str' could not be converted to Integer"),
    (dict(batch_size=2.5), "batch_size: Value '2.5' of type 'float' could not be converted to Integer"),
    (dict(batch_size=0), "batch_size must be ≥ 1|batch_size must be a positive integer"),
    (dict(n_classes=0), "n_classes"),
    (dict(channels=2), "channels"),
])
def test_bad_settings_raise_before_any_network_is_built(spec, change, message):
    args = dict(n_classes=3, image_size=16, channels=1, preset="tiny") | spec.settings | change
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with pytest.raises(GmvError, match=message):
        spec.cls(**args)
    assert torch.equal(torch.get_rng_state(), before)  # no weights were initialised


def test_settings_are_typed_by_omegaconf():
    """OmegaConf's structured config of the settings dataclass types them (lists back to tuples; fixed-length
    tuples checked here); every bad field is named in one GmvError."""
    from omegaconf import OmegaConf

    cfg = coerce_settings(BigGANConfig(g_width="8", betas=[0, 0.9], lr_g=1), "BigGAN")
    assert cfg.g_width == 8 and cfg.betas == (0.0, 0.9) and type(cfg.lr_g) is float
    module = BigGAN(3, 16, 1, "tiny", g_width=4, betas=OmegaConf.create([0.0, 0.99]), z_dim="60")
    assert module.config.betas == (0.0, 0.99) and module.config.z_dim == 60 and module.hparams["betas"] == [0.0, 0.99]
    unet = CFGDiffusion(3, 16, 1, "tiny", block_out_channels=OmegaConf.create([8, 16]), norm_groups=4,
                        attention_resolutions=OmegaConf.create([]))
    assert unet.config.block_out_channels == (8, 16) and unet.config.attention_resolutions == ()
    with pytest.raises(GmvError, match=r"betas must be a list of 2 values, got \(0.5,\)"):
        BigGAN(3, 16, 1, "tiny", betas=(0.5,))
    with pytest.raises(GmvError, match="mid_attention: Value 'maybe' is not a valid bool"):
        CFGDiffusion(3, 16, 1, "tiny", mid_attention="maybe")
    with pytest.raises(GmvError, match="g_width: .*'x'.*; z_dim: .*'1.5'"):
        BigGAN(3, 16, 1, "tiny", g_width="x", z_dim=1.5)


# --------------------------------------------------------------------------- Hydra config


def compose_config(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_typed_hydra_config(spec):
    cfg = compose_config(f"generator={spec.name}")
    assert cfg.generator._target_ == f"{spec.cls.__module__}.{spec.cls.__qualname__}"
    assert cfg.generator.preset == spec.cls.default_preset
    fields = {k: v for k, v in cfg.generator.items() if k not in ("_target_", "preset")}
    assert set(fields) == set(build(spec).settings()) and all(v is None for v in fields.values())
    assert compose_config(f"generator={spec.name}", "generator.batch_size=8").generator.batch_size == 8
    with pytest.raises(ConfigCompositionException) as wrong_type:
        compose_config(f"generator={spec.name}", "generator.batch_size=abc")
    assert "Value 'abc' of type 'str' could not be converted to Integer" in str(wrong_type.value.__cause__)
    with pytest.raises(ConfigCompositionException) as misspelt:
        compose_config(f"generator={spec.name}", "generator.batch_sise=8")
    assert "Key 'batch_sise' not in" in str(misspelt.value.__cause__)


# --------------------------------------------------------------------------- a fourth generator


def test_a_whole_study_on_the_dummy_generator(tmp_path):
    """tests/dummy_generator.py through the unchanged pipeline: train, sample, value, report — and its
    declared sampling-only setting changes the samples without retraining."""
    from gmv.pipeline import run_study

    cache = tmp_path / "cache"
    m = run_study(compose_config(*TINY, "generator=dummy", f"cache_dir={cache}"), tmp_path / "a")
    assert m["generator"] == "dummygenerator" and m["train_iterations"] == 3
    assert np.isfinite(m["method/gmvaluator/auroc"]) and (tmp_path / "a" / "values.csv").is_file()
    samples = np.load(tmp_path / "a" / "samples.npz")
    assert samples["images"].shape == (40, 16, 16, 1) and set(np.unique(samples["labels"])) <= set(range(10))
    run_study(compose_config(*TINY, "generator=dummy", f"cache_dir={cache}", "generator.temperature=0.5"),
              tmp_path / "b")
    a, b = (json.loads((tmp_path / d / "stages.json").read_text()) for d in "ab")
    assert b["train"]["reused"] is True and b["train"]["key"] == a["train"]["key"]
    assert b["generate"]["reused"] is False and b["generate"]["key"] != a["generate"]["key"]
    assert not np.array_equal(np.load(tmp_path / "b" / "samples.npz")["images"], samples["images"])
