#!/usr/bin/env bash
# Runs every study of the paper in sequence (each a `gmv experiment=…`), then the three-generator
# comparison and a K × PQ sweep with their reports.
#   bash scripts/reproduce_paper.sh          the GPU-scale forms (published presets, VGG-16 features;
#                                            downloads CIFAR-10 / MNIST via torchvision, CelebA from data/)
#   bash scripts/reproduce_paper.sh --cpu    the *_cpu forms on the real subsets in $GMV_DATA
#                                            (default ../shared/data), 20–60 min each on 2 cores
# Extra arguments after the flag go to every gmv call (e.g. logger.mode=online cache_dir=/scratch/gmv).
# Stages are cached: rerunning after an interruption continues where it stopped.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
gmv="$root/.venv/bin/gmv"
report="$root/.venv/bin/gmv-report"

cpu=false
if [ "${1:-}" = "--cpu" ]; then cpu=true; shift; fi

if $cpu; then
  data="${GMV_DATA:-$root/../shared/data}"
  cifar="data.source=$data/cifar10_train_2000pc.npz"
  celeba="data.source=$data/celeba_100ids_64px.npz"
  resnet="embedder.weights=$data/cifar10_resnet20-12fca82f.th"
  for f in cifar10_train_2000pc.npz celeba_100ids_64px.npz cifar10_resnet20-12fca82f.th; do
    [ -f "$data/$f" ] || { echo "reproduce_paper.sh --cpu: $data/$f not found (set GMV_DATA)" >&2; exit 2; }
  done
  "$gmv" experiment=paper/cifar10_biggan_cpu "$cifar" "$resnet" "$@"
  "$gmv" experiment=paper/cifar10_cfg_diffusion_cpu "$cifar" "$resnet" "$@"
  "$gmv" experiment=control/dose_response_cifar10 "$cifar" "$resnet" "$@"   # reuses the diffusion study's X̂
  "$gmv" experiment=paper/celeba_stylegan2_cpu "$celeba" "$resnet" "$@"
  # the comparison runs on the BigGAN study's split: it reuses that generator; StyleGAN2 and diffusion train
  "$gmv" -m experiment=compare/cifar10_cpu "$cifar" "$resnet" hydra.sweep.dir=multirun/compare/cifar10_cpu "$@"
  "$report" multirun/compare/cifar10_cpu
  # K × PQ sweep on the BigGAN study: no retraining, no re-embedding (cached)
  "$gmv" -m experiment=paper/cifar10_biggan_cpu "$cifar" "$resnet" valuation.k=1,5,10,50,100 matcher=pq \
    matcher.m=8,16,32,64 matcher.rerank=0 valuation.tsne_cap=300 study=sweep/cifar10_biggan_cpu_k_pq \
    hydra.sweep.dir=multirun/sweep/cifar10_biggan_cpu_k_pq "$@"
  "$report" multirun/sweep/cifar10_biggan_cpu_k_pq
else
  "$gmv" experiment=paper/cifar10_biggan data.download=true "$@"
  "$gmv" experiment=paper/cifar10_cfg_diffusion data.download=true "$@"
  "$gmv" experiment=paper/celeba_stylegan2 "$@"
  "$gmv" experiment=paper/mnist_biggan data.download=true "$@"
  "$gmv" -m experiment=compare/cifar10_cpu data.source=cifar10 data.download=true generator.preset=cifar10 \
    trainer=gpu train.max_iterations=100000 embedder=vgg16 study=compare/cifar10 \
    hydra.sweep.dir=multirun/compare/cifar10 "$@"
  "$report" multirun/compare/cifar10
fi
