"""The paper's GPU-form studies (`conf/experiment/paper/*` without `_cpu`: published presets, VGG-16
features) have never run on a GPU here; this runs each of them end to end on the CPU for 2 training
iterations, at the smallest data sizes, so a config or code path that only the big forms use cannot rot.

Slow (the published networks take 70–100 s per iteration on 2 cores): `bash scripts/test.sh -m slow`.
VGG-16 runs with random weights (`embedder.pretrained=false`: the ImageNet file is not here).
"""

from __future__ import annotations

import json

import pytest

from test_pipeline import cfg_of

FORMS = {
    "paper/cifar10_biggan": "cifar10_train_2000pc.npz",
    "paper/cifar10_cfg_diffusion": "cifar10_train_2000pc.npz",
    "paper/celeba_stylegan2": "celeba_100ids_64px.npz",
    "paper/mnist_biggan": None,  # MNIST is not offline: the bundled digits at the study's 32 px stand in
}

SMALL = ["trainer=cpu", "train.max_iterations=2", "train.checkpoint_every=0", "train.sample_every=0",
         "generator.batch_size=4", "generate.m=8", "generate.batch_size=8",
         "embedder.batch_size=16", "matcher=flat", "matcher.rerank=0", "valuation.k=3", "valuation.reference_size=0",
         "valuation.tsne_cap=40", "valuation.ra3_n=2", "quality.inception=false", "logger.mode=disabled",
         "num_threads=2"]


@pytest.mark.slow
@pytest.mark.parametrize("experiment", sorted(FORMS))
def test_gpu_form_runs_two_iterations_on_cpu(experiment, shared_data, tmp_path):
    from gmv.pipeline import run_study

    source = FORMS[experiment]
    data = [f"data.source={shared_data / source}"] if source else ["data.source=digits", "data.image_size=32"]
    limit = "data.split.per_class_limit=2" if "celeba" in experiment else "data.split.per_class_limit=4"
    extra = ["generator.sampling_steps=2"] if "diffusion" in experiment else []
    if "pretrained" in cfg_of(f"experiment={experiment}").embedder:  # VGG-16: random weights (none offline)
        extra.append("embedder.pretrained=false")
    cfg = cfg_of(f"experiment={experiment}", *data, limit, *SMALL, *extra, f"cache_dir={tmp_path / 'cache'}")
    pixels = "mnist" in experiment  # the MNIST study values pixels (32×32 grey → 1,024-d); the others VGG-16 fc7
    assert cfg.generator.preset in ("cifar10", "celeba64") and cfg.embedder.name == ("pixels" if pixels else "vgg16")
    metrics = run_study(cfg, tmp_path / "run")
    assert metrics["train_iterations"] == 2 and metrics["n_generated"] == 8
    assert metrics["embedding_dim"] == (1024 if pixels else 4096)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["study"] == experiment and (tmp_path / "run" / "values.csv").is_file()
