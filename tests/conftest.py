import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

# ../shared/data beside the checkout; GMV_SHARED_DATA points elsewhere (e.g. from a git worktree)
SHARED = Path(os.environ.get("GMV_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


@pytest.fixture(autouse=True, scope="session")
def generator_configs():
    """The typed `generator=…` and `matcher=…` options (gmv/generators/__init__.py, gmv/valuation/matchers.py),
    for every test that composes conf/."""
    from gmv.generators import register_configs
    from gmv.valuation.matchers import register_configs as register_matcher_configs

    register_configs()
    register_matcher_configs()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (CI has it); tests that need it skip cleanly without it."""
    if not (SHARED / "cifar10_train_2000pc.npz").is_file():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


def clustered(n: int, d: int, n_clusters: int, seed: int, spread: float = 3.0) -> np.ndarray:
    """Gaussian blobs: unit-variance noise around centres drawn with `spread` standard deviation."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, (n_clusters, d))
    return (centres[rng.integers(0, n_clusters, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models run far faster on one thread than on two busy shared cores (measured ~8× here)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
