"""notebooks/walkthrough.ipynb, run headless on a tiny study run: it executes, and shows the run's
numbers and a re-valuation that agrees with one computed here independently."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "walkthrough.ipynb"

TINY = ["experiment=smoke", "logger.mode=disabled", "train.max_iterations=4", "generate.m=60",
        "data.split.per_class_limit=20", "valuation.tsne_cap=100", "valuation.ra3_n=3"]


def test_committed_notebook_is_clean():
    """No stored outputs (the file stays small and diff-able); one cell tagged "parameters" reads GMV_RUN_DIR."""
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "the notebook has no code cells"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "GMV_RUN_DIR" in "".join(params[0]["source"])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A whole study at the smallest sizes (~30 s on 2 cores): 10 classes × 20 digits, 4 iterations, m = 60."""
    for module in ("nbformat", "nbclient", "ipykernel"):  # before the study: skip without spending 30 s
        pytest.importorskip(module)
    from hydra import compose, initialize_config_dir

    from gmv.pipeline import run_study

    tmp = tmp_path_factory.mktemp("notebook")
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("config", overrides=TINY + [f"cache_dir={tmp / 'cache'}"])
    run_dir = tmp / "run"
    metrics = run_study(cfg, run_dir)
    return cfg, run_dir, metrics


def outputs_text(nb) -> str:
    """Every stream, markdown and plain-text output of the executed notebook, concatenated."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif out.get("output_type") == "error":
                parts.append("\n".join(out.get("traceback", [])))
            else:
                data = out.get("data", {})
                parts.append(data.get("text/markdown") or data.get("text/plain") or "")
    return "\n".join(parts)


def row_cells(line: str) -> str:
    """A Table-1 markdown row without its Setting cell (the label differs between tables)."""
    return line.strip().split(" | ", 1)[1]


def test_walkthrough_executes_on_a_run(tiny_run, monkeypatch):
    import nbclient
    import nbformat

    from gmv import valuate
    from gmv.analysis.membership import membership_summary
    from gmv.analysis.ra2 import format_table1
    from gmv.pipeline import stages

    cfg, run_dir, metrics = tiny_run
    monkeypatch.setenv("GMV_RUN_DIR", str(run_dir))  # the kernel inherits this process's environment
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()  # raises CellExecutionError (with the cell and traceback) if any cell fails
    text = outputs_text(nb)

    assert f"run folder: {run_dir.resolve()}" in text
    # metrics.json shown verbatim: the t-statistic exactly as stored
    assert json.dumps(metrics["t_statistic"]) in text
    # the run's Table-1 row, as the pipeline wrote it into ra2_table.md
    run_row = (run_dir / "ra2_table.md").read_text().strip().splitlines()[2]
    assert run_row in text
    # the library call with the run's own settings reproduces values.csv
    diff = re.search(r"max \|φ − values\.csv\| = (\S+),", text)
    assert diff and float(diff.group(1)) < 1e-6, diff and diff.group(0)
    # Eq. 5/6 by hand agree with valuate, and the m generated images hand out exactly m
    by_hand = re.search(r"by hand: max \|φ − valuate's φ\| = (\S+); Σφ = (\S+) = m = (\d+)", text)
    assert by_hand and float(by_hand.group(1)) < 1e-9
    assert float(by_hand.group(2)) == pytest.approx(metrics["n_generated"]) == int(by_hand.group(3))

    # the comparison table: the run's row formatted from metrics.json equals ra2_table.md's numbers, and
    # the re-valued row (flat, k = 2·run's k) equals one computed here independently of the notebook
    data = stages.load_data(cfg.data)
    _, v1, v2 = stages.split_data(data, cfg.data.split)
    k_new = 2 * int(cfg.valuation.k)
    new = valuate(v1, run_dir / "samples.npz", held_out=v2, embedder="pixels", matcher="flat", k=k_new)
    expected = format_table1({"x": membership_summary(new.values[new.side("v1")], new.values[new.side("v2")],
                                                      seed=int(cfg.seed))}).splitlines()[2]
    rows = [line for line in text.splitlines() if line.startswith("| re-valued: ")]
    assert rows and rows[0].startswith(f"| re-valued: Flat, k={k_new} |")
    assert row_cells(rows[0]) == row_cells(expected)
    run_rows = [line for line in text.splitlines() if line.startswith("| run: ")]
    assert run_rows and row_cells(run_rows[0]) == row_cells(run_row)

    # the figures and the top-images grid were drawn
    images = sum("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))
    assert images >= 6, f"only {images} images in the outputs"
    values = np.genfromtxt(run_dir / "values.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    top = int(values["index"][np.argsort(-values["value"], kind="stable")[0]])
    assert f"| 1 | {top} |" in text  # the top-10 table starts with the highest-valued pool image
