"""The example notebook runs end to end: it trains its digits recipe with the local backend, loads the
results and shows the plots inline (and saves them as PNGs)."""

import shutil
from pathlib import Path

import matplotlib.image
import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
def test_digits_notebook_runs_and_plots(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it: one core for torch
    shutil.copytree(EXAMPLES / "digits_recipe", tmp_path / "digits_recipe", ignore=shutil.ignore_patterns("__pycache__"))
    notebook = nbformat.read(EXAMPLES / "digits_transfer.ipynb", as_version=4)
    client = NotebookClient(notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    # the analysis cell: three lines, four figures shown inline
    analysis = next(cell for cell in code if "plot_all" in cell.source)
    assert len([line for line in analysis.source.splitlines() if line.strip()]) == 3
    images = [o for o in analysis.outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) == 4
    summary = next(cell for cell in code if cell.source.strip() == "results.summary()")
    table = summary.outputs[0].data["text/plain"]
    assert "pretrained" in table and "scratch" in table and "n_done" in table

    assert len(list((tmp_path / "digits_work" / "steps").iterdir())) == 6
    pngs = sorted(p.name for p in (tmp_path / "digits_plots").glob("*.png"))
    assert pngs == ["final_accuracy.png", "learning_curves.png", "robustness_validation_noise.png", "transfer_steps.png"]
    for name in pngs:
        assert matplotlib.image.imread(tmp_path / "digits_plots" / name).shape[0] > 100
