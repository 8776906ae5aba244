"""The example notebook runs end to end: it trains its digits recipe with ``nntransfer.run`` (local backend),
loads the results, shows the plots inline (and saves them as PNGs) and the transfer metrics; with and
without ``MPLBACKEND=Agg`` (headless servers set it), and without widget warnings."""

import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PNGS = ["accuracy_matrix.png", "final_accuracy.png", "learning_curves.png", "robustness_validation_noise.png",
        "transfer_steps.png"]


def text_of(output):
    if output.output_type == "stream":
        return output.text
    return "\n".join(str(v) for v in output.get("data", {}).values()) + output.get("evalue", "")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["Agg", None])
def test_digits_notebook_runs_and_plots(tmp_path, monkeypatch, backend):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it: one core for torch
    if backend is None:
        monkeypatch.delenv("MPLBACKEND", raising=False)
    else:
        monkeypatch.setenv("MPLBACKEND", backend)
    shutil.copytree(EXAMPLES / "digits_recipe", tmp_path / "digits_recipe", ignore=shutil.ignore_patterns("__pycache__"))
    notebook = nbformat.read(EXAMPLES / "digits_transfer.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "nntransfer.run(" in code[0].source  # the public function, not an internal class
    client = NotebookClient(notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    outputs = [o for cell in code for o in cell.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    printed = "\n".join(text_of(o) for o in outputs)
    assert "IProgress" not in printed and "Warning" not in printed, printed
    run_output = "\n".join(text_of(o) for o in code[0].outputs)
    assert run_output.strip() == "0 reused, 6 trained, 0 failed", run_output  # no line per epoch
    # the analysis cell: three lines, five figures shown inline
    analysis = next(cell for cell in code if "plot_all" in cell.source)
    assert len([line for line in analysis.source.splitlines() if line.strip()]) == 3
    images = [o for o in analysis.outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) == 5
    summary = next(cell for cell in code if cell.source.strip() == "results.summary()")
    table = summary.outputs[0].data["text/plain"]
    assert "pretrained" in table and "scratch" in table and "n_done" in table
    gain = next(cell for cell in code if "transfer_gain(results)" in cell.source).outputs[0].data["text/plain"]
    assert "pretrained" in gain and "scratch" in gain and "gain" in gain

    assert len(list((tmp_path / "digits_work" / "steps").iterdir())) == 6
    pngs = sorted(p.name for p in (tmp_path / "digits_plots").glob("*.png"))
    assert pngs == PNGS
    for name in pngs:
        assert matplotlib.image.imread(tmp_path / "digits_plots" / name).shape[0] > 100


def test_the_notebooks_folders_are_ignored_by_git():
    paths = ["examples/digits_work/steps/x/result.json", "examples/digits_plots/transfer_steps.png",
             "digits_work/steps/x/result.json", "digits_plots/a.png"]
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert ignored == paths
