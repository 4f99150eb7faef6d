"""`pip install .` gives working `gmv`, `gmv-value`, `gmv-report` and `gmv-trajectory` from any directory (issue 10, item 5).

The wheel is built from the checkout and installed, without its dependencies, into a folder of its own
(they come from the test environment); the commands then run from an unrelated directory with that folder
first on the path, so the installed copy — its package data, not the checkout's conf/ — is what runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pip(*args: str, cwd: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site folder holding the installed wheel, its bin folder, a working directory far from the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    pytest.importorskip("setuptools")
    source = base / "source"  # a copy of what the wheel is built from, so the build leaves the checkout alone
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("gmv", "conf"):
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, source / name)
    _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(base / "dist"), str(source), cwd=base)
    wheels = sorted((base / "dist").glob("gmv-*.whl"))
    assert len(wheels) == 1, wheels
    _pip("install", "--no-deps", "-q", "--target", str(base / "site"), str(wheels[0]), cwd=base)
    (base / "elsewhere").mkdir()
    return base / "site", base / "site" / "bin", base / "elsewhere"


def _run(installed, command: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    site, bin_dir, cwd = installed
    env = {**os.environ, "PYTHONPATH": str(site), "WANDB_MODE": "disabled", "WANDB_SILENT": "true"}
    env.pop("GMV_CONF", None)
    return subprocess.run([str(bin_dir / command), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_wheel_ships_the_config_tree(installed):
    site, _, _ = installed
    shipped = {p.relative_to(site / "gmv" / "conf").as_posix() for p in (site / "gmv" / "conf").rglob("*.yaml")}
    in_checkout = {p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml")}
    assert shipped == in_checkout and "config.yaml" in shipped
    assert not (site / "gmv" / "conf").is_symlink()  # a copy, not the checkout's link


def test_installed_commands_run_from_any_directory(installed):
    site, _, cwd = installed
    where = _run(installed, "gmv", "--cfg", "job", "experiment=smoke")
    assert where.returncode == 0, where.stderr[-2000:]
    assert "generator:" in where.stdout and "valuation:" in where.stdout
    for command in ("gmv-value", "gmv-report", "gmv-trajectory"):
        out = _run(installed, command, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout, (command, out.stderr[-2000:])
    probe = subprocess.run([sys.executable, "-c", "import gmv.cli.main as m; print(m.__file__, m.CONF_DIR)"],
                           cwd=cwd, env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True)
    module_file, conf_dir = probe.stdout.split()
    assert module_file.startswith(str(site)) and conf_dir.startswith(str(site)), probe.stdout


@pytest.mark.slow
def test_installed_gmv_runs_a_study_end_to_end(installed):
    _, _, cwd = installed
    out = _run(installed, "gmv", "experiment=smoke", "train.max_iterations=2", "logger.mode=disabled",
               "hydra.run.dir=run", timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((cwd / "run" / "metrics.json").read_text())
    assert metrics["n_generated"] > 0 and "p_value" in metrics


@pytest.mark.slow
def test_a_fresh_venv_installs_the_wheel_and_runs_the_smoke_study(installed, tmp_path):
    """The acceptance check as a user makes it: a new venv, torch (GMV_TORCH_SPEC, as scripts/setup.sh),
    `pip install` of the wheel with its dependencies, then `gmv experiment=smoke` from another directory."""
    site, _, _ = installed
    wheel = sorted(site.parent.joinpath("dist").glob("gmv-*.whl"))[0]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    torch_spec = os.environ.get("GMV_TORCH_SPEC", "torch==2.14.1 torchvision==0.29.1").split()
    for args in (torch_spec, [str(wheel)]):
        out = subprocess.run([*pip, *args], capture_output=True, text=True, timeout=1800)
        assert out.returncode == 0, out.stderr[-3000:]
    (tmp_path / "elsewhere").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GMV_CONF", "VIRTUAL_ENV")}
    out = subprocess.run([str(venv / "bin" / "gmv"), "experiment=smoke", "logger.mode=disabled", "hydra.run.dir=run"],
                         cwd=tmp_path / "elsewhere", env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "elsewhere" / "run" / "metrics.json").is_file()
    assert "Average value v1" in out.stdout


def test_builds_print_no_setuptools_warning_box(tmp_path):
    """The editable build (what `pip install -e .` and scripts/setup.sh run) and the wheel build through the
    PEP 517 / 660 hooks: no warning box from setuptools (the import-finder notice, a license deprecation)."""
    pytest.importorskip("setuptools")
    source = tmp_path / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("gmv", "conf"):
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, source / name)
    for hook in ("build_editable", "build_wheel"):
        (tmp_path / "out" / hook).mkdir(parents=True)
        code = (f"import sys, warnings; warnings.simplefilter('always'); from setuptools import build_meta as b; "
                f"b.{hook}(sys.argv[1])")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out" / hook)], cwd=source,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "!!" not in out.stderr and "Warning" not in out.stderr, f"{hook}: {out.stderr[-3000:]}"
        assert len(list((tmp_path / "out" / hook).glob("*.whl"))) == 1
